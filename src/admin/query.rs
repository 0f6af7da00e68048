//! Query strings of the admin API: decoding, typed parameters (numbers, verdicts, states,
//! the event filter) with errors that name the parameter, and the time-bounded paging loop
//! the list endpoints share.

use super::ApiError;
use crate::store::{EventFilter, EventState, Verdict};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Largest page the list endpoints return.
const MAX_PAGE: usize = 500;
const DEFAULT_PAGE: usize = 50;
/// How long one list request keeps scanning for matches before it answers with a cursor:
/// within the 100 ms a page should take, however sparse the filter.
const SCAN_TIME: Duration = Duration::from_millis(40);

/// A decoded query string.
pub type Query = HashMap<String, String>;

/// Decodes `a=1&b=x%20y`.
pub fn parse(query: &str) -> Query {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A whole-number parameter; absent or empty is `None`.
pub fn number(q: &Query, key: &str) -> Result<Option<u64>, ApiError> {
    q.get(key)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("`{key}` must be a whole number")))
        })
        .transpose()
}

/// A text parameter; absent or empty is `None`.
pub fn text(q: &Query, key: &str) -> Option<String> {
    q.get(key).filter(|v| !v.is_empty()).cloned()
}

/// A numeric id from the path; anything else names nothing (404).
pub fn parse_id(id: &str, what: &str) -> Result<u64, ApiError> {
    id.parse().map_err(|_| ApiError::not_found(what))
}

/// `verdict=`.
pub fn verdict(q: &Query) -> Result<Option<Verdict>, ApiError> {
    text(q, "verdict")
        .map(|v| {
            Verdict::parse(&v).ok_or_else(|| {
                ApiError::bad_request("`verdict` must be accepted, duplicate, filtered or rejected")
            })
        })
        .transpose()
}

/// `state=`.
pub fn state(q: &Query) -> Result<Option<EventState>, ApiError> {
    text(q, "state")
        .map(|s| {
            EventState::parse(&s).ok_or_else(|| {
                ApiError::bad_request("`state` must be queued, processing, done, retrying or dead")
            })
        })
        .transpose()
}

/// `endpoint=`, `type=`, `state=`, `from=` and `to=` as an event filter.
pub fn event_filter(q: &Query) -> Result<EventFilter, ApiError> {
    Ok(EventFilter {
        endpoint: text(q, "endpoint"),
        event_type: text(q, "type"),
        state: state(q)?,
        from_ms: number(q, "from")?,
        to_ms: number(q, "to")?,
    })
}

fn page_limit(q: &Query) -> Result<usize, ApiError> {
    Ok(number(q, "limit")?.map_or(DEFAULT_PAGE, |n| (n as usize).clamp(1, MAX_PAGE)))
}

/// Answers one list page. The store stops after a bounded scan and returns a cursor; keep
/// asking while the time allows, so a rare match deep in the log is found in one request
/// rather than after many empty pages. `fetch(cursor, wanted)` gives rows and the next cursor.
pub fn scan_pages(
    q: &Query,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_decoded() {
        let q = parse("type=patient.ehi_export_success&event_id=a%2Fb+c&x");
        assert_eq!(q["type"], "patient.ehi_export_success");
        assert_eq!(q["event_id"], "a/b c");
        assert_eq!(q["x"], "");
    }

    #[test]
    fn bad_parameters_are_named() {
        let q = parse("limit=many&verdict=maybe&state=sleepy");
        assert!(number(&q, "limit").unwrap_err().reason.contains("`limit`"));
        assert!(verdict(&q).unwrap_err().reason.contains("`verdict`"));
        assert!(state(&q).unwrap_err().reason.contains("`state`"));
        assert_eq!(number(&parse("limit="), "limit").unwrap(), None);
    }
}
