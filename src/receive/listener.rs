//! The receiver's accept loop: which connections are served, for how long, and when they are
//! cut.
//!
//! warp 0.4's own server sets no connection cap and no timer (so no header-read or idle
//! timeout), speaks HTTP/2 with 200 streams per connection, and its graceful shutdown waits
//! for every connection however long a sender stalls. hookd therefore serves the warp filter
//! itself, through hyper's HTTP/1.1 connection builder: a `Semaphore` caps open connections,
//! so a flood cannot take every file descriptor. At the cap, the connection that has been
//! idle longest (no request in progress: waiting for a head, or dribbling one) is closed to
//! make room, so idle sockets cannot lock real senders out; only when every connection is
//! mid-request is the new one closed. hyper's header-read timer also bounds a keep-alive
//! connection waiting for its next request, and after the shutdown grace every connection
//! still open is cut. HTTP/2 is not offered: Standard Webhooks senders speak HTTP/1.1, and
//! h2's per-stream buffers would need bounds of their own.

use crate::shutdown::Shutdown;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use warp::Filter;

/// The largest request head (request line and headers) hyper buffers; beyond it, 431.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The remote address of a connection served here, for the routes (warp's own
/// `addr::remote()` only works under `warp::serve`).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// A filter giving the connection's remote address.
pub fn remote() -> impl Filter<Extract = (Option<SocketAddr>,), Error = Infallible> + Clone {
    warp::ext::optional::<Peer>().map(|peer: Option<Peer>| peer.map(|Peer(addr)| addr))
}

/// Connection limits of one listener.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once; beyond it new ones are closed.
    pub max_connections: usize,
    /// How long a connection may take to send a request head, and how long a keep-alive
    /// connection may sit idle before its next request.
    pub header_read_timeout: Duration,
    /// How long in-flight requests get after shutdown before their connections are cut.
    pub shutdown_grace: Duration,
}

/// How long a new connection waits for the slot of the idle connection it displaced.
const EVICTION_WAIT: Duration = Duration::from_millis(500);

/// What the accept loop knows of one open connection.
struct Conn {
    /// Requests in progress; a connection at 0 may be closed to make room.
    busy: usize,
    idle_since: Instant,
    close: Arc<Notify>,
}

/// The open connections, for choosing which idle one to close at the cap.
#[derive(Default)]
struct Conns(Mutex<HashMap<u64, Conn>>);

impl Conns {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Conn>> {
        // A panic elsewhere cannot leave the map inconsistent: each update is one statement.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Tells the longest-idle connection to close; false when every one is mid-request.
    fn evict_longest_idle(&self) -> bool {
        let mut conns = self.lock();
        let oldest = conns
            .iter()
            .filter(|(_, c)| c.busy == 0)
            .min_by_key(|(_, c)| c.idle_since)
            .map(|(id, _)| *id);
        match oldest.and_then(|id| conns.remove(&id)) {
            Some(conn) => {
                conn.close.notify_one();
                true
            }
            None => false,
        }
    }

    fn update(&self, id: u64, f: impl FnOnce(&mut Conn)) {
        if let Some(conn) = self.lock().get_mut(&id) {
            f(conn);
        }
    }
}

/// Marks a connection busy for as long as one request is being handled.
struct Busy {
    conns: Arc<Conns>,
    id: u64,
}

impl Busy {
    fn start(conns: Arc<Conns>, id: u64) -> Busy {
        conns.update(id, |c| c.busy += 1);
        Busy { conns, id }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.conns.update(self.id, |c| {
            c.busy = c.busy.saturating_sub(1);
            c.idle_since = Instant::now();
        });
    }
}

/// Serves `filter` on `listener` within `limits` until `shutdown`, then drains for at most
/// the grace and cuts what is left.
pub async fn serve<F>(listener: TcpListener, filter: F, limits: Limits, shutdown: Shutdown)
where
    F: Filter<Extract = (warp::reply::Response,), Error = Infallible> + Clone + Send + Sync,
    F: 'static,
    F::Future: Send,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let conns = Arc::new(Conns::default());
    let mut next_id = 0u64;
    let mut connections = JoinSet::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // The head's own limit: the buffer's alone is checked only between reads, so a
        // head arriving in large reads passed it by half again before it was refused.
        .max_header_size(MAX_HEAD_BYTES)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    let stop = shutdown.clone().wait();
    let mut stop = std::pin::pin!(stop);
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => break,
            // Reap finished connections so the set holds only live ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of descriptors or a reset during the handshake: back off briefly
                // instead of spinning on an error that repeats.
                tracing::debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = take_slot(&slots, &conns).await else {
            metrics::counter!("hookd_connections_refused_total").increment(1);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let id = next_id;
        let close = Arc::new(Notify::new());
        conns.lock().insert(
            id,
            Conn {
                busy: 0,
                idle_since: Instant::now(),
                close: close.clone(),
            },
        );
        let service = warp::service(filter.clone());
        let tracked = conns.clone();
        let service = hyper::service::service_fn(move |mut request: http::Request<_>| {
            request.extensions_mut().insert(Peer(remote));
            let busy = Busy::start(tracked.clone(), id);
            let answer = tower_service::Service::call(&mut service.clone(), request);
            async move {
                let answer = answer.await;
                drop(busy);
                answer
            }
        });
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let shutdown = shutdown.clone();
        let conns = conns.clone();
        connections.spawn(async move {
            let _slot = slot;
            let mut conn = std::pin::pin!(conn);
            let stopping = tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    false
                }
                // Displaced by a new connection: close without a word, it had no request.
                _ = close.notified() => false,
                _ = shutdown.wait() => true,
            };
            conns.lock().remove(&id);
            if !stopping {
                return;
            }
            // Finish the request in progress, then close instead of keeping alive.
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        });
    }
    drop(listener);
    drain(connections, limits.shutdown_grace).await;
}

/// A connection slot: a free one, or the longest idle connection's after it is closed, or
/// none (the new connection is refused).
async fn take_slot(slots: &Arc<Semaphore>, conns: &Conns) -> Option<OwnedSemaphorePermit> {
    match slots.clone().try_acquire_owned() {
        Ok(slot) => Some(slot),
        Err(_) if conns.evict_longest_idle() => {
            metrics::counter!("hookd_connections_evicted_total").increment(1);
            tokio::time::timeout(EVICTION_WAIT, slots.clone().acquire_owned())
                .await
                .ok()
                .and_then(Result::ok)
        }
        Err(_) => None,
    }
}

/// Waits up to `grace` for open connections to finish, then cuts the rest.
async fn drain(mut connections: JoinSet<()>, grace: Duration) {
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "cutting connections still open after the shutdown grace"
        );
        connections.shutdown().await;
    }
}
