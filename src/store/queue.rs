//! The durable queue, as the pipeline sees it: claiming due events, recording attempts and
//! what follows them, re-queueing after a stop, and replays by hand.

use super::apply;
use super::codec::{self, StatusRec};
use super::model::{Attempt, AttemptOutcome, Event, EventState};
use super::tx::{self, Tx};
use super::{keys, Db, Result, SledStore, StoreError};
use std::sync::atomic::Ordering;

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

/// Sets the claim cursor past every record stored, unless the store has one already: a
/// store of format 1 to 3 has a queue entry for each new event, and a claim must not find
/// those events a second time.
pub(super) fn cursor_past_all(log: &sled::Tree) -> Result<()> {
    if log.contains_key(keys::CURSOR).db()? {
        return Ok(());
    }
    let last = tx::last_id(log)?;
    log.insert(keys::CURSOR, &keys::u64_bytes(last)).db()?;
    Ok(())
}

impl SledStore {
    /// When the first queued event is due (ms), if any: the first queue entry, or the first
    /// new event after the claim cursor (due since it was received).
    pub fn next_due(&self) -> Result<Option<u64>> {
        let h = self.shared.h()?;
        let queued = h
            .log
            .range(keys::kind_range(keys::QUEUE))
            .next()
            .transpose()
            .db()?
            .and_then(|(key, _)| keys::parse_queue_key(&key))
            .map(|(due, _)| due);
        // The first new event a claim would take; or, after a long run of records the
        // cursor may pass (deliveries without an event), now, so that a claim moves it on.
        let tx = Tx::new(&h.log);
        let scanned = apply::new_events(&tx, apply::cursor(&tx)?, u64::MAX, 1)?;
        let fresh = match scanned.last() {
            Some(&(seq, true)) => Some(match tx::event_bytes(&tx, seq)? {
                Some(bytes) => codec::decode_event_at(seq, &bytes)
                    .map_or(keys::id_time_ms(seq), |(rec, _)| rec.received_at_ms),
                None => keys::id_time_ms(seq),
            }),
            Some(&(seq, false)) if scanned.len() == apply::CURSOR_SCAN => {
                Some(keys::id_time_ms(seq))
            }
            _ => None,
        };
        Ok(match (queued, fresh) {
            (Some(q), Some(f)) => Some(q.min(f)),
            (q, f) => q.or(f),
        })
    }

    /// Takes up to `max` due events off the queue, marks them `processing`, records the
    /// attempt each begins as running, and returns them with their payloads, in queue order.
    /// Returns once that is on disk. An unreadable event goes to `dead` with the reason
    /// instead of stopping the queue.
    pub async fn claim(&self, now_ms: u64, max: usize) -> Result<Vec<(Event, bytes::Bytes)>> {
        self.writer.claim(now_ms, max).await
    }

    /// Records an attempt and moves the event on: done, back on the queue, or dead. Queued
    /// to the writer, which applies it before any later claim; not flushed on its own (a lost
    /// result only means the attempt runs again).
    pub fn finish(&self, seq: u64, attempt: Attempt, next: Next) -> Result<()> {
        let pending = &self.shared.pending_finishes;
        pending.fetch_add(1, Ordering::Relaxed);
        self.writer.finish(seq, attempt, next).map_err(|e| {
            pending.fetch_sub(1, Ordering::Relaxed);
            StoreError::Shared(e)
        })
    }

    /// Whether attempt results are on their way to the store. While they are, the queue's
    /// next due time is not known yet; the store's work notification follows each of them.
    pub fn finishes_pending(&self) -> bool {
        self.shared.pending_finishes.load(Ordering::Relaxed) > 0
    }

    /// Puts events that were `processing` when the process stopped back on the queue
    /// (at-least-once: their attempt never finished). The attempt that was cut short stays
    /// on record as interrupted, and the next one gets the next number. Run at start-up,
    /// before workers start.
    pub fn requeue_inflight(&self, now_ms: u64) -> Result<usize> {
        let shared = &self.shared;
        let _guard = shared.lock();
        let h = shared.h()?;
        let mut tx = Tx::new(&h.log);
        let mut n = 0;
        // Format 2 marked them with `inflight` entries (removed here, once); format 3 by
        // their status alone, found when the store was opened.
        let mut cut_short: std::collections::BTreeSet<u64> = std::mem::take(
            &mut *shared
                .processing_at_open
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        )
        .into_iter()
        .collect();
        for key in shared
            .h()?
            .log
            .range(keys::kind_range(keys::INFLIGHT))
            .keys()
        {
            let key = key.db()?;
            tx.remove(&key);
            cut_short.extend(keys::key_id(&key));
        }
        for seq in cut_short {
            let received_at = match tx::event_of(&tx, seq) {
                Ok(Some((rec, _))) => rec.received_at_ms,
                Ok(None) => continue,
                Err(StoreError::Unreadable { .. }) => now_ms,
                Err(e) => return Err(e),
            };
            let mut status = match tx::status_of(&tx, seq, received_at) {
                Ok(s) => s,
                Err(StoreError::Unreadable { .. }) => StatusRec::fresh(received_at),
                Err(e) => return Err(e),
            };
            let number = status.attempts + 1;
            let running = keys::attempt_key(seq, number);
            if let Some(bytes) = tx.get(&running)? {
                if let Ok(mut attempt) = codec::decode_attempt("attempt", &bytes) {
                    if attempt.outcome == AttemptOutcome::Running {
                        attempt.outcome = AttemptOutcome::Interrupted;
                        attempt.finished_at_ms = now_ms;
                        attempt.detail = "hookd stopped during this attempt".into();
                        tx.insert(&running, codec::encode(&attempt)?);
                    }
                }
                status.attempts = number;
            }
            let before = status.state;
            status.state = EventState::Queued;
            status.next_attempt_at_ms = Some(now_ms);
            tx::put_status(&mut tx, seq, &status)?;
            tx.insert(&keys::queue_key(now_ms, seq), &[]);
            shared.counts.moved(before, EventState::Queued);
            n += 1;
        }
        if !tx.is_empty() {
            tx.commit()?;
            shared.h()?.db.flush().db()?;
        }
        if n > 0 {
            shared.work.notify_one();
        }
        Ok(n)
    }

    /// Re-queues a done or dead event for another round of attempts.
    pub fn replay(&self, seq: u64, now_ms: u64) -> Result<Event, ReplayError> {
        let shared = &self.shared;
        let guard = shared.lock();
        let h = shared.h()?;
        let mut tx = Tx::new(&h.log);
        let (event, before) = apply::replay(&mut tx, seq, now_ms)??;
        tx.commit()?;
        drop(guard);
        shared.h()?.db.flush().db()?;
        shared.counts.moved(before, EventState::Queued);
        shared.work.notify_one();
        Ok(event)
    }
}
