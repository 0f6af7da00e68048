//! Loading and checking the configuration, and the documentation that shows its defaults.
use super::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn load_str(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hookd.toml");
    std::fs::write(&path, text).unwrap();
    let env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::load(Some(&path), &env)
}

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[test]
fn embedded_defaults_give_one_standard_endpoint() {
    let c = Config::load(None, &HashMap::new()).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.admin_listen.to_string(), "127.0.0.1:8081");
    assert_eq!(c.retention_days, 15);
    assert_eq!(c.data_dir, PathBuf::from("./hookd-data"));
    assert!(c.default_endpoint);
    assert_eq!(c.endpoints[0].name, "default");
    assert_eq!(c.endpoints[0].profile, Profile::Standard);
}

#[test]
fn full_endpoint_is_read() {
    let c = load_str(
        &format!(
            r#"
            data_dir = "/tmp/x"
            [[endpoints]]
            name = "fasten-live"
            profile = "fasten"
            secrets = ["{SECRET}"]
            events = ["patient.ehi_export_success"]
            tolerance_secs = 60
            max_body_bytes = 1000
            [endpoints.forward]
            url = "http://127.0.0.1:9/in"
            secret = "{SECRET}"
            "#
        ),
        &[],
    )
    .unwrap();
    let e = c.endpoint("fasten-live").unwrap();
    assert_eq!(e.profile, Profile::Fasten);
    assert_eq!(e.tolerance_secs, 60);
    assert!(e
        .events
        .as_ref()
        .unwrap()
        .contains("patient.ehi_export_success"));
    assert!(matches!(e.processor, ProcessorConfig::Forward { .. }));
}

#[test]
fn unknown_key_names_the_key_and_file() {
    let err = load_str("retension_days = 3", &[]).unwrap_err().to_string();
    assert!(err.contains("hookd.toml"), "{err}");
    assert!(err.contains("retension_days"), "{err}");
}

#[test]
fn bad_secret_names_the_key() {
    let err = load_str(
        "[[endpoints]]\nname = \"a\"\nsecrets = [\"whsec_???\"]",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("hookd.toml: key `endpoints[0].secrets[0]`"),
        "{err}"
    );
}

#[test]
fn endpoint_without_secret_is_refused_unless_env_provides_it() {
    let text = "[[endpoints]]\nname = \"fasten-test\"";
    let err = load_str(text, &[]).unwrap_err().to_string();
    assert!(
        err.contains("endpoints[0].secrets") && err.contains("HOOKD_SECRETS_FASTEN_TEST"),
        "{err}"
    );
    let c = load_str(text, &[("HOOKD_SECRETS_FASTEN_TEST", SECRET)]).unwrap();
    assert_eq!(c.endpoints[0].secrets.len(), 1);
}

#[test]
fn environment_overrides_the_file() {
    let c = load_str(
        "listen = \"127.0.0.1:1\"\nretention_days = 3",
        &[
            ("HOOKD_LISTEN", "127.0.0.1:2"),
            ("HOOKD_RETENTION_DAYS", "7"),
        ],
    )
    .unwrap();
    assert_eq!(c.listen.port(), 2);
    assert_eq!(c.retention_days, 7);
    let err = load_str("", &[("HOOKD_RETENTION_DAYS", "soon")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("HOOKD_RETENTION_DAYS"), "{err}");
}

#[test]
fn public_admin_listener_needs_a_token() {
    let err = load_str("admin_listen = \"0.0.0.0:8081\"", &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("admin_listen") && err.contains("admin.token"),
        "{err}"
    );
    load_str(
        "admin_listen = \"0.0.0.0:8081\"\n[admin]\ntoken = \"0123456789abcdef0123\"",
        &[],
    )
    .unwrap();
}

#[test]
fn retention_schedule_is_checked() {
    let c = Config::load(None, &HashMap::new()).unwrap();
    assert_eq!(c.retention.schedule, "0 0 * * * *");
    assert_eq!(c.retention.export_retention_days, 15);
    let err = load_str("[retention]\nschedule = \"0 * * * *\"", &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("hookd.toml: key `retention.schedule`"),
        "{err}"
    );
    let err = load_str("[retention]\nschedule = \"x 0 * * * *\"", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("retention.schedule"), "{err}");
    let c = load_str(
        "[retention]\nschedule = \"0 */5 * * * *\"\nexport_retention_days = 3",
        &[],
    )
    .unwrap();
    assert_eq!(c.retention.export_retention_days, 3);
}

#[test]
fn empty_events_list_is_refused() {
    let err = load_str(
        &format!("[[endpoints]]\nname = \"a\"\nsecrets = [\"{SECRET}\"]\nevents = []"),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("endpoints[0].events"), "{err}");
}

#[test]
fn fasten_section_is_read_and_checked() {
    let c = load_str(
        &format!(
            r#"
            [fasten]
            public_id = "public_test_1"
            download_hosts = ["api.connect.fastenhealth.com", "http://127.0.0.1"]
            on_revoke = "delete"
            [[endpoints]]
            name = "f"
            profile = "fasten"
            secrets = ["{SECRET}"]
            "#
        ),
        &[("HOOKD_FASTEN_PRIVATE_KEY", "key-from-env")],
    )
    .unwrap();
    assert_eq!(c.endpoints[0].processor, ProcessorConfig::Fasten);
    assert_eq!(c.fasten.on_revoke, OnRevoke::Delete);
    assert_eq!(c.fasten.private_key.as_deref(), Some("key-from-env"));
    assert!(!format!("{:?}", c.fasten).contains("key-from-env"));
    let ok = |u: &str| {
        crate::process::fasten::download::check_url(&c.fasten, &reqwest::Url::parse(u).unwrap())
            .map_err(|e| e.to_string())
    };
    assert!(ok("https://api.connect.fastenhealth.com/v1/x").is_ok());
    assert!(ok("http://127.0.0.1:9000/x").is_ok());
    let err = ok("http://api.connect.fastenhealth.com/v1/x").unwrap_err();
    assert!(err.contains("plain http is refused"), "{err}");
    let err = ok("https://evil.example/x").unwrap_err();
    assert!(err.contains("not in fasten.download_hosts"), "{err}");

    let err = load_str("[fasten]\non_revoke = \"shred\"", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("hookd.toml: key `fasten.on_revoke`"), "{err}");
    let err = load_str("[fasten]\ndownload_hosts = [\"a b\"]", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("fasten.download_hosts[0]"), "{err}");
    let err = load_str("[fasten]\napi_base = \"ftp://x\"", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("fasten.api_base"), "{err}");
}

#[test]
fn fasten_defaults_download_only_from_the_api_host_over_https() {
    let c = Config::load(None, &HashMap::new()).unwrap();
    assert_eq!(c.fasten.api_base, "https://api.connect.fastenhealth.com/v1");
    assert!(c.fasten.request_export_on_connection);
    assert_eq!(c.fasten.on_revoke, OnRevoke::Keep);
    assert_eq!(c.fasten.max_export_bytes, 10_737_418_240);
    assert_eq!(c.fasten.download_hosts.len(), 1);
    assert!(!c.fasten.download_hosts[0].allow_http);
}

#[test]
fn debug_never_shows_a_secret() {
    let token = "admin-token-0123456789";
    let metrics = "metrics-token-0123456789";
    let hash = crate::admin::auth::hash_password("a long password").unwrap();
    let c = load_str(
        &format!(
            r#"
            [admin]
            token = "{token}"
            metrics_token = "{metrics}"
            password_hash = "{hash}"
            [[endpoints]]
            name = "a"
            secrets = ["{SECRET}"]
            [endpoints.forward]
            url = "http://127.0.0.1:9/in"
            secret = "{SECRET}"
            "#
        ),
        &[("HOOKD_FASTEN_PRIVATE_KEY", "fasten-private-key")],
    )
    .unwrap();
    assert_eq!(c.admin.token.as_deref(), Some(token));
    let shown = format!("{c:?} {:?} {:?}", c.admin, c.endpoints[0]);
    let key = SECRET.trim_start_matches("whsec_");
    for secret in [token, metrics, hash.as_str(), "fasten-private-key", key] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(format!("{:?}", c.admin).contains("token: Some(\"<redacted>\")"));
    assert!(format!("{:?}", Admin::default()).contains("token: None"));
}

#[test]
fn a_value_from_the_environment_names_the_variable_key_and_file() {
    let err = load_str("", &[("HOOKD_WORKERS", "0")]).unwrap_err();
    assert!(matches!(err.problem(), Some(Invalid::OutOfRange(1, 1024))));
    let err = err.to_string();
    assert!(
        err.contains("hookd.toml: key `processing.workers` (set by HOOKD_WORKERS)"),
        "{err}"
    );
    let err = load_str("", &[("HOOKD_LISTEN", "anywhere")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("key `listen` (set by HOOKD_LISTEN): `anywhere` is not an address"),
        "{err}"
    );
    let err = load_str(
        "[[endpoints]]\nname = \"a-b\"",
        &[("HOOKD_SECRETS_A_B", &format!("{SECRET},whsec_???"))],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("key `endpoints[0].secrets[1]` (set by HOOKD_SECRETS_A_B)"),
        "{err}"
    );
    // The file's own mistakes do not name a variable.
    let err = load_str("[processing]\nworkers = 0", &[])
        .unwrap_err()
        .to_string();
    assert!(!err.contains("set by"), "{err}");
}

#[test]
fn the_environment_replaces_secret_files_without_reading_them() {
    let c = load_str(
        "[admin]\ntoken_file = \"/nonexistent/admin.token\"\n\
         [fasten]\nprivate_key_file = \"/nonexistent/fasten.key\"",
        &[
            ("HOOKD_ADMIN_TOKEN", " token-from-the-environment "),
            ("HOOKD_FASTEN_PRIVATE_KEY", "key-from-env"),
        ],
    )
    .unwrap();
    assert_eq!(c.admin.token.as_deref(), Some("token-from-the-environment"));
    assert_eq!(c.fasten.private_key.as_deref(), Some("key-from-env"));
    // A file that sets both a token and a token file is still refused.
    let err = load_str(
        "[admin]\ntoken = \"0123456789abcdef0123\"\ntoken_file = \"/x\"",
        &[("HOOKD_ADMIN_TOKEN", "0123456789abcdef0123")],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("admin.token_file"), "{err}");
    // The key itself is never read from the file.
    let err = load_str("[fasten]\nprivate_key = \"k\"", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("private_key"), "{err}");
}

#[test]
fn the_default_endpoint_takes_its_secrets_from_the_environment() {
    let env = HashMap::from([("HOOKD_SECRETS_DEFAULT".to_string(), SECRET.to_string())]);
    let c = Config::load(None, &env).unwrap();
    assert!(c.default_endpoint);
    assert_eq!(c.endpoints[0].secrets.len(), 1);
    let err = load_str(
        &format!("[[endpoints]]\nname = \"a\"\nsecrets = [\"{SECRET}\"]"),
        &[("HOOKD_SECRETS_DEFAULT", SECRET)],
    )
    .unwrap_err();
    assert!(matches!(err.problem(), Some(Invalid::NoSuchEndpoint)));
}

#[test]
fn a_bad_schedule_says_why_as_a_type() {
    let err = load_str("[retention]\nschedule = \"0 * * * *\"", &[]).unwrap_err();
    assert!(
        matches!(
            err.problem(),
            Some(Invalid::Schedule(ScheduleError::Fields { fields: 5, .. }))
        ),
        "{err:?}"
    );
    let err = load_str("[retention]\nschedule = \"x 0 * * * *\"", &[]).unwrap_err();
    assert!(
        matches!(
            err.problem(),
            Some(Invalid::Schedule(ScheduleError::Cron { .. }))
        ),
        "{err:?}"
    );
}

/// The crate's root, where README.md and packaging/ live.
fn repo_file(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name)).unwrap()
}

/// The key list in README.md's "Configuration" section.
fn readme_block() -> String {
    let readme = repo_file("README.md");
    let section = &readme[readme.find("## Configuration").unwrap()..];
    let start = section.find("```toml\n").unwrap() + "```toml\n".len();
    section[start..start + section[start..].find("```").unwrap()].to_owned()
}

/// Every `(section, key)` a documentation text shows, set or commented out; a table counts
/// as a key of its parent (`("", "admin")`, `("endpoints", "forward")`).
fn documented_keys(text: &str) -> BTreeSet<(String, String)> {
    let mut keys = BTreeSet::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim_start_matches('#').trim();
        if let Some(header) = line.strip_prefix('[') {
            let name = header.trim_start_matches('[').split(']').next().unwrap();
            let (parent, last) = name.rsplit_once('.').unwrap_or(("", name));
            keys.insert((parent.to_owned(), last.to_owned()));
            section = name.to_owned();
        } else if let Some((key, _)) = line.split_once('=') {
            let key = key.trim();
            if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                keys.insert((section.clone(), key.to_owned()));
            }
        }
    }
    keys
}

/// Every `(section, key)` the parser accepts, from its own "the keys here are" message, so a
/// new key cannot be left out of the documentation.
fn accepted_keys() -> BTreeSet<(String, String)> {
    let probes = [
        ("", ""),
        ("retention", "[retention]\n"),
        ("admin", "[admin]\n"),
        ("processing", "[processing]\n"),
        ("receive", "[receive]\n"),
        ("fasten", "[fasten]\n"),
        ("endpoints", "[[endpoints]]\nname = \"x\"\n"),
        (
            "endpoints.forward",
            "[[endpoints]]\nname = \"x\"\n[endpoints.forward]\nurl = \"http://x\"\n",
        ),
    ];
    let mut keys = BTreeSet::new();
    for (section, table) in probes {
        let err = load_str(&format!("{table}zz_unknown = 0\n"), &[])
            .unwrap_err()
            .to_string();
        let at = err
            .find("the keys here are:")
            .unwrap_or_else(|| panic!("{err}"));
        let expected = err[at..].lines().next().unwrap();
        let names = expected.split('`').skip(1).step_by(2);
        keys.extend(names.map(|k| (section.to_owned(), k.to_owned())));
    }
    keys
}

#[test]
fn readme_and_packaged_file_show_every_key() {
    let accepted = accepted_keys();
    assert!(accepted.contains(&("admin".into(), "token_file".into())));
    for (name, text) in [
        ("README.md", readme_block()),
        ("packaging/hookd.toml", repo_file("packaging/hookd.toml")),
    ] {
        let documented = documented_keys(&text);
        let missing: Vec<_> = accepted.difference(&documented).collect();
        let unknown: Vec<_> = documented.difference(&accepted).collect();
        assert!(
            missing.is_empty() && unknown.is_empty(),
            "{name}: missing {missing:?}, unknown {unknown:?}"
        );
    }
}

/// Loads a documentation text as a config file; the same as no file, but for `source`.
fn load_doc(text: &str) -> Config {
    let mut c = load_str(text, &[]).unwrap();
    c.source = None;
    c
}

#[test]
fn readme_shows_the_real_defaults() {
    let block = readme_block();
    // The endpoint there is an example (its secret a placeholder); the rest are defaults.
    let defaults_part = &block[..block.find("[[endpoints]]").unwrap()];
    let defaults = Config::load(None, &HashMap::new()).unwrap();
    assert_eq!(
        format!("{:?}", load_doc(defaults_part)),
        format!("{defaults:?}")
    );
}

#[test]
fn packaged_file_shows_the_real_defaults() {
    // Keys without a default are shown there as examples.
    let examples = [
        "token",
        "token_file",
        "metrics_token",
        "password_hash",
        "backup_dir",
        "public_id",
        "private_key_file",
        "max_rate_per_sec",
    ];
    let packaged = repo_file("packaging/hookd.toml");
    let settings = &packaged[..packaged.find("\n# Endpoints.").unwrap()];
    let uncommented: Vec<&str> = settings
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest)
                if rest.split_once(" = ").is_some_and(|(k, _)| {
                    k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && !examples.contains(&k)
                }) =>
            {
                rest
            }
            _ => line,
        })
        .collect();
    let mut c = load_doc(&uncommented.join("\n"));
    // The package keeps its data where systemd's StateDirectory puts it.
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/hookd"));
    c.data_dir = PathBuf::from(defaults::DATA_DIR);
    let defaults = Config::load(None, &HashMap::new()).unwrap();
    assert_eq!(format!("{c:?}"), format!("{defaults:?}"));
}

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
        matches!(err.problem(), Some(Invalid::SameAddress(_))),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("hookd.toml: key `admin_listen`: `127.0.0.1:9000` is also `listen`"),
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
fn readme_and_packaged_file_list_every_variable() {
    // Every variable `env` reads, from its own string literals.
    let source = repo_file("src/config/env.rs");
    let vars: BTreeSet<String> = source
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with("HOOKD_"))
        .map(|s| match s.strip_prefix("HOOKD_SECRETS_") {
            Some(_) => "HOOKD_SECRETS_<ENDPOINT>".to_owned(),
            None => s.to_owned(),
        })
        .collect();
    assert!(vars.len() >= 9, "{vars:?}");
    let packaged = repo_file("packaging/hookd.toml");
    let header: String = packaged
        .lines()
        .take_while(|l| l.starts_with('#'))
        .collect();
    let readme = repo_file("README.md");
    for var in &vars {
        assert!(
            header.contains(var.as_str()),
            "packaging/hookd.toml's header lacks {var}"
        );
        assert!(readme.contains(var.as_str()), "README.md lacks {var}");
    }
}

#[test]
fn receiver_limits_are_read_and_checked() {
    let c = load_str(
        "[receive]\nmax_connections = 8\nheader_read_timeout_secs = 3\nbody_timeout_secs = 4\n\
         body_min_bytes_per_sec = 0\nbody_budget_bytes = 4096\n\
         [[endpoints]]\nname = \"a\"\nsecrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\n\
         max_body_bytes = 4096\n",
        &[],
    )
    .unwrap();
    assert_eq!(c.receive.max_connections, 8);
    assert_eq!(c.receive.header_read_timeout_secs, 3);
    assert_eq!(c.receive.body_timeout_secs, 4);
    assert_eq!(c.receive.body_min_bytes_per_sec, 0);
    assert_eq!(c.receive.body_budget_bytes, 4096);

    let err = load_str("[receive]\nmax_connections = 0\n", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("receive.max_connections"), "{err}");
    let err = load_str(
        "[receive]\nbody_budget_bytes = 1000\n\
         [[endpoints]]\nname = \"a\"\nsecrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("endpoints[0].max_body_bytes") && err.contains("receive.body_budget_bytes"),
        "{err}"
    );
}

#[test]
fn redacted_headers_and_rejected_byte_budget_are_read_and_checked() {
    let defaults = load_str("", &[]).unwrap();
    assert!(defaults
        .receive
        .redact_headers
        .contains(&"x-api-key".to_string()));
    assert!(!defaults
        .receive
        .redact_headers
        .contains(&"webhook-signature".to_string()));
    assert_eq!(
        defaults.receive.log_header_bytes,
        defaults::LOG_HEADER_BYTES
    );

    let c = load_str(
        "[receive]\nredact_headers = [\" X-Secret \", \"Authorization\"]\n\
         log_header_bytes = 512\nrejected_log_bytes_per_sec = 0.0\n",
        &[],
    )
    .unwrap();
    assert_eq!(c.receive.redact_headers, ["x-secret", "authorization"]);
    assert_eq!(c.receive.log_header_bytes, 512);
    assert_eq!(c.receive.rejected_log_bytes_per_sec, 0.0);

    let err = load_str(
        "[receive]\nredact_headers = [\"ok\", \"not a name\"]\nrejected_log_bytes_per_sec = -1.0\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("receive.redact_headers[1]"), "{err}");
    assert!(err.contains("receive.rejected_log_bytes_per_sec"), "{err}");
}
