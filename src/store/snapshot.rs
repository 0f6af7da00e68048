//! Consistent copies of the store: online backup, offline backup and compaction.
//!
//! sled has no snapshot, and copying its directory while it writes can give a copy that does
//! not open. So a copy is made record by record into a fresh store while hookd keeps
//! receiving (receiving is not paused at all). Keys copied at different moments can disagree
//! about events that changed during the copy, so the copy is then repaired from its primary
//! records: dedup keys, queue and inflight entries are rebuilt from the event and status
//! records (a new event after the copied claim cursor needs none); statuses and attempts
//! without their event are dropped; the indexes are rebuilt from the delivery records.
//! Every event acknowledged before the copy began has its record in the source for the
//! whole copy: only retention removes one, and only a finished event past
//! the window. Retention may move an unfinished event from its delivery's record to one of
//! its own, which lies after it in key order, so the copy finds it in one place or both.
//! So it is in the copy, queued if it had not finished.
//!
//! A fresh copy holds no garbage, which is also how compaction gives disk space back.

use super::codec::{self, StatusRec};
use super::keys;
use super::model::EventState;
use super::tx;
use super::{check, from_io, open, Db, Result, SledStore, StoreError};
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
    /// Records dropped from the copy because they were incomplete in it.
    pub dropped_incomplete: u64,
    /// Size of the copy on disk, in bytes.
    pub bytes: u64,
}

impl SledStore {
    /// Copies the running store into a fresh store at `dest` (which must not exist yet).
    /// Blocking: run it on a blocking thread.
    pub fn backup_to(&self, dest: &Path) -> Result<CopySummary> {
        copy_db(&self.shared.h()?.db, dest)
    }
}

/// Opens a stopped store of the current format for copying.
fn open_stopped(src: &Path) -> Result<sled::Db> {
    if !src.join("conf").exists() {
        return Err(StoreError::NotAStore(src.to_path_buf()));
    }
    let db = open::open_guarded(src, 64)?;
    match open::stored_format(&db)? {
        Some(found) if open::reads_as_is(found) => Ok(db),
        Some(found) if found > open::FORMAT => Err(StoreError::NewerFormat {
            path: src.to_path_buf(),
            found,
            known: open::FORMAT,
        }),
        _ => Err(StoreError::Damaged {
            path: src.to_path_buf(),
            detail: "the store is in data format 1; start hookd on it once to migrate it".into(),
        }),
    }
}

/// Copies the stopped store in `src` into a fresh store at `dest`.
pub fn backup_offline(src: &Path, dest: &Path) -> Result<CopySummary> {
    copy_db(&open_stopped(src)?, dest)
}

/// Copies every tree of `src` into a fresh sled store at `dest`, then flushes it.
pub(super) fn copy_trees(src: &sled::Db, dest: &Path) -> Result<sled::Db> {
    if dest.exists() {
        return Err(StoreError::Exists(dest.to_path_buf()));
    }
    let out = sled::Config::new().path(dest).open().db()?;
    for name in src.tree_names() {
        let from = src.open_tree(&name).db()?;
        let to = out.open_tree(&name).db()?;
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for item in from.iter() {
            let (k, v) = item.db()?;
            batch.insert(k, v);
            n += 1;
            if n % COPY_BATCH == 0 {
                to.apply_batch(std::mem::take(&mut batch)).db()?;
            }
            if n % FLUSH_EVERY == 0 {
                out.flush().db()?;
            }
        }
        to.apply_batch(batch).db()?;
    }
    Ok(out)
}

fn copy_db(src: &sled::Db, dest: &Path) -> Result<CopySummary> {
    let out = copy_trees(src, dest)?;
    let mut summary = repair(&out)?;
    // The repair rebuilt the indexes in this build's form: the copy is a store of this
    // build's format, whatever the source's (an older build must refuse it).
    open::stamp(&out, None)?;
    summary.bytes = out.size_on_disk().db()?;
    Ok(summary)
}

fn remove_kind(log: &sled::Tree, kind: u8) -> Result<()> {
    let mut batch = sled::Batch::default();
    let mut n = 0;
    for key in log.range(keys::kind_range(kind)).keys() {
        batch.remove(key.db()?);
        n += 1;
        if n % COPY_BATCH == 0 {
            log.apply_batch(std::mem::take(&mut batch)).db()?;
        }
    }
    log.apply_batch(batch).db()
}

/// Makes a copied store's records agree again (see the module comment).
fn repair(db: &sled::Db) -> Result<CopySummary> {
    let log = db.open_tree(keys::LOG_TREE).db()?;
    let mut summary = CopySummary {
        deliveries: log.range(keys::kind_range(keys::DELIVERY)).count() as u64,
        ..CopySummary::default()
    };
    for kind in [keys::DEDUP, keys::QUEUE, keys::INFLIGHT] {
        remove_kind(&log, kind)?;
    }
    super::reindex::rebuild_store(db)?;
    let mut batch = sled::Batch::default();
    let cursor = tx::stored_u64(&log, keys::CURSOR)?;
    let mut kept = std::collections::HashSet::new();
    for item in tx::all_events(&log) {
        let (seq, key, bytes) = item?;
        let Ok((rec, _)) = codec::decode_event_at(seq, &bytes) else {
            batch.remove(key);
            summary.dropped_incomplete += 1;
            continue;
        };
        // Copied in both places while retention moved it (see the module comment): the
        // delivery's record keeps it, and the record of its own, seen first, goes.
        if !kept.insert(seq) {
            batch.remove(&keys::id_key(keys::EVENT, seq));
            continue;
        }
        let stored = log.get(keys::id_key(keys::STATUS, seq)).db()?.map(|b| {
            codec::decode::<StatusRec>("status", &b)
                .unwrap_or_else(|_| StatusRec::fresh(rec.received_at_ms))
        });
        batch.insert(
            keys::dedup_key(&rec.endpoint, &rec.event_id),
            &keys::u64_bytes(seq),
        );
        let new = tx::found_after_cursor(&key, seq, cursor);
        match stored {
            // A new event after the claim cursor: a claim finds it there.
            None if new => {}
            // One the copied cursor has passed although its claim is not in the copy: it
            // gets a status and a queue entry, like an event re-queued after a stop.
            None => {
                let status = StatusRec::fresh(rec.received_at_ms);
                batch.insert(&keys::id_key(keys::STATUS, seq), codec::encode(&status)?);
                batch.insert(&keys::queue_key(rec.received_at_ms, seq), &[]);
            }
            Some(status) => match status.state {
                EventState::Queued | EventState::Retrying => {
                    let due = status.next_attempt_at_ms.unwrap_or(rec.received_at_ms);
                    batch.insert(&keys::queue_key(due, seq), &[]);
                }
                // Re-queued by the next start, like after a stop mid-attempt.
                EventState::Processing | EventState::Done | EventState::Dead => {}
            },
        }
        summary.events += 1;
        if summary.events % COPY_BATCH as u64 == 0 {
            log.apply_batch(std::mem::take(&mut batch)).db()?;
        }
    }
    for kind in [keys::STATUS, keys::ATTEMPT] {
        for key in log.range(keys::kind_range(kind)).keys() {
            let key = key.db()?;
            let seq = keys::key_id(&key).unwrap_or(0);
            if !kept.contains(&seq) {
                batch.remove(key);
            }
        }
    }
    log.apply_batch(batch).db()?;
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
        return Err(StoreError::Exists(dest.to_path_buf()));
    }
    std::fs::create_dir_all(dest).map_err(from_io)?;
    let summary = copy_store(&dest.join("db"))?;
    // The copy is a store of this build's format, and says so like any other.
    super::open::write_format_file(&dest.join("db"))?;
    for entry in std::fs::read_dir(data_dir).map_err(from_io)? {
        let entry = entry.map_err(from_io)?;
        let name = entry.file_name();
        if name == "db" || name.to_string_lossy().starts_with("db.") {
            continue;
        }
        copy_tree(&entry.path(), &dest.join(&name))?;
    }
    Ok(summary)
}

/// Copies files and directories, keeping permissions (secrets stay private).
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(from).map_err(from_io)?;
    if meta.is_dir() {
        std::fs::create_dir_all(to).map_err(from_io)?;
        std::fs::set_permissions(to, meta.permissions()).map_err(from_io)?;
        for entry in std::fs::read_dir(from).map_err(from_io)? {
            let entry = entry.map_err(from_io)?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
    } else if meta.is_file() {
        std::fs::copy(from, to).map_err(from_io)?;
    }
    Ok(())
}

/// A sibling of the store directory: `db` → `db.<suffix>`.
pub(super) fn sibling(db_dir: &Path, suffix: &str) -> PathBuf {
    let name = db_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "db".into());
    db_dir.with_file_name(format!("{name}.{suffix}"))
}

/// Where an interrupted compaction leaves the old and new stores.
fn compaction_paths(db_dir: &Path) -> (PathBuf, PathBuf) {
    (
        sibling(db_dir, "compact-new"),
        sibling(db_dir, "compact-old"),
    )
}

/// Rewrites the stopped store in `db_dir` into a fresh one and swaps it in, giving back the
/// space sled keeps after large deletions. Safe to interrupt: see [`recover_compaction`].
pub fn compact(db_dir: &Path) -> Result<(u64, u64)> {
    recover_compaction(db_dir)?;
    let (new, old) = compaction_paths(db_dir);
    let before = dir_size(db_dir);
    {
        let db = open_stopped(db_dir)?;
        copy_db(&db, &new)?;
        let report = check::check_db(&reopen_own_copy(&new)?)?;
        if !report.consistent() {
            return Err(StoreError::Damaged {
                path: new.clone(),
                detail: "the compacted copy does not check out; the store was left as it was"
                    .into(),
            });
        }
    }
    // Two renames: the new store is complete and flushed before the old one moves aside, and
    // `recover_compaction` finishes or undoes a swap that was cut between them.
    std::fs::rename(db_dir, &old).map_err(from_io)?;
    std::fs::rename(&new, db_dir).map_err(from_io)?;
    std::fs::remove_dir_all(&old).map_err(from_io)?;
    Ok((before, dir_size(db_dir)))
}

/// Opens the copy this process has just written and dropped. Nobody else knows of it, so a
/// lock on it can only be the dropped handle's flusher thread, which lets go within moments:
/// wait for that (bounded) instead of failing the compaction.
fn reopen_own_copy(dir: &Path) -> Result<sled::Db> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match open::open_guarded(dir, 64) {
            Err(StoreError::Locked(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Finishes or undoes a compaction that was interrupted: run before the store is opened.
pub fn recover_compaction(db_dir: &Path) -> Result<()> {
    let (new, old) = compaction_paths(db_dir);
    if old.exists() {
        if db_dir.exists() {
            // The swap happened; only the old store's removal was cut short.
            std::fs::remove_dir_all(&old).map_err(from_io)?;
        } else {
            // Cut between the two renames: put the old store back.
            std::fs::rename(&old, db_dir).map_err(from_io)?;
        }
    }
    if new.exists() {
        std::fs::remove_dir_all(&new).map_err(from_io)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::model::AttemptOutcome;
    use crate::store::testing::{accept, attempt};
    use crate::store::Next;

    /// A live copy can catch an event in both places while retention moves it to a record
    /// of its own: the copy keeps it once, in its delivery's record, as it was (done).
    #[tokio::test]
    async fn an_event_copied_in_both_places_is_kept_once() {
        let dir = tempfile::tempdir().unwrap();
        let a = {
            let store = SledStore::open(dir.path(), 16).unwrap();
            let a = accept(&store, "evt-1").await;
            store.claim(u64::MAX / 2, 1).await.unwrap();
            let done = attempt(AttemptOutcome::Ok);
            store.finish(a.seq, done, Next::Done).unwrap();
            store.flush().await.unwrap();
            let h = store.shared.h().unwrap();
            let tx = tx::Tx::new(&h.log);
            let (rec, payload) = tx::event_of(&tx, a.seq).unwrap().unwrap();
            h.log
                .insert(
                    keys::id_key(keys::EVENT, a.seq),
                    codec::encode_event(&rec, &payload).unwrap(),
                )
                .unwrap();
            h.db.flush().unwrap();
            a
        };
        compact(dir.path()).unwrap();
        let store = SledStore::open(dir.path(), 16).unwrap();
        let h = store.shared.h().unwrap();
        assert!(!h
            .log
            .contains_key(keys::id_key(keys::EVENT, a.seq))
            .unwrap());
        assert_eq!(
            store.event(a.seq).unwrap().unwrap().state,
            crate::store::EventState::Done
        );
        let events = store
            .list_events(&Default::default(), None, 10)
            .unwrap()
            .items;
        assert_eq!(events.len(), 1);
        assert!(store.claim(u64::MAX / 2, 10).await.unwrap().is_empty());
        assert!(check::check_db(&h.db).unwrap().consistent());
    }

    /// A copy of an older store has this build's indexes, so it says this build's format:
    /// an older build would read no index in it. A rebuild the source had pending is done
    /// in the copy.
    #[tokio::test]
    async fn a_copy_of_an_older_store_is_of_this_format() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path(), 16).unwrap();
            accept(&store, "evt-1").await;
            let h = store.shared.h().unwrap();
            h.meta
                .insert(keys::FORMAT_KEY, &keys::u64_bytes(4))
                .unwrap();
            h.meta.insert(keys::REINDEXING, &[]).unwrap();
            h.db.flush().unwrap();
        }
        compact(dir.path()).unwrap();
        let db = open::open_guarded(dir.path(), 16).unwrap();
        assert_eq!(open::stored_format(&db).unwrap(), Some(open::FORMAT));
        let meta = db.open_tree(keys::META_TREE).unwrap();
        assert!(!meta.contains_key(keys::REINDEXING).unwrap());
    }
}
