//! A streaming guard: what the per-prefix probe guard says of every prefix
//! of a response, read from one forward pass over the whole response.
//!
//! The per-prefix guard scores `response[..j]` at the end of its input,
//! after the response and the closing template tail, so every prefix costs
//! the tail again (about 14 guard tokens). Here the guard's backbone reads
//! (prompt, whole response) in the same format once; the feature of prefix
//! `j` is the final hidden state at the prefix's last response token, with
//! nothing after it, and a linear head fitted to the guard's own log-odds
//! on labelled prefixes (a regression, [`LinearHead::fit_squared`]) turns
//! it into a reward. One guard token per prefix instead of the tail.
//!
//! It imitates the guard; it is no better than its agreement with it on
//! prompts it was not fitted on, which [`fit_streaming`] measures.

use std::path::Path;

use saffron_core::{TokenId, WantedOutputs};
use saffron_engine::PrefixTree;
use serde::{Deserialize, Serialize};

use super::artifact::{head_bytes, read_head, Backbone};
use super::head::{HeadTraining, LinearHead};
use crate::guard::keep_only_or_clear;
use crate::mrm::corpus::{Corpus, LabelledSequence};
use crate::mrm::fit::held_out_prompts;
use crate::mrm::train::Fidelity;
use crate::tensors::{parse_manifest, read_artifact, write_artifact};
use crate::{Boundary, GuardFormat, GuardInput, RewardError};

pub const STREAM_WEIGHTS_FILE: &str = "stream.safetensors";
pub const STREAM_MANIFEST_FILE: &str = "stream.json";
const KIND: &str = "saffron-streaming-guard";

/// Prompts are cut to this many guard tokens, as the probe guard cuts them.
pub const STREAM_PROMPT_TOKENS: usize = 128;
/// Responses are read up to this many guard tokens.
pub const STREAM_RESPONSE_TOKENS: usize = 128;

/// What the streaming head reads at a prefix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum StreamFeatures {
    /// The final hidden state at the prefix's last response token.
    #[default]
    State,
    /// That state and the mean of the states over the prefix's response
    /// tokens (what has been said so far), one after the other.
    StateMean,
}

impl StreamFeatures {
    /// Feature count on a backbone of hidden size `d`.
    pub fn dim(self, d: usize) -> usize {
        match self {
            StreamFeatures::State => d,
            StreamFeatures::StateMean => 2 * d,
        }
    }
}

/// For each prefix of a response (its text's byte length), how many of the
/// response's guard tokens lie wholly inside it. `token_ends[k]` is the
/// byte length the first `k + 1` guard tokens cover.
pub fn aligned_counts(token_ends: &[usize], prefix_lens: &[usize]) -> Vec<usize> {
    prefix_lens.iter().map(|&len| token_ends.partition_point(|&end| end <= len)).collect()
}

/// The feature rows of the prefixes of one response: `prefixes` are the
/// texts of the response cut after each of its tokens (in the policy's
/// tokens, so they grow), the last being the whole response.
pub fn prefix_rows(
    input: &GuardInput,
    tree: &mut PrefixTree,
    prompt: &str,
    prefixes: &[String],
    features: StreamFeatures,
) -> Result<Vec<Vec<f32>>, RewardError> {
    let Some(full) = prefixes.last() else { return Ok(Vec::new()) };
    let whole = input.response_tokens(full);
    let model = input.model();
    // A leading space the response slot adds is not part of the text.
    let lead = model.detokenize(&whole).len().saturating_sub(full.len());
    let response = &whole[..whole.len().min(STREAM_RESPONSE_TOKENS)];
    let covered: Vec<usize> = (1..=response.len()).map(|k| model.detokenize(&response[..k]).len()).collect();
    let token_ends: Vec<usize> = covered.iter().map(|e| e.saturating_sub(lead)).collect();
    let lens: Vec<usize> = prefixes.iter().map(String::len).collect();
    let counts = aligned_counts(&token_ends, &lens);
    let mut prompt_tokens = input.prompt_tokens(prompt);
    prompt_tokens.truncate(STREAM_PROMPT_TOKENS);
    let begin = input.response_start(prompt_tokens.len());
    let tokens = input.encode_tokens(&prompt_tokens, response);
    // The state after every response token (and the one before the
    // response, for a prefix holding no whole guard token): one path.
    let paths: Vec<&[TokenId]> = (0..=response.len()).map(|c| &tokens[..begin + c]).collect();
    let outputs = tree.outputs(&paths, WantedOutputs::Hidden)?;
    let states: Vec<&[f32]> =
        outputs.iter().map(|o| o.hidden.as_deref().ok_or(RewardError::MissingHidden)).collect::<Result<_, _>>()?;
    let d = states[0].len();
    // means[c]: the mean of the states after response tokens 1..=c.
    let mut means = vec![vec![0f32; d]];
    for c in 1..states.len() {
        let next = means[c - 1].iter().zip(states[c]).map(|(m, h)| m + (h - m) / c as f32).collect();
        means.push(next);
    }
    Ok(counts
        .iter()
        .map(|&c| match features {
            StreamFeatures::State => states[c].to_vec(),
            StreamFeatures::StateMean => [states[c], &means[c]].concat(),
        })
        .collect())
}

/// How closely a streaming head follows the guard.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    pub fidelity: Fidelity,
    /// Share of prefixes the two call alike (both `< 0` or both `≥ 0`).
    pub same_verdict: f64,
}

impl Agreement {
    /// Of (streaming reward, guard reward) pairs.
    pub fn of(pairs: &[(f64, f64)]) -> Agreement {
        let same = pairs.iter().filter(|(s, g)| (*s < 0.0) == (*g < 0.0)).count();
        Agreement { fidelity: Fidelity::of(pairs), same_verdict: same as f64 / pairs.len().max(1) as f64 }
    }
}

/// One labelled response for fitting: its prefixes' feature rows and the
/// guard's reward of each, and whether its prompt is held out.
pub struct StreamExample {
    pub rows: Vec<Vec<f32>>,
    pub rewards: Vec<f32>,
    pub held_out: bool,
}

/// A fitted streaming head with its agreement on both sides.
pub struct StreamFit {
    pub head: LinearHead,
    pub train: Agreement,
    pub held_out: Agreement,
}

/// Fits the head to the guard's log-odds (its negated reward) on the
/// examples not held out; measures agreement on both sides.
pub fn fit_streaming(examples: &[StreamExample], training: &HeadTraining) -> Result<StreamFit, RewardError> {
    let side = |held: bool| -> (Vec<&[f32]>, Vec<f32>) {
        let picked = examples.iter().filter(|e| e.held_out == held);
        let rows = picked.clone().flat_map(|e| e.rows.iter().map(Vec::as_slice)).collect();
        (rows, picked.flat_map(|e| e.rewards.iter().map(|r| -r)).collect())
    };
    let (train_rows, train_z) = side(false);
    if train_rows.is_empty() {
        return Err(RewardError::Data {
            file: "(streaming guard)".into(),
            detail: "no labelled prefixes to fit".into(),
        });
    }
    let head = LinearHead::fit_squared(&train_rows, &train_z, training);
    let agreement = |(rows, z): (Vec<&[f32]>, Vec<f32>)| -> Agreement {
        let pairs: Vec<(f64, f64)> = rows.iter().zip(&z).map(|(r, z)| (head.reward(r) as f64, -*z as f64)).collect();
        Agreement::of(&pairs)
    };
    let (train, held_out) = (agreement((train_rows, train_z)), agreement(side(true)));
    Ok(StreamFit { head, train, held_out })
}

/// The examples of a guard-labelled corpus: each response's prefix rows on
/// `input` (the guard's backbone and format), read as `features`, and its
/// rewards; a seeded `held_out` share of the prompts (all attacks and
/// samples of a prompt on one side) is marked held out. `prompt_text` gives a sequence's prompt,
/// `response_text` turns policy tokens into text.
pub fn stream_examples(
    (input, features): (&GuardInput, StreamFeatures),
    tree: &mut PrefixTree,
    corpus: &Corpus,
    (held_out, seed): (f64, u64),
    prompt_text: &dyn Fn(&LabelledSequence) -> Result<String, RewardError>,
    response_text: &dyn Fn(&[TokenId]) -> String,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<StreamExample>, RewardError> {
    let held = held_out_prompts(corpus, held_out, seed);
    let mut examples = Vec::with_capacity(corpus.sequences.len());
    for (i, seq) in corpus.sequences.iter().enumerate() {
        let prefixes: Vec<String> = (1..=seq.response.len()).map(|j| response_text(&seq.response[..j])).collect();
        let rows = prefix_rows(input, tree, &prompt_text(seq)?, &prefixes, features)?;
        examples.push(StreamExample { rows, rewards: seq.rewards.clone(), held_out: held.contains(seq.prompt()) });
        // Responses share only the instruction; a short cache keeps
        // attention cheap.
        keep_only_or_clear(tree, input.shared_prefix());
        progress(i + 1);
    }
    Ok(examples)
}

/// A streaming guard ready to label: its head on its backbone.
pub struct StreamingGuard {
    head: LinearHead,
    input: GuardInput,
    manifest: StreamManifest,
}

impl StreamingGuard {
    /// The artifact `(head, manifest)` on `backbone` (file sha256
    /// `backbone_sha256`); one made on another backbone is refused.
    pub fn new(
        (head, manifest): (LinearHead, StreamManifest),
        backbone: saffron_engine::Model,
        backbone_sha256: &str,
    ) -> Result<StreamingGuard, RewardError> {
        if manifest.backbone.sha256 != backbone_sha256
            || manifest.backbone.hidden_size as u64 != backbone.shape().d_model
        {
            return Err(RewardError::WrongBackbone {
                expected: format!("{} (sha256 {})", manifest.backbone.name, manifest.backbone.sha256),
                actual: format!("{} (sha256 {backbone_sha256})", backbone.path().display()),
            });
        }
        let input = GuardInput::new(backbone, &manifest.format, manifest.boundary)?;
        Ok(StreamingGuard { head, input, manifest })
    }

    pub fn manifest(&self) -> &StreamManifest {
        &self.manifest
    }

    pub fn model(&self) -> &saffron_engine::Model {
        self.input.model()
    }

    /// The reward of every prefix of one response (`prefixes`, growing,
    /// the last the whole response), from one pass in `tree` (which must
    /// keep hidden states); the tree keeps only the instruction after.
    pub fn rewards(&self, tree: &mut PrefixTree, prompt: &str, prefixes: &[String]) -> Result<Vec<f32>, RewardError> {
        let rows = prefix_rows(&self.input, tree, prompt, prefixes, self.manifest.features)?;
        keep_only_or_clear(tree, self.input.shared_prefix());
        Ok(rows.iter().map(|r| self.head.reward(r)).collect())
    }
}

/// A streaming guard on disk: what it imitates, how it reads, how well.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamManifest {
    pub kind: String,
    /// The guard whose rewards it was fitted to (its identity, as the
    /// corpus header records it).
    pub imitates: String,
    pub backbone: Backbone,
    pub format: GuardFormat,
    pub boundary: Boundary,
    /// What the head reads (artifacts without it: the state alone).
    #[serde(default)]
    pub features: StreamFeatures,
    /// sha256 of the guard-labelled corpus it was fitted on.
    pub corpus_sha256: String,
    pub training: HeadTraining,
    /// On the prefixes it was fitted on, and on those of held-out prompts.
    pub agreement_train: Agreement,
    pub agreement_held_out: Agreement,
    pub saffron_version: String,
}

impl StreamManifest {
    pub fn kind() -> String {
        KIND.into()
    }
}

/// Writes a streaming guard into `dir` (created if needed).
pub fn save(dir: &Path, head: &LinearHead, manifest: &StreamManifest) -> Result<(), RewardError> {
    write_artifact(dir, (STREAM_MANIFEST_FILE, manifest), (STREAM_WEIGHTS_FILE, &head_bytes(head)?))
}

/// Reads a streaming guard from `dir`.
pub fn load(dir: &Path) -> Result<(LinearHead, StreamManifest), RewardError> {
    let (text, bytes) = read_artifact(dir, STREAM_MANIFEST_FILE, STREAM_WEIGHTS_FILE)?;
    let manifest: StreamManifest =
        parse_manifest(&text, &dir.join(STREAM_MANIFEST_FILE), KIND, |m: &StreamManifest| m.kind.as_str())?;
    let d = manifest.features.dim(manifest.backbone.hidden_size);
    let head = read_head(&bytes, d, &dir.join(STREAM_WEIGHTS_FILE))?;
    Ok((head, manifest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_holds_the_tokens_that_end_inside_it() {
        // Tokens "How", " to", " pick": ends 3, 6, 11.
        let ends = [3, 6, 11];
        assert_eq!(aligned_counts(&ends, &[3, 6, 11]), vec![1, 2, 3], "boundaries that coincide");
        assert_eq!(aligned_counts(&ends, &[2, 8, 20]), vec![0, 2, 3], "a prefix ending mid-token stops before it");
    }

    #[test]
    fn agreement_counts_verdicts_and_closeness() {
        let a = Agreement::of(&[(1.0, 0.5), (-2.0, -1.5), (0.5, -0.5), (3.0, 0.0)]);
        assert_eq!(a.same_verdict, 0.75);
        assert_eq!(a.fidelity.within_one, 0.75);
        assert_eq!(a.fidelity.n, 4);
    }
}
