//! The server on a real model (SmolLM2 from the cache): loading from the
//! configuration, the shared tree behind every request, a cached system
//! prompt.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use saffron_serve::{router, AppState, ServeConfig};
use saffron_test_support::{real_home, smollm2_path};
use serde_json::{json, Value};
use tower::ServiceExt;

async fn chat(state: &Arc<AppState>, body: Value) -> Value {
    let request = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smollm2_answers_through_the_shared_tree_and_reuses_the_system_prompt() {
    let mut config = ServeConfig::default();
    config.models.policy = smollm2_path().to_string_lossy().into_owned();
    config.models.prm = Some("none".into());
    config.models.mrm = Some("policy-logits".into());
    config.models.threads = Some(2);
    config.validate().unwrap();
    let loaded = saffron_serve::load::load(&real_home(), &config).unwrap();
    let model = config.models.policy.clone();
    let state = AppState::new(config);
    state.set_loaded(Ok(loaded));
    let state = Arc::new(state);
    let ask = |prompt: &str| {
        json!({"model": model, "max_tokens": 12, "saffron": {"width": 4},
               "messages": [{"role": "system", "content": "You are a careful assistant. Answer briefly."},
                            {"role": "user", "content": prompt}]})
    };
    let first = chat(&state, ask("Name a colour.")).await;
    let second = chat(&state, ask("Name a fruit.")).await;
    for v in [&first, &second] {
        assert!(!v["choices"][0]["message"]["content"].as_str().unwrap().is_empty(), "{v}");
        assert!(v["saffron"]["tflop"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(first["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    let cached = second["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap();
    let prompt = second["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(cached > 10 && cached < prompt, "{cached} of {prompt} prompt tokens cached");
}
