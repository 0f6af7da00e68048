//! Retention inside the store: removes delivery records (with their index entries) and
//! finished events (with their status, attempts and dedup key) older than a cut-off, a
//! bounded batch at a time.
//!
//! An accepted delivery's record is also its event's (format 4). When the record's time
//! comes, the event goes with it if it has finished and no later delivery of its id is
//! left (a duplicate's body may point into it, and its dedup key must live as long as the
//! delivery records, so that a late retry inside the window is still recognised as a
//! duplicate). Otherwise the event moves to a record of its own, and the delivery goes.
//! Events in records of their own (moved, or from older formats) are pruned by
//! [`SledStore::prune_events`], after the deliveries: once finished, with no delivery of
//! their id inside the window. Whether a delivery of the id is left is read again under the
//! writer's lock, so a duplicate accepted meanwhile keeps its event.
//!
//! Batches are run by the caller (the pruner, on a blocking thread), not by the writer
//! thread: inside the writer, every ack of that group commit would wait for the deletes.
//! Deletes need no flush for their own sake (a prune lost in a crash simply runs again), but
//! the prune flushes each chunk itself once it lets go of the lock, so that acks do not carry
//! its bytes in their own flushes. Each chunk re-checks its events' states under the store's
//! mutation lock, so a replay that re-queued one since wins. Deliveries are removed only
//! where the indexer has been, so it never writes entries for a delivery that is gone.

use super::codec::{self, DeliveryRec, EventRec};
use super::indexer::{self, Indexed};
use super::keys::{self, IndexKind};
use super::model::{EventState, Verdict};
use super::tx::{self, Tx};
use super::{chunks, Db, Handles, Result, SledStore};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;

/// Records removed under one hold of the store's mutation lock. Every write batch (an ack's
/// group commit included) waits for the hold to end, and a hold costs about 200 µs whatever
/// its size (mostly sled's `apply_batch` of the index chunks it rewrites) plus 25-40 µs a
/// record (its ~4 keys). Chunks of 16 held it 590-780 µs and made 2-3 % of the write batches
/// wait more than 0.5 ms while a prune ran, which set the acks' p99; chunks of 4 hold it
/// 290-360 µs, 0.2-0.3 % wait that long, and the p99 while pruning fell by 15-20 %
/// (benches/README.md, "The prune in chunks of 4"). The price is a prune 1.5-2.4× as long:
/// each chunk also pays a flush of its own.
const LOCKED_CHUNK: usize = 4;

/// What one prune batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneBatch {
    /// Delivery records removed, with their index entries.
    pub deliveries: usize,
    /// Events removed, with their status, attempts and dedup key.
    pub events: usize,
    /// Where the next batch continues; `None` once every record before the cut-off was seen.
    pub next: Option<u64>,
}

/// What a finished prune did, as `/api/stats` shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LastPrune {
    /// When it finished (ms since the epoch).
    pub at_ms: u64,
    pub duration_ms: u64,
    /// Deliveries and events removed.
    pub records: u64,
    pub exports: u64,
}

/// This instance's turn to run retention, from [`crate::store::Store::prune_turn`]; the
/// prune's batches take it as proof. On one machine nothing else prunes the store, so the
/// turn is always there. In cluster mode it is a lock in the database held for the whole
/// run (deliveries, events and the shared exports directory), released when this is
/// dropped: two instances whose schedules fire together never prune side by side.
pub struct PruneTurn {
    held: Option<Box<dyn Held>>,
}

/// What holds a turn in cluster mode; dropping it gives the turn up.
pub(crate) trait Held: Send {
    /// Whether the turn is still this instance's (its lock can go with its connection).
    fn still_held(&self) -> bool;
}

impl PruneTurn {
    /// A turn that holds nothing: the embedded store has one user.
    pub(crate) fn local() -> PruneTurn {
        PruneTurn { held: None }
    }

    /// A turn that lasts as long as `held`.
    pub(crate) fn holding(held: impl Held + 'static) -> PruneTurn {
        PruneTurn {
            held: Some(Box::new(held)),
        }
    }

    /// Whether this is still the instance's turn: a run asks between its batches, and stops
    /// when it is not (another instance may have taken it).
    pub fn still_held(&self) -> bool {
        self.held.as_ref().is_none_or(|h| h.still_held())
    }
}

/// Whether retention may remove an event in this state: only finished ones. Queued,
/// processing and retrying events stay whatever their age, so nothing acknowledged is lost.
fn finished(state: EventState) -> bool {
    matches!(state, EventState::Done | EventState::Dead)
}

/// A record the prune looked at, in one chunk.
enum Found {
    /// A delivery with no event in it: it goes.
    Delivery(sled::IVec, Option<DeliveryRec>),
    /// A record holding an event (an accepted delivery's, or one of its own): it goes with
    /// the event, if the event may go. Otherwise a delivery's record still goes, its event
    /// moved to a record of its own.
    Event {
        key: sled::IVec,
        seq: u64,
        rec: EventRec,
        d: Option<DeliveryRec>,
        bytes: sled::IVec,
    },
}

impl SledStore {
    /// Always this instance's turn: nothing else prunes an embedded store.
    pub fn prune_turn(&self) -> Result<Option<PruneTurn>> {
        Ok(Some(PruneTurn::local()))
    }

    /// Nothing to share: the one instance's pruner keeps its own figures.
    pub fn record_prune(&self, _prune: &LastPrune) -> Result<()> {
        Ok(())
    }

    /// See [`crate::store::Store::shared_last_prune`]: never, on one machine.
    pub fn shared_last_prune(&self) -> Result<Option<LastPrune>> {
        Ok(None)
    }

    /// Removes delivery records received before `cutoff_ms`, with their index entries,
    /// looking at up to `max` of them from id `from` on. The event in a record that goes
    /// goes with it if it may, or else moves to a record of its own (see the module comment).
    pub fn prune_deliveries(
        &self,
        _turn: &PruneTurn,
        cutoff_ms: u64,
        from: u64,
        max: usize,
    ) -> Result<PruneBatch> {
        let shared = &self.shared;
        let first_kept = keys::first_id_at(cutoff_ms);
        // Deliveries stored with a past time (imports, tests) can be older than the cut-off
        // and not indexed yet: index them first, so their entries go with them.
        indexer::catch_up(shared, first_kept.saturating_sub(1))?;
        let indexed_below = shared.watermark.load(Ordering::Relaxed).saturating_add(1);
        let end = first_kept.min(indexed_below);
        let mut found = Vec::new();
        let mut next = None;
        for item in shared
            .h()?
            .log
            .range(keys::id_range(keys::DELIVERY, from, end))
        {
            let (key, bytes) = item.db()?;
            let id = keys::key_id(&key).unwrap_or(0);
            if found.len() == max {
                next = Some(id);
                break;
            }
            // An unreadable delivery still goes; its index entries cannot be named
            // (verify-data reports them). An unreadable one that holds an event stays, like
            // an unreadable event record, for verify-data to report with its status.
            let d = codec::decode_delivery("delivery", &bytes).ok();
            found.push(match codec::decode_event_at(id, &bytes) {
                Ok((rec, _)) if codec::carries_event(&bytes) => Found::Event {
                    key,
                    seq: id,
                    rec,
                    d,
                    bytes,
                },
                Err(_) if codec::carries_event(&bytes) => continue,
                _ => Found::Delivery(key, d),
            });
        }
        let (deliveries, events) = self.remove_found(found, first_kept)?;
        Ok(PruneBatch {
            deliveries,
            events,
            next,
        })
    }

    /// Removes finished events accepted before `cutoff_ms` that have records of their own
    /// (older formats), looking at up to `max` of them from seq `from` on; see the module
    /// comment for when an event stays.
    pub fn prune_events(
        &self,
        _turn: &PruneTurn,
        cutoff_ms: u64,
        from: u64,
        max: usize,
    ) -> Result<PruneBatch> {
        let first_kept = keys::first_id_at(cutoff_ms);
        let mut found = Vec::new();
        let mut next = None;
        for item in self
            .shared
            .h()?
            .log
            .range(keys::id_range(keys::EVENT, from, first_kept))
        {
            let (key, bytes) = item.db()?;
            let Some(seq) = keys::key_id(&key) else {
                continue;
            };
            if found.len() == max {
                next = Some(seq);
                break;
            }
            // An unreadable one is left for verify-data to report.
            if let Ok((rec, _)) = codec::decode_event("event", &bytes) {
                found.push(Found::Event {
                    key,
                    seq,
                    rec,
                    d: None,
                    bytes,
                });
            }
        }
        let (deliveries, events) = self.remove_found(found, first_kept)?;
        Ok(PruneBatch {
            deliveries,
            events,
            next,
        })
    }

    /// Removes what may go of `found`, a small chunk at a time under the mutation lock, so
    /// a write batch (an ack) waits behind at most one chunk. Returns how many deliveries
    /// and events went.
    fn remove_found(&self, found: Vec<Found>, first_kept: u64) -> Result<(usize, usize)> {
        let shared = &self.shared;
        // Event ids of the deliveries the indexer has not reached, and where that look ends.
        let mut recent = HashSet::new();
        let mut unread = None;
        let (mut deliveries, mut events_removed) = (0, 0);
        for chunk in found.chunks(LOCKED_CHUNK) {
            let has_events = chunk.iter().any(|f| matches!(f, Found::Event { .. }));
            if has_events {
                let from = unread
                    .unwrap_or_else(|| shared.watermark.load(Ordering::Relaxed).saturating_add(1));
                unread = Some(self.event_ids_from(from, &mut recent)?);
            }
            // Whether a later delivery of each event's id is indexed: index reads, made
            // before the lock. An event in its accepted delivery's record waits for every
            // later delivery of its id to go first (a duplicate's body points into it); one
            // of its own, for those inside the window.
            let indexed_later = chunk
                .iter()
                .map(|f| match f {
                    Found::Event { key, seq, rec, .. } => {
                        let since = match key.first() {
                            Some(&keys::DELIVERY) => seq.saturating_add(1),
                            _ => first_kept,
                        };
                        self.seen_since(&rec.event_id, since)
                    }
                    Found::Delivery(..) => Ok(false),
                })
                .collect::<Result<Vec<bool>>>()?;
            let guard = shared.lock();
            #[cfg(test)]
            shared
                .largest_prune_hold
                .fetch_max(chunk.len(), Ordering::Relaxed);
            // Deliveries stored since the look above (the writer waits for this lock now):
            // a duplicate among them keeps its event too.
            if let Some(from) = unread.filter(|_| has_events) {
                unread = Some(self.event_ids_from(from, &mut recent)?);
            }
            let h = shared.h()?;
            let mut tx = Tx::new(&h.log);
            let mut verdicts: Vec<Verdict> = Vec::new();
            // The chunk entries of the deliveries that go, by index value.
            let mut unindexed: BTreeMap<(IndexKind, String), Vec<u64>> = BTreeMap::new();
            let mut states = Vec::new();
            for (f, indexed_later) in chunk.iter().zip(indexed_later) {
                let (key, d) = match f {
                    Found::Delivery(key, d) => (key, d),
                    Found::Event {
                        key,
                        seq,
                        rec,
                        d,
                        bytes,
                    } => {
                        let may_go = !indexed_later && !recent.contains(&rec.event_id);
                        let state = tx::status_of(&tx, *seq, rec.received_at_ms).ok();
                        match state.map(|s| s.state) {
                            Some(state) if may_go && finished(state) => {
                                remove_event(&mut tx, &h, *seq, rec)?;
                                states.push(state);
                            }
                            // The event stays and its delivery goes: the event moves to a
                            // record of its own. A new one joins the queue, since claims
                            // look for new events in deliveries' records only.
                            _ if key.first() == Some(&keys::DELIVERY) => {
                                let Ok((_, payload)) = codec::decode_event_at(*seq, bytes) else {
                                    continue;
                                };
                                tx.insert(
                                    &keys::id_key(keys::EVENT, *seq),
                                    codec::encode_event(rec, payload)?,
                                );
                                if tx.get(&keys::id_key(keys::STATUS, *seq))?.is_none() {
                                    tx.insert(&keys::queue_key(rec.received_at_ms, *seq), &[]);
                                }
                            }
                            _ => continue,
                        }
                        (key, d)
                    }
                };
                tx.remove(key);
                if key.first() == Some(&keys::DELIVERY) {
                    deliveries += 1;
                }
                if let Some(d) = d {
                    let id = keys::key_id(key).unwrap_or(0);
                    let item = Indexed::of(d);
                    for (kind, value) in item.chunked() {
                        unindexed
                            .entry((kind, value.to_string()))
                            .or_default()
                            .push(id);
                    }
                    if let Some(entry) = item.event_id_key(id) {
                        tx.remove(&entry);
                    }
                    verdicts.push(d.verdict);
                }
            }
            for ((kind, value), mut ids) in unindexed {
                ids.sort_unstable();
                chunks::remove_ids(&mut tx, &h.log, kind, &value, &ids)?;
            }
            tx.commit()?;
            drop(guard);
            events_removed += states.len();
            for s in states {
                shared.counts.removed(s);
            }
            for v in verdicts {
                shared.counts.verdict(v).fetch_sub(1, Ordering::Relaxed);
            }
            // The chunk's removals go to disk now, on the prune's time: left in sled's
            // buffer, the next ack's group commit would write them out with its own records
            // and wait for them (a sixth off the acks' p99 while pruning, benches/README.md).
            h.db.flush().db()?;
        }
        Ok((deliveries, events_removed))
    }

    /// Whether an indexed delivery with this event id was received at or after id `since`.
    /// Accepted deliveries have no event id entry, and need none here: what keeps an event
    /// is a duplicate, filtered or rejected delivery of its id (on its endpoint, only its
    /// own accepted delivery can exist while its dedup key does).
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

    /// Adds the event ids of the deliveries from id `from` on to `ids`; returns the id after
    /// the last one read (where the next look starts).
    fn event_ids_from(&self, from: u64, ids: &mut HashSet<String>) -> Result<u64> {
        let mut next = from;
        for item in self
            .shared
            .h()?
            .log
            .range(keys::id_range(keys::DELIVERY, from, u64::MAX))
        {
            let (key, bytes) = item.db()?;
            next = keys::key_id(&key).unwrap_or(0).saturating_add(1).max(next);
            if let Ok(DeliveryRec {
                event_id: Some(id), ..
            }) = codec::decode_delivery("delivery", &bytes)
            {
                ids.insert(id);
            }
        }
        Ok(next)
    }
}

/// Removes what an event has besides its record: status, attempts, and its dedup key (if
/// the key still names it).
fn remove_event(tx: &mut Tx, h: &Handles, seq: u64, rec: &EventRec) -> Result<()> {
    // A copy made while retention moved the event may hold it in both places.
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::store::testing::{accept, temp_store};
    use crate::store::SledStore;
    use std::sync::atomic::Ordering;

    /// A store whose 40 deliveries, indexed and on disk, have just been pruned.
    async fn forty_pruned() -> (tempfile::TempDir, SledStore) {
        let (dir, store) = temp_store();
        for n in 0..40 {
            accept(&store, &format!("evt-{n}")).await;
        }
        store.index_now().unwrap();
        store.flush().await.unwrap();
        // The drafts are from 2023: all of them are past any cut-off.
        let batch = store
            .prune_deliveries(&super::PruneTurn::local(), crate::clock::now_ms(), 0, 100)
            .unwrap();
        assert_eq!(batch.deliveries, 40);
        (dir, store)
    }

    /// A prune leaves nothing of its own for the next flush (an ack's) to write.
    #[tokio::test]
    async fn a_prune_flushes_what_it_removed() {
        let (_dir, store) = forty_pruned().await;
        let h = store.shared.h().unwrap();
        assert_eq!(h.db.flush().unwrap(), 0, "bytes the prune left unflushed");
    }

    /// Every write batch (an ack's) waits while the prune holds the store's lock, so a prune
    /// takes it for a few records at a time, however many it removes.
    #[tokio::test]
    async fn a_prune_holds_the_lock_for_a_few_records_at_a_time() {
        let (_dir, store) = forty_pruned().await;
        let largest = store.shared.largest_prune_hold.load(Ordering::Relaxed);
        assert_eq!(
            largest,
            super::LOCKED_CHUNK,
            "records handled under one hold"
        );
        // 4 is what the prune bench measured as short enough (see LOCKED_CHUNK): 16 set the
        // acks' p99 while pruning.
        assert!(largest <= 4, "{largest} records under one hold");
    }
}
