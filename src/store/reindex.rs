//! Rebuilding every index from the delivery records, at once: for a store copied by backup
//! or compaction (whose indexes may not match the records copied), and for a store of an
//! older format on its first opening by format 5 (whose endpoint, verdict and type indexes
//! are one key per delivery; format 5 keeps them in chunks). Nothing else writes while it
//! runs, so it writes in large batches.
//!
//! The answers' latencies live only in the verdict index (a key's value in formats 2 to 4,
//! a chunk's list in format 5): they are read first and carried over.

use super::chunks::Chunk;
use super::keys::{self, IndexKind};
use super::tx::Batched;
use super::{codec, Db, Result};
use std::collections::HashMap;

/// Ids per rebuilt chunk.
const CHUNK_IDS: usize = 1_000;

/// Rebuilds the chunks and event id entries of every readable delivery (dropping every
/// index key there was), and sets the watermark past the last delivery.
pub(super) fn rebuild(log: &sled::Tree) -> Result<()> {
    let latencies = latencies(log)?;
    let mut out = Batched::new(log, 10_000);
    // Old indexes go first: the chunks written below may reuse their keys.
    for key in log.range(keys::kind_range(keys::CHUNK)).keys() {
        out.remove(key.db()?)?;
    }
    for key in log.range(keys::kind_range(keys::INDEX)).keys() {
        out.remove(key.db()?)?;
    }
    out.apply()?;
    let mut open: HashMap<(IndexKind, String), (u64, Chunk)> = HashMap::new();
    let mut watermark = 0;
    for item in log.range(keys::kind_range(keys::DELIVERY)) {
        let (key, bytes) = item.db()?;
        let id = keys::key_id(&key).unwrap_or(0);
        watermark = watermark.max(id);
        let Ok(d) = codec::decode_delivery("delivery", &bytes) else {
            continue;
        };
        let item = super::indexer::Indexed::of(&d);
        for (kind, value) in item.chunked() {
            let (first, chunk) = open
                .entry((kind, value.to_string()))
                .or_insert_with(|| (id, Chunk::default()));
            chunk.push(kind, id, latencies.get(&id).copied());
            if chunk.ids.len() == CHUNK_IDS {
                out.insert(keys::chunk_key(kind, value, *first), chunk.encode(*first)?)?;
                open.remove(&(kind, value.to_string()));
            }
        }
        if let Some(entry) = item.event_id_key(id) {
            out.insert(entry, [])?;
        }
    }
    for ((kind, value), (first, chunk)) in open {
        out.insert(keys::chunk_key(kind, &value, first), chunk.encode(first)?)?;
    }
    out.insert(keys::WATERMARK, keys::u64_bytes(watermark))?;
    out.apply()
}

/// The latencies the verdict index holds, by delivery id, in either form.
fn latencies(log: &sled::Tree) -> Result<HashMap<u64, u64>> {
    let mut out = HashMap::new();
    let mut legacy = vec![keys::INDEX, IndexKind::Verdict as u8];
    for item in log.scan_prefix(&legacy) {
        let (key, value) = item.db()?;
        if let (Some(id), Some(us)) = (keys::index_key_id(&key), keys::read_u64(&value)) {
            out.insert(id, us);
        }
    }
    legacy[0] = keys::CHUNK;
    for item in log.scan_prefix(&legacy) {
        let (key, bytes) = item.db()?;
        if let Ok(chunk) = Chunk::decode(&key, &bytes) {
            for (id, us) in chunk.ids.iter().zip(&chunk.latencies) {
                if let Some(us) = us {
                    out.insert(*id, *us);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::chunks;
    use crate::store::codec::BodyRec;
    use crate::store::model::Verdict;
    use crate::store::testing::draft;
    use crate::store::tx::delivery_record;

    fn delivery(endpoint: &str, verdict: Verdict, event_id: &str) -> Vec<u8> {
        let mut d = draft(event_id);
        d.endpoint = endpoint.into();
        d.verdict = verdict;
        codec::encode(&delivery_record(&d, BodyRec::Inline(String::new()))).unwrap()
    }

    /// A store of format 4 (one index key per delivery, the latency in the verdict key's
    /// value), and index keys of a delivery that is gone.
    #[test]
    fn per_delivery_indexes_become_chunks_and_keep_their_latencies() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let log = db.open_tree("log").unwrap();
        let n = CHUNK_IDS as u64 + 5;
        for id in 1..=n {
            let verdict = if id % 2 == 0 {
                Verdict::Accepted
            } else {
                Verdict::Rejected
            };
            let endpoint = if id == 3 { "other" } else { "std" };
            log.insert(
                keys::id_key(keys::DELIVERY, id),
                delivery(endpoint, verdict, &format!("ev{id}")),
            )
            .unwrap();
            log.insert(keys::index_key(IndexKind::Endpoint, endpoint, id), &[])
                .unwrap();
            log.insert(
                keys::index_key(IndexKind::Verdict, verdict.as_str(), id),
                &keys::u64_bytes(id * 10),
            )
            .unwrap();
            log.insert(
                keys::index_key(IndexKind::EventId, &format!("ev{id}"), id),
                &[],
            )
            .unwrap();
        }
        log.insert(keys::index_key(IndexKind::EventId, "gone", n + 1), &[])
            .unwrap();
        log.insert(keys::index_key(IndexKind::Endpoint, "std", n + 1), &[])
            .unwrap();
        rebuild(&log).unwrap();

        let all = |kind, value: &str| -> Vec<u64> {
            let mut ids: Vec<u64> = chunks::ids(&log, kind, value, 0, u64::MAX)
                .map(|id| id.unwrap())
                .collect();
            ids.reverse();
            ids
        };
        let std: Vec<u64> = (1..=n).filter(|id| *id != 3).collect();
        assert_eq!(all(IndexKind::Endpoint, "std"), std);
        assert_eq!(all(IndexKind::Endpoint, "other"), vec![3]);
        assert_eq!(all(IndexKind::EventType, "t").len() as u64, n);
        assert_eq!(all(IndexKind::Verdict, "accepted").len() as u64, n / 2);
        assert_eq!(all(IndexKind::EventId, "ev7"), vec![7]);
        assert_eq!(all(IndexKind::EventId, "gone"), Vec::<u64>::new());
        assert_eq!(chunks::latency(&log, "accepted", 8).unwrap(), Some(80));
        assert_eq!(chunks::latency(&log, "rejected", n).unwrap(), Some(n * 10));
        // No per-delivery key is left but the event ids'.
        for key in log.range(keys::kind_range(keys::INDEX)).keys() {
            assert_eq!(key.unwrap()[1], IndexKind::EventId as u8);
        }
        assert_eq!(
            crate::store::tx::stored_u64(&log, keys::WATERMARK).unwrap(),
            n
        );
        // Rebuilding again changes nothing.
        let before: Vec<_> = log.iter().map(|kv| kv.unwrap()).collect();
        rebuild(&log).unwrap();
        let after: Vec<_> = log.iter().map(|kv| kv.unwrap()).collect();
        assert_eq!(before, after);
    }
}
