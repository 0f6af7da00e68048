//! The writer: one thread applies the hot-path writes in batches, and makes each batch that
//! holds an acknowledged write durable with one flush before anyone is answered (group commit).
//!
//! Requests queue their write here and wait. The thread takes every write that has arrived,
//! applies them all in one sled transaction (dedup check, delivery record, event, payload,
//! queue entry; and the pipeline's claims and attempt results), calls `Db::flush` once, and
//! only then replies. Under load a batch holds dozens of writes, so the cost of the
//! transaction and of the fsync is shared, writers never contend for sled's transaction lock,
//! and the async workers never block on it. Dedup decisions are made by this one thread, so
//! two deliveries of one id in the same batch still give one event.
//!
//! Claims and attempt results need no flush of their own: losing one in a crash only means
//! an attempt runs again (processing is at-least-once). They ride along with the next flush,
//! or sled's periodic one.

use super::keys;
use super::model::{Attempt, AttemptOutcome, Delivery, Event, EventState, ResponseLog, Verdict};
use super::{
    abort, from_json, to_json, tx_err, Accepted, Counts, DeliveryDraft, NewEvent, Next, StoreError,
};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::{Transactional, Tree};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Notify};

/// Gives the reason and response recorded for a verdict (the writer decides between
/// accepted and duplicate).
pub type Respond = fn(Verdict) -> (String, ResponseLog);

/// Most writes applied in one transaction: bounds the time one batch holds sled's lock.
const MAX_BATCH: usize = 256;

type Reply<T> = oneshot::Sender<Result<T, Arc<StoreError>>>;

pub(super) enum Write {
    Accept {
        draft: DeliveryDraft,
        event: NewEvent,
        respond: Respond,
        reply: Reply<Accepted>,
    },
    Record {
        draft: DeliveryDraft,
        reply: Reply<u64>,
    },
    Claim {
        now_ms: u64,
        max: usize,
        reply: Reply<Vec<Event>>,
    },
    /// Nobody waits for an attempt's result: the worker moves on, and the writer applies it
    /// before any later claim (the channel keeps order).
    Finish {
        seq: u64,
        attempt: Attempt,
        next: Next,
    },
    /// How long the answer to a delivery took; known only after the answer, and not worth
    /// a flush of its own.
    Latency { delivery_id: u64, micros: u64 },
    /// Makes everything written so far durable.
    Flush { reply: Reply<()> },
}

/// The trees the writer's transactions touch.
#[derive(Clone)]
pub(super) struct WriterTrees {
    pub deliveries: Tree,
    pub delivery_idx: Tree,
    pub dedup: Tree,
    pub events: Tree,
    pub payloads: Tree,
    pub queue: Tree,
    pub inflight: Tree,
    pub attempts: Tree,
    pub latency: Tree,
}

/// What the writer thread needs besides the trees.
pub(super) struct Shared {
    pub db: sled::Db,
    /// Attempt results sent but not yet applied (see `Store::finishes_pending`).
    pub pending_finishes: Arc<std::sync::atomic::AtomicUsize>,
    pub ids: Arc<keys::IdGen>,
    pub counts: Arc<Counts>,
    pub work: Arc<Notify>,
}

/// Handle to the writer thread. Dropping it stops the thread and waits for it, so the
/// database is closed (and its lock released) when the store is dropped.
pub(super) struct Writer {
    tx: Option<mpsc::UnboundedSender<Write>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn stopped() -> Arc<StoreError> {
    Arc::new(StoreError::Sled(sled::Error::Unsupported(
        "the store's writer has stopped".into(),
    )))
}

impl Writer {
    pub fn start(trees: WriterTrees, shared: Shared) -> std::io::Result<Writer> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Write>();
        let thread = std::thread::Builder::new()
            .name("hookd-writer".into())
            .spawn(move || {
                let mut batch = Vec::new();
                while let Some(first) = rx.blocking_recv() {
                    batch.push(first);
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(more) => batch.push(more),
                            Err(_) => break,
                        }
                    }
                    run_batch(&trees, &shared, std::mem::take(&mut batch));
                }
            })?;
        Ok(Writer {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    pub async fn accept(
        &self,
        draft: DeliveryDraft,
        event: NewEvent,
        respond: Respond,
    ) -> Result<Accepted, Arc<StoreError>> {
        let (reply, rx) = oneshot::channel();
        self.send(Write::Accept {
            draft,
            event,
            respond,
            reply,
        })?;
        rx.await.map_err(|_| stopped())?
    }

    pub async fn record(&self, draft: DeliveryDraft) -> Result<u64, Arc<StoreError>> {
        let (reply, rx) = oneshot::channel();
        self.send(Write::Record { draft, reply })?;
        rx.await.map_err(|_| stopped())?
    }

    pub async fn claim(&self, now_ms: u64, max: usize) -> Result<Vec<Event>, Arc<StoreError>> {
        let (reply, rx) = oneshot::channel();
        self.send(Write::Claim { now_ms, max, reply })?;
        rx.await.map_err(|_| stopped())?
    }

    pub fn finish(&self, seq: u64, attempt: Attempt, next: Next) -> Result<(), Arc<StoreError>> {
        self.send(Write::Finish { seq, attempt, next })
    }

    pub fn latency(&self, delivery_id: u64, micros: u64) -> Result<(), Arc<StoreError>> {
        self.send(Write::Latency {
            delivery_id,
            micros,
        })
    }

    pub async fn flush(&self) -> Result<(), Arc<StoreError>> {
        let (reply, rx) = oneshot::channel();
        self.send(Write::Flush { reply })?;
        rx.await.map_err(|_| stopped())?
    }

    fn send(&self, write: Write) -> Result<(), Arc<StoreError>> {
        let tx = self.tx.as_ref().ok_or_else(stopped)?;
        tx.send(write).map_err(|_| stopped())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A write with its ids assigned and, for a claim, the queue keys it may take — all decided
/// before the transaction, which may run more than once.
struct Prepared {
    write: Write,
    delivery_id: u64,
    seq: u64,
    queue_keys: Vec<sled::IVec>,
}

/// What one write came to.
#[derive(Clone)]
enum Outcome {
    Accepted(Accepted),
    Recorded(u64),
    /// Claimed events, each with the state it left.
    Claimed(Vec<(Event, EventState)>),
    /// The event after the attempt, with the state it left.
    Finished(Option<(Event, EventState)>),
    Flushed,
}

pub(super) fn delivery_record(draft: &DeliveryDraft, id: u64, event_seq: Option<u64>) -> Delivery {
    Delivery {
        id,
        received_at_ms: draft.received_at_ms,
        endpoint: draft.endpoint.clone(),
        remote_addr: draft.remote_addr.clone(),
        request_headers: draft.request_headers.clone(),
        body: draft.body.clone(),
        body_bytes: draft.body_bytes,
        body_truncated: draft.body_truncated,
        verdict: draft.verdict,
        reason: draft.reason.clone(),
        response: draft.response.clone(),
        event_id: draft.event_id.clone(),
        event_type: draft.event_type.clone(),
        event_seq,
        latency_us: None,
    }
}

/// The delivery index keys of a record: by endpoint, verdict, type and event id.
pub(super) fn index_entries(d: &Delivery) -> Vec<Vec<u8>> {
    use keys::IndexKind;
    let mut entries = vec![
        keys::index_key(IndexKind::Endpoint, &d.endpoint, d.id),
        keys::index_key(IndexKind::Verdict, d.verdict.as_str(), d.id),
    ];
    if let Some(t) = &d.event_type {
        entries.push(keys::index_key(IndexKind::EventType, t, d.id));
    }
    if let Some(i) = &d.event_id {
        entries.push(keys::index_key(IndexKind::EventId, i, d.id));
    }
    entries
}

pub(super) fn put_delivery(
    deliveries: &TransactionalTree,
    idx: &TransactionalTree,
    d: &Delivery,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    let bytes = match to_json(d) {
        Ok(b) => b,
        Err(e) => return abort(e),
    };
    deliveries.insert(&keys::u64_key(d.id), bytes)?;
    for key in index_entries(d) {
        idx.insert(key, &[])?;
    }
    Ok(())
}

/// The first `max` queue keys due by `now_ms` that no earlier claim in the batch took.
/// Read outside the transaction (sled transactions cannot iterate); the transaction then
/// removes each key, and skips any that is gone by then.
fn due_keys(queue: &Tree, now_ms: u64, max: usize, taken: &mut Vec<sled::IVec>) -> Vec<sled::IVec> {
    let mut keys = Vec::new();
    for item in queue.iter().keys() {
        let Ok(key) = item else { break };
        match keys::parse_queue_key(&key) {
            Some((due, _)) if due <= now_ms => {}
            _ => break,
        }
        if taken.contains(&key) {
            continue;
        }
        taken.push(key.clone());
        keys.push(key);
        if keys.len() >= max {
            break;
        }
    }
    keys
}

fn run_batch(trees: &WriterTrees, shared: &Shared, batch: Vec<Write>) {
    let mut taken = Vec::new();
    let prepared: Vec<Prepared> = batch
        .into_iter()
        .map(|write| {
            let (now, queue_keys) = match &write {
                Write::Accept { draft, .. } | Write::Record { draft, .. } => {
                    (draft.received_at_ms, Vec::new())
                }
                Write::Claim { now_ms, max, .. } => {
                    (*now_ms, due_keys(&trees.queue, *now_ms, *max, &mut taken))
                }
                Write::Finish { .. } | Write::Flush { .. } | Write::Latency { .. } => {
                    (0, Vec::new())
                }
            };
            let ingest = matches!(write, Write::Accept { .. } | Write::Record { .. });
            Prepared {
                delivery_id: if ingest { shared.ids.next(now) } else { 0 },
                seq: if ingest { shared.ids.next(now) } else { 0 },
                queue_keys,
                write,
            }
        })
        .collect();
    let durable = prepared.iter().any(|p| {
        matches!(
            p.write,
            Write::Accept { .. } | Write::Record { .. } | Write::Flush { .. }
        )
    });
    let applied = apply(trees, &prepared).and_then(|outcomes| {
        if durable {
            shared.db.flush()?;
        }
        Ok(outcomes)
    });
    let outcomes = match applied {
        Ok(outcomes) => outcomes,
        Err(e) => {
            tracing::error!(error = %e, "write batch failed; its requests get 503");
            let e = Arc::new(e);
            for p in prepared {
                // A requester that went away no longer listens; nothing to do.
                match p.write {
                    Write::Accept { reply, .. } => {
                        let _ = reply.send(Err(e.clone()));
                    }
                    Write::Record { reply, .. } => {
                        let _ = reply.send(Err(e.clone()));
                    }
                    Write::Claim { reply, .. } => {
                        let _ = reply.send(Err(e.clone()));
                    }
                    Write::Flush { reply } => {
                        let _ = reply.send(Err(e.clone()));
                    }
                    Write::Latency { .. } => {}
                    Write::Finish { seq, .. } => {
                        // The event stays claimed; the next start re-queues it.
                        shared.pending_finishes.fetch_sub(1, Ordering::Relaxed);
                        tracing::error!(seq, "an attempt's result was not recorded");
                    }
                }
            }
            return;
        }
    };
    let counts = &shared.counts;
    let mut wake = false;
    for (p, outcome) in prepared.into_iter().zip(outcomes) {
        match (p.write, outcome) {
            (Write::Accept { reply, .. }, Outcome::Accepted(a)) => {
                counts.verdict(a.verdict).fetch_add(1, Ordering::Relaxed);
                if a.verdict == Verdict::Accepted {
                    counts
                        .state(EventState::Queued)
                        .fetch_add(1, Ordering::Relaxed);
                    wake = true;
                }
                let _ = reply.send(Ok(a));
            }
            (Write::Record { draft, reply }, Outcome::Recorded(id)) => {
                counts
                    .verdict(draft.verdict)
                    .fetch_add(1, Ordering::Relaxed);
                let _ = reply.send(Ok(id));
            }
            (Write::Claim { reply, .. }, Outcome::Claimed(events)) => {
                for (_, before) in &events {
                    counts.moved(*before, EventState::Processing);
                }
                let _ = reply.send(Ok(events.into_iter().map(|(e, _)| e).collect()));
            }
            (Write::Finish { .. }, Outcome::Finished(event)) => {
                if let Some((e, before)) = &event {
                    counts.moved(*before, e.state);
                }
                shared.pending_finishes.fetch_sub(1, Ordering::Relaxed);
                // The dispatcher waits for results it has not seen (a retry's new due time).
                wake = true;
            }
            (Write::Flush { reply }, Outcome::Flushed) => {
                let _ = reply.send(Ok(()));
            }
            (Write::Latency { .. }, Outcome::Flushed) => {}
            _ => unreachable!("outcomes follow the order and kind of the writes"),
        }
    }
    if wake {
        shared.work.notify_one();
    }
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

/// Reads, changes and writes back one event inside a transaction; `None` if it is gone.
pub(super) fn update_event<T>(
    events: &TransactionalTree,
    seq: u64,
    change: impl FnOnce(&mut Event) -> T,
) -> TxResult<Option<(Event, T)>> {
    let Some(bytes) = events.get(keys::u64_key(seq))? else {
        return Ok(None);
    };
    let mut event: Event = match from_json("events", &bytes) {
        Ok(e) => e,
        Err(e) => return abort(e),
    };
    let out = change(&mut event);
    match to_json(&event) {
        Ok(b) => events.insert(&keys::u64_key(seq), b)?,
        Err(e) => return abort(e),
    };
    Ok(Some((event, out)))
}

fn claim(
    q: &TransactionalTree,
    inf: &TransactionalTree,
    ev: &TransactionalTree,
    queue_keys: &[sled::IVec],
) -> TxResult<Vec<(Event, EventState)>> {
    let mut claimed = Vec::new();
    for key in queue_keys {
        if q.remove(key)?.is_none() {
            continue;
        }
        let Some((_, seq)) = keys::parse_queue_key(key) else {
            continue;
        };
        let updated = update_event(ev, seq, |e| {
            let before = e.state;
            e.state = EventState::Processing;
            e.next_attempt_at_ms = None;
            before
        })?;
        match updated {
            Some(pair) => {
                inf.insert(&keys::u64_key(seq), &[])?;
                claimed.push(pair);
            }
            // A queue entry whose event is gone (pruned): dropped with the remove above.
            None => tracing::warn!(seq, "queue entry without an event was dropped"),
        }
    }
    Ok(claimed)
}

fn finish(
    (ev, inf, q, at): (
        &TransactionalTree,
        &TransactionalTree,
        &TransactionalTree,
        &TransactionalTree,
    ),
    seq: u64,
    attempt: &Attempt,
    next: Next,
) -> TxResult<Option<(Event, EventState)>> {
    let attempt_bytes = match to_json(attempt) {
        Ok(b) => b,
        Err(e) => return abort(e),
    };
    inf.remove(&keys::u64_key(seq))?;
    at.insert(&keys::attempt_key(seq, attempt.number), attempt_bytes)?;
    let updated = update_event(ev, seq, |e| {
        let before = e.state;
        e.attempts = attempt.number;
        e.last_error = match attempt.outcome {
            AttemptOutcome::Ok => None,
            AttemptOutcome::Error => Some(attempt.detail.clone()),
        };
        (e.state, e.next_attempt_at_ms) = match next {
            Next::Done => (EventState::Done, None),
            Next::Dead => (EventState::Dead, None),
            Next::RetryAt(at) => (EventState::Retrying, Some(at)),
        };
        before
    })?;
    if let (Some(_), Next::RetryAt(due)) = (&updated, next) {
        q.insert(&keys::queue_key(due, seq), &[])?;
    }
    Ok(updated)
}

fn apply(trees: &WriterTrees, batch: &[Prepared]) -> Result<Vec<Outcome>, StoreError> {
    let t = trees;
    let all = (
        &t.deliveries,
        &t.delivery_idx,
        &t.dedup,
        &t.events,
        &t.payloads,
        &t.queue,
        &t.inflight,
        &t.attempts,
        &t.latency,
    );
    all.transaction(|(dt, it, dd, ev, pl, q, inf, at, lat)| {
        // Ids accepted earlier in this same batch are not in `dedup` yet for `get`.
        let mut fresh: HashMap<Vec<u8>, u64> = HashMap::new();
        let mut outcomes = Vec::with_capacity(batch.len());
        for p in batch {
            match &p.write {
                Write::Claim { .. } => {
                    outcomes.push(Outcome::Claimed(claim(q, inf, ev, &p.queue_keys)?));
                }
                Write::Finish { seq, attempt, next } => {
                    let done = finish((ev, inf, q, at), *seq, attempt, *next)?;
                    outcomes.push(Outcome::Finished(done));
                }
                Write::Flush { .. } => outcomes.push(Outcome::Flushed),
                Write::Latency {
                    delivery_id,
                    micros,
                } => {
                    lat.insert(&keys::u64_key(*delivery_id), &keys::u64_key(*micros))?;
                    outcomes.push(Outcome::Flushed);
                }
                Write::Record { draft, .. } => {
                    put_delivery(dt, it, &delivery_record(draft, p.delivery_id, None))?;
                    outcomes.push(Outcome::Recorded(p.delivery_id));
                }
                Write::Accept {
                    draft,
                    event,
                    respond,
                    ..
                } => {
                    let key = keys::dedup_key(&draft.endpoint, &event.event_id);
                    let existing = match fresh.get(&key) {
                        Some(seq) => Some(*seq),
                        None => dd.get(&key)?.and_then(|v| keys::read_u64(&v)),
                    };
                    let (verdict, seq) = match existing {
                        Some(seq) => (Verdict::Duplicate, seq),
                        None => (Verdict::Accepted, p.seq),
                    };
                    let (reason, mut response) = respond(verdict);
                    // Headers are the receiver's (request id etc.), whatever the verdict.
                    response.headers = draft.response.headers.clone();
                    let mut d = delivery_record(draft, p.delivery_id, Some(seq));
                    d.verdict = verdict;
                    d.reason = reason;
                    d.response = response;
                    put_delivery(dt, it, &d)?;
                    if verdict == Verdict::Accepted {
                        let now = draft.received_at_ms;
                        let record = Event {
                            seq,
                            endpoint: draft.endpoint.clone(),
                            event_id: event.event_id.clone(),
                            event_type: event.event_type.clone(),
                            received_at_ms: now,
                            delivery_id: p.delivery_id,
                            state: EventState::Queued,
                            attempts: 0,
                            next_attempt_at_ms: Some(now),
                            last_error: None,
                            replays: 0,
                            attempts_before_replay: 0,
                        };
                        let bytes = match to_json(&record) {
                            Ok(b) => b,
                            Err(e) => return abort(e),
                        };
                        dd.insert(key.as_slice(), &keys::u64_key(seq))?;
                        ev.insert(&keys::u64_key(seq), bytes)?;
                        pl.insert(&keys::u64_key(seq), event.payload.as_ref())?;
                        q.insert(&keys::queue_key(now, seq), &[])?;
                        fresh.insert(key, seq);
                    }
                    outcomes.push(Outcome::Accepted(Accepted {
                        verdict,
                        delivery_id: p.delivery_id,
                        seq,
                    }));
                }
            }
        }
        Ok(outcomes)
    })
    .map_err(tx_err)
}
