//! Consistency check of a stopped data directory (`hookd verify-data`): every index and
//! queue entry points at a record that exists, and every record has the entries it needs.

use super::keys;
use super::model::{Delivery, Event, EventState};
use super::{writer, Result};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

/// Most problems listed one by one; the rest are only counted.
const LISTED: usize = 50;

/// What [`check`] found.
#[derive(Debug, Default)]
pub struct Report {
    /// Entries per tree.
    pub counts: BTreeMap<String, u64>,
    /// The first problems found, one line each.
    pub problems: Vec<String>,
    /// All problems found.
    pub problem_count: u64,
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

/// Opens the store in `db_dir` without starting anything and checks its indexes agree.
/// Fails if the store is in use (sled holds a lock) or does not exist.
pub fn check(db_dir: &Path) -> Result<Report> {
    if !db_dir.join("conf").exists() {
        return Err(super::StoreError::Corrupt(format!(
            "{} holds no hookd store",
            db_dir.display()
        )));
    }
    let db = sled::Config::new().path(db_dir).open()?;
    check_db(&db)
}

pub(super) fn check_db(db: &sled::Db) -> Result<Report> {
    let tree = |name: &str| db.open_tree(name);
    let (deliveries, idx, latency) = (tree("deliveries")?, tree("delivery_idx")?, tree("latency")?);
    let (events, payloads, dedup) = (tree("events")?, tree("payloads")?, tree("dedup")?);
    let (queue, inflight, attempts) = (tree("queue")?, tree("inflight")?, tree("attempts")?);
    let mut r = Report::default();
    for (name, t) in [
        ("deliveries", &deliveries),
        ("delivery_idx", &idx),
        ("latency", &latency),
        ("events", &events),
        ("payloads", &payloads),
        ("dedup", &dedup),
        ("queue", &queue),
        ("inflight", &inflight),
        ("attempts", &attempts),
    ] {
        r.counts.insert(name.to_owned(), t.len() as u64);
    }

    let mut delivery_ids = HashSet::new();
    for item in deliveries.iter() {
        let (key, bytes) = item?;
        let id = keys::read_u64(&key).unwrap_or(0);
        delivery_ids.insert(id);
        match serde_json::from_slice::<Delivery>(&bytes) {
            Ok(d) => {
                for entry in writer::index_entries(&d) {
                    if !idx.contains_key(&entry)? {
                        r.problem(format!("delivery {id} is missing an index key"));
                    }
                }
            }
            Err(e) => r.problem(format!("delivery {id} is unreadable: {e}")),
        }
    }
    for key in idx.iter().keys() {
        let key = key?;
        match keys::index_key_id(&key) {
            Some(id) if delivery_ids.contains(&id) => {}
            Some(id) => r.problem(format!(
                "delivery index key points at missing delivery {id}"
            )),
            None => r.problem("malformed delivery index key".into()),
        }
    }
    for key in latency.iter().keys() {
        let id = keys::read_u64(&key?).unwrap_or(0);
        if !delivery_ids.contains(&id) {
            r.problem(format!("latency entry for missing delivery {id}"));
        }
    }

    let queued: HashSet<u64> = queue
        .iter()
        .keys()
        .map(|k| k.map(|k| keys::parse_queue_key(&k).map_or(0, |(_, seq)| seq)))
        .collect::<sled::Result<_>>()?;
    let running: HashSet<u64> = inflight
        .iter()
        .keys()
        .map(|k| k.map(|k| keys::read_u64(&k).unwrap_or(0)))
        .collect::<sled::Result<_>>()?;
    let mut states = BTreeMap::new();
    for item in events.iter() {
        let (key, bytes) = item?;
        let seq = keys::read_u64(&key).unwrap_or(0);
        let e: Event = match serde_json::from_slice(&bytes) {
            Ok(e) => e,
            Err(e) => {
                r.problem(format!("event {seq} is unreadable: {e}"));
                continue;
            }
        };
        states.insert(seq, e.state);
        if !payloads.contains_key(key)? {
            r.problem(format!("event {seq} has no payload"));
        }
        let dedup_seq = dedup
            .get(keys::dedup_key(&e.endpoint, &e.event_id))?
            .and_then(|v| keys::read_u64(&v));
        if dedup_seq != Some(seq) {
            r.problem(format!("event {seq} has no dedup key pointing at it"));
        }
        let waiting = matches!(e.state, EventState::Queued | EventState::Retrying);
        if waiting && !queued.contains(&seq) {
            r.problem(format!(
                "{} event {seq} has no queue entry",
                e.state.as_str()
            ));
        }
        if e.state == EventState::Processing && !running.contains(&seq) {
            r.problem(format!("processing event {seq} has no inflight entry"));
        }
    }
    for seq in &queued {
        match states.get(seq) {
            Some(EventState::Queued | EventState::Retrying) => {}
            Some(s) => r.problem(format!(
                "queue entry for event {seq}, which is {}",
                s.as_str()
            )),
            None => r.problem(format!("queue entry points at missing event {seq}")),
        }
    }
    for seq in &running {
        match states.get(seq) {
            Some(EventState::Processing) => {}
            Some(s) => r.problem(format!(
                "inflight entry for event {seq}, which is {}",
                s.as_str()
            )),
            None => r.problem(format!("inflight entry points at missing event {seq}")),
        }
    }
    for item in dedup.iter() {
        let (_, v) = item?;
        let seq = keys::read_u64(&v).unwrap_or(0);
        if !states.contains_key(&seq) {
            r.problem(format!("dedup key points at missing event {seq}"));
        }
    }
    for key in payloads.iter().keys() {
        let seq = keys::read_u64(&key?).unwrap_or(0);
        if !states.contains_key(&seq) {
            r.problem(format!("payload of missing event {seq}"));
        }
    }
    for key in attempts.iter().keys() {
        let seq = keys::read_u64(&key?).unwrap_or(0);
        if !states.contains_key(&seq) {
            r.problem(format!("attempt log of missing event {seq}"));
        }
    }
    Ok(r)
}
