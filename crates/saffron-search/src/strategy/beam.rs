//! PRM beam search (method.md section 5): every beam node gets C sampled
//! children of `chunk` tokens, the PRM scores each child (one call per
//! child), and the N best of the children and the already finished nodes
//! form the next beam. Identical children of one parent are merged before
//! scoring. The answer is the best finished node.

use saffron_core::ModelRole;

use crate::config::BeamConfig;
use crate::run::Run;
use crate::search_tree::{keep_best, substream, Branch};
use crate::SearchError;
use crate::StrategyKind;

pub(crate) fn search(run: &mut Run, config: &BeamConfig) -> Result<Branch, SearchError> {
    run.models.require(StrategyKind::Beam, ModelRole::Prm)?;
    let mut beam = vec![run.tree.root()];
    while beam.iter().any(Branch::is_active) && run.begin_step() {
        let active: Vec<&Branch> = beam.iter().filter(|b| b.is_active()).collect();
        let starts: Vec<(&[u32], u64)> = active
            .iter()
            .flat_map(|b| (0..config.children as u64).map(|c| (b.tokens.as_slice(), substream(b.stream, c))))
            .collect();
        let decoding = run.decoding;
        let rolls = run.tree.rollout(run.models, &starts, config.chunk, &decoding)?;
        let mut children = Vec::new();
        for (p, parent) in active.iter().enumerate() {
            let siblings = &rolls[p * config.children..(p + 1) * config.children];
            for (c, roll) in siblings.iter().enumerate() {
                let duplicate = siblings[..c].iter().any(|r| r.tokens == roll.tokens && r.ended == roll.ended);
                if !duplicate {
                    let stream = starts[p * config.children + c].1;
                    children.push(run.tree.child(parent, &roll.tokens, roll.ended, stream, run.observer));
                }
            }
        }
        run.tree.score_with_prm(run.models, &mut children, run.observer)?;
        let carried = beam.into_iter().filter(|b| !b.is_active());
        beam = keep_best(carried.chain(children).collect(), config.width);
        run.end_step(&beam);
    }
    Ok(run.take_answer(beam).unwrap_or_else(|| run.tree.root()))
}
