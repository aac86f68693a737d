//! Next-token choice: greedy, temperature, top-k and nucleus (top-p), with a
//! minimum length before end-of-generation, seeded per tree node so that a
//! result never depends on how nodes were batched.

use crate::TokenId;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How the next token is chosen from the logits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum Decoding {
    /// The most likely token (ties: the lowest id).
    Greedy,
    /// A random draw from the tempered distribution, restricted to the `top_k`
    /// most likely tokens (when set) and then to the nucleus of mass `top_p`.
    Sample {
        temperature: f32,
        #[serde(default)]
        top_k: Option<usize>,
        #[serde(default = "default_top_p")]
        top_p: f32,
    },
}

fn default_top_p() -> f32 {
    1.0
}

impl Default for Decoding {
    /// The paper's sampling setting: temperature 1, top-p 0.8 (method.md §1).
    fn default() -> Self {
        Decoding::Sample { temperature: 1.0, top_k: None, top_p: 0.8 }
    }
}

impl Decoding {
    /// Rejects settings that have no meaning, with the reason.
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            Decoding::Greedy => Ok(()),
            Decoding::Sample { temperature, top_k, top_p } => {
                if !(temperature > 0.0 && temperature.is_finite()) {
                    return Err(format!("temperature must be > 0 (got {temperature}); use greedy decoding for 0"));
                }
                if !(top_p > 0.0 && top_p <= 1.0) {
                    return Err(format!("top-p must be in (0, 1] (got {top_p})"));
                }
                if top_k == Some(0) {
                    return Err("top-k must be at least 1 (leave it unset to disable)".into());
                }
                Ok(())
            }
        }
    }
}

/// A candidate next token with its probability after tempering, truncation
/// and renormalisation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub token: TokenId,
    pub prob: f32,
}

/// The tokens a sampler may draw, most likely first, with probabilities
/// renormalised over the kept set.
///
/// Nucleus rule (method.md §3): walking tokens from most to least likely,
/// a token is kept while the probability mass *before* it is below `top_p`,
/// so the top token is always kept. `banned` tokens (end-of-generation
/// before the minimum length) get probability zero first.
pub fn nucleus(
    logits: &[f32],
    temperature: f32,
    top_k: Option<usize>,
    top_p: f32,
    banned: &[TokenId],
) -> Vec<Candidate> {
    let mut scored: Vec<(f32, TokenId)> = logits
        .iter()
        .enumerate()
        .filter(|&(i, _)| !banned.contains(&(i as TokenId)))
        .map(|(i, &l)| (l / temperature, i as TokenId))
        .collect();
    if scored.is_empty() {
        return Vec::new();
    }
    let max = scored.iter().map(|s| s.0).fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0.0f64;
    for s in &mut scored {
        s.0 = (s.0 - max).exp();
        total += s.0 as f64;
    }
    let limit = top_k.unwrap_or(usize::MAX).min(scored.len());
    // Sort only as many of the most likely tokens as the nucleus needs:
    // partial selection of m, growing m until the kept mass reaches top_p.
    let mut m = limit.min(64);
    loop {
        let head = select_top(&mut scored, m);
        let (kept, reached) = take_nucleus(head, total, top_p);
        if reached || m == limit {
            let mass: f64 = scored[..kept].iter().map(|s| s.0 as f64).sum();
            return scored[..kept]
                .iter()
                .map(|&(w, token)| Candidate { token, prob: (w as f64 / mass) as f32 })
                .collect();
        }
        m = (m * 8).min(limit);
    }
}

/// Moves the `m` largest weights to the front, sorted (descending weight,
/// ascending id on ties, so the order is fully deterministic).
fn select_top(scored: &mut [(f32, TokenId)], m: usize) -> &[(f32, TokenId)] {
    let order = |a: &(f32, TokenId), b: &(f32, TokenId)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    if m < scored.len() {
        scored.select_nth_unstable_by(m, order);
    }
    scored[..m].sort_unstable_by(order);
    &scored[..m]
}

/// How many of the sorted `head` the nucleus keeps, and whether the nucleus
/// closed inside `head` (mass before the next token reached `top_p`).
fn take_nucleus(head: &[(f32, TokenId)], total: f64, top_p: f32) -> (usize, bool) {
    let mut before = 0.0f64;
    for (i, &(w, _)) in head.iter().enumerate() {
        if before / total >= top_p as f64 {
            return (i, true);
        }
        before += w as f64;
    }
    (head.len(), before / total >= top_p as f64)
}

/// Chooses the next token. `key` is the node's random key (see
/// [`node_key`]): the same node always draws the same token.
pub fn sample(logits: &[f32], decoding: &Decoding, banned: &[TokenId], key: u64) -> Option<TokenId> {
    match *decoding {
        Decoding::Greedy => logits
            .iter()
            .enumerate()
            .filter(|&(i, _)| !banned.contains(&(i as TokenId)))
            .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
            .map(|(i, _)| i as TokenId),
        Decoding::Sample { temperature, top_k, top_p } => {
            let candidates = nucleus(logits, temperature, top_k, top_p, banned);
            let u: f32 = ChaCha8Rng::seed_from_u64(key).gen();
            let mut acc = 0.0f32;
            for c in &candidates {
                acc += c.prob;
                if u < acc {
                    return Some(c.token);
                }
            }
            candidates.last().map(|c| c.token)
        }
    }
}

/// A random key for a tree node, from the run's seed, a stream number (the
/// sample index in Best-of-N, say) and the node's token path. Keys depend on
/// the path only, never on batching or visiting order.
pub fn node_key(seed: u64, stream: u64, path: &[TokenId]) -> u64 {
    let mut h = mix(seed ^ mix(stream.wrapping_add(0x9e37_79b9_7f4a_7c15)));
    for &t in path {
        h = mix(h ^ t as u64);
    }
    h
}

/// SplitMix64's finaliser: a cheap bijective scrambler.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits_from_probs(p: &[f32]) -> Vec<f32> {
        p.iter().map(|x| x.ln()).collect()
    }

    #[test]
    fn nucleus_keeps_tokens_while_mass_before_is_below_p() {
        let l = logits_from_probs(&[0.5, 0.31, 0.14, 0.05]);
        let kept: Vec<_> = nucleus(&l, 1.0, None, 0.8, &[]).iter().map(|c| c.token).collect();
        // mass before: 0 → keep 0; 0.5 → keep 1; 0.81 ≥ 0.8 → stop.
        assert_eq!(kept, vec![0, 1]);
        let kept: Vec<_> = nucleus(&l, 1.0, None, 0.82, &[]).iter().map(|c| c.token).collect();
        assert_eq!(kept, vec![0, 1, 2]);
        // The top token is kept even for a tiny p.
        assert_eq!(nucleus(&l, 1.0, None, 0.01, &[]).len(), 1);
    }

    #[test]
    fn nucleus_renormalises_and_respects_bans_and_top_k() {
        let l = logits_from_probs(&[0.5, 0.3, 0.15, 0.05]);
        let c = nucleus(&l, 1.0, None, 1.0, &[0]);
        assert_eq!(c.iter().map(|c| c.token).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert!((c[0].prob - 0.6).abs() < 1e-6);
        let c = nucleus(&l, 1.0, Some(2), 1.0, &[]);
        assert_eq!(c.len(), 2);
        assert!((c[0].prob - 0.625).abs() < 1e-6);
    }

    #[test]
    fn nucleus_on_a_large_vocabulary_matches_a_full_sort() {
        let l: Vec<f32> = (0..50_000u32).map(|i| ((i * 7919) % 1000) as f32 / 100.0).collect();
        let fast = nucleus(&l, 0.7, None, 0.95, &[]);
        let mut all: Vec<(f32, u32)> = l.iter().enumerate().map(|(i, &x)| ((x / 0.7).exp(), i as u32)).collect();
        all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let total: f64 = all.iter().map(|a| a.0 as f64).sum();
        let (n, _) = take_nucleus(&all, total, 0.95);
        assert_eq!(fast.len(), n);
        assert!(fast.iter().zip(&all).all(|(c, a)| c.token == a.1));
    }

    #[test]
    fn greedy_takes_the_argmax_outside_the_banned_set() {
        let l = vec![0.1, 3.0, 2.0];
        assert_eq!(sample(&l, &Decoding::Greedy, &[], 0), Some(1));
        assert_eq!(sample(&l, &Decoding::Greedy, &[1], 0), Some(2));
    }

    #[test]
    fn sampling_is_a_function_of_the_key_and_follows_the_distribution() {
        let l = logits_from_probs(&[0.7, 0.2, 0.1]);
        let d = Decoding::Sample { temperature: 1.0, top_k: None, top_p: 1.0 };
        let mut counts = [0usize; 3];
        for i in 0..4000u64 {
            let key = node_key(42, i, &[1, 2, 3]);
            let t = sample(&l, &d, &[], key).unwrap();
            assert_eq!(sample(&l, &d, &[], key), Some(t));
            counts[t as usize] += 1;
        }
        // Binomial standard deviation at n = 4000 is ≤ 29; allow 5 sigma.
        assert!((counts[0] as i64 - 2800).abs() < 145, "{counts:?}");
        assert!((counts[2] as i64 - 400).abs() < 100, "{counts:?}");
    }

    #[test]
    fn node_keys_differ_by_seed_stream_and_path() {
        let base = node_key(1, 0, &[5, 6]);
        assert_ne!(base, node_key(2, 0, &[5, 6]));
        assert_ne!(base, node_key(1, 1, &[5, 6]));
        assert_ne!(base, node_key(1, 0, &[6, 5]));
        assert_eq!(base, node_key(1, 0, &[5, 6]));
    }

    #[test]
    fn invalid_settings_are_rejected() {
        assert!(Decoding::Sample { temperature: 0.0, top_k: None, top_p: 0.8 }.validate().is_err());
        assert!(Decoding::Sample { temperature: 1.0, top_k: None, top_p: 1.5 }.validate().is_err());
        assert!(Decoding::Sample { temperature: 1.0, top_k: Some(0), top_p: 0.8 }.validate().is_err());
        assert!(Decoding::default().validate().is_ok());
    }
}
