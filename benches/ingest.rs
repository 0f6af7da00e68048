//! Ingest benchmark: signed POSTs from 32 connections for 10 s against hookd (durable acks,
//! group commit) and, in the same run, against a bare warp handler that only reads the body
//! and answers 200. Prints requests/s, p50 and p99 latency of both, and the ratio.
//!
//! Run: `cargo bench --bench ingest` (options: `-- --secs N --conns N`). With
//! `--postgres URL` (a server whose user may create databases) it also runs hookd in cluster
//! mode on a fresh database: one instance, then two with the connections split between
//! them (as behind a load balancer).
//! Each server runs in a process of its own with a 2-thread runtime, as a user runs it: the
//! built `hookd` binary (or another build's, with `--hookd-bin PATH`) and this bench started
//! again with `--serve-bare`. The load generator runs here, so both servers face the same
//! client and share the machine the same way. `--in-process` runs both servers inside this
//! process instead (how the bench measured before; cluster mode always runs that way).

mod common;

use hookd::config::Config;
use hookd::secret::Secret;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use warp::Filter;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

struct Result {
    requests: usize,
    errors: usize,
    secs: f64,
    p50_us: u64,
    p99_us: u64,
}

impl Result {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.secs
    }
}

fn runtime(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("runtime")
}

fn load(addr: SocketAddr, path: &str, conns: usize, secs: u64) -> Result {
    load_spread(&[addr], path, conns, secs)
}

/// Connection `i` sends to `addrs[i % len]`.
fn load_spread(addrs: &[SocketAddr], path: &str, conns: usize, secs: u64) -> Result {
    let rt = runtime(2);
    let urls: Vec<String> = addrs.iter().map(|a| format!("http://{a}{path}")).collect();
    rt.block_on(async move {
        let secret = Secret::parse(SECRET).expect("secret");
        let counter = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut tasks = Vec::new();
        for i in 0..conns {
            let url = urls[i % urls.len()].clone();
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .expect("client");
            let (secret, counter) = (secret.clone(), counter.clone());
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0;
                while Instant::now() < deadline {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let id = format!("bench-{n}");
                    let body = format!(
                        r#"{{"api_mode":"test","date":"2024-06-13T00:08:31Z","id":"{id}","type":"patient.ehi_export_success","data":{{"org_connection_id":"c-{n}","task_id":"t-{n}","download_links":[{{"url":"https://api.connect.fastenhealth.com/v1/bridge/fhir/ehi-export/t/download/f.jsonl","export_type":"jsonl"}}]}}}}"#
                    );
                    let ts = hookd::clock::system_secs();
                    let sig = hookd::verify::sign(&secret, &id, ts, body.as_bytes());
                    let start = Instant::now();
                    let answer = client
                        .post(&url)
                        .header("webhook-id", &id)
                        .header("webhook-timestamp", ts.to_string())
                        .header("webhook-signature", sig)
                        .body(body)
                        .send()
                        .await;
                    let ok = match answer {
                        Ok(r) if r.status().is_success() => true,
                        Ok(r) => {
                            if errors == 0 {
                                eprintln!("first error: HTTP {}", r.status());
                            }
                            false
                        }
                        Err(e) => {
                            if errors == 0 {
                                eprintln!("first error: {e}");
                            }
                            false
                        }
                    };
                    if ok {
                        latencies.push(start.elapsed().as_micros() as u64);
                    } else {
                        errors += 1;
                    }
                }
                (latencies, errors)
            }));
        }
        let started = Instant::now();
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (l, e) = t.await.expect("load task");
            all.extend(l);
            errors += e;
        }
        let secs = started.elapsed().as_secs_f64();
        all.sort_unstable();
        let pct = |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0);
        Result { requests: all.len(), errors, secs, p50_us: pct(0.50), p99_us: pct(0.99) }
    })
}

fn bare_server(rt: &tokio::runtime::Runtime) -> SocketAddr {
    rt.block_on(async {
        let route = warp::post()
            .and(warp::path!("webhooks" / String))
            .and(warp::body::bytes())
            .map(|_: String, _body: bytes::Bytes| warp::reply());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(warp::serve(route).incoming(listener).run());
        addr
    })
}

/// A server under load in a process of its own: the bare handler (this bench run again with
/// `--serve-bare`) or the hookd binary. Dropping it kills the process.
struct Served {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `command` and waits for its `listening receiver=ADDR` line (hookd's start-up line,
/// which `--serve-bare` prints too). The rest of its output is drained.
fn serve(mut command: std::process::Command) -> Served {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe. The server dies with the bench (with the thread
    // that started it, the main thread), so an interrupted run leaves no server behind.
    let bench = std::process::id() as libc::pid_t;
    unsafe {
        command.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            // The bench may have died before the prctl: then there is no one to serve.
            if libc::getppid() != bench {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the server");
    if let Some(addr) = common::receiver_addr(&mut child) {
        let addr = addr.parse().expect("listening address");
        return Served { child, addr };
    }
    let _ = child.kill();
    panic!("the server did not start: {:?}", child.wait());
}

/// `--serve-bare`: the bare handler as its own process, with the 2-thread runtime hookd is
/// given too.
fn serve_bare() {
    let rt = runtime(2);
    let addr = bare_server(&rt);
    println!("listening receiver={addr}");
    rt.block_on(std::future::pending::<()>());
}

/// Asks `served` to stop as systemd would (SIGTERM) and waits; returns how long the stop took.
fn stop(mut served: Served) -> f64 {
    let started = Instant::now();
    // SAFETY: kill(2) on a child this process started and has not reaped.
    unsafe { libc::kill(served.child.id() as libc::pid_t, libc::SIGTERM) };
    let status = served.child.wait().expect("wait for hookd");
    assert!(status.success(), "hookd stopped with {status}");
    started.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--serve-bare") {
        return serve_bare();
    }
    let text_arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let arg = |name: &str, default: u64| {
        text_arg(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .init();
    let secs = arg("--secs", 10);
    let conns = arg("--conns", 32) as usize;
    let in_process = args.iter().any(|a| a == "--in-process");
    let hookd_bin = text_arg("--hookd-bin").unwrap_or_else(|| env!("CARGO_BIN_EXE_hookd").into());

    let bare = if in_process {
        let bare_rt = runtime(2);
        let bare_addr = bare_server(&bare_rt);
        println!("bare warp handler (in this process): {conns} connections, {secs} s ...");
        load(bare_addr, "/webhooks/bench", conns, secs)
    } else {
        let mut command = std::process::Command::new(std::env::current_exe().expect("exe"));
        command.arg("--serve-bare");
        let served = serve(command);
        println!("bare warp handler (own process): {conns} connections, {secs} s ...");
        load(served.addr, "/webhooks/bench", conns, secs)
    };

    // The data directory sits on the project's disk (target/), not a tmpfs: fsync is real.
    let base = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tempfile::tempdir_in(base).expect("tempdir");
    let text = format!(
        "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[[endpoints]]\nname = \"bench\"\nsecrets = [\"{SECRET}\"]\n",
        dir.path().join("data")
    );
    let path = dir.path().join("hookd.toml");
    std::fs::write(&path, text).expect("config");
    let (hookd, stop_secs) = if in_process {
        let config = Config::load(Some(&path), &HashMap::new()).expect("config");
        let hookd_rt = runtime(2);
        let running = hookd_rt
            .block_on(hookd::server::start(config, None))
            .expect("hookd starts");
        println!("hookd (in this process, durable acks): {conns} connections, {secs} s ...");
        let hookd = load(running.receiver_addr, "/webhooks/bench", conns, secs);
        let stopping = Instant::now();
        hookd_rt.block_on(async {
            running.shutdown();
            running.wait().await;
        });
        (hookd, stopping.elapsed().as_secs_f64())
    } else {
        let mut command = std::process::Command::new(&hookd_bin);
        // hookd's settings come from the config alone, not from the caller's environment,
        // and its runtime has the bare handler's 2 threads whatever the machine.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("HOOKD_") {
                command.env_remove(key);
            }
        }
        command
            .args(["--config", path.to_str().expect("path"), "serve"])
            .env("HOOKD_LOG", "warn")
            .env("TOKIO_WORKER_THREADS", "2");
        let served = serve(command);
        println!("hookd ({hookd_bin}, durable acks): {conns} connections, {secs} s ...");
        let hookd = load(served.addr, "/webhooks/bench", conns, secs);
        (hookd, stop(served))
    };
    let pg_url = text_arg("--postgres");
    let mut cluster = Vec::new();
    if let Some(admin_url) = pg_url {
        for instances in [1, 2] {
            let r = postgres_run(&admin_url, instances, conns, secs, base);
            cluster.push((format!("hookd on PostgreSQL, {instances} instance(s)"), r));
        }
    }

    println!();
    println!("| server | requests/s | p50 | p99 | errors |");
    println!("|---|---:|---:|---:|---:|");
    let rows = [
        ("bare warp".to_string(), &bare),
        ("hookd".to_string(), &hookd),
    ]
    .into_iter()
    .chain(cluster.iter().map(|(n, r)| (n.clone(), r)));
    for (name, r) in rows {
        println!(
            "| {name} | {:.0} | {:.2} ms | {:.2} ms | {} |",
            r.rps(),
            r.p50_us as f64 / 1000.0,
            r.p99_us as f64 / 1000.0,
            r.errors
        );
    }
    println!();
    println!(
        "hookd / bare throughput: {:.0}%",
        100.0 * hookd.rps() / bare.rps()
    );
    // Every request carried a fresh event id: each 200 is one accepted delivery.
    let accepted = hookd.requests.max(1);
    let db = dir.path().join("data").join("db");
    let disk = hookd::store::backup::dir_size(&db);
    // A stop completes the indexes: its time shows how far the indexer trailed the load (it
    // keeps about a second behind; much more means it could not keep up with this rate).
    println!("hookd stopped in {stop_secs:.1} s (completing the indexes last)");
    println!(
        "hookd stored {accepted} accepted deliveries; data dir {:.1} MB ({:.0} bytes per delivery)",
        disk as f64 / 1e6,
        disk as f64 / accepted as f64
    );
    // Live bytes: every key and value in the store after the run (deliveries, events, their
    // processing records and indexes). sled's files level off at about twice that under a
    // sliding retention window, so this is what sets the disk bill.
    match hookd::store::check::check(&db) {
        // A store of an older format (`--hookd-bin` of an earlier build) holds no records
        // this build counts.
        Ok(report) if report.record_bytes == 0 && hookd.requests > 0 => {
            println!("live records: none this build can count (an older store format)")
        }
        Ok(report) => {
            println!(
                "live records {:.1} MB: {:.0} bytes per delivery",
                report.record_bytes as f64 / 1e6,
                report.record_bytes as f64 / accepted as f64
            );
        }
        Err(e) => println!("cannot read the store back: {e}"),
    }
}

/// Runs `instances` hookds in cluster mode on a fresh database of the server `admin_url`
/// names, each on its own 2-thread runtime, and loads them together.
fn postgres_run(
    admin_url: &str,
    instances: usize,
    conns: usize,
    secs: u64,
    base: &std::path::Path,
) -> Result {
    let setup = runtime(1);
    let name = format!("hookd_bench_{}", uuid::Uuid::new_v4().simple());
    let url = setup.block_on(async {
        let (client, conn) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
            .await
            .expect("--postgres reachable");
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        let mut config: tokio_postgres::Config = admin_url.parse().expect("--postgres URL");
        config.dbname(&name);
        let host = match &config.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            #[allow(unreachable_patterns)]
            _ => "127.0.0.1".into(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().unwrap_or("postgres").to_string();
        format!("postgres://{user}@{host}:{port}/{name}")
    });
    let mut servers = Vec::new();
    for i in 0..instances {
        let dir = tempfile::tempdir_in(base).expect("tempdir");
        let text = format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
             [store]\nkind = \"postgres\"\n[postgres]\nurl = \"{url}\"\ninstance = \"bench-{i}\"\n\
             [[endpoints]]\nname = \"bench\"\nsecrets = [\"{SECRET}\"]\n",
            dir.path().join("data")
        );
        let path = dir.path().join("hookd.toml");
        std::fs::write(&path, text).expect("config");
        let config = Config::load(Some(&path), &HashMap::new()).expect("config");
        let rt = runtime(2);
        let running = rt
            .block_on(hookd::server::start(config, None))
            .expect("hookd starts on PostgreSQL");
        servers.push((rt, running, dir));
    }
    let addrs: Vec<SocketAddr> = servers.iter().map(|(_, r, _)| r.receiver_addr).collect();
    println!("hookd on PostgreSQL, {instances} instance(s): {conns} connections, {secs} s ...");
    let result = load_spread(&addrs, "/webhooks/bench", conns, secs);
    for (rt, running, _dir) in servers {
        rt.block_on(async {
            running.shutdown();
            running.wait().await;
        });
    }
    result
}
