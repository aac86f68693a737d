use std::collections::HashMap;

use saffron_core::sampling::Decoding;
use saffron_search::fake::{FakePolicy, FakePrm};
use saffron_search::{rebase_widths, NodeId, RebaseConfig, Strategy, TraceEvent, ROOT};

use crate::common::*;

#[test]
fn widths_follow_round_b_softmax_r_over_t() {
    // softmax([1, 0.9, 0] / 0.1) = [0.7310, 0.2689, 0.00003]; × 10, rounded.
    assert_eq!(rebase_widths(&[1.0, 0.9, 0.0], 10, 0.1), vec![7, 3, 0]);
    // A high temperature spreads evenly: 12 / 4 = 3 each.
    assert_eq!(rebase_widths(&[1.0, 0.9, 0.8, 0.7], 12, 1e6), vec![3, 3, 3, 3]);
    // All would round to 0 (5 × 0.4 → 0): the best (first) gets 1.
    assert_eq!(rebase_widths(&[0.0, 0.0, 0.0, 0.0, 0.0], 2, 0.1), vec![1, 0, 0, 0, 0]);
    assert_eq!(rebase_widths(&[0.5, 2.0], 0, 0.1), vec![0, 0]);
}

#[test]
fn each_step_expands_live_nodes_by_the_widths_of_their_rewards() {
    let mut policy = FakePolicy::constant(&[0.15, 0.3, 0.3, 0.25], END);
    // Reward: 2s are good, 3s bad, on a scale where T_b = 0.5 spreads widths.
    let mut prm = FakePrm::new(|r| count(r, 2) - count(r, 3));
    let mut c = config(Strategy::Rebase(RebaseConfig { width: 8, temperature: 0.5, chunk: 1 }), 5, 1);
    c.decoding = Decoding::Sample { temperature: 1.0, top_k: None, top_p: 1.0 };
    let (out, trace) = run(&c, &mut policy, Some(&mut prm), None);

    // Replay the trace step by step: children per parent, finished nodes,
    // the kept (live) nodes, and every node's score.
    #[derive(Default)]
    struct Step {
        children: HashMap<NodeId, usize>,
        finished: usize,
        kept: Vec<NodeId>,
    }
    let mut score: HashMap<NodeId, f32> = HashMap::new();
    let mut steps = vec![Step::default()];
    for e in &trace.events {
        let step = steps.last_mut().unwrap();
        match e {
            TraceEvent::Expand { parent, .. } => *step.children.entry(*parent).or_default() += 1,
            TraceEvent::Score { node, score: s, .. } => drop(score.insert(*node, *s)),
            TraceEvent::Finish { .. } => step.finished += 1,
            TraceEvent::Select { kept, .. } => {
                step.kept = kept.clone();
                steps.push(Step::default());
            }
        }
    }
    assert_eq!(steps[0].children, HashMap::from([(ROOT, 8)]));
    let mut budget = 8usize;
    let mut checked = 0;
    for pair in steps.windows(2) {
        let (done, next) = (&pair[0], &pair[1]);
        budget = budget.saturating_sub(done.finished);
        if next.children.is_empty() {
            break;
        }
        let rewards: Vec<f32> = done.kept.iter().map(|n| score[n]).collect();
        let widths = rebase_widths(&rewards, budget, 0.5);
        for (node, w) in done.kept.iter().zip(widths) {
            assert_eq!(next.children.get(node).copied().unwrap_or(0), w, "node {node}");
        }
        checked += 1;
    }
    assert!(checked >= 2, "the search should run several balanced steps");
    // The answer is the best finished sample.
    let finished: Vec<NodeId> = trace
        .events
        .iter()
        .filter_map(|e| if let TraceEvent::Finish { node, .. } = e { Some(*node) } else { None })
        .collect();
    let best_finished = finished.iter().map(|n| score[n]).fold(f32::NEG_INFINITY, f32::max);
    assert_eq!(out.score, Some(best_finished));
}

#[test]
fn siblings_on_the_same_path_still_grow_apart() {
    // A constant PRM gives every live node the same width (1 each), so each
    // node's only child continues from a path that other nodes may share.
    // Streams follow the lineage, so the 8 branches stay independent samples
    // rather than collapsing onto one path.
    let mut policy = FakePolicy::constant(&[0.0, 0.25, 0.25, 0.25, 0.25], END);
    let mut prm = FakePrm::new(|_| 0.0);
    let c = config(Strategy::Rebase(RebaseConfig { width: 8, temperature: 0.1, chunk: 1 }), 6, 6);
    let (out, _) = run(&c, &mut policy, Some(&mut prm), None);
    // One path would compute 3 context tokens + 5; 8 independent ones far more.
    assert!(out.cost.policy.tokens_computed > 3 + 5 * 4, "{}", out.cost.policy.tokens_computed);
}
