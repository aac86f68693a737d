//! `--mrm NAME|DIR`: a trained multifurcation reward model for the policy:
//! `default` (built in, for the default policy) or a `saffron train-mrm`
//! directory.

use std::path::Path;

use anyhow::Context;
use saffron_engine::Model;
use saffron_reward::mrm::artifact::{self, MrmManifest};
use saffron_reward::mrm::default::default_mrm;
use saffron_reward::mrm::head::MrmHead;
use saffron_reward::mrm::SharedMrm;

/// The head and manifest `spec` names.
pub fn mrm_parts(spec: &str) -> anyhow::Result<(MrmHead, MrmManifest)> {
    if spec == "default" {
        return Ok(default_mrm()?);
    }
    artifact::load(Path::new(spec)).with_context(|| format!("loading the MRM in {spec}"))
}

/// Loads the MRM `spec` for `policy` (named `policy_spec` on the command
/// line), checking that it was trained for this policy.
pub fn load_mrm(home: &Path, spec: &str, policy_spec: &str, policy: &Model) -> anyhow::Result<SharedMrm> {
    let (head, manifest) = mrm_parts(spec)?;
    let sha256 = super::guard::model_sha256(home, policy_spec)?;
    Ok(SharedMrm::new(head, manifest, policy, &sha256)?)
}
