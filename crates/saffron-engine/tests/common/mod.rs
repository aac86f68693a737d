//! Real-model test fixtures: models come from the saffron cache (`saffron
//! fetch`); a missing model fails the test with the command that fetches it.
#![allow(dead_code)]

use std::sync::OnceLock;

use saffron_engine::Model;

fn load(name: &str) -> Model {
    let home = saffron_fetch::saffron_home();
    let model_ref = saffron_fetch::resolve_model(name, &home)
        .unwrap_or_else(|e| panic!("real-model tests need the `{name}` model: {e}"));
    Model::load(model_ref.path()).expect("the cached model loads")
}

pub fn smollm2() -> Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| load("smollm2")).clone()
}

pub fn qwen() -> Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| load("qwen")).clone()
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
            let dir = saffron_fetch::saffron_home().join("test-fixtures");
            let target = dir.join("smollm2-135m-instruct-f32.gguf");
            if !target.is_file() {
                std::fs::create_dir_all(&dir).unwrap();
                let partial = dir.join(format!(".smollm2-f32.{}.partial", std::process::id()));
                let src = std::ffi::CString::new(source.path().to_str().unwrap()).unwrap();
                let dst = std::ffi::CString::new(partial.to_str().unwrap()).unwrap();
                // SAFETY: plain C call on two valid NUL-terminated paths with
                // llama.cpp's default parameters.
                let status = unsafe {
                    let mut params = llama_cpp_sys_2::llama_model_quantize_default_params();
                    params.ftype = llama_cpp_sys_2::LLAMA_FTYPE_ALL_F32;
                    params.allow_requantize = true;
                    llama_cpp_sys_2::llama_model_quantize(src.as_ptr(), dst.as_ptr(), &params)
                };
                assert_eq!(status, 0, "llama_model_quantize to F32 failed");
                std::fs::rename(&partial, &target).unwrap();
            }
            Model::load(&target).expect("the F32 fixture loads")
        })
        .clone()
}
