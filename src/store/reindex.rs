//! Rebuilding every index from the delivery records, at once: for a store copied by backup
//! or compaction (whose indexes may not match the records copied), and for a store of an
//! older format on its first opening by format 5 (whose endpoint, verdict and type indexes
//! are one key per delivery; format 5 keeps them in chunks). Nothing else writes while it
//! runs, so it writes in large batches.
//!
//! The answers' latencies live only in the verdict index (a key's value in formats 2 to 4,
//! a chunk's list in format 5): they are read first and carried over. The new indexes are
//! written before anything they replace is removed, so a rebuild cut short (a crash, a
//! start-up timeout) leaves every latency in one form or the other for the next try, which
//! writes the same chunks again (their keys follow from the deliveries alone).

use super::chunks::Chunk;
use super::keys::{self, IndexKind};
use super::tx::Batched;
use super::{codec, Db, Result};
use std::collections::{HashMap, HashSet};

/// Ids per rebuilt chunk.
const CHUNK_IDS: usize = 1_000;
/// Deliveries between two progress reports.
const PROGRESS_EVERY: u64 = 100_000;

/// Rebuilds every index of the store, and clears the note that a rebuild is pending (see
/// `open::stamp`): the one way indexes are rebuilt, whether by a restamp, a restamp resumed,
/// a copy's repair or verify-data's scratch copy.
pub(super) fn rebuild_store(db: &sled::Db) -> Result<()> {
    rebuild(&db.open_tree(keys::LOG_TREE).db()?)?;
    db.open_tree(keys::META_TREE)
        .db()?
        .remove(keys::REINDEXING)
        .db()?;
    Ok(())
}

/// Rebuilds the chunks and event id entries of every readable delivery, removes every other
/// index key, and sets the watermark past the last delivery.
fn rebuild(log: &sled::Tree) -> Result<()> {
    let latencies = latencies(log)?;
    let latency = |id: u64| {
        latencies
            .binary_search_by_key(&id, |(id, _)| *id)
            .ok()
            .map(|at| latencies[at].1)
    };
    let mut out = Batched::new(log, 10_000);
    // The chunks written (a few per thousand deliveries), so that every other can go
    // afterwards. Event id entries are judged by their deliveries instead: there can be
    // millions.
    let mut chunk_keys: HashSet<Vec<u8>> = HashSet::new();
    let mut open: HashMap<(IndexKind, String), (u64, Chunk)> = HashMap::new();
    let mut watermark = 0;
    let mut seen = 0u64;
    for item in log.range(keys::kind_range(keys::DELIVERY)) {
        let (key, bytes) = item.db()?;
        let id = keys::key_id(&key).unwrap_or(0);
        watermark = watermark.max(id);
        seen += 1;
        if seen % PROGRESS_EVERY == 0 {
            progress("deliveries indexed", seen);
        }
        let Ok(d) = codec::decode_delivery("delivery", &bytes) else {
            continue;
        };
        let item = super::indexer::Indexed::of(&d);
        for (kind, value) in item.chunked() {
            let (first, chunk) = open
                .entry((kind, value.to_string()))
                .or_insert_with(|| (id, Chunk::default()));
            chunk.push(kind, id, latency(id));
            if chunk.ids.len() == CHUNK_IDS {
                let key = keys::chunk_key(kind, value, *first);
                out.insert(&key, chunk.encode(*first)?)?;
                chunk_keys.insert(key);
                open.remove(&(kind, value.to_string()));
            }
        }
        if let Some(entry) = item.event_id_key(id) {
            out.insert(&entry, [])?;
        }
    }
    for ((kind, value), (first, chunk)) in open {
        let key = keys::chunk_key(kind, &value, first);
        out.insert(&key, chunk.encode(first)?)?;
        chunk_keys.insert(key);
    }
    out.apply()?;
    // Only now what the new indexes replace goes (most of the time: about four keys per
    // delivery of an older format).
    let mut removed = 0u64;
    let old = log
        .range(keys::kind_range(keys::CHUNK))
        .keys()
        .chain(log.range(keys::kind_range(keys::INDEX)).keys());
    for key in old {
        let key = key.db()?;
        let kept = match key.first() {
            Some(&keys::CHUNK) => chunk_keys.contains(key.as_ref()),
            _ => is_wanted_entry(log, &key)?,
        };
        if !kept {
            out.remove(key)?;
            removed += 1;
            if removed % (4 * PROGRESS_EVERY) == 0 {
                progress("old index keys removed", removed);
            }
        }
    }
    out.insert(keys::WATERMARK, keys::u64_bytes(watermark))?;
    out.apply()
}

/// Whether a per-delivery index key is an event id entry that its delivery needs (the
/// one the loop above wrote): any other (by endpoint, verdict or type, of an older format;
/// of an accepted delivery; of a delivery gone or unreadable) goes.
fn is_wanted_entry(log: &sled::Tree, key: &[u8]) -> Result<bool> {
    if key.get(1) != Some(&(IndexKind::EventId as u8)) {
        return Ok(false);
    }
    let Some(id) = keys::index_key_id(key) else {
        return Ok(false);
    };
    let Some(bytes) = log.get(keys::id_key(keys::DELIVERY, id)).db()? else {
        return Ok(false);
    };
    Ok(codec::decode_delivery("delivery", &bytes)
        .ok()
        .and_then(|d| super::indexer::Indexed::of(&d).event_id_key(id))
        .is_some_and(|wanted| wanted == key))
}

/// Says how far a rebuild is, and asks systemd (when it started hookd) for more time to
/// start: a store of millions of deliveries takes longer than its default start timeout.
fn progress(step: &str, done: u64) {
    tracing::info!("rebuilding the indexes: {done} {step}");
    let _ = sd_notify::notify(
        false,
        &[sd_notify::NotifyState::ExtendTimeoutUsec(120_000_000)],
    );
}

/// The latencies the verdict index holds, in either form, as (delivery id, µs) in id
/// order: 16 bytes a delivery, where a map would take about three times that.
fn latencies(log: &sled::Tree) -> Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    let mut legacy = vec![keys::INDEX, IndexKind::Verdict as u8];
    for item in log.scan_prefix(&legacy) {
        let (key, value) = item.db()?;
        if let (Some(id), Some(us)) = (keys::index_key_id(&key), keys::read_u64(&value)) {
            out.push((id, us));
        }
    }
    legacy[0] = keys::CHUNK;
    for item in log.scan_prefix(&legacy) {
        let (key, bytes) = item.db()?;
        if let Ok(chunk) = Chunk::decode(&key, &bytes) {
            for (id, us) in chunk.ids.iter().zip(&chunk.latencies) {
                if let Some(us) = us {
                    out.push((*id, *us));
                }
            }
        }
    }
    out.sort_unstable();
    out.dedup_by_key(|(id, _)| *id);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::chunks;
    use crate::store::codec::BodyRec;
    use crate::store::model::Verdict;
    use crate::store::testing::{draft, indexed};
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

        // Oldest first, as the deliveries were written.
        let all = |kind, value: &str| -> Vec<u64> {
            let mut ids = indexed(&log, kind, value);
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
        // A rebuild cut short after writing its chunks, while removing what they replace:
        // some latencies are only in the chunks, others only in per-delivery keys, and a
        // stray chunk of the indexer's overlaps the rebuilt ones. The next try keeps every
        // latency and leaves each id once.
        let mut stray = Chunk::default();
        stray.push(IndexKind::Verdict, 8, Some(80));
        log.insert(
            keys::chunk_key(IndexKind::Verdict, "accepted", 8),
            stray.encode(8).unwrap(),
        )
        .unwrap();
        log.insert(
            keys::index_key(IndexKind::Verdict, "accepted", 10),
            &keys::u64_bytes(100),
        )
        .unwrap();
        rebuild(&log).unwrap();
        assert_eq!(chunks::latency(&log, "accepted", 8).unwrap(), Some(80));
        assert_eq!(chunks::latency(&log, "accepted", 10).unwrap(), Some(100));
        assert_eq!(all(IndexKind::Verdict, "accepted").len() as u64, n / 2);
        // Rebuilding again changes nothing.
        let before: Vec<_> = log.iter().map(|kv| kv.unwrap()).collect();
        rebuild(&log).unwrap();
        let after: Vec<_> = log.iter().map(|kv| kv.unwrap()).collect();
        assert_eq!(before, after);
    }
}
