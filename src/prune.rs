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
use crate::store::{ExportFiles, PruneBatch, PruneTurn, Store, StoreError};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

const DAY_MS: u64 = 24 * 60 * 60 * 1000;
/// After each batch the pruner rests this many times as long as the batch took, so it uses
/// at most a fifth of the machine's time and of sled's lock for its first
/// [`CATCH_UP_AFTER`]: on a 2-core machine a prune running flat out took 45 s for a million
/// records and raised the ack p99 elevenfold (benches/README.md).
const REST_FACTOR: u32 = 4;

/// A prune still running after this long is not keeping up: at [`REST_FACTOR`] it removes
/// about 1 000 deliveries a second on a 2-core machine while 1 000 a second arrive, so an
/// hourly prune of a steady 1 000 a second takes the whole hour, and a faster steady rate (or
/// a backlog after days of downtime) would leave the data directory growing without end.
/// From this point the prune rests only [`CATCH_UP_REST_FACTOR`] times as long as it works:
/// it gives up some acknowledgement latency for keeping the disk bounded (measured: about
/// 3 000 deliveries a second, the acks' p99 1.42-1.54× idle instead of 1.16-1.27×). Every prune
/// of a million records measured so far ended in under 10 minutes, so ordinary prunes never
/// get here. With a schedule much sparser than hourly a long prune speeds up too, which is
/// as well: it would cost receiving latency for all that time at the slower pace.
const CATCH_UP_AFTER: Duration = Duration::from_secs(30 * 60);
const CATCH_UP_REST_FACTOR: u32 = 1;

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
    /// Whether another instance was pruning (cluster mode): this run stopped at once, and
    /// its figures are not this instance's prune (the status keeps the last real one).
    pub elsewhere: bool,
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
    /// True once the running prune passes 30 minutes, and then until a prune ends within
    /// 30 minutes (a stopped or failed one changes nothing): a prune that long is behind
    /// what arrives, or catching up, and rests less (receiving pays some latency).
    pub behind: bool,
}

/// One prune's pace: how long it rests after each batch.
struct Pace {
    started: std::time::Instant,
    catch_up_after: Duration,
    /// Whether the prune has run past `catch_up_after` (and said so in the log).
    behind: bool,
}

impl Pace {
    fn new(catch_up_after: Duration) -> Pace {
        Pace {
            started: std::time::Instant::now(),
            catch_up_after,
            behind: false,
        }
    }

    /// Rests after a batch that took `batch_took`, `removed` records into the run.
    fn rest(&mut self, batch_took: Duration, removed: u64) {
        std::thread::sleep(self.rest_after(batch_took, removed));
    }

    /// How long to rest after a batch that took `batch_took`, `removed` records into the run.
    fn rest_after(&mut self, batch_took: Duration, removed: u64) -> Duration {
        let run_so_far = self.started.elapsed();
        if !self.behind && run_so_far >= self.catch_up_after {
            self.behind = true;
            tracing::warn!(
                minutes = run_so_far.as_secs() / 60,
                removed,
                "the prune has run for 30 minutes: it is behind what arrives, and rests less \
                 from now on, which costs receiving some latency until it ends; if every \
                 prune does this, the data directory grows: shorten retention_days or give \
                 hookd more CPU"
            );
        }
        let factor = if self.behind {
            CATCH_UP_REST_FACTOR
        } else {
            REST_FACTOR
        };
        (batch_took * factor).max(Duration::from_millis(1))
    }
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
    /// The export files are in this instance's data_dir (no `fasten.exports_dir`): it
    /// prunes them itself, turn or not. A configured directory may be shared (cluster mode),
    /// and is pruned by the turn's holder.
    own_exports: bool,
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
    /// [`CATCH_UP_AFTER`]; tests shorten it.
    catch_up_after: Duration,
    /// Set once the running prune passes [`CATCH_UP_AFTER`]; otherwise what the last prune
    /// that ran to its end left (a stopped or failed one leaves it as it was).
    behind: AtomicBool,
    /// The nice value of the thread the last prune ran on (tests read it).
    #[cfg(all(test, target_os = "linux"))]
    ran_at_nice: std::sync::atomic::AtomicI32,
}

/// Ends a run whose turn was lost (its database connection closed, or stopped answering):
/// another instance may be pruning now, and two must not.
fn lost(turn: &PruneTurn) -> Result<(), PruneError> {
    if turn.still_held() {
        return Ok(());
    }
    Err(PruneError::Task(
        "retention's turn was lost (its database connection closed); the next run starts over"
            .into(),
    ))
}

impl Pruner {
    /// A pruner for `store` with the configured retention.
    pub fn new(config: &Config, store: Arc<Store>) -> Pruner {
        Pruner {
            store,
            files: ExportFiles::at(&config.exports_dir()),
            own_exports: config.fasten.exports_dir.is_none(),
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
            catch_up_after: CATCH_UP_AFTER,
            behind: AtomicBool::new(false),
            #[cfg(all(test, target_os = "linux"))]
            ran_at_nice: std::sync::atomic::AtomicI32::new(i32::MIN),
        }
    }

    /// Whether retention is behind what arrives (see [`Status::behind`]): `/metrics`, the
    /// alerts and the Queue page show it.
    pub fn is_behind(&self) -> bool {
        self.behind.load(Ordering::Relaxed)
    }

    /// Sets the state a prune past 30 minutes leaves, as if one had run that long. Only for
    /// tests of what shows it.
    #[doc(hidden)]
    pub fn mark_behind(&self) {
        self.behind.store(true, Ordering::Relaxed);
    }

    /// The figures for /api/stats.
    /// In cluster mode an instance that has not pruned since it started shows the last
    /// prune any instance recorded (the one that held the turn): whether the shared store is
    /// pruned is what an operator asks, whichever instance answers. Reads the store.
    pub fn status(&self) -> Status {
        let own = match self.last_at_ms.load(Ordering::Relaxed) {
            0 => None,
            at_ms => Some(crate::store::LastPrune {
                at_ms,
                duration_ms: self.last_duration_ms.load(Ordering::Relaxed),
                records: self.last_records.load(Ordering::Relaxed),
                exports: self.last_exports.load(Ordering::Relaxed),
            }),
        };
        let last = own.or_else(|| self.store.shared_last_prune().ok().flatten());
        Status {
            retention_days: self.retention_days,
            export_retention_days: self.export_retention_days,
            schedule: self.schedule.clone(),
            last_prune_at_ms: last.map(|l| l.at_ms),
            last_prune_duration_ms: last.map_or(0, |l| l.duration_ms),
            last_pruned_records: last.map_or(0, |l| l.records),
            last_pruned_exports: last.map_or(0, |l| l.exports),
            pruned_records_total: self.total_records.load(Ordering::Relaxed),
            running: self.busy.load(Ordering::Relaxed),
            behind: self.is_behind(),
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
            // Said at info: an instance that never prunes should be seen to skip.
            Ok(r) if r.elsewhere => {
                tracing::info!("another instance is pruning the shared store; this run skipped")
            }
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
            self.total_records.fetch_add(r.records(), Ordering::Relaxed);
            // A run that found another instance pruning is not this instance's last prune.
            if !r.elsewhere {
                // When it finished: `now_ms` (injected by tests) plus the time it took.
                let took = started.elapsed().as_millis() as u64;
                let last = crate::store::LastPrune {
                    at_ms: now_ms.saturating_add(took).max(1),
                    duration_ms: took,
                    records: r.records(),
                    exports: r.exports,
                };
                self.last_at_ms.store(last.at_ms, Ordering::Relaxed);
                self.last_duration_ms.store(took, Ordering::Relaxed);
                self.last_records.store(last.records, Ordering::Relaxed);
                self.last_exports.store(last.exports, Ordering::Relaxed);
                if let Err(e) = self.store.record_prune(&last) {
                    tracing::warn!(error = %e, "cannot record the prune for the other instances");
                }
            }
        }
        result
    }

    fn prune_inner(&self, now_ms: u64) -> Result<PruneReport, PruneError> {
        let cutoff = now_ms.saturating_sub(u64::from(self.retention_days) * DAY_MS);
        let mut report = PruneReport::default();
        let export_cutoff = UNIX_EPOCH
            + Duration::from_millis(
                now_ms.saturating_sub(u64::from(self.export_retention_days) * DAY_MS),
            );
        let Some(turn) = self.store.prune_turn()? else {
            // Another instance prunes the shared store (and a shared exports directory): its
            // run covers this one, and its status is its own. Export files in this
            // instance's own data_dir (no exports_dir set) are this instance's to prune.
            report.elsewhere = true;
            if self.own_exports {
                report.exports = self.prune_exports(export_cutoff);
            }
            return Ok(report);
        };
        let mut pace = Pace::new(self.catch_up_after);
        // Deliveries first (an accepted one's record holds its event, and goes with it),
        // then the events of older formats that have records of their own.
        type Step = fn(&Store, &PruneTurn, u64, u64, usize) -> Result<PruneBatch, StoreError>;
        let steps: [Step; 2] = [Store::prune_deliveries, Store::prune_events];
        for step in steps {
            let mut from = 0;
            loop {
                if self.stopping(&mut report) {
                    return Ok(report);
                }
                lost(&turn)?;
                let t = std::time::Instant::now();
                let batch = step(&self.store, &turn, cutoff, from, self.batch)?;
                report.deliveries += batch.deliveries as u64;
                report.events += batch.events as u64;
                match batch.next {
                    Some(next) => from = next,
                    None => break,
                }
                pace.rest(t.elapsed(), report.records());
                if pace.behind {
                    self.behind.store(true, Ordering::Relaxed);
                }
            }
        }
        self.behind.store(pace.behind, Ordering::Relaxed);
        // Still under the turn: in cluster mode the exports directory is shared too.
        lost(&turn)?;
        report.exports = self.prune_exports(export_cutoff);
        drop(turn);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Verdict;

    /// A pruner over a fresh store, with retention's batches of `batch` records.
    fn pruner(batch: usize) -> (tempfile::TempDir, Pruner) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db"), 16).unwrap());
        let toml = format!(
            "data_dir = {:?}\n[retention]\nbatch_size = {batch}\n",
            dir.path()
        );
        let config = crate::config::load_text(&toml, &Default::default()).unwrap();
        (dir, Pruner::new(&config, store))
    }

    #[test]
    fn a_prune_rests_four_times_its_work_until_it_has_run_long_then_as_long_as_it_works() {
        let ms = Duration::from_millis;
        let mut fresh = Pace::new(CATCH_UP_AFTER);
        assert_eq!(fresh.rest_after(ms(10), 0), ms(40));
        assert_eq!(fresh.rest_after(Duration::ZERO, 0), ms(1), "a floor");
        assert!(!fresh.behind);
        // A pace whose catch-up point has passed (moving `started` back 30 minutes could
        // go before the machine's boot, where `Instant` cannot).
        let mut long = Pace::new(Duration::ZERO);
        assert_eq!(long.rest_after(ms(10), 0), ms(10));
        assert!(long.behind);
    }

    /// A prune that is behind what arrives speeds up and says so in /api/stats until a prune
    /// keeps its pace again.
    #[tokio::test]
    async fn only_a_prune_that_has_run_long_rests_less_and_the_status_says_so() {
        let (_dir, mut pruner) = pruner(2);
        assert!(!pruner.status().behind, "before any prune");
        let mut n = 0;
        for (catch_up_after, behind) in [(Duration::ZERO, true), (CATCH_UP_AFTER, false)] {
            pruner.catch_up_after = catch_up_after;
            for _ in 0..6 {
                // From 2023, rejected: past any cut-off, and nothing keeps them.
                let mut draft = crate::store::testing::draft(&format!("evt-{n}"));
                draft.verdict = Verdict::Rejected;
                pruner.store.record(draft).unwrap();
                n += 1;
            }
            let report = pruner.prune_at(crate::clock::now_ms()).unwrap();
            assert_eq!(report.deliveries, 6, "three batches of 2");
            assert_eq!(
                pruner.status().behind,
                behind,
                "catch-up after {catch_up_after:?}"
            );
        }
    }

    /// A prune runs below the priority of the threads that answer senders, whoever starts
    /// it (the schedule's task or a caller of `run_now`).
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_prune_runs_at_the_lowest_cpu_priority() {
        let (_dir, pruner) = pruner(1000);
        let pruner = Arc::new(pruner);
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
