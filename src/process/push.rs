//! Push: tells the integrator's own service what hookd did with Fasten's data, so it need not
//! poll the admin API: `hookd.export.stored` after an export is stored and validated,
//! `hookd.connection.revoked` after a revocation, `hookd.connection.deleted` after a
//! revocation removed the connection's data.
//!
//! A push is not a POST made on the spot: it is an event hookd accepts on an internal
//! endpoint, [`ENDPOINT`], through the same durable queue as a received one, and processed by
//! the `forward` processor towards `[push] url`. So a push survives a crash between the
//! export being stored and the POST, is retried on the `[processing]` schedule, goes dead
//! (and can be replayed) like any event, and its attempts show in the UI and `/api/events`.
//! The Fasten attempt that stored the export only has to enqueue it, which is one local,
//! durable write; a slow or failing receiver never holds up a download.
//!
//! Push event ids are made from the id of the Fasten event that caused them, so the attempt
//! that enqueues one can run again (after a crash, or a retry) without pushing twice: the
//! second enqueue is recorded as a duplicate. The receiving service should still deduplicate
//! by `webhook-id`, since the forward itself is at-least-once.
//!
//! One `[push]` for the whole hookd rather than one per Fasten endpoint: all Fasten endpoints
//! share one processor and one connection table (test and live mode of one integration), and
//! one service owns the data; a per-endpoint key would only let the two disagree.

use crate::clock;
use crate::store::{DeliveryDraft, NewEvent, ResponseLog, Store, StoreError, Verdict};
use serde_json::{json, Value};
use std::sync::Arc;

/// The internal endpoint push events are queued on. It is not served by the receiver, and a
/// configured endpoint may not take its name.
pub const ENDPOINT: &str = "hookd-push";

/// Push event types.
pub const EXPORT_STORED: &str = "hookd.export.stored";
pub const CONNECTION_REVOKED: &str = "hookd.connection.revoked";
pub const CONNECTION_DELETED: &str = "hookd.connection.deleted";

/// Enqueues push events; cheap to clone.
#[derive(Clone)]
pub struct Push {
    store: Arc<Store>,
}

impl Push {
    pub fn new(store: Arc<Store>) -> Push {
        Push { store }
    }

    /// Queues an event of `event_type` with `data`, named after the event that caused it
    /// (`cause`, a Fasten event id). Returns once it is on disk; a second call for the same
    /// type and cause queues nothing more.
    pub async fn send(&self, event_type: &str, cause: &str, data: Value) -> Result<(), StoreError> {
        let event_id = event_id(event_type, cause);
        let now = clock::now_ms();
        let body = json!({
            "id": event_id,
            "type": event_type,
            "timestamp": now / 1000,
            "data": data,
        })
        .to_string();
        let draft = DeliveryDraft {
            received_at_ms: now,
            endpoint: ENDPOINT.to_string(),
            remote_addr: None,
            request_headers: Vec::new(),
            body_bytes: body.len(),
            body: body.clone(),
            body_truncated: false,
            verdict: Verdict::Accepted,
            reason: String::new(),
            response: ResponseLog {
                status: 0,
                headers: Vec::new(),
                body: String::new(),
            },
            event_id: Some(event_id.clone()),
            event_type: Some(event_type.to_string()),
        };
        let event = NewEvent {
            event_id,
            event_type: event_type.to_string(),
            payload: bytes::Bytes::from(body),
        };
        self.store.accept(draft, event, respond).await?;
        Ok(())
    }
}

/// `hookd.export.stored` caused by event `e1` is `hookd.export.stored.e1`: printable, so it
/// can be the `webhook-id` header. Fasten's event ids are UUIDs; anything else is cut to
/// what a header takes.
fn event_id(event_type: &str, cause: &str) -> String {
    let cause: String = cause
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(128)
        .collect();
    format!("{event_type}.{cause}")
}

/// What the delivery log records as hookd's "answer" to its own push event.
fn respond(verdict: Verdict) -> (String, ResponseLog) {
    let reason = match verdict {
        Verdict::Duplicate => "push event already queued",
        _ => "push event queued by hookd",
    };
    let response = ResponseLog {
        status: 200,
        headers: Vec::new(),
        body: json!({ "status": verdict.as_str(), "reason": reason }).to_string(),
    };
    (reason.to_string(), response)
}

/// The admin API paths of one connection and its parts, for push payloads.
pub mod paths {
    /// `/api/connections/{conn}`.
    pub fn connection(conn: &str) -> String {
        format!("/api/connections/{conn}")
    }
    /// `/api/exports/{task}/files/{file}`.
    pub fn file(task: &str, file: &str) -> String {
        format!("/api/exports/{task}/files/{file}")
    }
    /// `/api/connections/{conn}/resources/{type}/{id}`, with the placeholders left in.
    pub fn resource_template(conn: &str) -> String {
        format!("/api/connections/{conn}/resources/{{type}}/{{id}}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_printable_and_follow_their_cause() {
        assert_eq!(
            event_id(EXPORT_STORED, "evt-1"),
            "hookd.export.stored.evt-1"
        );
        assert_eq!(
            event_id(CONNECTION_REVOKED, "a b\n"),
            "hookd.connection.revoked.ab"
        );
    }
}
