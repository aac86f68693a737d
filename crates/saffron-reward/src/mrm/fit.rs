//! Fitting an MRM artifact to a labelled corpus: the backbone's hidden
//! state at every labelled node (the policy's own for a shared-backbone
//! head, another model's over (prompt, response so far) for a separate
//! one), a held-out share of the prompts, partial supervision on the rest
//! ([`super::train`]), fidelity on both sides, and the manifest.

use std::collections::BTreeSet;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use saffron_core::TokenId;
use saffron_engine::{HiddenStates, PrefixTree, TreeOptions};

use super::artifact::{CurvePoint, ModelId, MrmBackbone, MrmManifest};
use super::corpus::{Corpus, LabelledSequence};
use super::features::policy_examples;
use super::head::{MrmHead, MrmTraining};
use super::separate::{guard_state_input, separate_examples, separate_input};
use super::states::States;
use super::train::{fidelity, train, Example, Fidelity, ValueTerm};
use crate::{LoadedModel, ProbeGuard, RewardError};

/// How an MRM is fitted.
#[derive(Debug, Clone, PartialEq)]
pub struct FitSettings {
    /// Share of the corpus' prompts held out for the fidelity measurement
    /// (all attacks and samples of a prompt on one side).
    pub held_out: f64,
    /// Share of the remaining (training) prompts fitted to, in (0, 1]: a
    /// seeded sample, drawn after the held-out prompts are set aside, so a
    /// learning curve measures every size on the same held-out prompts.
    pub train_share: f64,
    /// Smaller shares, each in (0, `train_share`) and on the same scale (a
    /// share of all the prompts not held out), also fitted on the features
    /// already computed and scored on the same held-out prompts: a learning
    /// curve for the price of one feature pass. Their heads are measured,
    /// not kept. Each share's prompts are a prefix of the same seeded
    /// order, so a smaller share's prompts lie inside a larger one's.
    pub curve: Vec<f64>,
    pub training: MrmTraining,
    /// Options of the trees that compute the features.
    pub options: TreeOptions,
}

/// The corpus to fit: its sequences and the sha256 of its file.
pub struct CorpusInput<'a> {
    pub corpus: &'a Corpus,
    pub sha256: String,
    /// Where it was read from (for messages).
    pub path: &'a std::path::Path,
}

/// What the head reads.
#[derive(Clone, Copy)]
pub enum FeatureSource<'a> {
    /// The policy's own hidden state (a shared-backbone MRM).
    Policy,
    /// Another model's final state over (prompt, response so far).
    Model(&'a LoadedModel),
    /// A probe guard's own state, read exactly as the guard reads a pair;
    /// the value term is the guard's reward, the token terms are learned.
    /// States kept while labelling (`states`) are used where they cover a
    /// response, the rest are computed.
    Guard {
        guard: &'a ProbeGuard,
        id: &'a ModelId,
        backbone: &'a LoadedModel,
        states: Option<&'a States>,
        value: GuardValue,
    },
}

/// The value term of a head on a guard's own state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum GuardValue {
    /// The guard's reward of the node, fixed: only the token terms learn.
    #[default]
    Fixed,
    /// Learned with the rest, on the same features (for comparison).
    Learned,
}

/// Fits a head to `input` for `policy` on `source` (a separate backbone
/// needs each prompt's text: `prompt_text` maps a prompt id such as
/// `advbench/17` to it). `progress` is told how many of the sequences
/// whose features are computed are done, and of how many.
pub fn fit(
    input: &CorpusInput,
    policy: &LoadedModel,
    source: FeatureSource,
    prompt_text: &dyn Fn(&str) -> Option<String>,
    settings: &FitSettings,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(MrmHead, MrmManifest), RewardError> {
    let corpus = input.corpus;
    let policy_sha = policy.sha256().to_owned();
    if corpus.header.policy_sha256 != policy_sha {
        return Err(RewardError::CorpusPolicy {
            path: input.path.to_path_buf(),
            corpus_policy: format!("{} (sha256 {})", corpus.header.policy, corpus.header.policy_sha256),
            policy: format!("{} (sha256 {policy_sha})", policy.spec()),
        });
    }
    let held = held_out_prompts(corpus, settings.held_out, settings.training.seed);
    let kept = training_prompts(corpus, &held, settings.train_share, settings.training.seed);
    let curve = curve_prompts(input, &held, settings)?;
    let sequences: Vec<&LabelledSequence> =
        corpus.sequences.iter().filter(|s| held.contains(s.prompt()) || kept.contains(s.prompt())).collect();
    let total = sequences.len();
    let progress = &mut |done: usize| progress(done, total);
    let options = TreeOptions { hidden: HiddenStates::Keep, ..settings.options };
    let text = |seq: &LabelledSequence| -> Result<String, RewardError> {
        let id = seq.prompt();
        prompt_text(id).ok_or_else(|| RewardError::Data {
            file: input.path.display().to_string(),
            detail: format!("no prompt text for `{id}` in its prompt set"),
        })
    };
    let response = |t: &[TokenId]| policy.model().detokenize(t);
    let (examples, input_format) = match source {
        FeatureSource::Policy => {
            (policy_examples(&mut PrefixTree::new(policy.model(), options)?, &sequences, progress)?, None)
        }
        FeatureSource::Model(backbone) => {
            let separate = separate_input(backbone.model().clone())?;
            let mut tree = PrefixTree::new(separate.input.model(), options)?;
            let examples = separate_examples(&mut tree, &separate, &sequences, &text, &response, progress)?;
            (examples, Some(separate.record()))
        }
        FeatureSource::Guard { guard, states, .. } => {
            let node = guard_state_input(guard)?;
            let kept = |seq: &LabelledSequence| {
                states.and_then(|s| s.rows.get(&seq.key())).filter(|rows| rows.len() == seq.response.len())
            };
            // Computed only where no states were kept, in corpus order.
            let missing: Vec<&LabelledSequence> = sequences.iter().copied().filter(|s| kept(s).is_none()).collect();
            let mut computed = if missing.is_empty() {
                Vec::new()
            } else {
                let mut tree = PrefixTree::new(node.input.model(), options)?;
                separate_examples(&mut tree, &node, &missing, &text, &response, progress)?
            }
            .into_iter();
            let examples = sequences
                .iter()
                .map(|seq| match kept(seq) {
                    Some(rows) => rows
                        .iter()
                        .zip(seq.response.iter().zip(&seq.rewards))
                        .map(|(h, (&token, &reward))| Example { hidden: h.clone(), token, reward })
                        .collect(),
                    None => computed.next().unwrap_or_default(),
                })
                .collect();
            (examples, Some(node.record()))
        }
    };
    let value = match source {
        FeatureSource::Guard { guard, value: GuardValue::Fixed, .. } => {
            let (head, threshold) = guard.state_value()?;
            ValueTerm::Guard { head, threshold }
        }
        _ => ValueTerm::Learned,
    };
    let prm_step = Fidelity::of(
        &sequences
            .iter()
            .filter(|seq| held.contains(seq.prompt()))
            .flat_map(|seq| seq.rewards.windows(2).map(|w| (w[0] as f64, w[1] as f64)))
            .collect::<Vec<_>>(),
    );
    let (held_seqs, train_seqs): (Vec<_>, Vec<_>) =
        sequences.into_iter().zip(examples).partition(|(seq, _)| held.contains(seq.prompt()));
    let held_set: Vec<Example> = held_seqs.into_iter().flat_map(|(_, ex)| ex).collect();
    if train_seqs.iter().all(|(_, ex)| ex.is_empty()) {
        return Err(RewardError::Data {
            file: input.path.display().to_string(),
            detail: "no labels to train on".into(),
        });
    }
    let vocab_size = policy.model().vocab_size();
    let learning_curve = curve
        .iter()
        .map(|(share, prompts)| {
            let subset: Vec<Example> = train_seqs
                .iter()
                .filter(|(seq, _)| prompts.contains(seq.prompt()))
                .flat_map(|(_, ex)| ex.iter().cloned())
                .collect();
            let head = train(&subset, vocab_size, &settings.training, value);
            CurvePoint {
                train_share: *share,
                prompts: prompts.len(),
                examples: subset.len(),
                fidelity_train: fidelity(&head, &subset),
                fidelity_held_out: fidelity(&head, &held_set),
            }
        })
        .collect();
    let train_set: Vec<Example> = train_seqs.into_iter().flat_map(|(_, ex)| ex).collect();
    let head = train(&train_set, vocab_size, &settings.training, value);
    let (backbone_kind, backbone_id) = match source {
        FeatureSource::Policy => {
            (MrmBackbone::SharedPolicy, ModelId { name: policy.spec().into(), sha256: policy_sha.clone() })
        }
        FeatureSource::Model(b) | FeatureSource::Guard { backbone: b, .. } => {
            (MrmBackbone::Separate, ModelId { name: b.spec().into(), sha256: b.sha256().to_owned() })
        }
    };
    let manifest = MrmManifest {
        kind: MrmManifest::kind(),
        backbone_kind,
        backbone: backbone_id,
        hidden_size: head.dim(),
        policy: ModelId { name: policy.spec().into(), sha256: policy_sha },
        vocab_size,
        corpus_sha256: input.sha256.clone(),
        training: settings.training,
        examples: train_set.len(),
        held_out_examples: held_set.len(),
        seen_tokens: head.seen.len(),
        fidelity_train: fidelity(&head, &train_set),
        fidelity_held_out: fidelity(&head, &held_set),
        saffron_version: env!("CARGO_PKG_VERSION").into(),
        input: input_format,
        prm_step_held_out: Some(prm_step),
        value_from: match source {
            FeatureSource::Guard { id, value: GuardValue::Fixed, .. } => Some(id.clone()),
            _ => None,
        },
        prompts: None,
        train_share: (settings.train_share < 1.0).then_some(settings.train_share),
        learning_curve,
    };
    Ok((head, manifest))
}

/// The training prompts of each point of the learning curve, smallest
/// share first; refused before any feature is computed when a share is out
/// of (0, `train_share`) or keeps no labels.
fn curve_prompts(
    input: &CorpusInput,
    held: &BTreeSet<String>,
    settings: &FitSettings,
) -> Result<Vec<(f64, BTreeSet<String>)>, RewardError> {
    let mut shares = settings.curve.clone();
    shares.sort_by(f64::total_cmp);
    shares.dedup();
    let refuse = |detail: String| RewardError::Data { file: input.path.display().to_string(), detail };
    shares
        .into_iter()
        .map(|share| {
            if !(share > 0.0 && share < settings.train_share) {
                return Err(refuse(format!(
                    "the learning curve's share {share} is not in (0, {}), below the training share",
                    settings.train_share
                )));
            }
            let prompts = training_prompts(input.corpus, held, share, settings.training.seed);
            let labels: usize =
                input.corpus.sequences.iter().filter(|s| prompts.contains(s.prompt())).map(|s| s.rewards.len()).sum();
            if labels == 0 {
                return Err(refuse(format!(
                    "the learning curve's share {share} of the training prompts holds no labels"
                )));
            }
            Ok((share, prompts))
        })
        .collect()
}

/// A seeded share of the corpus' prompts.
pub(crate) fn held_out_prompts(corpus: &Corpus, share: f64, seed: u64) -> BTreeSet<String> {
    let prompts = shuffled_prompts(corpus, &BTreeSet::new(), seed);
    let n = (prompts.len() as f64 * share).round() as usize;
    prompts.into_iter().take(n).collect()
}

/// A seeded share of the prompts not held out (at least one when `share`
/// is positive); all of them when `share` is 1.
pub(crate) fn training_prompts(corpus: &Corpus, held: &BTreeSet<String>, share: f64, seed: u64) -> BTreeSet<String> {
    // Another stream than the held-out draw's, so the two do not move together.
    let prompts = shuffled_prompts(corpus, held, seed ^ 0x7261_696e);
    let n = ((prompts.len() as f64 * share).round() as usize).max(usize::from(share > 0.0));
    prompts.into_iter().take(n).collect()
}

/// The corpus' distinct prompts outside `except`, in a seeded order.
fn shuffled_prompts(corpus: &Corpus, except: &BTreeSet<String>, seed: u64) -> Vec<String> {
    let mut prompts: Vec<String> = corpus
        .sequences
        .iter()
        .map(LabelledSequence::prompt)
        .filter(|p| !except.contains(*p))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(str::to_owned)
        .collect();
    prompts.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    prompts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mrm::corpus::CorpusHeader;

    fn corpus(prompts: usize) -> Corpus {
        let sequences = (0..prompts)
            .map(|i| LabelledSequence {
                prompt_id: format!("advbench/{i}"),
                sample: 0,
                harmful: true,
                prefilled: false,
                context: vec![1],
                response: vec![2],
                rewards: vec![0.5],
                requests: Vec::new(),
            })
            .collect();
        let header = CorpusHeader::new(("qwen", "aa"), ("default", "bb"), Default::default(), serde_json::json!({}));
        Corpus { header, sequences, valid_bytes: 0 }
    }

    #[test]
    fn the_training_share_is_drawn_after_the_held_out_prompts_which_stay_put() {
        let corpus = corpus(200);
        let held = held_out_prompts(&corpus, 0.1, 7);
        assert_eq!(held.len(), 20);
        let mut previous: Option<BTreeSet<String>> = None;
        for share in [0.25, 0.5, 1.0] {
            let kept = training_prompts(&corpus, &held, share, 7);
            assert_eq!(kept.len(), (180.0 * share) as usize);
            assert!(kept.is_disjoint(&held), "share {share}: a held-out prompt is trained on");
            // The held-out draw does not depend on the training share.
            assert_eq!(held_out_prompts(&corpus, 0.1, 7), held);
            if let Some(p) = previous {
                assert!(p.len() < kept.len() && p.is_subset(&kept), "share {share}: a curve's sizes are not nested");
            }
            previous = Some(kept);
        }
        assert_eq!(training_prompts(&corpus, &held, 0.001, 7).len(), 1, "a positive share keeps a prompt");
    }

    #[test]
    fn curve_shares_are_sorted_nested_in_range_and_keep_labels() {
        let settings = |curve: Vec<f64>, train_share: f64| FitSettings {
            held_out: 0.1,
            train_share,
            curve,
            training: MrmTraining { seed: 7, ..MrmTraining::default() },
            options: TreeOptions::default(),
        };
        let full = corpus(40);
        let input = CorpusInput { corpus: &full, sha256: String::new(), path: std::path::Path::new("c.jsonl") };
        let held = held_out_prompts(&full, 0.1, 7);
        let points = curve_prompts(&input, &held, &settings(vec![0.5, 0.25, 0.5], 1.0)).unwrap();
        assert_eq!(points.iter().map(|p| p.0).collect::<Vec<_>>(), [0.25, 0.5], "sorted, repeats dropped");
        assert_eq!((points[0].1.len(), points[1].1.len()), (9, 18));
        assert!(points[0].1.is_subset(&points[1].1) && points[1].1.is_disjoint(&held));
        for bad in [0.0, -0.1, 0.8, 0.9] {
            assert!(curve_prompts(&input, &held, &settings(vec![bad], 0.8)).is_err(), "share {bad} accepted");
        }
        let mut unlabelled = corpus(40);
        for seq in &mut unlabelled.sequences {
            seq.response.clear();
            seq.rewards.clear();
        }
        let input = CorpusInput { corpus: &unlabelled, ..input };
        let err = curve_prompts(&input, &held, &settings(vec![0.25], 1.0)).unwrap_err();
        assert!(err.to_string().contains("holds no labels"), "{err}");
    }
}
