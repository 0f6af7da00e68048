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
            let handle = builder.install_recorder().ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

/// Says what each metric means and its unit: the `# HELP` lines of `/metrics`, for whoever
/// writes alert rules against them. Every metric hookd records is described here.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "hookd_deliveries_total",
        "Webhook deliveries received, by endpoint and verdict (accepted, duplicate, filtered, rejected)"
    );
    describe_histogram!(
        "hookd_ack_latency_seconds",
        Unit::Seconds,
        "Time from a delivery's arrival to its response (after the durable write when accepted), by verdict"
    );
    describe_counter!(
        "hookd_attempts_total",
        "Processing attempts finished, by outcome (ok, retry, dead)"
    );
    describe_gauge!(
        "hookd_queue_depth",
        "Events waiting to be processed (queued and retrying)"
    );
    describe_gauge!(
        "hookd_oldest_queued_age_seconds",
        Unit::Seconds,
        "How long the longest-waiting due event has waited (0 when none is due)"
    );
    describe_gauge!(
        "hookd_store_bytes",
        Unit::Bytes,
        "Size of the store on disk"
    );
    describe_gauge!(
        "hookd_rejected_unlogged",
        "Rejected deliveries beyond the logging rate: counted, not stored"
    );
    describe_gauge!(
        "hookd_events",
        "Stored events, by state (queued, processing, retrying, done, dead)"
    );
    describe_gauge!(
        "hookd_retention_behind",
        "1 from when a prune passes 30 minutes (retention catching up after downtime, or behind what arrives) until a later prune finishes in under 30 minutes, else 0"
    );
}

/// The `endpoint` label of deliveries to a path that names no configured endpoint.
pub const UNKNOWN_ENDPOINT: &str = "(unknown)";

/// Puts every delivery and attempt counter at 0 for the configured endpoints, and the ack
/// latency histogram of each verdict: a series exists from the start, so a restart shows them
/// (from 0) before any traffic, and `rate()`/`increase()` see a delivery's first increment
/// instead of a new series.
pub fn start_counters(config: &crate::config::Config) {
    for endpoint in &config.endpoints {
        for verdict in crate::store::Verdict::ALL {
            metrics::counter!("hookd_deliveries_total", "endpoint" => endpoint.name.clone(), "verdict" => verdict.as_str())
                .increment(0);
        }
    }
    // Requests to no configured endpoint (a sender's misconfigured URL) are all rejected.
    metrics::counter!("hookd_deliveries_total", "endpoint" => UNKNOWN_ENDPOINT, "verdict" => "rejected")
        .increment(0);
    for outcome in ["ok", "retry", "dead"] {
        metrics::counter!("hookd_attempts_total", "outcome" => outcome).increment(0);
    }
    for verdict in crate::store::Verdict::ALL {
        // Registering is enough for the exporter to show it, empty.
        let _ = metrics::histogram!("hookd_ack_latency_seconds", "verdict" => verdict.as_str());
    }
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

/// The Prometheus text exposition, with the store's gauges read now and whether retention
/// is behind (`Pruner::is_behind`).
pub fn render(store: &Store, retention_behind: bool, now_ms: u64) -> String {
    metrics::gauge!("hookd_retention_behind").set(if retention_behind { 1.0 } else { 0.0 });
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

#[cfg(test)]
mod tests {
    use crate::secret::Secret;
    use std::collections::{BTreeSet, HashMap};
    use std::time::{Duration, Instant};

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const TOKEN: &str = "metrics-test-token-0123456789";

    /// A hookd with one endpoint, `endpoint`, in a directory of its own.
    async fn start(endpoint: &str) -> (tempfile::TempDir, crate::server::Running) {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
             [admin]\ntoken = \"{TOKEN}\"\n\
             [[endpoints]]\nname = \"{endpoint}\"\nsecrets = [\"{SECRET}\"]\n",
            dir.path().join("data")
        );
        let config = crate::config::load_text(&text, &HashMap::new()).unwrap();
        (dir, crate::server::start(config, None).await.unwrap())
    }

    async fn scrape(running: &crate::server::Running) -> String {
        let url = format!("http://{}/metrics", running.admin_addr);
        let r = reqwest::Client::new().get(&url).bearer_auth(TOKEN);
        r.send().await.unwrap().text().await.unwrap()
    }

    /// `start_counters` puts every series at 0: each configured endpoint's deliveries by
    /// verdict, the unknown endpoint's rejections, the attempts, the latency histograms. A
    /// recorder of the test's own, so no other test's traffic shows.
    #[test]
    fn start_counters_puts_every_series_at_zero() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let text = format!(
            "data_dir = \"/nonexistent\"\n\
             [[endpoints]]\nname = \"a\"\nsecrets = [\"{SECRET}\"]\n\
             [[endpoints]]\nname = \"b\"\nsecrets = [\"{SECRET}\"]\n"
        );
        let config = crate::config::load_text(&text, &HashMap::new()).unwrap();
        metrics::with_local_recorder(&recorder, || super::start_counters(&config));
        let text = handle.render();
        let mut lines: Vec<String> = Vec::new();
        for endpoint in ["a", "b"] {
            for verdict in ["accepted", "duplicate", "filtered", "rejected"] {
                lines.push(format!(
                    "hookd_deliveries_total{{endpoint=\"{endpoint}\",verdict=\"{verdict}\"}} 0"
                ));
            }
        }
        lines.push("hookd_deliveries_total{endpoint=\"(unknown)\",verdict=\"rejected\"} 0".into());
        for outcome in ["ok", "retry", "dead"] {
            lines.push(format!("hookd_attempts_total{{outcome=\"{outcome}\"}} 0"));
        }
        for verdict in ["accepted", "duplicate", "filtered", "rejected"] {
            lines.push(format!(
                "hookd_ack_latency_seconds_count{{verdict=\"{verdict}\"}} 0"
            ));
        }
        for line in lines {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }

    /// hookd's start puts them there: a scrape before any traffic has them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_start_shows_the_counters_before_any_traffic() {
        // An endpoint name of its own: the recorder is shared by the tests of this process.
        let (_dir, running) = start("counted-from-zero").await;
        let text = scrape(&running).await;
        running.shutdown();
        running.wait().await;
        let line = r#"hookd_deliveries_total{endpoint="counted-from-zero",verdict="accepted"} 0"#;
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }

    /// A real scrape, after a delivery and its processing, shows every metric hookd records,
    /// and each has a `# HELP` line.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_scraped_metric_has_a_help_line() {
        let (_dir, running) = start("a").await;
        let secret = Secret::parse(SECRET).unwrap();
        let body = r#"{"id":"evt-metrics","type":"webhook.test","data":{}}"#;
        let ts = crate::clock::system_secs();
        let status = reqwest::Client::new()
            .post(format!("http://{}/webhooks/a", running.receiver_addr))
            .header("webhook-id", "evt-metrics")
            .header("webhook-timestamp", ts.to_string())
            .header(
                "webhook-signature",
                crate::verify::sign(&secret, "evt-metrics", ts, body.as_bytes()),
            )
            .body(body)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
        let deadline = Instant::now() + Duration::from_secs(20);
        let text = loop {
            let text = scrape(&running).await;
            // The delivery's attempt is counted (the series exists from the start, at 0).
            let attempted = text.lines().any(|l| {
                l.strip_prefix(r#"hookd_attempts_total{outcome="ok"} "#)
                    .and_then(|v| v.parse::<f64>().ok())
                    .is_some_and(|v| v >= 1.0)
            });
            if attempted || Instant::now() > deadline {
                break text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        running.shutdown();
        running.wait().await;

        let helped: BTreeSet<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# HELP "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        let scraped: BTreeSet<&str> = text
            .lines()
            .filter(|l| l.starts_with("hookd_"))
            .filter_map(|l| l.split(['{', ' ']).next())
            .map(|name| {
                // A histogram's samples are `<name>_bucket`, `_sum` and `_count`.
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|n| helped.contains(n)))
                    .unwrap_or(name)
            })
            .collect();
        for name in [
            "hookd_deliveries_total",
            "hookd_ack_latency_seconds",
            "hookd_attempts_total",
            "hookd_queue_depth",
            "hookd_oldest_queued_age_seconds",
            "hookd_store_bytes",
            "hookd_rejected_unlogged",
            "hookd_events",
            "hookd_retention_behind",
        ] {
            assert!(scraped.contains(name), "{name} not scraped:\n{text}");
        }
        let missing: Vec<_> = scraped.difference(&helped).collect();
        assert!(missing.is_empty(), "no # HELP for {missing:?}:\n{text}");
    }
}
