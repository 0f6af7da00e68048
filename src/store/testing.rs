//! Deliveries and answers for the store's own unit tests, spelled once.

use super::ingest::{DeliveryDraft, NewEvent};
use super::model::{ResponseLog, Verdict};

/// An accepted delivery of `event_id` on endpoint `std`, its body `{"id":"<event_id>"}`.
pub(crate) fn draft(event_id: &str) -> DeliveryDraft {
    let body = format!("{{\"id\":\"{event_id}\"}}");
    DeliveryDraft {
        received_at_ms: 1_700_000_000_000,
        endpoint: "std".into(),
        remote_addr: None,
        request_headers: vec![("webhook-id".into(), event_id.into())],
        body_bytes: body.len(),
        body,
        body_truncated: false,
        verdict: Verdict::Accepted,
        reason: String::new(),
        response: ok_response(),
        event_id: Some(event_id.into()),
        event_type: Some("t".into()),
    }
}

/// The event [`draft`] carries.
pub(super) fn event(event_id: &str) -> NewEvent {
    NewEvent {
        event_id: event_id.into(),
        event_type: "t".into(),
        payload: bytes::Bytes::from(format!("{{\"id\":\"{event_id}\"}}")),
    }
}

/// A `Respond` that answers 200 with nothing to say, whatever the verdict.
pub(super) fn respond(_: Verdict) -> (String, ResponseLog) {
    (String::new(), ok_response())
}

fn ok_response() -> ResponseLog {
    ResponseLog {
        status: 200,
        headers: vec![],
        body: String::new(),
    }
}

/// A store in a fresh temporary directory (kept as long as the returned handle lives).
pub(super) fn temp_store() -> (tempfile::TempDir, super::SledStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = super::SledStore::open(dir.path(), 16).expect("open");
    (dir, store)
}

/// Accepts [`event`]`(event_id)` on `store` as [`draft`] carries it.
pub(super) async fn accept(store: &super::SledStore, event_id: &str) -> super::Accepted {
    store
        .accept(draft(event_id), event(event_id), respond)
        .await
        .expect("accepted")
}

/// A finished attempt number 1 with this outcome.
pub(super) fn attempt(outcome: super::AttemptOutcome) -> super::Attempt {
    super::Attempt {
        number: 1,
        processor: "test".into(),
        started_at_ms: 1,
        finished_at_ms: 2,
        outcome,
        detail: String::new(),
    }
}

/// Every delivery id one index holds for `value`, newest first, as a walk reads them.
pub(super) fn indexed(log: &sled::Tree, kind: super::keys::IndexKind, value: &str) -> Vec<u64> {
    super::chunks::ids(log, kind, value, 0, u64::MAX)
        .map(|id| id.expect("index readable"))
        .collect()
}
