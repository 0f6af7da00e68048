//! Opening a store without trusting sled to fail gracefully: sled 0.34 can panic on a
//! truncated file and spin for minutes on random bytes, so it opens on a thread of its own,
//! under `catch_unwind` and a time limit. Then the data format is checked: a fresh store is
//! stamped with [`FORMAT`], a format 1 store (hookd 0.1.0) is migrated, a newer one refused.
//!
//! A start-up that dies for lack of space can leave `snap.*.generating` behind, after which
//! sled reports corruption: such a file is an unfinished snapshot that sled writes before
//! renaming it into place, so it is removed before opening.

use super::{from_io, from_sled, keys, migrate, Db, Result, StoreError};
use std::path::Path;
use std::time::Duration;

/// The data format this build reads and writes.
///
/// - Format 3 differs from format 2 in one thing: a claim no longer writes an `inflight`
///   entry (the event's status says `processing`, and start-up finds it while it counts the
///   states). Format 2's `inflight` entries are still honoured once.
/// - Format 4 differs from format 3 in one thing: accepting an event writes no queue entry.
///   Claims read new events after a claim cursor ([`keys::CURSOR`]); the queue holds only
///   events claimed before (retries, re-queues, replays). An older store's queue entries
///   stay valid: restamping sets the cursor past its last event.
///
/// - Format 5 keeps the endpoint, verdict and event type indexes in chunks, one key per
///   value per indexing pass instead of one per delivery (see `chunks`). An older store's
///   indexes are rebuilt when it is restamped.
///
/// Older stores are migrated by restamping. The number changes so that an older build,
/// which would never claim an event that has no queue entry or read a chunk, refuses a
/// newer store.
pub const FORMAT: u64 = 5;

/// The first format whose indexes are chunked.
const CHUNKED_FROM: u64 = 5;

/// Formats whose records this build reads as they are (see [`FORMAT`]).
pub(super) fn reads_as_is(format: u64) -> bool {
    (2..=FORMAT).contains(&format)
}

/// How long sled may take to open a store before it is declared damaged. Healthy stores of
/// millions of records open in a second or two.
const OPEN_LIMIT: Duration = Duration::from_secs(20);

/// Opens the store in `dir`, migrated to and stamped with [`FORMAT`].
pub(super) fn open(dir: &Path, cache_mb: u64) -> Result<sled::Db> {
    migrate::recover(dir)?;
    let db = open_guarded(dir, cache_mb)?;
    match stored_format(&db)? {
        Some(FORMAT) => {
            // A restamp cut short during its rebuild left the file naming the old format.
            let resumed = finish_reindex(&db)?;
            if resumed || !dir.join(FORMAT_FILE).exists() {
                write_format_file(dir)?; // a copy made by backup or compaction
            }
            Ok(db)
        }
        Some(found) if reads_as_is(found) => {
            tracing::info!(store = %dir.display(), "data format {found} restamped as format {FORMAT}");
            stamp(&db, Some(found))?;
            write_format_file(dir)?;
            Ok(db)
        }
        Some(found) if found > FORMAT => Err(StoreError::NewerFormat {
            path: dir.to_path_buf(),
            found,
            known: FORMAT,
        }),
        Some(found) => Err(StoreError::Damaged {
            path: dir.to_path_buf(),
            detail: format!("unknown data format {found}"),
        }),
        None if migrate::is_format1(&db) => {
            drop(db);
            migrate::migrate(dir, cache_mb)?;
            let db = open_guarded(dir, cache_mb)?;
            match stored_format(&db)? {
                Some(FORMAT) => {
                    write_format_file(dir)?;
                    Ok(db)
                }
                _ => Err(StoreError::Damaged {
                    path: dir.to_path_buf(),
                    detail: "the migrated store carries no format".into(),
                }),
            }
        }
        None if dir.join(FORMAT_FILE).exists() => Err(StoreError::Damaged {
            path: dir.to_path_buf(),
            detail: format!(
                "{} holds no records although {} says it was written in format {FORMAT}:                  the file was truncated or replaced",
                dir.join("db").display(),
                dir.join(FORMAT_FILE).display()
            ),
        }),
        None => {
            stamp(&db, None)?;
            write_format_file(dir)?;
            Ok(db)
        }
    }
}

/// The file beside sled's that names the data format, so that a store whose records are
/// gone is told apart from a new one.
pub(super) const FORMAT_FILE: &str = "hookd-format";

/// Writes [`FORMAT_FILE`] durably.
pub(super) fn write_format_file(dir: &Path) -> Result<()> {
    use std::io::Write;
    let path = dir.join(FORMAT_FILE);
    let mut file = std::fs::File::create(&path).map_err(from_io)?;
    file.write_all(format!("{FORMAT}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(from_io)
}

/// The format recorded in a store, if any.
pub(super) fn stored_format(db: &sled::Db) -> Result<Option<u64>> {
    let meta = db.open_tree(keys::META_TREE).db()?;
    Ok(meta
        .get(keys::FORMAT_KEY)
        .db()?
        .and_then(|v| keys::read_u64(&v)))
}

/// Records [`FORMAT`] in a store, durably.
pub(super) fn stamp(db: &sled::Db, from: Option<u64>) -> Result<()> {
    let log = db.open_tree(keys::LOG_TREE).db()?;
    let meta = db.open_tree(keys::META_TREE).db()?;
    // The rebuild is noted before the new format is stamped, both before it starts: a start
    // cut short during it resumes it, and an older build refuses the half-rebuilt store.
    if from.is_some_and(|f| f < CHUNKED_FROM) {
        meta.insert(keys::REINDEXING, &[]).db()?;
    }
    super::queue::cursor_past_all(&log)?;
    meta.insert(keys::FORMAT_KEY, &keys::u64_bytes(FORMAT))
        .db()?;
    db.flush().db()?;
    finish_reindex(db).map(drop)
}

/// Whether a rebuild of the indexes that a restamp began is unfinished.
fn reindex_pending(db: &sled::Db) -> Result<bool> {
    db.open_tree(keys::META_TREE)
        .db()?
        .contains_key(keys::REINDEXING)
        .db()
}

/// Whether opening a store of format `found` rebuilds its indexes: an older form's, or a
/// rebuild a restamp began and did not finish.
pub(super) fn rebuilds_indexes(db: &sled::Db, found: u64) -> Result<bool> {
    Ok(found < CHUNKED_FROM || reindex_pending(db)?)
}

/// Runs (or, after a start cut short, resumes) the rebuild of the indexes a restamp began;
/// returns whether there was one to run.
fn finish_reindex(db: &sled::Db) -> Result<bool> {
    if !reindex_pending(db)? {
        return Ok(false);
    }
    tracing::info!("rebuilding the indexes in chunks (data format {CHUNKED_FROM}); a large store takes a while");
    super::reindex::rebuild_store(db)?;
    db.flush().db()?;
    Ok(true)
}

/// Opens sled in `dir` on its own thread: a panic becomes [`StoreError::Damaged`], and so
/// does an open that takes longer than [`OPEN_LIMIT`] (the thread is left behind; the caller
/// exits).
pub(super) fn open_guarded(dir: &Path, cache_mb: u64) -> Result<sled::Db> {
    // A store closed a moment ago (a restart, a tool that just finished with it) can stay
    // locked for a few milliseconds while sled's background flusher winds down: a lock is
    // tried again for a short while before it is reported as another process's.
    let deadline = std::time::Instant::now() + LOCK_PATIENCE;
    loop {
        match open_once(dir, cache_mb) {
            Err(StoreError::Locked(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// How long a locked store is waited for (see [`open_guarded`]).
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

fn open_once(dir: &Path, cache_mb: u64) -> Result<sled::Db> {
    remove_unfinished_snapshots(dir)?;
    let config = sled::Config::new()
        .path(dir)
        .cache_capacity(cache_mb.saturating_mul(1024 * 1024))
        .mode(sled::Mode::HighThroughput);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("hookd-open".into())
        .spawn(move || {
            let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()));
            let _ = tx.send(opened);
        })
        .map_err(from_io)?;
    let damaged = |detail: String| StoreError::Damaged {
        path: dir.to_path_buf(),
        detail,
    };
    match rx.recv_timeout(OPEN_LIMIT) {
        Ok(Ok(Ok(db))) => Ok(db),
        Ok(Ok(Err(e))) => Err(classify(dir, e)),
        Ok(Err(panic)) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "sled panicked".into());
            Err(damaged(format!("{}: {what}", dir.join("db").display())))
        }
        Err(_) => Err(damaged(format!(
            "{} did not open within {} s",
            dir.join("db").display(),
            OPEN_LIMIT.as_secs()
        ))),
    }
}

fn classify(dir: &Path, e: sled::Error) -> StoreError {
    match e {
        sled::Error::Io(io)
            if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock") =>
        {
            StoreError::Locked(dir.to_path_buf())
        }
        sled::Error::Corruption { .. } | sled::Error::ReportableBug(_) => StoreError::Damaged {
            path: dir.to_path_buf(),
            detail: format!("{}: {e}", dir.join("db").display()),
        },
        other => from_sled(other),
    }
}

/// Removes the snapshots sled did not finish writing (see the module comment).
fn remove_unfinished_snapshots(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(()); // a new store: nothing there yet
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(file = %entry.path().display(), "removing a snapshot left unfinished by an earlier start");
            std::fs::remove_file(entry.path()).map_err(from_io)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_in_use_is_refused_and_one_just_closed_opens() {
        let dir = tempfile::tempdir().unwrap();
        let first = open_guarded(dir.path(), 16).unwrap();
        let started = std::time::Instant::now();
        let e = open_guarded(dir.path(), 16).unwrap_err();
        assert!(matches!(e, StoreError::Locked(_)), "{e}");
        assert!(
            started.elapsed() < LOCK_PATIENCE * 3,
            "{:?}",
            started.elapsed()
        );
        // Closed a moment ago: its lock goes with it, and the next open waits for that.
        drop(first);
        let again = open_guarded(dir.path(), 16).unwrap();
        drop(again);
        let raw = sled::open(dir.path()).unwrap();
        drop(raw);
        open_guarded(dir.path(), 16).expect("a store closed just now opens");
    }
}
