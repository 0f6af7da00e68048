//! The data-directory commands: `hookd backup` (online through the admin API, or offline on a
//! stopped data directory), `hookd verify-data` and `hookd compact`.

use crate::config::Config;
use crate::store::{backup, check};
use std::path::{Path, PathBuf};

/// A command's failure: the message, and whether it was the user's input (exit 2) or not.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub usage: bool,
}

fn fail(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        usage: false,
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        usage: true,
    }
}

/// The store directory inside a data directory (or the store directory itself).
fn db_dir(dir: &Path) -> PathBuf {
    if dir.join("db").join("conf").exists() {
        dir.join("db")
    } else {
        dir.to_path_buf()
    }
}

/// An absolute path for `to`, whose parent must exist and which must not.
fn target(to: &Path) -> Result<PathBuf, Failure> {
    let abs = if to.is_absolute() {
        to.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| fail(format!("cannot read the current directory: {e}")))?
            .join(to)
    };
    if abs.exists() {
        return Err(usage(format!(
            "{} already exists; a backup goes into a new directory",
            abs.display()
        )));
    }
    Ok(abs)
}

/// `hookd backup --to DIR`: copies `data_dir` (when given: a stopped data directory) or the
/// configured hookd (online if it answers on its admin listener, offline if it is stopped).
pub async fn backup(
    config: &Config,
    data_dir: Option<&Path>,
    to: &Path,
) -> Result<String, Failure> {
    let to = target(to)?;
    if let Some(dir) = data_dir {
        return offline(dir, &to);
    }
    let mut admin = config.admin_listen;
    if admin.ip().is_unspecified() {
        admin.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("http://{admin}/api/backup");
    let mut request = reqwest::Client::new()
        .post(&url)
        .query(&[("to", to.to_string_lossy().as_ref())]);
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
                Err(fail(format!(
                    "the running hookd at {url} refused the backup: HTTP {status}: {}",
                    body["reason"].as_str().unwrap_or("no reason given")
                )))
            }
        }
        Err(e) if e.is_connect() => {
            // Nothing listens: hookd is stopped, so its data directory can be read directly
            // (if it is in use after all, the store's lock refuses and says so).
            offline(&config.data_dir, &to)
        }
        Err(e) => Err(fail(format!("cannot reach hookd at {url}: {e}"))),
    }
}

fn offline(data_dir: &Path, to: &Path) -> Result<String, Failure> {
    let src = db_dir(data_dir);
    let summary = backup::copy_data_dir(data_dir, to, |db| backup::backup_offline(&src, db))
        .map_err(|e| {
            fail(format!(
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

/// `hookd verify-data DIR`: the counts and problems, and whether it is consistent.
pub fn verify(dir: &Path) -> Result<(String, bool), Failure> {
    let report = check::check(&db_dir(dir))
        .map_err(|e| fail(format!("cannot check {}: {e}", dir.display())))?;
    let mut text = String::new();
    for (tree, n) in &report.counts {
        text.push_str(&format!("{tree:>13}: {n}\n"));
    }
    for p in &report.problems {
        text.push_str(&format!("problem: {p}\n"));
    }
    if report.consistent() {
        text.push_str("consistent\n");
    } else {
        text.push_str(&format!("{} problems found\n", report.problem_count));
    }
    Ok((text, report.consistent()))
}

/// `hookd compact`: rewrites the stopped store into a fresh one.
pub fn compact(data_dir: &Path) -> Result<String, Failure> {
    let db = db_dir(data_dir);
    let (before, after) = backup::compact(&db).map_err(|e| {
        fail(format!(
            "cannot compact {} (is hookd still running on it?): {e}",
            db.display()
        ))
    })?;
    Ok(format!(
        "compacted {}: {} MB before, {} MB after",
        db.display(),
        before / 1_000_000,
        after / 1_000_000
    ))
}
