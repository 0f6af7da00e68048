//! How the store encodes records (formats 2 to 4): a leading layout byte, then postcard.
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
/// The layout of a delivery record that carries its event (format 4): the delivery's
/// metadata framed like an event's, then the event's payload. An accepted delivery is its
/// event's record, so accepting one writes one record, not two.
const WITH_EVENT: u8 = 2;

/// A delivery as stored; its id is the key, its latency lives in the verdict index entry.
/// An accepted delivery's record also holds its event: the event's payload follows it
/// (see [`encode_delivery_with_event`]).
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
    encode_framed(LAYOUT, event, payload)
}

/// The metadata and payload of an event value.
pub fn decode_event<'a>(what: &str, bytes: &'a [u8]) -> Result<(EventRec, &'a [u8]), StoreError> {
    decode_framed(LAYOUT, what, bytes)
}

/// A delivery record that carries its event's payload (see [`WITH_EVENT`]).
///
/// The metadata is the event's identity first, then the rest of the delivery (without the
/// fields the identity already holds), so that reading the event decodes only its identity.
pub fn encode_delivery_with_event(
    mut d: DeliveryRec,
    payload: &[u8],
) -> Result<Vec<u8>, StoreError> {
    let head = EventRec {
        endpoint: std::mem::take(&mut d.endpoint),
        event_id: d.event_id.take().unwrap_or_default(),
        event_type: d.event_type.take().unwrap_or_default(),
        received_at_ms: d.received_at_ms,
        delivery_id: 0, // the key
    };
    encode_framed(WITH_EVENT, &(head, d), payload)
}

/// Whether a delivery record carries its event (a look at the first byte only).
pub fn carries_event(bytes: &[u8]) -> bool {
    bytes.first() == Some(&WITH_EVENT)
}

/// A delivery record of either layout.
pub fn decode_delivery(what: &str, bytes: &[u8]) -> Result<DeliveryRec, StoreError> {
    if !carries_event(bytes) {
        return decode(what, bytes);
    }
    let ((head, mut d), _): ((EventRec, DeliveryRec), _) = decode_framed(WITH_EVENT, what, bytes)?;
    d.endpoint = head.endpoint;
    d.event_id = Some(head.event_id);
    d.event_type = Some(head.event_type);
    Ok(d)
}

/// The event in record `bytes` of event `seq`: a delivery record that carries it (only its
/// identity is decoded), or an event record of its own (older formats).
pub fn decode_event_at(seq: u64, bytes: &[u8]) -> Result<(EventRec, &[u8]), StoreError> {
    let what = format!("event {seq}");
    if !carries_event(bytes) {
        return decode_event(&what, bytes);
    }
    let (mut head, payload): (EventRec, _) = decode_framed(WITH_EVENT, &what, bytes)?;
    head.delivery_id = seq;
    Ok((head, payload))
}

/// Layout byte, metadata length (u32), postcard metadata, payload: reading the metadata is
/// a decode of its bytes only, and the payload is a slice.
fn encode_framed<T: Serialize>(
    layout: u8,
    meta: &T,
    payload: &[u8],
) -> Result<Vec<u8>, StoreError> {
    let meta = postcard::to_allocvec(meta).map_err(|e| StoreError::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(5 + meta.len() + payload.len());
    out.push(layout);
    out.extend_from_slice(&(meta.len() as u32).to_be_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(payload);
    Ok(out)
}

fn decode_framed<'a, T: DeserializeOwned>(
    layout: u8,
    what: &str,
    bytes: &'a [u8],
) -> Result<(T, &'a [u8]), StoreError> {
    let (found, rest) = bytes
        .split_first()
        .ok_or_else(|| unreadable(what, "empty"))?;
    if *found != layout {
        return Err(unreadable(what, format!("unknown layout {found}")));
    }
    let len = rest
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| unreadable(what, "short"))? as usize;
    let meta = rest
        .get(4..4 + len)
        .ok_or_else(|| unreadable(what, "short"))?;
    let meta = postcard::from_bytes(meta).map_err(|e| unreadable(what, e))?;
    Ok((meta, &rest[4 + len..]))
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

    #[test]
    fn a_delivery_that_carries_its_event_reads_as_either() {
        let mut d = crate::store::tx::delivery_record(
            &crate::store::testing::draft("evt"),
            BodyRec::Payload(7),
        );
        d.event_seq = Some(42);
        let bytes = encode_delivery_with_event(d.clone(), b"{\"a\":1}").unwrap();
        assert!(carries_event(&bytes));
        assert!(!carries_event(&encode(&d).unwrap()));
        let back = decode_delivery("d", &bytes).unwrap();
        assert_eq!(
            (
                back.endpoint.as_str(),
                back.event_id.as_deref(),
                back.event_seq
            ),
            ("std", Some("evt"), Some(42))
        );
        assert_eq!(back.request_headers, d.request_headers);
        assert_eq!(
            decode_delivery("d", &encode(&d).unwrap()).unwrap().body,
            d.body
        );
        let (event, payload) = decode_event_at(42, &bytes).unwrap();
        assert_eq!(
            (event.event_id.as_str(), event.delivery_id, payload),
            ("evt", 42, &b"{\"a\":1}"[..])
        );
        // An event record of its own (older formats) reads through the same call.
        let own = encode_event(&event, payload).unwrap();
        assert_eq!(decode_event_at(42, &own).unwrap().0.endpoint, "std");
        assert!(decode_event_at(42, &bytes[..8]).is_err());
    }
}
