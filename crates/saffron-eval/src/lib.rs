//! The evaluation harness (issue: evaluation harness). So far: the prompt
//! datasets with deterministic subsets.

pub mod datasets;
mod error;

pub use datasets::{load_prompts, EvalPrompt, PromptData, PromptSet, Selection};
pub use error::EvalError;
