//! Probe guards: a small trained head on a backbone's final hidden state at
//! the end of a guard-formatted input (method.md section 1: a guard scores a
//! prompt with a partial or whole response; larger is safer, `< 0` unsafe).
//!
//! - [`features`]: hidden states of labelled pairs at several response cuts;
//! - [`head`]: logistic regression, the reward being the negated log-odds of
//!   "unsafe";
//! - [`penalty`]: choosing the L2 penalty on the dev split;
//! - [`judge`]: a judge's probe: whole responses, features and threshold
//!   chosen on the dev split;
//! - [`streaming`]: the guard's rewards of every prefix from one forward pass;
//! - [`row_cache`]: a judge's feature rows on disk, reused for new candidates;
//! - [`artifact`]: safetensors + JSON manifest.

pub mod artifact;
pub mod default;
pub mod features;
pub mod head;
pub mod judge;
pub mod penalty;
pub mod row_cache;
pub mod streaming;
pub mod train;

use std::path::Path;

use saffron_core::{TokenId, WantedOutputs};
use saffron_engine::{HiddenStates, Model, PrefixTree, TreeOptions};

use crate::{Guard, GuardInput, RefusalJudge, RewardError};
use artifact::ProbeManifest;
use features::{pair_features, ProbeFeatures};
use head::LinearHead;
use judge::RefusalRule;

/// A trained probe guard on its backbone.
pub struct ProbeGuard {
    input: GuardInput,
    head: LinearHead,
    manifest: ProbeManifest,
}

impl ProbeGuard {
    /// Loads the artifact in `dir` onto `backbone`, whose file has sha256
    /// `backbone_sha256`; a head trained on another backbone is refused.
    pub fn load(dir: &Path, backbone: Model, backbone_sha256: &str) -> Result<ProbeGuard, RewardError> {
        let (head, manifest) = artifact::load(dir)?;
        ProbeGuard::new(head, manifest, backbone, backbone_sha256)
    }

    pub fn new(
        head: LinearHead,
        manifest: ProbeManifest,
        backbone: Model,
        backbone_sha256: &str,
    ) -> Result<ProbeGuard, RewardError> {
        let expected = &manifest.backbone;
        if expected.sha256 != backbone_sha256 {
            return Err(RewardError::WrongBackbone {
                expected: format!("{} (sha256 {})", expected.name, expected.sha256),
                actual: format!("{} (sha256 {backbone_sha256})", backbone.path().display()),
            });
        }
        let d = backbone.shape().d_model as usize;
        if head.dim() != manifest.features.dim(d) {
            return Err(RewardError::WrongBackbone {
                expected: format!(
                    "{} features of hidden size {}",
                    manifest.features.name(),
                    manifest.backbone.hidden_size
                ),
                actual: format!("hidden size {d}"),
            });
        }
        Ok(ProbeGuard { input: GuardInput::new(backbone, &manifest.format, manifest.boundary)?, head, manifest })
    }

    pub fn manifest(&self) -> &ProbeManifest {
        &self.manifest
    }

    /// How the guard turns (prompt, response) into its backbone's tokens.
    pub fn input(&self) -> &GuardInput {
        &self.input
    }

    /// The head's log-odds of "unsafe" for each pair.
    fn logits(&self, tree: &mut PrefixTree, pairs: &[(&str, &str)]) -> Result<Vec<f32>, RewardError> {
        if self.manifest.features != ProbeFeatures::Last {
            let rows = pair_features(&self.input, &self.manifest.inputs, self.manifest.features, tree, pairs)?;
            return Ok(rows.iter().map(|row| self.head.unsafe_logit(row)).collect());
        }
        Ok(self.last_states(tree, pairs)?.iter().map(|h| self.head.unsafe_logit(h)).collect())
    }

    /// The final hidden state at the end of each pair's input.
    fn last_states(&self, tree: &mut PrefixTree, pairs: &[(&str, &str)]) -> Result<Vec<Vec<f32>>, RewardError> {
        let paths: Vec<Vec<TokenId>> = pairs
            .iter()
            .map(|(p, r)| self.manifest.inputs.encode(&self.input, p, &self.input.response_tokens(r)))
            .collect();
        let refs: Vec<&[TokenId]> = paths.iter().map(Vec::as_slice).collect();
        let outputs = tree.outputs(&refs, WantedOutputs::Hidden)?;
        outputs.into_iter().map(|o| o.hidden.map(|h| h.to_vec()).ok_or(RewardError::MissingHidden)).collect()
    }

    /// The reward of a response whose unsafe log-odds are `logit`.
    fn reward(&self, logit: f32, response: &str) -> f32 {
        let refuses = self.manifest.refusal == RefusalRule::Veto && RefusalJudge::default().is_refusal(response);
        self.manifest.threshold - self.manifest.refusal.apply(logit, refuses)
    }

    /// The guard's reward of each pair and the hidden state it was read
    /// from: the same rewards as [`Guard::score_pairs`]. Refused for a probe
    /// that reads more than its last state.
    pub fn scored_states(
        &self,
        tree: &mut PrefixTree,
        pairs: &[(&str, &str)],
    ) -> Result<Vec<(f32, Vec<f32>)>, RewardError> {
        if self.manifest.features != ProbeFeatures::Last {
            return Err(RewardError::NotAStateProbe {
                guard: format!("a probe on {} features", self.manifest.features.name()),
            });
        }
        let states = self.last_states(tree, pairs)?;
        Ok(states.into_iter().zip(pairs).map(|(h, (_, r))| (self.reward(self.head.unsafe_logit(&h), r), h)).collect())
    }

    /// The guard's reward as a linear function of its state:
    /// `threshold − z(h)` with `z` the head, exact for a probe reading its
    /// last state without a refusal veto (refused otherwise).
    pub fn state_value(&self) -> Result<(&LinearHead, f32), RewardError> {
        if self.manifest.features != ProbeFeatures::Last || self.manifest.refusal != RefusalRule::Ignore {
            return Err(RewardError::NotAStateProbe { guard: "this probe guard".into() });
        }
        Ok((&self.head, self.manifest.threshold))
    }
}

impl Guard for ProbeGuard {
    fn model(&self) -> &Model {
        self.input.model()
    }

    fn shared_prefix(&self) -> &[TokenId] {
        self.input.shared_prefix()
    }

    /// Hidden states are needed.
    fn tree_options(&self, options: TreeOptions) -> TreeOptions {
        TreeOptions { hidden: HiddenStates::Keep, ..options }
    }

    /// The head's reward at the end of each pair's guard input (after the
    /// artifact's refusal rule); a response is read up to the artifact's
    /// largest prefix length.
    fn score_pairs(&self, tree: &mut PrefixTree, pairs: &[(&str, &str)]) -> Result<Vec<f32>, RewardError> {
        let logits = self.logits(tree, pairs)?;
        Ok(logits.into_iter().zip(pairs).map(|(z, (_, response))| self.reward(z, response)).collect())
    }

    fn as_probe(&self) -> Option<&ProbeGuard> {
        Some(self)
    }
}
