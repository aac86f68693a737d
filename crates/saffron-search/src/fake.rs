//! Scripted models for tests and examples: no weights, behaviour given by
//! closures, and the prefix-tree cost accounting of the real engine (a token
//! path is computed once; asking again is served for free). Every fake
//! charges 1 GFLOP per computed token, so costs are easy to compute by hand.

use std::collections::HashMap;
use std::sync::Arc;

use saffron_core::{
    ModelCost, ModelError, MultifurcationReward, Policy, ProcessReward, SequenceOutputs, TokenId, WantedOutputs,
};

/// Forward FLOPs charged per computed token by every fake.
pub const FLOPS_PER_TOKEN: f64 = 1e9;

/// Counts computed and served tokens as a prefix tree would.
#[derive(Debug, Default)]
pub struct PrefixCounter {
    children: HashMap<(usize, TokenId), usize>,
}

impl PrefixCounter {
    /// Records `path`; returns (tokens computed, tokens served).
    pub fn visit(&mut self, path: &[TokenId]) -> (u64, u64) {
        let (mut node, mut computed) = (0usize, 0u64);
        for &t in path {
            let next = self.children.len() + 1;
            node = *self.children.entry((node, t)).or_insert_with(|| {
                computed += 1;
                next
            });
        }
        (computed, path.len() as u64 - computed)
    }
}

fn charge(cost: &mut ModelCost, counter: &mut PrefixCounter, sequences: &[&[TokenId]]) {
    cost.calls += 1;
    cost.sequences += sequences.len() as u64;
    for s in sequences {
        let (computed, served) = counter.visit(s);
        cost.tokens_computed += computed;
        cost.tokens_served += served;
        cost.flops += computed as f64 * FLOPS_PER_TOKEN;
    }
}

/// Charges a reward model for reading `responses`. A reward model reads a
/// template around the response: one token stands for it, so an empty
/// response still costs a forward.
fn charge_framed(cost: &mut ModelCost, counter: &mut PrefixCounter, responses: &[&[TokenId]]) {
    let framed: Vec<Vec<TokenId>> = responses.iter().map(|r| [&[u32::MAX][..], r].concat()).collect();
    let refs: Vec<&[TokenId]> = framed.iter().map(Vec::as_slice).collect();
    charge(cost, counter, &refs);
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct FakeError(String);

type LogitsFn = Box<dyn Fn(&[TokenId]) -> Vec<f32>>;

/// A policy whose logits are a function of the full token path. Its hidden
/// state is `[path length, last token]`.
pub struct FakePolicy {
    vocab: usize,
    end: TokenId,
    logits: LogitsFn,
    counter: PrefixCounter,
    cost: ModelCost,
    /// Sizes of the requests made, in order (to check batching).
    pub requests: Vec<usize>,
}

impl FakePolicy {
    pub fn new(vocab: usize, end: TokenId, logits: impl Fn(&[TokenId]) -> Vec<f32> + 'static) -> FakePolicy {
        FakePolicy {
            vocab,
            end,
            logits: Box::new(logits),
            counter: PrefixCounter::default(),
            cost: ModelCost::default(),
            requests: Vec::new(),
        }
    }

    /// The same next-token probabilities after every path.
    pub fn constant(probs: &[f32], end: TokenId) -> FakePolicy {
        let logits: Vec<f32> = probs.iter().map(|p| p.ln()).collect();
        FakePolicy::new(probs.len(), end, move |_| logits.clone())
    }
}

impl Policy for FakePolicy {
    fn vocab_size(&self) -> usize {
        self.vocab
    }

    fn is_end_of_generation(&self, token: TokenId) -> bool {
        token == self.end
    }

    fn outputs(&mut self, sequences: &[&[TokenId]], wanted: WantedOutputs) -> Result<Vec<SequenceOutputs>, ModelError> {
        if sequences.iter().any(|s| s.is_empty()) {
            return Err(ModelError::new(FakeError("empty sequence".into())));
        }
        charge(&mut self.cost, &mut self.counter, sequences);
        self.requests.push(sequences.len());
        Ok(sequences
            .iter()
            .map(|s| SequenceOutputs {
                logits: wanted.logits().then(|| Arc::from((self.logits)(s))),
                hidden: wanted.hidden().then(|| Arc::from(vec![s.len() as f32, s[s.len() - 1] as f32])),
            })
            .collect())
    }

    fn cost(&self) -> ModelCost {
        self.cost
    }
}

/// The scripted reward of a response.
type ScoreFn = Box<dyn Fn(&[TokenId]) -> f32>;

/// A PRM whose reward is a function of the response.
pub struct FakePrm {
    score: ScoreFn,
    counter: PrefixCounter,
    cost: ModelCost,
}

impl FakePrm {
    pub fn new(score: impl Fn(&[TokenId]) -> f32 + 'static) -> FakePrm {
        FakePrm { score: Box::new(score), counter: PrefixCounter::default(), cost: ModelCost::default() }
    }
}

impl ProcessReward for FakePrm {
    fn score(&mut self, responses: &[&[TokenId]]) -> Result<Vec<f32>, ModelError> {
        charge_framed(&mut self.cost, &mut self.counter, responses);
        Ok(responses.iter().map(|r| (self.score)(r)).collect())
    }

    fn cost(&self) -> ModelCost {
        self.cost
    }
}

type RewardFn = Box<dyn Fn(&[TokenId], TokenId) -> f32>;

/// An MRM whose reward for token `a` after response `s` is a function of
/// both; optionally with unseen tokens, and optionally reading the policy's
/// hidden state (it then fails if the search did not pass one).
pub struct FakeMrm {
    vocab: usize,
    reward: RewardFn,
    unseen: Vec<bool>,
    needs_hidden: bool,
    counter: PrefixCounter,
    cost: ModelCost,
}

impl FakeMrm {
    pub fn new(vocab: usize, reward: impl Fn(&[TokenId], TokenId) -> f32 + 'static) -> FakeMrm {
        FakeMrm {
            vocab,
            reward: Box::new(reward),
            unseen: vec![false; vocab],
            needs_hidden: false,
            counter: PrefixCounter::default(),
            cost: ModelCost::default(),
        }
    }

    /// Marks `tokens` as never seen in training.
    pub fn with_unseen(mut self, tokens: &[TokenId]) -> FakeMrm {
        for &t in tokens {
            self.unseen[t as usize] = true;
        }
        self
    }

    /// Makes the MRM a head on the policy's hidden state (no forward of its
    /// own: it charges no tokens, as a shared-backbone MRM).
    pub fn on_policy_hidden(mut self) -> FakeMrm {
        self.needs_hidden = true;
        self
    }
}

impl MultifurcationReward for FakeMrm {
    fn needs_policy_hidden(&self) -> bool {
        self.needs_hidden
    }

    fn rewards(&mut self, responses: &[&[TokenId]], policy: &[SequenceOutputs]) -> Result<Vec<Arc<[f32]>>, ModelError> {
        if self.needs_hidden {
            if policy.len() != responses.len() || policy.iter().any(|o| o.hidden.is_none()) {
                return Err(ModelError::new(FakeError("no policy hidden state passed".into())));
            }
            self.cost.calls += 1;
            self.cost.sequences += responses.len() as u64;
        } else {
            charge_framed(&mut self.cost, &mut self.counter, responses);
        }
        Ok(responses
            .iter()
            .map(|r| (0..self.vocab as TokenId).map(|a| (self.reward)(r, a)).collect::<Vec<f32>>().into())
            .collect())
    }

    fn is_unseen(&self, token: TokenId) -> bool {
        self.unseen.get(token as usize).copied().unwrap_or(true)
    }

    fn cost(&self) -> ModelCost {
        self.cost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_counter_computes_each_prefix_once() {
        let mut c = PrefixCounter::default();
        assert_eq!(c.visit(&[1, 2, 3]), (3, 0));
        assert_eq!(c.visit(&[1, 2, 4]), (1, 2));
        assert_eq!(c.visit(&[1, 2]), (0, 2));
        assert_eq!(c.visit(&[2]), (1, 0));
    }
}
