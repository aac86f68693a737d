//! A stand-in multifurcation reward model: the policy's own next-token
//! logits as rewards. It has no safety meaning. It exists so that the
//! Saffron search's mechanics and costs can be exercised end to end (tests,
//! `saffron bench --strategy`) before a trained MRM is available; it costs
//! nothing beyond the policy call the search makes anyway.

use std::sync::Arc;

use saffron_core::{ModelCost, ModelError, MultifurcationReward, SequenceOutputs, TokenId};

#[derive(Debug, Default)]
pub struct PolicyLogitsMrm {
    cost: ModelCost,
}

impl MultifurcationReward for PolicyLogitsMrm {
    fn rewards(&mut self, responses: &[&[TokenId]], policy: &[SequenceOutputs]) -> Result<Vec<Arc<[f32]>>, ModelError> {
        self.cost.calls += 1;
        self.cost.sequences += responses.len() as u64;
        // A missing logits vector becomes an empty one, which the search
        // rejects as the wrong length.
        Ok(policy.iter().map(|o| o.logits.clone().unwrap_or_else(|| Arc::from(Vec::new()))).collect())
    }

    fn is_unseen(&self, _token: TokenId) -> bool {
        false
    }

    fn cost(&self) -> ModelCost {
        self.cost
    }
}
