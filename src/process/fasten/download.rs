//! Downloading one export file: which URLs may be fetched (the download policy), then
//! streaming the body to a blocking writer thread that validates and indexes it into a
//! temporary file, fsyncs it and renames it into place. A final name only ever holds a
//! complete, valid file.

use super::api::{send_error, snippet};
use super::ndjson::Validator;
use super::{permanent, retry, FastenProcessor};
use crate::config::Fasten;
use crate::process::ProcessError;
use crate::store::fasten::ExportFile;
use crate::store::Store;
use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::Url;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// Chunks in flight between the network and the writer thread: bounds memory per download.
const CHUNKS_IN_FLIGHT: usize = 16;

/// Why a URL may not be downloaded from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    #[error("{url}: only https URLs are downloaded")]
    Scheme { url: Url },
    #[error("{url}: plain http is refused; list the host as `http://{host}` in fasten.download_hosts to allow it")]
    PlainHttp { url: Url, host: String },
    #[error("{url}: host `{host}` is not in fasten.download_hosts")]
    HostNotListed { url: Url, host: String },
}

impl From<UrlRefused> for ProcessError {
    fn from(e: UrlRefused) -> Self {
        permanent(format!("download refused: {e}"))
    }
}

/// Whether `url` may be downloaded from: https to a host in `fasten.download_hosts`, or http
/// to a host listed as `http://...`.
pub fn check_url(config: &Fasten, url: &Url) -> Result<(), UrlRefused> {
    let host = url.host_str().unwrap_or("").to_ascii_lowercase();
    let scheme = url.scheme();
    if scheme != "https" && scheme != "http" {
        return Err(UrlRefused::Scheme { url: url.clone() });
    }
    let listed: Vec<_> = config
        .download_hosts
        .iter()
        .filter(|h| {
            h.host == host
                && h.port
                    .is_none_or(|p| Some(p) == url.port_or_known_default())
        })
        .collect();
    if listed.iter().any(|h| scheme == "https" || h.allow_http) {
        return Ok(());
    }
    let url = url.clone();
    Err(if listed.is_empty() {
        UrlRefused::HostNotListed { url, host }
    } else {
        UrlRefused::PlainHttp { url, host }
    })
}

/// Where one downloaded file goes.
pub(super) struct Target {
    pub(super) dir: PathBuf,
    pub(super) name: String,
    pub(super) connection: String,
    pub(super) task: String,
}

enum Chunk {
    Data(Bytes),
    End,
}

impl FastenProcessor {
    /// Downloads `url` into `target`, refusing more than `budget` bytes (what is left of
    /// `fasten.max_export_bytes` for this export).
    pub(super) async fn download(
        &self,
        url: &Url,
        target: Target,
        budget: u64,
        notes: &mut Vec<String>,
    ) -> Result<ExportFile, ProcessError> {
        let response = self.open(url, &target.name, notes).await?;
        if let Some(len) = response.content_length() {
            if len > budget {
                return Err(permanent(format!(
                    "{}: {len} bytes would exceed fasten.max_export_bytes ({} bytes for the export)",
                    target.name, self.config.max_export_bytes
                )));
            }
        }
        let (tx, rx) = mpsc::channel::<Chunk>(CHUNKS_IN_FLIGHT);
        let store = self.store.clone();
        let source = url.to_string();
        let writer = tokio::task::spawn_blocking(move || write_file(rx, &store, &target, source));
        let failure = self.pump(response, &tx, url, budget).await;
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
            (None, written) => written,
        }
    }

    /// A successful response for `url`. A signed URL that is refused has most likely
    /// expired: the API hands out a fresh one on the next request, so that is tried once.
    async fn open(
        &self,
        url: &Url,
        name: &str,
        notes: &mut Vec<String>,
    ) -> Result<reqwest::Response, ProcessError> {
        for round in 0..2 {
            let (response, redirected) = self.api.fetch(url).await?;
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            let snippet = snippet(response).await;
            if round == 0 && redirected && matches!(status.as_u16(), 400 | 401 | 403 | 410) {
                notes.push(format!(
                    "{name}: signed URL refused (HTTP {}: {}); requested a fresh one",
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
        Err(retry(format!("GET {url}: no usable answer")))
    }

    /// Passes the body to the writer; returns why it stopped early, if it did. A writer
    /// that stopped first reports its own error.
    async fn pump(
        &self,
        response: reqwest::Response,
        tx: &mpsc::Sender<Chunk>,
        url: &Url,
        budget: u64,
    ) -> Option<ProcessError> {
        let mut stream = response.bytes_stream();
        let mut received: u64 = 0;
        while let Some(item) = stream.next().await {
            match item {
                Ok(bytes) => {
                    received += bytes.len() as u64;
                    if received > budget {
                        return Some(permanent(format!(
                            "{url}: more than fasten.max_export_bytes ({} bytes for the export)",
                            self.config.max_export_bytes
                        )));
                    }
                    if tx.send(Chunk::Data(bytes)).await.is_err() {
                        return None;
                    }
                }
                Err(e) => {
                    return Some(retry(format!(
                        "GET {url}: download broke off after {received} bytes: {}",
                        send_error(e)
                    )))
                }
            }
        }
        None
    }
}

/// Streams chunks into a temporary file while hashing, validating and indexing, then
/// fsyncs and renames it into place. Runs on a blocking thread. The temporary file is
/// removed on any failure.
fn write_file(
    rx: mpsc::Receiver<Chunk>,
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
    mut rx: mpsc::Receiver<Chunk>,
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
    let mut validator = Validator::new(indexer, &target.task, &target.name);
    let mut hash = Sha256::new();
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
        validator.feed(&bytes)?;
    }
    if !ended {
        return Err(retry(format!(
            "{}: the download did not complete",
            target.name
        )));
    }
    let (bytes, counts) = validator.finish()?;
    let file = out
        .into_inner()
        .map_err(|e| io("cannot write", e.into_error()))?;
    file.sync_all().map_err(|e| io("cannot fsync", e))?;
    drop(file);
    std::fs::rename(tmp, target.dir.join(&target.name)).map_err(|e| io("cannot rename", e))?;
    // The rename is durable only once the directory is synced.
    if let Ok(d) = std::fs::File::open(&target.dir) {
        let _ = d.sync_all();
    }
    Ok(ExportFile {
        name: target.name.clone(),
        source_url,
        bytes,
        sha256: hex(&hash.finalize()),
        resources: counts.values().sum(),
        counts,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn downloads_only_from_listed_hosts_and_http_only_when_listed_so() {
        let text = r#"
            [fasten]
            download_hosts = ["api.connect.fastenhealth.com", "http://127.0.0.1"]
        "#;
        let c = crate::config::load_text(text, &HashMap::new()).unwrap();
        let check = |u: &str| check_url(&c.fasten, &Url::parse(u).unwrap());
        assert!(check("https://api.connect.fastenhealth.com/v1/x").is_ok());
        assert!(check("http://127.0.0.1:9000/x").is_ok());
        let err = check("http://api.connect.fastenhealth.com/v1/x").unwrap_err();
        assert!(matches!(err, UrlRefused::PlainHttp { .. }), "{err}");
        assert!(err.to_string().contains("plain http is refused"), "{err}");
        let err = check("https://evil.example/x").unwrap_err();
        assert!(matches!(err, UrlRefused::HostNotListed { .. }), "{err}");
        assert!(
            err.to_string().contains("not in fasten.download_hosts"),
            "{err}"
        );
        let err = check("ftp://api.connect.fastenhealth.com/x").unwrap_err();
        assert!(matches!(err, UrlRefused::Scheme { .. }), "{err}");
    }
}
