//! The API's errors and limits: a status and a JSON body `{"error": …}`.

use axum::http::header::{self, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cryptoflow_operators::model::Millis;
use serde_json::json;

/// The largest request body accepted (the API only reads).
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// The longest request target accepted.
pub const MAX_URI_BYTES: usize = 2 * 1024;
/// The most rows one request returns.
pub const MAX_LIMIT: usize = 1_000;

/// An API error: a status and a JSON body `{"error": …}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    pub(crate) retry_after: Option<u64>,
}

impl ApiError {
    /// 400: a parameter is wrong.
    pub fn bad(param: &str, why: impl std::fmt::Display) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: format!("bad parameter `{param}`: {why}"),
            retry_after: None,
        }
    }

    /// 503: the store did not answer.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
            retry_after: Some(1),
        }
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Any status.
    pub fn status(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(json!({ "error": self.message }))).into_response();
        if let Some(s) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        r
    }
}

/// The latest time accepted, ms (the year 3000).
pub const MAX_TIME_MS: Millis = 32_503_680_000_000;
