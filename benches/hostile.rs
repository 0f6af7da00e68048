//! Hostile-sender benchmark: the built binary under a 1024 descriptor limit, held for a while
//! by idle connections, large and small stalled bodies, header floods and unterminated chunked
//! bodies, while a real sender delivers one signed event a second. Prints hookd's resident
//! memory, open descriptors and data-directory size before and during the mix, and how long
//! the real deliveries took.
//!
//! Run: `cargo bench --bench hostile` (options: `-- --secs N`).

mod common;

use hookd::secret::Secret;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

struct Hookd {
    child: Child,
    receiver: String,
}

impl Drop for Hookd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path) -> Hookd {
    let config = dir.join("hookd.toml");
    let text = format!(
        "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
         [[endpoints]]\nname = \"std\"\nsecrets = [\"{SECRET}\"]\n",
        dir.join("data")
    );
    std::fs::write(&config, text).expect("config");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 1024 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_hookd"))
        .args(["--config", config.to_str().expect("path"), "serve"])
        .env("HOOKD_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()
        .expect("hookd");
    if let Some(receiver) = common::receiver_addr(&mut child) {
        return Hookd { child, receiver };
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("hookd did not start");
}

/// Resident memory (MiB) and open descriptors of `pid`.
fn usage(pid: u32) -> (f64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (rss_kib / 1024.0, fds)
}

fn dir_mib(dir: &Path) -> f64 {
    hookd::store::backup::dir_size(dir) as f64 / 1048576.0
}

async fn hold(addr: &str, n: usize, first: Vec<u8>) -> Vec<TcpStream> {
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
    while let Some(Ok(stream)) = tasks.join_next().await {
        held.extend(stream);
    }
    held
}

fn slow_body(declared: usize, sent: usize) -> Vec<u8> {
    let mut bytes =
        format!("POST /webhooks/std HTTP/1.1\r\nhost: hookd\r\ncontent-length: {declared}\r\n\r\n")
            .into_bytes();
    bytes.resize(bytes.len() + sent, b'x');
    bytes
}

fn header_flood() -> Vec<u8> {
    let mut bytes = b"POST /webhooks/std HTTP/1.1\r\nhost: hookd\r\n".to_vec();
    for i in 0..100 {
        bytes.extend_from_slice(format!("x-filler-{i}: {}\r\n", "a".repeat(1000)).as_bytes());
    }
    bytes
}

/// One signed delivery: status and how long it took.
async fn deliver(http: &reqwest::Client, receiver: &str, n: usize) -> (u16, Duration) {
    let id = format!("bench-{n}");
    let body = format!(r#"{{"id":"{id}","type":"webhook.test","data":{{}}}}"#);
    let secret = Secret::parse(SECRET).expect("secret");
    let ts = hookd::clock::system_secs();
    let started = Instant::now();
    let sent = http
        .post(format!("http://{receiver}/webhooks/std"))
        .header("webhook-id", &id)
        .header("webhook-timestamp", ts.to_string())
        .header(
            "webhook-signature",
            hookd::verify::sign(&secret, &id, ts, body.as_bytes()),
        )
        .body(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    (
        sent.map(|r| r.status().as_u16()).unwrap_or(0),
        started.elapsed(),
    )
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs: u64 = args
        .iter()
        .position(|a| a == "--secs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir().expect("tempdir");
    let hookd = start(dir.path());
    let pid = hookd.child.id();
    let http = reqwest::Client::new();
    let (status, _) = deliver(&http, &hookd.receiver, 0).await;
    assert_eq!(status, 200, "warm-up delivery");
    let (rss0, fds0) = usage(pid);
    let disk0 = dir_mib(dir.path());

    let r = hookd.receiver.clone();
    let chunked = b"POST /webhooks/std HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n\
                    400\r\n"
        .to_vec();
    let mut held = hold(&r, 600, Vec::new()).await;
    held.extend(hold(&r, 200, slow_body(1 << 20, (1 << 20) - 1024)).await);
    held.extend(hold(&r, 100, slow_body(1 << 20, 1024)).await);
    held.extend(hold(&r, 50, header_flood()).await);
    held.extend(hold(&r, 50, chunked.clone()).await);
    let connected = held.len();

    // Keep the pressure on: every second, fresh floods and stalled bodies, and one real event.
    let (mut peak_rss, mut peak_fds) = (0f64, 0usize);
    let mut latencies = Vec::new();
    let mut failed = 0;
    let end = Instant::now() + Duration::from_secs(secs);
    let mut n = 0;
    while Instant::now() < end {
        n += 1;
        held.extend(hold(&r, 100, slow_body(1 << 20, (1 << 20) - 1024)).await);
        held.extend(hold(&r, 50, header_flood()).await);
        held.extend(hold(&r, 100, Vec::new()).await);
        let (status, took) = deliver(&http, &r, n).await;
        if status == 200 {
            latencies.push(took);
        } else {
            failed += 1;
        }
        for _ in 0..10 {
            let (rss, fds) = usage(pid);
            peak_rss = peak_rss.max(rss);
            peak_fds = peak_fds.max(fds);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let disk1 = dir_mib(dir.path());
    let (rss1, fds1) = usage(pid);
    latencies.sort();
    let max = latencies.last().copied().unwrap_or_default();
    let median = latencies
        .get(latencies.len() / 2)
        .copied()
        .unwrap_or_default();

    println!("hostile mix for {secs} s (hookd under `ulimit -n 1024`, default limits)");
    println!(
        "  opened at once: 600 idle, 200 large stalled bodies, 100 small stalled bodies, \
         50 header floods, 50 unterminated chunked ({connected} connected)"
    );
    println!("  then every second: 100 large stalled bodies, 50 header floods, 100 idle");
    println!("| figure | before | during (peak) | at the end |");
    println!("|---|---:|---:|---:|");
    println!("| RSS (MiB) | {rss0:.1} | {peak_rss:.1} | {rss1:.1} |");
    println!("| open descriptors | {fds0} | {peak_fds} | {fds1} |");
    println!("| data directory (MiB) | {disk0:.1} | | {disk1:.1} |");
    println!(
        "real deliveries: {} got 200 (median {:.0} ms, max {:.0} ms), {failed} failed",
        latencies.len(),
        median.as_secs_f64() * 1000.0,
        max.as_secs_f64() * 1000.0
    );
    drop(held);
}
