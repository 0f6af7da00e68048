//! Reading the file and the environment into a checked configuration.
use super::*;
use std::path::PathBuf;

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
    assert!(
        err.contains("HOOKD_RETENTION_DAYS (key `retention_days`)"),
        "{err}"
    );
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
