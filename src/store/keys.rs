//! Key encodings and id generation of format 2. Only the store module sees these bytes.
//!
//! Everything the ack path writes lives in one tree (`log`), so one accepted delivery is one
//! atomic `apply_batch` on one tree. Each kind of record has its own first byte, and every
//! integer in a key is big-endian so that sled's byte order is numeric order.

use std::sync::atomic::{AtomicU64, Ordering};

/// The tree holding every record of format 2, each kind under its own first byte.
pub const LOG_TREE: &str = "log";
/// Small facts about the store: its format, counters that only grow.
pub const META_TREE: &str = "meta";

/// `meta` key of the data format (u64, big-endian).
pub const FORMAT_KEY: &[u8] = b"format";
/// `meta` key present while a rebuild of the indexes that a restamp began is unfinished.
pub const REINDEXING: &[u8] = b"reindexing";
/// `meta` key of the count of rejections beyond the logging rate.
pub const REJECTED_UNLOGGED: &[u8] = b"rejected_unlogged";

/// delivery id → delivery record (an accepted one also holds its event and payload).
pub const DELIVERY: u8 = b'd';
/// event seq → event record (identity and payload; never changes). Since format 4 an
/// event is in its accepted delivery's record (its seq is that delivery's id); records of
/// their own are left by older formats, and written by retention for an event that must
/// outlive its delivery's record.
pub const EVENT: u8 = b'e';
/// event seq → processing status; absent while the event was never claimed.
pub const STATUS: u8 = b's';
/// (endpoint, event id) → event seq.
pub const DEDUP: u8 = b'k';
/// (due ms, seq) → (): the durable queue of events that were claimed before (retries,
/// re-queues after a stop, replays). A new event has no entry: see [`CURSOR`].
pub const QUEUE: u8 = b'q';
/// seq → () while a worker ran the event: written by format 2 only. Format 3 finds events
/// cut short by their `processing` status; entries left by format 2 are re-queued once.
pub const INFLIGHT: u8 = b'i';
/// (seq, number) → attempt.
pub const ATTEMPT: u8 = b'a';
/// (kind, value, delivery id) → (): the event id index, one entry per delivery that is not
/// an accepted one holding its event (its dedup key finds that; see `event_ids`), written
/// behind the ack path by the indexer. Formats 2 to 4 also kept the endpoint, verdict (with
/// the answer's latency in µs as the value) and event type indexes here; format 5 keeps
/// those in [`CHUNK`]s.
pub const INDEX: u8 = b'x';
/// (kind, value, first delivery id) → the ids of deliveries with that value from the first
/// on (and, by verdict, their answers' latencies): the endpoint, verdict and event type
/// indexes of format 5, one chunk per value per indexing pass (see `chunks`).
pub const CHUNK: u8 = b'y';
/// The delivery id up to which the indexes are complete.
pub const WATERMARK: &[u8] = b"w";
/// The claim cursor (format 4): every event up to this seq has been claimed at least once
/// (or has a queue entry). An event after it with no status is new and due, so accepting
/// one writes no queue entry: claims read new events in seq order from here.
pub const CURSOR: &[u8] = b"c";

/// Bits of an id below the millisecond timestamp.
const SEQ_BITS: u32 = 22;

/// Hands out unique, strictly increasing ids whose high bits are the creation time in ms.
/// Ordering by id is ordering by time, so "newest first" and time ranges are key ranges.
pub struct IdGen {
    last: AtomicU64,
}

impl IdGen {
    /// Starts after `floor`, the largest id already stored, so ids never repeat across
    /// restarts even if the wall clock went back.
    pub fn new(floor: u64) -> IdGen {
        IdGen {
            last: AtomicU64::new(floor),
        }
    }

    /// The next id for something created at `now_ms`.
    pub fn next(&self, now_ms: u64) -> u64 {
        let candidate = now_ms << SEQ_BITS;
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let id = candidate.max(last + 1);
            match self
                .last
                .compare_exchange_weak(last, id, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return id,
                Err(seen) => last = seen,
            }
        }
    }

    /// The largest id handed out so far.
    pub fn last(&self) -> u64 {
        self.last.load(Ordering::Relaxed)
    }
}

/// The creation time of an id, in ms.
pub fn id_time_ms(id: u64) -> u64 {
    id >> SEQ_BITS
}

/// The smallest id that can have been created at `ms`.
pub fn first_id_at(ms: u64) -> u64 {
    ms.saturating_mul(1 << SEQ_BITS)
}

pub fn u64_bytes(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

pub fn read_u64(bytes: &[u8]) -> Option<u64> {
    bytes.get(..8)?.try_into().ok().map(u64::from_be_bytes)
}

/// `[kind][id]`: a delivery, event, status or inflight key.
pub fn id_key(kind: u8, id: u64) -> [u8; 9] {
    let mut key = [kind; 9];
    key[1..].copy_from_slice(&id.to_be_bytes());
    key
}

/// The id of an `id_key` (or of any key that starts with kind and id).
pub fn key_id(key: &[u8]) -> Option<u64> {
    read_u64(key.get(1..)?)
}

/// Delivery index kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IndexKind {
    Endpoint = b'e' as isize,
    Verdict = b'v' as isize,
    EventType = b't' as isize,
    EventId = b'i' as isize,
}

/// `[x][kind][len u16][value]`: every delivery key with this value lies under this prefix,
/// in id order. The length prefix keeps values that contain any byte apart.
pub fn index_prefix(kind: IndexKind, value: &str) -> Vec<u8> {
    let value = &value.as_bytes()[..value.len().min(u16::MAX as usize)];
    let mut key = Vec::with_capacity(4 + value.len() + 8);
    key.push(INDEX);
    key.push(kind as u8);
    key.extend_from_slice(&(value.len() as u16).to_be_bytes());
    key.extend_from_slice(value);
    key
}

/// `[y][kind][len u16][value]`: every chunk of this value lies under this prefix, in order
/// of its first id.
pub fn chunk_prefix(kind: IndexKind, value: &str) -> Vec<u8> {
    let mut key = index_prefix(kind, value);
    key[0] = CHUNK;
    key
}

/// A chunk's key: prefix + the id it starts at (no id in the chunk is smaller).
pub fn chunk_key(kind: IndexKind, value: &str, first: u64) -> Vec<u8> {
    let mut key = chunk_prefix(kind, value);
    key.extend_from_slice(&first.to_be_bytes());
    key
}

/// An index entry: prefix + delivery id.
pub fn index_key(kind: IndexKind, value: &str, id: u64) -> Vec<u8> {
    let mut key = index_prefix(kind, value);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// The delivery id at the end of an index key (a chunk's: its first id).
pub fn index_key_id(key: &[u8]) -> Option<u64> {
    let at = key.len().checked_sub(8)?;
    read_u64(&key[at..])
}

/// The value of an index or chunk key (between its length and the id).
pub fn index_key_value(key: &[u8]) -> Option<&[u8]> {
    let len = u16::from_be_bytes(key.get(2..4)?.try_into().ok()?) as usize;
    key.get(4..4 + len)
}

/// Dedup key: endpoint and event id, length-prefixed.
pub fn dedup_key(endpoint: &str, event_id: &str) -> Vec<u8> {
    let endpoint = &endpoint.as_bytes()[..endpoint.len().min(u16::MAX as usize)];
    let mut key = Vec::with_capacity(3 + endpoint.len() + event_id.len());
    key.push(DEDUP);
    key.extend_from_slice(&(endpoint.len() as u16).to_be_bytes());
    key.extend_from_slice(endpoint);
    key.extend_from_slice(event_id.as_bytes());
    key
}

/// The endpoint part of a dedup key, `[d][len u16][endpoint]`: every dedup key of that
/// endpoint starts with it.
pub fn dedup_endpoint_prefix(key: &[u8]) -> Option<&[u8]> {
    let len = u16::from_be_bytes(key.get(1..3)?.try_into().ok()?) as usize;
    key.get(..3 + len)
}

/// Queue key: due time, then event seq, so the first key is the next event to run.
pub fn queue_key(due_ms: u64, seq: u64) -> [u8; 17] {
    let mut key = [QUEUE; 17];
    key[1..9].copy_from_slice(&due_ms.to_be_bytes());
    key[9..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// (due_ms, seq) of a queue key.
pub fn parse_queue_key(key: &[u8]) -> Option<(u64, u64)> {
    Some((read_u64(key.get(1..)?)?, read_u64(key.get(9..)?)?))
}

/// Attempt key: event seq, then attempt number.
pub fn attempt_key(seq: u64, number: u32) -> [u8; 13] {
    let mut key = [ATTEMPT; 13];
    key[1..9].copy_from_slice(&seq.to_be_bytes());
    key[9..].copy_from_slice(&number.to_be_bytes());
    key
}

/// The keys of one kind, `[kind]` up to the next kind.
pub fn kind_range(kind: u8) -> std::ops::Range<[u8; 1]> {
    [kind]..[kind + 1]
}

/// The keys of one kind with ids in `[lo, hi)`.
pub fn id_range(kind: u8, lo: u64, hi: u64) -> std::ops::Range<[u8; 9]> {
    id_key(kind, lo)..id_key(kind, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_and_carry_their_time() {
        let ids = IdGen::new(0);
        let a = ids.next(1_700_000_000_000);
        let b = ids.next(1_700_000_000_000);
        let c = ids.next(1_699_999_999_000); // clock stepped back
        assert!(a < b && b < c);
        assert_eq!(ids.last(), c);
        assert_eq!(id_time_ms(a), 1_700_000_000_000);
        assert!(first_id_at(1_700_000_000_000) <= a);
        assert!(first_id_at(1_700_000_000_001) > b);
    }

    #[test]
    fn index_values_cannot_run_into_each_other() {
        assert!(!index_key(IndexKind::EventType, "ab", 1)
            .starts_with(&index_prefix(IndexKind::EventType, "a")));
        assert_eq!(
            index_key_id(&index_key(IndexKind::Endpoint, "x", 42)),
            Some(42)
        );
        let key = index_key(IndexKind::EventType, "patient.x", 7);
        assert_eq!(index_key_value(&key), Some(&b"patient.x"[..]));
    }

    #[test]
    fn queue_keys_sort_by_due_time_then_seq() {
        assert!(queue_key(1, 9) < queue_key(2, 1));
        assert!(queue_key(2, 1) < queue_key(2, 3));
        assert_eq!(parse_queue_key(&queue_key(5, 6)), Some((5, 6)));
    }

    #[test]
    fn kinds_stay_apart() {
        let d = id_key(DELIVERY, u64::MAX);
        let range = kind_range(DELIVERY);
        assert!(range.start[..] <= d[..] && d[..] < range.end[..]);
        assert_eq!(key_id(&id_key(EVENT, 7)), Some(7));
    }

    #[test]
    fn a_dedup_key_names_its_endpoints_prefix() {
        let key = dedup_key("std", "evt-1");
        assert_eq!(dedup_endpoint_prefix(&key), Some(&dedup_key("std", "")[..]));
        assert!(dedup_key("other", "evt-1").starts_with(&dedup_key("other", "")));
        assert_eq!(
            dedup_endpoint_prefix(&[DEDUP, 0, 9, b'x']),
            None,
            "cut short"
        );
    }
}
