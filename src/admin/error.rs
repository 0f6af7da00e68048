//! The admin API's one error type. Each error knows its HTTP status and a one-line reason,
//! and is answered as `{"status":"error","reason":...}`; the conversions from the store's,
//! the replay's and the login's errors live here, so handlers just use `?`.

use super::session::LoginError;
use crate::store::{ReplayError, StoreError};
use http::{HeaderValue, StatusCode};
use warp::Reply;

/// An API error: the status and a one-line reason.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub reason: String,
    /// Seconds the client should wait before trying again (sent as `Retry-After`).
    pub retry_after_secs: Option<u64>,
    /// The request is refused only until it is repeated with `confirm=true` (answered as
    /// `"needs_confirm": true`, so the UI knows to ask).
    pub needs_confirm: bool,
}

impl ApiError {
    /// An error with `status` and `reason`.
    pub fn new(status: StatusCode, reason: impl Into<String>) -> ApiError {
        ApiError {
            status,
            reason: reason.into(),
            retry_after_secs: None,
            needs_confirm: false,
        }
    }

    /// 409: done only when repeated with `confirm=true`, for the `reason` given.
    pub fn needs_confirm(reason: impl Into<String>) -> ApiError {
        ApiError {
            needs_confirm: true,
            ..ApiError::new(StatusCode::CONFLICT, reason)
        }
    }

    /// 404: `no such {what}`.
    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, format!("no such {what}"))
    }

    /// 400 with `reason`.
    pub fn bad_request(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, reason)
    }

    /// 405: the path exists, but not for this method.
    pub fn method_not_allowed() -> ApiError {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
    }

    /// The JSON answer.
    pub fn into_response(self) -> warp::reply::Response {
        let mut body = serde_json::json!({ "status": "error", "reason": self.reason });
        if self.needs_confirm {
            body["needs_confirm"] = true.into();
        }
        let mut response =
            warp::reply::with_status(warp::reply::json(&body), self.status).into_response();
        if let Some(wait) = self.retry_after_secs {
            if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
                response.headers_mut().insert(http::header::RETRY_AFTER, v);
            }
        }
        response
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.reason)
    }
}

impl std::error::Error for ApiError {}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        tracing::error!(error = %e, "admin API storage error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage error; see the log",
        )
    }
}

impl From<ReplayError> for ApiError {
    fn from(e: ReplayError) -> ApiError {
        match e {
            ReplayError::NotFound => ApiError::not_found("event"),
            ReplayError::NotFinished(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            ReplayError::Store(e) => e.into(),
        }
    }
}

impl From<LoginError> for ApiError {
    fn from(e: LoginError) -> ApiError {
        match e {
            LoginError::WrongPassword => ApiError::new(StatusCode::UNAUTHORIZED, "wrong password"),
            LoginError::Limited(wait) => ApiError {
                retry_after_secs: Some(wait),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("too many failed logins; try again in {wait} s"),
                )
            },
            LoginError::NoPassword => ApiError::new(
                StatusCode::NOT_FOUND,
                "password login is not enabled (set admin.password_hash)",
            ),
            LoginError::Store(e) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the session cannot be stored: {e}"),
            ),
        }
    }
}
