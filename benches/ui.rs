//! Web UI / admin API benchmark at scale: fills a store with 1 million deliveries through the
//! Store API (not HTTP), then starts hookd on it and times the list queries the UI makes —
//! the first page and each filter — over HTTP against the admin API. Prints numbers; asserts
//! nothing about speed.
//!
//! Run: `cargo bench --bench ui` (options: `-- --deliveries N --dir PATH --runs N`; with
//! `--dir`, a store filled by an earlier run is reused).

use hookd::config::Config;
use hookd::store::{
    Attempt, AttemptOutcome, DeliveryDraft, NewEvent, Next, ResponseLog, Store, Verdict,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TOKEN: &str = "bench-admin-token-0123456789";
const ENDPOINTS: [&str; 3] = ["alpha", "beta", "fasten"];
const TYPES: [&str; 5] = [
    "patient.ehi_export_success",
    "patient.ehi_export_failed",
    "patient.connection_success",
    "invoice.paid",
    "webhook.test",
];
const RETENTION_MS: u64 = 15 * 24 * 3_600_000;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn respond(verdict: Verdict) -> (String, ResponseLog) {
    let reason = match verdict {
        Verdict::Duplicate => "event id already accepted on this endpoint",
        _ => "stored and queued",
    };
    (
        reason.to_owned(),
        ResponseLog {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: format!(r#"{{"status":"{}","reason":"{reason}"}}"#, verdict.as_str()),
        },
    )
}

fn draft(n: u64, at_ms: u64, verdict: Verdict, event_id: &str, event_type: &str) -> DeliveryDraft {
    let body = format!(
        r#"{{"id":"{event_id}","type":"{event_type}","date":"2024-06-13T00:08:31Z","data":{{"org_connection_id":"c-{}","n":{n}}}}}"#,
        n % 1000
    );
    let (reason, response) = match verdict {
        Verdict::Rejected => (
            "no valid signature".to_owned(),
            ResponseLog {
                status: 401,
                headers: vec![],
                body: r#"{"status":"rejected"}"#.into(),
            },
        ),
        Verdict::Filtered => respond(Verdict::Filtered),
        v => respond(v),
    };
    DeliveryDraft {
        received_at_ms: at_ms,
        endpoint: ENDPOINTS[(n % 3) as usize].to_owned(),
        remote_addr: Some("10.0.0.7:51234".into()),
        request_headers: vec![
            ("webhook-id".into(), format!("msg_{n}")),
            ("webhook-timestamp".into(), (at_ms / 1000).to_string()),
            (
                "webhook-signature".into(),
                "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into(),
            ),
            ("content-type".into(), "application/json".into()),
        ],
        body_bytes: body.len(),
        body,
        body_truncated: false,
        verdict,
        reason,
        response,
        event_id: Some(event_id.to_owned()),
        event_type: Some(event_type.to_owned()),
    }
}

/// Fills `dir` with `total` deliveries spread over the retention window: 70 % accepted,
/// 10 % duplicate, 10 % filtered, 10 % rejected; then finishes 50 000 events (10 % dead).
async fn fill(dir: &Path, total: u64) {
    let store = Arc::new(Store::open(dir, 256).expect("open store"));
    let now = hookd::clock::system_ms();
    let start = now - RETENTION_MS + 3_600_000;
    let step = (RETENTION_MS - 2 * 3_600_000) / total.max(1);
    let started = Instant::now();
    let mut accepted = 0u64;
    let mut next = 0u64;
    const WINDOW: u64 = 2048;
    while next < total {
        let mut tasks = tokio::task::JoinSet::new();
        for n in next..(next + WINDOW).min(total) {
            let at = start + n * step;
            let event_type = TYPES[(n % 5) as usize];
            let store = store.clone();
            match n % 10 {
                0 => {
                    let d = draft(n, at, Verdict::Rejected, &format!("bad-{n}"), event_type);
                    store.record(d).expect("record");
                }
                1 => {
                    let d = draft(n, at, Verdict::Filtered, &format!("f-{n}"), event_type);
                    tasks.spawn(async move {
                        store.record_durable(d).await.expect("record");
                    });
                }
                k => {
                    // Every 9th accept repeats an id seen just before it: a duplicate.
                    let id = if k == 2 && n > 20 {
                        format!("evt-{}", (n - 10) / 10 * 10 + 3)
                    } else {
                        format!("evt-{n}")
                    };
                    accepted += 1;
                    let d = draft(n, at, Verdict::Accepted, &id, event_type);
                    let body = bytes::Bytes::from(d.body.clone());
                    let event = NewEvent {
                        event_id: id,
                        event_type: event_type.to_owned(),
                        payload: body,
                    };
                    tasks.spawn(async move {
                        store.accept(d, event, respond).await.expect("accept");
                    });
                }
            }
        }
        while tasks.join_next().await.is_some() {}
        next = (next + WINDOW).min(total);
        if next % 100_000 < WINDOW {
            eprintln!(
                "  {next} deliveries stored ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    let mut finished = 0u64;
    while finished < 50_000 {
        let claimed = store.claim(now, 256).await.expect("claim");
        if claimed.is_empty() {
            break;
        }
        for (event, _) in claimed {
            let dead = finished % 10 == 0;
            let attempt = Attempt {
                number: 1,
                processor: "forward".into(),
                started_at_ms: now,
                finished_at_ms: now + 20,
                outcome: if dead {
                    AttemptOutcome::Error
                } else {
                    AttemptOutcome::Ok
                },
                detail: if dead {
                    "HTTP 503".into()
                } else {
                    "HTTP 200".into()
                },
            };
            let next = if dead { Next::Dead } else { Next::Done };
            store.finish(event.seq, attempt, next).expect("finish");
            finished += 1;
        }
    }
    store.flush().await.expect("flush");
    eprintln!(
        "filled: {total} deliveries ({accepted} accept calls), {finished} events finished, in {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

fn main() {
    let total: u64 = arg("--deliveries").map_or(1_000_000, |v| v.parse().expect("--deliveries N"));
    let runs: usize = arg("--runs").map_or(20, |v| v.parse().expect("--runs N"));
    let temp = tempfile::tempdir().expect("tempdir");
    let root: PathBuf = arg("--dir").map_or_else(|| temp.path().to_owned(), PathBuf::from);
    let data = root.join("data");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if !root.join("filled").exists() {
        eprintln!("filling {} with {total} deliveries ...", data.display());
        rt.block_on(fill(&data.join("db"), total));
        std::fs::write(root.join("filled"), total.to_string()).expect("marker");
    }
    println!(
        "store: {:.2} GB on disk",
        hookd::store::backup::dir_size(&data) as f64 / 1e9
    );

    let config_text = format!(
        "data_dir = {data:?}\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
         [admin]\ntoken = \"{TOKEN}\"\n[processing]\nmax_rate_per_sec = 0.001\n{}",
        ENDPOINTS
            .iter()
            .map(|e| format!("[[endpoints]]\nname = \"{e}\"\nsecrets = [\"{SECRET}\"]\n"))
            .collect::<String>()
    );
    let path = root.join("hookd.toml");
    std::fs::write(&path, config_text).expect("config");
    let config = Config::load(Some(&path), &HashMap::new()).expect("config");
    let open = Instant::now();
    let running = rt
        .block_on(hookd::server::start(config, None))
        .expect("start hookd");
    println!(
        "hookd start-up on the filled store: {:.1} s",
        open.elapsed().as_secs_f64()
    );
    let admin = running.admin_addr;

    let now = hookd::clock::system_ms();
    let day_from = now - 7 * 24 * 3_600_000;
    let day_to = day_from + 24 * 3_600_000;
    let mid_event = format!("evt-{}", total / 2 / 10 * 10 + 5);
    let queries: Vec<(&str, String)> = vec![
        ("first page (50, no filter)", String::new()),
        ("endpoint=beta", "endpoint=beta".into()),
        ("verdict=rejected", "verdict=rejected".into()),
        ("verdict=duplicate", "verdict=duplicate".into()),
        ("type=invoice.paid", "type=invoice.paid".into()),
        ("state=queued", "state=queued".into()),
        ("state=dead", "state=dead".into()),
        (
            "time range: one day, a week ago",
            format!("from={day_from}&to={day_to}"),
        ),
        ("event id search", format!("event_id={mid_event}")),
        (
            "endpoint=fasten & verdict=filtered",
            "endpoint=fasten&verdict=filtered".into(),
        ),
        (
            "type + verdict=rejected + one day",
            format!("type=patient.ehi_export_success&verdict=rejected&from={day_from}&to={day_to}"),
        ),
        (
            "verdict=rejected & type=invoice.paid (matches nothing)",
            "verdict=rejected&type=invoice.paid".into(),
        ),
        ("second page (cursor)", "cursor=NEXT".into()),
    ];
    println!();
    println!("| query | items | first (cold) | median | max |");
    println!("|---|---:|---:|---:|---:|");
    rt.block_on(async {
        let http = reqwest::Client::new();
        let get = |q: String| {
            let http = http.clone();
            async move {
                let t = Instant::now();
                let r = http
                    .get(format!("http://{admin}/api/deliveries?limit=50&{q}"))
                    .bearer_auth(TOKEN)
                    .send()
                    .await
                    .expect("request");
                assert_eq!(r.status().as_u16(), 200, "{q}");
                let v: serde_json::Value = r.json().await.expect("json");
                (t.elapsed(), v)
            }
        };
        let (_, first) = get(String::new()).await;
        let cursor = first["next_cursor"].as_str().unwrap_or("").to_owned();
        for (name, q) in queries {
            let q = q.replace("NEXT", &cursor);
            let mut times: Vec<Duration> = Vec::new();
            let mut items = 0;
            for _ in 0..runs {
                let (t, v) = get(q.clone()).await;
                items = v["items"].as_array().map_or(0, |a| a.len());
                times.push(t);
            }
            let cold = times[0];
            times.sort();
            let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
            println!(
                "| {name} | {items} | {} | {} | {} |",
                ms(cold),
                ms(times[times.len() / 2]),
                ms(times[times.len() - 1])
            );
        }
        // Following the cursor to the end: what finding every dead event costs.
        for q in ["state=dead", "verdict=rejected&type=invoice.paid"] {
            let t = Instant::now();
            let (mut pages, mut items) = (0, 0);
            let mut cursor = String::new();
            loop {
                let (_, v) = get(format!("{q}&limit=500&cursor={cursor}")).await;
                pages += 1;
                items += v["items"].as_array().map_or(0, |a| a.len());
                match v["next_cursor"].as_str() {
                    Some(c) => cursor = c.to_owned(),
                    None => break,
                }
            }
            println!(
                "\nwhole log, {q}: {items} items in {pages} requests, {:.0} ms",
                t.elapsed().as_secs_f64() * 1000.0
            );
        }
        let t = Instant::now();
        let r = http
            .get(format!("http://{admin}/api/chart"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("chart");
        assert_eq!(r.status().as_u16(), 200);
        let first_chart = t.elapsed();
        let t = Instant::now();
        http.get(format!("http://{admin}/api/chart"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("chart");
        println!(
            "\nchart over the retention window: first {:.0} ms (counts every index key), then {:.1} ms (finished hours cached)",
            first_chart.as_secs_f64() * 1000.0,
            t.elapsed().as_secs_f64() * 1000.0
        );
    });
    running.shutdown();
    rt.block_on(running.wait());
}
