use serde::{Deserialize, Serialize};

use crate::Cost;

/// Caps on what one defended generation may spend (method.md section 1).
/// Any subset may be set; an unset cap is unlimited. A search stops expanding
/// when its next step would go over a cap, and still returns its best answer,
/// so a cap is overshot by at most one step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Budget {
    /// Forward FLOPs of policy, PRM and MRM together, in TFLOP.
    pub max_tflop: Option<f64>,
    /// Policy tokens computed (tokens served from the prefix tree are free).
    pub max_policy_tokens: Option<u64>,
    /// Reward evaluations: PRM sequences plus MRM nodes.
    pub max_reward_calls: Option<u64>,
    /// Wall-clock seconds. Not reproducible: a search stopped by it may differ
    /// from run to run.
    pub max_wall_seconds: Option<f64>,
}

/// Which cap a search ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    Tflop,
    PolicyTokens,
    RewardCalls,
    WallSeconds,
}

impl Budget {
    /// No cap at all.
    pub fn unlimited() -> Budget {
        Budget::default()
    }

    /// Rejects negative or non-finite caps, with the reason.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [("max_tflop", self.max_tflop), ("max_wall_seconds", self.max_wall_seconds)] {
            if let Some(v) = value {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(format!("budget {name} must be a finite number ≥ 0 (got {v})"));
                }
            }
        }
        Ok(())
    }

    /// The first cap that `cost` is over, if any.
    pub fn exceeded(&self, cost: &Cost) -> Option<Limit> {
        let over = |cap: Option<f64>, value: f64| cap.is_some_and(|c| value > c);
        if over(self.max_tflop, cost.tflop()) {
            Some(Limit::Tflop)
        } else if over(self.max_policy_tokens.map(|c| c as f64), cost.policy.tokens_computed as f64) {
            Some(Limit::PolicyTokens)
        } else if over(self.max_reward_calls.map(|c| c as f64), cost.reward_calls() as f64) {
            Some(Limit::RewardCalls)
        } else if over(self.max_wall_seconds, cost.wall_seconds) {
            Some(Limit::WallSeconds)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ModelCost;

    #[test]
    fn each_cap_is_checked_against_its_own_counter() {
        let cost = Cost {
            policy: ModelCost { tokens_computed: 10, flops: 2e12, ..ModelCost::default() },
            prm: ModelCost { sequences: 3, ..ModelCost::default() },
            wall_seconds: 5.0,
            ..Cost::default()
        };
        assert_eq!(Budget::unlimited().exceeded(&cost), None);
        let cap = |b: Budget| b.exceeded(&cost);
        assert_eq!(cap(Budget { max_tflop: Some(1.9), ..Budget::default() }), Some(Limit::Tflop));
        assert_eq!(cap(Budget { max_tflop: Some(2.0), ..Budget::default() }), None);
        assert_eq!(cap(Budget { max_policy_tokens: Some(9), ..Budget::default() }), Some(Limit::PolicyTokens));
        assert_eq!(cap(Budget { max_reward_calls: Some(2), ..Budget::default() }), Some(Limit::RewardCalls));
        assert_eq!(cap(Budget { max_wall_seconds: Some(4.0), ..Budget::default() }), Some(Limit::WallSeconds));
        assert!(Budget { max_tflop: Some(-1.0), ..Budget::default() }.validate().is_err());
    }
}
