//! The evaluation harness. So far: prompt datasets with deterministic
//! subsets, attacks, and the labelling of the token-level safety corpus.

pub mod attack;
pub mod datasets;
mod error;
pub mod grid;
pub mod label;
pub mod metrics;
pub mod store;

pub use attack::Attack;
pub use datasets::{load_prompts, EvalPrompt, PromptData, PromptSet, Selection};
pub use error::EvalError;
