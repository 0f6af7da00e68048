//! `[alerts]`: a signed JSON summary to the operator's URL when events go dead, when the
//! oldest due event has waited longer than `oldest_queued_secs`, when the store cannot
//! persist, or when retention is behind what arrives; at most one per `min_interval_secs`,
//! so a burst of dead events is one message.
//!
//! Once a second the monitor reads the store's counters (the same ones `/metrics` shows); an
//! [`Alerter`] decides from them, and from the time, whether a summary is due. What happens
//! between two summaries is coalesced into the next: dead events are counted up, the
//! standing conditions (a stalled queue, a failing store, retention behind: the data
//! directory grows while it lasts) are reported as they are when it
//! is sent, and repeated once per interval while they last. The summary is signed like the
//! `forward` processor's POSTs (Standard Webhooks, `verify::sign`) with the alerts' own
//! secret, and carries a Slack-compatible `text`. A summary that cannot be delivered is kept
//! and tried again a minute later (or at the next interval, if that is sooner); it is not
//! queued durably: alerts describe the present, and the store may be what is failing.
//!
//! The URL is never logged in full (a Slack webhook URL is its own credential), nor is the
//! secret.

use crate::clock;
use crate::config::{shown_url, Alerts};
use crate::process::chain;
use crate::prune::Pruner;
use crate::shutdown::Shutdown;
use crate::store::{EventFilter, EventState, Store};
use crate::verify;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// How often the store's counters are read.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// A summary that could not be delivered is tried again after this long at most.
const RETRY_FAILED_MS: u64 = 60_000;
/// Dead events named in a summary, newest first: the latest ones, which may include some an
/// earlier summary told (the list is what is dead now, not only what is new).
const DEAD_LISTED: usize = 5;

/// What one look at the store found.
#[derive(Debug, Clone)]
pub struct Observation {
    /// Events in the `dead` state now.
    pub dead: u64,
    /// How long the oldest due event has waited, in seconds.
    pub oldest_queued_secs: u64,
    /// `Store::health`: why the store cannot take writes, if it cannot.
    pub store: Result<(), String>,
    /// `Pruner::is_behind`: a prune ran past 30 minutes, and none has kept pace since.
    pub retention_behind: bool,
}

impl Default for Observation {
    /// Nothing dead, nothing waiting, a healthy store.
    fn default() -> Observation {
        Observation {
            dead: 0,
            oldest_queued_secs: 0,
            store: Ok(()),
            retention_behind: false,
        }
    }
}

/// One reason for a summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// This many events went dead since the last summary.
    Dead(u64),
    /// The oldest due event has waited `age` seconds, above `threshold`.
    QueueStalled { age: u64, threshold: u64 },
    /// The store cannot persist.
    Store(String),
    /// Retention is behind what arrives (see `Pruner::is_behind`).
    RetentionBehind,
}

impl Condition {
    /// `seen` is the look the summary is sent on: `dead_now` says how many are dead in all,
    /// so `new_dead` (since the last summary) is not taken for the whole.
    fn to_json(&self, seen: &Observation) -> Value {
        match self {
            Condition::Dead(n) => json!({
                "condition": "events_dead",
                "new_dead": n,
                "dead_now": seen.dead,
            }),
            Condition::QueueStalled { age, threshold } => json!({
                "condition": "oldest_queued",
                "oldest_queued_age_secs": age,
                "threshold_secs": threshold,
            }),
            Condition::Store(reason) => json!({ "condition": "store_unhealthy", "reason": reason }),
            Condition::RetentionBehind => json!({ "condition": "retention_behind" }),
        }
    }

    fn text(&self, seen: &Observation) -> String {
        match self {
            Condition::Dead(1) => format!("1 event went dead ({} dead now)", seen.dead),
            Condition::Dead(n) => format!("{n} events went dead ({} dead now)", seen.dead),
            Condition::QueueStalled { age, threshold } => {
                format!("the oldest queued event has waited {age} s (threshold {threshold} s)")
            }
            Condition::Store(reason) => format!("the store cannot persist: {reason}"),
            Condition::RetentionBehind => "retention is behind: a prune ran past 30 minutes \
                 (catching up after downtime, or deliveries arrive faster than it removes them; \
                 if every prune does this, the data directory grows: shorten retention_days or \
                 give hookd more CPU)"
                .to_string(),
        }
    }
}

/// Decides when a summary is due: the rate limit and the coalescing, without I/O.
#[derive(Debug)]
pub struct Alerter {
    oldest_queued_secs: u64,
    min_interval_ms: u64,
    /// No summary before this time (ms).
    next_allowed_ms: u64,
    /// The dead count at the last look: what rises above it went dead since.
    dead_seen: u64,
    /// Events gone dead that no summary has told yet.
    dead_untold: u64,
}

impl Alerter {
    /// An alerter that counts from `dead_now`: events dead before hookd started are not news.
    pub fn new(config: &Alerts, dead_now: u64) -> Alerter {
        Alerter {
            oldest_queued_secs: config.oldest_queued_secs,
            min_interval_ms: config.min_interval_secs.saturating_mul(1000),
            next_allowed_ms: 0,
            dead_seen: dead_now,
            dead_untold: 0,
        }
    }

    /// Takes in a look at the store at `now_ms`; returns the conditions to send now, if a
    /// summary is due.
    pub fn observe(&mut self, now_ms: u64, seen: &Observation) -> Option<Vec<Condition>> {
        // A drop (retention, a replay) is no news; a rise is events gone dead.
        self.dead_untold += seen.dead.saturating_sub(self.dead_seen);
        self.dead_seen = seen.dead;
        let mut conditions = Vec::new();
        if self.dead_untold > 0 {
            conditions.push(Condition::Dead(self.dead_untold));
        }
        if self.oldest_queued_secs > 0 && seen.oldest_queued_secs > self.oldest_queued_secs {
            conditions.push(Condition::QueueStalled {
                age: seen.oldest_queued_secs,
                threshold: self.oldest_queued_secs,
            });
        }
        if let Err(reason) = &seen.store {
            conditions.push(Condition::Store(reason.clone()));
        }
        if seen.retention_behind {
            conditions.push(Condition::RetentionBehind);
        }
        if conditions.is_empty() || now_ms < self.next_allowed_ms {
            return None;
        }
        self.dead_untold = 0;
        self.next_allowed_ms = now_ms.saturating_add(self.min_interval_ms);
        Some(conditions)
    }

    /// The summary of `conditions`, taken at `now_ms`, was not delivered: what it told is
    /// told again, and the next try comes sooner than a full interval.
    pub fn failed(&mut self, now_ms: u64, conditions: &[Condition]) {
        for c in conditions {
            if let Condition::Dead(n) = c {
                self.dead_untold += n;
            }
        }
        self.next_allowed_ms = now_ms.saturating_add(self.min_interval_ms.min(RETRY_FAILED_MS));
    }
}

/// Starts the monitor; it stops at `shutdown`. Nothing runs without `[alerts]`.
pub fn spawn(config: Alerts, store: Arc<Store>, pruner: Arc<Pruner>, shutdown: Shutdown) {
    tokio::spawn(async move {
        let client = match reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_secs))
            .user_agent(concat!("hookd/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %chain(&e), "alerts are off: cannot build their HTTP client");
                return;
            }
        };
        tracing::info!(
            to = %shown_url(&config.url),
            min_interval_secs = config.min_interval_secs,
            oldest_queued_secs = config.oldest_queued_secs,
            "alerts on"
        );
        let dead_now = look(&store, &pruner).dead;
        let mut alerter = Alerter::new(&config, dead_now);
        let mut tick = tokio::time::interval(CHECK_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.clone().wait() => break,
            }
            let now = clock::now_ms();
            let seen = look(&store, &pruner);
            let Some(conditions) = alerter.observe(now, &seen) else {
                continue;
            };
            let body = summary(&store, &conditions, &seen, now);
            match post(&client, &config, &body).await {
                Ok(()) => tracing::info!(
                    to = %shown_url(&config.url),
                    conditions = conditions.len(),
                    "alert sent"
                ),
                Err(reason) => {
                    tracing::warn!(to = %shown_url(&config.url), %reason, "alert not delivered; will try again");
                    alerter.failed(now, &conditions);
                }
            }
        }
    });
}

/// The store and retention as the alerter sees them now.
fn look(store: &Store, pruner: &Pruner) -> Observation {
    let health = store.health();
    let retention_behind = pruner.is_behind();
    match store.stats(clock::now_ms()) {
        Ok(stats) => Observation {
            dead: stats.events.get("dead").copied().unwrap_or(0),
            oldest_queued_secs: stats.oldest_queued_age_secs,
            store: health,
            retention_behind,
        },
        Err(e) => Observation {
            dead: 0,
            oldest_queued_secs: 0,
            store: health.and(Err(format!("cannot read the store's figures: {e}"))),
            retention_behind,
        },
    }
}

/// The JSON body of a summary: `type`, `text` (what Slack shows), and `data` with the
/// conditions, the event counts and the newest dead events (`latest_dead`).
pub fn summary(store: &Store, conditions: &[Condition], seen: &Observation, now_ms: u64) -> Value {
    let host = hostname();
    let stats = store.stats(now_ms).ok();
    let dead_filter = EventFilter {
        state: Some(EventState::Dead),
        ..EventFilter::default()
    };
    let latest_dead: Vec<Value> = match conditions.iter().any(|c| matches!(c, Condition::Dead(_))) {
        true => store
            .list_events(&dead_filter, None, DEAD_LISTED)
            .map(|page| page.items)
            .unwrap_or_default()
            .into_iter()
            .map(|e| {
                json!({
                    "endpoint": e.endpoint,
                    "event_id": e.event_id,
                    "event_type": e.event_type,
                    "attempts": e.attempts,
                    "last_error": e.last_error,
                    "path": format!("/api/events/{}", e.seq),
                })
            })
            .collect(),
        false => Vec::new(),
    };
    let told: Vec<String> = conditions.iter().map(|c| c.text(seen)).collect();
    let mut text = format!("hookd on {host}: {}.", told.join("; "));
    if let Some(e) = latest_dead.first() {
        text.push_str(&format!(
            " Newest dead: {} {} on {}: {}",
            e["event_type"].as_str().unwrap_or(""),
            e["event_id"].as_str().unwrap_or(""),
            e["endpoint"].as_str().unwrap_or(""),
            e["last_error"].as_str().unwrap_or("")
        ));
    }
    json!({
        "id": format!("alert_{}", uuid::Uuid::new_v4()),
        "type": "hookd.alert",
        "timestamp": now_ms / 1000,
        "text": text,
        "data": {
            "host": host,
            "conditions": conditions.iter().map(|c| c.to_json(seen)).collect::<Vec<_>>(),
            "events": stats.as_ref().map(|s| json!(s.events)),
            "queue_depth": stats.as_ref().map(|s| s.queue_depth),
            "oldest_queued_age_secs": seen.oldest_queued_secs,
            "latest_dead": latest_dead,
        },
    })
}

/// POSTs `body`, signed with the alerts' secret; `Err` says why it was not taken.
async fn post(client: &reqwest::Client, config: &Alerts, body: &Value) -> Result<(), String> {
    let id = body["id"].as_str().unwrap_or("alert").to_string();
    let response = verify::signed_post(client, &config.url, &config.secret, &id, body.to_string())
        .send()
        .await
        .map_err(|e| chain(&e.without_url()))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("answered HTTP {}", status.as_u16()))
    }
}

/// This machine's name, for the alert's text.
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that much.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "this host".to_string();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn alerter(min_interval_secs: u64, oldest_queued_secs: u64) -> Alerter {
        let config = Alerts {
            url: "http://127.0.0.1:1/".into(),
            secret: Secret::generate(),
            oldest_queued_secs,
            min_interval_secs,
            timeout_secs: 5,
        };
        Alerter::new(&config, 2)
    }

    fn dead(n: u64) -> Observation {
        Observation {
            dead: n,
            ..Observation::default()
        }
    }

    #[test]
    fn dead_events_from_before_the_start_are_not_news() {
        let mut a = alerter(60, 0);
        assert_eq!(a.observe(0, &dead(2)), None);
        assert_eq!(a.observe(1, &dead(3)), Some(vec![Condition::Dead(1)]));
    }

    #[test]
    fn one_summary_per_interval_coalesces_what_happened_meanwhile() {
        let mut a = alerter(60, 0);
        assert_eq!(a.observe(1_000, &dead(3)), Some(vec![Condition::Dead(1)]));
        // Two more go dead, one is pruned: held back until the interval has passed.
        assert_eq!(a.observe(2_000, &dead(5)), None);
        assert_eq!(a.observe(30_000, &dead(4)), None);
        assert_eq!(a.observe(60_999, &dead(4)), None);
        assert_eq!(a.observe(61_000, &dead(4)), Some(vec![Condition::Dead(2)]));
        // Nothing new: nothing sent, however long it has been.
        assert_eq!(a.observe(500_000, &dead(4)), None);
    }

    #[test]
    fn standing_conditions_repeat_once_per_interval() {
        let mut a = alerter(60, 10);
        let stalled = Observation {
            dead: 2,
            oldest_queued_secs: 11,
            store: Err("disk full".into()),
            retention_behind: true,
        };
        let expected = vec![
            Condition::QueueStalled {
                age: 11,
                threshold: 10,
            },
            Condition::Store("disk full".into()),
            Condition::RetentionBehind,
        ];
        assert_eq!(a.observe(0, &stalled), Some(expected.clone()));
        assert_eq!(a.observe(59_999, &stalled), None);
        assert_eq!(a.observe(60_000, &stalled), Some(expected));
        // At the threshold itself, and with the check off, a queue is not stalled.
        let at = Observation {
            oldest_queued_secs: 10,
            ..dead(2)
        };
        assert_eq!(a.observe(200_000, &at), None);
        let mut off = alerter(60, 0);
        let old = Observation {
            oldest_queued_secs: 1_000_000,
            ..dead(2)
        };
        assert_eq!(off.observe(0, &old), None);
    }

    #[test]
    fn an_undelivered_summary_is_told_again_sooner() {
        let mut a = alerter(3600, 0);
        let sent = a.observe(0, &dead(4)).unwrap();
        a.failed(0, &sent);
        assert_eq!(a.observe(59_999, &dead(5)), None);
        assert_eq!(a.observe(60_000, &dead(5)), Some(vec![Condition::Dead(3)]));
    }
}
