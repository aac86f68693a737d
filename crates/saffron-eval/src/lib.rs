//! The evaluation harness: prompt datasets with deterministic subsets,
//! attacks, judges, experiment grids run into resumable stores, metrics,
//! summaries and reports; and the labelling of the token-level safety
//! corpus.

pub mod attack;
pub mod datasets;
mod error;
pub mod experiment;
#[cfg(test)]
mod fake_harness;
pub mod fluency;
pub mod grid;
pub mod hh_rlhf;
pub mod judge;
pub mod judge_eval;
pub mod label;
pub mod manifest;
pub mod metrics;
pub mod monitor_metrics;
pub mod reasoning_study;
pub mod report;
pub mod shard;
pub mod sharegpt;
pub mod splits;
pub mod store;
pub mod summary;

pub use attack::Attack;
pub use datasets::{
    corpus_texts, load_prompts, parse_shard, prompt_texts, EvalPrompt, PromptData, PromptSet, Selection,
};
pub use error::EvalError;
