//! Connection tracking: what `connection_success`, `ehi_export_failed` and
//! `authorization_revoked` record about a patient's connection, the one export request per
//! authorization, and removing a revoked connection's exports when `on_revoke = "delete"`. A
//! connection's `revoked_at_ms` is set while it is revoked: its exports are not downloaded.

use super::events::{AuthorizationRevoked, ConnectionSuccess, ExportFailed};
use super::{checked, connection_id, retry, store_err, FastenProcessor};
use crate::clock;
use crate::config::OnRevoke;
use crate::process::{Job, ProcessError};
use crate::store::fasten::{Connection, ExportFailure, Removed, Revocation};

/// What a `connection_success` did to the connection's authorization.
enum Authorization {
    /// Authorized (it was not revoked).
    Authorized,
    /// It was revoked at this time (ms, when the revocation was received) and is authorized
    /// again.
    Renewed(u64),
    /// It was revoked by an event received after this one (a replay of an old event, or one
    /// processed late), so it stays revoked.
    StillRevoked(u64),
}

impl FastenProcessor {
    /// Records the connection and, when configured, asks Fasten for its export once per
    /// authorization. A `connection_success` received after the connection's revocation
    /// authorizes it again; an older one (a replay) leaves it revoked.
    pub(super) async fn connection_success(
        &self,
        job: &Job,
        data: &ConnectionSuccess,
    ) -> Result<String, ProcessError> {
        let conn = connection_id(data.org_connection_id.as_deref())?;
        let now = clock::now_ms();
        let received = job.event.received_at_ms;
        let fields = |c: &mut Connection| {
            c.seen(&job.event.endpoint, now);
            // Received in the same millisecond counts as older: when in doubt, revoked.
            if let Some(at) = c.revoked_at_ms.filter(|at| received <= *at) {
                return Authorization::StillRevoked(at);
            }
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
            let Some(at) = c.revoked_at_ms.take() else {
                return Authorization::Authorized;
            };
            // What the patient did stays on the connection's record once it is authorized
            // again (as does what the revocation removed).
            c.revocations.push(Revocation {
                revoked_at_ms: at,
                reauthorized_at_ms: received,
            });
            if data.connection_status.is_none() {
                c.status = Some("authorized".into());
            }
            // A new authorization is a new consent: its export is requested afresh.
            c.export_requested_at_ms = None;
            c.export_request_answer = None;
            Authorization::Renewed(at)
        };
        let _guard = self.requesting.lock().await;
        let (c, authorization) = self
            .store
            .update_connection(&conn, fields)
            .map_err(store_err)?;
        let recorded = match authorization {
            Authorization::StillRevoked(at) => {
                return Ok(format!(
                    "{} connection {conn} was revoked by an event received after this one \
                     (at {}); it stays revoked and no export is requested",
                    super::REVOKED,
                    crate::clock::utc_text(at)
                ))
            }
            Authorization::Renewed(at) => {
                format!(
                    "connection {conn} re-authorized (it was revoked at {})",
                    crate::clock::utc_text(at)
                )
            }
            Authorization::Authorized => format!("connection {conn} recorded"),
        };
        if !self.config.request_export_on_connection {
            return Ok(recorded);
        }
        if let Some(at) = c.export_requested_at_ms {
            return Ok(format!(
                "{recorded}; its export was already requested (at {})",
                crate::clock::utc_text(at)
            ));
        }
        let answer = self.api.request_export(&conn).await?;
        self.store
            .update_connection(&conn, |c| {
                c.export_requested_at_ms = Some(now);
                c.export_request_answer = Some(answer.clone());
            })
            .map_err(store_err)?;
        Ok(format!("{recorded}; {}", requested(&answer)))
    }

    /// When the connection was revoked (ms, when the revocation was received), if it is.
    pub(super) fn revoked_at(&self, conn: &str) -> Result<Option<u64>, ProcessError> {
        Ok(self
            .store
            .connection(conn)
            .map_err(store_err)?
            .and_then(|c| c.revoked_at_ms))
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
        let received = job.event.received_at_ms;
        // Held to the end, so no export of this connection is recorded meanwhile (see
        // `commits`).
        let _commits = self.commits.lock().await;
        let (c, ()) = self
            .store
            .update_connection(&conn, |c| {
                c.seen(&job.event.endpoint, now);
                c.status = Some(
                    data.connection_status
                        .clone()
                        .unwrap_or_else(|| "revoked".into()),
                );
                // A revocation processed after a later re-authorization (a retry, or a
                // replay) revokes again: when in doubt, no data is fetched. A newer
                // `connection_success`, or its replay, authorizes it again.
                c.revoked_at_ms.get_or_insert(received);
            })
            .map_err(store_err)?;
        self.push_revoked(job, &conn, c.status.clone(), c.revoked_at_ms)
            .await?;
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
        // Files go after the records, so nothing ever points at a missing file; a crash in
        // between leaves files that the next attempt removes.
        self.files
            .remove_connection(&conn)
            .await
            .map_err(|e| retry(format!("cannot remove the files of connection {conn}: {e}")))?;
        let removed = Removed {
            at_ms: now,
            exports: exports.iter().map(|e| e.task_id.clone()).collect(),
            files: exports.iter().map(|e| e.files.len() as u64).sum(),
            bytes: exports.iter().flat_map(|e| &e.files).map(|f| f.bytes).sum(),
            index_entries: entries,
        };
        self.note_removal(&conn, &removed)?;
        self.push_deleted(job, &conn, &removed).await?;
        Ok(format!(
            "connection {conn} marked revoked; removed {} [{}], {}, {} bytes, {entries} index entries (on_revoke = delete)",
            crate::text::count(removed.exports.len() as u64, "export", "exports"),
            removed.exports.join(", "),
            crate::text::count(removed.files, "file", "files"),
            removed.bytes,
        ))
    }

    /// Removes what an export of a revoked connection left behind (an attempt that was
    /// downloading when the revocation came, or one cut short): its index entries, its
    /// record (if an earlier event of the same task stored one: its files were being
    /// replaced) and its files. Called under `commits`; returns the entries removed.
    pub(super) async fn discard_export(&self, conn: &str, task: &str) -> Result<u64, ProcessError> {
        let had_record = self.store.export(conn, task).map_err(store_err)?.is_some();
        // It flushes synchronously: off the runtime's threads.
        let (store, c, t) = (self.store.clone(), conn.to_string(), task.to_string());
        let entries = tokio::task::spawn_blocking(move || store.remove_export_data(&c, &t))
            .await
            .map_err(|e| retry(format!("removing export {task} failed: {e}")))?
            .map_err(store_err)?;
        let had_files = self.files.remove_task(conn, task).await.map_err(|e| {
            retry(format!(
                "cannot remove the files of export {conn}/{task}: {e}"
            ))
        })?;
        if had_record || had_files || entries > 0 {
            let removed = Removed {
                at_ms: clock::now_ms(),
                exports: vec![task.to_string()],
                index_entries: entries,
                ..Removed::default()
            };
            self.note_removal(conn, &removed)?;
        }
        Ok(entries)
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

/// The attempt's words for Fasten's answer to an export request: the task it started and
/// its status, not the answer's JSON (the connection keeps that whole, and the API gives it
/// taken apart as `export_request`).
fn requested(answer: &str) -> String {
    let Some(parsed) = super::ExportAnswer::parse(answer) else {
        return format!("export requested ({answer})");
    };
    match (parsed.task_id, parsed.body["data"]["status"].as_str()) {
        (Some(task), Some(status)) => format!("export requested: task {task} ({status})"),
        (Some(task), None) => format!("export requested: task {task}"),
        (None, _) => format!("export requested ({answer})"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_export_request_is_told_by_its_task_not_its_json() {
        assert_eq!(
            super::requested(
                r#"HTTP 200: {"data":{"org_connection_id":"c","status":"pending","task_id":"t-1"},"success":true}"#
            ),
            "export requested: task t-1 (pending)"
        );
        assert_eq!(
            super::requested("HTTP 202: accepted"),
            "export requested (HTTP 202: accepted)"
        );
    }
}
