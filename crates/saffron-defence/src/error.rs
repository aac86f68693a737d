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

    #[error(
        "the prompt is {prompt_tokens} tokens and the answer may take {max_new_tokens} more, but the policy's \
         context holds {limit}"
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
}
