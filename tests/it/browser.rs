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
