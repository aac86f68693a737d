//! The engine on real models (SmolLM2 and Qwen2.5 from the cache). One
//! test binary (each links llama.cpp); one module per concern.

mod chat_and_shape;
mod gguf_fuzz;
mod prefix_tree;
