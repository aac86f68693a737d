//! Model hyper-parameters and the analytic forward-FLOPs formula.

use serde::Serialize;

/// The hyper-parameters that decide a decoder-only transformer's compute,
/// read from the GGUF metadata (`{arch}.block_count`, `...embedding_length`,
/// ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ModelShape {
    pub n_layer: u64,
    pub d_model: u64,
    pub n_head: u64,
    pub n_head_kv: u64,
    /// Per-head dimension of queries, keys and values.
    pub head_dim: u64,
    pub d_ffn: u64,
    pub n_vocab: u64,
}

impl ModelShape {
    /// Weights multiplied per token in the transformer blocks:
    /// per layer `Wq` (d × h·hd), `Wk` and `Wv` (d × h_kv·hd each),
    /// `Wo` (h·hd × d) and the gated FFN (gate, up, down: 3 × d × d_ffn).
    /// Norms, biases and the embedding lookup are not matrix products and
    /// are left out (they are < 0.1% of the work).
    pub fn block_matmul_params(&self) -> u64 {
        let q_and_o = 2 * self.d_model * self.n_head * self.head_dim;
        let k_and_v = 2 * self.d_model * self.n_head_kv * self.head_dim;
        let ffn = 3 * self.d_model * self.d_ffn;
        self.n_layer * (q_and_o + k_and_v + ffn)
    }

    /// Weights of the output projection (d × vocab), multiplied only for
    /// rows whose logits are computed.
    pub fn head_params(&self) -> u64 {
        self.d_model * self.n_vocab
    }

    /// Forward FLOPs of one token that attends to `context_len` positions
    /// (itself included), the standard count of Kaplan et al. (2020):
    ///
    /// ```text
    /// FLOPs = 2 · P_blocks                         (one multiply-add per weight)
    ///       + 4 · n_layer · n_head · head_dim · L  (QKᵀ and A·V over L positions)
    ///       + 2 · d · vocab   if this row's logits are computed
    /// ```
    ///
    /// Cached tokens cost nothing (method.md section 4), so only tokens the
    /// engine actually runs are charged.
    pub fn token_flops(&self, context_len: u64, with_logits: bool) -> f64 {
        let blocks = 2 * self.block_matmul_params();
        let attention = 4 * self.n_layer * self.n_head * self.head_dim * context_len;
        let head = if with_logits { 2 * self.head_params() } else { 0 };
        (blocks + attention + head) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Qwen2.5-Coder-0.5B as listed in data-sources.md.
    fn qwen() -> ModelShape {
        ModelShape { n_layer: 24, d_model: 896, n_head: 14, n_head_kv: 2, head_dim: 64, d_ffn: 4864, n_vocab: 151_936 }
    }

    #[test]
    fn qwen_formula_by_hand() {
        // per layer: q,o 2·896·896 = 1,605,632; k,v 2·896·128 = 229,376;
        // ffn 3·896·4864 = 13,074,432; sum 14,909,440; × 24 layers:
        assert_eq!(qwen().block_matmul_params(), 357_826_560);
        assert_eq!(qwen().head_params(), 136_134_656);
        // 1 token, context 1, with logits: 2·(357,826,560 + 136,134,656) + 4·24·14·64·1
        assert_eq!(qwen().token_flops(1, true), 987_922_432.0 + 86_016.0);
        // attention grows linearly with the context.
        let d = qwen().token_flops(101, false) - qwen().token_flops(1, false);
        assert_eq!(d, 100.0 * 86_016.0);
    }
}
