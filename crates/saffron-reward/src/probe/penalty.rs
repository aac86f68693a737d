//! Choosing the probe head's L2 penalty on the dev split: each penalty is
//! fitted on the training pairs and scored on the dev pairs, whose prompts
//! it never saw (splits are by prompt content, so a prompt's other answers
//! are on the same side). The held-out test pairs take no part.

use serde::{Deserialize, Serialize};

use super::features::{FeatureRow, ProbeFeatures};
use super::head::{HeadTraining, LinearHead};
use crate::BinaryMetrics;

/// Scores of one L2 setting on pairs its head was not fitted to.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PenaltyScore {
    /// What the head read (a judge's candidates differ in it).
    #[serde(default, skip_serializing_if = "is_last")]
    pub features: ProbeFeatures,
    pub l2: f32,
    /// On each pair's whole (capped) response: the judge's view.
    pub whole: BinaryMetrics,
    /// On every cut (partial responses included): the PRM's view.
    pub prefixes: BinaryMetrics,
}

/// Rows of one side with their pairs' labels (`FeatureRow::pair` indexes
/// `labels`).
pub struct Labelled<'a> {
    pub rows: &'a [FeatureRow],
    pub labels: &'a [bool],
}

impl Labelled<'_> {
    fn actual(&self) -> Vec<bool> {
        self.rows.iter().map(|r| self.labels[r.pair]).collect()
    }
}

/// Fits `train` with each penalty of `l2_grid` and scores it on `dev`.
pub fn dev_scores(train: &Labelled, dev: &Labelled, l2_grid: &[f32], training: &HeadTraining) -> Vec<PenaltyScore> {
    let x: Vec<&[f32]> = train.rows.iter().map(|r| r.hidden.as_slice()).collect();
    let y = train.actual();
    let actual = dev.actual();
    l2_grid
        .iter()
        .map(|&l2| {
            let head = LinearHead::fit(&x, &y, &HeadTraining { l2, ..*training });
            let predicted: Vec<bool> = dev.rows.iter().map(|r| head.unsafe_logit(&r.hidden) > 0.0).collect();
            let whole: Vec<usize> = (0..dev.rows.len()).filter(|&i| dev.rows[i].whole).collect();
            PenaltyScore {
                features: ProbeFeatures::default(),
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

fn is_last(features: &ProbeFeatures) -> bool {
    *features == ProbeFeatures::Last
}

/// The setting with the best whole-response accuracy (ties: the larger
/// penalty, the simpler head).
pub fn best(scores: &[PenaltyScore]) -> Option<PenaltyScore> {
    scores.iter().copied().max_by(|a, b| a.whole.accuracy.total_cmp(&b.whole.accuracy).then(a.l2.total_cmp(&b.l2)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize, flipped: usize) -> (Vec<FeatureRow>, Vec<bool>) {
        let labels: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
        let rows = (0..n)
            .map(|i| {
                let signal = if labels[i] != (i == flipped) { 1.0 } else { -1.0 };
                FeatureRow { pair: i, cut: 1, whole: true, hidden: vec![signal, (i % 7) as f32] }
            })
            .collect();
        (rows, labels)
    }

    #[test]
    fn penalties_are_scored_on_the_dev_pairs_only() {
        // Feature 0 carries the label; one dev pair is flipped, so dev
        // accuracy is 39/40 whatever the training side.
        let (train_rows, train_labels) = rows(60, usize::MAX);
        let (dev_rows, dev_labels) = rows(40, 10);
        let train = Labelled { rows: &train_rows, labels: &train_labels };
        let dev = Labelled { rows: &dev_rows, labels: &dev_labels };
        let scores = dev_scores(&train, &dev, &[1e-3, 1e-1], &HeadTraining::default());
        for s in &scores {
            assert_eq!(s.whole.n, 40);
            assert!((s.whole.accuracy - 39.0 / 40.0).abs() < 1e-9, "{s:?}");
        }
        assert_eq!(best(&scores).unwrap().l2, 1e-1);
    }
}
