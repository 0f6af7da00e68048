//! The defaults of every key, documented in README.md ("Configuration") and
//! packaging/hookd.toml.
//!
//! They stay typed constants rather than one embedded default TOML file: a TOML file merged
//! under the user's would lose the line and column toml reports for a bad value, per-endpoint
//! defaults (`tolerance_secs`, `max_body_bytes`, forward `timeout_secs`) have no table to sit
//! in, and the README's compact list and the packaged, commented-out file are written for
//! different readers, so neither can be the other. Instead the config tests load the README's
//! block and the packaged file and fail when a default they show differs from these.

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
/// Connections a small box serves at once: far above what a webhook sender opens, far below
/// the unit's LimitNOFILE.
pub const MAX_CONNECTIONS: usize = 256;
pub const HEADER_READ_TIMEOUT_SECS: u64 = 10;
pub const BODY_TIMEOUT_SECS: u64 = 20;
pub const BODY_MIN_BYTES_PER_SEC: u64 = 1024;
/// 32 MiB of request bodies held at once, whatever the number of senders.
pub const BODY_BUDGET_BYTES: usize = 33_554_432;
/// 16 KiB of request headers per delivery: a webhook sender's fit in a few hundred bytes.
pub const LOG_HEADER_BYTES: usize = 16_384;
/// 16 KiB/s of rejected deliveries: at most about 1.4 GB a day under a steady flood, while
/// ten ordinary rejections a second (a few hundred bytes each) still fit.
pub const REJECTED_LOG_BYTES_PER_SEC: f64 = 16_384.0;
/// Headers that carry credentials in common use. `webhook-signature` is not among them: it
/// proves one body, and keeping it lets a rejected delivery be diagnosed.
pub const REDACT_HEADERS: [&str; 11] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "x-auth-token",
    "x-access-token",
    "x-amz-security-token",
    "x-csrf-token",
    "x-xsrf-token",
];
pub const FORWARD_TIMEOUT_SECS: u64 = 30;
/// Every hour, on the hour (UTC).
pub const PRUNE_SCHEDULE: &str = "0 0 * * * *";
pub const EXPORT_RETENTION_DAYS: u32 = 15;
pub const PRUNE_BATCH: usize = 200;
pub const FASTEN_API_BASE: &str = "https://api.connect.fastenhealth.com/v1";
/// 10 GiB.
pub const FASTEN_MAX_EXPORT_BYTES: u64 = 10_737_418_240;
/// Request an export when a patient connects.
pub const REQUEST_EXPORT_ON_CONNECTION: bool = true;
/// One alert summary per 5 minutes at most.
pub const ALERT_MIN_INTERVAL_SECS: u64 = 300;
/// An event due for an hour and still waiting is worth an alert.
pub const ALERT_OLDEST_QUEUED_SECS: u64 = 3600;
pub const ALERT_TIMEOUT_SECS: u64 = 10;
pub const PUSH_TIMEOUT_SECS: u64 = 30;
