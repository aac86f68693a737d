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
/// Order of filters, as llama.cpp's sampler chain: `banned` tokens
/// (end-of-generation before the minimum length) are removed, logits are
/// divided by `temperature`, only the `top_k` most likely remain (when set),
/// then the nucleus: walking tokens from most to least likely, a token is
/// kept while the probability mass *before* it (over the tokens still in
/// play) is below `top_p`, so the top token is always kept (method.md §3).
///
/// Cost: this runs once per expanded node over the whole vocabulary, so it
/// avoids sorting or even storing the vocabulary. One pass finds the largest
/// logit, one sums the weights (passing over blocks of tokens too unlikely
/// to count, see [`LN_NEGLIGIBLE`]); then only tokens within a weight
/// threshold of the top are collected and sorted, and the threshold is
/// lowered until the nucleus closes inside the collected tokens. Every token
/// left out weighs less than every token collected, so the result is exact
/// up to the f32 rounding of the sum. On x86-64 CPUs with AVX2 the same code
/// runs compiled for AVX2 (chosen at run time; the result is identical).
pub fn nucleus(
    logits: &[f32],
    temperature: f32,
    top_k: Option<usize>,
    top_p: f32,
    banned: &[TokenId],
) -> Vec<Candidate> {
    let request = NucleusRequest { logits, temperature, top_k, top_p, banned };
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { nucleus_avx2(&request) };
    }
    nucleus_portable(&request)
}

/// The arguments of [`nucleus`], passed on to its builds.
struct NucleusRequest<'a> {
    logits: &'a [f32],
    temperature: f32,
    top_k: Option<usize>,
    top_p: f32,
    banned: &'a [TokenId],
}

/// [`nucleus_portable`] compiled for AVX2: twice the vector width for the
/// passes over the vocabulary. The same operations in the same order (no
/// fused multiply-add), so the same result bit for bit.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn nucleus_avx2(request: &NucleusRequest) -> Vec<Candidate> {
    nucleus_portable(request)
}

#[inline(always)]
fn nucleus_portable(request: &NucleusRequest) -> Vec<Candidate> {
    let &NucleusRequest { logits, temperature, top_k, top_p, banned } = request;
    let allowed = |i: usize| !banned.contains(&(i as TokenId));
    // The passes over the whole vocabulary skip the per-token ban check;
    // the few banned tokens are corrected for afterwards.
    let mut max = lane_max(logits);
    if banned.iter().any(|&b| logits.get(b as usize) == Some(&max)) {
        max = logits.iter().enumerate().filter(|&(i, _)| allowed(i)).map(|(_, &l)| l).fold(f32::NEG_INFINITY, f32::max);
    }
    if max == f32::NEG_INFINITY {
        return Vec::new();
    }
    let inv_t = 1.0 / temperature;
    let weight = |l: f32| exp_nonpositive((l - max) * inv_t);
    // Relative weights below which tokens are first left out.
    const LN_THRESHOLDS: [f32; 5] = [-3.0, -7.0, -14.0, -28.0, f32::NEG_INFINITY];
    let cutoffs = Cutoffs { negligible: max + LN_NEGLIGIBLE * temperature, head: max + LN_THRESHOLDS[0] * temperature };
    let (total_all, first_head) = lane_sum_and_head(logits, weight, cutoffs, allowed);
    let mut banned_seen: Vec<TokenId> = banned.iter().copied().filter(|&b| (b as usize) < logits.len()).collect();
    banned_seen.sort_unstable();
    banned_seen.dedup();
    let banned_mass: f64 = banned_seen.iter().map(|&b| weight(logits[b as usize]) as f64).sum();
    let total_allowed = total_all - banned_mass;
    let mut first_head = Some(first_head);
    for ln_threshold in LN_THRESHOLDS {
        let cutoff = max + ln_threshold * temperature;
        let mut head = first_head.take().unwrap_or_else(|| head_above(logits, cutoff, weight, allowed));
        head.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let everything = ln_threshold == f32::NEG_INFINITY;
        let total = match top_k {
            Some(k) if head.len() >= k || everything => {
                head.truncate(k);
                head.iter().map(|h| h.0 as f64).sum()
            }
            Some(_) => continue,
            None => total_allowed,
        };
        let (kept, closed) = take_nucleus(&head, total, top_p);
        if closed || everything || top_k.is_some() {
            let mass: f64 = head[..kept].iter().map(|h| h.0 as f64).sum();
            return head[..kept]
                .iter()
                .map(|&(w, token)| Candidate { token, prob: (w as f64 / mass) as f32 })
                .collect();
        }
    }
    unreachable!("the last threshold collects every allowed token")
}

/// Lanes of independent accumulators: a float reduction in one accumulator
/// is a chain of dependent operations (its order is fixed by IEEE rules, so
/// the compiler cannot reorder it); eight chains run in parallel and
/// vectorise. This and [`lane_sum_and_head`] are most of the nucleus' cost on a
/// 152k-token vocabulary.
const LANES: usize = 8;

#[inline(always)]
fn lane_max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] = acc[i].max(c[i]);
        }
    }
    acc.iter().chain(rest).copied().fold(f32::NEG_INFINITY, f32::max)
}

/// Logits are scanned for the head in blocks of this many tokens.
const BLOCK: usize = 8 * LANES;

/// Appends the allowed tokens of `block` (token ids from `offset`) whose
/// logit is at least `cutoff`, with their weights. A block with none (nearly
/// every block of a vocabulary) is passed over after one vectorised
/// comparison.
#[inline(always)]
fn push_head(
    head: &mut Vec<(f32, TokenId)>,
    (block, offset): (&[f32], usize),
    cutoff: f32,
    weight: &impl Fn(f32) -> f32,
    allowed: &impl Fn(usize) -> bool,
) {
    if lane_max(block) < cutoff {
        return;
    }
    for (j, &l) in block.iter().enumerate() {
        if l >= cutoff && allowed(offset + j) {
            head.push((weight(l), (offset + j) as TokenId));
        }
    }
}

/// Tokens of logit at least `cutoff` (and allowed), with their weights, in
/// token order.
#[inline(always)]
fn head_above(
    logits: &[f32],
    cutoff: f32,
    weight: impl Fn(f32) -> f32,
    allowed: impl Fn(usize) -> bool,
) -> Vec<(f32, TokenId)> {
    let mut head = Vec::new();
    for (b, block) in logits.chunks(BLOCK).enumerate() {
        push_head(&mut head, (block, b * BLOCK), cutoff, &weight, &allowed);
    }
    head
}

/// Weights below `e^LN_NEGLIGIBLE` (9e-14) relative to the top token are
/// left out of the sum when a whole block of tokens is below it: even a
/// 152k-token vocabulary of them weighs under 1.5e-8 of the total, less
/// than the total's own f32 rounding. Most blocks of a real model's logits
/// are, and their exponentials are never computed.
const LN_NEGLIGIBLE: f32 = -30.0;

/// The logits below which a block is left out of the sum, and below which
/// a token is left out of the head.
#[derive(Clone, Copy)]
struct Cutoffs {
    negligible: f32,
    head: f32,
}

/// The sum of the weights (less the negligible blocks) and the head above
/// `cutoffs.head`, in one pass over the vocabulary. Each block is summed
/// in f32 lanes (eight terms a lane), then added to f64 lanes.
#[inline(always)]
fn lane_sum_and_head(
    logits: &[f32],
    weight: impl Fn(f32) -> f32,
    cutoffs: Cutoffs,
    allowed: impl Fn(usize) -> bool,
) -> (f64, Vec<(f32, TokenId)>) {
    let mut acc = [0.0f64; LANES];
    let mut head = Vec::new();
    for (b, block) in logits.chunks(BLOCK).enumerate() {
        let block_max = lane_max(block);
        if block_max < cutoffs.negligible {
            continue;
        }
        let mut lanes = [0.0f32; LANES];
        let chunks = block.chunks_exact(LANES);
        let rest = chunks.remainder();
        for c in chunks {
            for i in 0..LANES {
                lanes[i] += weight(c[i]);
            }
        }
        for (i, &x) in rest.iter().enumerate() {
            lanes[i] += weight(x);
        }
        for i in 0..LANES {
            acc[i] += lanes[i] as f64;
        }
        if block_max >= cutoffs.head {
            push_head(&mut head, (block, b * BLOCK), cutoffs.head, &weight, &allowed);
        }
    }
    (acc.iter().sum(), head)
}

/// `e^x` for `x ≤ 0` (a weight relative to the largest logit), without
/// branches or library calls so that the sum over the vocabulary vectorises.
/// Range reduction `x = n·ln 2 + r`, `|r| ≤ ln 2 / 2`, then a degree-6 Taylor
/// polynomial: relative error below 4e-7 (about 3 f32 ulps, measured).
/// Arguments below −87 are clamped (their weight, ~1e-38, is zero to f32).
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding and subtracting 1.5 · 2^23 rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 0.0);
    let n = (x * LOG2_E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
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
/// `ln Σ exp(x)`, stable: a token's log-probability is its logit minus this.
pub fn log_sum_exp(xs: &[f32]) -> f64 {
    let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    max + xs.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln()
}

/// The `k` most likely tokens with their log-probabilities, best first
/// (ties: the lower id first).
pub fn top_logprobs(logits: &[f32], k: usize) -> Vec<(TokenId, f64)> {
    let norm = log_sum_exp(logits);
    let mut ids: Vec<usize> = (0..logits.len()).collect();
    let k = k.min(ids.len());
    let order = |a: &usize, b: &usize| logits[*b].total_cmp(&logits[*a]).then(a.cmp(b));
    if k > 0 && k < ids.len() {
        ids.select_nth_unstable_by(k - 1, order);
    }
    ids.truncate(k);
    ids.sort_by(order);
    ids.into_iter().map(|i| (i as TokenId, logits[i] as f64 - norm)).collect()
}

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
        // Top-k first, then top-p over the renormalised top-k (as llama.cpp):
        // the mass before token 1 is 0.5 / 0.8 = 0.625, so p = 0.7 keeps both
        // tokens and p = 0.62 keeps one (over the whole vocabulary it would
        // be 0.5 < 0.62, and two).
        assert_eq!(nucleus(&l, 1.0, Some(2), 0.7, &[]).len(), 2);
        assert_eq!(nucleus(&l, 1.0, Some(2), 0.62, &[]).len(), 1);
    }

    /// The nucleus by brute force: every weight, a full sort.
    fn reference(l: &[f32], t: f32, p: f32, banned: &[u32]) -> Vec<u32> {
        let kept: Vec<(usize, f32)> =
            l.iter().copied().enumerate().filter(|(i, _)| !banned.contains(&(*i as u32))).collect();
        let max = kept.iter().map(|k| k.1).fold(f32::NEG_INFINITY, f32::max);
        let mut all: Vec<(f32, u32)> = kept.iter().map(|&(i, x)| (((x - max) / t).exp(), i as u32)).collect();
        all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let total: f64 = all.iter().map(|a| a.0 as f64).sum();
        let (n, _) = take_nucleus(&all, total, p);
        all[..n].iter().map(|a| a.1).collect()
    }

    #[test]
    fn nucleus_on_a_large_vocabulary_matches_a_full_sort() {
        // Peaked, flat and in-between distributions, so that every
        // threshold of the fast path is exercised.
        for (scale, t, p) in [(100.0, 0.7, 0.95), (1.0, 1.0, 0.8), (10_000.0, 1.0, 0.99), (30.0, 2.0, 0.999)] {
            let l: Vec<f32> = (0..50_000u32).map(|i| ((i * 7919) % 1000) as f32 / scale).collect();
            let fast: Vec<u32> = nucleus(&l, t, None, p, &[]).iter().map(|c| c.token).collect();
            assert_eq!(fast, reference(&l, t, p, &[]), "scale {scale}, t {t}, p {p}");
            // Banning the most likely token and a few others.
            let top = reference(&l, t, p, &[]);
            let banned = [top[0], 17, 4_242];
            let fast: Vec<u32> = nucleus(&l, t, None, p, &banned).iter().map(|c| c.token).collect();
            assert_eq!(fast, reference(&l, t, p, &banned), "banned; scale {scale}, t {t}, p {p}");
        }
    }

    #[test]
    fn the_fast_exponential_matches_the_library_one() {
        let mut worst = 0.0f32;
        for i in 0..=870_000 {
            let x = -(i as f32) * 1e-4;
            let (fast, exact) = (exp_nonpositive(x), x.exp());
            worst = worst.max(((fast - exact) / exact).abs());
        }
        assert!(worst < 4e-7, "worst relative error {worst}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert!(exp_nonpositive(-1e9) < 1e-37);
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

    /// The fused pass gives the head of the separate scan, and the sum of
    /// all weights to f32 precision although it leaves out the negligible
    /// blocks; for lengths around the block and lane sizes.
    #[test]
    fn fused_pass_matches_a_plain_sum_and_the_separate_scan() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for len in [1, 7, 8, 63, 64, 65, 200, 1001, 152_000] {
            // Mostly far below the top (as real logits are), with a few
            // blocks near it.
            let logits: Vec<f32> = (0..len)
                .map(|i| if i % 700 < 64 { rng.gen_range(-20.0..10.0) } else { rng.gen_range(-60.0..-21.0) })
                .collect();
            let max = lane_max(&logits);
            let weight = |l: f32| exp_nonpositive(l - max);
            let allowed = |i: usize| i % 5 != 1;
            let cutoffs = Cutoffs { negligible: max + LN_NEGLIGIBLE, head: max - 3.0 };
            let (sum, head) = lane_sum_and_head(&logits, weight, cutoffs, allowed);
            let plain: f64 = logits.iter().map(|&l| weight(l) as f64).sum();
            assert!(((sum - plain) / plain).abs() < 1e-7, "length {len}: {sum} against {plain}");
            assert_eq!(head, head_above(&logits, max - 3.0, weight, allowed), "length {len}");
        }
    }

    /// The AVX2 build of the nucleus gives the portable one's result bit
    /// for bit (same operations in the same order).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_nucleus_equals_the_portable_one() {
        if !std::is_x86_feature_detected!("avx2") {
            return;
        }
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let logits: Vec<f32> = (0..151_936).map(|_| rng.gen_range(-25.0..12.0)).collect();
        for (t, k, p) in [(1.0, None, 0.9), (0.7, Some(40), 0.95), (1.3, None, 0.999)] {
            let bits = |c: Vec<Candidate>| c.iter().map(|c| (c.token, c.prob.to_bits())).collect::<Vec<_>>();
            let request = NucleusRequest { logits: &logits, temperature: t, top_k: k, top_p: p, banned: &[3] };
            // SAFETY: AVX2 is present, checked above.
            let fast = bits(unsafe { nucleus_avx2(&request) });
            assert!(!fast.is_empty());
            assert_eq!(fast, bits(nucleus_portable(&request)), "t {t}, k {k:?}, p {p}");
        }
    }
}
