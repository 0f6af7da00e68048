//! The admin API: authentication, listing with filters and cursor, events, replay, stats.

use super::receive::base_config;
use super::*;

#[tokio::test]
async fn api_needs_the_bearer_token_when_one_is_configured() {
    let s = TestServer::start(&base_config()).await;
    assert_eq!(s.admin_status("/api/stats", None).await, 401);
    assert_eq!(
        s.admin_status("/api/stats", Some("wrong-token-wrong-token"))
            .await,
        401
    );
    assert_eq!(s.admin_status("/api/stats", Some(ADMIN_TOKEN)).await, 200);
    // Health checks carry no data and stay open for probes.
    assert_eq!(s.admin_status("/healthz", None).await, 200);
    s.stop().await;
}

#[tokio::test]
async fn loopback_api_without_a_configured_token_is_open() {
    let s = TestServer::start(&endpoints()).await;
    let r = s
        .http
        .get(format!("http://{}/api/stats", s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    s.stop().await;
}

#[tokio::test]
async fn deliveries_are_listed_newest_first_with_filters_and_a_cursor() {
    let s = TestServer::start(&base_config()).await;
    let before = hookd::clock::now_ms();
    for i in 0..5 {
        s.send_event("std", &format!("list-{i}"), "webhook.test")
            .await;
    }
    s.send_event("fasten", "list-f", "patient.ehi_export_failed")
        .await;
    s.send_event("fasten", "list-g", "patient.request_support")
        .await; // filtered
    s.post_signed("std", OTHER_SECRET, "m", "{}").await; // rejected

    // Page through the std endpoint two at a time: all five, newest first, no overlap.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = s
            .api_ok(&format!(
                "/api/deliveries?endpoint=std&verdict=accepted&limit=2&cursor={cursor}"
            ))
            .await;
        for item in page["items"].as_array().unwrap() {
            seen.push(item["event_id"].as_str().unwrap().to_string());
            assert!(item["state"].as_str().is_some());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, ["list-4", "list-3", "list-2", "list-1", "list-0"]);

    let count = |v: &serde_json::Value| v["items"].as_array().unwrap().len();
    let v = s.api_ok("/api/deliveries?verdict=filtered").await;
    assert_eq!(count(&v), 1);
    assert_eq!(v["items"][0]["event_id"], "list-g");
    let v = s.api_ok("/api/deliveries?verdict=rejected").await;
    assert_eq!(count(&v), 1);
    assert_eq!(v["items"][0]["status"], 401);
    let v = s
        .api_ok("/api/deliveries?type=patient.ehi_export_failed")
        .await;
    assert_eq!(count(&v), 1);
    let v = s
        .api_ok("/api/deliveries?endpoint=fasten&type=webhook.test")
        .await;
    assert_eq!(count(&v), 0);
    let v = s.api_ok("/api/deliveries?event_id=list-3").await;
    assert_eq!(count(&v), 1);
    let v = s.api_ok("/api/deliveries").await;
    assert_eq!(count(&v), 8);
    let v = s.api_ok(&format!("/api/deliveries?from={before}")).await;
    assert_eq!(count(&v), 8);
    let v = s
        .api_ok(&format!("/api/deliveries?to={}", before - 1))
        .await;
    assert_eq!(count(&v), 0);

    let v = s.api_status("/api/deliveries?verdict=maybe", 400).await;
    assert!(v["reason"].as_str().unwrap().contains("verdict"));
    s.api_status("/api/deliveries?limit=many", 400).await;
    s.api_status("/api/deliveries/12345", 404).await;
    s.api_status("/api/nothing", 404).await;
    s.stop().await;
}

#[tokio::test]
async fn events_are_found_by_seq_or_event_id_and_stats_count_them() {
    let s = TestServer::start(&base_config()).await;
    s.send_event("std", "ev-1", "webhook.test").await;
    let by_id = s.wait_for_state("ev-1", "done").await;
    let seq = by_id["seq"].as_str().unwrap();
    let by_seq = s.api_ok(&format!("/api/events/{seq}")).await;
    assert_eq!(by_seq["event_id"], "ev-1");
    s.api_status("/api/events/ev-1?endpoint=fasten", 404).await;
    let stats = s.stats_with("done", 1).await;
    assert_eq!(stats["deliveries"]["accepted"], 1);
    assert_eq!(stats["events"]["done"], 1);
    assert_eq!(stats["queue_depth"], 0);
    assert_eq!(stats["oldest_queued_age_secs"], 0);
    assert!(stats["store_bytes"].as_u64().unwrap() > 0);
    s.stop().await;
}

#[tokio::test]
async fn done_event_can_be_replayed_and_is_processed_again() {
    let s = TestServer::start(&base_config()).await;
    s.send_event("std", "rp-1", "webhook.test").await;
    s.wait_for_state("rp-1", "done").await;
    let v = s.api_post_status("/api/events/rp-1/replay", 202).await;
    assert_eq!(v["status"], "queued");
    let e = eventually(WAIT, "the replay being processed", || async {
        let e = s.api_ok("/api/events/rp-1").await;
        (e["state"] == "done" && e["attempts"].as_array().unwrap().len() == 2).then_some(e)
    })
    .await;
    assert_eq!(e["replays"], 1);
    s.stop().await;
}

#[tokio::test]
async fn replay_of_unknown_event_is_404_and_get_is_405() {
    let s = TestServer::start(&base_config()).await;
    s.api_post_status("/api/events/nope/replay", 404).await;
    s.api_status("/api/events/nope/replay", 405).await;
    s.stop().await;
}

#[tokio::test]
async fn meta_names_the_verdicts_states_and_endpoints() {
    let s = TestServer::start(&base_config()).await;
    assert_eq!(s.admin_status("/api/meta", None).await, 401);
    let (status, meta) = s.api("/api/meta").await;
    assert_eq!(status, 200);
    assert_eq!(
        meta,
        serde_json::json!({
            "verdicts": ["accepted", "duplicate", "filtered", "rejected"],
            "states": ["queued", "processing", "done", "retrying", "dead"],
            "endpoints": [
                { "name": "std", "profile": "standard", "processor": "log" },
                { "name": "fasten", "profile": "fasten", "processor": "fasten" },
            ],
        })
    );
    s.stop().await;
}

#[tokio::test]
async fn every_successful_get_of_the_api_carries_an_etag_and_answers_304() {
    let s = TestServer::start(&base_config()).await;
    s.send_event("std", "tag-1", "webhook.test").await;
    let event = s.wait_for_state("tag-1", "done").await;
    let delivery = event["delivery_id"].as_str().unwrap();
    let paths = [
        "/api/meta".to_string(),
        "/api/session".to_string(),
        "/api/stats".to_string(),
        "/api/chart?hours=2".to_string(),
        "/api/deliveries".to_string(),
        format!("/api/deliveries/{delivery}"),
        "/api/events".to_string(),
        "/api/events/tag-1".to_string(),
        "/api/connections".to_string(),
    ];
    for path in paths {
        let get = |etag: Option<&str>| {
            let mut r = s
                .http
                .get(format!("http://{}{path}", s.admin))
                .bearer_auth(ADMIN_TOKEN);
            if let Some(tag) = etag {
                r = r.header("if-none-match", tag);
            }
            r.send()
        };
        let r = get(None).await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        let etag = r.headers()["etag"].to_str().unwrap().to_owned();
        let again = get(Some(&etag)).await.unwrap();
        assert_eq!(again.status().as_u16(), 304, "{path}");
        assert_eq!(again.headers()["etag"], etag.as_str(), "{path}");
        assert!(again.bytes().await.unwrap().is_empty(), "{path}");
        let other = get(Some("\"something-else\"")).await.unwrap();
        assert_eq!(other.status().as_u16(), 200, "{path}");
    }
    // Errors carry none.
    let r = s
        .http
        .get(format!("http://{}/api/events/nope", s.admin))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert!(r.headers().get("etag").is_none());
    s.stop().await;
}

#[tokio::test]
async fn a_login_body_over_4_kib_is_413() {
    let s = TestServer::start(&super::ui::password_config("")).await;
    let url = format!("http://{}/api/login", s.admin);
    let big = serde_json::json!({ "password": "x".repeat(5000) });
    let r = s.http.post(&url).json(&big).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let r = s.http.post(&url).body("not json").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    s.stop().await;
}
