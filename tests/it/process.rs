//! The pipeline: forwarding, retries on schedule (paused time), dead letters, rate and
//! concurrency limits, and re-claiming work cut short by a crash.

use super::*;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use hookd::process::{Job, Pipeline, ProcessError, Processor};
use hookd::store::Store;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use warp::Filter;

/// A local service that records what hookd forwards and fails the first `fail_first` calls.
struct Sink {
    received: Mutex<Vec<(http::HeaderMap, Bytes)>>,
    fail_first: AtomicUsize,
}

async fn start_sink(fail_first: usize) -> (String, Arc<Sink>) {
    let sink = Arc::new(Sink {
        received: Mutex::new(Vec::new()),
        fail_first: AtomicUsize::new(fail_first),
    });
    let state = sink.clone();
    let route = warp::post()
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .map(move |headers, body| {
            state.received.lock().unwrap().push((headers, body));
            let failing = state
                .fail_first
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            let status = if failing {
                http::StatusCode::INTERNAL_SERVER_ERROR
            } else {
                http::StatusCode::OK
            };
            warp::reply::with_status("sink says hi", status)
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (format!("http://{addr}/hook"), sink)
}

fn forward_config(url: &str, extra: &str) -> String {
    format!(
        r#"[admin]
token = "{ADMIN_TOKEN}"
[processing]
retry_schedule_secs = [1]
retry_jitter = 0.0
{extra}
[[endpoints]]
name = "std"
secrets = ["{SECRET}"]
[endpoints.forward]
url = "{url}"
secret = "{OTHER_SECRET}"
"#
    )
}

// Paused time: the retry a second later comes without a real second's sleep.
#[tokio::test(start_paused = true)]
async fn forward_processor_posts_the_original_body_re_signed_and_retries_failures() {
    let (url, sink) = start_sink(1).await;
    let s = TestServer::start(&forward_config(&url, "")).await;
    let body = event_body("fw-1", "webhook.test");
    assert_eq!(
        s.post_signed("std", SECRET, "msg_fw", &body).await.status,
        200
    );
    let event = s.wait_for_state("fw-1", "done").await;
    let attempts = event["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["outcome"], "error");
    assert!(attempts[0]["detail"].as_str().unwrap().contains("HTTP 500"));
    assert_eq!(attempts[1]["outcome"], "ok");
    assert_eq!(attempts[1]["processor"], "forward");

    let received = sink.received.lock().unwrap().clone();
    assert_eq!(received.len(), 2);
    let (headers, forwarded) = &received[1];
    assert_eq!(
        forwarded.as_ref(),
        body.as_bytes(),
        "the original body, byte for byte"
    );
    assert_eq!(
        headers["webhook-id"], "fw-1",
        "the event id, stable across retries"
    );
    let reference = standardwebhooks::Webhook::new(OTHER_SECRET).unwrap();
    reference
        .verify(forwarded, headers)
        .expect("re-signed with the forward secret");
    s.stop().await;
}

#[tokio::test(start_paused = true)]
async fn event_goes_dead_after_max_attempts_and_replay_revives_it() {
    let (url, sink) = start_sink(2).await;
    let s = TestServer::start(&forward_config(&url, "max_attempts = 2")).await;
    s.send_event("std", "dead-1", "webhook.test").await;
    let event = s.wait_for_state("dead-1", "dead").await;
    assert_eq!(event["attempts"].as_array().unwrap().len(), 2);
    assert!(event["last_error"].as_str().unwrap().contains("HTTP 500"));
    let stats = s.stats_with("dead", 1).await;
    assert_eq!(stats["events"]["dead"], 1);
    // The sink works now: a replay delivers it.
    s.api_post_status("/api/events/dead-1/replay", 202).await;
    let event = s.wait_for_state("dead-1", "done").await;
    assert_eq!(event["attempts"].as_array().unwrap().len(), 3);
    assert_eq!(sink.received.lock().unwrap().len(), 3);
    s.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_replay_gets_a_fresh_round_of_retries_and_attempt_numbers_keep_counting() {
    // Fails four times: a first round of two, a second round of two, then works.
    let (url, sink) = start_sink(4).await;
    let s = TestServer::start(&forward_config(&url, "max_attempts = 2")).await;
    s.send_event("std", "round-1", "webhook.test").await;
    s.wait_for_state("round-1", "dead").await;

    // The replay's first attempt fails and is retried on the schedule, not dead at once.
    s.api_post_status("/api/events/round-1/replay", 202).await;
    let event = s.wait_for_state("round-1", "retrying").await;
    let attempts = event["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{event}");
    let retry_in = event["next_attempt_at_ms"].as_u64().unwrap()
        - attempts[2]["finished_at_ms"].as_u64().unwrap();
    assert_eq!(retry_in, 1_000, "the first step of retry_schedule_secs");

    // After max_attempts in this round it is dead again.
    let event = s.wait_for_state("round-1", "dead").await;
    let numbers: Vec<u64> = event["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3, 4]);

    s.api_post_status("/api/events/round-1/replay", 202).await;
    let event = s.wait_for_state("round-1", "done").await;
    let attempts = event["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 5, "{event}");
    assert_eq!(attempts[4]["number"], 5);
    assert_eq!(attempts[4]["outcome"], "ok");
    assert_eq!(event["replays"], 2);
    assert_eq!(sink.received.lock().unwrap().len(), 5);
    s.stop().await;
}

/// Records the (tokio-clock) time of each call; fails or sleeps as told.
struct Recorder {
    calls: Mutex<Vec<u64>>,
    fail: bool,
    busy: Duration,
    called: tokio::sync::mpsc::UnboundedSender<()>,
}

impl Recorder {
    fn new(
        fail: bool,
        busy: Duration,
    ) -> (Arc<Recorder>, tokio::sync::mpsc::UnboundedReceiver<()>) {
        let (called, rx) = tokio::sync::mpsc::unbounded_channel();
        let calls = Mutex::new(vec![]);
        (
            Arc::new(Recorder {
                calls,
                fail,
                busy,
                called,
            }),
            rx,
        )
    }
}

impl Processor for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }
    fn process<'a>(&'a self, _job: &'a Job) -> BoxFuture<'a, Result<String, ProcessError>> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(hookd::clock::now_ms());
            let _ = self.called.send(());
            tokio::time::sleep(self.busy).await;
            if self.fail {
                Err(ProcessError::Retry("downstream is down".into()))
            } else {
                Ok("ok".into())
            }
        })
    }
}

async fn accept(store: &Store, event_id: &str) -> u64 {
    deliver(store, event_id, hookd::clock::now_ms()).await.seq
}

/// Runs a pipeline over a fresh store with `processing` config until the recorder was
/// called `calls` times and `done` holds, and returns the call times.
///
/// On the embedded store in both passes of the suite: these tests pause tokio's clock to
/// check the pipeline's schedule (retries, rate, workers), which is the same code over
/// either store; cluster mode's own clock is the database's lease times, which its tests
/// (`postgres.rs`) run in real time.
///
/// Waiting is on the recorder's channel, not on timers, so paused time only jumps to the
/// pipeline's own deadlines. The last result is applied by the store's writer thread in real
/// time, so `done` is then polled with [`eventually`], which gives that thread real time.
async fn run_pipeline(
    processing: &str,
    recorder: (Arc<Recorder>, tokio::sync::mpsc::UnboundedReceiver<()>),
    events: usize,
    calls: usize,
    done: impl Fn(&Store, &[u64]) -> bool,
) -> (Vec<u64>, Vec<u64>, Arc<Store>) {
    let (recorder, mut called) = recorder;
    let dir = tempfile::tempdir().unwrap();
    let config = load_config(
        dir.path(),
        &format!(
            "{}\n[processing]\n{processing}\n{}",
            config_text(dir.path(), ""),
            endpoints()
        ),
    );
    let store = Arc::new(Store::open(&dir.path().join("db"), 16).unwrap());
    let mut seqs = Vec::new();
    for i in 0..events {
        seqs.push(accept(&store, &format!("e{i}")).await);
    }
    let mut processors = Processors::default();
    processors.set("std", recorder.clone());
    let pipeline = Arc::new(Pipeline::new(&config, store.clone(), processors));
    let (trigger, shutdown) = hookd::shutdown::channel();
    let task = tokio::spawn(pipeline.run(shutdown, Duration::from_secs(1)));
    for _ in 0..calls {
        called.recv().await.unwrap();
    }
    let (finished, store_ref, seqs_ref) = (&done, &store, &seqs);
    eventually(WAIT, "the pipeline finishing", || async move {
        finished(store_ref, seqs_ref).then_some(())
    })
    .await;
    trigger.fire();
    task.await.unwrap();
    let calls = recorder.calls.lock().unwrap().clone();
    (calls, seqs, store)
}

#[tokio::test(start_paused = true)]
async fn failed_attempts_follow_the_retry_schedule_with_jitter_then_go_dead() {
    let recorder = Recorder::new(true, Duration::ZERO);
    let processing = "max_attempts = 4\nretry_schedule_secs = [10, 60, 300]\nretry_jitter = 0.2";
    let state = |s: &Store, seqs: &[u64]| s.event(seqs[0]).unwrap().unwrap().state;
    let (calls, seqs, store) = run_pipeline(processing, recorder, 1, 4, |s, q| {
        state(s, q) == hookd::store::EventState::Dead
    })
    .await;
    assert_eq!(calls.len(), 4, "{calls:?}");
    let gaps: Vec<u64> = calls.windows(2).map(|w| w[1] - w[0]).collect();
    for (gap, base) in gaps.iter().zip([10_000u64, 60_000, 300_000]) {
        let (lo, hi) = (base * 8 / 10, base * 12 / 10 + 100);
        assert!(
            (lo..=hi).contains(gap),
            "gap {gap} ms outside {lo}..={hi} (gaps {gaps:?})"
        );
    }
    let attempts = store.attempts(seqs[0]).unwrap();
    assert_eq!(attempts.len(), 4);
    assert!(attempts.iter().all(|a| a.detail == "downstream is down"));
    assert_eq!(store.event(seqs[0]).unwrap().unwrap().attempts, 4);
}

#[tokio::test(start_paused = true)]
async fn max_rate_spreads_attempts_over_time() {
    let recorder = Recorder::new(false, Duration::ZERO);
    let all_done = |s: &Store, seqs: &[u64]| {
        seqs.iter()
            .all(|q| s.event(*q).unwrap().unwrap().state == hookd::store::EventState::Done)
    };
    let (calls, _, _) = run_pipeline("max_rate_per_sec = 2.0", recorder, 6, 6, all_done).await;
    assert_eq!(calls.len(), 6);
    // Two at once (a second's burst), then one every 500 ms.
    let span = calls[5] - calls[0];
    assert!(
        (1_900..=2_200).contains(&span),
        "6 attempts at 2/s took {span} ms: {calls:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn worker_count_bounds_concurrent_attempts() {
    let recorder = Recorder::new(false, Duration::from_secs(1));
    let all_done = |s: &Store, seqs: &[u64]| {
        seqs.iter()
            .all(|q| s.event(*q).unwrap().unwrap().state == hookd::store::EventState::Done)
    };
    let (calls, _, _) = run_pipeline("workers = 2", recorder, 4, 4, all_done).await;
    let starts: Vec<u64> = calls.iter().map(|c| c - calls[0]).collect();
    // Two start together; the next two only when those finished a second later.
    assert!(
        starts[1] < 100
            && (1_000..1_200).contains(&starts[2])
            && (1_000..1_200).contains(&starts[3]),
        "{starts:?}"
    );
}

#[tokio::test]
async fn attempt_cut_short_by_a_crash_is_claimed_again_at_start_up() {
    if crate::postgres::sled_only() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data").join("db");
    std::fs::create_dir_all(&db).unwrap();
    {
        let store = Store::open(&db, 16).unwrap();
        let seq = accept(&store, "crash-1").await;
        let claimed = store.claim(hookd::clock::now_ms(), 8).await.unwrap();
        assert_eq!(claimed.len(), 1, "the event should be due");
        assert_eq!(claimed[0].0.seq, seq);
        assert_eq!(
            store.event(seq).unwrap().unwrap().state,
            hookd::store::EventState::Processing
        );
        store.flush().await.unwrap();
        // The process "dies" here: the claim is on disk, the attempt never finished.
    }
    let s = TestServer::start_in(dir, &endpoints(), None).await;
    let event = s.wait_for_state("crash-1", "done").await;
    // The attempt the crash cut short keeps its record and number; the next one follows it.
    let attempts = event["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{event}");
    assert_eq!(
        (&attempts[0]["number"], &attempts[0]["outcome"]),
        (&serde_json::json!(1), &serde_json::json!("interrupted"))
    );
    assert_eq!(
        (&attempts[1]["number"], &attempts[1]["outcome"]),
        (&serde_json::json!(2), &serde_json::json!("ok"))
    );
    s.stop().await;
}
