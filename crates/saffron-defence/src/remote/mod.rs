//! A policy run by a remote OpenAI-compatible engine: vLLM, SGLang or
//! llama.cpp's `llama-server`, named `openai+http://host:port/v1#model`.
//!
//! Every search step is one completions request per node: the node's token
//! ids as the prompt, `max_tokens: 1`, and the `k` most likely next tokens
//! with their log-probabilities (`logprobs: k` for vLLM and SGLang,
//! `n_probs: k` for llama-server; both are sent). The server's prefix cache
//! makes the shared context cheap; the tokens it reports cached are counted
//! as served, the rest as computed (FLOPs from the model's shape, read from
//! the GGUF given locally, whose vocabulary and chat template the client
//! uses too).
//!
//! What this changes for a search: it sees only the top `k` tokens of each
//! distribution. Where they hold its nucleus the search's candidates and
//! draws are exactly the local engine's (at temperature 1; see
//! [`RemoteSession`]); where they do not, the nucleus is cut to them, and
//! [`crate::Answer::remote`] counts how often. Greedy decoding is exact. Hidden states are not served, so the
//! shared-backbone MRM cannot run over a remote policy (refused at load).

mod client;
mod error;
mod response;
mod session;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use saffron_core::TokenId;
use saffron_engine::{ChatPrompt, SpecialText, TreeOptions};
use saffron_reward::{LoadedModel, Loader};
use serde::{Deserialize, Serialize};

use crate::backend::{PolicyBackend, PolicySession};
use crate::DefenceError;
pub use client::{partial_tokens, Client};
pub use error::RemoteError;
pub use session::RemoteSession;

/// The scheme prefix that names an OpenAI-compatible server.
const SCHEME: &str = "openai+";

/// Where a remote policy is served: the API's base URL (up to and
/// including `/v1`) and the model name the server knows it by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RemoteSpec {
    /// `http://host:port/v1` (or `https://…`).
    pub base: String,
    /// Sent as `model`; `None` sends none (a server of one model).
    pub model: Option<String>,
}

impl FromStr for RemoteSpec {
    type Err = RemoteError;

    fn from_str(text: &str) -> Result<RemoteSpec, RemoteError> {
        let invalid = |reason: &str| RemoteError::InvalidUrl { url: text.to_owned(), reason: reason.to_owned() };
        let rest = text
            .strip_prefix(SCHEME)
            .ok_or_else(|| invalid("it must begin with `openai+http://` or `openai+https://`"))?;
        let (base, model) = match rest.split_once('#') {
            Some((base, model)) if !model.is_empty() => (base, Some(model.to_owned())),
            Some((base, _)) => (base, None),
            None => (rest, None),
        };
        let base = base.trim_end_matches('/');
        let host = base
            .strip_prefix("http://")
            .or_else(|| base.strip_prefix("https://"))
            .ok_or_else(|| invalid("after `openai+` comes `http://` or `https://`"))?;
        if host.is_empty() || host.starts_with('/') {
            return Err(invalid("it names no host"));
        }
        Ok(RemoteSpec { base: base.to_owned(), model })
    }
}

impl TryFrom<String> for RemoteSpec {
    type Error = RemoteError;

    fn try_from(text: String) -> Result<RemoteSpec, RemoteError> {
        text.parse()
    }
}

impl From<RemoteSpec> for String {
    fn from(spec: RemoteSpec) -> String {
        spec.to_string()
    }
}

impl fmt::Display for RemoteSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}", self.base)?;
        match &self.model {
            Some(model) => write!(f, "#{model}"),
            None => Ok(()),
        }
    }
}

/// How the client talks to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteOptions {
    /// Tokens asked for per step (`logprobs` / `n_probs`): the most a
    /// nucleus can hold. vLLM allows 20 unless started with
    /// `--max-logprobs`.
    pub top_k: usize,
    /// Requests in flight at once for one search step (its nodes); the
    /// server must have as many slots (llama-server `--parallel`) to gain.
    pub concurrency: usize,
    /// Per request.
    pub timeout: Duration,
    /// Further attempts after a failure that may pass (no answer, 429,
    /// 5xx), waiting 0.5 s, 1 s, 2 s, … between them.
    pub retries: u32,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions { top_k: 20, concurrency: 1, timeout: Duration::from_secs(120), retries: 4 }
    }
}

/// `[remote]` of a grid (`[models.remote]` of a server's configuration):
/// the policy runs on an OpenAI-compatible server, and the grid's `policy`
/// names the GGUF it serves (read here for its vocabulary, chat template
/// and shape). docs/scale.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteTable {
    /// `openai+http://HOST:PORT/v1#MODEL`.
    pub url: RemoteSpec,
    /// Next tokens asked for per step [default: 20].
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// Requests in flight at once per search step [default: 1].
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

fn default_top_k() -> usize {
    RemoteOptions::default().top_k
}

fn default_concurrency() -> usize {
    RemoteOptions::default().concurrency
}

impl RemoteTable {
    /// `url` with the default options.
    pub fn new(url: RemoteSpec) -> RemoteTable {
        RemoteTable { url, top_k: default_top_k(), concurrency: default_concurrency() }
    }

    pub fn options(&self) -> RemoteOptions {
        RemoteOptions { top_k: self.top_k, concurrency: self.concurrency, ..RemoteOptions::default() }
    }
}

/// A policy served remotely, with its GGUF's vocabulary read locally.
pub struct RemotePolicy {
    client: Client,
    vocabulary: LoadedModel,
    options: RemoteOptions,
}

impl RemotePolicy {
    /// A policy served at `spec`, whose weights are those of the GGUF
    /// `vocabulary` was read from. Checks that the server tokenises as the
    /// GGUF does where it has a tokenize endpoint (llama-server, vLLM).
    pub fn connect(
        spec: RemoteSpec,
        vocabulary: LoadedModel,
        options: RemoteOptions,
    ) -> Result<RemotePolicy, RemoteError> {
        let client = Client::new(spec, options, &client::partial_tokens(vocabulary.model()))?;
        let probe = "Hello, world! How are you?";
        let local = vocabulary.model().tokenize(probe, SpecialText::Literal);
        match client.tokenize(probe)? {
            Some(remote) if remote != local => {
                return Err(RemoteError::OtherVocabulary {
                    url: client.spec().to_string(),
                    gguf: vocabulary.spec().to_owned(),
                    local,
                    remote,
                })
            }
            Some(_) => {}
            None => tracing::warn!(
                "{} has no tokenize endpoint: its vocabulary is taken to be that of {}",
                client.spec(),
                vocabulary.spec()
            ),
        }
        Ok(RemotePolicy { client, vocabulary, options })
    }

    /// The policy `table` says is served, whose weights are those of the
    /// GGUF `policy` names (read here for its vocabulary only), and that
    /// vocabulary.
    pub fn load(
        loader: &Loader,
        policy: &str,
        table: &RemoteTable,
    ) -> Result<(LoadedModel, RemotePolicy), DefenceError> {
        let vocabulary = loader.vocabulary(policy)?;
        let remote = RemotePolicy::connect(table.url.clone(), vocabulary.clone(), table.options())?;
        Ok((vocabulary, remote))
    }

    pub fn spec(&self) -> &RemoteSpec {
        self.client.spec()
    }
}

impl PolicyBackend for RemotePolicy {
    fn name(&self) -> &str {
        self.vocabulary.spec()
    }

    fn identity(&self) -> Result<String, DefenceError> {
        Ok(format!("{} served at {}", self.vocabulary.sha256(), self.client.spec()))
    }

    fn encode_chat(&self, chat: &ChatPrompt) -> Result<Vec<TokenId>, DefenceError> {
        Ok(self.vocabulary.model().encode_chat(chat)?)
    }

    fn tokenize(&self, text: &str) -> Vec<TokenId> {
        self.vocabulary.model().tokenize(text, SpecialText::Literal)
    }

    fn encode_prompt(&self, text: &str) -> Vec<TokenId> {
        self.vocabulary.model().tokenize(text, SpecialText::Parse)
    }

    fn detokenize(&self, tokens: &[TokenId]) -> String {
        self.vocabulary.model().detokenize(tokens)
    }

    fn has_thinking_section(&self) -> bool {
        self.vocabulary.model().has_thinking_section()
    }

    fn context_limit(&self) -> usize {
        self.vocabulary.model().train_context() as usize
    }

    fn remote(&self) -> Option<&RemoteSpec> {
        Some(self.client.spec())
    }

    fn open(&self, _options: TreeOptions) -> Result<Box<dyn PolicySession + '_>, DefenceError> {
        Ok(Box::new(RemoteSession::new(&self.client, self.vocabulary.model(), self.options.concurrency)))
    }
}

/// How often a search over a remote policy saw less of a distribution than
/// its nucleus needed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct NucleusCuts {
    /// Distributions the search read (one per node expanded).
    pub steps: u64,
    /// Of those, how many returned top-k tokens held less probability
    /// mass than the search's nucleus (`top_p`, at temperature 1): their
    /// nucleus was cut to the k tokens.
    pub truncated: u64,
}

impl NucleusCuts {
    /// Counts `masses` (the top-k mass of each step) against `nucleus`.
    pub fn count(masses: &[f32], nucleus: f32) -> NucleusCuts {
        let truncated = masses.iter().filter(|&&m| m < nucleus).count() as u64;
        NucleusCuts { steps: masses.len() as u64, truncated }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_names_the_base_and_the_model_and_prints_back_as_given() {
        let spec: RemoteSpec = "openai+http://127.0.0.1:8080/v1/#smollm2".parse().unwrap();
        assert_eq!(spec.base, "http://127.0.0.1:8080/v1");
        assert_eq!(spec.model.as_deref(), Some("smollm2"));
        assert_eq!(spec.to_string(), "openai+http://127.0.0.1:8080/v1#smollm2");
        let bare: RemoteSpec = "openai+https://gpu.example/v1".parse().unwrap();
        assert_eq!((bare.base.as_str(), bare.model), ("https://gpu.example/v1", None));
    }

    #[test]
    fn a_url_without_the_scheme_or_a_host_is_refused_saying_what_is_missing() {
        for (url, says) in [
            ("http://127.0.0.1:8080/v1", "openai+http://"),
            ("openai+ftp://host/v1", "http://"),
            ("openai+http:///v1", "no host"),
        ] {
            let e = url.parse::<RemoteSpec>().unwrap_err().to_string();
            assert!(e.contains(url) && e.contains(says), "{url}: {e}");
        }
    }

    #[test]
    fn cuts_count_the_steps_whose_top_k_held_less_than_the_nucleus() {
        let cuts = NucleusCuts::count(&[0.95, 0.5, 0.8, 0.79], 0.8);
        assert_eq!(cuts, NucleusCuts { steps: 4, truncated: 2 });
        assert_eq!(NucleusCuts::count(&[0.1], 0.0).truncated, 0, "greedy needs only the top token");
    }
}
