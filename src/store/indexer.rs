//! The indexer: writes the secondary indexes (by endpoint, verdict, event type and event id)
//! behind the ack path, so an acknowledgement costs two keys instead of six.
//!
//! A thread wakes a few times a second and indexes the deliveries stored since the watermark,
//! up to the last id handed out a second earlier and below any write batch still in progress
//! (so every delivery with a smaller id is in the log by then). The writers hand it the
//! deliveries they wrote (see [`Fresh`]); older ones it reads from the log. A pass writes
//! one chunk per endpoint, verdict and type it saw (see `chunks`) and one event id entry
//! per delivery, then the new watermark, inserted and not flushed: after a crash the indexer
//! starts again from the watermark that reached the disk. The verdict chunk carries the
//! answers' latencies, so latency costs no write of its own. Readers treat deliveries above
//! the watermark as the not-yet-indexed tail and filter them directly.

use super::codec::{self, DeliveryRec};
use super::keys::{self, IndexKind};
use super::model::Verdict;
use super::{chunks, event_ids};
use super::{Db, Handles, Result, Shared};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How far the indexer stays behind the newest id.
const LAG: Duration = Duration::from_secs(1);
/// How often it wakes.
const TICK: Duration = Duration::from_millis(200);
/// Deliveries indexed per pass: how often the watermark moves, how much is written again
/// after a crash, and the most ids one chunk of a pass holds.
const BATCH: usize = 500;

/// What the indexes say of one delivery, handed to the indexer by whoever wrote it.
#[derive(Debug, Clone)]
pub(super) struct Indexed {
    endpoint: String,
    verdict: Verdict,
    event_type: Option<String>,
    event_id: Option<String>,
    event_seq: Option<u64>,
}

impl Indexed {
    pub fn of(d: &DeliveryRec) -> Indexed {
        Indexed {
            endpoint: d.endpoint.clone(),
            verdict: d.verdict,
            event_type: d.event_type.clone(),
            event_id: d.event_id.clone(),
            event_seq: d.event_seq,
        }
    }

    /// Its values in the chunked indexes: endpoint, verdict and (if it has one) type.
    pub fn chunked(&self) -> impl Iterator<Item = (IndexKind, &str)> {
        [
            Some((IndexKind::Endpoint, self.endpoint.as_str())),
            Some((IndexKind::Verdict, self.verdict.as_str())),
            self.event_type
                .as_deref()
                .map(|t| (IndexKind::EventType, t)),
        ]
        .into_iter()
        .flatten()
    }

    /// Its event id entry, if it has an event id and needs one (an accepted delivery that
    /// holds its event is found by its dedup key).
    pub fn event_id_key(&self, id: u64) -> Option<Vec<u8>> {
        self.event_id
            .as_deref()
            .filter(|_| event_ids::needs_entry(id, self.verdict, self.event_seq))
            .map(|e| keys::index_key(IndexKind::EventId, e, id))
    }
}

/// Deliveries written since the store was opened and not yet indexed, as their writers
/// handed them over. Reading them back from the log cost the indexer two thirds of its time
/// (sled's iterator walks the tree from the root for every record, then the whole record
/// is decoded for four fields), and the indexer competed with the ack path for the same two
/// cores. The log stays the truth: ids below `complete_from` (written before this opening,
/// or dropped when the feed overflowed) are read from it as before.
pub(super) struct Fresh {
    inner: Mutex<FreshInner>,
    /// Signalled when the indexer took deliveries (see [`Fresh::wait_below`]).
    taken: Condvar,
}

struct FreshInner {
    /// Every delivery written with an id from here on is in `items` until it is indexed.
    complete_from: u64,
    /// The largest id offered so far: where the feed can start again after it was dropped.
    max_offered: u64,
    items: BTreeMap<u64, Indexed>,
    /// How many indexing passes succeeded.
    passes: u64,
    /// `passes` when a wait for the indexer ran out: until it passes again, nobody waits.
    stalled_at: Option<u64>,
}

/// Deliveries kept in the feed at most (about 100 bytes each). An indexer this far behind
/// (a stalled disk) reads the log again, as after a restart.
const MAX_FRESH: usize = 200_000;

/// Deliveries the indexer may trail the writer by before the writer waits for it: about
/// five seconds of the most this machine acks. A burst is acked at full speed and indexed
/// after it; a sustained rate above what the indexer keeps up with is slowed to its pace,
/// so the unindexed tail that readers filter directly stays short.
pub(super) const HOLD: usize = 50_000;
/// The longest the writer waits for the indexer before each batch: an indexer that cannot
/// write (its errors are logged) must not stop the acks.
const HOLD_WAIT: Duration = Duration::from_millis(500);

impl Fresh {
    /// A feed for a store whose largest stored id is `floor`.
    pub fn new(floor: u64) -> Fresh {
        Fresh {
            inner: Mutex::new(FreshInner {
                complete_from: floor.saturating_add(1),
                max_offered: floor,
                items: BTreeMap::new(),
                passes: 0,
                stalled_at: None,
            }),
            taken: Condvar::new(),
        }
    }

    /// Waits, at most [`HOLD_WAIT`], until the indexer trails by no more than `most`
    /// deliveries. Returns whether it had to wait.
    ///
    /// An indexer that finished no pass during a whole wait is stuck (its errors are
    /// logged): nobody waits for it again until it finishes one, so a broken indexer costs
    /// the acks one wait, not one per batch.
    pub fn wait_below(&self, most: usize) -> bool {
        let f = self.lock();
        if f.items.len() <= most || f.stalled_at == Some(f.passes) {
            return false;
        }
        let before = f.passes;
        let (mut f, timeout) = self
            .taken
            .wait_timeout_while(f, HOLD_WAIT, |f| f.items.len() > most)
            .unwrap_or_else(|p| p.into_inner());
        if timeout.timed_out() && f.passes == before {
            f.stalled_at = Some(before);
        }
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FreshInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands over deliveries that are now in the log (their batch was applied).
    pub fn offer(&self, written: impl IntoIterator<Item = (u64, Indexed)>) {
        let mut f = self.lock();
        for (id, item) in written {
            f.max_offered = f.max_offered.max(id);
            if id >= f.complete_from {
                f.items.insert(id, item);
            }
        }
        if f.items.len() > MAX_FRESH {
            f.restart();
        }
    }

    /// Forgets what it holds: every id up to `handed_out` (the last one handed out) is read
    /// from the log. Used after the database was reopened (a batch applied before a failed
    /// flush may be gone) and after a failed indexing pass (what it took was not written).
    pub fn forget(&self, handed_out: u64) {
        let mut f = self.lock();
        f.max_offered = f.max_offered.max(handed_out);
        f.restart();
        drop(f);
        self.taken.notify_all();
    }

    /// Notes a successful indexing pass (from the feed or the log).
    fn passed(&self) {
        self.lock().passes += 1;
        self.taken.notify_all();
    }

    /// Up to `max` deliveries with ids in `from..=upto`, in id order; or, when the feed is
    /// not complete from `from` on, `Err` with the id it is complete from (the log must be
    /// read up to there).
    fn take(&self, from: u64, upto: u64, max: usize) -> Result<Vec<(u64, Indexed)>, u64> {
        let mut f = self.lock();
        if from < f.complete_from {
            return Err(f.complete_from);
        }
        let mut taken = Vec::new();
        while let Some(entry) = f.items.first_entry() {
            let id = *entry.key();
            if id < from {
                // Indexed already (it arrived after the indexer passed its id, as a late
                // write would have been missed in the log too).
                entry.remove();
            } else if id <= upto && taken.len() < max {
                taken.push(entry.remove_entry());
            } else {
                break;
            }
        }
        self.taken.notify_all();
        Ok(taken)
    }
}

impl FreshInner {
    fn restart(&mut self) {
        self.items.clear();
        // Every id offered so far is below it; one offered later with a smaller id is
        // dropped on arrival and read from the log.
        self.complete_from = self.max_offered.saturating_add(1);
    }
}

/// Indexes up to `max` deliveries with ids in (watermark, `upto`]; returns whether the
/// indexes are now complete up to `upto`.
fn index_batch(shared: &Shared, upto: u64, max: usize) -> Result<bool> {
    // The indexer thread and a catch-up asked for by retention take turns, so the watermark
    // only moves forward.
    let _turn = shared.indexing.lock().unwrap_or_else(|p| p.into_inner());
    let from = shared.watermark.load(Ordering::Relaxed);
    if upto <= from {
        return Ok(true);
    }
    let h = shared.h()?;
    let (seen, reach, fed) = match shared.fresh.take(from + 1, upto, max) {
        Ok(written) => (Seen::of(written), upto, true),
        // Below the feed: read the log, up to where the feed takes over.
        Err(complete_from) => {
            let reach = upto.min(complete_from.saturating_sub(1));
            (from_log(&h, from, reach, max)?, reach, false)
        }
    };
    // Fewer than `max`: everything up to `reach` was seen.
    let watermark = if seen.count < max {
        reach
    } else {
        seen.last.unwrap_or(from)
    };
    let mut chunks = chunks::Pass::default();
    let mut event_ids = Vec::with_capacity(seen.items.len());
    {
        // Read, not taken: a pass that fails leaves them for the next one.
        let pending = shared.latencies.lock().unwrap_or_else(|p| p.into_inner());
        for (id, item) in seen.items {
            let latency = pending.get(&id).copied();
            for (kind, value) in item.chunked() {
                chunks.add(kind, value, id, latency);
            }
            event_ids.extend(item.event_id_key(id));
        }
    }
    // One insert at a time, not one `apply_batch`: sled's batch takes a process-wide lock
    // that stops every other read and write, so a batch of index entries stalled the acks
    // behind it. Single inserts run beside the writer's batches. The watermark goes last:
    // sled recovers a prefix of its log, so a watermark that survived a crash has every
    // chunk and entry before it (and entries written again after a crash are the same
    // bytes; chunks written again replace the lost pass's, see `chunks`).
    let written = (|| {
        #[cfg(test)]
        if shared.fail_next_pass.swap(false, Ordering::SeqCst) {
            return Err(super::StoreError::Io("indexing pass failed (test)".into()));
        }
        chunks.write(&h.log, from)?;
        for key in event_ids {
            h.log.insert(key, &[]).db()?;
        }
        h.log
            .insert(keys::WATERMARK, &keys::u64_bytes(watermark))
            .db()
    })();
    if let Err(e) = written {
        // What was taken from the feed is not in it any more: read it from the log.
        if fed {
            shared.fresh.forget(shared.ids.last());
        }
        return Err(e);
    }
    shared.watermark.store(watermark, Ordering::Relaxed);
    // Latencies of the deliveries indexed now (with theirs, or without one) are of no use
    // any more.
    shared
        .latencies
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|id, _| *id > watermark);
    shared.fresh.passed();
    Ok(watermark >= upto)
}

/// The deliveries one indexing batch found.
struct Seen {
    items: Vec<(u64, Indexed)>,
    /// How many ids were seen, readable or not.
    count: usize,
    /// The largest id seen.
    last: Option<u64>,
}

impl Seen {
    fn of(items: Vec<(u64, Indexed)>) -> Seen {
        Seen {
            count: items.len(),
            last: items.last().map(|(id, _)| *id),
            items,
        }
    }
}

/// Up to `max` deliveries with ids in (`from`, `upto`], read from the log. One that cannot
/// be read is not indexed (verify-data reports it) but is seen, so the watermark passes it.
fn from_log(h: &Handles, from: u64, upto: u64, max: usize) -> Result<Seen> {
    let mut seen = Seen::of(Vec::new());
    let range = keys::id_range(keys::DELIVERY, from + 1, upto.saturating_add(1));
    for item in h.log.range(range).take(max) {
        let (key, bytes) = item.db()?;
        let Some(id) = keys::key_id(&key) else {
            continue;
        };
        seen.count += 1;
        seen.last = Some(id);
        match codec::decode_delivery(&format!("delivery {id}"), &bytes) {
            Ok(d) => seen.items.push((id, Indexed::of(&d))),
            Err(e) => tracing::warn!(error = %e, "not indexed (verify-data reports it)"),
        }
    }
    Ok(seen)
}

/// Indexes everything up to `upto`.
pub(super) fn catch_up(shared: &Shared, upto: u64) -> Result<()> {
    while !index_batch(shared, upto, BATCH)? {}
    Ok(())
}

/// Handle to the indexer thread.
pub(super) struct Indexer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Indexer {
    pub fn start(shared: Arc<Shared>) -> std::io::Result<Indexer> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("hookd-indexer".into())
            .spawn(move || {
                // (when, last id handed out then): the target is the newest sample older
                // than LAG.
                let mut samples: VecDeque<(Instant, u64)> = VecDeque::new();
                while !stopping.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    let now = Instant::now();
                    samples.push_back((now, shared.ids.last()));
                    let mut target = None;
                    while let Some((at, id)) = samples.front() {
                        if now.duration_since(*at) < LAG {
                            break;
                        }
                        target = Some(*id);
                        samples.pop_front();
                    }
                    let Some(target) = target else { continue };
                    // Keep the newest old sample for the next tick.
                    samples.push_front((now - LAG, target));
                    // A batch still being written (a slow fsync) holds ids below the target.
                    let floor = shared.batch_floor.load(Ordering::SeqCst);
                    let target = target.min(floor.saturating_sub(1));
                    loop {
                        match index_batch(&shared, target, BATCH) {
                            Ok(false) if !stopping.load(Ordering::Relaxed) => {}
                            Ok(_) => break,
                            Err(e) => {
                                tracing::warn!(error = %e, "indexing failed; retrying");
                                break;
                            }
                        }
                    }
                }
            })?;
        Ok(Indexer {
            stop,
            thread: Some(thread),
        })
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::Verdict;
    use super::super::testing::{self, accept, draft, temp_store};
    use super::super::SledStore;
    use super::*;

    /// The delivery ids under one index value, newest first.
    fn indexed(store: &SledStore, kind: IndexKind, value: &str) -> Vec<u64> {
        testing::indexed(&store.shared.h().expect("open").log, kind, value)
    }

    #[tokio::test]
    async fn deliveries_of_this_opening_come_from_the_feed_and_older_ones_from_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (old_accept, old_reject) = {
            let store = SledStore::open(dir.path(), 16).expect("open");
            let a = accept(&store, "a").await;
            let mut rejected = draft("r");
            rejected.verdict = Verdict::Rejected;
            let r = store.record(rejected).expect("recorded");
            (a.delivery_id, r)
        };
        // A crash lost the first opening's index writes (they are not flushed).
        {
            let db = super::super::open::open_guarded(dir.path(), 16).expect("raw");
            let log = db.open_tree(keys::LOG_TREE).expect("log");
            for kind in [keys::INDEX, keys::CHUNK] {
                for key in log.range(keys::kind_range(kind)).keys() {
                    log.remove(key.expect("key")).expect("removed");
                }
            }
            log.remove(keys::WATERMARK).expect("removed");
            db.flush().expect("flushed");
        }
        let store = SledStore::open(dir.path(), 16).expect("reopen");
        let b = accept(&store, "b").await;
        let dup = accept(&store, "a").await;
        assert_eq!(dup.verdict, Verdict::Duplicate);
        let mut rejected = draft("r2");
        rejected.verdict = Verdict::Rejected;
        let new_reject = store.record(rejected).expect("recorded");
        assert_eq!(store.shared.fresh.lock().items.len(), 3);
        store.index_now().expect("indexed");

        assert_eq!(
            indexed(&store, IndexKind::EventId, "a"),
            vec![dup.delivery_id, old_accept]
        );
        assert_eq!(
            indexed(&store, IndexKind::EventId, "b"),
            vec![b.delivery_id]
        );
        assert_eq!(
            indexed(&store, IndexKind::Verdict, "rejected"),
            vec![new_reject, old_reject]
        );
        assert_eq!(
            indexed(&store, IndexKind::Verdict, "duplicate"),
            vec![dup.delivery_id]
        );
        assert_eq!(indexed(&store, IndexKind::EventType, "t").len(), 5);
        assert_eq!(indexed(&store, IndexKind::Endpoint, "std").len(), 5);
        assert!(store.shared.fresh.lock().items.is_empty());
        assert_eq!(
            store.shared.watermark.load(Ordering::Relaxed),
            store.shared.ids.last()
        );
    }

    /// A pass that fails writes nothing and loses nothing: the next one indexes the same
    /// deliveries (from the log, as the feed forgot them), with their latencies.
    #[tokio::test]
    async fn a_failed_pass_leaves_its_deliveries_and_latencies_to_the_next() {
        let (_dir, store) = temp_store();
        let a = accept(&store, "a").await;
        store.set_latency(a.delivery_id, 777).expect("latency");
        store.shared.fail_next_pass.store(true, Ordering::SeqCst);
        assert!(store.index_now().is_err());
        assert!(indexed(&store, IndexKind::Endpoint, "std").is_empty());
        store.index_now().expect("indexed");
        assert_eq!(
            indexed(&store, IndexKind::Endpoint, "std"),
            vec![a.delivery_id]
        );
        let h = store.shared.h().expect("open");
        assert_eq!(
            chunks::latency(&h.log, "accepted", a.delivery_id).expect("read"),
            Some(777)
        );
        assert!(store.shared.latencies.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_clean_stop_leaves_the_indexes_complete() {
        let dir = tempfile::tempdir().expect("tempdir");
        let last = {
            let store = SledStore::open(dir.path(), 16).expect("open");
            accept(&store, "a").await;
            accept(&store, "b").await.delivery_id
        };
        let store = SledStore::open(dir.path(), 16).expect("reopen");
        assert_eq!(store.shared.watermark.load(Ordering::Relaxed), last);
        assert_eq!(indexed(&store, IndexKind::EventId, "b"), vec![last]);
    }

    fn item() -> Indexed {
        Indexed::of(&super::super::tx::delivery_record(
            &draft("x"),
            codec::BodyRec::Inline(String::new()),
        ))
    }

    fn ids(taken: std::result::Result<Vec<(u64, Indexed)>, u64>) -> Vec<u64> {
        taken
            .expect("complete")
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    #[tokio::test]
    async fn the_writer_waits_for_an_indexer_far_behind_but_not_forever() {
        let (_dir, store) = temp_store();
        // Deliveries the indexer will not reach (their ids are far ahead of any handed out).
        let far = u64::MAX / 2;
        store
            .shared
            .fresh
            .offer((0..=HOLD as u64).map(|i| (far + i, item())));
        let started = Instant::now();
        let a = accept(&store, "a").await;
        assert!(started.elapsed() >= HOLD_WAIT);
        assert_eq!(a.verdict, Verdict::Accepted);
        // The indexer took nothing meanwhile: the next batches do not wait for it again.
        assert!(!store.shared.fresh.wait_below(HOLD));
    }

    #[test]
    fn waiting_for_the_indexer_ends_when_it_takes_enough() {
        let fresh = Arc::new(Fresh::new(0));
        fresh.offer((1..=3).map(|id| (id, item())));
        assert!(!fresh.wait_below(3));
        let indexer = {
            let fresh = fresh.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                fresh.take(1, 2, 10)
            })
        };
        assert!(fresh.wait_below(1));
        assert_eq!(ids(indexer.join().expect("joined")), vec![1, 2]);
        assert_eq!(fresh.lock().items.len(), 1);
    }

    #[test]
    fn the_feed_answers_only_where_it_is_complete() {
        let fresh = Fresh::new(10);
        // Ids up to the floor were written before this opening: the log has them.
        assert_eq!(fresh.take(5, 20, 10).err(), Some(11));
        fresh.offer([(13, item()), (11, item()), (12, item())]);
        assert_eq!(ids(fresh.take(11, 12, 10)), vec![11, 12]);
        assert_eq!(ids(fresh.take(13, 20, 10)), vec![13]);
        assert_eq!(ids(fresh.take(14, 20, 10)), Vec::<u64>::new());
        // One that arrives after the indexer passed its id is dropped, not indexed late.
        fresh.offer([(12, item()), (15, item()), (16, item())]);
        assert_eq!(ids(fresh.take(14, 20, 1)), vec![15]);
        assert_eq!(fresh.lock().items.keys().collect::<Vec<_>>(), vec![&16]);
        assert_eq!(ids(fresh.take(17, 20, 10)), Vec::<u64>::new());

        // An indexer far behind: the feed drops what it holds and starts past all it saw.
        let top = 100 + MAX_FRESH as u64;
        fresh.offer((100..=top).map(|id| (id, item())));
        assert_eq!(fresh.take(100, u64::MAX, 10).err(), Some(top + 1));
        // A write that lands late, below the restart, is left to the log.
        fresh.offer([(top, item())]);
        assert!(fresh.lock().items.is_empty());
        fresh.offer([(top + 1, item())]);
        assert_eq!(ids(fresh.take(top + 1, u64::MAX, 10)), vec![top + 1]);

        // After the database was reopened, too.
        fresh.offer([(top + 7, item())]);
        fresh.forget(top + 9);
        assert_eq!(fresh.take(top + 1, u64::MAX, 10).err(), Some(top + 10));
        assert!(fresh.lock().items.is_empty());
    }
}
