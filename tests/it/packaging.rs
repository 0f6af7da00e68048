//! packaging/install.sh: installs into a root, keeps an edited config, can run again, and
//! leaves this machine's own hookd alone.

use std::path::Path;
use std::process::Command;

fn install(root: &Path) -> String {
    let out = Command::new("sh")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/install.sh"))
        .args([
            "--binary",
            env!("CARGO_BIN_EXE_hookd"),
            "--root",
            root.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What install.sh would change if it wrote to this machine instead of its `--root`: the
/// service user and group, and each file it installs (size and modification time).
fn host_hookd() -> Vec<String> {
    let mut state = Vec::new();
    for accounts in ["/etc/passwd", "/etc/group"] {
        let text = std::fs::read_to_string(accounts).unwrap_or_default();
        state.extend(
            text.lines()
                .filter(|l| l.starts_with("hookd:"))
                .map(|l| format!("{accounts}: {l}")),
        );
    }
    for file in [
        "/usr/bin/hookd",
        "/etc/systemd/system/hookd.service",
        "/usr/lib/sysusers.d/hookd.conf",
        "/etc/hookd/hookd.toml",
    ] {
        state.push(match std::fs::metadata(file) {
            Ok(meta) => format!("{file}: {} bytes, {:?}", meta.len(), meta.modified().ok()),
            Err(_) => format!("{file}: absent"),
        });
    }
    state
}

#[test]
fn install_script_is_idempotent_and_keeps_the_operators_config() {
    // install.sh creates the user with systemd-sysusers when given --root.
    if !super::opted_in(
        "HOOKD_TEST_PACKAGING",
        "needs systemd-sysusers (Debian package `systemd`)",
    ) {
        return;
    }
    if Command::new("systemd-sysusers")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("systemd-sysusers is needed (Debian package `systemd`)");
    }
    let host_before = host_hookd();
    let root = tempfile::tempdir().unwrap();
    let first = install(root.path());
    assert!(first.contains("installed"), "{first}");
    for file in [
        "usr/bin/hookd",
        "etc/systemd/system/hookd.service",
        "usr/lib/sysusers.d/hookd.conf",
        "etc/hookd/hookd.toml",
    ] {
        assert!(root.path().join(file).exists(), "{file} missing");
    }
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).unwrap();
    assert!(passwd.lines().any(|l| l.starts_with("hookd:")), "{passwd}");

    // The installed config is valid as shipped.
    let config = root.path().join("etc/hookd/hookd.toml");
    let out = Command::new(root.path().join("usr/bin/hookd"))
        .args(["check-config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // An operator edits the config; a second run upgrades the rest and keeps it.
    std::fs::write(&config, "retention_days = 3\n").unwrap();
    let second = install(root.path());
    assert!(second.contains("kept existing"), "{second}");
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        "retention_days = 3\n"
    );
    let passwd_again = std::fs::read_to_string(root.path().join("etc/passwd")).unwrap();
    let entries = passwd_again
        .lines()
        .filter(|l| l.starts_with("hookd:"))
        .count();
    assert_eq!(entries, 1, "user created once");
    assert_eq!(
        host_hookd(),
        host_before,
        "install --root touched this machine"
    );
}
