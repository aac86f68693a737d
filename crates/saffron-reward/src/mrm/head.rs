//! The MRM head on a backbone's final hidden state `h` at node `s`
//! (method.md section 2: `M(s)[a] ≈ R(s·a)` for every next token `a`).
//!
//! With `x = (h − mean) / scale` (standardised, as the probe guard):
//!
//! ```text
//! M(s)[a] = w·x + c                 value: how safe the prefix is so far
//!         + b[a]                    per-token bias: a token's context-free effect
//!         + U[a] · (P x)            rank-r term: the token's effect in this context
//!         + Σ_j v_j relu(Q_j·x + q_j + E[a]_j)   optional non-linear term
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
//!
//! The non-linear term (`train-mrm --mlp K`, [`TokenMlp`]) is K hidden units
//! on the state that each token shifts by its own `E[a]`: a token can turn
//! units on or off where the bilinear term only scales one direction. It
//! adds `O(d·K + |seen|·K)` to a call.

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
    /// The optional non-linear token term.
    pub mlp: Option<TokenMlp>,
}

/// `Σ_j v_j relu(Q_j·x + q_j + E[a]_j)`: K hidden units on the
/// standardised state, shifted by each seen token.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenMlp {
    /// `K × dim`, row-major.
    pub input: Vec<f32>,
    pub bias: Vec<f32>,
    /// `seen.len() × K`, row-major (same order as `MrmHead::seen`).
    pub token_shift: Vec<f32>,
    pub output: Vec<f32>,
}

impl TokenMlp {
    pub fn width(&self) -> usize {
        self.bias.len()
    }

    /// `Q x + q`: the units' inputs before any token's shift.
    pub fn units(&self, x: &[f32]) -> Vec<f32> {
        self.input.chunks_exact(x.len()).zip(&self.bias).map(|(row, b)| dot(row, x) + b).collect()
    }

    /// The term for seen token `row`, given [`TokenMlp::units`].
    pub fn term(&self, row: usize, units: &[f32]) -> f32 {
        let k = self.width();
        let shift = &self.token_shift[row * k..(row + 1) * k];
        units.iter().zip(shift).zip(&self.output).map(|((u, e), v)| v * (u + e).max(0.0)).sum()
    }
}

/// A node's context for scoring its next tokens: the value term, `P x`,
/// and the non-linear units' inputs (empty without that term).
pub struct NodeContext {
    pub value: f32,
    pub projected: Vec<f32>,
    pub units: Vec<f32>,
}

/// Head sizes and training settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MrmTraining {
    pub rank: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f32,
    /// L2 penalty on all weights but the value bias and the non-linear
    /// term's unit biases.
    pub l2: f32,
    pub seed: u64,
    /// Hidden units of the non-linear token term; `None`: no such term.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mlp_width: Option<usize>,
}

impl Default for MrmTraining {
    fn default() -> Self {
        MrmTraining { rank: 16, epochs: 10, batch_size: 64, learning_rate: 3e-3, l2: 1e-4, seed: 0, mlp_width: None }
    }
}

impl MrmHead {
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    pub fn standardise(&self, hidden: &[f32]) -> Vec<f32> {
        hidden.iter().zip(self.mean.iter().zip(&self.scale)).map(|(h, (m, s))| (h - m) / s).collect()
    }

    /// The value term, `P x` and the non-linear units for a standardised `x`.
    pub fn context(&self, x: &[f32]) -> NodeContext {
        NodeContext {
            value: self.value_bias + dot(&self.value_weight, x),
            projected: self.projection.chunks_exact(self.dim()).map(|row| dot(row, x)).collect(),
            units: self.mlp.as_ref().map_or_else(Vec::new, |m| m.units(x)),
        }
    }

    /// What seen token `row` adds to the value term at a node.
    pub fn token_term(&self, row: usize, node: &NodeContext) -> f32 {
        let u = &self.token_embedding[row * self.rank..(row + 1) * self.rank];
        let mlp = self.mlp.as_ref().map_or(0.0, |m| m.term(row, &node.units));
        self.token_bias[row] + dot(u, &node.projected) + mlp
    }

    /// Rewards for every token of the vocabulary at the node whose hidden
    /// state is `hidden`. Unseen tokens get the value term alone (their
    /// reward is meaningless; a conservative search masks them).
    pub fn rewards(&self, hidden: &[f32]) -> Vec<f32> {
        let node = self.context(&self.standardise(hidden));
        let mut out = vec![node.value; self.vocab_size];
        for (i, &token) in self.seen.iter().enumerate() {
            out[token as usize] = node.value + self.token_term(i, &node);
        }
        out
    }

    /// FLOPs of one call (multiply-adds count 2): standardise, value,
    /// projection and the seen tokens' rank-r terms, and with the
    /// non-linear term its units and every seen token's shifted units.
    pub fn flops_per_call(&self) -> f64 {
        let (d, r, s) = (self.dim() as f64, self.rank as f64, self.seen.len() as f64);
        let mlp = self.mlp.as_ref().map_or(0.0, |m| {
            let k = m.width() as f64;
            d * k + 2.0 * s * k
        });
        2.0 * (2.0 * d + r * d + s * (r + 1.0) + mlp)
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
