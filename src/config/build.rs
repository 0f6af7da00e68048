//! From the raw configuration (file and environment already merged) to the validated
//! [`Config`]: each section is built and checked once, in its own file, and this one puts
//! them together with the top-level keys.

use super::defaults;
use super::error::{ConfigError, Invalid, Origin};
use super::raw::RawConfig;
use super::types::Config;
use super::{admin, endpoints, fasten, processing, retention};
use crate::secret::Secret;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Validates `raw`; `default_endpoint` says its only endpoint was made up by hookd.
pub(super) fn build(
    raw: RawConfig,
    default_endpoint: bool,
    origin: &Origin,
) -> Result<Config, ConfigError> {
    let listen = parse_addr(origin, "listen", raw.listen.as_deref(), defaults::LISTEN)?;
    let admin_listen = parse_addr(
        origin,
        "admin_listen",
        raw.admin_listen.as_deref(),
        defaults::ADMIN_LISTEN,
    )?;
    let retention_days = raw.retention_days.unwrap_or(defaults::RETENTION_DAYS);
    if retention_days == 0 {
        return Err(origin.err("retention_days", Invalid::Zero));
    }
    let admin = admin::build(raw.admin, origin)?;
    if !admin_listen.ip().is_loopback() && !admin.has_credential() {
        return Err(origin.err(
            "admin_listen",
            Invalid::PublicWithoutCredential(admin_listen),
        ));
    }
    Ok(Config {
        source: None,
        data_dir: raw
            .data_dir
            .unwrap_or_else(|| PathBuf::from(defaults::DATA_DIR)),
        listen,
        admin_listen,
        retention_days,
        cache_mb: raw.cache_mb.unwrap_or(defaults::CACHE_MB),
        retention: retention::build(raw.retention, origin)?,
        admin,
        processing: processing::build_processing(raw.processing, origin)?,
        receive: processing::build_receive(raw.receive, origin)?,
        endpoints: endpoints::build(raw.endpoints, default_endpoint, origin)?,
        default_endpoint,
        fasten: fasten::build(raw.fasten, origin)?,
    })
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

/// Parses a list of `whsec_` secrets; an error names the item (`key[i]`).
pub(super) fn parse_secrets(
    origin: &Origin,
    key: &str,
    list: &[String],
) -> Result<Vec<Secret>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, s)| Secret::parse(s).map_err(|e| origin.err(&format!("{key}[{i}]"), e)))
        .collect()
}
