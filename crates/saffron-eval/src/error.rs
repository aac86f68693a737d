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

    #[error(transparent)]
    Engine(#[from] saffron_engine::EngineError),

    #[error(transparent)]
    Defence(#[from] saffron_defence::DefenceError),

    #[error(transparent)]
    Search(#[from] saffron_search::SearchError),

    #[error(transparent)]
    Model(#[from] saffron_core::ModelError),

    #[error("the policy returned no logits for a prefix of an answer")]
    MissingLogits,

    #[error("token {token} is outside the policy's {vocab} logits")]
    TokenOutsideLogits { token: u32, vocab: usize },

    #[error("{dir} holds a run with another configuration; use another directory, or pass --force-new to move its records aside and start over")]
    ConfigChanged { dir: std::path::PathBuf },

    #[error("{task} needs a guard (the PRM that scores every prefix)")]
    NoGuard { task: &'static str },

    #[error("the policy `{policy}` here (sha256 {sha256}) is not the one the run used (sha256 {run})")]
    WrongPolicy { policy: String, sha256: String, run: String },

    #[error("the records of {dir} do not match its run.json: {detail}")]
    RunMismatch { dir: std::path::PathBuf, detail: String },

    #[error("invalid experiment grid: {0}")]
    Grid(String),

    #[error("report: {0}")]
    Report(String),

    #[error("bad selection: {0}")]
    Selection(String),

    #[error("merge: {0}")]
    Merge(String),
}
