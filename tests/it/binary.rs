//! The built `hookd` binary: embedded defaults, check-config, SIGTERM, and SIGKILL under load.

use super::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hookd");

/// A hookd child process and the addresses it printed.
pub struct Proc {
    pub child: Child,
    pub receiver: String,
    pub admin: String,
    pub stdout: Vec<String>,
}

/// A `hookd` command (the built binary).
pub fn hookd() -> Command {
    Command::new(BIN)
}

pub fn spawn(cwd: &Path, args: &[&str]) -> Proc {
    let mut command = hookd();
    command
        .args(args)
        .current_dir(cwd)
        .env("HOOKD_LOG", "warn")
        .stderr(Stdio::inherit());
    start(command)
}

/// Starts `command` (stdout is taken over) and waits for the addresses hookd prints.
pub fn start(mut command: Command) -> Proc {
    let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stdout = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        stdout.push(line.clone());
        if let Some(rest) = line.strip_prefix("listening ") {
            let mut addrs = rest
                .split(' ')
                .map(|kv| kv.split_once('=').unwrap().1.to_string());
            let receiver = addrs.next().unwrap();
            let admin = addrs.next().unwrap();
            // Keep draining stdout so the child never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return Proc {
                child,
                receiver,
                admin,
                stdout,
            };
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("hookd did not report its addresses: {stdout:?}");
}

/// Sends a signal by name (`TERM`, `KILL`) to the child.
pub fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill")
        .args(["-s", name, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Waits (bounded) for the child to exit.
pub fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "hookd did not exit in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn runs_on_embedded_defaults_and_prints_a_working_secret() {
    let dir = tempfile::tempdir().unwrap();
    // The defaults listen on fixed ports; move them aside with the documented variables.
    let mut child = Command::new(BIN)
        .current_dir(dir.path())
        .env("HOOKD_LISTEN", "127.0.0.1:0")
        .env("HOOKD_ADMIN_LISTEN", "127.0.0.1:0")
        .env("HOOKD_LOG", "warn")
        .env("HOOKD_SHOW_SECRET", "1") // stdout is a pipe here, as under systemd
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .take_while(|l| !l.starts_with("listening "))
        .collect();
    let text = lines.join("\n");
    let secret_line = lines
        .iter()
        .find(|l| l.trim().starts_with("whsec_"))
        .expect("secret printed");
    let stored =
        std::fs::read_to_string(dir.path().join("hookd-data/secrets/default.secret")).unwrap();
    assert_eq!(secret_line.trim(), stored.trim());
    let url = text
        .split_whitespace()
        .find(|w| w.starts_with("http://") && w.ends_with("/webhooks/default"))
        .expect("receiving URL printed")
        .to_string();
    // `hookd send`, as the printed hint says, gets a 200.
    let out = Command::new(BIN)
        .args([
            "send",
            "--to",
            &url,
            "--secret-file",
            "hookd-data/secrets/default.secret",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("accepted"));
    signal(&child, "TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(20)).success());
}

#[test]
fn a_first_start_on_a_busy_port_leaves_no_secret_unseen() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let start = |listen: &str| {
        Command::new(BIN)
            .current_dir(dir.path())
            .env("HOOKD_LISTEN", listen)
            .env("HOOKD_ADMIN_LISTEN", "127.0.0.1:0")
            .env("HOOKD_LOG", "warn")
            .env("HOOKD_SHOW_SECRET", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let out = start(&busy_addr).wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&busy_addr) && err.contains("HOOKD_LISTEN"),
        "{err}"
    );
    assert!(
        !dir.path()
            .join("hookd-data/secrets/default.secret")
            .exists(),
        "a secret nobody saw"
    );
    // The next start is a first start: it prints the secret it generates.
    let mut child = start("127.0.0.1:0");
    let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .take_while(|l| !l.starts_with("listening "))
        .collect();
    assert!(
        lines.iter().any(|l| l.trim().starts_with("whsec_")),
        "{lines:?}"
    );
    signal(&child, "TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(20)).success());
}

#[test]
fn check_config_names_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, endpoints()).unwrap();
    let out = Command::new(BIN)
        .args(["check-config", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[endpoints]]\nname = \"x\"\nsecrets = [\"whsec_AAAA\"]\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("endpoints[0].secrets[0]"),
        "{err}"
    );

    let out = Command::new(BIN)
        .args(["check-config", "/nonexistent/hookd.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/hookd.toml"));
}

#[test]
fn refuses_to_start_with_a_public_admin_listener_and_no_credential() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .current_dir(dir.path())
        .env("HOOKD_ADMIN_LISTEN", "0.0.0.0:0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("admin.token"));
}

pub fn write_config(dir: &Path, extra: &str) -> String {
    let path = dir.join("hookd.toml");
    std::fs::write(&path, config_text(dir, extra)).unwrap();
    path.to_string_lossy().into_owned()
}

/// [`write_config`] on the suite's store: PostgreSQL when the suite runs there, so what a
/// real process promises (an answer only after a commit, a clean stop) is tested on both.
pub async fn write_suite_config(dir: &Path, extra: &str) -> String {
    let store = crate::postgres::suite_store(dir, extra).await;
    write_config(dir, &format!("{extra}{}", store.unwrap_or_default()))
}

#[tokio::test]
async fn sigterm_finishes_in_flight_work_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_suite_config(dir.path(), &endpoints()).await;
    let mut p = spawn(dir.path(), &["--config", &config]);
    let s = Client::new(&p.receiver, &p.admin);
    for i in 0..20 {
        assert_eq!(s.send(&format!("term-{i}")).await, 200);
    }
    signal(&p.child, "TERM");
    assert!(wait_exit(&mut p.child, Duration::from_secs(30)).success());
    // Everything is there after a restart.
    let mut p = spawn(dir.path(), &["--config", &config]);
    let s = Client::new(&p.receiver, &p.admin);
    for i in 0..20 {
        assert_eq!(s.state(&format!("term-{i}")).await.as_deref(), Some("done"));
    }
    signal(&p.child, "TERM");
    wait_exit(&mut p.child, Duration::from_secs(30));
    assert!(p.stdout.iter().any(|l| l.contains("receiving: POST")));
}

/// Talks to a hookd child process.
pub struct Client {
    http: reqwest::Client,
    receiver: String,
    admin: String,
}

impl Client {
    pub fn new(receiver: &str, admin: &str) -> Client {
        Client {
            http: reqwest::Client::new(),
            receiver: receiver.into(),
            admin: admin.into(),
        }
    }

    pub async fn send(&self, id: &str) -> u16 {
        self.try_send(id).await.unwrap_or(0)
    }

    async fn try_send(&self, id: &str) -> Option<u16> {
        let body = event_body(id, "webhook.test");
        let secret = Secret::parse(SECRET).unwrap();
        let ts = now();
        let r = self
            .http
            .post(format!("http://{}/webhooks/std", self.receiver))
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header(
                "webhook-signature",
                hookd::verify::sign(&secret, id, ts, body.as_bytes()),
            )
            .body(body)
            .send()
            .await
            .ok()?;
        Some(r.status().as_u16())
    }

    pub async fn state(&self, id: &str) -> Option<String> {
        let r = self
            .http
            .get(format!("http://{}/api/events/{id}", self.admin))
            .send()
            .await
            .ok()?;
        let v: serde_json::Value = r.json().await.ok()?;
        v["state"].as_str().map(str::to_string)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_event_and_processes_each_once() {
    // The forward target counts deliveries per webhook-id: "once in effect" means every
    // acknowledged id arrives, and hookd holds exactly one event for it.
    let seen: Arc<Mutex<std::collections::HashMap<String, usize>>> = Default::default();
    let seen_in_sink = seen.clone();
    use warp::Filter;
    let route = warp::post()
        .and(warp::header::<String>("webhook-id"))
        .map(move |id: String| {
            *seen_in_sink.lock().unwrap().entry(id).or_default() += 1;
            warp::reply()
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());

    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "[[endpoints]]\nname = \"std\"\nsecrets = [\"{SECRET}\"]\n[endpoints.forward]\nurl = \"http://{sink}/in\"\nsecret = \"{OTHER_SECRET}\"\n"
    );
    let config = write_suite_config(dir.path(), &extra).await;
    let mut p = spawn(dir.path(), &["--config", &config]);
    let client = Arc::new(Client::new(&p.receiver, &p.admin));

    // 16 senders fire until hookd dies under them; each remembers what got a 200.
    let acked: Arc<Mutex<Vec<String>>> = Default::default();
    let mut senders = Vec::new();
    for worker in 0..16 {
        let client = client.clone();
        let acked = acked.clone();
        senders.push(tokio::spawn(async move {
            for i in 0..10_000 {
                let id = format!("kill-{worker}-{i}");
                match client.try_send(&id).await {
                    Some(200) => acked.lock().unwrap().push(id),
                    Some(_) => {}
                    None => return, // hookd is gone
                }
            }
        }));
    }
    let acked_now = || acked.lock().unwrap().len();
    eventually(WAIT, "400 acknowledged events", || async {
        (acked_now() >= 400).then_some(())
    })
    .await;
    p.child.kill().unwrap(); // SIGKILL
    p.child.wait().unwrap();
    for s in senders {
        s.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    let mut p = spawn(dir.path(), &["--config", &config]);
    let client = Client::new(&p.receiver, &p.admin);
    let client = &client;
    for id in &acked {
        eventually(
            WAIT,
            &format!("acknowledged {id} done after restart"),
            || async move { (client.state(id).await.as_deref() == Some("done")).then_some(()) },
        )
        .await;
    }
    {
        // Each acknowledged event reached the target exactly once, except those whose result
        // the kill took after the target answered: attempts in flight (one per worker) and
        // results riding along to the next flush (a batch's worth). Those arrived twice.
        let seen = seen.lock().unwrap();
        let mut twice = Vec::new();
        for id in &acked {
            match seen.get(id).copied().unwrap_or(0) {
                1 => {}
                2 => twice.push(id),
                n => panic!("{id} was forwarded {n} times"),
            }
        }
        assert!(
            twice.len() <= 2 * hookd::config::defaults::WORKERS,
            "forwarded twice: {twice:?}"
        );
    }
    // Redelivery of an acknowledged id is still a duplicate after the crash.
    let body = event_body(&acked[0], "webhook.test");
    let secret = Secret::parse(SECRET).unwrap();
    let ts = now();
    let r = client
        .http
        .post(format!("http://{}/webhooks/std", client.receiver))
        .header("webhook-id", &acked[0])
        .header("webhook-timestamp", ts.to_string())
        .header(
            "webhook-signature",
            hookd::verify::sign(&secret, &acked[0], ts, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["status"], "duplicate");
    let stats_url = &format!("http://{}/api/stats", client.admin);
    let stats = eventually(WAIT, "an empty queue", || async move {
        let response = client.http.get(stats_url).send().await.unwrap();
        let stats: serde_json::Value = response.json().await.unwrap();
        (stats["queue_depth"] == 0 && stats["events"]["processing"] == 0).then_some(stats)
    })
    .await;
    // One event per accepted id: nothing was stored twice.
    assert_eq!(stats["deliveries"]["accepted"], stats["events"]["done"]);
    signal(&p.child, "TERM");
    wait_exit(&mut p.child, Duration::from_secs(30));
}

/// Runs the built binary under `umask 022`, as `cargo run` or a container would.
fn hookd_with_umask_022(args: &[&str]) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg("umask 022; exec \"$0\" \"$@\"")
        .arg(BIN)
        .args(args);
    command
}

/// Every directory under `root` (and `root` itself) that is not 0700, every file not 0600.
fn not_private(root: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut wrong = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        let want = if meta.is_dir() { 0o700 } else { 0o600 };
        if mode != want {
            wrong.push(format!("{} is {mode:o}", path.display()));
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        }
    }
    wrong
}

#[test]
fn data_directory_and_backups_are_private_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = hookd_with_umask_022(&[]);
    command
        .current_dir(dir.path())
        .env("HOOKD_LISTEN", "127.0.0.1:0")
        .env("HOOKD_ADMIN_LISTEN", "127.0.0.1:0")
        .env("HOOKD_LOG", "warn");
    let mut p = start(command);
    let out = hookd()
        .args([
            "send",
            "--to",
            &format!("http://{}/webhooks/default", p.receiver),
            "--secret-file",
            "hookd-data/secrets/default.secret",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("accepted"));
    signal(&p.child, "TERM");
    assert!(wait_exit(&mut p.child, Duration::from_secs(20)).success());

    let data = dir.path().join("hookd-data");
    assert!(data.join("db").exists(), "the store was written");
    let wrong = not_private(&data);
    assert!(wrong.is_empty(), "not private: {wrong:?}");

    // Nothing listens on port 1, so the backup is the offline copy whatever else runs here.
    let out = hookd_with_umask_022(&["backup", "--to", "copy"])
        .current_dir(dir.path())
        .env("HOOKD_ADMIN_LISTEN", "127.0.0.1:1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wrong = not_private(&dir.path().join("copy"));
    assert!(wrong.is_empty(), "backup not private: {wrong:?}");
}
