//! Training a probe guard end to end: features of every labelled pair at
//! every cut, cross-validation of the L2 penalty (training data only), and
//! the final fit on all of it with the chosen penalty.

use saffron_engine::PrefixTree;

use super::artifact::TrainingRecord;
use super::cross_validation::{best, cross_validate, folds_by_prompt};
use super::features::{extract, ProbeInputs};
use super::head::{HeadTraining, LinearHead};
use crate::judge_data::JudgeData;
use crate::{GuardInput, RewardError};

/// The L2 penalties tried by cross-validation.
pub const L2_GRID: [f32; 4] = [1e-4, 1e-3, 1e-2, 1e-1];

/// Settings of one training run.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub inputs: ProbeInputs,
    pub head: HeadTraining,
    pub folds: usize,
    pub seed: u64,
    /// Pairs per prefix-tree request.
    pub chunk: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions { inputs: ProbeInputs::default(), head: HeadTraining::default(), folds: 5, seed: 0, chunk: 16 }
    }
}

/// Trains a head on `data`; `progress` is told how many pairs have their
/// features.
pub fn train(
    input: &GuardInput,
    tree: &mut PrefixTree,
    data: &JudgeData,
    options: &TrainOptions,
    progress: &mut dyn FnMut(usize),
) -> Result<(LinearHead, TrainingRecord), RewardError> {
    if data.items.is_empty() {
        return Err(RewardError::Data { file: "(training data)".into(), detail: "no labelled pairs".into() });
    }
    let pairs: Vec<(&str, &str)> = data.items.iter().map(|l| (l.prompt.as_str(), l.response.as_str())).collect();
    let labels: Vec<bool> = data.items.iter().map(|l| l.unsafe_).collect();
    let rows = extract(input, &options.inputs, tree, &pairs, options.chunk, progress)?;
    let prompts: Vec<&str> = pairs.iter().map(|p| p.0).collect();
    let folds = folds_by_prompt(&prompts, options.folds.max(2), options.seed);
    let scores = cross_validate(&rows, &labels, &folds, &L2_GRID, &options.head);
    let chosen = best(&scores).map_or(options.head.l2, |s| s.l2);
    let head_training = HeadTraining { l2: chosen, ..options.head };
    let x: Vec<&[f32]> = rows.iter().map(|r| r.hidden.as_slice()).collect();
    let y: Vec<bool> = rows.iter().map(|r| labels[r.pair]).collect();
    let head = LinearHead::fit(&x, &y, &head_training);
    let record = TrainingRecord {
        data_files: data.files.clone(),
        pairs: pairs.len(),
        unsafe_pairs: labels.iter().filter(|&&u| u).count(),
        rows: rows.len(),
        seed: options.seed,
        folds: options.folds.max(2),
        head: head_training,
        cross_validation: scores,
    };
    Ok((head, record))
}
