//! From the raw configuration (file and environment already merged) to the validated
//! [`Config`]: each section is built and checked once, in its own file, and this one puts
//! them together with the top-level keys.

use super::defaults;
use super::error::{ConfigError, Invalid, Origin, Problems};
use super::raw::RawConfig;
use super::types::Config;
use super::{admin, alerts, endpoints, fasten, processing, retention, store};
use crate::secret::Secret;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Validates `raw`, every section of it even after a problem, so that all are reported;
/// `default_endpoint` says its only endpoint was made up by hookd.
pub(super) fn build(
    raw: RawConfig,
    default_endpoint: bool,
    origin: &Origin,
) -> Result<Config, ConfigError> {
    let mut problems = Problems::default();
    let listen = problems.ok(parse_addr(
        origin,
        "listen",
        raw.listen.as_deref(),
        defaults::LISTEN,
    ));
    let admin_listen = problems.ok(parse_addr(
        origin,
        "admin_listen",
        raw.admin_listen.as_deref(),
        defaults::ADMIN_LISTEN,
    ));
    if let (Some(listen), Some(admin_listen)) = (listen, admin_listen) {
        if collide(listen, admin_listen) {
            problems.add(origin.err(
                "admin_listen",
                Invalid::SameAddress {
                    admin: admin_listen,
                    listen,
                    var: origin.var("listen"),
                },
            ));
        }
    }
    let retention_days = raw.retention_days.unwrap_or(defaults::RETENTION_DAYS);
    if retention_days == 0 {
        problems.add(origin.err("retention_days", Invalid::Zero));
    }
    let admin = problems.ok(admin::build(raw.admin, origin));
    if let (Some(admin_listen), Some(admin)) = (admin_listen, &admin) {
        if !admin_listen.ip().is_loopback() && !admin.has_credential() {
            problems.add(origin.err(
                "admin_listen",
                Invalid::PublicWithoutCredential(admin_listen),
            ));
        }
    }
    let retention = problems.ok(retention::build(raw.retention, origin));
    let processing = problems.ok(processing::build_processing(raw.processing, origin));
    let receive = problems.ok(processing::build_receive(raw.receive, origin));
    let endpoints = problems.ok(endpoints::build(raw.endpoints, default_endpoint, origin));
    let fasten = problems.ok(fasten::build(raw.fasten, origin));
    let alerts = raw
        .alerts
        .map(|a| problems.ok(alerts::build_alerts(a, origin)));
    let push = raw.push.map(|p| problems.ok(alerts::build_push(p, origin)));
    let store = problems.ok(store::build(raw.store, raw.postgres, origin));
    // A secret generated into one instance's data_dir is unknown to the others: behind a
    // load balancer, half the deliveries would be refused.
    if default_endpoint && matches!(store, Some(store::StoreKind::Postgres(_))) {
        problems.add(origin.err("endpoints", Invalid::ClusterNeedsEndpoints));
    }
    if let (Some(receive), Some(endpoints)) = (&receive, &endpoints) {
        for (i, e) in endpoints.iter().enumerate() {
            if e.max_body_bytes > receive.body_budget_bytes {
                problems.add(origin.err(
                    &format!("endpoints[{i}].max_body_bytes"),
                    Invalid::AboveBudget(receive.body_budget_bytes),
                ));
            }
        }
    }
    let data_dir = raw
        .data_dir
        .unwrap_or_else(|| PathBuf::from(defaults::DATA_DIR));
    if let Some(backup_dir) = admin.as_ref().and_then(|a| a.backup_dir.as_ref()) {
        if inside(backup_dir, &data_dir) {
            problems.add(origin.err("admin.backup_dir", Invalid::InsideDataDir(data_dir.clone())));
        }
    }
    let config = (|| {
        Some(Config {
            source: None,
            data_dir,
            listen: listen?,
            admin_listen: admin_listen?,
            retention_days,
            cache_mb: raw.cache_mb.unwrap_or(defaults::CACHE_MB),
            retention: retention?,
            admin: admin?,
            processing: processing?,
            receive: receive?,
            endpoints: endpoints?,
            default_endpoint,
            fasten: fasten?,
            alerts: alerts.map(|a| a.ok_or(())).transpose().ok()?,
            push: push.map(|p| p.ok_or(())).transpose().ok()?,
            store: store?,
        })
    })();
    problems.finish(config)
}

/// Whether two listen addresses cannot both be bound: the same port (not 0, which lets the
/// system choose) on the same address, or on all addresses (`0.0.0.0`, `::`) and any other.
fn collide(a: std::net::SocketAddr, b: std::net::SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Whether `path` is `dir` or inside it, by name (neither needs to exist yet; `..` is
/// taken by name too). Symlinks are for the backup itself to resolve, when it runs.
fn inside(path: &std::path::Path, dir: &std::path::Path) -> bool {
    let normal = |p: &std::path::Path| {
        let mut out = PathBuf::new();
        for part in std::path::absolute(p).ok()?.components() {
            match part {
                std::path::Component::ParentDir => {
                    out.pop();
                }
                std::path::Component::CurDir => {}
                other => out.push(other),
            }
        }
        Some(out)
    };
    match (normal(path), normal(dir)) {
        (Some(p), Some(d)) => p.starts_with(d),
        _ => false,
    }
}

fn parse_addr(
    origin: &Origin,
    key: &str,
    text: Option<&str>,
    default: &str,
) -> Result<SocketAddr, ConfigError> {
    let text = text.unwrap_or(default);
    text.parse()
        .map_err(|_| origin.err(key, Invalid::NotAnAddress(text.to_owned())))
}

/// Reads a file that holds a secret (the key names it in the error).
pub(super) fn read_secret_file(
    origin: &Origin,
    key: &str,
    path: &Path,
) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| {
        origin.err(
            key,
            Invalid::Unreadable {
                path: path.to_owned(),
                source,
            },
        )
    })
}

/// Parses a list of `whsec_` secrets; an error names the item (`key[i]`), every bad one.
pub(super) fn parse_secrets(
    origin: &Origin,
    key: &str,
    list: &[String],
) -> Result<Vec<Secret>, ConfigError> {
    let mut problems = Problems::default();
    let secrets = list
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            problems.ok(Secret::parse(s).map_err(|e| origin.err(&format!("{key}[{i}]"), e)))
        })
        .collect();
    problems.finish(Some(secrets))
}

/// A section's `url` and its Standard Webhooks signing secret (`secret` or `secret_file`,
/// exactly one), as `[alerts]` and `[push]` have them; `section` names the keys.
pub(super) fn url_and_secret(
    origin: &Origin,
    section: &'static str,
    url: Option<String>,
    secret: Option<String>,
    secret_file: Option<PathBuf>,
    required: (&'static str, &'static str),
) -> Result<(String, Secret), ConfigError> {
    let mut problems = Problems::default();
    let key = |k: &str| format!("{section}.{k}");
    let url = match url {
        None => {
            problems.add(origin.err(&key("url"), Invalid::Required(required.0)));
            None
        }
        Some(url) => {
            let ok = reqwest::Url::parse(&url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
            if !ok {
                problems.add(origin.err(&key("url"), Invalid::NotHttpUrl(url.clone())));
            }
            ok.then_some(url)
        }
    };
    let text = match (secret, secret_file) {
        (Some(s), None) => Some(s),
        (None, Some(path)) => problems.ok(read_secret_file(origin, &key("secret_file"), &path)),
        _ => {
            problems.add(origin.err(&key("secret"), Invalid::Exclusive(required.1)));
            None
        }
    };
    let secret = text
        .and_then(|t| problems.ok(Secret::parse(&t).map_err(|e| origin.err(&key("secret"), e))));
    problems.finish(url.zip(secret))
}
