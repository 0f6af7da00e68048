//! `hookd backup --to DIR`: a consistent copy of the data directory — online through the
//! running hookd's admin API, or offline from a stopped data directory.

use super::{db_dir, done, Failure, Outcome};
use crate::config::Config;
use crate::store::backup;
use std::path::{Path, PathBuf};

/// Copies the configured hookd (online if it answers on its admin listener, offline if it
/// is stopped) into the new directory `to`.
pub(super) async fn run(config: &Config, to: &Path) -> Outcome {
    if matches!(config.store, crate::config::StoreKind::Postgres(_)) {
        return Err(Failure::Usage(
            "this configuration is in cluster mode (store.kind = \"postgres\"): its data is in \
             PostgreSQL, backed up with PostgreSQL's tools (pg_dump, pg_basebackup, a standby), \
             and its export files with fasten.exports_dir's storage; see docs/cluster.md"
                .into(),
        ));
    }
    let to = target(&in_backup_dir(config, to))?;
    refuse_inside(&config.data_dir, &to)?;
    let result = online_or_offline(config, &to).await;
    done(cleaned_up(result, &to)?)
}

/// Copies the stopped data directory `data_dir` into the new directory `to`.
pub(super) fn offline_only(data_dir: &Path, to: &Path) -> Outcome {
    let to = target(to)?;
    refuse_inside(data_dir, &to)?;
    let result = offline(data_dir, &to);
    done(cleaned_up(result, &to)?)
}

/// A backup inside the data directory would copy itself into itself until the path is too
/// long: refused whatever the spelling (symlinks, `..`).
fn refuse_inside(data_dir: &Path, to: &Path) -> Result<(), Failure> {
    crate::admin::outside_data_dir(data_dir, to)
        .map_err(|reason| Failure::Usage(format!("refusing to back up: {reason}")))
}

/// A failed backup leaves no partial target behind: `to` did not exist before (checked by
/// [`target`]), and a leftover directory would make the retry fail with "already exists".
fn cleaned_up(result: Result<String, Failure>, to: &Path) -> Result<String, Failure> {
    if result.is_err() && to.exists() {
        if let Err(e) = std::fs::remove_dir_all(to) {
            tracing::warn!(dir = %to.display(), error = %e, "cannot remove the failed backup's directory");
        }
    }
    result
}

/// A bare name (`--to nightly`) names a backup in `admin.backup_dir` when that is set: the
/// name the admin API takes, and where an online backup must go anyway. Any path with a
/// directory in it is taken as it is.
fn in_backup_dir(config: &Config, to: &Path) -> PathBuf {
    let mut parts = to.components();
    match (&config.admin.backup_dir, parts.next(), parts.next()) {
        (Some(dir), Some(std::path::Component::Normal(name)), None) => dir.join(name),
        _ => to.to_path_buf(),
    }
}

/// An absolute path for `to`, whose parent must exist and which must not.
fn target(to: &Path) -> Result<PathBuf, Failure> {
    let abs = if to.is_absolute() {
        to.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Failure::Failed(format!("cannot read the current directory: {e}")))?
            .join(to)
    };
    if abs.exists() {
        return Err(Failure::Usage(format!(
            "{} already exists; a backup goes into a new directory",
            abs.display()
        )));
    }
    Ok(abs)
}

/// Asks the configured hookd's admin API for the backup; copies its data directory directly
/// when nothing listens there.
async fn online_or_offline(config: &Config, to: &Path) -> Result<String, Failure> {
    let mut admin = config.admin_listen;
    if admin.ip().is_unspecified() {
        admin.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("http://{admin}/api/backup");
    let client = reqwest::Client::new();
    // The running hookd writes only into admin.backup_dir, by name.
    let name = match api_name(config, to) {
        Ok(name) => name,
        Err(why) => {
            return match client.get(format!("http://{admin}/healthz")).send().await {
                Err(e) if e.is_connect() => offline(&config.data_dir, to),
                _ => Err(Failure::Usage(format!(
                    "hookd is running (at {admin}) and writes online backups only into \
                     admin.backup_dir: {why}; or stop it for an offline backup"
                ))),
            };
        }
    };
    let mut request = client
        .post(&url)
        .query(&[("to", name.as_str())])
        .json(&serde_json::json!({}));
    if let Some(token) = &config.admin.token {
        request = request.bearer_auth(token);
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            if status.is_success() {
                Ok(format!(
                    "online backup of the running hookd written to {} ({} events, {} deliveries, {} ms)",
                    to.display(),
                    body["summary"]["events"],
                    body["summary"]["deliveries"],
                    body["millis"]
                ))
            } else {
                // A token the running hookd has only from its environment is not in the file
                // this command read: say where the command looks for one.
                let hint = if status == reqwest::StatusCode::UNAUTHORIZED {
                    " (this command sends the admin token of its own configuration: \
                     admin.token or admin.token_file, or HOOKD_ADMIN_TOKEN in its environment; \
                     give it the one the running hookd uses)"
                } else {
                    ""
                };
                Err(Failure::Failed(format!(
                    "the running hookd at {url} refused the backup: HTTP {status}: {}{hint}",
                    body["reason"].as_str().unwrap_or("no reason given")
                )))
            }
        }
        Err(e) if e.is_connect() => {
            // Nothing listens: hookd is stopped, so its data directory can be read directly
            // (if it is in use after all, the store's lock refuses and says so).
            offline(&config.data_dir, to)
        }
        Err(e) => Err(Failure::Failed(format!("cannot reach hookd at {url}: {e}"))),
    }
}

/// The name the admin API takes for `to`: its last component, when `to` lies directly in the
/// configured `admin.backup_dir`; otherwise what to do instead.
fn api_name(config: &Config, to: &Path) -> Result<String, String> {
    let Some(dir) = &config.admin.backup_dir else {
        return Err("it is not set (set it, restart hookd, and pass --to BACKUP_DIR/NAME)".into());
    };
    // A backup_dir that cannot be used is the cause to name, not where --to points.
    let wanted = std::fs::canonicalize(dir).map_err(|e| {
        format!(
            "it ({}) cannot be used: {e} (create it, writable by hookd's user, then try again)",
            dir.display()
        )
    })?;
    let parent = to.parent().and_then(|p| std::fs::canonicalize(p).ok());
    match (to.file_name(), parent == Some(wanted)) {
        (Some(name), true) => Ok(name.to_string_lossy().into_owned()),
        _ => Err(format!("pass --to {}/NAME", dir.display())),
    }
}

/// Copies the stopped data directory `data_dir` into `to`.
fn offline(data_dir: &Path, to: &Path) -> Result<String, Failure> {
    let src = db_dir(data_dir)?;
    let summary = backup::copy_data_dir(data_dir, to, |db| backup::backup_offline(&src, db))
        .map_err(|e| {
            Failure::Failed(format!(
                "cannot back up {} (is hookd still running on it?): {e}",
                data_dir.display()
            ))
        })?;
    Ok(format!(
        "backup of the stopped data directory {} written to {} ({} events, {} deliveries)",
        data_dir.display(),
        to.display(),
        summary.events,
        summary.deliveries
    ))
}
