//! `hookd check-config`: every problem on its own line with exit code 2, and warnings for a
//! config that is valid but will not do all it seems to.

use super::SECRET;
use std::path::Path;
use std::process::{Command, Output};

fn check(file: &Path) -> (Output, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hookd"))
        .env_clear()
        .args(["check-config", file.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

#[test]
fn check_config_reports_every_error_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.toml");
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.1:9000\"\nadmin_listen = \"127.0.0.1:9000\"\n\
             retension_days = 3\n\
             [processing]\nworkers = \"four\"\n\
             [[endpoints]]\nname = \"fasten\"\nprofile = \"fasten\"\nsecrets = [\"{SECRET}\"]\n\
             events = [\"patient.ehi_export_sucess\"]\n"
        ),
    )
    .unwrap();
    let (out, stdout, stderr) = check(&file);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stdout.contains("valid"), "{stdout}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("hookd: error: "))
        .collect();
    assert_eq!(errors.len(), 4, "{stderr}");
    for expected in [
        "key `retension_days`: is not a key hookd knows here (did you mean `retention_days`?)",
        "key `processing.workers`: must be a whole number (it is \"four\")",
        "key `admin_listen`: `127.0.0.1:9000` takes the port of `listen`",
        "key `endpoints[0].events[0]`: `patient.ehi_export_sucess` is not a Fasten event type \
         (did you mean `patient.ehi_export_success`?)",
    ] {
        assert!(
            errors
                .iter()
                .any(|l| l.contains("broken.toml: ") && l.contains(expected)),
            "{expected} not in:\n{stderr}"
        );
    }
    assert!(stderr.contains("broken.toml: 4 errors"), "{stderr}");
}

#[test]
fn check_config_prints_warnings_for_a_valid_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hookd.toml");
    std::fs::write(
        &file,
        format!(
            "[[endpoints]]\nname = \"fasten\"\nprofile = \"fasten\"\nsecrets = [\"{SECRET}\"]\n"
        ),
    )
    .unwrap();
    let (out, stdout, stderr) = check(&file);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains("hookd.toml: valid, with 1 warning to read (1 endpoint)"),
        "{stdout}"
    );
    assert!(
        stderr.contains("hookd: warning: ")
            && stderr.contains("key `fasten.public_id`")
            && stderr.contains("no Fasten API credentials"),
        "{stderr}"
    );

    std::fs::write(
        &file,
        format!(
            "[fasten]\npublic_id = \"public_test_1\"\nprivate_key_file = {:?}\n\
             [[endpoints]]\nname = \"fasten\"\nprofile = \"fasten\"\nsecrets = [\"{SECRET}\"]\n",
            dir.path().join("fasten.key")
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("fasten.key"), "private_test_1\n").unwrap();
    let (out, stdout, stderr) = check(&file);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    assert!(
        stdout.contains("hookd.toml: valid (1 endpoint)"),
        "{stdout}"
    );
}

#[test]
fn check_config_names_what_alerts_and_push_lack() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notify.toml");
    std::fs::write(
        &file,
        "[alerts]\nurl = \"slack/hooks\"\nsecret_file = \"/nonexistent/alerts.secret\"\n\
         [push]\nurl = \"https://internal.example/hookd\"\n",
    )
    .unwrap();
    let (out, _, stderr) = check(&file);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for expected in [
        "key `alerts.url`: `slack/hooks` is not an http(s) URL",
        "key `alerts.secret_file`: cannot read /nonexistent/alerts.secret",
        "key `push.secret`: set exactly one of push.secret or push.secret_file",
    ] {
        assert!(stderr.contains(expected), "{expected} not in: {stderr}");
    }
    assert!(stderr.contains(": 3 errors"), "{stderr}");
}

#[test]
fn check_config_takes_the_file_from_config_or_hookd_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ok.toml");
    std::fs::write(&file, "retention_days = 7\n").unwrap();
    let run = |args: &[&str], env: Option<&Path>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookd"));
        cmd.env_clear().args(args);
        if let Some(path) = env {
            cmd.env("HOOKD_CONFIG", path);
        }
        cmd.output().unwrap()
    };
    let path = file.to_str().unwrap();
    // No [[endpoints]]: valid, with a warning that names what hookd makes instead.
    let out = run(&["check-config", path], None);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no [[endpoints]]"),
        "{out:?}"
    );
    for out in [
        run(&["--config", path, "check-config"], None),
        run(&["check-config", "--config", path], None),
        run(&["check-config"], Some(&file)),
    ] {
        assert!(out.status.success(), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("valid"),
            "{out:?}"
        );
    }
    let out = run(&["check-config"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("check-config needs a FILE"),
        "{out:?}"
    );
}
