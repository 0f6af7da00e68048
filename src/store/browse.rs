//! Read-side queries for the web UI and the admin API: one delivery, event or payload;
//! deliveries and events by filter; deliveries counted per hour and verdict.
//!
//! Everything here walks sled's ordered keys newest first and stops after a bounded number
//! of records, handing back a cursor to continue from, so no request scans the whole log
//! however large it has grown. A filter walks the most selective index that applies; the
//! deliveries the indexer has not reached yet (the last second or so) are filtered directly.

use super::chunks;
use super::codec::{self, BodyRec, DeliveryRec, EventRec, StatusRec};
use super::keys::{self, IndexKind};
use super::model::{Attempt, Delivery, Event, EventState, Verdict};
use super::{tx, Db, Result, SledStore, StoreError};
use std::sync::atomic::Ordering;

/// Filters for [`Store::list_deliveries`]; all that are set must match.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub endpoint: Option<String>,
    pub verdict: Option<Verdict>,
    /// An event type, or a prefix of one when it ends in `.` or `*` (see [`type_matches`]).
    pub event_type: Option<String>,
    pub event_id: Option<String>,
    /// Inclusive lower bound on the receive time.
    pub from_ms: Option<u64>,
    /// Inclusive upper bound on the receive time.
    pub to_ms: Option<u64>,
    /// Text the body must contain (ASCII case ignored); a stored event's whole payload is
    /// searched, not only the logged part.
    pub body_contains: Option<String>,
}

impl DeliveryFilter {
    /// Whether the delivery record matches; the body search is left to the store.
    pub(super) fn matches(&self, d: &DeliveryRec) -> bool {
        self.endpoint.as_ref().is_none_or(|e| *e == d.endpoint)
            && self.verdict.is_none_or(|v| v == d.verdict)
            && self
                .event_type
                .as_ref()
                .is_none_or(|t| d.event_type.as_ref().is_some_and(|d| type_matches(t, d)))
            && self
                .event_id
                .as_ref()
                .is_none_or(|i| Some(i) == d.event_id.as_ref())
    }

    /// How many conditions the filter sets (time bounds aside: they are key ranges).
    pub(super) fn conditions(&self) -> usize {
        [
            self.endpoint.is_some(),
            self.verdict.is_some(),
            self.event_type.is_some(),
            self.event_id.is_some(),
            self.body_contains.is_some(),
        ]
        .into_iter()
        .filter(|set| *set)
        .count()
    }
}

/// Whether `event_type` matches `pattern`: the same type, or, when the pattern ends in `*`
/// or `.`, any type starting with it (`patient.` and `patient.*` match every patient event).
pub fn type_matches(pattern: &str, event_type: &str) -> bool {
    match type_prefix(pattern) {
        Some(prefix) => event_type.starts_with(prefix),
        None => pattern == event_type,
    }
}

/// The prefix a type pattern stands for, or `None` for an exact type.
pub(super) fn type_prefix(pattern: &str) -> Option<&str> {
    if let Some(prefix) = pattern.strip_suffix('*') {
        Some(prefix)
    } else if pattern.ends_with('.') {
        Some(pattern)
    } else {
        None
    }
}

/// One page of deliveries, newest first; `next_cursor` continues below the last one seen.
#[derive(Debug)]
pub struct DeliveryPage {
    pub items: Vec<Delivery>,
    pub next_cursor: Option<u64>,
}

/// Filters for [`Store::list_events`]; all that are set must match.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub endpoint: Option<String>,
    /// An event type, or a prefix of one when it ends in `.` or `*` (see [`type_matches`]).
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
            && self
                .event_type
                .as_ref()
                .is_none_or(|t| type_matches(t, &e.event_type))
            && self.state.is_none_or(|s| s == e.state)
    }
}

/// The id range `[lo, hi)` that time bounds allow, narrowed by a cursor.
pub(super) fn id_bounds(
    from_ms: Option<u64>,
    to_ms: Option<u64>,
    before: Option<u64>,
) -> (u64, u64) {
    let lo = from_ms.map(keys::first_id_at).unwrap_or(0);
    let mut hi = to_ms
        .map(|t| keys::first_id_at(t.saturating_add(1)))
        .unwrap_or(u64::MAX);
    if let Some(b) = before {
        hi = hi.min(b);
    }
    (lo, hi)
}

/// One page of events, newest first; `next_cursor` continues below the last one examined.
#[derive(Debug)]
pub struct EventPage {
    pub items: Vec<Event>,
    pub next_cursor: Option<u64>,
}

/// Deliveries received in one hour (or another span), by verdict (in [`Verdict::ALL`] order).
pub type HourCounts = [u64; 4];

/// Most records one list request examines before it returns a cursor to continue from,
/// so that a filter matching almost nothing cannot make one request scan the whole log.
pub(super) const SCAN_BUDGET: usize = 5_000;
/// The same for a search in bodies, where each record examined may also read its event's
/// payload.
pub(super) const BODY_SCAN_BUDGET: usize = 1_000;

impl SledStore {
    pub(super) fn delivery_rec(&self, id: u64) -> Result<Option<DeliveryRec>> {
        match self
            .shared
            .h()?
            .log
            .get(keys::id_key(keys::DELIVERY, id))
            .db()?
        {
            Some(bytes) => Ok(Some(codec::decode_delivery(
                &format!("delivery {id}"),
                &bytes,
            )?)),
            None => Ok(None),
        }
    }

    /// The API's view of a stored delivery: its body and latency filled in.
    fn to_delivery(&self, id: u64, d: DeliveryRec) -> Result<Delivery> {
        let body = match &d.body {
            BodyRec::Inline(text) => text.clone(),
            BodyRec::Payload(len) => match d.event_seq.map(|seq| self.payload(seq)).transpose()? {
                Some(Some(p)) => {
                    String::from_utf8_lossy(&p[..(*len as usize).min(p.len())]).into_owned()
                }
                _ => String::new(),
            },
        };
        let pending = self
            .shared
            .latencies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .copied();
        let latency_us = match pending {
            Some(us) => Some(us),
            None => chunks::latency(&self.shared.h()?.log, d.verdict.as_str(), id)?,
        };
        Ok(Delivery {
            id,
            received_at_ms: d.received_at_ms,
            endpoint: d.endpoint,
            remote_addr: d.remote_addr,
            request_headers: d.request_headers,
            body,
            body_bytes: d.body_bytes as usize,
            body_truncated: d.body_truncated,
            verdict: d.verdict,
            reason: d.reason,
            response: d.response,
            event_id: d.event_id,
            event_type: d.event_type,
            event_seq: d.event_seq,
            latency_us,
        })
    }

    /// One delivery by id.
    pub fn delivery(&self, id: u64) -> Result<Option<Delivery>> {
        match self.delivery_rec(id)? {
            Some(d) => Ok(Some(self.to_delivery(id, d)?)),
            None => Ok(None),
        }
    }

    /// Deliveries matching `filter`, newest first, with ids below `before` (the cursor).
    pub fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<DeliveryPage> {
        let mut page = DeliveryPage {
            items: Vec::new(),
            next_cursor: None,
        };
        if limit == 0 {
            return Ok(page);
        }
        let budget = match filter.body_contains {
            Some(_) => BODY_SCAN_BUDGET,
            None => SCAN_BUDGET,
        };
        for (scanned, item) in self.delivery_ids(filter, before)?.enumerate() {
            let (id, _) = item?;
            if scanned >= budget {
                page.next_cursor = Some(id.saturating_add(1));
                return Ok(page);
            }
            if let Some(d) = self.delivery_rec(id)? {
                if self.delivery_matches(filter, &d)? {
                    page.items.push(self.to_delivery(id, d)?);
                    if page.items.len() == limit {
                        page.next_cursor = Some(id);
                        return Ok(page);
                    }
                }
            }
        }
        Ok(page)
    }

    /// One event by its seq.
    pub fn event(&self, seq: u64) -> Result<Option<Event>> {
        let h = self.shared.h()?;
        match tx::event_bytes(&tx::Tx::new(&h.log), seq)? {
            Some(bytes) => self.event_from(seq, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// An event from its stored record and status. An unreadable record still shows, with
    /// what its status says (a claim sent it to `dead`, with the reason).
    fn event_from(&self, seq: u64, bytes: &[u8]) -> Result<Event> {
        let h = self.shared.h()?;
        let tx = tx::Tx::new(&h.log);
        let rec = match codec::decode_event_at(seq, bytes) {
            Ok((rec, _)) => rec,
            Err(e) => EventRec {
                endpoint: String::new(),
                event_id: format!("(unreadable event {seq})"),
                event_type: String::new(),
                received_at_ms: keys::id_time_ms(seq),
                delivery_id: 0,
            }
            .with_status_or(e, tx::status_of(&tx, seq, 0))?,
        };
        let status = tx::status_of(&tx, seq, rec.received_at_ms)?;
        Ok(tx::to_event(seq, rec, status))
    }

    /// The stored body of an event.
    pub fn payload(&self, seq: u64) -> Result<Option<bytes::Bytes>> {
        let h = self.shared.h()?;
        let tx = tx::Tx::new(&h.log);
        Ok(tx::event_of(&tx, seq)?.map(|(_, payload)| payload))
    }

    /// Every attempt of an event, in order.
    pub fn attempts(&self, seq: u64) -> Result<Vec<Attempt>> {
        let mut prefix = vec![keys::ATTEMPT];
        prefix.extend_from_slice(&keys::u64_bytes(seq));
        self.shared
            .h()?
            .log
            .scan_prefix(prefix)
            .values()
            .map(|v| codec::decode_attempt(&format!("attempt of event {seq}"), &v.db()?))
            .collect()
    }

    /// The seq of the event accepted on `endpoint` with this event id.
    pub fn find_event(&self, endpoint: &str, event_id: &str) -> Result<Option<u64>> {
        Ok(self
            .shared
            .h()?
            .log
            .get(keys::dedup_key(endpoint, event_id))
            .db()?
            .and_then(|v| keys::read_u64(&v)))
    }

    /// Events matching `filter`, newest first, with seqs below `before` (the cursor).
    /// Examines at most a bounded number of events; a short page with a cursor means
    /// "continue from there".
    pub fn list_events(
        &self,
        filter: &EventFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<EventPage> {
        let (lo, hi) = id_bounds(filter.from_ms, filter.to_ms, before);
        let mut page = EventPage {
            items: Vec::new(),
            next_cursor: None,
        };
        if lo >= hi || limit == 0 {
            return Ok(page);
        }
        let log = &self.shared.h()?.log;
        // Events are in their accepted delivery's record (format 4), or in records of their
        // own (older formats): both ranges, merged newest first.
        let tagged = |kind: u8, wanted: fn(&[u8]) -> bool| {
            log.range(keys::id_range(kind, lo, hi))
                .rev()
                .map(move |item| {
                    let (key, value) = item.db()?;
                    let seq = keys::key_id(&key).unwrap_or(0);
                    Ok((seq, wanted(&value).then_some(value)))
                })
        };
        let range = newest_first(
            tagged(keys::DELIVERY, codec::carries_event),
            tagged(keys::EVENT, |_| true),
        );
        // The budget counts events read; stepping over a delivery that holds none is a look
        // at one byte, and those are bounded apart (four budgets' worth).
        let (mut read, mut stepped) = (0, 0);
        for entry in range {
            let (seq, value) = entry?;
            if read >= SCAN_BUDGET || stepped >= 4 * SCAN_BUDGET {
                page.next_cursor = Some(seq.saturating_add(1));
                return Ok(page);
            }
            let Some(value) = value else {
                stepped += 1;
                continue;
            };
            read += 1;
            let event = self.event_from(seq, &value)?;
            if filter.matches(&event) {
                page.items.push(event);
                if page.items.len() == limit {
                    page.next_cursor = Some(seq);
                    return Ok(page);
                }
            }
        }
        Ok(page)
    }

    /// Deliveries by verdict in `buckets` consecutive spans of `bucket_ms` starting at
    /// `from_ms` (a minute, an hour, ...). Counts index keys, and reads only the deliveries
    /// the indexer has not reached yet.
    pub fn bucket_counts(
        &self,
        from_ms: u64,
        bucket_ms: u64,
        buckets: u64,
    ) -> Result<Vec<HourCounts>> {
        let bucket_ms = bucket_ms.max(1);
        let mut out = vec![[0u64; 4]; buckets as usize];
        let mut count = |id: u64, vi: usize| {
            if let Some(slot) = keys::id_time_ms(id)
                .checked_sub(from_ms)
                .and_then(|d| out.get_mut((d / bucket_ms) as usize))
            {
                slot[vi] += 1;
            }
        };
        let lo = keys::first_id_at(from_ms);
        let hi = keys::first_id_at(from_ms.saturating_add(buckets.saturating_mul(bucket_ms)));
        let indexed_below = self
            .shared
            .watermark
            .load(Ordering::Relaxed)
            .saturating_add(1);
        let log = &self.shared.h()?.log;
        for (vi, v) in Verdict::ALL.iter().enumerate() {
            for id in chunks::ids(
                log,
                IndexKind::Verdict,
                v.as_str(),
                lo,
                hi.min(indexed_below),
            ) {
                count(id?, vi);
            }
        }
        let tail_lo = lo.max(indexed_below);
        if tail_lo < hi {
            for item in log.range(keys::id_range(keys::DELIVERY, tail_lo, hi)) {
                let (key, bytes) = item.db()?;
                let id = keys::key_id(&key).unwrap_or(0);
                if let Ok(d) = codec::decode_delivery("delivery", &bytes) {
                    count(id, d.verdict.index());
                }
            }
        }
        Ok(out)
    }
}

/// Two streams of `(id, value)`, each newest first, merged into one newest-first stream.
fn newest_first<T>(
    a: impl Iterator<Item = Result<(u64, T)>>,
    b: impl Iterator<Item = Result<(u64, T)>>,
) -> impl Iterator<Item = Result<(u64, T)>> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(Ok((x, _))), Some(Ok((y, _)))) if y > x => b.next(),
        (Some(_), _) => a.next(),
        (None, _) => b.next(),
    })
}

impl EventRec {
    /// This placeholder for an unreadable event record when its status is readable (it was
    /// sent to `dead`); otherwise the decoding error.
    fn with_status_or(self, e: StoreError, status: Result<StatusRec>) -> Result<EventRec> {
        match status {
            Ok(s) if s.state == EventState::Dead => Ok(self),
            _ => Err(e),
        }
    }
}

impl EventState {
    /// Parses the API name.
    pub fn parse(text: &str) -> Option<EventState> {
        EventState::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{accept, draft, temp_store};

    /// The event list walks deliveries' records: a long run of deliveries that hold no event
    /// ends a call early with a cursor (bounded work per call), and the cursor leads on to
    /// the event behind them.
    #[tokio::test]
    async fn the_event_list_steps_over_deliveries_without_events_a_bounded_run_at_a_time() {
        let (_dir, store) = temp_store();
        let a = accept(&store, "evt-1").await;
        let mut rejected = draft("none");
        rejected.verdict = Verdict::Rejected;
        rejected.event_id = None;
        for _ in 0..4 * SCAN_BUDGET + 10 {
            store.record(rejected.clone()).unwrap();
        }
        let filter = EventFilter::default();
        let first = store.list_events(&filter, None, 10).unwrap();
        assert!(first.items.is_empty());
        let mut cursor = first.next_cursor.expect("a cursor after a bounded walk");
        let mut found = Vec::new();
        for _ in 0..3 {
            let page = store.list_events(&filter, Some(cursor), 10).unwrap();
            found.extend(page.items.iter().map(|e| e.seq));
            match page.next_cursor {
                Some(c) => cursor = c,
                None => break,
            }
        }
        assert_eq!(found, [a.seq]);
    }
}
