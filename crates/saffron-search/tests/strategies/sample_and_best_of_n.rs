use saffron_core::sampling::Decoding;
use saffron_core::ModelRole;
use saffron_search::fake::{FakePolicy, FakePrm, FLOPS_PER_TOKEN};
use saffron_search::{BestOfNConfig, FinishReason, SampleConfig, Strategy};

use crate::common::*;

#[test]
fn greedy_sampling_follows_the_argmax_and_pays_one_token_per_step() {
    // EOS 0.1, token 1 0.5: greedy never ends, so the answer is 4 × token 1.
    let mut policy = FakePolicy::constant(&[0.1, 0.5, 0.2, 0.1, 0.1], END);
    let mut c = config(Strategy::Sample(SampleConfig {}), 4, 0);
    c.decoding = Decoding::Greedy;
    let (out, trace) = run(&c, &mut policy, None, None);
    assert_eq!(out.tokens, vec![1, 1, 1, 1]);
    assert_eq!(out.finish, FinishReason::Length);
    assert_eq!(out.steps, 4);
    // The context (3 tokens) once, then one token per step except the last,
    // whose output nobody asks for.
    assert_eq!(out.cost.policy.tokens_computed, 3 + 3);
    assert_eq!(out.cost.policy.flops, 6.0 * FLOPS_PER_TOKEN);
    assert_eq!(out.cost.reward_calls(), 0);
    assert_eq!(trace.expanded(), 4);
}

#[test]
fn end_of_generation_is_banned_before_the_minimum_length() {
    // EOS is the most likely token everywhere.
    let mut policy = FakePolicy::constant(&[0.9, 0.1], END);
    let mut c = config(Strategy::Sample(SampleConfig {}), 10, 3);
    c.decoding = Decoding::Greedy;
    let (out, _) = run(&c, &mut policy, None, None);
    assert_eq!(out.tokens, vec![1, 1, 1]);
    assert_eq!(out.finish, FinishReason::EndOfGeneration);
}

#[test]
fn best_of_n_returns_the_sample_the_prm_likes_best() {
    let n = 8;
    let mut policy = FakePolicy::constant(&[0.02, 0.49, 0.49], END);
    // Reward: how many 2s the answer holds.
    let mut prm = FakePrm::new(|r| count(r, 2));
    let mut c = config(Strategy::BestOfN(BestOfNConfig { n }), 6, 6);
    c.decoding = Decoding::Sample { temperature: 1.0, top_k: None, top_p: 1.0 };
    let (out, trace) = run(&c, &mut policy, Some(&mut prm), None);
    let all = scores(&trace);
    assert_eq!(all.len(), n, "one PRM score per sample");
    let best = all.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    assert_eq!(out.score, Some(best));
    assert_eq!(count(&out.tokens, 2), best);
    assert_eq!(out.cost.prm.sequences, n as u64);
    assert_eq!(trace.scores(ModelRole::Prm), n);
    // The first step asks for the context N times and computes it once.
    assert_eq!(policy.requests[0], n);
    assert!(out.cost.policy.tokens_served >= 3 * (n as u64 - 1));
    // The other samples come back ranked below the winner, each with the
    // score the PRM gave it.
    assert_eq!(out.runners_up.len(), n - 1);
    let mut ranked: Vec<f32> =
        std::iter::once(out.score.unwrap()).chain(out.runners_up.iter().map(|r| r.score.unwrap())).collect();
    assert!(ranked.windows(2).all(|w| w[0] >= w[1]), "best first: {ranked:?}");
    assert!(out.runners_up.iter().all(|r| count(&r.tokens, 2) == r.score.unwrap()));
    ranked.sort_by(f32::total_cmp);
    let mut given = all.clone();
    given.sort_by(f32::total_cmp);
    assert_eq!(ranked, given, "every sample once");
}

#[test]
fn best_of_one_is_the_plain_sample() {
    let probs = [0.1, 0.3, 0.3, 0.3];
    let mut c = config(Strategy::Sample(SampleConfig {}), 8, 2);
    c.seed = 11;
    let (plain, _) = run(&c, &mut FakePolicy::constant(&probs, END), None, None);
    c.strategy = Strategy::BestOfN(BestOfNConfig { n: 1 });
    let (best, _) = run(&c, &mut FakePolicy::constant(&probs, END), Some(&mut FakePrm::new(|_| 0.0)), None);
    assert_eq!(plain.tokens, best.tokens);
    assert_eq!(plain.cost.policy, best.cost.policy);
}

#[test]
fn a_strategy_without_its_reward_model_says_which_is_missing() {
    let mut policy = FakePolicy::constant(&[0.5, 0.5], END);
    let c = config(Strategy::BestOfN(BestOfNConfig { n: 2 }), 4, 0);
    let mut models = saffron_search::Models::policy(&mut policy);
    let err = saffron_search::search(&c, &mut models, &CONTEXT, &mut saffron_search::NoTrace).unwrap_err();
    assert!(err.to_string().contains("best-of-n strategy needs a process reward (PRM)"), "{err}");
}
