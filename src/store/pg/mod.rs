//! Cluster mode's store: several hookd instances sharing one PostgreSQL database.
//!
//! The promises are the sled store's: an acknowledged delivery is committed before anyone is
//! answered (group commit: one transaction per batch of waiting requests, see `writer`); an
//! event id is accepted once per endpoint, across every instance, by a unique key; each
//! event runs on one instance at a time, under a lease that another instance takes over when
//! it is not renewed (`queue`); retention drops whole days of the delivery log (`prune`).
//!
//! Each instance takes a node number from `hookd_instances` at start. Ids are the sled
//! store's (creation time in the high bits) with the node in the low 8 bits, so ids stay
//! ordered by time and unique across up to 256 live instances without a round trip per id.

mod backlog;
mod browse;
mod conn;
mod copy;
pub(crate) mod fasten;
mod ingest;
mod node;
mod prune;
mod queue;
mod schema;
mod sessions;
mod writer;

use backlog::Backlog;
pub use conn::{parse as parse_url, PgOptions};
pub use copy::CopyReport;
pub use fasten::PgIndexer;
pub use schema::VERSION as SCHEMA_VERSION;

use super::StoreError;
use deadpool_postgres::Pool;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The SQLSTATE PostgreSQL gives when its disk is full.
const DISK_FULL: &str = "53100";

/// A database error as one line: the server's message and detail, or the client's error
/// chain (connection refused, TLS, timeout). Never holds the connection string.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_string(),
        };
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    if text.contains("invalid peer certificate") {
        text.push_str(
            " (set postgres.ca_file to the CA that signed the database's certificate, or \
             sslmode=disable in the URL on a network you trust)",
        );
    }
    text
}

/// Converts a tokio-postgres error.
pub(crate) fn db(e: tokio_postgres::Error) -> StoreError {
    match e.code() {
        Some(code) if code.code() == DISK_FULL => StoreError::DiskFull(describe(&e)),
        // deadlock_detected, serialization_failure: the transaction may simply run again.
        Some(code) if matches!(code.code(), "40P01" | "40001") => {
            StoreError::Conflict(describe(&e))
        }
        _ => StoreError::Database(describe(&e)),
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => db(e),
        other => StoreError::Database(format!("no database connection: {other}")),
    }
}

/// Ids handed out by one instance: the sled store's layout (time in ms above 22 bits) with
/// a 14-bit counter and the node in the low 8 bits.
struct NodeIds {
    node: u64,
    /// The last (time << 14 | counter) handed out.
    last: AtomicU64,
}

const NODE_BITS: u32 = 8;
const COUNTER_BITS: u32 = 14;

impl NodeIds {
    fn new(node: u64, floor: u64) -> NodeIds {
        NodeIds {
            node,
            last: AtomicU64::new(floor >> NODE_BITS),
        }
    }

    fn next(&self, now_ms: u64) -> u64 {
        let candidate = now_ms << COUNTER_BITS;
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let local = candidate.max(last + 1);
            match self
                .last
                .compare_exchange_weak(last, local, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return (local << NODE_BITS) | self.node,
                Err(seen) => last = seen,
            }
        }
    }
}

/// What the writer task, the heartbeat and the callers share.
struct Inner {
    pool: Pool,
    node: i32,
    instance: String,
    ids: NodeIds,
    lease_ms: u64,
    work: Notify,
    writer_alive: AtomicBool,
    write_error: Mutex<Option<String>>,
    /// Events not finished, as last counted (refreshed by the heartbeat and each batch).
    backlog: Backlog,
    /// Attempt results sent to the writer and not yet committed.
    pending_finishes: AtomicUsize,
    /// Rejections counted and not stored, not yet added to `hookd_counters`.
    unlogged: AtomicU64,
    /// Taken while `unlogged` or `latencies` is written to the database, so that a flush
    /// returns only once a beat's write of them has landed too (see `node::write_unlogged`).
    noted_turn: tokio::sync::Mutex<()>,
    /// The last heartbeat's failure, until a beat succeeds.
    db_error: Mutex<Option<String>>,
    /// Answer latencies not written yet: (delivery id, µs).
    latencies: Mutex<Vec<(i64, i64)>>,
}

impl Inner {
    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(pool_error)
    }

    fn set_write_error(&self, e: Option<String>) {
        *self.write_error.lock().unwrap_or_else(|p| p.into_inner()) = e;
    }
}

/// The PostgreSQL store of one instance, behind [`crate::store::Store`].
///
/// It runs on a small tokio runtime of its own: the pool's connections and their tasks live
/// there. The store's synchronous reads (the UI's, the pipeline's) hand their query to that
/// runtime and wait for the answer on the calling thread, which works the same from an
/// async handler, a blocking task or a plain thread, and never from inside the runtime that
/// runs the query, so it cannot deadlock. The embedded store answers those reads from its
/// page cache in microseconds; here each is a round trip, and blocks its caller for it.
pub struct PgStore {
    inner: Arc<Inner>,
    writer: Arc<crate::store::writer::Writer>,
    heartbeat: tokio::task::JoinHandle<()>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl PgStore {
    /// Connects, brings the schema up to date, takes a node number, and starts the writer
    /// and the heartbeat.
    pub fn open(options: &PgOptions) -> Result<PgStore> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("hookd-db")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Io(format!("cannot start the database runtime: {e}")))?;
        let options = options.clone();
        let (inner, writer, heartbeat) = match wait(runtime.handle(), connect(options)) {
            Ok(Ok(connected)) => connected,
            Ok(Err(e)) | Err(e) => {
                // Dropping a runtime waits for its tasks, which an async caller must not do.
                runtime.shutdown_background();
                return Err(e);
            }
        };
        Ok(PgStore {
            inner,
            writer: Arc::new(writer),
            heartbeat,
            runtime: Some(runtime),
        })
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the store")
    }

    /// Runs a query on the store's runtime and waits for it on this thread.
    fn block<T, F>(&self, query: impl FnOnce(Arc<Inner>) -> F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        wait(self.runtime().handle(), query(self.inner.clone()))?
    }

    /// Runs a query on the store's runtime and awaits it.
    async fn run<T, F>(&self, query: impl FnOnce(Arc<Inner>) -> F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        self.runtime()
            .spawn(query(self.inner.clone()))
            .await
            .map_err(|e| StoreError::Database(format!("a database task failed: {e}")))?
    }

    /// Readers at once: half the pool. Each reader holds a pooled connection while its query
    /// runs, and the writer (every ack), the heartbeat and the pipeline take theirs from the
    /// same pool, so readers alone must never be able to empty it.
    pub fn read_concurrency(&self) -> usize {
        (self.inner.pool.status().max_size / 2).max(1)
    }

    /// This instance's node number.
    pub fn node(&self) -> i32 {
        self.inner.node
    }

    /// Woken when an event may be due: after an accept here, a replay, a lease taken back,
    /// and on every heartbeat (events accepted by other instances are found by it).
    pub fn work_notify(&self) -> &Notify {
        &self.inner.work
    }

    /// Whether the store can take writes: `Err` with the reason when its writer has stopped,
    /// its last batch failed (clears once a batch succeeds), or the heartbeat cannot reach
    /// the database (clears once a beat does).
    pub fn health(&self) -> std::result::Result<(), String> {
        crate::store::health(&self.inner.writer_alive, &self.inner.write_error)?;
        match self
            .inner
            .db_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            Some(e) => Err(format!("the database cannot be reached: {e}")),
            None => Ok(()),
        }
    }

    /// Returns once every write queued so far is committed, the answers' latencies and the
    /// count of unstored rejections included (a stop would otherwise lose what the
    /// heartbeat had not written).
    pub async fn flush(&self) -> Result<()> {
        self.writer.flush().await?;
        self.run(|inner| async move {
            let client = inner.client().await?;
            node::write_latencies(&inner, &**client).await?;
            node::write_unlogged(&inner, &**client).await
        })
        .await
    }

    /// Indexes are the database's own, always current.
    pub fn index_now(&self) -> Result<()> {
        Ok(())
    }

    /// Events not finished (queued, retrying, processing) on every instance, as last counted.
    pub fn backlog(&self) -> u64 {
        self.inner.backlog.get()
    }

    /// Records a rejected delivery. Nothing was acknowledged, so the request does not wait:
    /// the id is chosen here and the writer's next batch commits it. (Waiting would hold a
    /// runtime thread for a database round trip per refused request, which a flood of
    /// unsigned requests would turn against the receiver.)
    pub fn record(&self, draft: crate::store::DeliveryDraft) -> Result<u64> {
        let id = self.inner.ids.next(draft.received_at_ms);
        self.writer
            .record_unanswered(draft, id)
            .map_err(StoreError::Shared)?;
        Ok(id)
    }

    /// Records a delivery that creates no event; returns once committed.
    pub async fn record_durable(&self, draft: crate::store::DeliveryDraft) -> Result<u64> {
        self.writer.record(draft).await
    }

    /// Counts a rejected delivery that was not stored; the heartbeat adds the count up in
    /// the database (one statement a beat, however many were refused).
    pub fn count_unlogged_rejection(&self) -> Result<()> {
        self.inner.unlogged.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Accepts `event` unless its id was already accepted on this endpoint by any instance,
    /// and records the delivery; returns once committed.
    pub async fn accept(
        &self,
        draft: crate::store::DeliveryDraft,
        event: crate::store::NewEvent,
        respond: crate::store::Respond,
    ) -> Result<crate::store::Accepted> {
        self.writer.accept(draft, event, respond).await
    }

    /// Notes how long an answer took; written with the next heartbeat, many at once (the
    /// figure is information about the answer, not something acknowledged).
    pub fn set_latency(&self, delivery_id: u64, micros: u64) -> Result<()> {
        let mut pending = self
            .inner
            .latencies
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if pending.len() < crate::store::MAX_PENDING_LATENCIES {
            pending.push((delivery_id as i64, micros as i64));
        }
        Ok(())
    }

    /// When the first queued event is due, on any instance.
    pub fn next_due(&self) -> Result<Option<u64>> {
        self.block(|inner| async move { queue::next_due(&**inner.client().await?).await })
    }

    /// Claims up to `max` due events for this instance (see `queue::claim`).
    pub async fn claim(
        &self,
        now_ms: u64,
        max: usize,
    ) -> Result<Vec<(crate::store::Event, bytes::Bytes)>> {
        self.writer.claim(now_ms, max).await
    }

    /// Records an attempt and moves its event on; applied by the writer before any later
    /// claim of this instance.
    pub fn finish(
        &self,
        seq: u64,
        attempt: crate::store::Attempt,
        next: crate::store::Next,
    ) -> Result<()> {
        let pending = &self.inner.pending_finishes;
        pending.fetch_add(1, Ordering::Relaxed);
        self.writer.finish(seq, attempt, next).map_err(|e| {
            pending.fetch_sub(1, Ordering::Relaxed);
            StoreError::Shared(e)
        })
    }

    /// Whether attempt results are on their way to the database.
    pub fn finishes_pending(&self) -> bool {
        self.inner.pending_finishes.load(Ordering::Relaxed) > 0
    }

    /// Puts events whose lease ran out back on the queue. An instance that starts does not
    /// know which events it ran before a crash (it has a new node), so those wait for their
    /// lease like any other instance's.
    pub fn requeue_inflight(&self, now_ms: u64) -> Result<usize> {
        self.block(move |inner| async move { queue::expire_leases(&inner, now_ms).await })
    }

    /// Re-queues a done or dead event.
    pub fn replay(
        &self,
        seq: u64,
        now_ms: u64,
    ) -> Result<crate::store::Event, crate::store::ReplayError> {
        wait(self.runtime().handle(), {
            let inner = self.inner.clone();
            async move { queue::replay(&inner, seq, now_ms).await }
        })?
    }

    /// This instance's turn to prune: retention's advisory lock, taken with `try` on a
    /// connection of its own and held until the turn is dropped (see `prune::Turn`).
    pub fn prune_turn(&self) -> Result<Option<crate::store::PruneTurn>> {
        let turn = self.block(|inner| async move { prune::take_turn(&inner).await })?;
        Ok(turn.map(|client| {
            crate::store::PruneTurn::holding(prune::Turn::new(
                client,
                self.runtime().handle().clone(),
            ))
        }))
    }

    /// Keeps a finished prune's figures in `hookd_counters`, for every instance's
    /// `/api/stats` (the instances that skipped their turn have none of their own).
    pub fn record_prune(&self, p: &crate::store::LastPrune) -> Result<()> {
        let values = [p.at_ms, p.duration_ms, p.records, p.exports].map(|v| v as i64);
        self.block(move |inner| async move {
            inner
                .client()
                .await?
                .execute(
                    "INSERT INTO hookd_counters (name, n) VALUES
                         ('last_prune_at_ms', $1), ('last_prune_duration_ms', $2),
                         ('last_pruned_records', $3), ('last_pruned_exports', $4)
                     ON CONFLICT (name) DO UPDATE SET n = excluded.n",
                    &[&values[0], &values[1], &values[2], &values[3]],
                )
                .await
                .map_err(db)?;
            Ok(())
        })
    }

    /// The last prune any instance recorded, if one has.
    pub fn shared_last_prune(&self) -> Result<Option<crate::store::LastPrune>> {
        self.block(|inner| async move {
            let rows = inner
                .client()
                .await?
                .query(
                    "SELECT name, n FROM hookd_counters WHERE name IN ('last_prune_at_ms',
                         'last_prune_duration_ms', 'last_pruned_records', 'last_pruned_exports')",
                    &[],
                )
                .await
                .map_err(db)?;
            let get = |key: &str| {
                rows.iter()
                    .find(|r| r.get::<_, String>(0) == key)
                    .map(|r| r.get::<_, i64>(1) as u64)
            };
            Ok(
                get("last_prune_at_ms").map(|at_ms| crate::store::LastPrune {
                    at_ms,
                    duration_ms: get("last_prune_duration_ms").unwrap_or(0),
                    records: get("last_pruned_records").unwrap_or(0),
                    exports: get("last_pruned_exports").unwrap_or(0),
                }),
            )
        })
    }

    /// Drops the delivery log's days wholly before `cutoff_ms` (and older rows of the
    /// default partition). One call does it all: `next` is always `None`.
    pub fn prune_deliveries(
        &self,
        _turn: &crate::store::PruneTurn,
        cutoff_ms: u64,
        _from: u64,
        _max: usize,
    ) -> Result<crate::store::PruneBatch> {
        self.block(move |inner| async move {
            let removed = prune::prune_deliveries(&inner, cutoff_ms).await?;
            Ok(crate::store::PruneBatch {
                deliveries: removed as usize,
                events: 0,
                next: None,
            })
        })
    }

    /// Deletes up to `max` finished events before `cutoff_ms`; `next` says whether to call
    /// again (deleted rows are gone, so each call starts from the oldest left).
    pub fn prune_events(
        &self,
        _turn: &crate::store::PruneTurn,
        cutoff_ms: u64,
        _from: u64,
        max: usize,
    ) -> Result<crate::store::PruneBatch> {
        self.block(move |inner| async move {
            let events = prune::prune_events(&inner, cutoff_ms, max).await? as usize;
            Ok(crate::store::PruneBatch {
                deliveries: 0,
                events,
                next: (events >= max && max > 0).then_some(0),
            })
        })
    }

    /// Makes the delivery log's day partitions around `now_ms` (the heartbeat does it for the
    /// clock's now). For tests of retention with an injected clock.
    #[doc(hidden)]
    pub fn ensure_partitions_at(&self, now_ms: u64) -> Result<()> {
        self.block(move |inner| async move { prune::ensure_partitions(&inner, now_ms).await })
    }

    /// Stops the writer as a panic would.
    #[doc(hidden)]
    pub fn crash_writer(&self) {
        self.writer.crash();
    }
}

/// Connects on the store's runtime (the pool, the writer and the heartbeat live there).
async fn connect(
    options: PgOptions,
) -> Result<(
    Arc<Inner>,
    crate::store::writer::Writer,
    tokio::task::JoinHandle<()>,
)> {
    let pool = conn::pool(&options)?;
    let mut client = pool.get().await.map_err(pool_error)?;
    schema::migrate(&mut client).await?;
    let now = crate::clock::now_ms();
    let node = node::take(&mut client, &options.instance, now).await?;
    let floor: i64 = client
        .query_one(
            "SELECT greatest(
                 (SELECT coalesce(max(id), 0) FROM hookd_deliveries),
                 (SELECT coalesce(max(seq), 0) FROM hookd_events))",
            &[],
        )
        .await
        .map_err(db)?
        .get(0);
    drop(client);
    let inner = Arc::new(Inner {
        pool,
        node,
        instance: options.instance.clone(),
        ids: NodeIds::new(node as u64, floor as u64),
        lease_ms: options.lease_ms,
        work: Notify::new(),
        writer_alive: AtomicBool::new(true),
        write_error: Mutex::new(None),
        backlog: Backlog::default(),
        pending_finishes: AtomicUsize::new(0),
        latencies: Mutex::new(Vec::new()),
        db_error: Mutex::new(None),
        unlogged: AtomicU64::new(0),
        noted_turn: tokio::sync::Mutex::new(()),
    });
    prune::ensure_partitions(&inner, now).await?;
    queue::refresh_backlog(&inner).await?;
    let writer = writer::start(inner.clone());
    let heartbeat = tokio::spawn(node::heartbeat(inner.clone()));
    tracing::info!(node, instance = %options.instance, "connected to the database");
    Ok((inner, writer, heartbeat))
}

/// Runs `future` on `runtime` and waits for its output on this thread.
fn wait<T: Send + 'static>(
    runtime: &tokio::runtime::Handle,
    future: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T> {
    spawn_for(runtime, future)
        .recv()
        .map_err(|_| StoreError::Database("a database task failed".into()))
}

/// [`wait`], giving up after `limit`: for drops and checks that must not hang a thread on a
/// runtime that is stopping (or on a task queued behind the waiting thread itself).
fn wait_bounded<T: Send + 'static>(
    runtime: &tokio::runtime::Handle,
    future: impl std::future::Future<Output = T> + Send + 'static,
    limit: std::time::Duration,
) -> Result<T> {
    spawn_for(runtime, future)
        .recv_timeout(limit)
        .map_err(|_| StoreError::Database("a database task did not finish in time".into()))
}

/// Spawns `future` on `runtime`; its output comes on the returned channel.
fn spawn_for<T: Send + 'static>(
    runtime: &tokio::runtime::Handle,
    future: impl std::future::Future<Output = T> + Send + 'static,
) -> std::sync::mpsc::Receiver<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        let _ = tx.send(future.await);
    });
    rx
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.heartbeat.abort();
        // Says it stopped, so its name is free again at once (bounded: a database that does
        // not answer leaves the row to go stale).
        if let Some(runtime) = &self.runtime {
            let inner = self.inner.clone();
            let _ = wait_bounded(
                runtime.handle(),
                async move {
                    let left = tokio::time::timeout(
                        std::time::Duration::from_secs(2),
                        node::leave(&inner),
                    );
                    if !matches!(left.await, Ok(Ok(()))) {
                        tracing::debug!("could not mark this instance stopped; its row goes stale");
                    }
                },
                std::time::Duration::from_secs(3),
            );
        }
        if let Some(runtime) = self.runtime.take() {
            // Dropping a runtime waits for its tasks, which an async caller must not do.
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_ordered_by_time_unique_per_node_and_keep_their_time() {
        let a = NodeIds::new(3, 0);
        let b = NodeIds::new(4, 0);
        let t = 1_700_000_000_000;
        let (a1, a2, b1) = (a.next(t), a.next(t), b.next(t));
        assert!(a1 < a2);
        assert_ne!(a1, b1);
        assert_eq!(a1 & 0xff, 3);
        assert_eq!(b1 & 0xff, 4);
        for id in [a1, a2, b1] {
            assert_eq!(crate::store::keys::id_time_ms(id), t);
        }
        // After a restart, ids continue above the largest stored, whatever the clock says.
        let c = NodeIds::new(3, a2);
        assert!(c.next(t - 10_000) > a2);
    }
}
