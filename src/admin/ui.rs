//! The web UI's static files, embedded from `web/` at compile time: nothing to build or
//! install, nothing fetched from elsewhere, so it works offline.

use http::{HeaderValue, Method, StatusCode};

const INDEX_HTML: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const APP_CSS: &str = include_str!("../../web/app.css");
const FAVICON_SVG: &str = include_str!("../../web/favicon.svg");

/// Answers a request for a UI file (`/` is the single page; views are `#/...` fragments).
pub fn asset(method: &Method, path: &str) -> warp::reply::Response {
    if !matches!(*method, Method::GET | Method::HEAD) {
        return super::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    let (body, content_type) = match path {
        "/" | "/index.html" => (INDEX_HTML, "text/html; charset=utf-8"),
        "/app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "/app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "/favicon.svg" | "/favicon.ico" => (FAVICON_SVG, "image/svg+xml"),
        _ => return super::error(StatusCode::NOT_FOUND, "no such page"),
    };
    let mut response = warp::reply::Response::new(body.into());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    // Assets change with the binary; revalidating each load is cheap on a local listener.
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    response
}
