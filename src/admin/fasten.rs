//! The admin API's Fasten Connect views: connections, their exports, stored files and single
//! resources. Behind the same bearer-token check as the rest of `/api`.

use super::{Admin, ApiError};
use crate::process::fasten::events::FastenEvent;
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
    value["resource_counts"] = latest.map_or(json!({}), |e| json!(e.counts));
    value["exports"] = serde_json::to_value(&exports).unwrap_or(Value::Null);
    Ok(value)
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

/// The stored files of the export an `ehi_export_success` event announced, with their
/// download paths, for a delivery's detail view; `None` for other events or before the
/// export is stored.
pub fn export_files(admin: &Admin, event: &crate::store::Event) -> Result<Option<Value>, ApiError> {
    if event.event_type != "patient.ehi_export_success" {
        return Ok(None);
    }
    let task = admin
        .store
        .payload(event.seq)?
        .and_then(|p| FastenEvent::parse(&event.event_type, &p).ok())
        .and_then(|e| e.task_id().map(str::to_owned));
    let Some(task) = task else { return Ok(None) };
    let Some(export) = admin.store.export_by_task(&task)? else {
        return Ok(None);
    };
    let files: Vec<Value> = export
        .files
        .iter()
        .map(|f| {
            serde_json::json!({
                "name": f.name,
                "resources": f.resources,
                "bytes": f.bytes,
                "sha256": f.sha256,
                "counts": f.counts,
                "download_url": format!(
                    "/api/exports/{}/files/{}",
                    form_urlencoded::byte_serialize(export.task_id.as_bytes()).collect::<String>(),
                    form_urlencoded::byte_serialize(f.name.as_bytes()).collect::<String>()
                ),
            })
        })
        .collect();
    Ok(Some(Value::Array(files)))
}
