//! Retention inside the store: removes delivery records (with their index keys and latency),
//! and finished events (with their payloads, attempt logs and dedup keys) older than a
//! cut-off, a bounded batch at a time.
//!
//! Each batch is its own sled transaction, run by the caller (the pruner, on a blocking
//! thread), not by the writer thread. Pruned records are older than the retention window,
//! so the hot path almost never writes them; where the two do meet (a late duplicate reading
//! a dedup key, a replay re-queueing an old event) sled's serializable transactions decide
//! the order, and each batch re-checks inside its transaction what it read before. Sending
//! the batches through the writer instead would put them inside the acknowledgement's group
//! commit: every ack in that batch would wait for the deletes, and deletes do not need the
//! fsync an ack pays for (a prune lost in a crash simply runs again). Small batches keep the
//! time any one transaction holds sled's lock short, so receiving keeps going between them.

use super::keys::{self, IndexKind};
use super::model::{Delivery, Event, EventState};
use super::{from_json, tx_err, writer, Result, Store};
use sled::Transactional;
use std::sync::atomic::Ordering;

/// What one event batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventBatch {
    /// Events removed (with payload, attempts and dedup key).
    pub removed: usize,
    /// Where the next batch continues; `None` once every event before the cut-off was seen.
    pub next: Option<u64>,
}

/// Whether retention may remove an event in this state: only finished ones. Queued,
/// processing and retrying events stay whatever their age, so nothing acknowledged is lost.
fn finished(state: EventState) -> bool {
    matches!(state, EventState::Done | EventState::Dead)
}

impl Store {
    /// Removes up to `max` delivery records received before `cutoff_ms`, with their index
    /// keys and latency entries. Returns how many went; fewer than `max` means none are left.
    pub fn prune_deliveries(&self, cutoff_ms: u64, max: usize) -> Result<usize> {
        let end = keys::u64_key(keys::first_id_at(cutoff_ms));
        let ids: Vec<sled::IVec> = self
            .deliveries
            .range(..end)
            .keys()
            .take(max)
            .collect::<sled::Result<_>>()?;
        if ids.is_empty() {
            return Ok(0);
        }
        let removed = (&self.deliveries, &self.delivery_idx, &self.latency)
            .transaction(|(dt, it, lt)| {
                let mut verdicts = Vec::with_capacity(ids.len());
                for id in &ids {
                    let Some(bytes) = dt.remove(id)? else {
                        continue;
                    };
                    lt.remove(id)?;
                    // An unreadable record still goes; its index keys cannot be named
                    // (verify-data reports them).
                    if let Ok(d) = from_json::<Delivery>("deliveries", &bytes) {
                        for key in writer::index_entries(&d) {
                            it.remove(key)?;
                        }
                        verdicts.push(Some(d.verdict));
                    } else {
                        verdicts.push(None);
                    }
                }
                Ok(verdicts)
            })
            .map_err(tx_err)?;
        for v in removed.iter().flatten() {
            self.counts.verdict(*v).fetch_sub(1, Ordering::Relaxed);
        }
        Ok(removed.len())
    }

    /// Removes finished events accepted before `cutoff_ms`, looking at up to `max` events
    /// from seq `from` on. An event stays while a delivery of its event id was received after
    /// the cut-off, so its dedup key lives at least as long as the delivery records: a late
    /// retry inside the window is still recognised as a duplicate.
    pub fn prune_events(&self, cutoff_ms: u64, from: u64, max: usize) -> Result<EventBatch> {
        let first_kept = keys::first_id_at(cutoff_ms);
        let mut candidates = Vec::new();
        let mut next = None;
        let mut scanned = 0;
        for item in self
            .events
            .range(keys::u64_key(from)..keys::u64_key(first_kept))
        {
            let (key, bytes) = item?;
            let Some(seq) = keys::read_u64(&key) else {
                continue;
            };
            if scanned == max {
                next = Some(seq);
                break;
            }
            scanned += 1;
            let Ok(event) = from_json::<Event>("events", &bytes) else {
                continue; // left for verify-data to report
            };
            if !finished(event.state) || self.seen_since(&event.event_id, first_kept)? {
                continue;
            }
            let attempts: Vec<sled::IVec> = self
                .attempts
                .scan_prefix(keys::u64_key(seq))
                .keys()
                .collect::<sled::Result<_>>()?;
            candidates.push((seq, attempts));
        }
        if candidates.is_empty() {
            return Ok(EventBatch { removed: 0, next });
        }
        let removed = (&self.events, &self.payloads, &self.dedup, &self.attempts)
            .transaction(|(ev, pl, dd, at)| {
                let mut states = Vec::new();
                for (seq, attempts) in &candidates {
                    let key = keys::u64_key(*seq);
                    let Some(bytes) = ev.get(key)? else {
                        continue;
                    };
                    // Re-read inside the transaction: a replay may have re-queued it since.
                    let event: Event = match from_json("events", &bytes) {
                        Ok(e) => e,
                        Err(_) => continue,
                    };
                    if !finished(event.state) {
                        continue;
                    }
                    ev.remove(&key)?;
                    pl.remove(&key)?;
                    for a in attempts {
                        at.remove(a)?;
                    }
                    let dedup = keys::dedup_key(&event.endpoint, &event.event_id);
                    if dd.get(&dedup)?.and_then(|v| keys::read_u64(&v)) == Some(*seq) {
                        dd.remove(dedup)?;
                    }
                    states.push(event.state);
                }
                Ok(states)
            })
            .map_err(tx_err)?;
        for s in &removed {
            self.counts.state(*s).fetch_sub(1, Ordering::Relaxed);
        }
        Ok(EventBatch {
            removed: removed.len(),
            next,
        })
    }

    /// Whether a delivery with this event id was received at or after id `since`.
    fn seen_since(&self, event_id: &str, since: u64) -> Result<bool> {
        let start = keys::index_key(IndexKind::EventId, event_id, since);
        let prefix = keys::index_prefix(IndexKind::EventId, event_id);
        Ok(self
            .delivery_idx
            .range(start..)
            .keys()
            .next()
            .transpose()?
            .is_some_and(|k| k.starts_with(&prefix)))
    }
}
