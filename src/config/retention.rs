//! The `[retention]` section: when the pruner runs and how much it removes at a time.

use super::defaults;
use super::error::{ConfigError, Invalid, Origin, Problems, ScheduleError};
use super::raw::RawRetention;
use super::types::Retention;

/// Builds and checks `[retention]`.
pub(super) fn build(raw: RawRetention, origin: &Origin) -> Result<Retention, ConfigError> {
    let mut problems = Problems::default();
    let schedule = raw
        .schedule
        .unwrap_or_else(|| defaults::PRUNE_SCHEDULE.to_owned());
    problems.ok(check_schedule(&schedule).map_err(|e| origin.err("retention.schedule", e)));
    let export_retention_days = raw
        .export_retention_days
        .unwrap_or(defaults::EXPORT_RETENTION_DAYS);
    if export_retention_days == 0 {
        problems.add(origin.err("retention.export_retention_days", Invalid::Zero));
    }
    let batch_size = raw.batch_size.unwrap_or(defaults::PRUNE_BATCH);
    if !(1..=100_000).contains(&batch_size) {
        problems.add(origin.err("retention.batch_size", Invalid::OutOfRange(1, 100_000)));
    }
    problems.finish(Some(Retention {
        schedule,
        export_retention_days,
        batch_size,
    }))
}

/// A schedule must be a cron expression the scheduler accepts: 6 fields, seconds first.
fn check_schedule(schedule: &str) -> Result<(), ScheduleError> {
    let fields = schedule.split_whitespace().count();
    if !(6..=7).contains(&fields) {
        return Err(ScheduleError::Fields {
            schedule: schedule.to_owned(),
            fields,
        });
    }
    tokio_cron_scheduler::Job::new_async(schedule, |_, _| Box::pin(async {}))
        .map(|_| ())
        .map_err(|e| ScheduleError::Cron {
            schedule: schedule.to_owned(),
            reason: format!("{e:?}"),
        })
}
