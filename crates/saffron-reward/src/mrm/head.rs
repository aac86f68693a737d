//! The MRM head on a backbone's final hidden state `h` at node `s`
//! (method.md section 2: `M(s)[a] ≈ R(s·a)` for every next token `a`).
//!
//! With `x = (h − mean) / scale` (standardised, as the probe guard):
//!
//! ```text
//! M(s)[a] = w·x + c                 value: how safe the prefix is so far
//!         + b[a]                    per-token bias: a token's context-free effect
//!         + U[a] · (P x)            rank-r term: the token's effect in this context
//! ```
//!
//! Why this shape: the value term is a probe on the backbone's own
//! representation (what the probe guard shows works); `R(s·a) − R(s)` is
//! mostly the effect of one token, partly the same everywhere ("Sorry",
//! "Step") and partly context-dependent ("Sure" after a harmful request or
//! a benign one), which the bias and the low-rank term model. `b[a]` and
//! `U[a]` exist only for tokens that were a supervised next token: the
//! others receive no gradient under partial supervision (method.md), which
//! is exactly the conservative mask, so the head stores the seen tokens and
//! nothing else. One call costs `O(d·r + |seen|·r)`; on the policy's own
//! hidden state no forward pass is added.

use std::collections::HashMap;

use std::sync::Arc;

use saffron_core::{ModelError, SequenceOutputs, TokenId};
use serde::{Deserialize, Serialize};

use crate::RewardError;

/// A trained MRM head.
#[derive(Debug, Clone, PartialEq)]
pub struct MrmHead {
    pub mean: Vec<f32>,
    pub scale: Vec<f32>,
    pub value_weight: Vec<f32>,
    pub value_bias: f32,
    /// `rank × dim`, row-major.
    pub projection: Vec<f32>,
    /// The supervised tokens, ascending; the rest of the vocabulary is the
    /// unseen set.
    pub seen: Vec<TokenId>,
    /// Per seen token (same order as `seen`).
    pub token_bias: Vec<f32>,
    /// `seen.len() × rank`, row-major.
    pub token_embedding: Vec<f32>,
    pub rank: usize,
    pub vocab_size: usize,
}

/// Head sizes and training settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MrmTraining {
    pub rank: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f32,
    /// L2 penalty on all weights but the value bias.
    pub l2: f32,
    pub seed: u64,
}

impl Default for MrmTraining {
    fn default() -> Self {
        MrmTraining { rank: 16, epochs: 10, batch_size: 64, learning_rate: 3e-3, l2: 1e-4, seed: 0 }
    }
}

impl MrmHead {
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    pub fn standardise(&self, hidden: &[f32]) -> Vec<f32> {
        hidden.iter().zip(self.mean.iter().zip(&self.scale)).map(|(h, (m, s))| (h - m) / s).collect()
    }

    /// `(w·x + c, P x)` for a standardised `x`.
    pub fn context(&self, x: &[f32]) -> (f32, Vec<f32>) {
        let value = self.value_bias + dot(&self.value_weight, x);
        let z = self.projection.chunks_exact(self.dim()).map(|row| dot(row, x)).collect();
        (value, z)
    }

    /// Rewards for every token of the vocabulary at the node whose hidden
    /// state is `hidden`. Unseen tokens get the value term alone (their
    /// reward is meaningless; a conservative search masks them).
    pub fn rewards(&self, hidden: &[f32]) -> Vec<f32> {
        let (value, z) = self.context(&self.standardise(hidden));
        let mut out = vec![value; self.vocab_size];
        for (i, &token) in self.seen.iter().enumerate() {
            out[token as usize] =
                value + self.token_bias[i] + dot(&self.token_embedding[i * self.rank..(i + 1) * self.rank], &z);
        }
        out
    }

    /// Index of each seen token in `seen`.
    pub fn seen_index(&self) -> HashMap<TokenId, usize> {
        self.seen.iter().enumerate().map(|(i, &t)| (t, i)).collect()
    }

    /// The reward vectors at each node's final hidden state (a backbone's
    /// outputs made with hidden states kept).
    pub fn rewards_at(&self, outputs: &[SequenceOutputs]) -> Result<Vec<Arc<[f32]>>, ModelError> {
        outputs
            .iter()
            .map(|o| {
                let hidden = o.hidden.as_deref().ok_or_else(|| ModelError::new(RewardError::MissingHidden))?;
                Ok(Arc::from(self.rewards(hidden)))
            })
            .collect()
    }

    pub fn is_unseen(&self, token: TokenId) -> bool {
        self.seen.binary_search(&token).is_err()
    }
}

pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
