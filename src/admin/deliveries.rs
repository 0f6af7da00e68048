//! `GET /api/deliveries` and `GET /api/deliveries/{id}`: the delivery log, newest first,
//! filtered by endpoint, verdict, type (or type prefix), event id, time, text in the body or
//! the event's processing state, with a count of the matches when asked; and one delivery in
//! full with its event, its whole payload when the log kept only the start (or why it has
//! none), the original of a duplicate, and the Fasten export it announced: its stored files,
//! or what became of it.

use super::query::{self, Query};
use super::{Admin, ApiError};
use crate::store::{Count, Delivery, DeliveryFilter, Event, Verdict};
use serde_json::{json, Value};

/// A list row: the delivery without headers and body, plus its event's processing state.
/// A duplicate's event is its original's, so a duplicate gets no state of its own but the
/// original it repeated instead.
fn summary(admin: &Admin, d: &Delivery) -> Result<Value, ApiError> {
    let original = original(admin, d)?;
    let state = match d.event_seq {
        Some(seq) if d.verdict != Verdict::Duplicate => {
            admin.store.event(seq)?.map(|e| e.state.as_str())
        }
        _ => None,
    };
    let mut row = json!({
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
    });
    row.as_object_mut()
        .expect("a row is an object")
        .extend(original);
    Ok(row)
}

/// `original_delivery_id` and `body_differs` of a duplicate whose original is still stored.
fn original(admin: &Admin, d: &Delivery) -> Result<serde_json::Map<String, Value>, ApiError> {
    let mut fields = serde_json::Map::new();
    if d.verdict == Verdict::Duplicate {
        if let Some(o) = admin.store.original(d.id)? {
            fields.insert(
                "original_delivery_id".into(),
                o.delivery_id.to_string().into(),
            );
            fields.insert("body_differs".into(), o.body_differs.into());
        }
    }
    Ok(fields)
}

/// `"total": {"count": n, "exact": bool}` when the query asks for it (`total=1`): the
/// first page asks, the live refresh does not.
fn with_total(
    mut page: Value,
    q: &Query,
    count: impl FnOnce() -> Result<Count, ApiError>,
) -> Result<Value, ApiError> {
    if q.get("total").is_some_and(|t| t == "1" || t == "true") {
        let c = count()?;
        page["total"] = json!({ "count": c.n, "exact": c.exact });
    }
    Ok(page)
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
        body_contains: query::text(&q, "q"),
    };
    let page = query::scan_pages(&q, |cursor, wanted| {
        let page = admin.store.list_deliveries(&filter, cursor, wanted)?;
        let items = page
            .items
            .iter()
            .map(|d| summary(admin, d))
            .collect::<Result<_, _>>()?;
        Ok((items, page.next_cursor))
    })?;
    with_total(page, &q, || Ok(admin.store.count_deliveries(&filter)?))
}

/// Deliveries whose event is in a processing state: walks the events (newest first) and
/// shows the delivery that created each. The cursor is then an event seq.
fn list_by_state(admin: &Admin, q: &Query) -> Result<Value, ApiError> {
    let filter = query::event_filter(q)?;
    let verdict = query::verdict(q)?;
    let event_id = query::text(q, "event_id");
    let matches = |e: &Event, d: &Delivery| {
        event_id.as_ref().is_none_or(|id| *id == e.event_id)
            && verdict.is_none_or(|v| v == d.verdict)
    };
    if query::text(q, "q").is_some() {
        return Err(ApiError::bad_request(
            "`q` (search in bodies) cannot be combined with `state`",
        ));
    }
    let page = query::scan_pages(q, |cursor, wanted| {
        let page = admin.store.list_events(&filter, cursor, wanted)?;
        let mut rows = Vec::new();
        for e in &page.items {
            if let Some(d) = admin.store.delivery(e.delivery_id)? {
                if matches(e, &d) {
                    rows.push(summary(admin, &d)?);
                }
            }
        }
        Ok((rows, page.next_cursor))
    })?;
    // Counted by walking the events, as far as one page's scan goes.
    with_total(page, q, || {
        let mut n = 0;
        let mut cursor = None;
        loop {
            let page = admin.store.list_events(&filter, cursor, usize::MAX)?;
            for e in &page.items {
                if event_id.is_none() && verdict.is_none() {
                    n += 1;
                } else if let Some(d) = admin.store.delivery(e.delivery_id)? {
                    n += u64::from(matches(e, &d));
                }
            }
            match page.next_cursor {
                None => return Ok(Count { n, exact: true }),
                Some(_) if cursor.is_some() => return Ok(Count { n, exact: false }),
                next => cursor = next,
            }
        }
    })
}

/// One delivery in full: headers, body, response, its event, and any Fasten export.
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
    // A request refused before its body was read has none: say so, rather than 0 bytes.
    if d.verdict == Verdict::Rejected && d.body_bytes == 0 {
        if let Some(why) = crate::receive::body_not_read(&d.reason) {
            value["body_not_read"] = why.into();
        }
    }
    if let Some(fields) = value.as_object_mut() {
        fields.extend(original(admin, &d)?);
    }
    if d.body_truncated {
        if let Some(payload) = admin.store.full_body(d.id)? {
            value["full_body"] = String::from_utf8_lossy(&payload).into();
        }
    }
    if let Some(e) = &event {
        if let Some(export) = super::fasten::export_of(admin, e)? {
            value["export"] = export.summary;
            if let Some(files) = export.files {
                value["exports"] = files;
            }
        }
    }
    value["event"] = serde_json::to_value(event).unwrap_or(Value::Null);
    Ok(value)
}
