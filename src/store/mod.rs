//! Storage: the only module that touches sled.
//!
//! Format 5 (see the `keys` module): every record lives in one tree, `log`, under a first
//! byte per kind — deliveries (an accepted one also holds its event: identity and payload,
//! written once), event status (written from the first claim on), dedup keys, the queue of
//! events claimed before, attempts, the secondary indexes, and the claim cursor after which
//! new events are found. An accepted delivery is two keys (delivery, dedup) in one atomic
//! `apply_batch`, made durable by the writer's group commit before anyone is answered. The
//! indexes the UI filters by are written behind that, by the indexer (handed each delivery
//! in memory by its writer), from a durable watermark, mostly as chunks of ids (one key per
//! value per pass); the answer's latency rides along in the verdict chunk, so it costs no
//! write of its own. `meta` records the data format
//! and a counter. Events of older formats keep records of their own (and their queue
//! entries).
//!
//! Files: `writer` (group commit), `ingest` (receiving), `queue` (claiming and results),
//! `browse` (reads for the UI), `search` (index choice, body search, counts, duplicates),
//! `counts` (counters and stats), `indexer` (with `chunks`, `event_ids` and `reindex`: the
//! indexes' forms and their rebuild), `prune` (retention), `check` (`verify-data`),
//! `snapshot` (backup and compaction), `open` (guarded opening, the format check) and
//! `migrate` (format 1 to 2).

mod apply;
mod browse;
pub mod check;
mod chunks;
mod codec;
mod counts;
mod event_ids;
pub mod exports;
pub mod fasten;
mod indexer;
mod ingest;
mod keys;
mod migrate;
pub mod model;
mod open;
pub mod pg;
mod prune;
mod queue;
mod reindex;
mod seam;
mod search;
mod sessions;
pub mod snapshot;
#[cfg(test)]
pub(crate) mod testing;
mod tx;
mod writer;

/// The old name of [`snapshot`].
pub use snapshot as backup;

pub use browse::{type_matches, DeliveryFilter, DeliveryPage, EventFilter, EventPage, HourCounts};
pub use counts::Stats;
pub use exports::{safe_name, ExportFiles};
pub use ingest::{Accepted, DeliveryDraft, NewEvent};
pub use model::{Attempt, AttemptOutcome, Delivery, Event, EventState, ResponseLog, Verdict};
pub use open::FORMAT;
pub use prune::{LastPrune, PruneBatch, PruneTurn};
pub use queue::{Next, ReplayError};
pub use seam::Store;
pub use search::{Count, Original};
pub use writer::Respond;

use counts::Counts;
use indexer::Indexer;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use writer::Writer;

/// What went wrong in the store. Receivers answer 503 on any of these; nothing is
/// acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the disk holding the store is full ({0})")]
    DiskFull(String),
    #[error("reading or writing the store failed: {0}")]
    Io(String),
    #[error(
        "the store in {path} is damaged ({detail}); restore a backup into it, or move it aside \
         and start with an empty store; `hookd verify-data` lists what it finds"
    )]
    Damaged { path: PathBuf, detail: String },
    #[error(
        "the store in {0} is in use by another process (is another hookd using this data_dir?)"
    )]
    Locked(PathBuf),
    #[error(
        "the store in {path} has data format {found}, written by a newer hookd; this hookd reads \
         format {known}: run the newer hookd, or restore a backup made by this version"
    )]
    NewerFormat {
        path: PathBuf,
        found: u64,
        known: u64,
    },
    #[error("{0} holds no hookd store")]
    NotAStore(PathBuf),
    #[error("{0} already exists; a copy goes into a new directory")]
    Exists(PathBuf),
    #[error("record {record} is unreadable ({detail})")]
    Unreadable { record: String, detail: String },
    #[error("a record cannot be encoded ({0})")]
    Encode(String),
    #[error("the store's writer has stopped")]
    WriterStopped,
    #[error("{0}")]
    Shared(Arc<StoreError>),
    /// PostgreSQL (cluster mode) refused a statement or could not be reached.
    #[error("the database failed: {0}")]
    Database(String),
    #[error(
        "the database holds hookd schema version {found}, written by a newer hookd; this hookd \
         knows version {known}: run the newer hookd on every instance"
    )]
    NewerSchema { found: i32, known: i32 },
    #[error("applying database schema version {version} failed: {detail}")]
    Migration { version: i32, detail: String },
    #[error("{0}")]
    Settings(String),
    /// The database aborted a transaction that conflicted with another one (a deadlock or a
    /// serialization failure); running it again is safe.
    #[error("the database aborted a conflicting transaction: {0}")]
    Conflict(String),
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Converts sled's errors; sled's types stay inside this module.
trait Db<T> {
    fn db(self) -> Result<T>;
}

impl<T> Db<T> for sled::Result<T> {
    fn db(self) -> Result<T> {
        self.map_err(from_sled)
    }
}

fn from_sled(e: sled::Error) -> StoreError {
    match e {
        sled::Error::Io(e) => from_io(e),
        sled::Error::Corruption { .. } => StoreError::Io(e.to_string()),
        other => StoreError::Io(other.to_string()),
    }
}

fn from_io(e: std::io::Error) -> StoreError {
    // ENOSPC (28) and EDQUOT (122): the disk or the quota is full.
    match e.raw_os_error() {
        Some(28) | Some(122) => StoreError::DiskFull(e.to_string()),
        _ if e.kind() == std::io::ErrorKind::StorageFull => StoreError::DiskFull(e.to_string()),
        _ => StoreError::Io(e.to_string()),
    }
}

/// The open database. Replaced as a whole when the store is reopened after a write failure:
/// sled refuses every write after an I/O error (a full disk) until it is opened again.
struct Handles {
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
}

impl Handles {
    fn new(db: sled::Db) -> Result<Handles> {
        Ok(Handles {
            log: db.open_tree(keys::LOG_TREE).db()?,
            meta: db.open_tree(keys::META_TREE).db()?,
            db,
        })
    }
}

/// What the writer, the indexer and the read side share.
struct Shared {
    dir: PathBuf,
    cache_mb: u64,
    handles: std::sync::RwLock<Option<Arc<Handles>>>,
    /// Set by a failed write: the next batch reopens the database first.
    needs_reopen: AtomicBool,
    /// How many times the database was reopened: tells the flusher which batches were
    /// applied on an opening whose flush failed.
    openings: AtomicU64,
    ids: keys::IdGen,
    counts: Counts,
    work: Notify,
    /// Attempt results sent but not yet applied (see [`Store::finishes_pending`]).
    pending_finishes: AtomicUsize,
    /// Latencies of answers not yet written by the indexer (delivery id → µs).
    latencies: Mutex<HashMap<u64, u64>>,
    /// The delivery id up to which the indexes are complete.
    watermark: AtomicU64,
    /// Set by a test: the next indexing pass fails before it writes.
    #[cfg(test)]
    fail_next_pass: AtomicBool,
    /// The most records retention has handled under one hold of `mutate` (tests read it).
    #[cfg(test)]
    largest_prune_hold: AtomicUsize,
    /// Deliveries written but not yet indexed, handed to the indexer in memory.
    fresh: indexer::Fresh,
    /// Held by everything that reads records and writes back what it decided (the writer's
    /// batches, retention's batches), so each such batch is serializable without sled's
    /// transactions.
    mutate: Mutex<()>,
    /// The smallest id a write batch in progress may hold (`u64::MAX` between batches): the
    /// indexer stays below it, so it never passes a delivery not yet in the log.
    batch_floor: AtomicU64,
    /// Held while index entries are written (see `indexer`).
    indexing: Mutex<()>,
    /// Whether the writer thread is running.
    writer_alive: AtomicBool,
    /// The last write batch's failure, until a later batch succeeds.
    write_error: Mutex<Option<String>>,
    /// Events whose status said `processing` when the store was opened: attempts a stop cut
    /// short, taken by [`SledStore::requeue_inflight`].
    processing_at_open: Mutex<Vec<u64>>,
}

impl Shared {
    /// The open database; an error while it is being reopened (or could not be).
    fn h(&self) -> Result<Arc<Handles>> {
        self.handles
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| {
                StoreError::Io("the store is being reopened after a write failure".into())
            })
    }

    /// Closes and reopens the database (see [`Handles`]), then recounts: the batch that
    /// failed may or may not have reached the disk (nobody was answered for it).
    fn reopen(&self) -> Result<()> {
        // No indexing pass runs across the swap: one would write what it took from the feed
        // (deliveries the failed flush may have lost) into the new database.
        let _indexing = self.indexing.lock().unwrap_or_else(|p| p.into_inner());
        let mut slot = self.handles.write().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = slot.take() {
            // Readers finish with their copies within moments; sled keeps its lock until
            // the last one is gone.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            let mut old = old;
            loop {
                match Arc::try_unwrap(old) {
                    Ok(h) => {
                        drop(h);
                        break;
                    }
                    Err(still) if std::time::Instant::now() < deadline => {
                        old = still;
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    Err(_) => break,
                }
            }
        }
        let db = open::open_guarded(&self.dir, self.cache_mb)?;
        let h = Handles::new(db)?;
        // The indexes and watermark written since the last flush may be gone too.
        self.watermark
            .store(tx::stored_u64(&h.log, keys::WATERMARK)?, Ordering::Relaxed);
        *slot = Some(Arc::new(h));
        // Still under the handles' lock: a delivery whose id was handed out before this
        // point may have gone to the old database, so every such id is read from the log.
        // (Receivers take their id first and the handles after.)
        self.fresh.forget(self.ids.last());
        self.openings.fetch_add(1, Ordering::Relaxed);
        drop(slot);
        // Events processing now are being run by this process's workers: nothing to re-queue.
        counts::recount(self)?;
        tracing::warn!("the store was reopened after a write failure");
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // A panic while holding it left no half-applied batch (batches are atomic).
        self.mutate.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Latency entries kept in memory at most; beyond it they are dropped (the figure is
/// information about the answer, not something acknowledged).
pub(crate) const MAX_PENDING_LATENCIES: usize = 200_000;

/// The store's health from its writer's state: `Err` with the reason when the writer has
/// stopped or its last batch failed.
pub(crate) fn health(
    alive: &AtomicBool,
    error: &Mutex<Option<String>>,
) -> std::result::Result<(), String> {
    if !alive.load(Ordering::Relaxed) {
        return Err("the store's writer has stopped; restart hookd".into());
    }
    match error.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        Some(e) => Err(format!("the last write to the store failed: {e}")),
        None => Ok(()),
    }
}

/// Clears a writer's last failure after a batch succeeded: whether there was one (so the
/// recovery is logged once).
pub(crate) fn recovered(error: &Mutex<Option<String>>) -> bool {
    error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .is_some()
}

/// The embedded (sled) store of one hookd, behind [`Store`].
pub struct SledStore {
    dir: PathBuf,
    shared: Arc<Shared>,
    writer: Writer,
    indexer: Indexer,
    sessions: sessions::Sessions,
}

impl SledStore {
    /// Opens (or creates) the store in `dir`, migrating a format 1 store (hookd 0.1.0) in
    /// place first. `cache_mb` bounds sled's page cache. A damaged store is refused within
    /// seconds, never by a panic or a hang.
    pub fn open(dir: &Path, cache_mb: u64) -> Result<SledStore> {
        let h = Handles::new(open::open(dir, cache_mb)?)?;
        // Ids continue after the largest one stored, whatever the clock says now, and after
        // the claim cursor (the records it passed may all be pruned): a new event's id must
        // lie after the cursor, or no claim would find it.
        let floor = tx::last_id(&h.log)?.max(tx::stored_u64(&h.log, keys::CURSOR)?);
        let watermark = tx::stored_u64(&h.log, keys::WATERMARK)?;
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            cache_mb,
            handles: std::sync::RwLock::new(Some(Arc::new(h))),
            needs_reopen: AtomicBool::new(false),
            openings: AtomicU64::new(0),
            ids: keys::IdGen::new(floor),
            counts: Counts::default(),
            work: Notify::new(),
            pending_finishes: AtomicUsize::new(0),
            latencies: Mutex::new(HashMap::new()),
            watermark: AtomicU64::new(watermark),
            #[cfg(test)]
            fail_next_pass: AtomicBool::new(false),
            #[cfg(test)]
            largest_prune_hold: AtomicUsize::new(0),
            fresh: indexer::Fresh::new(floor),
            mutate: Mutex::new(()),
            indexing: Mutex::new(()),
            batch_floor: AtomicU64::new(u64::MAX),
            writer_alive: AtomicBool::new(true),
            write_error: Mutex::new(None),
            processing_at_open: Mutex::new(Vec::new()),
        });
        let processing = counts::recount(&shared)?;
        *shared
            .processing_at_open
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = processing;
        let writer = Writer::start(shared.clone()).map_err(from_io)?;
        let indexer = Indexer::start(shared.clone()).map_err(from_io)?;
        Ok(SledStore {
            dir: dir.to_path_buf(),
            shared,
            writer,
            indexer,
            sessions: sessions::Sessions::default(),
        })
    }

    /// Readers at once: sled reads from its page cache on the caller's thread, so this
    /// bounds the threads that admin requests take, not anything the writer needs.
    pub fn read_concurrency(&self) -> usize {
        8
    }

    /// The directory of the store.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Returns once every write queued so far is applied and on disk (shutdown).
    pub async fn flush(&self) -> Result<()> {
        self.writer.flush().await
    }

    /// Woken whenever an event becomes due now (accept, replay, re-claim).
    pub fn work_notify(&self) -> &Notify {
        &self.shared.work
    }

    /// Whether the store can take writes: `Err` with the reason when its writer has stopped
    /// or its last write failed (a full disk, say). Clears itself once a write succeeds.
    pub fn health(&self) -> std::result::Result<(), String> {
        health(&self.shared.writer_alive, &self.shared.write_error)
    }

    /// Writes the indexes up to every delivery stored so far (the indexer otherwise trails
    /// the log by a second). For tools and tests; the read side does not need it.
    pub fn index_now(&self) -> Result<()> {
        indexer::catch_up(&self.shared, self.shared.ids.last())
    }

    /// Stops the writer thread as a panic would (what `/healthz` and the watchdog must
    /// notice). Only for tests of that.
    #[doc(hidden)]
    pub fn crash_writer(&self) {
        self.writer.crash();
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        // The writer first: while it drains its last writes it may wait for the indexer.
        self.writer.stop();
        self.indexer.stop();
        // A clean stop leaves the indexes complete: the next start's readers then have no
        // unindexed tail to filter (after a burst, up to `indexer::HOLD` deliveries).
        if let Err(e) = indexer::catch_up(&self.shared, self.shared.ids.last()) {
            tracing::warn!(error = %e, "indexes left incomplete; the next start completes them");
        }
    }
}
