use saffron_core::ModelError;
use saffron_engine::EngineError;
use saffron_reward::RewardError;
use saffron_search::SearchError;

/// Everything that can go wrong in a defence. Errors carry what went wrong;
/// the command line adds the flag that fixes it. A strategy without the
/// reward model it needs, or an invalid configuration, is a
/// [`SearchError`], refused before any work.
#[derive(Debug, thiserror::Error)]
pub enum DefenceError {
    #[error(transparent)]
    Reward(#[from] RewardError),

    #[error(transparent)]
    Engine(#[from] EngineError),

    #[error(transparent)]
    Search(#[from] SearchError),

    #[error(transparent)]
    Model(#[from] ModelError),

    #[error(transparent)]
    Remote(#[from] crate::remote::RemoteError),

    #[error(
        "the prompt is {prompt_tokens} tokens and the answer may take {max_new_tokens} more, but the policy's \
         context holds {limit} (its prefix tree's KV cells, at most its training context; they are set by \
         `max_cells` in a grid, `generate --max-cells` and `models.max_cells` in a server's configuration)"
    )]
    PromptTooLong { prompt_tokens: usize, max_new_tokens: usize, limit: usize },

    #[error(
        "reasoning needs a chat prompt to put its thinking format in; a raw completion prompt cannot think \
         (remove the reasoning configuration, or send a chat)"
    )]
    ReasoningNeedsChat,

    #[error("could not start the shared prefix tree's scheduler thread")]
    SchedulerThread(#[source] std::io::Error),

    #[error("the shared prefix tree's scheduler stopped (see the log for why)")]
    SchedulerGone,

    #[error("{0}")]
    Shared(String),

    /// A call of this search does not fit in the shared tree's KV cells
    /// even alone (every other search's nodes can be evicted between calls):
    /// the search is too wide or too long for the tree.
    #[error("{0}")]
    SharedTreeFull(String),
}

impl DefenceError {
    /// Whether `e`, or an error it wraps (a model error of a search among
    /// them), is [`DefenceError::SharedTreeFull`].
    pub fn is_tree_full(e: &(dyn std::error::Error + 'static)) -> bool {
        let mut next = Some(e);
        while let Some(e) = next {
            let own = e.downcast_ref::<DefenceError>().or_else(|| {
                e.downcast_ref::<saffron_core::ModelError>().and_then(|m| m.inner().downcast_ref::<DefenceError>())
            });
            if matches!(own, Some(DefenceError::SharedTreeFull(_))) {
                return true;
            }
            next = e.source();
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use saffron_core::ModelRole;

    use super::*;

    #[test]
    fn a_full_tree_is_found_inside_a_search_error_and_nothing_else_is_taken_for_one() {
        let wrapped = |e: DefenceError| {
            DefenceError::Search(SearchError::Model { role: ModelRole::Policy, source: ModelError::new(e) })
        };
        assert!(DefenceError::is_tree_full(&wrapped(DefenceError::SharedTreeFull("no room".into()))));
        assert!(DefenceError::is_tree_full(&DefenceError::SharedTreeFull("no room".into())));
        assert!(!DefenceError::is_tree_full(&wrapped(DefenceError::Shared("decode failed".into()))));
        assert!(!DefenceError::is_tree_full(&DefenceError::SchedulerGone));
    }
}
