//! The admin API's handlers: deliveries, events, replay and stats, as JSON (Fasten views in
//! [`super::fasten`]).

use super::{Admin, ApiError};
use crate::clock;
use crate::store::{Delivery, DeliveryFilter, Verdict};
use http::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use warp::Reply;

/// Largest page the list endpoint returns.
const MAX_PAGE: usize = 500;
const DEFAULT_PAGE: usize = 50;

type ApiResult = Result<warp::reply::Response, ApiError>;

/// Routes one `/api/...` request.
pub fn handle(admin: &Admin, method: &Method, path: &str, query: &str) -> ApiResult {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    if let Some(answer) = super::fasten::handle(admin, method, &parts) {
        return answer;
    }
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["deliveries"]) => list_deliveries(admin, query),
        ("GET", ["deliveries", id]) => delivery(admin, id),
        ("GET", ["events", id]) => event(admin, id, query),
        ("POST", ["events", id, "replay"]) => replay(admin, id, query),
        ("GET", ["stats"]) => stats(admin),
        (
            _,
            ["deliveries"]
            | ["deliveries", _]
            | ["events", _]
            | ["events", _, "replay"]
            | ["stats"],
        ) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
        )),
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, "no such API path")),
    }
}

fn ok(value: &Value) -> ApiResult {
    Ok(warp::reply::json(value).into_response())
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

fn list_deliveries(admin: &Admin, query: &str) -> ApiResult {
    let q = parse_query(query)?;
    let verdict = match text(&q, "verdict") {
        Some(v) => Some(Verdict::parse(&v).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "`verdict` must be accepted, duplicate, filtered or rejected",
            )
        })?),
        None => None,
    };
    let filter = DeliveryFilter {
        endpoint: text(&q, "endpoint"),
        verdict,
        event_type: text(&q, "type"),
        event_id: text(&q, "event_id"),
        from_ms: number(&q, "from")?,
        to_ms: number(&q, "to")?,
    };
    let limit = number(&q, "limit")?.map_or(DEFAULT_PAGE, |n| (n as usize).clamp(1, MAX_PAGE));
    let page = admin
        .store
        .list_deliveries(&filter, number(&q, "cursor")?, limit)?;
    let items = page
        .items
        .iter()
        .map(|d| summary(admin, d))
        .collect::<Result<Vec<_>, _>>()?;
    ok(&json!({ "items": items, "next_cursor": page.next_cursor.map(|c| c.to_string()) }))
}

fn delivery(admin: &Admin, id: &str) -> ApiResult {
    let d = admin
        .store
        .delivery(parse_id(id, "delivery")?)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such delivery"))?;
    let event = match d.event_seq {
        Some(seq) => admin.store.event(seq)?,
        None => None,
    };
    let mut value = serde_json::to_value(&d).unwrap_or(Value::Null);
    value["event"] = serde_json::to_value(event).unwrap_or(Value::Null);
    ok(&value)
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

fn event(admin: &Admin, id: &str, query: &str) -> ApiResult {
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
    ok(&value)
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

fn stats(admin: &Admin) -> ApiResult {
    let stats = admin.store.stats(clock::now_ms())?;
    let mut value = serde_json::to_value(stats).unwrap_or(Value::Null);
    value["retention"] = serde_json::to_value(admin.pruner.status()).unwrap_or(Value::Null);
    value["data_dir_bytes"] = json!(crate::store::backup::dir_size(&admin.config.data_dir));
    ok(&value)
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
