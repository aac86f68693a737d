//! A trained MRM on disk: `mrm.safetensors` (the head, with the seen
//! tokens; the unseen mask is their complement) and `mrm.json` (backbone
//! and policy by sha256, the corpus hash, training settings, fidelity).

use std::path::Path;

use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use super::head::{MrmHead, MrmTraining, TokenMlp};
use super::train::Fidelity;
use crate::tensors::{parse_manifest, read_artifact, read_f32, read_u32, to_bytes_typed, write_artifact, Data};
use crate::RewardError;

pub const WEIGHTS_FILE: &str = "mrm.safetensors";
pub const MANIFEST_FILE: &str = "mrm.json";
const KIND: &str = "saffron-mrm";

/// Where the head reads its hidden state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MrmBackbone {
    /// The policy's own final hidden state: no extra forward pass.
    SharedPolicy,
    /// Another model's final hidden state over the same text.
    Separate,
}

/// A model named by catalog name (or file name) and sha256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelId {
    pub name: String,
    pub sha256: String,
}

/// The manifest, `mrm.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MrmManifest {
    pub kind: String,
    pub backbone_kind: MrmBackbone,
    pub backbone: ModelId,
    pub hidden_size: usize,
    /// The policy whose token ids the rewards are indexed by.
    pub policy: ModelId,
    pub vocab_size: usize,
    pub corpus_sha256: String,
    pub training: MrmTraining,
    pub examples: usize,
    pub held_out_examples: usize,
    pub seen_tokens: usize,
    pub fidelity_train: Fidelity,
    pub fidelity_held_out: Fidelity,
    pub saffron_version: String,
    /// How a separate backbone reads (prompt, response); absent for a
    /// shared-backbone head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<super::separate::SeparateInput>,
    /// On the held-out prompts, the PRM's reward of each node against that
    /// of the node one token on, `R(s)` against `R(s·a)`: the fidelity of
    /// an MRM that knew the PRM's reward of the node exactly but nothing of
    /// what the next token changes (how far one token moves the PRM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prm_step_held_out: Option<Fidelity>,
    /// The probe guard whose reward is the value term, fixed in training
    /// (`train-mrm --on-guard`: name and the sha256 of its weights); absent
    /// for a learned value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ModelId>,
    /// The prompts of the corpus it was fitted to (`None` in artifacts
    /// made before trainers recorded them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompts: Option<saffron_core::TrainedPrompts>,
    /// The share of the non-held-out prompts it was fitted to, when not all
    /// (a point of a learning curve, `train-mrm --train-share`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_share: Option<f64>,
    /// Heads fitted to smaller shares of the prompts not held out (the
    /// scale of `train_share`), inside this head's training prompts, scored
    /// on the same held-out prompts (`train-mrm --curve`); not kept, only
    /// measured. Empty when no curve was asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub learning_curve: Vec<CurvePoint>,
}

/// One point of a learning curve: a head fitted to `train_share` of the
/// prompts not held out (`prompts` of them), and its fidelity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurvePoint {
    pub train_share: f64,
    pub prompts: usize,
    pub examples: usize,
    pub fidelity_train: Fidelity,
    pub fidelity_held_out: Fidelity,
}

/// Refuses a head made for another policy (by sha256), vocabulary size or,
/// for a shared backbone, hidden size.
pub fn check_policy(
    manifest: &MrmManifest,
    policy: &saffron_engine::Model,
    policy_sha256: &str,
) -> Result<(), RewardError> {
    let mismatch = |expected: String, actual: String| Err(RewardError::WrongBackbone { expected, actual });
    if manifest.policy.sha256 != policy_sha256 {
        return mismatch(
            format!("policy {} (sha256 {})", manifest.policy.name, manifest.policy.sha256),
            format!("{} (sha256 {policy_sha256})", policy.path().display()),
        );
    }
    let shared = manifest.backbone_kind == MrmBackbone::SharedPolicy;
    if manifest.vocab_size != policy.vocab_size() || (shared && manifest.hidden_size as u64 != policy.shape().d_model) {
        return mismatch(
            format!("vocabulary {} and hidden size {}", manifest.vocab_size, manifest.hidden_size),
            format!("vocabulary {} and hidden size {}", policy.vocab_size(), policy.shape().d_model),
        );
    }
    Ok(())
}

impl MrmManifest {
    pub fn kind() -> String {
        KIND.into()
    }
}

/// Writes the head and manifest into `dir` (created if needed).
pub fn save(dir: &Path, head: &MrmHead, manifest: &MrmManifest) -> Result<(), RewardError> {
    let (d, r, s) = (head.dim(), head.rank, head.seen.len());
    let value_bias = [head.value_bias];
    let mut tensors = vec![
        ("mean", vec![d], Data::F32(&head.mean)),
        ("scale", vec![d], Data::F32(&head.scale)),
        ("value_weight", vec![d], Data::F32(&head.value_weight)),
        ("value_bias", vec![1], Data::F32(&value_bias)),
        ("projection", vec![r, d], Data::F32(&head.projection)),
        ("seen_tokens", vec![s], Data::U32(&head.seen)),
        ("token_bias", vec![s], Data::F32(&head.token_bias)),
        ("token_embedding", vec![s, r], Data::F32(&head.token_embedding)),
    ];
    if let Some(m) = &head.mlp {
        let k = m.width();
        tensors.extend([
            ("mlp_input", vec![k, d], Data::F32(&m.input)),
            ("mlp_bias", vec![k], Data::F32(&m.bias)),
            ("mlp_token_shift", vec![s, k], Data::F32(&m.token_shift)),
            ("mlp_output", vec![k], Data::F32(&m.output)),
        ]);
    }
    let weights = to_bytes_typed(&tensors)?;
    write_artifact(dir, (MANIFEST_FILE, manifest), (WEIGHTS_FILE, &weights))
}

/// Reads an MRM artifact from `dir`.
pub fn load(dir: &Path) -> Result<(MrmHead, MrmManifest), RewardError> {
    let (text, bytes) = read_artifact(dir, MANIFEST_FILE, WEIGHTS_FILE)?;
    parse(&text, &bytes, dir)
}

/// Parses an artifact's two files (`dir` names them in errors).
pub fn parse(manifest: &str, weights: &[u8], dir: &Path) -> Result<(MrmHead, MrmManifest), RewardError> {
    let bad = |path: &Path, detail: String| RewardError::Artifact { path: path.to_path_buf(), detail };
    let manifest: MrmManifest =
        parse_manifest(manifest, &dir.join(MANIFEST_FILE), KIND, |m: &MrmManifest| m.kind.as_str())?;
    let path = dir.join(WEIGHTS_FILE);
    let tensors = SafeTensors::deserialize(weights).map_err(|e| bad(&path, e.to_string()))?;
    let (d, r) = (manifest.hidden_size, manifest.training.rank);
    let seen = read_u32(&tensors, "seen_tokens", &path)?;
    let s = seen.len();
    if !seen.windows(2).all(|w| w[0] < w[1]) || seen.last().is_some_and(|&t| t as usize >= manifest.vocab_size) {
        return Err(bad(
            &path,
            format!("seen_tokens must ascend and stay below the vocabulary ({})", manifest.vocab_size),
        ));
    }
    let head = MrmHead {
        mean: read_f32(&tensors, "mean", &[d], &path)?,
        scale: read_f32(&tensors, "scale", &[d], &path)?,
        value_weight: read_f32(&tensors, "value_weight", &[d], &path)?,
        value_bias: read_f32(&tensors, "value_bias", &[1], &path)?[0],
        projection: read_f32(&tensors, "projection", &[r, d], &path)?,
        token_bias: read_f32(&tensors, "token_bias", &[s], &path)?,
        token_embedding: read_f32(&tensors, "token_embedding", &[s, r], &path)?,
        mlp: match manifest.training.mlp_width {
            Some(k) => Some(TokenMlp {
                input: read_f32(&tensors, "mlp_input", &[k, d], &path)?,
                bias: read_f32(&tensors, "mlp_bias", &[k], &path)?,
                token_shift: read_f32(&tensors, "mlp_token_shift", &[s, k], &path)?,
                output: read_f32(&tensors, "mlp_output", &[k], &path)?,
            }),
            None => None,
        },
        seen,
        rank: r,
        vocab_size: manifest.vocab_size,
    };
    Ok((head, manifest))
}

/// Whether `dir` holds an MRM artifact.
pub fn is_artifact(dir: &Path) -> bool {
    dir.join(MANIFEST_FILE).is_file()
}

#[cfg(test)]
mod tests {
    use super::super::train::ValueTerm;
    use super::*;
    use crate::mrm::train::{train, Example};

    fn sample(vocab_size: usize) -> (MrmHead, MrmManifest) {
        let examples: Vec<Example> = (0..40)
            .map(|i| Example {
                hidden: vec![i as f32, 1.0 - i as f32, 0.5],
                token: [3, 7, 8][i % 3],
                reward: (i % 5) as f32 - 2.0,
            })
            .collect();
        let training = MrmTraining { rank: 2, epochs: 2, ..MrmTraining::default() };
        let head = train(&examples, vocab_size, &training, ValueTerm::Learned);
        let f = Fidelity { n: 40, within_one: 0.5, mean_abs_error: 1.0, correlation: 0.5 };
        let id = ModelId { name: "smollm2".into(), sha256: "ab".repeat(32) };
        let manifest = MrmManifest {
            kind: MrmManifest::kind(),
            backbone_kind: MrmBackbone::SharedPolicy,
            backbone: id.clone(),
            hidden_size: 3,
            policy: id,
            vocab_size,
            corpus_sha256: "cd".repeat(32),
            training,
            examples: 40,
            held_out_examples: 0,
            seen_tokens: 3,
            fidelity_train: f,
            fidelity_held_out: f,
            saffron_version: "0".into(),
            input: None,
            prm_step_held_out: None,
            value_from: None,
            prompts: None,
            train_share: None,
            learning_curve: Vec::new(),
        };
        (head, manifest)
    }

    #[test]
    fn round_trips_the_head_and_its_mask() {
        let dir = tempfile::tempdir().unwrap();
        let (head, manifest) = sample(10);
        save(dir.path(), &head, &manifest).unwrap();
        let (h, m) = load(dir.path()).unwrap();
        assert_eq!(h, head);
        assert_eq!(m, manifest);
        let unseen: Vec<u32> = (0..10).filter(|&t| h.is_unseen(t)).collect();
        assert_eq!(unseen, vec![0, 1, 2, 4, 5, 6, 9]);
    }

    #[test]
    fn round_trips_a_head_with_the_non_linear_term() {
        let dir = tempfile::tempdir().unwrap();
        let (_, mut manifest) = sample(10);
        manifest.training.mlp_width = Some(3);
        let examples: Vec<Example> =
            (0..30).map(|i| Example { hidden: vec![i as f32, 0.5, -1.0], token: [2, 5][i % 2], reward: 1.0 }).collect();
        let head = train(&examples, 10, &manifest.training, ValueTerm::Learned);
        assert_eq!(head.mlp.as_ref().map(TokenMlp::width), Some(3));
        // Its cost: the bilinear head's, plus 3 units on 3 dimensions and 3
        // shifted units (an add and a multiply-add) for each of 2 seen tokens.
        let bilinear = MrmHead { mlp: None, ..head.clone() };
        assert_eq!(head.flops_per_call() - bilinear.flops_per_call(), 2.0 * (3.0 * 3.0 + 2.0 * 2.0 * 3.0));
        save(dir.path(), &head, &manifest).unwrap();
        let (h, m) = load(dir.path()).unwrap();
        assert_eq!((h, m), (head, manifest));
    }

    #[test]
    fn a_mask_beyond_the_vocabulary_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (head, mut manifest) = sample(10);
        manifest.vocab_size = 8;
        save(dir.path(), &head, &manifest).unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("below the vocabulary (8)"), "{err}");
    }
}
