//! Fasten Connect end to end: hookd receives simulated events and downloads exports from the
//! local stand-in for the Fasten API (`hookd::simulate::api`).

use super::hooks::Hooks;
use super::*;
use hookd::simulate::{self, api, fhir, EventSpec};
use serde_json::Value;
use sha2::Digest;
use std::sync::atomic::Ordering;
use std::sync::Arc;

const PUBLIC_ID: &str = "public_test_0123456789";
const PRIVATE_KEY: &str = "private_test_abcdefghijklmnop";
/// Reads connections and exports, nothing else.
const EXPORT_TOKEN: &str = "export-reader-token-0123456789";

/// A stand-in, a hookd configured to use it, and the directory holding the key file.
struct Setup {
    stand_in: api::StandIn,
    s: TestServer,
    _keys: tempfile::TempDir,
}

async fn setup(options: api::Options, on_revoke: &str, extra: &str) -> Setup {
    let stand_in = api::start(
        "127.0.0.1:0".parse().unwrap(),
        api::Options {
            public_id: Some(PUBLIC_ID.into()),
            private_key: Some(PRIVATE_KEY.into()),
            ..options
        },
    )
    .await
    .unwrap();
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("fasten.key");
    std::fs::write(&key_file, format!("{PRIVATE_KEY}\n")).unwrap();
    let config = format!(
        r#"
[admin]
token = "{ADMIN_TOKEN}"
export_token = "{EXPORT_TOKEN}"

[processing]
retry_schedule_secs = [0]
retry_jitter = 0.0
max_attempts = 3

[fasten]
api_base = "{}"
public_id = "{PUBLIC_ID}"
private_key_file = {:?}
download_hosts = ["http://127.0.0.1"]
on_revoke = "{on_revoke}"
{extra}

[[endpoints]]
name = "fasten"
profile = "fasten"
secrets = ["{SECRET}"]
"#,
        stand_in.api_base, key_file
    );
    let s = TestServer::start(&config).await;
    Setup {
        stand_in,
        s,
        _keys: keys,
    }
}

impl Setup {
    fn spec(&self, event_type: &str, conn: &str) -> EventSpec {
        EventSpec {
            event_type: event_type.into(),
            org_connection_id: conn.into(),
            api_base: self.stand_in.api_base.clone(),
            resources: 40,
            ..EventSpec::default()
        }
    }

    async fn send(&self, spec: &EventSpec, id: &str) -> Answer {
        let body = simulate::event_body(spec, id);
        self.s
            .post_signed("fasten", SECRET, &format!("msg_{id}"), &body)
            .await
    }

    /// Sends an `ehi_export_success` of one 40-resource file for (`conn`, `task`) as event
    /// `id` and waits until it is processed; returns the event.
    async fn store_export(&self, conn: &str, task: &str, id: &str) -> Value {
        let spec = EventSpec {
            task_id: task.into(),
            ..self.spec("patient.ehi_export_success", conn)
        };
        assert_eq!(self.send(&spec, id).await.verdict(), (200, "accepted"));
        self.s.wait_for_state(id, "done").await
    }

    fn export_dir(&self, conn: &str, task: &str) -> PathBuf {
        self.s
            .dir
            .path()
            .join("data")
            .join("exports")
            .join(conn)
            .join(task)
    }

    /// Replays event `id` and waits until it is done with `attempts` attempts; returns it.
    async fn replay(&self, id: &str, attempts: usize) -> Value {
        self.s
            .api_post_status(&format!("/api/events/{id}/replay"), 202)
            .await;
        let path = &format!("/api/events/{id}");
        eventually(WAIT, &format!("the replay of {id}"), || async move {
            let event = self.s.api_ok(path).await;
            let n = event["attempts"].as_array().map_or(0, Vec::len);
            (event["state"] == "done" && n == attempts).then_some(event)
        })
        .await
    }

    /// Sends `event_type` for `conn` as event `id` and waits until it is done.
    async fn processed(&self, event_type: &str, conn: &str, id: &str) -> Value {
        assert_eq!(
            self.send(&self.spec(event_type, conn), id).await.verdict(),
            (200, "accepted")
        );
        self.s.wait_for_state(id, "done").await
    }

    fn downloads(&self) -> u64 {
        self.stand_in.seen.file_requests.load(Ordering::Relaxed)
    }

    async fn stop(self) {
        self.s.stop().await;
        self.stand_in.stop().await;
    }
}

use std::path::PathBuf;

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn detail(event: &Value, n: usize) -> String {
    event["attempts"][n]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn doubled(counts: std::collections::BTreeMap<String, u64>) -> Value {
    serde_json::to_value(
        counts
            .into_iter()
            .map(|(k, v)| (k, v * 2))
            .collect::<std::collections::BTreeMap<_, _>>(),
    )
    .unwrap()
}

#[tokio::test]
async fn connection_success_requests_one_export_even_when_delivered_twice() {
    let t = setup(api::Options::default(), "keep", "").await;
    let spec = t.spec("patient.connection_success", "conn-1");
    assert_eq!(t.send(&spec, "cs-1").await.verdict(), (200, "accepted"));
    assert_eq!(t.send(&spec, "cs-1").await.verdict(), (200, "duplicate"));
    t.s.wait_for_state("cs-1", "done").await;
    // Fasten may also announce the same connection again under a new event id.
    assert_eq!(t.send(&spec, "cs-2").await.verdict(), (200, "accepted"));
    let again = t.s.wait_for_state("cs-2", "done").await;
    // When, as a time people read (not epoch milliseconds).
    assert!(
        detail(&again, 0).contains("already requested (at 20")
            && detail(&again, 0).contains(" UTC)"),
        "{again}"
    );
    assert_eq!(t.stand_in.export_requests_for("conn-1"), 1);
    assert_eq!(t.stand_in.seen.unauthorized.load(Ordering::Relaxed), 0);

    let c = t.s.api_ok("/api/connections/conn-1").await;
    assert_eq!(c["status"], "authorized");
    assert_eq!(c["platform_type"], "epic");
    assert_eq!(c["endpoint"], "fasten");
    assert!(c["export_requested_at_ms"].as_u64().is_some());
    // Fasten's answer, taken apart: no script has to parse the text inside the text.
    let request = &c["export_request"];
    assert_eq!(request["status"], 200, "{c}");
    assert_eq!(request["requested_at_ms"], c["export_requested_at_ms"]);
    let task = request["task_id"]
        .as_str()
        .expect("the task id Fasten gave");
    assert_eq!(request["body"]["data"]["task_id"], task);
    assert_eq!(request["body"]["success"], true);
    // The answer as text stays, for scripts that read it.
    let answer = c["export_request_answer"].as_str().unwrap();
    assert!(
        answer.starts_with("HTTP 200: ") && answer.contains(task),
        "{answer}"
    );
    assert!(c["first_seen_ms"].as_u64().unwrap() <= c["last_seen_ms"].as_u64().unwrap());
    let list = t.s.api_ok("/api/connections").await;
    assert_eq!(list["items"][0]["org_connection_id"], "conn-1");
    t.s.api_status("/api/connections/nope", 404).await;
    // Without `[push]` hookd has no endpoint of its own to offer the UI.
    let meta = t.s.api_ok("/api/meta").await;
    let names: Vec<&Value> = meta["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["name"])
        .collect();
    assert_eq!(names, ["fasten"], "{meta}");
    t.stop().await;
}

#[tokio::test]
async fn export_success_stores_files_whose_counts_match_stats_and_the_index_answers() {
    let t = setup(api::Options::default(), "keep", "").await;
    let spec = EventSpec {
        files: 2,
        task_id: "task-1".into(),
        ..t.spec("patient.ehi_export_success", "conn-2")
    };
    assert_eq!(t.send(&spec, "ex-1").await.verdict(), (200, "accepted"));
    let event = t.s.wait_for_state("ex-1", "done").await;
    let text = detail(&event, 0);
    assert!(text.contains("counts match stats"), "{text}");
    assert!(text.contains("sha256"), "{text}");
    assert!(text.contains(": 2 files, 80 resources"), "{text}");

    // Files under their final names only, each complete.
    let dir = t.export_dir("conn-2", "task-1");
    assert_eq!(file_names(&dir), ["fhir-1-40.ndjson", "fhir-2-40.ndjson"]);
    let c = t.s.api_ok("/api/connections/conn-2").await;
    let export = &c["exports"][0];
    assert_eq!(export["task_id"], "task-1");
    assert_eq!(export["total_resources"], 80);
    assert_eq!(export["counts"], doubled(fhir::counts(40)));
    assert_eq!(c["resource_counts"], export["counts"]);
    assert_eq!(export["mismatches"].as_array().unwrap().len(), 0);
    let file = &export["files"][0];
    let on_disk = std::fs::read(dir.join("fhir-1-40.ndjson")).unwrap();
    assert_eq!(file["bytes"], on_disk.len());
    assert_eq!(
        file["sha256"].as_str().unwrap(),
        format!("{:x}", sha2::Sha256::digest(&on_disk))
    );

    // The download endpoint serves the stored file, with the admin token only.
    let url = format!("http://{}/api/exports/task-1/files/fhir-1-40", t.s.admin);
    let denied = t.s.http.get(&url).send().await.unwrap();
    assert_eq!(denied.status(), 401);
    let served =
        t.s.http
            .get(&url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.bytes().await.unwrap().as_ref(), on_disk.as_slice());
    t.s.api_status("/api/exports/task-1/files/other", 404).await;

    // The delivery's detail lists the stored files with their sha256 and download path.
    let list = t.s.api_ok("/api/deliveries?event_id=ex-1").await;
    let id = list["items"][0]["id"].as_str().unwrap().to_string();
    let d = t.s.api_ok(&format!("/api/deliveries/{id}")).await;
    let listed = d["exports"]
        .as_array()
        .expect("exports in the delivery detail");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["sha256"], file["sha256"]);
    assert_eq!(listed[0]["resources"], 40);
    assert_eq!(
        listed[0]["download_url"],
        "/api/exports/task-1/files/fhir-1-40.ndjson"
    );

    // One resource, found through the index.
    let generated = fhir::Export::new(fhir::seed_of("task-1/fhir-2-40.jsonl"), 40);
    for i in [0, 14, 39] {
        let expected = generated.resource(i);
        let path = format!(
            "/api/connections/conn-2/resources/{}/{}",
            expected["resourceType"].as_str().unwrap(),
            expected["id"].as_str().unwrap()
        );
        let got = t.s.api_ok(&path).await;
        assert_eq!(got, expected);
    }
    t.s.api_status("/api/connections/conn-2/resources/Patient/no-such-id", 404)
        .await;

    // Credentials went to the API only, never to the signed-URL host.
    let seen = &t.stand_in.seen;
    assert_eq!(seen.signed_urls_issued.load(Ordering::Relaxed), 2);
    assert_eq!(seen.file_requests.load(Ordering::Relaxed), 2);
    assert_eq!(
        seen.file_requests_with_authorization
            .load(Ordering::Relaxed),
        0
    );
    assert_eq!(seen.unauthorized.load(Ordering::Relaxed), 0);
    t.stop().await;
}

#[tokio::test]
async fn the_legacy_download_link_shape_works() {
    let t = setup(api::Options::default(), "keep", "").await;
    let spec = EventSpec {
        legacy_link: true,
        task_id: "task-legacy".into(),
        ..t.spec("patient.ehi_export_success", "conn-3")
    };
    let body: Value = serde_json::from_str(&simulate::event_body(&spec, "x")).unwrap();
    assert!(body["data"]["download_link"].is_string());
    assert!(body["data"].get("download_links").is_none());
    assert_eq!(t.send(&spec, "legacy-1").await.verdict(), (200, "accepted"));
    let event = t.s.wait_for_state("legacy-1", "done").await;
    assert!(detail(&event, 0).contains("counts match stats"), "{event}");
    assert!(detail(&event, 0).contains(": 1 file, "), "{event}");
    assert_eq!(
        file_names(&t.export_dir("conn-3", "task-legacy")),
        ["fhir-1-40.ndjson"]
    );
    t.stop().await;
}

#[tokio::test]
async fn stats_that_differ_are_a_visible_warning() {
    let t = setup(api::Options::default(), "keep", "").await;
    let spec = EventSpec {
        task_id: "task-m".into(),
        ..t.spec("patient.ehi_export_success", "conn-m")
    };
    let mut body: Value = serde_json::from_str(&simulate::event_body(&spec, "mm-1")).unwrap();
    body["data"]["stats"]["total_by_resource_type"]["Observation"] = 999.into();
    let a =
        t.s.post_signed("fasten", SECRET, "msg_mm", &body.to_string())
            .await;
    assert_eq!(a.verdict(), (200, "accepted"));
    let event = t.s.wait_for_state("mm-1", "done").await;
    let text = detail(&event, 0);
    assert!(text.contains("WARNING: counts differ from stats"), "{text}");
    assert!(text.contains("Observation: stats say 999"), "{text}");
    let c = t.s.api_ok("/api/connections/conn-m").await;
    assert_eq!(c["exports"][0]["mismatches"].as_array().unwrap().len(), 1);
    t.stop().await;
}

#[tokio::test]
async fn an_expired_signed_url_is_requested_afresh_and_succeeds() {
    let options = api::Options {
        expire_first: 1,
        ..api::Options::default()
    };
    let t = setup(options, "keep", "").await;
    let event = t.store_export("conn-e", "task-e", "exp-1").await;
    assert_eq!(event["attempts"].as_array().unwrap().len(), 1);
    assert!(
        detail(&event, 0).contains("requested a fresh one"),
        "{event}"
    );
    let seen = &t.stand_in.seen;
    assert_eq!(seen.expired_refused.load(Ordering::Relaxed), 1);
    assert_eq!(seen.signed_urls_issued.load(Ordering::Relaxed), 2);
    assert_eq!(
        file_names(&t.export_dir("conn-e", "task-e")),
        ["fhir-1-40.ndjson"]
    );
    t.stop().await;
}

#[tokio::test]
async fn a_truncated_download_is_retried_and_leaves_no_partial_file() {
    let options = api::Options {
        truncate_first: 1,
        ..api::Options::default()
    };
    let t = setup(options, "keep", "").await;
    let spec = EventSpec {
        task_id: "task-t".into(),
        resources: 400,
        ..t.spec("patient.ehi_export_success", "conn-t")
    };
    t.send(&spec, "trunc-1").await;
    let event = t.s.wait_for_state("trunc-1", "done").await;
    let attempts = event["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{event}");
    assert_eq!(attempts[0]["outcome"], "error");
    assert_eq!(t.stand_in.seen.truncated.load(Ordering::Relaxed), 1);
    assert!(detail(&event, 1).contains("counts match stats"), "{event}");
    // Only the complete file: the broken attempt's temporary file is gone.
    assert_eq!(
        file_names(&t.export_dir("conn-t", "task-t")),
        ["fhir-1-400.ndjson"]
    );
    let c = t.s.api_ok("/api/connections/conn-t").await;
    assert_eq!(c["exports"][0]["total_resources"], 400);
    t.stop().await;
}

#[tokio::test]
async fn a_download_host_not_allowed_is_refused() {
    let t = setup(api::Options::default(), "keep", "").await;
    for (id, base) in [
        // Resolves to the stand-in, but `localhost` is not listed.
        (
            "host-1",
            format!("http://localhost:{}/v1", t.stand_in.api_addr.port()),
        ),
        ("host-2", "https://downloads.example.org/v1".to_string()),
    ] {
        let spec = EventSpec {
            api_base: base,
            ..t.spec("patient.ehi_export_success", "conn-h")
        };
        t.send(&spec, id).await;
        let event = t.s.wait_for_state(id, "dead").await;
        assert_eq!(event["attempts"].as_array().unwrap().len(), 1);
        assert!(
            detail(&event, 0).contains("is not in fasten.download_hosts"),
            "{event}"
        );
    }
    assert_eq!(
        t.stand_in.seen.signed_urls_issued.load(Ordering::Relaxed),
        0
    );
    assert!(!t.s.dir.path().join("data/exports/conn-h").exists());
    t.stop().await;
}

#[tokio::test]
async fn max_export_bytes_is_enforced() {
    let t = setup(api::Options::default(), "keep", "max_export_bytes = 1000").await;
    let spec = EventSpec {
        task_id: "task-big".into(),
        ..t.spec("patient.ehi_export_success", "conn-big")
    };
    t.send(&spec, "big-1").await;
    let event = t.s.wait_for_state("big-1", "dead").await;
    assert!(detail(&event, 0).contains("max_export_bytes"), "{event}");
    assert_eq!(
        file_names(&t.export_dir("conn-big", "task-big")),
        Vec::<String>::new()
    );
    t.stop().await;
}

#[tokio::test]
async fn revoke_with_delete_removes_the_data() {
    let t = setup(api::Options::default(), "delete", "").await;
    t.store_export("conn-r", "task-r", "rv-1").await;
    let patient = fhir::Export::new(fhir::seed_of("task-r/fhir-1-40.jsonl"), 40).resource(0);
    let path = format!(
        "/api/connections/conn-r/resources/Patient/{}",
        patient["id"].as_str().unwrap()
    );
    t.s.api_ok(&path).await;

    t.send(&t.spec("patient.authorization_revoked", "conn-r"), "rv-2")
        .await;
    let event = t.s.wait_for_state("rv-2", "done").await;
    assert!(
        detail(&event, 0).contains("removed 1 export [task-r]"),
        "{event}"
    );
    assert!(!t.s.dir.path().join("data/exports/conn-r").exists());
    t.s.api_status(&path, 404).await;
    t.s.api_status("/api/exports/task-r/files/fhir-1-40", 404)
        .await;
    let c = t.s.api_ok("/api/connections/conn-r").await;
    assert_eq!(c["status"], "revoked");
    assert!(c["revoked_at_ms"].as_u64().is_some());
    assert_eq!(c["exports"].as_array().unwrap().len(), 0);
    assert_eq!(c["removed"]["exports"][0], "task-r");
    assert_eq!(c["removed"]["files"], 1);
    assert_eq!(c["removed"]["index_entries"], 40);
    t.stop().await;
}

/// `export` of the delivery that brought event `id`: the task, its connection, and what
/// became of it.
async fn delivery_export(t: &Setup, id: &str) -> Value {
    let event = t.s.api_ok(&format!("/api/events/{id}")).await;
    let delivery = event["delivery_id"].as_str().unwrap();
    let d = t.s.api_ok(&format!("/api/deliveries/{delivery}")).await;
    let mut export = d["export"].clone();
    // Files are listed only while they are stored.
    export["files"] = d["exports"].as_array().map_or(0, Vec::len).into();
    export
}

#[tokio::test]
async fn a_delivery_says_what_became_of_its_export() {
    let t = setup(api::Options::default(), "delete", "").await;
    let conn = "conn-d";
    t.store_export(conn, "task-1", "ex-1").await;
    let stored = delivery_export(&t, "ex-1").await;
    assert_eq!(
        stored,
        serde_json::json!({"task_id": "task-1", "org_connection_id": conn, "state": "stored", "files": 1})
    );

    // Revoked with on_revoke = "delete": its files are gone, and the delivery says why.
    t.processed("patient.authorization_revoked", conn, "rv-1")
        .await;
    assert_eq!(delivery_export(&t, "ex-1").await["state"], "deleted");
    assert_eq!(delivery_export(&t, "ex-1").await["files"], 0);
    // Announced after the revocation: deliberately not downloaded.
    let spec = EventSpec {
        task_id: "task-late".into(),
        ..t.spec("patient.ehi_export_success", conn)
    };
    assert_eq!(t.send(&spec, "ex-2").await.verdict(), (200, "accepted"));
    t.s.wait_for_state("ex-2", "done").await;
    assert_eq!(delivery_export(&t, "ex-2").await["state"], "not_downloaded");
    // Authorized again, the history stays: still deleted, still not downloaded.
    t.processed("patient.connection_success", conn, "cs-2")
        .await;
    assert_eq!(delivery_export(&t, "ex-1").await["state"], "deleted");
    assert_eq!(delivery_export(&t, "ex-2").await["state"], "not_downloaded");

    // An export that failed for good.
    let spec = EventSpec {
        task_id: "task-refused".into(),
        api_base: "https://downloads.example.org/v1".into(),
        ..t.spec("patient.ehi_export_success", "conn-other")
    };
    assert_eq!(t.send(&spec, "ex-3").await.verdict(), (200, "accepted"));
    t.s.wait_for_state("ex-3", "dead").await;
    assert_eq!(delivery_export(&t, "ex-3").await["state"], "failed");

    // Stored, then removed as export retention removes it (its event outlives it).
    t.store_export("conn-kept", "task-4", "ex-4").await;
    let store = &t.s.running.as_ref().unwrap().store;
    store.remove_export_data("conn-kept", "task-4").unwrap();
    assert_eq!(
        delivery_export(&t, "ex-4").await["state"],
        "no_longer_stored"
    );
    t.stop().await;
}

#[tokio::test]
async fn a_revocation_stays_on_record_after_the_connection_is_authorized_again() {
    let t = setup(api::Options::default(), "delete", "").await;
    let conn = "conn-again";
    t.store_export(conn, "task-1", "ex-1").await;
    t.processed("patient.authorization_revoked", conn, "rv-1")
        .await;
    let revoked = t.s.api_ok(&format!("/api/connections/{conn}")).await;
    let revoked_at = revoked["revoked_at_ms"].as_u64().unwrap();
    assert_eq!(revoked["revocations"], serde_json::json!([]), "{revoked}");

    t.processed("patient.connection_success", conn, "cs-2")
        .await;
    let c = t.s.api_ok(&format!("/api/connections/{conn}")).await;
    assert_eq!(c["status"], "authorized");
    assert!(c["revoked_at_ms"].is_null(), "{c}");
    // When the patient revoked and authorized again, and what the revocation deleted.
    let cs2 = t.s.api_ok("/api/events/cs-2").await;
    assert_eq!(
        c["revocations"],
        serde_json::json!([{"revoked_at_ms": revoked_at, "reauthorized_at_ms": cs2["received_at_ms"]}]),
        "{c}"
    );
    assert_eq!(c["removed"]["exports"], serde_json::json!(["task-1"]));
    assert_eq!(c["removed"]["files"], 1);
    t.stop().await;
}

#[tokio::test]
async fn exports_past_their_retention_go_with_their_index_entries() {
    let t = setup(api::Options::default(), "keep", "").await;
    t.store_export("conn-p", "task-old", "pr-1").await;
    let c = t.s.api_ok("/api/connections/conn-p").await;
    let resource = format!("/api/connections/conn-p/resources/Patient/{}", {
        let generated = fhir::Export::new(fhir::seed_of("task-old/fhir-1-40.jsonl"), 40);
        generated.resource(0)["id"].as_str().unwrap().to_string()
    });
    assert_eq!(c["exports"].as_array().unwrap().len(), 1);
    t.s.api_ok(&resource).await;

    // Twenty days on (export_retention_days is 15 by default): the export is pruned.
    let later = hookd::clock::now_ms() + 20 * 24 * 3600 * 1000;
    let pruner = t.s.running.as_ref().unwrap().pruner.clone();
    let report = pruner.prune_at(later).unwrap();
    assert_eq!(report.exports, 1);
    assert!(!t.s.dir.path().join("data/exports/conn-p").exists());
    let c = t.s.api_ok("/api/connections/conn-p").await;
    assert_eq!(c["exports"].as_array().unwrap().len(), 0);
    t.s.api_status(&resource, 404).await;
    t.s.api_status("/api/exports/task-old/files/fhir-1-40", 404)
        .await;
    t.stop().await;
}

#[tokio::test]
async fn revoke_with_keep_keeps_the_data() {
    let t = setup(api::Options::default(), "keep", "").await;
    t.store_export("conn-k", "task-k", "kp-1").await;
    t.send(&t.spec("patient.authorization_revoked", "conn-k"), "kp-2")
        .await;
    t.s.wait_for_state("kp-2", "done").await;
    let c = t.s.api_ok("/api/connections/conn-k").await;
    assert_eq!(c["status"], "revoked");
    assert_eq!(c["exports"].as_array().unwrap().len(), 1);
    assert!(t
        .export_dir("conn-k", "task-k")
        .join("fhir-1-40.ndjson")
        .exists());
    t.stop().await;
}

#[tokio::test]
async fn failures_are_recorded_and_other_events_have_no_side_effects() {
    let t = setup(api::Options::default(), "keep", "").await;
    t.send(&t.spec("patient.ehi_export_failed", "conn-f"), "of-1")
        .await;
    for (i, kind) in [
        "patient.request_health_system",
        "patient.request_support",
        "webhook.test",
    ]
    .iter()
    .enumerate()
    {
        t.send(&t.spec(kind, "conn-x"), &format!("ot-{i}")).await;
        let event = t.s.wait_for_state(&format!("ot-{i}"), "done").await;
        assert!(detail(&event, 0).contains("no action"), "{event}");
        // Recorded and shown, with the payload behind the admin token.
        assert!(event["payload"]["data"].is_object());
    }
    t.s.wait_for_state("of-1", "done").await;
    let list = t.s.api_ok("/api/connections").await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    let c = t.s.api_ok("/api/connections/conn-f").await;
    assert_eq!(c["failures"][0]["failure_reason"], "token_refresh_failure");
    assert_eq!(c["failures"][0]["event_id"], "of-1");
    assert!(t.stand_in.seen.export_requests.lock().unwrap().is_empty());
    assert_eq!(t.stand_in.seen.file_requests.load(Ordering::Relaxed), 0);
    let unauthenticated =
        t.s.http
            .get(format!("http://{}/api/connections", t.s.admin))
            .send()
            .await
            .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    t.stop().await;
}

/// hookd follows the API's redirect to the signed URL by hand: the API host gets the Basic
/// credentials (it issues no signed URL without them), the signed-URL host (another port,
/// so another origin) never does.
#[tokio::test]
async fn credentials_go_to_the_api_host_but_not_along_a_redirect_to_another_host() {
    let t = setup(api::Options::default(), "keep", "").await;
    t.store_export("conn-a", "task-a", "auth-1").await;
    let seen = &t.stand_in.seen;
    assert_eq!(seen.unauthorized.load(Ordering::Relaxed), 0);
    assert_eq!(seen.signed_urls_issued.load(Ordering::Relaxed), 1);
    assert_eq!(seen.file_requests.load(Ordering::Relaxed), 1);
    assert_eq!(
        seen.file_requests_with_authorization
            .load(Ordering::Relaxed),
        0,
        "Basic credentials followed the redirect to the signed-URL host"
    );
    assert_ne!(t.stand_in.api_addr, t.stand_in.files_addr);
    t.stop().await;
}

/// The walk-through of docs/fasten.md with the built binary: `hookd simulate --serve-api`
/// as the Fasten API (announcing the exports hookd asks for), `hookd simulate --to` as
/// Fasten's webhook sender. Multi-threaded: the test blocks on child processes while the
/// in-process hookd answers them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_simulates_fasten_end_to_end() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    const BIN: &str = env!("CARGO_BIN_EXE_hookd");
    // hookd first (the stand-in announces exports to it), pointed at a port the stand-in
    // takes next: held until just before the stand-in starts, so nothing else takes it.
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let api_port = reserved.local_addr().unwrap().port();
    let api_base = format!("http://127.0.0.1:{api_port}/v1");
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("fasten.key");
    std::fs::write(&key_file, PRIVATE_KEY).unwrap();
    let s = TestServer::start(&format!(
        r#"
[admin]
token = "{ADMIN_TOKEN}"
[fasten]
api_base = "{api_base}"
public_id = "{PUBLIC_ID}"
private_key_file = {key_file:?}
download_hosts = ["http://127.0.0.1"]
[[endpoints]]
name = "fasten"
profile = "fasten"
secrets = ["{SECRET}"]
"#
    ))
    .await;
    // As the walk-through does: the secret in a file, not on the command line.
    let secret_file = s.dir.path().join("demo.secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    let secret_file = secret_file.to_str().unwrap().to_owned();
    drop(reserved);
    let mut api = Command::new(BIN)
        .args([
            "simulate",
            "--serve-api",
            &format!("127.0.0.1:{api_port}"),
            "--public-id",
            PUBLIC_ID,
            "--announce-to",
            &s.url("fasten"),
            "--secret-file",
            &secret_file,
            "--announce-after-secs",
            "0",
            "--resources",
            "7",
        ])
        .env("HOOKD_FASTEN_PRIVATE_KEY", PRIVATE_KEY)
        .env("HOOKD_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Killed however the test ends.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut lines = BufReader::new(api.stdout.take().unwrap()).lines();
    let _api = KillOnDrop(api);
    let printed = loop {
        let line = lines.next().expect("stand-in printed no api_base").unwrap();
        if let Some(base) = line.trim().strip_prefix("api_base:") {
            break base.trim().to_string();
        }
    };
    assert_eq!(printed, api_base);
    std::thread::spawn(move || for _ in lines {});

    let url = s.url("fasten");
    let simulate = |args: &[&str]| {
        let out = Command::new(BIN)
            .env("HOOKD_LOG", "warn")
            .args(["simulate", "--to", &url, "--secret-file", &secret_file])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let first = simulate(&[
        "--event",
        "patient.connection_success",
        "--connection",
        "conn-bin",
        "--id",
        "bin-1",
    ]);
    assert!(first.contains("accepted"), "{first}");
    assert!(
        first.contains("event id bin-1 (patient.connection_success), org_connection_id conn-bin"),
        "{first}"
    );
    // An event whose payload names no connection says none.
    let support = simulate(&["--event", "patient.request_support", "--id", "bin-s"]);
    assert!(
        support.contains("event id bin-s (patient.request_support)")
            && !support.contains("org_connection_id"),
        "{support}"
    );
    let again = simulate(&[
        "--event",
        "patient.connection_success",
        "--connection",
        "conn-bin",
        "--id",
        "bin-1",
    ]);
    assert!(again.contains("duplicate"), "{again}");
    let event = s.wait_for_state("bin-1", "done").await;
    assert!(detail(&event, 0).contains("export requested"), "{event}");
    // The stand-in announces the export hookd asked for, and hookd stores it.
    let requested = eventually(WAIT, "the requested export, announced and stored", || {
        let s = &s;
        async move {
            let c = s.api_ok("/api/connections/conn-bin").await;
            let answer = c["export_request_answer"].as_str()?.to_string();
            let export = c["exports"]
                .as_array()?
                .iter()
                .find(|e| answer.contains(e["task_id"].as_str().unwrap_or("?")))?
                .clone();
            Some(export)
        }
    })
    .await;
    assert_eq!(requested["total_resources"], 7, "{requested}");

    let sent = simulate(&[
        "--event",
        "patient.ehi_export_success",
        "--connection",
        "conn-bin",
        "--task",
        "task-bin",
        "--api-base",
        &api_base,
        "--resources",
        "25",
        "--id",
        "bin-2",
    ]);
    assert!(
        sent.contains("org_connection_id conn-bin, task_id task-bin"),
        "{sent}"
    );
    let event = s.wait_for_state("bin-2", "done").await;
    assert!(detail(&event, 0).contains("counts match stats"), "{event}");
    let c = s.api_ok("/api/connections/conn-bin").await;
    let task_bin = c["exports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["task_id"] == "task-bin")
        .unwrap_or_else(|| panic!("no task-bin export: {c}"));
    assert_eq!(task_bin["total_resources"], 25);
    assert_eq!(c["status"], "authorized");
    s.stop().await;
}

#[tokio::test]
async fn an_export_processed_again_by_its_event_is_not_downloaded_twice() {
    let t = setup(api::Options::default(), "keep", "").await;
    t.store_export("conn-i", "task-i", "idem-1").await;
    // A second run of the same event, as after a crash (here: an operator's replay).
    let event = t.replay("idem-1", 2).await;
    assert!(
        detail(&event, 1).contains("already stored by this event"),
        "{event}"
    );
    assert_eq!(t.stand_in.seen.file_requests.load(Ordering::Relaxed), 1);
    t.stop().await;
}

#[tokio::test]
async fn a_revoked_connection_exports_nothing_until_a_newer_connection_success() {
    for on_revoke in ["delete", "keep"] {
        let t = setup(api::Options::default(), on_revoke, "").await;
        let conn = "conn-rv";
        t.processed("patient.connection_success", conn, "cs-1")
            .await;
        assert_eq!(t.stand_in.export_requests_for(conn), 1);
        t.processed("patient.authorization_revoked", conn, "rv-1")
            .await;

        // An export announced after the revocation is not downloaded.
        let spec = EventSpec {
            task_id: "task-late".into(),
            ..t.spec("patient.ehi_export_success", conn)
        };
        assert_eq!(t.send(&spec, "ex-1").await.verdict(), (200, "accepted"));
        let event = t.s.wait_for_state("ex-1", "done").await;
        let text = detail(&event, 0);
        assert!(
            text.starts_with("connection revoked: ") && text.contains(" UTC; "),
            "{on_revoke}: {text}"
        );
        assert_eq!(t.downloads(), 0, "{on_revoke}");
        assert_eq!(
            t.stand_in.seen.signed_urls_issued.load(Ordering::Relaxed),
            0
        );
        assert!(!t.export_dir(conn, "task-late").exists(), "{on_revoke}");
        let c = t.s.api_ok(&format!("/api/connections/{conn}")).await;
        assert_eq!(c["status"], "revoked");
        assert_eq!(c["exports"].as_array().unwrap().len(), 0, "{c}");

        // A replay of the connection_success from before the revocation changes nothing.
        let event = t.replay("cs-1", 2).await;
        assert!(detail(&event, 1).contains("stays revoked"), "{event}");
        let c = t.s.api_ok(&format!("/api/connections/{conn}")).await;
        assert_eq!(c["status"], "revoked");
        assert!(c["revoked_at_ms"].as_u64().is_some());
        assert_eq!(t.stand_in.export_requests_for(conn), 1);

        // A new one authorizes it again, and asks for an export again.
        let event = t
            .processed("patient.connection_success", conn, "cs-2")
            .await;
        assert!(
            detail(&event, 0).contains("re-authorized (it was revoked at 20")
                && detail(&event, 0).contains(" UTC)"),
            "{event}"
        );
        // Told by its task, not by Fasten's JSON answer.
        assert!(
            detail(&event, 0).contains("export requested: task ")
                && !detail(&event, 0).contains('{'),
            "{event}"
        );
        assert_eq!(t.stand_in.export_requests_for(conn), 2);
        let c = t.s.api_ok(&format!("/api/connections/{conn}")).await;
        assert_eq!(c["status"], "authorized");
        assert!(c["revoked_at_ms"].is_null(), "{c}");

        // Now the export is downloaded.
        let event = t.replay("ex-1", 2).await;
        assert!(detail(&event, 1).contains("counts match stats"), "{event}");
        assert_eq!(t.downloads(), 1);
        assert_eq!(
            file_names(&t.export_dir(conn, "task-late")),
            ["fhir-1-40.ndjson"]
        );
        t.stop().await;
    }
}

#[tokio::test]
async fn a_replayed_export_of_a_revoked_connection_is_not_downloaded_again() {
    for on_revoke in ["delete", "keep"] {
        let t = setup(api::Options::default(), on_revoke, "").await;
        let conn = "conn-rp";
        t.store_export(conn, "task-1", "ex-1").await;
        let file = t.export_dir(conn, "task-1").join("fhir-1-40.ndjson");
        let stored = std::fs::read(&file).unwrap();
        assert_eq!(t.downloads(), 1);
        t.processed("patient.authorization_revoked", conn, "rv-1")
            .await;

        let event = t.replay("ex-1", 2).await;
        let text = detail(&event, 1);
        assert!(
            text.starts_with("connection revoked: "),
            "{on_revoke}: {text}"
        );
        assert_eq!(t.downloads(), 1, "{on_revoke}: downloaded again");
        let c = t.s.api_ok(&format!("/api/connections/{conn}")).await;
        assert_eq!(c["status"], "revoked");
        let exports = c["exports"].as_array().unwrap().len();
        if on_revoke == "delete" {
            assert_eq!(exports, 0, "{c}");
            assert!(!t.s.dir.path().join("data/exports").join(conn).exists());
        } else {
            // Kept as it was, not fetched anew.
            assert_eq!(exports, 1, "{c}");
            assert_eq!(std::fs::read(&file).unwrap(), stored);
        }
        t.stop().await;
    }
}

/// A file server for export downloads that answers only when told to, so a revocation can
/// be processed while an export is downloading.
async fn stalling_files() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<()>,
    Arc<tokio::sync::Notify>,
) {
    use warp::Filter;
    let (arrived, requests) = tokio::sync::mpsc::unbounded_channel();
    let release = Arc::new(tokio::sync::Notify::new());
    let go = release.clone();
    let route = warp::get().then(move || {
        let (arrived, go) = (arrived.clone(), go.clone());
        async move {
            let _ = arrived.send(());
            go.notified().await;
            "{\"resourceType\":\"Patient\",\"id\":\"p-stall\"}\n"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (format!("http://{addr}/v1"), requests, release)
}

#[tokio::test]
async fn an_export_downloading_when_its_connection_is_revoked_is_discarded() {
    for on_revoke in ["delete", "keep"] {
        let t = setup(api::Options::default(), on_revoke, "").await;
        let conn = "conn-race";
        t.store_export(conn, "task-before", "ex-0").await;
        let (files, mut requests, release) = stalling_files().await;
        let spec = EventSpec {
            task_id: "task-during".into(),
            api_base: files,
            ..t.spec("patient.ehi_export_success", conn)
        };
        assert_eq!(t.send(&spec, "ex-1").await.verdict(), (200, "accepted"));
        requests.recv().await.unwrap();
        // The download is under way; the revocation is processed meanwhile.
        t.processed("patient.authorization_revoked", conn, "rv-1")
            .await;
        release.notify_one();
        let event = t.s.wait_for_state("ex-1", "done").await;
        let attempts = event["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "{on_revoke}: {event}");
        let text = detail(&event, 0);
        assert!(
            text.starts_with("connection revoked: "),
            "{on_revoke}: {text}"
        );
        assert!(text.contains("while it downloaded"), "{on_revoke}: {text}");
        assert!(!t.export_dir(conn, "task-during").exists(), "{on_revoke}");
        t.s.api_status(
            &format!("/api/connections/{conn}/resources/Patient/p-stall"),
            404,
        )
        .await;
        t.s.api_status("/api/exports/task-during/files/fhir-1-40", 404)
            .await;
        let c = t.s.api_ok(&format!("/api/connections/{conn}")).await;
        let kept: Vec<&str> = c["exports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["task_id"].as_str().unwrap())
            .collect();
        if on_revoke == "delete" {
            assert!(kept.is_empty(), "{c}");
            assert!(!t.s.dir.path().join("data/exports").join(conn).exists());
        } else {
            assert_eq!(kept, ["task-before"], "{c}");
            assert!(t.export_dir(conn, "task-before").exists());
        }
        t.stop().await;
    }
}

#[tokio::test]
async fn an_attempt_records_why_a_connection_failed() {
    let t = setup(api::Options::default(), "keep", "").await;
    // A port nothing listens on.
    let port = crate::free_port();
    let spec = EventSpec {
        api_base: format!("http://127.0.0.1:{port}/v1"),
        ..t.spec("patient.ehi_export_success", "conn-refused")
    };
    t.send(&spec, "refused-1").await;
    let event = t.s.wait_for_state("refused-1", "dead").await;
    let text = detail(&event, 0);
    assert!(
        text.starts_with(&format!("GET http://127.0.0.1:{port}/v1/")),
        "{text}"
    );
    assert!(text.to_lowercase().contains("connection refused"), "{text}");
    // The URL is named once, by hookd, not again by the client's own message.
    assert_eq!(text.matches("127.0.0.1").count(), 1, "{text}");
    t.stop().await;
}

/// The `[push]` table that sends to `hooks`, signed with [`OTHER_SECRET`].
fn push_to(hooks: &Hooks) -> String {
    format!(
        "\n[push]\nurl = \"{}\"\nsecret = \"{OTHER_SECRET}\"\n",
        hooks.url()
    )
}

/// A GET on the admin listener with `token`: status and body.
async fn get_with(t: &Setup, token: &str, path: &str) -> (u16, bytes::Bytes) {
    let r =
        t.s.http
            .get(format!("http://{}{path}", t.s.admin))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap())
}

#[tokio::test]
async fn a_stored_export_is_pushed_signed_and_its_files_read_with_the_export_token() {
    let hooks = Hooks::start(OTHER_SECRET, 0).await;
    let t = setup(api::Options::default(), "keep", &push_to(&hooks)).await;
    let event = t.store_export("conn-p", "task-p", "ex-p").await;
    assert!(
        detail(&event, 0).contains("hookd.export.stored queued"),
        "{event}"
    );
    let pushed = hooks
        .wait_for("hookd.export.stored", |r| {
            r.body["type"] == "hookd.export.stored"
        })
        .await;
    assert!(pushed.verified, "{pushed:?}");
    assert_eq!(pushed.webhook_id, "hookd.export.stored.ex-p");
    assert_eq!(pushed.body["id"], "hookd.export.stored.ex-p");
    let data = &pushed.body["data"];
    assert_eq!(data["org_connection_id"], "conn-p");
    assert_eq!(data["task_id"], "task-p");
    assert_eq!(data["fasten_event_id"], "ex-p");
    assert_eq!(data["total_resources"], 40);
    assert_eq!(
        data["counts"],
        serde_json::to_value(fhir::counts(40)).unwrap()
    );
    assert_eq!(data["paths"]["connection"], "/api/connections/conn-p");
    let files = data["files"].as_array().unwrap();
    assert_eq!(files.len(), 1);
    let on_disk = std::fs::read(t.export_dir("conn-p", "task-p").join("fhir-1-40.ndjson")).unwrap();
    let sha = format!("{:x}", sha2::Sha256::digest(&on_disk));
    assert_eq!(files[0]["sha256"], sha.as_str());
    assert_eq!(files[0]["bytes"], on_disk.len());
    assert!(files[0].get("source_url").is_none(), "{pushed:?}");

    // The service fetches what it was told of with the export token, and nothing else.
    let path = files[0]["path"].as_str().unwrap();
    assert_eq!(path, "/api/exports/task-p/files/fhir-1-40.ndjson");
    let (status, body) = get_with(&t, EXPORT_TOKEN, path).await;
    assert_eq!(status, 200);
    assert_eq!(format!("{:x}", sha2::Sha256::digest(&body)), sha);
    for path in ["/api/connections/conn-p", "/api/connections"] {
        assert_eq!(get_with(&t, EXPORT_TOKEN, path).await.0, 200, "{path}");
    }
    for path in [
        "/api/deliveries",
        "/api/events",
        "/api/stats",
        "/metrics",
        "/api/session",
    ] {
        let (status, body) = get_with(&t, EXPORT_TOKEN, path).await;
        assert_eq!(status, 403, "{path}");
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains("the export token reads connections, exports"),
            "{path}: {text}"
        );
    }
    for path in [
        "/api/backup",
        "/api/events/ex-p/replay",
        "/api/replay",
        "/api/logout",
    ] {
        let r =
            t.s.http
                .post(format!("http://{}{path}", t.s.admin))
                .bearer_auth(EXPORT_TOKEN)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
        assert_eq!(r.status(), 403, "POST {path}");
    }
    // The push is an event of its own, with its attempt on record.
    let push = t.s.wait_for_state("hookd.export.stored.ex-p", "done").await;
    assert_eq!(push["endpoint"], "hookd-push");
    assert!(detail(&push, 0).contains("HTTP 200"), "{push}");
    let listed = t.s.api_ok("/api/events?endpoint=hookd-push").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
    // Processing the export again (a replay) pushes nothing new: same id, a duplicate.
    t.replay("ex-p", 2).await;
    t.s.api_ok("/api/events/hookd.export.stored.ex-p").await;
    let listed = t.s.api_ok("/api/events?endpoint=hookd-push").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");

    // Both are in the delivery log, under hookd's own endpoint, which the UI's vocabulary
    // lists (without a receiving path: nothing is received there): the push, and the
    // replay's duplicate of it.
    let deliveries = t.s.api_ok("/api/deliveries?endpoint=hookd-push").await;
    let items = deliveries["items"].as_array().unwrap();
    let seen: Vec<_> = items
        .iter()
        .map(|d| {
            let text = |key: &str| d[key].as_str().unwrap_or_default();
            (text("event_id"), text("event_type"), text("verdict"))
        })
        .collect();
    let (id, kind) = ("hookd.export.stored.ex-p", "hookd.export.stored");
    assert_eq!(
        seen,
        [(id, kind, "duplicate"), (id, kind, "accepted")],
        "{deliveries}"
    );
    assert_eq!(items[1]["state"], "done");
    assert_eq!(items[0]["original_delivery_id"], items[1]["id"]);
    let meta = t.s.api_ok("/api/meta").await;
    let endpoint = meta["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "hookd-push");
    assert_eq!(
        endpoint,
        Some(&serde_json::json!({
            "name": "hookd-push", "profile": "internal", "processor": "forward", "path": null,
        })),
        "{meta}"
    );

    // Replaying the done push sends it to `[push] url` again: as for a forward endpoint,
    // only once confirmed.
    let path = "/api/events/hookd.export.stored.ex-p/replay";
    let sent = hooks.all().len();
    let refused = t.s.api_post_status(path, 409).await;
    assert_eq!(refused["needs_confirm"], true);
    let reason = refused["reason"].as_str().unwrap();
    assert!(
        reason.contains("confirm=true") && reason.contains("hookd-push"),
        "{reason}"
    );
    let push = t.s.api_ok("/api/events/hookd.export.stored.ex-p").await;
    assert_eq!(push["replays"], 0, "{push}");
    t.s.api_post_status(&format!("{path}?confirm=true"), 202)
        .await;
    let again = eventually(WAIT, "the push sent again", || async {
        hooks.all().get(sent).cloned()
    })
    .await;
    assert!(again.verified, "{again:?}");
    assert_eq!(again.webhook_id, "hookd.export.stored.ex-p");
    eventually(WAIT, "the replayed push done", || async {
        let e = t.s.api_ok("/api/events/hookd.export.stored.ex-p").await;
        (e["replays"] == 1 && e["state"] == "done").then_some(())
    })
    .await;
    assert_eq!(hooks.all().len(), sent + 1, "sent once more");
    t.stop().await;
}

#[tokio::test]
async fn a_revocation_is_pushed_and_with_delete_so_is_the_deletion() {
    let hooks = Hooks::start(OTHER_SECRET, 0).await;
    let t = setup(api::Options::default(), "delete", &push_to(&hooks)).await;
    t.store_export("conn-r", "task-r", "ex-r").await;
    t.processed("patient.authorization_revoked", "conn-r", "rv-r")
        .await;
    let revoked = hooks
        .wait_for("hookd.connection.revoked", |r| {
            r.body["type"] == "hookd.connection.revoked"
        })
        .await;
    assert!(revoked.verified);
    assert_eq!(revoked.webhook_id, "hookd.connection.revoked.rv-r");
    let data = &revoked.body["data"];
    assert_eq!(data["org_connection_id"], "conn-r");
    assert_eq!(data["on_revoke"], "delete");
    assert!(data["revoked_at_ms"].as_u64().is_some(), "{data}");
    let deleted = hooks
        .wait_for("hookd.connection.deleted", |r| {
            r.body["type"] == "hookd.connection.deleted"
        })
        .await;
    assert!(deleted.verified);
    assert_eq!(
        deleted.body["data"]["exports"],
        serde_json::json!(["task-r"])
    );
    assert_eq!(deleted.body["data"]["files"], 1);
    t.stop().await;
}

#[tokio::test]
async fn a_failing_push_receiver_gets_retries_recorded_as_attempts() {
    // The setup retries at once, three attempts in all: two refused, the third taken.
    let hooks = Hooks::start(OTHER_SECRET, 2).await;
    let t = setup(api::Options::default(), "keep", &push_to(&hooks)).await;
    t.store_export("conn-f", "task-f", "ex-f").await;
    let push = t.s.wait_for_state("hookd.export.stored.ex-f", "done").await;
    let attempts = push["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{push}");
    assert!(detail(&push, 0).contains("HTTP 500"), "{push}");
    assert!(detail(&push, 1).contains("HTTP 500"), "{push}");
    assert!(detail(&push, 2).contains("HTTP 200"), "{push}");
    let all = hooks.all();
    assert_eq!(all.len(), 3);
    assert!(all
        .iter()
        .all(|r| r.verified && r.webhook_id == "hookd.export.stored.ex-f"));
    t.stop().await;
}

#[tokio::test]
async fn exports_go_to_the_configured_exports_dir_and_are_served_and_removed_from_there() {
    let shared = tempfile::tempdir().unwrap();
    let root = shared.path().join("exports");
    let t = setup(
        api::Options::default(),
        "delete",
        &format!("exports_dir = {:?}", root.display().to_string()),
    )
    .await;
    t.store_export("conn-x", "task-x", "x-1").await;
    assert_eq!(
        file_names(&root.join("conn-x/task-x")),
        ["fhir-1-40.ndjson"]
    );
    assert!(!t.s.dir.path().join("data/exports/conn-x").exists());
    // Served from there: the file and one resource.
    t.s.api_ok("/api/exports/task-x/files/fhir-1-40").await;
    let patient = fhir::Export::new(fhir::seed_of("task-x/fhir-1-40.jsonl"), 40).resource(0);
    let found =
        t.s.api_ok(&format!(
            "/api/connections/conn-x/resources/Patient/{}",
            patient["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(found, patient);
    // A revocation with on_revoke = "delete" removes them there.
    t.send(&t.spec("patient.authorization_revoked", "conn-x"), "x-2")
        .await;
    t.s.wait_for_state("x-2", "done").await;
    assert!(!root.join("conn-x").exists());
}
