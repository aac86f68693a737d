use saffron_core::{ModelError, ModelRole};
use saffron_engine::EngineError;
use saffron_reward::RewardError;
use saffron_search::{SearchError, StrategyKind};

/// Everything that can go wrong in a defence. Errors carry what went wrong;
/// the command line adds the flag that fixes it.
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

    #[error("invalid search configuration: {0}")]
    InvalidConfig(String),

    #[error("the {strategy} strategy needs a {} model, and this defence has none", role_name(*.role))]
    MissingModel { strategy: StrategyKind, role: ModelRole },

    #[error(
        "the prompt is {prompt_tokens} tokens and the answer may take {max_new_tokens} more, but the policy's \
         context holds {limit}"
    )]
    PromptTooLong { prompt_tokens: usize, max_new_tokens: usize, limit: usize },
}

fn role_name(role: ModelRole) -> &'static str {
    match role {
        ModelRole::Policy => "policy",
        ModelRole::Prm => "process reward (PRM)",
        ModelRole::Mrm => "multifurcation reward (MRM)",
    }
}
