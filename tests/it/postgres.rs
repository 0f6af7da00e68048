//! Cluster mode's store on a real PostgreSQL: two instances (two `PgStore`s, each with its
//! own pool, node and lease) on one database. Runs when HOOKD_TEST_PG_URL names a server
//! whose user may create databases (scripts/test starts a throwaway one); each test makes
//! its own database.

use hookd::store::pg::PgOptions;
use hookd::store::{
    Attempt, AttemptOutcome, DeliveryDraft, EventState, NewEvent, Next, ResponseLog, Verdict,
};
use hookd::store::{DeliveryFilter, Store};
use std::time::Duration;

const NEEDS: &str = "a PostgreSQL server whose user may create databases";

/// A fresh database on the test server, as a connection string; `None` (and a printed
/// reason) when no server is configured.
async fn database() -> Option<String> {
    let Ok(admin) = std::env::var("HOOKD_TEST_PG_URL") else {
        let line = format!("skipped: {NEEDS}; set HOOKD_TEST_PG_URL (scripts/test does)\n");
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        return None;
    };
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .expect("HOOKD_TEST_PG_URL reachable");
    tokio::spawn(conn);
    let name = format!("hookd_t_{}", uuid::Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let mut config: tokio_postgres::Config = admin.parse().unwrap();
    config.dbname(&name);
    let hosts = config.get_hosts();
    let host = match &hosts[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        #[allow(unreachable_patterns)]
        _ => "127.0.0.1".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres");
    // Plain TCP to the test server, which also speaks TLS with a certificate of its own CA:
    // the TLS test asks for TLS itself.
    Some(format!(
        "postgres://{user}@{host}:{port}/{name}?sslmode=disable"
    ))
}

/// With HOOKD_TEST_STORE=postgres the whole suite's in-process hookds run in cluster mode:
/// the `[store]`/`[postgres]` sections for the server in `dir`, on a database of its own
/// (the same one when a test restarts a server on its directory). Tests of the embedded
/// store itself skip (see [`sled_only`]).
pub async fn suite_store(dir: &std::path::Path, extra: &str) -> Option<String> {
    // A test that chooses its store itself keeps it.
    if std::env::var("HOOKD_TEST_STORE").ok()? != "postgres" || extra.contains("[store]") {
        return None;
    }
    let marker = dir.join("postgres.url");
    let url = match std::fs::read_to_string(&marker) {
        Ok(url) => url,
        Err(_) => {
            let url = database()
                .await
                .expect("HOOKD_TEST_STORE=postgres needs HOOKD_TEST_PG_URL");
            std::fs::write(&marker, &url).unwrap();
            url
        }
    };
    Some(format!(
        "\n[store]\nkind = \"postgres\"\n[postgres]\nurl = \"{url}\"\nlease_secs = 5\n"
    ))
}

/// Whether this test is about the embedded store itself (its files, faults, backups): it
/// says so and is skipped when the suite runs on PostgreSQL.
pub fn sled_only() -> bool {
    if std::env::var("HOOKD_TEST_STORE").is_ok_and(|v| v == "postgres") {
        let line = "skipped: a test of the embedded store; the suite runs on PostgreSQL\n";
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        return true;
    }
    false
}

/// The database a test URL names.
fn db_name(url: &str) -> String {
    let path = url.rsplit('/').next().unwrap();
    path.split('?').next().unwrap().to_string()
}

fn options(url: &str, instance: &str, lease_ms: u64) -> PgOptions {
    PgOptions {
        url: url.into(),
        pool_size: 4,
        ca_file: None,
        lease_ms,
        instance: instance.into(),
    }
}

async fn raw(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

fn draft(event_id: &str, at_ms: u64) -> DeliveryDraft {
    DeliveryDraft {
        received_at_ms: at_ms,
        endpoint: "std".into(),
        remote_addr: Some("10.0.0.1:5000".into()),
        request_headers: vec![("webhook-id".into(), event_id.into())],
        body: crate::event_body(event_id, "webhook.test"),
        body_bytes: 120,
        body_truncated: false,
        verdict: Verdict::Accepted,
        reason: String::new(),
        response: ResponseLog {
            status: 200,
            headers: vec![("x-request-id".into(), "r1".into())],
            body: String::new(),
        },
        event_id: Some(event_id.into()),
        event_type: Some("webhook.test".into()),
    }
}

fn respond(v: Verdict) -> (String, ResponseLog) {
    (
        format!("{} here", v.as_str()),
        ResponseLog {
            status: 200,
            headers: vec![],
            body: format!("{{\"status\":\"{}\"}}", v.as_str()),
        },
    )
}

async fn accept(store: &Store, event_id: &str, at_ms: u64) -> hookd::store::Accepted {
    let event = NewEvent {
        event_id: event_id.into(),
        event_type: "webhook.test".into(),
        payload: bytes::Bytes::from(crate::event_body(event_id, "webhook.test")),
    };
    store
        .accept(draft(event_id, at_ms), event, respond)
        .await
        .unwrap()
}

/// The deliveries of one event id, oldest first.
fn deliveries_of(store: &Store, event_id: &str) -> Vec<hookd::store::Delivery> {
    let filter = DeliveryFilter {
        event_id: Some(event_id.into()),
        ..DeliveryFilter::default()
    };
    let mut items = store.list_deliveries(&filter, None, 100).unwrap().items;
    items.reverse();
    items
}

fn attempt(number: u32, outcome: AttemptOutcome) -> Attempt {
    Attempt {
        number,
        processor: "log".into(),
        started_at_ms: hookd::clock::now_ms(),
        finished_at_ms: hookd::clock::now_ms(),
        outcome,
        detail: "done here".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_id_from_two_instances_at_once_is_accepted_once() {
    let Some(url) = database().await else { return };
    let a = std::sync::Arc::new(Store::open_postgres(&options(&url, "a", 60_000)).unwrap());
    let b = std::sync::Arc::new(Store::open_postgres(&options(&url, "b", 60_000)).unwrap());
    assert_ne!(
        a.postgres().unwrap().node(),
        b.postgres().unwrap().node(),
        "each instance takes its own node"
    );
    let now = hookd::clock::now_ms();
    let mut tasks = Vec::new();
    for i in 0..10 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            accept(&store, "evt_same", now).await
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let accepted: Vec<_> = results
        .iter()
        .filter(|r| r.verdict == Verdict::Accepted)
        .collect();
    assert_eq!(accepted.len(), 1, "{results:?}");
    let seq = accepted[0].seq;
    assert!(results.iter().all(|r| r.seq == seq), "{results:?}");
    let mut ids: Vec<u64> = results.iter().map(|r| r.delivery_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10, "every delivery has its own id");
    // Both instances see one event and ten deliveries of it, with the verdict each got.
    assert_eq!(b.find_event("std", "evt_same").unwrap(), Some(seq));
    let deliveries = deliveries_of(&a, "evt_same");
    assert_eq!(deliveries.len(), 10);
    let dups = deliveries
        .iter()
        .filter(|d| d.verdict == Verdict::Duplicate)
        .count();
    assert_eq!(dups, 9);
    let d = &deliveries[0];
    assert_eq!(d.reason, format!("{} here", d.verdict.as_str()));
    assert_eq!(d.remote_addr.as_deref(), Some("10.0.0.1:5000"));
    assert_eq!(
        d.response.headers,
        vec![("x-request-id".into(), "r1".into())]
    );
    assert_eq!(
        a.postgres()
            .unwrap()
            .count_state(EventState::Queued)
            .unwrap(),
        1
    );
    // The answer's latency is written by the next heartbeat.
    a.set_latency(d.id, 1234).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while a.delivery(d.id).unwrap().unwrap().latency_us != Some(1234) {
        assert!(
            std::time::Instant::now() < deadline,
            "latency never written"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A flush (a stop makes one) writes what the heartbeat has not written yet.
    let d2 = &deliveries[1];
    a.set_latency(d2.id, 4321).unwrap();
    a.flush().await.unwrap();
    assert_eq!(a.delivery(d2.id).unwrap().unwrap().latency_us, Some(4321));
    // Processed once: one claim gets it, the other instance finds nothing.
    let got = a.claim(hookd::clock::now_ms(), 10).await.unwrap();
    assert_eq!(got.len(), 1);
    assert!(b
        .claim(hookd::clock::now_ms(), 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        got[0].1.as_ref(),
        crate::event_body("evt_same", "webhook.test").as_bytes()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_claiming_together_never_take_the_same_event() {
    let Some(url) = database().await else { return };
    let a = std::sync::Arc::new(Store::open_postgres(&options(&url, "a", 60_000)).unwrap());
    let b = std::sync::Arc::new(Store::open_postgres(&options(&url, "b", 60_000)).unwrap());
    let now = hookd::clock::now_ms();
    for i in 0..60 {
        accept(if i % 2 == 0 { &a } else { &b }, &format!("evt_{i}"), now).await;
    }
    let run = |s: std::sync::Arc<Store>| {
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = s.claim(hookd::clock::now_ms(), 4).await.unwrap();
                if got.is_empty() {
                    break;
                }
                for (e, _) in got {
                    s.finish(
                        e.seq,
                        attempt(e.attempts + 1, AttemptOutcome::Ok),
                        Next::Done,
                    )
                    .unwrap();
                    mine.push(e.seq);
                }
            }
            s.flush().await.unwrap();
            mine
        })
    };
    let (ta, tb) = (run(a.clone()), run(b.clone()));
    let (mut sa, sb) = (ta.await.unwrap(), tb.await.unwrap());
    let all = sa.len() + sb.len();
    sa.extend(&sb);
    sa.sort();
    sa.dedup();
    assert_eq!(all, 60, "each event claimed once");
    assert_eq!(sa.len(), 60);
    assert_eq!(
        a.postgres().unwrap().count_state(EventState::Done).unwrap(),
        60
    );
    // Each instance's backlog figure catches up with the other's work at its heartbeat.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while a.backlog() + b.backlog() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "backlog never reached 0"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_whose_instance_dies_runs_on_another_after_the_lease() {
    let Some(url) = database().await else { return };
    let lease = 600;
    let a = Store::open_postgres(&options(&url, "a", lease)).unwrap();
    let b = Store::open_postgres(&options(&url, "b", lease)).unwrap();
    let seq = accept(&a, "evt_1", hookd::clock::now_ms()).await.seq;
    let got = a.claim(hookd::clock::now_ms(), 1).await.unwrap();
    assert_eq!(got.len(), 1);
    // While A lives its heartbeat renews the lease: nothing to take back.
    tokio::time::sleep(Duration::from_millis(lease * 2)).await;
    assert_eq!(b.requeue_inflight(hookd::clock::now_ms()).unwrap(), 0);
    assert!(b.claim(hookd::clock::now_ms(), 1).await.unwrap().is_empty());
    // A dies mid-attempt (its heartbeat stops with it).
    drop(a);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let got = loop {
        let got = b.claim(hookd::clock::now_ms(), 1).await.unwrap();
        if !got.is_empty() {
            break got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "B never got the event"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let event = &got[0].0;
    assert_eq!(event.seq, seq);
    assert_eq!(event.attempts, 1, "A's cut-short attempt counts");
    b.finish(seq, attempt(2, AttemptOutcome::Ok), Next::Done)
        .unwrap();
    b.flush().await.unwrap();
    let attempts = b.postgres().unwrap().attempts_by_instance(seq).unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0].0.number, 1);
    assert_eq!(attempts[0].0.outcome, AttemptOutcome::Interrupted);
    assert_eq!(attempts[0].1, "a");
    assert_eq!(attempts[1].0.number, 2);
    assert_eq!(attempts[1].0.outcome, AttemptOutcome::Ok);
    assert_eq!(attempts[1].1, "b");
    assert_eq!(b.event(seq).unwrap().unwrap().state, EventState::Done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_after_the_lease_passed_on_is_recorded_but_does_not_move_the_event() {
    let Some(url) = database().await else { return };
    let a = Store::open_postgres(&options(&url, "a", 60_000)).unwrap();
    let b = Store::open_postgres(&options(&url, "b", 60_000)).unwrap();
    let seq = accept(&a, "evt_1", hookd::clock::now_ms()).await.seq;
    a.claim(hookd::clock::now_ms(), 1).await.unwrap();
    // A stalls past its lease (simulated: the lease is cut short in the database).
    raw(&url)
        .await
        .execute("UPDATE hookd_events SET lease_until_ms = 1", &[])
        .await
        .unwrap();
    assert_eq!(b.requeue_inflight(hookd::clock::now_ms()).unwrap(), 1);
    let got = b.claim(hookd::clock::now_ms(), 1).await.unwrap();
    assert_eq!(got[0].0.attempts, 1);
    // A's late result: kept under its own number, the event stays B's.
    a.finish(seq, attempt(1, AttemptOutcome::Error), Next::RetryAt(1))
        .unwrap();
    a.flush().await.unwrap();
    let e = b.event(seq).unwrap().unwrap();
    assert_eq!(e.state, EventState::Processing);
    let attempts = b.postgres().unwrap().attempts_by_instance(seq).unwrap();
    assert_eq!(attempts[0].0.outcome, AttemptOutcome::Error);
    assert_eq!(attempts[1].0.outcome, AttemptOutcome::Running);
    assert_eq!(attempts[1].1, "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_replays_and_the_next_due_time() {
    let Some(url) = database().await else { return };
    let a = Store::open_postgres(&options(&url, "a", 60_000)).unwrap();
    let now = hookd::clock::now_ms();
    let seq = accept(&a, "evt_1", now).await.seq;
    assert_eq!(a.next_due().unwrap(), Some(now));
    a.claim(now, 1).await.unwrap();
    assert_eq!(a.next_due().unwrap(), None);
    a.finish(
        seq,
        attempt(1, AttemptOutcome::Error),
        Next::RetryAt(now + 5_000),
    )
    .unwrap();
    a.flush().await.unwrap();
    assert!(!a.finishes_pending());
    assert_eq!(a.next_due().unwrap(), Some(now + 5_000));
    assert!(
        a.claim(now + 1_000, 1).await.unwrap().is_empty(),
        "not due yet"
    );
    let again = a.claim(now + 5_000, 1).await.unwrap();
    assert_eq!(again[0].0.attempts, 1);
    assert_eq!(again[0].0.last_error.as_deref(), Some("done here"));
    assert!(matches!(
        a.replay(seq, now),
        Err(hookd::store::ReplayError::NotFinished("processing"))
    ));
    a.finish(seq, attempt(2, AttemptOutcome::Error), Next::Dead)
        .unwrap();
    a.flush().await.unwrap();
    let replayed = a.replay(seq, now + 6_000).unwrap();
    assert_eq!(replayed.state, EventState::Queued);
    assert_eq!(replayed.replays, 1);
    assert_eq!(replayed.attempts_before_replay, 2);
    assert!(matches!(
        a.replay(12345, now),
        Err(hookd::store::ReplayError::NotFound)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_is_migrated_once_and_a_newer_one_is_refused() {
    let Some(url) = database().await else { return };
    // Two instances starting together: one migrates, the other waits and finds it done.
    let (oa, ob) = (options(&url, "a", 60_000), options(&url, "b", 60_000));
    let (a, b) = tokio::join!(
        tokio::task::spawn_blocking(move || Store::open_postgres(&oa)),
        tokio::task::spawn_blocking(move || Store::open_postgres(&ob))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    a.unwrap();
    b.unwrap();
    let client = raw(&url).await;
    let versions: Vec<i32> = client
        .query("SELECT version FROM hookd_schema ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, vec![hookd::store::pg::SCHEMA_VERSION]);
    client
        .execute("INSERT INTO hookd_schema (version) VALUES (99)", &[])
        .await
        .unwrap();
    let e = Store::open_postgres(&options(&url, "c", 60_000))
        .err()
        .expect("a newer schema is refused");
    let text = e.to_string();
    assert!(
        text.contains("version 99") && text.contains("newer hookd"),
        "{text}"
    );
}

async fn partitions(c: &tokio_postgres::Client) -> i64 {
    c.query_one(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'hookd_deliveries'::regclass",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_old_days_and_runs_on_one_instance_at_a_time() {
    let Some(url) = database().await else { return };
    // Two instances on one database, sharing an exports directory as cluster mode asks.
    let a = std::sync::Arc::new(Store::open_postgres(&options(&url, "a", 60_000)).unwrap());
    let b = std::sync::Arc::new(Store::open_postgres(&options(&url, "b", 60_000)).unwrap());
    let day = 86_400_000;
    let now = hookd::clock::now_ms();
    let old = now - 20 * day;
    a.postgres().unwrap().ensure_partitions_at(old).unwrap();
    let mut old_seqs = Vec::new();
    for i in 0..5 {
        old_seqs.push(accept(&a, &format!("old_{i}"), old).await.seq);
    }
    let fresh = accept(&a, "fresh", now).await.seq;
    // Just before the cut-off, in a day that is not wholly past it: its partition stays, and
    // so does its event (a duplicate kept there still finds the original's payload).
    let cutoff = now - 15 * day;
    a.postgres()
        .unwrap()
        .ensure_partitions_at(cutoff - 1)
        .unwrap();
    let edge = accept(&a, "edge", cutoff - 1).await.seq;
    old_seqs.push(edge);
    // Old events finished, except one still waiting: nothing acknowledged is lost.
    for seq in old_seqs.iter().filter(|s| **s != old_seqs[4]) {
        raw(&url)
            .await
            .execute(
                "UPDATE hookd_events SET state = 'done' WHERE seq = $1",
                &[&(*seq as i64)],
            )
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared-exports");
    let config = crate::load_config(
        dir.path(),
        &crate::config_text(
            dir.path(),
            &format!("[retention]\nexport_retention_days = 3\n[fasten]\nexports_dir = {shared:?}"),
        ),
    );
    let old_export_in = |exports: &std::path::Path| {
        let old_export = exports.join("conn-1/task-old");
        std::fs::create_dir_all(&old_export).unwrap();
        std::fs::write(old_export.join("export.ndjson"), "{}\n").unwrap();
        let five_days_ago =
            std::time::SystemTime::now() - std::time::Duration::from_secs(5 * 86_400);
        std::fs::File::open(&old_export)
            .unwrap()
            .set_modified(five_days_ago)
            .unwrap();
        old_export
    };
    let old_export = old_export_in(&shared);
    let pruner_a = hookd::prune::Pruner::new(&config, a.clone());
    let pruner_b = hookd::prune::Pruner::new(&config, b.clone());
    let client = raw(&url).await;
    let before = partitions(&client).await;

    // While A's run holds the turn, B skips its whole run: no records, not the shared
    // exports, and no figures of a prune it did not run (its status is A's to show).
    let turn = a.prune_turn().unwrap().expect("nobody prunes yet");
    assert!(b.prune_turn().unwrap().is_none());
    let report = pruner_b.prune_at(now).unwrap();
    assert!(report.elsewhere, "{report:?}");
    assert_eq!((report.records(), report.exports), (0, 0), "{report:?}");
    assert!(old_export.exists(), "B left the shared exports alone");
    assert_eq!(pruner_b.status().last_prune_at_ms, None);
    // A, meanwhile, prunes under its turn.
    assert!(
        a.prune_deliveries(&turn, cutoff, 0, 1000)
            .unwrap()
            .deliveries
            >= 5
    );
    assert!(partitions(&client).await < before, "old days are dropped");
    let batch = a.prune_events(&turn, cutoff, 0, 100).unwrap();
    assert_eq!((batch.events, batch.next), (4, None));
    assert!(a.event(old_seqs[0]).unwrap().is_none());
    assert!(a.event(old_seqs[4]).unwrap().is_some(), "queued stays");
    assert!(a.event(fresh).unwrap().is_some());
    assert_eq!(deliveries_of(&a, "fresh").len(), 1);
    assert!(deliveries_of(&a, "old_4").is_empty(), "its day was dropped");
    assert_eq!(
        deliveries_of(&a, "edge").len(),
        1,
        "its day is not wholly past"
    );
    assert!(a.event(edge).unwrap().is_some(), "kept with its delivery");
    // The turn is one run's, not one instance's: another run on A skips as well.
    assert!(pruner_a.prune_at(now).unwrap().elsewhere);

    // The turn is given back when dropped, at once: B's next run is its own.
    drop(turn);
    let report = pruner_b.prune_at(now).unwrap();
    assert!(!report.elsewhere, "{report:?}");
    assert_eq!(report.exports, 1);
    assert!(
        !old_export.exists(),
        "the turn's holder prunes the shared exports"
    );
    assert!(pruner_b.status().last_prune_at_ms.is_some());
    // A, whose only run was skipped, shows B's prune: the shared store's last one.
    assert_eq!(
        pruner_a.status().last_prune_at_ms,
        pruner_b.status().last_prune_at_ms
    );
    assert_eq!(pruner_a.status().last_pruned_exports, 1);
    // The lock went with the run: nothing holds it now.
    let holders = || async {
        client
            .query(
                // This test's database only: other tests prune theirs at the same time.
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory'
                   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                   AND (classid::int8 << 32 | objid::int8) = $1",
                &[&0x686f_6f6b_6403_i64],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, i32>(0))
            .collect::<Vec<i32>>()
    };
    assert!(holders().await.is_empty());

    // Export files in an instance's own data_dir (no exports_dir) are its own to prune,
    // whoever has the turn.
    let own_dir = tempfile::tempdir().unwrap();
    let own = crate::load_config(
        own_dir.path(),
        &crate::config_text(own_dir.path(), "[retention]\nexport_retention_days = 3"),
    );
    let own_export = old_export_in(&own.exports_dir());
    let turn = a.prune_turn().unwrap().unwrap();
    let report = hookd::prune::Pruner::new(&own, b.clone())
        .prune_at(now)
        .unwrap();
    assert!(report.elsewhere && report.exports == 1, "{report:?}");
    assert!(!own_export.exists());

    // A turn whose connection the database closed is lost, and a run holding it stops
    // rather than prune beside the instance that takes the turn next.
    assert!(turn.still_held());
    let pid = holders().await[0];
    client
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    let mut lost = false;
    for _ in 0..50 {
        if !turn.still_held() {
            lost = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(lost, "the turn outlived its connection");
    // The server lets go of the lock once the terminated backend has exited.
    let mut freed = false;
    for _ in 0..50 {
        if b.prune_turn().unwrap().is_some() {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(freed, "the lock went with it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_marks_the_instance_stopped_so_a_restart_is_not_a_second_one() {
    let Some(url) = database().await else { return };
    let names = || async {
        let rows = raw(&url)
            .await
            .query("SELECT node, name FROM hookd_instances ORDER BY node", &[])
            .await
            .unwrap();
        rows.iter()
            .map(|r| (r.get::<_, i32>(0), r.get::<_, String>(1)))
            .collect::<Vec<_>>()
    };
    let a = Store::open_postgres(&options(&url, "box-1", 60_000)).unwrap();
    assert_eq!(names().await, [(0, "box-1".to_string())]);
    drop(a);
    // Its name is free (no warning of a second live "box-1" at the restart); its node stays
    // taken until the row goes stale, as after a crash.
    assert_eq!(names().await, [(0, "box-1 (stopped)".to_string())]);
    let b = Store::open_postgres(&options(&url, "box-1", 60_000)).unwrap();
    assert_eq!(
        names().await,
        [(0, "box-1 (stopped)".to_string()), (1, "box-1".to_string())]
    );
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_over_the_api_says_where_cluster_data_is_backed_up_and_makes_nothing() {
    let Some(url) = database().await else { return };
    let backups = tempfile::tempdir().unwrap();
    let extra = format!(
        "[store]\nkind = \"postgres\"\n[postgres]\nurl = \"{url}\"\n{}",
        crate::receive::base_config().replace(
            "[admin]\n",
            &format!("[admin]\nbackup_dir = {:?}\n", backups.path())
        )
    );
    let s = crate::TestServer::start(&extra).await;
    let r = s
        .http
        .post(format!("http://{}/api/backup?to=nightly", s.admin))
        .bearer_auth(crate::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["reason"].as_str().unwrap().contains("pg_dump"),
        "{body}"
    );
    assert!(!backups.path().join("nightly").exists());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hookds_on_one_database_behave_as_one() {
    let Some(url) = database().await else { return };
    let extra = format!(
        "[store]\nkind = \"postgres\"\n[postgres]\nurl = \"{url}\"\nlease_secs = 5\n{}",
        crate::receive::base_config()
    );
    let a = crate::TestServer::start(&extra).await;
    let b = crate::TestServer::start(&extra).await;
    // Received by A, repeated to B: one event, the repeat a duplicate.
    let first = a.send_event("std", "evt-c1", "webhook.test").await;
    assert_eq!(first.verdict(), (200, "accepted"));
    let again = b.send_event("std", "evt-c1", "webhook.test").await;
    assert_eq!(again.verdict(), (200, "duplicate"));
    // B's API shows what A received, processed once by one of them.
    let event = b.wait_for_state("evt-c1", "done").await;
    assert_eq!(event["attempts"].as_array().unwrap().len(), 1, "{event}");
    // Each attempt names the instance that made it (the hookds here are named host:pid).
    let instance = event["attempts"][0]["instance"]
        .as_str()
        .unwrap_or_default();
    assert!(
        instance.contains(&format!(":{}", std::process::id())),
        "{event}"
    );
    let list = b.api_ok("/api/deliveries?event_id=evt-c1").await;
    let verdicts: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts, ["duplicate", "accepted"], "{list}");
    let counted = b.api_ok("/api/deliveries?event_id=evt-c1&total=1").await;
    assert_eq!(counted["total"]["count"], 2, "{counted}");
    assert_eq!(counted["total"]["exact"], true, "{counted}");
    let searched = b.api_ok("/api/deliveries?q=HELLO&total=1").await;
    assert_eq!(searched["items"].as_array().unwrap().len(), 2, "{searched}");
    let stats = a.api_ok("/api/stats").await;
    assert_eq!(stats["deliveries"]["accepted"], 1, "{stats}");
    assert_eq!(stats["deliveries"]["duplicate"], 1, "{stats}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ui_session_holds_on_every_instance_and_a_logout_ends_it_on_all() {
    let Some(url) = database().await else { return };
    let extra = format!(
        "[store]\nkind = \"postgres\"\n[postgres]\nurl = \"{url}\"\n{}",
        crate::ui::password_config("")
    );
    let a = crate::TestServer::start(&extra).await;
    let b = crate::TestServer::start(&extra).await;
    let (status, _) = crate::ui::get_with_cookie(&b, "/api/stats", "hookd_session=nope").await;
    assert_eq!(status, 401);
    let login = crate::ui::login(&a).await;
    // One session stored, under a hash of its id, never the id itself.
    let id = login
        .cookie
        .trim_start_matches("hookd_session=")
        .to_string();
    let rows: Vec<String> = raw(&url)
        .await
        .query("SELECT id_sha256 FROM hookd_sessions", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].len() == 64 && rows[0] != id, "{rows:?}");
    // Logged in on A, the session holds on B (its cookie and its CSRF token).
    let (status, _) = crate::ui::get_with_cookie(&b, "/api/stats", &login.cookie).await;
    assert_eq!(status, 200);
    let (status, session) = crate::ui::get_with_cookie(&b, "/api/session", &login.cookie).await;
    assert_eq!(status, 200);
    assert_eq!(session["csrf_token"], login.csrf.as_str(), "{session}");
    // Logged out on B: gone on A too.
    let status = crate::ui::post_with(&b, "/api/logout", &login.cookie, Some(&login.csrf)).await;
    assert!(status < 300, "{status}");
    let (status, _) = crate::ui::get_with_cookie(&a, "/api/stats", &login.cookie).await;
    assert_eq!(status, 401);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_store_moves_an_appliances_history_into_an_empty_database() {
    use hookd::store::fasten::{ExportRecord, ResourceLoc};
    let Some(url) = database().await else { return };
    // An appliance with some history: accepted (processed), duplicate, rejected; a Fasten
    // connection with an export and its resource index.
    let appliance = format!(
        "[store]\nkind = \"sled\"\n{}",
        crate::receive::base_config()
    );
    let s = crate::TestServer::start(&appliance).await;
    assert_eq!(
        s.send_event("std", "evt-a", "webhook.test").await.verdict(),
        (200, "accepted")
    );
    assert_eq!(
        s.send_event("std", "evt-a", "webhook.test").await.verdict(),
        (200, "duplicate")
    );
    let bad = s
        .post_signed("std", crate::OTHER_SECRET, "msg_x", "{}")
        .await;
    assert_eq!(bad.status, 401);
    s.wait_for_state("evt-a", "done").await;
    let store = s.running.as_ref().unwrap().store.clone();
    store
        .update_connection("conn-1", |c| c.status = Some("authorized".into()))
        .unwrap();
    let mut index = store.resource_indexer("conn-1").unwrap();
    let loc = ResourceLoc {
        task_id: "task-1".into(),
        file: "fhir-1.ndjson".into(),
        offset: 0,
        len: 42,
    };
    index.add("Patient", "p-1", &loc).unwrap();
    index.flush().unwrap();
    drop(index); // it holds the store open
    store
        .put_export(&ExportRecord {
            org_connection_id: "conn-1".into(),
            task_id: "task-1".into(),
            event_id: "evt-export".into(),
            stored_at_ms: 1,
            files: vec![],
            total_resources: 1,
            counts: Default::default(),
            mismatches: vec![],
        })
        .await
        .unwrap();
    drop(store);
    let dir = s.stop().await;
    let data = dir.path().join("data");
    let copy = |data: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_hookd"))
            .args(["copy-store", "--from"])
            .arg(data)
            .args(["--to", &url])
            .env("HOOKD_LOG", "warn")
            .output()
            .unwrap()
    };
    let out = copy(&data);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("3 deliveries, 1 events (1 attempts), 1 Fasten"),
        "{text}"
    );
    // The cluster goes on where the appliance stopped.
    let pg = Store::open_postgres(&options(&url, "a", 60_000)).unwrap();
    let seq = pg.find_event("std", "evt-a").unwrap().expect("the event");
    let event = pg.event(seq).unwrap().unwrap();
    assert_eq!(event.state, EventState::Done);
    assert_eq!(pg.attempts(seq).unwrap().len(), 1);
    assert_eq!(
        pg.payload(seq).unwrap().unwrap().as_ref(),
        crate::event_body("evt-a", "webhook.test").as_bytes()
    );
    let all = pg
        .list_deliveries(&DeliveryFilter::default(), None, 10)
        .unwrap()
        .items;
    let verdicts: Vec<Verdict> = all.iter().map(|d| d.verdict).collect();
    assert_eq!(
        verdicts,
        [Verdict::Rejected, Verdict::Duplicate, Verdict::Accepted]
    );
    assert!(pg.original(all[1].id).unwrap().is_some());
    assert_eq!(
        accept(&pg, "evt-a", hookd::clock::now_ms()).await.verdict,
        Verdict::Duplicate,
        "dedup keys came along"
    );
    assert_eq!(
        pg.connection("conn-1").unwrap().unwrap().status.as_deref(),
        Some("authorized")
    );
    assert_eq!(pg.resource("conn-1", "Patient", "p-1").unwrap(), Some(loc));
    assert_eq!(pg.exports("conn-1").unwrap().len(), 1);
    // A second copy into the same database is refused.
    let again = copy(&data);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds hookd"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

/// The config file of one hookd process in cluster mode (instance `name`, more `[postgres]`
/// keys in `postgres`, more tables in `tables`) whose `std` endpoint forwards to `sink`.
fn cluster_config(
    dir: &std::path::Path,
    url: &str,
    name: &str,
    sink: std::net::SocketAddr,
    postgres: &str,
    tables: &str,
) -> String {
    // Instance b reads the connection string from a file, as a packaged install would
    // (postgres.url_file), so both ways of giving it are used by real processes.
    let connect = if name == "b" {
        let file = dir.join("postgres.url");
        std::fs::write(&file, format!("{url}\n")).unwrap();
        format!("url_file = {file:?}")
    } else {
        format!("url = \"{url}\"")
    };
    crate::binary::write_config(
        dir,
        &format!(
            "[store]\nkind = \"postgres\"\n[postgres]\n{connect}\ninstance = \"{name}\"\n\
             {postgres}{tables}[[endpoints]]\nname = \"std\"\nsecrets = [\"{}\"]\n\
             [endpoints.forward]\nurl = \"http://{sink}/in\"\nsecret = \"{}\"\n",
            crate::SECRET,
            crate::OTHER_SECRET
        ),
    )
}

/// A database that cannot be reached is named in what hookd and copy-store print, with
/// the reason, and the password in its connection string never is.
#[test]
fn a_password_in_the_connection_string_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: the connection is refused at once.
    let port = crate::free_port();
    let url =
        format!("postgres://hookd:pw-never-shown-7f3a@127.0.0.1:{port}/hookd?connect_timeout=3");
    let url = url.as_str();
    let config = cluster_config(dir.path(), url, "a", "127.0.0.1:9".parse().unwrap(), "", "");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookd"))
            .args(args)
            .env("HOOKD_LOG", "debug")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, text) = run(&["--config", &config]);
    assert!(!ok, "{text}");
    assert!(text.to_lowercase().contains("refused"), "{text}");
    assert!(!text.contains("pw-never-shown-7f3a"), "{text}");
    // copy-store, from a stopped appliance's data directory, by --to and by --to-file.
    let data = dir.path().join("appliance");
    drop(Store::open(&data.join("db"), 16).unwrap());
    let to_file = dir.path().join("target.url");
    std::fs::write(&to_file, url).unwrap();
    let data = data.to_str().unwrap();
    for target in [["--to", url], ["--to-file", to_file.to_str().unwrap()]] {
        let (ok, text) = run(&["copy-store", "--from", data, target[0], target[1]]);
        assert!(!ok, "{text}");
        assert!(text.contains("cannot use the database"), "{text}");
        assert!(!text.contains("pw-never-shown-7f3a"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hookd_process_killed_mid_attempt_leaves_the_event_to_the_other_after_its_lease() {
    use crate::binary::{signal, spawn, wait_exit, Client};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use warp::Filter;
    let Some(url) = database().await else { return };
    // The forward target hangs the first attempt (A is in it when it dies) and takes the rest.
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let route = warp::post().and_then(move || {
        let n = counted.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                tokio::time::sleep(Duration::from_secs(600)).await;
            }
            Ok::<_, std::convert::Infallible>(warp::reply())
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    let config = |name: &str, dir: &std::path::Path| {
        cluster_config(dir, &url, name, sink, "lease_secs = 5\n", "")
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = spawn(dir_a.path(), &["--config", &config("a", dir_a.path())]);
    let on_a = Client::new(&a.receiver, &a.admin);
    assert_eq!(on_a.send("evt-k").await, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while on_a.state("evt-k").await.as_deref() != Some("processing") {
        assert!(
            std::time::Instant::now() < deadline,
            "A never began the attempt"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut b = spawn(dir_b.path(), &["--config", &config("b", dir_b.path())]);
    let on_b = Client::new(&b.receiver, &b.admin);
    signal(&a.child, "KILL");
    wait_exit(&mut a.child, Duration::from_secs(10));
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while on_b.state("evt-k").await.as_deref() != Some("done") {
        assert!(
            std::time::Instant::now() < deadline,
            "B never finished the event"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "one cut-short attempt, one that worked"
    );
    let pg = Store::open_postgres(&options(&url, "check", 60_000)).unwrap();
    let seq = pg.find_event("std", "evt-k").unwrap().unwrap();
    let attempts = pg.postgres().unwrap().attempts_by_instance(seq).unwrap();
    let seen: Vec<(u32, AttemptOutcome, &str)> = attempts
        .iter()
        .map(|(a, i)| (a.number, a.outcome, i.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (1, AttemptOutcome::Interrupted, "a"),
            (2, AttemptOutcome::Ok, "b")
        ]
    );
    signal(&b.child, "TERM");
    assert!(wait_exit(&mut b.child, Duration::from_secs(20)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_taking_the_same_ids_in_opposite_orders_never_fail() {
    let Some(url) = database().await else { return };
    let a = std::sync::Arc::new(Store::open_postgres(&options(&url, "a", 60_000)).unwrap());
    let b = std::sync::Arc::new(Store::open_postgres(&options(&url, "b", 60_000)).unwrap());
    let now = hookd::clock::now_ms();
    for round in 0..20 {
        let ids: Vec<String> = (0..10).map(|k| format!("r{round}-k{k}")).collect();
        let mut tasks = Vec::new();
        for (store, order) in [(a.clone(), false), (b.clone(), true)] {
            let mut mine = ids.clone();
            if order {
                mine.reverse();
            }
            for id in mine {
                let store = store.clone();
                let event = NewEvent {
                    event_id: id.clone(),
                    event_type: "webhook.test".into(),
                    payload: bytes::Bytes::from(crate::event_body(&id, "webhook.test")),
                };
                let d = draft(&id, now);
                // Each accept either wins its key or is told whose duplicate it is; a batch
                // aborted by a deadlock would surface here as an error.
                tasks.push(tokio::spawn(async move {
                    (id, store.accept(d, event, respond).await)
                }));
            }
        }
        let mut accepted = std::collections::HashMap::<String, usize>::new();
        for t in tasks {
            let (id, result) = t.await.unwrap();
            let r = result.unwrap_or_else(|e| panic!("{id}: {e}"));
            if r.verdict == Verdict::Accepted {
                *accepted.entry(id).or_default() += 1;
            }
        }
        assert_eq!(accepted.len(), 10, "round {round}: {accepted:?}");
        assert!(accepted.values().all(|n| *n == 1), "{accepted:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hookd_processes_take_one_event_id_once_and_show_each_others_deliveries() {
    use crate::binary::{signal, spawn, wait_exit};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use warp::Filter;
    let Some(url) = database().await else { return };
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let route = warp::post().map(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        warp::reply()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    let admin = format!("[admin]\ntoken = \"{}\"\n", crate::ADMIN_TOKEN);
    let config =
        |name: &str, dir: &std::path::Path| cluster_config(dir, &url, name, sink, "", &admin);
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = spawn(dir_a.path(), &["--config", &config("a", dir_a.path())]);
    let mut b = spawn(dir_b.path(), &["--config", &config("b", dir_b.path())]);
    // Ten deliveries of one event id at once, split across the two (a sender's retries
    // behind a load balancer).
    let body = crate::event_body("evt-once", "webhook.test");
    let secret = hookd::secret::Secret::parse(crate::SECRET).unwrap();
    let http = reqwest::Client::new();
    let mut sends = Vec::new();
    for i in 0..10 {
        let receiver = if i % 2 == 0 { &a.receiver } else { &b.receiver };
        let ts = hookd::clock::system_secs();
        let request = http
            .post(format!("http://{receiver}/webhooks/std"))
            .header("webhook-id", "msg-once")
            .header("webhook-timestamp", ts.to_string())
            .header(
                "webhook-signature",
                hookd::verify::sign(&secret, "msg-once", ts, body.as_bytes()),
            )
            .body(body.clone());
        sends.push(tokio::spawn(async move {
            let r = request.send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200);
            let v: serde_json::Value = r.json().await.unwrap();
            v["status"].as_str().unwrap().to_string()
        }));
    }
    let mut verdicts = Vec::new();
    for s in sends {
        verdicts.push(s.await.unwrap());
    }
    assert_eq!(
        verdicts.iter().filter(|v| *v == "accepted").count(),
        1,
        "{verdicts:?}"
    );
    assert_eq!(
        verdicts.iter().filter(|v| *v == "duplicate").count(),
        9,
        "{verdicts:?}"
    );
    // Processed once, by one of them; each instance's API shows all ten deliveries.
    let api = |admin: &str, path: &str| {
        let request = http
            .get(format!("http://{admin}{path}"))
            .bearer_auth(crate::ADMIN_TOKEN);
        async move {
            request
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while api(&b.admin, "/api/events/evt-once").await["state"] != "done" {
        assert!(std::time::Instant::now() < deadline, "never processed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hits.load(Ordering::SeqCst), 1, "processed once");
    for admin in [&a.admin, &b.admin] {
        let list = api(admin, "/api/deliveries?event_id=evt-once&limit=50").await;
        assert_eq!(list["items"].as_array().unwrap().len(), 10, "{list}");
    }
    for p in [&mut a, &mut b] {
        signal(&p.child, "TERM");
        assert!(wait_exit(&mut p.child, Duration::from_secs(20)).success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_says_when_the_database_cannot_be_reached_and_recovers_with_it() {
    let Some(url) = database().await else { return };
    let name = db_name(&url);
    let store = Store::open_postgres(&options(&url, "a", 600)).unwrap();
    assert_eq!(store.health(), Ok(()));
    let admin = raw(&std::env::var("HOOKD_TEST_PG_URL").unwrap()).await;
    // The database goes away (as in a failover or a network split), with nothing sent.
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} ALLOW_CONNECTIONS false;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ))
        .await
        .unwrap();
    let wait = |want_ok: bool| {
        let store = &store;
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            loop {
                let health = store.health();
                if health.is_ok() == want_ok {
                    return health;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "health stayed {health:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let down = wait(false).await.unwrap_err();
    assert!(down.contains("database cannot be reached"), "{down}");
    admin
        .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await
        .unwrap();
    wait(true).await.unwrap();
    assert_eq!(
        accept(&store, "after", hookd::clock::now_ms())
            .await
            .verdict,
        Verdict::Accepted
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_the_database_is_used_and_its_certificate_checked() {
    let Some(url) = database().await else { return };
    let Ok(ca) = std::env::var("HOOKD_TEST_PG_CA") else {
        let line = "skipped: TLS to the database needs HOOKD_TEST_PG_CA (scripts/test sets it)\n";
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        return;
    };
    let tls_url = url.replace("sslmode=disable", "sslmode=require");
    let mut trusted = options(&tls_url, "tls", 60_000);
    trusted.ca_file = Some(ca.clone().into());
    let store = Store::open_postgres(&trusted).unwrap();
    assert_eq!(
        accept(&store, "over-tls", hookd::clock::now_ms())
            .await
            .verdict,
        Verdict::Accepted
    );
    // The server sees hookd's connections encrypted.
    let name = db_name(&url);
    let encrypted: i64 = raw(&std::env::var("HOOKD_TEST_PG_URL").unwrap())
        .await
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.datname = $1 AND a.application_name = 'hookd' AND s.ssl",
            &[&name],
        )
        .await
        .unwrap()
        .get(0);
    assert!(encrypted > 0);
    // Without the CA (only the public web roots) the server's certificate is refused.
    let e = Store::open_postgres(&options(&tls_url, "tls-2", 60_000))
        .err()
        .expect("an unknown issuer is refused")
        .to_string();
    assert!(
        e.to_lowercase().contains("certificate") && e.contains("postgres.ca_file"),
        "{e}"
    );
    // copy-store takes the same CA, for a cluster's database behind a private one.
    let empty = database().await.unwrap();
    let appliance = tempfile::tempdir().unwrap();
    drop(Store::open(&appliance.path().join("db"), 16).unwrap());
    let copy = |ca: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_hookd"));
        command
            .args(["copy-store", "--from"])
            .arg(appliance.path())
            .args(["--to", &empty.replace("sslmode=disable", "sslmode=require")])
            .env("HOOKD_LOG", "warn");
        if let Some(ca) = ca {
            command.args(["--ca-file", ca]);
        }
        command.output().unwrap()
    };
    let refused = copy(None);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains("--ca-file") && !why.contains("postgres.ca_file"),
        "{why}"
    );
    let out = copy(Some(&ca));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 deliveries"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_are_logged_without_waiting_for_the_database() {
    let Some(url) = database().await else { return };
    let store = Store::open_postgres(&options(&url, "a", 600)).unwrap();
    let mut rejected = draft("bad", hookd::clock::now_ms());
    rejected.verdict = Verdict::Rejected;
    rejected.reason = "no v1 signature matches".into();
    let id = store.record(rejected).unwrap();
    store.flush().await.unwrap();
    let d = store
        .delivery(id)
        .unwrap()
        .expect("the rejected delivery is logged");
    assert_eq!(
        (d.verdict, d.reason.as_str()),
        (Verdict::Rejected, "no v1 signature matches")
    );
    // Rejections beyond the logging rate are counted in memory and added up by the
    // heartbeat; a flush (what a stop does) adds what the heartbeat has not yet, so a stop
    // right after a flood loses none of the count.
    for _ in 0..3 {
        store.count_unlogged_rejection().unwrap();
    }
    store.flush().await.unwrap();
    assert_eq!(
        store
            .stats(hookd::clock::now_ms())
            .unwrap()
            .rejected_unlogged,
        3
    );
    drop(store);
    let again = Store::open_postgres(&options(&url, "b", 600)).unwrap();
    assert_eq!(
        again
            .stats(hookd::clock::now_ms())
            .unwrap()
            .rejected_unlogged,
        3
    );
}

/// An answer waits for its COMMIT, and the requests that wait together share one
/// transaction (group commit). A table lock taken by another session holds the writer's
/// transaction open: no request may be answered meanwhile; once it lifts, each answer finds
/// its rows visible to another session (committed), and the requests that queued behind the
/// held transaction went in together, which each row's inserting transaction (xmin) shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_waits_for_its_commit_and_waiting_requests_share_one() {
    let Some(url) = database().await else { return };
    let store = std::sync::Arc::new(Store::open_postgres(&options(&url, "a", 60_000)).unwrap());
    let mut blocker = raw(&url).await;
    let hold = blocker.transaction().await.unwrap();
    hold.batch_execute("LOCK TABLE hookd_deliveries IN SHARE MODE")
        .await
        .unwrap();
    let now = hookd::clock::now_ms();
    let (answered_tx, mut answered) = tokio::sync::mpsc::unbounded_channel();
    let first = {
        let (store, answered_tx) = (store.clone(), answered_tx.clone());
        tokio::spawn(async move {
            accept(&store, "gc-first", now).await;
            answered_tx.send("gc-first".to_string()).unwrap();
        })
    };
    // Once the first request's transaction waits on the lock, twenty more queue behind it.
    let check = raw(&url).await;
    let mut waiting = false;
    for _ in 0..100 {
        let n: i64 = check
            .query_one(
                // This test's database only: other tests run beside it.
                "SELECT count(*) FROM pg_locks WHERE NOT granted
                   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if n > 0 {
            waiting = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        waiting,
        "the first request's transaction never waited on the lock"
    );
    let rest: Vec<_> = (0..20)
        .map(|i| {
            let (store, answered_tx) = (store.clone(), answered_tx.clone());
            tokio::spawn(async move {
                let id = format!("gc-{i}");
                accept(&store, &id, now).await;
                answered_tx.send(id).unwrap();
            })
        })
        .collect();
    drop(answered_tx);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        answered.try_recv().is_err(),
        "a request was answered before its transaction could commit"
    );
    hold.rollback().await.unwrap();
    // Each answer: its delivery and event are there for any other session to read.
    let mut ids = Vec::new();
    while let Some(id) = answered.recv().await {
        let rows: i64 = check
            .query_one(
                "SELECT (SELECT count(*) FROM hookd_deliveries WHERE event_id = $1)
                      + (SELECT count(*) FROM hookd_events WHERE event_id = $1)",
                &[&id],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(rows, 2, "{id} was answered before its rows were committed");
        ids.push(id);
    }
    first.await.unwrap();
    for r in rest {
        r.await.unwrap();
    }
    assert_eq!(ids.len(), 21);
    let transactions: i64 = check
        .query_one(
            "SELECT count(DISTINCT xmin::text) FROM hookd_events WHERE event_id LIKE 'gc-%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // The first alone, then the twenty that waited together (a batch takes up to 256).
    assert_eq!(
        transactions, 2,
        "one transaction per waiting request is no group commit"
    );
}

/// A search in bodies reads a bounded number of deliveries per request (as the embedded
/// store does): a needle below the newest 1 000 is found by following the cursor, and the
/// count says it is a lower bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_in_bodies_is_bounded_and_goes_on_from_its_cursor() {
    let Some(url) = database().await else { return };
    let store = std::sync::Arc::new(Store::open_postgres(&options(&url, "a", 60_000)).unwrap());
    let now = hookd::clock::now_ms();
    accept(&store, "needle-0", now - 10_000).await;
    let hay: Vec<_> = (0..1_050u64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { accept(&store, &format!("hay-{i}"), now - 5_000 + i).await })
        })
        .collect();
    for h in hay {
        h.await.unwrap();
    }
    let filter = DeliveryFilter {
        body_contains: Some("NEEDLE".into()),
        ..DeliveryFilter::default()
    };
    let first = store.list_deliveries(&filter, None, 50).unwrap();
    assert!(first.items.is_empty(), "only the newest 1 000 were read");
    let cursor = first.next_cursor.expect("a cursor to go on from");
    let count = store.count_deliveries(&filter).unwrap();
    assert_eq!((count.n, count.exact), (0, false));
    let mut found = Vec::new();
    let mut cursor = Some(cursor);
    let mut pages = 1;
    while let Some(before) = cursor {
        let page = store.list_deliveries(&filter, Some(before), 50).unwrap();
        found.extend(page.items.iter().map(|d| d.event_id.clone().unwrap()));
        assert!(
            page.next_cursor.is_none_or(|c| c < before),
            "the cursor goes down"
        );
        cursor = page.next_cursor;
        pages += 1;
        assert!(pages < 10, "{pages} pages");
    }
    assert_eq!(found, ["needle-0"]);
    // Every delivery is read once across the pages: a search for all of them finds each.
    let filter = DeliveryFilter {
        body_contains: Some("hay-".into()),
        ..DeliveryFilter::default()
    };
    let (mut seen, mut cursor) = (std::collections::HashSet::new(), None);
    for _ in 0..20 {
        let page = store.list_deliveries(&filter, cursor, 400).unwrap();
        for d in &page.items {
            assert!(seen.insert(d.id), "{} read twice", d.id);
        }
        assert!(page
            .next_cursor
            .is_none_or(|c| cursor.is_none_or(|before| c < before)));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 1_050);
    // Exactly as many left as one step reads: no cursor to an empty step.
    let mut ids: Vec<u64> = store
        .list_deliveries(&DeliveryFilter::default(), None, 2_000)
        .unwrap()
        .items
        .iter()
        .map(|d| d.id)
        .collect();
    ids.sort();
    let nothing = DeliveryFilter {
        body_contains: Some("nothing-matches".into()),
        ..DeliveryFilter::default()
    };
    let page = store
        .list_deliveries(&nothing, Some(ids[1_000]), 50)
        .unwrap();
    assert!(
        page.items.is_empty() && page.next_cursor.is_none(),
        "{page:?}"
    );
    let page = store
        .list_deliveries(&nothing, Some(ids[1_001]), 50)
        .unwrap();
    assert_eq!(page.next_cursor, Some(ids[1]), "one more: a cursor to it");
}

/// A database connection driven by a thread of its own, so that it works whatever the
/// test's runtime is doing.
fn client_on_its_own_thread(url: &str) -> tokio_postgres::Client {
    let (tx, rx) = std::sync::mpsc::channel();
    let url = url.to_owned();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tx.send(client).unwrap();
            let _ = conn.await;
        });
    });
    rx.recv().unwrap()
}

/// The status of a signed delivery sent over a plain socket from a thread of its own, or
/// `None` when no answer came within 5 s.
fn status_of_a_delivery_from_a_thread(receiver: std::net::SocketAddr) -> Option<u16> {
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        let id = "while-admin-waits";
        let body = crate::event_body(id, "webhook.test");
        let ts = crate::now();
        let secret = hookd::secret::Secret::parse(crate::SECRET).unwrap();
        let signature = hookd::verify::sign(&secret, id, ts, body.as_bytes());
        let mut socket = std::net::TcpStream::connect(receiver).ok()?;
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        write!(
            socket,
            "POST /webhooks/std HTTP/1.1\r\nhost: {receiver}\r\ncontent-type: application/json\r\n\
             webhook-id: {id}\r\nwebhook-timestamp: {ts}\r\nwebhook-signature: {signature}\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .ok()?;
        let mut head = [0u8; 12];
        socket.read_exact(&mut head).ok()?;
        std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
    })
    .join()
    .unwrap()
}

/// Admin reads that wait on the database do not hold up the receiver: they run off the
/// threads the receiver's answers need, and never take more than half the pool's database
/// connections. Eight reads of the connections (as many as the default pool has
/// connections) wait behind a table lock, on a runtime of two threads; a delivery is
/// answered meanwhile. The lock and the delivery use threads of their own, so that if the
/// reads did take the runtime's threads the test would fail rather than hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_reads_waiting_on_the_database_do_not_hold_up_the_receiver() {
    let Some(url) = database().await else { return };
    let s = crate::TestServer::start(&format!(
        "[store]\nkind = \"postgres\"\n[postgres]\nurl = \"{url}\"\n{}",
        crate::endpoints()
    ))
    .await;
    let mut blocker = client_on_its_own_thread(&url);
    let hold = blocker.transaction().await.unwrap();
    hold.batch_execute("LOCK TABLE hookd_connections IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let reads: Vec<_> = (0..8)
        .map(|_| {
            let (http, admin) = (s.http.clone(), s.admin);
            tokio::spawn(async move {
                http.get(format!("http://{admin}/api/connections"))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let waiting = reads.iter().all(|r| !r.is_finished());
    let answered = status_of_a_delivery_from_a_thread(s.receiver);
    hold.rollback().await.unwrap();
    assert!(waiting, "the reads waited for the lock");
    assert_eq!(
        answered,
        Some(200),
        "a delivery is answered while admin reads wait"
    );
    for r in reads {
        assert_eq!(r.await.unwrap(), 200);
    }
    s.stop().await;
}
