//! What every guard offers, and a guard bound to one prompt: the process
//! reward model a search uses (method.md section 1).

use saffron_core::{ModelCost, ModelError, ProcessReward, TokenId};
use saffron_engine::{Model, PrefixTree, TreeOptions};

use crate::RewardError;

/// A model that scores (prompt, response) pairs: larger is safer, `< 0`
/// unsafe. Responses may be partial.
pub trait Guard {
    /// The model the guard runs on.
    fn model(&self) -> &Model;

    /// The options of a prefix tree this guard can score in.
    fn tree_options(&self, options: TreeOptions) -> TreeOptions {
        options
    }

    /// The tokens every pair's input starts with, worth keeping cached
    /// between pairs scored one after another (see
    /// `PrefixTree::keep_only`); empty if none.
    fn shared_prefix(&self) -> &[TokenId] {
        &[]
    }

    /// The guard as a probe guard, where it is one (its states can be kept
    /// while labelling, and an MRM anchored to its reward).
    fn as_probe(&self) -> Option<&crate::ProbeGuard> {
        None
    }

    /// Rewards of the pairs, computed together in `tree` (made with
    /// [`Guard::tree_options`]).
    fn score_pairs(&self, tree: &mut PrefixTree, pairs: &[(&str, &str)]) -> Result<Vec<f32>, RewardError>;

    /// A PRM for one prompt: a fresh prefix tree of the guard, and the
    /// function that turns policy tokens into response text.
    fn bind<'g>(
        &'g self,
        prompt: &str,
        options: TreeOptions,
        response_text: impl Fn(&[TokenId]) -> String + 'g,
    ) -> Result<BoundGuard<'g>, RewardError>
    where
        Self: Sized,
    {
        BoundGuard::new(self, prompt, options, response_text)
    }
}

/// Makes `tree` ready for the next independent pairs: only the guard's
/// shared prefix stays cached (or nothing, if it has none or it is not
/// cached).
pub fn forget_pairs(guard: &dyn Guard, tree: &mut PrefixTree) {
    keep_only_or_clear(tree, guard.shared_prefix());
}

/// Keeps only `prefix` cached in `tree`, or clears it if `prefix` is empty
/// or not cached.
pub(crate) fn keep_only_or_clear(tree: &mut PrefixTree, prefix: &[TokenId]) {
    if prefix.is_empty() || tree.keep_only(prefix).is_err() {
        tree.clear();
    }
}

/// Turns policy tokens into response text.
type ResponseText<'g> = Box<dyn Fn(&[TokenId]) -> String + 'g>;

/// A guard bound to one prompt.
pub struct BoundGuard<'g> {
    guard: &'g dyn Guard,
    tree: PrefixTree,
    prompt: String,
    response_text: ResponseText<'g>,
}

impl<'g> BoundGuard<'g> {
    pub fn new(
        guard: &'g dyn Guard,
        prompt: &str,
        options: TreeOptions,
        response_text: impl Fn(&[TokenId]) -> String + 'g,
    ) -> Result<BoundGuard<'g>, RewardError> {
        Ok(BoundGuard {
            guard,
            tree: PrefixTree::new(guard.model(), guard.tree_options(options))?,
            prompt: prompt.to_owned(),
            response_text: Box::new(response_text),
        })
    }

    /// Time the guard spent inside llama.cpp's `llama_decode`.
    pub fn decode_time(&self) -> std::time::Duration {
        self.tree.decode_time()
    }

    /// The reward of each response and the state it was read from (a
    /// probe guard's [`crate::ProbeGuard::scored_states`]); refused for
    /// another guard.
    pub fn scored_states(&mut self, responses: &[&[TokenId]]) -> Result<Vec<(f32, Vec<f32>)>, RewardError> {
        let probe = self.guard.as_probe().ok_or(RewardError::NotAStateProbe { guard: "a verdict guard".into() })?;
        let texts: Vec<String> = responses.iter().map(|r| (self.response_text)(r)).collect();
        let pairs: Vec<(&str, &str)> = texts.iter().map(|t| (self.prompt.as_str(), t.as_str())).collect();
        probe.scored_states(&mut self.tree, &pairs)
    }

    /// Scores pairs of `prompt` from now on: the last prompt's pairs leave
    /// the tree, the guard's shared prefix (its instruction) stays cached.
    pub fn rebind(&mut self, prompt: &str) {
        prompt.clone_into(&mut self.prompt);
        forget_pairs(self.guard, &mut self.tree);
    }
}

impl ProcessReward for BoundGuard<'_> {
    fn score(&mut self, responses: &[&[TokenId]]) -> Result<Vec<f32>, ModelError> {
        let texts: Vec<String> = responses.iter().map(|r| (self.response_text)(r)).collect();
        let pairs: Vec<(&str, &str)> = texts.iter().map(|t| (self.prompt.as_str(), t.as_str())).collect();
        self.guard.score_pairs(&mut self.tree, &pairs).map_err(ModelError::new)
    }

    fn cost(&self) -> ModelCost {
        self.tree.cost()
    }
}
