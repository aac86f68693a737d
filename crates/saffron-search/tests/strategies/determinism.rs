use saffron_core::{ModelCost, ModelError, Policy, SequenceOutputs, TokenId, WantedOutputs};
use saffron_search::fake::{FakeMrm, FakePolicy, FakePrm};
use saffron_search::{search, Models, SearchConfig, StrategyKind, Trace};

use crate::common::*;

/// The same policy, asked one sequence at a time: a different batching.
struct OneAtATime(FakePolicy);

impl Policy for OneAtATime {
    fn vocab_size(&self) -> usize {
        self.0.vocab_size()
    }
    fn is_end_of_generation(&self, token: TokenId) -> bool {
        self.0.is_end_of_generation(token)
    }
    fn outputs(&mut self, sequences: &[&[TokenId]], wanted: WantedOutputs) -> Result<Vec<SequenceOutputs>, ModelError> {
        let mut all = Vec::new();
        for s in sequences.iter().rev() {
            all.push(self.0.outputs(&[s], wanted)?.remove(0));
        }
        all.reverse();
        Ok(all)
    }
    fn cost(&self) -> ModelCost {
        self.0.cost()
    }
}

fn policy() -> FakePolicy {
    FakePolicy::new(6, END, |path: &[TokenId]| {
        // A path-dependent distribution, so different paths diverge.
        let h = path.iter().fold(17u32, |h, &t| h.wrapping_mul(31).wrapping_add(t));
        (0..6).map(|a| (((h >> a) & 7) as f32 + 1.0).ln()).collect()
    })
}

fn outcome(config: &SearchConfig, policy: &mut dyn Policy) -> (Vec<TokenId>, ModelCost, ModelCost, ModelCost) {
    let mut prm = FakePrm::new(|r| count(r, 3) - count(r, 5));
    let mut mrm = FakeMrm::new(6, |s: &[TokenId], a: TokenId| (s.len() as f32 * 0.1) + if a == 3 { 1.0 } else { 0.0 });
    let mut models = Models { policy, prm: Some(&mut prm), mrm: Some(&mut mrm) };
    let out = search(config, &mut models, &CONTEXT, &mut Trace::default()).unwrap();
    let mut policy_cost = out.cost.policy;
    policy_cost.calls = 0; // batched calls differ by construction
    (out.tokens, policy_cost, out.cost.prm, out.cost.mrm)
}

#[test]
fn same_seed_same_answer_and_cost_whatever_the_batching() {
    for kind in StrategyKind::ALL {
        let mut strategy = kind.default_strategy();
        if kind.has_width() {
            strategy.set_width(4).unwrap();
        }
        let mut c = config(strategy, 10, 2);
        c.seed = 5;
        let batched = outcome(&c, &mut policy());
        let (mut p, mut single) = (policy(), OneAtATime(policy()));
        let again = outcome(&c, &mut p);
        let one_by_one = outcome(&c, &mut single);
        assert_eq!(batched, again, "{kind}: two runs differ");
        // Sequences counted per request differ only in `calls`.
        assert_eq!(batched.0, one_by_one.0, "{kind}: batching changed the answer");
        assert_eq!(batched.1.tokens_computed, one_by_one.1.tokens_computed, "{kind}");
        assert_eq!(batched.1.flops, one_by_one.1.flops, "{kind}");
        // A different seed changes at least the sampled strategies.
        if kind == StrategyKind::BestOfN {
            c.seed = 6;
            let (tokens, ..) = outcome(&c, &mut policy());
            assert_ne!(tokens, batched.0, "seed 6 gave the same answer as seed 5");
        }
    }
}
