//! Read-side queries for the web UI: events by processing state, bulk replay, and
//! deliveries counted per hour and verdict.
//!
//! Kept apart from the ingest path: everything here walks sled's ordered trees newest first
//! and stops after a bounded number of records, handing back a cursor to continue from, so
//! no request scans the whole log however large it has grown.

use super::keys::{self, IndexKind};
use super::{from_json, Event, EventState, Result, Store, Verdict};

/// Filters for [`Store::list_events`]; all that are set must match.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub endpoint: Option<String>,
    pub event_type: Option<String>,
    pub state: Option<EventState>,
    /// Inclusive lower bound on the receive time.
    pub from_ms: Option<u64>,
    /// Inclusive upper bound on the receive time.
    pub to_ms: Option<u64>,
}

impl EventFilter {
    fn matches(&self, e: &Event) -> bool {
        self.endpoint.as_ref().is_none_or(|x| *x == e.endpoint)
            && self.event_type.as_ref().is_none_or(|t| *t == e.event_type)
            && self.state.is_none_or(|s| s == e.state)
    }

    /// The seq range `[lo, hi)` the time bounds allow, narrowed by a cursor.
    fn range(&self, before: Option<u64>) -> (u64, u64) {
        let lo = self.from_ms.map(keys::first_id_at).unwrap_or(0);
        let mut hi = self
            .to_ms
            .map(|t| keys::first_id_at(t.saturating_add(1)))
            .unwrap_or(u64::MAX);
        if let Some(b) = before {
            hi = hi.min(b);
        }
        (lo, hi)
    }
}

/// One page of events, newest first; `next_cursor` continues below the last one examined.
#[derive(Debug)]
pub struct EventPage {
    pub items: Vec<Event>,
    pub next_cursor: Option<u64>,
}

/// Deliveries received in one hour, by verdict (in [`Verdict::ALL`] order).
pub type HourCounts = [u64; 4];

/// Most events one page request examines before it returns a cursor.
const EVENT_SCAN_BUDGET: usize = 5_000;

impl Store {
    /// Events matching `filter`, newest first, with seqs below `before` (the cursor).
    /// Examines at most a bounded number of events; a short page with a cursor means
    /// "continue from there".
    pub fn list_events(
        &self,
        filter: &EventFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<EventPage> {
        let (lo, hi) = filter.range(before);
        let mut items = Vec::new();
        if lo >= hi || limit == 0 {
            return Ok(EventPage {
                items,
                next_cursor: None,
            });
        }
        let range = self
            .events
            .range(keys::u64_key(lo)..keys::u64_key(hi))
            .rev();
        for (scanned, entry) in range.enumerate() {
            let (key, value) = entry?;
            let seq = keys::read_u64(&key).unwrap_or(0);
            if scanned >= EVENT_SCAN_BUDGET {
                return Ok(EventPage {
                    items,
                    next_cursor: Some(seq.saturating_add(1)),
                });
            }
            let event: Event = from_json("events", &value)?;
            if filter.matches(&event) {
                items.push(event);
                if items.len() == limit {
                    return Ok(EventPage {
                        items,
                        next_cursor: Some(seq),
                    });
                }
            }
        }
        Ok(EventPage {
            items,
            next_cursor: None,
        })
    }

    /// Deliveries per hour and verdict for the hours starting at `from_hour` up to and
    /// including `to_hour` (hours since the epoch). Counts index keys only; no record is read.
    pub fn hourly_counts(&self, from_hour: u64, to_hour: u64) -> Result<Vec<HourCounts>> {
        let hours = to_hour.saturating_sub(from_hour) as usize + 1;
        let mut out = vec![[0u64; 4]; hours];
        for (vi, v) in Verdict::ALL.iter().enumerate() {
            let start = keys::index_key(
                IndexKind::Verdict,
                v.as_str(),
                keys::first_id_at(from_hour * 3_600_000),
            );
            let end = keys::index_key(
                IndexKind::Verdict,
                v.as_str(),
                keys::first_id_at((to_hour + 1) * 3_600_000),
            );
            for key in self.delivery_idx.range(start..end).keys() {
                let Some(id) = keys::index_key_id(&key?) else {
                    continue;
                };
                let hour = keys::id_time_ms(id) / 3_600_000;
                if let Some(slot) = hour
                    .checked_sub(from_hour)
                    .and_then(|h| out.get_mut(h as usize))
                {
                    slot[vi] += 1;
                }
            }
        }
        Ok(out)
    }
}

impl EventState {
    /// Parses the API name.
    pub fn parse(text: &str) -> Option<EventState> {
        EventState::ALL.into_iter().find(|s| s.as_str() == text)
    }
}
