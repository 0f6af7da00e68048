//! `[alerts]`: signed summaries to a local service when events go dead, when the queue
//! stalls, when the store cannot persist and when retention is behind, at most one per
//! interval.

use super::hooks::{Hooks, Received};
use super::*;
use futures_util::future::BoxFuture;
use hookd::process::{Job, ProcessError, Processor, Processors};
use std::sync::Arc;

/// Fails every event for good, or holds every one until the test ends.
struct Downstream {
    hold: bool,
}

impl Processor for Downstream {
    fn name(&self) -> &'static str {
        "downstream"
    }
    fn process<'a>(&'a self, _job: &'a Job) -> BoxFuture<'a, Result<String, ProcessError>> {
        Box::pin(async move {
            if self.hold {
                std::future::pending::<()>().await;
            }
            Err(ProcessError::Permanent("downstream refused it".into()))
        })
    }
}

async fn start(hooks: &Hooks, alerts: &str, processing: &str, hold: bool) -> TestServer {
    // Only the start-up prune runs (retention's state is the tests' to set).
    let config = format!(
        "[admin]\ntoken = \"{ADMIN_TOKEN}\"\n\n[retention]\nschedule = \"0 0 0 1 1 *\"\n\n[processing]\n{processing}\n\n[alerts]\nurl = \"{}\"\nsecret = \"{OTHER_SECRET}\"\n{alerts}\n{}",
        hooks.url(),
        endpoints()
    );
    let mut processors = Processors::default();
    processors.set("std", Arc::new(Downstream { hold }));
    TestServer::start_with(&config, Some(processors)).await
}

fn conditions(r: &Received) -> Vec<String> {
    r.body["data"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["condition"].as_str().unwrap().to_string())
        .collect()
}

fn new_dead(r: &Received) -> u64 {
    r.body["data"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["condition"] == "events_dead")
        .map_or(0, |c| c["new_dead"].as_u64().unwrap())
}

#[tokio::test]
async fn dead_events_are_alerted_signed_and_at_most_once_per_interval() {
    let hooks = Hooks::start(OTHER_SECRET, 0).await;
    let s = start(&hooks, "min_interval_secs = 5", "max_attempts = 1", false).await;
    s.send_event("std", "d1", "order.paid").await;
    s.wait_for_state("d1", "dead").await;
    let first = hooks.wait_for("the first alert", |_| true).await;
    assert!(first.verified, "{first:?}");
    assert_eq!(first.body["type"], "hookd.alert");
    assert_eq!(first.webhook_id, first.body["id"].as_str().unwrap());
    assert_eq!(conditions(&first), ["events_dead"]);
    assert_eq!(new_dead(&first), 1);
    let text = first.body["text"].as_str().unwrap();
    assert!(text.contains("1 event went dead (1 dead now)"), "{text}");
    assert!(
        text.contains("d1") && text.contains("downstream refused it"),
        "{text}"
    );
    assert_eq!(first.body["data"]["conditions"][0]["dead_now"], 1);
    let listed = &first.body["data"]["latest_dead"][0];
    assert_eq!(listed["event_id"], "d1");
    assert_eq!(listed["endpoint"], "std");
    assert_eq!(first.body["data"]["events"]["dead"], 1);

    // Two more go dead at once: told together, no sooner than the interval after the first.
    s.send_event("std", "d2", "order.paid").await;
    s.send_event("std", "d3", "order.paid").await;
    s.wait_for_state("d2", "dead").await;
    s.wait_for_state("d3", "dead").await;
    eventually(WAIT, "alerts telling all three", || async {
        (hooks.all().iter().map(new_dead).sum::<u64>() == 3).then_some(())
    })
    .await;
    let all = hooks.all();
    assert!(all.iter().all(|r| r.verified));
    for pair in all.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(
            gap >= Duration::from_millis(4500),
            "alerts {gap:?} apart: {all:#?}"
        );
    }
    assert_eq!(all.len(), 2, "d2 and d3 were coalesced: {all:#?}");
    // The second tells two new ones of three dead in all, and lists the newest first.
    let second = &all[1].body;
    assert_eq!(second["data"]["conditions"][0]["dead_now"], 3);
    let text = second["text"].as_str().unwrap();
    assert!(text.contains("2 events went dead (3 dead now)"), "{text}");
    let listed: Vec<&str> = second["data"]["latest_dead"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert_eq!(listed[2], "d1", "{listed:?}");
    s.stop().await;
}

#[tokio::test]
async fn a_stalled_queue_and_a_store_that_cannot_persist_are_alerted() {
    let hooks = Hooks::start(OTHER_SECRET, 0).await;
    let s = start(
        &hooks,
        "oldest_queued_secs = 1\nmin_interval_secs = 1",
        "workers = 1\nshutdown_grace_secs = 1",
        true,
    )
    .await;
    // The only worker holds q1, so q2 waits.
    s.send_event("std", "q1", "order.paid").await;
    s.wait_for_state("q1", "processing").await;
    s.send_event("std", "q2", "order.paid").await;
    let stalled = hooks
        .wait_for("a stalled-queue alert", |r| {
            conditions(r).contains(&"oldest_queued".to_string())
        })
        .await;
    assert!(stalled.verified);
    let c = &stalled.body["data"]["conditions"][0];
    assert_eq!(c["threshold_secs"], 1);
    assert!(c["oldest_queued_age_secs"].as_u64().unwrap() > 1, "{c}");
    assert!(stalled.body["text"]
        .as_str()
        .unwrap()
        .contains("the oldest queued event has waited"));

    s.running.as_ref().unwrap().store.crash_writer();
    let broken = hooks
        .wait_for("a store alert", |r| {
            conditions(r).contains(&"store_unhealthy".to_string())
        })
        .await;
    assert!(broken.verified);
    let text = broken.body["text"].as_str().unwrap();
    assert!(text.contains("the store cannot persist"), "{text}");
    assert!(text.contains("writer"), "{text}");
}

#[tokio::test]
async fn retention_behind_what_arrives_is_alerted() {
    let hooks = Hooks::start(OTHER_SECRET, 0).await;
    let s = start(&hooks, "min_interval_secs = 1", "", false).await;
    s.mark_retention_behind().await;
    let behind = hooks
        .wait_for("a retention alert", |r| {
            conditions(r).contains(&"retention_behind".to_string())
        })
        .await;
    assert!(behind.verified);
    let text = behind.body["text"].as_str().unwrap();
    assert!(
        text.contains("retention is behind") && text.contains("retention_days"),
        "{text}"
    );
    s.stop().await;
}

#[tokio::test]
async fn an_alert_the_service_refuses_is_sent_again() {
    let hooks = Hooks::start(OTHER_SECRET, 1).await;
    let s = start(&hooks, "min_interval_secs = 1", "max_attempts = 1", false).await;
    s.send_event("std", "r1", "order.paid").await;
    let again = hooks
        .wait_for("the alert sent again", |r| r.status == 200)
        .await;
    let all = hooks.all();
    assert_eq!(all[0].status, 500);
    assert_eq!(new_dead(&all[0]), 1);
    // What the refused one told is told again.
    assert_eq!(new_dead(&again), 1);
    assert_ne!(all[0].webhook_id, again.webhook_id);
    s.stop().await;
}
