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
//!
//! The flush runs on a second thread (the flusher), so the writer applies the next batch while
//! the disk makes the last one durable: measured on the 2-core machine, a batch spent about a
//! quarter of the writer's time waiting in `flush`. A flush makes everything applied before
//! it durable, so the flusher answers batches in the order they were applied, and one flush
//! answers every batch waiting for it. A later batch may have read an earlier one's records
//! (a duplicate of an event accepted just before), so when a flush fails, every batch applied
//! on that opening of the database fails with it, and the writer reopens it before the next.

use super::apply::{apply, Outcome};
use super::ingest::{Accepted, DeliveryDraft, NewEvent};
use super::model::{Attempt, Event, EventState, ResponseLog, Verdict};
use super::queue::Next;
use super::tx::Tx;
use super::{Db, Result, Shared, StoreError};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Gives the reason and response recorded for a verdict (the writer decides between
/// accepted and duplicate).
pub type Respond = fn(Verdict) -> (String, ResponseLog);

/// How much nicer than the rest of hookd the writer thread runs. Giving way to the request
/// threads lets more writes gather while it waits for the CPU, so each batch (and the flush
/// that follows it) carries more of them. Measured on the 2-core machine, alternating 8 s
/// ingest runs of one binary: 13.2 k req/s at the same priority against 14.3 k at 6 (five
/// pairs, each won by 6), p99 4.2-5.0 ms at 6 against 4.3-5.2 ms; with a busy loop beside
/// it, 6 did no worse. sled's IO threads started from the writer inherit its priority. The
/// flusher keeps the normal priority: slowing it delays every answer.
const WRITER_NICE: i32 = 6;

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
        /// The id, when the caller chose it (a write nobody waits for).
        id: Option<u64>,
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
        let (to_flusher, flusher_rx) = std::sync::mpsc::channel::<Applied>();
        let flusher = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("hookd-flusher".into())
                .spawn(move || {
                    let _alive = AliveGuard(shared.clone());
                    flush_loop(&shared, flusher_rx);
                })?
        };
        let thread = crate::nice::spawn("hookd-writer", WRITER_NICE, move || {
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
                // An indexer far behind: let it catch up a little first.
                shared.fresh.wait_below(super::indexer::HOLD);
                run_batch(&shared, std::mem::take(&mut batch), &to_flusher);
            }
            // Every batch handed over is answered before the store closes.
            drop(to_flusher);
            let _ = flusher.join();
        })?;
        Ok(Writer {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// The handle for a writer that runs elsewhere and reads `tx`'s other end (cluster
    /// mode's writer task): the same calls, the same order.
    pub fn with_sender(tx: mpsc::UnboundedSender<Write>) -> Writer {
        Writer {
            tx: Some(tx),
            thread: None,
        }
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
        self.ask(|reply| Write::Record {
            draft,
            id: None,
            reply,
        })
        .await
    }

    pub async fn claim(&self, now_ms: u64, max: usize) -> Result<Vec<(Event, bytes::Bytes)>> {
        self.ask(|reply| Write::Claim { now_ms, max, reply }).await
    }

    pub fn finish(&self, seq: u64, attempt: Attempt, next: Next) -> Result<(), Arc<StoreError>> {
        self.send(Write::Finish { seq, attempt, next })
    }

    /// Queues a delivery under `id` without waiting for it (nothing was acknowledged, so
    /// the request need not wait for the disk or the database).
    pub fn record_unanswered(&self, draft: DeliveryDraft, id: u64) -> Result<(), Arc<StoreError>> {
        let (reply, _) = oneshot::channel();
        self.send(Write::Record {
            draft,
            id: Some(id),
            reply,
        })
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

/// A batch applied in memory and waiting for the flusher to make it durable.
struct Applied {
    batch: Vec<Write>,
    outcomes: Vec<Outcome>,
    handles: Arc<super::Handles>,
    /// Which opening of the database it was applied on (see `Shared::openings`).
    opening: u64,
}

fn run_batch(shared: &Shared, batch: Vec<Write>, flusher: &std::sync::mpsc::Sender<Applied>) {
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
    let written = tx.take_written();
    let applied = match failed {
        Some(e) => Err(e),
        None => tx.commit(),
    };
    if applied.is_ok() {
        // Before the floor lifts: the indexer may then pass these ids.
        shared.fresh.offer(written);
    }
    shared.batch_floor.store(u64::MAX, Ordering::SeqCst);
    drop(guard);
    if let Err(e) = applied {
        drop(h);
        failed_batch(shared, batch, e);
        return;
    }
    // Acks and claims wait for the disk; results ride along (see the module comment).
    let durable = outcomes.iter().any(|o| match o {
        Outcome::Claimed(claimed, dead) => !claimed.is_empty() || !dead.is_empty(),
        Outcome::Finished(_) => false,
        _ => true,
    });
    if !durable {
        drop(h);
        reply_all(shared, batch, outcomes);
        return;
    }
    let opening = shared.openings.load(Ordering::Relaxed);
    let handed = flusher.send(Applied {
        batch,
        outcomes,
        handles: h,
        opening,
    });
    if let Err(std::sync::mpsc::SendError(a)) = handed {
        // The flusher is gone (it panicked): nothing more can be made durable.
        drop(a.handles);
        fail_all(shared, a.batch, stopped());
    }
}

fn flush(handles: &super::Handles) -> Result<(), Arc<StoreError>> {
    #[cfg(test)]
    {
        let _held = tests::HOLD_FLUSHES.lock();
        if tests::FAIL_NEXT_FLUSH.swap(false, Ordering::SeqCst) {
            return Err(Arc::new(StoreError::Io("flush failed (test)".into())));
        }
    }
    handles.db.flush().db().map(drop).map_err(Arc::new)
}

/// The flusher thread: makes applied batches durable with one flush for all that wait, then
/// answers them in order.
fn flush_loop(shared: &Shared, rx: std::sync::mpsc::Receiver<Applied>) {
    // The opening of the database on which a flush failed: its later batches fail too.
    let mut failed_opening: Option<(u64, Arc<StoreError>)> = None;
    while let Ok(first) = rx.recv() {
        let mut waiting = vec![first];
        waiting.extend(rx.try_iter());
        let mut flushed: Option<Result<(), Arc<StoreError>>> = None;
        for applied in waiting {
            let Applied {
                batch,
                outcomes,
                handles,
                opening,
            } = applied;
            if let Some((bad, e)) = &failed_opening {
                if *bad == opening {
                    drop(handles);
                    fail_all(shared, batch, e.clone());
                    continue;
                }
            }
            // One flush covers this batch and every one applied before it.
            let result = flushed.get_or_insert_with(|| flush(&handles)).clone();
            drop(handles);
            match result {
                Ok(()) => {
                    if crate::store::recovered(&shared.write_error) {
                        tracing::info!("the store takes writes again");
                    }
                    reply_all(shared, batch, outcomes);
                }
                Err(e) => {
                    tracing::error!(error = %e, "flushing a write batch failed; its requests get 503");
                    // The batches applied after this one read its records: they fail with
                    // it, and the writer reopens the database before the next batch.
                    shared.needs_reopen.store(true, Ordering::Relaxed);
                    *shared.write_error.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(e.to_string());
                    failed_opening = Some((opening, e.clone()));
                    fail_all(shared, batch, e);
                }
            }
        }
    }
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
        if let Some(seq) = write.fail(&e) {
            // The event stays claimed; the next start re-queues it.
            shared.pending_finishes.fetch_sub(1, Ordering::Relaxed);
            tracing::error!(seq, "an attempt's result was not recorded");
        }
    }
}

impl Write {
    /// Answers the write with `e` (a requester that went away no longer listens). An
    /// attempt's result has nobody waiting: its event's seq is returned instead.
    pub(super) fn fail(self, e: &Arc<StoreError>) -> Option<u64> {
        match self {
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
            Write::Finish { seq, .. } => return Some(seq),
            Write::Crash => {}
        }
        None
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
            (Write::Record { draft, reply, .. }, Outcome::Recorded(id)) => {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{draft, event, respond};
    use crate::store::SledStore;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    /// Held by a test: flushes wait for it.
    pub(super) static HOLD_FLUSHES: std::sync::Mutex<()> = std::sync::Mutex::new(());
    /// Set by a test: the next flush fails.
    pub(super) static FAIL_NEXT_FLUSH: AtomicBool = AtomicBool::new(false);

    /// The nice values of this process's threads named `name`.
    #[cfg(target_os = "linux")]
    fn nice_of_threads(name: &str) -> Vec<i32> {
        let mut found = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            if comm.trim_end() != name || stat.is_empty() {
                continue;
            }
            // After the parenthesised name: state is field 3 of stat(5), nice field 19.
            let after = &stat[stat.rfind(')').unwrap() + 1..];
            found.push(after.split_whitespace().nth(16).unwrap().parse().unwrap());
        }
        found
    }

    /// Reads until `name`'s threads are found and all have `nice`, for up to a second, and
    /// returns the last reading. Other tests start and stop stores meanwhile: a listing of
    /// /proc/self/task can skip threads while others exit, and a new writer is named before
    /// it lowers its priority.
    #[cfg(target_os = "linux")]
    fn settled_nice_of_threads(name: &str, nice: i32) -> Vec<i32> {
        let mut found = Vec::new();
        for _ in 0..100 {
            found = nice_of_threads(name);
            if !found.is_empty() && found.iter().all(|&n| n == nice) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        found
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_writer_gives_way_to_the_request_threads_and_the_flusher_does_not() {
        let (_dir, _store) = crate::store::testing::temp_store();
        let base = crate::nice::of_this_thread().unwrap();
        let nicer = (base + WRITER_NICE).min(19);
        let writers = settled_nice_of_threads("hookd-writer", nicer);
        assert!(!writers.is_empty(), "a store has a writer thread");
        assert!(writers.iter().all(|&n| n == nicer), "{writers:?}");
        let flushers = settled_nice_of_threads("hookd-flusher", base);
        assert!(!flushers.is_empty(), "a store has a flusher thread");
        assert!(flushers.iter().all(|&n| n == base), "{flushers:?}");
    }

    /// A batch applied while an earlier one waits for its flush may have read the earlier
    /// one's records: a redelivery applied then is a duplicate of an event not yet on disk.
    /// When that flush fails, the redelivery must fail too (the sender retries), not be
    /// answered as a duplicate of an event that was never stored.
    // The guard is held across awaits on purpose: it is the flusher thread that waits on it.
    #[allow(clippy::await_holding_lock)]
    #[tokio::test]
    async fn batches_applied_behind_a_failed_flush_fail_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path(), 16).unwrap());
        let held = HOLD_FLUSHES.lock().unwrap();
        let first = {
            let store = store.clone();
            tokio::spawn(async move { store.accept(draft("evt-1"), event("evt-1"), respond).await })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let again = {
            let store = store.clone();
            tokio::spawn(async move { store.accept(draft("evt-1"), event("evt-1"), respond).await })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Both were applied (the writer does not wait for the flusher) and neither answered.
        assert!(!first.is_finished() && !again.is_finished());
        FAIL_NEXT_FLUSH.store(true, Ordering::SeqCst);
        drop(held);
        assert!(first.await.unwrap().is_err(), "the failed flush's batch");
        assert!(
            again.await.unwrap().is_err(),
            "the batch applied behind it, on the same opening"
        );
        // The store reopens and takes deliveries again, and says it is healthy.
        let a = store
            .accept(draft("evt-2"), event("evt-2"), respond)
            .await
            .unwrap();
        assert_eq!(a.verdict, Verdict::Accepted);
        assert!(store.health().is_ok());
        // What the indexer was handed before the reopen is read from the log again: every
        // index entry names a delivery the reopened store has, and every delivery its entries.
        store.index_now().unwrap();
        let report = super::super::check::check_db(&store.shared.h().unwrap().db).unwrap();
        assert!(report.consistent(), "{:?}", report.problems);
    }
}
