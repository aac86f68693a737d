//! The shared-backbone MRM: the head reads the policy's own final hidden
//! state at each node, which the policy computes anyway (the search asks
//! for it with the logits), so a call adds no forward pass.

use std::sync::Arc;

use saffron_core::{ModelCost, ModelError, MultifurcationReward, SequenceOutputs, TokenId};
use saffron_engine::Model;

use super::artifact::{check_policy, MrmBackbone, MrmManifest};
use super::head::MrmHead;
use crate::RewardError;

pub struct SharedMrm {
    head: MrmHead,
    manifest: MrmManifest,
    cost: ModelCost,
}

impl SharedMrm {
    /// The head in `manifest` for `policy` (whose file has sha256
    /// `policy_sha256`); a head for another policy, vocabulary or hidden
    /// size is refused.
    pub fn new(
        head: MrmHead,
        manifest: MrmManifest,
        policy: &Model,
        policy_sha256: &str,
    ) -> Result<SharedMrm, RewardError> {
        let mismatch = |expected: String, actual: String| Err(RewardError::WrongBackbone { expected, actual });
        if manifest.backbone_kind != MrmBackbone::SharedPolicy {
            return mismatch("a separate-backbone MRM".into(), "a shared-backbone loader".into());
        }
        check_policy(&manifest, policy, policy_sha256)?;
        Ok(SharedMrm { head, manifest, cost: ModelCost::default() })
    }

    /// The same head with fresh cost counters: the MRM of a new search.
    pub fn fresh(&self) -> SharedMrm {
        SharedMrm { head: self.head.clone(), manifest: self.manifest.clone(), cost: ModelCost::default() }
    }

    pub fn manifest(&self) -> &MrmManifest {
        &self.manifest
    }

    /// FLOPs of one call of the head ([`MrmHead::flops_per_call`]).
    pub fn flops_per_call(&self) -> f64 {
        self.head.flops_per_call()
    }
}

impl MultifurcationReward for SharedMrm {
    fn needs_policy_hidden(&self) -> bool {
        true
    }

    fn rewards(&mut self, responses: &[&[TokenId]], policy: &[SequenceOutputs]) -> Result<Vec<Arc<[f32]>>, ModelError> {
        self.cost.calls += 1;
        self.cost.sequences += responses.len() as u64;
        self.cost.flops += self.flops_per_call() * responses.len() as f64;
        self.head.rewards_at(policy)
    }

    fn is_unseen(&self, token: TokenId) -> bool {
        self.head.is_unseen(token)
    }

    fn cost(&self) -> ModelCost {
        self.cost
    }
}
