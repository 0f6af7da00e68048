//! Consistency check of a data directory's store (`hookd verify-data`): every index, queue
//! and dedup entry points at a record that exists, and every record can be read and has the
//! entries it needs.
//!
//! The check never modifies what it checks: sled writes to a store when it opens it (it
//! recovers its log and may write a snapshot), so the files are copied to a temporary
//! directory and the copy is opened, under the same guard as any open: a damaged store gives
//! an error within seconds, never a panic or a hang.

use super::chunks::{self, Chunk};
use super::codec::{self, BodyRec, StatusRec};
use super::indexer::Indexed;
use super::keys::{self, IndexKind};
use super::model::EventState;
use super::tx;
use super::{open, Db, Result, StoreError};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Most problems listed one by one; the rest are only counted.
const LISTED: usize = 50;

/// What [`check`] found.
#[derive(Debug, Default)]
pub struct Report {
    /// Records per kind.
    pub counts: BTreeMap<String, u64>,
    /// The first problems found, one line each.
    pub problems: Vec<String>,
    /// All problems found.
    pub problem_count: u64,
    /// Whether a running hookd held the store while it was copied: a record being written
    /// then can show as a problem that a stopped store would not have.
    pub in_use: bool,
    /// The bytes of every key and value in the store: what its records take before sled's
    /// own overhead (its files level off at about twice this under a retention window).
    pub record_bytes: u64,
}

impl Report {
    fn problem(&mut self, text: String) {
        self.problem_count += 1;
        if self.problems.len() < LISTED {
            self.problems.push(text);
        }
    }

    /// Whether every check passed.
    pub fn consistent(&self) -> bool {
        self.problem_count == 0
    }
}

/// A copy of a store's files, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_files(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_files(&entry.path(), &to.join(entry.file_name()))?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

/// Checks the store in `db_dir` on a copy of its files in the system's temporary directory.
/// Fails if there is no store there or it cannot be opened (damaged).
pub fn check(db_dir: &Path) -> Result<Report> {
    if !db_dir.join("conf").exists() {
        return Err(StoreError::NotAStore(db_dir.to_path_buf()));
    }
    let in_use = held_by_another(&db_dir.join("db"));
    let scratch = Scratch(std::env::temp_dir().join(format!(
        "hookd-verify-{}-{}",
        std::process::id(),
        crate::clock::now_ms()
    )));
    copy_files(db_dir, &scratch.0).map_err(|e| {
        StoreError::Io(format!(
            "cannot copy {} to {} to check it: {e}",
            db_dir.display(),
            scratch.0.display()
        ))
    })?;
    let db = open::open_guarded(&scratch.0, 64).map_err(|e| match e {
        StoreError::Damaged { detail, .. } => StoreError::Damaged {
            path: db_dir.to_path_buf(),
            detail: detail.replace(
                &scratch.0.display().to_string(),
                &db_dir.display().to_string(),
            ),
        },
        other => other,
    })?;
    let report = match open::stored_format(&db)? {
        Some(found) if open::reads_as_is(found) => {
            // An older format's indexes (or those of a rebuild cut short) are rebuilt by the
            // next start: the copy's are rebuilt the same way, and checked as that leaves them.
            if open::rebuilds_indexes(&db, found)? {
                super::reindex::rebuild_store(&db)?;
            }
            check_db(&db)
        }
        Some(found) if found > open::FORMAT => Err(StoreError::NewerFormat {
            path: db_dir.to_path_buf(),
            found,
            known: open::FORMAT,
        }),
        _ if super::migrate::is_format1(&db) => {
            let mut r = Report::default();
            r.problem(format!(
                "{} is in data format 1 (hookd 0.1.0); hookd {} migrates it when it starts on it",
                db_dir.display(),
                env!("CARGO_PKG_VERSION")
            ));
            Ok(r)
        }
        _ => Err(StoreError::Damaged {
            path: db_dir.to_path_buf(),
            detail: format!(
                "{} holds no records and no data format: the file was truncated or replaced",
                db_dir.join("db").display()
            ),
        }),
    };
    drop(db);
    report.map(|r| Report { in_use, ..r })
}

/// Whether another process holds sled's lock on the store file (a running hookd). Only
/// asks: the lock is released at once, and the file is opened read-only.
fn held_by_another(file: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(f) = std::fs::File::open(file) else {
        return false;
    };
    // sled takes an exclusive flock on this file; closing `f` drops a lock taken here.
    // SAFETY: flock on a descriptor this function owns for its whole life.
    let taken = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    taken != 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
}

pub(super) fn check_db(db: &sled::Db) -> Result<Report> {
    let log = db.open_tree(keys::LOG_TREE).db()?;
    let mut r = Report::default();
    let watermark = tx::stored_u64(&log, keys::WATERMARK)?;
    let cursor = tx::stored_u64(&log, keys::CURSOR)?;
    // Events are counted where they are found (most inside their deliveries' records).
    let kinds = [
        ("deliveries", keys::DELIVERY),
        ("statuses", keys::STATUS),
        ("dedup", keys::DEDUP),
        ("queue", keys::QUEUE),
        ("inflight", keys::INFLIGHT),
        ("attempts", keys::ATTEMPT),
        ("index", keys::INDEX),
        ("index chunks", keys::CHUNK),
    ];
    for (name, kind) in kinds {
        r.counts.insert(
            name.into(),
            log.range(keys::kind_range(kind)).count() as u64,
        );
    }

    for name in db.tree_names() {
        for item in db.open_tree(name).db()?.iter() {
            let (k, v) = item.db()?;
            r.record_bytes += (k.len() + v.len()) as u64;
        }
    }
    let events = check_records(&log, watermark, cursor, &mut r)?;
    r.counts.insert("events".into(), events.len() as u64);
    check_queue(&log, &events, &mut r)?;
    Ok(r)
}

/// The readable events, each with whether a claim finds it after the claim `cursor` (in its
/// accepted delivery's record, past the cursor) should it have no status.
type Events = HashMap<u64, bool>;

/// Events, deliveries and index entries; returns the readable events.
fn check_records(log: &sled::Tree, watermark: u64, cursor: u64, r: &mut Report) -> Result<Events> {
    // Events first: deliveries point into them. An accepted delivery's record holds its
    // event (format 4); older events have records of their own.
    let mut events = Events::new();
    for item in tx::all_events(log) {
        let (seq, key, bytes) = item?;
        match codec::decode_event_at(seq, &bytes) {
            Ok(_) => {
                events.insert(seq, tx::found_after_cursor(&key, seq, cursor));
            }
            Err(e) => r.problem(e.to_string()),
        }
    }
    let chunked = Chunked::read(log, r)?;
    let mut delivery_ids = HashSet::new();
    for item in log.range(keys::kind_range(keys::DELIVERY)) {
        let (key, bytes) = item.db()?;
        let id = keys::key_id(&key).unwrap_or(0);
        delivery_ids.insert(id);
        match codec::decode_delivery(&format!("delivery {id}"), &bytes) {
            Ok(d) => {
                if id <= watermark {
                    let item = Indexed::of(&d);
                    let entry_missing = match item.event_id_key(id) {
                        Some(entry) => !log.contains_key(entry).db()?,
                        None => false,
                    };
                    let chunk_missing = item
                        .chunked()
                        .any(|(kind, value)| !chunked.holds(kind, value, id));
                    if entry_missing || chunk_missing {
                        r.problem(format!("delivery {id} is missing an index entry"));
                    }
                }
                if let (BodyRec::Payload(_), Some(seq)) = (&d.body, d.event_seq) {
                    if !events.contains_key(&seq) {
                        r.problem(format!(
                            "delivery {id}: the event holding its body ({seq}) is gone"
                        ));
                    }
                }
            }
            // Reported above when the record holds an event.
            Err(e) if !codec::carries_event(&bytes) => r.problem(e.to_string()),
            Err(_) => {}
        }
    }
    for key in log.range(keys::kind_range(keys::INDEX)).keys() {
        match keys::index_key_id(&key.db()?) {
            Some(id) if delivery_ids.contains(&id) => {}
            Some(id) => r.problem(format!("index entry points at missing delivery {id}")),
            None => r.problem("malformed index entry".into()),
        }
    }
    for id in chunked.ids() {
        if !delivery_ids.contains(&id) {
            r.problem(format!("index chunk points at missing delivery {id}"));
        }
    }

    Ok(events)
}

/// Statuses, the queue, in-flight marks, dedup keys and attempts against the events. A new
/// event (no status) that a claim finds after the cursor needs no queue entry.
fn check_queue(log: &sled::Tree, events: &Events, r: &mut Report) -> Result<()> {
    let mut states: HashMap<u64, EventState> = HashMap::new();
    for item in log.range(keys::kind_range(keys::STATUS)) {
        let (key, bytes) = item.db()?;
        let seq = keys::key_id(&key).unwrap_or(0);
        if !events.contains_key(&seq) {
            r.problem(format!("status of missing event {seq}"));
        }
        match codec::decode::<StatusRec>(&format!("status of event {seq}"), &bytes) {
            Ok(s) => {
                states.insert(seq, s.state);
            }
            Err(e) => r.problem(e.to_string()),
        }
    }
    let state = |seq: u64| states.get(&seq).copied().unwrap_or(EventState::Queued);
    let mut queued = HashSet::new();
    for key in log.range(keys::kind_range(keys::QUEUE)).keys() {
        let seq = keys::parse_queue_key(&key.db()?).map_or(0, |(_, seq)| seq);
        queued.insert(seq);
        if !events.contains_key(&seq) {
            r.problem(format!("queue entry points at missing event {seq}"));
        } else if !matches!(state(seq), EventState::Queued | EventState::Retrying) {
            r.problem(format!(
                "queue entry for event {seq}, which is {}",
                state(seq).as_str()
            ));
        }
    }
    // Entries a format 2 build left (the next start re-queues their events).
    for key in log.range(keys::kind_range(keys::INFLIGHT)).keys() {
        let seq = keys::key_id(&key.db()?).unwrap_or(0);
        if state(seq) != EventState::Processing {
            r.problem(format!(
                "inflight entry for event {seq}, which is {}",
                state(seq).as_str()
            ));
        }
    }
    let mut deduped = HashSet::new();
    for item in log.range(keys::kind_range(keys::DEDUP)) {
        let (_, v) = item.db()?;
        let seq = keys::read_u64(&v).unwrap_or(0);
        deduped.insert(seq);
        if !events.contains_key(&seq) {
            r.problem(format!("dedup key points at missing event {seq}"));
        }
    }
    for (seq, after_cursor) in events {
        if !deduped.contains(seq) {
            r.problem(format!("event {seq} has no dedup key pointing at it"));
        }
        let new = *after_cursor && !states.contains_key(seq);
        match state(*seq) {
            s @ (EventState::Queued | EventState::Retrying) if !queued.contains(seq) && !new => {
                r.problem(format!("{} event {seq} has no queue entry", s.as_str()))
            }
            _ => {}
        }
    }
    for key in log.range(keys::kind_range(keys::ATTEMPT)).keys() {
        let seq = keys::key_id(&key.db()?).unwrap_or(0);
        if !events.contains_key(&seq) {
            r.problem(format!("attempt log of missing event {seq}"));
        }
    }
    Ok(())
}

/// What the index chunks hold, as (kind, value number, delivery id).
struct Chunked {
    values: HashMap<(IndexKind, String), u32>,
    entries: HashSet<(IndexKind, u32, u64)>,
}

impl Chunked {
    /// Reads every chunk; an unreadable one is a problem.
    fn read(log: &sled::Tree, r: &mut Report) -> Result<Chunked> {
        let mut out = Chunked {
            values: HashMap::new(),
            entries: HashSet::new(),
        };
        for item in log.range(keys::kind_range(keys::CHUNK)) {
            let (key, bytes) = item.db()?;
            let kind = chunks::KINDS
                .into_iter()
                .find(|k| key.get(1) == Some(&(*k as u8)));
            let value =
                keys::index_key_value(&key).map(|v| String::from_utf8_lossy(v).into_owned());
            let (Some(kind), Some(value), Ok(chunk)) = (kind, &value, Chunk::decode(&key, &bytes))
            else {
                r.problem(format!(
                    "unreadable index chunk of {:?} from delivery {}",
                    value.as_deref().unwrap_or_default(),
                    keys::index_key_id(&key).unwrap_or(0)
                ));
                continue;
            };
            let next = out.values.len() as u32;
            let n = *out.values.entry((kind, value.clone())).or_insert(next);
            out.entries
                .extend(chunk.ids.into_iter().map(|id| (kind, n, id)));
        }
        Ok(out)
    }

    fn holds(&self, kind: IndexKind, value: &str, id: u64) -> bool {
        self.values
            .get(&(kind, value.to_string()))
            .is_some_and(|n| self.entries.contains(&(kind, *n, id)))
    }

    /// Every delivery id some chunk holds, each once (a delivery is in up to three), in
    /// order: one problem line per missing delivery, in a stable order.
    fn ids(&self) -> BTreeSet<u64> {
        self.entries.iter().map(|(_, _, id)| *id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{accept, temp_store};

    /// A new event after the claim cursor needs no queue entry; one the cursor has passed
    /// without a claim (no status) would never run, and is reported.
    #[tokio::test]
    async fn a_waiting_event_must_be_queued_or_after_the_cursor() {
        let (_dir, store) = temp_store();
        let a = accept(&store, "evt-1").await;
        store.flush().await.unwrap();
        let h = store.shared.h().unwrap();
        assert!(check_db(&h.db).unwrap().consistent());
        h.log.insert(keys::CURSOR, &keys::u64_bytes(a.seq)).unwrap();
        let report = check_db(&h.db).unwrap();
        assert!(!report.consistent());
        assert_eq!(
            report.problems,
            [format!("queued event {} has no queue entry", a.seq)]
        );
    }

    /// Every indexed delivery must be in the chunk of each of its values, every id in a
    /// chunk must be a delivery, and every chunk readable.
    #[tokio::test]
    async fn index_chunks_must_match_the_deliveries() {
        let (_dir, store) = temp_store();
        let a = accept(&store, "evt-1").await;
        let b = accept(&store, "evt-2").await;
        store.index_now().unwrap();
        let h = store.shared.h().unwrap();
        assert!(check_db(&h.db).unwrap().consistent());
        let key = keys::chunk_key(IndexKind::Endpoint, "std", a.delivery_id);
        let mut chunk = Chunk::decode(&key, &h.log.get(&key).unwrap().unwrap()).unwrap();
        assert_eq!(chunk.ids, [a.delivery_id, b.delivery_id]);
        // b left out, an id that is no delivery in; that id also in the type's chunk,
        // reported once all the same.
        chunk.ids = vec![a.delivery_id, b.delivery_id + 1];
        h.log
            .insert(&key, chunk.encode(a.delivery_id).unwrap())
            .unwrap();
        let by_type = keys::chunk_key(IndexKind::EventType, "t", a.delivery_id);
        let mut typed = Chunk::decode(&by_type, &h.log.get(&by_type).unwrap().unwrap()).unwrap();
        typed.ids.push(b.delivery_id + 1);
        h.log
            .insert(&by_type, typed.encode(a.delivery_id).unwrap())
            .unwrap();
        let report = check_db(&h.db).unwrap();
        assert_eq!(
            report.problems,
            [
                format!("delivery {} is missing an index entry", b.delivery_id),
                format!(
                    "index chunk points at missing delivery {}",
                    b.delivery_id + 1
                ),
            ]
        );
        h.log.insert(&key, &b"\x01\xff"[..]).unwrap();
        let report = check_db(&h.db).unwrap();
        assert!(
            report.problems.contains(&format!(
                "unreadable index chunk of \"std\" from delivery {}",
                a.delivery_id
            )),
            "{:?}",
            report.problems
        );
    }
}
