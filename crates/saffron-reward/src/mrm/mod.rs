//! Multifurcation reward models (method.md section 2): a reward for every
//! next token in one call.
//!
//! - [`corpus`]: the token-level safety corpus the MRM learns from;
//! - [`head`]: the head (value + per-token bias + low-rank context term);
//! - [`train`]: partial supervision and fidelity;
//! - [`features`]: the policy's hidden states for the corpus;
//! - [`fit`]: a corpus into a head and its manifest (held-out fidelity);
//! - [`artifact`]: safetensors + JSON manifest;
//! - [`shared`]: the shared-backbone MRM a search uses;
//! - [`separate`]: the same head on another model's hidden state, or on
//!   a probe guard's own state with the guard's reward as its value term;
//! - [`states`]: a guard's states at every corpus node, kept while labelling;
//! - [`paper`]: the paper's form (guard + LoRA + output bias), loading the
//!   released Saffron-1 artifacts.

pub mod artifact;
mod backbone_tree;
pub mod corpus;
pub mod default;
pub mod features;
pub mod fit;
pub mod head;
pub mod paper;
pub mod separate;
pub mod shared;
pub mod states;
pub mod train;

pub use separate::{SeparateBackbone, SeparateMrm};
pub use shared::SharedMrm;
