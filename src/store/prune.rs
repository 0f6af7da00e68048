//! Retention inside the store: removes delivery records (with their index entries) and
//! finished events (with their status, attempts and dedup key) older than a cut-off, a
//! bounded batch at a time.
//!
//! Each batch is one atomic `apply_batch`, run by the caller (the pruner, on a blocking
//! thread), not by the writer thread: inside the writer, every ack of that group commit would
//! wait for the deletes, and deletes need no fsync (a prune lost in a crash simply runs
//! again). Event batches re-check each event's state under the store's mutation lock, so a
//! replay that re-queued it since wins. Deliveries are removed only where the indexer has
//! been, so it never writes entries for a delivery that is gone.

use super::codec::{self, DeliveryRec, EventRec, StatusRec};
use super::keys::{self, IndexKind};
use super::model::EventState;
use super::tx::{self, Tx};
use super::{indexer, Db, Result, SledStore};
use std::collections::HashSet;
use std::sync::atomic::Ordering;

/// Events removed under one hold of the store's mutation lock, and deliveries removed per
/// `apply_batch`. sled's `apply_batch` holds a lock that every write (an ack's group commit
/// included) waits for, for about 6 µs a key: 16 events or deliveries are 60-100 keys, under
/// a millisecond of waiting for an ack behind them.
const LOCKED_CHUNK: usize = 16;

/// What one event batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventBatch {
    /// Events removed (with status, attempts and dedup key).
    pub removed: usize,
    /// Where the next batch continues; `None` once every event before the cut-off was seen.
    pub next: Option<u64>,
}

/// Whether retention may remove an event in this state: only finished ones. Queued,
/// processing and retrying events stay whatever their age, so nothing acknowledged is lost.
fn finished(state: EventState) -> bool {
    matches!(state, EventState::Done | EventState::Dead)
}

impl SledStore {
    /// Removes up to `max` delivery records received before `cutoff_ms`, with their index
    /// entries. Returns how many went; fewer than `max` means none are left.
    pub fn prune_deliveries(&self, cutoff_ms: u64, max: usize) -> Result<usize> {
        let shared = &self.shared;
        let end = keys::first_id_at(cutoff_ms);
        // Deliveries stored with a past time (imports, tests) can be older than the cut-off
        // and not indexed yet: index them first, so their entries go with them.
        indexer::catch_up(shared, end.saturating_sub(1))?;
        let indexed_below = shared.watermark.load(Ordering::Relaxed).saturating_add(1);
        let end = end.min(indexed_below);
        let mut batches = Vec::new();
        let mut verdicts = Vec::new();
        for (i, item) in shared
            .h()?
            .log
            .range(keys::id_range(keys::DELIVERY, 0, end))
            .take(max)
            .enumerate()
        {
            if i % LOCKED_CHUNK == 0 {
                batches.push(sled::Batch::default());
            }
            let batch = batches.last_mut().expect("pushed above");
            let (key, bytes) = item.db()?;
            let id = keys::key_id(&key).unwrap_or(0);
            batch.remove(key);
            // An unreadable record still goes; its index entries cannot be named
            // (verify-data reports them).
            if let Ok(d) = codec::decode::<DeliveryRec>("delivery", &bytes) {
                for entry in indexer::entries(id, &d) {
                    batch.remove(entry);
                }
                verdicts.push(d.verdict);
            }
        }
        let n = verdicts.len();
        if n == 0 {
            return Ok(0);
        }
        // Each chunk is atomic (a delivery goes with its index entries); the chunks are
        // applied one by one so an ack never waits behind the whole batch.
        for batch in batches {
            shared.h()?.log.apply_batch(batch).db()?;
        }
        for v in verdicts {
            shared.counts.verdict(v).fetch_sub(1, Ordering::Relaxed);
        }
        Ok(n)
    }

    /// Removes finished events accepted before `cutoff_ms`, looking at up to `max` events
    /// from seq `from` on. An event stays while a delivery of its event id was received after
    /// the cut-off, so its dedup key lives at least as long as the delivery records: a late
    /// retry inside the window is still recognised as a duplicate.
    pub fn prune_events(&self, cutoff_ms: u64, from: u64, max: usize) -> Result<EventBatch> {
        let shared = &self.shared;
        let first_kept = keys::first_id_at(cutoff_ms);
        let recent = self.unindexed_event_ids()?;
        let mut candidates: Vec<(u64, EventRec)> = Vec::new();
        let mut next = None;
        let mut scanned = 0;
        for item in shared
            .h()?
            .log
            .range(keys::id_range(keys::EVENT, from, first_kept))
        {
            let (key, bytes) = item.db()?;
            let Some(seq) = keys::key_id(&key) else {
                continue;
            };
            if scanned == max {
                next = Some(seq);
                break;
            }
            scanned += 1;
            let Ok((rec, _)) = codec::decode_event("event", &bytes) else {
                continue; // left for verify-data to report
            };
            if recent.contains(&rec.event_id) || self.seen_since(&rec.event_id, first_kept)? {
                continue;
            }
            candidates.push((seq, rec));
        }
        if candidates.is_empty() {
            return Ok(EventBatch { removed: 0, next });
        }
        // The mutation lock is taken per small chunk, so a write batch (an ack) waits
        // behind at most one chunk of removals, however large the prune's batch.
        let mut removed = 0;
        for chunk in candidates.chunks(LOCKED_CHUNK) {
            let guard = shared.lock();
            let h = shared.h()?;
            let mut tx = Tx::new(&h.log);
            let mut states = Vec::new();
            for (seq, rec) in chunk {
                let seq = *seq;
                let state = match tx::status_of(&tx, seq, rec.received_at_ms) {
                    Ok(StatusRec { state, .. }) => state,
                    Err(_) => continue,
                };
                if !finished(state) {
                    continue;
                }
                tx.remove(&keys::id_key(keys::EVENT, seq));
                tx.remove(&keys::id_key(keys::STATUS, seq));
                let mut prefix = vec![keys::ATTEMPT];
                prefix.extend_from_slice(&keys::u64_bytes(seq));
                for a in h.log.scan_prefix(prefix).keys() {
                    tx.remove(&a.db()?);
                }
                let dedup = keys::dedup_key(&rec.endpoint, &rec.event_id);
                if tx.get(&dedup)?.and_then(|v| keys::read_u64(&v)) == Some(seq) {
                    tx.remove(&dedup);
                }
                states.push(state);
            }
            tx.commit()?;
            drop(guard);
            for s in &states {
                shared.counts.removed(*s);
            }
            removed += states.len();
        }
        Ok(EventBatch { removed, next })
    }

    /// Whether an indexed delivery with this event id was received at or after id `since`.
    fn seen_since(&self, event_id: &str, since: u64) -> Result<bool> {
        let start = keys::index_key(IndexKind::EventId, event_id, since);
        let prefix = keys::index_prefix(IndexKind::EventId, event_id);
        Ok(self
            .shared
            .h()?
            .log
            .range(start..)
            .keys()
            .next()
            .transpose()
            .db()?
            .is_some_and(|k| k.starts_with(&prefix)))
    }

    /// The event ids of the deliveries the indexer has not reached yet.
    fn unindexed_event_ids(&self) -> Result<HashSet<String>> {
        let from = self
            .shared
            .watermark
            .load(Ordering::Relaxed)
            .saturating_add(1);
        let mut ids = HashSet::new();
        for item in self
            .shared
            .h()?
            .log
            .range(keys::id_range(keys::DELIVERY, from, u64::MAX))
        {
            let (_, bytes) = item.db()?;
            if let Ok(DeliveryRec {
                event_id: Some(id), ..
            }) = codec::decode("delivery", &bytes)
            {
                ids.insert(id);
            }
        }
        Ok(ids)
    }
}
