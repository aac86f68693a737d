//! The search trace: a push-style observer that a strategy drives.
//!
//! Contract: the strategy calls the observer synchronously, in this order
//! for each step: [`expand`](SearchObserver::expand) for every node it
//! creates, [`score`](SearchObserver::score) for every reward it obtains,
//! [`finish`](SearchObserver::finish) for every node that ends, then
//! [`select`](SearchObserver::select) once with the nodes it keeps. Node 0
//! is the root (the prompt and prefill); ids are never reused within a
//! search. Before each step the strategy asks
//! [`should_stop`](SearchObserver::should_stop); answering `true` ends the
//! search as if the budget had run out (it still returns its best answer).
//! Callbacks cannot fail; an observer that must report an error stores it
//! and answers `true` to `should_stop`.

use std::collections::HashSet;

use saffron_core::{Cost, ModelRole, TokenId};
use serde::Serialize;

use crate::outcome::FinishReason;

/// A node of the search tree, unique within one search.
pub type NodeId = u64;

/// The root node: the context (prompt and prefill), no generated tokens.
pub const ROOT: NodeId = 0;

pub trait SearchObserver {
    /// `child` was created from `parent` by appending `tokens` (empty when
    /// the child is the parent ended by end-of-generation).
    fn expand(&mut self, _parent: NodeId, _child: NodeId, _tokens: &[TokenId]) {}
    /// A reward model scored `node`.
    fn score(&mut self, _node: NodeId, _by: ModelRole, _score: f32) {}
    /// `node` will not be extended any more.
    fn finish(&mut self, _node: NodeId, _reason: FinishReason) {}
    /// After step `step` (0-based), the search keeps these nodes; `spent`
    /// is everything the search has spent so far.
    fn select(&mut self, _step: usize, _kept: &[NodeId], _spent: &Cost) {}
    /// Asked before every step; `true` stops the search.
    fn should_stop(&mut self) -> bool {
        false
    }
}

/// An observer that ignores everything.
pub struct NoTrace;

impl SearchObserver for NoTrace {}

/// One recorded callback.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TraceEvent {
    Expand { parent: NodeId, node: NodeId, tokens: Vec<TokenId> },
    Score { node: NodeId, by: ModelRole, score: f32 },
    Finish { node: NodeId, reason: FinishReason },
    Select { step: usize, kept: Vec<NodeId>, spent: Cost },
}

/// An observer that records every event (for `--trace` and tests).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Trace {
    pub events: Vec<TraceEvent>,
}

impl SearchObserver for Trace {
    fn expand(&mut self, parent: NodeId, node: NodeId, tokens: &[TokenId]) {
        self.events.push(TraceEvent::Expand { parent, node, tokens: tokens.to_vec() });
    }
    fn score(&mut self, node: NodeId, by: ModelRole, score: f32) {
        self.events.push(TraceEvent::Score { node, by, score });
    }
    fn finish(&mut self, node: NodeId, reason: FinishReason) {
        self.events.push(TraceEvent::Finish { node, reason });
    }
    fn select(&mut self, step: usize, kept: &[NodeId], spent: &Cost) {
        self.events.push(TraceEvent::Select { step, kept: kept.to_vec(), spent: *spent });
    }
}

impl Trace {
    /// Nodes created (all `expand` events).
    pub fn expanded(&self) -> usize {
        self.events.iter().filter(|e| matches!(e, TraceEvent::Expand { .. })).count()
    }

    /// Scores given by `role`.
    pub fn scores(&self, role: ModelRole) -> usize {
        self.events.iter().filter(|e| matches!(e, TraceEvent::Score { by, .. } if *by == role)).count()
    }

    /// Nodes the search expanded (asked the policy about): the root, and
    /// every unfinished node kept by a step that another step followed.
    pub fn expanded_nodes(&self) -> HashSet<NodeId> {
        let finished: HashSet<NodeId> = self
            .events
            .iter()
            .filter_map(|e| if let TraceEvent::Finish { node, .. } = e { Some(*node) } else { None })
            .collect();
        let selects: Vec<&Vec<NodeId>> = self
            .events
            .iter()
            .filter_map(|e| if let TraceEvent::Select { kept, .. } = e { Some(kept) } else { None })
            .collect();
        let mut expanded = HashSet::from([ROOT]);
        for kept in &selects[..selects.len().saturating_sub(1)] {
            expanded.extend(kept.iter().filter(|n| !finished.contains(n)));
        }
        expanded
    }
}
