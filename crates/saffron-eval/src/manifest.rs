//! `run.json`: what a run directory was made with. Written when a run
//! starts, compared when it resumes (a run of another configuration is
//! refused), read by the report, `saffron fluency` and `saffron merge`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::experiment::{RunModels, RunPlan};
use crate::grid::Grid;
use crate::store::{read_config, CONFIG_FILE};
use crate::EvalError;

/// The resolved configuration of a run: its grid, what identifies every
/// model and data file it reads, and the saffron version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    pub grid: Grid,
    pub policy_sha256: String,
    /// Identity of each reward model by its name in the grid (the MRM's
    /// prefixed `mrm:`): the sha256 of a guard's weights, the digest of the
    /// corpus an MRM was trained on.
    pub reward_models: BTreeMap<String, String>,
    /// sha256 of every data file the prompts came from.
    pub data_files: BTreeMap<String, String>,
    pub saffron_version: String,
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
        })
    }

    /// The manifest of the run directory `dir`.
    pub fn read(dir: &Path) -> Result<RunManifest, EvalError> {
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
        assert_eq!(serde_json::to_value(&manifest).unwrap(), old);

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), serde_json::to_string_pretty(&old).unwrap()).unwrap();
        assert_eq!(RunManifest::read(dir.path()).unwrap(), manifest);
        let err = RunManifest::read(&dir.path().join("nope")).unwrap_err().to_string();
        assert!(err.contains("is it a run directory") || err.contains("a run directory made by"), "{err}");
    }
}
