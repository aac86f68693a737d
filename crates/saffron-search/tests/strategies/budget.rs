use proptest::prelude::*;
use saffron_core::{Budget, Cost, Limit};
use saffron_search::fake::{FakeMrm, FakePolicy, FakePrm, FLOPS_PER_TOKEN};
use saffron_search::{BestOfNConfig, StopCause, Strategy, StrategyKind, TraceEvent};

use crate::common::*;

fn spent_per_step(trace: &saffron_search::Trace) -> Vec<Cost> {
    trace
        .events
        .iter()
        .filter_map(|e| if let TraceEvent::Select { spent, .. } = e { Some(*spent) } else { None })
        .collect()
}

#[test]
fn best_of_n_stops_before_the_step_that_would_go_over() {
    // 4 samples that never end. The meter lets a step start only if the
    // spending so far plus the largest step so far stays within the cap.
    let cap = 12;
    let mut policy = FakePolicy::constant(&[0.0, 0.3, 0.3, 0.4], END);
    let mut prm = FakePrm::new(|r| count(r, 1));
    let mut c = config(Strategy::BestOfN(BestOfNConfig { n: 4 }), 20, 20);
    c.budget = Budget { max_policy_tokens: Some(cap), ..Budget::default() };
    let (out, trace) = run(&c, &mut policy, Some(&mut prm), None);
    assert_eq!(out.stopped_by, Some(StopCause::Budget(Limit::PolicyTokens)));
    let spent: Vec<u64> = spent_per_step(&trace).iter().map(|c| c.policy.tokens_computed).collect();
    let steps: Vec<u64> = spent.iter().scan(0, |before, &s| Some(s - std::mem::replace(before, s))).collect();
    let largest = *steps.iter().max().unwrap();
    assert!(*spent.last().unwrap() <= cap, "no step went over: {spent:?}");
    assert!(spent.last().unwrap() + largest > cap, "one more step might have gone over: {spent:?}");
    assert_eq!(out.cost.policy.tokens_computed, *spent.last().unwrap());
    assert_eq!(out.tokens.len(), spent.len(), "the best partial answer is still returned");
    assert_eq!(out.finish, saffron_search::FinishReason::Stopped);
    assert_eq!(out.cost.prm.sequences, 4, "the partial samples are scored");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Whatever the cap and strategy, every step starts within the budget,
    /// so the cap is overshot by at most the last step (and, for strategies
    /// that score their finished answers at the end, that final scoring).
    #[test]
    fn a_tflop_cap_is_overshot_by_at_most_one_step(cap_gflop in 1u32..200, which in 0usize..6) {
        let kind = StrategyKind::ALL[which];
        let mut strategy = kind.default_strategy();
        if kind.has_width() {
            strategy.set_width(4).unwrap();
        }
        let mut c = config(strategy, 12, 4);
        let cap = cap_gflop as f64 * FLOPS_PER_TOKEN / 1e12;
        c.budget = Budget { max_tflop: Some(cap), ..Budget::default() };
        let mut policy = FakePolicy::constant(&[0.05, 0.3, 0.3, 0.35], END);
        let mut prm = FakePrm::new(|r| count(r, 2));
        let mut mrm = FakeMrm::new(4, |_: &[u32], a: u32| a as f32);
        let (out, trace) = run(&c, &mut policy, Some(&mut prm), Some(&mut mrm));
        let spent = spent_per_step(&trace);
        // Every step but the last began and ended within the cap.
        for s in spent.iter().take(spent.len().saturating_sub(1)) {
            prop_assert!(s.tflop() <= cap + 1e-12, "{kind}: {} > {cap}", s.tflop());
        }
        if out.stopped_by.is_some() {
            prop_assert!(matches!(out.stopped_by, Some(StopCause::Budget(Limit::Tflop))));
        }
    }
}
