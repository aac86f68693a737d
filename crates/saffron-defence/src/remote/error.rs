use saffron_core::TokenId;

/// What can go wrong with a remote policy. Every message names the URL.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("`{url}` is not a remote policy: {reason} (example: openai+http://127.0.0.1:8080/v1#model-name)")]
    InvalidUrl { url: String, reason: String },

    #[error("could not make an HTTP client")]
    Client(#[source] reqwest::Error),

    #[error("{url} did not answer after {attempts} attempts (is the server running and reachable?)")]
    Unreachable {
        url: String,
        attempts: u32,
        #[source]
        source: reqwest::Error,
    },

    #[error("{url} answered {status} after {attempts} attempts: {body}")]
    Status { url: String, status: u16, attempts: u32, body: String },

    #[error(
        "{url} answered with a response saffron cannot read: {reason} (it must be an OpenAI-compatible \
         completions endpoint that returns top log-probabilities with token ids: vLLM, SGLang or llama-server)"
    )]
    Response { url: String, reason: String },

    #[error(
        "{url} tokenises otherwise than {gguf}: \"Hello, world! How are you?\" is {local:?} locally and \
         {remote:?} there. Name the GGUF of the model the server runs (--policy)"
    )]
    OtherVocabulary { url: String, gguf: String, local: Vec<TokenId>, remote: Vec<TokenId> },

    #[error(
        "a remote policy gives next-token log-probabilities, not hidden states: an MRM on the policy's \
         backbone (shared backbone) cannot read it; train one on a backbone of its own (train-mrm --backbone)"
    )]
    NoHiddenStates,
}
