//! Consistent copies of the store: online backup, offline backup and compaction.
//!
//! sled has no snapshot, and copying its directory while it writes can give a copy that does
//! not open. So a copy is made record by record into a fresh store, tree after tree, while
//! hookd keeps receiving (receiving is not paused at all). Trees copied at different moments
//! can disagree about events that changed during the copy, so the copy is then repaired from
//! its primary records: events without their payload (accepted after the copy began) are
//! dropped; the delivery index, dedup keys, queue and inflight entries are rebuilt from the
//! delivery and event records; payloads, attempts and latency entries without their record
//! are dropped. Every event acknowledged before the copy began has its event record and
//! payload in the source for the whole copy (only retention removes them, and only finished
//! events past the window), so it is in the copy, queued if it had not finished.
//!
//! A fresh copy holds no garbage, which is also how compaction gives disk space back.

use super::keys;
use super::model::{Delivery, Event, EventState};
use super::{check, writer, Result, Store, StoreError};
use std::path::{Path, PathBuf};

/// Entries written per batch while copying.
const COPY_BATCH: usize = 1000;
/// Entries after which the copy is flushed. Small flushes keep the copy's dirty pages few:
/// with ext4's ordered journal, the running store's own fsync (which every ack waits for)
/// can otherwise wait behind writing out hundreds of MB of the copy (a 3 s stall measured).
const FLUSH_EVERY: usize = 20_000;

/// What a copy held once repaired.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CopySummary {
    pub deliveries: u64,
    pub events: u64,
    /// Events dropped from the copy because they arrived while it was made (incomplete).
    pub dropped_incomplete: u64,
    /// Size of the copy on disk, in bytes.
    pub bytes: u64,
}

impl Store {
    /// Copies the running store into a fresh store at `dest` (which must not exist yet).
    /// Blocking: run it on a blocking thread.
    pub fn backup_to(&self, dest: &Path) -> Result<CopySummary> {
        copy_db(&self.db, dest)
    }
}

/// Copies the stopped store in `src` into a fresh store at `dest`.
pub fn backup_offline(src: &Path, dest: &Path) -> Result<CopySummary> {
    if !src.join("conf").exists() {
        return Err(StoreError::Corrupt(format!(
            "{} holds no hookd store",
            src.display()
        )));
    }
    let db = sled::Config::new().path(src).open()?;
    copy_db(&db, dest)
}

fn copy_db(src: &sled::Db, dest: &Path) -> Result<CopySummary> {
    if dest.exists() {
        return Err(StoreError::Corrupt(format!(
            "{} already exists; a copy goes into a new directory",
            dest.display()
        )));
    }
    let out = sled::Config::new().path(dest).open()?;
    for name in src.tree_names() {
        let from = src.open_tree(&name)?;
        let to = out.open_tree(&name)?;
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for item in from.iter() {
            let (k, v) = item?;
            batch.insert(k, v);
            n += 1;
            if n % COPY_BATCH == 0 {
                to.apply_batch(std::mem::take(&mut batch))?;
            }
            if n % FLUSH_EVERY == 0 {
                out.flush()?;
            }
        }
        to.apply_batch(batch)?;
    }
    let mut summary = repair(&out)?;
    out.flush()?;
    summary.bytes = out.size_on_disk()?;
    Ok(summary)
}

/// Makes a copied store's trees agree again (see the module comment).
fn repair(db: &sled::Db) -> Result<CopySummary> {
    let tree = |name: &str| db.open_tree(name);
    let (deliveries, idx, latency) = (tree("deliveries")?, tree("delivery_idx")?, tree("latency")?);
    let (events, payloads, dedup) = (tree("events")?, tree("payloads")?, tree("dedup")?);
    let (queue, inflight, attempts) = (tree("queue")?, tree("inflight")?, tree("attempts")?);
    let mut summary = CopySummary::default();

    idx.clear()?;
    let mut batch = sled::Batch::default();
    for item in deliveries.iter() {
        let (_, bytes) = item?;
        if let Ok(d) = serde_json::from_slice::<Delivery>(&bytes) {
            for key in writer::index_entries(&d) {
                batch.insert(key, &[]);
            }
        }
        summary.deliveries += 1;
        if summary.deliveries % COPY_BATCH as u64 == 0 {
            idx.apply_batch(std::mem::take(&mut batch))?;
        }
        if summary.deliveries % FLUSH_EVERY as u64 == 0 {
            db.flush()?;
        }
    }
    idx.apply_batch(batch)?;
    for key in latency.iter().keys() {
        let key = key?;
        if !deliveries.contains_key(&key)? {
            latency.remove(key)?;
        }
    }

    dedup.clear()?;
    queue.clear()?;
    inflight.clear()?;
    for item in events.iter() {
        let (key, bytes) = item?;
        let Some(seq) = keys::read_u64(&key) else {
            continue;
        };
        let event: Event = match serde_json::from_slice(&bytes) {
            Ok(e) if payloads.contains_key(&key)? => e,
            _ => {
                events.remove(&key)?;
                summary.dropped_incomplete += 1;
                continue;
            }
        };
        dedup.insert(
            keys::dedup_key(&event.endpoint, &event.event_id),
            &keys::u64_key(seq),
        )?;
        match event.state {
            EventState::Queued | EventState::Retrying => {
                let due = event.next_attempt_at_ms.unwrap_or(event.received_at_ms);
                queue.insert(keys::queue_key(due, seq), &[])?;
            }
            // Re-queued by the next start, like after a stop mid-attempt.
            EventState::Processing => {
                inflight.insert(key, &[])?;
            }
            EventState::Done | EventState::Dead => {}
        }
        summary.events += 1;
    }
    for t in [&payloads, &attempts] {
        for key in t.iter().keys() {
            let key = key?;
            if !events.contains_key(&key[..8.min(key.len())])? {
                t.remove(key)?;
            }
        }
    }
    Ok(summary)
}

/// Copies a data directory's store and everything beside it (secrets, exports) into `dest`,
/// which must not exist. `copy_store` makes the store's copy at the path it is given.
pub fn copy_data_dir(
    data_dir: &Path,
    dest: &Path,
    copy_store: impl FnOnce(&Path) -> Result<CopySummary>,
) -> Result<CopySummary> {
    if dest.exists() {
        return Err(StoreError::Corrupt(format!(
            "{} already exists; a backup goes into a new directory",
            dest.display()
        )));
    }
    std::fs::create_dir_all(dest).map_err(io)?;
    let summary = copy_store(&dest.join("db"))?;
    for entry in std::fs::read_dir(data_dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        if name == "db" || name.to_string_lossy().starts_with("db.") {
            continue;
        }
        copy_tree(&entry.path(), &dest.join(&name))?;
    }
    Ok(summary)
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Sled(sled::Error::Io(e))
}

/// Copies files and directories, keeping permissions (secrets stay private).
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(from).map_err(io)?;
    if meta.is_dir() {
        std::fs::create_dir_all(to).map_err(io)?;
        std::fs::set_permissions(to, meta.permissions()).map_err(io)?;
        for entry in std::fs::read_dir(from).map_err(io)? {
            let entry = entry.map_err(io)?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
    } else if meta.is_file() {
        std::fs::copy(from, to).map_err(io)?;
    }
    Ok(())
}

/// Where an interrupted compaction leaves the old and new stores.
fn compaction_paths(db_dir: &Path) -> (PathBuf, PathBuf) {
    let name = db_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "db".into());
    (
        db_dir.with_file_name(format!("{name}.compact-new")),
        db_dir.with_file_name(format!("{name}.compact-old")),
    )
}

/// Rewrites the stopped store in `db_dir` into a fresh one and swaps it in, giving back the
/// space sled keeps after large deletions. Safe to interrupt: see [`recover_compaction`].
pub fn compact(db_dir: &Path) -> Result<(u64, u64)> {
    recover_compaction(db_dir)?;
    if !db_dir.join("conf").exists() {
        return Err(StoreError::Corrupt(format!(
            "{} holds no hookd store",
            db_dir.display()
        )));
    }
    let (new, old) = compaction_paths(db_dir);
    let before = dir_size(db_dir);
    {
        let db = sled::Config::new().path(db_dir).open()?;
        copy_db(&db, &new)?;
        let report = check::check_db(&sled::Config::new().path(&new).open()?)?;
        if !report.consistent() {
            return Err(StoreError::Corrupt(format!(
                "the compacted copy in {} does not check out; the store was left as it was",
                new.display()
            )));
        }
    }
    // Two renames: the new store is complete and flushed before the old one moves aside, and
    // `recover_compaction` finishes or undoes a swap that was cut between them.
    std::fs::rename(db_dir, &old).map_err(io)?;
    std::fs::rename(&new, db_dir).map_err(io)?;
    std::fs::remove_dir_all(&old).map_err(io)?;
    Ok((before, dir_size(db_dir)))
}

/// Finishes or undoes a compaction that was interrupted: run before the store is opened.
pub fn recover_compaction(db_dir: &Path) -> Result<()> {
    let (new, old) = compaction_paths(db_dir);
    if old.exists() {
        if db_dir.exists() {
            // The swap happened; only the old store's removal was cut short.
            std::fs::remove_dir_all(&old).map_err(io)?;
        } else {
            // Cut between the two renames: put the old store back.
            std::fs::rename(&old, db_dir).map_err(io)?;
        }
    }
    if new.exists() {
        std::fs::remove_dir_all(&new).map_err(io)?;
    }
    Ok(())
}

/// Bytes of the files under `dir` (0 for what cannot be read).
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
