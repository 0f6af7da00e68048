//! The chunked indexes of format 5: deliveries by endpoint, by verdict and by event type.
//!
//! Formats 2 to 4 wrote one index key per delivery and value. Each sled insert costs about
//! 6 µs of the two cores the acks run on, and the indexer's four inserts per delivery cost
//! the acks a quarter of their throughput and half their tail (measured: benches/README).
//! A pass of the indexer now writes one chunk per value it saw: the ids of those deliveries,
//! delta-encoded (by verdict, with each answer's latency), under (kind, value, first id).
//! A pass of hundreds of deliveries writes a handful of keys.
//!
//! Chunks of one value never overlap. A pass holds only ids above the watermark, and it
//! first removes every chunk of its values that starts above the watermark (one written by
//! a pass whose watermark was lost to a crash or a failed write). Retention removes ids from
//! a chunk and keeps its key, whose id stays no larger than any id left: a walk or a lookup
//! finds the chunk of an id as the last key at or below it.
//!
//! The event id index stays one key per delivery (`keys::INDEX`, see `event_ids`): its
//! values are nearly all distinct, so a chunk per value would save nothing.

use super::keys::{self, IndexKind};
use super::tx::Tx;
use super::{codec, event_ids, Db, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The kinds kept in chunks.
pub(super) const KINDS: [IndexKind; 3] = [
    IndexKind::Endpoint,
    IndexKind::Verdict,
    IndexKind::EventType,
];

/// How a chunk is stored: the gaps between its ids (the first from the key's id), and by
/// verdict the latencies (µs) in the same order. Gaps of ids handed out in the same
/// millisecond take one or two bytes.
#[derive(Serialize)]
struct ChunkOut<'a> {
    gaps: Vec<u64>,
    latencies: &'a [Option<u64>],
}

#[derive(Deserialize)]
struct ChunkIn {
    gaps: Vec<u64>,
    latencies: Vec<Option<u64>>,
}

/// The deliveries of one chunk, in id order; by verdict, with their answers' latencies.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Chunk {
    pub ids: Vec<u64>,
    /// Empty except by verdict, where it is as long as `ids`.
    pub latencies: Vec<Option<u64>>,
}

impl Chunk {
    pub fn push(&mut self, kind: IndexKind, id: u64, latency: Option<u64>) {
        self.ids.push(id);
        if kind == IndexKind::Verdict {
            self.latencies.push(latency);
        }
    }

    /// The stored form, for a key whose id is `first` (no larger than any id here).
    pub fn encode(&self, first: u64) -> Result<Vec<u8>> {
        let mut prev = first;
        let gaps = self
            .ids
            .iter()
            .map(|&id| {
                let gap = id.saturating_sub(prev);
                prev = id;
                gap
            })
            .collect();
        codec::encode(&ChunkOut {
            gaps,
            latencies: &self.latencies,
        })
    }

    pub fn decode(key: &[u8], bytes: &[u8]) -> Result<Chunk> {
        let mut id = keys::index_key_id(key).unwrap_or(0);
        let stored: ChunkIn = codec::decode("index chunk", bytes)?;
        let ids = stored
            .gaps
            .iter()
            .map(|gap| {
                id = id.saturating_add(*gap);
                id
            })
            .collect();
        Ok(Chunk {
            ids,
            latencies: stored.latencies,
        })
    }

    fn latency_of(&self, id: u64) -> Option<u64> {
        let at = self.ids.binary_search(&id).ok()?;
        self.latencies.get(at).copied().flatten()
    }

    /// Drops the ids in `gone` (sorted).
    fn remove(&mut self, gone: &[u64]) {
        let keep: Vec<bool> = self
            .ids
            .iter()
            .map(|id| gone.binary_search(id).is_err())
            .collect();
        let mut flags = keep.iter();
        self.ids.retain(|_| *flags.next().unwrap_or(&true));
        if !self.latencies.is_empty() {
            let mut flags = keep.iter();
            self.latencies.retain(|_| *flags.next().unwrap_or(&true));
        }
    }
}

/// The chunks one indexing pass writes: per value, the deliveries it saw, in id order.
#[derive(Default)]
pub(super) struct Pass(BTreeMap<(IndexKind, String), Chunk>);

impl Pass {
    pub fn add(&mut self, kind: IndexKind, value: &str, id: u64, latency: Option<u64>) {
        self.0
            .entry((kind, value.to_string()))
            .or_default()
            .push(kind, id, latency);
    }

    /// One insert per value, each after removing the chunks of that value that start
    /// above `watermark` (a lost pass's; see the module comment). Single inserts, like the
    /// indexer's other writes: they run beside the writer's batches.
    pub fn write(self, log: &sled::Tree, watermark: u64) -> Result<()> {
        for ((kind, value), chunk) in self.0 {
            let Some(&first) = chunk.ids.first() else {
                continue;
            };
            let stale = keys::chunk_key(kind, &value, watermark.saturating_add(1))
                ..=keys::chunk_key(kind, &value, u64::MAX);
            for key in log.range(stale).keys() {
                log.remove(key.db()?).db()?;
            }
            log.insert(keys::chunk_key(kind, &value, first), chunk.encode(first)?)
                .db()?;
        }
        Ok(())
    }
}

/// The chunk that would hold `id` for this value: the last one starting at or below it.
fn chunk_at(
    log: &sled::Tree,
    kind: IndexKind,
    value: &str,
    id: u64,
) -> Result<Option<(sled::IVec, sled::IVec)>> {
    log.range(keys::chunk_key(kind, value, 0)..=keys::chunk_key(kind, value, id))
        .next_back()
        .transpose()
        .db()
}

/// The latency recorded with delivery `id` in the verdict index, if it is indexed.
pub(super) fn latency(log: &sled::Tree, verdict: &str, id: u64) -> Result<Option<u64>> {
    Ok(chunk_at(log, IndexKind::Verdict, verdict, id)?
        .and_then(|(key, bytes)| Chunk::decode(&key, &bytes).ok())
        .and_then(|chunk| chunk.latency_of(id)))
}

/// Removes retention's deliveries `gone` (sorted) from this value's chunks, in `tx`; a chunk
/// left empty goes.
pub(super) fn remove_ids(
    tx: &mut Tx,
    log: &sled::Tree,
    kind: IndexKind,
    value: &str,
    gone: &[u64],
) -> Result<()> {
    let mut rest = gone;
    while let Some(&id) = rest.first() {
        let Some((key, bytes)) = chunk_at(log, kind, value, id)? else {
            rest = &rest[1..];
            continue;
        };
        // An unreadable chunk is left for verify-data to report.
        let Ok(mut chunk) = Chunk::decode(&key, &bytes) else {
            rest = &rest[1..];
            continue;
        };
        // The ids up to this chunk's end (at least the first: one past its end and before
        // the next chunk's start is in no chunk, a delivery the indexer never saw).
        let last = chunk.ids.last().copied().unwrap_or(0);
        let n = rest.partition_point(|g| *g <= last).max(1);
        let before = chunk.ids.len();
        chunk.remove(&rest[..n]);
        rest = &rest[n..];
        if chunk.ids.len() == before {
            // Nothing of it went. Not rewritten: this call may have written it already
            // (`log` does not see that), and writing it from `log` would undo it.
            continue;
        }
        if chunk.ids.is_empty() {
            tx.remove(&key);
        } else {
            let first = keys::index_key_id(&key).unwrap_or(0);
            tx.insert(&key, chunk.encode(first)?);
        }
    }
    Ok(())
}

/// The ids of one index value in `[lo, hi)`, newest first: from its chunks, or for an event
/// id from the event id index (see `event_ids`).
pub(super) fn ids(
    log: &sled::Tree,
    kind: IndexKind,
    value: &str,
    lo: u64,
    hi: u64,
) -> Box<dyn Iterator<Item = Result<u64>>> {
    if lo >= hi {
        return Box::new(std::iter::empty());
    }
    if kind == IndexKind::EventId {
        return event_ids::ids(log, value, lo, hi);
    }
    Box::new(Walk {
        chunks: log
            .range(keys::chunk_key(kind, value, 0)..keys::chunk_key(kind, value, hi))
            .rev(),
        pending: Vec::new(),
        lo,
        hi,
        last: false,
    })
}

/// A walk down one value's chunks, newest first.
struct Walk {
    chunks: std::iter::Rev<sled::Iter>,
    /// The ids of the chunk being walked that lie in the range, oldest first.
    pending: Vec<u64>,
    lo: u64,
    hi: u64,
    /// The chunk being walked starts at or below `lo`: no earlier one holds an id in range.
    last: bool,
}

impl Iterator for Walk {
    type Item = Result<u64>;

    fn next(&mut self) -> Option<Result<u64>> {
        loop {
            if let Some(id) = self.pending.pop() {
                return Some(Ok(id));
            }
            if self.last {
                return None;
            }
            let (key, bytes) = match self.chunks.next()?.db() {
                Ok(kv) => kv,
                Err(e) => return Some(Err(e)),
            };
            self.last = keys::index_key_id(&key).unwrap_or(0) <= self.lo;
            match Chunk::decode(&key, &bytes) {
                Ok(chunk) => {
                    let (lo, hi) = (self.lo, self.hi);
                    self.pending = chunk.ids;
                    self.pending.retain(|id| (lo..hi).contains(id));
                }
                // Its deliveries are missing from this walk; verify-data names the chunk.
                Err(e) => tracing::warn!(error = %e, "skipping an unreadable index chunk"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::indexed;

    fn tree() -> sled::Tree {
        let db = sled::Config::new().temporary(true).open().unwrap();
        db.open_tree("log").unwrap()
    }

    fn newest_first(log: &sled::Tree, lo: u64, hi: u64) -> Vec<u64> {
        ids(log, IndexKind::Endpoint, "a", lo, hi)
            .map(|id| id.unwrap())
            .collect()
    }

    /// One indexing pass over `ids` (all of value `value`), above watermark `watermark`;
    /// by verdict each with latency id × 10.
    fn pass(log: &sled::Tree, kind: IndexKind, value: &str, ids: &[u64], watermark: u64) {
        let mut p = Pass::default();
        for &id in ids {
            p.add(kind, value, id, Some(id * 10));
        }
        p.write(log, watermark).unwrap();
    }

    /// Retention's removal of `gone`, committed.
    fn remove(log: &sled::Tree, kind: IndexKind, value: &str, gone: &[u64]) {
        let mut tx = Tx::new(log);
        remove_ids(&mut tx, log, kind, value, gone).unwrap();
        tx.commit().unwrap();
    }

    #[test]
    fn a_chunk_keeps_its_ids_and_latencies() {
        let mut chunk = Chunk::default();
        chunk.push(IndexKind::Verdict, 1_000, Some(5));
        chunk.push(IndexKind::Verdict, 1_001, None);
        chunk.push(IndexKind::Verdict, 9_000_000, Some(u64::MAX));
        let key = keys::chunk_key(IndexKind::Verdict, "accepted", 1_000);
        let back = Chunk::decode(&key, &chunk.encode(1_000).unwrap()).unwrap();
        assert_eq!(back, chunk);
        assert_eq!(back.latency_of(1_000), Some(5));
        assert_eq!(back.latency_of(1_001), None);
        assert_eq!(back.latency_of(1_002), None);
        let mut other = Chunk::default();
        other.push(IndexKind::Endpoint, 7, Some(5));
        assert!(other.latencies.is_empty(), "only verdicts keep latencies");
    }

    #[test]
    fn walks_run_newest_first_within_their_range_across_chunks() {
        let log = tree();
        for ids in [[10, 11, 12], [20, 25, 29], [30, 31, 40]] {
            pass(&log, IndexKind::Endpoint, "a", &ids, ids[0] - 1);
            let others = ids.map(|id| id + 1000);
            pass(&log, IndexKind::Endpoint, "b", &others, others[0] - 1);
        }
        assert_eq!(
            newest_first(&log, 0, u64::MAX),
            vec![40, 31, 30, 29, 25, 20, 12, 11, 10]
        );
        assert_eq!(newest_first(&log, 11, 30), vec![29, 25, 20, 12, 11]);
        assert_eq!(newest_first(&log, 20, 21), vec![20]);
        assert_eq!(newest_first(&log, 13, 20), Vec::<u64>::new());
        assert_eq!(newest_first(&log, 5, 5), Vec::<u64>::new());
    }

    #[test]
    fn a_pass_replaces_the_chunks_of_a_lost_pass() {
        let log = tree();
        pass(&log, IndexKind::Endpoint, "a", &[10], 9);
        // A pass whose watermark was lost, then the same deliveries indexed again from 10 on
        // with more of them: one chunk, no id twice.
        pass(&log, IndexKind::Endpoint, "a", &[12], 10);
        pass(&log, IndexKind::Endpoint, "a", &[11, 12, 13], 10);
        assert_eq!(newest_first(&log, 0, u64::MAX), vec![13, 12, 11, 10]);
    }

    #[test]
    fn retention_removes_ids_and_empty_chunks() {
        let log = tree();
        for ids in [[10, 11, 12], [20, 21, 22]] {
            pass(&log, IndexKind::Verdict, "accepted", &ids, ids[0] - 1);
        }
        remove(&log, IndexKind::Verdict, "accepted", &[10, 11, 12, 20]);
        assert_eq!(indexed(&log, IndexKind::Verdict, "accepted"), vec![22, 21]);
        assert_eq!(
            log.scan_prefix([keys::CHUNK]).count(),
            1,
            "the empty chunk went"
        );
        // The kept chunk's key still starts at 20: lookups below its first id find it.
        assert_eq!(latency(&log, "accepted", 21).unwrap(), Some(210));
        assert_eq!(latency(&log, "accepted", 20).unwrap(), None);
        assert_eq!(latency(&log, "rejected", 21).unwrap(), None);
    }

    /// An id in no chunk (past one chunk's end, before the next one's start) does not bring
    /// back a chunk the same call emptied.
    #[test]
    fn an_id_in_no_chunk_leaves_the_chunks_as_removed() {
        let log = tree();
        pass(&log, IndexKind::Endpoint, "a", &[100, 110, 120], 99);
        remove(&log, IndexKind::Endpoint, "a", &[100, 110, 120, 125]);
        assert_eq!(newest_first(&log, 0, u64::MAX), Vec::<u64>::new());
        assert_eq!(log.scan_prefix([keys::CHUNK]).count(), 0);
    }
}
