//! `GET /api/errors`: the last errors of matching events (dead ones by default), grouped by
//! their exact text with a count, so a hundred events failing for one reason read as one
//! line and the odd different failure is not lost among them.

use super::query;
use super::{Admin, ApiError};
use crate::store::EventState;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// Most events one request reads; the answer says whether it saw them all.
const MAX_EVENTS: usize = 10_000;
/// How long one request keeps reading: a log where dead events are sparse is not walked
/// to its end on every look at the queue page.
const SCAN_TIME: Duration = Duration::from_millis(150);
/// Most groups returned, largest first.
const MAX_GROUPS: usize = 50;

#[derive(Default)]
struct Group {
    count: u64,
    endpoints: BTreeSet<String>,
    latest_ms: u64,
    /// The newest event with this error, to open.
    example: Option<(String, String)>,
}

/// `{"groups": [{"error", "count", "endpoints", "latest_ms", "example_event_id",
/// "example_delivery_id"}], "distinct": n, "events": n, "complete": bool}`: `complete` is
/// false when the events read were not all that match; `state=` (default `dead`),
/// `endpoint=`, `type=`, `from=`, `to=` filter as in `/api/events`.
pub fn grouped(admin: &Admin, query: &str) -> Result<Value, ApiError> {
    let q = query::parse(query);
    let mut filter = query::event_filter(&q)?;
    filter.state.get_or_insert(EventState::Dead);
    let mut groups: HashMap<String, Group> = HashMap::new();
    let mut seen = 0usize;
    let mut cursor = None;
    let deadline = Instant::now() + SCAN_TIME;
    let complete = loop {
        let page = admin
            .store
            .list_events(&filter, cursor, MAX_EVENTS - seen)?;
        seen += page.items.len();
        for e in page.items {
            let Some(error) = e.last_error else { continue };
            let g = groups.entry(error).or_default();
            g.count += 1;
            g.endpoints.insert(e.endpoint);
            // Newest first: the first one seen is the latest.
            if g.example.is_none() {
                g.latest_ms = e.received_at_ms;
                g.example = Some((e.event_id, e.delivery_id.to_string()));
            }
        }
        match page.next_cursor {
            Some(c) if seen < MAX_EVENTS && Instant::now() < deadline => cursor = Some(c),
            Some(_) => break false,
            None => break true,
        }
    };
    let mut groups: Vec<(String, Group)> = groups.into_iter().collect();
    groups.sort_by(|a, b| {
        b.1.count
            .cmp(&a.1.count)
            .then(b.1.latest_ms.cmp(&a.1.latest_ms))
    });
    let total_groups = groups.len();
    let items: Vec<Value> = groups
        .into_iter()
        .take(MAX_GROUPS)
        .map(|(error, g)| {
            let (event_id, delivery_id) = g.example.unwrap_or_default();
            json!({
                "error": error,
                "count": g.count,
                "endpoints": g.endpoints,
                "latest_ms": g.latest_ms,
                "example_event_id": event_id,
                "example_delivery_id": delivery_id,
            })
        })
        .collect();
    Ok(json!({
        "groups": items,
        "distinct": total_groups,
        "events": seen,
        "complete": complete,
    }))
}
