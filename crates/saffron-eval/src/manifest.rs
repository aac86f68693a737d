//! `run.json`: what a run directory was made with. WrittenAnswers when a run
//! starts, compared when it resumes (a run of another configuration is
//! refused), read by the report, `saffron fluency` and `saffron merge`.

use std::collections::BTreeMap;
use std::path::Path;

use saffron_defence::RewardBinding;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::experiment::{RunModels, RunPlan};
use crate::grid::Grid;
use crate::store::{read_config, CONFIG_FILE};
use crate::EvalError;

/// The resolved configuration of a run: its grid, what identifies every
/// model and data file it reads, and the saffron version. The grid is
/// typed ([`Grid`]) for a run to be made or resumed; a report reads it as
/// written ([`crate::grid::GridFile`]), so that any run directory reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunManifest<G = Grid> {
    pub grid: G,
    pub policy_sha256: String,
    /// Identity of each reward model by its name in the grid (the MRM's
    /// prefixed `mrm:`): the sha256 of a guard's weights, the digest of the
    /// corpus an MRM was trained on.
    pub reward_models: BTreeMap<String, String>,
    /// sha256 of every data file the prompts came from.
    pub data_files: BTreeMap<String, String>,
    pub saffron_version: String,
    /// Which reward models each search was bound to. Absent from (and so
    /// [`RewardBinding::Always`] in) the `run.json` of runs made before it
    /// was recorded, which is also left out when written back.
    #[serde(default = "legacy_binding", skip_serializing_if = "is_legacy_binding")]
    pub reward_binding: RewardBinding,
}

fn legacy_binding() -> RewardBinding {
    RewardBinding::Always
}

fn is_legacy_binding(binding: &RewardBinding) -> bool {
    *binding == RewardBinding::Always
}

impl RunManifest {
    /// The manifest of a run of `plan` with `models`.
    pub fn new(plan: &RunPlan, models: &RunModels) -> Result<RunManifest, EvalError> {
        Ok(RunManifest {
            grid: plan.grid.clone(),
            policy_sha256: models.defence.policy().identity()?,
            reward_models: models.identities(&plan.grid),
            data_files: plan.data_files.clone(),
            saffron_version: env!("CARGO_PKG_VERSION").into(),
            reward_binding: models.defence.binding(),
        })
    }

    /// This manifest as the run in `dir` began it: a run made before the
    /// reward binding was recorded, and otherwise the same, resumes with the
    /// binding it was made with ([`RewardBinding::Always`]), so its records
    /// stay of one kind. Any other directory is left to the store to accept
    /// or refuse.
    pub fn resuming(self, dir: &Path) -> Result<RunManifest, EvalError> {
        let legacy = RunManifest { reward_binding: RewardBinding::Always, ..self.clone() };
        let as_written = serde_json::to_value(&legacy)
            .map_err(|e| EvalError::malformed(&dir.join(CONFIG_FILE).display().to_string(), "the configuration", e))?;
        Ok(if read_config(dir)? == Some(as_written) { legacy } else { self })
    }
}

impl<G: DeserializeOwned> RunManifest<G> {
    /// The manifest of the run directory `dir`.
    pub fn read(dir: &Path) -> Result<RunManifest<G>, EvalError> {
        let path = dir.join(CONFIG_FILE).display().to_string();
        let value = read_config(dir)?.ok_or_else(|| EvalError::Data {
            file: path.clone(),
            detail: format!("no such file; is {} a run directory made by `saffron eval`?", dir.display()),
        })?;
        serde_json::from_value(value).map_err(|e| EvalError::malformed(&path, "the run's configuration", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `run.json` as `saffron eval` wrote it before the manifest was
    /// typed (the demo grid's, abridged): it still reads, and writes back
    /// the same JSON, so such runs resume.
    #[test]
    fn a_run_json_of_the_earlier_shape_reads_and_writes_back_unchanged() {
        let old = serde_json::json!({
            "data_files": { "advbench:autodan/data/advbench/harmful_behaviors.csv": "6cd1" },
            "grid": {
                "attacks": [{ "kind": "prefill", "tokens": 10 }],
                "datasets": [
                    { "limit": null, "sample": 20, "seed": 0, "set": "advbench" },
                    { "limit": null, "sample": 6, "seed": 0, "set": "rho-benign" }
                ],
                "guard": "default",
                "judges": ["refusal", "default"],
                "length": { "max_new_tokens": 32, "min_new_tokens": 16 },
                "mrm": "default",
                "policy": "qwen",
                "seeds": [0],
                "strategies": [
                    { "name": "sample", "widths": [] },
                    { "name": "best-of-n", "widths": [4, 8] },
                    { "name": "saffron", "widths": [8, 16] }
                ]
            },
            "policy_sha256": "ab12",
            "reward_models": { "default": "cd34", "mrm:default": "ef56" },
            "saffron_version": "0.1.0"
        });
        let manifest: RunManifest = serde_json::from_value(old.clone()).unwrap();
        assert_eq!(manifest.grid.cells().unwrap().len(), 1 + 2 + 2 + 5);
        assert_eq!(manifest.grid.mrm, Some(saffron_reward::MrmSpec::BuiltIn));
        assert_eq!(manifest.reward_binding, RewardBinding::Always, "as such runs were made");
        assert_eq!(serde_json::to_value(&manifest).unwrap(), old);

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), serde_json::to_string_pretty(&old).unwrap()).unwrap();
        assert_eq!(RunManifest::read(dir.path()).unwrap(), manifest);
        let as_written: RunManifest<crate::grid::GridFile> = RunManifest::read(dir.path()).unwrap();
        assert_eq!(as_written.grid.judges, ["refusal", "default"]);
        let err = RunManifest::<Grid>::read(&dir.path().join("nope")).unwrap_err().to_string();
        assert!(err.contains("a run directory made by"), "{err}");

        // The same grid now: bound as it is used, unless it resumes such a run.
        let now = RunManifest { reward_binding: RewardBinding::WhenUsed, ..manifest.clone() };
        assert_eq!(serde_json::to_value(&now).unwrap()["reward_binding"], "when-used");
        assert_eq!(now.clone().resuming(dir.path()).unwrap(), manifest);
        let elsewhere = tempfile::tempdir().unwrap();
        assert_eq!(now.clone().resuming(elsewhere.path()).unwrap(), now);
        let mut other = now.clone();
        other.policy_sha256 = "other".into();
        assert_eq!(other.clone().resuming(dir.path()).unwrap(), other, "another configuration is not adopted");
    }
}
