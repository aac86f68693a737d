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

    #[error(transparent)]
    Fetch(#[from] saffron_fetch::FetchError),

    #[error("cannot read dataset file {file}: {detail}")]
    Data { file: String, detail: String },

    #[error("the model does not match the artifact: it was trained on {expected}, given {actual}; pass the model its manifest (guard.json or mrm.json) names")]
    WrongBackbone { expected: String, actual: String },

    #[error("bad artifact {path}: {detail}")]
    Artifact { path: std::path::PathBuf, detail: String },

    #[error("the prefix tree returned no hidden state; create it with `HiddenStates::Keep` (Guard::tree_options)")]
    MissingHidden,

    #[error("{path} was labelled with other settings (policy, PRM, prompts or decoding); pass another --out or delete it to start over")]
    CorpusMismatch { path: std::path::PathBuf },

    #[error("cannot read the PyTorch file {path}: {message}")]
    TorchFile { path: std::path::PathBuf, message: String },

    #[error("the prefix tree returned no logits for a node")]
    MissingLogits,

    #[error("guard template failed to render: {0}")]
    Template(String),
}
