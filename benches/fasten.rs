//! Fasten export benchmark: the Fasten processor downloads, validates, stores and indexes a
//! ~200 MB NDJSON export served by the local stand-in (`hookd::simulate::api`), through the
//! redirect to a signed URL. Prints MB/s and the process's peak RSS (VmHWM).
//!
//! Run: `cargo bench --bench fasten` (option: `-- --mb N`). The stand-in runs in this
//! process on its own 1-thread runtime (its generation cost is printed separately, as the
//! rate of a plain GET that only drains the body); the processor runs on a 2-thread runtime.

use hookd::config::Config;
use hookd::process::{FastenProcessor, Job, Processor};
use hookd::simulate::{self, api, fhir, EventSpec};
use hookd::store::{Event, EventState, Store};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

fn runtime(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("runtime")
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mb: u64 = args
        .iter()
        .position(|a| a == "--mb")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);

    // Resources for the wanted size, from the average size of a sample.
    let sample = 1200;
    let sample_bytes: usize = fhir::Export::new(1, sample).map(|c| c.len()).sum();
    let resources = mb * 1_000_000 * sample / sample_bytes as u64;

    let server_rt = runtime(1);
    let stand_in = server_rt
        .block_on(api::start(
            "127.0.0.1:0".parse().expect("addr"),
            api::Options::default(),
        ))
        .expect("stand-in");
    let file = simulate::export_file_name(1, resources);
    let task = "bench-task";

    let rt = runtime(2);
    // The stand-in alone: how fast it generates, so its share of the machine is known.
    let url = simulate::download_url(&stand_in.api_base, task, &file);
    let (drain_bytes, drain_secs) = rt.block_on(async {
        use futures_util::StreamExt;
        let started = Instant::now();
        let response = reqwest::get(&url).await.expect("GET");
        let mut stream = response.bytes_stream();
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            n += chunk.expect("chunk").len() as u64;
        }
        (n, started.elapsed().as_secs_f64())
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("hookd.toml");
    std::fs::write(
        &config_path,
        format!(
            "data_dir = {:?}\n[fasten]\napi_base = \"{}\"\npublic_id = \"p\"\ndownload_hosts = [\"http://127.0.0.1\"]\n",
            dir.path().join("data"),
            stand_in.api_base
        ),
    )
    .expect("config");
    let env: HashMap<String, String> =
        [("HOOKD_FASTEN_PRIVATE_KEY".to_string(), "k".to_string())].into();
    let config = Config::load(Some(&config_path), &env).expect("config");
    let store = Arc::new(Store::open(&config.data_dir.join("db"), config.cache_mb).expect("store"));
    let processor =
        FastenProcessor::new(store.clone(), config.fasten.clone(), &config.data_dir).expect("p");
    let spec = EventSpec {
        event_type: "patient.ehi_export_success".into(),
        org_connection_id: "bench-conn".into(),
        task_id: task.into(),
        api_base: stand_in.api_base.clone(),
        resources,
        ..EventSpec::default()
    };
    let body = simulate::event_body(&spec, "bench-event");
    let job = Job {
        event: Event {
            seq: 1,
            endpoint: "fasten".into(),
            event_id: "bench-event".into(),
            event_type: spec.event_type.clone(),
            received_at_ms: 0,
            delivery_id: 1,
            state: EventState::Processing,
            attempts: 0,
            next_attempt_at_ms: None,
            last_error: None,
            replays: 0,
            attempts_before_replay: 0,
        },
        payload: body.into(),
    };
    let rss_before = peak_rss_mb();
    let started = Instant::now();
    let detail = rt
        .block_on(processor.process(&job))
        .unwrap_or_else(|e| panic!("export failed: {e:?}"));
    let secs = started.elapsed().as_secs_f64();
    let stored = std::fs::metadata(
        config
            .data_dir
            .join("exports/bench-conn/bench-task")
            .join(file.replace(".jsonl", ".ndjson")),
    )
    .expect("stored file")
    .len();
    assert!(detail.contains("counts match stats"), "{detail}");
    println!(
        "export: {resources} resources, {:.1} MB",
        stored as f64 / 1e6
    );
    println!(
        "stand-in alone (generate + send, body drained): {:.1} MB/s",
        drain_bytes as f64 / 1e6 / drain_secs
    );
    println!(
        "download + validate + store (fsync) + index: {:.2} s, {:.1} MB/s",
        secs,
        stored as f64 / 1e6 / secs
    );
    println!(
        "peak RSS before the export: {rss_before:.1} MB; after: {:.1} MB",
        peak_rss_mb()
    );
    server_rt.block_on(stand_in.stop());
}
