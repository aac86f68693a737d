//! The policy of one search over a remote engine.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use saffron_core::{ModelCost, ModelError, Policy, SequenceOutputs, TokenId, WantedOutputs};
use saffron_engine::{Model, ModelShape};

use super::response::NextTokens;
use super::{Client, RemoteError};
use crate::backend::PolicySession;

/// One search's view of the server: it asks for each node's next tokens,
/// remembers them (a search asks for a node more than once), and counts
/// what the server computed.
pub struct RemoteSession<'a> {
    client: &'a Client,
    shape: ModelShape,
    end_of_generation: Vec<TokenId>,
    concurrency: usize,
    /// Top-k next tokens per path asked about.
    memo: HashMap<Vec<TokenId>, Arc<[(TokenId, f32)]>>,
    cost: ModelCost,
    waited: Duration,
    first_call_cached: Option<u64>,
    /// The probability mass of the returned tokens, per request.
    masses: Vec<f32>,
    /// The search's nucleus mass (see [`PolicySession::set_nucleus`]).
    nucleus: f32,
}

impl<'a> RemoteSession<'a> {
    pub fn new(client: &'a Client, vocabulary: &Model, concurrency: usize) -> RemoteSession<'a> {
        RemoteSession {
            client,
            shape: *vocabulary.shape(),
            end_of_generation: vocabulary.end_of_generation().to_vec(),
            concurrency: concurrency.max(1),
            memo: HashMap::new(),
            cost: ModelCost::default(),
            waited: Duration::ZERO,
            first_call_cached: None,
            masses: Vec::new(),
            nucleus: 1.0,
        }
    }

    /// Asks the server about every path of `paths` (`concurrency` at a
    /// time), in order.
    fn fetch(&self, paths: &[&[TokenId]]) -> Result<Vec<NextTokens>, RemoteError> {
        if self.concurrency == 1 || paths.len() == 1 {
            return paths.iter().map(|p| self.client.next_tokens(p)).collect();
        }
        let per_thread = paths.len().div_ceil(self.concurrency);
        std::thread::scope(|scope| {
            let handles: Vec<_> = paths
                .chunks(per_thread)
                .map(|chunk| scope.spawn(move || chunk.iter().map(|p| self.client.next_tokens(p)).collect::<Vec<_>>()))
                .collect();
            let mut all = Vec::with_capacity(paths.len());
            for handle in handles {
                match handle.join() {
                    Ok(answers) => all.extend(answers),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            all.into_iter().collect()
        })
    }

    /// Charges one answered request for `path`: the tokens the server had
    /// cached are served, the rest computed (logits only at the last).
    fn charge(&mut self, path: &[TokenId], cached: Option<u64>) {
        let len = path.len() as u64;
        let cached = cached.unwrap_or(0).min(len.saturating_sub(1));
        self.cost.tokens_served += cached;
        self.cost.tokens_computed += len - cached;
        self.cost.flops += (cached..len).map(|at| self.shape.token_flops(at + 1, at + 1 == len)).sum::<f64>();
        self.first_call_cached.get_or_insert(cached);
    }

    /// Dense logits from the returned log-probabilities. When they hold
    /// the search's nucleus, the rest of the mass is spread evenly over the
    /// other tokens: every returned token then has its true probability, so
    /// the nucleus and the draws from it are the local engine's (each other
    /// token stays less likely than the least likely returned one, so none
    /// enters the nucleus). When they do not, the others get −∞: the
    /// nucleus is cut to the returned tokens (counted in `masses`) rather
    /// than filled with tokens of made-up probability.
    fn logits(&self, top: &[(TokenId, f32)]) -> Arc<[f32]> {
        let vocab = self.shape.n_vocab as usize;
        let mass = mass(top);
        let others = vocab.saturating_sub(top.len()).max(1) as f32;
        let least = top.iter().map(|&(_, lp)| lp).fold(f32::INFINITY, f32::min);
        let rest = match 1.0 - mass {
            r if mass >= self.nucleus && r > 0.0 => (r / others).ln().min(least),
            _ => f32::NEG_INFINITY,
        };
        let mut logits = vec![rest; vocab];
        for &(token, logprob) in top {
            if let Some(l) = logits.get_mut(token as usize) {
                *l = logprob;
            }
        }
        logits.into()
    }
}

impl Policy for RemoteSession<'_> {
    fn vocab_size(&self) -> usize {
        self.shape.n_vocab as usize
    }

    fn is_end_of_generation(&self, token: TokenId) -> bool {
        self.end_of_generation.contains(&token)
    }

    fn end_of_generation_tokens(&self) -> Vec<TokenId> {
        self.end_of_generation.clone()
    }

    fn outputs(&mut self, sequences: &[&[TokenId]], wanted: WantedOutputs) -> Result<Vec<SequenceOutputs>, ModelError> {
        if wanted.hidden() {
            return Err(ModelError::new(RemoteError::NoHiddenStates));
        }
        let clock = Instant::now();
        let mut missing: Vec<&[TokenId]> = sequences.iter().copied().filter(|s| !self.memo.contains_key(*s)).collect();
        missing.sort_unstable();
        missing.dedup();
        let answers = self.fetch(&missing).map_err(ModelError::new)?;
        for (path, answer) in missing.iter().zip(answers) {
            self.charge(path, answer.cached_tokens);
            self.masses.push(mass(&answer.top));
            self.memo.insert(path.to_vec(), answer.top.into());
        }
        // Every other sequence asked about was remembered: served.
        let asked: usize = sequences.iter().map(|s| s.len()).sum();
        let fetched: usize = missing.iter().map(|s| s.len()).sum();
        self.cost.tokens_served += (asked - fetched) as u64;
        self.cost.calls += 1;
        self.cost.sequences += sequences.len() as u64;
        self.waited += clock.elapsed();
        Ok(sequences
            .iter()
            .map(|s| SequenceOutputs { logits: Some(self.logits(&self.memo[*s])), hidden: None })
            .collect())
    }

    fn cost(&self) -> ModelCost {
        self.cost
    }
}

impl PolicySession for RemoteSession<'_> {
    fn clear(&mut self) {
        self.memo.clear();
    }

    fn engine_time(&self) -> Duration {
        self.waited
    }

    fn first_call_cached(&self) -> u64 {
        self.first_call_cached.unwrap_or(0)
    }

    fn top_k_masses(&self) -> Option<&[f32]> {
        Some(&self.masses)
    }

    fn set_nucleus(&mut self, mass: f32) {
        self.nucleus = mass;
    }
}

/// The probability mass of returned tokens.
fn mass(top: &[(TokenId, f32)]) -> f32 {
    top.iter().map(|&(_, lp)| lp.exp()).sum()
}
