//! Training a probe guard end to end: features of every labelled pair at
//! every cut, the L2 penalty chosen on the dev split, and the final fit on
//! the training split with the chosen penalty.

use saffron_engine::PrefixTree;

use super::artifact::TrainingRecord;
use super::features::{extract, FeatureRow, ProbeInputs};
use super::head::{HeadTraining, LinearHead};
use super::penalty::{best, dev_scores, Labelled};
use crate::judge_data::JudgeData;
use crate::{GuardInput, RewardError};

/// The L2 penalties tried on the dev split.
pub const L2_GRID: [f32; 4] = [1e-4, 1e-3, 1e-2, 1e-1];

/// Settings of one training run.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub inputs: ProbeInputs,
    pub head: HeadTraining,
    pub seed: u64,
    /// Pairs per prefix-tree request.
    pub chunk: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions { inputs: ProbeInputs::default(), head: HeadTraining::default(), seed: 0, chunk: 16 }
    }
}

/// The labelled pairs a head is trained on and chosen on.
pub struct TrainData<'a> {
    pub train: &'a JudgeData,
    pub dev: &'a JudgeData,
}

/// Trains a head on `data.train`, its penalty chosen on `data.dev`;
/// `progress` is told how many pairs (of both) have their features.
pub fn train(
    input: &GuardInput,
    tree: &mut PrefixTree,
    data: &TrainData,
    options: &TrainOptions,
    progress: &mut dyn FnMut(usize),
) -> Result<(LinearHead, TrainingRecord), RewardError> {
    for (side, set) in [("training", data.train), ("dev", data.dev)] {
        if set.items.is_empty() {
            return Err(RewardError::Data { file: format!("(the {side} pairs)"), detail: "no labelled pairs".into() });
        }
    }
    let (train_rows, train_labels) = features(input, tree, data.train, options, 0, progress)?;
    let (dev_rows, dev_labels) = features(input, tree, data.dev, options, data.train.items.len(), progress)?;
    let scores = dev_scores(
        &Labelled { rows: &train_rows, labels: &train_labels },
        &Labelled { rows: &dev_rows, labels: &dev_labels },
        &L2_GRID,
        &options.head,
    );
    let chosen = best(&scores).map_or(options.head.l2, |s| s.l2);
    let head_training = HeadTraining { l2: chosen, ..options.head };
    let x: Vec<&[f32]> = train_rows.iter().map(|r| r.hidden.as_slice()).collect();
    let y: Vec<bool> = train_rows.iter().map(|r| train_labels[r.pair]).collect();
    let head = LinearHead::fit(&x, &y, &head_training);
    let record = TrainingRecord {
        data_files: data.train.files.clone(),
        pairs: train_labels.len(),
        unsafe_pairs: train_labels.iter().filter(|&&u| u).count(),
        rows: train_rows.len(),
        seed: options.seed,
        folds: None,
        head: head_training,
        cross_validation: Vec::new(),
        dev: scores,
        prompts: None,
    };
    Ok((head, record))
}

/// Feature rows and labels of `data`; `progress` is told `done_before`
/// plus the pairs done here.
fn features(
    input: &GuardInput,
    tree: &mut PrefixTree,
    data: &JudgeData,
    options: &TrainOptions,
    done_before: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<(Vec<FeatureRow>, Vec<bool>), RewardError> {
    let pairs: Vec<(&str, &str)> = data.items.iter().map(|l| (l.prompt.as_str(), l.response.as_str())).collect();
    let labels = data.items.iter().map(|l| l.unsafe_).collect();
    let rows = extract(input, &options.inputs, tree, &pairs, options.chunk, &mut |done| progress(done_before + done))?;
    Ok((rows, labels))
}
