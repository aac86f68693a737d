//! A request as the defence reads it: what the policy sees, the request
//! text the reward models read, and the search configuration (the server's
//! default with the request's own settings, within the server's limits).

use saffron_core::sampling::Decoding;
use saffron_engine::{ChatPrompt, Role, Turn};
use saffron_search::{SearchConfig, Strategy};

use crate::api::{Common, Content, Extension, Message, Prompt, Unsupported};
use crate::config::Limits;
use crate::ApiError;

/// What the policy reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A conversation under the policy's chat template.
    Chat(ChatPrompt),
    /// A raw completion prompt (special-token text parsed).
    Raw(String),
}

/// A checked request, ready for the defence.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub input: Input,
    /// The user's request as asked: what the reward models and the output
    /// check read (the last user turn, or the raw prompt).
    pub request: String,
    pub search: SearchConfig,
    /// Stop sequences: the chosen answer is cut at the first one.
    pub stop: Vec<String>,
    pub stream: bool,
    pub include_usage: bool,
    /// Alternatives per token when the answer's log-probabilities are asked for.
    pub logprobs: Option<usize>,
    /// Choices to send: 1, or up to Best-of-N's N (its samples, best first).
    pub n: usize,
}

/// A chat request's messages as a chat prompt. A final assistant message
/// is a prefill: the answer continues it.
pub fn chat_prompt(messages: &[Message]) -> Result<(ChatPrompt, String), ApiError> {
    let mut chat = ChatPrompt::default();
    let mut turns: Vec<Turn> = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let param = || Some(format!("messages[{i}]"));
        let content = text(m.content.as_ref()).map_err(|why| ApiError::invalid(param(), why))?;
        match m.role.as_str() {
            "system" | "developer" if i == 0 => chat.system = Some(content),
            "system" | "developer" => {
                return Err(ApiError::invalid(param(), "a system message may only be the first message"))
            }
            "user" => turns.push(Turn { role: Role::User, content }),
            "assistant" => turns.push(Turn { role: Role::Assistant, content }),
            other => {
                return Err(ApiError::invalid(
                    param(),
                    format!("role `{other}` is not supported (system, developer, user, assistant)"),
                ))
            }
        }
    }
    if turns.last().is_some_and(|t| t.role == Role::Assistant) {
        chat.prefill = turns.pop().map(|t| t.content);
    }
    match turns.pop() {
        Some(Turn { role: Role::User, content }) => chat.user = content,
        _ => {
            return Err(ApiError::invalid(
                Some("messages".into()),
                "the conversation must end with a user message (or a user message and an assistant prefill)",
            ))
        }
    }
    chat.history = turns;
    let request = chat.user.clone();
    Ok((chat, request))
}

/// A message's text: a string, or text parts joined.
fn text(content: Option<&Content>) -> Result<String, String> {
    match content {
        None => Ok(String::new()),
        Some(Content::Text(t)) => Ok(t.clone()),
        Some(Content::Parts(parts)) => {
            let mut out = String::new();
            for p in parts {
                match (p.kind.as_str(), &p.text) {
                    ("text", Some(t)) => out.push_str(t),
                    (kind, _) => return Err(format!("content part of type `{kind}` is not supported (text only)")),
                }
            }
            Ok(out)
        }
    }
}

/// A completion prompt's text.
pub fn raw_prompt(prompt: Prompt) -> Result<String, ApiError> {
    let text = match prompt {
        Prompt::One(p) => p,
        Prompt::Many(mut v) if v.len() == 1 => v.remove(0),
        Prompt::Many(_) => return Err(ApiError::invalid(Some("prompt".into()), "one prompt per request")),
    };
    if text.is_empty() {
        return Err(ApiError::invalid(Some("prompt".into()), "the prompt is empty"));
    }
    Ok(text)
}

/// The checked job of a request with `input`.
pub fn job(
    input: Input,
    request: String,
    common: Common,
    defaults: &SearchConfig,
    limits: &Limits,
) -> Result<Job, ApiError> {
    refuse_unsupported(&common.unsupported)?;
    let logprobs = logprobs(&common)?;
    let max_tokens = match (common.max_tokens, common.max_completion_tokens) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::invalid(
                Some("max_completion_tokens".into()),
                "max_tokens and max_completion_tokens disagree; give one",
            ))
        }
        (a, b) => a.or(b),
    };
    let search = search_config(&common, max_tokens, defaults, limits)?;
    let n = choices(common.n, &search)?;
    let include_usage = common.stream_options.as_ref().is_some_and(|o| o.include_usage);
    let stop = common.stop.map(|s| s.into_vec()).unwrap_or_default();
    if stop.iter().any(|s| s.is_empty()) {
        return Err(ApiError::invalid(Some("stop".into()), "a stop sequence is empty"));
    }
    if stop.len() > MAX_STOP || stop.iter().any(|s| s.len() > MAX_STOP_BYTES) {
        return Err(ApiError::invalid(
            Some("stop".into()),
            format!("at most {MAX_STOP} stop sequences of at most {MAX_STOP_BYTES} bytes"),
        ));
    }
    Ok(Job { input, request, search, stop, stream: common.stream, include_usage, logprobs, n })
}

/// `n`, checked: several choices come from one search that ends with
/// several ranked answers (Best-of-N's samples; the final beam of beam,
/// lookahead and Saffron; Rebase's nodes), never from extra searches.
fn choices(n: Option<usize>, search: &SearchConfig) -> Result<usize, ApiError> {
    let n = n.unwrap_or(1);
    let refuse = |why: String| Err(ApiError::invalid(Some("n".into()), why));
    if n == 0 {
        return refuse("n must be at least 1".into());
    }
    if n == 1 {
        return Ok(1);
    }
    let strategy = search.strategy.kind();
    let Some(width) = search.strategy.width() else {
        return refuse(format!(
            "n > 1 needs a search that ends with several answers (best-of-n, beam, rebase, lookahead, saffron); \
             {strategy} ends with one: send n requests with different seeds"
        ));
    };
    if n > width {
        return refuse(format!("n ({n}) must not exceed {strategy}'s width ({width})"));
    }
    Ok(n)
}

/// Most stop sequences per request (OpenAI's limit), and their length.
pub const MAX_STOP: usize = 4;
pub const MAX_STOP_BYTES: usize = 256;

/// Most alternatives per token (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: usize = 20;

/// `logprobs` (chat: `true` with `top_logprobs`; completions: the number of
/// alternatives) as how many alternatives to give, if any.
fn logprobs(common: &Common) -> Result<Option<usize>, ApiError> {
    let param = || Some("logprobs".to_owned());
    let top = match &common.logprobs {
        None | Some(serde_json::Value::Null) | Some(serde_json::Value::Bool(false)) => {
            if common.top_logprobs.is_some() {
                return Err(ApiError::invalid(Some("top_logprobs".into()), "top_logprobs needs logprobs: true"));
            }
            return Ok(None);
        }
        Some(serde_json::Value::Bool(true)) => common.top_logprobs.unwrap_or(0),
        Some(serde_json::Value::Number(n)) => match n.as_u64() {
            Some(n) => n as usize,
            None => return Err(ApiError::invalid(param(), "logprobs must be true, false or a count")),
        },
        Some(_) => return Err(ApiError::invalid(param(), "logprobs must be true, false or a count")),
    };
    if top > MAX_TOP_LOGPROBS {
        return Err(ApiError::invalid(Some("top_logprobs".into()), format!("at most {MAX_TOP_LOGPROBS} alternatives")));
    }
    Ok(Some(top))
}

fn refuse_unsupported(u: &Unsupported) -> Result<(), ApiError> {
    let text_format = u.response_format.as_ref().is_none_or(|f| f.get("type").and_then(|t| t.as_str()) == Some("text"));
    let echo = u.echo.as_ref().is_some_and(|e| e != &serde_json::Value::Bool(false));
    let given = [
        ("tools", u.tools.as_ref().is_some_and(|v| !v.is_null())),
        ("functions", u.functions.as_ref().is_some_and(|v| !v.is_null())),
        ("response_format", !text_format),
        ("logit_bias", u.logit_bias.as_ref().is_some_and(|v| !v.is_null() && v != &serde_json::json!({}))),
        ("echo", echo),
        ("suffix", u.suffix.as_ref().is_some_and(|v| !v.is_null())),
    ];
    match given.iter().find(|(_, set)| *set) {
        Some((name, _)) => Err(ApiError::invalid(Some((*name).into()), format!("`{name}` is not supported"))),
        None => Ok(()),
    }
}

/// The server's default defence with the request's settings.
fn search_config(
    common: &Common,
    max_tokens: Option<usize>,
    defaults: &SearchConfig,
    limits: &Limits,
) -> Result<SearchConfig, ApiError> {
    let ext = common.saffron.clone().unwrap_or_default();
    let mut config = defaults.clone();
    let param = |name: &str| Some(format!("saffron.{name}"));
    if let Some(kind) = ext.strategy.filter(|k| *k != config.strategy.kind()) {
        config.strategy = kind.default_strategy();
    }
    if let Some(width) = ext.width {
        config.strategy.set_width(width).map_err(|m| ApiError::invalid(param("width"), m))?;
    }
    if let Some(n) = max_tokens {
        config.length.max_new_tokens = n;
    }
    config.length.min_new_tokens = ext.min_tokens.unwrap_or(config.length.min_new_tokens);
    config.length.min_new_tokens = config.length.min_new_tokens.min(config.length.max_new_tokens);
    budget(&ext, &mut config);
    if let Some(seed) = common.seed {
        config.seed = seed;
    }
    decoding(common, &mut config)?;
    limits.fill(&mut config);
    limits.check(&config).map_err(|over| ApiError::invalid(Some(over.limit.param()), over.message))?;
    config.validate().map_err(|m| ApiError::invalid(None, m))?;
    Ok(config)
}

fn budget(ext: &Extension, config: &mut SearchConfig) {
    let b = &mut config.budget;
    b.max_tflop = ext.max_tflop.or(b.max_tflop);
    b.max_reward_calls = ext.max_reward_calls.or(b.max_reward_calls);
    b.max_wall_seconds = ext.max_wall_seconds.or(b.max_wall_seconds);
}

/// `temperature` and `top_p`: the decoding of the sampling strategies; for
/// Saffron `top_p` is its nucleus and `temperature` is not used (it ranks
/// by reward).
fn decoding(common: &Common, config: &mut SearchConfig) -> Result<(), ApiError> {
    if let Some(t) = common.temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(ApiError::invalid(Some("temperature".into()), "temperature must be between 0 and 2"));
        }
    }
    if let Some(p) = common.top_p {
        if !(p > 0.0 && p <= 1.0) {
            return Err(ApiError::invalid(Some("top_p".into()), "top_p must be in (0, 1]"));
        }
    }
    if let Strategy::Saffron(c) = &mut config.strategy {
        if let Some(p) = common.top_p {
            c.top_p = p;
        }
        return Ok(());
    }
    if common.temperature.is_none() && common.top_p.is_none() {
        return Ok(());
    }
    let (temperature, top_k, top_p) = match config.decoding {
        Decoding::Greedy => (0.0, None, 1.0),
        Decoding::Sample { temperature, top_k, top_p } => (temperature, top_k, top_p),
    };
    let temperature = common.temperature.unwrap_or(temperature);
    let top_p = common.top_p.unwrap_or(top_p);
    config.decoding =
        if temperature == 0.0 { Decoding::Greedy } else { Decoding::Sample { temperature, top_k, top_p } };
    Ok(())
}
