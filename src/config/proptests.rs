//! Property tests of the loader: whatever the file holds (any bytes, any text, or any TOML
//! values under the keys hookd knows) and whatever the `HOOKD_*` variables say, loading
//! never panics, and a refusal names at least one problem, each naming the file or the
//! variable.

use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Keys of each table, with a few that do not exist.
const TOP: &[&str] = &[
    "data_dir",
    "listen",
    "admin_listen",
    "retention_days",
    "cache_mb",
    "retention",
    "admin",
    "endpoints",
    "listn",
];
const SECTIONS: &[(&str, &[&str])] = &[
    (
        "retention",
        &["schedule", "export_retention_days", "batch_size"],
    ),
    (
        "admin",
        &[
            "token",
            "token_file",
            "metrics_token",
            "password_hash",
            "session_ttl_secs",
        ],
    ),
    (
        "processing",
        &[
            "workers",
            "max_rate_per_sec",
            "max_attempts",
            "retry_schedule_secs",
            "retry_jitter",
            "attempt_timeout_secs",
            "shutdown_grace_secs",
        ],
    ),
    (
        "receive",
        &[
            "queue_high_water",
            "log_body_bytes",
            "rejected_body_bytes",
            "rejected_log_per_sec",
            "log_header_bytes",
            "rejected_log_bytes_per_sec",
        ],
    ),
    (
        "fasten",
        &[
            "api_base",
            "public_id",
            "private_key_file",
            "private_key",
            "request_export_on_connection",
            "download_hosts",
            "max_export_bytes",
            "on_revoke",
        ],
    ),
];
/// Besides `name`, which every endpoint is given.
const ENDPOINT: &[&str] = &[
    "profile",
    "secrets",
    "events",
    "tolerance_secs",
    "max_body_bytes",
    "processor",
    "secrets_file",
    "secret",
];
const FORWARD: &[&str] = &["url", "secret", "timeout_secs", "secret_file"];
const VARS: &[&str] = &[
    "HOOKD_DATA_DIR",
    "HOOKD_LISTEN",
    "HOOKD_ADMIN_LISTEN",
    "HOOKD_RETENTION_DAYS",
    "HOOKD_WORKERS",
    "HOOKD_ADMIN_TOKEN",
    "HOOKD_ADMIN_PASSWORD_HASH",
    "HOOKD_FASTEN_PRIVATE_KEY",
    "HOOKD_SECRETS_DEFAULT",
    "HOOKD_SECRETS_A",
];

/// Strings a config holds, valid and not.
const WORDS: &[&str] = &[
    "",
    "a",
    "default",
    "127.0.0.1:0",
    "127.0.0.1:9000",
    "0.0.0.0:9001",
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "whsec_???",
    "standard",
    "fasten",
    "log",
    "forward",
    "keep",
    "delete",
    "patient.ehi_export_success",
    "patient.ehi_export_sucess",
    "http://127.0.0.1:9/in",
    "https://api.connect.fastenhealth.com/v1",
    "ftp://x",
    "0 0 * * * *",
    "* * *",
    "0123456789abcdef0123",
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
    "/nonexistent/file",
];

/// A TOML value, as text.
fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        prop_oneof![Just(0i64), Just(1), Just(-1), Just(1024), Just(1025)]
            .prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| match f {
            f if f.is_nan() => "nan".to_owned(),
            f if f.is_infinite() => (if f > 0.0 { "inf" } else { "-inf" }).to_owned(),
            f => format!("{f:?}"),
        }),
        prop::sample::select(WORDS).prop_map(quoted),
        "\\PC{0,24}".prop_map(|s| quoted(&s)),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::btree_map(prop::sample::select(ENDPOINT), inner, 0..3).prop_map(
                |m| {
                    let pairs: Vec<String> = m.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                    format!("{{ {} }}", pairs.join(", "))
                }
            ),
        ]
    })
}

/// A TOML basic string (JSON's escapes are TOML's).
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Key/value lines for some of `keys`.
fn lines(keys: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::collection::btree_map(prop::sample::select(keys), value(), 0..4).prop_map(|m| {
        m.iter()
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect::<String>()
    })
}

/// A whole file: top-level keys, some sections, up to three endpoints (some forwarding).
fn document() -> impl Strategy<Value = String> {
    let sections = SECTIONS
        .iter()
        .map(|(name, keys)| prop::option::of(lines(keys)).prop_map(move |l| (*name, l)))
        .collect::<Vec<_>>();
    let endpoint = (
        prop::sample::select(WORDS),
        lines(ENDPOINT),
        prop::option::of(lines(FORWARD)),
    )
        .prop_map(|(name, body, forward)| {
            let mut text = format!("[[endpoints]]\nname = {}\n", quoted(name));
            text.push_str(&body);
            if let Some(f) = forward {
                text.push_str(&format!("[endpoints.forward]\n{f}"));
            }
            text
        });
    (lines(TOP), sections, prop::collection::vec(endpoint, 0..3)).prop_map(
        |(top, sections, endpoints)| {
            let mut text = top;
            for (name, body) in sections {
                if let Some(body) = body {
                    text.push_str(&format!("[{name}]\n{body}"));
                }
            }
            text.push_str(&endpoints.concat());
            text
        },
    )
}

fn env() -> impl Strategy<Value = HashMap<String, String>> {
    prop::collection::btree_map(
        prop::sample::select(VARS),
        prop_oneof![
            prop::sample::select(WORDS).prop_map(str::to_owned),
            "\\PC{0,16}"
        ],
        0..3,
    )
    .prop_map(|m: BTreeMap<&str, String>| m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// Loads `bytes` as a config file with `env`, and checks what a refusal says.
fn check(bytes: &[u8], env: &HashMap<String, String>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hookd.toml");
    std::fs::write(&path, bytes).unwrap();
    if let Err(e) = Config::load(Some(&path), env) {
        prop_assert!(!e.errors().is_empty());
        for problem in e.errors() {
            let text = problem.to_string();
            prop_assert!(
                text.contains("hookd.toml") || text.starts_with("environment variable HOOKD_"),
                "{text}"
            );
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn any_bytes_load_or_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&bytes, &HashMap::new())?;
    }

    #[test]
    fn any_text_loads_or_is_refused(text in "\\PC{0,256}") {
        check(text.as_bytes(), &HashMap::new())?;
    }

    #[test]
    fn any_values_under_known_keys_load_or_are_refused(text in document(), env in env()) {
        check(text.as_bytes(), &env)?;
    }
}
