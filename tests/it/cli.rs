//! The command line as a new user meets it: the first-run banner and its hint, `send`'s
//! inputs, `hash-password` at a terminal and from a pipe, `simulate`'s stand-in, backups that
//! fail cleanly, data-directory errors, and the log lines an operator reads.

use super::binary::{hookd, signal, start, wait_exit, Proc};
use super::*;
use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Collects a child's stderr on a thread, so a test can read it while the child runs.
fn collect_stderr(child: &mut std::process::Child) -> Arc<Mutex<String>> {
    collect(child.stderr.take().unwrap())
}

/// Collects what `from` yields on a thread, as it comes.
fn collect(mut from: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let log = Arc::new(Mutex::new(String::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    log
}

/// Waits (bounded) until `text` holds `needle`; returns a copy of it.
fn wait_for_text(text: &Arc<Mutex<String>>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = text.lock().unwrap().clone();
        if now.contains(needle) {
            return now;
        }
        assert!(Instant::now() < deadline, "`{needle}` never came:\n{now}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// hookd on embedded defaults in `dir` (ports moved to :0), its stderr collected.
fn start_defaults(dir: &Path, log_filter: Option<&str>) -> (Proc, Arc<Mutex<String>>) {
    let mut command = hookd();
    command
        .current_dir(dir)
        .env("HOOKD_LISTEN", "127.0.0.1:0")
        .env("HOOKD_ADMIN_LISTEN", "127.0.0.1:0")
        .env("HOOKD_SHOW_SECRET", "1")
        .env_remove("HOOKD_CONFIG")
        .stderr(Stdio::piped());
    match log_filter {
        Some(f) => command.env("HOOKD_LOG", f),
        None => command.env_remove("HOOKD_LOG"),
    };
    let mut p = start(command);
    let log = collect_stderr(&mut p.child);
    (p, log)
}

fn stop(mut p: Proc) {
    signal(&p.child, "TERM");
    assert!(wait_exit(&mut p.child, Duration::from_secs(30)).success());
}

fn run(dir: &Path, args: &[&str]) -> Output {
    hookd().args(args).current_dir(dir).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn first_run_banner_shows_the_web_ui_first_and_a_hint_that_runs_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    let (p, log) = start_defaults(dir.path(), None);
    let line_of = |prefix: &str| {
        p.stdout
            .iter()
            .position(|l| l.trim_start().starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in {:?}", p.stdout))
    };
    assert!(line_of("web UI:") < line_of("receiving:"), "{:?}", p.stdout);
    assert_eq!(
        p.stdout[line_of("web UI:")].trim(),
        format!("web UI:    http://{}/", p.admin)
    );

    // The test binary is not on PATH, so the hint must name it by its path, and work typed
    // exactly as printed.
    let hint = &p.stdout[line_of("try it:")];
    let words: Vec<&str> = hint
        .trim()
        .trim_start_matches("try it:")
        .split_whitespace()
        .collect();
    assert_ne!(words[0], "hookd", "{hint}");
    let out = Command::new(words[0])
        .args(&words[1..])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{hint}: {}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("accepted"));

    stop(p);
    let log = log.lock().unwrap().clone();
    // The default filter keeps the scheduler's per-start INFO chatter out.
    assert!(!log.contains("tokio_cron_scheduler"), "{log}");
    let listening = log
        .lines()
        .find(|l| l.contains("listening"))
        .unwrap_or_else(|| panic!("no listening line in the log:\n{log}"));
    assert!(
        listening.contains(" INFO ") && listening.contains("receiver=127.0.0.1:"),
        "{listening}"
    );
    // A timestamp leads the line (RFC 3339, as the rest of the log).
    assert!(listening.starts_with("20"), "{listening}");
}

#[test]
fn the_hint_says_hookd_when_that_is_what_path_finds() {
    let dir = tempfile::tempdir().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_hookd")).parent().unwrap();
    let path = std::env::join_paths(std::iter::once(bin.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let mut command = hookd();
    command
        .current_dir(dir.path())
        .env("PATH", path)
        .env("HOOKD_LISTEN", "127.0.0.1:0")
        .env("HOOKD_ADMIN_LISTEN", "127.0.0.1:0")
        .env("HOOKD_SHOW_SECRET", "1")
        .env_remove("HOOKD_CONFIG")
        .env("HOOKD_LOG", "warn");
    let p = start(command);
    let hint = p
        .stdout
        .iter()
        .find(|l| l.trim_start().starts_with("try it:"))
        .cloned()
        .unwrap_or_else(|| panic!("no hint in {:?}", p.stdout));
    assert!(hint.trim().starts_with("try it: hookd send "), "{hint}");
    stop(p);
}

#[tokio::test]
async fn send_takes_data_from_a_file_or_stdin_and_refuses_unprintable_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (p, _log) = start_defaults(dir.path(), Some("warn"));
    let to = format!("http://{}/webhooks/default", p.receiver);
    let base = [
        "send",
        "--to",
        &to,
        "--secret-file",
        "hookd-data/secrets/default.secret",
    ];
    std::fs::write(dir.path().join("data.json"), r#"{"from":"file"}"#).unwrap();

    let out = run(
        dir.path(),
        &[&base[..], &["--id", "evt-file", "--data", "@data.json"][..]].concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let mut child = hookd()
        .args([&base[..], &["--id", "evt-stdin", "--data", "-"][..]].concat())
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"from":"stdin"}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let http = reqwest::Client::new();
    for (id, from) in [("evt-file", "file"), ("evt-stdin", "stdin")] {
        let event: serde_json::Value = http
            .get(format!("http://{}/api/events/{id}", p.admin))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(event["payload"]["data"]["from"], from, "{event}");
    }

    // Without --id, the id made up is printed, and it is the event's.
    let out = run(dir.path(), &base);
    assert!(out.status.success(), "{}", stderr(&out));
    let made_up = stderr(&out)
        .lines()
        .find_map(|l| l.strip_prefix("event id "))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no event id in {}", stderr(&out)));
    let status = http
        .get(format!("http://{}/api/events/{made_up}", p.admin))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);

    for (bad, says) in [("evt 1", "printable"), ("", "empty")] {
        let out = run(dir.path(), &[&base[..], &["--id", bad][..]].concat());
        assert_eq!(out.status.code(), Some(2));
        let err = stderr(&out);
        assert!(err.contains("--id") && err.contains(says), "{err}");
    }
    let long = "a".repeat(300);
    let out = run(dir.path(), &[&base[..], &["--id", &long][..]].concat());
    assert!(stderr(&out).contains("at most 255"), "{}", stderr(&out));
    stop(p);
}

#[test]
fn a_failed_offline_backup_leaves_nothing_in_the_way_of_the_retry() {
    let dir = tempfile::tempdir().unwrap();
    let (p, _log) = start_defaults(dir.path(), Some("warn"));
    // The running hookd holds the store's lock: an offline copy of it must fail...
    let out = run(
        dir.path(),
        &["backup", "--data-dir", "hookd-data", "--to", "copy"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        !dir.path().join("copy").exists(),
        "a failed backup left its directory"
    );
    // verify-data checks a copy, and says when a running hookd holds the store.
    let out = run(dir.path(), &["verify-data", "hookd-data"]);
    assert!(
        stderr(&out).contains("a running hookd holds"),
        "{}",
        stderr(&out)
    );
    stop(p);
    // ... and once it is stopped, the same command succeeds.
    let out = run(
        dir.path(),
        &["backup", "--data-dir", "hookd-data", "--to", "copy"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(dir.path(), &["verify-data", "copy"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("running hookd"), "{}", stderr(&out));
    // It tells how many bytes the records take (what sets the disk bill).
    let text = String::from_utf8_lossy(&out.stdout);
    let bytes: u64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("record bytes: "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no record bytes line in {text}"));
    assert!(bytes > 0, "{text}");
}

#[test]
fn commands_on_a_missing_data_directory_say_no_such_directory() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["verify-data", "nope"][..],
        &["compact", "--data-dir", "nope"][..],
        &["backup", "--data-dir", "nope", "--to", "copy"][..],
    ] {
        let out = run(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains("nope: no such directory"), "{args:?}: {err}");
        assert!(!err.contains("unreadable"), "{err}");
    }
    assert!(!dir.path().join("nope").exists(), "a store was created");
    assert!(!dir.path().join("copy").exists());
}

#[test]
fn a_bare_backup_name_goes_into_the_configured_backup_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let backups = dir.path().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    let config = dir.path().join("hookd.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:1\"\n\
             [admin]\nbackup_dir = {:?}\n[[endpoints]]\nname = \"std\"\nsecrets = [\"{}\"]\n",
            data.display().to_string(),
            backups.display().to_string(),
            crate::SECRET
        ),
    )
    .unwrap();
    // A store to copy (hookd is not running: the backup is offline).
    drop(hookd::store::Store::open(&data.join("db"), 16).unwrap());
    let elsewhere = tempfile::tempdir().unwrap();
    let out = hookd()
        .current_dir(elsewhere.path())
        .arg("--config")
        .arg(&config)
        .args(["backup", "--to", "nightly"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(backups.join("nightly/db").is_dir(), "{}", stderr(&out));
    assert!(!elsewhere.path().join("nightly").exists());
}

#[test]
fn backup_in_cluster_mode_points_to_the_databases_tools() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hookd.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nkind = \"postgres\"\n[postgres]\nurl = \"postgres://db.invalid/hookd\"\n\
             [[endpoints]]\nname = \"std\"\nsecrets = [\"{}\"]\n",
            crate::SECRET
        ),
    )
    .unwrap();
    let out = hookd()
        .arg("--config")
        .arg(&config)
        .args(["backup", "--to", "copy"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("pg_dump"), "{}", stderr(&out));
}

#[test]
fn output_into_a_closed_pipe_ends_the_command_without_a_panic() {
    // `hookd ... | head -0`: the reader is gone before the command writes.
    let mut child = hookd()
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    writeln!(child.stdin.take().unwrap(), "correct horse battery").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    assert_ne!(out.status.code(), Some(101), "a panic's exit code");
}

#[test]
fn hash_password_reads_a_pipe_and_asks_twice_without_echo_at_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let password = "correct horse battery";
    let mut child = hookd()
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    // Nothing piped in: said so, not "too short".
    let out = hookd()
        .arg("hash-password")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no password given"),
        "{}",
        stderr(&out)
    );

    // A terminal: `script` runs it on a pseudo-terminal whose output (echo included) it copies.
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: the terminal half needs `script` (util-linux)");
        return;
    }
    // Typed only once each prompt is up: echo happens when the characters arrive.
    let (status, screen) =
        hash_password_at_a_terminal(dir.path(), password, password, "$argon2id$");
    assert!(status.success(), "{screen}");
    assert!(screen.contains("$argon2id$"), "{screen}");
    assert!(
        !screen.contains(password),
        "the password was echoed:\n{screen}"
    );
    // Two that differ: nothing is printed but why.
    let (status, screen) = hash_password_at_a_terminal(
        dir.path(),
        password,
        &format!("{password}, misspelt"),
        "the two passwords differ",
    );
    assert_eq!(status.code(), Some(2), "{screen}");
    assert!(screen.contains("the two passwords differ"), "{screen}");
    assert!(!screen.contains("$argon2id$"), "{screen}");
}

/// `hookd hash-password` on a pseudo-terminal (`script` runs it and copies what it shows,
/// echo included), answering its two prompts; its exit status and the screen once `until`
/// shows.
fn hash_password_at_a_terminal(
    dir: &Path,
    first: &str,
    again: &str,
    until: &str,
) -> (std::process::ExitStatus, String) {
    let command = format!("{} hash-password", env!("CARGO_BIN_EXE_hookd"));
    let mut child = Command::new("script")
        .args(["-q", "-f", "-e", "-c", &command, "/dev/null"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let screen = collect(child.stdout.take().unwrap());
    let mut stdin = child.stdin.take().unwrap();
    wait_for_text(&screen, "Password: ");
    writeln!(stdin, "{first}").unwrap();
    wait_for_text(&screen, "Again: ");
    writeln!(stdin, "{again}").unwrap();
    wait_for_text(&screen, until);
    drop(stdin);
    let status = wait_exit(&mut child, Duration::from_secs(30));
    let screen = screen.lock().unwrap().clone();
    (status, screen)
}

#[test]
fn simulate_without_arguments_names_both_of_its_uses() {
    let out = hookd().arg("simulate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("--serve-api") && err.contains("--to"), "{err}");
}

#[test]
fn an_exported_fasten_key_is_the_stand_ins_alone() {
    // Sending an event with the key in the environment (as a user who exported it for
    // hookd has): the key is not asked to come with --public-id. Nothing listens on port 1,
    // so the send itself fails, and says so.
    let out = hookd()
        .args([
            "simulate",
            "--to",
            "http://127.0.0.1:1/webhooks/x",
            "--secret",
            SECRET,
        ])
        .env("HOOKD_FASTEN_PRIVATE_KEY", "private_test_key")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!err.contains("--public-id"), "{err}");
    assert!(err.contains("127.0.0.1:1"), "{err}");
    // The stand-in itself needs the pair (bounded: a stand-in that started would serve on).
    let mut child = hookd()
        .args(["simulate", "--serve-api", "127.0.0.1:0"])
        .env("HOOKD_FASTEN_PRIVATE_KEY", "private_test_key")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the stand-in started without the pair");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(2));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("--public-id with --private-key"), "{err}");
}

#[tokio::test]
async fn simulate_stand_in_uses_the_signed_url_port_given_and_logs_what_it_serves() {
    let port = crate::free_port();
    let mut child = hookd()
        .args([
            "simulate",
            "--serve-api",
            "127.0.0.1:0",
            "--signed-url-port",
            &port.to_string(),
        ])
        .env("HOOKD_LOG", "info")
        .env_remove("HOOKD_FASTEN_PRIVATE_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = collect_stderr(&mut child);
    let out = collect(child.stdout.take().unwrap());
    let banner = wait_for_text(&out, "credentials:");
    assert!(
        banner.contains(&format!("signed URLs: http://127.0.0.1:{port} ")),
        "{banner}"
    );
    let api_base = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("api_base:"))
        .unwrap()
        .trim()
        .to_owned();
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!(
            "{api_base}/bridge/fhir/ehi-export/task-1/download/fhir-1-5.jsonl"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("http://127.0.0.1:{port}/signed/task-1/")),
        "{location}"
    );
    let body = reqwest::get(&location).await.unwrap().text().await.unwrap();
    assert_eq!(body.lines().count(), 5);
    let log_text = wait_for_text(&log, "/signed/task-1/fhir-1-5.jsonl");
    assert!(
        log_text.contains("/v1/bridge/fhir/ehi-export/task-1/download/fhir-1-5.jsonl"),
        "{log_text}"
    );
    // The signature is in the query string, which stays out of the log.
    assert!(!log_text.contains("sig="), "{log_text}");
    signal(&child, "TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());
}

#[tokio::test]
async fn a_failed_attempt_is_logged_with_its_endpoint_and_event_id() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hookd.toml");
    std::fs::write(
        &config,
        config_text(
            dir.path(),
            &format!(
                r#"
[[endpoints]]
name = "to-nowhere"
secrets = ["{SECRET}"]
processor = "forward"
[endpoints.forward]
url = "http://127.0.0.1:1/hooks"
secret = "{OTHER_SECRET}"
"#
            ),
        ),
    )
    .unwrap();
    let mut command = hookd();
    command
        .args(["--config", config.to_str().unwrap()])
        .env("HOOKD_LOG", "warn")
        .stderr(Stdio::piped());
    let mut p = start(command);
    let log = collect_stderr(&mut p.child);
    let out = run(
        dir.path(),
        &[
            "send",
            "--to",
            &format!("http://{}/webhooks/to-nowhere", p.receiver),
            "--secret",
            SECRET,
            "--id",
            "evt-nowhere",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Refused connections are retried; either way the failure names what failed.
    let text = wait_for_text(&log, "event_id=evt-nowhere");
    let line = text
        .lines()
        .find(|l| l.contains("event_id=evt-nowhere"))
        .unwrap();
    assert!(
        line.contains("endpoint=to-nowhere")
            && (line.contains("attempt failed") || line.contains("is dead")),
        "{line}"
    );
    // The cause, not only "error sending request"; the URL's path stays out of the log.
    assert!(
        line.contains("Connection refused") && !line.contains(":1/hooks"),
        "{line}"
    );
    stop(p);
}

#[test]
fn send_to_a_closed_port_names_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    // A port that was free a moment ago: the connection is refused.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = run(
        dir.path(),
        &[
            "send",
            "--to",
            &format!("http://{addr}/webhooks/default"),
            "--secret",
            SECRET,
        ],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("cannot send to http://{addr}/webhooks/default"))
            && err.contains("Connection refused"),
        "{err}"
    );
}
