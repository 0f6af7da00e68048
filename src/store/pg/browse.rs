//! The read side on PostgreSQL: single records, filtered pages (newest first, with a cursor),
//! counts per time span, and what the UI asks of a duplicate. The filters are the embedded
//! store's ([`DeliveryFilter`], [`EventFilter`]); here they become one indexed query each.

use super::queue::{outcome_of, state_of, to_event, EVENT_COLUMNS};
use super::{db, Inner, PgStore, Result};
use crate::store::browse::{id_bounds, type_prefix};
use crate::store::keys::first_id_at;
use crate::store::model::{Attempt, Delivery, Event, EventState, ResponseLog, Verdict};
use crate::store::{
    Count, DeliveryFilter, DeliveryPage, EventFilter, EventPage, HourCounts, Original, Stats,
};
use std::sync::Arc;
use tokio_postgres::types::ToSql;

fn headers(value: serde_json::Value) -> Vec<(String, String)> {
    serde_json::from_value(value).unwrap_or_default()
}

const DELIVERY_COLUMNS: &str = "d.id, d.received_at_ms, d.endpoint, d.remote_addr, \
     d.request_headers, d.body, d.body_bytes, d.body_truncated, d.verdict, d.reason, \
     d.response_status, d.response_headers, d.response_body, d.event_id, d.event_type, \
     d.event_seq, d.latency_us";

fn to_delivery(row: &tokio_postgres::Row) -> Delivery {
    Delivery {
        id: row.get::<_, i64>(0) as u64,
        received_at_ms: row.get::<_, i64>(1) as u64,
        endpoint: row.get(2),
        remote_addr: row.get(3),
        request_headers: headers(row.get(4)),
        body: row.get(5),
        body_bytes: row.get::<_, i64>(6) as usize,
        body_truncated: row.get(7),
        verdict: Verdict::parse(row.get(8)).unwrap_or(Verdict::Rejected),
        reason: row.get(9),
        response: ResponseLog {
            status: row.get::<_, i32>(10) as u16,
            headers: headers(row.get(11)),
            body: row.get(12),
        },
        event_id: row.get(13),
        event_type: row.get(14),
        event_seq: row.get::<_, Option<i64>>(15).map(|s| s as u64),
        latency_us: row.get::<_, Option<i64>>(16).map(|s| s as u64),
    }
}

/// A query's WHERE clause and its parameters, built condition by condition.
#[derive(Default)]
struct Where {
    clauses: Vec<String>,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Where {
    /// Adds `clause`, in which each `$?` stands for the parameter `value`.
    fn add(&mut self, clause: &str, value: impl ToSql + Sync + Send + 'static) {
        self.params.push(Box::new(value));
        self.clauses
            .push(clause.replace("$?", &format!("${}", self.params.len())));
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            "TRUE".into()
        } else {
            self.clauses.join(" AND ")
        }
    }

    /// Runs `sql`, which ends in this WHERE clause, with its parameters.
    async fn fetch(&self, inner: &Inner, sql: &str) -> Result<Vec<tokio_postgres::Row>> {
        inner
            .client()
            .await?
            .query(sql, &self.refs())
            .await
            .map_err(db)
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }

    /// A type condition on `column`: the type, or types starting with a prefix.
    fn event_type(&mut self, column: &str, pattern: &str) {
        match type_prefix(pattern) {
            Some(prefix) => {
                let like = prefix
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                self.add(&format!("{column} LIKE $?"), format!("{like}%"));
            }
            None => self.add(&format!("{column} = $?"), pattern.to_string()),
        }
    }

    /// Id (or seq) bounds from a time range and a cursor.
    fn ids(&mut self, column: &str, from: Option<u64>, to: Option<u64>, before: Option<u64>) {
        let (lo, hi) = id_bounds(from, to, before);
        if lo > 0 {
            self.add(&format!("{column} >= $?"), lo as i64);
        }
        if hi < u64::MAX {
            self.add(&format!("{column} < $?"), hi.min(i64::MAX as u64) as i64);
        }
    }
}

fn delivery_where(filter: &DeliveryFilter, before: Option<u64>) -> Where {
    let mut w = Where::default();
    if let Some(e) = &filter.endpoint {
        w.add("d.endpoint = $?", e.clone());
    }
    if let Some(v) = filter.verdict {
        w.add("d.verdict = $?", v.as_str());
    }
    if let Some(t) = &filter.event_type {
        w.event_type("d.event_type", t);
    }
    if let Some(i) = &filter.event_id {
        w.add("d.event_id = $?", i.clone());
    }
    w.ids("d.id", filter.from_ms, filter.to_ms, before);
    if let Some(text) = &filter.body_contains {
        w.add(BODY_MATCHES, text.to_ascii_lowercase());
    }
    w
}

/// Whether delivery `d`'s body holds the parameter: ASCII case ignored, as in the embedded
/// store; a truncated body is searched in its event's whole payload (non-ASCII bytes
/// escaped, so ASCII needles still match).
const BODY_MATCHES: &str = "(strpos(lower(d.body), $?) > 0 OR (d.body_truncated AND EXISTS (
     SELECT 1 FROM hookd_events e WHERE e.seq = d.event_seq
     AND strpos(lower(encode(e.payload, 'escape')), $?) > 0)))";

/// A search in bodies reads at most this many deliveries (the newest that match the other
/// filters) per request, as the embedded store does: a needle found nowhere must not make
/// one request read the whole log. The page then ends with a cursor below what was read.
const BODY_SCAN_BUDGET: i64 = crate::store::browse::BODY_SCAN_BUDGET as i64;

/// The deliveries a bounded search in bodies reads: the newest `BODY_SCAN_BUDGET` matching
/// the filter's other terms, as `(whether more lie below them, the lowest id read)`. One
/// more is looked at, so that a cursor is handed back only when there is something below
/// (as in the embedded store).
async fn body_scan(
    inner: &Inner,
    filter: &DeliveryFilter,
    before: Option<u64>,
) -> Result<(bool, Option<i64>)> {
    let rest = DeliveryFilter {
        body_contains: None,
        ..filter.clone()
    };
    let w = delivery_where(&rest, before);
    let sql = format!(
        "SELECT count(*), min(id) FILTER (WHERE n <= {BODY_SCAN_BUDGET}) FROM (
             SELECT d.id, row_number() OVER (ORDER BY d.id DESC) AS n
             FROM hookd_deliveries d WHERE {} ORDER BY d.id DESC LIMIT {}) AS scanned",
        w.sql(),
        BODY_SCAN_BUDGET + 1
    );
    let rows = w.fetch(inner, &sql).await?;
    Ok(rows.first().map_or((false, None), |r| {
        (r.get::<_, i64>(0) > BODY_SCAN_BUDGET, r.get(1))
    }))
}

/// A page of at most `limit` from `limit + 1` rows fetched, and the cursor to the next page
/// when there was one more.
fn page<T>(mut items: Vec<T>, limit: usize, id: impl Fn(&T) -> u64) -> (Vec<T>, Option<u64>) {
    let more = items.len() > limit;
    items.truncate(limit);
    let next = if more { items.last().map(id) } else { None };
    (items, next)
}

/// Most deliveries one count walks; past it the count is a lower bound ("more than").
const COUNT_LIMIT: i64 = 100_000;

async fn list_deliveries(
    inner: Arc<Inner>,
    filter: DeliveryFilter,
    before: Option<u64>,
    limit: usize,
) -> Result<DeliveryPage> {
    let mut w = delivery_where(&filter, before);
    // A search in bodies looks only as far down as its scan reaches.
    let mut scan = None;
    if filter.body_contains.is_some() {
        let (more, lowest) = body_scan(&inner, &filter, before).await?;
        let Some(lowest) = lowest else {
            return Ok(DeliveryPage {
                items: Vec::new(),
                next_cursor: None,
            });
        };
        w.add("d.id >= $?", lowest);
        scan = more.then_some(lowest as u64);
    }
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM hookd_deliveries d WHERE {} ORDER BY d.id DESC LIMIT {}",
        w.sql(),
        limit + 1
    );
    let rows = w.fetch(&inner, &sql).await?;
    let (items, next_cursor) = page(rows.iter().map(to_delivery).collect(), limit, |d| d.id);
    // A short page from a scan that used its budget goes on below what it read (the
    // cursor is exclusive: the lowest id read was read).
    let next_cursor = next_cursor.or(scan);
    Ok(DeliveryPage { items, next_cursor })
}

async fn count_deliveries(inner: Arc<Inner>, filter: DeliveryFilter) -> Result<Count> {
    if let Some(text) = &filter.body_contains {
        // Bounded like the search: a count of what the newest deliveries hold, a lower
        // bound when there were more to read.
        let (more, lowest) = body_scan(&inner, &filter, None).await?;
        let Some(lowest) = lowest else {
            return Ok(Count { n: 0, exact: true });
        };
        let mut w = delivery_where(
            &DeliveryFilter {
                body_contains: None,
                ..filter.clone()
            },
            None,
        );
        w.add("d.id >= $?", lowest);
        w.add(BODY_MATCHES, text.to_ascii_lowercase());
        let sql = format!("SELECT count(*) FROM hookd_deliveries d WHERE {}", w.sql());
        let n: i64 = w.fetch(&inner, &sql).await?.first().map_or(0, |r| r.get(0));
        return Ok(Count {
            n: n as u64,
            exact: !more,
        });
    }
    let w = delivery_where(&filter, None);
    let sql = format!(
        "SELECT count(*) FROM (SELECT 1 FROM hookd_deliveries d WHERE {} LIMIT {}) AS matching",
        w.sql(),
        COUNT_LIMIT + 1
    );
    let n: i64 = w.fetch(&inner, &sql).await?.first().map_or(0, |r| r.get(0));
    Ok(Count {
        n: n.min(COUNT_LIMIT) as u64,
        exact: n <= COUNT_LIMIT,
    })
}

async fn list_events(
    inner: Arc<Inner>,
    filter: EventFilter,
    before: Option<u64>,
    limit: usize,
) -> Result<EventPage> {
    let mut w = Where::default();
    if let Some(e) = &filter.endpoint {
        w.add("endpoint = $?", e.clone());
    }
    if let Some(t) = &filter.event_type {
        w.event_type("event_type", t);
    }
    if let Some(s) = filter.state {
        w.add("state = $?", s.as_str());
    }
    w.ids("seq", filter.from_ms, filter.to_ms, before);
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM hookd_events WHERE {} ORDER BY seq DESC LIMIT {}",
        w.sql(),
        limit + 1
    );
    let rows = w.fetch(&inner, &sql).await?;
    let (items, next_cursor) = page(rows.iter().map(|r| to_event(r, 0)).collect(), limit, |e| {
        e.seq
    });
    Ok(EventPage { items, next_cursor })
}

async fn bucket_counts(
    inner: Arc<Inner>,
    from_ms: u64,
    bucket_ms: u64,
    buckets: u64,
) -> Result<Vec<HourCounts>> {
    let bucket_ms = bucket_ms.max(1);
    let lo = first_id_at(from_ms) as i64;
    let hi = first_id_at(from_ms.saturating_add(buckets.saturating_mul(bucket_ms))) as i64;
    let rows = inner
        .client()
        .await?
        .query(
            "SELECT (received_at_ms - $3) / $4 AS bucket, verdict, count(*)
             FROM hookd_deliveries WHERE id >= $1 AND id < $2
             GROUP BY 1, 2",
            &[&lo, &hi, &(from_ms as i64), &(bucket_ms as i64)],
        )
        .await
        .map_err(db)?;
    let mut out = vec![[0u64; 4]; buckets as usize];
    for row in rows {
        let bucket: i64 = row.get(0);
        let Some(v) = Verdict::parse(row.get(1)) else {
            continue;
        };
        if let Some(slot) = usize::try_from(bucket).ok().and_then(|b| out.get_mut(b)) {
            slot[v.index()] += row.get::<_, i64>(2) as u64;
        }
    }
    Ok(out)
}

async fn stats(inner: Arc<Inner>, now_ms: u64) -> Result<Stats> {
    let client = inner.client().await?;
    let mut deliveries: std::collections::BTreeMap<&'static str, u64> =
        Verdict::ALL.iter().map(|v| (v.as_str(), 0)).collect();
    for row in client
        .query(
            "SELECT verdict, count(*) FROM hookd_deliveries GROUP BY 1",
            &[],
        )
        .await
        .map_err(db)?
    {
        if let Some(v) = Verdict::parse(row.get(0)) {
            deliveries.insert(v.as_str(), row.get::<_, i64>(1) as u64);
        }
    }
    let mut events: std::collections::BTreeMap<&'static str, u64> =
        EventState::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    for row in client
        .query("SELECT state, count(*) FROM hookd_events GROUP BY 1", &[])
        .await
        .map_err(db)?
    {
        events.insert(state_of(row.get(0)).as_str(), row.get::<_, i64>(1) as u64);
    }
    let oldest_queued_age_secs = match super::queue::next_due(&**client).await? {
        Some(due) => now_ms.saturating_sub(due) / 1000,
        None => 0,
    };
    let rejected_unlogged: i64 = client
        .query_opt(
            "SELECT n FROM hookd_counters WHERE name = 'rejected_unlogged'",
            &[],
        )
        .await
        .map_err(db)?
        .map(|r| r.get(0))
        .unwrap_or(0);
    let store_bytes: i64 = client
        .query_one("SELECT pg_database_size(current_database())", &[])
        .await
        .map_err(db)?
        .get(0);
    Ok(Stats {
        queue_depth: events["queued"] + events["retrying"],
        deliveries,
        events,
        oldest_queued_age_secs,
        rejected_unlogged: rejected_unlogged as u64,
        store_bytes: store_bytes as u64,
    })
}

/// A duplicate's delivery and payload of the event it repeated: (body, body_bytes,
/// accepted delivery id, payload).
async fn with_event(inner: &Inner, id: u64) -> Result<Option<(Delivery, u64, bytes::Bytes)>> {
    let row = inner
        .client()
        .await?
        .query_opt(
            &format!(
                "SELECT {DELIVERY_COLUMNS}, e.delivery_id, e.payload
                 FROM hookd_deliveries d JOIN hookd_events e ON e.seq = d.event_seq
                 WHERE d.id = $1"
            ),
            &[&(id as i64)],
        )
        .await
        .map_err(db)?;
    Ok(row.map(|r| {
        (
            to_delivery(&r),
            r.get::<_, i64>(17) as u64,
            bytes::Bytes::from(r.get::<_, Vec<u8>>(18)),
        )
    }))
}

/// Whether a logged body is the payload: the same length, and the logged text its start.
fn same_body(d: &Delivery, payload: &[u8]) -> bool {
    d.body_bytes == payload.len() && payload.starts_with(d.body.as_bytes())
}

impl PgStore {
    /// One delivery by id.
    pub fn delivery(&self, id: u64) -> Result<Option<Delivery>> {
        self.block(move |inner| async move {
            let row = inner
                .client()
                .await?
                .query_opt(
                    &format!("SELECT {DELIVERY_COLUMNS} FROM hookd_deliveries d WHERE d.id = $1"),
                    &[&(id as i64)],
                )
                .await
                .map_err(db)?;
            Ok(row.as_ref().map(to_delivery))
        })
    }

    /// Deliveries matching `filter` below the cursor `before`, newest first.
    pub fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<DeliveryPage> {
        let filter = filter.clone();
        self.block(move |inner| list_deliveries(inner, filter, before, limit))
    }

    /// How many deliveries match `filter` (a lower bound past a bounded count).
    pub fn count_deliveries(&self, filter: &DeliveryFilter) -> Result<Count> {
        let filter = filter.clone();
        self.block(move |inner| count_deliveries(inner, filter))
    }

    /// One event by seq.
    pub fn event(&self, seq: u64) -> Result<Option<Event>> {
        self.block(move |inner| async move {
            let row = inner
                .client()
                .await?
                .query_opt(
                    &format!("SELECT {EVENT_COLUMNS} FROM hookd_events WHERE seq = $1"),
                    &[&(seq as i64)],
                )
                .await
                .map_err(db)?;
            Ok(row.map(|r| to_event(&r, 0)))
        })
    }

    /// Events matching `filter` below the cursor `before`, newest first.
    pub fn list_events(
        &self,
        filter: &EventFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<EventPage> {
        let filter = filter.clone();
        self.block(move |inner| list_events(inner, filter, before, limit))
    }

    /// An event's payload as received.
    pub fn payload(&self, seq: u64) -> Result<Option<bytes::Bytes>> {
        self.block(move |inner| async move {
            let row = inner
                .client()
                .await?
                .query_opt(
                    "SELECT payload FROM hookd_events WHERE seq = $1",
                    &[&(seq as i64)],
                )
                .await
                .map_err(db)?;
            Ok(row.map(|r| bytes::Bytes::from(r.get::<_, Vec<u8>>(0))))
        })
    }

    /// An event's attempts, by number.
    pub fn attempts(&self, seq: u64) -> Result<Vec<Attempt>> {
        Ok(self
            .attempts_by_instance(seq)?
            .into_iter()
            .map(|(a, _)| a)
            .collect())
    }

    /// An event's attempts with the instance that made each, by number.
    pub fn attempts_by_instance(&self, seq: u64) -> Result<Vec<(Attempt, String)>> {
        self.block(move |inner| async move {
            let rows = inner
                .client()
                .await?
                .query(
                    "SELECT number, processor, started_at_ms, finished_at_ms, outcome, detail,
                            instance
                     FROM hookd_attempts WHERE seq = $1 ORDER BY number",
                    &[&(seq as i64)],
                )
                .await
                .map_err(db)?;
            Ok(rows
                .iter()
                .map(|r| {
                    let attempt = Attempt {
                        number: r.get::<_, i32>(0) as u32,
                        processor: r.get(1),
                        started_at_ms: r.get::<_, i64>(2) as u64,
                        finished_at_ms: r.get::<_, i64>(3) as u64,
                        outcome: outcome_of(r.get(4)),
                        detail: r.get(5),
                    };
                    (attempt, r.get(6))
                })
                .collect())
        })
    }

    /// The seq of the event `event_id` accepted on `endpoint`, if stored.
    pub fn find_event(&self, endpoint: &str, event_id: &str) -> Result<Option<u64>> {
        let (endpoint, event_id) = (endpoint.to_string(), event_id.to_string());
        self.block(move |inner| async move {
            let row = inner
                .client()
                .await?
                .query_opt(
                    "SELECT seq FROM hookd_events WHERE endpoint = $1 AND event_id = $2",
                    &[&endpoint, &event_id],
                )
                .await
                .map_err(db)?;
            Ok(row.map(|r| r.get::<_, i64>(0) as u64))
        })
    }

    /// Deliveries by verdict in `buckets` spans of `bucket_ms` from `from_ms`.
    pub fn bucket_counts(
        &self,
        from_ms: u64,
        bucket_ms: u64,
        buckets: u64,
    ) -> Result<Vec<HourCounts>> {
        self.block(move |inner| bucket_counts(inner, from_ms, bucket_ms, buckets))
    }

    /// The event types received, sorted (at most 1 000).
    pub fn event_types(&self) -> Result<Vec<String>> {
        self.block(|inner| async move {
            let rows = inner
                .client()
                .await?
                .query(
                    "SELECT DISTINCT event_type FROM hookd_events ORDER BY 1 LIMIT 1000",
                    &[],
                )
                .await
                .map_err(db)?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    /// For a duplicate whose event is still stored: the accepted delivery, and whether the
    /// bodies differ.
    pub fn original(&self, id: u64) -> Result<Option<Original>> {
        self.block(move |inner| async move {
            Ok(with_event(&inner, id)
                .await?
                .and_then(|(d, accepted, payload)| {
                    (d.verdict == Verdict::Duplicate).then(|| Original {
                        delivery_id: accepted,
                        body_differs: !same_body(&d, &payload),
                    })
                }))
        })
    }

    /// A delivery's whole body when the log kept only its start: its event's payload.
    pub fn full_body(&self, id: u64) -> Result<Option<bytes::Bytes>> {
        self.block(move |inner| async move {
            Ok(with_event(&inner, id)
                .await?
                .and_then(|(d, accepted, payload)| {
                    (accepted == id || (d.verdict == Verdict::Duplicate && same_body(&d, &payload)))
                        .then_some(payload)
                }))
        })
    }

    /// Counts and queue figures for /api/stats, over the whole cluster.
    pub fn stats(&self, now_ms: u64) -> Result<Stats> {
        self.block(move |inner| stats(inner, now_ms))
    }

    /// How many events are in `state`.
    pub fn count_state(&self, state: EventState) -> Result<u64> {
        self.block(move |inner| async move {
            let n: i64 = inner
                .client()
                .await?
                .query_one(
                    "SELECT count(*) FROM hookd_events WHERE state = $1",
                    &[&state.as_str()],
                )
                .await
                .map_err(db)?
                .get(0);
            Ok(n as u64)
        })
    }
}
