//! The validated configuration hookd hands out: built once at start-up, then only read.
//!
//! Types that hold secrets (`Admin`, `Fasten`, and `Secret` inside endpoints and forwards)
//! print them redacted in `Debug`, so a config can be logged whole.

use crate::secret::Secret;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Event profiles: which processor an endpoint gets by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Any Standard Webhooks sender.
    Standard,
    /// Fasten Connect.
    Fasten,
}

/// What happens to an accepted event in the background.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessorConfig {
    /// Record the event only.
    Log,
    /// POST the original body to `url`, re-signed with `secret`.
    Forward {
        url: String,
        secret: Secret,
        timeout_secs: u64,
    },
    /// Fasten Connect: download exports, request exports, track connections (see `[fasten]`).
    Fasten,
}

/// One receiving endpoint, served at `POST /webhooks/{name}`.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub name: String,
    pub profile: Profile,
    /// Every secret that verifies (more than one during rotation).
    pub secrets: Vec<Secret>,
    /// Selected event types; `None` accepts every type.
    pub events: Option<BTreeSet<String>>,
    pub tolerance_secs: u64,
    pub max_body_bytes: usize,
    pub processor: ProcessorConfig,
}

/// The admin listener's credentials; never printed (see the `Debug` impl).
#[derive(Clone, Default)]
pub struct Admin {
    /// Bearer token for the API; required when `admin_listen` is not loopback.
    pub token: Option<String>,
    /// A separate bearer token that opens `/metrics` only (for a Prometheus scraper).
    pub metrics_token: Option<String>,
    /// A bearer token that reads connections, exports, their files and resources, and
    /// nothing else: what the integrator's own service is given.
    pub export_token: Option<String>,
    /// Argon2 PHC hash of the web UI password (`hookd hash-password` prints one).
    pub password_hash: Option<String>,
    /// How long a web UI session lasts after login, in seconds.
    pub session_ttl_secs: u64,
    /// The directory `POST /api/backup` writes into; `None` refuses API backups.
    pub backup_dir: Option<PathBuf>,
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin")
            .field("token", &redacted(&self.token))
            .field("metrics_token", &redacted(&self.metrics_token))
            .field("export_token", &redacted(&self.export_token))
            .field("password_hash", &redacted(&self.password_hash))
            .field("session_ttl_secs", &self.session_ttl_secs)
            .field("backup_dir", &self.backup_dir)
            .finish()
    }
}

/// Shows whether a secret is set, never what it is.
fn redacted(secret: &Option<String>) -> Option<&'static str> {
    secret.as_ref().map(|_| "<redacted>")
}

impl Admin {
    /// Whether any credential (token or password) guards the admin listener.
    pub fn has_credential(&self) -> bool {
        // The export token is not one: it opens too little to guard the listener.
        self.token.is_some() || self.password_hash.is_some()
    }
}

/// Background processing.
#[derive(Debug, Clone)]
pub struct Processing {
    pub workers: usize,
    /// Upper bound on attempts started per second (smooths a spike); `None` = unbounded.
    pub max_rate_per_sec: Option<f64>,
    pub max_attempts: u32,
    /// Delay before attempt n+1 is `retry_schedule_secs[n-1]` (last value repeats), ± jitter.
    pub retry_schedule_secs: Vec<u64>,
    /// Relative jitter, 0.0..=1.0.
    pub retry_jitter: f64,
    pub attempt_timeout_secs: u64,
    /// How long shutdown waits for running attempts before leaving them to the next start.
    pub shutdown_grace_secs: u64,
}

/// Receiver limits.
#[derive(Debug, Clone)]
pub struct Receive {
    /// Above this many waiting events, new events get 503 + Retry-After.
    pub queue_high_water: u64,
    /// Bytes of body kept in the delivery log for accepted/duplicate/filtered deliveries.
    pub log_body_bytes: usize,
    /// Bytes of body kept for rejected deliveries.
    pub rejected_body_bytes: usize,
    /// Rejected deliveries logged per second (burst = 10×); beyond that they are only counted.
    pub rejected_log_per_sec: f64,
    /// Receiver connections served at once; beyond it the longest-idle one is closed.
    pub max_connections: usize,
    /// Seconds to send a request head, and to stay idle between keep-alive requests.
    pub header_read_timeout_secs: u64,
    /// Seconds a whole request body may take.
    pub body_timeout_secs: u64,
    /// Slowest body a sender may trickle, in bytes per second (after a short start); 0: none.
    pub body_min_bytes_per_sec: u64,
    /// Body bytes all requests may hold at once; beyond it, 503 + Retry-After.
    pub body_budget_bytes: usize,
    /// Header bytes (names and values) kept per delivery; the rest dropped with a note.
    pub log_header_bytes: usize,
    /// Bytes of rejected deliveries logged per second (burst = 10×); beyond, only counted.
    pub rejected_log_bytes_per_sec: f64,
    /// Request headers stored as a marker, never their value: lower-case names.
    pub redact_headers: Vec<String>,
}

/// The retention pruner and the export clean-up.
#[derive(Debug, Clone)]
pub struct Retention {
    /// When the pruner runs: a 6-field cron expression (seconds first), UTC.
    pub schedule: String,
    /// Exports under `<data_dir>/exports/` older than this many days are removed.
    pub export_retention_days: u32,
    /// Records looked at per prune batch; the pruner rests after each (it removes them in
    /// small atomic chunks, so an ack waits behind one chunk at most).
    pub batch_size: usize,
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from, if any (for messages).
    pub source: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub retention_days: u32,
    pub cache_mb: u64,
    pub retention: Retention,
    pub admin: Admin,
    pub processing: Processing,
    pub receive: Receive,
    pub endpoints: Vec<Endpoint>,
    /// True when no endpoint was configured and `default` was made up: its secret is then
    /// generated on first start and kept in the data directory.
    pub default_endpoint: bool,
    /// The `[fasten]` section (defaults when absent).
    pub fasten: Fasten,
    /// The `[alerts]` section; `None` (absent) sends no alerts.
    pub alerts: Option<Alerts>,
    /// The `[push]` section; `None` (absent) pushes nothing.
    pub push: Option<Push>,
    /// `[store]` and `[postgres]`: the embedded store, or cluster mode's database.
    pub store: super::store::StoreKind,
}

/// `[alerts]`: where a signed summary goes when events go dead, the queue stalls, or the
/// store cannot persist.
#[derive(Clone)]
pub struct Alerts {
    /// Receives the summaries (a Slack incoming webhook works: the body has `text`).
    pub url: String,
    /// Signs them (Standard Webhooks).
    pub secret: Secret,
    /// Alert when the oldest due event has waited longer than this; 0: never.
    pub oldest_queued_secs: u64,
    /// At most one summary per this many seconds; what happens meanwhile is coalesced.
    pub min_interval_secs: u64,
    pub timeout_secs: u64,
}

/// `[push]`: the integrator's service, told when an export is stored or a connection is
/// revoked or its data deleted.
#[derive(Clone)]
pub struct Push {
    pub url: String,
    pub secret: Secret,
    pub timeout_secs: u64,
}

/// A URL as it may be shown: scheme, host and port only. Alert and push URLs often carry
/// their credential in the path (a Slack webhook's does), so no more of them is ever printed.
pub fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}/...",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "(unparsable URL)".to_string(),
    }
}

impl fmt::Debug for Alerts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Alerts")
            .field("url", &shown_url(&self.url))
            .field("secret", &self.secret)
            .field("oldest_queued_secs", &self.oldest_queued_secs)
            .field("min_interval_secs", &self.min_interval_secs)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

impl fmt::Debug for Push {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Push")
            .field("url", &shown_url(&self.url))
            .field("secret", &self.secret)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

/// What `patient.authorization_revoked` does to a connection's stored exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRevoke {
    /// Mark the connection revoked; keep its exports.
    Keep,
    /// Mark it revoked and remove its exports and index entries.
    Delete,
}

/// A host hookd may download exports from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadHost {
    /// Host name or IP address, lower-case.
    pub host: String,
    /// Only this port, when given.
    pub port: Option<u16>,
    /// Plain http allowed too (only when the entry was written `http://host`).
    pub allow_http: bool,
}

/// The `[fasten]` section: how hookd talks to the Fasten Connect API.
#[derive(Clone)]
pub struct Fasten {
    /// e.g. `https://api.connect.fastenhealth.com/v1`, without a trailing slash.
    pub api_base: String,
    pub public_id: Option<String>,
    /// The API private key; never logged (see the `Debug` impl).
    pub private_key: Option<String>,
    pub request_export_on_connection: bool,
    pub download_hosts: Vec<DownloadHost>,
    pub max_export_bytes: u64,
    pub on_revoke: OnRevoke,
    /// Where export files go; `None`: `data_dir/exports`. Cluster mode needs shared storage
    /// here, so every instance serves what any of them stored.
    pub exports_dir: Option<std::path::PathBuf>,
}

impl fmt::Debug for Fasten {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fasten")
            .field("api_base", &self.api_base)
            .field("public_id", &self.public_id)
            .field("private_key", &redacted(&self.private_key))
            .field(
                "request_export_on_connection",
                &self.request_export_on_connection,
            )
            .field("download_hosts", &self.download_hosts)
            .field("max_export_bytes", &self.max_export_bytes)
            .field("on_revoke", &self.on_revoke)
            .field("exports_dir", &self.exports_dir)
            .finish()
    }
}

impl Config {
    /// The directory of Fasten export files: `fasten.exports_dir`, else `data_dir/exports`.
    pub fn exports_dir(&self) -> std::path::PathBuf {
        self.fasten
            .exports_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join(crate::store::exports::DIR))
    }

    /// Looks an endpoint up by name.
    pub fn endpoint(&self, name: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.name == name)
    }
}
