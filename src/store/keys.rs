//! Key encodings and id generation. Only the store module sees these bytes.
//!
//! Every integer in a key is big-endian so that sled's byte order is numeric order.

use std::sync::atomic::{AtomicU64, Ordering};

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
}

/// The creation time of an id, in ms.
pub fn id_time_ms(id: u64) -> u64 {
    id >> SEQ_BITS
}

/// The smallest id that can have been created at `ms`.
pub fn first_id_at(ms: u64) -> u64 {
    ms.saturating_mul(1 << SEQ_BITS)
}

pub fn u64_key(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

pub fn read_u64(bytes: &[u8]) -> Option<u64> {
    bytes.get(..8)?.try_into().ok().map(u64::from_be_bytes)
}

/// Delivery index kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    Endpoint = b'e' as isize,
    Verdict = b'v' as isize,
    EventType = b't' as isize,
    EventId = b'i' as isize,
}

/// `[kind][len u16][value]`: every delivery key with this value lies under this prefix, in
/// id order. The length prefix keeps values that contain any byte apart.
pub fn index_prefix(kind: IndexKind, value: &str) -> Vec<u8> {
    let value = &value.as_bytes()[..value.len().min(u16::MAX as usize)];
    let mut key = Vec::with_capacity(3 + value.len() + 8);
    key.push(kind as u8);
    key.extend_from_slice(&(value.len() as u16).to_be_bytes());
    key.extend_from_slice(value);
    key
}

/// An index entry: prefix + delivery id.
pub fn index_key(kind: IndexKind, value: &str, id: u64) -> Vec<u8> {
    let mut key = index_prefix(kind, value);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// The delivery id at the end of an index key.
pub fn index_key_id(key: &[u8]) -> Option<u64> {
    let at = key.len().checked_sub(8)?;
    read_u64(&key[at..])
}

/// Dedup key: endpoint and event id, length-prefixed.
pub fn dedup_key(endpoint: &str, event_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + endpoint.len() + event_id.len());
    key.extend_from_slice(&(endpoint.len() as u16).to_be_bytes());
    key.extend_from_slice(endpoint.as_bytes());
    key.extend_from_slice(event_id.as_bytes());
    key
}

/// Queue key: due time, then event seq, so the first key is the next event to run.
pub fn queue_key(due_ms: u64, seq: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&due_ms.to_be_bytes());
    key[8..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// (due_ms, seq) of a queue key.
pub fn parse_queue_key(key: &[u8]) -> Option<(u64, u64)> {
    Some((read_u64(key)?, read_u64(key.get(8..)?)?))
}

/// Attempt key: event seq, then attempt number.
pub fn attempt_key(seq: u64, number: u32) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..8].copy_from_slice(&seq.to_be_bytes());
    key[8..].copy_from_slice(&number.to_be_bytes());
    key
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
    }

    #[test]
    fn queue_keys_sort_by_due_time_then_seq() {
        assert!(queue_key(1, 9) < queue_key(2, 1));
        assert!(queue_key(2, 1) < queue_key(2, 3));
        assert_eq!(parse_queue_key(&queue_key(5, 6)), Some((5, 6)));
    }
}
