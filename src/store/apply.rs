//! What each write of a batch does to the store: accept a delivery (dedup decided here),
//! record one, claim due events, finish an attempt, replay an event. The writer thread
//! ([`super::writer`]) calls these in order within one [`Tx`], so each sees the batch's
//! earlier writes.

use super::codec::{self, BodyRec, StatusRec};
use super::ingest::{Accepted, DeliveryDraft, NewEvent};
use super::model::{Attempt, AttemptOutcome, Event, EventState, Verdict};
use super::queue::{Next, ReplayError};
use super::tx::{
    body_ref, delivery_record, event_bytes, event_of, put_status, status_of, to_event, Tx,
};
use super::writer::{Respond, Write};
use super::{keys, Db, Result, Shared, StoreError};
use sled::IVec;

/// What one write came to (counted once the batch is applied).
pub(super) enum Outcome {
    Accepted(Accepted),
    Recorded(u64),
    /// Claimed events (with their payloads), each with the state it left; events sent to
    /// `dead` as unreadable, with the state they left.
    Claimed(Vec<(Event, bytes::Bytes, EventState)>, Vec<EventState>),
    /// The state the event left and the one it reached.
    Finished(Option<(EventState, EventState)>),
    Flushed,
}

/// An event a claim may take: when it is due, its seq, and its queue entry (`None` for a new
/// event, found after the claim cursor).
struct Candidate {
    due: u64,
    seq: u64,
    queue_key: Option<IVec>,
}

/// The first `max` queue entries due by `now_ms` that no earlier claim in the batch took.
fn due_entries(tx: &Tx, now_ms: u64, max: usize) -> Result<Vec<Candidate>> {
    let mut out = Vec::new();
    for item in tx.tree.range(keys::kind_range(keys::QUEUE)) {
        let (key, _) = item.db()?;
        let (due, seq) = match keys::parse_queue_key(&key) {
            Some((due, seq)) if due <= now_ms => (due, seq),
            _ => break,
        };
        if matches!(tx.overlay.get(key.as_ref()), Some(None)) {
            continue; // taken by an earlier claim in this batch
        }
        out.push(Candidate {
            due,
            seq,
            queue_key: Some(key),
        });
        if out.len() >= max {
            break;
        }
    }
    Ok(out)
}

/// The claim cursor: see [`keys::CURSOR`].
pub(super) fn cursor(tx: &Tx) -> Result<u64> {
    Ok(tx
        .get(keys::CURSOR)?
        .and_then(|v| keys::read_u64(&v))
        .unwrap_or(0))
}

/// How many records after the cursor one claim looks at, at most: deliveries that carry no
/// event (duplicates, filtered, rejected) lie between new events, and the cursor passes them.
pub(super) const CURSOR_SCAN: usize = 1024;

/// New events after the cursor and below `below`, in seq order: up to `max` of them, each
/// with whether it is one to claim. The cursor may pass the others: deliveries that carry
/// no event, and events with a status already (a queue entry or a result speaks for them).
/// New events are due at once; their id's time orders them among the queue's entries.
pub(super) fn new_events(tx: &Tx, from: u64, below: u64, max: usize) -> Result<Vec<(u64, bool)>> {
    let mut out = Vec::new();
    let mut wanted = 0;
    let range = keys::id_range(keys::DELIVERY, from.saturating_add(1), below);
    for item in tx.tree.range(range).take(CURSOR_SCAN) {
        let (key, bytes) = item.db()?;
        let Some(seq) = keys::key_id(&key) else {
            continue;
        };
        let fresh =
            codec::carries_event(&bytes) && tx.get(&keys::id_key(keys::STATUS, seq))?.is_none();
        out.push((seq, fresh));
        wanted += usize::from(fresh);
        if wanted >= max {
            break;
        }
    }
    Ok(out)
}

/// The events one claim takes, due first (queue entries and new events merged), and where
/// the cursor moves: past the new events taken and the ones passed over before them.
///
/// Only events below `below` are looked at: the ids this batch hands out (its own accepts,
/// not yet in the tree) start there, and the cursor must not pass them.
fn choose(tx: &Tx, now_ms: u64, max: usize, below: u64) -> Result<(Vec<Candidate>, Option<u64>)> {
    let queued = due_entries(tx, now_ms, max)?;
    let from = cursor(tx)?;
    let scanned = new_events(tx, from, below, max)?;
    let mut fresh = scanned
        .iter()
        .filter(|(_, claim)| *claim)
        .map(|&(seq, _)| Candidate {
            due: keys::id_time_ms(seq),
            seq,
            queue_key: None,
        })
        .peekable();
    let mut queued = queued.into_iter().peekable();
    let mut chosen = Vec::new();
    while chosen.len() < max {
        let take_queued = match (queued.peek(), fresh.peek()) {
            (Some(q), Some(f)) => q.due <= f.due,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        chosen.extend(if take_queued {
            queued.next()
        } else {
            fresh.next()
        });
    }
    // The cursor passes every scanned event up to the first new one left for later.
    let left = fresh.peek().map(|c| c.seq);
    let moved = scanned
        .iter()
        .map(|&(seq, _)| seq)
        .take_while(|seq| left.is_none_or(|l| *seq < l))
        .last();
    Ok((chosen, moved))
}

pub(super) fn apply(shared: &Shared, tx: &mut Tx, write: &Write) -> Result<Outcome> {
    Ok(match write {
        Write::Accept {
            draft,
            event,
            respond,
            ..
        } => Outcome::Accepted(accept(shared, tx, draft, event, *respond)?),
        Write::Record { draft, id, .. } => {
            let id = id.unwrap_or_else(|| shared.ids.next(draft.received_at_ms));
            let rec = delivery_record(draft, BodyRec::Inline(draft.body.clone()));
            tx.put_delivery(id, rec, None)?;
            Outcome::Recorded(id)
        }
        Write::Claim { now_ms, max, .. } => {
            let below = shared.batch_floor.load(std::sync::atomic::Ordering::SeqCst);
            let (claimed, dead) = claim(tx, *now_ms, *max, below)?;
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
    // An accepted delivery's record is its event's record: the event's seq is its id.
    let (verdict, seq) = match existing {
        Some(seq) => (Verdict::Duplicate, seq),
        None => (Verdict::Accepted, delivery_id),
    };
    let (reason, mut response) = respond(verdict);
    // Headers are the receiver's (request id etc.), whatever the verdict.
    response.headers = draft.response.headers.clone();
    let body = match verdict {
        Verdict::Accepted => body_ref(&draft.body, &event.payload),
        // A retry usually repeats the original body: then it, too, points at the payload.
        _ => match event_bytes(tx, seq)? {
            Some(bytes) => match codec::decode_event_at(seq, &bytes) {
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
    if verdict == Verdict::Accepted {
        // The event is the delivery's endpoint, id, type and time, and the payload after
        // them; the dedup key names it. No queue entry: the claim cursor finds a new event.
        // Two keys per ack.
        rec.event_id = Some(event.event_id.clone());
        rec.event_type = Some(event.event_type.clone());
        tx.put_delivery(delivery_id, rec, Some(&event.payload))?;
        tx.insert(&dedup, &keys::u64_bytes(seq));
    } else {
        tx.put_delivery(delivery_id, rec, None)?;
    }
    Ok(Accepted {
        verdict,
        delivery_id,
        seq,
    })
}

type Claimed = (Vec<(Event, bytes::Bytes, EventState)>, Vec<EventState>);

fn claim(tx: &mut Tx, now_ms: u64, max: usize, below: u64) -> Result<Claimed> {
    let mut claimed = Vec::new();
    let mut dead = Vec::new();
    let (chosen, moved) = choose(tx, now_ms, max, below)?;
    if let Some(seq) = moved {
        tx.insert(keys::CURSOR, &keys::u64_bytes(seq));
    }
    let mut seen = std::collections::HashSet::new();
    for Candidate { seq, queue_key, .. } in chosen {
        if let Some(key) = &queue_key {
            tx.remove(key);
        }
        if !seen.insert(seq) {
            continue; // a new event that also had a queue entry (a store copied by hand)
        }
        let read = event_of(tx, seq).and_then(|found| {
            found
                .map(|(rec, payload)| {
                    status_of(tx, seq, rec.received_at_ms).map(|s| (rec, payload, s))
                })
                .transpose()
        });
        match read {
            // A queue entry of an event that is running or finished is stale: dropped (with
            // the remove above), never a second run.
            Ok(Some((_, _, status)))
                if queue_key.is_some()
                    && !matches!(status.state, EventState::Queued | EventState::Retrying) =>
            {
                tracing::warn!(
                    seq,
                    state = status.state.as_str(),
                    "stale queue entry dropped"
                );
            }
            Ok(Some((rec, payload, mut status))) => {
                let before = status.state;
                status.state = EventState::Processing;
                status.next_attempt_at_ms = None;
                // The status says `processing` until the result: start-up re-queues it if
                // the process stops first (no separate in-flight entry, one key fewer).
                put_status(tx, seq, &status)?;
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
    // A look-up, not a decode: the event's record holds the payload, and the status that
    // the claim wrote is all a result needs.
    if event_bytes(tx, seq)?.is_none() {
        return Ok(None);
    }
    tx.insert(
        &keys::attempt_key(seq, attempt.number),
        codec::encode(attempt)?,
    );
    let stored = tx
        .get(&keys::id_key(keys::STATUS, seq))?
        .and_then(|bytes| codec::decode::<StatusRec>("status", &bytes).ok());
    let mut status = match stored {
        Some(s) => s,
        // Never claimed, or unreadable: the event's own time starts a fresh status (and an
        // unreadable event record still gets the result recorded).
        None => match event_of(tx, seq) {
            Ok(Some((rec, _))) => StatusRec::fresh(rec.received_at_ms),
            Ok(None) | Err(StoreError::Unreadable { .. }) => StatusRec::fresh(0),
            Err(e) => return Err(e),
        },
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
    use crate::store::keys::IndexKind;
    use crate::store::testing::{accept, attempt, draft, event, indexed, respond, temp_store};
    use crate::store::SledStore;

    /// Keys per kind in the log tree.
    fn kinds(store: &SledStore) -> std::collections::BTreeMap<char, usize> {
        let h = store.shared.h().unwrap();
        let mut out = std::collections::BTreeMap::new();
        for key in h.log.iter().keys() {
            *out.entry(key.unwrap()[0] as char).or_default() += 1;
        }
        out
    }

    #[tokio::test]
    async fn an_accepted_delivery_is_two_keys_and_its_body_is_stored_once() {
        let (_dir, store) = temp_store();
        let d = draft("evt-1");
        let body = d.body.clone();
        let a = store.accept(d, event("evt-1"), respond).await.unwrap();
        assert_eq!(a.verdict, Verdict::Accepted);
        assert_eq!(a.seq, a.delivery_id, "the delivery's record is the event's");
        // The delivery (holding the event) and the dedup key: nothing else on the ack path,
        // no event record of its own, no queue entry (the claim cursor was set when the
        // store was made).
        let expected: std::collections::BTreeMap<char, usize> =
            [('c', 1), ('d', 1), ('k', 1)].into();
        assert_eq!(kinds(&store), expected);
        let h = store.shared.h().unwrap();
        let copies: usize = h
            .log
            .iter()
            .values()
            .map(|v| {
                v.unwrap()
                    .windows(body.len())
                    .filter(|w| *w == body.as_bytes())
                    .count()
            })
            .sum();
        assert_eq!(copies, 1, "the body is stored once");
        let event = store.event(a.seq).unwrap().unwrap();
        assert_eq!(
            (event.event_id.as_str(), event.delivery_id),
            ("evt-1", a.delivery_id)
        );
        assert_eq!(store.payload(a.seq).unwrap().unwrap(), body.as_bytes());
        assert_eq!(store.delivery(a.delivery_id).unwrap().unwrap().body, body);
        // The indexes and the latency follow, without a write of their own on the ack path.
        store.set_latency(a.delivery_id, 777).unwrap();
        store.index_now().unwrap();
        // One chunk each by endpoint, verdict and type; no event id entry, as the dedup
        // key finds the delivery by its event id.
        assert_eq!(kinds(&store)[&'y'], 3);
        assert!(!kinds(&store).contains_key(&'x'));
        assert_eq!(
            indexed(&h.log, IndexKind::EventId, "evt-1"),
            [a.delivery_id]
        );
        assert_eq!(
            store.delivery(a.delivery_id).unwrap().unwrap().latency_us,
            Some(777)
        );
    }

    /// A store in `dir` holding one accepted event, claimed and never finished.
    async fn claimed_once(dir: &std::path::Path) -> (SledStore, Accepted) {
        let store = SledStore::open(dir, 16).unwrap();
        let a = accept(&store, "evt-1").await;
        assert_eq!(store.claim(u64::MAX / 2, 10).await.unwrap().len(), 1);
        (store, a)
    }

    /// A claim is the status and the running attempt (and the queue entry's removal): no
    /// in-flight entry. A stop before the result leaves the status `processing`, which the
    /// next start finds and re-queues, the attempt kept as interrupted.
    #[tokio::test]
    async fn a_claim_cut_short_by_a_stop_is_found_by_its_status_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let (store, a) = claimed_once(dir.path()).await;
        let expected: std::collections::BTreeMap<char, usize> =
            [('a', 1), ('c', 1), ('d', 1), ('k', 1), ('s', 1)].into();
        assert_eq!(kinds(&store), expected);
        drop(store);
        let store = SledStore::open(dir.path(), 16).unwrap();
        assert_eq!(store.requeue_inflight(2_000_000_000_000).unwrap(), 1);
        let event = store.event(a.seq).unwrap().unwrap();
        assert_eq!(event.state, EventState::Queued);
        let attempts = store.attempts(a.seq).unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].outcome, AttemptOutcome::Interrupted);
        // Once: a second call finds nothing more.
        assert_eq!(store.requeue_inflight(2_000_000_000_000).unwrap(), 0);
    }

    /// A format 2 store marked a claim with an in-flight entry: it is re-queued too, the
    /// entry removed, and the store restamped as the current format.
    #[tokio::test]
    async fn a_format_2_stores_in_flight_entry_is_honoured_once() {
        let dir = tempfile::tempdir().unwrap();
        let (store, a) = claimed_once(dir.path()).await;
        {
            // What format 2 wrote: an in-flight entry, and a status that is not
            // `processing` (so only the entry can tell).
            let h = store.shared.h().unwrap();
            h.log
                .insert(keys::id_key(keys::INFLIGHT, a.seq), &[])
                .unwrap();
            h.log.remove(keys::id_key(keys::STATUS, a.seq)).unwrap();
            h.meta
                .insert(keys::FORMAT_KEY, &keys::u64_bytes(2))
                .unwrap();
            h.db.flush().unwrap();
        }
        drop(store);
        let store = SledStore::open(dir.path(), 16).unwrap();
        assert_eq!(
            crate::store::open::stored_format(&store.shared.h().unwrap().db).unwrap(),
            Some(crate::store::FORMAT)
        );
        assert_eq!(store.requeue_inflight(2_000_000_000_000).unwrap(), 1);
        assert!(!kinds(&store).contains_key(&'i'));
        assert_eq!(
            store.event(a.seq).unwrap().unwrap().state,
            EventState::Queued
        );
    }

    /// New events are claimed from the cursor in order, each once, and the cursor is on disk
    /// with the claim: a restart neither repeats nor skips one.
    #[tokio::test]
    async fn new_events_are_claimed_in_order_from_the_cursor_once_across_a_restart() {
        let (dir, store) = temp_store();
        let mut seqs = Vec::new();
        for id in ["evt-1", "evt-2", "evt-3"] {
            seqs.push(accept(&store, id).await.seq);
        }
        assert!(store.next_due().unwrap().is_some());
        let first: Vec<u64> = store
            .claim(u64::MAX / 2, 2)
            .await
            .unwrap()
            .iter()
            .map(|(e, _)| e.seq)
            .collect();
        assert_eq!(first, seqs[..2]);
        drop(store);
        let store = SledStore::open(dir.path(), 16).unwrap();
        assert_eq!(store.requeue_inflight(u64::MAX / 2).unwrap(), 2);
        let mut next: Vec<u64> = store
            .claim(u64::MAX / 2, 10)
            .await
            .unwrap()
            .iter()
            .map(|(e, _)| e.seq)
            .collect();
        next.sort();
        // The third (never claimed) and the two cut short, re-queued: each once.
        assert_eq!(next, seqs);
        assert!(store.claim(u64::MAX / 2, 10).await.unwrap().is_empty());
        assert_eq!(store.next_due().unwrap(), None);
    }

    /// Queue entries of retries and new events are taken in due order, whichever comes first.
    #[tokio::test]
    async fn a_claim_merges_due_retries_and_new_events_by_time() {
        let (_dir, store) = temp_store();
        let old = accept(&store, "evt-1").await;
        store.claim(u64::MAX / 2, 1).await.unwrap();
        let new = accept(&store, "evt-2").await;
        // evt-1 failed and is due again before evt-2 was received.
        let failed = attempt(AttemptOutcome::Error);
        store.finish(old.seq, failed, Next::RetryAt(1)).unwrap();
        store.flush().await.unwrap();
        assert_eq!(store.next_due().unwrap(), Some(1));
        let claimed = store.claim(u64::MAX / 2, 1).await.unwrap();
        assert_eq!(claimed[0].0.seq, old.seq);
        let claimed = store.claim(u64::MAX / 2, 1).await.unwrap();
        assert_eq!(claimed[0].0.seq, new.seq);
        assert!(store.claim(u64::MAX / 2, 1).await.unwrap().is_empty());
    }

    /// A queue entry of an event that has finished (a copy made by hand, say) does not run
    /// it again: the entry is dropped.
    #[tokio::test]
    async fn a_stale_queue_entry_never_runs_a_finished_event_again() {
        let dir = tempfile::tempdir().unwrap();
        let (store, a) = claimed_once(dir.path()).await;
        let done = attempt(AttemptOutcome::Ok);
        store.finish(a.seq, done, Next::Done).unwrap();
        store.flush().await.unwrap();
        store
            .shared
            .h()
            .unwrap()
            .log
            .insert(keys::queue_key(5, a.seq), &[])
            .unwrap();
        assert!(store.claim(u64::MAX / 2, 10).await.unwrap().is_empty());
        assert!(!kinds(&store).contains_key(&'q'));
        assert_eq!(store.event(a.seq).unwrap().unwrap().state, EventState::Done);
    }

    /// Stamps the store with an older `format`, closes it and opens it again, as a newer
    /// hookd would: it comes back restamped.
    fn reopened_as(store: SledStore, dir: &std::path::Path, format: u64) -> SledStore {
        {
            let h = store.shared.h().unwrap();
            h.meta
                .insert(keys::FORMAT_KEY, &keys::u64_bytes(format))
                .unwrap();
            h.db.flush().unwrap();
        }
        drop(store);
        let store = SledStore::open(dir, 16).unwrap();
        assert_eq!(
            crate::store::open::stored_format(&store.shared.h().unwrap().db).unwrap(),
            Some(crate::store::FORMAT)
        );
        store
    }

    /// A format 3 store has a queue entry for every new event: restamping moves the cursor
    /// past them, so each runs once, from its queue entry.
    #[tokio::test]
    async fn a_format_3_stores_queue_is_claimed_once_after_the_restamp() {
        let (dir, store) = temp_store();
        let mut seqs = Vec::new();
        for id in ["evt-1", "evt-2"] {
            seqs.push(accept(&store, id).await.seq);
        }
        {
            let h = store.shared.h().unwrap();
            for seq in &seqs {
                h.log
                    .insert(keys::queue_key(keys::id_time_ms(*seq), *seq), &[])
                    .unwrap();
            }
            h.log.remove(keys::CURSOR).unwrap();
        }
        let store = reopened_as(store, dir.path(), 3);
        let h = store.shared.h().unwrap();
        assert_eq!(
            h.log
                .get(keys::CURSOR)
                .unwrap()
                .and_then(|v| keys::read_u64(&v)),
            Some(seqs[1])
        );
        let mut claimed = Vec::new();
        for _ in 0..3 {
            claimed.extend(
                store
                    .claim(u64::MAX / 2, 1)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|(e, _)| e.seq),
            );
        }
        assert_eq!(claimed, seqs);
        assert!(!kinds(&store).contains_key(&'q'));
    }

    /// A format 4 store keeps one index key per delivery and value, the latency in the
    /// verdict key: its first opening by format 5 rebuilds them as chunks, latency kept.
    #[tokio::test]
    async fn a_format_4_stores_indexes_are_rebuilt_in_chunks_at_the_restamp() {
        let (dir, store) = temp_store();
        let a = accept(&store, "evt-1").await;
        let b = accept(&store, "evt-2").await;
        {
            let h = store.shared.h().unwrap();
            for key in h.log.range(keys::kind_range(keys::CHUNK)).keys() {
                h.log.remove(key.unwrap()).unwrap();
            }
            for (id, event_id, us) in [(a.delivery_id, "evt-1", 11), (b.delivery_id, "evt-2", 22)] {
                for (kind, value) in [
                    (IndexKind::Endpoint, "std"),
                    (IndexKind::EventType, "t"),
                    (IndexKind::EventId, event_id),
                ] {
                    h.log.insert(keys::index_key(kind, value, id), &[]).unwrap();
                }
                h.log
                    .insert(
                        keys::index_key(IndexKind::Verdict, "accepted", id),
                        &keys::u64_bytes(us),
                    )
                    .unwrap();
            }
            h.log
                .insert(keys::WATERMARK, &keys::u64_bytes(b.delivery_id))
                .unwrap();
            h.meta
                .insert(keys::FORMAT_KEY, &keys::u64_bytes(4))
                .unwrap();
            h.db.flush().unwrap();
        }
        // verify-data checks a format 4 store's indexes as the next start will rebuild them
        // (it has no chunks yet: they are not missing).
        let report = crate::store::check::check(dir.path()).unwrap();
        assert!(report.consistent(), "{:?}", report.problems);
        let store = reopened_as(store, dir.path(), 4);
        let h = store.shared.h().unwrap();
        // The dedup keys find accepted deliveries by event id: no entry of their own.
        assert!(!kinds(&store).contains_key(&'x'));
        assert_eq!(kinds(&store)[&'y'], 3);
        assert_eq!(
            indexed(&h.log, IndexKind::EventId, "evt-2"),
            [b.delivery_id]
        );
        assert_eq!(
            indexed(&h.log, IndexKind::EventType, "t"),
            [b.delivery_id, a.delivery_id]
        );
        assert_eq!(
            store.delivery(b.delivery_id).unwrap().unwrap().latency_us,
            Some(22)
        );
        assert!(crate::store::check::check_db(&h.db).unwrap().consistent());
    }

    /// A rebuild of the indexes cut short (the start was killed) is resumed by the next
    /// start, whatever the format says by then.
    #[tokio::test]
    async fn an_unfinished_rebuild_of_the_indexes_is_resumed() {
        let (dir, store) = temp_store();
        let a = accept(&store, "evt-1").await;
        store.index_now().unwrap();
        {
            let h = store.shared.h().unwrap();
            for key in h.log.range(keys::kind_range(keys::CHUNK)).keys() {
                h.log.remove(key.unwrap()).unwrap();
            }
            h.meta.insert(keys::REINDEXING, &[]).unwrap();
        }
        // The file beside the store still names the format the restamp started from.
        let file = dir.path().join(crate::store::open::FORMAT_FILE);
        std::fs::write(&file, "4\n").unwrap();
        let store = reopened_as(store, dir.path(), crate::store::FORMAT);
        assert_eq!(
            std::fs::read_to_string(&file).unwrap().trim(),
            crate::store::FORMAT.to_string()
        );
        let h = store.shared.h().unwrap();
        assert_eq!(kinds(&store)[&'y'], 3);
        assert!(!h.meta.contains_key(keys::REINDEXING).unwrap());
        assert_eq!(indexed(&h.log, IndexKind::EventType, "t"), [a.delivery_id]);
    }

    /// The claim cursor may lie past every record still stored (they were pruned) and past
    /// the clock (it was set back): a new event still gets an id after it, and runs.
    #[tokio::test]
    async fn new_ids_start_after_the_claim_cursor() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path(), 16).unwrap();
            let h = store.shared.h().unwrap();
            let ahead = keys::first_id_at(1_800_000_000_000);
            h.log.insert(keys::CURSOR, &keys::u64_bytes(ahead)).unwrap();
            h.db.flush().unwrap();
        }
        let store = SledStore::open(dir.path(), 16).unwrap();
        // The draft's time is 1_700_000_000_000, before the cursor.
        let a = accept(&store, "evt-1").await;
        assert!(a.seq > keys::first_id_at(1_800_000_000_000));
        let claimed = store.claim(u64::MAX / 2, 10).await.unwrap();
        assert_eq!(claimed.len(), 1);
    }

    /// The next due time is that of the first new event a claim would take: one the cursor
    /// has not passed that has a status already (as a restored copy can show) does not count.
    #[tokio::test]
    async fn next_due_is_the_first_new_event_a_claim_would_take() {
        let (_dir, store) = temp_store();
        let mut seqs = Vec::new();
        for (id, at) in [("evt-1", 1_000), ("evt-2", 2_000)] {
            let mut d = draft(id);
            d.received_at_ms = at;
            seqs.push(store.accept(d, event(id), respond).await.unwrap().seq);
        }
        assert_eq!(store.next_due().unwrap(), Some(1_000));
        let mut done = StatusRec::fresh(1_000);
        done.state = EventState::Done;
        store
            .shared
            .h()
            .unwrap()
            .log
            .insert(
                keys::id_key(keys::STATUS, seqs[0]),
                codec::encode(&done).unwrap(),
            )
            .unwrap();
        assert_eq!(store.next_due().unwrap(), Some(2_000));
    }
}
