//! `[alerts]`, `[push]` and `admin.export_token`: what they accept and how they refuse.
use super::*;

/// Every problem of `text`, one line each.
fn problems(text: &str) -> Vec<String> {
    load_str(text, &[])
        .unwrap_err()
        .errors()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn alerts_and_push_are_off_unless_their_table_is_set() {
    let c = load_str("", &[]).unwrap();
    assert!(c.alerts.is_none() && c.push.is_none());
    assert!(c.admin.export_token.is_none());
}

#[test]
fn alerts_take_a_url_a_secret_and_defaults() {
    let c = load_str(
        &format!("[alerts]\nurl = \"https://hooks.example/T/B/xyz\"\nsecret = \"{SECRET}\"\n"),
        &[],
    )
    .unwrap();
    let a = c.alerts.unwrap();
    assert_eq!(a.min_interval_secs, defaults::ALERT_MIN_INTERVAL_SECS);
    assert_eq!(a.oldest_queued_secs, defaults::ALERT_OLDEST_QUEUED_SECS);
    // Neither the path (a Slack URL's credential) nor the secret is ever printed.
    let shown = format!("{a:?}");
    assert!(
        !shown.contains("xyz") && !shown.contains(&SECRET[6..]),
        "{shown}"
    );
}

#[test]
fn a_secret_file_signs_too() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("push.secret");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    let c = load_str(
        &format!("[push]\nurl = \"http://127.0.0.1:9/x\"\nsecret_file = {file:?}\n"),
        &[],
    )
    .unwrap();
    assert_eq!(c.push.unwrap().timeout_secs, defaults::PUSH_TIMEOUT_SECS);
}

#[test]
fn bad_urls_missing_secrets_and_zero_intervals_are_each_named() {
    let found = problems(
        "[alerts]\nurl = \"hooks.example/x\"\nmin_interval_secs = 0\n\n[push]\nsecret = \"whsec_!!\"\n",
    );
    let expect = [
        "key `alerts.url`: `hooks.example/x` is not an http(s) URL",
        "key `alerts.secret`: set exactly one of alerts.secret or alerts.secret_file",
        "key `alerts.min_interval_secs`: must be at least 1",
        "key `push.url`: is required",
        "key `push.secret`: is not valid base64",
    ];
    assert_eq!(found.len(), expect.len(), "{found:#?}");
    for (line, want) in found.iter().zip(expect) {
        assert!(line.contains(want), "{line} lacks {want}");
    }
    // Both the secret and the file: refused, naming both.
    let both = problems(&format!(
        "[push]\nurl = \"http://x/\"\nsecret = \"{SECRET}\"\nsecret_file = \"/nonexistent\"\n"
    ));
    assert!(
        both[0].contains("push.secret or push.secret_file"),
        "{both:?}"
    );
    let unreadable = problems("[alerts]\nurl = \"http://x/\"\nsecret_file = \"/nonexistent/a\"\n");
    assert!(
        unreadable[0].contains("key `alerts.secret_file`: cannot read /nonexistent/a"),
        "{unreadable:?}"
    );
}

#[test]
fn the_push_endpoint_name_is_reserved() {
    let found = problems(&format!(
        "[[endpoints]]\nname = \"hookd-push\"\nsecrets = [\"{SECRET}\"]\n"
    ));
    assert!(
        found[0].contains("`hookd-push` is the name hookd gives its own push events"),
        "{found:?}"
    );
}

#[test]
fn the_export_token_is_its_own() {
    let c = load_str(
        "[admin]\ntoken = \"admin-token-0123456789\"\nexport_token = \"export-token-0123456789\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(
        c.admin.export_token.as_deref(),
        Some("export-token-0123456789")
    );
    assert!(!format!("{:?}", c.admin).contains("export-token-0123456789"));
    let found = problems(
        "[admin]\ntoken = \"same-token-0123456789\"\nexport_token = \"same-token-0123456789\"\n",
    );
    assert!(
        found[0].contains("key `admin.export_token`: is the same as admin.token"),
        "{found:?}"
    );
    let short = problems("[admin]\nexport_token = \"short\"\n");
    assert!(short[0].contains("at least 16 characters"), "{short:?}");
}

#[test]
fn push_without_a_fasten_endpoint_is_a_warning() {
    let push = format!("[push]\nurl = \"http://127.0.0.1:9/x\"\nsecret = \"{SECRET}\"\n");
    let c = load_str(&push, &[]).unwrap();
    assert!(
        c.warnings()
            .iter()
            .any(|w| w.contains("key `push`: no endpoint has the fasten processor")),
        "{:?}",
        c.warnings()
    );
    let with_fasten = format!(
        "{push}\n[fasten]\npublic_id = \"p\"\n\n[[endpoints]]\nname = \"f\"\nprofile = \"fasten\"\nsecrets = [\"{SECRET}\"]\n"
    );
    let c = load_str(&with_fasten, &[]).unwrap();
    assert!(
        !c.warnings().iter().any(|w| w.contains("key `push`")),
        "{:?}",
        c.warnings()
    );
}
