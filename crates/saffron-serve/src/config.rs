//! The server's TOML configuration (`saffron serve --config serve.toml`):
//! where it listens, what it loads, the default defence and the limits no
//! request may go beyond. docs/serve.md shows a complete file.

use std::path::Path;

use saffron_search::{SearchConfig, StrategyKind};
use serde::{Deserialize, Serialize};

use crate::ServeError;

/// Everything `saffron serve` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub models: ModelsSection,
    /// The defence of a request that asks for none: the same keys as
    /// `saffron generate --config` (docs/search.md).
    #[serde(default = "default_defence")]
    pub defence: SearchConfig,
    #[serde(default)]
    pub limits: Limits,
    /// A judge of every finished answer that blocks unsafe ones.
    #[serde(default)]
    pub output_check: Option<OutputCheck>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            server: ServerSection::default(),
            models: ModelsSection::default(),
            defence: default_defence(),
            limits: Limits::default(),
            output_check: None,
        }
    }
}

/// Saffron-8 with the built-in MRM, 128 new tokens, any length allowed.
fn default_defence() -> SearchConfig {
    let mut config = SearchConfig::new(StrategyKind::Saffron.default_strategy());
    config.strategy.set_width(8).expect("8 is a valid width");
    config.length.max_new_tokens = 128;
    config.length.min_new_tokens = 0;
    config
}

impl ServeConfig {
    /// Reads and checks a configuration file.
    pub fn read(path: &Path) -> Result<ServeConfig, ServeError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ServeError::ReadConfig { path: path.into(), source })?;
        let mut config: ServeConfig =
            toml::from_str(&text).map_err(|source| ServeError::ParseConfig { path: path.into(), source })?;
        config.validate()?;
        Ok(config)
    }

    /// The default defence must itself be valid and within the limits
    /// (budgets it leaves unset are set to the limits).
    pub fn validate(&mut self) -> Result<(), ServeError> {
        self.limits.fill(&mut self.defence);
        self.defence.validate().map_err(|m| ServeError::InvalidConfig(format!("[defence]: {m}")))?;
        self.limits.check(&self.defence).map_err(|m| ServeError::InvalidConfig(format!("[defence] {m}")))?;
        if self.defence.reasoning.is_some() {
            return Err(ServeError::InvalidConfig(
                "[defence.reasoning]: the server does not think before answering yet (reasoning runs in `saffron \
                 generate` and `saffron eval`); remove the table"
                    .into(),
            ));
        }
        if self.server.api_key.as_deref().is_some_and(|k| k.trim().is_empty()) {
            return Err(ServeError::InvalidConfig("server.api_key is empty".into()));
        }
        let t = self.server.timeout_seconds;
        if !(t.is_finite() && t > 0.0 && t <= 86_400.0) {
            return Err(ServeError::InvalidConfig(format!(
                "server.timeout_seconds must be above 0 and at most 86400 (got {t})"
            )));
        }
        if self.server.max_running == 0 {
            return Err(ServeError::InvalidConfig("server.max_running must be at least 1".into()));
        }
        Ok(())
    }
}

/// Where the server listens and how much it takes on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    pub host: String,
    pub port: u16,
    /// Requests searched at once (their policy calls are batched together).
    pub max_running: usize,
    /// Requests waiting for a place beyond those; one more is answered 429.
    pub max_queued: usize,
    /// A request still running after this long is stopped and answered 504
    /// (a stream gets an error event).
    pub timeout_seconds: f64,
    /// Longest wait, once one search's policy call is ready, for the calls
    /// of the other running searches to join its batch.
    pub gather_ms: u64,
    /// The answer `Retry-After` gives with a 429, in seconds.
    pub retry_after_seconds: u64,
    /// Largest request body accepted (413 beyond it).
    pub max_body_bytes: usize,
    /// Longest prompt accepted, in policy tokens (400 beyond it; the
    /// policy's context is a limit too).
    pub max_prompt_tokens: usize,
    /// When set, every endpoint but `/health` wants `Authorization: Bearer
    /// KEY` (401 otherwise). Better given as `--api-key` or the
    /// `SAFFRON_API_KEY` environment variable than written in a file.
    pub api_key: Option<String>,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            host: "127.0.0.1".into(),
            port: 8080,
            max_running: 8,
            max_queued: 32,
            timeout_seconds: 300.0,
            gather_ms: 5,
            retry_after_seconds: 1,
            max_body_bytes: 1 << 20,
            max_prompt_tokens: 4096,
            api_key: None,
        }
    }
}

/// What the server loads (catalog names or paths, as `saffron generate`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsSection {
    /// The policy; also the model id of `/v1/models`.
    pub policy: String,
    /// The guard the PRM searches (best-of-n, beam, rebase, lookahead) use
    /// (`default`, a probe guard directory, a GGUF), or `none`.
    pub prm: Option<String>,
    /// Saffron's MRM (`default`, a `train-mrm` directory), `none`, or
    /// `policy-logits`: a stand-in that reads the policy's own logits, for
    /// benchmarks on a policy without a trained MRM (not a safety model).
    pub mrm: Option<String>,
    /// CPU threads for llama.cpp (default: every core).
    pub threads: Option<u32>,
    /// KV cells of the shared prefix tree: every running request's context
    /// and branches together.
    pub max_cells: u32,
    /// When a request ends, its branches are dropped and the tree is cut
    /// back to this many cells, keeping recent contexts (a shared system
    /// prompt) cached: llama.cpp attends over every cell in use, so a
    /// larger idle cache slows every step of later requests.
    pub idle_cells: usize,
    /// `[models.remote]`: the policy runs on an OpenAI-compatible server
    /// (`url`, `top_k`, `concurrency`; docs/scale.md) and `policy` names
    /// the GGUF it serves. Requests are then not batched here (the remote
    /// server batches them), and `max_cells` / `idle_cells` bound nothing.
    pub remote: Option<saffron_defence::RemoteTable>,
}

impl Default for ModelsSection {
    fn default() -> Self {
        ModelsSection {
            policy: "qwen".into(),
            prm: Some("default".into()),
            mrm: Some("default".into()),
            threads: None,
            max_cells: 16384,
            idle_cells: 2048,
            remote: None,
        }
    }
}

/// Caps a request's own settings may not go beyond.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub max_width: usize,
    pub max_new_tokens: usize,
    /// TFLOP per request; a request may ask for less, never more.
    pub max_tflop: Option<f64>,
    pub max_wall_seconds: Option<f64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_width: 32, max_new_tokens: 1024, max_tflop: None, max_wall_seconds: None }
    }
}

impl Limits {
    /// Sets every budget `config` leaves unlimited to its cap.
    pub fn fill(&self, config: &mut SearchConfig) {
        let budget = &mut config.budget;
        budget.max_tflop = budget.max_tflop.or(self.max_tflop);
        budget.max_wall_seconds = budget.max_wall_seconds.or(self.max_wall_seconds);
    }

    /// Whether `config` stays within the caps; names the first it passes.
    pub fn check(&self, config: &SearchConfig) -> Result<(), OverLimit> {
        if let Some(width) = config.strategy.width() {
            if width > self.max_width {
                let message = format!("width {width} is above the server's limit of {}", self.max_width);
                return Err(OverLimit { limit: Limit::Width, message });
            }
        }
        if config.length.max_new_tokens > self.max_new_tokens {
            let message = format!(
                "max_tokens {} is above the server's limit of {}",
                config.length.max_new_tokens, self.max_new_tokens
            );
            return Err(OverLimit { limit: Limit::MaxTokens, message });
        }
        above(Limit::MaxTflop, config.budget.max_tflop, self.max_tflop)?;
        above(Limit::MaxWallSeconds, config.budget.max_wall_seconds, self.max_wall_seconds)
    }
}

/// A server limit a request may not pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Width,
    MaxTokens,
    MaxTflop,
    MaxWallSeconds,
}

impl Limit {
    /// Its name in configuration and messages.
    pub fn name(self) -> &'static str {
        match self {
            Limit::Width => "width",
            Limit::MaxTokens => "max_tokens",
            Limit::MaxTflop => "max_tflop",
            Limit::MaxWallSeconds => "max_wall_seconds",
        }
    }

    /// The request field that sets it (an error's `param`).
    pub fn param(self) -> String {
        match self {
            Limit::MaxTokens => "max_tokens".into(),
            other => format!("saffron.{}", other.name()),
        }
    }
}

/// A request (or the default defence) past a limit, and the message to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverLimit {
    pub limit: Limit,
    pub message: String,
}

impl std::fmt::Display for OverLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A request's value against the cap: unset means unlimited.
fn above(limit: Limit, asked: Option<f64>, cap: Option<f64>) -> Result<(), OverLimit> {
    let name = limit.name();
    let message = match (asked, cap) {
        (_, None) => return Ok(()),
        (None, Some(cap)) => format!("{name} must be set (at most {cap})"),
        (Some(a), Some(cap)) if a > cap => format!("{name} {a} is above the server's limit of {cap}"),
        _ => return Ok(()),
    };
    Err(OverLimit { limit, message })
}

/// The judge that reads each finished answer, and what a blocked answer
/// says instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputCheck {
    /// `default` (the built-in judge), `refusal`, or a guard (docs/guards.md).
    pub judge: String,
    #[serde(default = "default_refusal")]
    pub refusal: String,
}

fn default_refusal() -> String {
    "I can't help with that.".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_defence_that_reasons_is_refused_with_the_reason() {
        let text = "[defence]\n[defence.strategy]\nname = \"sample\"\n[defence.reasoning]\nbudget = 8\n";
        let mut config: ServeConfig = toml::from_str(text).unwrap();
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("does not think before answering yet"), "{err}");
        let mut plain: ServeConfig = toml::from_str("[defence]\n[defence.strategy]\nname = \"sample\"\n").unwrap();
        plain.validate().unwrap();
    }
}
