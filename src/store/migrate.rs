//! Migration of a format 1 store (hookd 0.1.0: one tree per kind, JSON records, the body
//! stored twice) to format 2, on the first start of a newer hookd.
//!
//! Migrating at start rather than refusing to start and asking for a command: a package
//! upgrade restarts hookd on its own, and a refusal would turn every upgrade into an outage
//! until someone ran the command. The migration writes a new store beside the old one
//! (`db.migrating`), swaps it in with two renames, and keeps the old store as `db.format1`
//! (the log says so; remove it once satisfied). Cut short at any point, the old store is
//! intact and the next start begins again.

use super::codec::{self, DeliveryRec, EventRec, StatusRec};
use super::keys::{self, IndexKind};
use super::model::{Attempt, Delivery, Event};
use super::snapshot::sibling;
use super::tx::{body_ref, Batched};
use super::{from_io, open, Db, Result, StoreError};
use std::path::Path;

/// Tree names of format 1.
const V1_DELIVERIES: &str = "deliveries";
const V1_LATENCY: &str = "latency";
const V1_EVENTS: &str = "events";
const V1_PAYLOADS: &str = "payloads";
const V1_DEDUP: &str = "dedup";
const V1_QUEUE: &str = "queue";
const V1_INFLIGHT: &str = "inflight";
const V1_ATTEMPTS: &str = "attempts";
/// Format 1 trees whose content format 2 re-encodes; every other tree is copied as it is.
const V1_TREES: [&str; 9] = [
    V1_DELIVERIES,
    "delivery_idx",
    V1_LATENCY,
    V1_EVENTS,
    V1_PAYLOADS,
    V1_DEDUP,
    V1_QUEUE,
    V1_INFLIGHT,
    V1_ATTEMPTS,
];

/// Records written per batch.
const BATCH: usize = 1000;

/// Whether `db` is a format 1 store (it has format 1's trees and records no format).
pub(super) fn is_format1(db: &sled::Db) -> bool {
    db.tree_names()
        .iter()
        .any(|n| n.as_ref() == V1_DELIVERIES.as_bytes() || n.as_ref() == V1_EVENTS.as_bytes())
}

/// Finishes or undoes a migration that was cut short: run before the store is opened.
pub(super) fn recover(dir: &Path) -> Result<()> {
    let new = sibling(dir, "migrating");
    let old = sibling(dir, "format1");
    if !dir.exists() && old.exists() {
        // Cut between the two renames: the old store goes back; the next open migrates again.
        std::fs::rename(&old, dir).map_err(from_io)?;
    }
    if new.exists() {
        std::fs::remove_dir_all(&new).map_err(from_io)?;
    }
    Ok(())
}

/// Migrates the format 1 store in `dir` (see the module comment).
pub(super) fn migrate(dir: &Path, cache_mb: u64) -> Result<()> {
    let new = sibling(dir, "migrating");
    let old = sibling(dir, "format1");
    if old.exists() {
        return Err(StoreError::Exists(old));
    }
    tracing::warn!(store = %dir.display(), "migrating a store of hookd 0.1.0 (data format 1) to format {}", open::FORMAT);
    let (deliveries, events) = {
        let src = open::open_guarded(dir, cache_mb)?;
        let out = sled::Config::new().path(&new).open().db()?;
        let counts = copy(&src, &out)?;
        open::stamp(&out, Some(1))?;
        counts
    };
    std::fs::rename(dir, &old).map_err(from_io)?;
    std::fs::rename(&new, dir).map_err(from_io)?;
    tracing::warn!(
        deliveries,
        events,
        old = %old.display(),
        "migration done; the old store is kept beside the new one: remove it once satisfied"
    );
    Ok(())
}

fn prefixed(kind: u8, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + key.len());
    out.push(kind);
    out.extend_from_slice(key);
    out
}

/// Copies and re-encodes every record; returns (deliveries, events) migrated.
fn copy(src: &sled::Db, out: &sled::Db) -> Result<(u64, u64)> {
    let log = out.open_tree(keys::LOG_TREE).db()?;
    let mut w = Batched::new(&log, BATCH);
    let mut skipped = 0u64;
    let events = copy_events(src, &mut w, &mut skipped)?;
    let deliveries = copy_deliveries(src, &mut w, &mut skipped)?;
    copy_queue(src, &mut w, &mut skipped)?;
    w.apply()?;
    copy_other_trees(src, out)?;
    if skipped > 0 {
        tracing::error!(
            skipped,
            "unreadable format 1 records were not migrated (they remain in the old store)"
        );
    }
    out.flush().db()?;
    Ok((deliveries, events))
}

/// Events with their payloads, and their status where it is not a fresh event's.
fn copy_events(src: &sled::Db, w: &mut Batched, skipped: &mut u64) -> Result<u64> {
    let payloads = src.open_tree(V1_PAYLOADS).db()?;
    let mut events = 0u64;
    for item in src.open_tree(V1_EVENTS).db()?.iter() {
        let (key, bytes) = item.db()?;
        let Ok(e) = serde_json::from_slice::<Event>(&bytes) else {
            *skipped += 1;
            continue;
        };
        let payload = payloads.get(&key).db()?.unwrap_or_default();
        let rec = EventRec {
            endpoint: e.endpoint,
            event_id: e.event_id,
            event_type: e.event_type,
            received_at_ms: e.received_at_ms,
            delivery_id: e.delivery_id,
        };
        let status = StatusRec {
            state: e.state,
            attempts: e.attempts,
            next_attempt_at_ms: e.next_attempt_at_ms,
            last_error: e.last_error,
            replays: e.replays,
            attempts_before_replay: e.attempts_before_replay,
        };
        w.insert(
            keys::id_key(keys::EVENT, e.seq),
            codec::encode_event(&rec, &payload)?,
        )?;
        if status != StatusRec::fresh(rec.received_at_ms) {
            w.insert(keys::id_key(keys::STATUS, e.seq), codec::encode(&status)?)?;
        }
        events += 1;
    }
    Ok(events)
}

/// Deliveries (a body equal to its event's payload becomes a reference to it), and their
/// latencies for the indexes that the stamp builds (see `reindex`).
fn copy_deliveries(src: &sled::Db, w: &mut Batched, skipped: &mut u64) -> Result<u64> {
    let payloads = src.open_tree(V1_PAYLOADS).db()?;
    let latency = src.open_tree(V1_LATENCY).db()?;
    let mut deliveries = 0u64;
    for item in src.open_tree(V1_DELIVERIES).db()?.iter() {
        let (key, bytes) = item.db()?;
        let Ok(d) = serde_json::from_slice::<Delivery>(&bytes) else {
            *skipped += 1;
            continue;
        };
        let body = match d.event_seq.map(|seq| payloads.get(keys::u64_bytes(seq))) {
            Some(found) => match found.db()? {
                Some(p) => body_ref(&d.body, &p),
                None => codec::BodyRec::Inline(d.body.clone()),
            },
            None => codec::BodyRec::Inline(d.body.clone()),
        };
        let rec = DeliveryRec {
            received_at_ms: d.received_at_ms,
            endpoint: d.endpoint,
            remote_addr: d.remote_addr,
            request_headers: d.request_headers,
            body,
            body_bytes: d.body_bytes as u64,
            body_truncated: d.body_truncated,
            verdict: d.verdict,
            reason: d.reason,
            response: d.response,
            event_id: d.event_id,
            event_type: d.event_type,
            event_seq: d.event_seq,
        };
        // The indexes are built when the new store is stamped; the latency, kept only in
        // the index, is handed over in a verdict entry of format 4's.
        if let Some(us) = latency.get(&key).db()?.and_then(|v| keys::read_u64(&v)) {
            let entry = keys::index_key(IndexKind::Verdict, rec.verdict.as_str(), d.id);
            w.insert(entry, keys::u64_bytes(us))?;
        }
        w.insert(keys::id_key(keys::DELIVERY, d.id), codec::encode(&rec)?)?;
        deliveries += 1;
    }
    Ok(deliveries)
}

/// Dedup keys, the queue, in-flight marks and attempts: the same keys under a kind prefix.
fn copy_queue(src: &sled::Db, w: &mut Batched, skipped: &mut u64) -> Result<()> {
    for item in src.open_tree(V1_DEDUP).db()?.iter() {
        let (key, value) = item.db()?;
        w.insert(prefixed(keys::DEDUP, &key), value)?;
    }
    for (name, kind) in [(V1_QUEUE, keys::QUEUE), (V1_INFLIGHT, keys::INFLIGHT)] {
        for key in src.open_tree(name).db()?.iter().keys() {
            w.insert(prefixed(kind, &key.db()?), [])?;
        }
    }
    for item in src.open_tree(V1_ATTEMPTS).db()?.iter() {
        let (key, bytes) = item.db()?;
        let Ok(a) = serde_json::from_slice::<Attempt>(&bytes) else {
            *skipped += 1;
            continue;
        };
        w.insert(prefixed(keys::ATTEMPT, &key), codec::encode(&a)?)?;
    }
    Ok(())
}

/// Everything else (meta, the Fasten trees) is the same in both formats.
fn copy_other_trees(src: &sled::Db, out: &sled::Db) -> Result<()> {
    for name in src.tree_names() {
        let text = String::from_utf8_lossy(&name).into_owned();
        if V1_TREES.contains(&text.as_str()) || name.as_ref() == b"__sled__default" {
            continue;
        }
        let to = out.open_tree(&name).db()?;
        let mut w = Batched::new(&to, BATCH);
        for item in src.open_tree(&name).db()?.iter() {
            let (k, v) = item.db()?;
            w.insert(k, v)?;
        }
        w.apply()?;
    }
    Ok(())
}
