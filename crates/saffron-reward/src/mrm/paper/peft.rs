//! A PEFT LoRA adapter (`adapter_config.json` + `adapter_model.safetensors`,
//! as `peft`'s `save_pretrained` writes it) converted into llama.cpp's GGUF
//! adapter form ([`saffron_engine::lora`]).
//!
//! PEFT names a Hugging Face module (`base_model.model.model.layers.3.
//! self_attn.q_proj.lora_A.weight`, A of `r × n_in`, B of `n_out × r`);
//! llama.cpp names the GGUF weight (`blk.3.attn_q.weight.lora_a`). Two
//! things differ beyond names:
//!
//! - llama.cpp's converter reorders the rows of the query and key weights of
//!   `llama`-architecture models (the rotary halves of each head are
//!   interleaved), so the rows of those B matrices are reordered the same way;
//! - rsLoRA scales by `alpha / √r` instead of `alpha / r`, which llama.cpp
//!   computes from `adapter.lora.alpha`, so the alpha written is `alpha · √r`.

use std::path::Path;

use safetensors::tensor::Dtype;
use safetensors::SafeTensors;
use saffron_engine::lora::{LoraAdapter, LoraMatrix};
use serde::Deserialize;

use super::{ADAPTER_CONFIG, ADAPTER_WEIGHTS};
use crate::RewardError;

/// The fields of `adapter_config.json` that decide the arithmetic.
#[derive(Debug, Clone, Deserialize)]
pub struct PeftConfig {
    pub r: usize,
    pub lora_alpha: f32,
    #[serde(default)]
    pub use_rslora: bool,
    #[serde(default)]
    pub use_dora: bool,
    #[serde(default)]
    pub fan_in_fan_out: bool,
    #[serde(default)]
    pub peft_type: Option<String>,
    /// The Hugging Face id of the base model, for messages.
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
}

/// What the conversion needs of the base model.
#[derive(Debug, Clone, Copy)]
pub struct BaseModel<'a> {
    /// `general.architecture` (`llama` reorders query and key rows).
    pub arch: &'a str,
    pub n_head: usize,
    pub n_head_kv: usize,
}

/// Reads the PEFT adapter in `dir` and converts it for `base`.
pub fn load_peft(dir: &Path, base: BaseModel) -> Result<(PeftConfig, LoraAdapter), RewardError> {
    let bad = |detail: String| RewardError::Artifact { path: dir.to_path_buf(), detail };
    let text = std::fs::read_to_string(dir.join(ADAPTER_CONFIG))
        .map_err(|e| bad(format!("cannot read {ADAPTER_CONFIG}: {e}")))?;
    let config: PeftConfig = serde_json::from_str(&text).map_err(|e| bad(format!("{ADAPTER_CONFIG}: {e}")))?;
    if config.peft_type.as_deref().is_some_and(|t| t != "LORA") {
        return Err(bad(format!("peft_type {:?} is not LORA", config.peft_type.unwrap_or_default())));
    }
    if config.use_dora || config.fan_in_fan_out {
        return Err(bad("DoRA and fan_in_fan_out adapters are not supported (llama.cpp applies plain LoRA)".into()));
    }
    let bytes =
        std::fs::read(dir.join(ADAPTER_WEIGHTS)).map_err(|e| bad(format!("cannot read {ADAPTER_WEIGHTS}: {e}")))?;
    let tensors = SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("{ADAPTER_WEIGHTS}: {e}")))?;

    let mut matrices = Vec::new();
    for name in sorted_names(&tensors) {
        let Some(prefix) = name.strip_suffix(".lora_A.weight") else { continue };
        let (weight, rows_per_head) = gguf_weight(prefix, base).ok_or_else(|| {
            bad(format!("tensor {name}: module is not a layer's attention or feed-forward projection"))
        })?;
        let a = read_matrix(&tensors, &name).map_err(&bad)?;
        let b = read_matrix(&tensors, &format!("{prefix}.lora_B.weight")).map_err(&bad)?;
        let (rank, n_in, n_out) = (a.rows, a.cols, b.rows);
        if b.cols != rank {
            return Err(bad(format!("{prefix}: lora_A has rank {rank} but lora_B {}", b.cols)));
        }
        let b_values = match rows_per_head {
            Some(n_head) => permute_rows(&b.values, n_out, rank, n_head).map_err(&bad)?,
            None => b.values,
        };
        matrices.push(LoraMatrix { weight, rank, n_in, n_out, a: a.values, b: b_values });
    }
    if matrices.is_empty() {
        return Err(bad(format!("{ADAPTER_WEIGHTS} holds no lora_A/lora_B pairs")));
    }
    let alpha = if config.use_rslora { config.lora_alpha * (config.r as f32).sqrt() } else { config.lora_alpha };
    Ok((config, LoraAdapter { arch: base.arch.to_owned(), alpha, matrices }))
}

fn sorted_names(tensors: &SafeTensors) -> Vec<String> {
    let mut names: Vec<String> = tensors.names().into_iter().cloned().collect();
    names.sort();
    names
}

/// The GGUF weight a PEFT module prefix adapts, and for `llama` query/key
/// weights the head count their rows are grouped by.
fn gguf_weight(prefix: &str, base: BaseModel) -> Option<(String, Option<usize>)> {
    let rest = &prefix[prefix.find("layers.")? + "layers.".len()..];
    let (layer, module) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let llama = base.arch == "llama";
    let (gguf, heads) = match module {
        "self_attn.q_proj" => ("attn_q", llama.then_some(base.n_head)),
        "self_attn.k_proj" => ("attn_k", llama.then_some(base.n_head_kv)),
        "self_attn.v_proj" => ("attn_v", None),
        "self_attn.o_proj" => ("attn_output", None),
        "mlp.gate_proj" => ("ffn_gate", None),
        "mlp.up_proj" => ("ffn_up", None),
        "mlp.down_proj" => ("ffn_down", None),
        _ => return None,
    };
    Some((format!("blk.{layer}.{gguf}.weight"), heads))
}

/// A row-major matrix read as f32.
struct Matrix {
    rows: usize,
    cols: usize,
    values: Vec<f32>,
}

fn read_matrix(tensors: &SafeTensors, name: &str) -> Result<Matrix, String> {
    let view = tensors.tensor(name).map_err(|_| format!("tensor {name} is missing"))?;
    let [rows, cols] = view.shape() else { return Err(format!("tensor {name} is not a matrix: {:?}", view.shape())) };
    let data = view.data();
    let values: Vec<f32> = match view.dtype() {
        Dtype::F32 => data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect(),
        Dtype::F16 => data.chunks_exact(2).map(|c| half::f16::from_le_bytes(c.try_into().unwrap()).to_f32()).collect(),
        Dtype::BF16 => {
            data.chunks_exact(2).map(|c| half::bf16::from_le_bytes(c.try_into().unwrap()).to_f32()).collect()
        }
        other => return Err(format!("tensor {name} has type {other:?}; expected F32, F16 or BF16")),
    };
    Ok(Matrix { rows: *rows, cols: *cols, values })
}

/// llama.cpp's converter's query/key reordering applied to the rows of a
/// `n_out × cols` matrix: within each of `n_head` heads, row `t·(d/2) + j`
/// (first or second rotary half `t`, pair `j`) moves to row `2·j + t`.
pub fn permute_rows(values: &[f32], n_out: usize, cols: usize, n_head: usize) -> Result<Vec<f32>, String> {
    if n_head == 0 || !n_out.is_multiple_of(n_head) || !(n_out / n_head).is_multiple_of(2) {
        return Err(format!("{n_out} rows do not split into {n_head} heads of an even size"));
    }
    let head_dim = n_out / n_head;
    let half = head_dim / 2;
    let mut out = vec![0.0; values.len()];
    for h in 0..n_head {
        for j in 0..half {
            for t in 0..2 {
                let from = h * head_dim + t * half + j;
                let to = h * head_dim + 2 * j + t;
                out[to * cols..(to + 1) * cols].copy_from_slice(&values[from * cols..(from + 1) * cols]);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One head of 4 rows: halves [r0 r1] and [r2 r3] interleave to
    /// r0 r2 r1 r3 (numpy: reshape(1, 2, 2, c).swapaxes(1, 2)).
    #[test]
    fn permutation_by_hand() {
        let rows: Vec<f32> = (0..4).flat_map(|r| [r as f32, 10.0 + r as f32]).collect();
        let out = permute_rows(&rows, 4, 2, 1).unwrap();
        assert_eq!(out, vec![0.0, 10.0, 2.0, 12.0, 1.0, 11.0, 3.0, 13.0]);
        // Two heads of 4 rows permute independently.
        let rows: Vec<f32> = (0..8).map(|r| r as f32).collect();
        assert_eq!(permute_rows(&rows, 8, 1, 2).unwrap(), vec![0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0]);
        assert!(permute_rows(&rows, 8, 1, 3).is_err());
    }

    #[test]
    fn module_names() {
        let llama = BaseModel { arch: "llama", n_head: 9, n_head_kv: 3 };
        let q = "base_model.model.model.layers.12.self_attn.q_proj";
        assert_eq!(gguf_weight(q, llama), Some(("blk.12.attn_q.weight".into(), Some(9))));
        let k = "base_model.model.model.layers.0.self_attn.k_proj";
        assert_eq!(gguf_weight(k, llama), Some(("blk.0.attn_k.weight".into(), Some(3))));
        let v = "base_model.model.model.layers.3.self_attn.v_proj";
        assert_eq!(gguf_weight(v, llama), Some(("blk.3.attn_v.weight".into(), None)));
        let qwen = BaseModel { arch: "qwen2", ..llama };
        assert_eq!(gguf_weight(q, qwen), Some(("blk.12.attn_q.weight".into(), None)));
        assert_eq!(gguf_weight("base_model.model.lm_head", llama), None);
    }
}
