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
        }
    }
}

impl std::ops::AddAssign for ModelCost {
    fn add_assign(&mut self, other: ModelCost) {
        self.tokens_computed += other.tokens_computed;
        self.tokens_served += other.tokens_served;
        self.flops += other.flops;
        self.calls += other.calls;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_subtracts_every_counter() {
        let a = ModelCost { tokens_computed: 3, tokens_served: 4, flops: 10.0, calls: 1 };
        let mut b = a;
        b += ModelCost { tokens_computed: 2, tokens_served: 1, flops: 5.0, calls: 2 };
        let d = b.since(&a);
        assert_eq!(d, ModelCost { tokens_computed: 2, tokens_served: 1, flops: 5.0, calls: 2 });
        assert_eq!(b.tokens_requested(), 10);
    }
}
