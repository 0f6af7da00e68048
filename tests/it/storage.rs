//! The store under faults and across versions: a data directory of hookd 0.1.0 (data format
//! 1, written here by a small generator that reproduces its encoding), a format newer than
//! the binary, damaged and full disks, unreadable records, a dead writer, redeliveries under
//! backpressure.

use super::receive::{base_config, Gate};
use super::*;
use hookd::process::Processors;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hookd");
const SEQ_BITS: u32 = 22;

fn hookd(args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(args)
        .env("HOOKD_LOG", "warn")
        .output()
        .unwrap()
}

/// Writes a data directory the way hookd 0.1.0 did (data format 1): one sled tree per kind,
/// JSON records with ids as decimal strings, the body in both the delivery and the payload.
/// Holds a done event with one attempt, a queued one, and a rejected delivery.
fn write_format1_store(db_dir: &Path, now_ms: u64) {
    let db = crate::open_sled(db_dir);
    let tree = |name: &str| db.open_tree(name).unwrap();
    let dedup_key = |endpoint: &str, event_id: &str| {
        let mut k = (endpoint.len() as u16).to_be_bytes().to_vec();
        k.extend_from_slice(endpoint.as_bytes());
        k.extend_from_slice(event_id.as_bytes());
        k
    };
    let mut id = (now_ms - 60_000) << SEQ_BITS;
    for (event_id, state) in [("old-done", "done"), ("old-queued", "queued")] {
        let (delivery_id, seq) = (id + 1, id + 2);
        id += 10;
        let body = event_body(event_id, "webhook.test");
        let delivery = json!({
            "id": delivery_id.to_string(), "received_at_ms": now_ms - 60_000,
            "endpoint": "std", "remote_addr": "127.0.0.1:5000",
            "request_headers": [["webhook-id", format!("msg_{event_id}")]],
            "body": body, "body_bytes": body.len(), "body_truncated": false,
            "verdict": "accepted", "reason": "stored and queued",
            "response": {"status": 200, "headers": [], "body": "{\"status\":\"accepted\"}"},
            "event_id": event_id, "event_type": "webhook.test",
            "event_seq": seq.to_string(),
        });
        let attempts = u32::from(state == "done");
        let event = json!({
            "seq": seq.to_string(), "endpoint": "std", "event_id": event_id,
            "event_type": "webhook.test", "received_at_ms": now_ms - 60_000,
            "delivery_id": delivery_id.to_string(), "state": state, "attempts": attempts,
            "next_attempt_at_ms": if state == "queued" { Some(now_ms - 60_000) } else { None },
            "last_error": null, "replays": 0,
        });
        tree("deliveries")
            .insert(
                delivery_id.to_be_bytes(),
                serde_json::to_vec(&delivery).unwrap(),
            )
            .unwrap();
        tree("latency")
            .insert(delivery_id.to_be_bytes(), &1234u64.to_be_bytes())
            .unwrap();
        tree("events")
            .insert(seq.to_be_bytes(), serde_json::to_vec(&event).unwrap())
            .unwrap();
        tree("payloads")
            .insert(seq.to_be_bytes(), body.as_bytes())
            .unwrap();
        tree("dedup")
            .insert(dedup_key("std", event_id), &seq.to_be_bytes())
            .unwrap();
        if state == "queued" {
            let mut q = (now_ms - 60_000).to_be_bytes().to_vec();
            q.extend_from_slice(&seq.to_be_bytes());
            tree("queue").insert(q, &[]).unwrap();
        } else {
            let mut a = seq.to_be_bytes().to_vec();
            a.extend_from_slice(&1u32.to_be_bytes());
            let attempt = json!({
                "number": 1, "processor": "log", "started_at_ms": now_ms - 59_000,
                "finished_at_ms": now_ms - 59_000, "outcome": "ok", "detail": "logged",
            });
            tree("attempts")
                .insert(a, serde_json::to_vec(&attempt).unwrap())
                .unwrap();
        }
        for kind in ["e", "v", "t", "i"] {
            let value = match kind {
                "e" => "std",
                "v" => "accepted",
                "t" => "webhook.test",
                _ => event_id,
            };
            let mut k = kind.as_bytes().to_vec();
            k.extend_from_slice(&(value.len() as u16).to_be_bytes());
            k.extend_from_slice(value.as_bytes());
            k.extend_from_slice(&delivery_id.to_be_bytes());
            tree("delivery_idx").insert(k, &[]).unwrap();
        }
    }
    let rejected = json!({
        "id": id.to_string(), "received_at_ms": now_ms - 50_000, "endpoint": "std",
        "remote_addr": null, "request_headers": [], "body": "{}", "body_bytes": 2,
        "body_truncated": false, "verdict": "rejected", "reason": "no v1 signature matches",
        "response": {"status": 401, "headers": [], "body": ""},
        "event_id": null, "event_type": null,
    });
    tree("deliveries")
        .insert(id.to_be_bytes(), serde_json::to_vec(&rejected).unwrap())
        .unwrap();
    tree("meta")
        .insert("rejected_unlogged", &7u64.to_be_bytes())
        .unwrap();
    db.flush().unwrap();
}

#[tokio::test]
async fn a_data_directory_of_0_1_0_is_migrated_on_first_start() {
    if crate::postgres::sled_only() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/db");
    write_format1_store(&db, hookd::clock::system_ms());
    let s = TestServer::start_in(dir, &base_config(), None).await;

    let (status, done) = s.api("/api/events/old-done").await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["state"], "done");
    assert_eq!(done["payload"]["id"], "old-done");
    assert_eq!(done["attempts"].as_array().unwrap().len(), 1, "{done}");
    // The queued event is still due and gets processed.
    s.wait_for_state("old-queued", "done").await;
    let (_, all) = s.api("/api/deliveries").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 3, "{all}");
    let (_, rejected) = s.api("/api/deliveries?verdict=rejected").await;
    assert_eq!(rejected["items"].as_array().unwrap().len(), 1, "{rejected}");
    let accepted = &s.api("/api/deliveries?verdict=accepted").await.1["items"];
    assert_eq!(accepted.as_array().unwrap().len(), 2, "{accepted}");
    assert_eq!(accepted[0]["latency_us"], 1234, "{accepted}");
    let stats = s.api("/api/stats").await.1;
    assert_eq!(stats["rejected_unlogged"], 7, "{stats}");
    // The migrated store still knows which ids it has seen.
    let again = s.send_event("std", "old-done", "webhook.test").await;
    assert_eq!(again.verdict(), (200, "duplicate"));
    let dir = s.stop().await;
    // The old store is kept beside the new one, and the new one checks out.
    assert!(dir.path().join("data/db.format1/conf").exists());
    let out = hookd(&["verify-data", dir.path().join("data").to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("consistent"), "{text}");
}

#[tokio::test]
async fn a_store_of_a_newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dir = TestServer::start_in(dir, &base_config(), None)
        .await
        .stop()
        .await;
    {
        let db = crate::open_sled(&dir.path().join("data/db"));
        db.open_tree("meta")
            .unwrap()
            .insert("format", &99u64.to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let config = load_config(dir.path(), &config_text(dir.path(), &base_config()));
    let error = match hookd::server::start(config, None).await {
        Ok(_) => panic!("a store of format 99 was opened"),
        Err(e) => e.to_string(),
    };
    assert!(
        error.contains("format 99") && error.contains("newer hookd"),
        "{error}"
    );
}

/// Starts hookd on `dir` in a child process (`hookd` with the config in `dir`), waits up to
/// `limit` for it to exit, and returns its exit code and standard error; `None` if it was
/// still running (then it is killed).
fn serve_until_exit(dir: &Path, limit: Duration) -> (Option<i32>, String) {
    let config = dir.join("hookd.toml");
    std::fs::write(&config, config_text(dir, &base_config())).unwrap();
    let mut child = std::process::Command::new(BIN)
        .args(["--config", config.to_str().unwrap()])
        .env("HOOKD_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code(), err);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return (None, String::new());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A stopped data directory holding a few events, in a fresh temporary directory.
async fn stopped_data_dir() -> tempfile::TempDir {
    let s = TestServer::start(&base_config()).await;
    for i in 0..5 {
        s.send_event("std", &format!("d-{i}"), "webhook.test").await;
    }
    s.stop().await
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(snapshot(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn a_damaged_store_is_refused_quickly_with_the_way_out() {
    if crate::postgres::sled_only() {
        return;
    }
    let truncated = stopped_data_dir().await;
    let random = stopped_data_dir().await;
    let file = truncated.path().join("data/db/db");
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(100)
        .unwrap();
    let file = random.path().join("data/db/db");
    let noise: Vec<u8> = (0..len).map(|_| rand::random::<u8>()).collect();
    std::fs::write(&file, noise).unwrap();

    for dir in [&truncated, &random] {
        let data = dir.path().join("data");
        let before = snapshot(&data.join("db"));
        // verify-data finishes, says what it found, exits non-zero and changes nothing.
        let started = Instant::now();
        let out = hookd(&["verify-data", data.to_str().unwrap()]);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(started.elapsed() < Duration::from_secs(40), "{said}");
        assert!(matches!(out.status.code(), Some(1 | 2)), "{said}");
        assert!(
            said.contains("damaged") || said.contains("problem"),
            "{said}"
        );
        assert_eq!(
            snapshot(&data.join("db")),
            before,
            "verify-data changed the store"
        );
        // hookd refuses the store within seconds, without a panic's exit code.
        let (code, err) = serve_until_exit(dir.path(), Duration::from_secs(40));
        assert!(code.is_some(), "hookd hung on a damaged store");
        assert_ne!(code, Some(101), "{err}");
        assert_ne!(code, Some(0), "{err}");
        assert!(err.contains("damaged") && err.contains("backup"), "{err}");
    }
}

#[tokio::test]
async fn an_unfinished_snapshot_does_not_block_the_next_start() {
    if crate::postgres::sled_only() {
        return;
    }
    let dir = stopped_data_dir().await;
    let db = dir.path().join("data/db");
    // What a start-up that ran out of space leaves behind.
    std::fs::write(db.join("snap.0000000000001234.generating"), b"half").unwrap();
    let s = TestServer::start_in(dir, &base_config(), None).await;
    let (status, _) = s.api("/api/events/d-3").await;
    assert_eq!(status, 200);
    assert!(!db.join("snap.0000000000001234.generating").exists());
    s.stop().await;
}

#[tokio::test]
async fn an_unreadable_event_goes_to_dead_and_the_queue_goes_on() {
    if crate::postgres::sled_only() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/db");
    std::fs::create_dir_all(&db).unwrap();
    let poisoned = {
        let store = hookd::store::Store::open(&db, 16).unwrap();
        let now = hookd::clock::system_ms();
        deliver(&store, "before", now).await;
        let poisoned = deliver(&store, "poison", now + 1).await.seq;
        deliver(&store, "after", now + 2).await;
        poisoned
    };
    {
        let raw = crate::open_sled(&db);
        // The event is in its accepted delivery's record: layout byte 2 ("a delivery that
        // carries its event"), then bytes that are not one.
        let mut key = vec![b'd'];
        key.extend_from_slice(&poisoned.to_be_bytes());
        raw.open_tree("log")
            .unwrap()
            .insert(key, &b"\x02not a record"[..])
            .unwrap()
            .expect("the event record");
        raw.flush().unwrap();
    }
    let s = TestServer::start_in(dir, &base_config(), None).await;
    s.wait_for_state("before", "done").await;
    s.wait_for_state("after", "done").await;
    let stats = s.stats_with("dead", 1).await;
    assert_eq!(stats["events"]["dead"], 1, "{stats}");
    let (status, dead) = s.api("/api/events?state=dead").await;
    assert_eq!(status, 200, "{dead}");
    assert!(
        dead.to_string().contains("unreadable"),
        "the reason is kept: {dead}"
    );
    assert_eq!(
        s.send_event("std", "later", "webhook.test").await.verdict(),
        (200, "accepted")
    );
    s.wait_for_state("later", "done").await;
    s.stop().await;
}

#[tokio::test]
async fn a_redelivery_is_a_duplicate_whatever_the_backlog() {
    let mut processors = Processors::default();
    // A gate never opened: attempts never finish, so the backlog stays full.
    processors.set("std", Arc::new(Gate(tokio::sync::Semaphore::new(0))));
    let extra = format!("[receive]\nqueue_high_water = 1\n{}", base_config());
    let s = TestServer::start_with(&extra, Some(processors)).await;
    assert_eq!(
        s.send_event("std", "b1", "a").await.verdict(),
        (200, "accepted")
    );
    assert_eq!(s.send_event("std", "b2", "a").await.verdict().0, 503);
    assert_eq!(
        s.send_event("std", "b1", "a").await.verdict(),
        (200, "duplicate")
    );
    if let Some(r) = s.running.as_ref() {
        r.shutdown();
    }
}

#[tokio::test]
async fn a_dead_writer_makes_healthz_fail() {
    let s = TestServer::start(&base_config()).await;
    let health = || async {
        let r = s
            .http
            .get(format!("http://{}/healthz", s.admin))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(health().await.0, 200);
    s.running.as_ref().unwrap().store.crash_writer();
    let mut answer = health().await;
    for _ in 0..100 {
        if answer.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        answer = health().await;
    }
    assert_eq!(answer.0, 503, "{answer:?}");
    assert!(answer.1.contains("writer"), "{answer:?}");
    assert_eq!(s.send_event("std", "w1", "a").await.status, 503);
}

/// A tmpfs of `size` mounted on `path` while it lives; `None` (with the reason printed) where
/// mounting is not possible (not root).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(path.to_path_buf())),
            Ok(o) => {
                eprintln!(
                    "skipped: cannot mount a tmpfs (needs root): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount: {e}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the filesystem holding `dir` with a file, leaving about `leave` bytes.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 4096];
    loop {
        if f.write_all(&chunk).is_err() {
            break;
        }
    }
    let _ = f.flush();
    let len = std::fs::metadata(&path).unwrap().len();
    f.set_len(len.saturating_sub(leave)).unwrap();
    path
}

#[tokio::test]
async fn a_full_disk_answers_503_and_recovers_without_a_restart() {
    if crate::postgres::sled_only() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(_mount) = Tmpfs::mount(&dir.path().join("data"), "64m") else {
        return;
    };
    let s = TestServer::start_in(dir, &base_config(), None).await;
    assert_eq!(s.send_event("std", "f-0", "a").await.status, 200);
    let filler = fill(&s.dir.path().join("data"), 0);
    let mut refused = None;
    for i in 1..2000 {
        let a = s.send_event("std", &format!("f-{i}"), "a").await;
        if a.status == 503 {
            refused = Some(a);
            break;
        }
    }
    let refused = refused.expect("a full disk was never noticed");
    assert!(refused.headers.contains_key("retry-after"));
    let health = s
        .http
        .get(format!("http://{}/healthz", s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 503);
    std::fs::remove_file(filler).unwrap();
    // Once a write succeeds again, hookd accepts again: no restart.
    let mut status = 0;
    for i in 0..100 {
        status = s.send_event("std", &format!("g-{i}"), "a").await.status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200);
    s.wait_for_state("f-0", "done").await;
    let health = s
        .http
        .get(format!("http://{}/healthz", s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    s.stop().await;
}

#[tokio::test]
async fn a_start_on_a_full_disk_leaves_nothing_that_blocks_the_next_start() {
    let dir = stopped_data_dir().await;
    let data = dir.path().join("data");
    let backup = dir.path().join("keep");
    std::fs::rename(&data, &backup).unwrap();
    let Some(_mount) = Tmpfs::mount(&data, "64m") else {
        return;
    };
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg(backup.join("."))
        .arg(&data)
        .status()
        .unwrap();
    assert!(out.success());
    let filler = fill(&data, 0);
    let (code, err) = serve_until_exit(dir.path(), Duration::from_secs(30));
    if code.is_none() {
        // sled started without writing anything: nothing to check here.
        eprintln!("hookd started on the full disk");
    } else {
        assert_ne!(code, Some(101), "{err}");
    }
    std::fs::remove_file(filler).unwrap();
    let s = TestServer::start_in(dir, &base_config(), None).await;
    let (status, _) = s.api("/api/events/d-3").await;
    assert_eq!(status, 200);
    s.stop().await;
}
