//! Retention, backup and verify-data: the pruner with an injected "now", the start-up
//! catch-up, export clean-up with its index hook, backups taken under load, restores, and a
//! deliberately broken data directory.

use super::admin::backup_config;
use super::receive::base_config;
use super::*;
use hookd::prune::Pruner;
use hookd::store::fasten::ExportRecord;
use hookd::store::{check, Attempt, AttemptOutcome, Next, Store, Verdict};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DAY: u64 = 24 * 60 * 60 * 1000;

/// Runs every event due by `at_ms` once, ending it with `next`.
async fn process_due(store: &Store, at_ms: u64, next: Next) -> Vec<u64> {
    let claimed = store.claim(at_ms, 1000).await.unwrap();
    let seqs: Vec<u64> = claimed.iter().map(|(e, _)| e.seq).collect();
    for (e, _) in claimed {
        let attempt = Attempt {
            number: e.attempts + 1,
            processor: "log".into(),
            started_at_ms: at_ms,
            finished_at_ms: at_ms,
            outcome: AttemptOutcome::Ok,
            detail: "logged".into(),
        };
        store.finish(e.seq, attempt, next).unwrap();
    }
    store.flush().await.unwrap();
    seqs
}

/// A store and a pruner over a fresh data directory (default retention: 15 days).
/// On the suite's store: the embedded one, or PostgreSQL when the suite runs there.
async fn open(dir: &Path, extra: &str) -> (Arc<Store>, Pruner) {
    let mut text = config_text(dir, &format!("{extra}\n{}", endpoints()));
    if let Some(store) = postgres::suite_store(dir, extra).await {
        text.push_str(&store);
    }
    let config = load_config(dir, &text);
    std::fs::create_dir_all(&config.data_dir).unwrap();
    let store = Arc::new(match &config.store {
        hookd::config::StoreKind::Sled => Store::open(&config.data_dir.join("db"), 16).unwrap(),
        hookd::config::StoreKind::Postgres(options) => {
            // These tests claim events at times weeks ago: a lease of the usual length would
            // have run out at once, and the heartbeat would take the event back mid-attempt.
            let options = hookd::store::pg::PgOptions {
                lease_ms: 40 * DAY,
                ..options.clone()
            };
            Store::open_postgres(&options).unwrap()
        }
    });
    let pruner = Pruner::new(&config, store.clone());
    (store, pruner)
}

/// verify-data finds nothing wrong in the stopped embedded store under `dir` (on
/// PostgreSQL there are no files of hookd's own to check).
fn assert_consistent(dir: &Path) -> Option<check::Report> {
    if !dir.join("data/db").exists() {
        return None;
    }
    let report = check::check(&dir.join("data/db")).unwrap();
    assert!(report.consistent(), "{:?}", report.problems);
    Some(report)
}

#[tokio::test]
async fn older_records_go_younger_stay_and_unfinished_events_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (store, pruner) = open(dir.path(), "").await;
    let now = hookd::clock::now_ms();
    let old = now - 20 * DAY;
    let done = deliver(&store, "old-done", old).await;
    process_due(&store, old, Next::Done).await;
    let dead = deliver(&store, "old-dead", old + 1).await;
    process_due(&store, old + 1, Next::Dead).await;
    let waiting = deliver(&store, "old-queued", old + 2).await;
    // Processing it would also run the old queued event; it stays queued too.
    let young = deliver(&store, "young", now - DAY).await;

    let report = pruner.prune_at(now).unwrap();
    assert_eq!(report.deliveries, 3, "{report:?}");
    assert_eq!(report.events, 2, "{report:?}");
    for gone in [done, dead] {
        assert!(store.delivery(gone.delivery_id).unwrap().is_none());
        assert!(store.event(gone.seq).unwrap().is_none());
        assert!(store.payload(gone.seq).unwrap().is_none());
        assert!(store.attempts(gone.seq).unwrap().is_empty());
    }
    assert_eq!(store.find_event("std", "old-done").unwrap(), None);
    // Nothing acknowledged is lost: the unfinished event stays whatever its age.
    assert!(store.delivery(waiting.delivery_id).unwrap().is_none());
    assert!(store.event(waiting.seq).unwrap().is_some());
    assert!(store.payload(waiting.seq).unwrap().is_some());
    assert_eq!(
        store.find_event("std", "old-queued").unwrap(),
        Some(waiting.seq)
    );
    // Younger records stay whole.
    assert!(store.delivery(young.delivery_id).unwrap().is_some());
    assert!(store.event(young.seq).unwrap().is_some());
    assert!(store.payload(young.seq).unwrap().is_some());
    let stats = store.stats(now).unwrap();
    assert_eq!(stats.deliveries["accepted"], 1);
    assert_eq!(stats.events["done"], 0);
    assert_eq!(stats.events["dead"], 0);
    assert_eq!(stats.events["queued"], 2);
    assert_eq!(pruner.status().last_pruned_records, 5);
    // A second run finds nothing more.
    assert_eq!(pruner.prune_at(now).unwrap().records(), 0);
    // The waiting event outlived its delivery's record, which held it: it still runs.
    let mut ran = process_due(&store, now, Next::Done).await;
    ran.sort();
    assert_eq!(ran, [waiting.seq, young.seq]);
    drop((pruner, store));
    assert_consistent(dir.path());
}

/// A prune batch is removed in small atomic chunks (so an ack never waits behind all of it):
/// every chunk goes whole, index entries with their deliveries, events with their keys.
#[tokio::test]
async fn a_batch_larger_than_one_chunk_goes_whole() {
    // The embedded store's chunks; PostgreSQL drops whole days (postgres.rs tests that).
    if crate::postgres::sled_only() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (store, pruner) = open(dir.path(), "[retention]\nbatch_size = 100").await;
    let now = hookd::clock::now_ms();
    let old = now - 20 * DAY;
    let mut gone = Vec::new();
    for i in 0..70 {
        gone.push(deliver(&store, &format!("old-{i}"), old + i).await);
    }
    process_due(&store, old + 70, Next::Done).await;
    let kept = deliver(&store, "young", now - DAY).await;

    let report = pruner.prune_at(now).unwrap();
    assert_eq!(report.deliveries, 70, "{report:?}");
    assert_eq!(report.events, 70, "{report:?}");
    for a in &gone {
        assert!(store.delivery(a.delivery_id).unwrap().is_none());
        assert!(store.event(a.seq).unwrap().is_none());
    }
    assert!(store.delivery(kept.delivery_id).unwrap().is_some());
    store.index_now().unwrap();
    drop((pruner, store));
    let report = assert_consistent(dir.path()).unwrap();
    // Only the chunks holding the young delivery by endpoint, verdict and type are left
    // (the consistency check found no id of a delivery gone in them), and no event id
    // entry (an accepted delivery is found by its dedup key).
    assert_eq!(report.counts["index chunks"], 3, "{:?}", report.counts);
    assert_eq!(report.counts["index"], 0, "{:?}", report.counts);
}

/// An event whose record is its accepted delivery's is not removed while a later delivery
/// of its id is left, even one that is also past the window: a duplicate's body points into
/// the event. A prune cut short between batches leaves every kept delivery readable.
#[tokio::test]
async fn an_event_outlives_its_record_while_a_later_duplicate_is_kept() {
    // The embedded store's layout (an event in its delivery's record); on PostgreSQL an
    // event is a row of its own.
    if crate::postgres::sled_only() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (store, pruner) = open(dir.path(), "").await;
    let now = hookd::clock::now_ms();
    let old = now - 20 * DAY;
    let first = deliver(&store, "twice", old).await;
    let again = deliver(&store, "twice", old + 1).await;
    assert_eq!(again.verdict, Verdict::Duplicate);
    process_due(&store, old + 1, Next::Done).await;
    store.index_now().unwrap();
    let cutoff = now - 15 * DAY;

    // One record per batch: the event's delivery goes first, the duplicate waits.
    let turn = store.prune_turn().unwrap().unwrap();
    let batch = store.prune_deliveries(&turn, cutoff, 0, 1).unwrap();
    drop(turn);
    assert_eq!((batch.deliveries, batch.events), (1, 0));
    assert!(store.delivery(first.delivery_id).unwrap().is_none());
    let event = store.event(first.seq).unwrap().expect("moved, not removed");
    assert_eq!(event.state, hookd::store::EventState::Done);
    assert!(store.delivery(again.delivery_id).unwrap().is_some());
    assert!(
        store.payload(first.seq).unwrap().is_some(),
        "the payload the duplicate's body points into is still there"
    );

    // The whole prune removes the rest: the duplicate, then the event.
    let report = pruner.prune_at(now).unwrap();
    assert_eq!((report.deliveries, report.events), (1, 1), "{report:?}");
    assert!(store.event(first.seq).unwrap().is_none());
    assert_eq!(store.find_event("std", "twice").unwrap(), None);
    drop((pruner, store));
    assert_consistent(dir.path());
}

#[tokio::test]
async fn dedup_still_catches_a_retry_inside_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let (store, pruner) = open(dir.path(), "").await;
    let now = hookd::clock::now_ms();
    let old = now - 20 * DAY;
    let retried = deliver(&store, "retried", old).await;
    let single = deliver(&store, "single", old + 1).await;
    process_due(&store, old + 1, Next::Done).await;
    // The sender retried "retried" two days ago: that delivery is inside the window.
    let late = deliver(&store, "retried", now - 2 * DAY).await;
    assert_eq!(late.verdict, Verdict::Duplicate);

    pruner.prune_at(now).unwrap();
    assert!(store.delivery(retried.delivery_id).unwrap().is_none());
    assert!(store.delivery(late.delivery_id).unwrap().is_some());
    // Its dedup key lives as long as that delivery record: another retry is a duplicate.
    let again = deliver(&store, "retried", now).await;
    assert_eq!(again.verdict, Verdict::Duplicate);
    assert_eq!(again.seq, retried.seq);
    // An id whose every delivery is past the window is forgotten with them.
    assert!(store.event(single.seq).unwrap().is_none());
    assert_eq!(
        deliver(&store, "single", now).await.verdict,
        Verdict::Accepted
    );
}

#[tokio::test]
async fn start_up_prune_catches_up_after_downtime() {
    if crate::postgres::sled_only() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let now = hookd::clock::now_ms();
    {
        let (store, _pruner) = open(dir.path(), "").await;
        for i in 0..10 {
            deliver(&store, &format!("down-{i}"), now - 30 * DAY + i).await;
        }
        process_due(&store, now - 30 * DAY + 10, Next::Done).await;
        deliver(&store, "recent", now - DAY).await;
    }
    // The schedule is far away; only the start-up run can prune.
    let s = TestServer::start_in(
        dir,
        &format!("[retention]\nschedule = \"0 0 0 1 1 *\"\n{}", base_config()),
        None,
    )
    .await;
    eventually(WAIT, "the start-up prune", || async {
        let stats = s.api_ok("/api/stats").await;
        stats["retention"]["last_prune_at_ms"]
            .is_u64()
            .then_some(())
    })
    .await;
    // The answer that first showed the prune may have read the counters just before it
    // ended (they are read before the pruner's status): read them again.
    let stats = s.api_ok("/api/stats").await;
    assert_eq!(stats["retention"]["last_pruned_records"], 20, "{stats}");
    assert_eq!(stats["retention"]["schedule"], "0 0 0 1 1 *");
    // A prune of 20 records is nowhere near behind what arrives.
    assert_eq!(stats["retention"]["behind"], false, "{stats}");
    assert!(stats["data_dir_bytes"].as_u64().unwrap() > 0);
    assert_eq!(stats["deliveries"]["accepted"], 1);
    let page = s.api_ok("/api/deliveries").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["event_id"], "recent");
    s.api_status("/api/events/down-3", 404).await;
    s.stop().await;
}

/// A stored export record for `connection`/`task`.
fn export_record(connection: &str, task: &str) -> ExportRecord {
    ExportRecord {
        org_connection_id: connection.into(),
        task_id: task.into(),
        event_id: format!("evt-{task}"),
        stored_at_ms: 1,
        files: vec![],
        total_resources: 0,
        counts: Default::default(),
        mismatches: vec![],
    }
}

fn age(path: &Path, days: u64) {
    let when = std::time::SystemTime::now() - Duration::from_millis(days * DAY);
    std::fs::File::open(path)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

#[tokio::test]
async fn old_exports_are_pruned_with_their_index_entries() {
    let dir = tempfile::tempdir().unwrap();
    let (store, pruner) = open(dir.path(), "[retention]\nexport_retention_days = 3").await;
    let exports = dir.path().join("data/exports");
    // Fasten's task ids are unique across connections (the PostgreSQL store keys them so).
    for name in ["conn-1/task-old", "conn-1/task-new", "conn-2/task-old-2"] {
        std::fs::create_dir_all(exports.join(name)).unwrap();
        std::fs::write(exports.join(name).join("export.ndjson"), "{}\n").unwrap();
        age(
            &exports.join(name),
            if name.contains("old") { 5 } else { 1 },
        );
    }
    for (connection, task) in [
        ("conn-1", "task-old"),
        ("conn-1", "task-new"),
        ("conn-2", "task-old-2"),
    ] {
        store
            .put_export(&export_record(connection, task))
            .await
            .unwrap();
    }

    let report = pruner.prune_at(hookd::clock::now_ms()).unwrap();
    assert_eq!(report.exports, 2);
    assert!(!exports.join("conn-1/task-old").exists());
    assert!(exports.join("conn-1/task-new/export.ndjson").exists());
    assert!(
        !exports.join("conn-2").exists(),
        "an emptied connection directory goes too"
    );
    assert!(store.export("conn-1", "task-old").unwrap().is_none());
    assert!(store.export("conn-2", "task-old-2").unwrap().is_none());
    assert!(store.export("conn-1", "task-new").unwrap().is_some());
    assert_eq!(pruner.status().last_pruned_exports, 2);
}

/// `hookd --config CONFIG backup --to TO`, off the runtime's thread: the server that
/// answers the command runs on it.
async fn backup_with(config: &Path, to: &Path) -> std::process::Output {
    let (config, to) = (config.to_owned(), to.to_owned());
    tokio::task::spawn_blocking(move || {
        hookd(&[
            "--config",
            config.to_str().unwrap(),
            "backup",
            "--to",
            to.to_str().unwrap(),
        ])
    })
    .await
    .unwrap()
}

/// Sends events from `senders` tasks until `stop`, remembering each acknowledged id.
fn load(
    s: &TestServer,
    senders: usize,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..senders)
        .map(|w| {
            let (url, http, stop, acked) =
                (s.url("std"), s.http.clone(), stop.clone(), acked.clone());
            tokio::spawn(async move {
                let secret = hookd::secret::Secret::parse(SECRET).unwrap();
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let id = format!("load-{w}-{i}");
                    let body = event_body(&id, "webhook.test");
                    let ts = now();
                    let r = http
                        .post(&url)
                        .header("webhook-id", &id)
                        .header("webhook-timestamp", ts.to_string())
                        .header(
                            "webhook-signature",
                            hookd::verify::sign(&secret, &id, ts, body.as_bytes()),
                        )
                        .body(body)
                        .send()
                        .await;
                    if matches!(&r, Ok(r) if r.status() == 200) {
                        acked.lock().unwrap().push(id);
                    }
                }
            })
        })
        .collect()
}

/// Every delivery id and event id the admin API lists, newest first.
async fn history(s: &TestServer) -> Vec<(String, String)> {
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = s
            .api_ok(&format!("/api/deliveries?limit=500&cursor={cursor}"))
            .await;
        for item in page["items"].as_array().unwrap() {
            all.push((
                item["id"].as_str().unwrap().to_owned(),
                item["event_id"].as_str().unwrap_or("").to_owned(),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => return all,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_load_holds_every_event_acknowledged_before_it() {
    if crate::postgres::sled_only() {
        return;
    }
    let target = tempfile::tempdir().unwrap();
    let s = TestServer::start(&backup_config(target.path())).await;
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<String>>> = Default::default();
    let senders = load(&s, 4, stop.clone(), acked.clone());
    let acked_now = || acked.lock().unwrap().len();
    eventually(WAIT, "300 acknowledged events", || async {
        (acked_now() >= 300).then_some(())
    })
    .await;
    let before: Vec<String> = acked.lock().unwrap().clone();
    let backup = "/api/backup?to=data";
    s.api_post_status(backup, 200).await;
    let during = acked_now() - before.len();
    stop.store(true, Ordering::Relaxed);
    for t in senders {
        t.await.unwrap();
    }
    // The load went on while the backup ran: it does not pause receiving.
    assert!(during > 0, "no event was acknowledged while the backup ran");
    // A second backup into the same place is refused.
    s.api_post_status(backup, 409).await;
    s.api_post_status("/api/backup?to=relative/dir", 400).await;
    s.stop().await;

    let report = check::check(&target.path().join("data/db")).unwrap();
    assert!(report.consistent(), "{:?}", report.problems);
    let restored = TestServer::start_in(target, &base_config(), None).await;
    for id in &before {
        restored.api_ok(&format!("/api/events/{id}")).await;
    }
    restored.stop().await;
}

#[tokio::test]
async fn a_restored_copy_serves_the_same_history() {
    if crate::postgres::sled_only() {
        return;
    }
    let target = tempfile::tempdir().unwrap();
    let s = TestServer::start(&backup_config(target.path())).await;
    for i in 0..30 {
        s.send_event("std", &format!("hist-{i}"), "webhook.test")
            .await;
    }
    s.send_event("std", "hist-3", "webhook.test").await; // duplicate
    s.post_signed("std", OTHER_SECRET, "bad", "{}").await; // rejected
    s.wait_for_state("hist-29", "done").await;
    s.api_post_status("/api/backup?to=data", 200).await;
    let original = history(&s).await;
    assert_eq!(original.len(), 32);
    let restored = TestServer::start_in(target, &base_config(), None).await;
    assert_eq!(history(&restored).await, original);
    let e = restored.api_ok("/api/events/hist-7").await;
    assert_eq!(e["payload"]["id"], "hist-7");
    // The restored copy still knows which ids it has seen.
    let a = restored.send_event("std", "hist-5", "webhook.test").await;
    assert_eq!(a.verdict(), (200, "duplicate"));
    restored.stop().await;
    s.stop().await;
}

const BIN: &str = env!("CARGO_BIN_EXE_hookd");

fn hookd(args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(args)
        .env("HOOKD_LOG", "warn")
        .output()
        .unwrap()
}

#[tokio::test]
async fn verify_data_flags_a_broken_data_directory() {
    if crate::postgres::sled_only() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let now = hookd::clock::now_ms();
    let victim = {
        let (store, _pruner) = open(dir.path(), "").await;
        let a = deliver(&store, "v-1", now).await;
        deliver(&store, "v-2", now + 1).await;
        process_due(&store, now + 1, Next::Done).await;
        a.seq
    };
    let data = dir.path().join("data");
    let out = hookd(&["verify-data", data.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("events: 2") && text.contains("consistent"),
        "{text}"
    );

    // An offline backup of it is consistent too.
    let copy = dir.path().join("copy");
    let out = hookd(&[
        "backup",
        "--data-dir",
        data.to_str().unwrap(),
        "--to",
        copy.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(hookd(&["verify-data", copy.to_str().unwrap()])
        .status
        .success());

    // Break it: the dedup key of an event goes missing, and the queue points at an event
    // that is not there (keys of data format 2, one `log` tree).
    {
        let db = crate::open_sled(&data.join("db"));
        let log = db.open_tree("log").unwrap();
        log.remove(b"k\x00\x03stdv-1")
            .unwrap()
            .expect("the dedup key of v-1");
        let mut key = vec![b'q'];
        key.extend_from_slice(&now.to_be_bytes());
        key.extend_from_slice(&u64::MAX.to_be_bytes());
        log.insert(key, &[]).unwrap();
        db.flush().unwrap();
    }
    let out = hookd(&["verify-data", data.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("event {victim} has no dedup key pointing at it")),
        "{text}"
    );
    assert!(
        text.contains("queue entry points at missing event"),
        "{text}"
    );

    let out = hookd(&["verify-data", dir.path().join("nothing").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn backup_command_asks_a_running_hookd_and_compact_shrinks_a_stopped_one() {
    if crate::postgres::sled_only() {
        return;
    }
    let backups = tempfile::tempdir().unwrap();
    let s = TestServer::start(&backup_config(backups.path())).await;
    for i in 0..20 {
        s.send_event("std", &format!("cli-{i}"), "webhook.test")
            .await;
    }
    let config = s.dir.path().join("hookd.toml");
    // Point the command at this server's admin listener.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "admin_listen = \"127.0.0.1:0\"",
        &format!("admin_listen = \"{}\"", s.admin),
    );
    // A command whose configuration has another token is refused, and told where its token
    // comes from (a running hookd may have its token from the environment only).
    let wrong = s.dir.path().join("wrong-token.toml");
    std::fs::write(
        &wrong,
        text.replace(ADMIN_TOKEN, "another-token-0123456789"),
    )
    .unwrap();
    std::fs::write(&config, text).unwrap();
    let refused_to = backups.path().join("refused");
    let out = backup_with(&wrong, &refused_to).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("HTTP 401") && err.contains("HOOKD_ADMIN_TOKEN"),
        "{err}"
    );
    // A backup_dir that does not exist is named as the cause (not where --to points).
    let missing = backups.path().join("missing");
    let gone = s.dir.path().join("missing-dir.toml");
    std::fs::write(
        &gone,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace(&format!("{:?}", backups.path()), &format!("{missing:?}")),
    )
    .unwrap();
    let out = backup_with(&gone, &missing.join("b1")).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("cannot be used")
            && err.contains("No such file")
            && !err.contains("pass --to"),
        "{err}"
    );
    let to = backups.path().join("online-copy");
    let out = backup_with(&config, &to).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("online backup"), "{stdout}");
    // A backup is a whole data directory, its data format recorded.
    assert_eq!(
        std::fs::read_to_string(to.join("db/hookd-format"))
            .unwrap()
            .trim(),
        hookd::store::FORMAT.to_string()
    );
    assert!(hookd(&["verify-data", to.to_str().unwrap()])
        .status
        .success());
    let dir = s.stop().await;

    let data = dir.path().join("data");
    let out = hookd(&["compact", "--data-dir", data.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(hookd(&["verify-data", data.to_str().unwrap()])
        .status
        .success());
    let s = TestServer::start_in(dir, &base_config(), None).await;
    s.api_ok("/api/events/cli-19").await;
    s.stop().await;
}
