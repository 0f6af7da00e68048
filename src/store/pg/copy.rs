//! `hookd copy-store`: an appliance's history (its embedded store) loaded into an empty
//! cluster database, with every id, state, attempt and Fasten record as it was, so the
//! cluster goes on where the appliance stopped: dedup keys included, a retry of an event
//! the appliance accepted is a duplicate in the cluster too.

use super::fasten::to_json;
use super::ingest::DeliveryRows;
use super::prune::{ensure_days, DAY_MS};
use super::queue::outcome_str;
use super::{db, Inner, PgStore, Result};
use crate::store::fasten::{Connection, ExportRecord, ResourceLoc};
use crate::store::{
    Attempt, Delivery, DeliveryFilter, Event, EventFilter, EventState, SledStore, StoreError,
};
use std::sync::Arc;

/// Records per statement.
const BATCH: usize = 1_000;

/// What was copied.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CopyReport {
    pub deliveries: u64,
    pub events: u64,
    pub attempts: u64,
    pub connections: u64,
    pub exports: u64,
    pub resources: u64,
}

impl PgStore {
    /// Copies `from` into this database, which must hold no deliveries or events yet.
    /// `progress` hears each kind of record as it goes (name, count so far).
    pub fn copy_from(
        &self,
        from: &SledStore,
        mut progress: impl FnMut(&str, u64),
    ) -> Result<CopyReport> {
        let empty = self.block(|inner| async move {
            let row = inner
                .client()
                .await?
                .query_one(
                    "SELECT NOT EXISTS (SELECT 1 FROM hookd_events)
                        AND NOT EXISTS (SELECT 1 FROM hookd_deliveries)",
                    &[],
                )
                .await
                .map_err(db)?;
            Ok(row.get::<_, bool>(0))
        })?;
        if !empty {
            return Err(StoreError::Settings(
                "the database already holds hookd deliveries or events; copy-store loads an \
                 appliance's history into an empty one"
                    .into(),
            ));
        }
        let mut report = CopyReport::default();
        let now = crate::clock::now_ms();

        let mut cursor = None;
        loop {
            let page = from.list_deliveries(&DeliveryFilter::default(), cursor, BATCH)?;
            if !page.items.is_empty() {
                let items = page.items;
                report.deliveries += items.len() as u64;
                self.block(move |inner| insert_deliveries(inner, items))?;
                progress("deliveries", report.deliveries);
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }

        let mut cursor = None;
        loop {
            let page = from.list_events(&EventFilter::default(), cursor, BATCH)?;
            let mut batch = Vec::with_capacity(page.items.len());
            for event in page.items {
                let payload = from.payload(event.seq)?.unwrap_or_default();
                let attempts = from.attempts(event.seq)?;
                batch.push((event, payload, attempts));
            }
            if !batch.is_empty() {
                report.events += batch.len() as u64;
                report.attempts += batch.iter().map(|(_, _, a)| a.len() as u64).sum::<u64>();
                self.block(move |inner| insert_events(inner, batch, now))?;
                progress("events", report.events);
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }

        for connection in from.connections()? {
            let exports = from.exports(&connection.org_connection_id)?;
            let resources = from.resources(&connection.org_connection_id)?;
            report.connections += 1;
            report.exports += exports.len() as u64;
            report.resources += resources.len() as u64;
            self.block(move |inner| insert_connection(inner, connection, exports, resources))?;
            progress("connections", report.connections);
        }

        let unlogged = from.stats(now)?.rejected_unlogged as i64;
        self.block(move |inner| async move {
            super::node::add_unlogged(&**inner.client().await?, unlogged).await?;
            super::queue::refresh_backlog(&inner).await
        })?;
        Ok(report)
    }
}

async fn insert_deliveries(inner: Arc<Inner>, items: Vec<Delivery>) -> Result<()> {
    let mut days: Vec<i64> = items
        .iter()
        .map(|d| (crate::store::keys::id_time_ms(d.id) / DAY_MS) as i64)
        .collect();
    days.sort_unstable();
    days.dedup();
    ensure_days(&inner, days).await?;
    let mut rows = DeliveryRows::default();
    for d in &items {
        rows.push_stored(d);
    }
    let mut client = inner.client().await?;
    let tx = client.transaction().await.map_err(db)?;
    rows.insert(&tx).await?;
    tx.commit().await.map_err(db)
}

/// Event rows, one vector per column.
#[derive(Default)]
struct EventCols {
    seq: Vec<i64>,
    endpoint: Vec<String>,
    event_id: Vec<String>,
    event_type: Vec<String>,
    received_at_ms: Vec<i64>,
    delivery_id: Vec<i64>,
    payload: Vec<Vec<u8>>,
    state: Vec<&'static str>,
    attempts: Vec<i32>,
    next_attempt_at_ms: Vec<Option<i64>>,
    last_error: Vec<Option<String>>,
    replays: Vec<i32>,
    attempts_before_replay: Vec<i32>,
}

/// Attempt rows, one vector per column.
#[derive(Default)]
struct AttemptCols {
    seq: Vec<i64>,
    number: Vec<i32>,
    processor: Vec<String>,
    started_at_ms: Vec<i64>,
    finished_at_ms: Vec<i64>,
    outcome: Vec<&'static str>,
    detail: Vec<String>,
}

async fn insert_events(
    inner: Arc<Inner>,
    batch: Vec<(Event, bytes::Bytes, Vec<Attempt>)>,
    now_ms: u64,
) -> Result<()> {
    let mut ev = EventCols::default();
    let mut at = AttemptCols::default();
    for (e, payload, attempts) in batch {
        // An event the appliance was running when it stopped runs again in the cluster.
        let (state, next) = match e.state {
            EventState::Processing => (EventState::Queued, Some(now_ms)),
            s => (s, e.next_attempt_at_ms),
        };
        for a in attempts {
            at.seq.push(e.seq as i64);
            at.number.push(a.number as i32);
            at.processor.push(a.processor);
            at.started_at_ms.push(a.started_at_ms as i64);
            at.finished_at_ms.push(a.finished_at_ms as i64);
            at.outcome.push(outcome_str(a.outcome));
            at.detail.push(a.detail);
        }
        ev.seq.push(e.seq as i64);
        ev.endpoint.push(e.endpoint);
        ev.event_id.push(e.event_id);
        ev.event_type.push(e.event_type);
        ev.received_at_ms.push(e.received_at_ms as i64);
        ev.delivery_id.push(e.delivery_id as i64);
        ev.payload.push(payload.to_vec());
        ev.state.push(state.as_str());
        ev.attempts.push(e.attempts as i32);
        ev.next_attempt_at_ms.push(next.map(|t| t as i64));
        ev.last_error.push(e.last_error);
        ev.replays.push(e.replays as i32);
        ev.attempts_before_replay
            .push(e.attempts_before_replay as i32);
    }
    let mut client = inner.client().await?;
    let tx = client.transaction().await.map_err(db)?;
    tx.execute(
        "INSERT INTO hookd_events (seq, endpoint, event_id, event_type, received_at_ms,
             delivery_id, payload, state, attempts, next_attempt_at_ms, last_error, replays,
             attempts_before_replay)
         SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::int8[],
             $6::int8[], $7::bytea[], $8::text[], $9::int4[], $10::int8[], $11::text[],
             $12::int4[], $13::int4[])",
        &[
            &ev.seq,
            &ev.endpoint,
            &ev.event_id,
            &ev.event_type,
            &ev.received_at_ms,
            &ev.delivery_id,
            &ev.payload,
            &ev.state,
            &ev.attempts,
            &ev.next_attempt_at_ms,
            &ev.last_error,
            &ev.replays,
            &ev.attempts_before_replay,
        ],
    )
    .await
    .map_err(db)?;
    tx.execute(
        "INSERT INTO hookd_attempts (seq, number, node, instance, processor, started_at_ms,
             finished_at_ms, outcome, detail)
         SELECT s, n, -1, 'copied from the appliance', p, st, f, o, d
         FROM unnest($1::int8[], $2::int4[], $3::text[], $4::int8[], $5::int8[], $6::text[],
             $7::text[]) AS u(s, n, p, st, f, o, d)",
        &[
            &at.seq,
            &at.number,
            &at.processor,
            &at.started_at_ms,
            &at.finished_at_ms,
            &at.outcome,
            &at.detail,
        ],
    )
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)
}

async fn insert_connection(
    inner: Arc<Inner>,
    connection: Connection,
    exports: Vec<ExportRecord>,
    resources: Vec<(String, String, ResourceLoc)>,
) -> Result<()> {
    let mut client = inner.client().await?;
    let tx = client.transaction().await.map_err(db)?;
    let id = connection.org_connection_id.clone();
    tx.execute(
        "INSERT INTO hookd_connections (id, record) VALUES ($1, $2)",
        &[&id, &to_json(&connection)?],
    )
    .await
    .map_err(db)?;
    for e in &exports {
        tx.execute(
            "INSERT INTO hookd_exports (connection, task_id, record) VALUES ($1, $2, $3)",
            &[&id, &e.task_id, &to_json(e)?],
        )
        .await
        .map_err(db)?;
    }
    for chunk in resources.chunks(BATCH) {
        let (mut t, mut i, mut task, mut file, mut off, mut len) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for (kind, rid, loc) in chunk {
            t.push(kind.as_str());
            i.push(rid.as_str());
            task.push(loc.task_id.as_str());
            file.push(loc.file.as_str());
            off.push(loc.offset as i64);
            len.push(loc.len as i64);
        }
        tx.execute(
            "INSERT INTO hookd_resources
                 (connection, resource_type, id, task_id, file, \"offset\", len)
             SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[],
                 $6::int8[], $7::int8[])",
            &[&id, &t, &i, &task, &file, &off, &len],
        )
        .await
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)
}
