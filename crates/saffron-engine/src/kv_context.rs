//! A llama.cpp context (one unified KV cache) over a shared model: the only
//! place the prefix tree touches llama.cpp.

use std::num::NonZeroU32;
use std::sync::Arc;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use saffron_core::TokenId;

use crate::backend::backend;
use crate::{EngineError, Model, Weights};

/// llama.cpp's hard limit on sequence ids in one context (`LLAMA_MAX_SEQ`).
pub(crate) const MAX_SEQUENCES: u32 = 256;

/// A llama.cpp sequence id: one tree leaf's path through the KV cache.
pub(crate) type SeqId = i32;

/// One row of a decode batch: a token at a position, belonging to a set of
/// sequences, and whether its outputs (logits / hidden state) are read.
pub(crate) struct Row<'a> {
    pub token: TokenId,
    pub pos: u32,
    pub seqs: &'a [SeqId],
    pub output: bool,
}

pub(crate) struct KvContext {
    // Field order is load-bearing: `ctx` borrows the model behind `_model`
    // and must be dropped before it. The `'static` is a lie told once, here:
    // the `Arc` keeps the model alive at a fixed address for as long as the
    // context exists.
    ctx: LlamaContext<'static>,
    batch: LlamaBatch<'static>,
    _model: Arc<LlamaModel>,
    batch_size: usize,
    cells: u32,
    hidden: bool,
}

// SAFETY: `LlamaContext` is `Send` and the batch is plain owned memory; the
// model is shared immutable data. Nothing here is tied to a thread.
unsafe impl Send for KvContext {}

impl KvContext {
    pub fn new(
        model: &Model,
        cells: u32,
        batch_size: u32,
        threads: i32,
        hidden: bool,
        flash_attention: bool,
    ) -> Result<Self, EngineError> {
        if model.weights() == Weights::VocabularyOnly {
            return Err(EngineError::NoWeights { path: model.path().to_path_buf() });
        }
        let llama = Arc::clone(model.llama());
        // llama.cpp sizes its output buffer by `n_seq_max` and asserts that
        // it fits `n_batch`, itself capped by `n_ctx`: both must be at least
        // MAX_SEQUENCES. The tree still decodes at most `batch_size` rows
        // and caches at most `cells` nodes.
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(cells.max(MAX_SEQUENCES)))
            .with_n_batch(batch_size.max(MAX_SEQUENCES))
            .with_n_ubatch(batch_size.max(MAX_SEQUENCES))
            .with_n_seq_max(MAX_SEQUENCES)
            .with_kv_unified(true)
            .with_embeddings(hidden)
            .with_flash_attention_policy(if flash_attention {
                llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_ENABLED
            } else {
                llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED
            })
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let ctx = llama.new_context(backend()?, params).map_err(|e| EngineError::Context {
            cells,
            seqs: MAX_SEQUENCES,
            message: e.to_string(),
        })?;
        // SAFETY: see the field comment on `ctx`.
        let mut ctx: LlamaContext<'static> = unsafe { std::mem::transmute(ctx) };
        if let Some(lora) = model.lora() {
            let mut adapter = lora.adapter.lock().unwrap_or_else(|e| e.into_inner());
            ctx.lora_adapter_set(&mut adapter, lora.scale).map_err(|e| EngineError::Context {
                cells,
                seqs: MAX_SEQUENCES,
                message: format!("setting the LoRA adapter {}: {e}", lora.path.display()),
            })?;
        }
        let batch = LlamaBatch::new(batch_size as usize, MAX_SEQUENCES as i32);
        Ok(Self { ctx, batch, _model: llama, batch_size: batch_size as usize, cells, hidden })
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    pub fn cells(&self) -> u32 {
        self.cells
    }

    /// With hidden states on, llama.cpp computes outputs for every row.
    pub fn outputs_every_row(&self) -> bool {
        self.hidden
    }

    /// Adds `dst` to every cell of `src` at positions `[0, end)`: a fork by
    /// metadata only, no tensor is copied.
    pub fn fork(&mut self, src: SeqId, dst: SeqId, end: u32) {
        if end > 0 {
            // Positions are < cells ≤ u32::MAX; the conversion cannot fail.
            let _ = self.ctx.kv_cache_seq_cp(src, dst, Some(0), Some(end));
        }
    }

    /// Removes `seq` from cells at positions `[start, ∞)`; a cell left with
    /// no sequence is free.
    pub fn release(&mut self, seq: SeqId, start: u32) {
        // Removing a suffix of a sequence never fails in a unified KV cache.
        let _ = self.ctx.kv_cache_seq_rm(seq, Some(start), None);
    }

    pub fn clear(&mut self) {
        self.ctx.clear_kv_cache();
    }

    /// One `llama_decode` over at most `batch_size` rows.
    pub fn decode(&mut self, rows: &[Row<'_>]) -> Result<(), EngineError> {
        debug_assert!(rows.len() <= self.batch_size);
        self.batch.clear();
        for row in rows {
            // The batch was allocated for `batch_size` rows of up to
            // MAX_SEQUENCES ids, and the tree never builds more.
            self.batch
                .add(LlamaToken(row.token as i32), row.pos as i32, row.seqs, row.output)
                .map_err(|_| EngineError::Decode { code: -1, rows: rows.len() })?;
        }
        self.ctx.decode(&mut self.batch).map_err(|e| EngineError::Decode { code: decode_code(&e), rows: rows.len() })
    }

    /// Logits of output row `i` of the last decode.
    pub fn logits(&self, i: usize) -> &[f32] {
        self.ctx.get_logits_ith(i as i32)
    }

    /// Final hidden state of output row `i` of the last decode.
    pub fn hidden(&self, i: usize) -> Result<&[f32], EngineError> {
        self.ctx.embeddings_ith(i as i32).map_err(|_| EngineError::HiddenStatesDisabled)
    }
}

fn decode_code(e: &llama_cpp_2::DecodeError) -> i32 {
    match e {
        llama_cpp_2::DecodeError::NoKvCacheSlot => 1,
        llama_cpp_2::DecodeError::NTokensZero => -1,
        llama_cpp_2::DecodeError::Unknown(c) => *c,
    }
}
