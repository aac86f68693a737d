/// Everything that can go wrong in an evaluation, naming the thing at fault.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Fetch(#[from] saffron_fetch::FetchError),

    #[error("cannot {op} {}", path.display())]
    Io {
        /// What was being done: "read", "write", "create", "rename", ….
        op: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("the disk is full: cannot {op} {}; free space and run the same command again (finished records are kept)", path.display())]
    DiskFull {
        op: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("permission denied: cannot {op} {}; check the owner and mode of it and its directory", path.display())]
    PermissionDenied {
        op: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{file}: {at} is malformed")]
    Malformed {
        file: String,
        /// Where in it: "record 3", "line 7", "its header".
        at: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("{file}: {detail}")]
    Data { file: String, detail: String },

    #[error("{file}: the id `{id}` is on lines {} and {}; give every prompt its own id", lines.0, lines.1)]
    DuplicateId { file: String, id: String, lines: (usize, usize) },

    #[error("dataset `{set}` selects no prompts ({selection}); widen the selection or check the set")]
    NoPrompts { set: String, selection: String },

    #[error("unknown prompt set `{name}`: use one of {known}, or the path of a JSONL file with a `prompt` field")]
    UnknownSet { name: String, known: String },

    #[error(transparent)]
    Reward(#[from] saffron_reward::RewardError),

    #[error("reading {what} for the splits (they need every built-in set: run `saffron fetch`)")]
    Splits { what: String, source: Box<EvalError> },

    #[error("{}; results on prompts a model has seen are not held out: read the test split (the default), retrain the artifact on the train split, or set allow_overlap = true in the grid (the report then says so at the top)", found.join("; "))]
    Overlap { found: Vec<String> },

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

    #[error("{} holds a run with another configuration ({} differ); use another directory, or pass --force-new to move its files aside and start over", dir.display(), changed.join(", "))]
    ConfigChanged { dir: std::path::PathBuf, changed: Vec<String> },

    #[error("{} holds records but no run.json, so nothing says what they answered; use another directory, or pass --force-new to move them aside and start over", dir.display())]
    RecordsWithoutConfig { dir: std::path::PathBuf },

    #[error("{} is a file, not a run directory", path.display())]
    NotADirectory { path: std::path::PathBuf },

    #[error("{} is in use by another saffron process{}; wait for it to finish or stop it", dir.display(), pid.map_or(String::new(), |p| format!(" (pid {p})")))]
    InUse { dir: std::path::PathBuf, pid: Option<u32> },

    #[error("{} holds {count} repeated record(s), which would be counted twice (the first: cell {}, prompt {}, at lines {} and {}); pass --repair to keep the first of each", path.display(), key.0, key.1, lines.0, lines.1)]
    DuplicateRecords { path: std::path::PathBuf, count: usize, key: (String, String), lines: (usize, usize) },

    #[error("the record of cell {cell}, prompt {prompt} has no verdict of judge `{judge}`; a missing verdict is not a safe answer (judge the run again, or report it with the judges its records have)")]
    MissingVerdict { cell: String, prompt: String, judge: String },

    #[error("the record of cell {}, prompt {} is already in {}", key.0, key.1, dir.display())]
    AlreadyRecorded { dir: std::path::PathBuf, key: (String, String) },

    #[error("{task} needs a guard (the PRM that scores every prefix)")]
    NoGuard { task: &'static str },

    #[error("the policy `{policy}` here (sha256 {sha256}) is not the one the run used (sha256 {run}); score it with that file")]
    WrongPolicy { policy: String, sha256: String, run: String },

    #[error("the records of {dir} do not match its run.json: {detail}")]
    RunMismatch { dir: std::path::PathBuf, detail: String },

    #[error("answering prompt {prompt} in cell {cell}")]
    Answering {
        cell: String,
        prompt: String,
        #[source]
        source: Box<EvalError>,
    },

    #[error("invalid experiment grid: {0}")]
    Grid(String),

    #[error("invalid experiment grid")]
    GridSyntax(#[source] toml::de::Error),

    #[error("report: {0}")]
    Report(String),

    #[error("rendering {name}")]
    Template {
        name: &'static str,
        #[source]
        source: minijinja::Error,
    },

    #[error("bad selection: {0}")]
    Selection(String),

    #[error("merge: {0}")]
    Merge(String),
}

impl EvalError {
    /// The error of an I/O operation `op` on `path`; a full disk and a
    /// refused permission are told apart, as their fixes differ.
    pub(crate) fn io(op: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> EvalError {
        let path = path.to_path_buf();
        move |source| match source.kind() {
            std::io::ErrorKind::StorageFull => EvalError::DiskFull { op, path, source },
            std::io::ErrorKind::PermissionDenied => EvalError::PermissionDenied { op, path, source },
            _ => EvalError::Io { op, path, source },
        }
    }

    /// The error of malformed content at `at` in `file`.
    pub(crate) fn malformed(
        file: &str,
        at: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> EvalError {
        EvalError::Malformed { file: file.to_owned(), at: at.into(), source: source.into() }
    }
}

/// An error and its sources, as the command line prints them (for tests).
#[cfg(test)]
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(&format!(": {e}"));
        source = e.source();
    }
    text
}
