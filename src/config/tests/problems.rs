//! What a wrong configuration is told: every problem, in plain words, with the key and file.
use super::*;

/// Every problem in `text`, one string each, the file named `hookd.toml` without its
/// temporary directory.
fn problems(text: &str, env: &[(&str, &str)]) -> Vec<String> {
    let err = load_str(text, env).unwrap_err();
    err.errors()
        .iter()
        .map(|e| {
            let e = e.to_string();
            match e.find("/hookd.toml: ") {
                Some(at) if e.starts_with('/') => e[at + 1..].to_owned(),
                _ => e,
            }
        })
        .collect()
}

#[test]
fn listen_and_admin_listen_need_their_own_addresses() {
    let err = load_str(
        "listen = \"127.0.0.1:9000\"\nadmin_listen = \"127.0.0.1:9000\"",
        &[],
    )
    .unwrap_err();
    assert!(
        matches!(err.problem(), Some(Invalid::SameAddress { .. })),
        "{err}"
    );
    assert!(
        err.to_string().contains(
            "hookd.toml: key `admin_listen`: `127.0.0.1:9000` takes the port of `listen`"
        ),
        "{err}"
    );
    // A `listen` from the environment is named as such: the file's admin_listen may be fine.
    let err = load_str(
        "admin_listen = \"127.0.0.1:8081\"",
        &[("HOOKD_LISTEN", "127.0.0.1:8081")],
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("takes the port of `listen` (`127.0.0.1:8081`, set by HOOKD_LISTEN)"),
        "{err}"
    );
    // All addresses and one of them, on one port, collide too (the bind would fail).
    let err = load_str(
        "listen = \"127.0.0.1:9000\"\nadmin_listen = \"0.0.0.0:9000\"\n[admin]\ntoken = \"0123456789abcdef0123\"",
        &[],
    )
    .unwrap_err();
    assert!(
        matches!(err.problem(), Some(Invalid::SameAddress { .. })),
        "{err}"
    );
    // Port 0 is chosen by the system, so both may ask for it; different ports are fine.
    load_str(
        "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"",
        &[],
    )
    .unwrap();
    load_str(
        "listen = \"127.0.0.1:9000\"\nadmin_listen = \"127.0.0.1:9001\"",
        &[],
    )
    .unwrap();
    // Also when the variable makes them collide.
    let err = load_str(
        "listen = \"127.0.0.1:9000\"",
        &[("HOOKD_ADMIN_LISTEN", "127.0.0.1:9000")],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("(set by HOOKD_ADMIN_LISTEN)"), "{err}");
}

const FASTEN_ENDPOINT: &str = "[[endpoints]]\nname = \"f\"\nprofile = \"fasten\"\n";

#[test]
fn an_unknown_fasten_event_type_is_named_with_the_closest_known_one() {
    let found = problems(
        &format!(
            "{FASTEN_ENDPOINT}secrets = [\"{SECRET}\"]\n\
             events = [\"patient.ehi_export_success\", \"patient.ehi_export_sucess\", \"nothing.like.it\"]"
        ),
        &[],
    );
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found[0].starts_with("hookd.toml: key `endpoints[0].events[1]`: `patient.ehi_export_sucess` is not a Fasten event type (did you mean `patient.ehi_export_success`?)"),
        "{}",
        found[0]
    );
    assert!(
        found[1].contains(
            "key `endpoints[0].events[2]`: `nothing.like.it` is not a Fasten event type;"
        ),
        "{}",
        found[1]
    );
    assert!(!found[1].contains("did you mean"), "{}", found[1]);
    // Every Fasten type is known; a standard endpoint may select any type its sender has.
    let all = crate::simulate::EVENT_TYPES
        .map(|t| format!("\"{t}\""))
        .join(", ");
    load_str(
        &format!("{FASTEN_ENDPOINT}secrets = [\"{SECRET}\"]\nevents = [{all}]"),
        &[],
    )
    .unwrap();
    load_str(
        &format!(
            "[[endpoints]]\nname = \"s\"\nsecrets = [\"{SECRET}\"]\nevents = [\"invoice.paid\"]"
        ),
        &[],
    )
    .unwrap();
    // A standard-profile endpoint that runs the fasten processor gets Fasten's events.
    let found = problems(
        &format!(
            "[[endpoints]]\nname = \"s\"\nprocessor = \"fasten\"\nsecrets = [\"{SECRET}\"]\n\
             events = [\"patient.connection_sucess\"]"
        ),
        &[],
    );
    assert!(
        found[0].contains("did you mean `patient.connection_success`?"),
        "{found:?}"
    );
}

#[test]
fn a_fasten_processor_without_api_credentials_is_a_warning_not_an_error() {
    let text = format!("{FASTEN_ENDPOINT}secrets = [\"{SECRET}\"]");
    let c = load_str(&text, &[]).unwrap();
    let warnings = c.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("hookd.toml: key `fasten.public_id`")
            && warnings[0].contains("endpoint `f`")
            && warnings[0].contains("replay"),
        "{}",
        warnings[0]
    );
    let c = load_str(
        &format!("[fasten]\npublic_id = \"public_test_1\"\n{text}"),
        &[],
    )
    .unwrap();
    assert!(
        c.warnings()[0].contains("key `fasten.private_key_file`"),
        "{:?}",
        c.warnings()
    );
    let c = load_str(
        &format!("[fasten]\npublic_id = \"public_test_1\"\n{text}"),
        &[("HOOKD_FASTEN_PRIVATE_KEY", "private_test_1")],
    )
    .unwrap();
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    // Only the fasten processor calls the API: a Fasten endpoint that forwards needs none.
    let c = load_str(
        &format!(
            "{text}\n[endpoints.forward]\nurl = \"http://127.0.0.1:9/in\"\nsecret = \"{SECRET}\""
        ),
        &[],
    )
    .unwrap();
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    assert!(Config::load(None, &HashMap::new())
        .unwrap()
        .warnings()
        .is_empty());
}

#[test]
fn cluster_mode_with_a_fasten_endpoint_warns_until_exports_dir_is_shared() {
    let text = format!(
        "[store]\nkind = \"postgres\"\n[postgres]\nurl = \"postgres://db/hookd\"\n\
         [fasten]\npublic_id = \"public_test_1\"\n{FASTEN_ENDPOINT}secrets = [\"{SECRET}\"]\n"
    );
    let key = [("HOOKD_FASTEN_PRIVATE_KEY", "private_test_1")];
    let c = load_str(&text, &key).unwrap();
    let warnings = c.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("key `fasten.exports_dir`") && warnings[0].contains("shares"),
        "{}",
        warnings[0]
    );
    let shared = text.replace(
        "[fasten]\n",
        "[fasten]\nexports_dir = \"/mnt/shared/exports\"\n",
    );
    assert!(load_str(&shared, &key).unwrap().warnings().is_empty());
    // On one machine the data directory is the place.
    let local = format!(
        "[fasten]\npublic_id = \"public_test_1\"\n{FASTEN_ENDPOINT}secrets = [\"{SECRET}\"]\n"
    );
    assert!(load_str(&local, &key).unwrap().warnings().is_empty());
}

#[test]
fn a_timestamp_tolerance_of_a_few_seconds_is_a_warning() {
    let text = |secs: u64| {
        format!("[[endpoints]]\nname = \"a\"\nsecrets = [\"{SECRET}\"]\ntolerance_secs = {secs}\n")
    };
    let warnings = load_str(&text(0), &[]).unwrap().warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("key `endpoints[0].tolerance_secs`: 0 s refuses"),
        "{}",
        warnings[0]
    );
    assert!(load_str(&text(60), &[]).unwrap().warnings().is_empty());
}

#[test]
fn a_backup_dir_that_is_not_there_yet_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("backups");
    let text = format!("[admin]\nbackup_dir = {missing:?}\n{FASTEN_ENDPOINT}secrets = [\"{SECRET}\"]\nprocessor = \"log\"\n");
    let warnings = load_str(&text, &[]).unwrap().warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("key `admin.backup_dir`")
            && warnings[0].contains("does not exist yet"),
        "{}",
        warnings[0]
    );
    std::fs::create_dir(&missing).unwrap();
    assert!(load_str(&text, &[]).unwrap().warnings().is_empty());
}

#[test]
fn every_problem_is_reported_not_only_the_first() {
    let found = problems(
        &format!(
            "listen = \"127.0.0.1:9000\"\nadmin_listen = \"127.0.0.1:9000\"\nretension_days = 3\n\
             [processing]\nworkers = 0\nretry_jitter = 2.0\n\
             [fasten]\non_revoke = \"shred\"\n\
             [[endpoints]]\nname = \"a\"\nsecrets = [\"whsec_???\", \"{SECRET}\", \"whsec_!!!\"]\n\
             [[endpoints]]\nname = \"a\"\nsecrets = [\"{SECRET}\"]\nmax_body_bytes = 0\n"
        ),
        &[("HOOKD_RETENTION_DAYS", "soon")],
    );
    let keys = [
        "key `retension_days`",
        "HOOKD_RETENTION_DAYS",
        "key `admin_listen`",
        "key `processing.workers`",
        "key `processing.retry_jitter`",
        "key `endpoints[0].secrets[0]`",
        "key `endpoints[0].secrets[2]`",
        "key `endpoints[1].name`",
        "key `endpoints[1].max_body_bytes`",
        "key `fasten.on_revoke`",
    ];
    for key in keys {
        assert!(
            found.iter().any(|p| p.contains(key)),
            "{key} not in {found:#?}"
        );
    }
    assert_eq!(found.len(), keys.len(), "{found:#?}");
    for problem in &found {
        assert!(
            problem.starts_with("hookd.toml: key `") || problem.starts_with("environment variable"),
            "{problem}"
        );
    }
    // As one message (what start-up prints), one problem per line.
    let err = load_str(
        "retension_days = 3
listen = \"x\"",
        &[],
    )
    .unwrap_err()
    .to_string();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert_eq!(lines[0], "2 problems:");
    assert!(
        lines[1].contains("key `retension_days`") && lines[2].contains("key `listen`"),
        "{err}"
    );
}

#[test]
fn a_misspelt_key_gets_a_suggestion_wherever_it_is() {
    for (text, key, suggestion) in [
        ("retension_days = 3", "retension_days", "retention_days"),
        ("[processing]\nworker = 3", "processing.worker", "workers"),
        ("[admin]\ntokn = \"x\"", "admin.tokn", "token"),
        (
            "[[endpoints]]\nname = \"a\"\nsecret = [\"x\"]",
            "endpoints[0].secret",
            "secrets",
        ),
    ] {
        let found = problems(text, &[]);
        assert!(
            found.iter().any(|p| p.starts_with(&format!(
                "hookd.toml: key `{key}`: is not a key hookd knows here (did you mean `{suggestion}`?)"
            ))),
            "{text}: {found:#?}"
        );
    }
    // Nothing close: the keys are listed instead.
    let found = problems("[receive]\nzzz = 1", &[]);
    assert!(!found[0].contains("did you mean"), "{}", found[0]);
    assert!(found[0].contains("`queue_high_water`"), "{}", found[0]);
    // A misspelt choice too.
    let found = problems("[[endpoints]]\nname = \"f\"\nprofile = \"fastn\"", &[]);
    assert!(
        found[0].contains("key `endpoints[0].profile`: `fastn` is not one of: standard, fasten (did you mean `fasten`?)"),
        "{found:#?}"
    );
}

#[test]
fn type_errors_are_in_plain_words() {
    for (text, expected) in [
        (
            "retention_days = \"x\"",
            "key `retention_days`: must be a whole number (it is \"x\")",
        ),
        (
            "retention_days = -1",
            "key `retention_days`: must be a whole number from 0 to 4294967295 (it is -1)",
        ),
        (
            "[processing]\nworkers = -1",
            "key `processing.workers`: must be a whole number, 0 or more (it is -1)",
        ),
        (
            "listen = 8080",
            "key `listen`: must be a string (it is 8080)",
        ),
        (
            "[fasten]\nrequest_export_on_connection = \"yes\"",
            "key `fasten.request_export_on_connection`: must be true or false (it is \"yes\")",
        ),
        (
            "[processing]\nretry_jitter = \"a lot\"",
            "key `processing.retry_jitter`: must be a number (it is \"a lot\")",
        ),
        (
            "[processing]\nretry_schedule_secs = 10",
            "key `processing.retry_schedule_secs`: must be a list of whole numbers (it is 10)",
        ),
        (
            "[[endpoints]]\nname = \"a\"\nsecrets = \"whsec_x\"",
            "key `endpoints[0].secrets`: must be a list of strings (it is \"whsec_x\")",
        ),
        (
            "[[endpoints]]\nname = \"a\"\nsecrets = [\"whsec_x\", 2]",
            "key `endpoints[0].secrets[1]`: must be a string (it is 2)",
        ),
        ("admin = 3", "key `admin`: must be a table (it is 3)"),
        (
            "[[endpoints]]\nsecrets = []",
            "key `endpoints[0]`: `name` is missing",
        ),
    ] {
        let found = problems(text, &[]);
        // The key set aside is not reported again by validation (e.g. "has no secret").
        assert_eq!(found.len(), 1, "{text}: {found:#?}");
        assert_eq!(found[0], format!("hookd.toml: {expected}"), "{text}");
        assert!(!found[0].contains("expected"), "{}", found[0]);
    }
}

#[test]
fn broken_toml_syntax_shows_where() {
    let found = problems("listen = \"127.0.0.1:1\nworkers = 2", &[]);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with("hookd.toml: TOML parse error at line 1"),
        "{}",
        found[0]
    );
}

#[test]
fn a_backup_dir_inside_the_data_dir_is_refused() {
    let err = load_str(
        "data_dir = \"/var/lib/hookd\"\n[admin]\nbackup_dir = \"/var/lib/hookd/backups\"",
        &[],
    )
    .unwrap_err();
    assert!(
        matches!(err.problem(), Some(Invalid::InsideDataDir(_))),
        "{err}"
    );
    assert!(err.to_string().contains("key `admin.backup_dir`"), "{err}");
    for outside in ["/var/backups/hookd", "/var/lib/hookd/../hookd-backups"] {
        load_str(
            &format!("data_dir = \"/var/lib/hookd\"\n[admin]\nbackup_dir = \"{outside}\""),
            &[],
        )
        .unwrap();
    }
}

#[test]
fn the_store_sections_name_their_keys_and_never_the_password() {
    let err = |text: &str| load_str(text, &[]).unwrap_err().to_string();
    let e = err("[store]\nkind = \"mysql\"\n");
    assert!(
        e.contains("store.kind") && e.contains("sled, postgres"),
        "{e}"
    );
    let e = err("[store]\nkind = \"postgres\"\n");
    assert!(e.contains("postgres.url"), "{e}");
    let e = err("[postgres]\nurl = \"postgres://db/hookd\"\n");
    assert!(e.contains("store.kind"), "{e}");
    let e = err(
        "[store]\nkind = \"postgres\"\n[postgres]\nurl = \"postgres://u:s3cret@db:nope/h\"\npool_size = 1\n",
    );
    assert!(
        e.contains("postgres.url") && e.contains("postgres.pool_size"),
        "{e}"
    );
    assert!(!e.contains("s3cret"), "{e}");
    let e = err("[store]\nkind = \"postgres\"\n[postgres]\nurl = \"postgres://db/hookd\"\n");
    assert!(
        e.contains("endpoints") && e.contains("same on every instance"),
        "{e}"
    );
    let e = err("[postgres]\nurl = \"postgres://db/hookd\"\n");
    assert!(e.contains("set kind = \"postgres\""), "{e}");
    let e = err(
        "[store]\nkind = \"postgres\"\n[postgres]\nurl = \"postgres://db/h\"\nca_file = \"/nope/ca.pem\"\n",
    );
    assert!(
        e.contains("postgres.ca_file") && e.contains("/nope/ca.pem"),
        "{e}"
    );
    let ok = load_str(
        "[store]\nkind = \"postgres\"\n[postgres]\nurl = \"postgres://db/hookd\"\ninstance = \"a\"\n\
         [[endpoints]]\nname = \"std\"\nsecrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\n",
        &[],
    )
    .unwrap();
    match ok.store {
        crate::config::StoreKind::Postgres(o) => {
            assert_eq!(
                (o.pool_size, o.lease_ms, o.instance.as_str()),
                (8, 60_000, "a")
            )
        }
        other => panic!("{other:?}"),
    }
}
