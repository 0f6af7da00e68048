//! What the Fasten processor pushes to the integrator's service (see `process::push`): the
//! payloads of `hookd.export.stored`, `hookd.connection.revoked` and
//! `hookd.connection.deleted`, with the admin API paths that fetch what they name.

use super::{store_err, FastenProcessor};
use crate::config::OnRevoke;
use crate::process::push::{self, paths};
use crate::process::{Job, ProcessError};
use crate::store::fasten::{ExportRecord, Removed};
use serde_json::json;

impl FastenProcessor {
    /// Queues `hookd.export.stored` for `record`, stored by `job`'s event.
    pub(super) async fn push_export(
        &self,
        job: &Job,
        record: &ExportRecord,
    ) -> Result<(), ProcessError> {
        let Some(p) = &self.push else { return Ok(()) };
        let conn = &record.org_connection_id;
        let task = &record.task_id;
        // No `source_url`: Fasten's signed links are credentials while they last.
        let files: Vec<_> = record
            .files
            .iter()
            .map(|f| {
                json!({
                    "name": f.name,
                    "bytes": f.bytes,
                    "sha256": f.sha256,
                    "resources": f.resources,
                    "counts": f.counts,
                    "path": paths::file(task, &f.name),
                })
            })
            .collect();
        let data = json!({
            "org_connection_id": conn,
            "task_id": task,
            "endpoint": job.event.endpoint,
            "fasten_event_id": record.event_id,
            "stored_at_ms": record.stored_at_ms,
            "total_resources": record.total_resources,
            "counts": record.counts,
            "mismatches": record.mismatches,
            "files": files,
            "paths": {
                "connection": paths::connection(conn),
                "resource": paths::resource_template(conn),
            },
        });
        p.send(push::EXPORT_STORED, &job.event.event_id, data)
            .await
            .map_err(store_err)
    }

    /// Queues `hookd.connection.revoked` for `conn`, revoked by `job`'s event.
    pub(super) async fn push_revoked(
        &self,
        job: &Job,
        conn: &str,
        status: Option<String>,
        revoked_at_ms: Option<u64>,
    ) -> Result<(), ProcessError> {
        let Some(p) = &self.push else { return Ok(()) };
        let data = json!({
            "org_connection_id": conn,
            "endpoint": job.event.endpoint,
            "fasten_event_id": job.event.event_id,
            "status": status,
            "revoked_at_ms": revoked_at_ms,
            "on_revoke": match self.config.on_revoke {
                OnRevoke::Keep => "keep",
                OnRevoke::Delete => "delete",
            },
            "paths": { "connection": paths::connection(conn) },
        });
        p.send(push::CONNECTION_REVOKED, &job.event.event_id, data)
            .await
            .map_err(store_err)
    }

    /// Queues `hookd.connection.deleted`: `removed` is what the revocation by `job`'s event
    /// removed of `conn`'s data.
    pub(super) async fn push_deleted(
        &self,
        job: &Job,
        conn: &str,
        removed: &Removed,
    ) -> Result<(), ProcessError> {
        let Some(p) = &self.push else { return Ok(()) };
        let data = json!({
            "org_connection_id": conn,
            "endpoint": job.event.endpoint,
            "fasten_event_id": job.event.event_id,
            "deleted_at_ms": removed.at_ms,
            "exports": removed.exports,
            "files": removed.files,
            "bytes": removed.bytes,
            "index_entries": removed.index_entries,
            "paths": { "connection": paths::connection(conn) },
        });
        p.send(push::CONNECTION_DELETED, &job.event.event_id, data)
            .await
            .map_err(store_err)
    }
}
