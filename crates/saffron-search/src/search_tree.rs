//! The bookkeeping every strategy shares: nodes (responses so far), turning
//! them into policy paths, sampling rollouts in batches, scoring with the PRM,
//! and ranking. The models' own prefix trees make repeated prefixes free; this
//! tree only names nodes and remembers their scores.

use std::cmp::Ordering;

use rayon::prelude::*;
use saffron_core::sampling::{node_key, sample, Decoding};
use saffron_core::{ModelRole, Policy, SequenceOutputs, TokenId, WantedOutputs};

use crate::config::LengthLimits;
use crate::outcome::FinishReason;
use crate::trace::{NodeId, SearchObserver, ROOT};
use crate::{Models, SearchError};

/// One node of a search: the response generated so far.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Branch {
    pub id: NodeId,
    /// Generated tokens (the context is not repeated here).
    pub tokens: Vec<TokenId>,
    pub score: Option<f32>,
    pub finish: Option<FinishReason>,
    /// The random stream this node's samples are drawn from. Two nodes with
    /// the same path but different streams (Rebase siblings, say) draw
    /// differently; see [`substream`].
    pub stream: u64,
    /// The policy's log-probability of `tokens` (and of the end, for a node
    /// ended by end-of-generation) at temperature 1, where a strategy keeps
    /// it (Saffron's fluency-aware ranking); 0 otherwise.
    pub logprob: f32,
}

/// The stream of the `index`-th sampled child of a node on `stream`: a hash,
/// so that the lineage of sibling indices, not just the path, keys a draw.
pub(crate) fn substream(stream: u64, index: u64) -> u64 {
    node_key(stream, index, &[])
}

impl Branch {
    pub fn is_active(&self) -> bool {
        self.finish.is_none()
    }

    /// The score used for ranking: a missing or NaN score ranks last.
    pub fn rank_score(&self) -> f32 {
        self.score.filter(|s| !s.is_nan()).unwrap_or(f32::NEG_INFINITY)
    }
}

/// Tokens sampled after one start.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rollout {
    pub tokens: Vec<TokenId>,
    /// Ended by an end-of-generation token (not included in `tokens`).
    pub ended: bool,
}

pub(crate) struct SearchTree<'c> {
    context: &'c [TokenId],
    length: LengthLimits,
    seed: u64,
    /// Sorted end-of-generation tokens of the policy.
    end_tokens: Vec<TokenId>,
    next_id: NodeId,
}

impl<'c> SearchTree<'c> {
    pub fn new(context: &'c [TokenId], length: LengthLimits, seed: u64, policy: &dyn Policy) -> SearchTree<'c> {
        let mut end_tokens = policy.end_of_generation_tokens();
        end_tokens.sort_unstable();
        SearchTree { context, length, seed, end_tokens, next_id: ROOT + 1 }
    }

    pub fn root(&self) -> Branch {
        Branch { id: ROOT, tokens: Vec::new(), score: None, finish: None, stream: 0, logprob: 0.0 }
    }

    pub fn is_end(&self, token: TokenId) -> bool {
        self.end_tokens.binary_search(&token).is_ok()
    }

    /// Tokens that may not be chosen after `generated` new tokens:
    /// end-of-generation before the minimum length.
    pub fn banned(&self, generated: usize) -> &[TokenId] {
        if generated < self.length.min_new_tokens {
            &self.end_tokens
        } else {
            &[]
        }
    }

    /// The policy's token path of a response: context, then the response.
    pub fn path(&self, response: &[TokenId]) -> Vec<TokenId> {
        let mut path = Vec::with_capacity(self.context.len() + response.len());
        path.extend_from_slice(self.context);
        path.extend_from_slice(response);
        path
    }

    /// A new node on random stream `stream`: `parent` followed by
    /// `appended`, ended by end-of-generation when `ended`, and by the length
    /// limit when it reaches it.
    pub fn child(
        &mut self,
        parent: &Branch,
        appended: &[TokenId],
        ended: bool,
        stream: u64,
        observer: &mut dyn SearchObserver,
    ) -> Branch {
        let id = self.next_id;
        self.next_id += 1;
        let mut tokens = parent.tokens.clone();
        tokens.extend_from_slice(appended);
        let finish = if ended {
            Some(FinishReason::EndOfGeneration)
        } else if tokens.len() >= self.length.max_new_tokens {
            Some(FinishReason::Length)
        } else {
            None
        };
        observer.expand(parent.id, id, appended);
        if let Some(reason) = finish {
            observer.finish(id, reason);
        }
        Branch { id, tokens, score: None, finish, stream, logprob: 0.0 }
    }

    /// The policy's outputs at the end of each response, in one call.
    pub fn policy_outputs(
        &self,
        models: &mut Models,
        responses: &[&[TokenId]],
        wanted: WantedOutputs,
    ) -> Result<Vec<SequenceOutputs>, SearchError> {
        let paths: Vec<Vec<TokenId>> = responses.iter().map(|r| self.path(r)).collect();
        self.policy_outputs_of_paths(models, &paths, wanted)
    }

    /// The policy's outputs at the end of each full path (context included).
    fn policy_outputs_of_paths(
        &self,
        models: &mut Models,
        paths: &[Vec<TokenId>],
        wanted: WantedOutputs,
    ) -> Result<Vec<SequenceOutputs>, SearchError> {
        let refs: Vec<&[TokenId]> = paths.iter().map(Vec::as_slice).collect();
        let outputs = models.policy.outputs(&refs, wanted).map_err(SearchError::model(ModelRole::Policy))?;
        check_length(ModelRole::Policy, paths.len(), outputs.len())?;
        if wanted.logits() && outputs.iter().any(|o| o.logits.is_none()) {
            return Err(SearchError::MissingOutput { role: ModelRole::Policy, what: "logits" });
        }
        Ok(outputs)
    }

    /// Samples up to `steps` tokens after each `(response, stream)`, all
    /// starts advancing together (one batched policy call per position). A
    /// rollout stops at end-of-generation or the length limit. Token choice
    /// is keyed by (seed, stream, path), so it never depends on batching.
    pub fn rollout(
        &self,
        models: &mut Models,
        starts: &[(&[TokenId], u64)],
        steps: usize,
        decoding: &Decoding,
    ) -> Result<Vec<Rollout>, SearchError> {
        let mut rolls = vec![Rollout::default(); starts.len()];
        for _ in 0..steps {
            let active: Vec<usize> = (0..starts.len())
                .filter(|&i| !rolls[i].ended && starts[i].0.len() + rolls[i].tokens.len() < self.length.max_new_tokens)
                .collect();
            if active.is_empty() {
                break;
            }
            let paths: Vec<Vec<TokenId>> =
                active.iter().map(|&i| [self.context, starts[i].0, &rolls[i].tokens].concat()).collect();
            let outputs = self.policy_outputs_of_paths(models, &paths, WantedOutputs::Logits)?;
            // Each draw is keyed by its own path, so drawing them on several
            // threads (llama.cpp's are idle meanwhile) changes nothing.
            let drawn: Vec<Option<TokenId>> = active
                .par_iter()
                .zip(&paths)
                .zip(&outputs)
                .map(|((&i, path), output)| {
                    let logits = output.logits.as_deref().unwrap_or_default();
                    let key = node_key(self.seed, starts[i].1, path);
                    sample(logits, decoding, self.banned(path.len() - self.context.len()), key)
                })
                .collect();
            for (&i, token) in active.iter().zip(drawn) {
                match token {
                    Some(t) if !self.is_end(t) => rolls[i].tokens.push(t),
                    // No allowed token, or end-of-generation: the rollout ends.
                    _ => rolls[i].ended = true,
                }
            }
        }
        Ok(rolls)
    }

    /// One child per `(parent, stream)`: the parent extended by a rollout of
    /// up to `steps` tokens sampled on `stream`, which the child keeps.
    pub fn extend(
        &mut self,
        models: &mut Models,
        parents: &[(&Branch, u64)],
        steps: usize,
        decoding: &Decoding,
        observer: &mut dyn SearchObserver,
    ) -> Result<Vec<Branch>, SearchError> {
        let starts: Vec<(&[TokenId], u64)> = parents.iter().map(|(b, s)| (b.tokens.as_slice(), *s)).collect();
        let rolls = self.rollout(models, &starts, steps, decoding)?;
        Ok(parents
            .iter()
            .zip(rolls)
            .map(|((parent, stream), roll)| self.child(parent, &roll.tokens, roll.ended, *stream, observer))
            .collect())
    }

    /// PRM rewards of `responses`, in one call.
    pub fn prm_scores(&self, models: &mut Models, responses: &[&[TokenId]]) -> Result<Vec<f32>, SearchError> {
        if responses.is_empty() {
            return Ok(Vec::new());
        }
        let prm =
            models.prm.as_deref_mut().ok_or(SearchError::MissingOutput { role: ModelRole::Prm, what: "model" })?;
        let scores = prm.score(responses).map_err(SearchError::model(ModelRole::Prm))?;
        check_length(ModelRole::Prm, responses.len(), scores.len())?;
        Ok(scores)
    }

    /// Scores `branches` with the PRM in one call and records the scores.
    pub fn score_with_prm(
        &self,
        models: &mut Models,
        branches: &mut [Branch],
        observer: &mut dyn SearchObserver,
    ) -> Result<(), SearchError> {
        let responses: Vec<&[TokenId]> = branches.iter().map(|b| b.tokens.as_slice()).collect();
        let scores = self.prm_scores(models, &responses)?;
        for (branch, score) in branches.iter_mut().zip(scores) {
            branch.score = Some(score);
            observer.score(branch.id, ModelRole::Prm, score);
        }
        Ok(())
    }
}

pub(crate) fn check_length(role: ModelRole, asked: usize, got: usize) -> Result<(), SearchError> {
    if asked == got {
        Ok(())
    } else {
        Err(SearchError::WrongLength { role, asked, got })
    }
}

/// Descending score; ties keep their order (a stable sort), so the earliest
/// listed wins. Every ranking in this crate uses this order.
pub(crate) fn by_score(a: &Branch, b: &Branch) -> Ordering {
    b.rank_score().total_cmp(&a.rank_score())
}

/// Keeps the `n` best branches by score (ties: earlier first).
pub(crate) fn keep_best(mut branches: Vec<Branch>, n: usize) -> Vec<Branch> {
    branches.sort_by(by_score);
    branches.truncate(n);
    branches
}

/// The index of the best branch among those matching `eligible` (ties: the
/// first), or `None` when there is none.
pub(crate) fn best_index(branches: &[Branch], eligible: impl Fn(&Branch) -> bool) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, b) in branches.iter().enumerate().filter(|(_, b)| eligible(b)) {
        if best.is_none_or(|j| by_score(b, &branches[j]) == Ordering::Less) {
            best = Some(i);
        }
    }
    best
}
