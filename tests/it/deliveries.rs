//! The delivery log's finding aids: type prefixes, search in bodies with a cursor, totals,
//! a duplicate's original (and whether its body differs), and the whole payload of a
//! delivery whose logged body was cut short.

use super::receive::base_config;
use super::*;
use serde_json::Value;

fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["event_id"].as_str().unwrap_or("").to_string())
        .collect()
}

fn index_now(s: &TestServer) {
    s.running.as_ref().unwrap().store.index_now().unwrap();
}

#[tokio::test]
async fn a_type_ending_in_a_dot_or_star_matches_every_type_it_starts() {
    let s = TestServer::start(&base_config()).await;
    for (id, kind) in [
        ("c-1", "patient.connection_success"),
        ("w-1", "webhook.test"),
        ("f-1", "patient.ehi_export_failed"),
        ("x-1", "patient.ehi_export_success"),
        ("p-1", "patients.other"),
    ] {
        assert_eq!(s.send_event("std", id, kind).await.verdict().0, 200);
    }
    // Twice: straight from the records (not indexed yet), then through the type index,
    // merged from each patient type.
    for indexed in [false, true] {
        if indexed {
            index_now(&s);
        }
        let patient = ids(&s.api_ok("/api/deliveries?type=patient.").await);
        assert_eq!(patient, ["x-1", "f-1", "c-1"], "indexed: {indexed}");
        let star = ids(&s.api_ok("/api/deliveries?type=patient.ehi*").await);
        assert_eq!(star, ["x-1", "f-1"], "indexed: {indexed}");
        // Without the dot or star the type is exact.
        assert!(ids(&s.api_ok("/api/deliveries?type=patient").await).is_empty());
        let one = ids(&s.api_ok("/api/deliveries?type=webhook.test").await);
        assert_eq!(one, ["w-1"]);
        // With a cursor the merged index continues where the page stopped.
        let first = s.api_ok("/api/deliveries?type=patient.&limit=2").await;
        assert_eq!(ids(&first), ["x-1", "f-1"]);
        let cursor = first["next_cursor"].as_str().unwrap();
        let rest = s
            .api_ok(&format!(
                "/api/deliveries?type=patient.&limit=2&cursor={cursor}"
            ))
            .await;
        assert_eq!(ids(&rest), ["c-1"]);
    }
    // The events list and the replay filter read the pattern the same way.
    let events = s.api_ok("/api/events?type=patient.ehi_").await;
    assert_eq!(
        events["items"].as_array().unwrap().len(),
        0,
        "no dot or star"
    );
    let events = s.api_ok("/api/events?type=patient.*").await;
    assert_eq!(events["items"].as_array().unwrap().len(), 3);
    // Known types are offered to the filter.
    let meta = s.api_ok("/api/meta").await;
    assert!(meta["event_types"]
        .as_array()
        .unwrap()
        .contains(&Value::from("patient.ehi_export_failed")));
    assert_eq!(meta["endpoints"][0]["path"], "/webhooks/std");
    assert_eq!(meta["receiver"], s.receiver.to_string());
    s.stop().await;
}

#[tokio::test]
async fn bodies_are_searched_in_bounded_steps_that_hand_back_a_cursor() {
    let s = TestServer::start(&base_config()).await;
    let body = |id: &str, name: &str| {
        serde_json::json!({"id": id, "type": "patient.connection_success",
            "data": {"org_connection_id": format!("conn-{id}"), "patient": name}})
        .to_string()
    };
    for i in 0..12 {
        let name = if i % 4 == 0 {
            "Ada Lovelace"
        } else {
            "Grace Hopper"
        };
        let id = format!("s-{i}");
        let a = s
            .post_signed("std", SECRET, &format!("msg_{id}"), &body(&id, name))
            .await;
        assert_eq!(a.status, 200);
    }
    // A rejected delivery's logged body is searched too.
    let a = s
        .post_signed("std", OTHER_SECRET, "msg_bad", &body("bad", "Ada Lovelace"))
        .await;
    assert_eq!(a.status, 401);
    index_now(&s);
    // A refusal is answered before its log entry is written (in cluster mode too).
    s.running.as_ref().unwrap().store.flush().await.unwrap();
    let all = s.api_ok("/api/deliveries?q=ada%20LOVELACE&total=1").await;
    assert_eq!(ids(&all), ["bad", "s-8", "s-4", "s-0"]);
    assert_eq!(all["total"], serde_json::json!({"count": 4, "exact": true}));
    // Paged: each page ends with a cursor to continue from, until the log is searched.
    let mut found = Vec::new();
    let mut cursor: Option<String> = None;
    for step in 0.. {
        assert!(step < 20, "the cursors go round: {found:?}");
        let path = match &cursor {
            Some(c) => format!("/api/deliveries?q=lovelace&verdict=accepted&limit=1&cursor={c}"),
            None => "/api/deliveries?q=lovelace&verdict=accepted&limit=1".to_string(),
        };
        let page = s.api_ok(&path).await;
        found.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(found, ["s-8", "s-4", "s-0"]);
    assert!(ids(&s.api_ok("/api/deliveries?q=nobody").await).is_empty());
    s.stop().await;
}

/// Deliveries between the two matches of the search past its budget: more than two steps
/// of a body search read on the embedded store (1,000 records each).
const BETWEEN: u64 = 2_100;

#[tokio::test]
async fn a_body_search_goes_past_its_scan_budget_by_its_cursors() {
    let s = TestServer::start(&base_config()).await;
    let store = s.running.as_ref().unwrap().store.clone();
    let body = |patient: &str| {
        serde_json::json!({"type": "patient.connection_success", "data": {"patient": patient}})
            .to_string()
    };
    let start = hookd::clock::now_ms() - 60_000;
    deliver_logging(&store, "old-match", &body("Ada Lovelace"), start).await;
    // In batches, so that the writer commits many at once.
    let other = body("Grace Hopper");
    for batch in 0..BETWEEN.div_ceil(100) {
        let mut tasks = tokio::task::JoinSet::new();
        for i in batch * 100..((batch + 1) * 100).min(BETWEEN) {
            let (store, other) = (store.clone(), other.clone());
            tasks.spawn(async move {
                deliver_logging(&store, &format!("other-{i}"), &other, start + 1 + i).await
            });
        }
        tasks.join_all().await;
    }
    deliver_logging(
        &store,
        "new-match",
        &body("Ada Lovelace"),
        start + 1 + BETWEEN,
    )
    .await;
    index_now(&s);

    // Step by step, as the API takes them: each step reads a bounded number of records and
    // hands back a cursor to go on from, whether it found something or not.
    let filter = hookd::store::DeliveryFilter {
        body_contains: Some("lovelace".into()),
        ..Default::default()
    };
    let mut steps: Vec<(Vec<String>, bool)> = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list_deliveries(&filter, cursor, 50).unwrap();
        let found = page.items.iter().filter_map(|d| d.event_id.clone());
        steps.push((found.collect(), page.next_cursor.is_some()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(steps.len() <= 5, "{steps:?}");
    }
    let found: Vec<&String> = steps.iter().flat_map(|(ids, _)| ids).collect();
    assert_eq!(found, ["new-match", "old-match"], "{steps:?}");
    // Each store reads 1,000 records a step: the new match and a cursor, nothing but a
    // cursor, then the old match.
    let step = |ids: &[&str], more: bool| (ids.iter().map(|i| i.to_string()).collect(), more);
    assert_eq!(
        steps,
        [
            step(&["new-match"], true),
            step(&[], true),
            step(&["old-match"], false)
        ]
    );

    // The API goes on from cursors too, and finds both; its count, which reads a bounded
    // number of records as well, says when it stopped short.
    let mut found = Vec::new();
    let mut path = "/api/deliveries?q=LOVELACE&total=1".to_string();
    for step in 0.. {
        assert!(step < 20, "the cursors go round: {found:?}");
        let page = s.api_ok(&path).await;
        found.extend(ids(&page));
        if let Some(total) = page.get("total") {
            let n = total["count"].as_u64().unwrap();
            if total["exact"] == true {
                assert_eq!(n, 2, "{total}");
            } else {
                assert!(n < 2, "{total}");
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/deliveries?q=LOVELACE&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(found, ["new-match", "old-match"]);
    s.stop().await;
}

#[tokio::test]
async fn totals_are_exact_when_counted_and_a_lower_bound_past_the_budget() {
    if crate::postgres::sled_only() {
        return;
    }
    let s = TestServer::start(&base_config()).await;
    for i in 0..7 {
        let kind = if i < 5 {
            "patient.ehi_export_success"
        } else {
            "webhook.test"
        };
        s.send_event("std", &format!("t-{i}"), kind).await;
    }
    s.send_event("std", "t-0", "patient.ehi_export_success")
        .await; // a duplicate
    for indexed in [false, true] {
        if indexed {
            index_now(&s);
        }
        let total = |path: &'static str| {
            let s = &s;
            async move { s.api_ok(path).await["total"].clone() }
        };
        let exact = |n: u64| serde_json::json!({"count": n, "exact": true});
        assert_eq!(total("/api/deliveries?total=1&limit=1").await, exact(8));
        assert_eq!(
            total("/api/deliveries?total=1&type=patient.").await,
            exact(6)
        );
        assert_eq!(
            total("/api/deliveries?total=1&type=patient.&verdict=accepted").await,
            exact(5)
        );
        assert_eq!(
            total("/api/deliveries?total=1&verdict=duplicate").await,
            exact(1)
        );
        assert_eq!(
            total("/api/deliveries?total=1&endpoint=fasten").await,
            exact(0)
        );
    }
    // The live refresh does not ask for the total and does not pay for it.
    assert!(s.api_ok("/api/deliveries").await.get("total").is_none());
    s.stop().await;
}

#[tokio::test]
async fn a_large_log_is_counted_up_to_a_bound() {
    if crate::postgres::sled_only() {
        return;
    }
    let s = TestServer::start(&base_config()).await;
    let store = s.running.as_ref().unwrap().store.clone();
    let start = hookd::clock::now_ms() - 60_000;
    // In batches, so that the writer commits many at once.
    for batch in 0..52u64 {
        let mut tasks = tokio::task::JoinSet::new();
        for i in batch * 100..(batch + 1) * 100 {
            let store = store.clone();
            tasks.spawn(async move { deliver(&store, &format!("bulk-{i}"), start + i).await });
        }
        tasks.join_all().await;
    }
    index_now(&s);
    // Counting the index keys of a single condition is exact this far; a condition that
    // needs each record read (a search in bodies) stops at its bound and says so.
    let all = s.api_ok("/api/deliveries?total=1&verdict=accepted").await;
    assert_eq!(all["total"]["count"], 5_200);
    assert_eq!(all["total"]["exact"], true);
    let two = s
        .api_ok("/api/deliveries?total=1&verdict=accepted&q=no-such-text")
        .await;
    assert_eq!(two["total"]["exact"], false, "{}", two["total"]);
    s.stop().await;
}

#[tokio::test]
async fn a_duplicate_links_its_original_and_says_when_its_body_differs() {
    let s = TestServer::start(&base_config()).await;
    let body = |note: &str| {
        serde_json::json!({"id": "dup-1", "type": "patient.connection_success",
            "data": {"note": note}})
        .to_string()
    };
    let first = s
        .post_signed("std", SECRET, "msg_dup-1", &body("first"))
        .await;
    assert_eq!(first.verdict(), (200, "accepted"));
    let same = s
        .post_signed("std", SECRET, "msg_dup-1", &body("first"))
        .await;
    assert_eq!(same.verdict(), (200, "duplicate"));
    let other = s
        .post_signed("std", SECRET, "msg_dup-1", &body("changed"))
        .await;
    assert_eq!(other.verdict(), (200, "duplicate"));
    s.wait_for_state("dup-1", "done").await;
    // Through the event id index too: the duplicates by their entries, the accepted
    // original (which has none) by its dedup key.
    let row_ids = |list: &Value| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].clone())
            .collect::<Vec<_>>()
    };
    let unindexed = row_ids(&s.api_ok("/api/deliveries?event_id=dup-1").await);
    index_now(&s);
    let list = s.api_ok("/api/deliveries?event_id=dup-1").await;
    assert_eq!(row_ids(&list), unindexed);
    let rows = list["items"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let (changed, repeated, original) = (&rows[0], &rows[1], &rows[2]);
    let original_id = original["id"].as_str().unwrap();
    assert_eq!(original["state"], "done");
    assert!(original.get("original_delivery_id").is_none());
    for (dup, differs) in [(repeated, false), (changed, true)] {
        assert_eq!(dup["verdict"], "duplicate");
        assert_eq!(dup["original_delivery_id"], original_id);
        assert_eq!(dup["body_differs"], differs);
        // The original's processing state is not the duplicate's own.
        assert_eq!(dup["state"], Value::Null);
    }
    let one = s
        .api_ok(&format!(
            "/api/deliveries/{}",
            changed["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(one["original_delivery_id"], original_id);
    assert_eq!(one["body_differs"], true);
    s.stop().await;
}

#[tokio::test]
async fn a_truncated_body_comes_with_the_whole_payload_from_its_event() {
    let extra = format!("[receive]\nlog_body_bytes = 64\n{}", base_config());
    let s = TestServer::start(&extra).await;
    let body = serde_json::json!({"id": "big-1", "type": "patient.ehi_export_success",
        "data": {"download_links": ["https://api.example/export/1", "https://api.example/export/2"],
                 "stats": {"Patient": 1, "Observation": 420}}})
    .to_string();
    assert!(body.len() > 64);
    let a = s.post_signed("std", SECRET, "msg_big-1", &body).await;
    assert_eq!(a.verdict(), (200, "accepted"));
    let dup = s.post_signed("std", SECRET, "msg_big-1", &body).await;
    assert_eq!(dup.verdict(), (200, "duplicate"));
    let bad = s.post_signed("std", OTHER_SECRET, "msg_big-2", &body).await;
    assert_eq!(bad.status, 401);
    let list = s.api_ok("/api/deliveries").await;
    let rows = list["items"].as_array().unwrap();
    for row in rows {
        let d = s
            .api_ok(&format!("/api/deliveries/{}", row["id"].as_str().unwrap()))
            .await;
        if d["verdict"] == "rejected" {
            // Nothing was stored beyond the logged start.
            assert!(d.get("full_body").is_none());
        } else {
            assert_eq!(d["body_truncated"], true, "{d}");
            assert_eq!(d["body"].as_str().unwrap().len(), 64);
            assert_eq!(d["full_body"], body.as_str(), "{}", d["verdict"]);
        }
    }
    // A short body needs no second copy.
    let small = r#"{"id":"small-1","type":"webhook.test"}"#;
    assert_eq!(
        s.post_signed("std", SECRET, "msg_s", small).await.status,
        200
    );
    let small = s.api_ok("/api/deliveries?event_id=small-1").await;
    let id = small["items"][0]["id"].as_str().unwrap();
    let d = s.api_ok(&format!("/api/deliveries/{id}")).await;
    assert_eq!(d["body_truncated"], false);
    assert!(d.get("full_body").is_none());
    s.stop().await;
}
