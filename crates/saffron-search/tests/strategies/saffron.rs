use saffron_core::{ModelRole, TokenId};
use saffron_search::fake::{FakeMrm, FakePolicy, FakePrm};
use saffron_search::{FinalPick, FinishReason, SaffronConfig, SaffronVariant, Strategy};

use crate::common::*;

fn saffron(width: usize) -> SaffronConfig {
    SaffronConfig { width, ..SaffronConfig::default() }
}

/// Tokens 1..4 equally likely (all in the 0.8 nucleus), EOS negligible.
fn uniform_policy() -> FakePolicy {
    FakePolicy::constant(&[0.001, 0.25, 0.25, 0.25, 0.25], END)
}

/// A myopic MRM: the path starting with 1 looks best for one token, then
/// everything after it is bad; the path 2, 3, 3, 3 starts slightly worse
/// and is then the only good one.
fn myopic_mrm() -> FakeMrm {
    FakeMrm::new(5, |s: &[TokenId], a: TokenId| {
        let path = [s, &[a]].concat();
        let target = [2, 3, 3, 3];
        if path.len() <= target.len() && path[..] == target[..path.len()] {
            if path.len() == 1 {
                0.4
            } else {
                1.0
            }
        } else if path == [1] {
            0.5
        } else {
            -1.0
        }
    })
}

#[test]
fn saffron_needs_width_two_to_escape_the_myopic_trap() {
    let (narrow, _) =
        run(&config(Strategy::Saffron(saffron(1)), 4, 4), &mut uniform_policy(), None, Some(&mut myopic_mrm()));
    assert_eq!(narrow.tokens[0], 1);
    assert_eq!(narrow.score, Some(-1.0));
    let (wide, trace) =
        run(&config(Strategy::Saffron(saffron(2)), 4, 4), &mut uniform_policy(), None, Some(&mut myopic_mrm()));
    assert_eq!(wide.tokens, vec![2, 3, 3, 3]);
    assert_eq!(wide.score, Some(1.0));
    assert_eq!(wide.finish, FinishReason::Length);
    // One MRM call per expanded node: the root, then 2 beam nodes per step.
    assert_eq!(wide.cost.mrm.sequences, 1 + 2 * 3);
    assert_eq!(trace.scores(ModelRole::Prm), 0);
}

#[test]
fn policy_tokens_computed_equal_the_expanded_nodes() {
    let mut policy = uniform_policy();
    let (out, trace) = run(&config(Strategy::Saffron(saffron(3)), 6, 6), &mut policy, None, Some(&mut myopic_mrm()));
    // Expanded nodes: the root and every unfinished node kept by a step
    // that is followed by another (the next step asks the policy about it).
    let expanded = trace.expanded_nodes();
    assert_eq!(expanded.len(), 1 + 5 * 3);
    // The root costs the context; every other expanded node its last token.
    assert_eq!(out.cost.policy.tokens_computed, CONTEXT.len() as u64 + expanded.len() as u64 - 1);
    assert_eq!(out.cost.policy.sequences, expanded.len() as u64, "each node asked about once");
}

#[test]
fn the_conservative_mask_never_picks_an_unseen_token() {
    // Token 4 looks best to the MRM but was never seen in training.
    let mrm = || FakeMrm::new(5, |_: &[TokenId], a: TokenId| a as f32).with_unseen(&[4]);
    let (masked, _) = run(&config(Strategy::Saffron(saffron(2)), 3, 3), &mut uniform_policy(), None, Some(&mut mrm()));
    assert!(!masked.tokens.contains(&4), "{:?}", masked.tokens);
    assert_eq!(masked.tokens, vec![3, 3, 3]);
    let off = SaffronConfig { conservative: false, ..saffron(2) };
    let (unmasked, _) = run(&config(Strategy::Saffron(off), 3, 3), &mut uniform_policy(), None, Some(&mut mrm()));
    assert_eq!(unmasked.tokens, vec![4, 4, 4]);
}

#[test]
fn a_shared_backbone_mrm_gets_the_policy_hidden_state() {
    let mut mrm = myopic_mrm().on_policy_hidden();
    let (out, _) = run(&config(Strategy::Saffron(saffron(2)), 4, 4), &mut uniform_policy(), None, Some(&mut mrm));
    assert_eq!(out.tokens, vec![2, 3, 3, 3]);
    assert_eq!(out.cost.mrm.tokens_computed, 0, "a head on the policy's hidden state runs no forward of its own");
}

/// The scripted case of the `reference` variant. Policy: EOS 0.45, token 1
/// 0.4, token 2 0.15, so the 0.8 nucleus is {EOS, 1} once EOS is allowed
/// (mass before token 2: 0.85) and {1, 2} before (renormalised 0.73, 0.27). MRM: token 1 → +1, token 2 → +0.5, EOS → −5 (unsafe).
/// Width 3, at most 3 new tokens, EOS allowed from the second token.
///
/// Released code, by hand:
/// - step 0: candidates [1] +1, [2] +0.5; both unfinished, so both keep the
///   root's reward −∞.
/// - step 1: candidates [1,1] +1, [2,1] +1, [1,EOS] −5, [2,EOS] −5; top 3 =
///   [1,1], [2,1], [1,EOS]. New list sorted by reward (stable):
///   [1,EOS] (−5), [1,1] (−∞), [2,1] (−∞).
/// - step 2: [1,EOS] is carried; candidates [1,1,1] +1, [2,1,1] +1,
///   [1,1,EOS] −5, [2,1,EOS] −5; top 3 = [1,1,1], [2,1,1], [1,1,EOS].
///   Sorted: [1,EOS] (−5), [1,1,EOS] (−5), [1,1,1] (−∞), [2,1,1] (−∞);
///   cut to 3.
/// - answer: the first node of maximal reward, [1,EOS]: the one-token
///   answer the MRM rated unsafe.
///
/// The default bookkeeping scores [1,1,1] at +1 and answers it.
fn reference_case(variant: SaffronVariant) -> (Vec<TokenId>, Option<f32>) {
    let mut policy = FakePolicy::constant(&[0.45, 0.4, 0.15], END);
    let mut mrm = FakeMrm::new(3, |_: &[TokenId], a: TokenId| [-5.0, 1.0, 0.5][a as usize]);
    let c = SaffronConfig { width: 3, variant, ..SaffronConfig::default() };
    let (out, _) = run(&config(Strategy::Saffron(c), 3, 1), &mut policy, None, Some(&mut mrm));
    (out.tokens, out.score)
}

#[test]
fn the_reference_variant_reproduces_the_released_selection() {
    assert_eq!(reference_case(SaffronVariant::Reference), (vec![1], Some(-5.0)));
    assert_eq!(reference_case(SaffronVariant::Default), (vec![1, 1, 1], Some(1.0)));
}

#[test]
fn the_prm_rerank_reorders_the_finished_nodes() {
    // The MRM prefers 1s; the PRM prefers answers with a 2 in them.
    let mut prm = FakePrm::new(|r| count(r, 2));
    let mut mrm = FakeMrm::new(3, |_: &[TokenId], a: TokenId| [-5.0, 1.0, 0.5][a as usize]);
    let c = SaffronConfig { width: 3, final_pick: FinalPick::PrmRerank, ..SaffronConfig::default() };
    let mut policy = FakePolicy::constant(&[0.001, 0.5, 0.499], END);
    let (out, _) = run(&config(Strategy::Saffron(c), 2, 2), &mut policy, Some(&mut prm), Some(&mut mrm));
    assert!(out.tokens.contains(&2), "{:?}", out.tokens);
    assert_eq!(out.cost.prm.sequences, 3, "one PRM call per finished node");
}

/// Token 2 is a little safer by the MRM (1.0 against 0.5) and half as
/// likely as token 1 (0.3 against 0.6); both are in the 0.8 nucleus.
fn safer_but_unlikely(fluency_weight: f32) -> (Vec<TokenId>, Option<f32>) {
    let mut policy = FakePolicy::constant(&[0.001, 0.6, 0.3, 0.099], END);
    let mut mrm = FakeMrm::new(4, |_: &[TokenId], a: TokenId| [-5.0, 0.5, 1.0, 0.0][a as usize]);
    let c = SaffronConfig { fluency_weight, ..saffron(1) };
    let (out, _) = run(&config(Strategy::Saffron(c), 3, 3), &mut policy, None, Some(&mut mrm));
    (out.tokens, out.score)
}

#[test]
fn the_fluency_weight_trades_reward_for_the_policys_likelihood() {
    // λ = 0: the paper's ranking, reward alone.
    assert_eq!(safer_but_unlikely(0.0), (vec![2, 2, 2], Some(1.0)));
    // A small λ keeps the safer token: 1 + 0.1 ln 0.3 > 0.5 + 0.1 ln 0.6.
    let (tokens, score) = safer_but_unlikely(0.1);
    assert_eq!(tokens, vec![2, 2, 2]);
    assert!((score.unwrap() - (1.0 + 0.1 * 0.3f32.ln())).abs() < 1e-4, "{score:?}");
    // λ = 4: the likelier answer, scored by reward + λ × its mean log-prob.
    let (tokens, score) = safer_but_unlikely(4.0);
    assert_eq!(tokens, vec![1, 1, 1]);
    assert!((score.unwrap() - (0.5 + 4.0 * 0.6f32.ln())).abs() < 1e-4, "{score:?}");
    // λ = 2: the term is the answer's mean, so one unlikely token weighs
    // less as the answer grows: the last step takes the safer token
    // (1 + 2 (2 ln 0.6 + ln 0.3) / 3 > 0.5 + 2 ln 0.6).
    let (tokens, score) = safer_but_unlikely(2.0);
    assert_eq!(tokens, vec![1, 1, 2]);
    let mean = (2.0 * 0.6f32.ln() + 0.3f32.ln()) / 3.0;
    assert!((score.unwrap() - (1.0 + 2.0 * mean)).abs() < 1e-4, "{score:?}");
}

#[test]
fn a_reward_cap_lets_the_likelier_of_two_safe_enough_tokens_win() {
    let capped_with = |rewards: [f32; 4], cap: f32, fluency_weight: f32| {
        let mut policy = FakePolicy::constant(&[0.001, 0.6, 0.3, 0.099], END);
        let mut mrm = FakeMrm::new(4, move |_: &[TokenId], a: TokenId| rewards[a as usize]);
        let c = SaffronConfig { fluency_weight, reward_cap: Some(cap), ..saffron(1) };
        let (out, _) = run(&config(Strategy::Saffron(c), 3, 3), &mut policy, None, Some(&mut mrm));
        (out.tokens, out.score)
    };
    let capped = |cap: f32, fluency_weight: f32| capped_with([-5.0, 0.5, 1.0, 0.0], cap, fluency_weight);
    // At λ = 0.1 uncapped, the safer token wins (above); capped at 0.5 both
    // 1 and 2 are safe enough, and the likelier one wins.
    let (tokens, score) = capped(0.5, 0.1);
    assert_eq!(tokens, vec![1, 1, 1]);
    assert!((score.unwrap() - (0.5 + 0.1 * 0.6f32.ln())).abs() < 1e-4, "{score:?}");
    // A cap above both rewards changes nothing.
    assert_eq!(capped(5.0, 0.1).0, vec![2, 2, 2]);
    // Below the cap the reward still decides: the likely token 1 made
    // unsafe (−2) loses to the safe-enough token 2 (−2 + 0.1 ln 0.6 < 0.5 +
    // 0.1 ln 0.3).
    assert_eq!(capped_with([-5.0, -2.0, 1.0, 0.0], 0.5, 0.1).0, vec![2, 2, 2]);
}

#[test]
fn a_bad_fluency_weight_is_refused_and_the_reference_variant_has_none() {
    let check = |c: SaffronConfig| config(Strategy::Saffron(c), 3, 3).validate();
    assert!(check(SaffronConfig { fluency_weight: -1.0, ..saffron(2) }).unwrap_err().contains("fluency_weight"));
    assert!(check(SaffronConfig { fluency_weight: f32::NAN, ..saffron(2) }).is_err());
    let reference = SaffronConfig { fluency_weight: 1.0, variant: SaffronVariant::Reference, ..saffron(2) };
    assert!(check(reference).unwrap_err().contains("reference variant"));
    assert!(check(SaffronConfig { fluency_weight: 1.0, ..saffron(2) }).is_ok());
    let capped = SaffronConfig { reward_cap: Some(f32::INFINITY), fluency_weight: 1.0, ..saffron(2) };
    assert!(check(capped).unwrap_err().contains("finite"));
    let unweighted = SaffronConfig { reward_cap: Some(0.0), ..saffron(2) };
    assert!(check(unweighted).unwrap_err().contains("needs fluency_weight > 0"));
    let reference = SaffronConfig { reward_cap: Some(0.0), variant: SaffronVariant::Reference, ..saffron(2) };
    assert!(check(reference).unwrap_err().contains("reference variant"));
}

#[test]
fn the_final_beam_gives_the_runners_up_best_first() {
    let (wide, _) =
        run(&config(Strategy::Saffron(saffron(3)), 4, 4), &mut uniform_policy(), None, Some(&mut myopic_mrm()));
    assert_eq!(wide.tokens, vec![2, 3, 3, 3]);
    assert_eq!(wide.runners_up.len(), 2, "the beam's other nodes");
    let scores: Vec<f32> = wide.runners_up.iter().map(|r| r.score.unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]) && scores[0] <= 1.0, "{scores:?}");
    assert!(wide.runners_up.iter().all(|r| r.tokens != wide.tokens && r.finish == FinishReason::Length));
    let (one, _) =
        run(&config(Strategy::Saffron(saffron(1)), 4, 4), &mut uniform_policy(), None, Some(&mut myopic_mrm()));
    assert!(one.runners_up.is_empty());
}
