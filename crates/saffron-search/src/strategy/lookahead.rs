//! Lookahead search in the style of DeAL (Huang et al. 2024; method.md
//! section 5): each beam node proposes the policy's k most likely next
//! tokens; each proposal is extended by `depth` greedy tokens and the PRM
//! scores that rollout; the N best proposals and the already finished nodes
//! form the next beam. Only the proposed token is committed; the rollout is
//! a look into the future (its tokens stay in the policy's prefix tree, so a
//! later step that follows the same path does not pay for them again).
//! The answer is the best finished node.

use saffron_core::sampling::{nucleus, Decoding};
use saffron_core::{ModelRole, TokenId, WantedOutputs};

use crate::config::LookaheadConfig;
use crate::run::Run;
use crate::search_tree::{keep_best, Branch};
use crate::SearchError;
use crate::StrategyKind;

pub(crate) fn search(run: &mut Run, config: &LookaheadConfig) -> Result<Branch, SearchError> {
    run.models.require(StrategyKind::Lookahead, ModelRole::Prm)?;
    let mut beam = vec![run.tree.root()];
    while beam.iter().any(Branch::is_active) && run.begin_step() {
        let active: Vec<&Branch> = beam.iter().filter(|b| b.is_active()).collect();
        let responses: Vec<&[TokenId]> = active.iter().map(|b| b.tokens.as_slice()).collect();
        let outputs = run.tree.policy_outputs(run.models, &responses, WantedOutputs::Logits)?;
        let mut children = Vec::new();
        for (parent, output) in active.iter().zip(&outputs) {
            let logits = output.logits.as_deref().unwrap_or_default();
            let banned = run.tree.banned(parent.tokens.len());
            let proposals = nucleus(logits, 1.0, Some(config.proposals), 1.0, banned);
            for p in proposals {
                let ended = run.tree.is_end(p.token);
                let appended: &[TokenId] = if ended { &[] } else { &[p.token] };
                children.push(run.tree.child(parent, appended, ended, 0, run.observer));
            }
        }
        // A growing child is scored by its rollout, a finished one as it is.
        let growing: Vec<usize> = (0..children.len()).filter(|&i| children[i].is_active()).collect();
        let starts: Vec<(&[TokenId], u64)> = growing.iter().map(|&i| (children[i].tokens.as_slice(), 0)).collect();
        let rolls = run.tree.rollout(run.models, &starts, config.depth, &Decoding::Greedy)?;
        let mut looked: Vec<Vec<TokenId>> = children.iter().map(|c| c.tokens.clone()).collect();
        for (&i, roll) in growing.iter().zip(&rolls) {
            looked[i].extend_from_slice(&roll.tokens);
        }
        let refs: Vec<&[TokenId]> = looked.iter().map(Vec::as_slice).collect();
        let scores = run.tree.prm_scores(run.models, &refs)?;
        for (child, score) in children.iter_mut().zip(scores) {
            child.score = Some(score);
            run.observer.score(child.id, ModelRole::Prm, score);
        }
        let carried = beam.into_iter().filter(|b| !b.is_active());
        beam = keep_best(carried.chain(children).collect(), config.width);
        run.end_step(&beam);
    }
    Ok(run.take_answer(beam).unwrap_or_else(|| run.tree.root()))
}
