//! Prometheus metrics and the systemd notifications (readiness, watchdog).
//!
//! Counters and histograms are recorded where things happen (receiver, pipeline) through the
//! `metrics` facade; gauges that describe the store (queue depth, oldest queued age, size)
//! are read from the store when `/metrics` is scraped, so they are never stale.

use crate::store::Store;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Ack latency buckets (seconds): durable acks take about a millisecond; the tail matters.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Installs the process-wide recorder (once; later calls reuse it). `None` if another
/// recorder was installed first, e.g. by an embedding program.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            let builder = match builder.set_buckets(&LATENCY_BUCKETS) {
                Ok(b) => b,
                Err(_) => PrometheusBuilder::new(),
            };
            builder.install_recorder().ok()
        })
        .as_ref()
}

/// Runs the exporter's upkeep (histogram maintenance) every few seconds, as its docs ask.
pub fn spawn_upkeep(shutdown: crate::shutdown::Shutdown) {
    if let Some(handle) = handle() {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = tick.tick() => handle.run_upkeep(),
                    _ = shutdown.clone().wait() => break,
                }
            }
        });
    }
}

/// The Prometheus text exposition, with the store's gauges read now.
pub fn render(store: &Store, now_ms: u64) -> String {
    if let Ok(stats) = store.stats(now_ms) {
        metrics::gauge!("hookd_queue_depth").set(stats.queue_depth as f64);
        metrics::gauge!("hookd_oldest_queued_age_seconds").set(stats.oldest_queued_age_secs as f64);
        metrics::gauge!("hookd_store_bytes").set(stats.store_bytes as f64);
        metrics::gauge!("hookd_rejected_unlogged").set(stats.rejected_unlogged as f64);
        for (state, n) in &stats.events {
            metrics::gauge!("hookd_events", "state" => *state).set(*n as f64);
        }
    }
    handle().map(|h| h.render()).unwrap_or_default()
}

/// Tells systemd (Type=notify) that hookd is ready, and keeps its watchdog fed while the
/// store can take writes: a hookd whose writer died is restarted by systemd. Does nothing
/// when not started by systemd.
pub fn notify_ready(shutdown: crate::shutdown::Shutdown, store: std::sync::Arc<Store>) {
    if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]) {
        tracing::debug!(error = %e, "no systemd notification socket");
    }
    let mut usec = 0;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        // Half the watchdog interval, as systemd recommends.
        let every = Duration::from_micros(usec / 2);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => match store.health() {
                        Ok(()) => {
                            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                        }
                        Err(reason) => tracing::error!(%reason, "not feeding the watchdog"),
                    },
                    _ = shutdown.clone().wait() => break,
                }
            }
        });
    }
}

/// Tells systemd that hookd is stopping (so it waits for the graceful flush).
pub fn notify_stopping() {
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
}
