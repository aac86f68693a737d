use saffron_engine::EngineError;

/// Everything that can go wrong in a reward model, naming the thing at fault.
#[derive(Debug, thiserror::Error)]
pub enum RewardError {
    #[error(transparent)]
    Engine(#[from] EngineError),

    #[error(
        "verdict word `{word}` is {count} tokens in {model}'s vocabulary; a verdict guard needs single-token words \
         (pick other words in the guard format)"
    )]
    VerdictNotOneToken { word: String, model: String, count: usize },

    #[error("guard template failed to render: {0}")]
    Template(String),
}
