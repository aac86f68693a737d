//! Every strategy on scripted fake models with hand-computable answers.
//! One test binary; one module per concern.

mod beam_and_lookahead;
mod budget;
mod common;
mod determinism;
mod rebase;
mod saffron;
mod sample_and_best_of_n;
