//! The admin API: authentication, listing with filters and cursor, events, replay (and its
//! confirmation), stats, backups into `admin.backup_dir`, and the same-origin JSON rule for
//! state-changing requests.

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
    // The scheme's name is case-insensitive; a token alone, with no scheme, is not one.
    for (header, status) in [
        (format!("bearer {ADMIN_TOKEN}"), 200),
        (format!("BEARER  {ADMIN_TOKEN}"), 200),
        (ADMIN_TOKEN.to_string(), 401),
        (format!("Basic {ADMIN_TOKEN}"), 401),
    ] {
        let r = s
            .http
            .get(format!("http://{}/api/stats", s.admin))
            .header("authorization", &header)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{header}");
    }
    // HEAD answers as GET does, without the body; a POST route is not a GET one.
    let head = |path: &str| {
        s.http
            .head(format!("http://{}{path}", s.admin))
            .bearer_auth(ADMIN_TOKEN)
            .send()
    };
    let r = head("/api/stats").await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().contains_key("etag"));
    assert!(r.bytes().await.unwrap().is_empty());
    assert_eq!(head("/api/backup").await.unwrap().status().as_u16(), 405);
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
    // Each answer is checked, so that a listing below that misses one says which side failed.
    for i in 0..5 {
        let a = s
            .send_event("std", &format!("list-{i}"), "webhook.test")
            .await;
        assert_eq!(a.verdict(), (200, "accepted"), "{a:?}");
    }
    let a = s
        .send_event("fasten", "list-f", "patient.ehi_export_failed")
        .await;
    assert_eq!(a.verdict(), (200, "accepted"), "{a:?}");
    let a = s
        .send_event("fasten", "list-g", "patient.request_support")
        .await;
    assert_eq!(a.verdict(), (200, "filtered"), "{a:?}");
    let a = s.post_signed("std", OTHER_SECRET, "m", "{}").await;
    assert_eq!(a.status, 401, "{a:?}");

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
    assert_eq!(count(&v), 1, "{v}");
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
                { "name": "std", "profile": "standard", "processor": "log", "path": "/webhooks/std" },
                { "name": "fasten", "profile": "fasten", "processor": "fasten", "path": "/webhooks/fasten" },
            ],
            "event_types": [],
            "receiver": s.receiver.to_string(),
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
        "/api/chart?range=hour".to_string(),
        "/api/errors".to_string(),
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
    let origin = format!("http://{}", s.admin);
    let big = serde_json::json!({ "password": "x".repeat(5000) });
    let post = || s.http.post(&url).header("origin", &origin);
    let r = post().json(&big).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let r = post()
        .header("content-type", "application/json")
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    s.stop().await;
}

/// `PASSWORD` login (no token) with the usual endpoints.
fn password_only() -> String {
    super::ui::password_config("")
}

#[tokio::test]
async fn a_cross_site_login_is_refused_and_does_not_count_against_the_limit() {
    let s = TestServer::start(&password_only()).await;
    let url = format!("http://{}/api/login", s.admin);
    let same = format!("http://{}", s.admin);
    // What a page elsewhere can make the operator's browser send without asking: a text/plain
    // POST naming its own origin. Many of them: more than the failed-login limit.
    for i in 0..8 {
        let r = s
            .http
            .post(&url)
            .header("origin", "https://evil.example")
            .header("content-type", "text/plain")
            .body(format!("{{\"password\":\"guess-{i}\"}}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403);
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(
            body["reason"].as_str().unwrap().contains("cross-site"),
            "{body}"
        );
    }
    // The browser's own word wins over an Origin that happens to match.
    let r = s
        .http
        .post(&url)
        .header("origin", &same)
        .header("sec-fetch-site", "cross-site")
        .json(&serde_json::json!({ "password": "guess" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // No origin at all, or same-origin but not JSON: refused too.
    let r = s
        .http
        .post(&url)
        .json(&serde_json::json!({ "password": "guess" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = s
        .http
        .post(&url)
        .header("sec-fetch-site", "same-origin")
        .header("content-type", "text/plain")
        .body(format!("{{\"password\":\"{}\"}}", super::ui::PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    // The operator's own login still works at once: none of the above was counted.
    let r = s
        .http
        .post(&url)
        .header("origin", &same)
        .json(&serde_json::json!({ "password": super::ui::PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = s
        .http
        .post(&url)
        .header("sec-fetch-site", "same-origin")
        .json(&serde_json::json!({ "password": super::ui::PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    s.stop().await;
}

#[tokio::test]
async fn a_cookie_request_must_be_same_origin_json_but_a_token_request_need_not() {
    let s = TestServer::start(&password_only()).await;
    s.send_event("std", "so-1", "webhook.test").await;
    let l = super::ui::login(&s).await;
    eventually(WAIT, "so-1 done", || async {
        let (_, e) = super::ui::get_with_cookie(&s, "/api/events/so-1", &l.cookie).await;
        (e["state"] == "done").then_some(())
    })
    .await;
    let replay = format!("http://{}/api/events/so-1/replay", s.admin);
    let post = |origin: Option<&str>, site: Option<&str>, json: bool| {
        let mut r = s
            .http
            .post(&replay)
            .header("cookie", &l.cookie)
            .header("x-csrf-token", &l.csrf);
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        if let Some(site) = site {
            r = r.header("sec-fetch-site", site);
        }
        r = if json {
            r.json(&serde_json::json!({}))
        } else {
            r.header("content-type", "text/plain").body("{}")
        };
        async move { r.send().await.unwrap().status().as_u16() }
    };
    let same = format!("http://{}", s.admin);
    // A valid session and CSRF token are not enough without the origin.
    assert_eq!(post(None, None, true).await, 403);
    assert_eq!(post(Some("http://evil.example"), None, true).await, 403);
    assert_eq!(post(Some("null"), None, true).await, 403);
    assert_eq!(post(None, Some("same-site"), true).await, 403);
    assert_eq!(post(Some(&same), None, false).await, 415);
    // Logout is guarded the same way.
    let r = s
        .http
        .post(format!("http://{}/api/logout", s.admin))
        .header("cookie", &l.cookie)
        .header("x-csrf-token", &l.csrf)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(
        super::ui::get_with_cookie(&s, "/api/stats", &l.cookie)
            .await
            .0,
        200
    );
    // From the UI's own origin it goes through.
    assert_eq!(post(Some(&same), None, true).await, 202);
    eventually(WAIT, "so-1 done again", || async {
        let (_, e) = super::ui::get_with_cookie(&s, "/api/events/so-1", &l.cookie).await;
        (e["state"] == "done" && e["replays"] == 1).then_some(())
    })
    .await;
    assert_eq!(post(None, Some("same-origin"), true).await, 202);
    s.stop().await;

    // A script with the bearer token names no origin and need not send JSON.
    let s = TestServer::start(&base_config()).await;
    s.send_event("std", "tok-1", "webhook.test").await;
    s.wait_for_state("tok-1", "done").await;
    let r = s
        .http
        .post(format!("http://{}/api/events/tok-1/replay", s.admin))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    s.stop().await;
}

/// A forward target that accepts everything and counts what it got.
async fn counting_sink() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use warp::Filter;
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    let route = warp::post().map(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        "ok"
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (format!("http://{addr}/hook"), hits)
}

#[tokio::test]
async fn replaying_a_forwarded_event_needs_confirmation() {
    use std::sync::atomic::Ordering;
    let (url, hits) = counting_sink().await;
    let s = TestServer::start(&format!(
        "[admin]\ntoken = \"{ADMIN_TOKEN}\"\n\
         [[endpoints]]\nname = \"fwd\"\nsecrets = [\"{SECRET}\"]\n\
         [endpoints.forward]\nurl = \"{url}\"\nsecret = \"{OTHER_SECRET}\"\n\
         [[endpoints]]\nname = \"std\"\nsecrets = [\"{SECRET}\"]\n"
    ))
    .await;
    s.send_event("fwd", "prod-1", "invoice.paid").await;
    s.send_event("std", "log-1", "invoice.paid").await;
    s.wait_for_state("prod-1", "done").await;
    s.wait_for_state("log-1", "done").await;
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    let refused = s.api_post_status("/api/events/prod-1/replay", 409).await;
    assert_eq!(refused["needs_confirm"], true);
    let reason = refused["reason"].as_str().unwrap();
    assert!(
        reason.contains("confirm=true") && reason.contains("fwd"),
        "{reason}"
    );
    let refused = s.api_post_status("/api/replay?state=done", 409).await;
    assert_eq!(refused["needs_confirm"], true);
    assert_eq!(s.api_ok("/api/events/prod-1").await["replays"], 0);
    assert_eq!(hits.load(Ordering::SeqCst), 1, "nothing was re-sent");

    // An endpoint that only records replays without asking, alone or in bulk.
    s.api_post_status("/api/events/log-1/replay", 202).await;
    let r = s
        .api_post_status("/api/replay?state=done&endpoint=std", 202)
        .await;
    assert!(r["replayed"].as_u64().unwrap() <= 1, "{r}");

    s.api_post_status("/api/events/prod-1/replay?confirm=true", 202)
        .await;
    eventually(WAIT, "the confirmed replay re-sent", || async {
        (hits.load(Ordering::SeqCst) == 2).then_some(())
    })
    .await;
    let e = s.wait_for_state("prod-1", "done").await;
    assert_eq!(e["replays"], 1);
    let r = s
        .api_post_status("/api/replay?state=done&endpoint=fwd&confirm=true", 202)
        .await;
    assert_eq!(r["replayed"], 1);
    eventually(WAIT, "the confirmed bulk replay re-sent", || async {
        (hits.load(Ordering::SeqCst) == 3).then_some(())
    })
    .await;
    s.stop().await;
}

/// The usual token config with API backups going into `dir`.
pub fn backup_config(dir: &Path) -> String {
    format!(
        "[admin]\ntoken = \"{ADMIN_TOKEN}\"\nbackup_dir = {dir:?}\n{}",
        endpoints()
    )
}

#[tokio::test]
async fn api_backups_are_refused_without_a_backup_dir() {
    // In cluster mode every backup over the API is refused first, for another reason
    // (`postgres::a_backup_over_the_api_says_where_cluster_data_is_backed_up_and_makes_nothing`).
    if crate::postgres::sled_only() {
        return;
    }
    let s = TestServer::start(&base_config()).await;
    let elsewhere = tempfile::tempdir().unwrap();
    let to = elsewhere.path().join("copy");
    let v = s
        .api_post_status(&format!("/api/backup?to={}", to.display()), 403)
        .await;
    assert!(
        v["reason"].as_str().unwrap().contains("admin.backup_dir"),
        "{v}"
    );
    assert!(!to.exists());
    s.stop().await;
}

#[tokio::test]
async fn api_backups_go_only_into_a_new_directory_under_the_backup_dir() {
    if crate::postgres::sled_only() {
        return;
    }
    let backups = tempfile::tempdir().unwrap();
    let s = TestServer::start(&backup_config(backups.path())).await;
    s.send_event("std", "bk-1", "webhook.test").await;
    let data_dir = s.dir.path().join("data");
    let elsewhere = tempfile::tempdir().unwrap();
    // Paths are not names: not inside the data directory, not anywhere else either, and
    // the answer is the same whether the path exists or not.
    let missing = elsewhere.path().join("nothing/here");
    let inside = data_dir.join("backup");
    let mut reasons = Vec::new();
    for to in [
        inside.display().to_string(),
        elsewhere.path().display().to_string(),
        missing.display().to_string(),
        "../escape".into(),
        "..".into(),
        "a/b".into(),
        String::new(),
    ] {
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("to", &to)
            .finish();
        let v = s.api_post_status(&format!("/api/backup?{q}"), 400).await;
        reasons.push(v["reason"].as_str().unwrap().to_owned());
    }
    assert!(reasons.windows(2).all(|w| w[0] == w[1]), "{reasons:?}");
    assert!(!inside.exists() && !missing.exists());
    assert!(!backups.path().parent().unwrap().join("escape").exists());

    let v = s.api_post_status("/api/backup?to=nightly-1", 200).await;
    let landed = backups.path().join("nightly-1");
    assert_eq!(
        Path::new(v["to"].as_str().unwrap()),
        landed.canonicalize().unwrap()
    );
    assert!(landed.join("db").is_dir());
    let report = hookd::store::check::check(&landed.join("db")).unwrap();
    assert!(report.consistent(), "{:?}", report.problems);
    let v = s.api_post_status("/api/backup?to=nightly-1", 409).await;
    assert!(
        v["reason"].as_str().unwrap().contains("already exists"),
        "{v}"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_backup_dir_inside_the_data_directory_is_refused() {
    // In cluster mode every backup over the API is refused first, for another reason
    // (`postgres::a_backup_over_the_api_says_where_cluster_data_is_backed_up_and_makes_nothing`).
    if crate::postgres::sled_only() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Named through a symlink, so only resolving it shows where it is.
    std::fs::create_dir_all(data.join("backups")).unwrap();
    std::os::unix::fs::symlink(data.join("backups"), dir.path().join("backups-link")).unwrap();
    let s = TestServer::start_in(dir, &backup_config(&data.join("../backups-link")), None).await;
    let v = s.api_post_status("/api/backup?to=copy", 409).await;
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("inside the data directory"),
        "{v}"
    );
    assert!(!data.join("backups/copy").exists());
    s.stop().await;
}

#[test]
fn the_backup_command_refuses_a_destination_inside_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("db")).unwrap();
    std::os::unix::fs::symlink(&data, dir.path().join("link")).unwrap();
    for to in [
        data.join("backup"),
        data.join("db/deeper/copy"),
        dir.path().join("link/backup"),
        dir.path().join("other/../data/backup"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookd"))
            .args(["backup", "--data-dir"])
            .arg(&data)
            .arg("--to")
            .arg(&to)
            .env("HOOKD_LOG", "warn")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", to.display());
        assert!(stderr.contains("inside the data directory"), "{stderr}");
        assert!(!data.join("backup").exists() && !data.join("db/deeper").exists());
    }
}

#[tokio::test]
async fn the_chart_counts_per_minute_for_an_hour_and_per_hour_beyond() {
    let s = TestServer::start(&base_config()).await;
    for i in 0..3 {
        let a = s
            .send_event("std", &format!("chart-{i}"), "webhook.test")
            .await;
        assert_eq!(a.verdict(), (200, "accepted"));
    }
    let sum = |chart: &serde_json::Value| -> u64 {
        chart["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["accepted"].as_u64().unwrap())
            .sum()
    };
    for (range, buckets, bucket_ms) in [
        ("hour", 60, 60_000),
        ("day", 24, 3_600_000),
        ("15d", 360, 3_600_000),
    ] {
        let chart = s.api_ok(&format!("/api/chart?range={range}")).await;
        assert_eq!(chart["range"], range);
        assert_eq!(chart["bucket_ms"], bucket_ms, "{range}");
        let rows = chart["buckets"].as_array().unwrap();
        assert_eq!(rows.len(), buckets, "{range}");
        assert_eq!(sum(&chart), 3, "{range}: {chart}");
        let starts: Vec<u64> = rows
            .iter()
            .map(|b| b["start_ms"].as_u64().unwrap())
            .collect();
        assert!(
            starts.windows(2).all(|w| w[1] - w[0] == bucket_ms),
            "{range}"
        );
        assert_eq!(chart["from_ms"], starts[0]);
    }
    let chart = s.api_ok("/api/chart?hours=2").await;
    assert_eq!(chart["buckets"].as_array().unwrap().len(), 2);
    assert_eq!(sum(&chart), 3);
    let bad = s.api_status("/api/chart?range=week", 400).await;
    assert!(bad["reason"].as_str().unwrap().contains("`range`"), "{bad}");
    s.stop().await;
}

#[tokio::test]
async fn dead_events_errors_are_grouped_by_their_text() {
    let (failing, _hits) = super::ui::failing_sink().await;
    // Nothing listens on a port just released.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", l.local_addr().unwrap())
    };
    let s = TestServer::start(&format!(
        "[admin]\ntoken = \"{ADMIN_TOKEN}\"\n[processing]\nmax_attempts = 1\n\
         [[endpoints]]\nname = \"crm\"\nsecrets = [\"{SECRET}\"]\n[endpoints.forward]\n\
         url = \"{failing}\"\nsecret = \"{OTHER_SECRET}\"\n\
         [[endpoints]]\nname = \"billing\"\nsecrets = [\"{SECRET}\"]\n[endpoints.forward]\n\
         url = \"{closed}\"\nsecret = \"{OTHER_SECRET}\"\n"
    ))
    .await;
    for i in 0..3 {
        s.send_event("crm", &format!("crm-{i}"), "contact.updated")
            .await;
    }
    s.send_event("billing", "bill-1", "invoice.paid").await;
    for id in ["crm-0", "crm-1", "crm-2", "bill-1"] {
        s.wait_for_state(id, "dead").await;
    }
    let g = s.api_ok("/api/errors").await;
    assert_eq!(g["complete"], true, "{g}");
    assert_eq!(g["events"], 4);
    assert_eq!(g["distinct"], 2);
    let groups = g["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{g}");
    assert_eq!(groups[0]["count"], 3, "largest first: {g}");
    assert_eq!(groups[0]["endpoints"], serde_json::json!(["crm"]));
    assert!(
        groups[0]["error"].as_str().unwrap().contains("HTTP 500"),
        "{g}"
    );
    assert_eq!(groups[0]["example_event_id"], "crm-2", "the newest: {g}");
    let crm2 = s.api_ok("/api/events/crm-2").await;
    assert_eq!(groups[0]["example_delivery_id"], crm2["delivery_id"]);
    assert_eq!(groups[0]["latest_ms"], crm2["received_at_ms"]);
    assert_eq!(groups[1]["count"], 1);
    assert_eq!(groups[1]["endpoints"], serde_json::json!(["billing"]));
    // The same filters as the event list.
    let only = s.api_ok("/api/errors?endpoint=billing").await;
    assert_eq!(only["groups"].as_array().unwrap().len(), 1);
    assert_eq!(only["groups"][0]["error"], groups[1]["error"]);
    let none = s.api_ok("/api/errors?state=retrying").await;
    assert_eq!(none["groups"], serde_json::json!([]));
    s.api_status("/api/errors?state=sleepy", 400).await;
    s.stop().await;
}
