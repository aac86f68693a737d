//! Saffron-1 search (method.md section 3).
//!
//! Each step, every growing node of the beam is scored by ONE call of the
//! multifurcation reward model, which rewards all of its next tokens at
//! once. The candidates are the tokens of each node's top-p nucleus (at
//! temperature 1, end-of-generation banned before the minimum length),
//! pooled over all nodes; the N best candidates by reward, together with the
//! finished nodes carried over, form the next beam (global top-N, not per
//! parent). Tokens the MRM never saw in training get −∞ (the conservative
//! mask).
//!
//! Two bookkeepings of node scores:
//! - `default`: a node's score is the MRM reward of the candidate that
//!   created it, and the answer is the finished node with the best score
//!   (optionally re-ranked by the PRM);
//! - `reference`: the released code's, kept to reproduce the paper's
//!   numbers. Unfinished nodes carry a reward of −∞, a node ended by
//!   end-of-generation takes its candidate's reward, unseen tokens get −1024
//!   instead of −∞, and the answer is the first node of maximal reward, so a
//!   finished node beats every unfinished one whatever its reward. The
//!   released code takes the top-N candidates with an unsorted top-k; here
//!   candidates are ranked by reward, ties in pooled order (node order, then
//!   nucleus order), and the new beam is sorted stably as in the released code.

use std::sync::Arc;

use rayon::prelude::*;
use saffron_core::sampling::{nucleus, Candidate as Choice};
use saffron_core::{ModelRole, TokenId, WantedOutputs};

use crate::config::{FinalPick, SaffronConfig, SaffronVariant};
use crate::run::Run;
use crate::search_tree::{best_index, by_score, check_length, Branch};
use crate::SearchError;
use crate::StrategyKind;

/// The released code's stand-in for infinity on unseen tokens.
const REFERENCE_UNSEEN_REWARD: f32 = -1024.0;

/// A candidate next token of a beam node.
struct Candidate {
    parent: usize,
    token: TokenId,
    reward: f32,
    /// The policy's log-probability of the parent's tokens and this one.
    logprob: f32,
    /// What it is ranked by: the reward (capped if asked), plus the fluency
    /// term if asked.
    rank: f32,
}

pub(crate) fn search(run: &mut Run, config: &SaffronConfig) -> Result<Branch, SearchError> {
    run.models.require(StrategyKind::Saffron, ModelRole::Mrm)?;
    if config.final_pick == FinalPick::PrmRerank {
        run.models.require(StrategyKind::Saffron, ModelRole::Prm)?;
    }
    let reference = config.variant == SaffronVariant::Reference;
    let mut root = run.tree.root();
    if reference {
        root.score = Some(f32::NEG_INFINITY);
    }
    let mut beam = vec![root];
    while beam.iter().any(Branch::is_active) && run.begin_step() {
        let (carried, active): (Vec<Branch>, Vec<Branch>) = beam.into_iter().partition(|b| !b.is_active());
        let mut candidates = candidates(run, config, &active)?;
        // Stable: ties keep pooled order.
        candidates.sort_by(|a, b| b.rank.total_cmp(&a.rank));
        candidates.truncate(config.width);
        let mut children = Vec::with_capacity(candidates.len());
        for c in &candidates {
            let ended = run.tree.is_end(c.token);
            let appended: &[TokenId] = if ended { &[] } else { &[c.token] };
            let mut child = run.tree.child(&active[c.parent], appended, ended, 0, run.observer);
            child.score =
                Some(if reference && !ended { active[c.parent].score.unwrap_or(f32::NEG_INFINITY) } else { c.rank });
            child.logprob = c.logprob;
            run.observer.score(child.id, ModelRole::Mrm, c.reward);
            children.push(child);
        }
        beam = carried.into_iter().chain(children).collect();
        beam.sort_by(by_score);
        beam.truncate(config.width);
        run.end_step(&beam);
    }
    if reference {
        // The first node of maximal reward, as Python's `max` over the list.
        let Some(best) = best_index(&beam, |_| true) else { return Ok(run.tree.root()) };
        let answer = beam.remove(best);
        run.runners_up = beam;
        return Ok(answer);
    }
    if config.final_pick == FinalPick::PrmRerank {
        let (mut finished, rest): (Vec<Branch>, Vec<Branch>) = beam.into_iter().partition(|b| !b.is_active());
        run.tree.score_with_prm(run.models, &mut finished, run.observer)?;
        beam = finished.into_iter().chain(rest).collect();
    }
    Ok(run.take_answer(beam).unwrap_or_else(|| run.tree.root()))
}

/// Every (node, nucleus token, reward) of the growing nodes, in pooled
/// order: one policy call and one MRM call for all of them.
fn candidates(run: &mut Run, config: &SaffronConfig, active: &[Branch]) -> Result<Vec<Candidate>, SearchError> {
    let responses: Vec<&[TokenId]> = active.iter().map(|b| b.tokens.as_slice()).collect();
    let needs_hidden = run.models.mrm.as_ref().is_some_and(|m| m.needs_policy_hidden());
    let wanted = if needs_hidden { WantedOutputs::LogitsAndHidden } else { WantedOutputs::Logits };
    let outputs = run.tree.policy_outputs(run.models, &responses, wanted)?;
    let mrm =
        run.models.mrm.as_deref_mut().ok_or(SearchError::MissingOutput { role: ModelRole::Mrm, what: "model" })?;
    let rewards: Vec<Arc<[f32]>> = mrm.rewards(&responses, &outputs).map_err(SearchError::model(ModelRole::Mrm))?;
    check_length(ModelRole::Mrm, responses.len(), rewards.len())?;
    let vocab = run.models.policy.vocab_size();
    if let Some(reward) = rewards.iter().find(|r| r.len() != vocab) {
        return Err(SearchError::WrongLength { role: ModelRole::Mrm, asked: vocab, got: reward.len() });
    }
    // The nuclei on several threads (llama.cpp's are idle meanwhile); pooled
    // in node order below, as if computed one by one.
    let tree = &run.tree;
    let nuclei: Vec<(Vec<Choice>, f32)> = outputs
        .par_iter()
        .zip(active)
        .map(|(output, branch)| {
            let logits = output.logits.as_deref().unwrap_or_default();
            let choices = nucleus(logits, 1.0, None, config.top_p, tree.banned(branch.tokens.len()));
            (choices, log_sum_exp(logits))
        })
        .collect();
    let mut pooled = Vec::new();
    for (parent, ((nucleus, normaliser), reward)) in nuclei.into_iter().zip(&rewards).enumerate() {
        let logits = outputs[parent].logits.as_deref().unwrap_or_default();
        let branch = &active[parent];
        for c in nucleus {
            let unseen = run.models.mrm.as_ref().is_some_and(|m| m.is_unseen(c.token));
            let value = match (unseen, config.variant) {
                (true, SaffronVariant::Reference) => REFERENCE_UNSEEN_REWARD,
                (true, SaffronVariant::Default) if config.conservative => f32::NEG_INFINITY,
                _ => reward[c.token as usize],
            };
            let logprob = branch.logprob + (logits[c.token as usize] - normaliser);
            let rank = rank(value, logprob, branch.tokens.len() + 1, config);
            pooled.push(Candidate { parent, token: c.token, reward: value, logprob, rank });
        }
    }
    Ok(pooled)
}

/// A candidate's rank: its reward (capped at `reward_cap`, if set), plus
/// `fluency_weight` × the mean log-probability per token of the `len`
/// tokens of the answer it makes (no cap and weight 0: the reward alone,
/// the paper's ranking).
fn rank(reward: f32, logprob: f32, len: usize, config: &SaffronConfig) -> f32 {
    let reward = config.reward_cap.map_or(reward, |cap| reward.min(cap));
    if config.fluency_weight == 0.0 {
        return reward;
    }
    reward + config.fluency_weight * logprob / len as f32
}

/// `ln Σ exp(x)`, stable.
fn log_sum_exp(xs: &[f32]) -> f32 {
    let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return max;
    }
    max + xs.iter().map(|x| (x - max).exp()).sum::<f32>().ln()
}
