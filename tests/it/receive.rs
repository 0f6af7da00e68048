//! The receiver's answers, in the documented order, and what each leaves in the log.

use super::*;
use futures_util::future::join_all;
use hookd::process::{Job, ProcessError, Processor};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub fn base_config() -> String {
    format!("[admin]\ntoken = \"{ADMIN_TOKEN}\"\n{}", endpoints())
}

#[tokio::test]
async fn accepted_event_is_stored_queued_and_processed() {
    let s = TestServer::start(&base_config()).await;
    let a = s.send_event("std", "evt-1", "webhook.test").await;
    assert_eq!(a.verdict(), (200, "accepted"));
    assert_eq!(a.headers["content-type"], "application/json");
    let event = s.wait_for_state("evt-1", "done").await;
    assert_eq!(event["event_type"], "webhook.test");
    assert_eq!(event["payload"]["data"]["hello"], "world");
    assert_eq!(event["attempts"][0]["outcome"], "ok");
    s.stop().await;
}

#[tokio::test]
async fn unknown_endpoint_is_404() {
    let s = TestServer::start(&base_config()).await;
    let a = s.send_event("nope", "evt-1", "webhook.test").await;
    assert_eq!(a.verdict(), (404, "rejected"));
    assert_eq!(a.body["reason"], "unknown endpoint");
    let r = s.http.get(s.url("std")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let r = s
        .http
        .post(format!("http://{}/elsewhere", s.receiver))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    s.stop().await;
}

#[tokio::test]
async fn a_request_to_an_unknown_endpoint_is_logged_as_not_read_not_as_empty() {
    let s = TestServer::start(&base_config()).await;
    let a = s.send_event("nope", "evt-1", "webhook.test").await;
    assert_eq!(a.verdict(), (404, "rejected"));
    let bad = s
        .post_signed(
            "std",
            OTHER_SECRET,
            "msg_bad",
            &event_body("evt-2", "webhook.test"),
        )
        .await;
    assert_eq!(bad.status, 401);
    // A refusal is answered before its log entry is written (in cluster mode too).
    s.running.as_ref().unwrap().store.flush().await.unwrap();
    let list = s.api_ok("/api/deliveries?verdict=rejected").await;
    let id = |endpoint: &str| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["endpoint"] == endpoint)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // Refused before its body was read: the log says so instead of "0 bytes".
    let unread = s.api_ok(&format!("/api/deliveries/{}", id("nope"))).await;
    assert_eq!(unread["body_not_read"], "unknown endpoint", "{unread}");
    assert_eq!(unread["body"], "");
    // Refused after reading: the start of its body is kept, and nothing says otherwise.
    let read = s.api_ok(&format!("/api/deliveries/{}", id("std"))).await;
    assert!(read.get("body_not_read").is_none(), "{read}");
    assert!(read["body"].as_str().unwrap().contains("evt-2"), "{read}");
    s.stop().await;
}

#[tokio::test]
async fn body_over_the_limit_is_413_with_or_without_content_length() {
    let s = TestServer::start(&base_config()).await;
    let big = format!(
        "{{\"id\":\"x\",\"type\":\"patient.ehi_export_success\",\"pad\":\"{}\"}}",
        "a".repeat(3000)
    );
    let a = s.post_signed("fasten", SECRET, "msg_big", &big).await;
    assert_eq!(a.verdict(), (413, "rejected"));

    // Chunked, no Content-Length: must still be 413 (never 411), and read no further.
    let mut tcp = tokio::net::TcpStream::connect(s.receiver).await.unwrap();
    let head = "POST /webhooks/fasten HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
    tcp.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..3 {
        let chunk = "a".repeat(1000);
        let _ = tcp
            .write_all(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes())
            .await;
    }
    let _ = tcp.write_all(b"0\r\n\r\n").await;
    let mut reply = String::new();
    let _ = tcp.read_to_string(&mut reply).await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");

    // Under the limit, chunked is fine (then fails on the signature, which is the next check).
    let mut tcp = tokio::net::TcpStream::connect(s.receiver).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(b"2\r\n{}\r\n0\r\n\r\n").await.unwrap();
    let mut reply = String::new();
    tcp.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 401"), "{reply}");
    s.stop().await;
}

#[tokio::test]
async fn missing_or_malformed_signature_headers_are_401() {
    let s = TestServer::start(&base_config()).await;
    let body = event_body("e1", "webhook.test");
    let r = s
        .http
        .post(s.url("std"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let a = Answer::from(r).await;
    assert_eq!(a.verdict(), (401, "rejected"));
    assert!(a.body["reason"].as_str().unwrap().contains("webhook-id"));

    let r = s
        .http
        .post(s.url("std"))
        .header("webhook-id", "m1")
        .header("webhook-timestamp", "yesterday")
        .header("webhook-signature", "v1,abc")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let a = Answer::from(r).await;
    assert_eq!(a.status, 401);
    assert!(a.body["reason"]
        .as_str()
        .unwrap()
        .contains("webhook-timestamp"));

    let a = s.post_signed("std", OTHER_SECRET, "m1", &body).await;
    assert_eq!(a.verdict(), (401, "rejected"));
    assert_eq!(
        a.body["reason"],
        "no v1 signature matches a configured secret"
    );
    s.stop().await;
}

#[tokio::test]
async fn svix_header_aliases_are_accepted() {
    let s = TestServer::start(&base_config()).await;
    let body = event_body("svix-1", "webhook.test");
    let secret = Secret::parse(SECRET).unwrap();
    let ts = now();
    let r = s
        .http
        .post(s.url("std"))
        .header("svix-id", "msg_svix")
        .header("svix-timestamp", ts.to_string())
        .header(
            "svix-signature",
            hookd::verify::sign(&secret, "msg_svix", ts, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(Answer::from(r).await.verdict(), (200, "accepted"));
    s.stop().await;
}

#[tokio::test]
async fn timestamp_tolerance_applies_in_both_directions() {
    let s = TestServer::start(&base_config()).await;
    let body = event_body("t1", "webhook.test");
    let old = s
        .post_signed_at("std", SECRET, "m", now() - 400, &body)
        .await;
    assert_eq!(old.status, 401);
    assert!(
        old.body["reason"].as_str().unwrap().contains("in the past"),
        "{:?}",
        old.body
    );
    let future = s
        .post_signed_at("std", SECRET, "m", now() + 400, &body)
        .await;
    assert_eq!(future.status, 401);
    assert!(future.body["reason"]
        .as_str()
        .unwrap()
        .contains("in the future"));
    let inside = s
        .post_signed_at("std", SECRET, "m", now() - 250, &body)
        .await;
    assert_eq!(inside.verdict(), (200, "accepted"));
    s.stop().await;
}

#[tokio::test]
async fn bodies_without_an_object_id_or_type_are_400() {
    let s = TestServer::start(&base_config()).await;
    for (body, reason) in [
        ("[1,2]", "body is not a JSON object"),
        (r#"{"id":"a"}"#, "body has no `type` (a non-empty string)"),
        (
            r#"{"id":"a","type":7}"#,
            "body has no `type` (a non-empty string)",
        ),
        (
            r#"{"id":"a","type":""}"#,
            "body has no `type` (a non-empty string)",
        ),
    ] {
        let a = s.post_signed("std", SECRET, "m", body).await;
        assert_eq!(a.verdict(), (400, "rejected"), "{body}");
        assert_eq!(a.body["reason"], reason, "{body}");
    }
    // Invalid JSON: the parser's reason, with where (its wording is serde_json's).
    for (body, why) in [
        ("{not json", "key must be a string"),
        (
            r#"{"type":"t.x","id":"a1","id":"a2"}"#,
            "duplicate field `id`",
        ),
    ] {
        let a = s.post_signed("std", SECRET, "m", body).await;
        assert_eq!(a.verdict(), (400, "rejected"), "{body}");
        let reason = a.body["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("body is not a valid JSON object: ")
                && reason.contains(why)
                && reason.contains("line 1 column"),
            "{body}: {reason}"
        );
    }
    // The Fasten profile needs the body id: it is the idempotency key across retries.
    let a = s
        .post_signed(
            "fasten",
            SECRET,
            "m",
            r#"{"type":"patient.ehi_export_success"}"#,
        )
        .await;
    assert_eq!(a.verdict(), (400, "rejected"));
    assert_eq!(a.body["reason"], "body has no `id` (a non-empty string)");
    s.stop().await;
}

#[tokio::test]
async fn standard_body_without_id_is_deduplicated_by_webhook_id() {
    let s = TestServer::start(&base_config()).await;
    let body = r#"{"type":"invoice.paid","amount":3}"#;
    assert_eq!(
        s.post_signed("std", SECRET, "msg_7", body).await.verdict(),
        (200, "accepted")
    );
    assert_eq!(
        s.post_signed("std", SECRET, "msg_7", body).await.verdict(),
        (200, "duplicate")
    );
    assert_eq!(
        s.post_signed("std", SECRET, "msg_8", body).await.verdict(),
        (200, "accepted")
    );
    s.stop().await;
}

#[tokio::test]
async fn unselected_event_type_is_filtered_and_not_queued() {
    let s = TestServer::start(&base_config()).await;
    let a = s
        .send_event("fasten", "f1", "patient.connection_success")
        .await;
    assert_eq!(a.verdict(), (200, "filtered"));
    let a = s
        .send_event("fasten", "f2", "patient.ehi_export_failed")
        .await;
    assert_eq!(a.verdict(), (200, "accepted"));
    s.wait_for_state("f2", "done").await;
    let stats = s.stats_with("done", 1).await;
    assert_eq!(stats["deliveries"]["filtered"], 1);
    assert_eq!(
        stats["events"]["done"], 1,
        "only the selected event became an event"
    );
    s.api_status("/api/events/f1", 404).await;
    s.stop().await;
}

#[tokio::test]
async fn duplicate_delivery_is_acknowledged_but_not_requeued() {
    let s = TestServer::start(&base_config()).await;
    // Ten concurrent deliveries of one id: exactly one is accepted.
    let answers = join_all((0..10).map(|_| s.send_event("std", "dup-1", "webhook.test"))).await;
    let accepted = answers
        .iter()
        .filter(|a| a.verdict() == (200, "accepted"))
        .count();
    let duplicate = answers
        .iter()
        .filter(|a| a.verdict() == (200, "duplicate"))
        .count();
    assert_eq!((accepted, duplicate), (1, 9));
    let event = s.wait_for_state("dup-1", "done").await;
    assert_eq!(event["attempts"].as_array().unwrap().len(), 1);
    // The same id on another endpoint is another event.
    let a = s
        .send_event("fasten", "dup-1", "patient.ehi_export_success")
        .await;
    assert_eq!(a.verdict(), (200, "accepted"));
    let stats = s.api_ok("/api/stats").await;
    assert_eq!(stats["deliveries"]["duplicate"], 9);
    assert_eq!(stats["deliveries"]["accepted"], 2);
    s.stop().await;
}

#[tokio::test]
async fn old_and_new_secret_both_verify_during_rotation() {
    let s = TestServer::start(&base_config()).await;
    let one = event_body("r1", "patient.ehi_export_success");
    let two = event_body("r2", "patient.ehi_export_success");
    assert_eq!(
        s.post_signed("fasten", SECRET, "m1", &one).await.verdict(),
        (200, "accepted")
    );
    assert_eq!(
        s.post_signed("fasten", OTHER_SECRET, "m2", &two)
            .await
            .verdict(),
        (200, "accepted")
    );
    // The old secret is not valid on an endpoint that only knows the new one.
    let a = s
        .post_signed("std", OTHER_SECRET, "m3", &event_body("r3", "x"))
        .await;
    assert_eq!(a.status, 401);
    s.stop().await;
}

/// A processor that holds every attempt until [`Gate::open`]: keeps the backlog full, and
/// shows what happens before processing can finish.
pub struct Gate(pub tokio::sync::Semaphore);

impl Gate {
    /// Lets every held and later attempt through.
    fn open(&self) {
        self.0.close();
    }
}

impl Processor for Gate {
    fn name(&self) -> &'static str {
        "gate"
    }
    fn process<'a>(
        &'a self,
        _job: &'a Job,
    ) -> futures_util::future::BoxFuture<'a, Result<String, ProcessError>> {
        Box::pin(async move {
            // No permit is ever added: this waits until the semaphore is closed.
            let _ = self.0.acquire().await;
            Ok("let through".into())
        })
    }
}

/// hookd with the `std` endpoint's processor replaced by a closed [`Gate`].
async fn start_gated(extra: &str) -> (TestServer, Arc<Gate>) {
    let gate = Arc::new(Gate(tokio::sync::Semaphore::new(0)));
    let mut processors = Processors::default();
    processors.set("std", gate.clone());
    let s = TestServer::start_with(&format!("{extra}{}", base_config()), Some(processors)).await;
    (s, gate)
}

#[tokio::test]
async fn the_answer_does_not_wait_for_processing() {
    let (s, gate) = start_gated("").await;
    let a = s.send_event("std", "bg-1", "webhook.test").await;
    // The processor cannot have finished: the gate is still closed.
    assert_eq!(a.verdict(), (200, "accepted"));
    let event = s.api_ok("/api/events/bg-1").await;
    assert!(
        event["state"] == "queued" || event["state"] == "processing",
        "{event}"
    );
    gate.open();
    let event = s.wait_for_state("bg-1", "done").await;
    assert_eq!(event["attempts"][0]["detail"], "let through");
    s.stop().await;
}

#[tokio::test]
async fn queue_above_high_water_answers_503_with_retry_after() {
    let (s, gate) = start_gated("[receive]\nqueue_high_water = 2\n").await;
    assert_eq!(
        s.send_event("std", "h1", "a").await.verdict(),
        (200, "accepted")
    );
    assert_eq!(
        s.send_event("std", "h2", "a").await.verdict(),
        (200, "accepted")
    );
    let a = s.send_event("std", "h3", "a").await;
    assert_eq!(a.verdict(), (503, "rejected"));
    assert_eq!(a.headers["retry-after"], "30");
    // Refused requests are logged without making the answer wait (cluster mode commits
    // them with the writer's next batch): seen a moment later.
    let list = eventually(WAIT, "the refused delivery logged", || async {
        let list = s.api_ok("/api/deliveries?verdict=rejected").await;
        (!list["items"].as_array().unwrap().is_empty()).then_some(list)
    })
    .await;
    assert_eq!(list["items"][0]["status"], 503);
    gate.open();
    s.stop().await;
}

#[tokio::test]
async fn delivery_log_keeps_request_response_and_redacts_credentials() {
    let s = TestServer::start(&base_config()).await;
    let body = event_body("log-1", "webhook.test");
    let secret = Secret::parse(SECRET).unwrap();
    let ts = now();
    let r = s
        .http
        .post(s.url("std"))
        .header("webhook-id", "msg_log")
        .header("webhook-timestamp", ts.to_string())
        .header(
            "webhook-signature",
            hookd::verify::sign(&secret, "msg_log", ts, body.as_bytes()),
        )
        .header("authorization", "Bearer do-not-keep-me")
        .header("x-custom", "kept")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Processing runs after the answer: wait for it before reading the delivery's event.
    s.wait_for_state("log-1", "done").await;
    let list = s.api_ok("/api/deliveries?event_id=log-1").await;
    let path = &format!(
        "/api/deliveries/{}",
        list["items"][0]["id"].as_str().unwrap()
    );
    // The latency is written after the answer went out: give the writer a moment.
    let server = &s;
    let d = eventually(WAIT, "the delivery's latency", || async move {
        let d = server.api_ok(path).await;
        d["latency_us"].is_u64().then_some(d)
    })
    .await;
    assert_eq!(d["body"], body);
    assert_eq!(d["verdict"], "accepted");
    assert_eq!(d["response"]["status"], 200);
    assert!(d["response"]["body"].as_str().unwrap().contains("accepted"));
    assert!(d["latency_us"].as_u64().unwrap() > 0);
    assert!(d["remote_addr"].as_str().unwrap().starts_with("127.0.0.1:"));
    let headers = d["request_headers"].to_string();
    assert!(headers.contains("x-custom") && headers.contains("kept"));
    assert!(!headers.contains("do-not-keep-me"), "{headers}");
    assert!(headers.contains("<redacted>"));
    s.stop().await;
}

#[tokio::test]
async fn rejected_flood_is_counted_beyond_the_logging_rate_with_capped_bodies() {
    let extra = format!(
        "[receive]\nrejected_log_per_sec = 0.5\nrejected_body_bytes = 16\n{}",
        base_config()
    );
    let s = TestServer::start(&extra).await;
    let body = event_body("flood", "webhook.test");
    for _ in 0..30 {
        let a = s.post_signed("std", OTHER_SECRET, "m", &body).await;
        assert_eq!(a.status, 401);
    }
    // Logged and counted without making the answers wait: all 30 a moment later.
    let logged = eventually(WAIT, "30 rejections logged or counted", || async {
        let stats = s.api_ok("/api/stats").await;
        let logged = stats["deliveries"]["rejected"].as_u64().unwrap();
        let unlogged = stats["rejected_unlogged"].as_u64().unwrap();
        (logged + unlogged == 30).then_some(logged)
    })
    .await;
    assert!(logged <= 7, "burst of 5 plus refill, got {logged}");
    let list = s.api_ok("/api/deliveries?verdict=rejected&limit=1").await;
    let id = list["items"][0]["id"].as_str().unwrap().to_string();
    let d = s.api_ok(&format!("/api/deliveries/{id}")).await;
    assert_eq!(d["body"].as_str().unwrap().len(), 16);
    assert_eq!(d["body_truncated"], true);
    assert_eq!(d["body_bytes"], body.len());
    s.stop().await;
}
