//! The admin API's Fasten Connect views: connections, their exports, stored files and single
//! resources. Behind the same bearer-token check as the rest of `/api`.

use super::{Admin, ApiError};
use crate::process::fasten::events::FastenEvent;
use crate::process::fasten::{ExportAnswer, REVOKED};
use crate::store::{safe_name, ExportFiles};
use http::StatusCode;
use serde_json::{json, Value};
use std::io::{Read, Seek, SeekFrom};
use warp::Reply;

type ApiResult = Result<warp::reply::Response, ApiError>;

/// Largest single resource returned (a line of an export).
const MAX_RESOURCE_BYTES: u64 = 64 * 1024 * 1024;
/// Read size when streaming a file.
const FILE_CHUNK: usize = 256 * 1024;

fn not_found(what: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no such {what}"))
}

/// Every connection with counts and its latest export.
pub(super) fn connections(admin: &Admin) -> Result<Value, ApiError> {
    let mut items = Vec::new();
    for c in admin.store.connections()? {
        let exports = admin.store.exports(&c.org_connection_id)?;
        let latest = exports.iter().max_by_key(|e| e.stored_at_ms);
        items.push(json!({
            "org_connection_id": c.org_connection_id,
            "endpoint": c.endpoint,
            "brand_id": c.brand_id,
            "portal_id": c.portal_id,
            "platform_type": c.platform_type,
            "status": c.status,
            "first_seen_ms": c.first_seen_ms,
            "last_seen_ms": c.last_seen_ms,
            "revoked_at_ms": c.revoked_at_ms,
            "exports": exports.len(),
            "failures": c.failures.len(),
            "latest_export": latest.map(|e| json!({
                "task_id": e.task_id,
                "stored_at_ms": e.stored_at_ms,
                "total_resources": e.total_resources,
                "mismatches": e.mismatches.len(),
            })),
        }));
    }
    Ok(json!({ "items": items }))
}

/// One connection with its exports and the latest export's resource counts.
pub(super) fn connection(admin: &Admin, id: &str) -> Result<Value, ApiError> {
    let c = admin
        .store
        .connection(id)?
        .ok_or_else(|| not_found("connection"))?;
    let exports = admin.store.exports(id)?;
    let latest = exports.iter().max_by_key(|e| e.stored_at_ms);
    let mut value = serde_json::to_value(&c).unwrap_or(Value::Null);
    value["export_request"] = c
        .export_request_answer
        .as_deref()
        .and_then(|answer| export_request(c.export_requested_at_ms, answer))
        .unwrap_or(Value::Null);
    value["resource_counts"] = latest.map_or(json!({}), |e| json!(e.counts));
    value["exports"] = serde_json::to_value(&exports).unwrap_or(Value::Null);
    Ok(value)
}

/// Fasten's answer to the export request, which the connection keeps as text (`HTTP 200:
/// {...}`), taken apart so that no script parses it twice: `status`, `body` (JSON when it
/// parses, else the text) and the `task_id` it gave. `None` when the text has another shape.
fn export_request(requested_at_ms: Option<u64>, answer: &str) -> Option<Value> {
    let answer = ExportAnswer::parse(answer)?;
    Some(json!({
        "requested_at_ms": requested_at_ms,
        "status": answer.status,
        "task_id": answer.task_id,
        "body": answer.body,
    }))
}

/// One FHIR resource, read from where the index says its export stored it.
pub(super) fn resource(admin: &Admin, id: &str, kind: &str, rid: &str) -> ApiResult {
    let loc = admin
        .store
        .resource(id, kind, rid)?
        .ok_or_else(|| not_found("resource"))?;
    if loc.len > MAX_RESOURCE_BYTES
        || !safe_name(id)
        || !safe_name(&loc.task_id)
        || !safe_name(&loc.file)
    {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the index entry of this resource is unusable",
        ));
    }
    let path = ExportFiles::at(&admin.config.exports_dir()).file(id, &loc.task_id, &loc.file);
    let read = || -> std::io::Result<Vec<u8>> {
        let mut f = std::fs::File::open(&path)?;
        f.seek(SeekFrom::Start(loc.offset))?;
        let mut buf = vec![0; loc.len as usize];
        f.read_exact(&mut buf)?;
        Ok(buf)
    };
    let bytes = read().map_err(|e| {
        tracing::error!(path = %path.display(), error = %e, "cannot read a stored resource");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot read the stored export; see the log",
        )
    })?;
    let etag = super::headers::etag_of(&bytes);
    let mut response = warp::reply::Response::new(bytes.into());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/fhir+json"),
    );
    super::headers::set_etag(&mut response, &etag);
    Ok(response)
}

/// A file as a stream of chunks for a streamed response, so a large export is never held
/// in memory. Read through tokio's file (on its blocking threads): the body is polled on the
/// threads the receiver's acks share, and an exports directory may be on network storage,
/// whose reads can stall.
fn file_chunks(
    file: std::fs::File,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send {
    futures_util::stream::unfold(Some(tokio::fs::File::from_std(file)), |file| async move {
        let mut file = file?;
        let mut buf = vec![0; FILE_CHUNK];
        match tokio::io::AsyncReadExt::read(&mut file, &mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(buf.into()), Some(file)))
            }
            // The error ends the stream.
            Err(e) => Some((Err(e), None)),
        }
    })
}

/// One stored file of an export, streamed; its sha256 is its ETag.
pub(super) fn export_file(admin: &Admin, task: &str, file: &str) -> ApiResult {
    let export = admin
        .store
        .export_by_task(task)?
        .ok_or_else(|| not_found("export"))?;
    let name = if file.ends_with(".ndjson") {
        file.to_string()
    } else {
        format!("{file}.ndjson")
    };
    let entry = export
        .files
        .iter()
        .find(|f| f.name == name)
        .ok_or_else(|| not_found("file in this export"))?;
    let path = ExportFiles::at(&admin.config.exports_dir()).file(
        &export.org_connection_id,
        &export.task_id,
        &entry.name,
    );
    let f = std::fs::File::open(&path).map_err(|e| {
        tracing::error!(path = %path.display(), error = %e, "cannot open a stored export file");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot open the stored file; see the log",
        )
    })?;
    let mut response = warp::reply::stream(file_chunks(f)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/fhir+ndjson"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&entry.bytes.to_string()) {
        headers.insert(http::header::CONTENT_LENGTH, v);
    }
    if let Ok(v) = http::HeaderValue::from_str(&format!("attachment; filename=\"{}\"", entry.name))
    {
        headers.insert(http::header::CONTENT_DISPOSITION, v);
    }
    super::headers::set_etag(&mut response, &format!("\"{}\"", entry.sha256));
    Ok(response)
}

/// What a delivery's detail view shows of the export an `ehi_export_success` event
/// announced.
pub struct ExportView {
    /// `task_id`, `org_connection_id` and `state`: what became of the export.
    pub summary: Value,
    /// The stored files with their download paths, once it is stored.
    pub files: Option<Value>,
}

/// The export an `ehi_export_success` event announced and what became of it: `None` for
/// other events, or when the payload names no task.
pub fn export_of(
    admin: &Admin,
    event: &crate::store::Event,
) -> Result<Option<ExportView>, ApiError> {
    if event.event_type != "patient.ehi_export_success" {
        return Ok(None);
    }
    let parsed = admin
        .store
        .payload(event.seq)?
        .and_then(|p| FastenEvent::parse(&event.event_type, &p).ok());
    let Some(FastenEvent::ExportSuccess(data)) = parsed else {
        return Ok(None);
    };
    let Some(task) = data.task_id else {
        return Ok(None);
    };
    let conn = data.org_connection_id;
    let stored = admin.store.export_by_task(&task)?;
    let state = match &stored {
        Some(_) => "stored",
        None => unstored_state(admin, event, conn.as_deref(), &task)?,
    };
    Ok(Some(ExportView {
        summary: json!({ "task_id": task, "org_connection_id": conn, "state": state }),
        files: stored.map(|export| file_list(&export)),
    }))
}

/// Why the export `task` that `event` announced is not stored: `pending` (its processing
/// has not finished), `deleted` (a revocation with `on_revoke = "delete"` removed it),
/// `not_downloaded` (the connection was revoked when it was processed), `failed` (the
/// event is dead), or `no_longer_stored` (it was stored; export retention removed it).
fn unstored_state(
    admin: &Admin,
    event: &crate::store::Event,
    conn: Option<&str>,
    task: &str,
) -> Result<&'static str, ApiError> {
    use crate::store::{AttemptOutcome, EventState};
    if matches!(
        event.state,
        EventState::Queued | EventState::Processing | EventState::Retrying
    ) {
        return Ok("pending");
    }
    let connection = match conn {
        Some(id) => admin.store.connection(id)?,
        None => None,
    };
    let removed = connection.as_ref().and_then(|c| c.removed.as_ref());
    if removed.is_some_and(|r| r.exports.iter().any(|t| t == task)) {
        return Ok("deleted");
    }
    if event.state == EventState::Dead {
        return Ok("failed");
    }
    let attempts = admin.store.attempts(event.seq)?;
    let last = attempts
        .iter()
        .rev()
        .find(|a| a.outcome == AttemptOutcome::Ok);
    if last.is_some_and(|a| a.detail.starts_with(REVOKED)) {
        return Ok("not_downloaded");
    }
    Ok("no_longer_stored")
}

/// An export's files with their download paths.
fn file_list(export: &crate::store::fasten::ExportRecord) -> Value {
    let path = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    export
        .files
        .iter()
        .map(|f| {
            json!({
                "name": f.name,
                "resources": f.resources,
                "bytes": f.bytes,
                "sha256": f.sha256,
                "counts": f.counts,
                "download_url": format!("/api/exports/{}/files/{}", path(&export.task_id), path(&f.name)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_answer_gives_its_status_task_id_and_body() {
        let answer = r#"HTTP 200: {"data":{"task_id":"t-1","status":"pending"},"success":true}"#;
        assert_eq!(
            export_request(Some(7), answer),
            Some(json!({
                "requested_at_ms": 7,
                "status": 200,
                "task_id": "t-1",
                "body": {"data": {"task_id": "t-1", "status": "pending"}, "success": true},
            }))
        );
    }

    #[test]
    fn an_answer_that_is_not_json_keeps_its_text() {
        // Cut short at the answer's snippet length, or not JSON at all.
        let answer = r#"HTTP 202: {"data":{"task_id":"t-"#;
        let parsed = export_request(None, answer).unwrap();
        assert_eq!(parsed["status"], 202);
        assert_eq!(parsed["task_id"], Value::Null);
        assert_eq!(parsed["body"], r#"{"data":{"task_id":"t-"#);
        assert_eq!(export_request(None, "accepted"), None);
    }
}
