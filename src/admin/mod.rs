//! The admin listener: the JSON API over the delivery log and the queue, and `/healthz`.
//!
//! It shows health data, so it is never open off loopback without a credential: config
//! validation refuses a non-loopback `admin_listen` without `admin.token`, and when a token
//! is configured every `/api` request must carry it (`Authorization: Bearer ...`), loopback
//! or not.

mod api;
mod backup;
mod fasten;

use crate::config::Config;
use crate::store::Store;
use http::StatusCode;
use std::convert::Infallible;
use std::sync::Arc;
use warp::Filter;

/// Shared state of the admin routes.
pub struct Admin {
    pub config: Arc<Config>,
    pub store: Arc<Store>,
    pub pruner: Arc<crate::prune::Pruner>,
}

/// An API error: the status and a one-line reason, answered as `{"status":"error","reason":...}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub reason: String,
}

impl ApiError {
    pub fn new(status: StatusCode, reason: impl Into<String>) -> ApiError {
        ApiError {
            status,
            reason: reason.into(),
        }
    }

    fn into_response(self) -> warp::reply::Response {
        let body = serde_json::json!({ "status": "error", "reason": self.reason });
        warp::reply::with_status(warp::reply::json(&body), self.status).into_response()
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        tracing::error!(error = %e, "admin API storage error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage error; see the log",
        )
    }
}

use warp::Reply;

/// Compares without an early exit, so a token cannot be guessed byte by byte from timing.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorized(config: &Config, header: Option<&str>) -> bool {
    match &config.admin.token {
        None => true, // only possible on loopback, see config::Config::check_admin
        Some(token) => header
            .and_then(|h| h.strip_prefix("Bearer "))
            .is_some_and(|given| same_secret(given.trim().as_bytes(), token.as_bytes())),
    }
}

/// The admin routes.
pub fn routes(
    admin: Arc<Admin>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Infallible> + Clone {
    let state = warp::any().map(move || admin.clone());
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::json(&serde_json::json!({ "status": "ok" })).into_response());
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(state.clone())
        .and(warp::header::optional::<String>("authorization"))
        .map(|admin: Arc<Admin>, auth: Option<String>| {
            let scraper = admin
                .config
                .admin
                .metrics_token
                .as_deref()
                .is_some_and(|t| {
                    auth.as_deref()
                        .and_then(|h| h.strip_prefix("Bearer "))
                        .is_some_and(|given| same_secret(given.trim().as_bytes(), t.as_bytes()))
                });
            if !scraper && !authorized(&admin.config, auth.as_deref()) {
                return ApiError::new(StatusCode::UNAUTHORIZED, "missing or wrong bearer token")
                    .into_response();
            }
            let text = crate::telemetry::render(&admin.store, crate::clock::now_ms());
            warp::reply::with_header(text, "content-type", "text/plain; version=0.0.4")
                .into_response()
        });
    let api = warp::path("api")
        .and(state.clone())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::method())
        .and(warp::path::tail())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .then(
            |admin: Arc<Admin>,
             auth: Option<String>,
             method,
             tail: warp::path::Tail,
             query: String| async move {
                if !authorized(&admin.config, auth.as_deref()) {
                    return ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "missing or wrong bearer token",
                    )
                    .into_response();
                }
                if tail.as_str().trim_matches('/') == "backup" {
                    return match backup::handle(&admin, &method, &query).await {
                        Ok(reply) => reply,
                        Err(e) => e.into_response(),
                    };
                }
                match api::handle(&admin, &method, tail.as_str(), &query) {
                    Ok(reply) => reply,
                    Err(e) => e.into_response(),
                }
            },
        );
    healthz
        .or(metrics)
        .unify()
        .or(api)
        .unify()
        .recover(crate::receive::json_rejection)
        .unify()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }
}
