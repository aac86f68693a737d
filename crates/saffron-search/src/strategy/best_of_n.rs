//! Best-of-N (method.md section 5): N independent samples grown together
//! (one batched policy call per token), the PRM scores every sample once at
//! the end, the highest reward wins (ties: the lowest sample index). The
//! other samples are kept, ranked, as the outcome's runners-up.
//!
//! Sample `i` draws with random stream `i`, so sample 0 is exactly the
//! answer of the `sample` strategy with the same seed, and a run at N
//! contains the runs at every smaller N as its first samples.
//! If the budget stops the sampling early, the unfinished samples are scored
//! as they are (that final PRM call is the one step a budget may overshoot).

use saffron_core::ModelRole;

use crate::config::BestOfNConfig;
use crate::run::Run;
use crate::search_tree::{by_score, Branch};
use crate::SearchError;
use crate::StrategyKind;

pub(crate) fn search(run: &mut Run, config: &BestOfNConfig) -> Result<Branch, SearchError> {
    run.models.require(StrategyKind::BestOfN, ModelRole::Prm)?;
    let root = run.tree.root();
    let mut samples: Vec<Branch> = vec![root; config.n];
    while samples.iter().any(Branch::is_active) && run.begin_step() {
        let active: Vec<usize> = (0..samples.len()).filter(|&i| samples[i].is_active()).collect();
        // Sample i is drawn on stream i from start to end.
        let parents: Vec<(&Branch, u64)> = active.iter().map(|&i| (&samples[i], i as u64)).collect();
        let decoding = run.decoding;
        let children = run.tree.extend(run.models, &parents, 1, &decoding, run.observer)?;
        for (i, child) in active.into_iter().zip(children) {
            samples[i] = child;
        }
        run.end_step(&samples);
    }
    run.tree.score_with_prm(run.models, &mut samples, run.observer)?;
    // Best first; equal scores keep the sample order (the lowest index wins).
    samples.sort_by(by_score);
    let best = samples.remove(0);
    run.runners_up = samples;
    Ok(best)
}
