//! Prune benchmark: fills a store with old, finished events (each one delivery record and one
//! event: 2 records), then measures the p99 acknowledgement latency of signed POSTs while the
//! store is idle and, in the same run, while the pruner removes all of them; then while an
//! online backup runs. Prints the data directory's size before, after the prune, and after
//! an offline `compact`.
//!
//! Run: `cargo bench --bench prune` (options: `-- --events 500000 --conns 8 --rate 1000
//! --secs 10`): the load is a steady `--rate` requests per second from `--conns` connections.

use hookd::config::Config;
use hookd::prune::Pruner;
use hookd::secret::Secret;
use hookd::store::{
    Attempt, AttemptOutcome, DeliveryDraft, NewEvent, Next, ResponseLog, Store, Verdict,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const DAY: u64 = 24 * 60 * 60 * 1000;

fn runtime(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("runtime")
}

fn body(id: &str, n: u64) -> String {
    format!(
        r#"{{"api_mode":"test","date":"2024-06-13T00:08:31Z","id":"{id}","type":"patient.ehi_export_success","data":{{"org_connection_id":"c-{n}","task_id":"t-{n}","download_links":[{{"url":"https://api.connect.fastenhealth.com/v1/bridge/fhir/ehi-export/t/download/f.jsonl","export_type":"jsonl"}}]}}}}"#
    )
}

struct Figures {
    requests: usize,
    errors: usize,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
}

/// Signed POSTs from `conns` connections at `rate` requests per second in all, until `stop`
/// is set (and at least `min` has passed).
///
/// A steady rate, not as fast as possible: the question is what a prune or a backup does to
/// the acknowledgements of a service under its usual load. A saturating load measures
/// queueing instead (its p99 swings with the machine), and it grew the store by gigabytes
/// during a long backup phase.
fn load(
    addr: SocketAddr,
    conns: usize,
    rate: u64,
    min: Duration,
    stop: Arc<AtomicBool>,
    tag: &str,
) -> Figures {
    let every = Duration::from_secs_f64(conns as f64 / rate.max(1) as f64);
    let rt = runtime(1);
    let url = format!("http://{addr}/webhooks/bench");
    let tag = tag.to_owned();
    rt.block_on(async move {
        let secret = Secret::parse(SECRET).expect("secret");
        let counter = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..conns {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .expect("client");
            let (url, secret, counter, stop, tag) = (
                url.clone(),
                secret.clone(),
                counter.clone(),
                stop.clone(),
                tag.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0;
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                while started.elapsed() < min || !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let id = format!("{tag}-{n}");
                    let body = body(&id, n);
                    let ts = hookd::clock::system_secs();
                    let sig = hookd::verify::sign(&secret, &id, ts, body.as_bytes());
                    let t = Instant::now();
                    let answer = client
                        .post(&url)
                        .header("webhook-id", &id)
                        .header("webhook-timestamp", ts.to_string())
                        .header("webhook-signature", sig)
                        .body(body)
                        .send()
                        .await;
                    match answer {
                        Ok(r) if r.status().is_success() => {
                            latencies.push(t.elapsed().as_micros() as u64)
                        }
                        _ => errors += 1,
                    }
                }
                (latencies, errors)
            }));
        }
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (l, e) = t.await.expect("load task");
            all.extend(l);
            errors += e;
        }
        all.sort_unstable();
        let pct = |p: f64| {
            all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
        Figures {
            requests: all.len(),
            errors,
            p50_us: pct(0.50),
            p99_us: pct(0.99),
            max_us: all.last().copied().unwrap_or(0),
        }
    })
}

fn respond(_: Verdict) -> (String, ResponseLog) {
    (
        "accepted".into(),
        ResponseLog {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: r#"{"status":"accepted"}"#.into(),
        },
    )
}

/// `events` accepted 30 days ago and processed to done: what retention will remove.
fn fill(db: &Path, events: u64) {
    let rt = runtime(2);
    rt.block_on(async {
        let store = Arc::new(Store::open(db, 256).expect("store"));
        let start = hookd::clock::system_ms() - 30 * DAY;
        let chunk = 2000;
        let mut n = 0;
        while n < events {
            let mut tasks = Vec::new();
            for i in n..(n + chunk).min(events) {
                let store = store.clone();
                tasks.push(tokio::spawn(async move {
                    let id = format!("old-{i}");
                    let payload = body(&id, i);
                    let draft = DeliveryDraft {
                        received_at_ms: start + i / 100,
                        endpoint: "bench".into(),
                        remote_addr: Some("127.0.0.1:40000".into()),
                        request_headers: vec![
                            ("content-type".into(), "application/json".into()),
                            ("webhook-id".into(), id.clone()),
                        ],
                        body: payload.clone(),
                        body_bytes: payload.len(),
                        body_truncated: false,
                        verdict: Verdict::Accepted,
                        reason: String::new(),
                        response: respond(Verdict::Accepted).1,
                        event_id: Some(id.clone()),
                        event_type: Some("patient.ehi_export_success".into()),
                    };
                    let event = NewEvent {
                        event_id: id,
                        event_type: "patient.ehi_export_success".into(),
                        payload: payload.into(),
                    };
                    store.accept(draft, event, respond).await.expect("accept");
                }));
            }
            for t in tasks {
                t.await.expect("accept task");
            }
            let due = start + (n + chunk) / 100 + 1;
            loop {
                let claimed = store.claim(due, 1000).await.expect("claim");
                if claimed.is_empty() {
                    break;
                }
                for (e, _) in claimed {
                    let attempt = Attempt {
                        number: 1,
                        processor: "log".into(),
                        started_at_ms: due,
                        finished_at_ms: due,
                        outcome: AttemptOutcome::Ok,
                        detail: "logged".into(),
                    };
                    store.finish(e.seq, attempt, Next::Done).expect("finish");
                }
            }
            n += chunk;
            if n % 100_000 == 0 {
                eprintln!("  {n} events stored");
            }
        }
        store.flush().await.expect("flush");
    });
}

fn mb(bytes: u64) -> String {
    format!("{:.0} MB", bytes as f64 / 1e6)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .init();
    let events = arg("--events", 500_000);
    let conns = arg("--conns", 8) as usize;
    let rate = arg("--rate", 1000);
    let secs = Duration::from_secs(arg("--secs", 10));

    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tempfile::tempdir_in(base).expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    println!(
        "filling: {events} old, finished events ({} records) ...",
        2 * events
    );
    let t = Instant::now();
    fill(&data.join("db"), events);
    println!("  filled in {:.0} s", t.elapsed().as_secs_f64());
    let size_full = hookd::store::backup::dir_size(&data);

    // Retention so long that the start-up prune finds nothing: the prune below is timed.
    let text = format!(
        "data_dir = {data:?}\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nretention_days = 100000\n[retention]\nschedule = \"0 0 0 1 1 *\"\n[[endpoints]]\nname = \"bench\"\nsecrets = [\"{SECRET}\"]\n"
    );
    let path = dir.path().join("hookd.toml");
    std::fs::write(&path, text).expect("config");
    let config = Config::load(Some(&path), &HashMap::new()).expect("config");
    let mut prune_config = config.clone();
    prune_config.retention_days = 15;
    let hookd_rt = runtime(2);
    let running = hookd_rt
        .block_on(hookd::server::start(config, None))
        .expect("hookd starts");
    let addr = running.receiver_addr;

    println!(
        "idle: {conns} connections, {rate} requests/s, {} s ...",
        secs.as_secs()
    );
    let idle = load(
        addr,
        conns,
        rate,
        secs,
        Arc::new(AtomicBool::new(true)),
        "idle",
    );

    println!("pruning while the same load runs ...");
    let pruner = Arc::new(Pruner::new(&prune_config, running.store.clone()));
    let done = Arc::new(AtomicBool::new(false));
    let prune_thread = {
        let (pruner, done) = (pruner.clone(), done.clone());
        std::thread::spawn(move || {
            let t = Instant::now();
            let report = pruner
                .prune_at_low_priority(hookd::clock::system_ms())
                .expect("prune");
            done.store(true, Ordering::Relaxed);
            (report, t.elapsed())
        })
    };
    let pruning = load(addr, conns, rate, Duration::ZERO, done.clone(), "prune");
    let (report, prune_time) = prune_thread.join().expect("prune thread");
    hookd_rt.block_on(running.store.flush()).expect("flush");
    let size_pruned = hookd::store::backup::dir_size(&data);

    println!("online backup while the same load runs ...");
    let backup_to = dir.path().join("backup");
    let backed = Arc::new(AtomicBool::new(false));
    let backup_thread = {
        let (store, backed, to) = (running.store.clone(), backed.clone(), backup_to.clone());
        std::thread::spawn(move || {
            let t = Instant::now();
            let summary = store.backup_to(&to).expect("backup");
            backed.store(true, Ordering::Relaxed);
            (summary, t.elapsed())
        })
    };
    let backing_up = load(addr, conns, rate, Duration::ZERO, backed.clone(), "backup");
    let (backup, backup_time) = backup_thread.join().expect("backup thread");

    hookd_rt.block_on(async {
        running.shutdown();
        running.wait().await;
    });
    drop(pruner);
    let size_stopped = hookd::store::backup::dir_size(&data);
    let t = Instant::now();
    let (_, size_compacted) = hookd::store::backup::compact(&data.join("db")).expect("compact");
    let compact_time = t.elapsed();

    println!();
    println!("| phase | requests | p50 | p99 | max | errors |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, r) in [
        ("idle", &idle),
        ("while pruning", &pruning),
        ("while backing up", &backing_up),
    ] {
        println!(
            "| {name} | {} | {:.2} ms | {:.2} ms | {:.1} ms | {} |",
            r.requests,
            r.p50_us as f64 / 1000.0,
            r.p99_us as f64 / 1000.0,
            r.max_us as f64 / 1000.0,
            r.errors
        );
    }
    println!();
    println!(
        "p99 while pruning / idle p99: {:.2}x",
        pruning.p99_us as f64 / idle.p99_us.max(1) as f64
    );
    println!(
        "pruned {} deliveries + {} events in {:.1} s",
        report.deliveries,
        report.events,
        prune_time.as_secs_f64()
    );
    println!(
        "backup: {} events, {} deliveries in {:.1} s, {}",
        backup.events,
        backup.deliveries,
        backup_time.as_secs_f64(),
        mb(backup.bytes)
    );
    println!(
        "data dir: {} full, {} after the prune (running), {} after stop, {} after compact ({:.1} s)",
        mb(size_full),
        mb(size_pruned),
        mb(size_stopped),
        mb(size_compacted),
        compact_time.as_secs_f64()
    );
}
