//! Safety search strategies under a compute budget (method.md sections 3–5):
//! `sample`, `best-of-n`, `beam`, `rebase`, `lookahead` and `saffron`.
//!
//! Strategies are written only against the `saffron-core` traits (policy,
//! PRM, MRM), so each is unit-tested with the scripted models of [`fake`].
//! Entry point: [`search`] with a [`SearchConfig`], the [`Models`] bound to
//! one prompt, the prompt's context tokens, and a [`SearchObserver`].
//!
//! Determinism: every sampled token is keyed by (seed, stream, token path),
//! so the same configuration gives the same answer and the same cost
//! whatever the batching.

mod config;
mod error;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
mod meter;
mod models;
mod outcome;
pub mod reasoning;
mod run;
mod search_tree;
mod strategy;
mod trace;

pub use config::{
    BeamConfig, BestOfNConfig, FinalPick, LengthLimits, LookaheadConfig, RebaseConfig, SaffronConfig, SaffronVariant,
    SampleConfig, SearchConfig, Strategy, StrategyKind, MAX_BRANCHING, MAX_NEW_TOKENS, MAX_WIDTH,
};
pub use error::SearchError;
pub use models::Models;
pub use outcome::{FinishReason, RunnerUp, SearchOutcome, StopCause};
pub use reasoning::{
    think, MonitorAction, MonitorConfig, MonitorReading, ReasoningConfig, Thinking, ThinkingEnd, ThinkingFormat,
    ThinkingMarkers, Thought,
};
pub use strategy::rebase::rebase_widths;
pub use trace::{NoTrace, NodeId, SearchObserver, Trace, TraceEvent, ROOT};

use saffron_core::TokenId;

use crate::meter::Meter;
use crate::run::Run;
use crate::search_tree::SearchTree;

/// Runs one defended generation: `context` is the policy's tokens of the
/// rendered prompt and prefill; the answer holds generated tokens only.
pub fn search(
    config: &SearchConfig,
    models: &mut Models,
    context: &[TokenId],
    observer: &mut dyn SearchObserver,
) -> Result<SearchOutcome, SearchError> {
    config.validate().map_err(SearchError::InvalidConfig)?;
    if context.is_empty() {
        return Err(SearchError::InvalidConfig(
            "the context is empty: a search needs at least one prompt token".into(),
        ));
    }
    let tree = SearchTree::new(context, config.length, config.seed, &*models.policy);
    let meter = Meter::new(config.budget, models);
    let mut run = Run::new(models, tree, observer, config.decoding, meter);
    let best = match &config.strategy {
        Strategy::Sample(_) => strategy::sample::search(&mut run)?,
        Strategy::BestOfN(c) => strategy::best_of_n::search(&mut run, c)?,
        Strategy::Beam(c) => strategy::beam::search(&mut run, c)?,
        Strategy::Rebase(c) => strategy::rebase::search(&mut run, c)?,
        Strategy::Lookahead(c) => strategy::lookahead::search(&mut run, c)?,
        Strategy::Saffron(c) => strategy::saffron::search(&mut run, c)?,
    };
    Ok(run.outcome(best))
}
