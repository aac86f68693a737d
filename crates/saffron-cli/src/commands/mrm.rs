//! `--mrm NAME|DIR`: a trained multifurcation reward model for the policy:
//! `default` (built in, for the default policy) or a `saffron train-mrm`
//! directory, shared-backbone or separate-backbone.

use std::path::Path;

use anyhow::Context;
use saffron_core::MultifurcationReward;
use saffron_engine::{Model, TreeOptions};
use saffron_reward::mrm::artifact::{self, MrmBackbone, MrmManifest};
use saffron_reward::mrm::default::default_mrm;
use saffron_reward::mrm::head::MrmHead;
use saffron_reward::mrm::{SeparateBackbone, SharedMrm};
use saffron_reward::RewardError;

use crate::cli::ModelArgs;

/// The head and manifest `spec` names.
pub fn mrm_parts(spec: &str) -> anyhow::Result<(MrmHead, MrmManifest)> {
    if spec == "default" {
        return Ok(default_mrm()?);
    }
    artifact::load(Path::new(spec)).with_context(|| format!("loading the MRM in {spec}"))
}

/// A loaded MRM, checked against its policy; [`Mrm::bind`] makes the MRM
/// of one search.
pub struct Mrm {
    manifest: MrmManifest,
    kind: MrmKind,
}

enum MrmKind {
    /// Reads the policy's own hidden states.
    Shared { head: Box<MrmHead>, policy_sha256: String },
    /// Runs its own backbone over (prompt, response so far).
    Separate(Box<SeparateBackbone>),
}

impl Mrm {
    /// Loads the MRM `spec` for `policy` (named `policy_spec` on the command
    /// line); a separate-backbone MRM also loads the backbone its manifest
    /// names.
    pub fn load(
        home: &Path,
        spec: &str,
        (policy_spec, policy): (&str, &Model),
        threads: Option<u32>,
    ) -> anyhow::Result<Mrm> {
        let (head, manifest) = mrm_parts(spec)?;
        let policy_sha256 = super::guard::model_sha256(home, policy_spec)?;
        match manifest.backbone_kind {
            MrmBackbone::SharedPolicy => {
                SharedMrm::new(head.clone(), manifest.clone(), policy, &policy_sha256)?;
                Ok(Mrm { manifest, kind: MrmKind::Shared { head: Box::new(head), policy_sha256 } })
            }
            MrmBackbone::Separate => {
                let name = &manifest.backbone.name;
                let (model, _) = super::load_model(home, &ModelArgs { model: name.clone(), threads })
                    .with_context(|| format!("loading the MRM's backbone `{name}`"))?;
                let sha = super::guard::model_sha256(home, name)?;
                let backbone = SeparateBackbone::new((head, &manifest), (model, &sha), (policy, &policy_sha256))?;
                Ok(Mrm { manifest, kind: MrmKind::Separate(Box::new(backbone)) })
            }
        }
    }

    pub fn manifest(&self) -> &MrmManifest {
        &self.manifest
    }

    /// The MRM of one search on `prompt` (fresh cost counters).
    pub fn bind<'a>(
        &'a self,
        policy: &'a Model,
        prompt: &str,
        options: TreeOptions,
    ) -> Result<Box<dyn MultifurcationReward + 'a>, RewardError> {
        Ok(match &self.kind {
            MrmKind::Shared { head, policy_sha256 } => {
                Box::new(SharedMrm::new((**head).clone(), self.manifest.clone(), policy, policy_sha256)?)
            }
            MrmKind::Separate(backbone) => Box::new(backbone.bind(prompt, options, |t| policy.detokenize(t))?),
        })
    }
}
