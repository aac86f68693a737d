//! Attacks: how a prompt is put to the policy (method.md section 1).

use saffron_defence::PolicyBackend;
use saffron_engine::ChatPrompt;
use serde::{Deserialize, Serialize};

use crate::{EvalError, EvalPrompt};

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
    /// The text is given inline (`template`) or read from `file` (relative
    /// to the grid file) when the grid is loaded; the run's configuration
    /// records the text either way.
    Template {
        /// Names the attack in cell keys and reports.
        #[serde(default = "template_name")]
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        template: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file: Option<std::path::PathBuf>,
    },
}

fn prefill_tokens() -> usize {
    PREFILL_TOKENS
}

fn template_name() -> String {
    "template".into()
}

/// The placeholder a template must hold.
pub const PROMPT_PLACEHOLDER: &str = "{prompt}";

impl Attack {
    pub fn name(&self) -> String {
        match self {
            Attack::None => "none".into(),
            Attack::Prefill { tokens } => format!("prefill-{tokens}"),
            Attack::Template { name, .. } => name.clone(),
        }
    }

    /// Reads a template's `file` (relative to `base`) into its text, and
    /// checks the attack: a template needs exactly one of `template` and
    /// `file`, and must hold `{prompt}`; a prefill needs at least one token.
    pub fn resolve(&mut self, base: &std::path::Path) -> Result<(), EvalError> {
        match self {
            Attack::None => Ok(()),
            Attack::Prefill { tokens } => {
                if *tokens == 0 {
                    return Err(EvalError::Grid("a prefill attack needs tokens >= 1".into()));
                }
                Ok(())
            }
            Attack::Template { name, template, file } => {
                match (template.as_ref(), file.as_ref()) {
                    (Some(_), Some(_)) => {
                        return Err(EvalError::Grid(format!(
                            "template attack `{name}`: give `template` or `file`, not both"
                        )))
                    }
                    (None, None) => {
                        return Err(EvalError::Grid(format!("template attack `{name}` needs `template` or `file`")))
                    }
                    (None, Some(path)) => {
                        let path = base.join(path);
                        let text =
                            std::fs::read_to_string(&path).map_err(EvalError::io("read the template file", &path))?;
                        *template = Some(text);
                    }
                    (Some(_), None) => {}
                }
                if !template.as_deref().unwrap_or_default().contains(PROMPT_PLACEHOLDER) {
                    return Err(EvalError::Grid(format!(
                        "template attack `{name}` has no {PROMPT_PLACEHOLDER} placeholder"
                    )));
                }
                Ok(())
            }
        }
    }

    /// The chat prompt under this attack, or `None` when it does not apply
    /// (a prefill needs a reference answer).
    pub fn apply(&self, prompt: &EvalPrompt, policy: &dyn PolicyBackend) -> Option<ChatPrompt> {
        match self {
            Attack::None => Some(ChatPrompt::user(&prompt.prompt)),
            Attack::Prefill { tokens } => {
                let reference = prompt.reference.as_deref()?;
                let ids = policy.tokenize(reference);
                let prefill = policy.detokenize(&ids[..ids.len().min(*tokens)]);
                Some(ChatPrompt { prefill: Some(prefill), ..ChatPrompt::user(&prompt.prompt) })
            }
            // Unresolved (no text yet): not applicable; `Grid` resolves every attack.
            Attack::Template { template, .. } => {
                Some(ChatPrompt::user(template.as_deref()?.replace(PROMPT_PLACEHOLDER, &prompt.prompt)))
            }
        }
    }
}
