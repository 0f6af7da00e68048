//! Soak benchmark with an injected clock: deliveries at a steady rate for 60 simulated days,
//! each processed within the hour, 15-day retention, a prune every simulated hour. Prints the
//! data directory's size at the end of each simulated day, so one sees whether it levels off
//! once retention starts removing as much as arrives.
//!
//! Run: `cargo bench --bench soak` (options: `-- --days 60 --per-day 2000`).
//! Goes through the store's API (accept, claim, finish) and the pruner, not HTTP: the clock
//! is the simulated one, so a day takes seconds.

use hookd::config::Config;
use hookd::prune::Pruner;
use hookd::store::{
    Attempt, AttemptOutcome, DeliveryDraft, NewEvent, Next, ResponseLog, Store, Verdict,
};
use std::collections::HashMap;
use std::sync::Arc;

const HOUR: u64 = 60 * 60 * 1000;
const DAY: u64 = 24 * HOUR;

fn body(id: &str, n: u64) -> String {
    format!(
        r#"{{"api_mode":"test","date":"2024-06-13T00:08:31Z","id":"{id}","type":"patient.ehi_export_success","data":{{"org_connection_id":"c-{n}","task_id":"t-{n}","download_links":[{{"url":"https://api.connect.fastenhealth.com/v1/bridge/fhir/ehi-export/t/download/f.jsonl","export_type":"jsonl"}}]}}}}"#
    )
}

fn respond(verdict: Verdict) -> (String, ResponseLog) {
    let log = ResponseLog {
        status: 200,
        headers: vec![],
        body: format!("{{\"status\":\"{}\"}}", verdict.as_str()),
    };
    ("stored and queued".into(), log)
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
    let days = arg("--days", 60);
    let per_day = arg("--per-day", 2000);
    let per_hour = per_day.div_ceil(24);

    let base = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tempfile::tempdir_in(base).expect("tempdir");
    let text = format!(
        "data_dir = {:?}\nretention_days = 15\n[[endpoints]]\nname = \"bench\"\nsecrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\n",
        dir.path().join("data")
    );
    let path = dir.path().join("hookd.toml");
    std::fs::write(&path, text).expect("config");
    let config = Config::load(Some(&path), &HashMap::new()).expect("config");
    let db = config.data_dir.join("db");
    std::fs::create_dir_all(&db).expect("data dir");
    let store = Arc::new(Store::open(&db, config.cache_mb).expect("store"));
    let pruner = Pruner::new(&config, store.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    // The simulation starts 60 days ago so that ids (which carry their time) stay in the past.
    let start = hookd::clock::system_ms() - days * DAY;
    println!("{per_day} deliveries per simulated day, 15-day retention, hourly prune");
    println!();
    println!("| day | deliveries stored | events stored | data dir |");
    println!("|---:|---:|---:|---:|");
    let mut n = 0u64;
    let started = std::time::Instant::now();
    for day in 0..days {
        for hour in 0..24 {
            let hour_start = start + day * DAY + hour * HOUR;
            rt.block_on(async {
                for i in 0..per_hour {
                    let at = hour_start + i * (HOUR / per_hour);
                    let id = format!("soak-{n}");
                    let text = body(&id, n);
                    n += 1;
                    let draft = DeliveryDraft {
                        received_at_ms: at,
                        endpoint: "bench".into(),
                        remote_addr: Some("127.0.0.1:40000".into()),
                        request_headers: vec![
                            ("content-type".into(), "application/json".into()),
                            ("webhook-id".into(), id.clone()),
                            ("webhook-timestamp".into(), (at / 1000).to_string()),
                            (
                                "webhook-signature".into(),
                                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".into(),
                            ),
                        ],
                        body: text.clone(),
                        body_bytes: text.len(),
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
                        payload: bytes::Bytes::from(text),
                    };
                    store.accept(draft, event, respond).await.expect("accept");
                }
                let now = hour_start + HOUR - 1;
                loop {
                    let claimed = store.claim(now, 256).await.expect("claim");
                    if claimed.is_empty() {
                        break;
                    }
                    for (e, _) in claimed {
                        let attempt = Attempt {
                            number: e.attempts + 1,
                            processor: "log".into(),
                            started_at_ms: now,
                            finished_at_ms: now,
                            outcome: AttemptOutcome::Ok,
                            detail: "logged".into(),
                        };
                        store.finish(e.seq, attempt, Next::Done).expect("finish");
                    }
                }
                store.flush().await.expect("flush");
            });
            pruner.prune_at(hour_start + HOUR).expect("prune");
        }
        let stats = store.stats(start + (day + 1) * DAY).expect("stats");
        let deliveries: u64 = stats.deliveries.values().sum();
        let events: u64 = stats.events.values().sum();
        println!(
            "| {} | {deliveries} | {events} | {:.1} MB |",
            day + 1,
            hookd::store::snapshot::dir_size(&db) as f64 / 1e6
        );
    }
    println!();
    println!(
        "{n} deliveries in {:.0} s of real time",
        started.elapsed().as_secs_f64()
    );
}
