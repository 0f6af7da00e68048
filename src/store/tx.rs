//! One batch's view of the `log` tree, and the records read and written through it.
//!
//! The writer thread decides every write against the store *and* the writes of its batch so
//! far ([`Tx`]); the queue, prune and browse code read records through the same helpers, so
//! a record's key and encoding are spelled once.

use super::codec::{self, BodyRec, DeliveryRec, EventRec, StatusRec};
use super::indexer::Indexed;
use super::ingest::DeliveryDraft;
use super::model::Event;
use super::{keys, Db, Result};
use sled::IVec;
use std::collections::HashMap;

/// One batch's reads and writes: reads see the batch's own earlier writes, and the writes
/// go to sled as one atomic batch.
pub(super) struct Tx<'a> {
    pub(super) tree: &'a sled::Tree,
    pub(super) overlay: HashMap<Vec<u8>, Option<IVec>>,
    batch: sled::Batch,
    /// The deliveries this batch writes, for the indexer once the batch is applied.
    written: Vec<(u64, Indexed)>,
}

impl<'a> Tx<'a> {
    pub fn new(tree: &'a sled::Tree) -> Tx<'a> {
        Tx {
            tree,
            overlay: HashMap::new(),
            batch: sled::Batch::default(),
            written: Vec::new(),
        }
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<IVec>> {
        match self.overlay.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.tree.get(key).db(),
        }
    }

    pub fn insert(&mut self, key: &[u8], value: impl Into<IVec>) {
        let value = value.into();
        self.batch.insert(key, value.clone());
        self.overlay.insert(key.to_vec(), Some(value));
    }

    /// Writes delivery `id` (holding its event, followed by `event_payload`, when it
    /// carries one) and notes it for the indexer: every delivery a batch writes goes
    /// through here, so none is left unindexed.
    pub fn put_delivery(
        &mut self,
        id: u64,
        rec: DeliveryRec,
        event_payload: Option<&[u8]>,
    ) -> Result<()> {
        self.written.push((id, Indexed::of(&rec)));
        let value = match event_payload {
            Some(payload) => codec::encode_delivery_with_event(rec, payload)?,
            None => codec::encode(&rec)?,
        };
        self.insert(&keys::id_key(keys::DELIVERY, id), value);
        Ok(())
    }

    /// The deliveries written so far (see [`Tx::put_delivery`]), handed over once.
    pub fn take_written(&mut self) -> Vec<(u64, Indexed)> {
        std::mem::take(&mut self.written)
    }

    pub fn remove(&mut self, key: &[u8]) {
        self.batch.remove(key);
        self.overlay.insert(key.to_vec(), None);
    }

    pub fn is_empty(&self) -> bool {
        self.overlay.is_empty()
    }

    pub fn commit(self) -> Result<()> {
        if self.overlay.is_empty() {
            return Ok(());
        }
        self.tree.apply_batch(self.batch).db()
    }
}

pub(super) fn delivery_record(draft: &DeliveryDraft, body: BodyRec) -> DeliveryRec {
    DeliveryRec {
        received_at_ms: draft.received_at_ms,
        endpoint: draft.endpoint.clone(),
        remote_addr: draft.remote_addr.clone(),
        request_headers: draft.request_headers.clone(),
        body,
        body_bytes: draft.body_bytes as u64,
        body_truncated: draft.body_truncated,
        verdict: draft.verdict,
        reason: draft.reason.clone(),
        response: draft.response.clone(),
        event_id: draft.event_id.clone(),
        event_type: draft.event_type.clone(),
        event_seq: None,
    }
}

/// The logged body, as a reference into `payload` when it is a prefix of it (stored once).
pub(super) fn body_ref(logged: &str, payload: &[u8]) -> BodyRec {
    if payload.starts_with(logged.as_bytes()) && logged.len() <= u32::MAX as usize {
        BodyRec::Payload(logged.len() as u32)
    } else {
        BodyRec::Inline(logged.to_string())
    }
}

/// The status of event `seq`: stored, or fresh for an event never claimed. `Err` when the
/// status record is unreadable.
pub(super) fn status_of(tx: &Tx, seq: u64, received_at_ms: u64) -> Result<StatusRec> {
    match tx.get(&keys::id_key(keys::STATUS, seq))? {
        Some(bytes) => codec::decode(&format!("status of event {seq}"), &bytes),
        None => Ok(StatusRec::fresh(received_at_ms)),
    }
}

/// The record holding event `seq`: its accepted delivery's record (format 4), or a record
/// of its own (older formats).
pub(super) fn event_bytes(tx: &Tx, seq: u64) -> Result<Option<IVec>> {
    if let Some(bytes) = tx.get(&keys::id_key(keys::DELIVERY, seq))? {
        if codec::carries_event(&bytes) {
            return Ok(Some(bytes));
        }
    }
    tx.get(&keys::id_key(keys::EVENT, seq))
}

/// A number the store keeps under `key` (the claim cursor, the index watermark); 0 when it
/// has none yet.
pub(super) fn stored_u64(log: &sled::Tree, key: &[u8]) -> Result<u64> {
    Ok(log
        .get(key)
        .db()?
        .and_then(|v| keys::read_u64(&v))
        .unwrap_or(0))
}

/// The largest id of a delivery or event stored (0 in an empty store).
pub(super) fn last_id(log: &sled::Tree) -> Result<u64> {
    let mut last = 0;
    for kind in [keys::DELIVERY, keys::EVENT] {
        if let Some(key) = log.range(keys::kind_range(kind)).keys().next_back() {
            last = last.max(keys::key_id(&key.db()?).unwrap_or(0));
        }
    }
    Ok(last)
}

/// Every stored event's seq, key and record: the records of their own (older formats), then
/// the accepted deliveries' records (format 4); in seq order within each run.
pub(super) fn all_events(log: &sled::Tree) -> impl Iterator<Item = Result<(u64, IVec, IVec)>> + '_ {
    let own = log.range(keys::kind_range(keys::EVENT));
    let in_deliveries = log.range(keys::kind_range(keys::DELIVERY));
    own.chain(in_deliveries).filter_map(|item| match item.db() {
        Ok((key, value)) => (key.first() == Some(&keys::EVENT) || codec::carries_event(&value))
            .then(|| Ok((keys::key_id(&key).unwrap_or(0), key, value))),
        Err(e) => Some(Err(e)),
    })
}

/// Whether a claim finds the event `seq`, read from the record under `key`, as new after
/// the claim `cursor` (should it have no status): only an event in its accepted delivery's
/// record past the cursor. Older events have queue entries instead.
pub(super) fn found_after_cursor(key: &[u8], seq: u64, cursor: u64) -> bool {
    key.first() == Some(&keys::DELIVERY) && seq > cursor
}

/// The event `seq` and its payload, if the event exists.
pub(super) fn event_of(tx: &Tx, seq: u64) -> Result<Option<(EventRec, bytes::Bytes)>> {
    let Some(bytes) = event_bytes(tx, seq)? else {
        return Ok(None);
    };
    let (rec, payload) = codec::decode_event_at(seq, &bytes)?;
    Ok(Some((rec, bytes::Bytes::copy_from_slice(payload))))
}

/// The API's view of an event.
pub(super) fn to_event(seq: u64, rec: EventRec, s: StatusRec) -> Event {
    Event {
        seq,
        endpoint: rec.endpoint,
        event_id: rec.event_id,
        event_type: rec.event_type,
        received_at_ms: rec.received_at_ms,
        delivery_id: rec.delivery_id,
        state: s.state,
        attempts: s.attempts,
        next_attempt_at_ms: s.next_attempt_at_ms,
        last_error: s.last_error,
        replays: s.replays,
        attempts_before_replay: s.attempts_before_replay,
    }
}

pub(super) fn put_status(tx: &mut Tx, seq: u64, s: &StatusRec) -> Result<()> {
    tx.insert(&keys::id_key(keys::STATUS, seq), codec::encode(s)?);
    Ok(())
}

/// Writes to a tree in `apply_batch`es of a fixed number of keys: for offline rewrites
/// (migrations, index rebuilds), where nothing else writes and large batches are fastest.
pub(super) struct Batched<'a> {
    tree: &'a sled::Tree,
    batch: sled::Batch,
    n: usize,
    size: usize,
}

impl<'a> Batched<'a> {
    pub fn new(tree: &'a sled::Tree, size: usize) -> Batched<'a> {
        Batched {
            tree,
            batch: sled::Batch::default(),
            n: 0,
            size: size.max(1),
        }
    }

    pub fn insert(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        self.batch.insert(key.as_ref(), value.as_ref());
        self.counted()
    }

    pub fn remove(&mut self, key: impl AsRef<[u8]>) -> Result<()> {
        self.batch.remove(key.as_ref());
        self.counted()
    }

    fn counted(&mut self) -> Result<()> {
        self.n += 1;
        if self.n == self.size {
            self.apply()?;
        }
        Ok(())
    }

    /// Writes what is waiting.
    pub fn apply(&mut self) -> Result<()> {
        self.n = 0;
        self.tree.apply_batch(std::mem::take(&mut self.batch)).db()
    }
}
