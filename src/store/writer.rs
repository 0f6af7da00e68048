//! The writer: one thread applies the hot-path writes in batches, and makes each batch that
//! holds an acknowledged write durable with one flush before anyone is answered (group commit).
//!
//! Requests queue their write here and wait. The thread takes every write that has arrived,
//! decides each against the store and the batch so far (a [`Tx`] overlay: dedup checks see
//! ids accepted earlier in the same batch), applies them all as one atomic `apply_batch` on the
//! `log` tree, calls `Db::flush` once, and only then replies. Under load a batch holds dozens
//! of writes, so the cost of the batch and of the fsync is shared. Dedup decisions are made by
//! this one thread, so two deliveries of one id in the same batch still give one event.
//!
//! A record that cannot be decoded fails only the write that reads it: a claim sends its
//! event to `dead` with the reason, and the rest of the batch goes on. A failed batch (the
//! disk is full) is reported through [`super::Store::health`] until a later batch succeeds.
//!
//! Claims are flushed before the worker starts, with the attempt they begin recorded as
//! running: an attempt cut short by a crash keeps its record and number. Attempt results need
//! no flush of their own: losing one only means the attempt runs again, under a new number.

use super::codec::{self, BodyRec, DeliveryRec, EventRec, StatusRec};
use super::ingest::{Accepted, DeliveryDraft, NewEvent};
use super::model::{Attempt, AttemptOutcome, Event, EventState, ResponseLog, Verdict};
use super::queue::{Next, ReplayError};
use super::{keys, Db, Result, Shared, StoreError};
use sled::IVec;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Gives the reason and response recorded for a verdict (the writer decides between
/// accepted and duplicate).
pub type Respond = fn(Verdict) -> (String, ResponseLog);

/// Most writes applied in one batch: bounds the time one batch holds the store.
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
        reply: Reply<Vec<(Event, bytes::Bytes)>>,
    },
    /// Nobody waits for an attempt's result: the worker moves on, and the writer applies it
    /// before any later claim (the channel keeps order).
    Finish {
        seq: u64,
        attempt: Attempt,
        next: Next,
    },
    /// Makes everything written so far durable.
    Flush { reply: Reply<()> },
    /// Stops the thread as a panic would (tests of the health checks).
    Crash,
}

/// Handle to the writer thread. Stopping it waits for the thread, so the database is closed
/// (and its lock released) when the store is dropped.
pub(super) struct Writer {
    tx: Option<mpsc::UnboundedSender<Write>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn stopped() -> Arc<StoreError> {
    Arc::new(StoreError::WriterStopped)
}

/// Marks the writer stopped however its thread ends, a panic included.
struct AliveGuard(Arc<Shared>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.writer_alive.store(false, Ordering::Relaxed);
        if std::thread::panicking() {
            tracing::error!(
                "the store's writer thread panicked; writes are refused until hookd restarts"
            );
        }
    }
}

impl Writer {
    pub fn start(shared: Arc<Shared>) -> std::io::Result<Writer> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Write>();
        let thread = std::thread::Builder::new()
            .name("hookd-writer".into())
            .spawn(move || {
                let _alive = AliveGuard(shared.clone());
                let mut batch = Vec::new();
                while let Some(first) = rx.blocking_recv() {
                    batch.push(first);
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(more) => batch.push(more),
                            Err(_) => break,
                        }
                    }
                    run_batch(&shared, std::mem::take(&mut batch));
                }
            })?;
        Ok(Writer {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    async fn ask<T>(&self, write: impl FnOnce(Reply<T>) -> Write) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        self.send(write(reply)).map_err(StoreError::Shared)?;
        rx.await
            .map_err(|_| StoreError::WriterStopped)?
            .map_err(StoreError::Shared)
    }

    pub async fn accept(
        &self,
        draft: DeliveryDraft,
        event: NewEvent,
        respond: Respond,
    ) -> Result<Accepted> {
        self.ask(|reply| Write::Accept {
            draft,
            event,
            respond,
            reply,
        })
        .await
    }

    pub async fn record(&self, draft: DeliveryDraft) -> Result<u64> {
        self.ask(|reply| Write::Record { draft, reply }).await
    }

    pub async fn claim(&self, now_ms: u64, max: usize) -> Result<Vec<(Event, bytes::Bytes)>> {
        self.ask(|reply| Write::Claim { now_ms, max, reply }).await
    }

    pub fn finish(&self, seq: u64, attempt: Attempt, next: Next) -> Result<(), Arc<StoreError>> {
        self.send(Write::Finish { seq, attempt, next })
    }

    pub async fn flush(&self) -> Result<()> {
        self.ask(|reply| Write::Flush { reply }).await
    }

    pub fn crash(&self) {
        let _ = self.send(Write::Crash);
    }

    fn send(&self, write: Write) -> Result<(), Arc<StoreError>> {
        let tx = self.tx.as_ref().ok_or_else(stopped)?;
        tx.send(write).map_err(|_| stopped())
    }

    pub fn stop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One batch's reads and writes: reads see the batch's own earlier writes, and the writes
/// go to sled as one atomic batch.
pub(super) struct Tx<'a> {
    tree: &'a sled::Tree,
    overlay: HashMap<Vec<u8>, Option<IVec>>,
    batch: sled::Batch,
}

impl<'a> Tx<'a> {
    pub fn new(tree: &'a sled::Tree) -> Tx<'a> {
        Tx {
            tree,
            overlay: HashMap::new(),
            batch: sled::Batch::default(),
        }
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<IVec>> {
        match self.overlay.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.tree.get(key).db(),
        }
    }

    pub fn insert(&mut self, key: &[u8], value: impl Into<IVec>) {
        let value = value.into();
        self.batch.insert(key, value.clone());
        self.overlay.insert(key.to_vec(), Some(value));
    }

    pub fn remove(&mut self, key: &[u8]) {
        self.batch.remove(key);
        self.overlay.insert(key.to_vec(), None);
    }

    pub fn is_empty(&self) -> bool {
        self.overlay.is_empty()
    }

    pub fn commit(self) -> Result<()> {
        if self.overlay.is_empty() {
            return Ok(());
        }
        self.tree.apply_batch(self.batch).db()
    }
}

/// What one write came to (counted once the batch is applied).
enum Outcome {
    Accepted(Accepted),
    Recorded(u64),
    /// Claimed events (with their payloads), each with the state it left; events sent to
    /// `dead` as unreadable, with the state they left.
    Claimed(Vec<(Event, bytes::Bytes, EventState)>, Vec<EventState>),
    /// The state the event left and the one it reached.
    Finished(Option<(EventState, EventState)>),
    Flushed,
}

pub(super) fn delivery_record(draft: &DeliveryDraft, body: BodyRec) -> DeliveryRec {
    DeliveryRec {
        received_at_ms: draft.received_at_ms,
        endpoint: draft.endpoint.clone(),
        remote_addr: draft.remote_addr.clone(),
        request_headers: draft.request_headers.clone(),
        body,
        body_bytes: draft.body_bytes as u64,
        body_truncated: draft.body_truncated,
        verdict: draft.verdict,
        reason: draft.reason.clone(),
        response: draft.response.clone(),
        event_id: draft.event_id.clone(),
        event_type: draft.event_type.clone(),
        event_seq: None,
    }
}

/// The logged body, as a reference into `payload` when it is a prefix of it (stored once).
pub(super) fn body_ref(logged: &str, payload: &[u8]) -> BodyRec {
    if payload.starts_with(logged.as_bytes()) && logged.len() <= u32::MAX as usize {
        BodyRec::Payload(logged.len() as u32)
    } else {
        BodyRec::Inline(logged.to_string())
    }
}

/// The status of event `seq`: stored, or fresh for an event never claimed. `Err` when the
/// status record is unreadable.
pub(super) fn status_of(tx: &Tx, seq: u64, received_at_ms: u64) -> Result<StatusRec> {
    match tx.get(&keys::id_key(keys::STATUS, seq))? {
        Some(bytes) => codec::decode(&format!("status of event {seq}"), &bytes),
        None => Ok(StatusRec::fresh(received_at_ms)),
    }
}

/// The event record of `seq` and its payload, if the event exists.
pub(super) fn event_of(tx: &Tx, seq: u64) -> Result<Option<(EventRec, bytes::Bytes)>> {
    let Some(bytes) = tx.get(&keys::id_key(keys::EVENT, seq))? else {
        return Ok(None);
    };
    let (rec, payload) = codec::decode_event(&format!("event {seq}"), &bytes)?;
    Ok(Some((rec, bytes::Bytes::copy_from_slice(payload))))
}

/// The API's view of an event.
pub(super) fn to_event(seq: u64, rec: EventRec, s: StatusRec) -> Event {
    Event {
        seq,
        endpoint: rec.endpoint,
        event_id: rec.event_id,
        event_type: rec.event_type,
        received_at_ms: rec.received_at_ms,
        delivery_id: rec.delivery_id,
        state: s.state,
        attempts: s.attempts,
        next_attempt_at_ms: s.next_attempt_at_ms,
        last_error: s.last_error,
        replays: s.replays,
        attempts_before_replay: s.attempts_before_replay,
    }
}

pub(super) fn put_status(tx: &mut Tx, seq: u64, s: &StatusRec) -> Result<()> {
    tx.insert(&keys::id_key(keys::STATUS, seq), codec::encode(s)?);
    Ok(())
}

/// The first `max` queue keys due by `now_ms` that no earlier claim in the batch took.
fn due_keys(tx: &Tx, now_ms: u64, max: usize) -> Result<Vec<IVec>> {
    let mut out = Vec::new();
    for item in tx.tree.range(keys::kind_range(keys::QUEUE)) {
        let (key, _) = item.db()?;
        match keys::parse_queue_key(&key) {
            Some((due, _)) if due <= now_ms => {}
            _ => break,
        }
        if matches!(tx.overlay.get(key.as_ref()), Some(None)) {
            continue; // taken by an earlier claim in this batch
        }
        out.push(key);
        if out.len() >= max {
            break;
        }
    }
    Ok(out)
}

fn run_batch(shared: &Shared, batch: Vec<Write>) {
    if batch.iter().any(|w| matches!(w, Write::Crash)) {
        panic!("the store's writer was stopped on purpose");
    }
    let guard = shared.lock();
    let opened = if shared.needs_reopen.load(Ordering::Relaxed) {
        shared.reopen().and_then(|()| {
            shared.needs_reopen.store(false, Ordering::Relaxed);
            shared.h()
        })
    } else {
        shared.h()
    };
    let h = match opened {
        Ok(h) => h,
        Err(e) => {
            drop(guard);
            failed_batch(shared, batch, e);
            return;
        }
    };
    let mut tx = Tx::new(&h.log);
    shared
        .batch_floor
        .store(shared.ids.last().saturating_add(1), Ordering::SeqCst);
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut failed = None;
    for write in &batch {
        match apply(shared, &mut tx, write) {
            Ok(o) => outcomes.push(o),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let applied = match failed {
        Some(e) => Err(e),
        None => tx.commit().and_then(|()| {
            // Acks and claims wait for the disk; results ride along (see the module comment).
            let durable = outcomes.iter().any(|o| match o {
                Outcome::Claimed(claimed, dead) => !claimed.is_empty() || !dead.is_empty(),
                Outcome::Finished(_) => false,
                _ => true,
            });
            if durable {
                shared.h()?.db.flush().db()?;
            }
            Ok(())
        }),
    };
    shared.batch_floor.store(u64::MAX, Ordering::SeqCst);
    drop(h);
    drop(guard);
    if let Err(e) = applied {
        failed_batch(shared, batch, e);
        return;
    }
    let recovered = shared
        .write_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .is_some();
    if recovered {
        tracing::info!("the store takes writes again");
    }
    reply_all(shared, batch, outcomes);
}

/// Answers every write of a batch that was not applied with `e`, and keeps the reason for
/// the health check. After an I/O failure the next batch reopens the database first.
fn failed_batch(shared: &Shared, batch: Vec<Write>, e: StoreError) {
    tracing::error!(error = %e, "write batch failed; its requests get 503");
    if matches!(e, StoreError::Io(_) | StoreError::DiskFull(_)) {
        shared.needs_reopen.store(true, Ordering::Relaxed);
    }
    *shared.write_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
    fail_all(shared, batch, Arc::new(e));
}

fn fail_all(shared: &Shared, batch: Vec<Write>, e: Arc<StoreError>) {
    for write in batch {
        // A requester that went away no longer listens; nothing to do.
        match write {
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
            Write::Finish { seq, .. } => {
                // The event stays claimed; the next start re-queues it.
                shared.pending_finishes.fetch_sub(1, Ordering::Relaxed);
                tracing::error!(seq, "an attempt's result was not recorded");
            }
            Write::Crash => {}
        }
    }
}

fn reply_all(shared: &Shared, batch: Vec<Write>, outcomes: Vec<Outcome>) {
    let counts = &shared.counts;
    let mut wake = false;
    for (write, outcome) in batch.into_iter().zip(outcomes) {
        match (write, outcome) {
            (Write::Accept { reply, .. }, Outcome::Accepted(a)) => {
                counts.verdict(a.verdict).fetch_add(1, Ordering::Relaxed);
                if a.verdict == Verdict::Accepted {
                    counts.added(EventState::Queued);
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
            (Write::Claim { reply, .. }, Outcome::Claimed(events, dead)) => {
                for (_, _, before) in &events {
                    counts.moved(*before, EventState::Processing);
                }
                for before in dead {
                    counts.moved(before, EventState::Dead);
                }
                let _ = reply.send(Ok(events.into_iter().map(|(e, p, _)| (e, p)).collect()));
            }
            (Write::Finish { .. }, Outcome::Finished(moved)) => {
                if let Some((before, after)) = moved {
                    counts.moved(before, after);
                }
                shared.pending_finishes.fetch_sub(1, Ordering::Relaxed);
                // The dispatcher waits for results it has not seen (a retry's new due time).
                wake = true;
            }
            (Write::Flush { reply }, Outcome::Flushed) => {
                let _ = reply.send(Ok(()));
            }
            _ => tracing::error!("a write's outcome did not match it"),
        }
    }
    if wake {
        shared.work.notify_one();
    }
}

fn apply(shared: &Shared, tx: &mut Tx, write: &Write) -> Result<Outcome> {
    Ok(match write {
        Write::Accept {
            draft,
            event,
            respond,
            ..
        } => Outcome::Accepted(accept(shared, tx, draft, event, *respond)?),
        Write::Record { draft, .. } => {
            let id = shared.ids.next(draft.received_at_ms);
            let rec = delivery_record(draft, BodyRec::Inline(draft.body.clone()));
            tx.insert(&keys::id_key(keys::DELIVERY, id), codec::encode(&rec)?);
            Outcome::Recorded(id)
        }
        Write::Claim { now_ms, max, .. } => {
            let (claimed, dead) = claim(tx, *now_ms, *max)?;
            Outcome::Claimed(claimed, dead)
        }
        Write::Finish { seq, attempt, next } => {
            Outcome::Finished(finish(tx, *seq, attempt, *next)?)
        }
        Write::Flush { .. } | Write::Crash => Outcome::Flushed,
    })
}

fn accept(
    shared: &Shared,
    tx: &mut Tx,
    draft: &DeliveryDraft,
    event: &NewEvent,
    respond: Respond,
) -> Result<Accepted> {
    let now = draft.received_at_ms;
    let delivery_id = shared.ids.next(now);
    let dedup = keys::dedup_key(&draft.endpoint, &event.event_id);
    let existing = tx.get(&dedup)?.and_then(|v| keys::read_u64(&v));
    let (verdict, seq) = match existing {
        Some(seq) => (Verdict::Duplicate, seq),
        None => (Verdict::Accepted, shared.ids.next(now)),
    };
    let (reason, mut response) = respond(verdict);
    // Headers are the receiver's (request id etc.), whatever the verdict.
    response.headers = draft.response.headers.clone();
    let body = match verdict {
        Verdict::Accepted => body_ref(&draft.body, &event.payload),
        // A retry usually repeats the original body: then it, too, points at the payload.
        _ => match tx.get(&keys::id_key(keys::EVENT, seq))? {
            Some(bytes) => match codec::decode_event("event", &bytes) {
                Ok((_, stored)) if stored == event.payload.as_ref() => {
                    body_ref(&draft.body, stored)
                }
                _ => BodyRec::Inline(draft.body.clone()),
            },
            None => BodyRec::Inline(draft.body.clone()),
        },
    };
    let mut rec = delivery_record(draft, body);
    rec.verdict = verdict;
    rec.reason = reason;
    rec.response = response;
    rec.event_seq = Some(seq);
    tx.insert(
        &keys::id_key(keys::DELIVERY, delivery_id),
        codec::encode(&rec)?,
    );
    if verdict == Verdict::Accepted {
        let record = EventRec {
            endpoint: draft.endpoint.clone(),
            event_id: event.event_id.clone(),
            event_type: event.event_type.clone(),
            received_at_ms: now,
            delivery_id,
        };
        tx.insert(
            &keys::id_key(keys::EVENT, seq),
            codec::encode_event(&record, &event.payload)?,
        );
        tx.insert(&dedup, &keys::u64_bytes(seq));
        tx.insert(&keys::queue_key(now, seq), &[]);
    }
    Ok(Accepted {
        verdict,
        delivery_id,
        seq,
    })
}

type Claimed = (Vec<(Event, bytes::Bytes, EventState)>, Vec<EventState>);

fn claim(tx: &mut Tx, now_ms: u64, max: usize) -> Result<Claimed> {
    let mut claimed = Vec::new();
    let mut dead = Vec::new();
    for key in due_keys(tx, now_ms, max)? {
        tx.remove(&key);
        let Some((_, seq)) = keys::parse_queue_key(&key) else {
            continue;
        };
        let read = event_of(tx, seq).and_then(|found| {
            found
                .map(|(rec, payload)| {
                    status_of(tx, seq, rec.received_at_ms).map(|s| (rec, payload, s))
                })
                .transpose()
        });
        match read {
            Ok(Some((rec, payload, mut status))) => {
                let before = status.state;
                status.state = EventState::Processing;
                status.next_attempt_at_ms = None;
                put_status(tx, seq, &status)?;
                tx.insert(&keys::id_key(keys::INFLIGHT, seq), &[]);
                // The attempt is on record before it starts: a crash cannot hide it.
                let number = status.attempts + 1;
                let running = Attempt {
                    number,
                    processor: String::new(),
                    started_at_ms: now_ms,
                    finished_at_ms: 0,
                    outcome: AttemptOutcome::Running,
                    detail: String::new(),
                };
                tx.insert(&keys::attempt_key(seq, number), codec::encode(&running)?);
                claimed.push((to_event(seq, rec, status), payload, before));
            }
            // A queue entry whose event is gone (pruned): dropped with the remove above.
            Ok(None) => tracing::warn!(seq, "queue entry without an event was dropped"),
            Err(e @ StoreError::Unreadable { .. }) => {
                tracing::error!(seq, error = %e, "unreadable event sent to dead");
                let status = StatusRec {
                    state: EventState::Dead,
                    attempts: 0,
                    next_attempt_at_ms: None,
                    last_error: Some(e.to_string()),
                    replays: 0,
                    attempts_before_replay: 0,
                };
                put_status(tx, seq, &status)?;
                dead.push(EventState::Queued);
            }
            Err(e) => return Err(e),
        }
    }
    Ok((claimed, dead))
}

fn finish(
    tx: &mut Tx,
    seq: u64,
    attempt: &Attempt,
    next: Next,
) -> Result<Option<(EventState, EventState)>> {
    tx.remove(&keys::id_key(keys::INFLIGHT, seq));
    let received_at = match event_of(tx, seq) {
        Ok(Some((rec, _))) => rec.received_at_ms,
        Ok(None) => return Ok(None),
        // The event was readable when claimed; its status is still ours to record.
        Err(StoreError::Unreadable { .. }) => 0,
        Err(e) => return Err(e),
    };
    tx.insert(
        &keys::attempt_key(seq, attempt.number),
        codec::encode(attempt)?,
    );
    let mut status = match status_of(tx, seq, received_at) {
        Ok(s) => s,
        Err(StoreError::Unreadable { .. }) => StatusRec::fresh(received_at),
        Err(e) => return Err(e),
    };
    let before = status.state;
    status.attempts = status.attempts.max(attempt.number);
    status.last_error = match attempt.outcome {
        AttemptOutcome::Ok => None,
        _ => Some(attempt.detail.clone()),
    };
    (status.state, status.next_attempt_at_ms) = match next {
        Next::Done => (EventState::Done, None),
        Next::Dead => (EventState::Dead, None),
        Next::RetryAt(at) => (EventState::Retrying, Some(at)),
    };
    if let Next::RetryAt(due) = next {
        tx.insert(&keys::queue_key(due, seq), &[]);
    }
    put_status(tx, seq, &status)?;
    Ok(Some((before, status.state)))
}

/// Re-queues a done or dead event (see [`super::Store::replay`]).
pub(super) fn replay(
    tx: &mut Tx,
    seq: u64,
    now_ms: u64,
) -> Result<std::result::Result<(Event, EventState), ReplayError>> {
    let (rec, _) = match event_of(tx, seq) {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(Err(ReplayError::NotFound)),
        Err(e @ StoreError::Unreadable { .. }) => return Ok(Err(ReplayError::Store(e))),
        Err(e) => return Err(e),
    };
    let mut status = match status_of(tx, seq, rec.received_at_ms) {
        Ok(s) => s,
        Err(e @ StoreError::Unreadable { .. }) => return Ok(Err(ReplayError::Store(e))),
        Err(e) => return Err(e),
    };
    if !matches!(status.state, EventState::Done | EventState::Dead) {
        return Ok(Err(ReplayError::NotFinished(status.state.as_str())));
    }
    let before = status.state;
    status.state = EventState::Queued;
    status.next_attempt_at_ms = Some(now_ms);
    status.replays += 1;
    status.attempts_before_replay = status.attempts;
    put_status(tx, seq, &status)?;
    tx.insert(&keys::queue_key(now_ms, seq), &[]);
    Ok(Ok((to_event(seq, rec, status), before)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn draft(event_id: &str) -> DeliveryDraft {
        DeliveryDraft {
            received_at_ms: 1_700_000_000_000,
            endpoint: "std".into(),
            remote_addr: None,
            request_headers: vec![("webhook-id".into(), event_id.into())],
            body: format!("{{\"id\":\"{event_id}\"}}"),
            body_bytes: 12,
            body_truncated: false,
            verdict: Verdict::Accepted,
            reason: String::new(),
            response: ResponseLog {
                status: 200,
                headers: vec![],
                body: String::new(),
            },
            event_id: Some(event_id.into()),
            event_type: Some("t".into()),
        }
    }

    fn respond(_: Verdict) -> (String, ResponseLog) {
        let log = ResponseLog {
            status: 200,
            headers: vec![],
            body: String::new(),
        };
        (String::new(), log)
    }

    /// Keys per kind in the log tree.
    fn kinds(store: &Store) -> std::collections::BTreeMap<char, usize> {
        let h = store.shared.h().unwrap();
        let mut out = std::collections::BTreeMap::new();
        for key in h.log.iter().keys() {
            *out.entry(key.unwrap()[0] as char).or_default() += 1;
        }
        out
    }

    #[tokio::test]
    async fn an_accepted_delivery_is_four_keys_and_its_body_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 16).unwrap();
        let d = draft("evt-1");
        let body = d.body.clone();
        let event = NewEvent {
            event_id: "evt-1".into(),
            event_type: "t".into(),
            payload: bytes::Bytes::from(body.clone()),
        };
        let a = store.accept(d, event, respond).await.unwrap();
        assert_eq!(a.verdict, Verdict::Accepted);
        // delivery, event, dedup key, queue entry: nothing else on the ack path.
        let expected: std::collections::BTreeMap<char, usize> =
            [('d', 1), ('e', 1), ('k', 1), ('q', 1)].into();
        assert_eq!(kinds(&store), expected);
        let h = store.shared.h().unwrap();
        let stored = h
            .log
            .get(keys::id_key(keys::DELIVERY, a.delivery_id))
            .unwrap()
            .unwrap();
        assert!(
            !stored.windows(body.len()).any(|w| w == body.as_bytes()),
            "the body is in the event record only"
        );
        assert_eq!(store.delivery(a.delivery_id).unwrap().unwrap().body, body);
        // The indexes and the latency follow, without a write of their own on the ack path.
        store.set_latency(a.delivery_id, 777).unwrap();
        store.index_now().unwrap();
        assert_eq!(kinds(&store)[&'x'], 4);
        assert_eq!(
            store.delivery(a.delivery_id).unwrap().unwrap().latency_us,
            Some(777)
        );
    }
}
