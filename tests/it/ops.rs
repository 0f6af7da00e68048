//! Operations: Prometheus metrics, request ids, and logs that never carry secrets or bodies.

use super::binary::{hookd, signal, start, wait_exit, Proc};
use super::receive::base_config;
use super::*;
use std::io::Read;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test]
async fn metrics_need_a_credential_and_count_deliveries_attempts_and_latency() {
    // Only the start-up prune runs: the retention gauge is the test's to set.
    let extra = base_config().replace(
        "[admin]\n",
        "[retention]\nschedule = \"0 0 0 1 1 *\"\n[admin]\nmetrics_token = \"scraper-token-0123456789\"\n",
    );
    let s = TestServer::start(&extra).await;
    s.send_event("std", "m-1", "webhook.test").await;
    s.post_signed("std", OTHER_SECRET, "m", "{}").await;
    s.wait_for_state("m-1", "done").await;
    let url = format!("http://{}/metrics", s.admin);
    assert_eq!(
        s.http.get(&url).send().await.unwrap().status().as_u16(),
        401
    );
    let scrape = || async {
        let r = s.http.get(&url).bearer_auth("scraper-token-0123456789");
        r.send().await.unwrap().text().await.unwrap()
    };
    let text = scrape().await;
    for needle in [
        r#"hookd_deliveries_total{endpoint="std",verdict="accepted"}"#,
        r#"hookd_deliveries_total{endpoint="std",verdict="rejected"}"#,
        "hookd_ack_latency_seconds_bucket",
        r#"hookd_attempts_total{outcome="ok"}"#,
        "hookd_queue_depth",
        "hookd_oldest_queued_age_seconds",
        "hookd_store_bytes",
        r#"hookd_events{state="done"}"#,
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    // Every series docs/alerts.md's rules and the README name exists.
    for doc in ["docs/alerts.md", "README.md"] {
        let doc_text =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(doc)).unwrap();
        for (at, _) in doc_text.match_indices("hookd_") {
            let name: String = doc_text[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if name.len() > "hookd_".len() && !name.ends_with('_') {
                // The whole name: a sample line goes on with its labels or its value (a
                // histogram's, with its buckets).
                let sampled = ["{", " ", "_bucket{"]
                    .iter()
                    .any(|next| text.contains(&format!("\n{name}{next}")));
                assert!(sampled, "{doc} names {name}, which /metrics does not have");
            }
        }
    }
    // The sample itself (its `# HELP` line names it too).
    let sample = |text: &str, value: &str| {
        text.lines()
            .any(|l| l == format!("hookd_retention_behind {value}"))
    };
    assert!(sample(&text, "0"), "{text}");
    // A prune that fell behind shows. (Tests share one process's metrics: another test's
    // scrape may set the gauge from its own pruner in between, so this one asks again.)
    s.mark_retention_behind().await;
    eventually(WAIT, "hookd_retention_behind 1", || async {
        sample(&scrape().await, "1").then_some(())
    })
    .await;
    // The admin token opens it too; the scraper token opens nothing else, and is told so.
    assert_eq!(s.admin_status("/metrics", Some(ADMIN_TOKEN)).await, 200);
    let refused = s
        .http
        .get(format!("http://{}/api/stats", s.admin))
        .bearer_auth("scraper-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    let reason = refused.text().await.unwrap();
    assert!(reason.contains("opens /metrics only"), "{reason}");
    s.stop().await;
}

#[tokio::test]
async fn answers_carry_a_request_id_that_the_log_keeps() {
    let s = TestServer::start(&base_config()).await;
    let a = s.send_event("std", "rid-1", "webhook.test").await;
    let generated = a.headers["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(generated.len(), 32);
    let r = s
        .http
        .post(s.url("std"))
        .header("x-request-id", "sender-trace-42")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "sender-trace-42");
    let list = s.api_ok("/api/deliveries?event_id=rid-1").await;
    let id = list["items"][0]["id"].as_str().unwrap().to_string();
    let d = s.api_ok(&format!("/api/deliveries/{id}")).await;
    assert!(d["response"]["headers"].to_string().contains(&generated));
    s.stop().await;
}

#[tokio::test]
async fn secrets_and_bodies_never_reach_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let forward_secret = "whsec_dGhpcy1pcy10aGUtZm9yd2FyZC1zZWNyZXQtMTIz";
    let text = format!(
        "{}[admin]\ntoken = \"{ADMIN_TOKEN}\"\n[[endpoints]]\nname = \"std\"\nsecrets = [\"{SECRET}\"]\n[endpoints.forward]\nurl = \"http://127.0.0.1:9/unreachable\"\nsecret = \"{forward_secret}\"\n",
        config_text(dir.path(), "")
    );
    let path = dir.path().join("hookd.toml");
    std::fs::write(&path, text).unwrap();
    let mut command = hookd();
    command
        .args(["--config", path.to_str().unwrap()])
        .env("HOOKD_LOG", "debug")
        .stderr(Stdio::piped());
    let Proc {
        mut child,
        receiver,
        admin,
        ..
    } = start(command);
    let http = reqwest::Client::new();
    let marker = "PATIENT-NAME-MARKER-7731";
    let body = format!(
        r#"{{"id":"log-1","type":"patient.request_support","data":{{"name":"{marker}"}}}}"#
    );
    let secret = Secret::parse(SECRET).unwrap();
    let ts = now();
    for (sig, status) in [
        (
            hookd::verify::sign(&secret, "log-1", ts, body.as_bytes()),
            200,
        ),
        ("v1,AAAA".to_string(), 401),
    ] {
        let r = http
            .post(format!("http://{receiver}/webhooks/std"))
            .header("webhook-id", "log-1")
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .header("authorization", "Bearer sender-credential-xyz")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status);
    }
    let r = http
        .get(format!("http://{admin}/api/events/log-1"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("http://{admin}/api/stats"))
        .bearer_auth("wrong-token-wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Wait until the forward attempt failed (and logged its error) once.
    let mut stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let reader = {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = stderr.read(&mut chunk) {
                log.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        })
    };
    let logged = || log.lock().unwrap().contains("attempt failed");
    eventually(WAIT, "the forward failure in the log", || async {
        logged().then_some(())
    })
    .await;
    signal(&child, "TERM");
    reader.join().unwrap();
    let log = log.lock().unwrap().clone();
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());

    assert!(
        log.contains("delivery rejected"),
        "the log should show the rejection:\n{log}"
    );
    assert!(
        log.contains("request_id="),
        "request lines carry their id:\n{log}"
    );
    assert!(
        log.contains("attempt failed"),
        "the forward failure is logged:\n{log}"
    );
    for secret_text in [
        SECRET,
        &SECRET["whsec_".len()..],
        forward_secret,
        &forward_secret["whsec_".len()..],
        ADMIN_TOKEN,
        "sender-credential-xyz",
        marker,
    ] {
        assert!(
            !log.contains(secret_text),
            "`{secret_text}` leaked into the log:\n{log}"
        );
    }
}

#[test]
fn log_json_flag_writes_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let out = hookd()
        .args(["--log-json", "check-config", "/nonexistent.toml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // check-config logs nothing: the flag is refused there rather than silently ignored.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--log-json means nothing"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut command = hookd();
    command
        .arg("--log-json")
        .current_dir(dir.path())
        .env("HOOKD_LISTEN", "127.0.0.1:0")
        .env("HOOKD_ADMIN_LISTEN", "127.0.0.1:0")
        .stderr(Stdio::piped());
    let Proc { mut child, .. } = start(command);
    signal(&child, "TERM");
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    wait_exit(&mut child, Duration::from_secs(30));
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for l in lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{l}");
    }
}
