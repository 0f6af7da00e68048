//! The `[processing]` and `[receive]` sections: how events are worked off in the background,
//! and the receiver's limits.

use super::defaults;
use super::error::{ConfigError, Invalid, Origin};
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
    let problem = if !(1..=1024).contains(&processing.workers) {
        Some(("processing.workers", Invalid::OutOfRange(1, 1024)))
    } else if matches!(processing.max_rate_per_sec, Some(r) if !(r > 0.0 && r.is_finite())) {
        Some(("processing.max_rate_per_sec", Invalid::NotPositive))
    } else if processing.max_attempts == 0 {
        Some(("processing.max_attempts", Invalid::Zero))
    } else if processing.retry_schedule_secs.is_empty() {
        Some(("processing.retry_schedule_secs", Invalid::NoDelay))
    } else if !(0.0..=1.0).contains(&processing.retry_jitter) {
        Some(("processing.retry_jitter", Invalid::NotAFraction))
    } else if processing.attempt_timeout_secs == 0 {
        Some(("processing.attempt_timeout_secs", Invalid::Zero))
    } else {
        None
    };
    match problem {
        Some((key, problem)) => Err(origin.err(key, problem)),
        None => Ok(processing),
    }
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
    };
    if !(receive.rejected_log_per_sec >= 0.0 && receive.rejected_log_per_sec.is_finite()) {
        return Err(origin.err("receive.rejected_log_per_sec", Invalid::Negative));
    }
    Ok(receive)
}
