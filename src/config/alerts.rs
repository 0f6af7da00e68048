//! `[alerts]` and `[push]`: the two places hookd itself sends signed webhooks to, each a URL
//! and a Standard Webhooks secret of its own.

use super::build::url_and_secret;
use super::defaults;
use super::error::{ConfigError, Invalid, Origin, Problems};
use super::raw::{RawAlerts, RawPush};
use super::types::{Alerts, Push};

/// Builds and checks `[alerts]`.
pub(super) fn build_alerts(raw: RawAlerts, origin: &Origin) -> Result<Alerts, ConfigError> {
    let mut problems = Problems::default();
    let target = problems.ok(url_and_secret(
        origin,
        "alerts",
        raw.url,
        raw.secret,
        raw.secret_file,
        (
            "the http(s) URL that receives alert summaries",
            "exactly one of alerts.secret or alerts.secret_file (a whsec_ secret that signs the alerts)",
        ),
    ));
    let min_interval_secs = raw
        .min_interval_secs
        .unwrap_or(defaults::ALERT_MIN_INTERVAL_SECS);
    if min_interval_secs == 0 {
        problems.add(origin.err("alerts.min_interval_secs", Invalid::Zero));
    }
    let timeout_secs = raw.timeout_secs.unwrap_or(defaults::ALERT_TIMEOUT_SECS);
    if timeout_secs == 0 {
        problems.add(origin.err("alerts.timeout_secs", Invalid::Zero));
    }
    problems.finish(target.map(|(url, secret)| {
        Alerts {
            url,
            secret,
            oldest_queued_secs: raw
                .oldest_queued_secs
                .unwrap_or(defaults::ALERT_OLDEST_QUEUED_SECS),
            min_interval_secs,
            timeout_secs,
        }
    }))
}

/// Builds and checks `[push]`.
pub(super) fn build_push(raw: RawPush, origin: &Origin) -> Result<Push, ConfigError> {
    let mut problems = Problems::default();
    let target = problems.ok(url_and_secret(
        origin,
        "push",
        raw.url,
        raw.secret,
        raw.secret_file,
        (
            "the http(s) URL of your service that receives hookd's events",
            "exactly one of push.secret or push.secret_file (a whsec_ secret that signs the events)",
        ),
    ));
    let timeout_secs = raw.timeout_secs.unwrap_or(defaults::PUSH_TIMEOUT_SECS);
    if timeout_secs == 0 {
        problems.add(origin.err("push.timeout_secs", Invalid::Zero));
    }
    problems.finish(target.map(|(url, secret)| Push {
        url,
        secret,
        timeout_secs,
    }))
}
