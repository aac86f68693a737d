//! Plain generation of one answer: sample token by token through a
//! [`Policy`] (the prefix tree, or any fake) until end-of-generation or the
//! length limit. Search strategies build on the same pieces.

use saffron_core::{ModelError, Policy, TokenId, WantedOutputs};
use serde::{Deserialize, Serialize};

use crate::sampling::{node_key, sample, Decoding};

/// Settings of one generation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerateConfig {
    pub decoding: Decoding,
    pub max_new_tokens: usize,
    /// End-of-generation tokens are banned before this many new tokens.
    pub min_new_tokens: usize,
    pub seed: u64,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig { decoding: Decoding::default(), max_new_tokens: 128, min_new_tokens: 0, seed: 0 }
    }
}

/// Why a generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model produced an end-of-generation token (not included in the
    /// output tokens).
    EndOfGeneration,
    /// `max_new_tokens` were generated.
    Length,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Generation {
    pub tokens: Vec<TokenId>,
    pub finish: FinishReason,
}

/// Generates one continuation of `context` (prompt and prefill tokens).
pub fn generate(
    policy: &mut dyn Policy,
    context: &[TokenId],
    config: &GenerateConfig,
) -> Result<Generation, ModelError> {
    let end_tokens: Vec<TokenId> =
        (0..policy.vocab_size() as TokenId).filter(|&t| policy.is_end_of_generation(t)).collect();
    let mut path = context.to_vec();
    let mut tokens = Vec::new();
    while tokens.len() < config.max_new_tokens {
        let outputs = policy.outputs(&[&path], WantedOutputs::Logits)?;
        let logits = outputs[0].logits.as_deref().unwrap_or_default();
        let banned: &[TokenId] = if tokens.len() < config.min_new_tokens { &end_tokens } else { &[] };
        let Some(token) = sample(logits, &config.decoding, banned, node_key(config.seed, 0, &path)) else {
            break;
        };
        if policy.is_end_of_generation(token) {
            return Ok(Generation { tokens, finish: FinishReason::EndOfGeneration });
        }
        path.push(token);
        tokens.push(token);
    }
    Ok(Generation { tokens, finish: FinishReason::Length })
}
