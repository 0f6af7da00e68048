//! Background processing: claim due events in order, run the endpoint's processor, record
//! the attempt, then mark the event done, schedule a retry, or declare it dead.
//!
//! One dispatcher claims events (so claiming needs no coordination); up to `workers`
//! attempts run at once, and an optional token bucket caps attempts per second so a spike of
//! deliveries reaches the operator's systems smoothed. Processing is at-least-once: an
//! attempt cut short by a crash is re-claimed at start-up, so processors must be idempotent
//! by event id.

mod chain;
pub mod fasten;
mod forward;
mod log;
pub mod push;
pub mod retry;

pub use chain::chain;
pub use fasten::FastenProcessor;
pub use forward::ForwardProcessor;
pub use log::LogProcessor;

use crate::clock;
use crate::config::{Config, ProcessorConfig};
use crate::ratelimit::TokenBucket;
use crate::shutdown::Shutdown;
use crate::store::{Attempt, AttemptOutcome, Event, Next, Store};
use futures_util::future::BoxFuture;
use retry::RetryPolicy;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

/// An event handed to a processor, with its raw body.
pub struct Job {
    pub event: Event,
    pub payload: bytes::Bytes,
}

/// How an attempt failed; the text is what the attempt record shows.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Worth another attempt later (network, 5xx, timeouts).
    #[error("{0}")]
    Retry(String),
    /// Will never succeed; the event goes straight to `dead`.
    #[error("{0}")]
    Permanent(String),
}

/// Why the configured processors could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("fasten.api_base `{url}`: {reason}")]
    ApiBase { url: String, reason: String },
    #[error("cannot build HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// A `forward` endpoint's HTTP client.
    #[error("cannot build the forward processor's HTTP client: {0}")]
    Forward(#[source] reqwest::Error),
}

/// What runs for an accepted event. Must be idempotent by event id: an attempt may be
/// repeated after a crash.
pub trait Processor: Send + Sync {
    /// Short name recorded in each attempt.
    fn name(&self) -> &'static str;
    /// Processes one event; `Ok` carries a one-line description of what was done.
    fn process<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<String, ProcessError>>;
}

/// The processor of each endpoint.
#[derive(Clone, Default)]
pub struct Processors(HashMap<String, Arc<dyn Processor>>);

impl Processors {
    /// One processor per configured endpoint. `store` keeps what processors record (Fasten
    /// connections and exports).
    pub fn from_config(config: &Config, store: &Arc<Store>) -> Result<Processors, SetupError> {
        let mut map: HashMap<String, Arc<dyn Processor>> = HashMap::new();
        // All Fasten endpoints share one processor, so "request an export once per
        // connection" holds across them.
        let mut fasten: Option<Arc<dyn Processor>> = None;
        let push = config.push.as_ref().map(|_| push::Push::new(store.clone()));
        for e in &config.endpoints {
            let p: Arc<dyn Processor> = match &e.processor {
                ProcessorConfig::Log => Arc::new(LogProcessor),
                ProcessorConfig::Fasten => match &fasten {
                    Some(p) => p.clone(),
                    None => {
                        let mut p = FastenProcessor::new(
                            store.clone(),
                            config.fasten.clone(),
                            &config.data_dir,
                        )?;
                        if let Some(push) = &push {
                            p = p.pushing(push.clone());
                        }
                        let p: Arc<dyn Processor> = Arc::new(p);
                        fasten = Some(p.clone());
                        p
                    }
                },
                ProcessorConfig::Forward {
                    url,
                    secret,
                    timeout_secs,
                } => Arc::new(
                    ForwardProcessor::new(
                        url.clone(),
                        secret.clone(),
                        Duration::from_secs(*timeout_secs),
                    )
                    .map_err(SetupError::Forward)?,
                ),
            };
            map.insert(e.name.clone(), p);
        }
        // Push events are forwarded like any forward endpoint's (see `push`).
        if let Some(p) = &config.push {
            let forward = ForwardProcessor::new(
                p.url.clone(),
                p.secret.clone(),
                Duration::from_secs(p.timeout_secs),
            )
            .map_err(SetupError::Forward)?;
            map.insert(push::ENDPOINT.to_string(), Arc::new(forward));
        }
        Ok(Processors(map))
    }

    /// Sets the processor of `endpoint` (tests and embedders plug their own in here).
    pub fn set(&mut self, endpoint: &str, processor: Arc<dyn Processor>) {
        self.0.insert(endpoint.to_string(), processor);
    }
}

/// The dispatcher and its workers.
pub struct Pipeline {
    store: Arc<Store>,
    processors: Processors,
    policy: RetryPolicy,
    workers: usize,
    rate: Option<TokenBucket>,
    attempt_timeout: Duration,
}

impl Pipeline {
    /// A pipeline as configured under `[processing]`.
    pub fn new(config: &Config, store: Arc<Store>, processors: Processors) -> Pipeline {
        let p = &config.processing;
        Pipeline {
            store,
            processors,
            policy: RetryPolicy::from_config(p),
            workers: p.workers,
            // A burst of one second's worth, so the rate holds over any second.
            rate: p.max_rate_per_sec.map(|r| TokenBucket::new(r, r.max(1.0))),
            attempt_timeout: Duration::from_secs(p.attempt_timeout_secs),
        }
    }

    /// Runs until `shutdown`, then gives running attempts up to `grace` to finish. Attempts
    /// still running after that are dropped; their events stay claimed and are re-queued at
    /// the next start.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown, grace: Duration) {
        let slots = Arc::new(Semaphore::new(self.workers));
        let mut running = JoinSet::new();
        loop {
            while running.try_join_next().is_some() {}
            let Some(permits) = self.free_workers(&slots, &shutdown).await else {
                break;
            };
            let flow = match self.store.claim(clock::now_ms(), permits.len()).await {
                Ok(claimed) if !claimed.is_empty() => {
                    for ((event, payload), permit) in claimed.into_iter().zip(permits) {
                        let me = self.clone();
                        running.spawn(async move {
                            me.attempt(Job { event, payload }).await;
                            drop(permit);
                        });
                    }
                    ControlFlow::Continue(())
                }
                Ok(_) => {
                    drop(permits);
                    self.wait_for_work(&slots, &shutdown).await
                }
                Err(e) => {
                    drop(permits);
                    tracing::error!(error = %e, "cannot claim from the queue; retrying in 1 s");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => ControlFlow::Continue(()),
                        _ = shutdown.clone().wait() => ControlFlow::Break(()),
                    }
                }
            };
            if flow.is_break() {
                break;
            }
        }
        drain(running, grace).await;
    }

    /// Waits for a free worker, then takes every other free one too; `None` at shutdown.
    async fn free_workers(
        &self,
        slots: &Arc<Semaphore>,
        shutdown: &Shutdown,
    ) -> Option<Vec<OwnedSemaphorePermit>> {
        let first = tokio::select! {
            p = slots.clone().acquire_owned() => p.ok()?,
            _ = shutdown.clone().wait() => return None,
        };
        let mut permits = vec![first];
        match &self.rate {
            // Claim as many as there are free workers, in one write.
            None => {
                while let Ok(p) = slots.clone().try_acquire_owned() {
                    permits.push(p);
                }
            }
            // Rate-limited: wait for a token before claiming, so nothing sits claimed
            // while it waits (and shutdown is never held up by the limiter).
            Some(rate) => {
                if matches!(self.store.next_due(), Ok(Some(due)) if due <= clock::now_ms()) {
                    tokio::select! {
                        _ = rate.take() => {}
                        _ = shutdown.clone().wait() => return None,
                    }
                }
            }
        }
        Some(permits)
    }

    /// With nothing due, sleeps until the next due event, new work, or shutdown.
    ///
    /// With nothing queued, attempts still running or results on their way to the store
    /// will notify when they land (a retry is a new due time), so no timer is set then; an
    /// idle hookd only keeps an hourly safety-net timer. (A timer set while a result is in
    /// flight would be stale, and under paused time in tests it would fire before the
    /// result arrives.)
    async fn wait_for_work(&self, slots: &Semaphore, shutdown: &Shutdown) -> ControlFlow<()> {
        let in_flight = self.store.finishes_pending() || slots.available_permits() < self.workers;
        let until = match self.store.next_due() {
            Ok(Some(due)) => Some(clock::instant_at(due)),
            _ if in_flight => None,
            _ => Some(tokio::time::Instant::now() + Duration::from_secs(3600)),
        };
        let timer = async {
            match until {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.store.work_notify().notified() => ControlFlow::Continue(()),
            _ = timer => ControlFlow::Continue(()),
            _ = shutdown.clone().wait() => ControlFlow::Break(()),
        }
    }

    async fn attempt(&self, job: Job) {
        let seq = job.event.seq;
        let number = job.event.attempts + 1;
        // A replay starts a fresh round: the schedule and `max_attempts` count from it, so a
        // replayed dead event is retried like a new one, while `number` keeps increasing so
        // every attempt of every round stays on record.
        let in_round = number.saturating_sub(job.event.attempts_before_replay);
        let started = clock::now_ms();
        let (name, result) = self.run_processor(&job).await;
        let finished = clock::now_ms();
        let (outcome, detail, next) = match result {
            Ok(detail) => (AttemptOutcome::Ok, detail, Next::Done),
            Err(ProcessError::Retry(e)) => (
                AttemptOutcome::Error,
                e,
                self.policy.after_failure(in_round, finished),
            ),
            Err(ProcessError::Permanent(e)) => (AttemptOutcome::Error, e, Next::Dead),
        };
        match next {
            Next::Done => {
                tracing::info!(seq, endpoint = %job.event.endpoint, event_id = %job.event.event_id, event_type = %job.event.event_type, attempt = number, "event processed")
            }
            Next::RetryAt(at) => {
                tracing::warn!(seq, endpoint = %job.event.endpoint, event_id = %job.event.event_id, attempt = number, retry_in_ms = at.saturating_sub(finished), error = %detail, "attempt failed; will retry")
            }
            Next::Dead => {
                tracing::error!(seq, endpoint = %job.event.endpoint, event_id = %job.event.event_id, attempt = number, error = %detail, "event is dead after its last attempt")
            }
        }
        let outcome_label = match next {
            Next::Done => "ok",
            Next::RetryAt(_) => "retry",
            Next::Dead => "dead",
        };
        metrics::counter!("hookd_attempts_total", "outcome" => outcome_label).increment(1);
        let attempt = Attempt {
            number,
            processor: name.to_string(),
            started_at_ms: started,
            finished_at_ms: finished,
            outcome,
            detail,
        };
        if let Err(e) = self.store.finish(seq, attempt, next) {
            // The event stays claimed; the next start re-queues it.
            tracing::error!(seq, error = %e, "cannot record an attempt");
        }
    }

    /// Runs the endpoint's processor within the attempt timeout; returns its name and result.
    async fn run_processor(&self, job: &Job) -> (&'static str, Result<String, ProcessError>) {
        let Some(p) = self.processors.0.get(&job.event.endpoint) else {
            return (
                "none",
                Err(ProcessError::Retry(format!(
                    "endpoint {} is not configured any more",
                    job.event.endpoint
                ))),
            );
        };
        let result = tokio::time::timeout(self.attempt_timeout, p.process(job))
            .await
            .unwrap_or_else(|_| {
                Err(ProcessError::Retry(format!(
                    "timed out after {} s",
                    self.attempt_timeout.as_secs()
                )))
            });
        (p.name(), result)
    }
}

/// Gives running attempts up to `grace` to finish, then drops the rest.
async fn drain(mut running: JoinSet<()>, grace: Duration) {
    let drained = tokio::time::timeout(grace, async {
        while running.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = running.len(),
            "attempts still running at the shutdown deadline; they will be re-queued at the next start"
        );
        running.abort_all();
    }
}
