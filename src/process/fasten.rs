//! The `fasten` processor: what a Fasten Connect integration does after the 200.
//!
//! - `patient.ehi_export_success`: download every file of the export (from `download_links[]`
//!   or the legacy `download_link`), validate it line by line while streaming, store it under
//!   `<data_dir>/exports/<org_connection_id>/<task_id>/<file>.ndjson` (temporary file, fsync,
//!   rename) and index each resource by (connection, type, id).
//! - `patient.connection_success`: record the connection; ask Fasten for an export, once per
//!   connection.
//! - `patient.ehi_export_failed`: record the failure. `patient.authorization_revoked`: mark the
//!   connection revoked and, with `on_revoke = "delete"`, remove its exports.
//! - Every other type is recorded by the pipeline and needs nothing more.
//!
//! Everything is idempotent by event id: an attempt may run again after a crash, and a stored
//! export with the same event id is not fetched twice.

use super::{Job, ProcessError, Processor};
use crate::clock;
use crate::config::{Fasten, OnRevoke};
use crate::store::fasten::{ExportFile, ExportRecord, ResourceLoc};
use crate::store::Store;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use reqwest::Url;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Processes Fasten Connect events.
pub struct FastenProcessor {
    store: Arc<Store>,
    config: Fasten,
    exports_dir: PathBuf,
    client: reqwest::Client,
    api: Url,
    /// Serialises "is an export requested yet? request it, note it" per process, so two
    /// connection events arriving at once cannot both request one.
    requesting: tokio::sync::Mutex<()>,
}

/// Longest NDJSON line accepted (a DocumentReference may inline a large attachment).
const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;
/// Redirects followed per download.
const MAX_REDIRECTS: usize = 5;
/// Chunks in flight between the network and the writer thread: bounds memory per download.
const CHUNKS_IN_FLIGHT: usize = 16;
/// At most this much of an error response is kept in the attempt record.
const ERROR_BODY_CHARS: usize = 200;

/// Where a connection's exports are kept.
pub fn connection_dir(data_dir: &Path, connection: &str) -> PathBuf {
    data_dir.join("exports").join(connection)
}

/// Whether `s` can be used as a file name and a store key: 1-128 of `[A-Za-z0-9._-]`, not
/// starting with '.'. Ids from events are checked with it, so no event can name a path
/// outside the exports directory.
pub fn safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    data: serde_json::Value,
}

#[derive(Deserialize, Default)]
struct Stats {
    total_resources: Option<u64>,
    #[serde(default)]
    total_by_resource_type: BTreeMap<String, u64>,
}

#[derive(Deserialize)]
struct Link {
    url: String,
}

#[derive(Deserialize)]
struct ExportSuccess {
    org_connection_id: Option<String>,
    task_id: Option<String>,
    download_links: Option<Vec<Link>>,
    download_link: Option<String>,
    stats: Option<Stats>,
}

/// The first fields of one NDJSON line; the rest is checked for syntax and skipped.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "resourceType", borrow)]
    resource_type: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    id: std::borrow::Cow<'a, str>,
}

fn str_field(data: &serde_json::Value, key: &str) -> Option<String> {
    data.get(key).and_then(|v| v.as_str()).map(str::to_owned)
}

fn permanent(msg: impl Into<String>) -> ProcessError {
    ProcessError::Permanent(msg.into())
}

fn retry(msg: impl Into<String>) -> ProcessError {
    ProcessError::Retry(msg.into())
}

impl FastenProcessor {
    /// A processor storing exports under `data_dir/exports`.
    pub fn new(store: Arc<Store>, config: Fasten, data_dir: &Path) -> Result<Self, String> {
        let api = Url::parse(&config.api_base)
            .map_err(|e| format!("fasten.api_base `{}`: {e}", config.api_base))?;
        // Redirects are followed by hand: each hop's host is checked against
        // download_hosts, and credentials go only to the API host.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .user_agent(concat!("hookd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        Ok(FastenProcessor {
            store,
            config,
            exports_dir: data_dir.join("exports"),
            client,
            api,
            requesting: tokio::sync::Mutex::new(()),
        })
    }

    fn is_api_host(&self, url: &Url) -> bool {
        url.scheme() == self.api.scheme()
            && url.host_str() == self.api.host_str()
            && url.port_or_known_default() == self.api.port_or_known_default()
    }

    fn credentials(&self) -> Result<(&str, &str), ProcessError> {
        match (&self.config.public_id, &self.config.private_key) {
            (Some(id), Some(key)) => Ok((id, key)),
            _ => Err(permanent(
                "no Fasten API credentials: set fasten.public_id and fasten.private_key_file \
                 (or HOOKD_FASTEN_PRIVATE_KEY), then replay this event",
            )),
        }
    }

    fn store_err(e: crate::store::StoreError) -> ProcessError {
        retry(format!("cannot write to the store: {e}"))
    }

    async fn connection_success(
        &self,
        job: &Job,
        data: &serde_json::Value,
    ) -> Result<String, ProcessError> {
        let conn = connection_id(data)?;
        let now = clock::now_ms();
        let fields = |c: &mut crate::store::fasten::Connection| {
            c.endpoint = job.event.endpoint.clone();
            for (slot, key) in [
                (&mut c.endpoint_id, "endpoint_id"),
                (&mut c.brand_id, "brand_id"),
                (&mut c.portal_id, "portal_id"),
                (&mut c.platform_type, "platform_type"),
                (&mut c.status, "connection_status"),
            ] {
                if let Some(v) = str_field(data, key) {
                    *slot = Some(v);
                }
            }
            c.seen(&job.event.endpoint, now);
        };
        let _guard = self.requesting.lock().await;
        let (c, ()) = self
            .store
            .update_connection(&conn, fields)
            .map_err(Self::store_err)?;
        if !self.config.request_export_on_connection {
            return Ok(format!("connection {conn} recorded"));
        }
        if let Some(at) = c.export_requested_at_ms {
            return Ok(format!(
                "connection {conn} recorded; its export was already requested (at {at} ms)"
            ));
        }
        let (id, key) = self.credentials()?;
        let url = format!("{}/bridge/fhir/ehi-export", self.config.api_base);
        let response = self
            .client
            .post(&url)
            .basic_auth(id, Some(key))
            .json(&serde_json::json!({ "org_connection_id": conn }))
            .send()
            .await
            .map_err(|e| retry(format!("POST {url} failed: {e}")))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let snippet: String = text.chars().take(ERROR_BODY_CHARS).collect();
        if !status.is_success() {
            return Err(retry(format!(
                "export request for {conn}: POST {url} answered HTTP {}: {snippet}",
                status.as_u16()
            )));
        }
        let answer = format!("HTTP {}: {snippet}", status.as_u16());
        self.store
            .update_connection(&conn, |c| {
                c.export_requested_at_ms = Some(now);
                c.export_request_answer = Some(answer.clone());
            })
            .map_err(Self::store_err)?;
        Ok(format!(
            "connection {conn} recorded; export requested ({answer})"
        ))
    }

    fn export_failed(&self, job: &Job, data: &serde_json::Value) -> Result<String, ProcessError> {
        let reason = str_field(data, "failure_reason")
            .unwrap_or_else(|| "suppressed_please_contact".to_string());
        let Some(conn) = str_field(data, "org_connection_id") else {
            return Ok(format!(
                "export failure recorded ({reason}); the event names no org_connection_id"
            ));
        };
        let conn = checked(&conn, "org_connection_id")?;
        let task_id = str_field(data, "task_id");
        let failure = crate::store::fasten::ExportFailure {
            event_id: job.event.event_id.clone(),
            task_id: task_id.clone(),
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
            .map_err(Self::store_err)?;
        Ok(format!(
            "export failure recorded for connection {conn}, task {}: {reason}",
            task_id.as_deref().unwrap_or("-")
        ))
    }

    async fn revoked(&self, job: &Job, data: &serde_json::Value) -> Result<String, ProcessError> {
        let conn = connection_id(data)?;
        let now = clock::now_ms();
        self.store
            .update_connection(&conn, |c| {
                c.seen(&job.event.endpoint, now);
                c.status =
                    Some(str_field(data, "connection_status").unwrap_or_else(|| "revoked".into()));
                c.revoked_at_ms.get_or_insert(now);
            })
            .map_err(Self::store_err)?;
        if self.config.on_revoke == OnRevoke::Keep {
            return Ok(format!(
                "connection {conn} marked revoked; its exports are kept (on_revoke = keep)"
            ));
        }
        let (exports, entries) = self
            .store
            .remove_connection_data(&conn)
            .await
            .map_err(Self::store_err)?;
        let dir = self.exports_dir.join(&conn);
        // Files go after the records, so nothing ever points at a missing file; a crash in
        // between leaves files that the next attempt removes.
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(retry(format!("cannot remove {}: {e}", dir.display()))),
        }
        let files: u64 = exports.iter().map(|e| e.files.len() as u64).sum();
        let bytes: u64 = exports.iter().flat_map(|e| &e.files).map(|f| f.bytes).sum();
        let tasks: Vec<String> = exports.iter().map(|e| e.task_id.clone()).collect();
        if !tasks.is_empty() || entries > 0 {
            let removed = crate::store::fasten::Removed {
                at_ms: now,
                exports: tasks.clone(),
                files,
                bytes,
                index_entries: entries,
            };
            self.store
                .update_connection(&conn, |c| {
                    let mut r = removed.clone();
                    if let Some(old) = &c.removed {
                        r.exports.splice(0..0, old.exports.iter().cloned());
                        r.files += old.files;
                        r.bytes += old.bytes;
                        r.index_entries += old.index_entries;
                    }
                    c.removed = Some(r);
                })
                .map_err(Self::store_err)?;
        }
        Ok(format!(
            "connection {conn} marked revoked; removed {} export(s) [{}], {files} file(s), {bytes} bytes, {entries} index entries (on_revoke = delete)",
            tasks.len(),
            tasks.join(", ")
        ))
    }

    async fn export_success(
        &self,
        job: &Job,
        data: serde_json::Value,
    ) -> Result<String, ProcessError> {
        let d: ExportSuccess = serde_json::from_value(data)
            .map_err(|e| permanent(format!("data is not an ehi_export_success payload: {e}")))?;
        let conn = checked(
            d.org_connection_id
                .as_deref()
                .ok_or_else(|| permanent("data.org_connection_id is missing"))?,
            "org_connection_id",
        )?;
        let task = checked(
            d.task_id
                .as_deref()
                .ok_or_else(|| permanent("data.task_id is missing"))?,
            "task_id",
        )?;
        let mut urls: Vec<String> = d
            .download_links
            .unwrap_or_default()
            .into_iter()
            .map(|l| l.url)
            .collect();
        if let Some(u) = d.download_link {
            if !urls.contains(&u) {
                urls.push(u);
            }
        }
        if urls.is_empty() {
            return Err(permanent(
                "data has neither download_links[] nor download_link",
            ));
        }
        let dir = self.exports_dir.join(&conn).join(&task);
        if let Some(done) = self.store.export(&conn, &task).map_err(Self::store_err)? {
            let present = done.files.iter().all(|f| dir.join(&f.name).is_file());
            if done.event_id == job.event.event_id && present {
                return Ok(format!(
                    "export {task} of connection {conn} was already stored by this event ({} files)",
                    done.files.len()
                ));
            }
        }
        // Check every link before fetching any, so a refused host fails the event at once.
        let mut plan = Vec::new();
        for raw in &urls {
            let url = Url::parse(raw)
                .map_err(|e| permanent(format!("download link `{raw}` is not a URL: {e}")))?;
            self.config
                .check_download_url(&url)
                .map_err(|e| permanent(format!("download refused: {e}")))?;
            let name = file_stem(&url)?;
            if plan.iter().any(|(_, n): &(Url, String)| *n == name) {
                return Err(permanent(format!(
                    "two download links name the file `{name}`"
                )));
            }
            plan.push((url, name));
        }
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| retry(format!("cannot create {}: {e}", dir.display())))?;
        let mut files = Vec::new();
        let mut notes = Vec::new();
        let mut budget = self.config.max_export_bytes;
        for (url, stem) in plan {
            let name = format!("{stem}.ndjson");
            let target = Target {
                dir: dir.clone(),
                name: name.clone(),
                connection: conn.clone(),
                task: task.clone(),
            };
            let file = self.download(&url, target, budget, &mut notes).await?;
            budget = budget.saturating_sub(file.bytes);
            files.push(file);
        }
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for f in &files {
            for (t, n) in &f.counts {
                *counts.entry(t.clone()).or_default() += n;
            }
        }
        let total: u64 = counts.values().sum();
        let mismatches = compare_stats(d.stats.as_ref(), total, &counts);
        let record = ExportRecord {
            org_connection_id: conn.clone(),
            task_id: task.clone(),
            event_id: job.event.event_id.clone(),
            stored_at_ms: clock::now_ms(),
            files,
            total_resources: total,
            counts,
            mismatches,
        };
        let now = record.stored_at_ms;
        self.store
            .update_connection(&conn, |c| {
                c.seen(&job.event.endpoint, now);
            })
            .map_err(Self::store_err)?;
        self.store
            .put_export(&record)
            .await
            .map_err(Self::store_err)?;
        let bytes: u64 = record.files.iter().map(|f| f.bytes).sum();
        let file_list: Vec<String> = record
            .files
            .iter()
            .map(|f| {
                format!(
                    "{} ({} bytes, {} resources, sha256 {})",
                    f.name, f.bytes, f.resources, f.sha256
                )
            })
            .collect();
        let counts_text: Vec<String> = record
            .counts
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        let check = if record.mismatches.is_empty() {
            match d.stats {
                Some(_) => "counts match stats".to_string(),
                None => "no stats in the event to compare with".to_string(),
            }
        } else {
            tracing::warn!(
                connection = %conn,
                task = %task,
                mismatches = %record.mismatches.join("; "),
                "stored export differs from the stats of its event"
            );
            format!(
                "WARNING: counts differ from stats: {}",
                record.mismatches.join("; ")
            )
        };
        notes.push(check);
        Ok(format!(
            "stored export {task} of connection {conn}: {} file(s), {total} resources, {bytes} bytes: {}; counts: {}; {}",
            record.files.len(),
            file_list.join(", "),
            counts_text.join(", "),
            notes.join("; ")
        ))
    }

    /// GETs `url`, following redirects by hand. Returns the final response and whether a
    /// redirect was followed (a signed URL).
    async fn fetch(&self, url: &Url) -> Result<(reqwest::Response, bool), ProcessError> {
        let mut current = url.clone();
        for hop in 0..=MAX_REDIRECTS {
            self.config
                .check_download_url(&current)
                .map_err(|e| permanent(format!("download refused: {e}")))?;
            let mut request = self.client.get(current.clone());
            // Credentials only ever go to the API host, never to the signed-URL host.
            if self.is_api_host(&current) {
                let (id, key) = self.credentials()?;
                request = request.basic_auth(id, Some(key));
            }
            let response = request
                .send()
                .await
                .map_err(|e| retry(format!("GET {current} failed: {e}")))?;
            if !response.status().is_redirection() {
                return Ok((response, hop > 0));
            }
            let location = response
                .headers()
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    retry(format!(
                        "GET {current}: HTTP {} without a Location",
                        response.status().as_u16()
                    ))
                })?;
            current = current
                .join(location)
                .map_err(|e| retry(format!("GET {current}: bad Location `{location}`: {e}")))?;
        }
        Err(retry(format!(
            "GET {url}: more than {MAX_REDIRECTS} redirects"
        )))
    }

    async fn download(
        &self,
        url: &Url,
        target: Target,
        budget: u64,
        notes: &mut Vec<String>,
    ) -> Result<ExportFile, ProcessError> {
        let mut response = None;
        for round in 0..2 {
            let (r, redirected) = self.fetch(url).await?;
            let status = r.status();
            if status.is_success() {
                response = Some(r);
                break;
            }
            let text = r.text().await.unwrap_or_default();
            let snippet: String = text.chars().take(ERROR_BODY_CHARS).collect();
            // A signed URL that is refused has most likely expired: the API hands out a
            // fresh one on the next request.
            if round == 0 && redirected && matches!(status.as_u16(), 400 | 401 | 403 | 410) {
                notes.push(format!(
                    "{}: signed URL refused (HTTP {}: {}); requested a fresh one",
                    target.name,
                    status.as_u16(),
                    snippet.trim()
                ));
                continue;
            }
            return Err(retry(format!(
                "GET {url}: HTTP {}: {}",
                status.as_u16(),
                snippet.trim()
            )));
        }
        let response = response.ok_or_else(|| retry(format!("GET {url}: no usable answer")))?;
        if let Some(len) = response.content_length() {
            if len > budget {
                return Err(permanent(format!(
                    "{}: {len} bytes would exceed fasten.max_export_bytes ({} bytes for the export)",
                    target.name, self.config.max_export_bytes
                )));
            }
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(CHUNKS_IN_FLIGHT);
        let store = self.store.clone();
        let source = url.to_string();
        let writer = tokio::task::spawn_blocking(move || write_file(rx, &store, &target, source));
        let mut stream = response.bytes_stream();
        let mut received: u64 = 0;
        let mut failure = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(bytes) => {
                    received += bytes.len() as u64;
                    if received > budget {
                        failure = Some(permanent(format!(
                            "{url}: more than fasten.max_export_bytes ({} bytes for the export)",
                            self.config.max_export_bytes
                        )));
                        break;
                    }
                    if tx.send(Chunk::Data(bytes)).await.is_err() {
                        break; // the writer stopped; its error says why
                    }
                }
                Err(e) => {
                    failure = Some(retry(format!(
                        "GET {url}: download broke off after {received} bytes: {e}"
                    )));
                    break;
                }
            }
        }
        if failure.is_none() {
            // Only a clean end lets the writer rename the file into place.
            let _ = tx.send(Chunk::End).await;
        }
        drop(tx);
        let written = writer
            .await
            .map_err(|e| retry(format!("the writer thread failed: {e}")))?;
        match (failure, written) {
            (Some(f), _) => Err(f),
            (None, Ok(file)) => Ok(file),
            (None, Err(e)) => Err(e),
        }
    }
}

fn connection_id(data: &serde_json::Value) -> Result<String, ProcessError> {
    let id = str_field(data, "org_connection_id")
        .ok_or_else(|| permanent("data.org_connection_id is missing"))?;
    checked(&id, "org_connection_id")
}

fn checked(id: &str, what: &str) -> Result<String, ProcessError> {
    if safe_name(id) {
        Ok(id.to_string())
    } else {
        Err(permanent(format!(
            "data.{what} `{}` is not 1-128 letters, digits, '.', '_' or '-'",
            id.chars().take(140).collect::<String>()
        )))
    }
}

/// The file name a link is stored under: its last path segment without the extension.
fn file_stem(url: &Url) -> Result<String, ProcessError> {
    let last = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or("");
    let stem = [".jsonl", ".ndjson", ".json"]
        .iter()
        .find_map(|ext| last.strip_suffix(ext))
        .unwrap_or(last);
    if safe_name(stem) {
        Ok(stem.to_string())
    } else {
        Err(permanent(format!(
            "download link {url}: `{last}` is not a usable file name"
        )))
    }
}

fn compare_stats(stats: Option<&Stats>, total: u64, counts: &BTreeMap<String, u64>) -> Vec<String> {
    let Some(s) = stats else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(expected) = s.total_resources {
        if expected != total {
            out.push(format!(
                "total_resources: stats say {expected}, stored {total}"
            ));
        }
    }
    for (t, expected) in &s.total_by_resource_type {
        let got = counts.get(t).copied().unwrap_or(0);
        if got != *expected {
            out.push(format!("{t}: stats say {expected}, stored {got}"));
        }
    }
    for (t, got) in counts {
        if !s.total_by_resource_type.is_empty() && !s.total_by_resource_type.contains_key(t) {
            out.push(format!("{t}: not in stats, stored {got}"));
        }
    }
    out
}

enum Chunk {
    Data(Bytes),
    End,
}

/// Where one downloaded file goes.
struct Target {
    dir: PathBuf,
    name: String,
    connection: String,
    task: String,
}

/// Streams chunks into a temporary file while hashing, validating and indexing, then
/// fsyncs and renames it into place. Runs on a blocking thread. The temporary file is
/// removed on any failure, so a final name only ever holds a complete, valid file.
fn write_file(
    rx: tokio::sync::mpsc::Receiver<Chunk>,
    store: &Store,
    target: &Target,
    source_url: String,
) -> Result<ExportFile, ProcessError> {
    let tmp = target.dir.join(format!(
        ".{}.{:016x}.part",
        target.name,
        rand::random::<u64>()
    ));
    let result = write_tmp(rx, store, target, &tmp, source_url);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_tmp(
    mut rx: tokio::sync::mpsc::Receiver<Chunk>,
    store: &Store,
    target: &Target,
    tmp: &Path,
    source_url: String,
) -> Result<ExportFile, ProcessError> {
    let io = |what: &str, e: std::io::Error| retry(format!("{what} {}: {e}", tmp.display()));
    let file = std::fs::File::create(tmp).map_err(|e| io("cannot create", e))?;
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, file);
    let indexer = store
        .resource_indexer(&target.connection)
        .map_err(|e| retry(format!("cannot index {}: {e}", target.name)))?;
    let mut v = Validator {
        indexer,
        task: &target.task,
        file: &target.name,
        counts: BTreeMap::new(),
        line_no: 0,
    };
    let mut hash = Sha256::new();
    let mut partial: Vec<u8> = Vec::new();
    let mut offset: u64 = 0; // file offset of the first byte of `partial`
    let mut ended = false;
    while let Some(chunk) = rx.blocking_recv() {
        let bytes = match chunk {
            Chunk::Data(b) => b,
            Chunk::End => {
                ended = true;
                break;
            }
        };
        hash.update(&bytes);
        out.write_all(&bytes).map_err(|e| io("cannot write", e))?;
        let mut rest: &[u8] = &bytes;
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            let (line, tail) = rest.split_at(nl);
            if partial.is_empty() {
                v.line(line, offset)?;
                offset += line.len() as u64 + 1;
            } else {
                partial.extend_from_slice(line);
                v.line(&partial, offset)?;
                offset += partial.len() as u64 + 1;
                partial.clear();
            }
            rest = &tail[1..];
        }
        if partial.len() + rest.len() > MAX_LINE_BYTES {
            return Err(retry(format!(
                "{}: line {} is longer than {MAX_LINE_BYTES} bytes",
                target.name,
                v.line_no + 1
            )));
        }
        partial.extend_from_slice(rest);
    }
    if !ended {
        return Err(retry(format!(
            "{}: the download did not complete",
            target.name
        )));
    }
    if !partial.is_empty() {
        v.line(&partial, offset)?;
        offset += partial.len() as u64;
    }
    let file = out
        .into_inner()
        .map_err(|e| io("cannot write", e.into_error()))?;
    file.sync_all().map_err(|e| io("cannot fsync", e))?;
    drop(file);
    let final_path = target.dir.join(&target.name);
    std::fs::rename(tmp, &final_path).map_err(|e| io("cannot rename", e))?;
    // The rename is durable only once the directory is synced.
    if let Ok(d) = std::fs::File::open(&target.dir) {
        let _ = d.sync_all();
    }
    let resources = v.counts.values().sum();
    Ok(ExportFile {
        name: target.name.clone(),
        source_url,
        bytes: offset,
        sha256: hex(&hash.finalize()),
        resources,
        counts: v.counts,
    })
}

struct Validator<'a> {
    indexer: crate::store::fasten::ResourceIndexer,
    task: &'a str,
    file: &'a str,
    counts: BTreeMap<String, u64>,
    line_no: u64,
}

impl Validator<'_> {
    fn line(&mut self, raw: &[u8], offset: u64) -> Result<(), ProcessError> {
        self.line_no += 1;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let head: Head = serde_json::from_slice(line).map_err(|e| {
            retry(format!(
                "{}: line {} is not a FHIR resource with resourceType and id: {e}",
                self.file, self.line_no
            ))
        })?;
        if head.resource_type.is_empty()
            || head.id.is_empty()
            || head.resource_type.contains('\0')
            || head.id.contains('\0')
        {
            return Err(retry(format!(
                "{}: line {} has an empty or invalid resourceType or id",
                self.file, self.line_no
            )));
        }
        match self.counts.get_mut(head.resource_type.as_ref()) {
            Some(n) => *n += 1,
            None => {
                self.counts.insert(head.resource_type.to_string(), 1);
            }
        }
        let loc = ResourceLoc {
            task_id: self.task.to_string(),
            file: self.file.to_string(),
            offset,
            len: line.len() as u64,
        };
        self.indexer
            .add(&head.resource_type, &head.id, &loc)
            .map_err(|e| retry(format!("cannot index {}: {e}", self.file)))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Processor for FastenProcessor {
    fn name(&self) -> &'static str {
        "fasten"
    }

    fn process<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<String, ProcessError>> {
        Box::pin(async move {
            let envelope: Envelope = serde_json::from_slice(&job.payload)
                .map_err(|e| permanent(format!("body is not a JSON event: {e}")))?;
            let data = envelope.data;
            match job.event.event_type.as_str() {
                "patient.ehi_export_success" => self.export_success(job, data).await,
                "patient.connection_success" => self.connection_success(job, &data).await,
                "patient.ehi_export_failed" => self.export_failed(job, &data),
                "patient.authorization_revoked" => self.revoked(job, &data).await,
                "patient.request_health_system" | "patient.request_support" | "webhook.test" => {
                    Ok("recorded; no action for this type".to_string())
                }
                other => Ok(format!("recorded; no Fasten action for type `{other}`")),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_names_are_refused() {
        assert!(safe_name("conn_1-a.b"));
        for bad in [
            "",
            "..",
            ".hidden",
            "a/b",
            "a\\b",
            "a b",
            "é",
            &"x".repeat(129),
        ] {
            assert!(!safe_name(bad), "{bad}");
        }
    }

    #[test]
    fn file_stem_strips_the_extension() {
        let u = Url::parse("https://h/v1/bridge/fhir/ehi-export/t/download/abc.jsonl").unwrap();
        assert_eq!(file_stem(&u).unwrap(), "abc");
        let u = Url::parse("https://h/x/..%2Fetc").unwrap();
        assert!(file_stem(&u).is_err());
    }

    #[test]
    fn stats_mismatches_are_listed() {
        let stats = Stats {
            total_resources: Some(3),
            total_by_resource_type: [("Patient".to_string(), 1), ("Observation".to_string(), 2)]
                .into_iter()
                .collect(),
        };
        let counts: BTreeMap<String, u64> =
            [("Patient".to_string(), 1), ("Observation".to_string(), 2)]
                .into_iter()
                .collect();
        assert!(compare_stats(Some(&stats), 3, &counts).is_empty());
        let counts: BTreeMap<String, u64> =
            [("Patient".to_string(), 1), ("Condition".to_string(), 1)]
                .into_iter()
                .collect();
        let m = compare_stats(Some(&stats), 2, &counts);
        assert_eq!(m.len(), 3, "{m:?}");
    }
}
