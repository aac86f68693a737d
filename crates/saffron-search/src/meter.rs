//! Budget enforcement: a strategy asks before each step whether the step
//! fits. The next step is assumed to cost as much as the largest step so far
//! (per counter), so a cap is overshot by at most one step, and only when a
//! step costs more than every earlier one.

use std::time::Instant;

use saffron_core::{Budget, Cost, ModelCost};

use crate::outcome::StopCause;
use crate::trace::SearchObserver;
use crate::Models;

pub(crate) struct Meter {
    budget: Budget,
    start: Cost,
    clock: Instant,
    step_start: Cost,
    largest_step: Cost,
    pub stopped: Option<StopCause>,
}

impl Meter {
    pub fn new(budget: Budget, models: &Models) -> Meter {
        let start = models.cost();
        Meter {
            budget,
            start,
            clock: Instant::now(),
            step_start: Cost::default(),
            largest_step: Cost::default(),
            stopped: None,
        }
    }

    /// What the search has spent so far, wall time included.
    pub fn spent(&self, models: &Models) -> Cost {
        let mut cost = models.cost().since(&self.start);
        cost.wall_seconds = self.clock.elapsed().as_secs_f64();
        cost
    }

    /// Whether another step may run; records why not.
    pub fn begin_step(&mut self, models: &Models, observer: &mut dyn SearchObserver) -> bool {
        if self.stopped.is_some() {
            return false;
        }
        if observer.should_stop() {
            self.stopped = Some(StopCause::Observer);
            return false;
        }
        let spent = self.spent(models);
        if let Some(limit) = self.budget.exceeded(&(spent + self.largest_step)) {
            self.stopped = Some(StopCause::Budget(limit));
            return false;
        }
        self.step_start = spent;
        true
    }

    /// Ends a step; returns what the search has spent so far.
    pub fn end_step(&mut self, models: &Models) -> Cost {
        let spent = self.spent(models);
        self.largest_step = larger(&self.largest_step, &spent.since(&self.step_start));
        spent
    }
}

fn larger(a: &Cost, b: &Cost) -> Cost {
    let m = |a: &ModelCost, b: &ModelCost| ModelCost {
        tokens_computed: a.tokens_computed.max(b.tokens_computed),
        tokens_served: a.tokens_served.max(b.tokens_served),
        flops: a.flops.max(b.flops),
        calls: a.calls.max(b.calls),
        sequences: a.sequences.max(b.sequences),
    };
    Cost {
        policy: m(&a.policy, &b.policy),
        prm: m(&a.prm, &b.prm),
        mrm: m(&a.mrm, &b.mrm),
        wall_seconds: a.wall_seconds.max(b.wall_seconds),
    }
}
