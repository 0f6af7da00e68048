//! `GET /api/deliveries` and `GET /api/deliveries/{id}`: the delivery log, newest first,
//! filtered by endpoint, verdict, type, event id, time or the event's processing state, and
//! one delivery in full with its event and stored Fasten export files.

use super::query::{self, Query};
use super::{Admin, ApiError};
use crate::store::{Delivery, DeliveryFilter, Verdict};
use serde_json::{json, Value};

/// A list row: the delivery without headers and body, plus its event's processing state.
fn summary(admin: &Admin, d: &Delivery) -> Result<Value, ApiError> {
    let state = match d.event_seq {
        Some(seq) => admin.store.event(seq)?.map(|e| e.state.as_str()),
        None => None,
    };
    Ok(json!({
        "id": d.id.to_string(),
        "received_at_ms": d.received_at_ms,
        "endpoint": d.endpoint,
        "verdict": d.verdict,
        "reason": d.reason,
        "status": d.response.status,
        "event_id": d.event_id,
        "event_type": d.event_type,
        // A rejected delivery's id and type are what the body claimed: never verified.
        "event_unverified": d.verdict == Verdict::Rejected,
        "event_seq": d.event_seq.map(|s| s.to_string()),
        "latency_us": d.latency_us,
        "state": state,
    }))
}

/// One page of the delivery log.
pub fn list(admin: &Admin, query: &str) -> Result<Value, ApiError> {
    let q = query::parse(query);
    if q.get("state").is_some_and(|s| !s.is_empty()) {
        return list_by_state(admin, &q);
    }
    let filter = DeliveryFilter {
        endpoint: query::text(&q, "endpoint"),
        verdict: query::verdict(&q)?,
        event_type: query::text(&q, "type"),
        event_id: query::text(&q, "event_id"),
        from_ms: query::number(&q, "from")?,
        to_ms: query::number(&q, "to")?,
    };
    query::scan_pages(&q, |cursor, wanted| {
        let page = admin.store.list_deliveries(&filter, cursor, wanted)?;
        let items = page
            .items
            .iter()
            .map(|d| summary(admin, d))
            .collect::<Result<_, _>>()?;
        Ok((items, page.next_cursor))
    })
}

/// Deliveries whose event is in a processing state: walks the events (newest first) and
/// shows the delivery that created each. The cursor is then an event seq.
fn list_by_state(admin: &Admin, q: &Query) -> Result<Value, ApiError> {
    let filter = query::event_filter(q)?;
    let verdict = query::verdict(q)?;
    let event_id = query::text(q, "event_id");
    query::scan_pages(q, |cursor, wanted| {
        let page = admin.store.list_events(&filter, cursor, wanted)?;
        let mut rows = Vec::new();
        for e in &page.items {
            if event_id.as_ref().is_some_and(|id| *id != e.event_id) {
                continue;
            }
            if let Some(d) = admin.store.delivery(e.delivery_id)? {
                if verdict.is_none_or(|v| v == d.verdict) {
                    rows.push(summary(admin, &d)?);
                }
            }
        }
        Ok((rows, page.next_cursor))
    })
}

/// One delivery in full: headers, body, response, its event, and any stored export files.
pub fn one(admin: &Admin, id: &str) -> Result<Value, ApiError> {
    let d = admin
        .store
        .delivery(query::parse_id(id, "delivery")?)?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    let event = match d.event_seq {
        Some(seq) => admin.store.event(seq)?,
        None => None,
    };
    let mut value = serde_json::to_value(&d).unwrap_or(Value::Null);
    value["event_unverified"] = (d.verdict == Verdict::Rejected).into();
    if let Some(e) = &event {
        if let Some(files) = super::fasten::export_files(admin, e)? {
            value["exports"] = files;
        }
    }
    value["event"] = serde_json::to_value(event).unwrap_or(Value::Null);
    Ok(value)
}
