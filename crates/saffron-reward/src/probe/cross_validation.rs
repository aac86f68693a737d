//! K-fold cross-validation of the probe head on the training data only (the
//! held-out JBB set never takes part in a choice). Folds are grouped by
//! prompt: PyRIT has several responses per objective, and a response must
//! not be judged by a head that saw its prompt's other answers.

use std::collections::HashMap;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::features::FeatureRow;
use super::head::{HeadTraining, LinearHead};
use crate::BinaryMetrics;

/// Out-of-fold scores of one L2 setting.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CvScore {
    pub l2: f32,
    /// On each pair's whole (capped) response: the judge's view.
    pub whole: BinaryMetrics,
    /// On every cut (partial responses included): the PRM's view.
    pub prefixes: BinaryMetrics,
}

/// Fold of each pair: distinct prompts shuffled with `seed`, dealt round
/// robin into `k` folds.
pub fn folds_by_prompt(prompts: &[&str], k: usize, seed: u64) -> Vec<usize> {
    let mut distinct: Vec<&str> = prompts.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    distinct.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    let fold: HashMap<&str, usize> = distinct.iter().enumerate().map(|(i, p)| (*p, i % k)).collect();
    prompts.iter().map(|p| fold[p]).collect()
}

/// Out-of-fold metrics for each L2 value. `labels` and `folds` are per pair
/// (`FeatureRow::pair` indexes them).
pub fn cross_validate(
    rows: &[FeatureRow],
    labels: &[bool],
    folds: &[usize],
    l2_grid: &[f32],
    training: &HeadTraining,
) -> Vec<CvScore> {
    let k = folds.iter().copied().max().map_or(0, |m| m + 1);
    let actual: Vec<bool> = rows.iter().map(|r| labels[r.pair]).collect();
    l2_grid
        .iter()
        .map(|&l2| {
            let mut predicted = vec![false; rows.len()];
            for fold in 0..k {
                let (train, test): (Vec<usize>, Vec<usize>) =
                    (0..rows.len()).partition(|&i| folds[rows[i].pair] != fold);
                if train.is_empty() || test.is_empty() {
                    continue;
                }
                let x: Vec<&[f32]> = train.iter().map(|&i| rows[i].hidden.as_slice()).collect();
                let y: Vec<bool> = train.iter().map(|&i| actual[i]).collect();
                let head = LinearHead::fit(&x, &y, &HeadTraining { l2, ..*training });
                for i in test {
                    predicted[i] = head.unsafe_logit(&rows[i].hidden) > 0.0;
                }
            }
            let whole: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].whole).collect();
            CvScore {
                l2,
                whole: BinaryMetrics::of(
                    &whole.iter().map(|&i| predicted[i]).collect::<Vec<_>>(),
                    &whole.iter().map(|&i| actual[i]).collect::<Vec<_>>(),
                ),
                prefixes: BinaryMetrics::of(&predicted, &actual),
            }
        })
        .collect()
}

/// The setting with the best whole-response accuracy (ties: the larger
/// penalty, the simpler head).
pub fn best(scores: &[CvScore]) -> Option<CvScore> {
    scores.iter().copied().max_by(|a, b| a.whole.accuracy.total_cmp(&b.whole.accuracy).then(a.l2.total_cmp(&b.l2)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_keep_a_prompt_together_and_use_every_fold() {
        let prompts = ["a", "b", "a", "c", "d", "b", "e"];
        let folds = folds_by_prompt(&prompts, 3, 1);
        assert_eq!(folds[0], folds[2]);
        assert_eq!(folds[1], folds[5]);
        let mut used = folds.clone();
        used.sort_unstable();
        used.dedup();
        assert_eq!(used, vec![0, 1, 2]);
        assert_eq!(folds, folds_by_prompt(&prompts, 3, 1), "seeded");
    }

    #[test]
    fn out_of_fold_scores_on_a_learnable_signal() {
        // Feature 0 carries the label (with one flipped pair), feature 1 is
        // noise-free junk: accuracy must be high but not perfect, and no
        // row may be predicted by a head trained on its own fold.
        let n = 60;
        let labels: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
        let rows: Vec<FeatureRow> = (0..n)
            .map(|i| {
                let signal = if labels[i] != (i == 10) { 1.0 } else { -1.0 };
                FeatureRow { pair: i, cut: 1, whole: true, hidden: vec![signal, (i % 7) as f32] }
            })
            .collect();
        let prompts: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
        let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
        let folds = folds_by_prompt(&refs, 5, 3);
        let scores = cross_validate(&rows, &labels, &folds, &[1e-3, 1e-1], &HeadTraining::default());
        for s in &scores {
            assert_eq!(s.whole.n, n);
            assert!((s.whole.accuracy - 59.0 / 60.0).abs() < 1e-9, "{s:?}");
        }
        assert_eq!(best(&scores).unwrap().l2, 1e-1);
    }
}
