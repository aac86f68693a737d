use serde::{Deserialize, Serialize};

/// Which model a cost was paid for (method.md section 1: compute is counted
/// over policy, PRM and MRM; the final judge call is not charged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelRole {
    Policy,
    Prm,
    Mrm,
}

/// Work done by one model, counted at the token level.
///
/// `tokens_requested = tokens_computed + tokens_served` always holds: every
/// token of every sequence a caller asked about was either run through the
/// model (computed) or found already in the prefix tree (served, free).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelCost {
    /// Tokens run through the model's forward pass.
    pub tokens_computed: u64,
    /// Tokens of requested sequences that were already cached: zero FLOPs.
    pub tokens_served: u64,
    /// Forward FLOPs of the computed tokens (see the engine's formula).
    pub flops: f64,
    /// Batched calls made to the model (one per request of any size).
    pub calls: u64,
    /// Sequences asked about, over all calls. For a reward model this is the
    /// number of reward evaluations ("reward calls" in the paper's sense).
    #[serde(default)]
    pub sequences: u64,
}

impl ModelCost {
    /// All tokens callers asked about, computed or served.
    pub fn tokens_requested(&self) -> u64 {
        self.tokens_computed + self.tokens_served
    }

    /// FLOPs in units of 10^12, the unit the paper reports compute in.
    pub fn tflop(&self) -> f64 {
        self.flops / 1e12
    }

    /// The work done between an earlier snapshot and this one.
    pub fn since(&self, earlier: &ModelCost) -> ModelCost {
        ModelCost {
            tokens_computed: self.tokens_computed - earlier.tokens_computed,
            tokens_served: self.tokens_served - earlier.tokens_served,
            flops: self.flops - earlier.flops,
            calls: self.calls - earlier.calls,
            sequences: self.sequences - earlier.sequences,
        }
    }
}

impl std::ops::AddAssign for ModelCost {
    fn add_assign(&mut self, other: ModelCost) {
        self.tokens_computed += other.tokens_computed;
        self.tokens_served += other.tokens_served;
        self.flops += other.flops;
        self.calls += other.calls;
        self.sequences += other.sequences;
    }
}

/// Everything one defended generation spent: per model, plus wall time
/// (method.md section 1). The final judge call is never charged here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub policy: ModelCost,
    pub prm: ModelCost,
    pub mrm: ModelCost,
    pub wall_seconds: f64,
}

impl Cost {
    pub fn of(&self, role: ModelRole) -> &ModelCost {
        match role {
            ModelRole::Policy => &self.policy,
            ModelRole::Prm => &self.prm,
            ModelRole::Mrm => &self.mrm,
        }
    }

    /// Forward FLOPs of all models together.
    pub fn flops(&self) -> f64 {
        self.policy.flops + self.prm.flops + self.mrm.flops
    }

    /// [`Cost::flops`] in units of 10^12, the paper's unit.
    pub fn tflop(&self) -> f64 {
        self.flops() / 1e12
    }

    /// Reward evaluations: sequences scored by the PRM plus nodes scored by
    /// the MRM (one MRM call scores every child of a node).
    pub fn reward_calls(&self) -> u64 {
        self.prm.sequences + self.mrm.sequences
    }

    /// The work done between an earlier snapshot and this one.
    pub fn since(&self, earlier: &Cost) -> Cost {
        Cost {
            policy: self.policy.since(&earlier.policy),
            prm: self.prm.since(&earlier.prm),
            mrm: self.mrm.since(&earlier.mrm),
            wall_seconds: self.wall_seconds - earlier.wall_seconds,
        }
    }

    /// The same cost without wall time: what two runs of the same search
    /// must agree on exactly.
    pub fn without_wall_time(&self) -> Cost {
        Cost { wall_seconds: 0.0, ..*self }
    }
}

impl std::ops::Add for Cost {
    type Output = Cost;
    fn add(mut self, other: Cost) -> Cost {
        self.policy += other.policy;
        self.prm += other.prm;
        self.mrm += other.mrm;
        self.wall_seconds += other.wall_seconds;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_subtracts_every_counter() {
        let a = ModelCost { tokens_computed: 3, tokens_served: 4, flops: 10.0, calls: 1, sequences: 2 };
        let mut b = a;
        b += ModelCost { tokens_computed: 2, tokens_served: 1, flops: 5.0, calls: 2, sequences: 7 };
        let d = b.since(&a);
        assert_eq!(d, ModelCost { tokens_computed: 2, tokens_served: 1, flops: 5.0, calls: 2, sequences: 7 });
        assert_eq!(b.tokens_requested(), 10);
    }

    #[test]
    fn cost_totals_add_the_models() {
        let m = |flops, sequences| ModelCost { flops, sequences, ..ModelCost::default() };
        let c = Cost { policy: m(1e12, 3), prm: m(2e12, 4), mrm: m(0.5e12, 5), wall_seconds: 1.0 };
        assert_eq!(c.tflop(), 3.5);
        assert_eq!(c.reward_calls(), 9);
        let doubled = c + c;
        assert_eq!(doubled.since(&c), c);
        assert_eq!(doubled.without_wall_time().wall_seconds, 0.0);
    }
}
