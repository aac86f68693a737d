//! `saffron serve`: an OpenAI-compatible server whose answers are defended
//! by the search (docs/serve.md).
//!
//! - [`config`]: the TOML file: where to listen, the models, the default
//!   defence, the limits a request may not pass, the output check;
//! - [`api`]: the OpenAI wire shapes and the `saffron` extension objects;
//! - [`request`]: a request into a chat prompt and a search configuration;
//! - [`answer`]: one request's search on a blocking thread, its observer
//!   (final tokens, cancellation, timeout), stop sequences, output check;
//! - [`stream`]: server-sent events;
//! - [`routes`]: the axum router; [`state`]: what handlers share
//!   (admission queue, loaded models); [`metrics`]: Prometheus text;
//! - [`load`]: the configured models, the policy behind one shared prefix
//!   tree whose scheduler batches every running search's calls
//!   ([`saffron_defence::BatchedPolicy`]).
//!
//! The binary only parses flags and calls [`serve`].

pub mod answer;
pub mod api;
pub mod config;
mod error;
pub mod load;
pub mod metrics;
pub mod request;
pub mod routes;
pub mod state;
pub mod stream;

use std::sync::Arc;

pub use config::ServeConfig;
pub use error::{ApiError, ServeError};
pub use routes::router;
pub use state::{AppState, Loaded};

/// Listens on the configured address at once (answering 503 while the
/// models load), loads them with `load` on a blocking thread, and serves
/// until Ctrl-C. If loading fails the server stops and says why.
pub async fn serve(
    config: ServeConfig,
    load: impl FnOnce(&ServeConfig) -> Result<Loaded, String> + Send + 'static,
) -> Result<(), ServeError> {
    let address = format!("{}:{}", config.server.host, config.server.port);
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .map_err(|source| ServeError::Bind { address: address.clone(), source })?;
    let state = Arc::new(AppState::new(config));
    let loading = state.clone();
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<String>();
    tokio::task::spawn_blocking(move || {
        let loaded = load(&loading.config);
        match &loaded {
            Ok(_) => tracing::info!("models loaded; serving {}", loading.model_id()),
            Err(why) => {
                let _ = failed_tx.send(why.clone());
            }
        }
        loading.set_loaded(loaded);
    });
    tracing::info!("listening on http://{address} (OpenAI-compatible: /v1/chat/completions, /v1/completions)");
    let failure = std::sync::Arc::new(std::sync::Mutex::new(None));
    let stop = {
        let failure = failure.clone();
        async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => tracing::info!("stopping"),
                Ok(why) = failed_rx => *failure.lock().expect("failure lock") = Some(why),
            }
        }
    };
    axum::serve(listener, router(state)).with_graceful_shutdown(stop).await?;
    let why = failure.lock().expect("failure lock").take();
    match why {
        Some(why) => Err(ServeError::Load(why)),
        None => Ok(()),
    }
}
