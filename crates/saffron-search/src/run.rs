//! One search in progress: the models, the node bookkeeping, the observer
//! and the budget meter, shared by every strategy; and the outcome it ends in.

use saffron_core::sampling::Decoding;

use crate::meter::Meter;
use crate::outcome::{FinishReason, RunnerUp, SearchOutcome};
use crate::search_tree::{best_index, by_score, Branch, SearchTree};
use crate::trace::{NodeId, SearchObserver};
use crate::Models;

pub(crate) struct Run<'r, 'm, 'c> {
    pub models: &'r mut Models<'m>,
    pub tree: SearchTree<'c>,
    pub observer: &'r mut dyn SearchObserver,
    pub decoding: Decoding,
    meter: Meter,
    steps: usize,
    /// The other answers a strategy ranked below its best (Best-of-N's
    /// other samples), best first.
    pub runners_up: Vec<Branch>,
}

impl<'r, 'm, 'c> Run<'r, 'm, 'c> {
    pub fn new(
        models: &'r mut Models<'m>,
        tree: SearchTree<'c>,
        observer: &'r mut dyn SearchObserver,
        decoding: Decoding,
        meter: Meter,
    ) -> Self {
        Run { models, tree, observer, decoding, meter, steps: 0, runners_up: Vec::new() }
    }

    /// Whether another step fits the budget (and the observer wants one).
    pub fn begin_step(&mut self) -> bool {
        self.meter.begin_step(self.models, self.observer)
    }

    /// Ends a step that kept `kept`.
    pub fn end_step(&mut self, kept: &[Branch]) {
        let ids: Vec<NodeId> = kept.iter().map(|b| b.id).collect();
        let spent = self.meter.end_step(self.models);
        self.observer.select(self.steps, &ids, &spent);
        self.steps += 1;
    }

    /// Takes the answer out of a search's final nodes: the best finished
    /// node, else the best node. The rest become the runners-up (choices of
    /// `n > 1`), finished ones first, each side best first, each answer
    /// once (Rebase siblings may share a path). `None` when there are no
    /// nodes.
    pub fn take_answer(&mut self, mut nodes: Vec<Branch>) -> Option<Branch> {
        let best = best_index(&nodes, |b| !b.is_active()).or_else(|| best_index(&nodes, |_| true))?;
        let answer = nodes.remove(best);
        nodes.sort_by(|a, b| a.is_active().cmp(&b.is_active()).then_with(|| by_score(a, b)));
        let mut seen = vec![answer.tokens.clone()];
        nodes.retain(|b| {
            let new = !seen.contains(&b.tokens);
            if new {
                seen.push(b.tokens.clone());
            }
            new
        });
        self.runners_up = nodes;
        Some(answer)
    }

    /// The outcome with `best` as the answer. A node that was still growing
    /// when the search stopped is reported as [`FinishReason::Stopped`].
    pub fn outcome(self, best: Branch) -> SearchOutcome {
        let finish = best.finish.unwrap_or(FinishReason::Stopped);
        if best.finish.is_none() {
            self.observer.finish(best.id, finish);
        }
        let runners_up = self
            .runners_up
            .into_iter()
            .map(|b| RunnerUp { tokens: b.tokens, finish: b.finish.unwrap_or(FinishReason::Stopped), score: b.score })
            .collect();
        SearchOutcome {
            tokens: best.tokens,
            finish,
            score: best.score,
            cost: self.meter.spent(self.models),
            steps: self.steps,
            stopped_by: self.meter.stopped,
            runners_up,
        }
    }
}
