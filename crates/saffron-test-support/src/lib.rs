//! Real-model test fixtures, one copy for every crate's integration tests:
//! models come from the saffron cache (`saffron fetch`, which
//! `scripts/test.sh` runs first); a missing model fails the test with the
//! command that fetches it. Each model is loaded once per test binary.

use std::path::PathBuf;
use std::sync::OnceLock;

use saffron_engine::Model;

/// The user's cache, where `saffron fetch` put the models.
pub fn real_home() -> PathBuf {
    saffron_fetch::saffron_home()
}

/// The path of a fetched catalog model.
pub fn model_path(name: &str) -> PathBuf {
    saffron_fetch::resolve_model(name, &real_home())
        .unwrap_or_else(|e| panic!("real-model tests need the `{name}` model (saffron fetch --only {name}): {e}"))
        .path()
        .to_path_buf()
}

pub fn smollm2_path() -> PathBuf {
    model_path("smollm2")
}

fn load(name: &str) -> Model {
    Model::load(model_path(name)).expect("the cached model loads")
}

/// SmolLM2-135M-Instruct (Q4_1), loaded once.
pub fn smollm2() -> Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| load("smollm2")).clone()
}

/// Qwen2.5-Coder-0.5B-Instruct (Q4_K_M), loaded once.
pub fn qwen() -> Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| load("qwen")).clone()
}

/// The catalog sha256 of a model (verified when it was fetched).
pub fn catalog_sha256(name: &str) -> String {
    saffron_fetch::Artifact::by_name(name).unwrap_or_else(|| panic!("`{name}` is a catalog model")).sha256.to_owned()
}

/// Largest absolute difference between two vectors of equal length.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// SmolLM2 with every tensor converted to F32 by llama.cpp's own quantize
/// tool (the Q4_1 values dequantised exactly), made once into the cache.
///
/// Why: Q4_1 matmuls quantise each activation block to 8 bits, so any change
/// in float summation order (another batch size, another KV layout) can flip
/// a rounding and move logits by ~0.5. In F32 the arithmetic is continuous:
/// layout noise stays ~1e-4 and a cache bug stands out.
pub fn smollm2_f32() -> Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let source = smollm2();
            let dir = real_home().join("test-fixtures");
            let target = dir.join("smollm2-135m-instruct-f32.gguf");
            if !target.is_file() {
                std::fs::create_dir_all(&dir).expect("the fixture directory can be made");
                let partial = dir.join(format!(".smollm2-f32.{}.partial", std::process::id()));
                let path =
                    |p: &std::path::Path| std::ffi::CString::new(p.to_str().expect("UTF-8 path")).expect("no NUL");
                let (src, dst) = (path(source.path()), path(&partial));
                // SAFETY: plain C call on two valid NUL-terminated paths with
                // llama.cpp's default parameters.
                let status = unsafe {
                    let mut params = llama_cpp_sys_2::llama_model_quantize_default_params();
                    params.ftype = llama_cpp_sys_2::LLAMA_FTYPE_ALL_F32;
                    params.allow_requantize = true;
                    llama_cpp_sys_2::llama_model_quantize(src.as_ptr(), dst.as_ptr(), &params)
                };
                assert_eq!(status, 0, "llama_model_quantize to F32 failed");
                std::fs::rename(&partial, &target).expect("the fixture is moved into place");
            }
            Model::load(&target).expect("the F32 fixture loads")
        })
        .clone()
}
