//! The indexer: writes the secondary indexes (by endpoint, verdict, event type and event id)
//! behind the ack path, so an acknowledgement costs two keys instead of six.
//!
//! A thread wakes a few times a second and indexes the deliveries stored since the watermark,
//! up to the last id handed out a second earlier and below any write batch still in progress
//! (so every delivery with a smaller id is in the log by then). Index entries are inserted
//! one by one, then the new watermark, and nothing is flushed. One by one, not as a batch:
//! sled's `apply_batch` takes a process-wide lock that every other read and write of the
//! store waits for, the writer's acks among them (p99 11-12.5 ms with batches, 8.7 ms
//! with single inserts, in one run of the ingest bench), while single inserts share it.
//! sled recovers its log up to the last contiguous message, so a watermark that reached
//! the disk has every entry inserted before it; after a crash the indexer starts again from
//! that watermark, and rewriting an entry is harmless. Readers use index entries only up to
//! the watermark in memory, which moves after the inserts. The
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
/// Deliveries indexed per pass, between two moves of the watermark. Small, from when a pass
/// was one `apply_batch` whose lock every write waited for (thousands of deliveries stalled
/// acks for ~50 ms); with single inserts it only bounds a pass's work.
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
    let mut inserts: Vec<(Vec<u8>, sled::IVec)> = Vec::new();
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
                let value = match latency {
                    Some(us) if is_verdict => sled::IVec::from(&keys::u64_bytes(us)),
                    _ => sled::IVec::default(),
                };
                inserts.push((key, value));
            }
        }
        // Latencies of deliveries indexed without one are of no use any more.
        pending.retain(|id, _| *id > watermark);
    }
    let log = &shared.h()?.log;
    for (key, value) in inserts {
        log.insert(key, value).db()?;
    }
    // Last: see the module comment.
    log.insert(keys::WATERMARK, &keys::u64_bytes(watermark))
        .db()?;
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
