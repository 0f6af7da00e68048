//! hookd's one clock: wall-clock milliseconds derived from tokio's clock.
//!
//! Every time hookd records or compares (receive times, retry and first due times, sessions,
//! login limits, export records) is read with [`now_ms`]: stored as wall-clock milliseconds
//! (they must survive a restart), but computed from `tokio::time::Instant` so that tests can
//! pause and advance time instead of sleeping. In production the two agree; tokio's clock is
//! also monotonic, so a wall-clock step while running does not make retries fire early or
//! late. Only Standard Webhooks signature timestamps read the real wall clock
//! ([`system_secs`]): another party checks them against its own clock.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

static ORIGIN: OnceLock<(u64, tokio::time::Instant)> = OnceLock::new();

/// `ms` since the epoch as a UTC time people read in texts such as attempt details
/// (`2026-11-30 02:43:37 UTC`); the API's numbers stay milliseconds.
pub fn utc_text(ms: u64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms as i64) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        None => format!("{ms} ms since the epoch"),
    }
}

/// Unix seconds as RFC 3339 UTC (`2024-06-13T00:08:31Z`).
pub fn rfc3339(secs: i64) -> String {
    match chrono::DateTime::from_timestamp(secs, 0) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        None => format!("{secs}"),
    }
}

/// Real wall-clock time in milliseconds since the Unix epoch (for [`system_secs`]).
pub fn system_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Real wall-clock time in seconds since the Unix epoch (for signature timestamps).
pub fn system_secs() -> i64 {
    (system_ms() / 1000) as i64
}

/// Scheduling time in milliseconds since the Unix epoch, advancing with tokio's clock.
pub fn now_ms() -> u64 {
    let (base_ms, base_instant) =
        *ORIGIN.get_or_init(|| (system_ms(), tokio::time::Instant::now()));
    base_ms
        + tokio::time::Instant::now()
            .saturating_duration_since(base_instant)
            .as_millis() as u64
}

/// The tokio instant at which [`now_ms`] will read `at_ms` (now, if that is in the past).
pub fn instant_at(at_ms: u64) -> tokio::time::Instant {
    let now = now_ms();
    tokio::time::Instant::now() + std::time::Duration::from_millis(at_ms.saturating_sub(now))
}
