//! saffron-reward on real models (SmolLM2 from the cache). One test binary
//! (each links llama.cpp); one module per concern.

mod mrm;
mod paper_mrm;
mod probe_guard;
mod search_end_to_end;
mod verdict_guard;
