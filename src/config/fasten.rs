//! The `[fasten]` section: the Fasten Connect API, its credentials, and the hosts exports
//! may be downloaded from.

use super::build::read_secret_file;
use super::defaults;
use super::error::{ConfigError, Invalid, Origin, Problems};
use super::raw::RawFasten;
use super::types::{DownloadHost, Fasten, OnRevoke};

/// Builds and checks `[fasten]`.
pub(super) fn build(raw: RawFasten, origin: &Origin) -> Result<Fasten, ConfigError> {
    let mut problems = Problems::default();
    let api_base = raw
        .api_base
        .unwrap_or_else(|| defaults::FASTEN_API_BASE.to_string())
        .trim_end_matches('/')
        .to_string();
    let api_host = reqwest::Url::parse(&api_base)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase));
    if api_host.is_none() {
        problems.add(origin.err("fasten.api_base", Invalid::NotHttpUrl(api_base.clone())));
    }
    // The variable wins over the file, which is then not read.
    let private_key = match (raw.private_key, &raw.private_key_file) {
        (Some(key), _) => Some(key),
        (None, Some(path)) => problems
            .ok(read_secret_file(origin, "fasten.private_key_file", path))
            .map(|key| key.trim().to_owned()),
        (None, None) => None,
    };
    let download_hosts = match raw.download_hosts {
        Some(list) => problems.ok(download_hosts(&list, origin)),
        // The API host itself, over https.
        None => api_host.map(|host| {
            vec![DownloadHost {
                host,
                port: None,
                allow_http: false,
            }]
        }),
    };
    let on_revoke = match raw.on_revoke.as_deref() {
        None | Some("keep") => Some(OnRevoke::Keep),
        Some("delete") => Some(OnRevoke::Delete),
        Some(other) => {
            problems.add(origin.err(
                "fasten.on_revoke",
                Invalid::NotOneOf {
                    value: other.to_owned(),
                    choices: "keep, delete",
                },
            ));
            None
        }
    };
    let max_export_bytes = raw
        .max_export_bytes
        .unwrap_or(defaults::FASTEN_MAX_EXPORT_BYTES);
    if max_export_bytes == 0 {
        problems.add(origin.err("fasten.max_export_bytes", Invalid::Zero));
    }
    let fasten = (|| {
        Some(Fasten {
            api_base,
            public_id: raw.public_id,
            private_key,
            request_export_on_connection: raw
                .request_export_on_connection
                .unwrap_or(defaults::REQUEST_EXPORT_ON_CONNECTION),
            download_hosts: download_hosts?,
            max_export_bytes,
            on_revoke: on_revoke?,
            exports_dir: raw.exports_dir,
        })
    })();
    problems.finish(fasten)
}

fn download_hosts(list: &[String], origin: &Origin) -> Result<Vec<DownloadHost>, ConfigError> {
    let mut problems = Problems::default();
    let hosts = list
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            let host = parse_download_host(h).ok_or_else(|| {
                origin.err(
                    &format!("fasten.download_hosts[{i}]"),
                    Invalid::NotAHost(h.clone()),
                )
            });
            problems.ok(host)
        })
        .collect();
    problems.finish(Some(hosts))
}

fn parse_download_host(text: &str) -> Option<DownloadHost> {
    let (allow_http, rest) = match text.strip_prefix("http://") {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix("https://").unwrap_or(text)),
    };
    let rest = rest.trim_end_matches('/');
    let url = reqwest::Url::parse(&format!("http://{rest}/")).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    if url.path() != "/" || host.is_empty() {
        return None;
    }
    Some(DownloadHost {
        host,
        port: url.port(),
        allow_http,
    })
}
