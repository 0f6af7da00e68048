//! Web UI sessions: the live sessions, the failed-login rate limit, the session cookie, and
//! the `/api/session`, `/api/login` and `/api/logout` answers.
//!
//! The store keeps the sessions (in memory on one machine: a restart logs everyone out,
//! which is the safe direction; in the database in cluster mode). The session id travels in an HttpOnly, SameSite=Strict cookie; each session has its own
//! CSRF token that the UI reads from `/api/session` and sends back in `X-CSRF-Token`, so a
//! page on another origin can neither read it nor forge a replay.

use super::auth::{new_token, verify_password};
use super::guard::{self, Caller};
use super::{Admin, ApiError, Request};
use crate::clock;
use crate::config::Config;
use crate::store::Store;
use http::{HeaderValue, StatusCode};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use warp::Reply;

/// Name of the session cookie.
pub const COOKIE: &str = "hookd_session";
/// Failed logins allowed per client address per window before it must wait.
const FAILED_LOGINS_PER_WINDOW: u32 = 5;
const FAILED_LOGIN_WINDOW_MS: u64 = 60_000;
/// Password checks running at once: each takes ~19 MiB and tens of ms of CPU (argon2), so a
/// flood of logins waits here instead of exhausting memory.
const CONCURRENT_VERIFICATIONS: usize = 2;
/// What a request's session cookie amounts to.
pub enum SessionState {
    /// No cookie was sent.
    None,
    /// A cookie for no live session (expired, logged out, or from before a restart).
    Expired,
    /// A live session, with its CSRF token.
    Live { csrf: String },
}

/// Sessions (kept by the store) and the failed-login counters.
pub struct Auth {
    store: Arc<Store>,
    failures: Mutex<HashMap<IpAddr, (u64, u32)>>,
    /// CSRF token for the UI when no credential is configured (loopback only).
    open_csrf: String,
    ttl_ms: u64,
    verifying: tokio::sync::Semaphore,
}

/// Why a login failed.
pub enum LoginError {
    /// Too many failures from this address lately; wait this many seconds.
    Limited(u64),
    /// The password did not match.
    WrongPassword,
    /// No `admin.password_hash` is configured.
    NoPassword,
    /// The session could not be stored (cluster mode: the database failed).
    Store(String),
}

impl Auth {
    /// Sessions that last `ttl_secs`.
    pub fn new(ttl_secs: u64, store: &Arc<Store>) -> Auth {
        Auth {
            store: store.clone(),
            failures: Mutex::new(HashMap::new()),
            open_csrf: new_token(),
            ttl_ms: ttl_secs.saturating_mul(1000),
            verifying: tokio::sync::Semaphore::new(CONCURRENT_VERIFICATIONS),
        }
    }

    /// The CSRF token the UI uses when the listener is open (no credential configured).
    pub fn open_csrf(&self) -> &str {
        &self.open_csrf
    }

    /// The state of the session named by `cookie_header` (the whole `Cookie:` value).
    pub fn session(&self, cookie_header: Option<&str>, now_ms: u64) -> SessionState {
        let Some(id) = cookie_header.and_then(cookie_value) else {
            return SessionState::None;
        };
        match self.store.session(id, now_ms) {
            Ok(Some(csrf)) => SessionState::Live { csrf },
            Ok(None) => SessionState::Expired,
            Err(e) => {
                // Not logged in while the store cannot say: the safe answer.
                tracing::warn!(error = %e, "cannot read the session from the store");
                SessionState::Expired
            }
        }
    }

    /// Ends the session named by the cookie, if any.
    pub fn logout(&self, cookie_header: Option<&str>) {
        if let Some(id) = cookie_header.and_then(cookie_value) {
            if let Err(e) = self.store.remove_session(id) {
                tracing::warn!(error = %e, "cannot remove the session from the store");
            }
        }
    }

    /// Checks a password (slow on purpose: argon2) and opens a session: `(session id, csrf)`.
    pub async fn login(
        &self,
        config: &Config,
        ip: Option<IpAddr>,
        password: String,
        now_ms: u64,
    ) -> Result<(String, String), LoginError> {
        let Some(hash) = config.admin.password_hash.clone() else {
            return Err(LoginError::NoPassword);
        };
        // Checked once a permit is held, so logins queued behind a burst of failures from the
        // same address see those failures. The attempt counts as a failure until it succeeds,
        // so checks running side by side cannot together exceed the limit.
        let Ok(_permit) = self.verifying.acquire().await else {
            return Err(LoginError::WrongPassword); // the semaphore is never closed
        };
        if let Some(wait) = self.begin_attempt(ip, now_ms) {
            return Err(LoginError::Limited(wait));
        }
        let ok = tokio::task::spawn_blocking(move || verify_password(&hash, &password))
            .await
            .unwrap_or(false);
        if !ok {
            return Err(LoginError::WrongPassword);
        }
        self.forgive(ip);
        let id = new_token();
        let csrf = new_token();
        let expires = now_ms.saturating_add(self.ttl_ms);
        match self.store.put_session(&id, &csrf, expires) {
            Ok(()) => Ok((id, csrf)),
            Err(e) => Err(LoginError::Store(e.to_string())),
        }
    }

    /// Counts an attempt from `ip`, or returns the seconds to wait when it failed too often in
    /// the current window.
    fn begin_attempt(&self, ip: Option<IpAddr>, now_ms: u64) -> Option<u64> {
        let ip = ip?;
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.retain(|_, (start, _)| start.saturating_add(FAILED_LOGIN_WINDOW_MS) > now_ms);
        let entry = failures.entry(ip).or_insert((now_ms, 0));
        if entry.1 >= FAILED_LOGINS_PER_WINDOW {
            let ends = entry.0 + FAILED_LOGIN_WINDOW_MS;
            return Some(ends.saturating_sub(now_ms).div_ceil(1000).max(1));
        }
        entry.1 += 1;
        None
    }

    /// Takes back the failure counted for a check that succeeded.
    fn forgive(&self, ip: Option<IpAddr>) {
        let Some(ip) = ip else { return };
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = failures.get_mut(&ip) {
            entry.1 = entry.1.saturating_sub(1);
        }
    }

    /// The `Set-Cookie` value for a new session.
    pub fn set_cookie(&self, id: &str, secure: bool) -> String {
        format!(
            "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
            self.ttl_ms / 1000,
            if secure { "; Secure" } else { "" }
        )
    }
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The session id in a `Cookie:` header.
fn cookie_value(header: &str) -> Option<&str> {
    header.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE && !value.is_empty()).then_some(value)
    })
}

/// What the UI needs to know before it shows anything: must it log in, and its CSRF token.
pub fn info(admin: &Admin, req: &Request) -> serde_json::Value {
    let creds = &admin.config.admin;
    let (authenticated, csrf) = match admin.auth.session(req.header("cookie"), clock::now_ms()) {
        SessionState::Live { csrf } => (true, Some(csrf)),
        _ if !creds.has_credential() => (true, Some(admin.auth.open_csrf().to_owned())),
        _ => (false, None),
    };
    serde_json::json!({
        "authenticated": authenticated,
        "csrf_token": csrf,
        "password_login": creds.password_hash.is_some(),
    })
}

/// Ends the caller's session (its CSRF token required) and clears the cookie.
pub fn logout(admin: &Admin, req: &Request) -> Result<warp::reply::Response, ApiError> {
    if let SessionState::Live { csrf } = admin.auth.session(req.header("cookie"), clock::now_ms()) {
        guard::check_csrf(admin, &Caller::Session { csrf }, req)?;
        admin.auth.logout(req.header("cookie"));
    }
    let mut response =
        warp::reply::json(&serde_json::json!({ "status": "logged out" })).into_response();
    if let Ok(v) = HeaderValue::from_str(&clear_cookie(req.secure())) {
        response.headers_mut().insert(http::header::SET_COOKIE, v);
    }
    Ok(response)
}

#[derive(serde::Deserialize)]
struct LoginForm {
    password: String,
}

/// Checks the password in a `{"password": ...}` body and opens a session.
pub async fn login(admin: &Admin, req: &Request) -> Result<warp::reply::Response, ApiError> {
    // No body means it was too large (or of unknown length) to read.
    let Some(body) = &req.body else {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "send {\"password\": \"...\"} as JSON, under 4 KiB",
        ));
    };
    let Ok(form) = serde_json::from_slice::<LoginForm>(body) else {
        return Err(ApiError::bad_request(
            "send {\"password\": \"...\"} as JSON",
        ));
    };
    let ip = req.remote.map(|a| a.ip());
    // The address as logged: plain, or "unknown" (not `Some(..)`).
    let remote = ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    let (id, csrf) = match admin
        .auth
        .login(&admin.config, ip, form.password, clock::now_ms())
        .await
    {
        Ok(session) => session,
        Err(e) => {
            match e {
                LoginError::WrongPassword => {
                    tracing::warn!(%remote, "failed admin login: wrong password")
                }
                LoginError::Limited(_) => {
                    tracing::warn!(%remote, "failed admin login: too many attempts, refused")
                }
                LoginError::Store(ref why) => {
                    tracing::error!(%remote, error = %why, "admin login: the session cannot be stored")
                }
                LoginError::NoPassword => {}
            }
            return Err(e.into());
        }
    };
    tracing::info!(%remote, "admin login");
    let mut response =
        warp::reply::json(&serde_json::json!({ "status": "logged in", "csrf_token": csrf }))
            .into_response();
    if let Ok(v) = HeaderValue::from_str(&admin.auth.set_cookie(&id, req.secure())) {
        response.headers_mut().insert(http::header::SET_COOKIE, v);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        assert_eq!(cookie_value("a=1; hookd_session=xyz; b=2"), Some("xyz"));
        assert_eq!(cookie_value("hookd_session="), None);
        assert_eq!(cookie_value("other=1"), None);
    }
}
