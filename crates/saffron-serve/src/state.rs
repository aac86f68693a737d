//! What every handler shares: the configuration, the loaded models (once
//! loading has finished), the admission queue and the metrics.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use saffron_defence::DefenceModels;
use saffron_reward::LoadedJudge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;
use crate::{ApiError, ServeConfig};

/// The models a server answers with.
pub struct Loaded {
    pub models: DefenceModels,
    pub check: Option<OutputJudge>,
}

/// The output check: a judge of every finished answer.
pub struct OutputJudge {
    /// As configured (`default`, `refusal`, a path).
    pub name: String,
    pub judge: LoadedJudge,
    /// What a blocked answer says instead.
    pub refusal: String,
}

/// Shared by every handler (behind an `Arc`).
pub struct AppState {
    pub config: ServeConfig,
    loaded: OnceLock<Result<Arc<Loaded>, String>>,
    permits: Arc<Semaphore>,
    queued: AtomicUsize,
    next_id: AtomicU64,
    pub metrics: Metrics,
}

impl AppState {
    /// A state whose models are still loading ([`AppState::set_loaded`]).
    pub fn new(config: ServeConfig) -> AppState {
        let permits = Arc::new(Semaphore::new(config.server.max_running));
        AppState {
            config,
            loaded: OnceLock::new(),
            permits,
            queued: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            metrics: Metrics::default(),
        }
    }

    /// Loading finished, well or not; later calls are ignored.
    pub fn set_loaded(&self, loaded: Result<Loaded, String>) {
        let _ = self.loaded.set(loaded.map(Arc::new));
    }

    /// The model id of `/v1/models`: the configured policy.
    pub fn model_id(&self) -> &str {
        &self.config.models.policy
    }

    /// The models, or 503 while loading (or after loading failed).
    pub fn loaded(&self) -> Result<Arc<Loaded>, ApiError> {
        match self.loaded.get() {
            None => Err(ApiError::loading()),
            Some(Err(why)) => Err(ApiError::load_failed(why)),
            Some(Ok(loaded)) => Ok(loaded.clone()),
        }
    }

    /// `loading`, `ready` or `failed`.
    pub fn health(&self) -> &'static str {
        match self.loaded.get() {
            None => "loading",
            Some(Err(_)) => "failed",
            Some(Ok(_)) => "ready",
        }
    }

    /// Checks the request's `model` field.
    pub fn check_model(&self, asked: Option<&str>) -> Result<(), ApiError> {
        match asked {
            Some(m) if m != self.model_id() => Err(ApiError::model_not_found(m, self.model_id())),
            _ => Ok(()),
        }
    }

    /// A place to run: at once if one is free, else after waiting in the
    /// queue; 429 when the queue is full. Dropping the future while it
    /// waits leaves the queue.
    pub async fn admit(&self) -> Result<Place, ApiError> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(self.place(permit));
        }
        let ahead = self.queued.fetch_add(1, Ordering::SeqCst);
        let mut waiting = Waiting { state: self, counted: false };
        if ahead >= self.config.server.max_queued {
            return Err(ApiError::busy(self.config.server.retry_after_seconds));
        }
        self.metrics.queued.inc();
        waiting.counted = true;
        let permit =
            self.permits.clone().acquire_owned().await.map_err(|_| ApiError::internal("the server is stopping"))?;
        drop(waiting);
        Ok(self.place(permit))
    }

    fn place(&self, permit: OwnedSemaphorePermit) -> Place {
        self.metrics.running.inc();
        Place { _permit: permit, running: self.metrics.running.clone() }
    }

    /// The limits of a request that arrived at `arrived`.
    pub fn run_limits(&self, arrived: std::time::Instant) -> crate::answer::RunLimits {
        let server = &self.config.server;
        crate::answer::RunLimits {
            deadline: arrived + std::time::Duration::from_secs_f64(server.timeout_seconds),
            timeout_seconds: server.timeout_seconds,
            max_prompt_tokens: server.max_prompt_tokens,
        }
    }

    /// `chatcmpl-…` / `cmpl-…` ids, unique within this server's life.
    pub fn new_id(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }
}

/// Leaves the queue (and its gauge) when dropped.
struct Waiting<'a> {
    state: &'a AppState,
    /// Whether it was let into the queue (and so counted by its gauge).
    counted: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.state.queued.fetch_sub(1, Ordering::SeqCst);
        if self.counted {
            self.state.metrics.queued.dec();
        }
    }
}

/// A running request's place; freed when dropped.
pub struct Place {
    _permit: OwnedSemaphorePermit,
    running: prometheus_client::metrics::gauge::Gauge,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.running.dec();
    }
}

/// Seconds since the Unix epoch (`created`).
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
