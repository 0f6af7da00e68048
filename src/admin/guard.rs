//! Who may use the admin listener: the bearer token, a live session, or nobody in particular
//! on an open loopback listener; the CSRF check on state-changing requests; the loopback
//! host check that keeps DNS-rebinding pages out; and the metrics scraper's token.

use super::auth::same_secret;
use super::session::SessionState;
use super::{Admin, ApiError, Request};
use crate::clock;
use http::StatusCode;

/// Who is making an API request.
pub enum Caller {
    /// A script with the bearer token: no cookie, so no CSRF exposure.
    Token,
    /// A browser with a live session.
    Session { csrf: String },
    /// Nobody in particular: no credential is configured (loopback only).
    Open,
}

fn unauthorized(reason: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, reason)
}

/// Whether the `Host` header names this machine. Checked when no credential is configured,
/// so that a web page whose domain was re-pointed at 127.0.0.1 is refused.
pub fn loopback_host(host: Option<&str>) -> bool {
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

/// The bearer token the request carries, if any.
fn bearer(req: &Request) -> Option<&str> {
    req.header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
}

/// Who the caller is, or why they may not use the API.
pub fn authenticate(admin: &Admin, req: &Request) -> Result<Caller, ApiError> {
    let creds = &admin.config.admin;
    if let Some(given) = bearer(req) {
        match &creds.token {
            Some(token) if same_secret(given.as_bytes(), token.as_bytes()) => {
                return Ok(Caller::Token)
            }
            Some(_) => return Err(unauthorized("missing or wrong bearer token")),
            None if !creds.has_credential() => {} // open listener: the header means nothing
            None => {
                return Err(unauthorized(
                    "bearer tokens are not enabled; log in with the password",
                ))
            }
        }
    }
    match admin.auth.session(req.header("cookie"), clock::now_ms()) {
        SessionState::Live { csrf } => return Ok(Caller::Session { csrf }),
        SessionState::Expired if creds.has_credential() => {
            return Err(unauthorized("session expired; log in again"))
        }
        _ => {}
    }
    if creds.has_credential() {
        return Err(unauthorized(if creds.token.is_some() {
            "missing or wrong bearer token"
        } else {
            "not logged in"
        }));
    }
    Ok(Caller::Open)
}

/// Refuses a state-changing request that could have been forged by another site.
pub fn check_csrf(admin: &Admin, caller: &Caller, req: &Request) -> Result<(), ApiError> {
    if !req.changes_state() {
        return Ok(());
    }
    let given = req.header("x-csrf-token").unwrap_or("").as_bytes();
    let allowed = match caller {
        Caller::Token => true,
        Caller::Session { csrf } => same_secret(given, csrf.as_bytes()),
        Caller::Open => {
            // Scripts (curl) send neither header; a browser page on another site sends both.
            let cross_site = req.header("origin").is_some()
                || req
                    .header("sec-fetch-site")
                    .is_some_and(|s| s != "same-origin" && s != "none");
            same_secret(given, admin.auth.open_csrf().as_bytes()) || !cross_site
        }
    };
    if allowed {
        return Ok(());
    }
    tracing::warn!(path = %req.path, "state-changing admin request without a valid CSRF token");
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "missing or wrong CSRF token",
    ))
}

/// Opens `/metrics`: `admin.metrics_token` (a scraper that may see nothing else), or whatever
/// opens the API.
pub fn metrics_access(admin: &Admin, req: &Request) -> Result<(), ApiError> {
    let scraper = admin
        .config
        .admin
        .metrics_token
        .as_deref()
        .is_some_and(|t| {
            bearer(req).is_some_and(|given| same_secret(given.as_bytes(), t.as_bytes()))
        });
    if scraper {
        return Ok(());
    }
    authenticate(admin, req).map(|_| ())
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
