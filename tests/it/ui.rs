//! The web UI's server side: password login, sessions, CSRF, login rate limit, security
//! headers, embedded assets, and the API the UI uses (state filter, events, bulk replay,
//! hourly chart, ETags).

use super::receive::base_config;
use super::*;
use reqwest::header::{HeaderMap, COOKIE};

pub const PASSWORD: &str = "correct horse battery staple";

/// Config with a UI password (and no token) plus the usual endpoints.
pub fn password_config(extra_admin: &str) -> String {
    let hash = hookd::admin::auth::hash_password(PASSWORD).unwrap();
    format!(
        "[admin]\npassword_hash = \"{hash}\"\n{extra_admin}\n{}",
        endpoints()
    )
}

pub struct Login {
    pub cookie: String,
    pub csrf: String,
    pub set_cookie: String,
}

async fn login_with(s: &TestServer, password: &str, headers: HeaderMap) -> reqwest::Response {
    s.http
        .post(format!("http://{}/api/login", s.admin))
        .header("origin", format!("http://{}", s.admin))
        .headers(headers)
        .json(&serde_json::json!({ "password": password }))
        .send()
        .await
        .unwrap()
}

pub async fn login(s: &TestServer) -> Login {
    let r = login_with(s, PASSWORD, HeaderMap::new()).await;
    assert_eq!(r.status().as_u16(), 200);
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let body: serde_json::Value = r.json().await.unwrap();
    Login {
        cookie: set_cookie.split(';').next().unwrap().to_owned(),
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
        set_cookie,
    }
}

pub async fn get_with_cookie(s: &TestServer, path: &str, cookie: &str) -> (u16, serde_json::Value) {
    let r = s
        .http
        .get(format!("http://{}{path}", s.admin))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

pub async fn post_with(s: &TestServer, path: &str, cookie: &str, csrf: Option<&str>) -> u16 {
    let mut req = s
        .http
        .post(format!("http://{}{path}", s.admin))
        .header(COOKIE, cookie)
        .header("origin", format!("http://{}", s.admin))
        .json(&serde_json::json!({}));
    if let Some(token) = csrf {
        req = req.header("x-csrf-token", token);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn api_without_a_session_is_401_and_a_wrong_password_is_401() {
    let s = TestServer::start(&password_config("")).await;
    let (status, body) = get_with_cookie(&s, "/api/deliveries", "other=1").await;
    assert_eq!(status, 401);
    // A script (no Sec-Fetch-Site) is told what it would need; a browser, whose login form
    // shows the reason, only that it is not logged in.
    let reason = body["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("not logged in") && reason.contains("admin.token"),
        "{reason}"
    );
    let from_browser = s
        .http
        .get(format!("http://{}/api/deliveries", s.admin))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(from_browser.status().as_u16(), 401);
    let body: serde_json::Value = from_browser.json().await.unwrap();
    assert_eq!(body["reason"], "not logged in");
    let r = login_with(&s, "not the password", HeaderMap::new()).await;
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    // A bearer token is no way in when only a password is configured.
    let r = s
        .http
        .get(format!("http://{}/api/stats", s.admin))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let (status, session) = get_with_cookie(&s, "/api/session", "").await;
    assert_eq!(status, 200);
    assert_eq!(session["authenticated"], false);
    assert_eq!(session["csrf_token"], serde_json::Value::Null);
    s.stop().await;
}

#[tokio::test]
async fn login_gives_a_strict_httponly_cookie_that_opens_the_api() {
    let s = TestServer::start(&password_config("")).await;
    let l = login(&s).await;
    assert!(l.set_cookie.starts_with("hookd_session="));
    assert!(l.set_cookie.contains("HttpOnly"));
    assert!(l.set_cookie.contains("SameSite=Strict"));
    assert!(!l.set_cookie.contains("Secure"), "plain HTTP on loopback");
    let (status, _) = get_with_cookie(&s, "/api/stats", &l.cookie).await;
    assert_eq!(status, 200);
    let (_, session) = get_with_cookie(&s, "/api/session", &l.cookie).await;
    assert_eq!(session["authenticated"], true);
    assert_eq!(session["csrf_token"], l.csrf.as_str());
    // Behind a TLS-terminating proxy the cookie is Secure.
    let mut headers = HeaderMap::new();
    headers.insert("x-forwarded-proto", "https".parse().unwrap());
    let r = login_with(&s, PASSWORD, headers).await;
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("; Secure"));
    s.stop().await;
}

#[tokio::test]
async fn state_changing_requests_without_the_csrf_token_are_403() {
    let s = TestServer::start(&password_config("")).await;
    s.send_event("std", "csrf-1", "webhook.test").await;
    let l = login(&s).await;
    let (_, event) = get_with_cookie(&s, "/api/events/csrf-1", &l.cookie).await;
    assert_eq!(event["event_id"], "csrf-1");
    // Wait until it is done so a replay is allowed.
    let (server, cookie) = (&s, l.cookie.as_str());
    eventually(WAIT, "csrf-1 done", || async move {
        let (_, e) = get_with_cookie(server, "/api/events/csrf-1", cookie).await;
        (e["state"] == "done").then_some(())
    })
    .await;
    let path = "/api/events/csrf-1/replay";
    assert_eq!(post_with(&s, path, &l.cookie, None).await, 403);
    assert_eq!(post_with(&s, path, &l.cookie, Some("wrong")).await, 403);
    assert_eq!(post_with(&s, "/api/replay", &l.cookie, None).await, 403);
    assert_eq!(post_with(&s, "/api/logout", &l.cookie, None).await, 403);
    assert_eq!(post_with(&s, path, &l.cookie, Some(&l.csrf)).await, 202);
    // Logging out (with the token) ends the session.
    assert_eq!(
        post_with(&s, "/api/logout", &l.cookie, Some(&l.csrf)).await,
        200
    );
    let (status, _) = get_with_cookie(&s, "/api/stats", &l.cookie).await;
    assert_eq!(status, 401);
    s.stop().await;
}

// Paused time: an hour passes at once. The TTL is long so that tokio's clock, which jumps to
// the next timer whenever the runtime waits on the store's writer thread, cannot end the
// session early.
#[tokio::test(start_paused = true)]
async fn an_expired_session_is_401() {
    let s = TestServer::start(&password_config("session_ttl_secs = 3600")).await;
    let l = login(&s).await;
    assert_eq!(get_with_cookie(&s, "/api/stats", &l.cookie).await.0, 200);
    tokio::time::advance(std::time::Duration::from_secs(3601)).await;
    let (status, body) = get_with_cookie(&s, "/api/stats", &l.cookie).await;
    assert_eq!(status, 401);
    assert_eq!(body["reason"], "session expired; log in again");
    s.stop().await;
}

#[tokio::test]
async fn repeated_failed_logins_are_refused_for_a_while() {
    let s = TestServer::start(&password_config("")).await;
    for _ in 0..5 {
        let r = login_with(&s, "guess", HeaderMap::new()).await;
        assert_eq!(r.status().as_u16(), 401);
    }
    // Even the right password waits now.
    let r = login_with(&s, PASSWORD, HeaderMap::new()).await;
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().contains_key("retry-after"));
    s.stop().await;
}

#[tokio::test]
async fn the_ui_is_embedded_and_served_with_a_strict_csp() {
    let s = TestServer::start(&password_config("")).await;
    let r = s
        .http
        .get(format!("http://{}/", s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"));
    assert!(csp.contains("script-src 'self'"));
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="/app.js"></script>"#));
    assert_eq!(html.matches("<script").count(), 1, "no inline script");
    let modules = [
        "/app.js",
        "/dom.js",
        "/api.js",
        "/filters.js",
        "/login.js",
        "/deliveries.js",
        "/delivery.js",
        "/queue.js",
        "/connections.js",
        "/connection.js",
    ];
    let files = modules.map(|m| (m, "text/javascript"));
    for (path, kind) in files.into_iter().chain([("/app.css", "text/css")]) {
        let r = s
            .http
            .get(format!("http://{}{path}", s.admin))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(kind));
        let text = r.text().await.unwrap();
        assert!(
            !text.contains("innerHTML"),
            "{path}: payloads are only ever set as text"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn an_open_loopback_listener_refuses_foreign_hosts_and_cross_site_writes() {
    let s = TestServer::start(&endpoints()).await;
    let url = format!("http://{}/api/stats", s.admin);
    let r = s
        .http
        .get(&url)
        .header("host", "rebound.example:8081")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = s
        .http
        .post(format!("http://{}/api/replay", s.admin))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // Scripts on the machine need no token or CSRF token, only to send JSON.
    let r = s
        .http
        .post(format!("http://{}/api/replay", s.admin))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    s.stop().await;
}

#[tokio::test]
async fn a_password_alone_allows_a_public_admin_listener() {
    let dir = tempfile::tempdir().unwrap();
    let hash = hookd::admin::auth::hash_password(PASSWORD).unwrap();
    let text = format!(
        "data_dir = {:?}\nadmin_listen = \"0.0.0.0:0\"\n[admin]\npassword_hash = \"{hash}\"\n",
        dir.path().join("data")
    );
    let path = dir.path().join("hookd.toml");
    std::fs::write(&path, &text).unwrap();
    assert!(Config::load(Some(&path), &HashMap::new()).is_ok());
    std::fs::write(&path, "[admin]\npassword_hash = \"hunter2\"\n").unwrap();
    let err = Config::load(Some(&path), &HashMap::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("admin.password_hash"), "{err}");
}

#[tokio::test]
async fn polling_an_unchanged_list_costs_a_304() {
    let s = TestServer::start(&base_config()).await;
    s.send_event("std", "etag-1", "webhook.test").await;
    let url = format!("http://{}/api/deliveries", s.admin);
    let r = s
        .http
        .get(&url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let again = |etag: String| {
        s.http
            .get(&url)
            .bearer_auth(ADMIN_TOKEN)
            .header("if-none-match", etag)
            .send()
    };
    // The state may still move from queued to done; wait for a stable answer.
    let last = std::sync::Mutex::new(etag);
    let etag = eventually(WAIT, "a 304 for an unchanged list", || async {
        let etag = last.lock().unwrap().clone();
        let r = again(etag.clone()).await.unwrap();
        if r.status() == 304 {
            return Some(etag);
        }
        *last.lock().unwrap() = r.headers()["etag"].to_str().unwrap().to_owned();
        None
    })
    .await;
    s.send_event("std", "etag-2", "webhook.test").await;
    assert_eq!(again(etag).await.unwrap().status().as_u16(), 200);
    s.stop().await;
}

#[tokio::test]
async fn deliveries_filter_by_state_and_dead_events_replay_in_bulk() {
    let (url, _hits) = failing_sink().await;
    let s = TestServer::start(&format!(
        "[admin]\ntoken = \"{ADMIN_TOKEN}\"\n[processing]\nmax_attempts = 1\n\
         [[endpoints]]\nname = \"std\"\nsecrets = [\"{SECRET}\"]\n[endpoints.forward]\nurl = \"{url}\"\nsecret = \"{OTHER_SECRET}\"\n"
    ))
    .await;
    for i in 0..3 {
        s.send_event("std", &format!("bulk-{i}"), "webhook.test")
            .await;
        s.wait_for_state(&format!("bulk-{i}"), "dead").await;
    }
    let page = s.api_ok("/api/deliveries?state=dead").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    assert!(page["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["state"] == "dead"));
    let page = s.api_ok("/api/deliveries?state=done").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 0);
    s.api_status("/api/deliveries?state=sleepy", 400).await;
    let events = s.api_ok("/api/events?state=dead&limit=2").await;
    assert_eq!(events["items"].as_array().unwrap().len(), 2);
    assert_eq!(events["items"][0]["event_id"], "bulk-2", "newest first");
    let r = s.api_post_status("/api/replay?state=dead", 202).await;
    assert_eq!(r["replayed"], 3);
    let chart = s.api_ok("/api/chart?hours=2").await;
    let hours = chart["buckets"].as_array().unwrap();
    assert_eq!(hours.len(), 2);
    let accepted: u64 = hours.iter().map(|h| h["accepted"].as_u64().unwrap()).sum();
    assert_eq!(accepted, 3);
    s.stop().await;
}

/// Password login, and endpoint `std` forwarding to `url` with one attempt per event.
pub fn login_failing_sink_config(url: &str) -> String {
    let hash = hookd::admin::auth::hash_password(PASSWORD).unwrap();
    format!(
        "[admin]\npassword_hash = \"{hash}\"\n[processing]\nmax_attempts = 1\n\
         [[endpoints]]\nname = \"std\"\nsecrets = [\"{SECRET}\"]\n[endpoints.forward]\n\
         url = \"{url}\"\nsecret = \"{OTHER_SECRET}\"\n"
    )
}

/// A local service that always answers 500, so forwarded events go dead.
pub async fn failing_sink() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use warp::Filter;
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    let route = warp::post().map(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        warp::reply::with_status("no", http::StatusCode::INTERNAL_SERVER_ERROR)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (format!("http://{addr}/hook"), hits)
}

#[test]
fn hash_password_prints_a_hash_that_verifies() {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hookd"))
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(hookd::admin::auth::verify_password(hash.trim(), PASSWORD));
    assert!(!hookd::admin::auth::verify_password(hash.trim(), "other"));
}

#[tokio::test]
async fn with_only_a_token_the_ui_says_password_login_is_off() {
    let s = TestServer::start(&base_config()).await;
    let (status, session) = get_with_cookie(&s, "/api/session", "").await;
    assert_eq!(status, 200);
    assert_eq!(session["authenticated"], false);
    assert_eq!(session["password_login"], false);
    let r = login_with(&s, PASSWORD, HeaderMap::new()).await;
    assert_eq!(r.status().as_u16(), 404);
    // The token still opens the API for scripts, and needs no CSRF token.
    s.api_post_status("/api/replay", 202).await;
    s.stop().await;
}

#[tokio::test]
async fn a_burst_of_concurrent_guesses_gets_only_five_password_checks() {
    let s = TestServer::start(&password_config("")).await;
    let guesses = (0..20).map(|i| {
        let s = &s;
        async move {
            login_with(s, &format!("guess-{i}"), HeaderMap::new())
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    assert_eq!(
        statuses.iter().filter(|&&c| c == 401).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&c| c == 429).count(),
        15,
        "{statuses:?}"
    );
    s.stop().await;
}

#[test]
fn the_password_hash_can_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hookd.toml");
    std::fs::write(&path, "admin_listen = \"0.0.0.0:8081\"\n").unwrap();
    let hash = hookd::admin::auth::hash_password(PASSWORD).unwrap();
    let env = HashMap::from([("HOOKD_ADMIN_PASSWORD_HASH".to_string(), hash.clone())]);
    let config = Config::load(Some(&path), &env).unwrap();
    assert_eq!(config.admin.password_hash.as_deref(), Some(hash.as_str()));
    let env = HashMap::from([("HOOKD_ADMIN_PASSWORD_HASH".to_string(), "plain".to_string())]);
    let err = Config::load(Some(&path), &env).unwrap_err().to_string();
    assert!(err.contains("HOOKD_ADMIN_PASSWORD_HASH"), "{err}");
}
