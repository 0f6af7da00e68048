//! Reads of single records on PostgreSQL: a delivery, an event, its payload and attempts.

use super::queue::{outcome_of, state_of, to_event, EVENT_COLUMNS};
use super::{db, PgStore, Result};
use crate::store::model::{Attempt, Delivery, Event, ResponseLog, Verdict};

fn headers(value: serde_json::Value) -> Vec<(String, String)> {
    serde_json::from_value(value).unwrap_or_default()
}

const DELIVERY_COLUMNS: &str = "id, received_at_ms, endpoint, remote_addr, request_headers, \
     body, body_bytes, body_truncated, verdict, reason, response_status, response_headers, \
     response_body, event_id, event_type, event_seq, latency_us";

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

impl PgStore {
    /// One delivery by id.
    pub async fn delivery(&self, id: u64) -> Result<Option<Delivery>> {
        let client = self.inner.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {DELIVERY_COLUMNS} FROM hookd_deliveries WHERE id = $1"),
                &[&(id as i64)],
            )
            .await
            .map_err(db)?;
        Ok(row.as_ref().map(to_delivery))
    }

    /// One event by seq.
    pub async fn event(&self, seq: u64) -> Result<Option<Event>> {
        let client = self.inner.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {EVENT_COLUMNS} FROM hookd_events WHERE seq = $1"),
                &[&(seq as i64)],
            )
            .await
            .map_err(db)?;
        Ok(row.map(|r| to_event(&r, 0)))
    }

    /// Every delivery that repeated or created event `seq`, oldest first.
    pub async fn deliveries_of(&self, seq: u64) -> Result<Vec<Delivery>> {
        let client = self.inner.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM hookd_deliveries
                     WHERE event_seq = $1 ORDER BY id"
                ),
                &[&(seq as i64)],
            )
            .await
            .map_err(db)?;
        Ok(rows.iter().map(to_delivery).collect())
    }

    /// An event's payload as received.
    pub async fn payload(&self, seq: u64) -> Result<Option<bytes::Bytes>> {
        let client = self.inner.client().await?;
        let row = client
            .query_opt(
                "SELECT payload FROM hookd_events WHERE seq = $1",
                &[&(seq as i64)],
            )
            .await
            .map_err(db)?;
        Ok(row.map(|r| bytes::Bytes::from(r.get::<_, Vec<u8>>(0))))
    }

    /// An event's attempts with the instance that made each, by number.
    pub async fn attempts_by_instance(&self, seq: u64) -> Result<Vec<(Attempt, String)>> {
        let client = self.inner.client().await?;
        let rows = client
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
                (
                    Attempt {
                        number: r.get::<_, i32>(0) as u32,
                        processor: r.get(1),
                        started_at_ms: r.get::<_, i64>(2) as u64,
                        finished_at_ms: r.get::<_, i64>(3) as u64,
                        outcome: outcome_of(r.get(4)),
                        detail: r.get(5),
                    },
                    r.get(6),
                )
            })
            .collect())
    }

    /// The seq of the event `event_id` accepted on `endpoint`, if stored.
    pub async fn find_event(&self, endpoint: &str, event_id: &str) -> Result<Option<u64>> {
        let client = self.inner.client().await?;
        let row = client
            .query_opt(
                "SELECT seq FROM hookd_events WHERE endpoint = $1 AND event_id = $2",
                &[&endpoint, &event_id],
            )
            .await
            .map_err(db)?;
        Ok(row.map(|r| r.get::<_, i64>(0) as u64))
    }

    /// How many events are in `state` (for tests and the stats page).
    pub async fn count_state(&self, state: crate::store::EventState) -> Result<u64> {
        let client = self.inner.client().await?;
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM hookd_events WHERE state = $1",
                &[&state.as_str()],
            )
            .await
            .map_err(db)?
            .get(0);
        let _ = state_of;
        Ok(n as u64)
    }
}
