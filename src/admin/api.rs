//! The admin API's handlers: deliveries, events, replay, stats and the hourly chart, as
//! JSON (Fasten views in [`super::fasten`]). Successful GET answers carry an ETag, so the UI
//! can poll cheaply for changes.

use super::{Admin, ApiError};
use crate::clock;
use crate::store::{Delivery, DeliveryFilter, EventFilter, EventState, Verdict};
use http::{HeaderValue, Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use warp::Reply;

/// Largest page the list endpoint returns.
const MAX_PAGE: usize = 500;
const DEFAULT_PAGE: usize = 50;

/// How long one list request keeps scanning for matches before it answers with a cursor:
/// within the 100 ms a page should take, however sparse the filter.
const SCAN_TIME: Duration = Duration::from_millis(40);
/// Most events one "replay all" request re-queues; the answer says whether more match.
const MAX_BULK_REPLAY: usize = 10_000;
/// Longest chart the API draws, in hours (90 days).
const MAX_CHART_HOURS: u64 = 90 * 24;

type ApiResult = Result<warp::reply::Response, ApiError>;

/// One API request, as the handlers see it.
pub struct Call<'a> {
    pub method: &'a Method,
    /// The path below `/api/`.
    pub path: &'a str,
    pub query: &'a str,
    pub if_none_match: Option<&'a str>,
}

/// Routes one `/api/...` request.
pub fn handle(admin: &Admin, call: &Call) -> ApiResult {
    let parts: Vec<&str> = call.path.trim_matches('/').split('/').collect();
    let query = call.query;
    if let Some(answer) = super::fasten::handle(admin, call.method, &parts) {
        return answer;
    }
    let value = match (call.method.as_str(), parts.as_slice()) {
        ("GET", ["deliveries"]) => list_deliveries(admin, query)?,
        ("GET", ["deliveries", id]) => delivery(admin, id)?,
        ("GET", ["events"]) => list_events(admin, query)?,
        ("GET", ["events", id]) => event(admin, id, query)?,
        ("POST", ["events", id, "replay"]) => return replay(admin, id, query),
        ("POST", ["replay"]) => return replay_matching(admin, query),
        ("GET", ["stats"]) => stats(admin)?,
        ("GET", ["chart"]) => chart(admin, query)?,
        (
            _,
            ["deliveries"]
            | ["deliveries", _]
            | ["events"]
            | ["events", _]
            | ["events", _, "replay"]
            | ["replay"]
            | ["stats"]
            | ["chart"],
        ) => {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
            ))
        }
        _ => return Err(ApiError::new(StatusCode::NOT_FOUND, "no such API path")),
    };
    Ok(with_etag(&value, call.if_none_match))
}

/// The JSON answer with an ETag of its content; 304 when the client already has it.
fn with_etag(value: &Value, if_none_match: Option<&str>) -> warp::reply::Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let digest = Sha256::digest(&body);
    let tag: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    let etag = format!("\"{tag}\"");
    let mut response =
        if if_none_match.is_some_and(|given| given.split(',').any(|g| g.trim() == etag)) {
            let mut r = warp::reply::Response::new(Vec::<u8>::new().into());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            r
        } else {
            let mut r = warp::reply::Response::new(body.into());
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        };
    if let Ok(v) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(http::header::ETAG, v);
    }
    response
}

fn parse_query(query: &str) -> Result<HashMap<String, String>, ApiError> {
    Ok(form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect())
}

fn number(q: &HashMap<String, String>, key: &str) -> Result<Option<u64>, ApiError> {
    q.get(key)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("`{key}` must be a whole number"),
                )
            })
        })
        .transpose()
}

fn text(q: &HashMap<String, String>, key: &str) -> Option<String> {
    q.get(key).filter(|v| !v.is_empty()).cloned()
}

fn parse_id(id: &str, what: &str) -> Result<u64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, format!("no such {what}")))
}

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
        "event_seq": d.event_seq.map(|s| s.to_string()),
        "latency_us": d.latency_us,
        "state": state,
    }))
}

fn list_deliveries(admin: &Admin, query: &str) -> Result<Value, ApiError> {
    let q = parse_query(query)?;
    if q.get("state").is_some_and(|s| !s.is_empty()) {
        return list_deliveries_by_state(admin, &q);
    }
    let verdict = verdict_param(&q)?;
    let filter = DeliveryFilter {
        endpoint: text(&q, "endpoint"),
        verdict,
        event_type: text(&q, "type"),
        event_id: text(&q, "event_id"),
        from_ms: number(&q, "from")?,
        to_ms: number(&q, "to")?,
    };
    scan_pages(&q, |cursor, wanted| {
        let page = admin.store.list_deliveries(&filter, cursor, wanted)?;
        let items = page
            .items
            .iter()
            .map(|d| summary(admin, d))
            .collect::<Result<_, _>>()?;
        Ok((items, page.next_cursor))
    })
}

/// Answers one list page. The store stops after a bounded scan and returns a cursor; keep
/// asking while the time allows, so a rare match deep in the log is found in one request
/// rather than after many empty pages. `fetch(cursor, wanted)` gives rows and the next cursor.
fn scan_pages(
    q: &HashMap<String, String>,
    mut fetch: impl FnMut(Option<u64>, usize) -> Result<(Vec<Value>, Option<u64>), ApiError>,
) -> Result<Value, ApiError> {
    let limit = page_limit(q)?;
    let deadline = Instant::now() + SCAN_TIME;
    let mut cursor = number(q, "cursor")?;
    let mut items = Vec::new();
    loop {
        let (rows, next) = fetch(cursor, limit - items.len())?;
        items.extend(rows);
        cursor = next;
        if cursor.is_none() || items.len() >= limit || Instant::now() >= deadline {
            break;
        }
    }
    Ok(json!({ "items": items, "next_cursor": cursor.map(|c| c.to_string()) }))
}

fn verdict_param(q: &HashMap<String, String>) -> Result<Option<Verdict>, ApiError> {
    match text(q, "verdict") {
        Some(v) => Ok(Some(Verdict::parse(&v).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "`verdict` must be accepted, duplicate, filtered or rejected",
            )
        })?)),
        None => Ok(None),
    }
}

fn state_param(q: &HashMap<String, String>) -> Result<Option<EventState>, ApiError> {
    match text(q, "state") {
        Some(s) => Ok(Some(EventState::parse(&s).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "`state` must be queued, processing, done, retrying or dead",
            )
        })?)),
        None => Ok(None),
    }
}

fn event_filter(q: &HashMap<String, String>) -> Result<EventFilter, ApiError> {
    Ok(EventFilter {
        endpoint: text(q, "endpoint"),
        event_type: text(q, "type"),
        state: state_param(q)?,
        from_ms: number(q, "from")?,
        to_ms: number(q, "to")?,
    })
}

fn page_limit(q: &HashMap<String, String>) -> Result<usize, ApiError> {
    Ok(number(q, "limit")?.map_or(DEFAULT_PAGE, |n| (n as usize).clamp(1, MAX_PAGE)))
}

/// Deliveries whose event is in a processing state: walks the events (newest first) and
/// shows the delivery that created each. The cursor is then an event seq.
fn list_deliveries_by_state(admin: &Admin, q: &HashMap<String, String>) -> Result<Value, ApiError> {
    let filter = event_filter(q)?;
    let verdict = verdict_param(q)?;
    let event_id = text(q, "event_id");
    scan_pages(q, |cursor, wanted| {
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

/// Events, newest first, filtered by endpoint, type, state and time.
fn list_events(admin: &Admin, query: &str) -> Result<Value, ApiError> {
    let q = parse_query(query)?;
    let filter = event_filter(&q)?;
    scan_pages(&q, |cursor, wanted| {
        let page = admin.store.list_events(&filter, cursor, wanted)?;
        let rows = page
            .items
            .iter()
            .map(|e| serde_json::to_value(e).unwrap_or(Value::Null))
            .collect();
        Ok((rows, page.next_cursor))
    })
}

/// Re-queues every event that matches the filter (dead ones unless `state=done`).
fn replay_matching(admin: &Admin, query: &str) -> ApiResult {
    let q = parse_query(query)?;
    let mut filter = event_filter(&q)?;
    match filter.state {
        None => filter.state = Some(EventState::Dead),
        Some(EventState::Dead | EventState::Done) => {}
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "only dead or done events can be replayed",
            ))
        }
    }
    let now = clock::now_ms();
    let mut cursor = None;
    let mut seqs = Vec::new();
    let more = loop {
        let page = admin
            .store
            .list_events(&filter, cursor, MAX_BULK_REPLAY - seqs.len())?;
        seqs.extend(page.items.iter().map(|e| e.seq));
        match page.next_cursor {
            Some(c) if seqs.len() < MAX_BULK_REPLAY => cursor = Some(c),
            Some(_) => break true,
            None => break false,
        }
    };
    let mut replayed = 0u64;
    for seq in seqs {
        match admin.store.replay(seq, now) {
            Ok(_) => replayed += 1,
            // It moved on since the scan (another replay, or pruned): nothing to do.
            Err(
                crate::store::ReplayError::NotFound | crate::store::ReplayError::NotFinished(_),
            ) => {}
            Err(crate::store::ReplayError::Store(e)) => return Err(e.into()),
        }
    }
    tracing::info!(replayed, "events replayed in bulk by an operator");
    Ok(warp::reply::with_status(
        warp::reply::json(&json!({ "status": "queued", "replayed": replayed, "more": more })),
        StatusCode::ACCEPTED,
    )
    .into_response())
}

/// Deliveries per hour by verdict over the last `hours` hours (default: the retention window).
fn chart(admin: &Admin, query: &str) -> Result<Value, ApiError> {
    let q = parse_query(query)?;
    let hours = number(&q, "hours")?
        .unwrap_or(u64::from(admin.config.retention_days) * 24)
        .clamp(1, MAX_CHART_HOURS);
    let now_hour = clock::now_ms() / 3_600_000;
    let from_hour = now_hour.saturating_sub(hours - 1);
    let mut counts = Vec::with_capacity(hours as usize);
    {
        let mut cache = admin.chart.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|h, _| *h >= from_hour);
        let first_missing = (from_hour..now_hour)
            .find(|h| !cache.contains_key(h))
            .unwrap_or(now_hour);
        let fresh = admin.store.hourly_counts(first_missing, now_hour)?;
        for (i, c) in fresh.iter().enumerate() {
            let h = first_missing + i as u64;
            if h < now_hour {
                cache.insert(h, *c);
            }
        }
        for h in from_hour..=now_hour {
            let c = if h >= first_missing {
                fresh[(h - first_missing) as usize]
            } else {
                cache.get(&h).copied().unwrap_or_default()
            };
            counts.push(json!({
                "hour_ms": h * 3_600_000,
                "accepted": c[0], "duplicate": c[1], "filtered": c[2], "rejected": c[3],
            }));
        }
    }
    Ok(json!({ "from_ms": from_hour * 3_600_000, "hours": counts }))
}

fn delivery(admin: &Admin, id: &str) -> Result<Value, ApiError> {
    let d = admin
        .store
        .delivery(parse_id(id, "delivery")?)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such delivery"))?;
    let event = match d.event_seq {
        Some(seq) => admin.store.event(seq)?,
        None => None,
    };
    let mut value = serde_json::to_value(&d).unwrap_or(Value::Null);
    if let Some(e) = &event {
        if let Some(files) = super::fasten::export_files(admin, e)? {
            value["exports"] = files;
        }
    }
    value["event"] = serde_json::to_value(event).unwrap_or(Value::Null);
    Ok(value)
}

/// Finds an event by its seq, or by the sender's event id (`?endpoint=` narrows it).
fn resolve_event(admin: &Admin, id: &str, query: &str) -> Result<u64, ApiError> {
    let q = parse_query(query)?;
    if let Ok(seq) = id.parse::<u64>() {
        if admin.store.event(seq)?.is_some() {
            return Ok(seq);
        }
    }
    let wanted = text(&q, "endpoint");
    for e in &admin.config.endpoints {
        if wanted.as_ref().is_some_and(|w| *w != e.name) {
            continue;
        }
        if let Some(seq) = admin.store.find_event(&e.name, id)? {
            return Ok(seq);
        }
    }
    Err(ApiError::new(StatusCode::NOT_FOUND, "no such event"))
}

fn event(admin: &Admin, id: &str, query: &str) -> Result<Value, ApiError> {
    let seq = resolve_event(admin, id, query)?;
    let event = admin
        .store
        .event(seq)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such event"))?;
    let attempts = admin.store.attempts(seq)?;
    let payload = admin.store.payload(seq)?.map(|p| {
        serde_json::from_slice::<Value>(&p)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&p).into_owned()))
    });
    let mut value = serde_json::to_value(&event).unwrap_or(Value::Null);
    value["attempts"] = serde_json::to_value(attempts).unwrap_or(Value::Null);
    value["payload"] = payload.unwrap_or(Value::Null);
    Ok(value)
}

fn replay(admin: &Admin, id: &str, query: &str) -> ApiResult {
    let seq = resolve_event(admin, id, query)?;
    match admin.store.replay(seq, clock::now_ms()) {
        Ok(event) => {
            tracing::info!(seq, "event replayed by an operator");
            Ok(warp::reply::with_status(
                warp::reply::json(&json!({ "status": "queued", "event": event })),
                StatusCode::ACCEPTED,
            )
            .into_response())
        }
        Err(crate::store::ReplayError::NotFound) => {
            Err(ApiError::new(StatusCode::NOT_FOUND, "no such event"))
        }
        Err(e @ crate::store::ReplayError::NotFinished(_)) => {
            Err(ApiError::new(StatusCode::CONFLICT, e.to_string()))
        }
        Err(crate::store::ReplayError::Store(e)) => Err(e.into()),
    }
}

fn stats(admin: &Admin) -> Result<Value, ApiError> {
    let stats = admin.store.stats(clock::now_ms())?;
    let mut value = serde_json::to_value(stats).unwrap_or(Value::Null);
    value["retention"] = serde_json::to_value(admin.pruner.status()).unwrap_or(Value::Null);
    value["data_dir_bytes"] = json!(admin.data_dir_bytes());
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_decoded() {
        let q = parse_query("type=patient.ehi_export_success&event_id=a%2Fb+c&x").unwrap();
        assert_eq!(q["type"], "patient.ehi_export_success");
        assert_eq!(q["event_id"], "a/b c");
        assert_eq!(q["x"], "");
    }
}
