//! Fasten Connect's records on PostgreSQL: connections and export records as JSON (the
//! embedded store's shapes), and the resource index as rows, so every instance finds a
//! resource whichever one stored its export. The export files themselves are in
//! `exports_dir`, which cluster mode requires to be shared storage (docs/cluster.md).

use super::{db, wait, Inner, PgStore, Result};
use crate::store::fasten::{Connection, ExportRecord, ResourceLoc};
use crate::store::StoreError;
use std::sync::Arc;

fn from_json<T: serde::de::DeserializeOwned>(what: &str, v: serde_json::Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| StoreError::Unreadable {
        record: what.into(),
        detail: e.to_string(),
    })
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| StoreError::Encode(e.to_string()))
}

fn exports_of(rows: Vec<tokio_postgres::Row>) -> Result<Vec<ExportRecord>> {
    rows.into_iter()
        .map(|r| from_json("hookd_exports record", r.get(0)))
        .collect()
}

/// Resource entries written per statement.
const INDEX_BATCH: usize = 1_000;

/// Writes a connection's index entries as an export streams in, a thousand rows per
/// statement. [`PgIndexer::flush`] writes the rest; the export record is stored after it.
pub struct PgIndexer {
    runtime: tokio::runtime::Handle,
    inner: Arc<Inner>,
    connection: String,
    rows: Vec<(String, String, ResourceLoc)>,
}

impl PgIndexer {
    pub fn add(&mut self, resource_type: &str, id: &str, loc: &ResourceLoc) -> Result<()> {
        self.rows
            .push((resource_type.to_string(), id.to_string(), loc.clone()));
        if self.rows.len() >= INDEX_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.rows);
        let (inner, connection) = (self.inner.clone(), self.connection.clone());
        wait(&self.runtime, async move {
            let (mut types, mut ids, mut tasks, mut files, mut offsets, mut lens) =
                (vec![], vec![], vec![], vec![], vec![], vec![]);
            for (t, id, loc) in rows {
                types.push(t);
                ids.push(id);
                tasks.push(loc.task_id);
                files.push(loc.file);
                offsets.push(loc.offset as i64);
                lens.push(loc.len as i64);
            }
            inner
                .client()
                .await?
                .execute(
                    "INSERT INTO hookd_resources
                         (connection, resource_type, id, task_id, file, \"offset\", len)
                     SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[],
                         $6::int8[], $7::int8[])
                     ON CONFLICT (connection, resource_type, id) DO UPDATE
                         SET task_id = excluded.task_id, file = excluded.file,
                             \"offset\" = excluded.\"offset\", len = excluded.len",
                    &[&connection, &types, &ids, &tasks, &files, &offsets, &lens],
                )
                .await
                .map_err(db)?;
            Ok(())
        })?
    }
}

impl PgStore {
    /// One connection.
    pub fn connection(&self, id: &str) -> Result<Option<Connection>> {
        let id = id.to_string();
        self.block(move |inner| async move {
            let row = inner
                .client()
                .await?
                .query_opt("SELECT record FROM hookd_connections WHERE id = $1", &[&id])
                .await
                .map_err(db)?;
            row.map(|r| from_json("hookd_connections record", r.get(0)))
                .transpose()
        })
    }

    /// Every connection, ordered by id.
    pub fn connections(&self) -> Result<Vec<Connection>> {
        self.block(|inner| async move {
            let rows = inner
                .client()
                .await?
                .query("SELECT record FROM hookd_connections ORDER BY id", &[])
                .await
                .map_err(db)?;
            rows.into_iter()
                .map(|r| from_json("hookd_connections record", r.get(0)))
                .collect()
        })
    }

    /// Reads, changes and writes one connection atomically: compare-and-swap on the whole
    /// record, so instances changing one connection together never lose each other's
    /// changes (`change` runs again on the newer record).
    pub fn update_connection<T>(
        &self,
        id: &str,
        mut change: impl FnMut(&mut Connection) -> T,
    ) -> Result<(Connection, T)> {
        loop {
            let old = self.connection(id)?;
            let mut c = old.clone().unwrap_or_else(|| Connection {
                org_connection_id: id.to_string(),
                ..Connection::default()
            });
            let out = change(&mut c);
            let (id_owned, new, old_json) = (
                id.to_string(),
                to_json(&c)?,
                old.as_ref().map(to_json).transpose()?,
            );
            let swapped = self.block(move |inner| async move {
                let client = inner.client().await?;
                let n = match old_json {
                    None => {
                        client
                            .execute(
                                "INSERT INTO hookd_connections (id, record) VALUES ($1, $2)
                             ON CONFLICT (id) DO NOTHING",
                                &[&id_owned, &new],
                            )
                            .await
                    }
                    Some(old) => {
                        client
                            .execute(
                                "UPDATE hookd_connections SET record = $2
                             WHERE id = $1 AND record = $3",
                                &[&id_owned, &new, &old],
                            )
                            .await
                    }
                }
                .map_err(db)?;
                Ok(n == 1)
            })?;
            if swapped {
                return Ok((c, out));
            }
        }
    }

    /// An indexer for the resources of one connection's export.
    pub fn resource_indexer(
        &self,
        connection: &str,
    ) -> Result<crate::store::fasten::ResourceIndexer> {
        Ok(crate::store::fasten::ResourceIndexer::pg(PgIndexer {
            runtime: self.runtime().handle().clone(),
            inner: self.inner.clone(),
            connection: connection.to_string(),
            rows: Vec::new(),
        }))
    }

    /// Stores an export's record, committed before it returns.
    pub async fn put_export(&self, record: &ExportRecord) -> Result<()> {
        let (conn, task, json) = (
            record.org_connection_id.clone(),
            record.task_id.clone(),
            to_json(record)?,
        );
        self.run(move |inner| async move {
            inner
                .client()
                .await?
                .execute(
                    "INSERT INTO hookd_exports (connection, task_id, record) VALUES ($1, $2, $3)
                     ON CONFLICT (connection, task_id) DO UPDATE SET record = excluded.record",
                    &[&conn, &task, &json],
                )
                .await
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    /// One stored export.
    pub fn export(&self, connection: &str, task_id: &str) -> Result<Option<ExportRecord>> {
        let (c, t) = (connection.to_string(), task_id.to_string());
        self.block(move |inner| async move {
            let rows = inner
                .client()
                .await?
                .query(
                    "SELECT record FROM hookd_exports WHERE connection = $1 AND task_id = $2",
                    &[&c, &t],
                )
                .await
                .map_err(db)?;
            Ok(exports_of(rows)?.pop())
        })
    }

    /// A stored export by its task alone.
    pub fn export_by_task(&self, task_id: &str) -> Result<Option<ExportRecord>> {
        let t = task_id.to_string();
        self.block(move |inner| async move {
            let rows = inner
                .client()
                .await?
                .query("SELECT record FROM hookd_exports WHERE task_id = $1", &[&t])
                .await
                .map_err(db)?;
            Ok(exports_of(rows)?.pop())
        })
    }

    /// A connection's stored exports, by task id.
    pub fn exports(&self, connection: &str) -> Result<Vec<ExportRecord>> {
        let c = connection.to_string();
        self.block(move |inner| async move {
            let rows = inner
                .client()
                .await?
                .query(
                    "SELECT record FROM hookd_exports WHERE connection = $1 ORDER BY task_id",
                    &[&c],
                )
                .await
                .map_err(db)?;
            exports_of(rows)
        })
    }

    /// Where a resource is, if its export is stored.
    pub fn resource(
        &self,
        connection: &str,
        resource_type: &str,
        id: &str,
    ) -> Result<Option<ResourceLoc>> {
        let (c, t, i) = (
            connection.to_string(),
            resource_type.to_string(),
            id.to_string(),
        );
        self.block(move |inner| async move {
            let row = inner
                .client()
                .await?
                .query_opt(
                    "SELECT r.task_id, r.file, r.\"offset\", r.len FROM hookd_resources r
                     JOIN hookd_exports e ON e.connection = r.connection AND e.task_id = r.task_id
                     WHERE r.connection = $1 AND r.resource_type = $2 AND r.id = $3",
                    &[&c, &t, &i],
                )
                .await
                .map_err(db)?;
            Ok(row.map(|r| ResourceLoc {
                task_id: r.get(0),
                file: r.get(1),
                offset: r.get::<_, i64>(2) as u64,
                len: r.get::<_, i64>(3) as u64,
            }))
        })
    }

    /// Removes a connection's export records and index entries (its files are the caller's):
    /// the records removed and the number of index entries.
    pub async fn remove_connection_data(
        &self,
        connection: &str,
    ) -> Result<(Vec<ExportRecord>, u64)> {
        let c = connection.to_string();
        self.run(move |inner| async move {
            let mut client = inner.client().await?;
            let tx = client.transaction().await.map_err(db)?;
            let rows = tx
                .query(
                    "DELETE FROM hookd_exports WHERE connection = $1 RETURNING record",
                    &[&c],
                )
                .await
                .map_err(db)?;
            let removed = tx
                .execute("DELETE FROM hookd_resources WHERE connection = $1", &[&c])
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            let mut exports = exports_of(rows)?;
            exports.sort_by(|a, b| a.task_id.cmp(&b.task_id));
            Ok((exports, removed))
        })
        .await
    }

    /// Removes one export's record and index entries; returns the entries removed.
    pub fn remove_export_data(&self, connection: &str, task_id: &str) -> Result<u64> {
        let (c, t) = (connection.to_string(), task_id.to_string());
        self.block(move |inner| async move {
            let mut client = inner.client().await?;
            let tx = client.transaction().await.map_err(db)?;
            let removed = tx
                .execute(
                    "DELETE FROM hookd_resources WHERE connection = $1 AND task_id = $2",
                    &[&c, &t],
                )
                .await
                .map_err(db)?;
            tx.execute(
                "DELETE FROM hookd_exports WHERE connection = $1 AND task_id = $2",
                &[&c, &t],
            )
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)?;
            Ok(removed)
        })
    }
}
