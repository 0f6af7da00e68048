//! Storage: the only module that touches sled.
//!
//! Trees (all keys big-endian, see [`keys`]):
//! - `deliveries`: delivery id → [`Delivery`]; `delivery_idx`: (kind, value, id) → () so lists
//!   can be filtered by endpoint, verdict, type or event id without a scan; `latency`: id → µs
//!   (written after the answer, when it is known).
//! - `events`: seq → [`Event`]; `payloads`: seq → raw body; `dedup`: (endpoint, event id) → seq.
//! - `queue`: (due ms, seq) → (): the durable queue, ordered by when an event is due, so
//!   first attempts and retries share one mechanism; `inflight`: seq → () while a worker runs it.
//! - `attempts`: (seq, n) → [`Attempt`]; `meta`: counters.
//! - `fasten_*`: Fasten Connect connections, exports and the resource index (see [`fasten`]).
//!
//! Accepting an event is one transaction over the delivery, dedup, event, payload and queue
//! trees, so a crash never leaves an event without its queue entry or a dedup key without its
//! event. Durability comes from [`Store::commit`] (group commit), which callers await before
//! they acknowledge.

pub mod backup;
mod browse;
pub mod check;
pub mod fasten;
pub mod keys;
pub mod model;
mod prune;
mod writer;

pub use browse::{EventFilter, EventPage, HourCounts};
pub use model::{Attempt, AttemptOutcome, Delivery, Event, EventState, ResponseLog, Verdict};
pub use prune::EventBatch;

use keys::IndexKind;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Transactional, Tree};
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;
pub use writer::Respond;
use writer::{Shared, Writer, WriterTrees};

/// A storage failure. Receivers answer 503 on any of these; nothing is acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("{0}")]
    Shared(Arc<StoreError>),
    #[error("stored record is unreadable ({0})")]
    Corrupt(String),
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A delivery as the receiver saw it, before the store gives it an id.
#[derive(Debug, Clone)]
pub struct DeliveryDraft {
    pub received_at_ms: u64,
    pub endpoint: String,
    pub remote_addr: Option<String>,
    pub request_headers: Vec<(String, String)>,
    pub body: String,
    pub body_bytes: usize,
    pub body_truncated: bool,
    pub verdict: Verdict,
    pub reason: String,
    pub response: ResponseLog,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
}

/// A verified, selected event to accept (or to recognise as a duplicate).
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: String,
    pub event_type: String,
    pub payload: bytes::Bytes,
}

/// What [`Store::accept`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub verdict: Verdict,
    pub delivery_id: u64,
    pub seq: u64,
}

/// Filters for [`Store::list_deliveries`]; all that are set must match.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub endpoint: Option<String>,
    pub verdict: Option<Verdict>,
    pub event_type: Option<String>,
    pub event_id: Option<String>,
    /// Inclusive lower bound on the receive time.
    pub from_ms: Option<u64>,
    /// Inclusive upper bound on the receive time.
    pub to_ms: Option<u64>,
}

impl DeliveryFilter {
    fn matches(&self, d: &Delivery) -> bool {
        self.endpoint.as_ref().is_none_or(|e| *e == d.endpoint)
            && self.verdict.is_none_or(|v| v == d.verdict)
            && self
                .event_type
                .as_ref()
                .is_none_or(|t| Some(t) == d.event_type.as_ref())
            && self
                .event_id
                .as_ref()
                .is_none_or(|i| Some(i) == d.event_id.as_ref())
    }
}

/// One page of deliveries, newest first; `next_cursor` continues below the last one seen.
#[derive(Debug)]
pub struct DeliveryPage {
    pub items: Vec<Delivery>,
    pub next_cursor: Option<u64>,
}

/// What follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Done,
    RetryAt(u64),
    Dead,
}

/// Why a replay was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no such event")]
    NotFound,
    #[error("event is {0}; only done or dead events can be replayed")]
    NotFinished(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Counts for /api/stats.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stats {
    pub deliveries: std::collections::BTreeMap<&'static str, u64>,
    pub events: std::collections::BTreeMap<&'static str, u64>,
    /// Events waiting: queued + retrying.
    pub queue_depth: u64,
    /// How long the longest-waiting due event has waited, in seconds (0 when none is due).
    pub oldest_queued_age_secs: u64,
    /// Rejected deliveries beyond the logging rate: counted, not stored.
    pub rejected_unlogged: u64,
    pub store_bytes: u64,
}

/// In-memory counters, rebuilt from the indexes at open. State counts are signed because a
/// worker can claim an event before the receiver has counted it as queued; a count may dip
/// below zero for that instant and is read as zero.
#[derive(Default)]
struct Counts {
    verdicts: [AtomicU64; 4],
    states: [AtomicI64; 5],
    rejected_unlogged: AtomicU64,
}

impl Counts {
    fn verdict(&self, v: Verdict) -> &AtomicU64 {
        &self.verdicts[v.index()]
    }
    fn state(&self, s: EventState) -> &AtomicI64 {
        &self.states[s.index()]
    }
    fn state_count(&self, s: EventState) -> u64 {
        self.state(s).load(Ordering::Relaxed).max(0) as u64
    }
    fn moved(&self, from: EventState, to: EventState) {
        self.state(from).fetch_sub(1, Ordering::Relaxed);
        self.state(to).fetch_add(1, Ordering::Relaxed);
    }
}

const REJECTED_UNLOGGED: &[u8] = b"rejected_unlogged";
/// Most records one list request examines before it returns a cursor to continue from,
/// so that a filter matching almost nothing cannot make one request scan the whole log.
const LIST_SCAN_BUDGET: usize = 5_000;

/// The hookd data store. Share it as `Arc<Store>`.
pub struct Store {
    db: sled::Db,
    deliveries: Tree,
    delivery_idx: Tree,
    latency: Tree,
    events: Tree,
    payloads: Tree,
    dedup: Tree,
    queue: Tree,
    inflight: Tree,
    attempts: Tree,
    meta: Tree,
    ids: Arc<keys::IdGen>,
    writer: Writer,
    counts: Arc<Counts>,
    work: Arc<Notify>,
    pending_finishes: Arc<std::sync::atomic::AtomicUsize>,
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(tree: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("{tree}: {e}")))
}

fn abort<T>(e: StoreError) -> std::result::Result<T, ConflictableTransactionError<StoreError>> {
    Err(ConflictableTransactionError::Abort(e))
}

fn tx_err(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Sled(e),
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`. `cache_mb` bounds sled's page cache.
    pub fn open(dir: &Path, cache_mb: u64) -> Result<Store> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_mb.saturating_mul(1024 * 1024))
            .mode(sled::Mode::HighThroughput)
            .open()?;
        let tree = |name: &str| db.open_tree(name);
        let ingest = WriterTrees {
            deliveries: tree("deliveries")?,
            delivery_idx: tree("delivery_idx")?,
            dedup: tree("dedup")?,
            events: tree("events")?,
            payloads: tree("payloads")?,
            queue: tree("queue")?,
            inflight: tree("inflight")?,
            attempts: tree("attempts")?,
            latency: tree("latency")?,
        };
        // Ids continue after the largest one stored, whatever the clock says now.
        let floor = [&ingest.deliveries, &ingest.events]
            .iter()
            .filter_map(|t| t.last().ok().flatten())
            .filter_map(|(k, _)| keys::read_u64(&k))
            .max()
            .unwrap_or(0);
        let ids = Arc::new(keys::IdGen::new(floor));
        let counts = Arc::new(Counts::default());
        let work = Arc::new(Notify::new());
        let pending_finishes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let shared = Shared {
            db: db.clone(),
            pending_finishes: pending_finishes.clone(),
            ids: ids.clone(),
            counts: counts.clone(),
            work: work.clone(),
        };
        let store = Store {
            deliveries: ingest.deliveries.clone(),
            delivery_idx: ingest.delivery_idx.clone(),
            dedup: ingest.dedup.clone(),
            events: ingest.events.clone(),
            payloads: ingest.payloads.clone(),
            queue: ingest.queue.clone(),
            latency: ingest.latency.clone(),
            inflight: ingest.inflight.clone(),
            attempts: ingest.attempts.clone(),
            meta: tree("meta")?,
            writer: Writer::start(ingest, shared).map_err(|e| StoreError::Sled(e.into()))?,
            ids,
            counts,
            work,
            pending_finishes,
            db,
        };
        store.recount()?;
        Ok(store)
    }

    /// Rebuilds the in-memory counters from the indexes (keys only for deliveries).
    fn recount(&self) -> Result<()> {
        for v in Verdict::ALL {
            let prefix = keys::index_prefix(IndexKind::Verdict, v.as_str());
            let n = self.delivery_idx.scan_prefix(prefix).keys().count() as u64;
            self.counts.verdict(v).store(n, Ordering::Relaxed);
        }
        #[derive(serde::Deserialize)]
        struct StateOnly {
            state: EventState,
        }
        let mut states = [0i64; 5];
        for item in self.events.iter().values() {
            let s: StateOnly = from_json("events", &item?)?;
            states[s.state.index()] += 1;
        }
        for s in EventState::ALL {
            self.counts
                .state(s)
                .store(states[s.index()], Ordering::Relaxed);
        }
        let unlogged = self
            .meta
            .get(REJECTED_UNLOGGED)?
            .and_then(|v| keys::read_u64(&v))
            .unwrap_or(0);
        self.counts
            .rejected_unlogged
            .store(unlogged, Ordering::Relaxed);
        Ok(())
    }

    /// Returns once every write queued so far is applied and on disk (shutdown).
    pub async fn flush(&self) -> Result<()> {
        self.writer.flush().await.map_err(StoreError::Shared)
    }

    /// Woken whenever an event becomes due now (accept, replay, re-claim).
    pub fn work_notify(&self) -> &Notify {
        &self.work
    }

    /// Events not yet finished: queued, retrying or processing.
    pub fn backlog(&self) -> u64 {
        [
            EventState::Queued,
            EventState::Retrying,
            EventState::Processing,
        ]
        .iter()
        .map(|s| self.counts.state_count(*s))
        .sum()
    }

    /// Records a rejected delivery. Not flushed: nothing was acknowledged. Returns its id.
    pub fn record(&self, draft: DeliveryDraft) -> Result<u64> {
        let id = self.ids.next(draft.received_at_ms);
        let verdict = draft.verdict;
        let d = writer::delivery_record(&draft, id, None);
        (&self.deliveries, &self.delivery_idx)
            .transaction(|(dt, it)| writer::put_delivery(dt, it, &d))
            .map_err(tx_err)?;
        self.counts.verdict(verdict).fetch_add(1, Ordering::Relaxed);
        Ok(id)
    }

    /// Records a delivery that creates no event (filtered) and returns once it is on disk,
    /// so it can be acknowledged.
    pub async fn record_durable(&self, draft: DeliveryDraft) -> Result<u64> {
        self.writer.record(draft).await.map_err(StoreError::Shared)
    }

    /// Counts a rejected delivery that was not stored (beyond the logging rate).
    pub fn count_unlogged_rejection(&self) -> Result<()> {
        let n = self
            .counts
            .rejected_unlogged
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        // Last writer wins; the count is advisory and only grows.
        self.meta.insert(REJECTED_UNLOGGED, &keys::u64_key(n))?;
        Ok(())
    }

    /// Accepts `event` unless its id was already accepted on this endpoint, and records the
    /// delivery with the verdict that applied. `respond` gives the reason and response for a
    /// verdict. Returns once the writes are on disk (group commit): the caller may answer 200.
    pub async fn accept(
        &self,
        draft: DeliveryDraft,
        event: NewEvent,
        respond: Respond,
    ) -> Result<Accepted> {
        self.writer
            .accept(draft, event, respond)
            .await
            .map_err(StoreError::Shared)
    }

    /// Notes how long the answer to a delivery took. Not flushed on its own: latency is
    /// information about the answer, not something acknowledged.
    pub fn set_latency(&self, delivery_id: u64, micros: u64) -> Result<()> {
        self.writer
            .latency(delivery_id, micros)
            .map_err(StoreError::Shared)
    }

    /// One delivery by id.
    pub fn delivery(&self, id: u64) -> Result<Option<Delivery>> {
        let Some(bytes) = self.deliveries.get(keys::u64_key(id))? else {
            return Ok(None);
        };
        let mut d: Delivery = from_json("deliveries", &bytes)?;
        d.latency_us = self
            .latency
            .get(keys::u64_key(id))?
            .and_then(|v| keys::read_u64(&v));
        Ok(Some(d))
    }

    /// Deliveries matching `filter`, newest first, with ids below `before` (the cursor).
    pub fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<DeliveryPage> {
        let lo = filter.from_ms.map(keys::first_id_at).unwrap_or(0);
        let mut hi = filter
            .to_ms
            .map(|t| keys::first_id_at(t.saturating_add(1)))
            .unwrap_or(u64::MAX);
        if let Some(b) = before {
            hi = hi.min(b);
        }
        let mut items = Vec::new();
        if lo >= hi || limit == 0 {
            return Ok(DeliveryPage {
                items,
                next_cursor: None,
            });
        }
        // Walk the most selective index that applies; check the other filters per record.
        let index = [
            filter.event_id.as_deref().map(|v| (IndexKind::EventId, v)),
            filter
                .event_type
                .as_deref()
                .map(|v| (IndexKind::EventType, v)),
            filter.endpoint.as_deref().map(|v| (IndexKind::Endpoint, v)),
            filter.verdict.map(|v| (IndexKind::Verdict, v.as_str())),
        ]
        .into_iter()
        .flatten()
        .next();
        let ids: Box<dyn Iterator<Item = sled::Result<u64>>> = match index {
            Some((kind, value)) => {
                let start = keys::index_key(kind, value, lo);
                let end = keys::index_key(kind, value, hi);
                Box::new(
                    self.delivery_idx
                        .range(start..end)
                        .keys()
                        .rev()
                        .map(|k| k.map(|k| keys::index_key_id(&k).unwrap_or(0))),
                )
            }
            None => Box::new(
                self.deliveries
                    .range(keys::u64_key(lo)..keys::u64_key(hi))
                    .keys()
                    .rev()
                    .map(|k| k.map(|k| keys::read_u64(&k).unwrap_or(0))),
            ),
        };
        let mut last_seen = None;
        for (scanned, id) in ids.enumerate() {
            let id = id?;
            if scanned >= LIST_SCAN_BUDGET {
                return Ok(DeliveryPage {
                    items,
                    next_cursor: last_seen,
                });
            }
            last_seen = Some(id);
            if let Some(d) = self.delivery(id)? {
                if filter.matches(&d) {
                    items.push(d);
                    if items.len() == limit {
                        return Ok(DeliveryPage {
                            items,
                            next_cursor: Some(id),
                        });
                    }
                }
            }
        }
        Ok(DeliveryPage {
            items,
            next_cursor: None,
        })
    }

    /// One event by its seq.
    pub fn event(&self, seq: u64) -> Result<Option<Event>> {
        self.events
            .get(keys::u64_key(seq))?
            .map(|b| from_json("events", &b))
            .transpose()
    }

    /// The stored body of an event.
    pub fn payload(&self, seq: u64) -> Result<Option<bytes::Bytes>> {
        Ok(self
            .payloads
            .get(keys::u64_key(seq))?
            .map(|v| bytes::Bytes::copy_from_slice(&v)))
    }

    /// Every attempt of an event, in order.
    pub fn attempts(&self, seq: u64) -> Result<Vec<Attempt>> {
        self.attempts
            .scan_prefix(keys::u64_key(seq))
            .values()
            .map(|v| from_json("attempts", &v?))
            .collect()
    }

    /// The seq of the event accepted on `endpoint` with this event id.
    pub fn find_event(&self, endpoint: &str, event_id: &str) -> Result<Option<u64>> {
        Ok(self
            .dedup
            .get(keys::dedup_key(endpoint, event_id))?
            .and_then(|v| keys::read_u64(&v)))
    }

    /// When the first queued event is due (ms), if any.
    pub fn next_due(&self) -> Result<Option<u64>> {
        Ok(self
            .queue
            .first()?
            .and_then(|(key, _)| keys::parse_queue_key(&key))
            .map(|(due, _)| due))
    }

    /// Takes up to `max` due events off the queue, marks them `processing`, and returns
    /// them with their payloads, in queue order.
    pub async fn claim(&self, now_ms: u64, max: usize) -> Result<Vec<(Event, bytes::Bytes)>> {
        let events = self
            .writer
            .claim(now_ms, max)
            .await
            .map_err(StoreError::Shared)?;
        events
            .into_iter()
            .map(|e| Ok((self.payload(e.seq)?.unwrap_or_default(), e)))
            .map(|r: Result<_>| r.map(|(p, e)| (e, p)))
            .collect()
    }

    /// Records an attempt and moves the event on: done, back on the queue, or dead. Queued
    /// to the writer, which applies it before any later claim; not flushed on its own (a lost
    /// result only means the attempt runs again).
    pub fn finish(&self, seq: u64, attempt: Attempt, next: Next) -> Result<()> {
        self.pending_finishes.fetch_add(1, Ordering::Relaxed);
        self.writer.finish(seq, attempt, next).map_err(|e| {
            self.pending_finishes.fetch_sub(1, Ordering::Relaxed);
            StoreError::Shared(e)
        })
    }

    /// Whether attempt results are on their way to the store. While they are, the queue's
    /// next due time is not known yet; the store's work notification follows each of them.
    pub fn finishes_pending(&self) -> bool {
        self.pending_finishes.load(Ordering::Relaxed) > 0
    }

    /// Puts events that were `processing` when the process stopped back on the queue
    /// (at-least-once: their attempt never finished). Run at start-up, before workers start.
    pub fn requeue_inflight(&self, now_ms: u64) -> Result<usize> {
        let mut n = 0;
        for key in self.inflight.iter().keys() {
            let key = key?;
            let Some(seq) = keys::read_u64(&key) else {
                continue;
            };
            let moved = (&self.inflight, &self.queue, &self.events)
                .transaction(|(inf, q, ev)| {
                    inf.remove(&key)?;
                    let updated = writer::update_event(ev, seq, |e| {
                        let before = e.state;
                        e.state = EventState::Queued;
                        e.next_attempt_at_ms = Some(now_ms);
                        before
                    })?;
                    if updated.is_some() {
                        q.insert(&keys::queue_key(now_ms, seq), &[])?;
                    }
                    Ok(updated)
                })
                .map_err(tx_err)?;
            if let Some((_, before)) = moved {
                self.counts.moved(before, EventState::Queued);
                n += 1;
            }
        }
        if n > 0 {
            self.work.notify_one();
        }
        Ok(n)
    }

    /// Re-queues a done or dead event for another round of attempts.
    pub fn replay(&self, seq: u64, now_ms: u64) -> Result<Event, ReplayError> {
        let result = (&self.events, &self.queue)
            .transaction(|(ev, q)| {
                let Some(bytes) = ev.get(keys::u64_key(seq))? else {
                    return Ok(Err(ReplayError::NotFound));
                };
                let mut event: Event = match from_json("events", &bytes) {
                    Ok(e) => e,
                    Err(e) => return abort(e),
                };
                if !matches!(event.state, EventState::Done | EventState::Dead) {
                    return Ok(Err(ReplayError::NotFinished(event.state.as_str())));
                }
                let before = event.state;
                event.state = EventState::Queued;
                event.next_attempt_at_ms = Some(now_ms);
                event.replays += 1;
                event.attempts_before_replay = event.attempts;
                match to_json(&event) {
                    Ok(b) => ev.insert(&keys::u64_key(seq), b)?,
                    Err(e) => return abort(e),
                };
                q.insert(&keys::queue_key(now_ms, seq), &[])?;
                Ok(Ok((event, before)))
            })
            .map_err(tx_err)??;
        let (event, before) = result;
        self.counts.moved(before, EventState::Queued);
        self.work.notify_one();
        Ok(event)
    }

    /// Counters and queue figures for /api/stats.
    pub fn stats(&self, now_ms: u64) -> Result<Stats> {
        let deliveries = Verdict::ALL
            .iter()
            .map(|v| (v.as_str(), self.counts.verdict(*v).load(Ordering::Relaxed)))
            .collect();
        let events = EventState::ALL
            .iter()
            .map(|s| (s.as_str(), self.counts.state_count(*s)))
            .collect();
        let oldest_queued_age_secs = match self.queue.first()? {
            Some((key, _)) => keys::parse_queue_key(&key)
                .map(|(due, _)| now_ms.saturating_sub(due) / 1000)
                .unwrap_or(0),
            None => 0,
        };
        Ok(Stats {
            deliveries,
            events,
            queue_depth: self.counts.state_count(EventState::Queued)
                + self.counts.state_count(EventState::Retrying),
            oldest_queued_age_secs,
            rejected_unlogged: self.counts.rejected_unlogged.load(Ordering::Relaxed),
            store_bytes: self.db.size_on_disk()?,
        })
    }
}
