//! A trained probe guard on disk: `guard.safetensors` (the head's tensors)
//! and `guard.json` (the manifest: backbone by sha256, input format, the
//! training data's hashes and the cross-validation scores).

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use super::features::{ProbeFeatures, ProbeInputs};
use super::head::{HeadTraining, LinearHead};
use super::judge::RefusalRule;
use super::penalty::PenaltyScore;
use crate::tensors::{self, parse_manifest, read_artifact, read_f32, write_artifact};
use crate::{Boundary, GuardFormat, RewardError};

pub const WEIGHTS_FILE: &str = "guard.safetensors";
pub const MANIFEST_FILE: &str = "guard.json";
const KIND: &str = "saffron-probe-guard";

/// The backbone a head was trained on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backbone {
    /// Catalog name (`qwen`, `smollm2`) or the GGUF's file name.
    pub name: String,
    pub sha256: String,
    pub hidden_size: usize,
}

/// How the head was trained, for the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingRecord {
    /// `dataset:member` → sha256 of every data file read.
    pub data_files: BTreeMap<String, String>,
    pub pairs: usize,
    pub unsafe_pairs: usize,
    pub rows: usize,
    pub seed: u64,
    /// Folds of the cross-validation that chose the penalty in artifacts
    /// made before the dev split did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folds: Option<usize>,
    pub head: HeadTraining,
    /// Scores of each L2 penalty by cross-validation on the training
    /// pairs (artifacts made before the dev split chose the penalty so).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cross_validation: Vec<PenaltyScore>,
    /// Scores of each L2 penalty on the dev split, which chose it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dev: Vec<PenaltyScore>,
    /// The prompts of the training pairs (`None` in artifacts made before
    /// trainers recorded them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompts: Option<saffron_core::TrainedPrompts>,
}

/// The manifest, `guard.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeManifest {
    pub kind: String,
    pub backbone: Backbone,
    pub format: GuardFormat,
    /// How template and slots were tokenised in training (artifacts
    /// without the field were trained split).
    #[serde(default)]
    pub boundary: Boundary,
    pub inputs: ProbeInputs,
    /// What the head reads (artifacts without the field read the last
    /// hidden state).
    #[serde(default, skip_serializing_if = "is_default")]
    pub features: ProbeFeatures,
    /// The log-odds above which a response is unsafe, chosen on the dev
    /// split for a judge (0 for a guard; artifacts without it: 0).
    #[serde(default, skip_serializing_if = "is_default")]
    pub threshold: f32,
    /// How the verdict uses the refusal strings (artifacts without it:
    /// the head decides alone).
    #[serde(default, skip_serializing_if = "is_default")]
    pub refusal: RefusalRule,
    pub training: TrainingRecord,
    pub saffron_version: String,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

impl ProbeManifest {
    pub fn new(
        backbone: Backbone,
        (format, boundary): (GuardFormat, Boundary),
        inputs: ProbeInputs,
        training: TrainingRecord,
    ) -> Self {
        ProbeManifest {
            kind: KIND.into(),
            backbone,
            format,
            boundary,
            inputs,
            features: ProbeFeatures::default(),
            threshold: 0.0,
            refusal: RefusalRule::default(),
            training,
            saffron_version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// Writes the head and manifest into `dir` (created if needed).
pub fn save(dir: &Path, head: &LinearHead, manifest: &ProbeManifest) -> Result<(), RewardError> {
    write_artifact(dir, (MANIFEST_FILE, manifest), (WEIGHTS_FILE, &head_bytes(head)?))
}

/// A linear head's tensors.
pub(crate) fn head_bytes(head: &LinearHead) -> Result<Vec<u8>, RewardError> {
    let d = head.dim();
    tensors::to_bytes(&[
        ("mean", vec![d], &head.mean),
        ("scale", vec![d], &head.scale),
        ("weight", vec![d], &head.weight),
        ("bias", vec![1], &[head.bias]),
    ])
}

/// A linear head of `d` features from its tensors in `weights` (the file
/// `path`, for messages).
pub(crate) fn read_head(weights: &[u8], d: usize, path: &Path) -> Result<LinearHead, RewardError> {
    let tensors = SafeTensors::deserialize(weights)
        .map_err(|e| RewardError::Artifact { path: path.to_path_buf(), detail: e.to_string() })?;
    Ok(LinearHead {
        mean: read_f32(&tensors, "mean", &[d], path)?,
        scale: read_f32(&tensors, "scale", &[d], path)?,
        weight: read_f32(&tensors, "weight", &[d], path)?,
        bias: read_f32(&tensors, "bias", &[1], path)?[0],
    })
}

/// Reads a probe guard artifact from `dir`.
pub fn load(dir: &Path) -> Result<(LinearHead, ProbeManifest), RewardError> {
    let (text, bytes) = read_artifact(dir, MANIFEST_FILE, WEIGHTS_FILE)?;
    parse(&text, &bytes, dir)
}

/// Parses an artifact's two files (`dir` names them in errors).
pub fn parse(manifest: &str, weights: &[u8], dir: &Path) -> Result<(LinearHead, ProbeManifest), RewardError> {
    let manifest: ProbeManifest =
        parse_manifest(manifest, &dir.join(MANIFEST_FILE), KIND, |m: &ProbeManifest| m.kind.as_str())?;
    let d = manifest.features.dim(manifest.backbone.hidden_size);
    Ok((read_head(weights, d, &dir.join(WEIGHTS_FILE))?, manifest))
}

/// Whether `dir` holds a probe guard artifact.
pub fn is_artifact(dir: &Path) -> bool {
    dir.join(MANIFEST_FILE).is_file()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BinaryMetrics;

    fn sample() -> (LinearHead, ProbeManifest) {
        let head = LinearHead { mean: vec![0.5, -1.0], scale: vec![2.0, 1.0], weight: vec![0.25, -3.0], bias: 0.125 };
        let metrics = BinaryMetrics { accuracy: 0.9, f1: 0.8, fpr: 0.1, fnr: 0.2, n: 10 };
        let training = TrainingRecord {
            data_files: BTreeMap::from([("pyrit:a.csv".to_string(), "ab".repeat(32))]),
            pairs: 10,
            unsafe_pairs: 4,
            rows: 25,
            seed: 3,
            folds: None,
            head: HeadTraining::default(),
            cross_validation: Vec::new(),
            dev: vec![PenaltyScore { features: Default::default(), l2: 0.01, whole: metrics, prefixes: metrics }],
            prompts: None,
        };
        let backbone = Backbone { name: "smollm2".into(), sha256: "cd".repeat(32), hidden_size: 2 };
        let manifest = ProbeManifest::new(
            backbone,
            (GuardFormat::UserTurn("{{ prompt }}".into()), Boundary::Natural),
            ProbeInputs::default(),
            training,
        );
        (head, manifest)
    }

    #[test]
    fn round_trips_head_and_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let (head, manifest) = sample();
        save(dir.path(), &head, &manifest).unwrap();
        assert!(is_artifact(dir.path()));
        let (h, m) = load(dir.path()).unwrap();
        assert_eq!((h, m), (head, manifest));
    }

    #[test]
    fn a_head_of_the_wrong_size_or_kind_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (head, mut manifest) = sample();
        manifest.backbone.hidden_size = 3;
        save(dir.path(), &head, &manifest).unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("guard.safetensors") && err.contains("expected F32 [3]"), "{err}");
        manifest.kind = "something-else".into();
        save(dir.path(), &head, &manifest).unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("guard.json") && err.contains("saffron-probe-guard"), "{err}");
        let err = load(&dir.path().join("missing")).unwrap_err().to_string();
        assert!(err.contains("missing/guard.json"), "{err}");
    }
}
