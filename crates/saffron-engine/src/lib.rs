//! The inference core: GGUF models run by llama.cpp, and the prefix tree that
//! lets every branch of a search share one KV cache.
//!
//! - [`Model`]: immutable weights, tokenizer and chat template, shared by
//!   any number of trees;
//! - [`PrefixTree`]: a llama.cpp context whose KV cache holds a tree of token
//!   paths; implements [`saffron_core::Policy`];
//! - [`ModelShape`]: hyper-parameters and the forward-FLOPs formula;
//! - [`lora`]: LoRA adapters in llama.cpp's GGUF format, applied by
//!   [`Model::with_lora`].

mod backend;
pub mod bench;
mod chat;
mod error;
mod kv_context;
pub mod lora;
mod model;
mod prefix_tree;
mod shape;

pub use chat::{ChatMessage, ChatPrompt, ChatTemplate, Role, Turn, THINK_CLOSE, THINK_OPEN};
pub use error::EngineError;
pub use model::{Model, SpecialText, Weights};
pub use prefix_tree::{HiddenStates, PrefixTree, TreeOptions, TreeStats, PATHS_PER_CHUNK};
pub use shape::ModelShape;
