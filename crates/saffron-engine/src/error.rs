use std::path::PathBuf;

/// Everything that can go wrong in the engine, each variant naming the thing
/// at fault and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "model file {path} does not exist; run `saffron fetch` for the default models or pass the path of a GGUF file"
    )]
    ModelMissing { path: PathBuf },

    #[error("cannot read model file {path}: {source}")]
    ModelUnreadable { path: PathBuf, source: std::io::Error },

    #[error("{path} is not a GGUF file (its first bytes are not the GGUF magic); pass a llama.cpp GGUF model")]
    NotGguf { path: PathBuf },

    #[error("llama.cpp could not load {path}: the GGUF is corrupt, truncated or of an unsupported architecture (re-fetch it, or check the file's sha256)")]
    ModelLoad { path: PathBuf },

    #[error("{path} was loaded for its vocabulary only (a remote engine runs its weights): it cannot run locally")]
    NoWeights { path: PathBuf },

    #[error("llama.cpp could not apply the LoRA adapter {adapter} to {model}: the adapter was made for another base model (architecture or tensor shapes differ) or is corrupt; llama.cpp's log names the tensor at fault")]
    LoraLoad { adapter: PathBuf, model: PathBuf },

    #[error("a LoRA adapter can only be applied to {model} right after it is loaded, before it is shared or runs a context; load it again")]
    LoraOnSharedModel { model: PathBuf },

    #[error("model {path} lacks GGUF metadata key `{key}`, which saffron needs to {purpose}")]
    MissingMetadata { path: PathBuf, key: String, purpose: &'static str },

    #[error("model {path} has no chat template (`tokenizer.chat_template`); use a chat/instruct GGUF")]
    NoChatTemplate { path: PathBuf },

    #[error("chat template of {path} failed to render: {message}")]
    Template { path: PathBuf, message: String },

    #[error("llama.cpp backend failed to initialise: {0}")]
    Backend(String),

    #[error("llama.cpp could not create a context ({cells} cells, {seqs} sequences): {message}")]
    Context { cells: u32, seqs: u32, message: String },

    #[error("a sequence of {tokens} tokens does not fit the context of {limit} cells")]
    SequenceTooLong { tokens: usize, limit: u32 },

    #[error("an empty token sequence has no next-token outputs; every sequence needs at least one token")]
    EmptySequence,

    #[error("token id {token} is outside the vocabulary of {vocab} tokens")]
    TokenOutOfVocabulary { token: u32, vocab: usize },

    #[error("hidden states were requested but this prefix tree was created without them; create it with `HiddenStates::Keep`")]
    HiddenStatesDisabled,

    #[error("the prefix tree needs {needed} free KV cells but only {free} can be freed (the rest belong to locked nodes); unlock nodes or raise the cell limit")]
    OutOfCells { needed: usize, free: usize },

    #[error("all {limit} llama.cpp sequence ids belong to locked branches; unlock branches before expanding more")]
    OutOfSequences { limit: u32 },

    #[error("llama_decode failed with code {code} on a batch of {rows} tokens")]
    Decode { code: i32, rows: usize },

    #[error("no node for this token path is in the prefix tree")]
    UnknownNode,
}
