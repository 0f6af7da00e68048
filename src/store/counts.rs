//! The counters behind /api/stats and the backlog check: kept in memory, rebuilt at open
//! from the records (verdicts from the index and the part of the log it has not reached yet,
//! states from the status records).

use super::chunks;
use super::codec::{self, StatusRec};
use super::keys::{self, IndexKind};
use super::model::{EventState, Verdict};
use super::tx;
use super::{Db, Result, Shared, SledStore};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Counts for /api/stats.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stats {
    pub deliveries: BTreeMap<&'static str, u64>,
    pub events: BTreeMap<&'static str, u64>,
    /// Events waiting: queued + retrying.
    pub queue_depth: u64,
    /// How long the longest-waiting due event has waited, in seconds (0 when none is due).
    pub oldest_queued_age_secs: u64,
    /// Rejected deliveries beyond the logging rate: counted, not stored.
    pub rejected_unlogged: u64,
    pub store_bytes: u64,
}

/// In-memory counters. State counts are signed because a worker can claim an event before
/// the receiver has counted it as queued; a count may dip below zero for that instant and is
/// read as zero.
#[derive(Default)]
pub(super) struct Counts {
    verdicts: [AtomicU64; 4],
    states: [AtomicI64; 5],
    pub rejected_unlogged: AtomicU64,
}

impl Counts {
    pub fn verdict(&self, v: Verdict) -> &AtomicU64 {
        &self.verdicts[v.index()]
    }
    fn state(&self, s: EventState) -> &AtomicI64 {
        &self.states[s.index()]
    }
    pub fn state_count(&self, s: EventState) -> u64 {
        self.state(s).load(Ordering::Relaxed).max(0) as u64
    }
    pub fn moved(&self, from: EventState, to: EventState) {
        self.state(from).fetch_sub(1, Ordering::Relaxed);
        self.state(to).fetch_add(1, Ordering::Relaxed);
    }
    pub fn added(&self, s: EventState) {
        self.state(s).fetch_add(1, Ordering::Relaxed);
    }
    pub fn removed(&self, s: EventState) {
        self.state(s).fetch_sub(1, Ordering::Relaxed);
    }
    pub fn backlog(&self) -> u64 {
        [
            EventState::Queued,
            EventState::Retrying,
            EventState::Processing,
        ]
        .iter()
        .map(|s| self.state_count(*s))
        .sum()
    }
}

/// Rebuilds the counters from the records; returns the events whose status says
/// `processing` (at start-up: the attempts a stop cut short).
pub(super) fn recount(shared: &Shared) -> Result<Vec<u64>> {
    let log = &shared.h()?.log;
    let watermark = shared.watermark.load(Ordering::Relaxed);
    let mut verdicts = [0u64; 4];
    for v in Verdict::ALL {
        let indexed = chunks::ids(
            log,
            IndexKind::Verdict,
            v.as_str(),
            0,
            watermark.saturating_add(1),
        );
        verdicts[v.index()] = indexed.count() as u64;
    }
    let tail = keys::id_range(keys::DELIVERY, watermark.saturating_add(1), u64::MAX);
    for item in log.range(tail) {
        let (key, bytes) = item.db()?;
        let id = keys::key_id(&key).unwrap_or(0);
        match codec::decode_delivery(&format!("delivery {id}"), &bytes) {
            Ok(d) => verdicts[d.verdict.index()] += 1,
            Err(e) => tracing::warn!(error = %e, "not counted"),
        }
    }
    for v in Verdict::ALL {
        shared
            .counts
            .verdict(v)
            .store(verdicts[v.index()], Ordering::Relaxed);
    }
    let mut states = [0i64; 5];
    let mut processing = Vec::new();
    for item in log.range(keys::kind_range(keys::STATUS)) {
        let (key, bytes) = item.db()?;
        let seq = keys::key_id(&key).unwrap_or(0);
        // An unreadable status counts as dead: that is where a claim sends it.
        let state = codec::decode::<StatusRec>(&format!("status of event {seq}"), &bytes)
            .map(|s| s.state)
            .unwrap_or(EventState::Dead);
        if state == EventState::Processing {
            processing.push(seq);
        }
        states[state.index()] += 1;
    }
    // Events without a status are new (queued): after the claim cursor, in their accepted
    // delivery's record; or, from an older format, in records of their own.
    let has_status = |seq: u64| log.contains_key(keys::id_key(keys::STATUS, seq)).db();
    let mut new = 0i64;
    let cursor = tx::stored_u64(log, keys::CURSOR)?;
    for item in log.range(keys::id_range(
        keys::DELIVERY,
        cursor.saturating_add(1),
        u64::MAX,
    )) {
        let (key, bytes) = item.db()?;
        let seq = keys::key_id(&key).unwrap_or(0);
        if codec::carries_event(&bytes) && !has_status(seq)? {
            new += 1;
        }
    }
    for key in log.range(keys::kind_range(keys::EVENT)).keys() {
        if !has_status(keys::key_id(&key.db()?).unwrap_or(0))? {
            new += 1;
        }
    }
    states[EventState::Queued.index()] += new;
    for s in EventState::ALL {
        shared
            .counts
            .state(s)
            .store(states[s.index()], Ordering::Relaxed);
    }
    let unlogged = shared
        .h()?
        .meta
        .get(keys::REJECTED_UNLOGGED)
        .db()?
        .and_then(|v| keys::read_u64(&v))
        .unwrap_or(0);
    shared
        .counts
        .rejected_unlogged
        .store(unlogged, Ordering::Relaxed);
    Ok(processing)
}

impl SledStore {
    /// Counters and queue figures for /api/stats.
    pub fn stats(&self, now_ms: u64) -> Result<Stats> {
        let counts = &self.shared.counts;
        let deliveries = Verdict::ALL
            .iter()
            .map(|v| (v.as_str(), counts.verdict(*v).load(Ordering::Relaxed)))
            .collect();
        let events = EventState::ALL
            .iter()
            .map(|s| (s.as_str(), counts.state_count(*s)))
            .collect();
        let oldest_queued_age_secs = match self.next_due()? {
            Some(due) => now_ms.saturating_sub(due) / 1000,
            None => 0,
        };
        Ok(Stats {
            deliveries,
            events,
            queue_depth: counts.state_count(EventState::Queued)
                + counts.state_count(EventState::Retrying),
            oldest_queued_age_secs,
            rejected_unlogged: counts.rejected_unlogged.load(Ordering::Relaxed),
            store_bytes: self.shared.h()?.db.size_on_disk().db()?,
        })
    }
}
