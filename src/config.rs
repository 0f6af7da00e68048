//! Configuration: embedded defaults, then a TOML file, then `HOOKD_*` environment variables.
//!
//! Loaded and validated once at start-up into an immutable [`Config`]; nothing else in hookd
//! reads the environment. Every error names the key (or variable) and the file it came from.

use crate::secret::Secret;
use serde::Deserialize;
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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

/// The admin listener's credentials.
#[derive(Debug, Clone, Default)]
pub struct Admin {
    /// Bearer token for the API; required when `admin_listen` is not loopback.
    pub token: Option<String>,
    /// A separate bearer token that opens `/metrics` only (for a Prometheus scraper).
    pub metrics_token: Option<String>,
    /// Argon2 PHC hash of the web UI password (`hookd hash-password` prints one).
    pub password_hash: Option<String>,
    /// How long a web UI session lasts after login, in seconds.
    pub session_ttl_secs: u64,
}

impl Admin {
    /// Whether any credential (token or password) guards the admin listener.
    pub fn has_credential(&self) -> bool {
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
    /// Receiver connections served at once; beyond it new connections are closed.
    pub max_connections: usize,
    /// Seconds to send a request head, and to stay idle between keep-alive requests.
    pub header_read_timeout_secs: u64,
    /// Seconds a whole request body may take.
    pub body_timeout_secs: u64,
    /// Slowest body a sender may trickle, in bytes per second (after a short start); 0: none.
    pub body_min_bytes_per_sec: u64,
    /// Body bytes all requests may hold at once (declared or possible); beyond it, 503.
    pub body_budget_bytes: usize,
}

/// The retention pruner and the export clean-up.
#[derive(Debug, Clone)]
pub struct Retention {
    /// When the pruner runs: a 6-field cron expression (seconds first), UTC.
    pub schedule: String,
    /// Exports under `<data_dir>/exports/` older than this many days are removed.
    pub export_retention_days: u32,
    /// Most records removed in one transaction: bounds how long a prune holds up receiving.
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
}

/// A configuration error, already phrased for the user.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    admin_listen: Option<String>,
    retention_days: Option<u32>,
    cache_mb: Option<u64>,
    #[serde(default)]
    retention: RawRetention,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    processing: RawProcessing,
    #[serde(default)]
    receive: RawReceive,
    #[serde(default)]
    endpoints: Vec<RawEndpoint>,
    #[serde(default)]
    fasten: RawFasten,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    schedule: Option<String>,
    export_retention_days: Option<u32>,
    batch_size: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    token: Option<String>,
    token_file: Option<PathBuf>,
    metrics_token: Option<String>,
    password_hash: Option<String>,
    session_ttl_secs: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawProcessing {
    workers: Option<usize>,
    max_rate_per_sec: Option<f64>,
    max_attempts: Option<u32>,
    retry_schedule_secs: Option<Vec<u64>>,
    retry_jitter: Option<f64>,
    attempt_timeout_secs: Option<u64>,
    shutdown_grace_secs: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReceive {
    queue_high_water: Option<u64>,
    log_body_bytes: Option<usize>,
    rejected_body_bytes: Option<usize>,
    rejected_log_per_sec: Option<f64>,
    max_connections: Option<usize>,
    header_read_timeout_secs: Option<u64>,
    body_timeout_secs: Option<u64>,
    body_min_bytes_per_sec: Option<u64>,
    body_budget_bytes: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpoint {
    name: String,
    #[serde(default = "default_profile")]
    profile: Profile,
    secrets: Option<Vec<String>>,
    secrets_file: Option<PathBuf>,
    events: Option<Vec<String>>,
    tolerance_secs: Option<u64>,
    max_body_bytes: Option<usize>,
    processor: Option<String>,
    forward: Option<RawForward>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForward {
    url: String,
    secret: Option<String>,
    secret_file: Option<PathBuf>,
    timeout_secs: Option<u64>,
}

fn default_profile() -> Profile {
    Profile::Standard
}

/// Defaults, documented in README.md and packaging/hookd.toml.
pub mod defaults {
    pub const DATA_DIR: &str = "./hookd-data";
    pub const LISTEN: &str = "127.0.0.1:8080";
    pub const ADMIN_LISTEN: &str = "127.0.0.1:8081";
    pub const RETENTION_DAYS: u32 = 15;
    pub const CACHE_MB: u64 = 256;
    /// Web UI sessions last 12 hours.
    pub const SESSION_TTL_SECS: u64 = 12 * 3600;
    pub const TOLERANCE_SECS: u64 = 300;
    pub const MAX_BODY_BYTES: usize = 1_048_576;
    pub const WORKERS: usize = 4;
    pub const MAX_ATTEMPTS: u32 = 8;
    /// 10 s, 1 min, 5 min, 30 min, 2 h, 6 h, 12 h: about a day in all, like Fasten's own retries.
    pub const RETRY_SCHEDULE_SECS: [u64; 7] = [10, 60, 300, 1800, 7200, 21600, 43200];
    pub const RETRY_JITTER: f64 = 0.2;
    pub const ATTEMPT_TIMEOUT_SECS: u64 = 300;
    pub const SHUTDOWN_GRACE_SECS: u64 = 20;
    pub const QUEUE_HIGH_WATER: u64 = 1_000_000;
    pub const LOG_BODY_BYTES: usize = 65_536;
    pub const REJECTED_BODY_BYTES: usize = 1024;
    pub const REJECTED_LOG_PER_SEC: f64 = 10.0;
    pub const MAX_CONNECTIONS: usize = 256;
    pub const HEADER_READ_TIMEOUT_SECS: u64 = 10;
    pub const BODY_TIMEOUT_SECS: u64 = 20;
    pub const BODY_MIN_BYTES_PER_SEC: u64 = 1024;
    /// 32 MiB.
    pub const BODY_BUDGET_BYTES: usize = 33_554_432;
    pub const FORWARD_TIMEOUT_SECS: u64 = 30;
    /// Every hour, on the hour (UTC).
    pub const PRUNE_SCHEDULE: &str = "0 0 * * * *";
    pub const EXPORT_RETENTION_DAYS: u32 = 15;
    pub const PRUNE_BATCH: usize = 200;
    pub const FASTEN_API_BASE: &str = "https://api.connect.fastenhealth.com/v1";
    /// 10 GiB.
    pub const FASTEN_MAX_EXPORT_BYTES: u64 = 10_737_418_240;
}

/// Where a value came from, for messages: the file (and key) or the variable.
struct Origin<'a> {
    file: &'a str,
}

impl Origin<'_> {
    fn err(&self, key: &str, msg: impl std::fmt::Display) -> ConfigError {
        ConfigError(format!("{}: key `{key}`: {msg}", self.file))
    }
}

impl Config {
    /// Loads `file` (if given) and applies `env` over it. `env` is passed in so tests do not
    /// depend on the process environment.
    pub fn load(file: Option<&Path>, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let (raw, file_name) = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError(format!("{}: cannot read config file: {e}", path.display()))
                })?;
                let raw: RawConfig = toml::from_str(&text).map_err(|e| {
                    ConfigError(format!(
                        "{}: {}",
                        path.display(),
                        e.to_string().trim_end().replace('\n', "\n  ")
                    ))
                })?;
                (raw, path.display().to_string())
            }
            None => (RawConfig::default(), "(embedded defaults)".to_string()),
        };
        let mut config = build(raw, &Origin { file: &file_name })?;
        config.source = file.map(Path::to_path_buf);
        apply_env(&mut config, env)?;
        config.check_admin(&file_name)?;
        Ok(config)
    }

    /// The process environment's `HOOKD_*` variables.
    pub fn process_env() -> HashMap<String, String> {
        std::env::vars()
            .filter(|(k, _)| k.starts_with("HOOKD_"))
            .collect()
    }

    fn check_admin(&self, file: &str) -> Result<(), ConfigError> {
        if !self.admin_listen.ip().is_loopback() && !self.admin.has_credential() {
            return Err(ConfigError(format!(
                "{file}: key `admin_listen`: {} is not a loopback address, and the admin API shows \
                 health data: set `admin.token` (or HOOKD_ADMIN_TOKEN) or `admin.password_hash` first",
                self.admin_listen
            )));
        }
        Ok(())
    }

    /// Looks an endpoint up by name.
    pub fn endpoint(&self, name: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.name == name)
    }
}

fn parse_addr(origin: &Origin, key: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|_| {
        origin.err(
            key,
            format!("`{text}` is not an address like 127.0.0.1:8080"),
        )
    })
}

fn read_secret_file(origin: &Origin, key: &str, path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map_err(|e| origin.err(key, format!("cannot read {}: {e}", path.display())))
}

fn parse_secrets(origin: &Origin, key: &str, list: &[String]) -> Result<Vec<Secret>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, s)| Secret::parse(s).map_err(|e| origin.err(&format!("{key}[{i}]"), e)))
        .collect()
}

fn valid_endpoint_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn build(raw: RawConfig, origin: &Origin) -> Result<Config, ConfigError> {
    let listen = parse_addr(
        origin,
        "listen",
        raw.listen.as_deref().unwrap_or(defaults::LISTEN),
    )?;
    let admin_listen = parse_addr(
        origin,
        "admin_listen",
        raw.admin_listen
            .as_deref()
            .unwrap_or(defaults::ADMIN_LISTEN),
    )?;
    let retention_days = raw.retention_days.unwrap_or(defaults::RETENTION_DAYS);
    if retention_days == 0 {
        return Err(origin.err("retention_days", "must be at least 1"));
    }
    let retention = build_retention(raw.retention, origin)?;
    let token = match (raw.admin.token, raw.admin.token_file) {
        (Some(_), Some(_)) => {
            return Err(origin.err(
                "admin.token_file",
                "set either admin.token or admin.token_file",
            ))
        }
        (Some(t), None) => Some(t),
        (None, Some(path)) => Some(
            read_secret_file(origin, "admin.token_file", &path)?
                .trim()
                .to_owned(),
        ),
        (None, None) => None,
    };
    if let Some(t) = &token {
        check_token(t).map_err(|m| origin.err("admin.token", m))?;
    }
    let metrics_token = raw.admin.metrics_token;
    if let Some(t) = &metrics_token {
        check_token(t).map_err(|m| origin.err("admin.metrics_token", m))?;
    }
    let password_hash = raw.admin.password_hash.map(|h| h.trim().to_owned());
    if let Some(h) = &password_hash {
        check_password_hash(h).map_err(|m| origin.err("admin.password_hash", m))?;
    }
    let session_ttl_secs = raw
        .admin
        .session_ttl_secs
        .unwrap_or(defaults::SESSION_TTL_SECS);
    if session_ttl_secs == 0 {
        return Err(origin.err("admin.session_ttl_secs", "must be at least 1"));
    }

    let p = raw.processing;
    let processing = Processing {
        workers: p.workers.unwrap_or(defaults::WORKERS),
        max_rate_per_sec: p.max_rate_per_sec,
        max_attempts: p.max_attempts.unwrap_or(defaults::MAX_ATTEMPTS),
        retry_schedule_secs: p
            .retry_schedule_secs
            .unwrap_or_else(|| defaults::RETRY_SCHEDULE_SECS.to_vec()),
        retry_jitter: p.retry_jitter.unwrap_or(defaults::RETRY_JITTER),
        attempt_timeout_secs: p
            .attempt_timeout_secs
            .unwrap_or(defaults::ATTEMPT_TIMEOUT_SECS),
        shutdown_grace_secs: p
            .shutdown_grace_secs
            .unwrap_or(defaults::SHUTDOWN_GRACE_SECS),
    };
    if processing.workers == 0 || processing.workers > 1024 {
        return Err(origin.err("processing.workers", "must be between 1 and 1024"));
    }
    if matches!(processing.max_rate_per_sec, Some(r) if !(r > 0.0 && r.is_finite())) {
        return Err(origin.err("processing.max_rate_per_sec", "must be a positive number"));
    }
    if processing.max_attempts == 0 {
        return Err(origin.err("processing.max_attempts", "must be at least 1"));
    }
    if processing.retry_schedule_secs.is_empty() {
        return Err(origin.err("processing.retry_schedule_secs", "needs at least one delay"));
    }
    if !(0.0..=1.0).contains(&processing.retry_jitter) {
        return Err(origin.err("processing.retry_jitter", "must be between 0.0 and 1.0"));
    }
    if processing.attempt_timeout_secs == 0 {
        return Err(origin.err("processing.attempt_timeout_secs", "must be at least 1"));
    }

    let r = raw.receive;
    let receive = Receive {
        queue_high_water: r.queue_high_water.unwrap_or(defaults::QUEUE_HIGH_WATER),
        log_body_bytes: r.log_body_bytes.unwrap_or(defaults::LOG_BODY_BYTES),
        rejected_body_bytes: r
            .rejected_body_bytes
            .unwrap_or(defaults::REJECTED_BODY_BYTES),
        rejected_log_per_sec: r
            .rejected_log_per_sec
            .unwrap_or(defaults::REJECTED_LOG_PER_SEC),
        max_connections: r.max_connections.unwrap_or(defaults::MAX_CONNECTIONS),
        header_read_timeout_secs: r
            .header_read_timeout_secs
            .unwrap_or(defaults::HEADER_READ_TIMEOUT_SECS),
        body_timeout_secs: r.body_timeout_secs.unwrap_or(defaults::BODY_TIMEOUT_SECS),
        body_min_bytes_per_sec: r
            .body_min_bytes_per_sec
            .unwrap_or(defaults::BODY_MIN_BYTES_PER_SEC),
        body_budget_bytes: r.body_budget_bytes.unwrap_or(defaults::BODY_BUDGET_BYTES),
    };
    for (key, value) in [
        ("receive.max_connections", receive.max_connections as u64),
        (
            "receive.header_read_timeout_secs",
            receive.header_read_timeout_secs,
        ),
        ("receive.body_timeout_secs", receive.body_timeout_secs),
    ] {
        if value == 0 {
            return Err(origin.err(key, "must be at least 1"));
        }
    }
    if !(receive.rejected_log_per_sec >= 0.0 && receive.rejected_log_per_sec.is_finite()) {
        return Err(origin.err(
            "receive.rejected_log_per_sec",
            "must be zero or a positive number",
        ));
    }

    let mut endpoints = Vec::new();
    for (i, e) in raw.endpoints.into_iter().enumerate() {
        let at = |field: &str| format!("endpoints[{i}].{field}");
        if !valid_endpoint_name(&e.name) {
            return Err(origin.err(&at("name"), format!(
                "`{}` must be 1-64 characters of letters, digits, '-' or '_' (it is a URL path segment)",
                e.name
            )));
        }
        if endpoints.iter().any(|x: &Endpoint| x.name == e.name) {
            return Err(origin.err(
                &at("name"),
                format!("`{}` is used by two endpoints", e.name),
            ));
        }
        let mut secrets = match &e.secrets {
            Some(list) => parse_secrets(origin, &at("secrets"), list)?,
            None => Vec::new(),
        };
        if let Some(path) = &e.secrets_file {
            let text = read_secret_file(origin, &at("secrets_file"), path)?;
            let lines: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned)
                .collect();
            secrets.extend(parse_secrets(origin, &at("secrets_file"), &lines)?);
        }
        let events = e
            .events
            .map(|list| list.into_iter().collect::<BTreeSet<_>>());
        if matches!(&events, Some(set) if set.is_empty()) {
            return Err(origin.err(
                &at("events"),
                "an empty list would drop every event; leave it out to accept all types",
            ));
        }
        let processor =
            match (e.processor.as_deref(), e.forward) {
                (None, None) if e.profile == Profile::Fasten => ProcessorConfig::Fasten,
                (Some("fasten"), None) => ProcessorConfig::Fasten,
                (None | Some("log"), None) => ProcessorConfig::Log,
                (Some("forward") | None, Some(f)) => {
                    let secret_text = match (f.secret, f.secret_file) {
                        (Some(s), None) => s,
                        (None, Some(path)) => {
                            read_secret_file(origin, &at("forward.secret_file"), &path)?
                        }
                        _ => {
                            return Err(origin.err(
                                &at("forward.secret"),
                                "set exactly one of forward.secret or forward.secret_file",
                            ))
                        }
                    };
                    let secret = Secret::parse(&secret_text)
                        .map_err(|m| origin.err(&at("forward.secret"), m))?;
                    if !(f.url.starts_with("http://") || f.url.starts_with("https://")) {
                        return Err(origin.err(
                            &at("forward.url"),
                            format!("`{}` is not an http(s) URL", f.url),
                        ));
                    }
                    ProcessorConfig::Forward {
                        url: f.url,
                        secret,
                        timeout_secs: f.timeout_secs.unwrap_or(defaults::FORWARD_TIMEOUT_SECS),
                    }
                }
                (Some("forward"), None) => return Err(origin.err(
                    &at("forward"),
                    "processor = \"forward\" needs a [endpoints.forward] table with url and secret",
                )),
                (Some("log"), Some(_)) => {
                    return Err(origin.err(
                        &at("forward"),
                        "a forward table is set but processor = \"log\"",
                    ))
                }
                (Some(other), _) => {
                    return Err(origin.err(
                        &at("processor"),
                        format!("`{other}` is not one of: log, forward, fasten"),
                    ))
                }
            };
        let max_body_bytes = e.max_body_bytes.unwrap_or(defaults::MAX_BODY_BYTES);
        if max_body_bytes == 0 {
            return Err(origin.err(&at("max_body_bytes"), "must be at least 1"));
        }
        if max_body_bytes > receive.body_budget_bytes {
            return Err(origin.err(
                &at("max_body_bytes"),
                format!(
                    "{max_body_bytes} is above receive.body_budget_bytes ({}): no body that size could ever be read",
                    receive.body_budget_bytes
                ),
            ));
        }
        endpoints.push(Endpoint {
            name: e.name,
            profile: e.profile,
            secrets,
            events,
            tolerance_secs: e.tolerance_secs.unwrap_or(defaults::TOLERANCE_SECS),
            max_body_bytes,
            processor,
        });
    }
    let default_endpoint = endpoints.is_empty();
    if default_endpoint {
        endpoints.push(Endpoint {
            name: "default".into(),
            profile: Profile::Standard,
            secrets: Vec::new(), // filled from the data directory at start-up
            events: None,
            tolerance_secs: defaults::TOLERANCE_SECS,
            max_body_bytes: defaults::MAX_BODY_BYTES,
            processor: ProcessorConfig::Log,
        });
    }

    let fasten = build_fasten(raw.fasten, origin)?;
    Ok(Config {
        source: None,
        data_dir: raw
            .data_dir
            .unwrap_or_else(|| PathBuf::from(defaults::DATA_DIR)),
        listen,
        admin_listen,
        retention_days,
        cache_mb: raw.cache_mb.unwrap_or(defaults::CACHE_MB),
        retention,
        admin: Admin {
            token,
            metrics_token,
            password_hash,
            session_ttl_secs,
        },
        processing,
        receive,
        endpoints,
        default_endpoint,
        fasten,
    })
}

fn build_retention(raw: RawRetention, origin: &Origin) -> Result<Retention, ConfigError> {
    let schedule = raw
        .schedule
        .unwrap_or_else(|| defaults::PRUNE_SCHEDULE.to_owned());
    check_schedule(&schedule).map_err(|m| origin.err("retention.schedule", m))?;
    let export_retention_days = raw
        .export_retention_days
        .unwrap_or(defaults::EXPORT_RETENTION_DAYS);
    if export_retention_days == 0 {
        return Err(origin.err("retention.export_retention_days", "must be at least 1"));
    }
    let batch_size = raw.batch_size.unwrap_or(defaults::PRUNE_BATCH);
    if !(1..=100_000).contains(&batch_size) {
        return Err(origin.err("retention.batch_size", "must be between 1 and 100000"));
    }
    Ok(Retention {
        schedule,
        export_retention_days,
        batch_size,
    })
}

/// A schedule must be a cron expression the scheduler accepts: 6 fields, seconds first.
fn check_schedule(schedule: &str) -> Result<(), String> {
    let fields = schedule.split_whitespace().count();
    if !(6..=7).contains(&fields) {
        return Err(format!(
            "`{schedule}` has {fields} fields; a schedule has 6 (sec min hour day month weekday), \
             e.g. \"0 0 * * * *\" for hourly"
        ));
    }
    tokio_cron_scheduler::Job::new_async(schedule, |_, _| Box::pin(async {}))
        .map(|_| ())
        .map_err(|e| format!("`{schedule}` is not a valid cron expression ({e:?})"))
}

fn check_password_hash(hash: &str) -> Result<(), &'static str> {
    match argon2::PasswordHash::new(hash) {
        Ok(h) if h.algorithm.as_str().starts_with("argon2") => Ok(()),
        _ => Err("must be an argon2 hash like `$argon2id$v=19$...` (see `hookd hash-password`)"),
    }
}

fn check_token(token: &str) -> Result<(), &'static str> {
    if token.len() < 16 {
        return Err("must be at least 16 characters");
    }
    Ok(())
}

/// The environment variable that carries an endpoint's secrets: `HOOKD_SECRETS_<NAME>`, the
/// name upper-cased with '-' as '_'.
pub fn secrets_var(endpoint: &str) -> String {
    format!(
        "HOOKD_SECRETS_{}",
        endpoint.to_ascii_uppercase().replace('-', "_")
    )
}

fn apply_env(config: &mut Config, env: &HashMap<String, String>) -> Result<(), ConfigError> {
    let var_err = |var: &str, msg: &dyn std::fmt::Display| {
        ConfigError(format!("environment variable {var}: {msg}"))
    };
    let num = |var: &str, text: &str| -> Result<u64, ConfigError> {
        text.trim()
            .parse::<u64>()
            .map_err(|_| var_err(var, &"is not a whole number"))
    };
    for (var, value) in env {
        match var.as_str() {
            "HOOKD_DATA_DIR" => config.data_dir = PathBuf::from(value),
            "HOOKD_LISTEN" => {
                config.listen = value
                    .parse()
                    .map_err(|_| var_err(var, &"is not an address like 127.0.0.1:8080"))?
            }
            "HOOKD_ADMIN_LISTEN" => {
                config.admin_listen = value
                    .parse()
                    .map_err(|_| var_err(var, &"is not an address like 127.0.0.1:8081"))?
            }
            "HOOKD_RETENTION_DAYS" => {
                let days = num(var, value)?;
                if days == 0 || days > u32::MAX as u64 {
                    return Err(var_err(var, &"must be at least 1"));
                }
                config.retention_days = days as u32;
            }
            "HOOKD_WORKERS" => {
                let n = num(var, value)?;
                if n == 0 || n > 1024 {
                    return Err(var_err(var, &"must be between 1 and 1024"));
                }
                config.processing.workers = n as usize;
            }
            "HOOKD_ADMIN_TOKEN" => {
                check_token(value.trim()).map_err(|m| var_err(var, &m))?;
                config.admin.token = Some(value.trim().to_owned());
            }
            "HOOKD_FASTEN_PRIVATE_KEY" => {
                config.fasten.private_key = Some(value.trim().to_owned());
            }
            "HOOKD_ADMIN_PASSWORD_HASH" => {
                check_password_hash(value.trim()).map_err(|m| var_err(var, &m))?;
                config.admin.password_hash = Some(value.trim().to_owned());
            }
            "HOOKD_CONFIG" => {}
            _ if var.starts_with("HOOKD_SECRETS_") => {
                let endpoint = config
                    .endpoints
                    .iter_mut()
                    .find(|e| secrets_var(&e.name) == *var)
                    .ok_or_else(|| var_err(var, &"names no configured endpoint"))?;
                let list: Result<Vec<Secret>, _> = value
                    .split([',', ' ', '\n'])
                    .filter(|s| !s.trim().is_empty())
                    .map(Secret::parse)
                    .collect();
                endpoint.secrets = list.map_err(|e| var_err(var, &e))?;
            }
            _ => {} // unknown HOOKD_ variables are ignored like any other environment
        }
    }
    if !config.default_endpoint {
        let file = config
            .source
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        for (i, e) in config.endpoints.iter().enumerate() {
            if e.secrets.is_empty() {
                return Err(ConfigError(format!(
                    "{file}: key `endpoints[{i}].secrets`: endpoint `{}` has no secret: set secrets, \
                     secrets_file, or {}",
                    e.name,
                    secrets_var(&e.name)
                )));
            }
        }
    }
    Ok(())
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
}

impl std::fmt::Debug for Fasten {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fasten")
            .field("api_base", &self.api_base)
            .field("public_id", &self.public_id)
            .field(
                "private_key",
                &self.private_key.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "request_export_on_connection",
                &self.request_export_on_connection,
            )
            .field("download_hosts", &self.download_hosts)
            .field("max_export_bytes", &self.max_export_bytes)
            .field("on_revoke", &self.on_revoke)
            .finish()
    }
}

impl Fasten {
    /// Whether `url` may be downloaded from: https to a listed host, or http to a host
    /// listed as `http://...`. Returns the reason when not.
    pub fn check_download_url(&self, url: &reqwest::Url) -> Result<(), String> {
        let host = url.host_str().unwrap_or("").to_ascii_lowercase();
        let scheme = url.scheme();
        if scheme != "https" && scheme != "http" {
            return Err(format!("{url}: only https URLs are downloaded"));
        }
        let listed = self.download_hosts.iter().filter(|h| {
            h.host == host
                && h.port
                    .is_none_or(|p| Some(p) == url.port_or_known_default())
        });
        let mut any = false;
        for h in listed {
            any = true;
            if scheme == "https" || h.allow_http {
                return Ok(());
            }
        }
        if any {
            Err(format!(
                "{url}: plain http is refused; list the host as `http://{host}` in fasten.download_hosts to allow it"
            ))
        } else {
            Err(format!(
                "{url}: host `{host}` is not in fasten.download_hosts"
            ))
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFasten {
    api_base: Option<String>,
    public_id: Option<String>,
    private_key_file: Option<PathBuf>,
    request_export_on_connection: Option<bool>,
    download_hosts: Option<Vec<String>>,
    max_export_bytes: Option<u64>,
    on_revoke: Option<String>,
}

fn parse_download_host(text: &str) -> Option<DownloadHost> {
    let (allow_http, rest) = match text.strip_prefix("http://") {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix("https://").unwrap_or(text)),
    };
    let rest = rest.trim_end_matches('/');
    let url = reqwest::Url::parse(&format!("http://{rest}/")).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    if url.path() != "/" || host.is_empty() {
        return None;
    }
    Some(DownloadHost {
        host,
        port: url.port(),
        allow_http,
    })
}

fn build_fasten(raw: RawFasten, origin: &Origin) -> Result<Fasten, ConfigError> {
    let api_base = raw
        .api_base
        .unwrap_or_else(|| defaults::FASTEN_API_BASE.to_string())
        .trim_end_matches('/')
        .to_string();
    let api_url = reqwest::Url::parse(&api_base)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or_else(|| {
            origin.err(
                "fasten.api_base",
                format!("`{api_base}` is not an http(s) URL"),
            )
        })?;
    let private_key = match &raw.private_key_file {
        Some(path) => Some(
            read_secret_file(origin, "fasten.private_key_file", path)?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    let download_hosts = match raw.download_hosts {
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, h)| {
                parse_download_host(h).ok_or_else(|| {
                    origin.err(
                        &format!("fasten.download_hosts[{i}]"),
                        format!("`{h}` is not a host name (optionally `http://host[:port]`)"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        // The API host itself, over https.
        None => vec![DownloadHost {
            host: api_url.host_str().unwrap_or("").to_ascii_lowercase(),
            port: None,
            allow_http: false,
        }],
    };
    let on_revoke = match raw.on_revoke.as_deref() {
        None | Some("keep") => OnRevoke::Keep,
        Some("delete") => OnRevoke::Delete,
        Some(other) => {
            return Err(origin.err(
                "fasten.on_revoke",
                format!("`{other}` is not one of: keep, delete"),
            ))
        }
    };
    let max_export_bytes = raw
        .max_export_bytes
        .unwrap_or(defaults::FASTEN_MAX_EXPORT_BYTES);
    if max_export_bytes == 0 {
        return Err(origin.err("fasten.max_export_bytes", "must be at least 1"));
    }
    Ok(Fasten {
        api_base,
        public_id: raw.public_id,
        private_key,
        request_export_on_connection: raw.request_export_on_connection.unwrap_or(true),
        download_hosts,
        max_export_bytes,
        on_revoke,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookd.toml");
        std::fs::write(&path, text).unwrap();
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load(Some(&path), &env)
    }

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn embedded_defaults_give_one_standard_endpoint() {
        let c = Config::load(None, &HashMap::new()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.admin_listen.to_string(), "127.0.0.1:8081");
        assert_eq!(c.retention_days, 15);
        assert_eq!(c.data_dir, PathBuf::from("./hookd-data"));
        assert!(c.default_endpoint);
        assert_eq!(c.endpoints[0].name, "default");
        assert_eq!(c.endpoints[0].profile, Profile::Standard);
    }

    #[test]
    fn full_endpoint_is_read() {
        let c = load_str(
            &format!(
                r#"
                data_dir = "/tmp/x"
                [[endpoints]]
                name = "fasten-live"
                profile = "fasten"
                secrets = ["{SECRET}"]
                events = ["patient.ehi_export_success"]
                tolerance_secs = 60
                max_body_bytes = 1000
                [endpoints.forward]
                url = "http://127.0.0.1:9/in"
                secret = "{SECRET}"
                "#
            ),
            &[],
        )
        .unwrap();
        let e = c.endpoint("fasten-live").unwrap();
        assert_eq!(e.profile, Profile::Fasten);
        assert_eq!(e.tolerance_secs, 60);
        assert!(e
            .events
            .as_ref()
            .unwrap()
            .contains("patient.ehi_export_success"));
        assert!(matches!(e.processor, ProcessorConfig::Forward { .. }));
    }

    #[test]
    fn unknown_key_names_the_key_and_file() {
        let err = load_str("retension_days = 3", &[]).unwrap_err().0;
        assert!(err.contains("hookd.toml"), "{err}");
        assert!(err.contains("retension_days"), "{err}");
    }

    #[test]
    fn bad_secret_names_the_key() {
        let err = load_str(
            "[[endpoints]]\nname = \"a\"\nsecrets = [\"whsec_???\"]",
            &[],
        )
        .unwrap_err()
        .0;
        assert!(
            err.contains("hookd.toml: key `endpoints[0].secrets[0]`"),
            "{err}"
        );
    }

    #[test]
    fn endpoint_without_secret_is_refused_unless_env_provides_it() {
        let text = "[[endpoints]]\nname = \"fasten-test\"";
        let err = load_str(text, &[]).unwrap_err().0;
        assert!(
            err.contains("endpoints[0].secrets") && err.contains("HOOKD_SECRETS_FASTEN_TEST"),
            "{err}"
        );
        let c = load_str(text, &[("HOOKD_SECRETS_FASTEN_TEST", SECRET)]).unwrap();
        assert_eq!(c.endpoints[0].secrets.len(), 1);
    }

    #[test]
    fn environment_overrides_the_file() {
        let c = load_str(
            "listen = \"127.0.0.1:1\"\nretention_days = 3",
            &[
                ("HOOKD_LISTEN", "127.0.0.1:2"),
                ("HOOKD_RETENTION_DAYS", "7"),
            ],
        )
        .unwrap();
        assert_eq!(c.listen.port(), 2);
        assert_eq!(c.retention_days, 7);
        let err = load_str("", &[("HOOKD_RETENTION_DAYS", "soon")])
            .unwrap_err()
            .0;
        assert!(err.contains("HOOKD_RETENTION_DAYS"), "{err}");
    }

    #[test]
    fn public_admin_listener_needs_a_token() {
        let err = load_str("admin_listen = \"0.0.0.0:8081\"", &[])
            .unwrap_err()
            .0;
        assert!(
            err.contains("admin_listen") && err.contains("admin.token"),
            "{err}"
        );
        load_str(
            "admin_listen = \"0.0.0.0:8081\"\n[admin]\ntoken = \"0123456789abcdef0123\"",
            &[],
        )
        .unwrap();
    }

    #[test]
    fn retention_schedule_is_checked() {
        let c = Config::load(None, &HashMap::new()).unwrap();
        assert_eq!(c.retention.schedule, "0 0 * * * *");
        assert_eq!(c.retention.export_retention_days, 15);
        let err = load_str("[retention]\nschedule = \"0 * * * *\"", &[])
            .unwrap_err()
            .0;
        assert!(
            err.contains("hookd.toml: key `retention.schedule`"),
            "{err}"
        );
        let err = load_str("[retention]\nschedule = \"x 0 * * * *\"", &[])
            .unwrap_err()
            .0;
        assert!(err.contains("retention.schedule"), "{err}");
        let c = load_str(
            "[retention]\nschedule = \"0 */5 * * * *\"\nexport_retention_days = 3",
            &[],
        )
        .unwrap();
        assert_eq!(c.retention.export_retention_days, 3);
    }

    #[test]
    fn empty_events_list_is_refused() {
        let err = load_str(
            &format!("[[endpoints]]\nname = \"a\"\nsecrets = [\"{SECRET}\"]\nevents = []"),
            &[],
        )
        .unwrap_err()
        .0;
        assert!(err.contains("endpoints[0].events"), "{err}");
    }

    #[test]
    fn fasten_section_is_read_and_checked() {
        let c = load_str(
            &format!(
                r#"
                [fasten]
                public_id = "public_test_1"
                download_hosts = ["api.connect.fastenhealth.com", "http://127.0.0.1"]
                on_revoke = "delete"
                [[endpoints]]
                name = "f"
                profile = "fasten"
                secrets = ["{SECRET}"]
                "#
            ),
            &[("HOOKD_FASTEN_PRIVATE_KEY", "key-from-env")],
        )
        .unwrap();
        assert_eq!(c.endpoints[0].processor, ProcessorConfig::Fasten);
        assert_eq!(c.fasten.on_revoke, OnRevoke::Delete);
        assert_eq!(c.fasten.private_key.as_deref(), Some("key-from-env"));
        assert!(!format!("{:?}", c.fasten).contains("key-from-env"));
        let ok = |u: &str| {
            c.fasten
                .check_download_url(&reqwest::Url::parse(u).unwrap())
        };
        assert!(ok("https://api.connect.fastenhealth.com/v1/x").is_ok());
        assert!(ok("http://127.0.0.1:9000/x").is_ok());
        let err = ok("http://api.connect.fastenhealth.com/v1/x").unwrap_err();
        assert!(err.contains("plain http is refused"), "{err}");
        let err = ok("https://evil.example/x").unwrap_err();
        assert!(err.contains("not in fasten.download_hosts"), "{err}");

        let err = load_str("[fasten]\non_revoke = \"shred\"", &[])
            .unwrap_err()
            .0;
        assert!(err.contains("hookd.toml: key `fasten.on_revoke`"), "{err}");
        let err = load_str("[fasten]\ndownload_hosts = [\"a b\"]", &[])
            .unwrap_err()
            .0;
        assert!(err.contains("fasten.download_hosts[0]"), "{err}");
        let err = load_str("[fasten]\napi_base = \"ftp://x\"", &[])
            .unwrap_err()
            .0;
        assert!(err.contains("fasten.api_base"), "{err}");
    }

    #[test]
    fn fasten_defaults_download_only_from_the_api_host_over_https() {
        let c = Config::load(None, &HashMap::new()).unwrap();
        assert_eq!(c.fasten.api_base, "https://api.connect.fastenhealth.com/v1");
        assert!(c.fasten.request_export_on_connection);
        assert_eq!(c.fasten.on_revoke, OnRevoke::Keep);
        assert_eq!(c.fasten.max_export_bytes, 10_737_418_240);
        assert_eq!(c.fasten.download_hosts.len(), 1);
        assert!(!c.fasten.download_hosts[0].allow_http);
    }
}
