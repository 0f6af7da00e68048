//! The records hookd keeps: deliveries (every request), events (accepted webhooks) and
//! attempts (each processing try): the shapes the admin API returns (as JSON). The store
//! keeps them in its own encoding (see `codec`).

use serde::{Deserialize, Serialize};

/// Ids are u64s whose high bits are the creation time in ms (see `keys::IdGen`). They are
/// written as decimal strings in JSON because JavaScript numbers lose precision above 2^53.
pub mod id_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(id)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }

    /// The same for `Option<u64>`.
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(id: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
            match id {
                Some(id) => s.collect_str(id),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
            let text = Option::<String>::deserialize(d)?;
            text.map(|t| t.parse().map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

/// What the receiver decided about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Verified, new, selected: stored and queued.
    Accepted,
    /// Verified, but this event id was already accepted on this endpoint.
    Duplicate,
    /// Verified, but of a type the endpoint did not select.
    Filtered,
    /// Not verified, malformed, too large, unknown endpoint, or not storable (503).
    Rejected,
}

impl Verdict {
    /// Every verdict, in display order.
    pub const ALL: [Verdict; 4] = [
        Verdict::Accepted,
        Verdict::Duplicate,
        Verdict::Filtered,
        Verdict::Rejected,
    ];

    /// The lower-case name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::Duplicate => "duplicate",
            Verdict::Filtered => "filtered",
            Verdict::Rejected => "rejected",
        }
    }

    /// Parses the API name.
    pub fn parse(text: &str) -> Option<Verdict> {
        Verdict::ALL.into_iter().find(|v| v.as_str() == text)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Where an accepted event is in its processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventState {
    Queued,
    Processing,
    Done,
    Retrying,
    Dead,
}

impl EventState {
    /// Every state, in pipeline order.
    pub const ALL: [EventState; 5] = [
        EventState::Queued,
        EventState::Processing,
        EventState::Done,
        EventState::Retrying,
        EventState::Dead,
    ];

    /// The lower-case name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            EventState::Queued => "queued",
            EventState::Processing => "processing",
            EventState::Done => "done",
            EventState::Retrying => "retrying",
            EventState::Dead => "dead",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// The response hookd gave to a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseLog {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// One request to a receiver endpoint, whatever its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    #[serde(with = "id_string")]
    pub id: u64,
    pub received_at_ms: u64,
    pub endpoint: String,
    pub remote_addr: Option<String>,
    /// Request headers, with credentials (authorization, cookie) redacted.
    pub request_headers: Vec<(String, String)>,
    /// The body, up to the configured cap, as text (invalid UTF-8 replaced).
    pub body: String,
    /// The body's full size in bytes.
    pub body_bytes: usize,
    pub body_truncated: bool,
    pub verdict: Verdict,
    /// One line saying why (the same text as the response's `reason`).
    pub reason: String,
    pub response: ResponseLog,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    /// The stored event this delivery created (accepted) or repeated (duplicate).
    #[serde(with = "id_string::option", default)]
    pub event_seq: Option<u64>,
    /// Microseconds from the first byte of the request to the answer, once known.
    #[serde(default)]
    pub latency_us: Option<u64>,
}

/// An accepted webhook: the unit of processing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    #[serde(with = "id_string")]
    pub seq: u64,
    pub endpoint: String,
    /// The body's `id` (or the webhook-id for a standard body without one): the dedup key.
    pub event_id: String,
    pub event_type: String,
    pub received_at_ms: u64,
    #[serde(with = "id_string")]
    pub delivery_id: u64,
    pub state: EventState,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (queued or retrying).
    pub next_attempt_at_ms: Option<u64>,
    pub last_error: Option<String>,
    /// How often the event was re-queued by hand.
    #[serde(default)]
    pub replays: u32,
    /// Attempts made before the latest replay: a replay starts a fresh round of retries,
    /// counted from here, while attempt numbers keep increasing.
    #[serde(default)]
    pub attempts_before_replay: u32,
}

/// The outcome of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttemptOutcome {
    Ok,
    Error,
    /// Begun and not finished yet (recorded when the event is claimed).
    Running,
    /// Cut short by a stop or crash of hookd; the event ran again under the next number.
    Interrupted,
}

/// One processing attempt of an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub number: u32,
    pub processor: String,
    pub started_at_ms: u64,
    pub finished_at_ms: u64,
    pub outcome: AttemptOutcome,
    /// What the processor did, or the error text.
    pub detail: String,
}
