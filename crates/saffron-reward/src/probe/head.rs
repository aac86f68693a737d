//! The probe's head: logistic regression on standardised hidden states.
//! `z = w·((h − mean) / scale) + b` is the log-odds that the response is
//! unsafe; the guard's reward is `−z` (larger is safer, `< 0` unsafe, and
//! the scale is log-odds, so rewards of different inputs compare).

use serde::{Deserialize, Serialize};

/// A trained linear head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearHead {
    pub mean: Vec<f32>,
    pub scale: Vec<f32>,
    pub weight: Vec<f32>,
    pub bias: f32,
}

/// Training settings of the head.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeadTraining {
    /// L2 penalty on the weights (on standardised features), per example.
    pub l2: f32,
    /// Full-batch Adam steps.
    pub steps: usize,
    pub learning_rate: f32,
}

impl Default for HeadTraining {
    fn default() -> Self {
        HeadTraining { l2: 1e-2, steps: 400, learning_rate: 0.05 }
    }
}

impl LinearHead {
    pub fn dim(&self) -> usize {
        self.weight.len()
    }

    /// Log-odds that the response is unsafe.
    pub fn unsafe_logit(&self, hidden: &[f32]) -> f32 {
        let terms = self.weight.iter().zip(hidden).zip(self.mean.iter().zip(&self.scale));
        self.bias + terms.map(|((w, h), (m, s))| w * (h - m) / s).sum::<f32>()
    }

    /// The guard reward: larger is safer, `< 0` unsafe.
    pub fn reward(&self, hidden: &[f32]) -> f32 {
        -self.unsafe_logit(hidden)
    }

    /// Fits the head to `rows` (hidden states) and `labels` (true = unsafe)
    /// by full-batch Adam on the mean log-loss plus `l2 · |w|²`. Full-batch
    /// and seedless, so the same data gives the same head.
    pub fn fit(rows: &[&[f32]], labels: &[bool], training: &HeadTraining) -> LinearHead {
        let y: Vec<f32> = labels.iter().map(|&l| if l { 1.0 } else { 0.0 }).collect();
        fit_adam(rows, &y, training, |z, y| sigmoid(z) - y)
    }

    /// Fits the head's linear function `z` to real `targets` (a regression:
    /// mean squared error plus `l2 · |w|²`), by the same full-batch Adam.
    pub fn fit_squared(rows: &[&[f32]], targets: &[f32], training: &HeadTraining) -> LinearHead {
        fit_adam(rows, targets, training, |z, y| z - y)
    }
}

/// Full-batch Adam on standardised rows; `residual(z, y)` is the loss'
/// derivative in the linear output `z` for target `y`.
fn fit_adam(rows: &[&[f32]], y: &[f32], training: &HeadTraining, residual: impl Fn(f32, f32) -> f32) -> LinearHead {
    assert!(!rows.is_empty() && rows.len() == y.len(), "one target per row, at least one row");
    let (n, d) = (rows.len(), rows[0].len());
    let (mean, scale) = standardisation(rows);
    let x: Vec<Vec<f32>> = rows.iter().map(|r| (0..d).map(|i| (r[i] - mean[i]) / scale[i]).collect()).collect();
    // Parameters: d weights then the bias.
    let mut theta = vec![0f32; d + 1];
    let (mut m, mut v) = (vec![0f32; d + 1], vec![0f32; d + 1]);
    let (beta1, beta2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let mut grad = vec![0f32; d + 1];
    for step in 1..=training.steps {
        grad.iter_mut().for_each(|g| *g = 0.0);
        for (xi, &yi) in x.iter().zip(y) {
            let z = theta[d] + xi.iter().zip(&theta[..d]).map(|(a, w)| a * w).sum::<f32>();
            let r = residual(z, yi);
            for (g, a) in grad[..d].iter_mut().zip(xi) {
                *g += r * a;
            }
            grad[d] += r;
        }
        for j in 0..=d {
            grad[j] /= n as f32;
            if j < d {
                grad[j] += 2.0 * training.l2 * theta[j];
            }
            m[j] = beta1 * m[j] + (1.0 - beta1) * grad[j];
            v[j] = beta2 * v[j] + (1.0 - beta2) * grad[j] * grad[j];
            let m_hat = m[j] / (1.0 - beta1.powi(step as i32));
            let v_hat = v[j] / (1.0 - beta2.powi(step as i32));
            theta[j] -= training.learning_rate * m_hat / (v_hat.sqrt() + eps);
        }
    }
    LinearHead { mean, scale, bias: theta[d], weight: theta[..d].to_vec() }
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// Per-feature mean and standard deviation (1 where a feature is constant).
fn standardisation(rows: &[&[f32]]) -> (Vec<f32>, Vec<f32>) {
    let (n, d) = (rows.len() as f64, rows[0].len());
    let mut mean = vec![0f64; d];
    for r in rows {
        for i in 0..d {
            mean[i] += r[i] as f64 / n;
        }
    }
    let mut var = vec![0f64; d];
    for r in rows {
        for i in 0..d {
            var[i] += (r[i] as f64 - mean[i]).powi(2) / n;
        }
    }
    let scale = var.iter().map(|v| if *v > 1e-12 { v.sqrt() as f32 } else { 1.0 }).collect();
    (mean.into_iter().map(|m| m as f32).collect(), scale)
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    #[test]
    fn recovers_a_separating_direction() {
        // Labels from a known direction (feature 1 minus feature 3) plus
        // nuisance features; the fit must classify held-out points.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut draw = |n: usize| -> (Vec<Vec<f32>>, Vec<bool>) {
            let rows: Vec<Vec<f32>> = (0..n).map(|_| (0..6).map(|_| rng.gen_range(-1.0..1.0)).collect()).collect();
            let labels = rows.iter().map(|r| r[1] - r[3] > 0.1).collect();
            (rows, labels)
        };
        let (train, train_y) = draw(400);
        let (test, test_y) = draw(200);
        let refs: Vec<&[f32]> = train.iter().map(Vec::as_slice).collect();
        let head = LinearHead::fit(&refs, &train_y, &HeadTraining { l2: 1e-4, ..HeadTraining::default() });
        let correct = test.iter().zip(&test_y).filter(|(r, &y)| (head.unsafe_logit(r) > 0.0) == y).count();
        assert!(correct >= 190, "{correct}/200 correct");
        assert!(head.weight[1] > 0.0 && head.weight[3] < 0.0);
        assert!(head.weight[1].abs() > 5.0 * head.weight[0].abs());
        // The reward is the negated log-odds.
        assert_eq!(head.reward(&test[0]), -head.unsafe_logit(&test[0]));
    }

    #[test]
    fn a_squared_fit_recovers_a_linear_target() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let rows: Vec<Vec<f32>> = (0..300).map(|_| (0..4).map(|_| rng.gen_range(-1.0..1.0)).collect()).collect();
        let target = |r: &[f32]| 3.0 * r[0] - 2.0 * r[2] + 0.5;
        let y: Vec<f32> = rows.iter().map(|r| target(r)).collect();
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let training = HeadTraining { l2: 0.0, steps: 2000, learning_rate: 0.05 };
        let head = LinearHead::fit_squared(&refs, &y, &training);
        for r in rows.iter().take(20) {
            assert!((head.unsafe_logit(r) - target(r)).abs() < 0.05, "{} vs {}", head.unsafe_logit(r), target(r));
        }
    }

    #[test]
    fn constant_features_do_not_divide_by_zero() {
        let rows = [[1.0f32, 0.0], [1.0, 1.0], [1.0, 2.0], [1.0, 3.0]];
        let refs: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
        let head = LinearHead::fit(&refs, &[false, false, true, true], &HeadTraining::default());
        assert_eq!(head.scale[0], 1.0);
        assert!(head.unsafe_logit(&[1.0, 3.0]) > 0.0 && head.unsafe_logit(&[1.0, 0.0]) < 0.0);
    }
}
