//! Partial supervision (method.md section 2): each example is a node `s`
//! (its backbone hidden state), the token `a` that actually followed, and
//! the PRM's reward of `s·a`; the loss is `(M(s)[a] − R(s·a))²` on that one
//! token. Mini-batch Adam over shuffled examples.

use std::collections::BTreeSet;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use saffron_core::TokenId;
use serde::{Deserialize, Serialize};

use super::head::{MrmHead, MrmTraining, TokenMlp};
use crate::probe::head::LinearHead;

/// One supervised node.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub hidden: Vec<f32>,
    pub token: TokenId,
    pub reward: f32,
}

/// How closely the head follows the PRM on a set of examples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Fidelity {
    pub n: usize,
    /// Share of examples with |M − R| ≤ 1 (the paper's criterion).
    pub within_one: f64,
    pub mean_abs_error: f64,
    /// Pearson correlation of M and R.
    pub correlation: f64,
}

/// The head's value term `w·x + c`.
#[derive(Debug, Clone, Copy)]
pub enum ValueTerm<'a> {
    /// Learned with the rest, on the examples' own standardisation.
    Learned,
    /// A probe guard's reward of the state, `threshold − z(h)`, fixed: the
    /// head's standardisation is the probe's and only the token terms are
    /// learned, so `M(s)[a] − R(s)` is what they fit (the paper's MRM is
    /// initialised from its PRM in the same spirit).
    Guard { head: &'a LinearHead, threshold: f32 },
}

/// Trains a head on `examples` over a vocabulary of `vocab_size` tokens.
pub fn train(examples: &[Example], vocab_size: usize, training: &MrmTraining, value: ValueTerm) -> MrmHead {
    assert!(!examples.is_empty(), "at least one example");
    let d = examples[0].hidden.len();
    let r = training.rank;
    let seen: Vec<TokenId> = examples.iter().map(|e| e.token).collect::<BTreeSet<_>>().into_iter().collect();
    let mean_reward = examples.iter().map(|e| e.reward as f64).sum::<f64>() / examples.len() as f64;
    let (mean, scale, value_weight, value_bias) = match value {
        ValueTerm::Learned => {
            let (mean, scale) = standardisation(examples);
            (mean, scale, vec![0.0; d], mean_reward as f32)
        }
        ValueTerm::Guard { head, threshold } => {
            assert_eq!(head.dim(), d, "the guard's head reads states of the examples' size");
            let weight = head.weight.iter().map(|w| -w).collect();
            (head.mean.clone(), head.scale.clone(), weight, threshold - head.bias)
        }
    };
    let frozen_value = matches!(value, ValueTerm::Guard { .. });
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(training.seed);
    let mut init = |n: usize, std: f32| -> Vec<f32> { (0..n).map(|_| rng.gen_range(-std..std)).collect() };
    let mut head = MrmHead {
        value_weight,
        value_bias,
        projection: init(r * d, 1.0 / (d as f32).sqrt()),
        token_bias: vec![0.0; seen.len()],
        token_embedding: init(seen.len() * r, 0.1),
        mean,
        scale,
        rank: r,
        vocab_size,
        mlp: training.mlp_width.map(|k| TokenMlp {
            input: init(k * d, 1.0 / (d as f32).sqrt()),
            bias: vec![0.0; k],
            token_shift: init(seen.len() * k, 0.1),
            output: init(k, 0.1 / (k as f32).sqrt()),
        }),
        seen,
    };
    let index = head.seen_index();
    let xs: Vec<Vec<f32>> = examples.iter().map(|e| head.standardise(&e.hidden)).collect();
    let rows: Vec<usize> = examples.iter().map(|e| index[&e.token]).collect();
    let mut adam = Adam::new(&head, training.learning_rate);
    let mut order: Vec<usize> = (0..examples.len()).collect();
    for _ in 0..training.epochs {
        order.shuffle(&mut rng);
        for batch in order.chunks(training.batch_size.max(1)) {
            let mut g = Gradients::zeros(&head);
            let scale = 2.0 / batch.len() as f32;
            for &i in batch {
                let (x, row) = (&xs[i], rows[i]);
                let node = head.context(x);
                let z = &node.projected;
                let u = &head.token_embedding[row * r..(row + 1) * r];
                let error = node.value + head.token_term(row, &node) - examples[i].reward;
                let e = scale * error;
                for (gw, xi) in g.value_weight.iter_mut().zip(x) {
                    *gw += e * xi;
                }
                g.value_bias += e;
                g.token_bias[row] += e;
                for k in 0..r {
                    g.token_embedding[row * r + k] += e * z[k];
                    let uk = e * u[k];
                    for (gp, xi) in g.projection[k * d..(k + 1) * d].iter_mut().zip(x) {
                        *gp += uk * xi;
                    }
                }
                if let (Some(mlp), Some(gm)) = (&head.mlp, &mut g.mlp) {
                    mlp_gradient(mlp, gm, x, row, &node.units, e);
                }
            }
            g.add_l2(&head, training.l2);
            if frozen_value {
                // Zero gradients leave Adam's moments, and so the value, unchanged.
                g.value_weight.fill(0.0);
                g.value_bias = 0.0;
            }
            adam.step(&mut head, &g);
        }
    }
    head
}

/// Adds one example's gradient of the non-linear term (`e`: the scaled
/// error) to `g`.
fn mlp_gradient(mlp: &TokenMlp, g: &mut TokenMlp, x: &[f32], row: usize, units: &[f32], e: f32) {
    let k = mlp.width();
    let d = x.len();
    for j in 0..k {
        let pre = units[j] + mlp.token_shift[row * k + j];
        if pre <= 0.0 {
            continue;
        }
        g.output[j] += e * pre;
        let back = e * mlp.output[j];
        g.token_shift[row * k + j] += back;
        g.bias[j] += back;
        for (gq, xi) in g.input[j * d..(j + 1) * d].iter_mut().zip(x) {
            *gq += back * xi;
        }
    }
}

/// Fidelity of `head` on `examples`.
pub fn fidelity(head: &MrmHead, examples: &[Example]) -> Fidelity {
    let index = head.seen_index();
    let pairs: Vec<(f64, f64)> = examples
        .iter()
        .map(|e| {
            let node = head.context(&head.standardise(&e.hidden));
            let token = index.get(&e.token).map_or(0.0, |&row| head.token_term(row, &node));
            ((node.value + token) as f64, e.reward as f64)
        })
        .collect();
    Fidelity::of(&pairs)
}

impl Fidelity {
    /// Of (model, reference) reward pairs.
    pub fn of(pairs: &[(f64, f64)]) -> Fidelity {
        let n = pairs.len().max(1) as f64;
        let within = pairs.iter().filter(|(m, r)| (m - r).abs() <= 1.0).count() as f64;
        let mae = pairs.iter().map(|(m, r)| (m - r).abs()).sum::<f64>() / n;
        let (mm, mr) = (pairs.iter().map(|p| p.0).sum::<f64>() / n, pairs.iter().map(|p| p.1).sum::<f64>() / n);
        let cov: f64 = pairs.iter().map(|(m, r)| (m - mm) * (r - mr)).sum();
        let (vm, vr): (f64, f64) =
            (pairs.iter().map(|(m, _)| (m - mm).powi(2)).sum(), pairs.iter().map(|(_, r)| (r - mr).powi(2)).sum());
        let correlation = if vm > 0.0 && vr > 0.0 { cov / (vm * vr).sqrt() } else { 0.0 };
        Fidelity { n: pairs.len(), within_one: within / n, mean_abs_error: mae, correlation }
    }
}

fn standardisation(examples: &[Example]) -> (Vec<f32>, Vec<f32>) {
    let (n, d) = (examples.len() as f64, examples[0].hidden.len());
    let mut mean = vec![0f64; d];
    let mut sq = vec![0f64; d];
    for e in examples {
        for (i, &h) in e.hidden.iter().enumerate() {
            mean[i] += h as f64 / n;
            sq[i] += (h as f64).powi(2) / n;
        }
    }
    let scale = mean
        .iter()
        .zip(&sq)
        .map(|(m, s)| (s - m * m).max(0.0).sqrt())
        .map(|s| if s > 1e-6 { s as f32 } else { 1.0 })
        .collect();
    (mean.into_iter().map(|m| m as f32).collect(), scale)
}

/// Gradients, laid out as the head's trainable parameters.
struct Gradients {
    value_weight: Vec<f32>,
    value_bias: f32,
    projection: Vec<f32>,
    token_bias: Vec<f32>,
    token_embedding: Vec<f32>,
    mlp: Option<TokenMlp>,
}

impl Gradients {
    fn zeros(head: &MrmHead) -> Gradients {
        let zeros = |v: &Vec<f32>| vec![0.0; v.len()];
        Gradients {
            value_weight: zeros(&head.value_weight),
            value_bias: 0.0,
            projection: zeros(&head.projection),
            token_bias: zeros(&head.token_bias),
            token_embedding: zeros(&head.token_embedding),
            mlp: head.mlp.as_ref().map(|m| TokenMlp {
                input: zeros(&m.input),
                bias: zeros(&m.bias),
                token_shift: zeros(&m.token_shift),
                output: zeros(&m.output),
            }),
        }
    }

    fn add_l2(&mut self, head: &MrmHead, l2: f32) {
        let mut pairs = vec![
            (&mut self.value_weight, &head.value_weight),
            (&mut self.projection, &head.projection),
            (&mut self.token_bias, &head.token_bias),
            (&mut self.token_embedding, &head.token_embedding),
        ];
        if let (Some(g), Some(m)) = (&mut self.mlp, &head.mlp) {
            pairs.extend([(&mut g.input, &m.input), (&mut g.token_shift, &m.token_shift), (&mut g.output, &m.output)]);
        }
        for (g, p) in pairs {
            g.iter_mut().zip(p.iter()).for_each(|(g, p)| *g += 2.0 * l2 * p);
        }
    }

    fn flat(&self) -> impl Iterator<Item = f32> + '_ {
        let mlp = self.mlp.iter().flat_map(|m| m.input.iter().chain(&m.bias).chain(&m.token_shift).chain(&m.output));
        self.value_weight
            .iter()
            .chain(std::iter::once(&self.value_bias))
            .chain(&self.projection)
            .chain(&self.token_bias)
            .chain(&self.token_embedding)
            .chain(mlp)
            .copied()
    }
}

/// Adam over the head's parameters in `Gradients::flat` order.
struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
    step: i32,
    learning_rate: f32,
}

impl Adam {
    fn new(head: &MrmHead, learning_rate: f32) -> Adam {
        let n = Gradients::zeros(head).flat().count();
        Adam { m: vec![0.0; n], v: vec![0.0; n], step: 0, learning_rate }
    }

    fn step(&mut self, head: &mut MrmHead, g: &Gradients) {
        const B1: f32 = 0.9;
        const B2: f32 = 0.999;
        self.step += 1;
        let (c1, c2) = (1.0 - B1.powi(self.step), 1.0 - B2.powi(self.step));
        let mut bias = [head.value_bias];
        let mlp = head.mlp.iter_mut().flat_map(|m| {
            m.input.iter_mut().chain(m.bias.iter_mut()).chain(m.token_shift.iter_mut()).chain(m.output.iter_mut())
        });
        let params = head
            .value_weight
            .iter_mut()
            .chain(bias.iter_mut())
            .chain(head.projection.iter_mut())
            .chain(head.token_bias.iter_mut())
            .chain(head.token_embedding.iter_mut())
            .chain(mlp);
        for (((p, g), m), v) in params.zip(g.flat()).zip(&mut self.m).zip(&mut self.v) {
            *m = B1 * *m + (1.0 - B1) * g;
            *v = B2 * *v + (1.0 - B2) * g * g;
            *p -= self.learning_rate * (*m / c1) / ((*v / c2).sqrt() + 1e-8);
        }
        head.value_bias = bias[0];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A known reward: R(s·a) = 2·x0 − x1 + effect(a), with token 5
    /// "safe" (+3), token 9 "unsafe" (−4) and token 7 neutral, plus a
    /// context-dependent token 11 whose effect is +2·x2.
    fn known(n: usize, seed: u64) -> Vec<Example> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let hidden: Vec<f32> = (0..6).map(|_| rng.gen_range(-1.0..1.0)).collect();
                let token = [5, 9, 7, 11][rng.gen_range(0..4)];
                let effect = match token {
                    5 => 3.0,
                    9 => -4.0,
                    11 => 2.0 * hidden[2],
                    _ => 0.0,
                };
                let reward = 2.0 * hidden[0] - hidden[1] + effect;
                Example { hidden, token, reward }
            })
            .collect()
    }

    #[test]
    fn recovers_a_known_reward_function_and_masks_exactly_the_unsupervised_tokens() {
        let training =
            MrmTraining { rank: 4, epochs: 40, batch_size: 32, learning_rate: 1e-2, l2: 0.0, seed: 1, mlp_width: None };
        let head = train(&known(2000, 2), 16, &training, ValueTerm::Learned);
        let f = fidelity(&head, &known(500, 3));
        assert!(f.within_one > 0.97 && f.correlation > 0.97, "{f:?}");
        assert_eq!(head.seen, vec![5, 7, 9, 11]);
        let unseen: Vec<TokenId> = (0..16).filter(|&t| head.is_unseen(t)).collect();
        assert_eq!(unseen, vec![0, 1, 2, 3, 4, 6, 8, 10, 12, 13, 14, 15]);
        // One call scores every token: at a neutral point, the safe token
        // ranks above the neutral one above the unsafe one.
        let rewards = head.rewards(&[0.0; 6]);
        assert_eq!(rewards.len(), 16);
        assert!(rewards[5] > rewards[7] + 2.0 && rewards[7] > rewards[9] + 3.0, "{rewards:?}");
    }

    /// A token whose effect is not linear in the state, `3·|x2|`: the
    /// bilinear terms cannot hold it, the non-linear term can.
    #[test]
    fn the_non_linear_term_learns_an_effect_the_bilinear_one_cannot() {
        let fold = |examples: Vec<Example>| -> Vec<Example> {
            examples
                .into_iter()
                .map(|mut e| {
                    if e.token == 11 {
                        e.reward += 3.0 * e.hidden[2].abs() - 2.0 * e.hidden[2];
                    }
                    e
                })
                .collect()
        };
        let (train_set, held) = (fold(known(3000, 4)), fold(known(600, 5)));
        let bilinear =
            MrmTraining { rank: 4, epochs: 40, batch_size: 32, learning_rate: 1e-2, l2: 0.0, seed: 1, mlp_width: None };
        let mlp = MrmTraining { mlp_width: Some(16), ..bilinear };
        let only_11 = |e: &&Example| e.token == 11;
        let held_11: Vec<Example> = held.iter().filter(only_11).cloned().collect();
        let without = fidelity(&train(&train_set, 16, &bilinear, ValueTerm::Learned), &held_11);
        let with = fidelity(&train(&train_set, 16, &mlp, ValueTerm::Learned), &held_11);
        assert!(with.mean_abs_error < 0.5 * without.mean_abs_error, "with {with:?}, without {without:?}");
        assert!(with.within_one > 0.95, "{with:?}");
    }
}
