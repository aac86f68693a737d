//! Attacks: how a prompt is put to the policy (method.md section 1).

use saffron_engine::{ChatPrompt, Model, SpecialText};
use serde::{Deserialize, Serialize};

use crate::EvalPrompt;

/// The paper's prefill length in policy tokens.
pub const PREFILL_TOKENS: usize = 10;

/// How the prompt reaches the policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Attack {
    /// The prompt as the user turn.
    None,
    /// The first `tokens` policy tokens of the prompt's harmful reference
    /// answer forced after the assistant header: context, not output.
    Prefill {
        #[serde(default = "prefill_tokens")]
        tokens: usize,
    },
    /// A jailbreak template: `{prompt}` in it is replaced by the prompt.
    Template { template: String },
}

fn prefill_tokens() -> usize {
    PREFILL_TOKENS
}

impl Attack {
    pub fn name(&self) -> String {
        match self {
            Attack::None => "none".into(),
            Attack::Prefill { tokens } => format!("prefill-{tokens}"),
            Attack::Template { .. } => "template".into(),
        }
    }

    /// The chat prompt under this attack, or `None` when it does not apply
    /// (a prefill needs a reference answer).
    pub fn apply(&self, prompt: &EvalPrompt, policy: &Model) -> Option<ChatPrompt> {
        match self {
            Attack::None => Some(ChatPrompt::user(&prompt.prompt)),
            Attack::Prefill { tokens } => {
                let reference = prompt.reference.as_deref()?;
                let ids = policy.tokenize(reference, SpecialText::Literal);
                let prefill = policy.detokenize(&ids[..ids.len().min(*tokens)]);
                Some(ChatPrompt { prefill: Some(prefill), ..ChatPrompt::user(&prompt.prompt) })
            }
            Attack::Template { template } => Some(ChatPrompt::user(template.replace("{prompt}", &prompt.prompt))),
        }
    }
}
