//! HTTP to the server: one completions request per step, retried with
//! backoff when the failure may pass.

use std::time::Duration;

use reqwest::blocking::Client as Http;
use reqwest::StatusCode;
use saffron_core::TokenId;
use serde_json::{json, Value};

use super::response::{self, NextTokens};
use super::{RemoteError, RemoteOptions, RemoteSpec};

/// The longest body quoted in an error.
const QUOTED_BODY: usize = 400;

/// Every token of `vocabulary` whose text ends inside a multi-byte
/// character.
pub fn partial_tokens(vocabulary: &saffron_engine::Model) -> Vec<TokenId> {
    (0..vocabulary.vocab_size() as TokenId)
        .filter(|&t| {
            let bytes = vocabulary.token_bytes(t);
            std::str::from_utf8(&bytes).is_err_and(|e| e.error_len().is_none())
        })
        .collect()
}

/// Cuts `body` to what an error quotes.
fn quote(body: &mut String) {
    if body.len() > QUOTED_BODY {
        body.truncate(body.floor_char_boundary(QUOTED_BODY));
        body.push('…');
    }
}

/// A client of one server (shared by the searches over it).
pub struct Client {
    http: Http,
    spec: RemoteSpec,
    options: RemoteOptions,
    /// `logit_bias` against every token whose text ends inside a
    /// character: llama-server holds such a token back as incomplete text,
    /// and its log-probabilities with it, when it is the one it picks.
    partial_bias: Value,
}

impl Client {
    /// A client of `spec`; `partial` are the tokens whose text ends inside
    /// a character ([`partial_tokens`]).
    pub fn new(spec: RemoteSpec, options: RemoteOptions, partial: &[TokenId]) -> Result<Client, RemoteError> {
        let http = Http::builder().timeout(options.timeout).build().map_err(RemoteError::Client)?;
        let partial_bias = Value::Object(partial.iter().map(|t| (t.to_string(), json!(-100))).collect());
        Ok(Client { http, spec, options, partial_bias })
    }

    pub fn spec(&self) -> &RemoteSpec {
        &self.spec
    }

    /// The most likely tokens after `tokens` (a prompt of token ids, used
    /// as given: no BOS is added).
    pub fn next_tokens(&self, tokens: &[TokenId]) -> Result<NextTokens, RemoteError> {
        let k = self.options.top_k;
        let mut body = json!({
            "prompt": tokens,
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": k,
            "n_probs": k,
            "return_tokens_as_token_ids": true,
            "cache_prompt": true,
            // Where the server's own pick would end the answer it would
            // return no token, and with it no log-probabilities; they are
            // read from the logits before that bias.
            "ignore_eos": true,
        });
        if let Some(model) = &self.spec.model {
            body["model"] = json!(model);
        }
        let url = format!("{}/completions", self.spec.base);
        let missing = || RemoteError::Status {
            url: url.clone(),
            status: 404,
            attempts: 1,
            body: "no completions endpoint there (does the URL end in /v1?)".into(),
        };
        let mut answer = self.post(&url, &body)?.ok_or_else(missing)?;
        if answer.pointer("/choices/0/logprobs").is_some_and(Value::is_null) {
            // The server picked a token it holds back as part of a
            // character: ask again with such tokens out of its pick (the
            // log-probabilities are read before the bias).
            body["logit_bias"] = self.partial_bias.clone();
            answer = self.post(&url, &body)?.ok_or_else(missing)?;
        }
        response::next_tokens(&answer).map_err(|reason| {
            let mut body = answer.to_string();
            quote(&mut body);
            RemoteError::Response { url, reason: format!("{reason}; it answered {body}") }
        })
    }

    /// `text` tokenised by the server (special-token text taken literally,
    /// no BOS), or `None` when it has no tokenize endpoint.
    pub fn tokenize(&self, text: &str) -> Result<Option<Vec<TokenId>>, RemoteError> {
        let root = self.spec.base.strip_suffix("/v1").unwrap_or(&self.spec.base);
        let url = format!("{root}/tokenize");
        // llama-server reads `content`, vLLM `prompt`; each ignores the other's.
        let mut body = json!({"content": text, "prompt": text, "add_special": false, "add_special_tokens": false});
        if let Some(model) = &self.spec.model {
            body["model"] = json!(model);
        }
        let Some(answer) = self.post(&url, &body)? else { return Ok(None) };
        let tokens = answer.get("tokens").and_then(Value::as_array).ok_or_else(|| RemoteError::Response {
            url: url.clone(),
            reason: "its tokenize answer has no `tokens` list".into(),
        })?;
        tokens
            .iter()
            .map(|t| t.as_u64().and_then(|t| TokenId::try_from(t).ok()))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| RemoteError::Response { url, reason: "its tokenize answer holds a non-id".into() })
    }

    /// POSTs `body` as JSON; `None` for a 404. Retries what may pass.
    fn post(&self, url: &str, body: &Value) -> Result<Option<Value>, RemoteError> {
        let attempts = self.options.retries + 1;
        let mut wait = Duration::from_millis(500);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt == attempts;
            match self.http.post(url).json(body).send() {
                Err(source) if last || !(source.is_connect() || source.is_timeout() || source.is_request()) => {
                    return Err(RemoteError::Unreachable { url: url.to_owned(), attempts: attempt, source });
                }
                Err(source) => tracing::warn!("{url}: {source}; trying again in {wait:?}"),
                Ok(reply) if reply.status() == StatusCode::NOT_FOUND => return Ok(None),
                Ok(reply) if reply.status().is_success() => {
                    return reply.json::<Value>().map(Some).map_err(|e| RemoteError::Response {
                        url: url.to_owned(),
                        reason: format!("its body is not JSON ({e})"),
                    });
                }
                Ok(reply) => {
                    let status = reply.status();
                    let passing = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                    if last || !passing {
                        let mut body = reply.text().unwrap_or_default();
                        quote(&mut body);
                        return Err(RemoteError::Status {
                            url: url.to_owned(),
                            status: status.as_u16(),
                            attempts: attempt,
                            body,
                        });
                    }
                    tracing::warn!("{url} answered {status}; trying again in {wait:?}");
                }
            }
            std::thread::sleep(wait);
            wait *= 2;
        }
    }
}
