//! hookd's integration tests: each starts the real server on 127.0.0.1:0 with a temporary
//! data directory and speaks HTTP to it (or runs the built binary).

mod admin;
mod alerts;
mod binary;
mod browser;
mod check_config;
mod cli;
mod crosscheck;
mod deliveries;
mod fasten;
mod hooks;
mod hostile;
mod ops;
mod packaging;
mod postgres;
mod process;
mod receive;
mod retention;
mod storage;
mod ui;

use hookd::config::Config;
use hookd::process::Processors;
use hookd::secret::Secret;
use hookd::server::{self, Running};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const OTHER_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// A hookd running in this process, with its temporary data directory.
pub struct TestServer {
    pub running: Option<Running>,
    pub receiver: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

/// Config text for tests: loopback port 0 everywhere, and `extra` appended.
pub fn config_text(dir: &Path, extra: &str) -> String {
    format!(
        "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{extra}",
        dir.join("data")
    )
}

/// The usual test endpoints: `std` (standard, all types) and `fasten` (selected types only).
pub fn endpoints() -> String {
    format!(
        r#"
[[endpoints]]
name = "std"
secrets = ["{SECRET}"]

[[endpoints]]
name = "fasten"
profile = "fasten"
secrets = ["{SECRET}", "{OTHER_SECRET}"]
events = ["patient.ehi_export_success", "patient.ehi_export_failed"]
max_body_bytes = 2048
"#
    )
}

/// A port on 127.0.0.1 that nothing listens on now (bound, then let go): for a server a test
/// starts on a port it must know first, or for a connection that must be refused.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn load_config(dir: &Path, text: &str) -> Config {
    let path = dir.join("hookd.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(Some(&path), &HashMap::new()).unwrap()
}

impl TestServer {
    /// Starts hookd with `extra` config (endpoints etc.).
    pub async fn start(extra: &str) -> TestServer {
        Self::start_with(extra, None).await
    }

    pub async fn start_with(extra: &str, processors: Option<Processors>) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, extra, processors).await
    }

    /// Starts hookd on an existing directory (restarts).
    pub async fn start_in(
        dir: tempfile::TempDir,
        extra: &str,
        processors: Option<Processors>,
    ) -> TestServer {
        let mut text = config_text(dir.path(), extra);
        if let Some(store) = postgres::suite_store(dir.path(), extra).await {
            text.push_str(&store);
        }
        let config = load_config(dir.path(), &text);
        let running = server::start(config, processors)
            .await
            .unwrap_or_else(|e| panic!("hookd did not start: {e}"));
        TestServer {
            receiver: running.receiver_addr,
            admin: running.admin_addr,
            running: Some(running),
            dir,
            http: reqwest::Client::new(),
        }
    }

    /// Stops gracefully and hands back the data directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(r) = self.running.take() {
            r.shutdown();
            r.wait().await;
        }
        self.dir
    }

    pub fn url(&self, endpoint: &str) -> String {
        format!("http://{}/webhooks/{endpoint}", self.receiver)
    }

    /// POSTs `body` to `endpoint`, signed with `secret` at `ts` (unix seconds).
    pub async fn post_signed_at(
        &self,
        endpoint: &str,
        secret: &str,
        id: &str,
        ts: i64,
        body: &str,
    ) -> Answer {
        let secret = Secret::parse(secret).unwrap();
        let sig = hookd::verify::sign(&secret, id, ts, body.as_bytes());
        let response = self
            .http
            .post(self.url(endpoint))
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        Answer::from(response).await
    }

    pub async fn post_signed(&self, endpoint: &str, secret: &str, id: &str, body: &str) -> Answer {
        self.post_signed_at(endpoint, secret, id, now(), body).await
    }

    /// Sends a standard event `{"id","type","data"}` signed with [`SECRET`].
    pub async fn send_event(&self, endpoint: &str, event_id: &str, event_type: &str) -> Answer {
        let body = event_body(event_id, event_type);
        self.post_signed(endpoint, SECRET, &format!("msg_{event_id}"), &body)
            .await
    }

    /// GET on the admin API that must answer 200; returns the JSON.
    pub async fn api_ok(&self, path: &str) -> serde_json::Value {
        self.api_status(path, 200).await
    }

    /// GET on the admin API that must answer `status`; returns the JSON.
    pub async fn api_status(&self, path: &str, status: u16) -> serde_json::Value {
        let (got, body) = self.api(path).await;
        assert_eq!(got, status, "GET {path}: {body}");
        body
    }

    /// POST on the admin API that must answer `status`; returns the JSON.
    pub async fn api_post_status(&self, path: &str, status: u16) -> serde_json::Value {
        let (got, body) = self.api_post(path).await;
        assert_eq!(got, status, "POST {path}: {body}");
        body
    }

    /// GET on the admin API, with the admin token.
    pub async fn api(&self, path: &str) -> (u16, serde_json::Value) {
        self.api_call(reqwest::Method::GET, path).await
    }

    /// POST on the admin API, with the admin token.
    pub async fn api_post(&self, path: &str) -> (u16, serde_json::Value) {
        self.api_call(reqwest::Method::POST, path).await
    }

    async fn api_call(&self, method: reqwest::Method, path: &str) -> (u16, serde_json::Value) {
        let response = self
            .http
            .request(method, format!("http://{}{path}", self.admin))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(serde_json::Value::Null);
        (status, body)
    }

    /// The status of a GET on the admin listener with `token` (or none).
    pub async fn admin_status(&self, path: &str, token: Option<&str>) -> u16 {
        let mut request = self.http.get(format!("http://{}{path}", self.admin));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        request.send().await.unwrap().status().as_u16()
    }

    /// `/api/stats` once `events.<state>` has reached `n`. The counters follow the records
    /// by a moment (the writer counts after its transaction commits), so a test that just saw
    /// an event's new state reads them this way; a wrong count fails after [`WAIT`].
    pub async fn stats_with(&self, state: &str, n: u64) -> serde_json::Value {
        eventually(
            WAIT,
            &format!("events.{state} reaching {n}"),
            || async move {
                let stats = self.api_ok("/api/stats").await;
                (stats["events"][state] == n).then_some(stats)
            },
        )
        .await
    }

    /// Marks retention as behind (`Pruner::mark_behind`) once the start-up prune has ended:
    /// a prune that ends within 30 minutes clears the mark, so one still running would.
    pub async fn mark_retention_behind(&self) {
        let pruner = &self.running.as_ref().unwrap().pruner;
        eventually(WAIT, "the start-up prune", || async {
            pruner.status().last_prune_at_ms.map(|_| ())
        })
        .await;
        pruner.mark_behind();
    }

    /// Waits (bounded) until the event reaches `state`, and returns it.
    pub async fn wait_for_state(&self, event_id: &str, state: &str) -> serde_json::Value {
        let path = &format!("/api/events/{event_id}");
        eventually(
            WAIT,
            &format!("event {event_id} reaching {state}"),
            || async move {
                let (status, event) = self.api(path).await;
                (status == 200 && event["state"] == state).then_some(event)
            },
        )
        .await
    }
}

/// How long a test waits for something that should happen by itself (real time).
pub const WAIT: Duration = Duration::from_secs(20);

/// Polls `check` until it returns `Some`, and returns that; after `within` of real time it
/// panics, naming `what`.
///
/// The pause between checks is a tokio sleep, so under paused time it moves tokio's clock
/// (retries and schedules come due); when the clock jumped instead of waiting, a short real
/// sleep on a blocking thread (during which tokio does not advance its paused clock) lets
/// threads outside the runtime, such as the store's writer, make progress.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    const POLL: Duration = Duration::from_millis(20);
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not seen within {within:?}"
        );
        let before = std::time::Instant::now();
        tokio::time::sleep(POLL).await;
        if before.elapsed() < POLL / 2 {
            let real = || std::thread::sleep(Duration::from_millis(1));
            tokio::task::spawn_blocking(real).await.unwrap();
        }
    }
}

/// Opens a stopped hookd's sled store directly, to damage or inspect it. A store just
/// closed can stay locked for a few milliseconds while sled's background flusher of the
/// dropped handle winds down (hookd's own opening waits for it too), so a lock is waited
/// for, up to 5 s.
pub fn open_sled(dir: &Path) -> sled::Db {
    let started = std::time::Instant::now();
    loop {
        match sled::open(dir) {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && started.elapsed() < Duration::from_secs(5) =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            opened => return opened.unwrap(),
        }
    }
}

/// Whether the opt-in test gated by the environment variable `var` runs; prints why not when
/// it does not. `scripts/test` sets these variables; a bare `cargo test` skips such tests.
pub fn opted_in(var: &str, needs: &str) -> bool {
    if std::env::var_os(var).is_some_and(|v| v == "1") {
        return true;
    }
    // Straight to stderr, past the test harness's capture, so that a passing run shows it.
    let line = format!("skipped: {needs}; set {var}=1 to run it (scripts/test does)\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    false
}

pub fn event_body(event_id: &str, event_type: &str) -> String {
    serde_json::json!({
        "api_mode": "test",
        "date": "2024-06-13T00:08:31Z",
        "id": event_id,
        "type": event_type,
        "data": {"hello": "world"}
    })
    .to_string()
}

/// Accepts `event_id` on the `std` endpoint straight through the store (no HTTP), as
/// received at `at_ms`, and returns what the store decided.
pub async fn deliver(
    store: &hookd::store::Store,
    event_id: &str,
    at_ms: u64,
) -> hookd::store::Accepted {
    deliver_logging(store, event_id, "", at_ms).await
}

/// [`deliver`], with `logged` as the body the delivery log keeps (what `q=` searches).
pub async fn deliver_logging(
    store: &hookd::store::Store,
    event_id: &str,
    logged: &str,
    at_ms: u64,
) -> hookd::store::Accepted {
    use hookd::store::{DeliveryDraft, NewEvent, ResponseLog, Verdict};
    let draft = DeliveryDraft {
        received_at_ms: at_ms,
        endpoint: "std".into(),
        remote_addr: None,
        request_headers: vec![],
        body: logged.into(),
        body_bytes: logged.len(),
        body_truncated: false,
        verdict: Verdict::Accepted,
        reason: String::new(),
        response: ResponseLog {
            status: 200,
            headers: vec![],
            body: String::new(),
        },
        event_id: Some(event_id.into()),
        event_type: Some("webhook.test".into()),
    };
    let event = NewEvent {
        event_id: event_id.into(),
        event_type: "webhook.test".into(),
        payload: bytes::Bytes::from(event_body(event_id, "webhook.test")),
    };
    let respond: hookd::store::Respond = |_| {
        let log = ResponseLog {
            status: 200,
            headers: vec![],
            body: String::new(),
        };
        (String::new(), log)
    };
    store.accept(draft, event, respond).await.unwrap()
}

pub fn now() -> i64 {
    hookd::clock::system_secs()
}

/// A receiver answer: status, the JSON body, and the headers.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    pub async fn from(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(serde_json::Value::Null);
        Answer {
            status,
            body,
            headers,
        }
    }

    /// `(status, body.status)`, e.g. `(200, "accepted")`.
    pub fn verdict(&self) -> (u16, &str) {
        (self.status, self.body["status"].as_str().unwrap_or(""))
    }
}
