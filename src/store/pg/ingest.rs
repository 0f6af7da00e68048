//! Receiving on PostgreSQL: a run of deliveries from one batch goes in with a few statements
//! whatever its length (arrays unnested server-side), and the dedup decision is the unique
//! key's: `INSERT ... ON CONFLICT DO NOTHING` on (endpoint, event_id) tells each insert
//! whether it won, across every instance. A concurrent insert of the same key on another
//! instance waits for that transaction and then sees its row.

use super::{db, Inner, Result};
use crate::store::apply::Outcome;
use crate::store::ingest::{Accepted, DeliveryDraft};
use crate::store::model::Verdict;
use crate::store::writer::Write;
use std::collections::HashMap;
use tokio_postgres::Transaction;

/// Columns of a delivery row, one vector per column.
#[derive(Default)]
pub(super) struct DeliveryRows {
    id: Vec<i64>,
    received_at_ms: Vec<i64>,
    endpoint: Vec<String>,
    remote_addr: Vec<Option<String>>,
    request_headers: Vec<serde_json::Value>,
    body: Vec<String>,
    body_bytes: Vec<i64>,
    body_truncated: Vec<bool>,
    verdict: Vec<&'static str>,
    reason: Vec<String>,
    response_status: Vec<i32>,
    response_headers: Vec<serde_json::Value>,
    response_body: Vec<String>,
    event_id: Vec<Option<String>>,
    event_type: Vec<Option<String>>,
    event_seq: Vec<Option<i64>>,
    latency_us: Vec<Option<i64>>,
}

fn pairs(headers: &[(String, String)]) -> serde_json::Value {
    serde_json::Value::Array(
        headers
            .iter()
            .map(|(k, v)| serde_json::json!([k, v]))
            .collect(),
    )
}

impl DeliveryRows {
    fn push(&mut self, id: u64, d: &DeliveryDraft, verdict: Verdict, seq: Option<u64>) {
        self.id.push(id as i64);
        self.received_at_ms.push(d.received_at_ms as i64);
        self.endpoint.push(d.endpoint.clone());
        self.remote_addr.push(d.remote_addr.clone());
        self.request_headers.push(pairs(&d.request_headers));
        self.body.push(d.body.clone());
        self.body_bytes.push(d.body_bytes as i64);
        self.body_truncated.push(d.body_truncated);
        self.verdict.push(verdict.as_str());
        self.reason.push(d.reason.clone());
        self.response_status.push(d.response.status as i32);
        self.response_headers.push(pairs(&d.response.headers));
        self.response_body.push(d.response.body.clone());
        self.event_id.push(d.event_id.clone());
        self.event_type.push(d.event_type.clone());
        self.event_seq.push(seq.map(|s| s as i64));
        self.latency_us.push(None);
    }

    /// A stored delivery as it is (`copy-store`).
    pub(super) fn push_stored(&mut self, d: &crate::store::Delivery) {
        let draft = DeliveryDraft {
            received_at_ms: d.received_at_ms,
            endpoint: d.endpoint.clone(),
            remote_addr: d.remote_addr.clone(),
            request_headers: d.request_headers.clone(),
            body: d.body.clone(),
            body_bytes: d.body_bytes,
            body_truncated: d.body_truncated,
            verdict: d.verdict,
            reason: d.reason.clone(),
            response: d.response.clone(),
            event_id: d.event_id.clone(),
            event_type: d.event_type.clone(),
        };
        self.push(d.id, &draft, d.verdict, d.event_seq);
        if let Some(last) = self.latency_us.last_mut() {
            *last = d.latency_us.map(|l| l as i64);
        }
    }

    pub(super) async fn insert(&self, tx: &Transaction<'_>) -> Result<()> {
        if self.id.is_empty() {
            return Ok(());
        }
        tx.execute(
            "INSERT INTO hookd_deliveries (id, received_at_ms, endpoint, remote_addr,
                 request_headers, body, body_bytes, body_truncated, verdict, reason,
                 response_status, response_headers, response_body, event_id, event_type,
                 event_seq, latency_us)
             SELECT * FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[],
                 $5::jsonb[], $6::text[], $7::int8[], $8::bool[], $9::text[], $10::text[],
                 $11::int4[], $12::jsonb[], $13::text[], $14::text[], $15::text[],
                 $16::int8[], $17::int8[])",
            &[
                &self.id,
                &self.received_at_ms,
                &self.endpoint,
                &self.remote_addr,
                &self.request_headers,
                &self.body,
                &self.body_bytes,
                &self.body_truncated,
                &self.verdict,
                &self.reason,
                &self.response_status,
                &self.response_headers,
                &self.response_body,
                &self.event_id,
                &self.event_type,
                &self.event_seq,
                &self.latency_us,
            ],
        )
        .await
        .map_err(db)?;
        Ok(())
    }
}

/// Applies a run of accepts and records; one outcome per write, in order.
pub async fn insert(tx: &Transaction<'_>, inner: &Inner, run: &[Write]) -> Result<Vec<Outcome>> {
    // Ids first, in arrival order, and the events that would be new.
    let mut ids = Vec::with_capacity(run.len());
    let (mut seqs, mut endpoints, mut event_ids, mut types, mut times, mut dids, mut payloads) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for write in run {
        match write {
            Write::Accept { draft, event, .. } => {
                let now = draft.received_at_ms;
                let (delivery_id, seq) = (inner.ids.next(now), inner.ids.next(now));
                ids.push((delivery_id, Some(seq)));
                seqs.push(seq as i64);
                endpoints.push(draft.endpoint.as_str());
                event_ids.push(event.event_id.as_str());
                types.push(event.event_type.as_str());
                times.push(now as i64);
                dids.push(delivery_id as i64);
                payloads.push(event.payload.as_ref());
            }
            Write::Record { draft, id, .. } => ids.push((
                id.unwrap_or_else(|| inner.ids.next(draft.received_at_ms)),
                None,
            )),
            _ => unreachable!("only deliveries come in a run"),
        }
    }
    // Rows go in sorted by their dedup key: two instances inserting the same keys then
    // take the unique index's locks in one order and cannot deadlock; of two rows with one
    // key in this batch, the earlier (smaller seq) wins.
    let mut winners = std::collections::HashSet::new();
    let mut originals: HashMap<(&str, &str), i64> = HashMap::new();
    if !seqs.is_empty() {
        // The queue entry is the event itself: due at once.
        for row in tx
            .query(
                "INSERT INTO hookd_events (seq, endpoint, event_id, event_type, received_at_ms,
                     delivery_id, payload, state, next_attempt_at_ms)
                 SELECT s, e, i, t, r, d, p, 'queued', r
                 FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::int8[],
                     $6::int8[], $7::bytea[]) AS u(s, e, i, t, r, d, p)
                 ORDER BY e, i, s
                 ON CONFLICT (endpoint, event_id) DO NOTHING
                 RETURNING seq",
                &[
                    &seqs, &endpoints, &event_ids, &types, &times, &dids, &payloads,
                ],
            )
            .await
            .map_err(db)?
        {
            winners.insert(row.get::<_, i64>(0));
        }
        if winners.len() < seqs.len() {
            // The duplicates: which stored event each one repeats.
            for row in tx
                .query(
                    "SELECT e.endpoint, e.event_id, e.seq FROM hookd_events e
                     JOIN unnest($1::text[], $2::text[]) AS k(endpoint, event_id)
                       USING (endpoint, event_id)",
                    &[&endpoints, &event_ids],
                )
                .await
                .map_err(db)?
            {
                let (endpoint, event_id): (&str, &str) = (row.get(0), row.get(1));
                let key = endpoints
                    .iter()
                    .zip(&event_ids)
                    .find(|(e, i)| **e == endpoint && **i == event_id)
                    .map(|(e, i)| (*e, *i));
                if let Some(key) = key {
                    originals.insert(key, row.get(2));
                }
            }
        }
    }
    let mut rows = DeliveryRows::default();
    let mut outcomes = Vec::with_capacity(run.len());
    for (write, (delivery_id, seq)) in run.iter().zip(ids) {
        match write {
            Write::Accept {
                draft,
                event,
                respond,
                ..
            } => {
                let seq = seq.expect("an accept has a seq") as i64;
                let (verdict, seq) = if winners.contains(&seq) {
                    (Verdict::Accepted, seq)
                } else {
                    let key = (draft.endpoint.as_str(), event.event_id.as_str());
                    let original = originals.get(&key).copied().ok_or_else(|| {
                        crate::store::StoreError::Database(format!(
                            "event {} of endpoint {} was neither inserted nor found",
                            event.event_id, draft.endpoint
                        ))
                    })?;
                    (Verdict::Duplicate, original)
                };
                let (reason, mut response) = respond(verdict);
                response.headers = draft.response.headers.clone();
                let mut d = draft.clone();
                d.reason = reason;
                d.response = response;
                rows.push(delivery_id, &d, verdict, Some(seq as u64));
                outcomes.push(Outcome::Accepted(Accepted {
                    verdict,
                    delivery_id,
                    seq: seq as u64,
                }));
            }
            Write::Record { draft, .. } => {
                rows.push(delivery_id, draft, draft.verdict, None);
                outcomes.push(Outcome::Recorded(delivery_id));
            }
            _ => unreachable!("only deliveries come in a run"),
        }
    }
    rows.insert(tx).await?;
    Ok(outcomes)
}
