//! Fasten Connect records: connections, stored EHI exports, and the resource index.
//!
//! Trees (opened on first use, so the rest of the store does not need to know them):
//! - `fasten_connections`: org_connection_id → [`Connection`].
//! - `fasten_exports`: (org_connection_id, 0, task_id) → [`ExportRecord`]; a record exists only
//!   once every file of the export is on disk under its final name.
//! - `fasten_tasks`: task_id → org_connection_id, so an export is found by its task alone.
//! - `fasten_resources`: (org_connection_id, 0, resourceType, 0, id) → where the resource's
//!   line is: (offset, length, task_id, file). One resource is read by seeking, never by
//!   loading a file. An entry may point into an export still being stored (or one whose
//!   download failed); readers check that the export record exists.
//!
//! Ids used in keys are checked by the Fasten processor to hold no NUL byte.

use super::{Db, Result, SledStore, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A patient's connection to a health system, as Fasten's events described it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub org_connection_id: String,
    /// The hookd endpoint whose events created it.
    pub endpoint: String,
    pub endpoint_id: Option<String>,
    pub brand_id: Option<String>,
    pub portal_id: Option<String>,
    pub platform_type: Option<String>,
    /// Fasten's `connection_status` (`authorized`, `revoked`, ...).
    pub status: Option<String>,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    /// When hookd asked Fasten for an export of this connection (once per connection).
    pub export_requested_at_ms: Option<u64>,
    /// Fasten's answer to that request, as text.
    pub export_request_answer: Option<String>,
    /// Set while the connection is revoked: when the revocation was received.
    pub revoked_at_ms: Option<u64>,
    /// Revocations that a newer `connection_success` ended, oldest first: once authorized
    /// again, `revoked_at_ms` is cleared, but what the patient did stays on record.
    #[serde(default)]
    pub revocations: Vec<Revocation>,
    /// `patient.ehi_export_failed` events, oldest first.
    pub failures: Vec<ExportFailure>,
    /// What `on_revoke = "delete"` removed.
    pub removed: Option<Removed>,
}

/// One failed export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportFailure {
    pub event_id: String,
    pub task_id: Option<String>,
    pub failure_reason: String,
    pub at_ms: u64,
}

/// A revocation that a newer authorization ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// When the revocation was received.
    pub revoked_at_ms: u64,
    /// When the `connection_success` that authorized the connection again was received.
    pub reauthorized_at_ms: u64,
}

/// What a revocation removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    pub at_ms: u64,
    pub exports: Vec<String>,
    pub files: u64,
    pub bytes: u64,
    pub index_entries: u64,
}

/// One stored file of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportFile {
    /// File name under the export's directory (`<name>.ndjson`).
    pub name: String,
    /// Where it was downloaded from (the link in the event).
    pub source_url: String,
    pub bytes: u64,
    /// Hex sha256 of the file.
    pub sha256: String,
    pub resources: u64,
    pub counts: BTreeMap<String, u64>,
}

/// A completely stored export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRecord {
    pub org_connection_id: String,
    pub task_id: String,
    /// The event that brought it.
    pub event_id: String,
    pub stored_at_ms: u64,
    pub files: Vec<ExportFile>,
    pub total_resources: u64,
    pub counts: BTreeMap<String, u64>,
    /// Differences from the event's `stats`: empty when they match (or were absent).
    pub mismatches: Vec<String>,
}

/// Where one resource is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceLoc {
    pub task_id: String,
    pub file: String,
    pub offset: u64,
    pub len: u64,
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Encode(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(tree: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Unreadable {
        record: format!("{tree} entry"),
        detail: e.to_string(),
    })
}

const CONNECTIONS: &str = "fasten_connections";
const EXPORTS: &str = "fasten_exports";
const TASKS: &str = "fasten_tasks";
const RESOURCES: &str = "fasten_resources";

fn key2(a: &str, b: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + b.len() + 1);
    k.extend_from_slice(a.as_bytes());
    k.push(0);
    k.extend_from_slice(b.as_bytes());
    k
}

fn prefix(a: &str) -> Vec<u8> {
    let mut k = a.as_bytes().to_vec();
    k.push(0);
    k
}

fn resource_key(connection: &str, resource_type: &str, id: &str) -> Vec<u8> {
    let mut k = key2(connection, resource_type);
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

fn encode_loc(loc: &ResourceLoc) -> Vec<u8> {
    let mut v = Vec::with_capacity(17 + loc.task_id.len() + loc.file.len());
    v.extend_from_slice(&loc.offset.to_be_bytes());
    v.extend_from_slice(&loc.len.to_be_bytes());
    v.extend_from_slice(loc.task_id.as_bytes());
    v.push(0);
    v.extend_from_slice(loc.file.as_bytes());
    v
}

fn decode_loc(v: &[u8]) -> Result<ResourceLoc> {
    let bad = || StoreError::Unreadable {
        record: format!("{RESOURCES} entry"),
        detail: "short".into(),
    };
    let offset = super::keys::read_u64(v).ok_or_else(bad)?;
    let len = super::keys::read_u64(v.get(8..).ok_or_else(bad)?).ok_or_else(bad)?;
    let rest =
        std::str::from_utf8(v.get(16..).ok_or_else(bad)?).map_err(|_| StoreError::Unreadable {
            record: format!("{RESOURCES} entry"),
            detail: "not UTF-8".into(),
        })?;
    let (task_id, file) = rest.split_once('\0').ok_or_else(bad)?;
    Ok(ResourceLoc {
        task_id: task_id.to_string(),
        file: file.to_string(),
        offset,
        len,
    })
}

/// Writes a connection's index entries as an export streams in.
///
/// Plain inserts, not batches: sled keeps the garbage of a large batch (a transaction) until
/// it ends, and peak memory grew with the batch size (about 600 MB for a 200 MB export in
/// batches of 10 000), while single inserts keep it flat. Durability comes from the flush in
/// [`Store::put_export`], which runs before the export is reported stored.
pub struct ResourceIndexer {
    kind: IndexerKind,
}

enum IndexerKind {
    Sled {
        tree: sled::Tree,
        connection: String,
    },
    Pg(super::pg::fasten::PgIndexer),
}

impl ResourceIndexer {
    pub(super) fn pg(indexer: super::pg::fasten::PgIndexer) -> ResourceIndexer {
        ResourceIndexer {
            kind: IndexerKind::Pg(indexer),
        }
    }

    /// Adds (or replaces) the entry of one resource.
    pub fn add(&mut self, resource_type: &str, id: &str, loc: &ResourceLoc) -> Result<()> {
        match &mut self.kind {
            IndexerKind::Sled { tree, connection } => {
                tree.insert(resource_key(connection, resource_type, id), encode_loc(loc))
                    .db()?;
                Ok(())
            }
            IndexerKind::Pg(pg) => pg.add(resource_type, id, loc),
        }
    }

    /// Writes what is still buffered (cluster mode writes entries in batches). Called once
    /// the export's lines are all read, before its record is stored.
    pub fn flush(&mut self) -> Result<()> {
        match &mut self.kind {
            IndexerKind::Sled { .. } => Ok(()),
            IndexerKind::Pg(pg) => pg.flush(),
        }
    }
}

/// Removals per sled batch when a connection's entries are deleted.
const REMOVE_BATCH: usize = 1_000;

impl SledStore {
    fn fasten_tree(&self, name: &str) -> Result<sled::Tree> {
        self.shared.h()?.db.open_tree(name).db()
    }

    /// One connection.
    pub fn connection(&self, id: &str) -> Result<Option<Connection>> {
        match self.fasten_tree(CONNECTIONS)?.get(id.as_bytes()).db()? {
            Some(v) => Ok(Some(from_json(CONNECTIONS, &v)?)),
            None => Ok(None),
        }
    }

    /// Every connection, ordered by id.
    pub fn connections(&self) -> Result<Vec<Connection>> {
        self.fasten_tree(CONNECTIONS)?
            .iter()
            .values()
            .map(|v| from_json(CONNECTIONS, &v.db()?))
            .collect()
    }

    /// Reads, changes and writes one connection atomically (compare-and-swap, so concurrent
    /// workers never lose each other's changes). `change` starts from a fresh record with
    /// `org_connection_id` set when none exists, and may run more than once.
    pub fn update_connection<T>(
        &self,
        id: &str,
        mut change: impl FnMut(&mut Connection) -> T,
    ) -> Result<(Connection, T)> {
        let tree = self.fasten_tree(CONNECTIONS)?;
        loop {
            let old = tree.get(id.as_bytes()).db()?;
            let mut c: Connection = match &old {
                Some(v) => from_json(CONNECTIONS, v)?,
                None => Connection {
                    org_connection_id: id.to_string(),
                    ..Connection::default()
                },
            };
            let out = change(&mut c);
            let new = to_json(&c)?;
            if tree
                .compare_and_swap(id.as_bytes(), old, Some(new))
                .db()?
                .is_ok()
            {
                return Ok((c, out));
            }
        }
    }

    /// An indexer for one connection's resources.
    pub fn resource_indexer(&self, connection: &str) -> Result<ResourceIndexer> {
        Ok(ResourceIndexer {
            kind: IndexerKind::Sled {
                tree: self.fasten_tree(RESOURCES)?,
                connection: connection.to_string(),
            },
        })
    }

    /// Records a completely stored export (and its task's connection), then flushes, so the
    /// record is on disk before the attempt is reported done.
    pub async fn put_export(&self, record: &ExportRecord) -> Result<()> {
        self.fasten_tree(EXPORTS)?
            .insert(
                key2(&record.org_connection_id, &record.task_id),
                to_json(record)?,
            )
            .db()?;
        self.fasten_tree(TASKS)?
            .insert(
                record.task_id.as_bytes(),
                record.org_connection_id.as_bytes(),
            )
            .db()?;
        self.shared.h()?.db.flush_async().await.db()?;
        Ok(())
    }

    /// One stored export.
    pub fn export(&self, connection: &str, task_id: &str) -> Result<Option<ExportRecord>> {
        match self
            .fasten_tree(EXPORTS)?
            .get(key2(connection, task_id))
            .db()?
        {
            Some(v) => Ok(Some(from_json(EXPORTS, &v)?)),
            None => Ok(None),
        }
    }

    /// A stored export found by its task id alone.
    pub fn export_by_task(&self, task_id: &str) -> Result<Option<ExportRecord>> {
        let Some(conn) = self.fasten_tree(TASKS)?.get(task_id.as_bytes()).db()? else {
            return Ok(None);
        };
        let conn = String::from_utf8_lossy(&conn).into_owned();
        self.export(&conn, task_id)
    }

    /// A connection's stored exports, ordered by task id.
    pub fn exports(&self, connection: &str) -> Result<Vec<ExportRecord>> {
        self.fasten_tree(EXPORTS)?
            .scan_prefix(prefix(connection))
            .values()
            .map(|v| from_json(EXPORTS, &v.db()?))
            .collect()
    }

    /// Where a resource is, if it is indexed and its export completely stored.
    pub fn resource(
        &self,
        connection: &str,
        resource_type: &str,
        id: &str,
    ) -> Result<Option<ResourceLoc>> {
        let Some(v) = self
            .fasten_tree(RESOURCES)?
            .get(resource_key(connection, resource_type, id))
            .db()?
        else {
            return Ok(None);
        };
        let loc = decode_loc(&v)?;
        if self.export(connection, &loc.task_id)?.is_none() {
            return Ok(None);
        }
        Ok(Some(loc))
    }

    /// Removes a connection's exports, task entries and index entries; returns the removed
    /// export records and the number of index entries. The files are the caller's.
    pub async fn remove_connection_data(
        &self,
        connection: &str,
    ) -> Result<(Vec<ExportRecord>, u64)> {
        let exports = self.exports(connection)?;
        let tasks = self.fasten_tree(TASKS)?;
        let export_tree = self.fasten_tree(EXPORTS)?;
        for e in &exports {
            tasks.remove(e.task_id.as_bytes()).db()?;
            export_tree.remove(key2(connection, &e.task_id)).db()?;
        }
        let resources = self.fasten_tree(RESOURCES)?;
        let mut removed = 0u64;
        let mut batch = sled::Batch::default();
        let mut pending = 0;
        for key in resources.scan_prefix(prefix(connection)).keys() {
            batch.remove(key.db()?);
            removed += 1;
            pending += 1;
            if pending >= REMOVE_BATCH {
                resources.apply_batch(std::mem::take(&mut batch)).db()?;
                pending = 0;
            }
        }
        resources.apply_batch(batch).db()?;
        self.shared.h()?.db.flush_async().await.db()?;
        Ok((exports, removed))
    }
}

impl SledStore {
    /// Every resource index entry of a connection: (type, id, where). For `copy-store`.
    pub fn resources(&self, connection: &str) -> Result<Vec<(String, String, ResourceLoc)>> {
        let mut out = Vec::new();
        let start = prefix(connection).len();
        for item in self.fasten_tree(RESOURCES)?.scan_prefix(prefix(connection)) {
            let (key, value) = item.db()?;
            let rest = String::from_utf8_lossy(&key[start..]).into_owned();
            if let Some((kind, id)) = rest.split_once('\0') {
                out.push((kind.to_string(), id.to_string(), decode_loc(&value)?));
            }
        }
        Ok(out)
    }

    /// Removes one export's index entries (those still pointing into it: a newer export's
    /// entry for the same resource stays), then its record and task entry, and flushes.
    /// The files are the caller's (retention removes them after this). Returns the number
    /// of index entries removed.
    pub fn remove_export_data(&self, connection: &str, task_id: &str) -> Result<u64> {
        let resources = self.fasten_tree(RESOURCES)?;
        let mut removed = 0u64;
        let mut batch = sled::Batch::default();
        let mut pending = 0;
        for item in resources.scan_prefix(prefix(connection)) {
            let (key, value) = item.db()?;
            if decode_loc(&value)?.task_id == task_id {
                batch.remove(key);
                removed += 1;
                pending += 1;
                if pending >= REMOVE_BATCH {
                    resources.apply_batch(std::mem::take(&mut batch)).db()?;
                    pending = 0;
                }
            }
        }
        resources.apply_batch(batch).db()?;
        self.fasten_tree(EXPORTS)?
            .remove(key2(connection, task_id))
            .db()?;
        self.fasten_tree(TASKS)?.remove(task_id.as_bytes()).db()?;
        self.shared.h()?.db.flush().db()?;
        Ok(removed)
    }
}

impl Connection {
    /// Notes an event about this connection at `at_ms` on `endpoint`: the endpoint if none
    /// was known, the first time it was seen, and the latest.
    pub fn seen(&mut self, endpoint: &str, at_ms: u64) {
        if self.endpoint.is_empty() {
            self.endpoint = endpoint.to_owned();
        }
        if self.first_seen_ms == 0 {
            self.first_seen_ms = at_ms;
        }
        self.last_seen_ms = self.last_seen_ms.max(at_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_location_round_trips() {
        let loc = ResourceLoc {
            task_id: "t-1".into(),
            file: "part.ndjson".into(),
            offset: 1 << 40,
            len: 77,
        };
        assert_eq!(decode_loc(&encode_loc(&loc)).unwrap(), loc);
        assert!(decode_loc(b"short").is_err());
    }

    #[test]
    fn connection_prefix_does_not_match_a_longer_id() {
        // "c1" must not see "c10"'s entries.
        assert!(!resource_key("c10", "Patient", "p").starts_with(&prefix("c1")));
    }
}
