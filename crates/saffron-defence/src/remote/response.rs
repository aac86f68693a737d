//! Reading a completions response: the top next tokens with their
//! log-probabilities, and the prompt tokens the server had cached.
//!
//! Two shapes are read. llama-server's: `choices[0].logprobs.content[0]
//! .top_logprobs` is a list of `{id, token, logprob}`. The OpenAI legacy
//! shape (vLLM, SGLang): `choices[0].logprobs.top_logprobs[0]` is a map
//! from token to log-probability, the token written `token_id:ID` when the
//! request asks for `return_tokens_as_token_ids`.

use saffron_core::TokenId;
use serde_json::Value;

/// One step's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct NextTokens {
    /// The most likely next tokens and their log-probabilities (the
    /// policy's own distribution: temperature 1, no truncation).
    pub top: Vec<(TokenId, f32)>,
    /// Prompt tokens the server found in its cache, where it says.
    pub cached_tokens: Option<u64>,
}

/// The step in `body`, or what is wrong with it.
pub fn next_tokens(body: &Value) -> Result<NextTokens, String> {
    let logprobs = body
        .pointer("/choices/0/logprobs")
        .filter(|l| !l.is_null())
        .ok_or("no choices[0].logprobs (does the server return log-probabilities?)")?;
    let top = if let Some(list) = logprobs.pointer("/content/0/top_logprobs") {
        llama_server_top(list)?
    } else if let Some(map) = logprobs.pointer("/top_logprobs/0") {
        legacy_top(map)?
    } else {
        return Err("choices[0].logprobs has neither content[0].top_logprobs nor top_logprobs[0]".into());
    };
    if top.is_empty() {
        return Err("no top log-probabilities".into());
    }
    let cached_tokens = body.pointer("/usage/prompt_tokens_details/cached_tokens").and_then(Value::as_u64);
    Ok(NextTokens { top, cached_tokens })
}

fn llama_server_top(list: &Value) -> Result<Vec<(TokenId, f32)>, String> {
    let list = list.as_array().ok_or("top_logprobs is not a list")?;
    list.iter()
        .map(|entry| {
            let id = entry.get("id").and_then(Value::as_u64).ok_or("a top_logprobs entry has no id")?;
            let logprob = entry.get("logprob").and_then(Value::as_f64).ok_or("a top_logprobs entry has no logprob")?;
            Ok((token_id(id)?, logprob as f32))
        })
        .collect()
}

fn legacy_top(map: &Value) -> Result<Vec<(TokenId, f32)>, String> {
    let map = map.as_object().ok_or("top_logprobs[0] is not a map")?;
    let mut top = map
        .iter()
        .map(|(key, logprob)| {
            let id = key.strip_prefix("token_id:").and_then(|id| id.parse::<u64>().ok()).ok_or_else(|| {
                format!("top_logprobs names token `{key}` by its text, not `token_id:ID` (return_tokens_as_token_ids)")
            })?;
            let logprob = logprob.as_f64().ok_or("a top_logprobs value is not a number")?;
            Ok((token_id(id)?, logprob as f32))
        })
        .collect::<Result<Vec<_>, String>>()?;
    top.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(top)
}

fn token_id(id: u64) -> Result<TokenId, String> {
    TokenId::try_from(id).map_err(|_| format!("token id {id} is out of range"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn llama_servers_shape_gives_ids_logprobs_and_cached_tokens() {
        let body = json!({
            "choices": [{"text": "Hi", "logprobs": {"content": [{"id": 5, "logprob": -0.1, "top_logprobs": [
                {"id": 5, "token": "Hi", "logprob": -0.1}, {"id": 9, "token": "Hey", "logprob": -2.5}
            ]}]}}],
            "usage": {"prompt_tokens": 12, "prompt_tokens_details": {"cached_tokens": 11}}
        });
        let step = next_tokens(&body).unwrap();
        assert_eq!(step.top, vec![(5, -0.1), (9, -2.5)]);
        assert_eq!(step.cached_tokens, Some(11));
    }

    #[test]
    fn the_legacy_shape_gives_ids_most_likely_first() {
        let body = json!({"choices": [{"logprobs": {
            "tokens": ["token_id:9"], "top_logprobs": [{"token_id:3": -3.0, "token_id:9": -0.2}]
        }}]});
        let step = next_tokens(&body).unwrap();
        assert_eq!(step.top, vec![(9, -0.2), (3, -3.0)]);
        assert_eq!(step.cached_tokens, None);
    }

    #[test]
    fn a_response_without_ids_or_logprobs_says_what_is_missing() {
        let text_keys = json!({"choices": [{"logprobs": {"top_logprobs": [{"Hi": -0.2}]}}]});
        assert!(next_tokens(&text_keys).unwrap_err().contains("return_tokens_as_token_ids"));
        let none = json!({"choices": [{"text": "Hi", "logprobs": null}]});
        assert!(next_tokens(&none).unwrap_err().contains("logprobs"));
    }
}
