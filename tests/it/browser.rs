//! The web UI in a real browser: headless Chromium driven through chromedriver (Debian's
//! `chromium` and `chromium-driver`, installed by `scripts/test`). One journey: log in (the
//! app's navigation hidden until then), watch a delivery arrive without a reload, open it,
//! filter by verdict, replay a dead event, replay a forwarded one only once the confirmation
//! is accepted, log out (told so, not as an error), and check that markup in a payload stays
//! text. Screenshots go to `target/ui/`.

use super::ui::{get_with_cookie, login, login_failing_sink_config, PASSWORD};
use super::*;
use fantoccini::{Client, ClientBuilder, Locator};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// Kills chromedriver and the browser it started when the test ends, pass or fail: they
/// run in their own process group, and the whole group goes (a browser whose driver was
/// killed alone would live on).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_browser(profile: &Path) -> (Driver, Client) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {CHROMEDRIVER} ({e}): scripts/test installs it"));
    let driver = Driver(child);
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--window-size=1360,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let url = format!("http://127.0.0.1:{port}");
    let (url, caps) = (&url, &caps);
    let client = eventually(WAIT, "chromedriver starting a session", || async move {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let mut builder = ClientBuilder::new(connector);
        builder.capabilities(caps.clone());
        builder.connect(url).await.ok()
    })
    .await;
    (driver, client)
}

/// Whether any of the app's navigation is on screen.
const NAV_VISIBLE: &str = "return [...document.querySelectorAll('#top, #top nav a, #logout')]
    .some(e => e.offsetParent !== null || getComputedStyle(e).display !== 'none' && e.getClientRects().length > 0);";

/// Waits (bounded) until `script` (a JS expression) is true in the page.
async fn wait_until(c: &Client, script: &str, what: &str) {
    let script = &format!("return !!({script});");
    eventually(
        WAIT,
        &format!("the page showing {what} ({script})"),
        || async move { (js(c, script).await == true).then_some(()) },
    )
    .await
}

async fn js(c: &Client, script: &str) -> serde_json::Value {
    c.execute(script, vec![]).await.unwrap()
}

fn screenshot_dir() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A forward target that fails until told otherwise.
async fn switchable_sink() -> (String, Arc<AtomicBool>) {
    use warp::Filter;
    let failing = Arc::new(AtomicBool::new(true));
    let flag = failing.clone();
    let route = warp::post().map(move || {
        let status = if flag.load(Ordering::SeqCst) {
            http::StatusCode::SERVICE_UNAVAILABLE
        } else {
            http::StatusCode::OK
        };
        warp::reply::with_status("sink", status)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (format!("http://{addr}/hook"), failing)
}

/// Waits (bounded) for an event's state through the API, logged in with `cookie`.
async fn wait_for_state(s: &TestServer, cookie: &str, event_id: &str, state: &str) {
    let path = &format!("/api/events/{event_id}");
    eventually(
        WAIT,
        &format!("event {event_id} reaching {state}"),
        || async move {
            let (_, e) = get_with_cookie(s, path, cookie).await;
            (e["state"] == state).then_some(())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_journey_in_headless_chromium() {
    if !opted_in(
        "HOOKD_TEST_BROWSER",
        "needs headless Chromium and chromedriver in /usr/bin",
    ) {
        return;
    }
    let (sink_url, sink_failing) = switchable_sink().await;
    let s = TestServer::start(&login_failing_sink_config(&sink_url)).await;
    let profile = tempfile::tempdir().unwrap();
    let (_driver, c) = start_browser(profile.path()).await;
    let base = format!("http://{}", s.admin);

    // Log in; nothing of the app shows before that.
    c.goto(&format!("{base}/")).await.unwrap();
    let password = c
        .wait()
        .for_element(Locator::Css("#password"))
        .await
        .unwrap();
    assert_eq!(
        js(&c, NAV_VISIBLE).await,
        false,
        "navigation on the login page"
    );
    password.send_keys(PASSWORD).await.unwrap();
    c.find(Locator::Css("#login-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(
        &c,
        "document.querySelector('#deliveries')",
        "the deliveries list",
    )
    .await;
    wait_until(
        &c,
        "document.querySelector('#deliveries tr.empty')",
        "an empty list",
    )
    .await;
    assert_eq!(js(&c, NAV_VISIBLE).await, true, "navigation once logged in");

    // A signed POST appears without a reload (the marker survives only without one).
    js(&c, "window.__noReload = 'still here'; return null;").await;
    let a = s.send_event("std", "live-1", "webhook.test").await;
    assert_eq!(a.verdict(), (200, "accepted"));
    wait_until(
        &c,
        "[...document.querySelectorAll('#deliveries tr[data-id]')].some(tr => tr.textContent.includes('live-1'))",
        "the new delivery",
    )
    .await;
    assert_eq!(js(&c, "return window.__noReload;").await, "still here");

    // A body (and event type) full of markup.
    let xss_body = serde_json::json!({
        "id": "xss-1",
        "type": "\"><img src=x onerror=\"window.__xss='type'\">",
        "data": {
            "note": "<script>window.__xss = 'script'</script>",
            "html": "\"><img src=x onerror=\"window.__xss='img'\">",
        }
    })
    .to_string();
    let a = s.post_signed("std", SECRET, "msg_xss-1", &xss_body).await;
    assert_eq!(a.verdict(), (200, "accepted"));
    // And one that fails verification, for the verdict filter.
    let a = s
        .post_signed(
            "std",
            OTHER_SECRET,
            "msg_bad-1",
            &event_body("bad-1", "webhook.test"),
        )
        .await;
    assert_eq!(a.status, 401);
    // A few more of the usual kinds, so the list (and its screenshot) shows each verdict.
    for (id, kind) in [("inv-1", "invoice.paid"), ("cus-1", "customer.created")] {
        assert_eq!(
            s.send_event("std", id, kind).await.verdict(),
            (200, "accepted")
        );
    }
    let again = s.send_event("std", "live-1", "webhook.test").await;
    assert_eq!(again.verdict(), (200, "duplicate"));
    wait_until(
        &c,
        "document.querySelectorAll('#deliveries tr[data-id]').length >= 6",
        "six deliveries",
    )
    .await;
    // Let the arrival highlight fade before the screenshot (not an assertion).
    for _ in 0..40 {
        if js(&c, "return document.querySelector('tr.fresh') === null;").await == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    std::fs::write(
        screenshot_dir().join("deliveries.png"),
        c.screenshot().await.unwrap(),
    )
    .unwrap();
    assert_eq!(js(&c, "return window.__xss === undefined;").await, true);
    assert_eq!(
        js(
            &c,
            "return document.querySelectorAll('#main img, #main script').length;"
        )
        .await,
        0
    );

    // Its detail: the body is shown as text, pretty-printed, and nothing ran.
    c.find(Locator::XPath(
        "//table[@id='deliveries']//tr[td[contains(., 'xss-1')]]",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    wait_until(
        &c,
        "document.querySelector('pre#body')",
        "the delivery body",
    )
    .await;
    let body = c
        .find(Locator::Css("pre#body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.contains("<script>window.__xss = 'script'</script>"),
        "{body}"
    );
    assert!(body.contains("onerror="), "{body}");
    assert!(body.contains("\n  \"data\": {"), "pretty-printed: {body}");
    let headers = js(
        &c,
        "return document.querySelector('table.headers').textContent;",
    )
    .await;
    assert!(headers.as_str().unwrap().contains("webhook-signature"));
    std::fs::write(
        screenshot_dir().join("delivery.png"),
        c.screenshot().await.unwrap(),
    )
    .unwrap();
    assert_eq!(js(&c, "return window.__xss === undefined;").await, true);
    assert_eq!(
        js(
            &c,
            "return document.querySelectorAll('#main img, #main script').length;"
        )
        .await,
        0
    );

    // Filter by verdict.
    c.goto(&format!("{base}/#/deliveries")).await.unwrap();
    c.wait()
        .for_element(Locator::Css("#f-verdict"))
        .await
        .unwrap()
        .select_by_value("rejected")
        .await
        .unwrap();
    c.find(Locator::Css("#apply"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(
        &c,
        "location.hash.includes('verdict=rejected') && (rows => rows.length === 1 && rows[0].dataset.verdict === 'rejected')(document.querySelectorAll('#deliveries tr[data-id]'))",
        "only the rejected delivery",
    )
    .await;

    // The events all went dead (the forward target fails); make it work and replay one.
    let api = login(&s).await;
    wait_for_state(&s, &api.cookie, "live-1", "dead").await;
    sink_failing.store(false, Ordering::SeqCst);
    c.goto(&format!("{base}/#/queue")).await.unwrap();
    wait_until(
        &c,
        "document.querySelector('#dead tr[data-event-id=\"live-1\"] button.replay')",
        "the dead event with its Replay button",
    )
    .await;
    assert!(js(
        &c,
        "return document.querySelector('#chart svg rect') !== null;"
    )
    .await
    .as_bool()
    .unwrap());
    c.find(Locator::Css(
        "#dead tr[data-event-id=\"live-1\"] button.replay",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    wait_until(
        &c,
        "(td => td && td.textContent !== 'dead')(document.querySelector('#dead tr[data-event-id=\"live-1\"] td.state'))",
        "the replayed event leaving the dead state",
    )
    .await;
    wait_for_state(&s, &api.cookie, "live-1", "done").await;
    std::fs::write(
        screenshot_dir().join("queue.png"),
        c.screenshot().await.unwrap(),
    )
    .unwrap();

    // live-1 is done now, and its endpoint forwards: a replay re-sends it to production, so
    // the UI asks first. Declined, nothing happens; accepted, it is replayed.
    let (_, event) = get_with_cookie(&s, "/api/events/live-1", &api.cookie).await;
    assert_eq!(event["replays"], 1);
    let delivery = event["delivery_id"].as_str().unwrap();
    c.goto(&format!("{base}/#/delivery/{delivery}"))
        .await
        .unwrap();
    for accept in [false, true] {
        c.wait()
            .for_element(Locator::Css("#replay"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let text = eventually(WAIT, "the replay confirmation", || async {
            c.get_alert_text().await.ok()
        })
        .await;
        assert!(text.contains("forward"), "{text}");
        if accept {
            c.accept_alert().await.unwrap();
        } else {
            c.dismiss_alert().await.unwrap();
            wait_until(
                &c,
                "!document.querySelector('#replay').disabled",
                "the Replay button back",
            )
            .await;
            let (_, e) = get_with_cookie(&s, "/api/events/live-1", &api.cookie).await;
            assert_eq!(e["replays"], 1, "declined: not replayed");
        }
    }
    eventually(WAIT, "the confirmed replay done", || async {
        let (_, e) = get_with_cookie(&s, "/api/events/live-1", &api.cookie).await;
        (e["replays"] == 2 && e["state"] == "done").then_some(())
    })
    .await;

    // No Fasten connection has been recorded on this instance: the page says so.
    c.goto(&format!("{base}/#/connections")).await.unwrap();
    wait_until(
        &c,
        "document.querySelector('#connections-empty')",
        "the empty connections page",
    )
    .await;
    std::fs::write(
        screenshot_dir().join("connections.png"),
        c.screenshot().await.unwrap(),
    )
    .unwrap();

    // Log out: the API is closed to the browser again.
    c.find(Locator::Css("#logout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(&c, "document.querySelector('#password')", "the login form").await;
    assert_eq!(js(&c, NAV_VISIBLE).await, false, "navigation after logout");
    // "Logged out." is news, not an error.
    let said = js(
        &c,
        "return [...document.querySelectorAll('#main *')]
            .filter(e => e.offsetParent !== null && e.textContent.trim() === 'Logged out.')
            .map(e => e.className);",
    )
    .await;
    let classes = said.as_array().unwrap();
    assert_eq!(classes.len(), 1, "one visible 'Logged out.': {said}");
    assert!(!classes[0].as_str().unwrap().contains("error"), "{said}");
    assert_eq!(
        js(
            &c,
            "return document.querySelector('#login-error').offsetParent === null;"
        )
        .await,
        true,
        "no error shown"
    );
    std::fs::write(
        screenshot_dir().join("logged-out.png"),
        c.screenshot().await.unwrap(),
    )
    .unwrap();
    assert_eq!(
        js(&c, "return document.cookie.includes('hookd_session');").await,
        false,
        "the session cookie is HttpOnly"
    );
    c.close().await.unwrap();
    s.stop().await;
}

/// A forward target that is down for maintenance: every POST gets a 503.
async fn maintenance_sink() -> String {
    use warp::Filter;
    let route = warp::post().map(|| {
        warp::reply::with_status(
            "upstream unavailable: scheduled maintenance",
            http::StatusCode::SERVICE_UNAVAILABLE,
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    format!("http://{addr}/hooks/inbound")
}

/// Config for the Fasten pages: a UI password and an API token, the Fasten stand-in's API,
/// endpoint `fasten-live`, and two forwarding endpoints whose targets fail (`crm` answers
/// 503, nothing listens for `billing`); `processing` sets the retry policy.
fn fasten_ui_config(
    api_base: &str,
    key_file: &Path,
    crm: &str,
    billing: &str,
    processing: &str,
) -> String {
    let hash = hookd::admin::auth::hash_password(PASSWORD).unwrap();
    format!(
        r#"
[admin]
token = "{ADMIN_TOKEN}"
password_hash = "{hash}"

[processing]
retry_jitter = 0.0
{processing}

[fasten]
api_base = "{api_base}"
public_id = "public_test_0123456789"
private_key_file = {key_file:?}
download_hosts = ["http://127.0.0.1"]
on_revoke = "keep"

[[endpoints]]
name = "fasten-live"
profile = "fasten"
secrets = ["{SECRET}"]

[[endpoints]]
name = "crm"
secrets = ["{SECRET}"]
[endpoints.forward]
url = "{crm}"
secret = "{OTHER_SECRET}"

[[endpoints]]
name = "billing"
secrets = ["{SECRET}"]
[endpoints.forward]
url = "{billing}"
secret = "{OTHER_SECRET}"
"#
    )
}

/// Waits (bounded) until the API counts `n` events in `state`.
async fn wait_for_count(s: &TestServer, state: &str, n: u64) {
    eventually(WAIT, &format!("{n} events {state}"), || async {
        let stats = s.api_ok("/api/stats").await;
        (stats["events"][state] == n).then_some(())
    })
    .await
}

/// Whether the page scrolls sideways (it must not: wide tables scroll in their own box).
const PAGE_OVERFLOWS: &str =
    "return document.documentElement.scrollWidth > document.documentElement.clientWidth;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fasten_connections_and_the_queue_in_headless_chromium() {
    use hookd::simulate::{self, api, EventSpec};
    if !opted_in(
        "HOOKD_TEST_BROWSER",
        "needs headless Chromium and chromedriver in /usr/bin",
    ) {
        return;
    }
    const CONNECTED: &str = "3f6c1d2e-8a4b-4c7e-9d21-5b0e7a9c4f18";
    const REVOKED: &str = "a91e7c05-2d3f-4b68-8e4a-c7d2f1b09e36";
    let stand_in = api::start(
        "127.0.0.1:0".parse().unwrap(),
        api::Options {
            public_id: Some("public_test_0123456789".into()),
            private_key: Some("private_test_abcdefghijklmnop".into()),
            ..api::Options::default()
        },
    )
    .await
    .unwrap();
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("fasten.key");
    std::fs::write(&key_file, "private_test_abcdefghijklmnop\n").unwrap();
    let crm = maintenance_sink().await;
    // Nothing listens on a port just released.
    let billing = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/billing/webhooks", l.local_addr().unwrap())
    };
    // First one attempt per event, so failing forwards go dead at once.
    let first_run = TestServer::start(&fasten_ui_config(
        &stand_in.api_base,
        &key_file,
        &crm,
        &billing,
        "max_attempts = 1",
    ))
    .await;
    let fasten = |event_type: &str, conn: &str, task: &str, resources: u64| EventSpec {
        event_type: event_type.into(),
        org_connection_id: conn.into(),
        task_id: task.into(),
        api_base: stand_in.api_base.clone(),
        resources,
        files: 2,
        ..EventSpec::default()
    };
    let s = &first_run;
    let send = |spec: EventSpec, id: String| async move {
        let body = simulate::event_body(&spec, &id);
        let a = s
            .post_signed("fasten-live", SECRET, &format!("msg_{id}"), &body)
            .await;
        assert_eq!(a.verdict(), (200, "accepted"), "{id}");
        s.wait_for_state(&id, "done").await
    };
    let mut seed = 0u64;
    let mut next_id = || {
        seed += 1;
        event_id(seed)
    };
    let task_a = "7d0b5e2a-61c4-4f3e-b8a9-2c5d9e1f0a47";
    let task_b = "c24f8a91-0e3b-47d6-a5c2-9b1e6d3f8a05";
    send(
        fasten("patient.connection_success", CONNECTED, task_a, 40),
        next_id(),
    )
    .await;
    send(
        fasten("patient.ehi_export_success", CONNECTED, task_a, 120),
        next_id(),
    )
    .await;
    send(
        fasten(
            "patient.ehi_export_failed",
            CONNECTED,
            "5e8d2c1b-9f4a-4b7e-a3d6-1c0f7e2b9a84",
            40,
        ),
        next_id(),
    )
    .await;
    send(
        fasten("patient.connection_success", REVOKED, task_b, 40),
        next_id(),
    )
    .await;
    send(
        fasten("patient.ehi_export_success", REVOKED, task_b, 60),
        next_id(),
    )
    .await;
    send(
        fasten("patient.authorization_revoked", REVOKED, task_b, 40),
        next_id(),
    )
    .await;
    // A few more patients: two with an export, one still waiting for its first.
    for (conn, task) in [
        (
            "0b8e4f27-5c19-4a3d-92e6-7f1d0c8b3a54",
            Some("e5a1c9d3-7b2f-4e08-a6d4-3f9b1c7e5a20"),
        ),
        (
            "d47a2c90-1e6b-4f85-b3c7-8a0e9d2f6b13",
            Some("4c9e7a15-2d8b-4f30-9e6a-b1d5c3f7a842"),
        ),
        ("5f2b9d61-a3c8-4e7f-8b04-e6d1a9c2f375", None),
    ] {
        send(
            fasten(
                "patient.connection_success",
                conn,
                task.unwrap_or(task_a),
                40,
            ),
            next_id(),
        )
        .await;
        if let Some(task) = task {
            send(
                fasten("patient.ehi_export_success", conn, task, 80),
                next_id(),
            )
            .await;
        }
    }
    let conn = s.api_ok(&format!("/api/connections/{REVOKED}")).await;
    assert_eq!(conn["status"], "revoked", "{conn}");
    // A Patient of the stored export, to look up in the page.
    let export = s.api_ok(&format!("/api/connections/{CONNECTED}")).await;
    let files = export["exports"][0]["files"].as_array().unwrap().clone();
    assert_eq!(files.len(), 2, "{export}");
    let file = files[0]["name"].as_str().unwrap().to_owned();
    let text = s
        .http
        .get(format!(
            "http://{}/api/exports/{task_a}/files/{file}",
            s.admin
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let (kind, rid) = (
        first["resourceType"].as_str().unwrap().to_owned(),
        first["id"].as_str().unwrap().to_owned(),
    );

    // Sixty dead events with two distinct errors: more than one page of the dead list.
    for i in 0..52 {
        let a = s
            .send_event("crm", &event_id(1000 + i), "contact.updated")
            .await;
        assert_eq!(a.verdict(), (200, "accepted"));
    }
    for i in 0..8 {
        let a = s
            .send_event("billing", &event_id(2000 + i), "invoice.paid")
            .await;
        assert_eq!(a.verdict(), (200, "accepted"));
    }
    wait_for_count(s, "dead", 60).await;
    // Some duplicates and a forged signature, so the chart shows more than one verdict.
    for i in 0..4 {
        let a = s
            .send_event("crm", &event_id(1000 + i), "contact.updated")
            .await;
        assert_eq!(a.verdict(), (200, "duplicate"));
    }
    let forged = s
        .post_signed(
            "crm",
            OTHER_SECRET,
            "msg_forged",
            &event_body(&event_id(3000), "contact.updated"),
        )
        .await;
    assert_eq!(forged.status, 401);

    // Then a retry policy with waits: new failures wait for their next attempt.
    let dir = first_run.stop().await;
    let second_run = TestServer::start_in(
        dir,
        &fasten_ui_config(
            &stand_in.api_base,
            &key_file,
            &crm,
            &billing,
            "max_attempts = 5\nretry_schedule_secs = [900, 3600]",
        ),
        None,
    )
    .await;
    let s = &second_run;
    for i in 0..3 {
        let a = s
            .send_event("crm", &event_id(4000 + i), "contact.created")
            .await;
        assert_eq!(a.verdict(), (200, "accepted"));
    }
    wait_for_count(s, "retrying", 3).await;

    let profile = tempfile::tempdir().unwrap();
    let (_driver, c) = start_browser(profile.path()).await;
    viewport(&c, 1280, 900).await;
    let base = format!("http://{}", s.admin);
    c.goto(&format!("{base}/")).await.unwrap();
    c.wait()
        .for_element(Locator::Css("#password"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    c.find(Locator::Css("#login-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(
        &c,
        "document.querySelector('#deliveries')",
        "the deliveries list",
    )
    .await;

    // The connections: both, the revoked one marked on its row, times readable.
    c.goto(&format!("{base}/#/connections")).await.unwrap();
    wait_until(
        &c,
        "document.querySelectorAll('#connections tr[data-id]').length === 5",
        "the five connections",
    )
    .await;
    let rows = js(
        &c,
        "return [...document.querySelectorAll('#connections tr[data-id]')].map(tr => ({
            id: tr.dataset.id, revoked: tr.classList.contains('revoked'),
            status: tr.querySelector('td.status').textContent,
            background: getComputedStyle(tr.querySelector('td')).backgroundColor,
            badge: getComputedStyle(tr.querySelector('td.status .badge')).backgroundColor,
            cells: [...tr.querySelectorAll('td')].map(td => td.textContent) }));",
    )
    .await;
    let rows = rows.as_array().unwrap();
    let row = |id: &str| rows.iter().find(|r| r["id"] == id).unwrap().clone();
    let (ok, gone) = (row(CONNECTED), row(REVOKED));
    assert!(
        gone["revoked"].as_bool().unwrap() && gone["status"].as_str().unwrap().contains("revoked"),
        "{gone}"
    );
    assert!(
        ok["status"].as_str().unwrap().contains("authorized"),
        "{ok}"
    );
    assert_ne!(
        ok["background"], gone["background"],
        "the revoked row stands out"
    );
    assert_ne!(ok["badge"], gone["badge"], "so does its status");
    // Connection, platform, status, first and last seen (readable), exports, failures.
    let cells = ok["cells"].as_array().unwrap();
    assert_eq!(cells[0], CONNECTED);
    assert_eq!(cells[1], "epic");
    let date = regex_lite_date();
    assert!(
        date(cells[3].as_str().unwrap()) && date(cells[4].as_str().unwrap()),
        "{ok}"
    );
    assert_eq!(cells[5], "1", "exports: {ok}");
    assert_eq!(cells[6], "1", "failures: {ok}");
    assert_eq!(
        js(&c, PAGE_OVERFLOWS).await,
        false,
        "the connections page scrolls sideways"
    );
    shot(&c, "connections").await;

    // A click opens the connection: its export's files with counts, sha256 and downloads.
    c.find(Locator::Css(&format!(
        "#connections tr[data-id='{CONNECTED}'] td:nth-child(2)"
    )))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    wait_until(
        &c,
        &format!("location.hash === '#/connection/{CONNECTED}' && document.querySelectorAll('.export table.files tr[data-file]').length === 2"),
        "the connection's export files",
    )
    .await;
    for f in &files {
        let name = f["name"].as_str().unwrap();
        let shown = js(
            &c,
            &format!("const tr = document.querySelector(`.export tr[data-file='{name}']`);
                return {{ text: tr.textContent, href: tr.querySelector('a[download]').getAttribute('href') }};"),
        )
        .await;
        let text = shown["text"].as_str().unwrap();
        assert!(text.contains(f["sha256"].as_str().unwrap()), "{shown}");
        assert!(text.contains(&f["resources"].to_string()), "{shown}");
        let href = shown["href"].as_str().unwrap();
        assert_eq!(href, format!("/api/exports/{task_a}/files/{name}"));
        let r = s
            .http
            .get(format!("{base}{href}"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{href}");
    }
    let chips = js(
        &c,
        "return Object.fromEntries([...document.querySelectorAll('.export .chip')]
            .map(ch => [ch.dataset.type, Number(ch.querySelector('b').textContent)]));",
    )
    .await;
    assert_eq!(
        chips, export["exports"][0]["counts"],
        "resource counts by type"
    );
    assert!(js(
        &c,
        "return document.querySelector('#failures').textContent;"
    )
    .await
    .as_str()
    .unwrap()
    .contains("token_refresh_failure"));
    // The resource lookup shows the stored resource, pretty-printed; an unknown id says so.
    c.find(Locator::Css("#lookup-type"))
        .await
        .unwrap()
        .select_by_value(&kind)
        .await
        .unwrap();
    let id_input = c.find(Locator::Css("#lookup-id")).await.unwrap();
    id_input.send_keys("no-such-id").await.unwrap();
    c.find(Locator::Css("#lookup button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(
        &c,
        "document.querySelector('#lookup-error')",
        "the lookup's not-found",
    )
    .await;
    id_input.clear().await.unwrap();
    id_input.send_keys(&rid).await.unwrap();
    c.find(Locator::Css("#lookup button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(
        &c,
        "document.querySelector('pre#resource')",
        "the looked-up resource",
    )
    .await;
    let shown = js(
        &c,
        "return document.querySelector('pre#resource').textContent;",
    )
    .await;
    let shown = shown.as_str().unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(shown).unwrap(),
        first
    );
    assert!(
        shown.contains(&format!("\n  \"id\": \"{rid}\"")),
        "pretty-printed: {shown}"
    );
    assert_eq!(
        js(&c, PAGE_OVERFLOWS).await,
        false,
        "the connection page scrolls sideways"
    );
    shot(&c, "connection").await;

    // The revoked connection's page says so at the top.
    c.goto(&format!("{base}/#/connection/{REVOKED}"))
        .await
        .unwrap();
    wait_until(
        &c,
        "document.querySelector('.revoked-banner')",
        "the revoked banner",
    )
    .await;

    // The queue: the chart's range changes its buckets; retrying events with their next
    // attempt; errors grouped; the dead list paged.
    c.goto(&format!("{base}/#/queue")).await.unwrap();
    wait_until(
        &c,
        "(ch => ch && ch.dataset.range === 'day' && ch.dataset.buckets === '24')(document.querySelector('#chart'))",
        "a day's chart by hour",
    )
    .await;
    c.find(Locator::Css("#chart-range button[data-range='hour']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(
        &c,
        "(ch => ch.dataset.range === 'hour' && ch.dataset.buckets === '60')(document.querySelector('#chart')) && location.hash.includes('range=hour')",
        "an hour's chart by minute",
    )
    .await;
    assert!(js(
        &c,
        "return document.querySelectorAll('#chart svg rect').length > 0;"
    )
    .await
    .as_bool()
    .unwrap());
    let retrying = js(
        &c,
        "return [...document.querySelectorAll('#retrying tr[data-event-id]')].map(tr => tr.querySelector('td.next').textContent);",
    )
    .await;
    let retrying = retrying.as_array().unwrap();
    assert_eq!(retrying.len(), 3, "{retrying:?}");
    assert!(
        retrying
            .iter()
            .all(|t| t.as_str().unwrap().contains("(in ")),
        "{retrying:?}"
    );
    let groups = js(
        &c,
        "return [...document.querySelectorAll('#error-groups tbody tr')].map(tr => [Number(tr.querySelector('td.count').textContent), tr.querySelector('td.group-error').textContent]);",
    )
    .await;
    let groups = groups.as_array().unwrap();
    assert_eq!(groups.len(), 2, "{groups:?}");
    assert_eq!(groups[0][0], 52);
    assert!(
        groups[0][1].as_str().unwrap().contains("HTTP 503"),
        "{groups:?}"
    );
    assert_eq!(groups[1][0], 8);
    let dead_rows = "document.querySelectorAll('#dead tbody tr[data-event-id]').length";
    wait_until(
        &c,
        &format!("{dead_rows} === 50"),
        "the first page of dead events",
    )
    .await;
    // Ids and dates stay on one line.
    assert_eq!(
        js(
            &c,
            "return [...document.querySelectorAll('#dead td.nowrap, #retrying td.nowrap')]
                .every(td => getComputedStyle(td).whiteSpace === 'nowrap');"
        )
        .await,
        true
    );
    assert_eq!(
        js(&c, PAGE_OVERFLOWS).await,
        false,
        "the queue page scrolls sideways"
    );
    shot(&c, "queue").await;
    c.find(Locator::Css("#dead-more"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(
        &c,
        &format!("{dead_rows} === 60 && document.querySelector('#dead-more').hidden"),
        "the second page of dead events",
    )
    .await;
    let ids = js(
        &c,
        "return [...document.querySelectorAll('#dead tbody tr[data-event-id]')].map(tr => tr.dataset.eventId);",
    )
    .await;
    let mut ids: Vec<String> = ids
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 60, "each dead event once");
    c.close().await.unwrap();
    second_run.stop().await;
    stand_in.stop().await;
}

/// Sizes the window so that the page itself gets `width` x `height` pixels (the browser's
/// own bars take some of a window).
async fn viewport(c: &Client, width: u32, height: u32) {
    c.set_window_size(width, height).await.unwrap();
    let inner = js(c, "return [window.innerWidth, window.innerHeight];").await;
    let (w, h) = (
        inner[0].as_u64().unwrap() as u32,
        inner[1].as_u64().unwrap() as u32,
    );
    c.set_window_size(2 * width - w, 2 * height - h)
        .await
        .unwrap();
}

/// Writes the page as `target/ui/<name>.png`.
async fn shot(c: &Client, name: &str) {
    std::fs::write(
        screenshot_dir().join(format!("{name}.png")),
        c.screenshot().await.unwrap(),
    )
    .unwrap();
}

/// An event id that looks like a sender's: `evt_` and 16 hex digits, from `n`.
fn event_id(n: u64) -> String {
    format!("evt_{:016x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// A check that a cell shows a date and time as the UI writes them (`2026-11-28 14:03:24`).
fn regex_lite_date() -> impl Fn(&str) -> bool {
    |s: &str| {
        let b = s.as_bytes();
        b.len() == 19
            && b.iter().enumerate().all(|(i, c)| match i {
                4 | 7 => *c == b'-',
                10 => *c == b' ',
                13 | 16 => *c == b':',
                _ => c.is_ascii_digit(),
            })
    }
}
