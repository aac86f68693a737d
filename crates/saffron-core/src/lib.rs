//! The vocabulary and interfaces every saffron crate meets at.
//!
//! This crate is deliberately small and has no heavy dependencies: search
//! strategies, reward models and the evaluation harness are written against
//! the traits here, so they can be unit-tested with scripted fake models and
//! never need to know that llama.cpp exists.

mod cost;
mod error;
mod policy;
mod token;

pub use cost::{ModelCost, ModelRole};
pub use error::ModelError;
pub use policy::{Policy, SequenceOutputs, WantedOutputs};
pub use token::TokenId;
