//! The indexer: writes the secondary indexes (by endpoint, verdict, event type and event id)
//! behind the ack path, so an acknowledgement costs two keys instead of six.
//!
//! A thread wakes a few times a second and indexes the deliveries stored since the watermark,
//! up to the last id handed out a second earlier and below any write batch still in progress
//! (so every delivery with a smaller id is in the log by then). Index entries and the
//! new watermark go in one atomic batch and are not flushed: after a crash the indexer starts
//! again from the watermark that reached the disk, and rewriting an entry is harmless. The
//! verdict entry carries the answer's latency, so latency costs no write of its own. Readers
//! treat deliveries above the watermark as the not-yet-indexed tail and filter them directly.

use super::codec::{self, DeliveryRec};
use super::keys::{self, IndexKind};
use super::{Db, Result, Shared};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How far the indexer stays behind the newest id.
const LAG: Duration = Duration::from_secs(1);
/// How often it wakes.
const TICK: Duration = Duration::from_millis(200);
/// Deliveries indexed per batch. Small: sled's `apply_batch` holds a lock every writer
/// waits for (about 6 µs a key), so a batch of thousands (tens of thousands of keys) stalled
/// acks for ~50 ms; 25 deliveries are 100 keys, well under a millisecond.
const BATCH: usize = 25;

/// The index entries of a delivery: by endpoint, verdict, type and event id.
pub(super) fn entries(id: u64, d: &DeliveryRec) -> Vec<Vec<u8>> {
    let mut out = vec![
        keys::index_key(IndexKind::Endpoint, &d.endpoint, id),
        keys::index_key(IndexKind::Verdict, d.verdict.as_str(), id),
    ];
    if let Some(t) = &d.event_type {
        out.push(keys::index_key(IndexKind::EventType, t, id));
    }
    if let Some(i) = &d.event_id {
        out.push(keys::index_key(IndexKind::EventId, i, id));
    }
    out
}

/// Indexes up to `max` deliveries with ids in (watermark, `upto`]; returns how many.
fn index_batch(shared: &Shared, upto: u64, max: usize) -> Result<usize> {
    // The indexer thread and a catch-up asked for by retention take turns, so the watermark
    // only moves forward.
    let _turn = shared.indexing.lock().unwrap_or_else(|p| p.into_inner());
    let from = shared.watermark.load(Ordering::Relaxed);
    if upto <= from {
        return Ok(0);
    }
    let range = keys::id_range(keys::DELIVERY, from + 1, upto.saturating_add(1));
    let mut batch = sled::Batch::default();
    let mut last = None;
    let mut n = 0;
    let mut latencies = Vec::new();
    for item in shared.h()?.log.range(range).take(max) {
        let (key, bytes) = item.db()?;
        let Some(id) = keys::key_id(&key) else {
            continue;
        };
        last = Some(id);
        n += 1;
        let d: DeliveryRec = match codec::decode_delivery(&format!("delivery {id}"), &bytes) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "not indexed (verify-data reports it)");
                continue;
            }
        };
        latencies.push((id, entries(id, &d)));
    }
    // Fewer than `max`: everything up to `upto` was seen.
    let watermark = if n < max { upto } else { last.unwrap_or(from) };
    {
        let mut pending = shared.latencies.lock().unwrap_or_else(|p| p.into_inner());
        for (id, entries) in latencies {
            let latency = pending.remove(&id);
            for key in entries {
                let is_verdict = key.get(1) == Some(&(IndexKind::Verdict as u8));
                match latency {
                    Some(us) if is_verdict => batch.insert(key, &keys::u64_bytes(us)),
                    _ => batch.insert(key, &[]),
                }
            }
        }
        // Latencies of deliveries indexed without one are of no use any more.
        pending.retain(|id, _| *id > watermark);
    }
    batch.insert(keys::WATERMARK, &keys::u64_bytes(watermark));
    shared.h()?.log.apply_batch(batch).db()?;
    shared.watermark.store(watermark, Ordering::Relaxed);
    Ok(n)
}

/// Indexes everything up to `upto`.
pub(super) fn catch_up(shared: &Shared, upto: u64) -> Result<()> {
    while index_batch(shared, upto, BATCH)? == BATCH {}
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
                            Ok(n) if n == BATCH && !stopping.load(Ordering::Relaxed) => {}
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
