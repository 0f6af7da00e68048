//! The `fasten` processor: what a Fasten Connect integration does after the 200.
//!
//! - `patient.ehi_export_success`: download every file of the export (from `download_links[]`
//!   or the legacy `download_link`), validate it line by line while streaming, store it under
//!   `<data_dir>/exports/<org_connection_id>/<task_id>/<file>.ndjson` (temporary file, fsync,
//!   rename) and index each resource by (connection, type, id).
//! - `patient.connection_success`: record the connection; ask Fasten for an export, once per
//!   connection.
//! - `patient.ehi_export_failed`: record the failure. `patient.authorization_revoked`: mark the
//!   connection revoked and, with `on_revoke = "delete"`, remove its exports. A revoked
//!   connection's exports are not downloaded (the attempt ends done, "connection revoked")
//!   until a `patient.connection_success` received after the revocation re-authorizes it.
//! - Every other type is recorded by the pipeline and needs nothing more.
//!
//! Everything is idempotent by event id: an attempt may run again after a crash, and a stored
//! export with the same event id is not fetched twice.
//!
//! `events` reads the payloads, `export` stores an export through `download` (with the
//! download policy) and `ndjson`, `connections` keeps track of connections, and `api` is the
//! client of the Fasten API.

mod api;
mod connections;
pub mod download;
pub mod events;
mod export;
mod ndjson;
mod notify;

use super::push::Push;
use super::{Job, ProcessError, Processor, SetupError};
use crate::config::Fasten;
use crate::store::{safe_name, ExportFiles, Store};
use api::ApiClient;
pub use api::ExportAnswer;
use events::FastenEvent;
pub use export::REVOKED;
use futures_util::future::BoxFuture;
use std::path::Path;
use std::sync::Arc;

/// Processes Fasten Connect events.
pub struct FastenProcessor {
    store: Arc<Store>,
    config: Arc<Fasten>,
    api: ApiClient,
    files: ExportFiles,
    /// Serialises "is an export requested yet? request it, note it" per process, so two
    /// connection events arriving at once cannot both request one.
    requesting: tokio::sync::Mutex<()>,
    /// Held by a revocation for all of its work and by an export for its last step (check
    /// that the connection is not revoked, then record the export).
    ///
    /// Workers run events concurrently, so a revocation can land while an export of the same
    /// connection is downloading. The export checks for a revocation before it fetches
    /// anything and again, under this lock, before it records what it fetched; a revocation
    /// marks the connection and removes its data under the same lock. So the two never
    /// interleave: either the export was recorded first (and the revocation then removes it,
    /// or keeps it with `on_revoke = "keep"`, like any export stored before it), or the
    /// revocation came first and the export discards its files and index entries and ends
    /// done as "connection revoked". The download itself runs outside the lock, so a long
    /// download never holds up a revocation; one lock for all connections keeps this simple,
    /// and both critical sections are short store writes (and a revocation's removal).
    commits: tokio::sync::Mutex<()>,
    /// Tells the integrator's service what was stored or revoked (`[push]`), when set.
    push: Option<Push>,
}

fn permanent(msg: impl Into<String>) -> ProcessError {
    ProcessError::Permanent(msg.into())
}

fn retry(msg: impl Into<String>) -> ProcessError {
    ProcessError::Retry(msg.into())
}

fn store_err(e: crate::store::StoreError) -> ProcessError {
    retry(format!("cannot write to the store: {e}"))
}

/// The event's `org_connection_id`, which it must have.
fn connection_id(id: Option<&str>) -> Result<String, ProcessError> {
    let id = id.ok_or_else(|| permanent("data.org_connection_id is missing"))?;
    checked(id, "org_connection_id")
}

/// `id` if it is a [`safe_name`]; `what` names the field in the error.
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

impl FastenProcessor {
    /// A processor storing exports under `fasten.exports_dir`, else `data_dir/exports`.
    pub fn new(store: Arc<Store>, config: Fasten, data_dir: &Path) -> Result<Self, SetupError> {
        let files = match &config.exports_dir {
            Some(root) => ExportFiles::at(root),
            None => ExportFiles::new(data_dir),
        };
        let config = Arc::new(config);
        Ok(FastenProcessor {
            store,
            api: ApiClient::new(config.clone())?,
            config,
            files,
            requesting: tokio::sync::Mutex::new(()),
            commits: tokio::sync::Mutex::new(()),
            push: None,
        })
    }

    /// Pushes `hookd.export.stored` and `hookd.connection.*` events through `push`.
    pub fn pushing(mut self, push: Push) -> Self {
        self.push = Some(push);
        self
    }
}

impl Processor for FastenProcessor {
    fn name(&self) -> &'static str {
        "fasten"
    }

    fn process<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<String, ProcessError>> {
        Box::pin(async move {
            let event = FastenEvent::parse(&job.event.event_type, &job.payload)
                .map_err(|e| permanent(e.to_string()))?;
            match event {
                FastenEvent::ExportSuccess(d) => self.export_success(job, &d).await,
                FastenEvent::ConnectionSuccess(d) => self.connection_success(job, &d).await,
                FastenEvent::ExportFailed(d) => self.export_failed(job, &d),
                FastenEvent::AuthorizationRevoked(d) => self.revoked(job, &d).await,
                FastenEvent::Informational => Ok("recorded; no action for this type".to_string()),
                FastenEvent::Unknown(other) => {
                    Ok(format!("recorded; no Fasten action for type `{other}`"))
                }
            }
        })
    }
}
