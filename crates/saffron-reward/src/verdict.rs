//! Verdict guards: a causal LM asked whether a response is safe; the reward
//! is `logit(safe) − logit(unsafe)` at the verdict position (method.md
//! section 1, the Llama Guard 3 convention). Larger is safer; `< 0` unsafe.
//!
//! Two formats:
//! - [`GuardFormat::ChatTemplate`]: the guard GGUF's own chat template over
//!   the conversation `[user: prompt, assistant: response]`, followed by its
//!   generation prompt. Llama Guard 3's template holds the taxonomy and the
//!   instructions, so with its GGUF this is the paper's PRM and judge
//!   ([`VerdictGuardConfig::llama_guard_3`]).
//! - [`GuardFormat::UserTurn`]: for models without a guard template, an
//!   instruction (a minijinja template over `prompt` and `response`) sent as
//!   the user turn of the model's chat template; the verdict is the first
//!   assistant token. Instructions go *before* the response and only a short
//!   line after it, so that scoring every prefix of a response re-computes
//!   only that short tail (the prefix tree shares the rest).

use saffron_core::{TokenId, WantedOutputs};
use saffron_engine::{Model, PrefixTree, SpecialText};
use serde::{Deserialize, Serialize};

use crate::guard_input::{Boundary, GuardFormat, GuardInput, LOCAL_GUARD_INSTRUCTION};
use crate::{Guard, RewardError};

/// A verdict guard's format and verdict words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerdictGuardConfig {
    pub format: GuardFormat,
    /// The first assistant token when the guard judges the response safe.
    pub safe_word: String,
    pub unsafe_word: String,
}

impl VerdictGuardConfig {
    /// Llama Guard 3 (1B or 8B GGUF): its own template, verdict words
    /// `safe` / `unsafe`.
    pub fn llama_guard_3() -> VerdictGuardConfig {
        VerdictGuardConfig { format: GuardFormat::ChatTemplate, safe_word: "safe".into(), unsafe_word: "unsafe".into() }
    }

    /// The same shape on a local chat model (for testing the mechanics and
    /// as a zero-training baseline guard).
    pub fn local() -> VerdictGuardConfig {
        VerdictGuardConfig {
            format: GuardFormat::UserTurn(LOCAL_GUARD_INSTRUCTION.into()),
            safe_word: "Yes".into(),
            unsafe_word: "No".into(),
        }
    }
}

/// A causal LM used as a guard. Bind it to a prompt to get a PRM.
pub struct VerdictGuard {
    input: GuardInput,
    safe: TokenId,
    unsafe_: TokenId,
}

impl VerdictGuard {
    pub fn new(model: Model, config: &VerdictGuardConfig) -> Result<VerdictGuard, RewardError> {
        let safe = single_token(&model, &config.safe_word)?;
        let unsafe_ = single_token(&model, &config.unsafe_word)?;
        Ok(VerdictGuard { input: GuardInput::new(model, &config.format, Boundary::Natural)?, safe, unsafe_ })
    }

    /// The guard's input text for one (prompt, response) pair.
    pub fn render(&self, prompt: &str, response: &str) -> Result<String, RewardError> {
        self.input.render(prompt, response)
    }
}

impl Guard for VerdictGuard {
    fn model(&self) -> &Model {
        self.input.model()
    }

    fn shared_prefix(&self) -> &[TokenId] {
        self.input.shared_prefix()
    }

    /// `logit(safe) − logit(unsafe)` for each (prompt, response).
    fn score_pairs(&self, tree: &mut PrefixTree, pairs: &[(&str, &str)]) -> Result<Vec<f32>, RewardError> {
        let inputs: Vec<Vec<TokenId>> = pairs.iter().map(|(p, r)| self.input.encode(p, r)).collect();
        let refs: Vec<&[TokenId]> = inputs.iter().map(Vec::as_slice).collect();
        let outputs = tree.outputs(&refs, WantedOutputs::Logits)?;
        Ok(outputs
            .iter()
            .map(|o| o.logits.as_deref().map_or(f32::NAN, |l| l[self.safe as usize] - l[self.unsafe_ as usize]))
            .collect())
    }
}

fn single_token(model: &Model, word: &str) -> Result<TokenId, RewardError> {
    let tokens = model.tokenize(word, SpecialText::Literal);
    match tokens[..] {
        [t] => Ok(t),
        _ => {
            Err(RewardError::VerdictNotOneToken { word: word.into(), model: model.name().into(), count: tokens.len() })
        }
    }
}
