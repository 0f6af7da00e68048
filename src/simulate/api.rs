//! A local stand-in for the Fasten Connect API, for tests, the benchmark and users trying
//! hookd without a Fasten account.
//!
//! - `POST {base}/bridge/fhir/ehi-export` starts an export (answers a task id).
//! - `GET {base}/bridge/fhir/ehi-export/{task}/download/{file}` answers 302 to a signed URL
//!   on a second listener (another port, so a client's credentials must not follow), valid
//!   for `url_ttl`.
//! - `GET /signed/{task}/{file}?expires=..&sig=..` streams NDJSON generated on the fly by
//!   [`super::fhir`]; a file named `<stem>-<n>.jsonl` holds `n` resources, so the `stats` of
//!   an event made by [`super::event_data`] match what is served.
//!
//! With [`Deliver`] set, each export requested is announced, as Fasten does once it is
//! ready: a signed `patient.ehi_export_success` for that connection and task, whose links
//! point at this stand-in, POSTed to hookd's endpoint.
//!
//! Both API routes require HTTP Basic auth when credentials are configured. Faults can be
//! injected (already-expired URLs, a body cut off half-way) and everything is counted, so
//! tests can see what a client did.

use super::fhir;
use crate::shutdown::{self, Trigger};
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use warp::http::StatusCode;
use warp::{Filter, Reply};

/// How the stand-in behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Credentials the API requires (Basic auth); none = open.
    pub public_id: Option<String>,
    pub private_key: Option<String>,
    /// How long a signed URL is valid.
    pub url_ttl: Duration,
    /// The port of the signed-URL listener (same address as the API); 0 picks a free one.
    pub files_port: u16,
    /// Resources per file when the file name does not say.
    pub default_resources: u64,
    /// This many signed URLs are handed out already expired.
    pub expire_first: u32,
    /// This many downloads are cut off half-way (the connection breaks).
    pub truncate_first: u32,
    /// Announce each export requested to a webhook endpoint (see [`Deliver`]).
    pub deliver: Option<Deliver>,
}

/// Where, and how, the stand-in announces the exports it is asked for.
#[derive(Debug, Clone)]
pub struct Deliver {
    /// The endpoint's URL, e.g. `http://127.0.0.1:8080/webhooks/fasten`.
    pub to: String,
    /// The endpoint's signing secret.
    pub secret: crate::secret::Secret,
    /// How long after the request the export is "ready".
    pub after: Duration,
    /// Files, and resources per file, of each export.
    pub files: u32,
    pub resources: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            public_id: None,
            private_key: None,
            url_ttl: Duration::from_secs(600),
            files_port: 0,
            default_resources: 50,
            expire_first: 0,
            truncate_first: 0,
            deliver: None,
        }
    }
}

/// What the stand-in saw; shared with whoever started it.
#[derive(Default)]
pub struct Seen {
    /// `org_connection_id` of every export request, in order.
    pub export_requests: Mutex<Vec<String>>,
    /// Requests refused for missing or wrong credentials.
    pub unauthorized: AtomicU64,
    pub signed_urls_issued: AtomicU64,
    /// Requests to signed URLs, and how many of them carried an Authorization header.
    pub file_requests: AtomicU64,
    pub file_requests_with_authorization: AtomicU64,
    pub expired_refused: AtomicU64,
    pub truncated: AtomicU64,
}

struct State {
    options: Options,
    key: [u8; 32],
    api_base: String,
    files_base: String,
    /// Fired when the stand-in stops: announcements still waiting are dropped.
    stopping: shutdown::Shutdown,
    seen: Arc<Seen>,
    expire_left: AtomicU32,
    truncate_left: AtomicU32,
}

/// A running stand-in.
pub struct StandIn {
    /// Where the API is: use it as `fasten.api_base`.
    pub api_base: String,
    pub api_addr: SocketAddr,
    /// Where signed URLs point.
    pub files_addr: SocketAddr,
    pub seen: Arc<Seen>,
    trigger: Trigger,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl StandIn {
    /// Stops both listeners.
    pub async fn stop(self) {
        self.trigger.fire();
        for t in self.tasks {
            let _ = t.await;
        }
    }

    /// Number of export requests made for `connection`.
    pub fn export_requests_for(&self, connection: &str) -> usize {
        self.seen
            .export_requests
            .lock()
            .map(|v| v.iter().filter(|c| *c == connection).count())
            .unwrap_or(0)
    }
}

/// Starts the stand-in: the API on `addr`, signed URLs on another port of the same address
/// (`options.files_port`). Every request is logged (method, path, status; never a query
/// string, which carries the URL's signature, nor the credentials).
pub async fn start(addr: SocketAddr, options: Options) -> std::io::Result<StandIn> {
    let api_listener = TcpListener::bind(addr).await?;
    let files_listener = TcpListener::bind(SocketAddr::new(addr.ip(), options.files_port)).await?;
    let api_addr = api_listener.local_addr()?;
    let files_addr = files_listener.local_addr()?;
    let seen = Arc::new(Seen::default());
    let (trigger, shutdown) = shutdown::channel();
    let state = Arc::new(State {
        expire_left: AtomicU32::new(options.expire_first),
        truncate_left: AtomicU32::new(options.truncate_first),
        stopping: shutdown.clone(),
        options,
        key: rand::random(),
        api_base: format!("http://{api_addr}/v1"),
        files_base: format!("http://{files_addr}"),
        seen: seen.clone(),
    });
    let api = api_routes(state.clone()).with(warp::log::custom(|info| log_request("api", &info)));
    let files = file_routes(state).with(warp::log::custom(|info| log_request("signed URL", &info)));
    let tasks = vec![
        tokio::spawn(
            warp::serve(api)
                .incoming(api_listener)
                .graceful(shutdown.clone().wait())
                .run(),
        ),
        tokio::spawn(
            warp::serve(files)
                .incoming(files_listener)
                .graceful(shutdown.wait())
                .run(),
        ),
    ];
    Ok(StandIn {
        api_base: format!("http://{api_addr}/v1"),
        api_addr,
        files_addr,
        seen,
        trigger,
        tasks,
    })
}

/// One line per request served, so a user trying the flow sees what hookd asked for.
fn log_request(listener: &'static str, info: &warp::log::Info<'_>) {
    tracing::info!(
        listener,
        method = %info.method(),
        path = info.path(),
        status = info.status().as_u16(),
        ms = info.elapsed().as_millis() as u64,
        "stand-in request"
    );
}

fn json_reply(status: StatusCode, value: serde_json::Value) -> warp::reply::Response {
    warp::reply::with_status(warp::reply::json(&value), status).into_response()
}

fn authorized(state: &State, header: Option<&str>) -> bool {
    let (Some(id), Some(key)) = (&state.options.public_id, &state.options.private_key) else {
        return true;
    };
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{key}"))
    );
    let ok = header == Some(expected.as_str());
    if !ok {
        state.seen.unauthorized.fetch_add(1, Ordering::Relaxed);
    }
    ok
}

fn unauthorized() -> warp::reply::Response {
    json_reply(
        StatusCode::UNAUTHORIZED,
        serde_json::json!({"success": false, "error": "invalid credentials: use HTTP Basic auth with public_id:private_key"}),
    )
}

fn signature(state: &State, task: &str, file: &str, expires: u64) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(&state.key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(format!("{task}/{file}/{expires}").as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn api_routes(
    state: Arc<State>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = std::convert::Infallible> + Clone {
    let with_state = warp::any().map(move || state.clone());
    let request = warp::post()
        .and(warp::path!("v1" / "bridge" / "fhir" / "ehi-export"))
        .and(with_state.clone())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::body::bytes())
        .map(request_export);
    let download = warp::get()
        .and(warp::path!(
            "v1" / "bridge" / "fhir" / "ehi-export" / String / "download" / String
        ))
        .and(with_state)
        .and(warp::header::optional::<String>("authorization"))
        .map(redirect_to_signed_url);
    request
        .or(download)
        .unify()
        .or(warp::any().map(|| {
            json_reply(
                StatusCode::NOT_FOUND,
                serde_json::json!({"success": false, "error": "no such API path"}),
            )
        }))
        .unify()
}

/// `POST /v1/bridge/fhir/ehi-export`: records the request and answers a pending task.
fn request_export(state: Arc<State>, auth: Option<String>, body: Bytes) -> warp::reply::Response {
    if !authorized(&state, auth.as_deref()) {
        return unauthorized();
    }
    let conn = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["org_connection_id"].as_str().map(str::to_owned));
    let Some(conn) = conn else {
        return json_reply(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"success": false, "error": "org_connection_id is required"}),
        );
    };
    if let Ok(mut v) = state.seen.export_requests.lock() {
        v.push(conn.clone());
    }
    let task = uuid::Uuid::new_v4().to_string();
    if let Some(deliver) = state.options.deliver.clone() {
        tokio::spawn(announce(state.clone(), deliver, conn.clone(), task.clone()));
    }
    json_reply(
        StatusCode::OK,
        serde_json::json!({"success": true, "data": {
            "org_connection_id": conn,
            "task_id": task,
            "status": "pending"
        }}),
    )
}

/// Announces the export `task` of `conn` once it is "ready": a signed
/// `patient.ehi_export_success` whose links point at this stand-in.
async fn announce(state: Arc<State>, deliver: Deliver, conn: String, task: String) {
    tokio::select! {
        _ = tokio::time::sleep(deliver.after) => {}
        _ = state.stopping.clone().wait() => {
            tracing::info!(%task, "the stand-in is stopping: this export is not announced");
            return;
        }
    }
    let spec = super::EventSpec {
        event_type: "patient.ehi_export_success".into(),
        org_connection_id: conn,
        task_id: task.clone(),
        api_base: state.api_base.clone(),
        resources: deliver.resources,
        files: deliver.files,
        ..super::EventSpec::default()
    };
    let id = uuid::Uuid::new_v4().to_string();
    let body = super::event_body(&spec, &id);
    let client = reqwest::Client::new();
    let sent = crate::verify::signed_post(&client, &deliver.to, &deliver.secret, &id, body)
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    match sent {
        Ok(r) => {
            tracing::info!(%task, event_id = %id, status = r.status().as_u16(), "export ready: sent patient.ehi_export_success")
        }
        Err(e) => {
            tracing::warn!(%task, error = %crate::process::chain(&e.without_url()), "export ready, but its patient.ehi_export_success was not delivered")
        }
    }
}

/// `GET .../ehi-export/{task}/download/{file}`: a redirect to a signed, expiring file URL
/// (already expired for the first `expire_first` requests, to exercise hookd's re-request).
fn redirect_to_signed_url(
    task: String,
    file: String,
    state: Arc<State>,
    auth: Option<String>,
) -> warp::reply::Response {
    if !authorized(&state, auth.as_deref()) {
        return unauthorized();
    }
    let expired = state
        .expire_left
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok();
    let now = crate::clock::now_ms();
    let expires = if expired {
        now.saturating_sub(1)
    } else {
        now + state.options.url_ttl.as_millis() as u64
    };
    let sig = signature(&state, &task, &file, expires);
    state
        .seen
        .signed_urls_issued
        .fetch_add(1, Ordering::Relaxed);
    let location = format!(
        "{}/signed/{task}/{file}?expires={expires}&sig={sig}",
        state.files_base
    );
    warp::http::Response::builder()
        .status(StatusCode::FOUND)
        .header("location", location)
        .body(warp::hyper::body::Bytes::new())
        .map(Reply::into_response)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn query_value(query: &str, key: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Resources in a file named `<stem>-<n>.<ext>`.
fn resources_in(file: &str, default: u64) -> u64 {
    let stem = file.split('.').next().unwrap_or(file);
    stem.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

fn file_routes(
    state: Arc<State>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = std::convert::Infallible> + Clone {
    let with_state = warp::any().map(move || state.clone());
    warp::get()
        .and(warp::path!("signed" / String / String))
        .and(with_state)
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .map(
            |task: String, file: String, state: Arc<State>, auth: Option<String>, query: String| {
                state.seen.file_requests.fetch_add(1, Ordering::Relaxed);
                if auth.is_some() {
                    state
                        .seen
                        .file_requests_with_authorization
                        .fetch_add(1, Ordering::Relaxed);
                }
                let expires: u64 = query_value(&query, "expires")
                    .and_then(|e| e.parse().ok())
                    .unwrap_or(0);
                let sig = query_value(&query, "sig").unwrap_or_default();
                if sig != signature(&state, &task, &file, expires) {
                    return json_reply(
                        StatusCode::FORBIDDEN,
                        serde_json::json!({"error": "signature does not match"}),
                    );
                }
                if crate::clock::now_ms() > expires {
                    state.seen.expired_refused.fetch_add(1, Ordering::Relaxed);
                    return json_reply(
                        StatusCode::FORBIDDEN,
                        serde_json::json!({"error": "signed URL expired"}),
                    );
                }
                let n = resources_in(&file, state.options.default_resources);
                let export = fhir::Export::new(fhir::seed_of(&format!("{task}/{file}")), n);
                let truncate = state
                    .truncate_left
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok();
                let body = if truncate {
                    state.seen.truncated.fetch_add(1, Ordering::Relaxed);
                    // Half of the file, then a broken connection.
                    let whole: Vec<u8> = export.flat_map(|c| c.to_vec()).collect();
                    let half = Bytes::from(whole[..whole.len() / 2].to_vec());
                    let items: Vec<Result<Bytes, std::io::Error>> = vec![
                        Ok(half),
                        Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "cut off by the stand-in",
                        )),
                    ];
                    warp::reply::stream(futures_util::stream::iter(items)).into_response()
                } else {
                    warp::reply::stream(futures_util::stream::iter(
                        export.map(Ok::<Bytes, std::io::Error>),
                    ))
                    .into_response()
                };
                let mut response = body;
                response.headers_mut().insert(
                    "content-type",
                    warp::http::HeaderValue::from_static("application/fhir+ndjson"),
                );
                response
            },
        )
        .or(warp::any().map(|| {
            json_reply(
                StatusCode::NOT_FOUND,
                serde_json::json!({"error": "no such file"}),
            )
        }))
        .unify()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_count_comes_from_the_file_name() {
        assert_eq!(resources_in("fhir-1-250.jsonl", 5), 250);
        assert_eq!(resources_in("export.jsonl", 5), 5);
    }
}
