//! The event id index: which deliveries carry an event id, for the search by id and for
//! retention's question "is a later delivery of this id left?".
//!
//! A delivery that was not accepted (a duplicate, a filtered or a rejected one) has an entry
//! `[x][i][len][event id][delivery id]`, written by the indexer. An accepted delivery that
//! holds its event (format 4 on) has none: the event's seq is the delivery's id, and its
//! dedup key (endpoint, event id) → seq finds it. Acks are most deliveries, and their entry
//! was the indexer's last write per delivery. A look-up merges both, newest first.

use super::keys::{self, IndexKind};
use super::model::Verdict;
use super::{Db, Result};

/// Whether a delivery needs an entry: not an accepted one holding its event.
pub(super) fn needs_entry(id: u64, verdict: Verdict, event_seq: Option<u64>) -> bool {
    !(verdict == Verdict::Accepted && event_seq == Some(id))
}

/// The deliveries with this event id in `[lo, hi)`, newest first, each once: the entries,
/// and the accepted ones by their dedup keys.
pub(super) fn ids(
    log: &sled::Tree,
    event_id: &str,
    lo: u64,
    hi: u64,
) -> Box<dyn Iterator<Item = Result<u64>>> {
    let kind = IndexKind::EventId;
    let entries = log
        .range(keys::index_key(kind, event_id, lo)..keys::index_key(kind, event_id, hi))
        .keys()
        .rev()
        .map(|k| Ok(keys::index_key_id(&k.db()?).unwrap_or(0)));
    let accepted = match accepted(log, event_id, lo, hi) {
        Ok(ids) => ids.into_iter().map(Ok).collect(),
        Err(e) => vec![Err(e)],
    };
    Box::new(Newest::of(vec![
        Box::new(entries),
        Box::new(accepted.into_iter()),
    ]))
}

/// The accepted deliveries with this event id in `[lo, hi)`, newest first, found by their
/// dedup keys: one per endpoint. An accepted delivery that holds its event (format 4 on)
/// has the event's seq as its id and no event id entry (see [`needs_entry`]).
fn accepted(log: &sled::Tree, event_id: &str, lo: u64, hi: u64) -> Result<Vec<u64>> {
    let mut found = Vec::new();
    // Dedup keys are (endpoint, event id): jump from one endpoint to the next. No event id
    // holds the byte 0xff (they are UTF-8), so the prefix + 0xff is past all of one
    // endpoint's keys.
    let mut from = vec![keys::DEDUP];
    while let Some(key) = log
        .range(from.clone()..vec![keys::DEDUP + 1])
        .keys()
        .next()
        .transpose()
        .db()?
    {
        let Some(prefix) = keys::dedup_endpoint_prefix(&key) else {
            break;
        };
        // This endpoint's dedup key for the event id: its prefix, then the id.
        let mut dedup = prefix.to_vec();
        dedup.extend_from_slice(event_id.as_bytes());
        let seq = log.get(dedup).db()?.and_then(|v| keys::read_u64(&v));
        if let Some(seq) = seq.filter(|seq| (lo..hi).contains(seq)) {
            if log.contains_key(keys::id_key(keys::DELIVERY, seq)).db()? {
                found.push(seq);
            }
        }
        from = prefix.to_vec();
        from.push(0xff);
    }
    found.sort_unstable_by(|a, b| b.cmp(a));
    Ok(found)
}

/// Merges id streams that are each newest first into one newest-first stream, each id
/// once.
pub(super) struct Newest {
    streams: Vec<std::iter::Peekable<Box<dyn Iterator<Item = Result<u64>>>>>,
    last: Option<u64>,
}

impl Newest {
    pub fn of(streams: Vec<Box<dyn Iterator<Item = Result<u64>>>>) -> Newest {
        Newest {
            streams: streams.into_iter().map(Iterator::peekable).collect(),
            last: None,
        }
    }
}

impl Iterator for Newest {
    type Item = Result<u64>;

    fn next(&mut self) -> Option<Result<u64>> {
        loop {
            let mut best: Option<(usize, u64)> = None;
            for (i, ids) in self.streams.iter_mut().enumerate() {
                match ids.peek() {
                    Some(Err(_)) => return ids.next(),
                    Some(Ok(id)) if best.is_none_or(|(_, b)| *id > b) => best = Some((i, *id)),
                    _ => {}
                }
            }
            let (i, id) = best?;
            self.streams[i].next();
            if self.last != Some(id) {
                self.last = Some(id);
                return Some(Ok(id));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> sled::Tree {
        let db = sled::Config::new().temporary(true).open().unwrap();
        db.open_tree("log").unwrap()
    }

    #[test]
    fn merged_ids_stay_newest_first_each_once() {
        let stream = |ids: Vec<u64>| {
            Box::new(ids.into_iter().map(Ok)) as Box<dyn Iterator<Item = Result<u64>>>
        };
        let merged: Vec<u64> = Newest::of(vec![
            stream(vec![9, 4, 1]),
            stream(vec![8, 7, 4, 2]),
            stream(vec![]),
        ])
        .map(|r| r.unwrap())
        .collect();
        assert_eq!(merged, [9, 8, 7, 4, 2, 1]);
    }

    /// Deliveries by event id: accepted ones through each endpoint's dedup key (if their
    /// record is still there), others through their entries, merged newest first.
    #[test]
    fn an_event_id_finds_accepted_deliveries_on_every_endpoint_by_their_dedup_keys() {
        let log = tree();
        for (endpoint, event_id, seq, stored) in [
            ("a", "x", 3, true),
            ("b", "x", 7, true),
            ("b", "y", 9, true),
            ("c", "x", 11, false),
        ] {
            log.insert(keys::dedup_key(endpoint, event_id), &keys::u64_bytes(seq))
                .unwrap();
            if stored {
                log.insert(keys::id_key(keys::DELIVERY, seq), &b"d"[..])
                    .unwrap();
            }
        }
        log.insert(keys::index_key(IndexKind::EventId, "x", 5), &[])
            .unwrap();
        let found = |lo, hi| -> Vec<u64> { ids(&log, "x", lo, hi).map(|id| id.unwrap()).collect() };
        assert_eq!(found(0, u64::MAX), [7, 5, 3]);
        assert_eq!(found(4, 8), [7, 5]);
        assert_eq!(found(8, u64::MAX), Vec::<u64>::new());
    }
}
