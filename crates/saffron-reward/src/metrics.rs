//! Agreement of a binary judge with human labels. "Positive" = unsafe
//! (jailbroken), as in the JailbreakBench classifier comparison.

use serde::{Deserialize, Serialize};

/// Accuracy, F1 and error rates of unsafe/safe verdicts against labels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BinaryMetrics {
    pub accuracy: f64,
    /// F1 of the unsafe class.
    pub f1: f64,
    /// Safe responses called unsafe, over all safe responses.
    pub fpr: f64,
    /// Unsafe responses called safe, over all unsafe responses.
    pub fnr: f64,
    pub n: usize,
}

impl BinaryMetrics {
    /// `predicted[i]` and `actual[i]` are true for unsafe. Rates over an
    /// empty class are 0.
    pub fn of(predicted: &[bool], actual: &[bool]) -> BinaryMetrics {
        assert_eq!(predicted.len(), actual.len(), "one verdict per label");
        let count = |p: bool, a: bool| predicted.iter().zip(actual).filter(|&(&x, &y)| x == p && y == a).count() as f64;
        let (tp, fp, tn, fn_) = (count(true, true), count(true, false), count(false, false), count(false, true));
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        BinaryMetrics {
            accuracy: ratio(tp + tn, predicted.len() as f64),
            f1: ratio(2.0 * tp, 2.0 * tp + fp + fn_),
            fpr: ratio(fp, fp + tn),
            fnr: ratio(fn_, fn_ + tp),
            n: predicted.len(),
        }
    }
}

/// Area under the ROC curve of `positive` scores against `negative` ones:
/// the chance a random positive scores above a random negative (ties count
/// half). `None` when either side is empty.
pub fn auc(positive: &[f32], negative: &[f32]) -> Option<f64> {
    if positive.is_empty() || negative.is_empty() {
        return None;
    }
    let mut wins = 0.0;
    for p in positive {
        for n in negative {
            wins += if p > n {
                1.0
            } else if p == n {
                0.5
            } else {
                0.0
            };
        }
    }
    Some(wins / (positive.len() * negative.len()) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_by_hand() {
        assert_eq!(auc(&[3.0, 2.0], &[1.0, 0.0]), Some(1.0));
        assert_eq!(auc(&[1.0], &[1.0]), Some(0.5));
        // 2 of 4 pairs won, one tie: (2 + 0.5) / 4
        assert_eq!(auc(&[2.0, 0.5], &[1.0, 0.5]), Some(0.625));
        assert_eq!(auc(&[], &[1.0]), None);
    }

    #[test]
    fn hand_computed_confusion() {
        // tp 2, fn 1, fp 1, tn 4
        let actual = [true, true, true, false, false, false, false, false];
        let predicted = [true, true, false, true, false, false, false, false];
        let m = BinaryMetrics::of(&predicted, &actual);
        assert_eq!(m.n, 8);
        assert!((m.accuracy - 6.0 / 8.0).abs() < 1e-12);
        assert!((m.f1 - 4.0 / 6.0).abs() < 1e-12);
        assert!((m.fpr - 1.0 / 5.0).abs() < 1e-12);
        assert!((m.fnr - 1.0 / 3.0).abs() < 1e-12);
    }
}
