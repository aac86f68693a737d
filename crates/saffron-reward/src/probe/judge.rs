//! Training a judge: a probe read on whole responses only, the features it
//! reads and its L2 penalty chosen together on the dev split, then its
//! threshold (the log-odds above which an answer is unsafe) calibrated on
//! the dev split too. Every candidate's head is kept, so that each can be
//! measured on the held-out test set after the choice was made.

use saffron_engine::PrefixTree;
use serde::{Deserialize, Serialize};

use super::artifact::TrainingRecord;
use super::features::{pair_features, FeatureRow, ProbeFeatures, ProbeInputs};
use super::head::{HeadTraining, LinearHead};
use super::penalty::{dev_scores, Labelled, PenaltyScore};
use super::train::{TrainData, L2_GRID};
use crate::guard::keep_only_or_clear;
use crate::judge_data::JudgeData;
use crate::{BinaryMetrics, GuardInput, RefusalJudge, RewardError};

/// A judge reads a response up to this many guard tokens, whole.
pub const JUDGE_RESPONSE_TOKENS: usize = 128;

/// The probe inputs of a judge: no partial responses.
pub fn judge_inputs() -> ProbeInputs {
    ProbeInputs { prefix_lengths: vec![JUDGE_RESPONSE_TOKENS], ..ProbeInputs::default() }
}

/// How a judge's verdict uses the refusal strings beside its head.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefusalRule {
    /// The head decides alone.
    #[default]
    Ignore,
    /// A response holding a refusal phrase is safe whatever the head says
    /// (an ensemble with the refusal-string judge: unsafe needs both).
    Veto,
}

/// The log-odds of "unsafe" a vetoed response gets: below any threshold.
pub const VETOED_LOGIT: f32 = -1.0e3;

impl RefusalRule {
    pub const ALL: [RefusalRule; 2] = [RefusalRule::Ignore, RefusalRule::Veto];

    /// The head's log-odds `logit` of "unsafe" for a response, after the rule.
    pub fn apply(self, logit: f32, refuses: bool) -> f32 {
        match self {
            RefusalRule::Veto if refuses => logit.min(VETOED_LOGIT),
            _ => logit,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RefusalRule::Ignore => "",
            RefusalRule::Veto => "+veto",
        }
    }
}

/// One judge design to fit: what the head reads and how refusals count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Design {
    pub features: ProbeFeatures,
    pub refusal: RefusalRule,
}

impl Design {
    /// Every features × refusal-rule pair.
    pub fn all(features: &[ProbeFeatures]) -> Vec<Design> {
        features.iter().flat_map(|&f| RefusalRule::ALL.map(|r| Design { features: f, refusal: r })).collect()
    }

    /// `last-mean`, `mean+veto`, ...
    pub fn name(self) -> String {
        format!("{}{}", self.features.name(), self.refusal.name())
    }
}

/// One trained candidate: its design, head and dev-calibrated threshold.
pub struct Candidate {
    pub design: Design,
    pub head: LinearHead,
    pub threshold: f32,
    /// On the dev split at the calibrated threshold.
    pub dev: BinaryMetrics,
    pub record: TrainingRecord,
}

/// The backbone's feature rows ([`ProbeFeatures::LastMeanRefusal`], the
/// richest, from which every candidate selects) of the train and dev pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeRows {
    pub train: Vec<Vec<f32>>,
    pub dev: Vec<Vec<f32>>,
}

/// Trains every candidate of `designs` on `data.train` (each its best L2
/// on `data.dev`, then its threshold on `data.dev`); returns them with the
/// index of the best on dev (accuracy, then the earlier, simpler design).
pub fn train_judge(
    input: &GuardInput,
    tree: &mut PrefixTree,
    data: &TrainData,
    designs: &[Design],
    chunk: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<(Vec<Candidate>, usize), RewardError> {
    let rows = judge_rows(input, tree, data, chunk, progress)?;
    fit_candidates(input.model().shape().d_model as usize, &rows, data, designs)
}

/// The feature rows of the train and dev pairs, in chunks of `chunk` pairs;
/// `progress` is told how many pairs are done.
pub fn judge_rows(
    input: &GuardInput,
    tree: &mut PrefixTree,
    data: &TrainData,
    chunk: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<JudgeRows, RewardError> {
    let inputs = judge_inputs();
    let train = rows(input, &inputs, tree, data.train, chunk, 0, progress)?;
    let dev = rows(input, &inputs, tree, data.dev, chunk, data.train.items.len(), progress)?;
    Ok(JudgeRows { train, dev })
}

/// Fits every design on rows of a backbone of hidden size `d` (see
/// [`train_judge`]).
pub fn fit_candidates(
    d: usize,
    rows: &JudgeRows,
    data: &TrainData,
    designs: &[Design],
) -> Result<(Vec<Candidate>, usize), RewardError> {
    let labels = |data: &JudgeData| data.items.iter().map(|l| l.unsafe_).collect::<Vec<bool>>();
    let (train_labels, dev_labels) = (labels(data.train), labels(data.dev));
    let refusal = RefusalJudge::default();
    let dev_refuses: Vec<bool> = data.dev.items.iter().map(|l| refusal.is_refusal(&l.response)).collect();
    let mut candidates = Vec::new();
    for &design in designs {
        let f = design.features;
        let pick = |rows: &[Vec<f32>]| -> Vec<FeatureRow> {
            rows.iter()
                .enumerate()
                .map(|(pair, r)| FeatureRow { pair, cut: JUDGE_RESPONSE_TOKENS, whole: true, hidden: f.select(r, d) })
                .collect()
        };
        let (train_f, dev_f) = (pick(&rows.train), pick(&rows.dev));
        let scores: Vec<PenaltyScore> = dev_scores(
            &Labelled { rows: &train_f, labels: &train_labels },
            &Labelled { rows: &dev_f, labels: &dev_labels },
            &L2_GRID,
            &HeadTraining::default(),
        )
        .into_iter()
        .map(|s| PenaltyScore { features: f, ..s })
        .collect();
        let best = super::penalty::best(&scores).expect("an L2 grid is never empty");
        let training = HeadTraining { l2: best.l2, ..HeadTraining::default() };
        let x: Vec<&[f32]> = train_f.iter().map(|r| r.hidden.as_slice()).collect();
        let head = LinearHead::fit(&x, &train_labels, &training);
        let logits: Vec<f32> = dev_f
            .iter()
            .zip(&dev_refuses)
            .map(|(r, &refuses)| design.refusal.apply(head.unsafe_logit(&r.hidden), refuses))
            .collect();
        let threshold = calibrate(&logits, &dev_labels);
        let predicted: Vec<bool> = logits.iter().map(|&z| z > threshold).collect();
        let record = TrainingRecord {
            data_files: data.train.files.clone(),
            pairs: train_labels.len(),
            unsafe_pairs: train_labels.iter().filter(|&&u| u).count(),
            rows: train_f.len(),
            seed: 0,
            folds: None,
            head: training,
            cross_validation: Vec::new(),
            dev: scores,
            prompts: None,
        };
        candidates.push(Candidate { design, head, threshold, dev: BinaryMetrics::of(&predicted, &dev_labels), record });
    }
    let chosen = (0..candidates.len())
        .max_by(|&a, &b| candidates[a].dev.accuracy.total_cmp(&candidates[b].dev.accuracy).then(b.cmp(&a)))
        .ok_or_else(|| RewardError::Data { file: "(judge candidates)".into(), detail: "no candidate".into() })?;
    Ok((candidates, chosen))
}

/// The threshold with the best accuracy on (logit, label) pairs: a midpoint
/// between two sorted logits (ties: the one nearest 0, the uncalibrated
/// head's own).
pub fn calibrate(logits: &[f32], labels: &[bool]) -> f32 {
    let mut sorted: Vec<f32> = logits.to_vec();
    sorted.sort_by(f32::total_cmp);
    let mut candidates = vec![0.0f32];
    candidates.extend(sorted.windows(2).map(|w| (w[0] + w[1]) / 2.0));
    let accuracy = |t: f32| logits.iter().zip(labels).filter(|(z, &u)| (**z > t) == u).count();
    candidates
        .into_iter()
        .max_by(|&a, &b| accuracy(a).cmp(&accuracy(b)).then(b.abs().total_cmp(&a.abs())))
        .unwrap_or(0.0)
}

/// The richest feature rows (last, mean, refusal) of every pair.
fn rows(
    input: &GuardInput,
    inputs: &ProbeInputs,
    tree: &mut PrefixTree,
    data: &JudgeData,
    chunk: usize,
    done_before: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<Vec<f32>>, RewardError> {
    let pairs: Vec<(&str, &str)> = data.items.iter().map(|l| (l.prompt.as_str(), l.response.as_str())).collect();
    let mut rows = Vec::with_capacity(pairs.len());
    for (c, group) in pairs.chunks(chunk.max(1)).enumerate() {
        let features = pair_features(input, inputs, ProbeFeatures::LastMeanRefusal, tree, group)?;
        rows.extend(features);
        // A short cache keeps attention cheap; the instruction stays.
        keep_only_or_clear(tree, input.shared_prefix());
        progress(done_before + (c * chunk + group.len()).min(pairs.len()));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_maximises_accuracy_and_prefers_zero_on_ties() {
        // Unsafe above 1.0: the best cut is between 0.5 and 1.5.
        let logits = [-2.0, -1.0, 0.5, 1.5, 2.0];
        let labels = [false, false, false, true, true];
        let t = calibrate(&logits, &labels);
        assert!(t > 0.5 && t < 1.5, "{t}");
        // Separable at 0 already: 0 is kept.
        assert_eq!(calibrate(&[-1.0, 1.0], &[false, true]), 0.0);
    }
}
