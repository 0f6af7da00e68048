//! Response headers: the hardening every admin answer carries, and the ETags of successful
//! API GETs (with `If-None-Match` answered by a bodiless 304), so the UI can poll cheaply.

use http::{HeaderValue, StatusCode};
use sha2::{Digest, Sha256};

/// Headers every admin answer carries: a strict CSP (no inline script, same-origin only),
/// no framing, no sniffing, no referrer, and no caching of API data.
pub fn harden(mut response: warp::reply::Response, api: bool) -> warp::reply::Response {
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

/// A strong ETag naming `content`.
pub fn etag_of(content: &[u8]) -> String {
    let digest = Sha256::digest(content);
    let tag: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{tag}\"")
}

/// Sets `etag` on a response.
pub fn set_etag(response: &mut warp::reply::Response, etag: &str) {
    if let Ok(v) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(http::header::ETAG, v);
    }
}

/// A 200 JSON answer with the ETag of its bytes.
pub fn json(value: &serde_json::Value) -> warp::reply::Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let etag = etag_of(&body);
    let mut response = warp::reply::Response::new(body.into());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    set_etag(&mut response, &etag);
    response
}

/// A bodiless 304 in place of a 200 whose ETag the client already has (`If-None-Match`).
pub fn conditional(
    response: warp::reply::Response,
    if_none_match: Option<&str>,
) -> warp::reply::Response {
    let Some(etag) = response.headers().get(http::header::ETAG).cloned() else {
        return response;
    };
    let matches = if_none_match.is_some_and(|given| {
        given
            .split(',')
            .any(|g| g.trim() == "*" || g.trim().as_bytes() == etag.as_bytes())
    });
    if response.status() != StatusCode::OK || !matches {
        return response;
    }
    let mut r = warp::reply::Response::new(Vec::<u8>::new().into());
    *r.status_mut() = StatusCode::NOT_MODIFIED;
    r.headers_mut().insert(http::header::ETAG, etag);
    r
}
