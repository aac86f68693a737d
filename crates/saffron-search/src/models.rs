use saffron_core::{Cost, ModelRole, MultifurcationReward, Policy, ProcessReward};

use crate::{SearchError, StrategyKind};

/// The models one search drives, all bound to the same prompt. A strategy
/// that needs a reward model it was not given fails with a clear error.
pub struct Models<'a> {
    pub policy: &'a mut dyn Policy,
    pub prm: Option<&'a mut dyn ProcessReward>,
    pub mrm: Option<&'a mut dyn MultifurcationReward>,
}

impl<'a> Models<'a> {
    /// A policy alone (enough for `sample`).
    pub fn policy(policy: &'a mut dyn Policy) -> Models<'a> {
        Models { policy, prm: None, mrm: None }
    }

    /// Every model's counters now (wall time 0).
    pub fn cost(&self) -> Cost {
        Cost {
            policy: self.policy.cost(),
            prm: self.prm.as_ref().map(|m| m.cost()).unwrap_or_default(),
            mrm: self.mrm.as_ref().map(|m| m.cost()).unwrap_or_default(),
            wall_seconds: 0.0,
        }
    }

    pub(crate) fn require(&self, strategy: StrategyKind, role: ModelRole) -> Result<(), SearchError> {
        let present = match role {
            ModelRole::Policy => true,
            ModelRole::Prm => self.prm.is_some(),
            ModelRole::Mrm => self.mrm.is_some(),
        };
        if present {
            Ok(())
        } else {
            Err(SearchError::MissingModel { strategy, role })
        }
    }
}
