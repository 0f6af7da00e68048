//! Who may use the admin listener: the bearer token, a live session, or nobody in particular
//! on an open loopback listener; the same-origin JSON and CSRF checks on state-changing
//! requests; the loopback host check that keeps DNS-rebinding pages out; and the metrics
//! scraper's token.

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

/// Whether the request carries `admin.export_token`: a caller that may read connections,
/// exports, their files and resources, and nothing else (see `routes`).
pub fn export_reader(admin: &Admin, req: &Request) -> bool {
    admin.config.admin.export_token.as_deref().is_some_and(|t| {
        bearer(req).is_some_and(|given| same_secret(given.as_bytes(), t.as_bytes()))
    })
}

/// The refusal of anything the export token does not open.
pub fn export_token_refused() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "the export token reads connections, exports, export files and resources only",
    )
}

/// The bearer token the request carries, if any. The scheme's name is case-insensitive
/// (RFC 9110, 11.1): `bearer` works as `Bearer` does.
fn bearer(req: &Request) -> Option<&str> {
    let (scheme, token) = req.header("authorization")?.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
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
        } else if req.header("sec-fetch-site").is_some() {
            // A browser (it sends Sec-Fetch-Site on every request): the web UI shows its
            // login form with this.
            "not logged in"
        } else {
            // Only a password is set: a script, `hookd backup` among them, needs a token.
            "not logged in: log in with the password (scripts need admin.token set, sent as a bearer token)"
        }));
    }
    Ok(Caller::Open)
}

/// Refuses a state-changing request (login and logout included, where `caller` is `None`)
/// that a page on another site could have made: it must be JSON and come from this origin.
///
/// A page can make a browser send a cross-site `text/plain` or form POST without asking,
/// cookies attached; `application/json` needs a CORS preflight, which hookd never grants.
/// The origin comes from `Sec-Fetch-Site` (set by the browser, no page can forge it) or
/// else `Origin`, which every current browser sends on a POST.
///
/// A request with the bearer token is exempt: a browser attaches no token by itself, and a
/// page cannot add an `Authorization` header without a preflight, so such a request is a
/// script's, and scripts send no `Origin`. A cookie never stands in for one: a request that
/// names no origin is refused when it carries a session. On an open loopback listener (no
/// credential) a request naming no origin is a script on this machine and passes, as it
/// could do anything anyway; it still has to be JSON, which no page can send it unasked.
pub fn check_browser_write(caller: Option<&Caller>, req: &Request) -> Result<(), ApiError> {
    if !req.changes_state() || matches!(caller, Some(Caller::Token)) {
        return Ok(());
    }
    let origin = match req.header("sec-fetch-site") {
        Some(site) => Some(site.eq_ignore_ascii_case("same-origin")),
        None => req.header("origin").map(|o| same_origin(o, req)),
    };
    let refused = match origin {
        Some(same) => !same,
        None => !matches!(caller, Some(Caller::Open)),
    };
    if refused {
        tracing::warn!(path = %req.path, "cross-site or origin-less admin write refused");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            if origin.is_none() {
                "a state-changing request must name its origin (Origin or Sec-Fetch-Site); scripts use the bearer token"
            } else {
                "cross-site request refused: state-changing requests come from the hookd UI's own origin"
            },
        ));
    }
    if !is_json(req.header("content-type")) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send state-changing requests as JSON (Content-Type: application/json)",
        ));
    }
    Ok(())
}

/// Whether a `Content-Type` is `application/json` (parameters such as charset allowed).
fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// Whether `origin` (`scheme://host[:port]`) names the host the request was sent to: its
/// `Host`, or the `X-Forwarded-Host` of a proxy in front (a page cannot set either on a
/// cross-site request without a preflight).
fn same_origin(origin: &str, req: &Request) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false; // "null", from a sandboxed frame or a file
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return false,
    };
    let bare = |a: &str| {
        let a = a.trim().to_ascii_lowercase();
        a.strip_suffix(default_port).map(str::to_owned).unwrap_or(a)
    };
    let origin = bare(authority);
    let forwarded = req
        .header("x-forwarded-host")
        .and_then(|h| h.split(',').next());
    [req.header("host"), forwarded]
        .into_iter()
        .flatten()
        .any(|host| bare(host) == origin)
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

/// Whether the request carries `admin.metrics_token`: a scraper that may read `/metrics`
/// and nothing else.
pub fn metrics_scraper(admin: &Admin, req: &Request) -> bool {
    admin
        .config
        .admin
        .metrics_token
        .as_deref()
        .is_some_and(|t| {
            bearer(req).is_some_and(|given| same_secret(given.as_bytes(), t.as_bytes()))
        })
}

/// Whether the request carries the metrics token and no more: not also the API token (an
/// operator may give both the same value).
pub fn metrics_only(admin: &Admin, req: &Request) -> bool {
    let token = admin.config.admin.token.as_deref();
    metrics_scraper(admin, req)
        && !token.is_some_and(|t| {
            bearer(req).is_some_and(|given| same_secret(given.as_bytes(), t.as_bytes()))
        })
}

/// The refusal of anything but `/metrics` to the metrics token: 403, since the caller is
/// known and only not allowed (a 401 would send it looking for a credential that works).
pub fn metrics_token_refused() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "the metrics token opens /metrics only",
    )
}

/// Opens `/metrics`: `admin.metrics_token` (a scraper that may see nothing else), or whatever
/// opens the API.
pub fn metrics_access(admin: &Admin, req: &Request) -> Result<(), ApiError> {
    if metrics_scraper(admin, req) {
        return Ok(());
    }
    if export_reader(admin, req) {
        return Err(export_token_refused());
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

    fn request(headers: &[(&'static str, &'static str)]) -> Request {
        let mut map = http::HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, http::HeaderValue::from_static(v));
        }
        Request {
            method: http::Method::POST,
            path: "/api/replay".into(),
            query: String::new(),
            headers: map,
            remote: None,
            body: None,
        }
    }

    #[test]
    fn an_origin_is_the_same_when_it_names_the_host_or_the_proxy_host() {
        let direct = request(&[("host", "127.0.0.1:8081")]);
        assert!(same_origin("http://127.0.0.1:8081", &direct));
        assert!(!same_origin("http://127.0.0.1:8082", &direct));
        assert!(!same_origin("http://evil.example", &direct));
        assert!(!same_origin("null", &direct));
        let proxied = request(&[
            ("host", "127.0.0.1:8081"),
            ("x-forwarded-host", "hookd.example.org"),
        ]);
        assert!(same_origin("https://hookd.example.org", &proxied));
        assert!(same_origin("https://HOOKD.example.org:443", &proxied));
        assert!(!same_origin(
            "https://hookd.example.org.evil.example",
            &proxied
        ));
        let default_port = request(&[("host", "hookd.example.org:80")]);
        assert!(same_origin("http://hookd.example.org", &default_port));
    }

    #[test]
    fn json_content_types() {
        assert!(is_json(Some("application/json")));
        assert!(is_json(Some("Application/JSON; charset=utf-8")));
        assert!(!is_json(Some("text/plain")));
        assert!(!is_json(Some("application/x-www-form-urlencoded")));
        assert!(!is_json(Some("application/json-seq")));
        assert!(!is_json(None));
    }
}
