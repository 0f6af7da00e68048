//! Hostile senders and awkward stops, against the built binary: slow and stalled bodies, idle
//! and header-flooding connections, a stop signal at start-up or with a stalled sender.

use super::binary::{hookd, signal, start, Proc};
use super::*;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A hookd child that is killed if a test fails before stopping it.
struct Hookd(Proc);

impl Drop for Hookd {
    fn drop(&mut self) {
        let _ = self.0.child.kill();
        let _ = self.0.child.wait();
    }
}

impl Hookd {
    /// Starts the binary on `extra` config (endpoints added) in `dir`, optionally through
    /// `sh -c` with `shell_prefix` run first (e.g. `ulimit -n 1024`).
    fn start(dir: &Path, extra: &str, shell_prefix: Option<&str>) -> Hookd {
        let path = dir.join("hookd.toml");
        std::fs::write(
            &path,
            config_text(dir, &format!("{extra}\n{}", endpoints())),
        )
        .unwrap();
        let bin = hookd().get_program().to_owned();
        let mut command = match shell_prefix {
            Some(prefix) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("{prefix} && exec \"$0\" \"$@\""))
                    .arg(bin);
                c
            }
            None => Command::new(bin),
        };
        command
            .args(["--config", path.to_str().unwrap(), "serve"])
            .env("HOOKD_LOG", "warn");
        Hookd(start(command))
    }

    fn pid(&self) -> u32 {
        self.0.child.id()
    }

    /// Resident memory of the child, in MiB.
    fn rss_mib(&self) -> f64 {
        rss_mib(self.pid())
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    fn stop(&mut self, within: Duration) -> ExitStatus {
        signal(&self.0.child, "TERM");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.0.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "hookd was still running {within:?} after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024.0
}

/// A signed delivery to `std`; its status, or 0 when the connection failed.
async fn deliver(receiver: &str, id: &str) -> u16 {
    let body = event_body(id, "webhook.test");
    let secret = Secret::parse(SECRET).unwrap();
    let ts = now();
    let sent = reqwest::Client::new()
        .post(format!("http://{receiver}/webhooks/std"))
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header(
            "webhook-signature",
            hookd::verify::sign(&secret, id, ts, body.as_bytes()),
        )
        .body(body)
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    sent.map(|r| r.status().as_u16()).unwrap_or(0)
}

async fn healthz(admin: &str) -> u16 {
    let sent = reqwest::Client::new()
        .get(format!("http://{admin}/healthz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    sent.map(|r| r.status().as_u16()).unwrap_or(0)
}

/// Opens `n` connections that write `first` and then hold still. Connections the server
/// refuses are simply missing from the result.
async fn hold(addr: &str, n: usize, first: Vec<u8>) -> Vec<TcpStream> {
    raise_own_fd_limit();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (addr, first) = (addr.to_string(), first.clone());
        tasks.spawn(async move {
            let connect = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr));
            let mut stream = connect.await.ok()?.ok()?;
            if !first.is_empty() {
                stream.write_all(&first).await.ok()?;
            }
            Some(stream)
        });
    }
    let mut held = Vec::new();
    while let Some(done) = tasks.join_next().await {
        held.extend(done.unwrap());
    }
    held
}

/// Taken by the tests that hold hundreds of sockets, so that their descriptors do not add
/// up in this one test process.
static MANY_SOCKETS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Lifts this test process's soft descriptor limit to its hard limit, once: the senders
/// here hold hundreds of sockets, and a runner started with the common soft limit of 1024
/// would otherwise run out before hookd does.
fn raise_own_fd_limit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
                limit.rlim_cur = limit.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            }
        }
    });
}

/// A request head declaring a `declared`-byte body, followed by `sent` bytes of it.
fn slow_body(declared: usize, sent: usize) -> Vec<u8> {
    let mut bytes = format!(
        "POST /webhooks/std HTTP/1.1\r\nhost: hookd\r\ncontent-type: application/json\r\n\
         content-length: {declared}\r\n\r\n"
    )
    .into_bytes();
    bytes.resize(bytes.len() + sent, b'x');
    bytes
}

/// A request head that never ends: `headers` filler headers of ~1 KB each.
fn header_flood(headers: usize) -> Vec<u8> {
    let mut bytes = b"POST /webhooks/std HTTP/1.1\r\nhost: hookd\r\n".to_vec();
    for i in 0..headers {
        bytes.extend_from_slice(format!("x-filler-{i}: {}\r\n", "a".repeat(1000)).as_bytes());
    }
    bytes
}

#[tokio::test]
async fn sigterm_right_as_the_listeners_start_still_drains_and_exits_zero() {
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let port = crate::free_port();
        let path = dir.path().join("hookd.toml");
        let config = format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:0\"\n{}",
            dir.path().join("data"),
            endpoints()
        );
        std::fs::write(&path, config).unwrap();
        let mut child = hookd()
            .args(["--config", path.to_str().unwrap(), "serve"])
            .env("HOOKD_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // The moment the receiver accepts a connection, stop it.
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "hookd never listened");
            std::thread::sleep(Duration::from_millis(1));
        }
        signal(&child, "TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("hookd did not stop");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(status.code(), Some(0), "stopped by the signal, not drained");
    }
}

#[tokio::test]
async fn senders_stalled_mid_body_and_mid_headers_do_not_hold_up_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // Only the shutdown grace (1 s) can end these requests.
    let extra =
        "[processing]\nshutdown_grace_secs = 1\n[receive]\nheader_read_timeout_secs = 120\n\
                 body_timeout_secs = 120\nbody_min_bytes_per_sec = 0\n";
    let mut hookd = Hookd::start(dir.path(), extra, None);
    let receiver = hookd.0.receiver.clone();
    let mid_body = hold(&receiver, 3, slow_body(2000, 10)).await;
    let mid_headers = hold(
        &receiver,
        3,
        b"POST /webhooks/std HTTP/1.1\r\nhost: h".to_vec(),
    )
    .await;
    assert_eq!((mid_body.len(), mid_headers.len()), (3, 3));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let status = hookd.stop(Duration::from_secs(8));
    assert_eq!(status.code(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_large_slow_bodies_keep_memory_bounded() {
    let _one_at_a_time = MANY_SOCKETS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let hookd = Hookd::start(dir.path(), "", None);
    let receiver = hookd.0.receiver.clone();
    assert_eq!(deliver(&receiver, "warm-up").await, 200);
    let before = hookd.rss_mib();
    // 400 bodies declaring 1 MiB, each sent but for its last KiB.
    let held = hold(&receiver, 400, slow_body(1 << 20, (1 << 20) - 1024)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grown = hookd.rss_mib() - before;
    drop(held);
    assert!(grown < 100.0, "RSS grew by {grown:.0} MiB");
    assert_eq!(deliver(&receiver, "after").await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_idle_sockets_than_the_fd_limit_leave_healthz_and_receiving_up() {
    let _one_at_a_time = MANY_SOCKETS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // hookd's limit is kept well under the usual soft limit of 1024 so that this test's own
    // sockets fit even where its limit cannot be raised.
    let hookd = Hookd::start(dir.path(), "", Some("ulimit -n 512"));
    let (receiver, admin) = (hookd.0.receiver.clone(), hookd.0.admin.clone());
    let idle = hold(&receiver, 700, Vec::new()).await;
    assert!(idle.len() > 600, "only {} connected", idle.len());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    assert_eq!(healthz(&admin).await, 200);
    assert_eq!(deliver(&receiver, "past-the-idle").await, 200);
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_delivery_gets_through_hostile_senders_within_two_seconds() {
    let _one_at_a_time = MANY_SOCKETS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // A small box's descriptor limit: the mix alone would take nearly all of it.
    let hookd = Hookd::start(dir.path(), "", Some("ulimit -n 1024"));
    let (receiver, admin) = (hookd.0.receiver.clone(), hookd.0.admin.clone());
    assert_eq!(deliver(&receiver, "warm-up").await, 200);
    let (rss_before, disk_before) = (hookd.rss_mib(), hookd::store::backup::dir_size(dir.path()));
    let idle = hold(&receiver, 600, Vec::new()).await;
    // Large bodies sent but for their last KiB, and small ones that stall at once.
    let mut slow = hold(&receiver, 200, slow_body(1 << 20, (1 << 20) - 1024)).await;
    slow.extend(hold(&receiver, 100, slow_body(1 << 20, 1024)).await);
    let floods = hold(&receiver, 50, header_flood(100)).await;
    let chunked = b"POST /webhooks/std HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n\
                    400\r\n"
        .to_vec();
    let unterminated = hold(&receiver, 50, chunked).await;
    let started = Instant::now();
    assert_eq!(deliver(&receiver, "through-the-mix").await, 200);
    assert_eq!(healthz(&admin).await, 200);
    let took = started.elapsed();
    let rss_grown = hookd.rss_mib() - rss_before;
    let disk_grown =
        hookd::store::backup::dir_size(dir.path()).saturating_sub(disk_before) as f64 / 1048576.0;
    drop((idle, slow, floods, unterminated));
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(rss_grown < 150.0, "RSS grew by {rss_grown:.0} MiB");
    assert!(
        disk_grown < 64.0,
        "data directory grew by {disk_grown:.0} MiB"
    );
}

/// Reads until the server closes the connection; how long that took, or `None` if it stayed
/// open for `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        while !matches!(stream.read(&mut buf).await, Ok(0) | Err(_)) {}
    })
    .await
    .ok()
    .map(|()| started.elapsed())
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_header_read_timeout() {
    let extra = format!("[receive]\nheader_read_timeout_secs = 1\n{}", endpoints());
    let s = TestServer::start(&extra).await;
    let receiver = s.receiver.to_string();
    let mut idle = TcpStream::connect(&receiver).await.unwrap();
    let mut dribbling = TcpStream::connect(&receiver).await.unwrap();
    dribbling
        .write_all(b"POST /webhooks/std HTTP/1.1\r\n")
        .await
        .unwrap();
    for stream in [&mut idle, &mut dribbling] {
        let took = closed_within(stream, Duration::from_secs(5)).await;
        assert!(took.is_some_and(|t| t < Duration::from_secs(3)), "{took:?}");
    }
}

#[tokio::test]
async fn a_request_head_over_64_kib_gets_431() {
    let s = TestServer::start(&endpoints()).await;
    let post = |pad: usize| {
        s.http
            .post(s.url("std"))
            .header("x-pad", "p".repeat(pad))
            .body("{}")
            .send()
    };
    // Within the limit the request is read, and refused for its missing signature.
    assert_eq!(post(60 * 1024).await.unwrap().status().as_u16(), 401);
    assert_eq!(post(66 * 1024).await.unwrap().status().as_u16(), 431);
    assert_eq!(deliver(&s.receiver.to_string(), "after-431").await, 200);
}

#[tokio::test]
async fn at_the_connection_cap_the_longest_idle_connection_makes_room() {
    let extra = format!("[receive]\nmax_connections = 2\n{}", endpoints());
    let s = TestServer::start(&extra).await;
    let receiver = s.receiver.to_string();
    let mut oldest = TcpStream::connect(&receiver).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut newer = TcpStream::connect(&receiver).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(deliver(&receiver, "at-the-cap").await, 200);
    assert!(closed_within(&mut oldest, Duration::from_secs(1))
        .await
        .is_some());
    assert!(closed_within(&mut newer, Duration::from_millis(200))
        .await
        .is_none());
}

#[tokio::test]
async fn a_body_that_does_not_fit_the_budget_gets_503_before_it_is_read() {
    let extra = format!(
        "[receive]\nbody_budget_bytes = 4096\n[[endpoints]]\nname = \"std\"\n\
         secrets = [\"{SECRET}\"]\nmax_body_bytes = 4096\n"
    );
    let s = TestServer::start(&extra).await;
    let receiver = s.receiver.to_string();
    // 4090 of a declared 4096 bytes arrive and are held, charged to the budget.
    let held = hold(&receiver, 1, slow_body(4096, 4090)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let answer = s
        .http
        .post(format!("http://{receiver}/webhooks/std"))
        .header("content-type", "application/json")
        .body(event_body("over-budget", "webhook.test"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 503);
    assert!(answer.headers().contains_key("retry-after"));
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(deliver(&receiver, "within-budget").await, 200);
}

/// The admin token and the usual endpoints, for tests that read the delivery log.
fn with_admin(extra: &str) -> String {
    format!("{extra}[admin]\ntoken = \"{ADMIN_TOKEN}\"\n{}", endpoints())
}

#[tokio::test]
async fn a_flood_of_large_rejected_requests_costs_the_store_a_few_megabytes() {
    let s = TestServer::start(&with_admin("")).await;
    let data = s.dir.path().join("data");
    let before = hookd::store::backup::dir_size(&data);
    // 1 MiB bodies whose unverified id is 64 KiB, behind 55 KB of headers, never signed.
    let id = "i".repeat(65_536);
    let mut body = serde_json::json!({"id": id, "type": "t".repeat(65_536), "pad": ""}).to_string();
    body.insert_str(body.len() - 2, &"p".repeat((1 << 20) - body.len()));
    assert_eq!(body.len(), 1 << 20);
    let mut headers = reqwest::header::HeaderMap::new();
    for i in 0..55 {
        headers.insert(
            reqwest::header::HeaderName::from_bytes(format!("x-filler-{i}").as_bytes()).unwrap(),
            "a".repeat(1000).parse().unwrap(),
        );
    }
    let long_name = "n".repeat(2000);
    let mut statuses = std::collections::BTreeMap::new();
    for batch in 0..25 {
        let mut sends = tokio::task::JoinSet::new();
        for i in 0..8 {
            // Every eighth request goes to an unknown endpoint with a 2 KB name (its body is
            // never read, so it is kept small for the client's sake).
            let (endpoint, body) = match i {
                0 => (long_name.as_str(), "{}".to_string()),
                _ => ("std", body.clone()),
            };
            let request = s
                .http
                .post(s.url(endpoint))
                .headers(headers.clone())
                .header("content-type", "application/json")
                .header("x-request-id", format!("flood-{batch}-{i}"))
                .body(body);
            sends.spawn(async move { request.send().await.unwrap().status().as_u16() });
        }
        while let Some(status) = sends.join_next().await {
            *statuses.entry(status.unwrap()).or_insert(0) += 1;
        }
    }
    assert_eq!(statuses, [(401, 175), (404, 25)].into_iter().collect());
    let grown = hookd::store::backup::dir_size(&data).saturating_sub(before) as f64 / 1048576.0;
    assert!(grown < 8.0, "data directory grew by {grown:.1} MiB");

    let (status, page) = s.api("/api/deliveries").await;
    assert_eq!(status, 200);
    let page_bytes = page.to_string().len();
    assert!(page_bytes < 64 * 1024, "first page is {page_bytes} bytes");
    let items = page["items"].as_array().unwrap();
    assert!(!items.is_empty());
    let mut ids = 0;
    for item in items {
        assert_eq!(item["event_unverified"], true, "{item}");
        assert!(item["endpoint"].as_str().unwrap().len() <= 131, "{item}");
        if let Some(id) = item["event_id"].as_str() {
            ids += 1;
            assert!(id.len() <= 131 && id.starts_with("iii"), "{id}");
            assert!(item["event_type"].as_str().unwrap().len() <= 131);
        }
    }
    assert!(ids > 0, "no rejected delivery kept the body's id");
    let first = items.iter().find(|i| i["endpoint"] == "std").unwrap();
    let full = s
        .api_ok(&format!(
            "/api/deliveries/{}",
            first["id"].as_str().unwrap()
        ))
        .await;
    let kept = full["request_headers"].as_array().unwrap();
    let kept_bytes: usize = kept
        .iter()
        .map(|h| h[0].as_str().unwrap().len() + h[1].as_str().unwrap().len())
        .sum();
    assert!(kept_bytes < 17_000, "{kept_bytes} header bytes kept");
    let note = kept.last().unwrap();
    assert!(
        note[1].as_str().unwrap().contains("headers ("),
        "no truncation note: {note}"
    );
    s.stop().await;
}

#[tokio::test]
async fn an_api_key_header_is_neither_stored_nor_shown() {
    let s = TestServer::start(&with_admin("")).await;
    const KEY: &str = "sk_live_never_store_this_0123456789";
    let body = event_body("keyed", "webhook.test");
    let secret = Secret::parse(SECRET).unwrap();
    let ts = now();
    for (signed, expected) in [(true, 200), (false, 401)] {
        let mut request = s
            .http
            .post(s.url("std"))
            .header("X-Api-Key", KEY)
            .header("webhook-id", "msg_keyed")
            .header("webhook-timestamp", ts.to_string())
            .body(body.clone());
        if signed {
            let sig = hookd::verify::sign(&secret, "msg_keyed", ts, body.as_bytes());
            request = request.header("webhook-signature", sig);
        }
        assert_eq!(request.send().await.unwrap().status().as_u16(), expected);
    }
    let page = eventually(WAIT, "both deliveries logged", || async {
        let page = s.api_ok("/api/deliveries").await;
        (page["items"].as_array().unwrap().len() == 2).then_some(page)
    })
    .await;
    let items = page["items"].as_array().unwrap();
    for item in items {
        let full = s
            .api_ok(&format!("/api/deliveries/{}", item["id"].as_str().unwrap()))
            .await;
        let text = full.to_string();
        assert!(!text.contains(KEY), "{text}");
        let headers = full["request_headers"].as_array().unwrap();
        assert!(headers
            .iter()
            .any(|h| h[0] == "x-api-key" && h[1] == "<redacted>"));
    }
    let accepted = items.iter().find(|i| i["verdict"] == "accepted").unwrap();
    assert_eq!(accepted["event_unverified"], false);
    let dir = s.stop().await;
    assert!(
        !contains_bytes(dir.path(), KEY.as_bytes()),
        "the key is on disk"
    );
}

/// Whether any file under `dir` holds `needle`.
fn contains_bytes(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().flatten().any(|e| {
        let path = e.path();
        if path.is_dir() {
            contains_bytes(&path, needle)
        } else {
            std::fs::read(&path)
                .map(|b| b.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
        }
    })
}
