//! `/api/events`: events newest first, one event with its attempts and payload (by seq or
//! by the sender's event id), and replays, one at a time or every matching event in bulk.
//!
//! Replaying a `done` event of a `forward` endpoint POSTs it to production again, so it
//! needs `confirm=true`; without it the answer is a 409 that says so. Dead events, and
//! endpoints that only record or download, replay without asking.

use super::query;
use super::{Admin, ApiError};
use crate::clock;
use crate::config::ProcessorConfig;
use crate::store::{Event, EventState, ReplayError};
use http::StatusCode;
use serde_json::{json, Value};
use warp::Reply;

/// Most events one "replay all" request re-queues; the answer says whether more match.
const MAX_BULK_REPLAY: usize = 10_000;

/// Events, newest first, filtered by endpoint, type, state and time.
pub fn list(admin: &Admin, query: &str) -> Result<Value, ApiError> {
    let q = query::parse(query);
    let filter = query::event_filter(&q)?;
    query::scan_pages(&q, |cursor, wanted| {
        let page = admin.store.list_events(&filter, cursor, wanted)?;
        let rows = page
            .items
            .iter()
            .map(|e| serde_json::to_value(e).unwrap_or(Value::Null))
            .collect();
        Ok((rows, page.next_cursor))
    })
}

/// Finds an event by its seq, or by the sender's event id (`?endpoint=` narrows it).
fn resolve(admin: &Admin, id: &str, query: &str) -> Result<u64, ApiError> {
    if let Ok(seq) = id.parse::<u64>() {
        if admin.store.event(seq)?.is_some() {
            return Ok(seq);
        }
    }
    let wanted = query::text(&query::parse(query), "endpoint");
    let push = admin
        .config
        .push
        .as_ref()
        .map(|_| crate::process::push::ENDPOINT);
    let names = admin.config.endpoints.iter().map(|e| e.name.as_str());
    for name in names.chain(push) {
        if wanted.as_ref().is_some_and(|w| *w != name) {
            continue;
        }
        if let Some(seq) = admin.store.find_event(name, id)? {
            return Ok(seq);
        }
    }
    Err(ApiError::not_found("event"))
}

/// One event with its attempts and its payload (as JSON when it parses, else as text).
pub fn one(admin: &Admin, id: &str, query: &str) -> Result<Value, ApiError> {
    let seq = resolve(admin, id, query)?;
    let event = admin
        .store
        .event(seq)?
        .ok_or_else(|| ApiError::not_found("event"))?;
    let attempts = admin.store.attempts(seq)?;
    let payload = admin.store.payload(seq)?.map(|p| {
        serde_json::from_slice::<Value>(&p)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&p).into_owned()))
    });
    let mut value = serde_json::to_value(&event).unwrap_or(Value::Null);
    value["attempts"] = serde_json::to_value(attempts).unwrap_or(Value::Null);
    // In cluster mode each attempt also names the instance that made it.
    let instances: std::collections::HashMap<u32, String> =
        admin.store.attempt_instances(seq)?.into_iter().collect();
    if let Some(list) = value["attempts"].as_array_mut() {
        for a in list {
            let number = a["number"].as_u64().unwrap_or(0) as u32;
            if let Some(instance) = instances.get(&number) {
                a["instance"] = Value::String(instance.clone());
            }
        }
    }
    value["payload"] = payload.unwrap_or(Value::Null);
    Ok(value)
}

fn accepted(body: Value) -> warp::reply::Response {
    warp::reply::with_status(warp::reply::json(&body), StatusCode::ACCEPTED).into_response()
}

/// Queues a done or dead event again: 202.
pub fn replay(admin: &Admin, id: &str, query: &str) -> Result<warp::reply::Response, ApiError> {
    let seq = resolve(admin, id, query)?;
    if !confirmed(&query::parse(query)) {
        if let Some(done) = admin.store.event(seq)?.filter(|e| delivered(admin, e)) {
            return Err(ApiError::needs_confirm(format!(
                "event {} was already forwarded by endpoint `{}`: replaying it POSTs it to \
                 the forward URL again; repeat with confirm=true to do so",
                done.event_id, done.endpoint
            )));
        }
    }
    let event = admin.store.replay(seq, clock::now_ms())?;
    tracing::info!(seq, "event replayed by an operator");
    Ok(accepted(json!({ "status": "queued", "event": event })))
}

/// Re-queues every event that matches the filter (dead ones unless `state=done`).
pub fn replay_matching(admin: &Admin, query: &str) -> Result<warp::reply::Response, ApiError> {
    let q = query::parse(query);
    let mut filter = query::event_filter(&q)?;
    match filter.state {
        None => filter.state = Some(EventState::Dead),
        Some(EventState::Dead | EventState::Done) => {}
        Some(_) => {
            return Err(ApiError::bad_request(
                "only dead or done events can be replayed",
            ))
        }
    }
    let now = clock::now_ms();
    let mut cursor = None;
    let mut seqs = Vec::new();
    let mut forwarded = std::collections::BTreeSet::new();
    let more = loop {
        let page = admin
            .store
            .list_events(&filter, cursor, MAX_BULK_REPLAY - seqs.len())?;
        forwarded.extend(
            page.items
                .iter()
                .filter(|e| delivered(admin, e))
                .map(|e| e.endpoint.clone()),
        );
        seqs.extend(page.items.iter().map(|e| e.seq));
        match page.next_cursor {
            Some(c) if seqs.len() < MAX_BULK_REPLAY => cursor = Some(c),
            Some(_) => break true,
            None => break false,
        }
    };
    if !forwarded.is_empty() && !confirmed(&q) {
        let names: Vec<String> = forwarded.iter().map(|n| format!("`{n}`")).collect();
        return Err(ApiError::needs_confirm(format!(
            "matching events were already forwarded by {}: replaying them POSTs them to the \
             forward URL again; repeat with confirm=true to do so",
            names.join(", ")
        )));
    }
    let mut replayed = 0u64;
    for seq in seqs {
        match admin.store.replay(seq, now) {
            Ok(_) => replayed += 1,
            // It moved on since the scan (another replay, or pruned): nothing to do.
            Err(ReplayError::NotFound | ReplayError::NotFinished(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    tracing::info!(replayed, "events replayed in bulk by an operator");
    Ok(accepted(
        json!({ "status": "queued", "replayed": replayed, "more": more }),
    ))
}

/// Whether the request says `confirm=true`.
fn confirmed(q: &query::Query) -> bool {
    query::text(q, "confirm").is_some_and(|v| v == "true")
}

/// Whether replaying `event` would POST it to a forward URL that already took it.
fn delivered(admin: &Admin, event: &Event) -> bool {
    // A push event is forwarded to `[push] url` like a forward endpoint's.
    let pushed = admin.config.push.is_some() && event.endpoint == crate::process::push::ENDPOINT;
    event.state == EventState::Done
        && (pushed
            || admin.config.endpoints.iter().any(|e| {
                e.name == event.endpoint && matches!(e.processor, ProcessorConfig::Forward { .. })
            }))
}
