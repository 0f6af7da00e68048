//! How format 2 encodes records: a leading layout byte, then postcard.
//!
//! postcard rather than bincode: its wire format is specified and frozen for 1.x, integers
//! are varints (ids, times and counts take a few bytes instead of eight), and it needs no
//! configuration to stay stable. The leading byte names the record layout, so a later layout
//! can be read next to this one and a record that is not ours is told apart from a damaged
//! one. An event record keeps its payload outside postcard, after the metadata, so reading
//! the body is a slice, not a decode.

use super::model::{Attempt, EventState, ResponseLog, Verdict};
use super::StoreError;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// The record layout this build writes.
const LAYOUT: u8 = 1;

/// A delivery as stored; its id is the key, its latency lives in the verdict index entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveryRec {
    pub received_at_ms: u64,
    pub endpoint: String,
    pub remote_addr: Option<String>,
    pub request_headers: Vec<(String, String)>,
    pub body: BodyRec,
    pub body_bytes: u64,
    pub body_truncated: bool,
    pub verdict: Verdict,
    pub reason: String,
    pub response: ResponseLog,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub event_seq: Option<u64>,
}

/// Where a delivery's logged body is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BodyRec {
    /// In the delivery record itself.
    Inline(String),
    /// The first this many bytes of the payload of the delivery's event: an accepted body
    /// (and a duplicate that repeats it) is stored once.
    Payload(u32),
}

/// What never changes about an event (the payload follows it in the same value).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventRec {
    pub endpoint: String,
    pub event_id: String,
    pub event_type: String,
    pub received_at_ms: u64,
    pub delivery_id: u64,
}

/// Where an event is in its processing; absent until its first claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRec {
    pub state: EventState,
    /// Attempts begun so far (an attempt cut short by a stop counts).
    pub attempts: u32,
    pub next_attempt_at_ms: Option<u64>,
    pub last_error: Option<String>,
    pub replays: u32,
    /// Attempts made before the latest replay (a replay starts a fresh round of retries).
    pub attempts_before_replay: u32,
}

impl StatusRec {
    /// The status of an event accepted at `received_at_ms` and never claimed.
    pub fn fresh(received_at_ms: u64) -> StatusRec {
        StatusRec {
            state: EventState::Queued,
            attempts: 0,
            next_attempt_at_ms: Some(received_at_ms),
            last_error: None,
            replays: 0,
            attempts_before_replay: 0,
        }
    }
}

/// Encodes a record with its layout byte.
pub fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_extend(record, vec![LAYOUT]).map_err(|e| StoreError::Encode(e.to_string()))
}

/// Decodes a record written by [`encode`]; `what` names it in the error.
pub fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&LAYOUT, rest)) => postcard::from_bytes(rest).map_err(|e| unreadable(what, e)),
        Some((layout, _)) => Err(unreadable(what, format!("unknown layout {layout}"))),
        None => Err(unreadable(what, "empty")),
    }
}

fn unreadable(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Unreadable {
        record: what.to_string(),
        detail: detail.to_string(),
    }
}

/// An event value: layout byte, metadata length (u32), metadata, payload.
pub fn encode_event(event: &EventRec, payload: &[u8]) -> Result<Vec<u8>, StoreError> {
    let meta = postcard::to_allocvec(event).map_err(|e| StoreError::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(5 + meta.len() + payload.len());
    out.push(LAYOUT);
    out.extend_from_slice(&(meta.len() as u32).to_be_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(payload);
    Ok(out)
}

/// The metadata and payload of an event value.
pub fn decode_event<'a>(what: &str, bytes: &'a [u8]) -> Result<(EventRec, &'a [u8]), StoreError> {
    let (layout, rest) = bytes
        .split_first()
        .ok_or_else(|| unreadable(what, "empty"))?;
    if *layout != LAYOUT {
        return Err(unreadable(what, format!("unknown layout {layout}")));
    }
    let len = rest
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| unreadable(what, "short"))? as usize;
    let meta = rest
        .get(4..4 + len)
        .ok_or_else(|| unreadable(what, "short"))?;
    let event = postcard::from_bytes(meta).map_err(|e| unreadable(what, e))?;
    Ok((event, &rest[4 + len..]))
}

/// Decodes an attempt.
pub fn decode_attempt(what: &str, bytes: &[u8]) -> Result<Attempt, StoreError> {
    decode(what, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_foreign_bytes_are_refused() {
        let s = StatusRec::fresh(5);
        assert_eq!(decode::<StatusRec>("s", &encode(&s).unwrap()).unwrap(), s);
        assert!(decode::<StatusRec>("s", b"{\"state\":\"queued\"}").is_err());
        assert!(decode::<StatusRec>("s", &[]).is_err());
        let e = EventRec {
            endpoint: "std".into(),
            event_id: "evt".into(),
            event_type: "t".into(),
            received_at_ms: 9,
            delivery_id: 3,
        };
        let bytes = encode_event(&e, b"{\"a\":1}").unwrap();
        let (back, payload) = decode_event("e", &bytes).unwrap();
        assert_eq!(
            (back.event_id.as_str(), payload),
            ("evt", &b"{\"a\":1}"[..])
        );
        assert!(decode_event("e", &bytes[..6]).is_err());
    }
}
