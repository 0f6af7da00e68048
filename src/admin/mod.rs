//! The admin listener: the JSON API over the delivery log and the queue, the built-in web UI
//! (assets from `web/`, embedded in the binary), and `/healthz`.
//!
//! It shows health data, so it is never open off loopback without a credential: config
//! validation refuses a non-loopback `admin_listen` without `admin.token` or
//! `admin.password_hash`. With a credential configured every `/api` request needs a bearer
//! token or a live session cookie, and every state-changing request made with a cookie needs
//! the session's CSRF token. Without one, only requests naming a loopback host are served
//! (so a DNS-rebinding page cannot reach it) and cross-site browser writes are refused.

mod api;
pub mod auth;
mod backup;
mod fasten;
mod ui;

use crate::clock;
use crate::config::Config;
use crate::store::{HourCounts, Store};
use auth::{Auth, LoginError, SessionState};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use warp::Filter;
use warp::Reply;

/// Shared state of the admin routes.
pub struct Admin {
    pub config: Arc<Config>,
    pub store: Arc<Store>,
    /// The retention pruner, for its status in /api/stats.
    pub pruner: Arc<crate::prune::Pruner>,
    /// Sessions and login limits.
    pub auth: Auth,
    /// Deliveries per finished hour, by verdict: finished hours never change, so the chart
    /// counts each hour's index keys once.
    chart: Mutex<HashMap<u64, HourCounts>>,
    /// The data directory's size and when it was measured: walking a directory with many
    /// exports on every poll of /api/stats would be repeated I/O for a slow-moving figure.
    dir_size: Mutex<Option<(std::time::Instant, u64)>>,
}

impl Admin {
    /// The admin state for `config` over `store`.
    pub fn new(config: Arc<Config>, store: Arc<Store>, pruner: Arc<crate::prune::Pruner>) -> Admin {
        Admin {
            auth: Auth::new(config.admin.session_ttl_secs),
            config,
            store,
            pruner,
            chart: Mutex::new(HashMap::new()),
            dir_size: Mutex::new(None),
        }
    }
}

impl Admin {
    /// The data directory's size in bytes, measured at most every 30 s.
    pub fn data_dir_bytes(&self) -> u64 {
        let mut cached = self.dir_size.lock().unwrap_or_else(|e| e.into_inner());
        match *cached {
            Some((at, bytes)) if at.elapsed() < std::time::Duration::from_secs(30) => bytes,
            _ => {
                let bytes = crate::store::backup::dir_size(&self.config.data_dir);
                *cached = Some((std::time::Instant::now(), bytes));
                bytes
            }
        }
    }
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

/// Who is making an API request.
enum Caller {
    /// A script with the bearer token: no cookie, so no CSRF exposure.
    Token,
    /// A browser with a live session.
    Session { csrf: String },
    /// Nobody in particular: no credential is configured (loopback only).
    Open,
}

/// The parts of a request the admin listener looks at.
struct Request {
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    remote: Option<SocketAddr>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether the browser reached us over HTTPS (a proxy in front says so).
    fn secure(&self) -> bool {
        self.header("x-forwarded-proto")
            .is_some_and(|p| p.eq_ignore_ascii_case("https"))
    }

    fn changes_state(&self) -> bool {
        !matches!(self.method, Method::GET | Method::HEAD)
    }
}

fn error(status: StatusCode, reason: &str) -> warp::reply::Response {
    ApiError::new(status, reason).into_response()
}

/// Whether the `Host` header names this machine. Checked when no credential is configured,
/// so that a web page whose domain was re-pointed at 127.0.0.1 is refused.
fn loopback_host(host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn authenticate(admin: &Admin, req: &Request) -> Result<Caller, ApiError> {
    let creds = &admin.config.admin;
    if let Some(given) = req
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
    {
        match &creds.token {
            Some(token) if auth::same_secret(given.trim().as_bytes(), token.as_bytes()) => {
                return Ok(Caller::Token)
            }
            Some(_) => {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "missing or wrong bearer token",
                ))
            }
            None if !creds.has_credential() => {} // open listener: the header means nothing
            None => {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "bearer tokens are not enabled; log in with the password",
                ))
            }
        }
    }
    match admin.auth.session(req.header("cookie"), clock::system_ms()) {
        SessionState::Live { csrf } => return Ok(Caller::Session { csrf }),
        SessionState::Expired if creds.has_credential() => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "session expired; log in again",
            ))
        }
        _ => {}
    }
    if creds.has_credential() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            if creds.token.is_some() {
                "missing or wrong bearer token"
            } else {
                "not logged in"
            },
        ));
    }
    Ok(Caller::Open)
}

/// Refuses a state-changing request that could have been forged by another site.
fn check_csrf(admin: &Admin, caller: &Caller, req: &Request) -> Result<(), ApiError> {
    if !req.changes_state() {
        return Ok(());
    }
    let given = req.header("x-csrf-token").unwrap_or("");
    let refused = || {
        tracing::warn!(path = %req.path, "state-changing admin request without a valid CSRF token");
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token",
        ))
    };
    match caller {
        Caller::Token => Ok(()),
        Caller::Session { csrf } => {
            if auth::same_secret(given.as_bytes(), csrf.as_bytes()) {
                Ok(())
            } else {
                refused()
            }
        }
        Caller::Open => {
            if auth::same_secret(given.as_bytes(), admin.auth.open_csrf().as_bytes()) {
                return Ok(());
            }
            // Scripts (curl) send neither header; a browser page on another site sends both.
            let cross_site = req.header("origin").is_some()
                || req
                    .header("sec-fetch-site")
                    .is_some_and(|s| s != "same-origin" && s != "none");
            if cross_site {
                refused()
            } else {
                Ok(())
            }
        }
    }
}

async fn dispatch(admin: Arc<Admin>, req: Request) -> warp::reply::Response {
    if req.path == "/healthz" {
        // Unhealthy while the store cannot take writes: what systemd and load balancers act on.
        return match admin.store.health() {
            Ok(()) => warp::reply::json(&serde_json::json!({ "status": "ok" })).into_response(),
            Err(reason) => warp::reply::with_status(
                warp::reply::json(
                    &serde_json::json!({ "status": "unavailable", "reason": reason }),
                ),
                StatusCode::SERVICE_UNAVAILABLE,
            )
            .into_response(),
        };
    }
    if !admin.config.admin.has_credential() && !loopback_host(req.header("host")) {
        return error(
            StatusCode::FORBIDDEN,
            "without a configured credential the admin listener only answers to a loopback host name",
        );
    }
    if req.path == "/metrics" {
        return metrics(&admin, &req);
    }
    let Some(api_path) = req.path.strip_prefix("/api/") else {
        return ui::asset(&req.method, &req.path);
    };
    match (req.method.as_str(), api_path) {
        ("GET", "session") => return session_info(&admin, &req),
        ("POST", "logout") => return logout(&admin, &req),
        // The login route proper only refuses bodies that are not a small JSON object.
        ("POST", "login") => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "send {\"password\": \"...\"} as JSON, under 4 KiB",
            )
        }
        _ => {}
    }
    let caller = match authenticate(&admin, &req) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = check_csrf(&admin, &caller, &req) {
        return e.into_response();
    }
    if api_path.trim_matches('/') == "backup" {
        return match backup::handle(&admin, &req.method, &req.query).await {
            Ok(reply) => reply,
            Err(e) => e.into_response(),
        };
    }
    let call = api::Call {
        method: &req.method,
        path: api_path,
        query: &req.query,
        if_none_match: req.header("if-none-match"),
    };
    match api::handle(&admin, &call) {
        Ok(reply) => reply,
        Err(e) => e.into_response(),
    }
}

/// Prometheus text. Opened by `admin.metrics_token` (a scraper that may see nothing else) or
/// by whatever opens the API.
fn metrics(admin: &Admin, req: &Request) -> warp::reply::Response {
    let scraper = admin
        .config
        .admin
        .metrics_token
        .as_deref()
        .is_some_and(|t| {
            req.header("authorization")
                .and_then(|h| h.strip_prefix("Bearer "))
                .is_some_and(|given| auth::same_secret(given.trim().as_bytes(), t.as_bytes()))
        });
    if !scraper {
        if let Err(e) = authenticate(admin, req) {
            return e.into_response();
        }
    }
    let text = crate::telemetry::render(&admin.store, clock::now_ms());
    warp::reply::with_header(text, "content-type", "text/plain; version=0.0.4").into_response()
}

/// What the UI needs to know before it shows anything: must it log in, and its CSRF token.
fn session_info(admin: &Admin, req: &Request) -> warp::reply::Response {
    let creds = &admin.config.admin;
    let (authenticated, csrf) = match admin.auth.session(req.header("cookie"), clock::system_ms()) {
        SessionState::Live { csrf } => (true, Some(csrf)),
        _ if !creds.has_credential() => (true, Some(admin.auth.open_csrf().to_owned())),
        _ => (false, None),
    };
    warp::reply::json(&serde_json::json!({
        "authenticated": authenticated,
        "csrf_token": csrf,
        "password_login": creds.password_hash.is_some(),
    }))
    .into_response()
}

fn logout(admin: &Admin, req: &Request) -> warp::reply::Response {
    if let SessionState::Live { csrf } =
        admin.auth.session(req.header("cookie"), clock::system_ms())
    {
        if let Err(e) = check_csrf(admin, &Caller::Session { csrf }, req) {
            return e.into_response();
        }
        admin.auth.logout(req.header("cookie"));
    }
    let mut response =
        warp::reply::json(&serde_json::json!({ "status": "logged out" })).into_response();
    if let Ok(v) = HeaderValue::from_str(&auth::clear_cookie(req.secure())) {
        response.headers_mut().insert(http::header::SET_COOKIE, v);
    }
    response
}

#[derive(serde::Deserialize)]
struct LoginForm {
    password: String,
}

async fn login(admin: Arc<Admin>, req: Request, body: bytes::Bytes) -> warp::reply::Response {
    if !admin.config.admin.has_credential() && !loopback_host(req.header("host")) {
        return error(StatusCode::FORBIDDEN, "not a loopback host name");
    }
    let Ok(form) = serde_json::from_slice::<LoginForm>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "send {\"password\": \"...\"} as JSON",
        );
    };
    let ip = req.remote.map(|a| a.ip());
    match admin
        .auth
        .login(&admin.config, ip, form.password, clock::system_ms())
        .await
    {
        Ok((id, csrf)) => {
            tracing::info!(remote = ?ip, "admin login");
            let mut response = warp::reply::json(
                &serde_json::json!({ "status": "logged in", "csrf_token": csrf }),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&admin.auth.set_cookie(&id, req.secure())) {
                response.headers_mut().insert(http::header::SET_COOKIE, v);
            }
            response
        }
        Err(LoginError::WrongPassword) => {
            tracing::warn!(remote = ?ip, "failed admin login: wrong password");
            error(StatusCode::UNAUTHORIZED, "wrong password")
        }
        Err(LoginError::Limited(wait)) => {
            tracing::warn!(remote = ?ip, "failed admin login: too many attempts, refused");
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("too many failed logins; try again in {wait} s"),
            );
            if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
                r.headers_mut().insert(http::header::RETRY_AFTER, v);
            }
            r
        }
        Err(LoginError::NoPassword) => error(
            StatusCode::NOT_FOUND,
            "password login is not enabled (set admin.password_hash)",
        ),
    }
}

/// Headers every admin answer carries: a strict CSP (no inline script, same-origin only),
/// no framing, no sniffing, no referrer, and no caching of API data.
fn harden(mut response: warp::reply::Response, api: bool) -> warp::reply::Response {
    let h = response.headers_mut();
    h.insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        http::header::X_FRAME_OPTIONS,
        HeaderValue::from_static("DENY"),
    );
    h.insert(
        http::header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if api {
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
    }
    response
}

fn request_parts() -> impl Filter<Extract = (Request,), Error = Infallible> + Clone {
    warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::addr::remote())
        .map(
            |method, path: warp::path::FullPath, query, headers, remote| Request {
                method,
                path: path.as_str().to_owned(),
                query,
                headers,
                remote,
            },
        )
}

/// The admin routes.
pub fn routes(
    admin: Arc<Admin>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Infallible> + Clone {
    let state = warp::any().map(move || admin.clone());
    let login = warp::path!("api" / "login")
        .and(warp::post())
        .and(state.clone())
        .and(request_parts())
        .and(warp::body::content_length_limit(4096))
        .and(warp::body::bytes())
        .then(login);
    let rest = state
        .and(request_parts())
        .then(|admin: Arc<Admin>, req: Request| dispatch(admin, req));
    login
        .or(rest)
        .unify()
        .and(warp::path::full())
        .map(|r, path: warp::path::FullPath| harden(r, path.as_str().starts_with("/api/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_host_names() {
        assert!(loopback_host(Some("127.0.0.1:8081")));
        assert!(loopback_host(Some("localhost:8081")));
        assert!(loopback_host(Some("[::1]:8081")));
        assert!(loopback_host(Some("localhost")));
        assert!(!loopback_host(Some("evil.example:8081")));
        assert!(!loopback_host(Some("10.0.0.1:8081")));
        assert!(!loopback_host(None));
    }
}
