//! The admin listener: the JSON API over the delivery log and the queue, the built-in web UI
//! (assets from `web/`, embedded in the binary), `/metrics` and `/healthz`.
//!
//! It shows health data, so it is never open off loopback without a credential: config
//! validation refuses a non-loopback `admin_listen` without `admin.token` or
//! `admin.password_hash`. With a credential configured every `/api` request needs a bearer
//! token or a live session cookie, and every state-changing request made with a cookie needs
//! the session's CSRF token. Without one, only requests naming a loopback host are served
//! (so a DNS-rebinding page cannot reach it). Either way every state-changing request but a
//! bearer token's (login included) must be JSON from the UI's own origin (`guard.rs` says
//! why), so no page on another site can log in, log out, replay or back up in its name.
//!
//! `routes.rs` is the one route table; `guard.rs` decides who may pass, `session.rs` keeps
//! the web UI's sessions, `headers.rs` sets the hardening and ETag headers, and `error.rs`
//! turns every failure into a JSON answer with its status. The handlers sit in one file per
//! resource: deliveries, events, errors, stats, meta, backup, fasten.

pub mod auth;
mod backup;
mod deliveries;
mod error;
mod errors;
mod events;
mod fasten;
mod guard;
mod headers;
mod meta;
mod query;
mod routes;
mod session;
mod stats;
mod ui;

pub use backup::outside_data_dir;
pub use error::ApiError;

use crate::config::Config;
use crate::store::{HourCounts, Store};
use http::{HeaderMap, Method};
use session::Auth;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use warp::Filter;

/// Largest request body the admin listener reads (a login form).
const MAX_BODY: u64 = 4096;

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
    /// Held while `/api/backup` runs: one backup at a time, as two would only compete for
    /// the disk. Per instance rather than per process, so hookds sharing a process (tests)
    /// do not refuse each other's backups.
    backup_running: tokio::sync::Mutex<()>,
    /// Turns of the API requests that read the store, and of `/metrics` (see
    /// `routes::dispatch`).
    answering: Arc<tokio::sync::Semaphore>,
    scraping: Arc<tokio::sync::Semaphore>,
    /// Where the receiver listens (the bound address, so port 0 is resolved): the UI's
    /// "copy as curl" names it.
    receiver_addr: Option<SocketAddr>,
}

impl Admin {
    /// The admin state for `config` over `store`.
    pub fn new(config: Arc<Config>, store: Arc<Store>, pruner: Arc<crate::prune::Pruner>) -> Admin {
        Admin {
            auth: Auth::new(config.admin.session_ttl_secs, &store),
            answering: Arc::new(tokio::sync::Semaphore::new(store.read_concurrency())),
            config,
            store,
            pruner,
            chart: Mutex::new(HashMap::new()),
            dir_size: Mutex::new(None),
            backup_running: tokio::sync::Mutex::new(()),
            scraping: Arc::new(tokio::sync::Semaphore::new(1)),
            receiver_addr: None,
        }
    }

    /// The same, knowing the receiver's bound address.
    pub fn receiving_on(self, addr: SocketAddr) -> Admin {
        Admin {
            receiver_addr: Some(addr),
            ..self
        }
    }

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

/// The parts of a request the admin listener looks at.
struct Request {
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    remote: Option<SocketAddr>,
    /// The body, when it was small enough to read (only a login has one).
    body: Option<bytes::Bytes>,
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

    /// Whether this request's method is `route_method`'s: HEAD asks what GET would answer
    /// (hyper sends the head only), as monitoring probes and `curl -I` do.
    fn is(&self, route_method: &Method) -> bool {
        self.method == *route_method
            || (self.method == Method::HEAD && *route_method == Method::GET)
    }
}

fn request_parts() -> impl Filter<Extract = (Request,), Error = Infallible> + Clone {
    let body = warp::body::content_length_limit(MAX_BODY)
        .and(warp::body::bytes())
        .map(Some)
        .or(warp::any().map(|| None))
        .unify();
    warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::addr::remote())
        .and(body)
        .map(
            |method, path: warp::path::FullPath, query, headers, remote, body| Request {
                method,
                path: path.as_str().to_owned(),
                query,
                headers,
                remote,
                body,
            },
        )
}

/// The admin routes.
pub fn routes(
    admin: Arc<Admin>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Infallible> + Clone {
    warp::any()
        .map(move || admin.clone())
        .and(request_parts())
        .then(|admin: Arc<Admin>, req: Request| async move {
            let api = req.path.starts_with("/api/");
            headers::harden(routes::dispatch(admin, req).await, api)
        })
}
