//! Multifurcation reward models (method.md section 2): a reward for every
//! next token in one call.
//!
//! - [`corpus`]: the token-level safety corpus the MRM learns from.

pub mod corpus;
pub mod head;
pub mod train;
