//! Reward-balanced search, REBASE (Wu et al. 2024; method.md section 5).
//!
//! The root gets B children. After that, each step splits the remaining
//! budget B over the live nodes by their PRM rewards,
//! `width_j = round(B · softmax(R / T_b)_j)`, and gives node j that many
//! sampled children (of `chunk` tokens); a node given 0 is pruned. Every
//! child is scored by the PRM; a finished child leaves the tree and reduces
//! B by one. The search ends when B reaches 0 or nothing is live; the answer
//! is the finished node with the highest reward.
//!
//! Choices where the source is silent: rounding is half away from zero, so
//! the widths may sum to slightly more or less than B (the formula as
//! written); if every width rounds to 0 while B > 0, the best node gets 1 so
//! the search cannot stall. Siblings are independent samples (each on its
//! own random stream, so identical siblings still grow apart) and are not
//! merged.

use saffron_core::ModelRole;

use crate::config::RebaseConfig;
use crate::run::Run;
use crate::search_tree::{substream, Branch};
use crate::SearchError;
use crate::StrategyKind;

/// Expansion widths `round(B · softmax(R / T_b))`, with the rule that the
/// best node gets 1 when all would get 0 (ties: the first).
pub fn rebase_widths(rewards: &[f32], budget: usize, temperature: f32) -> Vec<usize> {
    if rewards.is_empty() {
        return Vec::new();
    }
    let max = rewards.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let weights: Vec<f64> = rewards.iter().map(|&r| ((r as f64 - max) / temperature as f64).exp()).collect();
    let total: f64 = weights.iter().sum();
    let mut widths: Vec<usize> = weights.iter().map(|w| (budget as f64 * w / total).round() as usize).collect();
    if budget > 0 && widths.iter().all(|&w| w == 0) {
        let best = rewards.iter().enumerate().fold(0, |b, (i, &r)| if r > rewards[b] { i } else { b });
        widths[best] = 1;
    }
    widths
}

pub(crate) fn search(run: &mut Run, config: &RebaseConfig) -> Result<Branch, SearchError> {
    run.models.require(StrategyKind::Rebase, ModelRole::Prm)?;
    let mut budget = config.width;
    let mut live = vec![run.tree.root()];
    let mut widths = vec![budget];
    let mut completed: Vec<Branch> = Vec::new();
    while budget > 0 && !live.is_empty() && run.begin_step() {
        let parents: Vec<(&Branch, u64)> = live
            .iter()
            .zip(&widths)
            .flat_map(|(b, &w)| (0..w as u64).map(move |j| (b, substream(b.stream, j))))
            .collect();
        let decoding = run.decoding;
        let mut children = run.tree.extend(run.models, &parents, config.chunk, &decoding, run.observer)?;
        run.tree.score_with_prm(run.models, &mut children, run.observer)?;
        let (finished, growing): (Vec<Branch>, Vec<Branch>) = children.into_iter().partition(|b| !b.is_active());
        budget = budget.saturating_sub(finished.len());
        completed.extend(finished);
        live = growing;
        let rewards: Vec<f32> = live.iter().map(Branch::rank_score).collect();
        widths = rebase_widths(&rewards, budget, config.temperature);
        run.end_step(&live);
    }
    completed.extend(live);
    Ok(run.take_answer(completed).unwrap_or_else(|| run.tree.root()))
}
