//! The web UI's static files, embedded from `web/` at compile time: nothing to build or
//! install, nothing fetched from elsewhere, so it works offline. The script is a set of ES
//! modules (`app.js` imports the rest), each served as JavaScript from this origin, which is
//! all the CSP's `script-src 'self'` allows.

use super::ApiError;
use http::{HeaderValue, Method, StatusCode};

const JS: &str = "text/javascript; charset=utf-8";

/// Every UI file: its path, content and content type.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "/index.html",
        include_str!("../../web/index.html"),
        "text/html; charset=utf-8",
    ),
    (
        "/app.css",
        include_str!("../../web/app.css"),
        "text/css; charset=utf-8",
    ),
    (
        "/favicon.svg",
        include_str!("../../web/favicon.svg"),
        "image/svg+xml",
    ),
    ("/app.js", include_str!("../../web/app.js"), JS),
    ("/dom.js", include_str!("../../web/dom.js"), JS),
    ("/api.js", include_str!("../../web/api.js"), JS),
    ("/filters.js", include_str!("../../web/filters.js"), JS),
    ("/login.js", include_str!("../../web/login.js"), JS),
    (
        "/deliveries.js",
        include_str!("../../web/deliveries.js"),
        JS,
    ),
    ("/delivery.js", include_str!("../../web/delivery.js"), JS),
    ("/curl.js", include_str!("../../web/curl.js"), JS),
    ("/files.js", include_str!("../../web/files.js"), JS),
    ("/queue.js", include_str!("../../web/queue.js"), JS),
    (
        "/connections.js",
        include_str!("../../web/connections.js"),
        JS,
    ),
    (
        "/connection.js",
        include_str!("../../web/connection.js"),
        JS,
    ),
];

/// Answers a request for a UI file (`/` is the single page; views are `#/...` fragments).
pub fn asset(method: &Method, path: &str) -> Result<warp::reply::Response, ApiError> {
    if !matches!(*method, Method::GET | Method::HEAD) {
        return Err(ApiError::method_not_allowed());
    }
    let path = match path {
        "/" => "/index.html",
        "/favicon.ico" => "/favicon.svg",
        other => other,
    };
    let Some((_, body, content_type)) = ASSETS.iter().find(|(p, _, _)| *p == path) else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such page"));
    };
    let mut response = warp::reply::Response::new((*body).into());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    // Assets change with the binary; revalidating each load is cheap on a local listener.
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_embedded() {
        for (path, body, _) in ASSETS {
            for line in body.lines().filter(|l| l.starts_with("import ")) {
                let Some(from) = line.split('"').nth(1) else {
                    continue;
                };
                let target = from.trim_start_matches('.');
                assert!(
                    ASSETS.iter().any(|(p, _, _)| *p == target),
                    "{path} imports {from}, which is not embedded"
                );
            }
        }
    }
}
