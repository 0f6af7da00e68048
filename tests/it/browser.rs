//! The web UI in a real browser: headless Chromium driven through chromedriver (Debian's
//! `chromium` and `chromium-driver`, installed by `scripts/test`). One journey: log in (the
//! app's navigation hidden until then), watch a delivery arrive without a reload, open it,
//! filter by verdict, replay a dead event, replay a forwarded one only once the confirmation
//! is accepted, log out (told so, not as an error), and check that markup in a payload stays
//! text. Screenshots go to `target/ui/`.

use super::hooks::Hooks;
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
    let port = crate::free_port();
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
            "prefs": {
                "download.default_directory": downloads(profile),
                "download.prompt_for_download": false,
            },
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

/// Where the browser whose profile is `profile` saves downloads.
fn downloads(profile: &Path) -> std::path::PathBuf {
    profile.join("downloads")
}

/// What the header's refresh indicator says.
const LIVE_INDICATOR: &str = "const live = document.querySelector('#live');
    return { text: live.textContent, paused: live.classList.contains('paused'), title: live.title };";

/// Whether any of the app's navigation is on screen.
const NAV_VISIBLE: &str = "return [...document.querySelectorAll('#top, #top nav a, #logout')]
    .some(e => e.offsetParent !== null || getComputedStyle(e).display !== 'none' && e.getClientRects().length > 0);";

/// Waits (bounded) until `script` (a JS expression) is true in the page. A view draws
/// itself in two steps (an empty table, then its rows once fetched), so an expression that
/// throws on a missing element counts as "not yet", not as a failure.
async fn wait_until(c: &Client, script: &str, what: &str) {
    let script = &format!("try {{ return !!({script}); }} catch (_) {{ return false; }}");
    let deadline = std::time::Instant::now() + WAIT;
    while js(c, script).await != true {
        if std::time::Instant::now() > deadline {
            // What the page showed instead, so a failure says more than "not seen".
            let page = js(
                c,
                "return location.hash + '\\n' + (document.querySelector('main') || document.body).innerText.slice(0, 3000);",
            )
            .await;
            panic!(
                "the page showing {what} ({script}): not seen within {WAIT:?}; it showed:\n{}",
                page.as_str().unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    // A wrong password is refused, said so, and not kept in the field.
    password.send_keys("not-the-password").await.unwrap();
    click(&c, "#login-button").await;
    wait_until(
        &c,
        "!document.querySelector('#login-error').hidden",
        "the wrong password refused",
    )
    .await;
    assert_eq!(
        js(&c, "return document.querySelector('#password').value;").await,
        "",
        "the wrong password is cleared"
    );
    password.send_keys(PASSWORD).await.unwrap();
    click(&c, "#login-button").await;
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
    // The list refreshes itself, and the header says so.
    assert_eq!(
        js(&c, LIVE_INDICATOR).await,
        serde_json::json!({"text": "live", "paused": false, "title": "New deliveries appear at the top by themselves"})
    );

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
    // And one to an endpoint that does not exist: refused before its body is read.
    let a = s.send_event("nope", "nope-1", "webhook.test").await;
    assert_eq!(a.status, 404);
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
        "document.querySelectorAll('#deliveries tr[data-id]').length >= 7",
        "seven deliveries",
    )
    .await;
    // The rejected request's id and type are what it claimed: marked unverified, unlike an
    // accepted event's.
    let claims = js(
        &c,
        "return [...document.querySelectorAll('#deliveries tr[data-id]')].map(tr => ({
            id: tr.querySelector('td.event-id').textContent,
            verdict: tr.dataset.verdict,
            unverified: [tr.querySelector('td.type .tag')?.textContent === 'unverified',
              ...['td.type', 'td.event-id'].map(s => tr.querySelector(s).classList.contains('unverified'))] }));",
    )
    .await;
    for row in claims.as_array().unwrap() {
        // The unknown endpoint's request claimed nothing: its body was not read.
        let claimed = row["verdict"] == "rejected" && row["id"] != "";
        assert_eq!(
            row["unverified"],
            serde_json::json!([claimed, claimed, claimed]),
            "{row}"
        );
    }
    assert!(
        claims
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"].as_str().unwrap().ends_with("bad-1")),
        "{claims}"
    );
    // Let the arrival highlight fade before the screenshot (not an assertion).
    for _ in 0..40 {
        if js(&c, "return document.querySelector('tr.fresh') === null;").await == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    std::fs::write(
        screenshot_dir().join("journey-deliveries.png"),
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
        screenshot_dir().join("journey-delivery.png"),
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
    click(&c, "#apply").await;
    wait_until(
        &c,
        "location.hash.includes('verdict=rejected') && (rows => rows.length === 2 && [...rows].every(r => r.dataset.verdict === 'rejected'))(document.querySelectorAll('#deliveries tr[data-id]'))",
        "only the rejected deliveries",
    )
    .await;

    // The rejected request's page does not present what it claimed as its event's.
    let session = login(&s).await;
    let (_, bad) = get_with_cookie(
        &s,
        "/api/deliveries?verdict=rejected&endpoint=std",
        &session.cookie,
    )
    .await;
    let bad = bad["items"][0]["id"].as_str().unwrap().to_string();
    open_delivery(&c, &base, &bad).await;
    let page = js(
        &c,
        "return { title: document.querySelector('#delivery-title').textContent,
            facts: [...document.querySelectorAll('dl.facts dt')].map(dt => [dt.textContent, dt.nextElementSibling.textContent]) };",
    )
    .await;
    let title = page["title"].as_str().unwrap();
    assert!(
        title.contains("rejected request") && !title.contains("webhook.test"),
        "{page}"
    );
    let facts = page["facts"].as_array().unwrap();
    for (label, value) in [
        ("Claimed event id", "bad-1 unverified"),
        ("Claimed event type", "webhook.test unverified"),
    ] {
        assert!(
            facts.contains(&serde_json::json!([label, value])),
            "{label}: {page}"
        );
    }
    assert!(!facts.iter().any(|f| f[0] == "Event id"), "{page}");
    shot(&c, "delivery-rejected").await;

    // A request to an unknown endpoint: its body was never read, so none is offered.
    let (_, nope) = get_with_cookie(&s, "/api/deliveries?endpoint=nope", &session.cookie).await;
    let nope = nope["items"][0]["id"].as_str().unwrap().to_string();
    open_delivery(&c, &base, &nope).await;
    let body = js(
        &c,
        "return { size: document.querySelector('#body-size').textContent,
            note: (n => n && n.textContent)(document.querySelector('#body-not-read')),
            tools: [...document.querySelectorAll('#copy-body, #download-body, #copy-curl, pre#body')].map(e => e.id),
            length: [...document.querySelectorAll('table.headers tr')].some(tr => tr.textContent.startsWith('content-length')) };",
    )
    .await;
    assert_eq!(body["size"], "not read (unknown endpoint)", "{body}");
    assert!(
        body["note"]
            .as_str()
            .is_some_and(|n| n.contains("did not read this request's body")),
        "{body}"
    );
    assert_eq!(body["tools"], serde_json::json!([]), "{body}");
    assert_eq!(body["length"], true, "its headers are kept: {body}");
    shot(&c, "delivery-unknown-endpoint").await;
    // Nothing on this page refreshes: the header does not say "live".
    let indicator = js(&c, LIVE_INDICATOR).await;
    assert_eq!(indicator["text"], "static", "{indicator}");
    assert_eq!(indicator["paused"], true, "{indicator}");

    // Body contains and State do not go together: filling one disables the other, saying why.
    c.goto(&format!("{base}/#/deliveries")).await.unwrap();
    c.wait()
        .for_element(Locator::Css("#f-q"))
        .await
        .unwrap()
        .send_keys("live")
        .await
        .unwrap();
    let form = js(
        &c,
        "return [document.querySelector('#f-state').disabled, !document.querySelector('#filter-note').hidden];",
    )
    .await;
    assert_eq!(
        form,
        serde_json::json!([true, true]),
        "State while Body contains is filled"
    );
    // Asked for both anyway (an address typed or kept): the filters stay, with the API's
    // refusal in their words next to them, and Clear leads back to the list.
    c.goto(&format!("{base}/#/deliveries?state=done&q=live"))
        .await
        .unwrap();
    wait_until(
        &c,
        "!document.querySelector('#list-error').hidden",
        "the refused filters",
    )
    .await;
    let refused = js(
        &c,
        "return { error: document.querySelector('#list-error').textContent,
            form: !!document.querySelector('form#filters #apply'),
            q: document.querySelector('#f-q').value, state: document.querySelector('#f-state').value,
            enabled: !document.querySelector('#f-q').disabled && !document.querySelector('#f-state').disabled };",
    )
    .await;
    let error = refused["error"].as_str().unwrap();
    assert!(
        error.contains("“Body contains”") && error.contains("“State”") && !error.contains('`'),
        "{refused}"
    );
    assert_eq!(
        [
            &refused["form"],
            &refused["q"],
            &refused["state"],
            &refused["enabled"]
        ],
        [
            &serde_json::json!(true),
            &serde_json::json!("live"),
            &serde_json::json!("done"),
            &serde_json::json!(true)
        ],
        "{refused}"
    );
    shot(&c, "deliveries-refused-filters").await;
    c.find(Locator::XPath("//form[@id='filters']//button[.='Clear']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(
        &c,
        "location.hash === '#/deliveries' && document.querySelector('#list-error').hidden && document.querySelectorAll('#deliveries tr[data-id]').length >= 7",
        "the whole list again",
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
        screenshot_dir().join("journey-queue.png"),
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
    // The attempts name the instance that made each only in cluster mode.
    wait_until(
        &c,
        "document.querySelector('#attempts')",
        "the attempts table",
    )
    .await;
    let headings = js(
        &c,
        "return [...document.querySelectorAll('#attempts th')].map(th => th.textContent);",
    )
    .await;
    let cluster = std::env::var("HOOKD_TEST_STORE").is_ok_and(|v| v == "postgres");
    assert_eq!(
        headings.as_array().unwrap().iter().any(|h| h == "Instance"),
        cluster,
        "{headings}"
    );
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
    // The page follows the replayed event until it is done (unless it was done at once), then
    // says it no longer refreshes.
    wait_until(
        &c,
        "(l => l.textContent === 'static' && l.classList.contains('paused'))(document.querySelector('#live')) && document.querySelector('#event-state').textContent === 'done'",
        "the delivery page no longer live once its event is done",
    )
    .await;

    // No endpoint of this instance uses Fasten: the page says that, not merely "no
    // connections yet", which would suggest waiting for some.
    c.goto(&format!("{base}/#/connections")).await.unwrap();
    wait_until(
        &c,
        "document.querySelector('#no-fasten')",
        "the no-Fasten notice",
    )
    .await;
    let notice = js(
        &c,
        "return [document.querySelector('#no-fasten').textContent, !!document.querySelector('#connections-empty, #connections')];",
    )
    .await;
    assert!(
        notice[0]
            .as_str()
            .unwrap()
            .starts_with("No endpoint uses the Fasten processor, so hookd records no connections."),
        "{notice}"
    );
    assert_eq!(notice[1], false, "only the notice: {notice}");
    std::fs::write(
        screenshot_dir().join("journey-connections.png"),
        c.screenshot().await.unwrap(),
    )
    .unwrap();

    // Log out: the API is closed to the browser again.
    click(&c, "#logout").await;
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
    viewport(&c, 1280, 900).await;
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

/// Sizes the window so that the page itself (what a screenshot shows) is `width` x `height`.
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

/// Config for the deliveries pages: two Fasten endpoints that log (so events finish without
/// a Fasten account), the live one selecting every type but support requests.
fn fasten_log_config() -> String {
    format!(
        "[receive]\nlog_body_bytes = 1024\n\
         [[endpoints]]\nname = \"fasten-live\"\nprofile = \"fasten\"\nprocessor = \"log\"\n\
         secrets = [\"{SECRET}\"]\nevents = [\"patient.connection_success\", \
         \"patient.ehi_export_success\", \"patient.ehi_export_failed\", \
         \"patient.authorization_revoked\", \"patient.request_health_system\", \"webhook.test\"]\n\
         [[endpoints]]\nname = \"fasten-sandbox\"\nprofile = \"fasten\"\nprocessor = \"log\"\n\
         secrets = [\"{SECRET}\"]\n"
    )
}

/// One webhook as Fasten sends it: the event's body signed with `secret`.
#[derive(Clone)]
struct Webhook {
    endpoint: &'static str,
    secret: &'static str,
    msg_id: String,
    body: String,
    /// Extra request headers (a credential the receiver must redact).
    headers: Vec<(&'static str, String)>,
}

impl Webhook {
    fn new(endpoint: &'static str, spec: &hookd::simulate::EventSpec, event_id: &str) -> Webhook {
        Webhook {
            endpoint,
            secret: SECRET,
            msg_id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
            body: hookd::simulate::event_body(spec, event_id),
            headers: Vec::new(),
        }
    }

    /// Stores the webhook as the receiver would have at `at_ms`, straight through the store:
    /// the history before this test started. Returns the verdict's name.
    async fn store_at(&self, s: &TestServer, at_ms: u64, latency_us: u64) -> &'static str {
        use hookd::store::{DeliveryDraft, NewEvent, ResponseLog, Verdict};
        let store = &s.running.as_ref().unwrap().store;
        let secret = hookd::secret::Secret::parse(self.secret).unwrap();
        let ts = (at_ms / 1000) as i64;
        let body: serde_json::Value = serde_json::from_str(&self.body).unwrap();
        let (id, kind) = (body["id"].as_str().unwrap(), body["type"].as_str().unwrap());
        let headers = vec![
            ("webhook-id".to_string(), self.msg_id.clone()),
            ("webhook-timestamp".into(), ts.to_string()),
            (
                "webhook-signature".into(),
                hookd::verify::sign(&secret, &self.msg_id, ts, self.body.as_bytes()),
            ),
            ("content-type".into(), "application/json".into()),
            ("user-agent".into(), "Fasten-Connect-Webhooks/1.0".into()),
            ("accept".into(), "*/*".into()),
            ("host".into(), s.receiver.to_string()),
            ("content-length".into(), self.body.len().to_string()),
        ];
        let answer = |status: u16, verdict: &str, reason: &str| ResponseLog {
            status,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                (
                    "x-request-id".into(),
                    uuid::Uuid::new_v4().simple().to_string(),
                ),
            ],
            body: serde_json::json!({"status": verdict, "reason": reason}).to_string(),
        };
        let draft = |verdict: Verdict, status: u16, reason: &str| DeliveryDraft {
            received_at_ms: at_ms,
            endpoint: self.endpoint.into(),
            remote_addr: Some(format!(
                "203.0.113.{}:{}",
                20 + at_ms % 7,
                40_000 + at_ms % 20_000
            )),
            request_headers: headers.clone(),
            body: self.body.clone(),
            body_bytes: self.body.len(),
            body_truncated: false,
            verdict,
            reason: reason.into(),
            response: answer(status, verdict.as_str(), reason),
            event_id: Some(id.into()),
            event_type: Some(kind.into()),
        };
        let (delivery_id, verdict) = if self.secret != SECRET {
            let reason = "no v1 signature matches a configured secret";
            (
                store.record(draft(Verdict::Rejected, 401, reason)).unwrap(),
                Verdict::Rejected,
            )
        } else if self.endpoint == "fasten-live" && kind == "patient.request_support" {
            let reason = format!("event type {kind} is not selected on this endpoint");
            let d = draft(Verdict::Filtered, 200, &reason);
            (store.record_durable(d).await.unwrap(), Verdict::Filtered)
        } else {
            let event = NewEvent {
                event_id: id.into(),
                event_type: kind.into(),
                payload: bytes::Bytes::from(self.body.clone()),
            };
            let respond: hookd::store::Respond = |verdict| {
                let reason = match verdict {
                    Verdict::Duplicate => "event id already accepted on this endpoint",
                    _ => "stored and queued",
                };
                let log = ResponseLog {
                    status: 200,
                    headers: vec![],
                    body: serde_json::json!({"status": verdict.as_str(), "reason": reason})
                        .to_string(),
                };
                (reason.to_string(), log)
            };
            let a = store
                .accept(draft(Verdict::Accepted, 200, ""), event, respond)
                .await
                .unwrap();
            (a.delivery_id, a.verdict)
        };
        store.set_latency(delivery_id, latency_us).unwrap();
        verdict.as_str()
    }

    async fn send(self, http: reqwest::Client, receiver: std::net::SocketAddr) -> u16 {
        let secret = hookd::secret::Secret::parse(self.secret).unwrap();
        let ts = now();
        let sig = hookd::verify::sign(&secret, &self.msg_id, ts, self.body.as_bytes());
        let mut request = http
            .post(format!("http://{receiver}/webhooks/{}", self.endpoint))
            .header("webhook-id", &self.msg_id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .header("content-type", "application/json")
            .header("user-agent", "Fasten-Connect-Webhooks/1.0");
        for (name, value) in &self.headers {
            request = request.header(*name, value);
        }
        request
            .body(self.body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

/// The days before [`populate`]'s: `patients` more patients, each connected and exported,
/// received from six to two days ago, oldest first (ids follow time, and a store hands out
/// none older than the last). Returns the oldest patient's connection id.
async fn earlier_history(s: &TestServer, patients: u64) -> String {
    use hookd::simulate::EventSpec;
    const DAY_MS: u64 = 86_400_000;
    let start = hookd::clock::now_ms() - 6 * DAY_MS;
    let span = 4 * DAY_MS / (2 * patients);
    let mut oldest = None;
    for i in 0..patients {
        let conn = uuid::Uuid::new_v4().to_string();
        for (k, kind) in [
            (0, "patient.connection_success"),
            (1, "patient.ehi_export_success"),
        ] {
            let spec = EventSpec {
                event_type: kind.into(),
                api_mode: "live".into(),
                org_connection_id: conn.clone(),
                resources: 240,
                ..EventSpec::default()
            };
            let hook = Webhook::new("fasten-live", &spec, &uuid::Uuid::new_v4().to_string());
            let n = 2 * i + k;
            let verdict = hook
                .store_at(s, start + n * span, 1_500 + n * 3_571 % 8_000)
                .await;
            assert_eq!(verdict, "accepted");
        }
        oldest.get_or_insert(conn);
    }
    oldest.expect("at least one patient")
}

/// `1,234` for 1234, as the page writes counts.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// The deliveries list's total and status lines, and the time of its last row.
const LIST_TEXTS: &str = "return {
    total: document.querySelector('#list-total').textContent,
    status: document.querySelector('#list-status').textContent,
    last: [...document.querySelectorAll('#deliveries tr[data-id] td.time')].pop().textContent };";

/// A few hundred deliveries as a Fasten integration sees them: connections, exports (one
/// with so many files that the log keeps only its start), failures, revocations, support
/// requests the endpoint does not select, Fasten's redeliveries (one with a changed body)
/// and a few requests signed with a stale secret. Returns the event id of the big export.
async fn populate(s: &TestServer) -> String {
    use hookd::simulate::EventSpec;
    let mut hooks = Vec::new();
    let spec = |kind: &str, conn: &str| EventSpec {
        event_type: kind.into(),
        api_mode: "live".into(),
        org_connection_id: conn.into(),
        resources: 240,
        ..EventSpec::default()
    };
    let event_id = || uuid::Uuid::new_v4().to_string();
    for i in 0..110 {
        let conn = uuid::Uuid::new_v4().to_string();
        hooks.push(Webhook::new(
            "fasten-live",
            &spec("patient.connection_success", &conn),
            &event_id(),
        ));
        let kind = match i % 9 {
            4 => "patient.ehi_export_failed",
            7 => "patient.request_support",
            8 => "patient.request_health_system",
            _ => "patient.ehi_export_success",
        };
        let export = Webhook::new("fasten-live", &spec(kind, &conn), &event_id());
        // Fasten redelivers when an answer is slow: the same event, same body.
        if i % 6 == 2 {
            let mut again = export.clone();
            again.msg_id = format!("msg_{}", uuid::Uuid::new_v4().simple());
            hooks.push(export.clone());
            hooks.push(again);
        } else {
            hooks.push(export);
        }
        if i % 5 == 0 {
            hooks.push(Webhook::new(
                "fasten-live",
                &spec("patient.ehi_export_success", &conn),
                &event_id(),
            ));
        }
        if i % 17 == 3 {
            hooks.push(Webhook::new(
                "fasten-live",
                &spec("patient.authorization_revoked", &conn),
                &event_id(),
            ));
        }
        if i % 23 == 5 {
            hooks.push(Webhook::new(
                "fasten-sandbox",
                &spec("webhook.test", &conn),
                &event_id(),
            ));
        }
        if i % 31 == 11 {
            // A sender still signing with a rotated-out secret.
            let mut stale = Webhook::new(
                "fasten-live",
                &spec("patient.ehi_export_success", &conn),
                &event_id(),
            );
            stale.secret = OTHER_SECRET;
            hooks.push(stale);
        }
    }
    // One event id redelivered with a different body.
    let conn = uuid::Uuid::new_v4().to_string();
    let changed_id = event_id();
    let first = Webhook::new(
        "fasten-live",
        &spec("patient.ehi_export_failed", &conn),
        &changed_id,
    );
    let mut changed = first.clone();
    changed.body = changed
        .body
        .replace("token_refresh_failure", "patient_portal_unavailable");
    hooks.push(first);
    hooks.push(changed);
    // The big export, last: eight files, more than the log keeps; with a credential header.
    let big_id = event_id();
    let mut big = spec(
        "patient.ehi_export_success",
        &uuid::Uuid::new_v4().to_string(),
    );
    big.files = 8;
    let mut big = Webhook::new("fasten-live", &big, &big_id);
    big.headers
        .push(("authorization", "Bearer sk_live_4f9a1c0d2e".into()));
    assert!(big.body.len() > 1024);
    let total = hooks.len() + 1;
    // The older ones as received over the last day and a half, oldest first (ids follow
    // time); the newest few over HTTP, as they arrive.
    let live = hooks.split_off(hooks.len() - 5);
    let span = 36 * 3_600_000 / hooks.len() as u64;
    let start = hookd::clock::now_ms() - 36 * 3_600_000;
    for (i, hook) in hooks.iter().enumerate() {
        let i = i as u64;
        let at = start + i * span + (i * 7_919 % (span / 2));
        let verdict = hook.store_at(s, at, 1_800 + i * 3_571 % 9_000).await;
        assert!(verdict != "rejected" || hook.secret != SECRET);
    }
    // One after the other: the changed redelivery must come after its original, or it
    // would be the one accepted.
    for hook in live {
        let status = hook.send(s.http.clone(), s.receiver).await;
        assert!([200, 401].contains(&status), "{status}");
    }
    assert_eq!(big.send(s.http.clone(), s.receiver).await, 200);
    assert!(total > 200, "{total} deliveries");
    big_id
}

/// The deliveries pages over a realistic log: the total and the reason column, times in
/// UTC and the remembered switch to local time, a duplicate's link to its original (and the
/// flag on a changed redelivery), searches in bodies past what a count reads (the total a
/// lower bound, how far back a page got), a delivery titled by endpoint, type and time, the
/// whole payload of a truncated body pretty-printed, and its body copied, downloaded and
/// copied as curl without secrets. Writes `deliveries.png` and `delivery.png` at 1280x900.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_pages_in_headless_chromium() {
    if !opted_in(
        "HOOKD_TEST_BROWSER",
        "needs headless Chromium and chromedriver in /usr/bin",
    ) {
        return;
    }
    let s = TestServer::start(&fasten_log_config()).await;
    let oldest_connection = earlier_history(&s, 500).await;
    let big_id = populate(&s).await;
    let profile = tempfile::tempdir().unwrap();
    let (_driver, c) = start_browser(profile.path()).await;
    let base = format!("http://{}", s.admin);
    c.goto(&format!("{base}/favicon.svg")).await.unwrap();
    viewport(&c, 1280, 900).await;
    let api = |path: String| {
        let s = &s;
        async move { s.api_ok(&path).await }
    };

    c.goto(&format!("{base}/#/deliveries")).await.unwrap();
    wait_until(
        &c,
        "document.querySelectorAll('#deliveries tr[data-id]').length === 50 && document.querySelector('#list-total').textContent !== ''",
        "a page of deliveries and their total",
    )
    .await;
    let total = js(
        &c,
        "return document.querySelector('#list-total').textContent;",
    )
    .await;
    let listed = api("/api/deliveries?total=1&limit=1".into()).await["total"].clone();
    assert_eq!(listed["exact"], true, "{listed}");
    let listed = listed["count"].as_u64().unwrap();
    assert!(listed > 1_000, "{listed}");
    assert_eq!(
        total,
        format!("{} deliveries", thousands(listed)),
        "the total is shown"
    );

    // The reason column, with each verdict's reason.
    let headings = js(
        &c,
        "return [...document.querySelectorAll('#deliveries th')].map(th => th.textContent);",
    )
    .await;
    assert!(
        headings.as_array().unwrap().contains(&"Reason".into()),
        "{headings}"
    );
    let reason = |verdict: &str| {
        let c = &c;
        let script = format!(
            "return [...document.querySelectorAll('#deliveries tr[data-verdict=\"{verdict}\"] td.reason')].map(td => td.textContent).filter(t => t)[0] || null;"
        );
        async move { js(c, &script).await }
    };
    let filtered = reason("filtered").await;
    assert!(
        filtered
            .as_str()
            .is_some_and(|r| r.contains("not selected")),
        "{filtered}"
    );
    assert!(reason("duplicate")
        .await
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    // At 1280 pixels a rejected or duplicate delivery's reason reads whole (on up to two
    // lines), and the narrow event id column has the whole id in its title.
    let reasons = js(
        &c,
        "return [...document.querySelectorAll('#deliveries tr[data-verdict=\"rejected\"], #deliveries tr[data-verdict=\"duplicate\"]')]
            .map(tr => { const box = tr.querySelector('td.reason .clamp'); const id = tr.querySelector('td.event-id');
              return { verdict: tr.dataset.verdict, reason: box.textContent,
                cut: box.scrollHeight > box.clientHeight + 1 || box.scrollWidth > box.clientWidth + 1,
                id: id.title.split('\\n')[0] }; });",
    )
    .await;
    let reasons = reasons.as_array().unwrap();
    for verdict in ["rejected", "duplicate"] {
        assert!(
            reasons.iter().any(|r| r["verdict"] == verdict),
            "no {verdict} row on the first page"
        );
    }
    for r in reasons {
        assert_eq!(r["cut"], false, "a reason cut short: {r}");
        assert_eq!(r["id"].as_str().unwrap().len(), 36, "a whole event id: {r}");
    }

    // Times are in UTC, said so; the toggle switches to local time, remembered.
    let first_time = "return document.querySelector('#deliveries tr[data-id] td').textContent;";
    let utc = js(&c, first_time).await;
    assert!(utc.as_str().unwrap().ends_with(" UTC"), "{utc}");
    // Let the arrival highlight fade before the screenshot (not an assertion).
    for _ in 0..40 {
        if js(&c, "return document.querySelector('tr.fresh') === null;").await == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let picture = c.screenshot().await.unwrap();
    std::fs::write(screenshot_dir().join("deliveries.png"), &picture).unwrap();
    // The README shows this page; asked to, the test refreshes its copy.
    if std::env::var_os("HOOKD_UPDATE_SCREENSHOT").is_some_and(|v| v == "1") {
        let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/ui.png");
        std::fs::write(readme, &picture).unwrap();
    }
    click(&c, "#tz").await;
    wait_until(
        &c,
        "(td => td && / [+-]\\d\\d:\\d\\d$/.test(td.textContent))(document.querySelector('#deliveries tr[data-id] td'))",
        "times in local time, with their offset",
    )
    .await;
    assert_eq!(
        js(&c, "return document.querySelector('#tz').textContent;").await,
        "Local time"
    );
    c.refresh().await.unwrap();
    wait_until(
        &c,
        "(td => td && / [+-]\\d\\d:\\d\\d$/.test(td.textContent))(document.querySelector('#deliveries tr[data-id] td'))",
        "local time still chosen after a reload",
    )
    .await;
    click(&c, "#tz").await;
    wait_until(
        &c,
        "(td => td && td.textContent.endsWith(' UTC'))(document.querySelector('#deliveries tr[data-id] td'))",
        "times in UTC again",
    )
    .await;

    // A duplicate's row shows whose duplicate it is, not the original's state, and links to it.
    wait_until(
        &c,
        "document.querySelector('#deliveries tr[data-verdict=\"duplicate\"] a.original-link')",
        "a duplicate with its link",
    )
    .await;
    let dup_id = js(
        &c,
        "return document.querySelector('#deliveries tr[data-verdict=\"duplicate\"]').dataset.id;",
    )
    .await;
    let dup_id = dup_id.as_str().unwrap().to_string();
    let state = js(&c, "return document.querySelector('#deliveries tr[data-verdict=\"duplicate\"] td.state').textContent;").await;
    assert!(
        state.as_str().unwrap().starts_with("duplicate of"),
        "{state}"
    );
    assert_eq!(
        js(&c, "return document.querySelectorAll('#deliveries tr[data-verdict=\"duplicate\"] td.state .badge.s-done').length;").await,
        0
    );
    let dup = api(format!("/api/deliveries/{dup_id}")).await;
    let original = dup["original_delivery_id"].as_str().unwrap().to_string();
    c.find(Locator::Css(
        "#deliveries tr[data-verdict=\"duplicate\"] a.original-link",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    wait_until(
        &c,
        &format!("location.hash === '#/delivery/{original}' && document.querySelector('#delivery-title')"),
        "the original delivery",
    )
    .await;
    let shown = api(format!("/api/deliveries/{original}")).await;
    assert_eq!(shown["verdict"], "accepted");
    assert_eq!(shown["event_id"], dup["event_id"]);
    // Titled by endpoint, type and time, not by its internal id.
    let title = js(
        &c,
        "return document.title + ' | ' + document.querySelector('#delivery-title').textContent;",
    )
    .await;
    let title = title.as_str().unwrap();
    assert!(
        title.contains("fasten-live") && title.contains(shown["event_type"].as_str().unwrap()),
        "{title}"
    );
    assert!(!title.contains(&original), "{title}");

    // The changed redelivery is flagged on its page.
    let changed = api("/api/deliveries?verdict=duplicate&limit=500".into()).await;
    let changed = changed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["body_differs"] == true)
        .expect("the changed redelivery")["id"]
        .as_str()
        .unwrap()
        .to_string();
    c.goto(&format!("{base}/#/delivery/{changed}"))
        .await
        .unwrap();
    wait_until(
        &c,
        "(n => n && n.classList.contains('warn') && n.textContent.includes('differs'))(document.querySelector('#duplicate-of'))",
        "the body-differs warning",
    )
    .await;
    // Its own page shows no event state of the original's as its own, and its processing
    // leads to the original's.
    assert_eq!(
        js(&c, "return document.querySelector('#event-state');").await,
        serde_json::Value::Null
    );
    let changed_original = api(format!("/api/deliveries/{changed}")).await;
    assert_eq!(
        js(
            &c,
            "return (a => a && a.getAttribute('href'))(document.querySelector('#see-original a'));"
        )
        .await,
        format!(
            "#/delivery/{}",
            changed_original["original_delivery_id"].as_str().unwrap()
        )
    );
    std::fs::write(
        screenshot_dir().join("delivery-duplicate.png"),
        c.screenshot().await.unwrap(),
    )
    .unwrap();

    // The filters: endpoints from the configuration, a type prefix, text in the bodies.
    c.goto(&format!("{base}/#/deliveries")).await.unwrap();
    wait_until(
        &c,
        "document.querySelector('#f-endpoint option[value=\"fasten-live\"]')",
        "the endpoint filter",
    )
    .await;
    let endpoints = js(
        &c,
        "return [...document.querySelectorAll('#f-endpoint option')].map(o => o.value);",
    )
    .await;
    assert_eq!(
        endpoints,
        serde_json::json!(["", "fasten-live", "fasten-sandbox"])
    );
    c.wait()
        .for_element(Locator::Css("#f-type"))
        .await
        .unwrap()
        .send_keys("patient.ehi*")
        .await
        .unwrap();
    c.find(Locator::Css("#f-q"))
        .await
        .unwrap()
        .send_keys("patient_portal_unavailable")
        .await
        .unwrap();
    click(&c, "#apply").await;
    wait_until(
        &c,
        "(rows => rows.length === 1 && rows[0].dataset.verdict === 'duplicate')(document.querySelectorAll('#deliveries tr[data-id]')) && document.querySelector('#list-total').textContent === '1 delivery'",
        "the one changed redelivery, counted",
    )
    .await;

    // A search in bodies over more deliveries than a count reads (1,000): the total is a
    // lower bound and says so; a full first page says how far back it got, and Older goes
    // on from there.
    c.goto(&format!("{base}/#/deliveries?q=ehi_export_success"))
        .await
        .unwrap();
    let searched = |rows: usize| {
        format!(
            "document.querySelectorAll('#deliveries tr[data-id]').length === {rows} && document.querySelector('#list-total').textContent !== '' && document.querySelector('#list-status').textContent.startsWith('{rows} shown')"
        )
    };
    wait_until(&c, &searched(50), "a page of matches, counted").await;
    let total = api("/api/deliveries?q=ehi_export_success&total=1&limit=1".into()).await;
    let total = &total["total"];
    assert_eq!(total["exact"], false, "{total}");
    let n = total["count"].as_u64().unwrap();
    assert!(n > 50, "{total}");
    let shown = js(&c, LIST_TEXTS).await;
    assert_eq!(
        shown["total"],
        format!("more than {} deliveries", thousands(n))
    );
    let status = |rows: usize, last: &serde_json::Value| {
        format!(
            "{rows} shown · searched back to {}; Older searches on",
            last.as_str().unwrap()
        )
    };
    assert_eq!(shown["status"], status(50, &shown["last"]), "{shown}");
    click(&c, "#more").await;
    wait_until(&c, &searched(100), "the next page of matches").await;
    let shown = js(&c, LIST_TEXTS).await;
    assert_eq!(shown["status"], status(100, &shown["last"]), "{shown}");

    // A patient of days ago, by connection id: found past the first thousand deliveries,
    // which is as far as the count reads, so the page says the count is not known.
    c.goto(&format!("{base}/#/deliveries?q={oldest_connection}"))
        .await
        .unwrap();
    wait_until(&c, &searched(2), "the oldest patient's deliveries").await;
    let shown = js(&c, LIST_TEXTS).await;
    assert_eq!(
        [&shown["total"], &shown["status"]],
        ["count not known: too few matches near the top", "2 shown"],
        "{shown}"
    );
    let total = api(format!(
        "/api/deliveries?q={oldest_connection}&total=1&limit=1"
    ))
    .await;
    assert_eq!(
        total["total"],
        serde_json::json!({"count": 0, "exact": false})
    );

    // The big export: the log kept its start; the page shows the whole payload, pretty.
    let list = api(format!("/api/deliveries?event_id={big_id}")).await;
    let big = list["items"][0]["id"].as_str().unwrap().to_string();
    c.goto(&format!("{base}/#/delivery/{big}")).await.unwrap();
    wait_until(
        &c,
        "document.querySelector('pre#body')",
        "the delivery body",
    )
    .await;
    assert_eq!(
        js(&c, "return !!document.querySelector('#full-body-note');").await,
        true
    );
    let body = js(&c, "return document.querySelector('pre#body').textContent;").await;
    let body = body.as_str().unwrap();
    let whole: serde_json::Value = serde_json::from_str(body).expect("the whole payload");
    assert_eq!(whole["data"]["download_links"].as_array().unwrap().len(), 8);
    assert!(body.contains("\n  \"data\": {"), "pretty-printed: {body}");
    js(&c, "window.scrollTo(0, 0); return null;").await;
    std::fs::write(
        screenshot_dir().join("delivery.png"),
        c.screenshot().await.unwrap(),
    )
    .unwrap();

    // The body tools, clicked. Headless Chromium has no clipboard to read back, so the page's
    // clipboard records what it is given; the download is a real one, into the profile.
    let whole = api(format!("/api/deliveries/{big}")).await["full_body"].clone();
    let whole = whole.as_str().expect("the whole payload");
    js(
        &c,
        "window.__copied = [];
         Object.defineProperty(navigator.clipboard, 'writeText', { configurable: true,
           value: async (text) => { window.__copied.push(text); } });
         return null;",
    )
    .await;
    let copied = |n: usize, toast: &str| {
        format!("window.__copied.length === {n} && document.querySelector('#toast').textContent === '{toast}'")
    };
    click(&c, "#copy-body").await;
    wait_until(&c, &copied(1, "Body copied"), "the body copied").await;
    assert_eq!(
        js(&c, "return window.__copied[0];").await,
        whole,
        "the whole payload, as sent"
    );
    click(&c, "#download-body").await;
    let file = downloads(profile.path()).join(format!("fasten-live-{big_id}.json"));
    let saved = eventually(WAIT, "the downloaded body", || async {
        std::fs::read_to_string(&file).ok()
    })
    .await;
    assert_eq!(saved, whole, "{}", file.display());
    // Copy as curl leaves the secrets out and says so.
    click(&c, "#copy-curl").await;
    wait_until(
        &c,
        &copied(2, "curl command copied"),
        "the curl command copied",
    )
    .await;
    let curl = js(&c, "return window.__copied[1];").await;
    let curl = curl.as_str().unwrap();
    assert!(
        curl.contains(&format!(
            "curl -X POST 'http://{}/webhooks/fasten-live'",
            s.receiver
        )),
        "{curl}"
    );
    assert!(curl.contains("-H 'webhook-id: msg_"), "{curl}");
    assert!(
        !curl.contains("webhook-signature:") && !curl.contains("v1,"),
        "{curl}"
    );
    assert!(
        !curl.contains("sk_live")
            && !curl.contains("authorization:")
            && !curl.contains("<redacted>"),
        "{curl}"
    );
    assert!(
        curl.starts_with("# Left out (secrets): webhook-signature, authorization"),
        "{curl}"
    );
    // The whole payload, quoted for the shell, not the start the log kept.
    let quoted = format!("'{}'", whole.replace('\'', "'\\''"));
    assert!(curl.ends_with(&format!("--data-binary {quoted}")), "{curl}");
    let ui_says = js(
        &c,
        "return document.querySelector('.body-tools').textContent;",
    )
    .await;
    assert!(
        ui_says
            .as_str()
            .unwrap()
            .contains("leaves out webhook-signature"),
        "{ui_says}"
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
/// endpoint `fasten-live`, push events to `push` (signed with [`OTHER_SECRET`]), and two
/// forwarding endpoints whose targets fail (`crm` answers 503, nothing listens for
/// `billing`); `processing` sets the retry policy, `on_revoke` what a revocation does.
fn fasten_ui_config(
    api_base: &str,
    key_file: &Path,
    push: &str,
    crm: &str,
    billing: &str,
    processing: &str,
    on_revoke: &str,
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

# Only the start-up prune runs: the Queue page's retention warning is the test's to set.
[retention]
schedule = "0 0 0 1 1 *"

[fasten]
api_base = "{api_base}"
public_id = "public_test_0123456789"
private_key_file = {key_file:?}
download_hosts = ["http://127.0.0.1"]
on_revoke = "{on_revoke}"

[push]
url = "{push}"
secret = "{OTHER_SECRET}"

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

/// A JS function `lines(td)`: how many lines the text of a cell takes on screen.
macro_rules! lines_js {
    () => {
        "const lines = (td) => {
          const range = document.createRange();
          range.selectNodeContents(td);
          const tops = [...range.getClientRects()].filter(r => r.width > 0).map(r => r.top);
          const style = getComputedStyle(td);
          const line = parseFloat(style.lineHeight) || 1.2 * parseFloat(style.fontSize);
          // Parts of one line may sit a pixel or two apart; a second line is a whole line lower.
          return tops.length ? 1 + Math.round((Math.max(...tops) - Math.min(...tops)) / line) : 0;
        };"
    };
}

/// The Started and Took cells of a delivery's attempts that take more than one line (and
/// `no attempts` when there are none to check).
const WRAPPED_ATTEMPT_TIMES: &str = concat!(
    lines_js!(),
    "const cells = [...document.querySelectorAll('#attempts td.started, #attempts td.took')];
    if (!cells.length) return ['no attempts'];
    return cells.filter(td => lines(td) !== 1).map(td => `${td.textContent}: ${lines(td)} lines`);"
);

/// The id and date cells of the queue's retrying and dead tables (found by their column's
/// heading, not by a class) that are not kept on one line, which takes `white-space:
/// nowrap` and the text shown on one line. A missing table, column or row is named too, so
/// that an empty answer means every such cell was checked.
const WRAPPED_ID_AND_DATE_CELLS: &str = concat!(
    lines_js!(),
    "
    const bad = [];
    for (const [table, headings] of [['retrying', ['Next attempt', 'Event id']], ['dead', ['Received', 'Event id']]]) {
      const all = [...document.querySelectorAll(`#${table} thead th`)].map(th => th.textContent);
      const rows = [...document.querySelectorAll(`#${table} tbody tr[data-event-id]`)];
      if (!rows.length) bad.push(`${table}: no rows`);
      for (const heading of headings) {
        const column = all.indexOf(heading);
        if (column < 0) { bad.push(`${table}: no column ${heading}`); continue; }
        for (const tr of rows) {
          const td = tr.children[column];
          const white = getComputedStyle(td).whiteSpace;
          const n = lines(td);
          if (white !== 'nowrap' || n !== 1) bad.push(`${table} ${heading} ${td.textContent}: ${white}, ${n} lines`);
        }
      }
    }
    return bad;"
);

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
    const MISCOUNTED: &str = "d47a2c90-1e6b-4f85-b3c7-8a0e9d2f6b13";
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
    // hookd's push events go to a service that takes them.
    let push = Hooks::start(OTHER_SECRET, 0).await;
    // First one attempt per event, so failing forwards go dead at once.
    let first_run = TestServer::start(&fasten_ui_config(
        &stand_in.api_base,
        &key_file,
        &push.url(),
        &crm,
        &billing,
        "max_attempts = 1",
        "keep",
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
    let send_body = |id: String, body: String| async move {
        let a = s
            .post_signed("fasten-live", SECRET, &format!("msg_{id}"), &body)
            .await;
        assert_eq!(a.verdict(), (200, "accepted"), "{id}");
        s.wait_for_state(&id, "done").await
    };
    let send =
        |spec: EventSpec, id: String| send_body(id.clone(), simulate::event_body(&spec, &id));
    let mut seed = 0u64;
    let mut next_id = || {
        seed += 1;
        event_id(seed)
    };
    let task_b = "c24f8a91-0e3b-47d6-a5c2-9b1e6d3f8a05";
    send(
        fasten("patient.connection_success", CONNECTED, task_b, 40),
        next_id(),
    )
    .await;
    // The export hookd asked for, announced under the task id Fasten's answer gave.
    let requested = s.api_ok(&format!("/api/connections/{CONNECTED}")).await;
    let task_a = requested["export_request"]["task_id"]
        .as_str()
        .expect("the requested export's task id")
        .to_owned();
    let task_a = task_a.as_str();

    // The browser, logged in while there is one connection: the Connections page counts it
    // in words, and shows the next one without a reload.
    let profile = tempfile::tempdir().unwrap();
    let (_driver, c) = start_browser(profile.path()).await;
    viewport(&c, 1280, 900).await;
    log_in(&c, &format!("http://{}", s.admin)).await;
    c.goto(&format!("http://{}/#/connections", s.admin))
        .await
        .unwrap();
    let summary = "document.querySelector('#connections-summary').textContent";
    wait_until(
        &c,
        &format!(
            "{summary} === '1 patient connection announced by Fasten Connect on fasten-live.'"
        ),
        "one connection, counted in the singular",
    )
    .await;
    assert_eq!(
        js(&c, LIVE_INDICATOR).await,
        serde_json::json!({"text": "live", "paused": false,
            "title": "New connections and changes of status appear by themselves"})
    );
    js(&c, "window.__noReload = 'still here'; return null;").await;
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
    wait_until(
        &c,
        &format!("document.querySelectorAll('#connections tr[data-id]').length === 2 && {summary} === '2 patient connections announced by Fasten Connect on fasten-live.'"),
        "the second connection, without a reload",
    )
    .await;
    assert_eq!(js(&c, "return window.__noReload;").await, "still here");
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
    // A few more patients: two with an export (one whose event announced other counts than
    // the files hold), one still waiting for its first.
    for (conn, task) in [
        (
            "0b8e4f27-5c19-4a3d-92e6-7f1d0c8b3a54",
            Some("e5a1c9d3-7b2f-4e08-a6d4-3f9b1c7e5a20"),
        ),
        (MISCOUNTED, Some("4c9e7a15-2d8b-4f30-9e6a-b1d5c3f7a842")),
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
            let id = next_id();
            let spec = fasten("patient.ehi_export_success", conn, task, 80);
            let mut body: serde_json::Value =
                serde_json::from_str(&simulate::event_body(&spec, &id)).unwrap();
            if conn == MISCOUNTED {
                body["data"]["stats"]["total_by_resource_type"]["Observation"] = 999.into();
            }
            send_body(id, body.to_string()).await;
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
    // And an export whose links name a host hookd may not download from: the URL is long,
    // the cause comes after it.
    let refused = next_id();
    let spec = EventSpec {
        api_base: "http://example.invalid/v1".into(),
        ..fasten(
            "patient.ehi_export_success",
            CONNECTED,
            "9c3e5a71-4b2d-4f86-a1e0-7d5c2b9f8e34",
            40,
        )
    };
    let body = simulate::event_body(&spec, &refused);
    let a = s
        .post_signed("fasten-live", SECRET, &format!("msg_{refused}"), &body)
        .await;
    assert_eq!(a.verdict(), (200, "accepted"));
    wait_for_count(s, "dead", 61).await;
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
            &push.url(),
            &crm,
            &billing,
            "max_attempts = 5\nretry_schedule_secs = [900, 3600]",
            "delete",
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
    // An export whose download is refused by its host: it waits to retry, its error a long
    // URL and then the cause.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let retried = next_id();
    let spec = EventSpec {
        api_base: format!("http://127.0.0.1:{closed}/v1"),
        ..fasten(
            "patient.ehi_export_success",
            CONNECTED,
            "2f7a9c4e-8b1d-4e63-9a05-c6d3e1b8f472",
            40,
        )
    };
    let body = simulate::event_body(&spec, &retried);
    let a = s
        .post_signed("fasten-live", SECRET, &format!("msg_{retried}"), &body)
        .await;
    assert_eq!(a.verdict(), (200, "accepted"));
    wait_for_count(s, "retrying", 4).await;

    // A patient who revokes (on_revoke = "delete" now) and authorizes again: the export
    // stored before is deleted, one announced in between is not downloaded.
    let send_now = |spec: EventSpec, id: String| async move {
        let body = simulate::event_body(&spec, &id);
        let a = s
            .post_signed("fasten-live", SECRET, &format!("msg_{id}"), &body)
            .await;
        assert_eq!(a.verdict(), (200, "accepted"), "{id}");
        s.wait_for_state(&id, "done").await
    };
    const REAUTHORIZED: &str = "e8c41d7a-3f2b-4a95-b6e0-1d9c7f5a2b38";
    let (deleted_id, late_id) = (next_id(), next_id());
    for (kind, task, id) in [
        ("patient.connection_success", task_b, next_id()),
        (
            "patient.ehi_export_success",
            "b3d8f1a6-5c2e-4e97-8a14-f0c6d9e2b751",
            deleted_id.clone(),
        ),
        ("patient.authorization_revoked", task_b, next_id()),
        (
            "patient.ehi_export_success",
            "71e4c9b2-0a6f-4d38-b5e1-9c2a7f3d6e80",
            late_id.clone(),
        ),
        ("patient.connection_success", task_b, next_id()),
    ] {
        send_now(fasten(kind, REAUTHORIZED, task, 40), id).await;
    }
    let again = s.api_ok(&format!("/api/connections/{REAUTHORIZED}")).await;
    assert_eq!(again["status"], "authorized", "{again}");
    assert_eq!(again["revocations"].as_array().unwrap().len(), 1, "{again}");

    // The same browser, logged in to the instance started again.
    let base = format!("http://{}", s.admin);
    log_in(&c, &base).await;

    // The connections: all six, the revoked one marked on its row, times readable.
    c.goto(&format!("{base}/#/connections")).await.unwrap();
    wait_until(
        &c,
        &format!("document.querySelectorAll('#connections tr[data-id]').length === 6 && {summary} === '6 patient connections announced by Fasten Connect on fasten-live; 1 revoked.'"),
        "the six connections, counted",
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
    // The most recently active first.
    let shown = js(
        &c,
        "return [...document.querySelectorAll('#connections tr[data-id]')].map(tr => tr.dataset.id);",
    )
    .await;
    let mut listed = s.api_ok("/api/connections").await["items"]
        .as_array()
        .unwrap()
        .clone();
    listed.sort_by(|a, b| {
        let seen = |c: &serde_json::Value| c["last_seen_ms"].as_u64().unwrap_or(0);
        seen(b).cmp(&seen(a)).then_with(|| {
            a["org_connection_id"]
                .as_str()
                .cmp(&b["org_connection_id"].as_str())
        })
    });
    let newest_first: Vec<&serde_json::Value> =
        listed.iter().map(|c| &c["org_connection_id"]).collect();
    assert_eq!(shown, serde_json::json!(newest_first));
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
    // The export hookd requested: its task id is a field, leading to the export it produced
    // on this page (not raw JSON to read it from).
    let task = js(
        &c,
        "return (t => t && { text: t.textContent, link: !!t.querySelector('a.task-link') })(document.querySelector('#export-task'));",
    )
    .await;
    assert_eq!(
        task,
        serde_json::json!({"text": format!("{task_a} (stored below)"), "link": true})
    );
    click(&c, "#export-task a.task-link").await;
    wait_until(
        &c,
        &format!("location.hash === '#/connection/{CONNECTED}' && scrollY > 0 && (Math.abs(document.querySelector(`.export[data-task='{task_a}']`).getBoundingClientRect().top) < 2 || scrollY + innerHeight >= document.documentElement.scrollHeight - 2)"),
        "the page scrolled to the requested export",
    )
    .await;
    js(&c, "window.scrollTo(0, 0); return null;").await;
    // Nothing on a connection's page refreshes by itself, and the header says so.
    let indicator = js(&c, LIVE_INDICATOR).await;
    assert_eq!(
        [&indicator["text"], &indicator["paused"]],
        [&serde_json::json!("static"), &serde_json::json!(true)],
        "{indicator}"
    );
    assert!(
        indicator["title"]
            .as_str()
            .unwrap()
            .starts_with("This page does not refresh by itself"),
        "{indicator}"
    );
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
    // A failed export's event leads to its delivery.
    let link = js(
        &c,
        "return document.querySelector('#failures a').getAttribute('href');",
    )
    .await;
    assert!(
        link.as_str().unwrap().starts_with("#/deliveries?event_id="),
        "{link}"
    );
    // The resource lookup shows the stored resource, pretty-printed; an unknown id says so.
    c.find(Locator::Css("#lookup-type"))
        .await
        .unwrap()
        .select_by_value(&kind)
        .await
        .unwrap();
    let id_input = c.find(Locator::Css("#lookup-id")).await.unwrap();
    id_input.send_keys("no-such-id").await.unwrap();
    click(&c, "#lookup button[type=submit]").await;
    wait_until(
        &c,
        "document.querySelector('#lookup-error')",
        "the lookup's not-found",
    )
    .await;
    id_input.clear().await.unwrap();
    id_input.send_keys(&rid).await.unwrap();
    click(&c, "#lookup button[type=submit]").await;
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
    // The time-zone toggle re-renders the page: the lookup and its answer stay.
    for zone in ["Local time", "UTC"] {
        click(&c, "#tz").await;
        wait_until(
            &c,
            &format!(
                "document.querySelector('#tz').textContent === '{zone}' && document.querySelector('pre#resource')"
            ),
            "the looked-up resource still shown after the toggle",
        )
        .await;
        assert_eq!(
            js(&c, "return document.querySelector('#lookup-id').value;").await,
            rid.as_str()
        );
    }
    assert_eq!(
        js(&c, PAGE_OVERFLOWS).await,
        false,
        "the connection page scrolls sideways"
    );
    shot(&c, "connection").await;
    assert_eq!(
        js(
            &c,
            "return [document.querySelector('.export .mismatch-state').textContent, document.querySelectorAll('ul.mismatches').length];"
        )
        .await,
        serde_json::json!(["counts match the event", 0])
    );

    // An export whose files hold other counts than its event announced says which.
    c.goto(&format!("{base}/#/connection/{MISCOUNTED}"))
        .await
        .unwrap();
    wait_until(
        &c,
        "document.querySelector('.export .mismatch-state')",
        "the miscounted export",
    )
    .await;
    let warning = js(
        &c,
        "const state = document.querySelector('.export .mismatch-state');
         return { state: state.textContent, bad: state.classList.contains('s-dead'),
           items: [...document.querySelectorAll('.export ul.mismatches li')].map(li => li.textContent) };",
    )
    .await;
    let stored = s.api_ok(&format!("/api/connections/{MISCOUNTED}")).await;
    let observations = &stored["exports"][0]["counts"]["Observation"];
    assert_eq!(
        warning,
        serde_json::json!({
            "state": "1 mismatch",
            "bad": true,
            "items": [format!("Observation: stats say 999, stored {observations}")],
        })
    );

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

    // Authorized again, a connection's page still says that the patient revoked it, when,
    // and what hookd deleted then.
    c.goto(&format!("{base}/#/connection/{REAUTHORIZED}"))
        .await
        .unwrap();
    wait_until(
        &c,
        "document.querySelector('#revocation-history')",
        "the revocation's history",
    )
    .await;
    let history = js(
        &c,
        "return { status: document.querySelector('#connection-status').textContent,
            banner: !!document.querySelector('.revoked-banner'),
            lines: [...document.querySelectorAll('#revocation-history li')].map(li => li.textContent) };",
    )
    .await;
    assert_eq!(history["status"], "authorized", "{history}");
    assert_eq!(history["banner"], false, "{history}");
    let lines: Vec<&str> = history["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{history}");
    let date = regex_lite_date();
    let times: Vec<&str> = lines[0]
        .strip_prefix("Revoked on ")
        .and_then(|l| l.strip_suffix('.'))
        .map(|l| l.split("; authorized again on ").collect())
        .unwrap_or_default();
    assert!(
        times.len() == 2 && times.iter().all(|t| date(t)),
        "{history}"
    );
    assert!(
        lines[1].starts_with("On revocation hookd deleted 1 export (2 files, "),
        "{history}"
    );
    shot(&c, "connection-reauthorized").await;

    // Its events, whatever became of them (the late export hookd skipped too), are one link
    // away: the deliveries whose bodies name it.
    let link = js(
        &c,
        "return (a => a && a.getAttribute('href'))(document.querySelector('#connection-events'));",
    )
    .await;
    assert_eq!(link, format!("#/deliveries?q={REAUTHORIZED}"));
    click(&c, "#connection-events").await;
    let named = s
        .api_ok(&format!("/api/deliveries?q={REAUTHORIZED}&limit=100"))
        .await;
    let named: Vec<&str> = named["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    let late_delivery = s.api_ok(&format!("/api/events/{late_id}")).await;
    let late_delivery = late_delivery["delivery_id"].as_str().unwrap();
    assert!(
        named.contains(&late_delivery) && named.len() >= 5,
        "{named:?}"
    );
    wait_until(
        &c,
        &format!(
            "location.hash.startsWith('#/deliveries') && [...document.querySelectorAll('#deliveries tr[data-id]')].map(tr => tr.dataset.id).join() === {:?}",
            named.join(",")
        ),
        "the connection's deliveries",
    )
    .await;
    // A connection whose export request is still being retried (every connection here had
    // its request answered, so the page is given the API's answer for one that has not):
    // the page says why the field may be empty, and where to look.
    js(
        &c,
        "const fetched = window.__fetched = window.fetch;
         window.fetch = async (url, options) => {
           const r = await fetched(url, options);
           if (!/^\\/api\\/connections\\/[^/]+$/.test(String(url))) return r;
           const c = await r.json();
           Object.assign(c, { export_requested_at_ms: null, export_request: null, export_request_answer: null });
           return new Response(JSON.stringify(c), { status: r.status, headers: r.headers });
         };
         return null;",
    )
    .await;
    let unrequested = CONNECTED;
    // A navigation within the page: the answer above stays in place.
    js(
        &c,
        &format!("location.hash = '#/connection/{unrequested}'; return null;"),
    )
    .await;
    wait_until(
        &c,
        "document.querySelector('#no-export-request')",
        "why no export was requested",
    )
    .await;
    let why = js(
        &c,
        "const p = document.querySelector('#no-export-request');
         return { text: p.textContent, link: p.querySelector('a').getAttribute('href') };",
    )
    .await;
    assert!(
        why["text"]
            .as_str()
            .unwrap()
            .contains("not requested yet, or the request is still being retried"),
        "{why}"
    );
    assert_eq!(why["link"], format!("#/deliveries?q={unrequested}"));
    js(&c, "window.fetch = window.__fetched; return null;").await;

    // The deliveries of its exports say what became of them, not "(yet)".
    for (id, state, says) in [
        (
            &deleted_id,
            "deleted",
            format!("The export's files were deleted when the patient revoked connection {REAUTHORIZED} (on_revoke = \"delete\")."),
        ),
        (
            &late_id,
            "not_downloaded",
            format!("The export was not downloaded: connection {REAUTHORIZED} was revoked when this event was processed"),
        ),
    ] {
        let event = s.api_ok(&format!("/api/events/{id}")).await;
        let delivery = event["delivery_id"].as_str().unwrap();
        open_delivery(&c, &base, delivery).await;
        wait_until(
            &c,
            &format!("(x => x && x.dataset.state === '{state}')(document.querySelector('#fasten-exports'))"),
            &format!("the export {state}"),
        )
        .await;
        let note = js(
            &c,
            "const p = document.querySelector('#no-export-files');
             return { text: p.textContent, link: (a => a && a.getAttribute('href'))(p.querySelector('a')) };",
        )
        .await;
        let text = note["text"].as_str().unwrap();
        assert!(text.starts_with(&says) && !text.contains("yet"), "{note}");
        assert_eq!(note["link"], format!("#/connection/{REAUTHORIZED}"));
        js(&c, "document.querySelector('#attempts-section').scrollIntoView(); return null;").await;
        shot(&c, &format!("delivery-export-{state}")).await;
    }

    // The patient authorized the connection again: Replay on the late export's page (still
    // open) downloads it, and the page shows the stored files without a reload.
    // The replay's answer is held back until the worker has surely run it: the page must
    // not take a finished event for one it has nothing more to read about.
    js(
        &c,
        "window.__noReload = 'still here';
         const fetched = window.fetch;
         window.fetch = async (url, options) => {
           const r = await fetched(url, options);
           if (String(url).endsWith('/replay')) await new Promise((done) => setTimeout(done, 2500));
           return r;
         };
         return null;",
    )
    .await;
    click(&c, "#replay").await;
    wait_until(
        &c,
        "(x => x && x.dataset.state === 'stored' && x.querySelectorAll('table.files tr[data-file]').length === 2 && !x.querySelector('#no-export-files'))(document.querySelector('#fasten-exports'))",
        "the replayed export's files",
    )
    .await;
    wait_until(
        &c,
        "document.querySelectorAll('#attempts tbody tr').length === 2 && document.querySelector('#live').textContent === 'static' && document.querySelector('#replay')",
        "the replayed event done, the page no longer polling",
    )
    .await;
    assert_eq!(js(&c, "return window.__noReload;").await, "still here");
    let replayed = s.api_ok(&format!("/api/events/{late_id}")).await;
    let replayed = s
        .api_ok(&format!(
            "/api/deliveries/{}",
            replayed["delivery_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(replayed["export"]["state"], "stored", "{replayed}");
    // The stored export names its task and state, and leads to its connection.
    let named = js(
        &c,
        "return { task: document.querySelector('#export-task').textContent,
            state: document.querySelector('#export-state').textContent,
            connection: document.querySelector('#export-connection').getAttribute('href') };",
    )
    .await;
    assert_eq!(
        named,
        serde_json::json!({
            "task": replayed["export"]["task_id"],
            "state": "stored",
            "connection": format!("#/connection/{REAUTHORIZED}"),
        })
    );
    // A connection's own events lead to it as well.
    for kind in [
        "patient.connection_success",
        "patient.authorization_revoked",
    ] {
        let listed = s
            .api_ok(&format!(
                "/api/deliveries?type={kind}&q={REAUTHORIZED}&limit=1"
            ))
            .await;
        let delivery = listed["items"][0]["id"].as_str().unwrap().to_owned();
        open_delivery(&c, &base, &delivery).await;
        wait_until(
            &c,
            &format!("(a => a && a.getAttribute('href') === '#/connection/{REAUTHORIZED}')(document.querySelector('#connection-link'))"),
            &format!("the {kind} delivery's connection link"),
        )
        .await;
    }

    // A stored export's delivery lists its files as the connection's page does, and its
    // attempt's long detail leaves the time and duration on one line.
    let exported = &export["exports"][0]["event_id"];
    let event = s
        .api_ok(&format!("/api/events/{}", exported.as_str().unwrap()))
        .await;
    let delivery = event["delivery_id"].as_str().unwrap();
    open_delivery(&c, &base, delivery).await;
    wait_until(
        &c,
        "document.querySelectorAll('#fasten-exports table.files tr[data-file]').length === 2 && document.querySelector('#attempts')",
        "the export's files and attempts",
    )
    .await;
    let listed = js(
        &c,
        "return { headings: [...document.querySelectorAll('#fasten-exports table.files th')].map(th => th.textContent),
            rows: [...document.querySelectorAll('#fasten-exports table.files tr[data-file]')].map(tr =>
              [...tr.querySelectorAll('td')].map(td => td.textContent)) };",
    )
    .await;
    assert_eq!(
        listed["headings"],
        serde_json::json!(["File", "Resources", "Size", "sha256", ""])
    );
    for (row, f) in listed["rows"].as_array().unwrap().iter().zip(&files) {
        let size = row[2].as_str().unwrap();
        assert!(
            size.ends_with(" KiB") || size.ends_with(" B"),
            "a size, not a byte count: {row}"
        );
        assert_eq!(
            [&row[0], &row[3], &row[4]],
            [&f["name"], &f["sha256"], &serde_json::json!("Download")],
            "{row}"
        );
    }
    let wrapped = js(&c, WRAPPED_ATTEMPT_TIMES).await;
    assert_eq!(wrapped, serde_json::json!([]), "attempt times that wrap");
    js(
        &c,
        "document.querySelector('#attempts-section').scrollIntoView(); return null;",
    )
    .await;
    shot(&c, "delivery-export").await;

    // hookd's own push of a stored export: its body can be copied, but no request brought
    // it, so there is no curl command (it would go to a path the receiver does not serve).
    let pushed = s
        .api_ok("/api/deliveries?endpoint=hookd-push&type=hookd.export.stored&limit=1")
        .await;
    let pushed = pushed["items"][0]["id"].as_str().unwrap().to_owned();
    open_delivery(&c, &base, &pushed).await;
    wait_until(
        &c,
        "document.querySelector('.body-tools #copy-body') && document.querySelector('#replay')",
        "the push delivery with its tools and Replay",
    )
    .await;
    let tools = js(
        &c,
        "return { curl: !!document.querySelector('#copy-curl'),
            note: (n => n && n.textContent)(document.querySelector('#no-curl')) };",
    )
    .await;
    assert_eq!(tools["curl"], false, "{tools}");
    assert!(
        tools["note"]
            .as_str()
            .is_some_and(|n| n.contains("hookd made this event itself")
                && n.contains("Replay sends it again")),
        "{tools}"
    );
    assert!(!push.all().is_empty(), "the push was sent");

    // The queue: the chart's range changes its buckets; retrying events with their next
    // attempt; errors grouped; the dead list paged.
    c.goto(&format!("{base}/#/queue")).await.unwrap();
    wait_until(
        &c,
        "(ch => ch && ch.dataset.range === 'day' && ch.dataset.buckets === '24')(document.querySelector('#chart'))",
        "a day's chart by hour",
    )
    .await;
    // Fifteen days by hour: its first bar starts fourteen days and some hours ago.
    click(&c, "#chart-range button[data-range='15d']").await;
    wait_until(
        &c,
        "(ch => ch.dataset.range === '15d' && ch.dataset.buckets === '360')(document.querySelector('#chart')) && location.hash.includes('range=15d')",
        "fifteen days' chart by hour",
    )
    .await;
    let chart = js(
        &c,
        "const first = document.querySelector('#chart .chart-axis span').textContent;
         return { days: (Date.now() - Date.parse(first.replace(' UTC', 'Z').replace(' ', 'T'))) / 86400000,
           pressed: document.querySelector(\"#chart-range button[aria-pressed='true']\").dataset.range,
           bars: document.querySelectorAll('#chart svg rect').length > 0 };",
    )
    .await;
    let days = chart["days"].as_f64().unwrap();
    assert!((14.0..15.0).contains(&days), "{chart}");
    assert_eq!(chart["pressed"], "15d", "{chart}");
    assert_eq!(chart["bars"], true, "{chart}");
    click(&c, "#chart-range button[data-range='hour']").await;
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
    assert_eq!(retrying.len(), 4, "{retrying:?}");
    assert!(
        retrying
            .iter()
            .all(|t| t.as_str().unwrap().contains("(in ")),
        "{retrying:?}"
    );
    // The countdowns move on with the clock, without a reload: five minutes later, each next
    // attempt is five minutes nearer.
    let due = "[...document.querySelectorAll('#retrying td.next .due')].map(s => s.textContent).join('|')";
    let before = js(&c, &format!("return {due};")).await;
    js(
        &c,
        "window.__now = Date.now; Date.now = () => window.__now() + 300000; return null;",
    )
    .await;
    wait_until(
        &c,
        &format!("{due} !== {before}"),
        "the retry countdowns five minutes on",
    )
    .await;
    let shifted = js(&c, &format!("return {due};")).await;
    js(&c, "Date.now = window.__now; return null;").await;
    wait_until(
        &c,
        &format!("{due} !== {shifted}"),
        "the retry countdowns back on time",
    )
    .await;
    // The lists' boxes hold elements only (no part left out shown as text).
    assert_eq!(
        js(
            &c,
            "return [...document.querySelectorAll('#retrying-section, #dead-section')].flatMap(s => [...s.childNodes]).filter(n => n.nodeType === Node.TEXT_NODE).map(n => n.textContent);",
        )
        .await,
        serde_json::json!([]),
        "text in the queue's lists' boxes"
    );
    // Nothing is due: the oldest due event's age is no age at all.
    let oldest = js(
        &c,
        "return (o => ({ figure: o.querySelector('b').textContent, title: o.title }))(document.querySelector('#oldest'));",
    )
    .await;
    assert_eq!(oldest["figure"], "—", "{oldest}");
    assert!(
        oldest["title"]
            .as_str()
            .unwrap()
            .starts_with("Nothing is due"),
        "{oldest}"
    );
    let groups = js(
        &c,
        "return [...document.querySelectorAll('#error-groups tbody tr')].map(tr => [Number(tr.querySelector('td.count').textContent), tr.querySelector('td.group-error').textContent]);",
    )
    .await;
    let groups = groups.as_array().unwrap();
    assert_eq!(groups.len(), 3, "{groups:?}");
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
    // A dead event's id leads to its delivery, as a retrying one's does.
    let unlinked = js(
        &c,
        "return [...document.querySelectorAll('#dead tbody tr[data-event-id]')].filter(tr => {
            const a = tr.querySelector('td:nth-child(4) a');
            return !a || a.textContent !== tr.dataset.eventId || !a.getAttribute('href').startsWith('#/delivery/');
          }).map(tr => tr.dataset.eventId);",
    )
    .await;
    assert_eq!(
        unlinked,
        serde_json::json!([]),
        "dead event ids without a link"
    );
    // Ids and dates stay on one line, in both tables.
    let wrapped = js(&c, WRAPPED_ID_AND_DATE_CELLS).await;
    assert_eq!(wrapped, serde_json::json!([]), "cells that wrap");
    // Every last error shows whole in its three lines, its cause included: a long URL is
    // shortened (and a long chain loses its middle); the tooltip has the whole text.
    let errors = js(
        &c,
        "return [...document.querySelectorAll('#retrying tr[data-event-id], #dead tr[data-event-id]')].map(tr => {
            const td = tr.querySelector('td.error-text'); const box = td.querySelector('.clamp');
            return { id: tr.dataset.eventId, shown: box.textContent, title: td.title,
              cut: box.scrollHeight > box.clientHeight + 1 }; });",
    )
    .await;
    let errors = errors.as_array().unwrap();
    assert!(errors.len() > 50, "{}", errors.len());
    for e in errors {
        assert_eq!(e["cut"], false, "an error cut short: {e}");
    }
    let error = |id: &str| errors.iter().find(|e| e["id"] == id).unwrap().clone();
    for (id, start, cause) in [
        // The retry table's column is narrow: what was attempted, and why it failed.
        (
            &retried,
            "GET http://127.0.0.1:",
            "Connection refused (os error 111)",
        ),
        (
            &refused,
            "download refused: ",
            "is not in fasten.download_hosts",
        ),
    ] {
        let e = error(id);
        let (shown, title) = (e["shown"].as_str().unwrap(), e["title"].as_str().unwrap());
        assert!(shown.starts_with(start) && shown.ends_with(cause), "{e}");
        assert!(
            title.ends_with(cause) && title.contains("/v1/bridge/fhir/ehi-export/"),
            "{e}"
        );
    }
    assert_eq!(
        js(&c, PAGE_OVERFLOWS).await,
        false,
        "the queue page scrolls sideways"
    );
    // Retention: the start-up prune's time; no warning until a prune falls behind, then
    // one without a reload.
    wait_until(
        &c,
        "(b => b && /\\d/.test(b.textContent))(document.querySelector('#last-prune b')) && document.querySelector('#retention-behind').hidden",
        "the last prune's time and no retention warning",
    )
    .await;
    // The page's screenshot shows it as an operator usually sees it, without the warning.
    shot(&c, "queue").await;
    s.mark_retention_behind().await;
    wait_until(
        &c,
        "!document.querySelector('#retention-behind').hidden",
        "the retention warning",
    )
    .await;
    click(&c, "#dead-more").await;
    wait_until(
        &c,
        &format!("{dead_rows} === 61 && document.querySelector('#dead-more').hidden"),
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
    assert_eq!(ids.len(), 61, "each dead event once");
    // A dead event replayed from the list: its row follows it without a reload (dead again
    // with its second attempt, or waiting to retry), the dead events read again from their
    // first page, and "Older" still pages on from there.
    click(
        &c,
        &format!("#dead tr[data-event-id='{refused}'] button.replay"),
    )
    .await;
    wait_until(
        &c,
        &format!(
            "(() => {{
               const dead = document.querySelector(\"#dead tr[data-event-id='{refused}']\");
               const retrying = document.querySelector(\"#retrying tr[data-event-id='{refused}']\");
               if (dead) return dead.dataset.state === 'dead' && dead.querySelector('td.num').textContent === '2'
                 && !!dead.querySelector('button.replay');
               return !!retrying && retrying.querySelector('td.num').textContent === '2';
             }})() && {dead_rows} === 50 && !document.querySelector('#dead-more').hidden"
        ),
        "the replayed dead event's row after its second attempt",
    )
    .await;
    let dead_total = s.api_ok("/api/stats").await["events"]["dead"]
        .as_u64()
        .unwrap();
    click(&c, "#dead-more").await;
    wait_until(
        &c,
        &format!("{dead_rows} === {dead_total} && document.querySelector('#dead-more').hidden"),
        "the dead events paged again after the refresh",
    )
    .await;
    // The retry table fits its box: the error gives way, not the ids and times.
    assert_eq!(
        js(
            &c,
            "return (w => w.scrollWidth <= w.clientWidth)(document.querySelector('#retrying').parentElement);"
        )
        .await,
        true,
        "the retry table scrolls sideways"
    );
    // With nothing dead matching the filter, "Replay all matching" has nothing to do.
    c.goto(&format!("{base}/#/queue?type=no.such.type"))
        .await
        .unwrap();
    wait_until(
        &c,
        "(b => b && b.disabled)(document.querySelector('#replay-all'))",
        "Replay all disabled when no dead event matches",
    )
    .await;
    // On a phone: the header wraps (the time zone toggle stays on screen), and neither the
    // queue nor a delivery with attempts scrolls sideways.
    viewport(&c, 390, 844).await;
    let retrying = s.api_ok("/api/events?state=retrying&limit=1").await;
    // Ids are strings in the API (JavaScript numbers cannot hold them).
    let delivery = retrying["items"][0]["delivery_id"]
        .as_str()
        .unwrap()
        .to_string();
    for page in ["queue".to_string(), format!("delivery/{delivery}")] {
        c.goto(&format!("{base}/#/{page}")).await.unwrap();
        wait_until(
            &c,
            "document.querySelector('#retrying, #attempts')",
            &format!("{page} on a phone"),
        )
        .await;
        assert_eq!(
            js(&c, PAGE_OVERFLOWS).await,
            false,
            "{page} scrolls sideways on a phone"
        );
        assert_eq!(
            js(
                &c,
                "return document.querySelector('#tz').getBoundingClientRect().right <= window.innerWidth;"
            )
            .await,
            true,
            "{page}: the time zone toggle is off screen"
        );
    }
    c.close().await.unwrap();
    second_run.stop().await;
    stand_in.stop().await;
}

/// Logs in at `base` and waits for the deliveries list. A session still valid there (in
/// cluster mode sessions live in the database, and outlast an instance) needs no login.
async fn log_in(c: &Client, base: &str) {
    c.goto(&format!("{base}/")).await.unwrap();
    wait_until(
        c,
        "document.querySelector('#password, #deliveries')",
        "the login form or the deliveries list",
    )
    .await;
    if js(c, "return !!document.querySelector('#password');").await == true {
        c.find(Locator::Css("#password"))
            .await
            .unwrap()
            .send_keys(PASSWORD)
            .await
            .unwrap();
        click(c, "#login-button").await;
    }
    wait_until(
        c,
        "document.querySelector('#deliveries')",
        "the deliveries list",
    )
    .await;
}

/// Opens delivery `id`'s page and waits until it is shown (not the page before it, which may
/// have the same parts).
async fn open_delivery(c: &Client, base: &str, id: &str) {
    c.goto(&format!("{base}/#/delivery/{id}")).await.unwrap();
    wait_until(
        c,
        &format!("location.hash === '#/delivery/{id}' && [...document.querySelectorAll('#main p.small')].some(p => p.textContent === 'delivery {id}')"),
        &format!("delivery {id}"),
    )
    .await;
}

/// Clicks the element `css` selects.
async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Writes the page as `target/ui/<name>.png`.
async fn shot(c: &Client, name: &str) {
    // A page's picture starts at its top, wherever the test's clicks scrolled it.
    js(c, "window.scrollTo(0, 0); return true;").await;
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
        // Times carry their zone (UTC unless the toggle chose local time).
        let Some(s) = s.strip_suffix(" UTC") else {
            return false;
        };
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
