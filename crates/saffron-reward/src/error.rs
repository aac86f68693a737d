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

    #[error("{path} was labelled with other settings (policy, PRM, prompts or decoding); pass another --out or delete it to start over (a larger --harmful, --benign or --sharegpt, or an added --hh-rlhf or --sharegpt, grows it in place; nothing else)")]
    CorpusMismatch { path: std::path::PathBuf },

    #[error("{path} holds the states of another guard or input format; pass the guard it was labelled with, or delete it to start over")]
    StatesMismatch { path: std::path::PathBuf },

    #[error("{guard} is not a probe on one hidden state (a probe guard reading its last state, without a refusal veto), so its states cannot be kept nor an MRM anchored to it")]
    NotAStateProbe { guard: String },

    #[error("{other} is not a shard of the corpus {first} is one of (its policy, PRM, prompts or settings differ); merge only the shards of one `saffron label` command")]
    ShardsDiffer { first: std::path::PathBuf, other: std::path::PathBuf },

    #[error("cannot read the PyTorch file {path}: {message}")]
    TorchFile { path: std::path::PathBuf, message: String },

    #[error("the prefix tree returned no logits for a node")]
    MissingLogits,

    #[error("guard template failed to render: {0}")]
    Template(String),

    #[error("loading {what}")]
    Load {
        what: String,
        #[source]
        source: Box<RewardError>,
    },

    #[error("the `{name}` model file {} is corrupt or was replaced: its sha256 is {actual}, the catalog's {expected}; delete it and run `saffron fetch --only {name}`", path.display())]
    CorruptModel { name: String, path: std::path::PathBuf, expected: String, actual: String },

    #[error("unknown guard `{name}`: use `default` (the built-in guard; as a judge, the built-in judge), `judge` (the built-in judge) or `guard` (the built-in guard, as a judge), `refusal` (judges only), a probe guard directory (with guard.json), a model name ({models}) or the path of a GGUF file")]
    UnknownGuard { name: String, models: String },

    #[error("cannot hash {path}")]
    Hash {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path} is a directory, not a GGUF model file (a probe guard's directory holds guard.json)")]
    ModelIsDirectory { path: std::path::PathBuf },

    #[error("{dir} is a directory without {wanted}")]
    NotAnArtifact { dir: std::path::PathBuf, wanted: &'static str },

    #[error("{dir} is a paper-form MRM (PEFT LoRA on a guard): it needs the guard's GGUF as its base (--mrm-base NAME|PATH, mrm_base in a grid), e.g. Llama Guard 3 1B for Saffron-1-1B")]
    PaperMrmNeedsBase { dir: std::path::PathBuf },

    #[error("an MRM base (--mrm-base, mrm_base in a grid) is only for a paper-form MRM directory (one with adapter_config.json); {mrm} is not one")]
    MrmBaseNotPaper { mrm: String },

    #[error("{path} was sampled from {corpus_policy}, not from the policy {policy}")]
    CorpusPolicy { path: std::path::PathBuf, corpus_policy: String, policy: String },

    #[error("`{guard}` is not a GGUF verdict guard: a guard format applies to those only")]
    FormatNotForProbe { guard: String },

    #[error("the {what} is empty: name one")]
    EmptySpec { what: &'static str },
}
