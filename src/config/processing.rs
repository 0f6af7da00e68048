//! The `[processing]` and `[receive]` sections: how events are worked off in the background,
//! and the receiver's limits.

use super::defaults;
use super::error::{ConfigError, Invalid, Origin, Problems};
use super::raw::{RawProcessing, RawReceive};
use super::types::{Processing, Receive};

/// Builds and checks `[processing]`.
pub(super) fn build_processing(
    p: RawProcessing,
    origin: &Origin,
) -> Result<Processing, ConfigError> {
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
    let mut problems = Problems::default();
    let checks = [
        (
            "processing.workers",
            !(1..=1024).contains(&processing.workers),
            Invalid::OutOfRange(1, 1024),
        ),
        (
            "processing.max_rate_per_sec",
            matches!(processing.max_rate_per_sec, Some(r) if !(r > 0.0 && r.is_finite())),
            Invalid::NotPositive,
        ),
        (
            "processing.max_attempts",
            processing.max_attempts == 0,
            Invalid::Zero,
        ),
        (
            "processing.retry_schedule_secs",
            processing.retry_schedule_secs.is_empty(),
            Invalid::NoDelay,
        ),
        (
            "processing.retry_jitter",
            !(0.0..=1.0).contains(&processing.retry_jitter),
            Invalid::NotAFraction,
        ),
        (
            "processing.attempt_timeout_secs",
            processing.attempt_timeout_secs == 0,
            Invalid::Zero,
        ),
    ];
    for (key, refused, problem) in checks {
        if refused {
            problems.add(origin.err(key, problem));
        }
    }
    problems.finish(Some(processing))
}

/// Builds and checks `[receive]`.
pub(super) fn build_receive(r: RawReceive, origin: &Origin) -> Result<Receive, ConfigError> {
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
        log_header_bytes: r.log_header_bytes.unwrap_or(defaults::LOG_HEADER_BYTES),
        rejected_log_bytes_per_sec: r
            .rejected_log_bytes_per_sec
            .unwrap_or(defaults::REJECTED_LOG_BYTES_PER_SEC),
        redact_headers: match r.redact_headers {
            Some(names) => names
                .iter()
                .map(|n| n.trim().to_ascii_lowercase())
                .collect(),
            None => defaults::REDACT_HEADERS.map(str::to_string).to_vec(),
        },
    };
    let mut problems = Problems::default();
    for (key, rate) in [
        ("receive.rejected_log_per_sec", receive.rejected_log_per_sec),
        (
            "receive.rejected_log_bytes_per_sec",
            receive.rejected_log_bytes_per_sec,
        ),
    ] {
        if !(rate >= 0.0 && rate.is_finite()) {
            problems.add(origin.err(key, Invalid::Negative));
        }
    }
    for (i, name) in receive.redact_headers.iter().enumerate() {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            problems.add(origin.err(
                &format!("receive.redact_headers[{i}]"),
                Invalid::HeaderName(name.clone()),
            ));
        }
    }
    for (key, value) in [
        ("receive.max_connections", receive.max_connections as u64),
        (
            "receive.header_read_timeout_secs",
            receive.header_read_timeout_secs,
        ),
        ("receive.body_timeout_secs", receive.body_timeout_secs),
        (
            "receive.body_budget_bytes",
            receive.body_budget_bytes as u64,
        ),
    ] {
        if value == 0 {
            problems.add(origin.err(key, Invalid::Zero));
        }
    }
    problems.finish(Some(receive))
}
