use saffron_core::sampling::Decoding;
use saffron_core::TokenId;
use saffron_search::fake::{FakePolicy, FakePrm};
use saffron_search::{BeamConfig, FinishReason, LookaheadConfig, Strategy, TraceEvent};

use crate::common::*;

#[test]
fn beam_search_keeps_the_prm_best_children_and_merges_duplicates() {
    // Two equally likely tokens; the PRM counts 2s. With 8 children per node,
    // both tokens are drawn at every node (the chance of missing one is
    // 2 · 2^-8 per node), identical children are merged, so each parent
    // yields exactly 2 children and the beam keeps the all-2s path.
    let mut policy = FakePolicy::constant(&[0.0, 0.5, 0.5], END);
    let mut prm = FakePrm::new(|r| count(r, 2));
    let mut c = config(Strategy::Beam(BeamConfig { width: 2, children: 8, chunk: 1 }), 6, 6);
    c.decoding = Decoding::Sample { temperature: 1.0, top_k: None, top_p: 1.0 };
    let (out, trace) = run(&c, &mut policy, Some(&mut prm), None);
    assert_eq!(out.tokens, vec![2; 6]);
    assert_eq!(out.score, Some(6.0));
    assert_eq!(out.finish, FinishReason::Length);
    // Step 0: the root's 2 children; steps 1..5: 2 beams × 2 children.
    assert_eq!(out.cost.prm.sequences, 2 + 5 * 4);
    assert_eq!(trace.expanded(), 2 + 5 * 4);
    // The beam's other node is the runner-up (a choice of n = 2): five 2s.
    assert_eq!(out.runners_up.len(), 1);
    assert_eq!((out.runners_up[0].score, out.runners_up[0].finish), (Some(5.0), FinishReason::Length));
}

#[test]
fn beam_chunks_add_several_tokens_per_step() {
    let mut policy = FakePolicy::constant(&[0.0, 0.5, 0.5], END);
    let mut prm = FakePrm::new(|r| count(r, 2));
    let c = config(Strategy::Beam(BeamConfig { width: 2, children: 2, chunk: 3 }), 6, 6);
    let (out, trace) = run(&c, &mut policy, Some(&mut prm), None);
    assert_eq!(out.steps, 2);
    assert_eq!(out.tokens.len(), 6);
    assert!(trace.events.iter().all(|e| !matches!(e, TraceEvent::Expand { tokens, .. } if tokens.len() != 3)));
}

/// After token 1 the policy's greedy continuation is 3 (which the PRM
/// punishes), after token 2 it is 4; elsewhere 1 and 2 are equally likely.
fn trap_policy() -> FakePolicy {
    FakePolicy::new(5, END, |path: &[TokenId]| {
        let probs = match path.last() {
            Some(1) => [0.01, 0.1, 0.1, 0.69, 0.1],
            Some(2) => [0.01, 0.1, 0.1, 0.1, 0.69],
            _ => [0.01, 0.44, 0.44, 0.055, 0.055],
        };
        probs.iter().map(|p: &f32| p.ln()).collect()
    })
}

#[test]
fn lookahead_sees_the_trap_that_a_myopic_prm_misses() {
    let prm = || FakePrm::new(|r| -count(r, 3));
    let lookahead = |depth| Strategy::Lookahead(LookaheadConfig { width: 1, proposals: 2, depth });
    // Depth 0: [1] and [2] both score 0; the tie goes to the first proposal, 1.
    let (myopic, _) = run(&config(lookahead(0), 3, 3), &mut trap_policy(), Some(&mut prm()), None);
    assert_eq!(myopic.tokens[0], 1);
    // Depth 1: [1, 3] scores −1 and [2, 4] scores 0, so 2 is chosen.
    let (seeing, _) = run(&config(lookahead(1), 3, 3), &mut trap_policy(), Some(&mut prm()), None);
    assert_eq!(seeing.tokens[0], 2);
    assert_eq!(count(&seeing.tokens, 3), 0.0);
}

#[test]
fn lookahead_charges_its_rollouts_and_one_prm_call_per_proposal() {
    let mut policy = trap_policy();
    let mut prm = FakePrm::new(|r| -count(r, 3));
    let c = config(Strategy::Lookahead(LookaheadConfig { width: 2, proposals: 2, depth: 2 }), 4, 4);
    let (out, trace) = run(&c, &mut policy, Some(&mut prm), None);
    // Step 0: 2 proposals; then 2 beams × 2 proposals per step.
    assert_eq!(out.cost.prm.sequences, 2 + 3 * 4);
    assert_eq!(trace.expanded(), 2 + 3 * 4);
    // Rollouts look past the committed tokens: more policy tokens are
    // computed than the beam alone needs (3 context + one per expanded node).
    assert!(out.cost.policy.tokens_computed > 3 + 2 + 3 * 2);
}
