//! Receiving: what the receiver hands the store for each request, and the calls that record
//! it. Accepted, duplicate and filtered deliveries go through the writer's group commit and
//! are on disk when the call returns; rejected ones are written at once and not flushed
//! (nothing was acknowledged).

use super::codec::{self, BodyRec};
use super::indexer::Indexed;
use super::model::{ResponseLog, Verdict};
use super::tx;
use super::writer::Respond;
use super::{keys, Db, Result, SledStore, MAX_PENDING_LATENCIES};
use std::sync::atomic::Ordering;

/// A delivery as the receiver saw it, before the store gives it an id.
#[derive(Debug, Clone)]
pub struct DeliveryDraft {
    pub received_at_ms: u64,
    pub endpoint: String,
    pub remote_addr: Option<String>,
    pub request_headers: Vec<(String, String)>,
    pub body: String,
    pub body_bytes: usize,
    pub body_truncated: bool,
    pub verdict: Verdict,
    pub reason: String,
    pub response: ResponseLog,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
}

/// A verified, selected event to accept (or to recognise as a duplicate).
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: String,
    pub event_type: String,
    pub payload: bytes::Bytes,
}

/// What [`Store::accept`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub verdict: Verdict,
    pub delivery_id: u64,
    pub seq: u64,
}

impl SledStore {
    /// Events not yet finished: queued, retrying or processing.
    pub fn backlog(&self) -> u64 {
        self.shared.counts.backlog()
    }

    /// Records a rejected delivery. Not flushed: nothing was acknowledged. Returns its id.
    pub fn record(&self, draft: DeliveryDraft) -> Result<u64> {
        let id = self.shared.ids.next(draft.received_at_ms);
        let rec = tx::delivery_record(&draft, BodyRec::Inline(draft.body.clone()));
        self.shared
            .h()?
            .log
            .insert(keys::id_key(keys::DELIVERY, id), codec::encode(&rec)?)
            .db()?;
        self.shared.fresh.offer([(id, Indexed::of(&rec))]);
        self.shared
            .counts
            .verdict(draft.verdict)
            .fetch_add(1, Ordering::Relaxed);
        Ok(id)
    }

    /// Records a delivery that creates no event (filtered) and returns once it is on disk,
    /// so it can be acknowledged.
    pub async fn record_durable(&self, draft: DeliveryDraft) -> Result<u64> {
        self.writer.record(draft).await
    }

    /// Counts a rejected delivery that was not stored (beyond the logging rate).
    pub fn count_unlogged_rejection(&self) -> Result<()> {
        let n = self
            .shared
            .counts
            .rejected_unlogged
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        // Last writer wins; the count is advisory and only grows.
        self.shared
            .h()?
            .meta
            .insert(keys::REJECTED_UNLOGGED, &keys::u64_bytes(n))
            .db()?;
        Ok(())
    }

    /// Accepts `event` unless its id was already accepted on this endpoint, and records the
    /// delivery with the verdict that applied. `respond` gives the reason and response for a
    /// verdict. Returns once the writes are on disk (group commit): the caller may answer 200.
    pub async fn accept(
        &self,
        draft: DeliveryDraft,
        event: NewEvent,
        respond: Respond,
    ) -> Result<Accepted> {
        self.writer.accept(draft, event, respond).await
    }

    /// Notes how long the answer to a delivery took. Costs no write of its own: the indexer
    /// stores it with the delivery's verdict index entry.
    pub fn set_latency(&self, delivery_id: u64, micros: u64) -> Result<()> {
        let mut pending = self
            .shared
            .latencies
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if pending.len() < MAX_PENDING_LATENCIES
            && delivery_id > self.shared.watermark.load(Ordering::Relaxed)
        {
            pending.insert(delivery_id, micros);
        }
        Ok(())
    }
}
