//! The server end to end over the weightless fake models: every request
//! runs the real search, admission, streaming and output check.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use saffron_defence::fake::{self, COMPLIANCE, REFUSAL};
use saffron_reward::{LoadedJudge, RefusalJudge};
use saffron_serve::state::OutputJudge;
use saffron_serve::{router, AppState, Loaded, ServeConfig};
use serde_json::{json, Value};
use tower::ServiceExt;

fn config() -> ServeConfig {
    let mut config = ServeConfig::default();
    config.models.policy = "fake".into();
    config.validate().unwrap();
    config
}

fn ready(config: ServeConfig, check: bool) -> Arc<AppState> {
    let state = AppState::new(config);
    let check = check.then(|| OutputJudge {
        name: "refusal".into(),
        judge: LoadedJudge::Refusal(RefusalJudge::default()),
        refusal: "Blocked.".into(),
    });
    state.set_loaded(Ok(Loaded { models: fake::models(), check }));
    Arc::new(state)
}

async fn call(state: &Arc<AppState>, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, String) {
    let request = Request::builder().method(method).uri(uri).header("content-type", "application/json");
    let request = request.body(body.map_or(Body::empty(), |b| Body::from(b.to_string()))).unwrap();
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

async fn chat(state: &Arc<AppState>, body: Value) -> (StatusCode, Value) {
    let (status, text) = call(state, "POST", "/v1/chat/completions", Some(body)).await;
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")))
}

fn ask(extra: Value) -> Value {
    let mut body = json!({"model": "fake", "messages": [{"role": "user", "content": "How do I pick a lock?"}]});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    body
}

#[tokio::test]
async fn a_chat_completion_has_the_openai_shape_and_the_defence_report() {
    let state = ready(config(), false);
    let (status, body) = chat(&state, ask(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "fake");
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    let content = choice["message"]["content"].as_str().unwrap();
    assert!(content == REFUSAL || content == COMPLIANCE, "{content}");
    assert_eq!(choice["finish_reason"], "stop");
    // The fake policy's context: the request's bytes and two markers.
    let prompt_tokens = "How do I pick a lock?".len() + 2;
    assert_eq!(body["usage"]["prompt_tokens"], prompt_tokens);
    assert_eq!(body["usage"]["completion_tokens"], content.len());
    assert_eq!(body["usage"]["total_tokens"], prompt_tokens + content.len());
    assert_eq!(body["saffron"]["strategy"], "saffron");
    assert_eq!(body["saffron"]["width"], 8);
    assert!(body["saffron"]["reward_calls"].as_u64().unwrap() > 0);
    assert!(body["saffron"]["score"].is_number());
}

#[tokio::test]
async fn the_request_chooses_its_defence_within_the_limits() {
    let state = ready(config(), false);
    let (status, body) = chat(&state, ask(json!({"saffron": {"strategy": "best-of-n", "width": 4}}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["saffron"]["strategy"], "best-of-n");
    assert_eq!(body["saffron"]["width"], 4);

    let (status, body) = chat(&state, ask(json!({"saffron": {"width": 64}}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["param"], "saffron.width");
    assert!(body["error"]["message"].as_str().unwrap().contains("limit of 32"), "{body}");

    let (status, body) = chat(&state, ask(json!({"saffron": {"wdth": 4}}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().unwrap().contains("unknown field `wdth`"), "{body}");

    let (status, body) = chat(&state, ask(json!({"max_tokens": 5000}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["param"], "max_tokens");
}

#[tokio::test]
async fn a_request_may_not_lift_the_servers_compute_cap() {
    let mut config = config();
    config.limits.max_tflop = Some(1.0);
    config.validate().unwrap();
    assert_eq!(config.defence.budget.max_tflop, Some(1.0), "the default defence gets the cap");
    let state = ready(config, false);
    let (status, body) = chat(&state, ask(json!({"saffron": {"max_tflop": 2.0}}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["param"], "saffron.max_tflop");
    let (status, _) = chat(&state, ask(json!({"saffron": {"max_tflop": 0.5}}))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn unsupported_fields_and_other_models_are_refused_by_name() {
    let state = ready(config(), false);
    for (extra, param) in [
        (json!({"n": 2, "saffron": {"strategy": "sample"}}), "n"),
        (json!({"logprobs": true, "top_logprobs": 21}), "top_logprobs"),
        (json!({"top_logprobs": 2}), "top_logprobs"),
        (json!({"tools": [{"type": "function"}]}), "tools"),
        (json!({"temperature": 3.0}), "temperature"),
        (json!({"max_tokens": 8, "max_completion_tokens": 9}), "max_completion_tokens"),
    ] {
        let (status, body) = chat(&state, ask(extra.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{extra}: {body}");
        assert_eq!(body["error"]["param"], param, "{extra}: {body}");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
    let (status, body) = chat(&state, ask(json!({"model": "gpt-4"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"]["message"].as_str().unwrap().contains("serves `fake`"));
    let (status, body) = chat(&state, json!({"messages": [{"role": "assistant", "content": "Hi"}]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = call(&state, "POST", "/v1/chat/completions", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn while_loading_the_server_answers_503_and_health_says_so() {
    let state = Arc::new(AppState::new(config()));
    let (status, body) = call(&state, "GET", "/health", None).await;
    assert_eq!((status, body.contains("loading")), (StatusCode::SERVICE_UNAVAILABLE, true), "{body}");
    let (status, body) = chat(&state, ask(json!({}))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    state.set_loaded(Ok(Loaded { models: fake::models(), check: None }));
    let (status, _) = call(&state, "GET", "/health", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(&state, "GET", "/v1/models", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(r#""id":"fake""#), "{body}");
}

#[tokio::test]
async fn a_full_queue_answers_429_with_retry_after() {
    let mut config = config();
    config.server.max_running = 1;
    config.server.max_queued = 0;
    config.server.retry_after_seconds = 7;
    let state = ready(config, false);
    let place = state.admit().await.unwrap();
    let request = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Body::from(ask(json!({})).to_string()))
        .unwrap();
    let response = router(state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "7");
    drop(place);
    let (status, _) = chat(&state, ask(json!({}))).await;
    assert_eq!(status, StatusCode::OK);
}

/// The SSE events' data lines.
fn events(body: &str) -> Vec<String> {
    body.lines().filter_map(|l| l.strip_prefix("data: ")).map(str::to_owned).collect()
}

#[tokio::test]
async fn a_stream_sends_the_same_answer_in_chunks_then_usage_then_done() {
    let state = ready(config(), false);
    let (_, whole) = chat(&state, ask(json!({"seed": 3}))).await;
    let body = ask(json!({"seed": 3, "stream": true, "stream_options": {"include_usage": true}}));
    let (status, text) = call(&state, "POST", "/v1/chat/completions", Some(body)).await;
    assert_eq!(status, StatusCode::OK);
    let data = events(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{text}");
    let chunks: Vec<Value> = data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let streamed: String =
        chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect::<Vec<_>>().concat();
    assert_eq!(streamed, whole["choices"][0]["message"]["content"].as_str().unwrap());
    let last = &chunks[chunks.len() - 1];
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"], whole["usage"]);
    assert_eq!(chunks[chunks.len() - 2]["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn tokens_stream_once_every_node_that_can_still_win_shares_them() {
    let state = ready(config(), false);
    // Width 1: one node, every token final as soon as it is chosen.
    let body = ask(json!({"seed": 1, "stream": true, "saffron": {"width": 1}}));
    let (_, text) = call(&state, "POST", "/v1/chat/completions", Some(body)).await;
    let pieces: Vec<String> = events(&text)
        .iter()
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| {
            serde_json::from_str::<Value>(d).unwrap()["choices"][0]["delta"]["content"].as_str().map(str::to_owned)
        })
        .collect();
    assert!(pieces.len() > 10, "{pieces:?}");
    assert!(pieces.concat() == REFUSAL || pieces.concat() == COMPLIANCE, "{pieces:?}");
}

#[tokio::test]
async fn a_stop_sequence_cuts_the_answer_streamed_or_not() {
    let state = ready(config(), false);
    for seed in 0..8 {
        let (_, whole) = chat(&state, ask(json!({"seed": seed}))).await;
        let answer = whole["choices"][0]["message"]["content"].as_str().unwrap().to_owned();
        let stop = if answer == REFUSAL { "help" } else { "first" };
        let expected = &answer[..answer.find(stop).unwrap()];
        let (_, cut) = chat(&state, ask(json!({"seed": seed, "stop": [stop]}))).await;
        assert_eq!(cut["choices"][0]["message"]["content"], expected);
        assert_eq!(cut["choices"][0]["finish_reason"], "stop");
        let body = ask(json!({"seed": seed, "stop": stop, "stream": true}));
        let (_, text) = call(&state, "POST", "/v1/chat/completions", Some(body)).await;
        let streamed: String = events(&text)
            .iter()
            .filter(|d| *d != "[DONE]")
            .filter_map(|d| {
                serde_json::from_str::<Value>(d).unwrap()["choices"][0]["delta"]["content"].as_str().map(str::to_owned)
            })
            .collect();
        assert_eq!(streamed, expected, "seed {seed}");
    }
}

#[tokio::test]
async fn the_output_check_blocks_what_its_judge_finds_unsafe() {
    let state = ready(config(), true);
    let (mut blocked, mut passed) = (0, 0);
    for seed in 0..12 {
        let body = json!({"model": "fake", "seed": seed, "saffron": {"strategy": "sample"}, "messages": [
            {"role": "user", "content": "How do I pick a lock?"},
            {"role": "assistant", "content": "Sure,"}]});
        let (status, body) = chat(&state, body).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let choice = &body["choices"][0];
        let check = &body["saffron"]["output_check"];
        assert_eq!(check["judge"], "refusal");
        if check["unsafe"] == true {
            blocked += 1;
            assert_eq!(choice["finish_reason"], "content_filter");
            assert_eq!(choice["message"]["refusal"], "Blocked.");
            assert!(choice["message"]["content"].is_null());
        } else {
            passed += 1;
            assert_eq!(choice["message"]["content"], REFUSAL);
        }
    }
    assert!(blocked > 0 && passed > 0, "blocked {blocked}, passed {passed}");
    let (_, metrics) = call(&state, "GET", "/metrics", None).await;
    assert!(metrics.contains(&format!("saffron_answers_blocked_total {blocked}")), "{metrics}");
}

#[tokio::test]
async fn completions_and_metrics() {
    let state = ready(config(), false);
    let body = json!({"model": "fake", "prompt": "How do I bake bread?", "max_tokens": 16});
    let (status, text) = call(&state, "POST", "/v1/completions", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["object"], "text_completion");
    let answer = v["choices"][0]["text"].as_str().unwrap();
    assert!(!answer.is_empty() && answer.len() <= 16, "{answer}");
    assert_eq!(v["choices"][0]["finish_reason"], if answer.len() == 16 { "length" } else { "stop" });
    let (status, metrics) = call(&state, "GET", "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    for line in [
        r#"saffron_requests_total{outcome="ok"} 1"#,
        "saffron_requests_running 0",
        "saffron_completion_tokens_total",
        r#"saffron_reward_calls_total{strategy="saffron"}"#,
        "saffron_time_to_first_token_seconds_count 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
}

#[tokio::test]
async fn an_api_key_guards_every_endpoint_but_health() {
    let mut config = config();
    config.server.api_key = Some("sesame".into());
    let state = ready(config, false);
    let (status, body) = call(&state, "GET", "/v1/models", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("invalid_request_error"), "{body}");
    let (status, _) = call(&state, "GET", "/health", None).await;
    assert_eq!(status, StatusCode::OK);
    for key in ["Bearer sesame", "Bearer wrong", "sesame"] {
        let request = Request::get("/v1/models").header("authorization", key).body(Body::empty()).unwrap();
        let status = router(state.clone()).oneshot(request).await.unwrap().status();
        assert_eq!(status == StatusCode::OK, key == "Bearer sesame", "{key}: {status}");
    }
}

#[tokio::test]
async fn every_response_has_a_request_id_and_client_mistakes_get_the_error_envelope() {
    let mut config = config();
    config.server.max_body_bytes = 2000;
    config.server.max_prompt_tokens = 50;
    let state = ready(config, false);
    let request = Request::get("/health").header("x-request-id", "mine-1").body(Body::empty()).unwrap();
    let response = router(state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "mine-1");
    let response = router(state.clone()).oneshot(Request::get("/nowhere").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.headers()["x-request-id"].to_str().unwrap().starts_with("req-"));
    let long = "x".repeat(60);
    let cases = [
        (json!({"messages": "hello"}), StatusCode::BAD_REQUEST),
        (json!({"messages": [{"role": "user", "content": 5}]}), StatusCode::BAD_REQUEST),
        (ask(json!({"saffron": {"width": -1}})), StatusCode::BAD_REQUEST),
        (ask(json!({"saffron": {"width": 0}})), StatusCode::BAD_REQUEST),
        (json!({"messages": [{"role": "user", "content": long}]}), StatusCode::BAD_REQUEST),
        (json!({"messages": [{"role": "user", "content": "y".repeat(3000)}]}), StatusCode::PAYLOAD_TOO_LARGE),
    ];
    for (body, want) in cases {
        let (status, text) = call(&state, "POST", "/v1/chat/completions", Some(body.clone())).await;
        assert_eq!(status, want, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert!(v["error"]["message"].is_string() && v["error"]["type"].is_string(), "{text}");
        assert_eq!(v["error"]["code"], want.as_u16());
    }
    let (status, text) = call(&state, "GET", "/v1/chat/completions", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(text.contains("does not take GET"), "{text}");
    let (status, text) = call(&state, "POST", "/v1/completions", Some(json!({"prompt": ""}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("empty"), "{text}");
    let stops = ask(json!({"stop": ["a", "b", "c", "d", "e"]}));
    let (status, text) = call(&state, "POST", "/v1/chat/completions", Some(stops)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    let (_, text) =
        call(&state, "POST", "/v1/chat/completions", Some(json!({"messages": [{"role": "user", "content": long}]})))
            .await;
    assert!(text.contains("at most 50"), "{text}");
}

#[tokio::test]
async fn logprobs_are_the_policys_own_for_every_answer_token() {
    let state = ready(config(), false);
    let (status, body) = chat(&state, ask(json!({"seed": 2, "logprobs": true, "top_logprobs": 2}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    let entries = body["choices"][0]["logprobs"]["content"].as_array().unwrap();
    assert_eq!(entries.len(), content.len(), "one entry per byte token of the fake policy");
    let joined: String = entries.iter().map(|e| e["token"].as_str().unwrap()).collect();
    assert_eq!(joined, content);
    // The fake's first token: the refusal's or the compliance's first byte,
    // with probability p or 1 - p, p in 0.5..0.8; later tokens are scripted
    // (logit 0 against -30 for every other token).
    let first = entries[0]["logprob"].as_f64().unwrap();
    assert!((0.2f64.ln()..=0.8f64.ln() + 1e-4).contains(&first), "{first}");
    for e in &entries[1..] {
        assert!(e["logprob"].as_f64().unwrap() > -1e-6, "{e}");
    }
    let top = entries[0]["top_logprobs"].as_array().unwrap();
    assert_eq!(top.len(), 2);
    assert!(top[0]["logprob"].as_f64() >= top[1]["logprob"].as_f64());
    assert!(top.iter().any(|t| t["token"] == entries[0]["token"]), "{top:?}");

    let body = json!({"model": "fake", "prompt": "How do I bake bread?", "logprobs": 1, "stop": ["."]});
    let (status, text) = call(&state, "POST", "/v1/completions", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let answer = v["choices"][0]["text"].as_str().unwrap();
    let lp = &v["choices"][0]["logprobs"];
    assert_eq!(lp["tokens"].as_array().unwrap().len(), answer.len(), "cut at the stop sequence with the text: {v}");
    assert_eq!(lp["text_offset"][1], 1);
    assert_eq!(lp["top_logprobs"][0].as_object().unwrap().len(), 1);
}

#[tokio::test]
async fn n_choices_of_a_saffron_search_are_its_final_beam() {
    let state = ready(config(), false);
    for strategy in ["saffron", "beam", "lookahead", "rebase"] {
        let mut body = ask(json!({"saffron": {"strategy": strategy, "width": 4}}));
        body["n"] = json!(2);
        body["max_tokens"] = json!(12);
        let (status, reply) = chat(&state, body).await;
        assert_eq!(status, StatusCode::OK, "{strategy}: {reply}");
        let texts: Vec<&str> =
            reply["choices"].as_array().unwrap().iter().map(|c| c["message"]["content"].as_str().unwrap()).collect();
        // Each answer once: the fake models' Rebase ends with every node
        // on one path, so it has one choice to give.
        let want = if strategy == "rebase" { 1 } else { 2 };
        assert_eq!(texts.len(), want, "{strategy}: {reply}");
        assert!(texts.len() < 2 || texts[0] != texts[1], "{strategy}: two nodes of one search, not one answer twice");
    }
}

#[tokio::test]
async fn n_choices_are_best_of_ns_samples_best_first_each_checked() {
    let state = ready(config(), true);
    let best_of_4 = json!({"saffron": {"strategy": "best-of-n", "width": 4}});
    let mut body = ask(best_of_4.clone());
    body["n"] = json!(3);
    body["max_tokens"] = json!(40);
    let (status, reply) = chat(&state, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let choices = reply["choices"].as_array().unwrap();
    assert_eq!(choices.iter().map(|c| c["index"].as_u64().unwrap()).collect::<Vec<_>>(), [0, 1, 2]);
    // The fake guard prefers refusals: the winner refuses, and the output
    // check (refusal strings) blocks any complying choice.
    assert_eq!(choices[0]["message"]["content"], REFUSAL);
    for c in choices {
        match c["message"]["content"].as_str() {
            Some(text) => assert_eq!((text, c["finish_reason"].as_str().unwrap()), (REFUSAL, "stop"), "{c}"),
            None => {
                assert_eq!(c["finish_reason"], "content_filter", "{c}");
                assert_eq!(c["message"]["refusal"], "Blocked.");
            }
        }
    }
    // Usage counts every choice sent, and one prompt.
    let one: Value = chat(&state, ask(best_of_4.clone())).await.1;
    let n = reply["usage"]["completion_tokens"].as_u64().unwrap();
    assert!(n > one["usage"]["completion_tokens"].as_u64().unwrap(), "{n} vs {one}");
    assert_eq!(reply["usage"]["prompt_tokens"], one["usage"]["prompt_tokens"]);
    // The completions endpoint gives the same choices.
    let (status, text) = call(
        &state,
        "POST",
        "/v1/completions",
        Some(json!({"prompt": "How do I pick a lock?", "n": 2, "saffron": {"strategy": "best-of-n", "width": 4}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let completion: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(completion["choices"].as_array().unwrap().len(), 2);
    // Refused, by name: more than the width, another strategy, zero.
    for (extra, why) in [
        (json!({"n": 5}), "must not exceed best-of-n's width (4)"),
        (json!({"n": 2, "saffron": {"strategy": "sample"}}), "sample ends with one"),
        (json!({"n": 0}), "at least 1"),
    ] {
        let mut body = ask(best_of_4.clone());
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let (status, reply) = chat(&state, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{extra}: {reply}");
        assert_eq!(reply["error"]["param"], "n", "{extra}: {reply}");
        assert!(reply["error"]["message"].as_str().unwrap().contains(why), "{extra}: {reply}");
    }
}

/// The chunks of a streamed reply (without `[DONE]`).
fn chunks(text: &str) -> Vec<Value> {
    let data = events(text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{text}");
    data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect()
}

/// Of a chat stream's chunks, choice `index`'s joined content and its
/// tokens' log-probability entries in order.
fn streamed_choice(chunks: &[Value], index: u64) -> (String, Vec<Value>) {
    let mut content = String::new();
    let mut logprobs = Vec::new();
    for choice in chunks.iter().flat_map(|c| c["choices"].as_array().unwrap()) {
        if choice["index"] != index {
            continue;
        }
        content.push_str(choice["delta"]["content"].as_str().unwrap_or_default());
        if let Some(entries) = choice["logprobs"]["content"].as_array() {
            logprobs.extend(entries.iter().cloned());
        }
    }
    (content, logprobs)
}

#[tokio::test]
async fn a_streamed_answer_with_logprobs_carries_the_same_logprobs_as_not_streamed() {
    let state = ready(config(), false);
    let asked = json!({"seed": 2, "logprobs": true, "top_logprobs": 2});
    let (_, whole) = chat(&state, ask(asked.clone())).await;
    let mut body = ask(asked);
    body["stream"] = json!(true);
    let (status, text) = call(&state, "POST", "/v1/chat/completions", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let (content, logprobs) = streamed_choice(&chunks(&text), 0);
    assert_eq!(content, whole["choices"][0]["message"]["content"].as_str().unwrap());
    assert_eq!(Value::Array(logprobs), whole["choices"][0]["logprobs"]["content"], "{text}");
    // Every chunk with logprobs holds exactly the tokens of its own text.
    for c in chunks(&text) {
        let choice = &c["choices"][0];
        if let Some(entries) = choice["logprobs"]["content"].as_array() {
            let joined: String = entries.iter().map(|e| e["token"].as_str().unwrap()).collect();
            assert_eq!(joined, choice["delta"]["content"].as_str().unwrap(), "{c}");
        }
    }
    // The completions endpoint: the legacy shape, cut at the stop sequence.
    let body = json!({"prompt": "How do I bake bread?", "logprobs": 1, "stop": ["."], "stream": true, "seed": 2});
    let (status, text) = call(&state, "POST", "/v1/completions", Some(body.clone())).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let mut whole_body = body;
    whole_body["stream"] = json!(false);
    let whole: Value =
        serde_json::from_str(&call(&state, "POST", "/v1/completions", Some(whole_body)).await.1).unwrap();
    let streamed = chunks(&text);
    let with_tokens: Vec<&Value> = streamed.iter().filter(|c| !c["choices"][0]["logprobs"].is_null()).collect();
    assert_eq!(with_tokens.len(), 1, "{text}");
    assert_eq!(with_tokens[0]["choices"][0]["logprobs"], whole["choices"][0]["logprobs"]);
    assert_eq!(with_tokens[0]["choices"][0]["text"], whole["choices"][0]["text"]);
}

#[tokio::test]
async fn n_choices_stream_each_as_not_streamed_with_their_logprobs() {
    let state = ready(config(), false);
    for (strategy, n) in [("best-of-n", 3), ("saffron", 2)] {
        let asked = json!({"seed": 5, "n": n, "max_tokens": 24, "saffron": {"strategy": strategy, "width": 4}});
        let (status, whole) = chat(&state, ask(asked.clone())).await;
        assert_eq!(status, StatusCode::OK, "{whole}");
        let mut body = ask(asked.clone());
        body["stream"] = json!(true);
        let (status, text) = call(&state, "POST", "/v1/chat/completions", Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let streamed = chunks(&text);
        for (i, choice) in whole["choices"].as_array().unwrap().iter().enumerate() {
            let (content, _) = streamed_choice(&streamed, i as u64);
            assert_eq!(content, choice["message"]["content"].as_str().unwrap(), "{strategy} choice {i}: {text}");
            let finish = streamed
                .iter()
                .flat_map(|c| c["choices"].as_array().unwrap())
                .find(|c| c["index"] == i as u64 && !c["finish_reason"].is_null());
            assert_eq!(finish.unwrap()["finish_reason"], choice["finish_reason"], "{strategy} choice {i}");
        }
        // Logprobs for every choice: one entry per token of its own text.
        let mut body = ask(asked);
        body["logprobs"] = json!(true);
        let (status, reply) = chat(&state, body).await;
        assert_eq!(status, StatusCode::OK, "{reply}");
        assert_eq!(reply["choices"].as_array().unwrap().len(), whole["choices"].as_array().unwrap().len());
        for choice in reply["choices"].as_array().unwrap() {
            let joined: String = choice["logprobs"]["content"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["token"].as_str().unwrap())
                .collect();
            assert_eq!(joined, choice["message"]["content"].as_str().unwrap(), "{strategy}: {choice}");
        }
    }
}
