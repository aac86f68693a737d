//! The vocabulary and interfaces every saffron crate meets at.
//!
//! This crate is deliberately small and has no heavy dependencies: search
//! strategies, reward models and the evaluation harness are written against
//! the traits here, so they can be unit-tested with scripted fake models and
//! never need to know that llama.cpp exists.
//!
//! - [`Policy`], [`ProcessReward`], [`MultifurcationReward`]: the models a
//!   search drives;
//! - [`Cost`], [`ModelCost`], [`Budget`]: what a search spent and may spend;
//! - [`sampling`]: greedy / temperature / top-k / top-p choice, seeded per node.

mod budget;
mod cost;
mod error;
mod policy;
mod reward;
pub mod sampling;
pub mod split;
mod token;

pub use budget::{Budget, Limit};
pub use cost::{Cost, ModelCost, ModelRole};
pub use error::ModelError;
pub use policy::{Policy, SequenceOutputs, WantedOutputs};
pub use reward::{MultifurcationReward, ProcessReward};
pub use split::{PromptKey, Split, TrainedPrompts};
pub use token::TokenId;
