//! `--mrm DIR`: a trained multifurcation reward model for the policy.

use std::path::Path;

use anyhow::Context;
use saffron_engine::Model;
use saffron_reward::mrm::{artifact, SharedMrm};

/// Loads the MRM in `dir` for `policy` (named `policy_spec` on the command
/// line), checking that it was trained for this policy.
pub fn load_mrm(home: &Path, dir: &Path, policy_spec: &str, policy: &Model) -> anyhow::Result<SharedMrm> {
    let (head, manifest) = artifact::load(dir).with_context(|| format!("loading the MRM in {}", dir.display()))?;
    let sha256 = super::guard::model_sha256(home, policy_spec)?;
    Ok(SharedMrm::new(head, manifest, policy, &sha256)?)
}
