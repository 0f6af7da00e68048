//! Connection tracking: what `connection_success`, `ehi_export_failed` and
//! `authorization_revoked` record about a patient's connection, the one export request per
//! connection, and removing a revoked connection's exports when `on_revoke = "delete"`.

use super::events::{AuthorizationRevoked, ConnectionSuccess, ExportFailed};
use super::{checked, connection_id, retry, store_err, FastenProcessor};
use crate::clock;
use crate::config::OnRevoke;
use crate::process::{Job, ProcessError};
use crate::store::fasten::{Connection, ExportFailure, Removed};

impl FastenProcessor {
    /// Records the connection and, when configured, asks Fasten for its export once.
    pub(super) async fn connection_success(
        &self,
        job: &Job,
        data: &ConnectionSuccess,
    ) -> Result<String, ProcessError> {
        let conn = connection_id(data.org_connection_id.as_deref())?;
        let now = clock::now_ms();
        let fields = |c: &mut Connection| {
            c.endpoint = job.event.endpoint.clone();
            for (slot, value) in [
                (&mut c.endpoint_id, &data.endpoint_id),
                (&mut c.brand_id, &data.brand_id),
                (&mut c.portal_id, &data.portal_id),
                (&mut c.platform_type, &data.platform_type),
                (&mut c.status, &data.connection_status),
            ] {
                if let Some(v) = value {
                    *slot = Some(v.clone());
                }
            }
            c.seen(&job.event.endpoint, now);
        };
        let _guard = self.requesting.lock().await;
        let (c, ()) = self
            .store
            .update_connection(&conn, fields)
            .map_err(store_err)?;
        if !self.config.request_export_on_connection {
            return Ok(format!("connection {conn} recorded"));
        }
        if let Some(at) = c.export_requested_at_ms {
            return Ok(format!(
                "connection {conn} recorded; its export was already requested (at {at} ms)"
            ));
        }
        let answer = self.api.request_export(&conn).await?;
        self.store
            .update_connection(&conn, |c| {
                c.export_requested_at_ms = Some(now);
                c.export_request_answer = Some(answer.clone());
            })
            .map_err(store_err)?;
        Ok(format!(
            "connection {conn} recorded; export requested ({answer})"
        ))
    }

    /// Records a failed export with the connection it names.
    pub(super) fn export_failed(
        &self,
        job: &Job,
        data: &ExportFailed,
    ) -> Result<String, ProcessError> {
        let reason = data
            .failure_reason
            .clone()
            .unwrap_or_else(|| "suppressed_please_contact".to_string());
        let Some(conn) = &data.org_connection_id else {
            return Ok(format!(
                "export failure recorded ({reason}); the event names no org_connection_id"
            ));
        };
        let conn = checked(conn, "org_connection_id")?;
        let failure = ExportFailure {
            event_id: job.event.event_id.clone(),
            task_id: data.task_id.clone(),
            failure_reason: reason.clone(),
            at_ms: clock::now_ms(),
        };
        self.store
            .update_connection(&conn, |c| {
                c.seen(&job.event.endpoint, failure.at_ms);
                if !c.failures.iter().any(|f| f.event_id == failure.event_id) {
                    c.failures.push(failure.clone());
                }
            })
            .map_err(store_err)?;
        Ok(format!(
            "export failure recorded for connection {conn}, task {}: {reason}",
            data.task_id.as_deref().unwrap_or("-")
        ))
    }

    /// Marks the connection revoked and, with `on_revoke = "delete"`, removes its exports.
    pub(super) async fn revoked(
        &self,
        job: &Job,
        data: &AuthorizationRevoked,
    ) -> Result<String, ProcessError> {
        let conn = connection_id(data.org_connection_id.as_deref())?;
        let now = clock::now_ms();
        self.store
            .update_connection(&conn, |c| {
                c.seen(&job.event.endpoint, now);
                c.status = Some(
                    data.connection_status
                        .clone()
                        .unwrap_or_else(|| "revoked".into()),
                );
                c.revoked_at_ms.get_or_insert(now);
            })
            .map_err(store_err)?;
        if self.config.on_revoke == OnRevoke::Keep {
            return Ok(format!(
                "connection {conn} marked revoked; its exports are kept (on_revoke = keep)"
            ));
        }
        let (exports, entries) = self
            .store
            .remove_connection_data(&conn)
            .await
            .map_err(store_err)?;
        let dir = self.exports_dir.join(&conn);
        // Files go after the records, so nothing ever points at a missing file; a crash in
        // between leaves files that the next attempt removes.
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(retry(format!("cannot remove {}: {e}", dir.display()))),
        }
        let removed = Removed {
            at_ms: now,
            exports: exports.iter().map(|e| e.task_id.clone()).collect(),
            files: exports.iter().map(|e| e.files.len() as u64).sum(),
            bytes: exports.iter().flat_map(|e| &e.files).map(|f| f.bytes).sum(),
            index_entries: entries,
        };
        self.note_removal(&conn, &removed)?;
        Ok(format!(
            "connection {conn} marked revoked; removed {} export(s) [{}], {} file(s), {} bytes, {entries} index entries (on_revoke = delete)",
            removed.exports.len(),
            removed.exports.join(", "),
            removed.files,
            removed.bytes,
        ))
    }

    /// Adds what a revocation removed to the connection's running total.
    fn note_removal(&self, conn: &str, removed: &Removed) -> Result<(), ProcessError> {
        if removed.exports.is_empty() && removed.index_entries == 0 {
            return Ok(());
        }
        self.store
            .update_connection(conn, |c| {
                let mut r = removed.clone();
                if let Some(old) = &c.removed {
                    r.exports.splice(0..0, old.exports.iter().cloned());
                    r.files += old.files;
                    r.bytes += old.bytes;
                    r.index_entries += old.index_entries;
                }
                c.removed = Some(r);
            })
            .map_err(store_err)?;
        Ok(())
    }
}
