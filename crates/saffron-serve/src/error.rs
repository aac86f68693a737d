//! Errors: [`ServeError`] stops the server from starting; [`ApiError`] is
//! one request's failure, answered in the OpenAI error shape
//! (`{"error": {"message", "type", "param", "code"}}`) with its HTTP status.

use std::path::PathBuf;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot read the server configuration {path}")]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path} is not a valid server configuration")]
    ParseConfig {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },

    #[error("invalid server configuration: {0}")]
    InvalidConfig(String),

    #[error("cannot listen on {address}")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },

    #[error("the models could not be loaded: {0}")]
    Load(String),

    #[error("the server stopped")]
    Io(#[from] std::io::Error),
}

/// One request's failure.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    /// The OpenAI error type: `invalid_request_error`, `server_error`, ….
    pub kind: &'static str,
    pub message: String,
    /// The request field at fault, if one is.
    pub param: Option<String>,
    /// Seconds for `Retry-After` (429 and 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A bad request (400) naming the field at fault.
    pub fn invalid(param: impl Into<Option<String>>, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            message: message.into(),
            param: param.into(),
            retry_after: None,
        }
    }

    pub fn model_not_found(asked: &str, served: &str) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            message: format!("the model `{asked}` does not exist here: this server serves `{served}`"),
            param: Some("model".into()),
            retry_after: None,
        }
    }

    pub fn unauthorized() -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            kind: "invalid_request_error",
            message: "a valid API key is needed: send `Authorization: Bearer KEY`".into(),
            param: None,
            retry_after: None,
        }
    }

    pub fn too_large(limit: usize) -> ApiError {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            kind: "invalid_request_error",
            message: format!("the request body is over the server's limit of {limit} bytes"),
            param: None,
            retry_after: None,
        }
    }

    pub fn not_found(path: &str) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            message: format!("no endpoint {path} (see /v1/chat/completions, /v1/completions, /v1/models)"),
            param: None,
            retry_after: None,
        }
    }

    pub fn method_not_allowed(method: &str, path: &str) -> ApiError {
        ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            kind: "invalid_request_error",
            message: format!("{path} does not take {method}"),
            param: None,
            retry_after: None,
        }
    }

    pub fn busy(retry_after: u64) -> ApiError {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            kind: "rate_limit_error",
            message: "the server's queue is full; retry later".into(),
            param: None,
            retry_after: Some(retry_after),
        }
    }

    pub fn loading() -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "server_error",
            message: "the models are still loading; retry in a few seconds".into(),
            param: None,
            retry_after: Some(2),
        }
    }

    pub fn load_failed(why: &str) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "server_error",
            message: format!("the models could not be loaded: {why}"),
            param: None,
            retry_after: None,
        }
    }

    /// The request's search needs more KV cells at one step than the
    /// server's prefix tree has, even with every other request's nodes
    /// evicted: its width and length, not the load (a 400 naming the cap).
    pub fn step_too_large(detail: &str) -> ApiError {
        ApiError::invalid(
            None,
            format!(
                "one step of this request's search needs more KV cells than the server has (`models.max_cells`): \
                 ask for a smaller width or fewer tokens ({detail})"
            ),
        )
    }

    pub fn timeout(seconds: f64) -> ApiError {
        ApiError {
            status: StatusCode::GATEWAY_TIMEOUT,
            kind: "timeout_error",
            message: format!("the request ran past the server's timeout of {seconds} s"),
            param: None,
            retry_after: None,
        }
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "server_error",
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    /// The body, as sent in a response or a stream's error event.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                message: self.message.clone(),
                kind: self.kind,
                param: self.param.clone(),
                code: self.status.as_u16(),
            },
        }
    }
}

/// `{"error": {…}}`.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorDetail {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: u16,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
