//! The axum router and its handlers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};

use crate::answer::{self, Cancel, CancelOnDrop, Logprob, Reply};
use crate::api::{
    AssistantMessage, ChatChoice, ChatLogprobs, ChatRequest, ChatResponse, CompletionChoice, CompletionLogprobs,
    CompletionRequest, CompletionResponse, ModelCard, ModelList, TokenEntry,
};
use crate::request::{self, Input, Job};
use crate::state::{now, AppState, Loaded, Place};
use crate::stream::{self, Endpoint};
use crate::ApiError;

/// Every endpoint of the server over `state`: the API key checked on all
/// but `/health`, bodies limited, an `x-request-id` on every response
/// (the client's own, or a new one).
pub fn router(state: Arc<AppState>) -> Router {
    let header = HeaderName::from_static(REQUEST_ID);
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(state.clone(), authorise))
        .route("/health", get(health))
        .fallback(|uri: Uri| async move { ApiError::not_found(uri.path()) })
        .method_not_allowed_fallback(|method: axum::http::Method, uri: Uri| async move {
            ApiError::method_not_allowed(method.as_str(), uri.path())
        })
        .layer(DefaultBodyLimit::max(state.config.server.max_body_bytes))
        .layer(PropagateRequestIdLayer::new(header.clone()))
        .layer(SetRequestIdLayer::new(header, Counter::default()))
        .with_state(state)
}

const REQUEST_ID: &str = "x-request-id";

/// New request ids: `req-0`, `req-1`, ….
#[derive(Clone, Default)]
struct Counter(Arc<AtomicU64>);

impl MakeRequestId for Counter {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("req-{n}")).ok().map(RequestId::new)
    }
}

/// `Authorization: Bearer KEY` when the server has a key.
async fn authorise(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Some(key) = state.config.server.api_key.as_deref() else { return next.run(request).await };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given == Some(key) {
        next.run(request).await
    } else {
        state.metrics.outcome("unauthorised");
        ApiError::unauthorized().into_response()
    }
}

/// A JSON body, or 400 with serde's words (which name an unknown field);
/// 413 past the size limit.
fn parse<T: DeserializeOwned>(state: &AppState, body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(state.config.server.max_body_bytes),
        _ => ApiError::invalid(None, format!("cannot read the request body: {e}")),
    })?;
    serde_json::from_slice(&body).map_err(|e| ApiError::invalid(None, format!("invalid request body: {e}")))
}

async fn chat(State(state): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    let asked: ChatRequest = parse(&state, body)?;
    state.check_model(asked.model.as_deref())?;
    let (chat, text) = request::chat_prompt(&asked.messages)?;
    let job = request::job(Input::Chat(chat), text, asked.common, &state.config.defence, &state.config.limits)?;
    let loaded = state.loaded()?;
    let place = admit(&state).await?;
    if job.stream {
        return Ok(stream::respond(state, loaded, job, Endpoint::Chat, place, arrived));
    }
    let reply = finish(&state, &job, answer(&state, loaded, &job, place, arrived).await, arrived)?;
    let choices = reply
        .choices
        .into_iter()
        .enumerate()
        .map(|(index, c)| ChatChoice {
            index,
            logprobs: c.logprobs.as_deref().map(chat_logprobs),
            message: AssistantMessage { role: "assistant", content: c.content, refusal: c.refusal },
            finish_reason: c.finish,
        })
        .collect();
    Ok(Json(ChatResponse {
        id: state.new_id("chatcmpl"),
        object: "chat.completion",
        created: now(),
        model: state.model_id().to_owned(),
        choices,
        usage: reply.usage,
        saffron: reply.report,
    })
    .into_response())
}

async fn completions(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    let asked: CompletionRequest = parse(&state, body)?;
    state.check_model(asked.model.as_deref())?;
    let prompt = request::raw_prompt(asked.prompt)?;
    let job =
        request::job(Input::Raw(prompt.clone()), prompt, asked.common, &state.config.defence, &state.config.limits)?;
    let loaded = state.loaded()?;
    let place = admit(&state).await?;
    if job.stream {
        return Ok(stream::respond(state, loaded, job, Endpoint::Completion, place, arrived));
    }
    let reply = finish(&state, &job, answer(&state, loaded, &job, place, arrived).await, arrived)?;
    let choices = reply
        .choices
        .into_iter()
        .enumerate()
        .map(|(index, c)| CompletionChoice {
            index,
            logprobs: c.logprobs.as_deref().map(completion_logprobs),
            text: c.content.or(c.refusal).unwrap_or_default(),
            finish_reason: c.finish,
        })
        .collect();
    Ok(Json(CompletionResponse {
        id: state.new_id("cmpl"),
        object: "text_completion",
        created: now(),
        model: state.model_id().to_owned(),
        choices,
        usage: reply.usage,
        saffron: reply.report,
    })
    .into_response())
}

/// The chat shape of an answer's log-probabilities.
pub(crate) fn chat_logprobs(tokens: &[Logprob]) -> ChatLogprobs {
    let entry = |text: &str, logprob: f64| TokenEntry {
        token: text.to_owned(),
        logprob,
        bytes: text.as_bytes().to_vec(),
        top_logprobs: None,
    };
    ChatLogprobs {
        content: tokens
            .iter()
            .map(|t| TokenEntry {
                top_logprobs: Some(t.top.iter().map(|(text, lp)| entry(text, *lp)).collect()),
                ..entry(&t.text, t.logprob)
            })
            .collect(),
    }
}

/// The legacy completions shape.
pub(crate) fn completion_logprobs(tokens: &[Logprob]) -> CompletionLogprobs {
    let mut offset = 0;
    let mut text_offset = Vec::with_capacity(tokens.len());
    for t in tokens {
        text_offset.push(offset);
        offset += t.text.len();
    }
    CompletionLogprobs {
        tokens: tokens.iter().map(|t| t.text.clone()).collect(),
        token_logprobs: tokens.iter().map(|t| t.logprob).collect(),
        top_logprobs: tokens
            .iter()
            .map(|t| t.top.iter().map(|(text, lp)| (text.clone(), serde_json::json!(lp))).collect())
            .collect(),
        text_offset,
    }
}

/// A place to run within the request's time (429 when the queue is full).
async fn admit(state: &AppState) -> Result<Place, ApiError> {
    let timeout = state.config.server.timeout_seconds;
    let admitted = match tokio::time::timeout(Duration::from_secs_f64(timeout), state.admit()).await {
        Ok(place) => place,
        Err(_) => Err(ApiError::timeout(timeout)),
    };
    if let Err(e) = &admitted {
        state.metrics.outcome(if e.status.as_u16() == 429 { "busy" } else { "timeout" });
    }
    admitted
}

/// Runs the search on a blocking thread; a dropped handler (the client
/// went away) cancels it.
async fn answer(
    state: &AppState,
    loaded: Arc<Loaded>,
    job: &Job,
    place: Place,
    arrived: Instant,
) -> Result<Reply, ApiError> {
    let limits = state.run_limits(arrived);
    let cancel = Cancel::default();
    let mut on_drop = CancelOnDrop(Some(cancel.clone()));
    let job = job.clone();
    // The place goes with the search: a dropped handler frees it only when
    // the search has stopped.
    let reply = tokio::task::spawn_blocking(move || {
        let _place = place;
        answer::run(&loaded, &job, &cancel, limits, None)
    })
    .await
    .map_err(|e| ApiError::internal(format!("the search thread failed: {e}")))?;
    on_drop.0 = None;
    reply
}

/// Records a finished request in the metrics.
pub(crate) fn finish(
    state: &AppState,
    job: &Job,
    reply: Result<Reply, ApiError>,
    arrived: Instant,
) -> Result<Reply, ApiError> {
    let m = &state.metrics;
    match &reply {
        Ok(r) => {
            m.outcome(if r.blocked() { "blocked" } else { "ok" });
            if r.blocked() {
                m.blocked.inc();
            }
            if !job.stream {
                m.time_to_first_token.observe(arrived.elapsed().as_secs_f64());
            }
            let u = r.usage;
            m.prompt_tokens.inc_by(u.prompt_tokens as u64);
            m.cached_tokens.inc_by(u.prompt_tokens_details.cached_tokens as u64);
            m.completion_tokens.inc_by(u.completion_tokens as u64);
            if u.completion_tokens > 0 {
                m.time_per_output_token.observe(r.report.wall_seconds / u.completion_tokens as f64);
            }
            let label = crate::metrics::DefenceLabel { strategy: r.report.strategy.to_string() };
            m.tflop.get_or_create(&label).inc_by(r.report.tflop);
            m.reward_calls.get_or_create(&label).inc_by(r.report.reward_calls);
        }
        Err(e) => m.outcome(match e.status.as_u16() {
            504 => "timeout",
            400..=499 => "rejected",
            _ => "error",
        }),
    }
    reply
}

async fn models(State(state): State<Arc<AppState>>) -> Json<ModelList> {
    Json(ModelList {
        object: "list",
        data: vec![ModelCard { id: state.model_id().to_owned(), object: "model", created: now(), owned_by: "saffron" }],
    })
}

/// 200 once the models are loaded, 503 before (or if loading failed).
async fn health(State(state): State<Arc<AppState>>) -> Response {
    let status = state.health();
    let code = if status == "ready" { axum::http::StatusCode::OK } else { axum::http::StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(serde_json::json!({ "status": status }))).into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    // Reading the shared trees' totals waits for a running step.
    let shared = match state.loaded() {
        Ok(l) => tokio::task::spawn_blocking(move || l.models.policy().shared_stats()).await.ok().flatten(),
        Err(_) => None,
    };
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        state.metrics.render(shared),
    )
        .into_response()
}
