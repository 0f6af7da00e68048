//! The retention pruner: on a cron schedule (and once at start-up, to catch up after
//! downtime) it removes what is older than `retention_days` from the store, and export
//! directories under `<data_dir>/exports/` older than `retention.export_retention_days`.
//!
//! The store work goes in bounded batches (see `store::prune` for why each batch is its own
//! transaction rather than a write through the writer thread), with a short pause between
//! batches so that receiving never waits long behind a prune. Unfinished events (queued,
//! processing, retrying) are never removed. "Now" is a parameter of [`Pruner::prune_at`], so
//! tests move time instead of waiting.

use crate::clock;
use crate::config::Config;
use crate::store::exports::Aged;
use crate::store::{ExportFiles, PruneBatch, Store, StoreError};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

const DAY_MS: u64 = 24 * 60 * 60 * 1000;
/// After each batch the pruner rests this many times as long as the batch took, so it uses
/// at most a fifth of the machine's time and of sled's lock, however large the backlog: on a
/// 2-core machine a prune running flat out took 45 s for a million records and raised the
/// ack p99 elevenfold (benches/README.md).
const REST_FACTOR: u32 = 4;

/// Why a prune stopped short (the next run tries again).
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the prune task failed: {0}")]
    Task(String),
}

/// What one prune removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    pub deliveries: u64,
    pub events: u64,
    pub exports: u64,
    /// Whether a stop cut the prune short (the next run continues).
    pub interrupted: bool,
}

impl PruneReport {
    /// Records removed from the store.
    pub fn records(&self) -> u64 {
        self.deliveries + self.events
    }
}

/// What /api/stats shows about retention.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    pub retention_days: u32,
    pub export_retention_days: u32,
    pub schedule: String,
    /// When the last prune finished (ms since the epoch), if one has run since start-up.
    pub last_prune_at_ms: Option<u64>,
    pub last_prune_duration_ms: u64,
    /// Records (deliveries + events) and exports removed by the last prune.
    pub last_pruned_records: u64,
    pub last_pruned_exports: u64,
    /// Records removed since start-up.
    pub pruned_records_total: u64,
    pub running: bool,
}

/// Sleeps [`REST_FACTOR`] times as long as the work begun at `started` took.
fn rest(started: std::time::Instant) {
    std::thread::sleep((started.elapsed() * REST_FACTOR).max(Duration::from_millis(1)));
}

/// Why the retention schedule could not start. The scheduler's errors only have `Debug`.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// `retention.schedule` is not a cron expression the scheduler takes.
    #[error("retention.schedule: {0:?}")]
    Cron(JobSchedulerError),
    /// The scheduler itself would not start.
    #[error("cannot start the prune scheduler: {0:?}")]
    Start(JobSchedulerError),
    /// The scheduler refused the prune job.
    #[error("cannot schedule the pruner: {0:?}")]
    Add(JobSchedulerError),
}

/// The pruner. Share it as `Arc<Pruner>`.
pub struct Pruner {
    store: Arc<Store>,
    files: ExportFiles,
    retention_days: u32,
    export_retention_days: u32,
    schedule: String,
    batch: usize,
    /// One prune at a time; held for the whole run.
    running: tokio::sync::Mutex<()>,
    busy: AtomicBool,
    stop: AtomicBool,
    last_at_ms: AtomicU64,
    last_duration_ms: AtomicU64,
    last_records: AtomicU64,
    last_exports: AtomicU64,
    total_records: AtomicU64,
    /// The nice value of the thread the last prune ran on (tests read it).
    #[cfg(all(test, target_os = "linux"))]
    ran_at_nice: std::sync::atomic::AtomicI32,
}

impl Pruner {
    /// A pruner for `store` with the configured retention.
    pub fn new(config: &Config, store: Arc<Store>) -> Pruner {
        Pruner {
            store,
            files: ExportFiles::at(&config.exports_dir()),
            retention_days: config.retention_days,
            export_retention_days: config.retention.export_retention_days,
            schedule: config.retention.schedule.clone(),
            batch: config.retention.batch_size,
            running: tokio::sync::Mutex::new(()),
            busy: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            last_at_ms: AtomicU64::new(0),
            last_duration_ms: AtomicU64::new(0),
            last_records: AtomicU64::new(0),
            last_exports: AtomicU64::new(0),
            total_records: AtomicU64::new(0),
            #[cfg(all(test, target_os = "linux"))]
            ran_at_nice: std::sync::atomic::AtomicI32::new(i32::MIN),
        }
    }

    /// The figures for /api/stats.
    pub fn status(&self) -> Status {
        let last = self.last_at_ms.load(Ordering::Relaxed);
        Status {
            retention_days: self.retention_days,
            export_retention_days: self.export_retention_days,
            schedule: self.schedule.clone(),
            last_prune_at_ms: (last > 0).then_some(last),
            last_prune_duration_ms: self.last_duration_ms.load(Ordering::Relaxed),
            last_pruned_records: self.last_records.load(Ordering::Relaxed),
            last_pruned_exports: self.last_exports.load(Ordering::Relaxed),
            pruned_records_total: self.total_records.load(Ordering::Relaxed),
            running: self.busy.load(Ordering::Relaxed),
        }
    }

    /// Runs one prune as of now, off the async threads. A prune already running makes this
    /// one return at once (the running one covers it).
    pub async fn run_now(self: &Arc<Self>) -> Option<Result<PruneReport, PruneError>> {
        let guard = self.running.try_lock().ok()?;
        let me = self.clone();
        let now_ms = clock::now_ms();
        let result = tokio::task::spawn_blocking(move || me.prune_at_low_priority(now_ms))
            .await
            .unwrap_or_else(|e| Err(PruneError::Task(e.to_string())));
        drop(guard);
        match &result {
            Ok(r) if r.records() + r.exports > 0 => tracing::info!(
                deliveries = r.deliveries,
                events = r.events,
                exports = r.exports,
                "pruned records past retention"
            ),
            Ok(_) => tracing::debug!("prune found nothing past retention"),
            Err(e) => tracing::error!(error = %e, "prune failed; the next run tries again"),
        }
        Some(result)
    }

    /// [`Pruner::prune_at`] on a thread of its own at the lowest CPU priority: under load
    /// the acks' threads get the cores first. Measured on the 2-core machine (`prune` bench,
    /// 1 000 acks/s, 200 000 records, three runs each against the same build without it):
    /// the acks' p99 while pruning 6.9-10.6 ms (mean 8.7) against 8.8-12.3 ms (mean 10.4);
    /// the prune took 75-115 s instead of 62-79 s. Blocking.
    pub fn prune_at_low_priority(self: &Arc<Self>, now_ms: u64) -> Result<PruneReport, PruneError> {
        let me = self.clone();
        // The lowest CPU priority (nice 19): receiving comes first.
        crate::nice::spawn("hookd-prune", 19, move || me.prune_at(now_ms))
            .map_err(|e| PruneError::Task(e.to_string()))?
            .join()
            .unwrap_or_else(|_| Err(PruneError::Task("the prune thread panicked".into())))
    }

    /// Removes everything past retention as of `now_ms` (ms since the epoch). Blocking.
    pub fn prune_at(&self, now_ms: u64) -> Result<PruneReport, PruneError> {
        #[cfg(all(test, target_os = "linux"))]
        if let Ok(nice) = crate::nice::of_this_thread() {
            self.ran_at_nice.store(nice, Ordering::Relaxed);
        }
        self.busy.store(true, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let result = self.prune_inner(now_ms);
        self.busy.store(false, Ordering::Relaxed);
        if let Ok(r) = &result {
            self.last_at_ms.store(now_ms.max(1), Ordering::Relaxed);
            self.last_duration_ms
                .store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
            self.last_records.store(r.records(), Ordering::Relaxed);
            self.last_exports.store(r.exports, Ordering::Relaxed);
            self.total_records.fetch_add(r.records(), Ordering::Relaxed);
        }
        result
    }

    fn prune_inner(&self, now_ms: u64) -> Result<PruneReport, PruneError> {
        let cutoff = now_ms.saturating_sub(u64::from(self.retention_days) * DAY_MS);
        let mut report = PruneReport::default();
        // Deliveries first (an accepted one's record holds its event, and goes with it),
        // then the events of older formats that have records of their own.
        type Step = fn(&Store, u64, u64, usize) -> Result<PruneBatch, StoreError>;
        let steps: [Step; 2] = [Store::prune_deliveries, Store::prune_events];
        for step in steps {
            let mut from = 0;
            loop {
                if self.stopping(&mut report) {
                    return Ok(report);
                }
                let t = std::time::Instant::now();
                let batch = step(&self.store, cutoff, from, self.batch)?;
                report.deliveries += batch.deliveries as u64;
                report.events += batch.events as u64;
                match batch.next {
                    Some(next) => from = next,
                    None => break,
                }
                rest(t);
            }
        }
        let export_cutoff = UNIX_EPOCH
            + Duration::from_millis(
                now_ms.saturating_sub(u64::from(self.export_retention_days) * DAY_MS),
            );
        report.exports = self.prune_exports(export_cutoff);
        Ok(report)
    }

    fn stopping(&self, report: &mut PruneReport) -> bool {
        let stop = self.stop.load(Ordering::Relaxed);
        report.interrupted |= stop;
        stop
    }

    /// Removes exports last modified before `cutoff` (their index entries and record
    /// first, so none points at files that are gone), and stray files. Returns how many
    /// exports went. Failures are logged and left for the next run.
    fn prune_exports(&self, cutoff: SystemTime) -> u64 {
        let mut removed = 0;
        for aged in self.files.aged(cutoff) {
            if let Aged::Task { connection, task } = &aged {
                if let Err(e) = self.store.remove_export_data(connection, task) {
                    tracing::error!(export = %format!("{connection}/{task}"), error = %e, "cannot drop an export's index entries; kept");
                    continue;
                }
            }
            match self.files.remove_aged(&aged) {
                Ok(()) => removed += u64::from(matches!(aged, Aged::Task { .. })),
                Err(e) => {
                    tracing::error!(export = ?aged, error = %e, "cannot remove an old export")
                }
            }
        }
        removed
    }

    /// Starts the cron schedule. The job holds the pruner weakly, so a stopped hookd is not
    /// kept open by the scheduler.
    pub async fn schedule(self: &Arc<Self>) -> Result<JobScheduler, ScheduleError> {
        let weak: Weak<Pruner> = Arc::downgrade(self);
        let job = Job::new_async(self.schedule.as_str(), move |_, _| {
            let weak = weak.clone();
            Box::pin(async move {
                if let Some(pruner) = weak.upgrade() {
                    pruner.run_now().await;
                }
            })
        })
        .map_err(ScheduleError::Cron)?;
        let scheduler = JobScheduler::new().await.map_err(ScheduleError::Start)?;
        scheduler.add(job).await.map_err(ScheduleError::Add)?;
        scheduler.start().await.map_err(ScheduleError::Start)?;
        Ok(scheduler)
    }

    /// Stops: a running prune ends after its current batch; returns once it has.
    pub async fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.running.lock().await;
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// A prune runs below the priority of the threads that answer senders, whoever starts
    /// it (the schedule's task or a caller of `run_now`).
    #[tokio::test]
    async fn a_prune_runs_at_the_lowest_cpu_priority() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db"), 16).unwrap());
        let file = dir.path().join("hookd.toml");
        std::fs::write(&file, format!("data_dir = {:?}\n", dir.path())).unwrap();
        let config = Config::load(Some(&file), &std::collections::HashMap::new()).unwrap();
        let pruner = Arc::new(Pruner::new(&config, store));
        let base = crate::nice::of_this_thread().unwrap();
        // At 19 already, a prune on a plain thread would look the same.
        assert!(base < 19, "run this test below nice 19 (it runs at {base})");
        pruner
            .run_now()
            .await
            .expect("no prune was running")
            .unwrap();
        let ran_at = pruner.ran_at_nice.load(Ordering::Relaxed);
        assert_eq!(ran_at, (base + 19).min(19), "the prune thread's nice value");
    }
}
