/// Everything that can go wrong in an evaluation, naming the thing at fault.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Fetch(#[from] saffron_fetch::FetchError),

    #[error("cannot read dataset file {file}: {detail}")]
    Data { file: String, detail: String },

    #[error("unknown prompt set `{name}`: use one of {known}, or the path of a JSONL file with a `prompt` field")]
    UnknownSet { name: String, known: String },

    #[error(transparent)]
    Reward(#[from] saffron_reward::RewardError),

    #[error("model failed: {0}")]
    Model(String),

    #[error("{dir} holds a run with another configuration; use another directory, or pass --force-new to move its records aside and start over")]
    ConfigChanged { dir: std::path::PathBuf },

    #[error("invalid experiment grid: {0}")]
    Grid(String),

    #[error("report: {0}")]
    Report(String),

    #[error("bad selection: {0}")]
    Selection(String),

    #[error("merge: {0}")]
    Merge(String),
}
