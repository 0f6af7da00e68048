//! `POST /api/backup?to=NAME`: an online backup of the running hookd into the new directory
//! `NAME` under `admin.backup_dir` (what `hookd backup --to DIR` asks for). Receiving goes on
//! meanwhile; see `store::backup` for how the copy stays consistent without pausing the
//! writer.
//!
//! The API never takes a path: whoever holds the token could otherwise make the service
//! create directories wherever it may write, or learn from the errors which paths exist. And
//! no backup goes inside the data directory, which a backup copies: it would copy itself.

use super::{Admin, ApiError};
use crate::store::backup;
use http::StatusCode;
use std::path::{Component, Path, PathBuf};
use warp::Reply;

/// Longest backup name the API takes.
const MAX_NAME: usize = 100;

/// Handles `/api/backup`.
pub async fn handle(admin: &Admin, query: &str) -> Result<warp::reply::Response, ApiError> {
    // Before anything is made: a store that cannot be copied into a directory says so.
    if let Some(reason) = admin.store.backup_refusal() {
        return Err(ApiError::new(StatusCode::CONFLICT, reason));
    }
    let Some(dir) = &admin.config.admin.backup_dir else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "backups over the API are off: set admin.backup_dir to the directory they go into \
             (or stop hookd and run `hookd backup --to DIR`)",
        ));
    };
    let name = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "to")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if !plain_name(&name) {
        return Err(ApiError::bad_request(format!(
            "`to` must be the name of a new directory under admin.backup_dir: 1-{MAX_NAME} \
             letters, digits, '-', '_' or '.', not starting with '.' (no '/')"
        )));
    }
    let base = std::fs::canonicalize(dir).map_err(|e| {
        tracing::error!(backup_dir = %dir.display(), error = %e, "admin.backup_dir unusable");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("admin.backup_dir ({}) cannot be used: {e}", dir.display()),
        )
    })?;
    outside_data_dir(&admin.config.data_dir, &base).map_err(|reason| {
        ApiError::new(StatusCode::CONFLICT, format!("admin.backup_dir: {reason}"))
    })?;
    let to = base.join(&name);
    if to.symlink_metadata().is_ok() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("backup `{name}` already exists under admin.backup_dir; a backup goes into a new directory"),
        ));
    }
    let Ok(_one) = admin.backup_running.try_lock() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "a backup is already running",
        ));
    };
    let store = admin.store.clone();
    let data_dir = admin.config.data_dir.clone();
    let dest = to.clone();
    let started = std::time::Instant::now();
    let result = tokio::task::spawn_blocking(move || {
        backup::copy_data_dir(&data_dir, &dest, |db| store.backup_to(db))
    })
    .await;
    let summary = match result {
        Ok(Ok(summary)) => summary,
        Ok(Err(e)) => {
            tracing::error!(to = %to.display(), error = %e, "backup failed");
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("backup failed: {e}"),
            ));
        }
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("backup task failed: {e}"),
            ))
        }
    };
    let millis = started.elapsed().as_millis() as u64;
    tracing::info!(to = %to.display(), events = summary.events, millis, "backup written");
    let body = serde_json::json!({
        "status": "ok",
        "to": to,
        "millis": millis,
        "summary": summary,
    });
    Ok(warp::reply::json(&body).into_response())
}

/// Whether `name` can only name a new entry of the backup directory itself.
fn plain_name(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Refuses a backup destination inside the data directory (or the data directory itself),
/// with the reason. Both are resolved first: symlinks, `..` and relative paths cannot hide
/// that one is below the other. `dest` need not exist yet; the part of it that does is
/// resolved on disk, the rest by its names.
pub fn outside_data_dir(data_dir: &Path, dest: &Path) -> Result<(), InsideDataDir> {
    let data = resolve(data_dir);
    let dest = resolve(dest);
    if dest.starts_with(&data) {
        return Err(InsideDataDir { dest, data });
    }
    Ok(())
}

/// A backup destination inside the data directory (both paths resolved).
#[derive(Debug, thiserror::Error)]
#[error("{} is inside the data directory {}: a backup there would copy itself; choose a directory outside it", dest.display(), data.display())]
pub struct InsideDataDir {
    dest: PathBuf,
    data: PathBuf,
}

/// `path` made absolute, with its longest existing prefix canonicalized and the rest
/// normalized by name (what does not exist yet cannot be a symlink).
fn resolve(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let parts: Vec<Component> = absolute.components().collect();
    for existing in (1..=parts.len()).rev() {
        let prefix: PathBuf = parts[..existing].iter().collect();
        let Ok(mut base) = std::fs::canonicalize(&prefix) else {
            continue;
        };
        for part in &parts[existing..] {
            match part {
                Component::ParentDir => {
                    base.pop();
                }
                Component::Normal(name) => base.push(name),
                _ => {}
            }
        }
        return base;
    }
    absolute // not even the root resolves: compare it as written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_names_are_plain() {
        assert!(plain_name("2026-11-27"));
        assert!(plain_name("nightly_1.v2"));
        for bad in [
            "", ".", "..", "../x", "a/b", "/abs", ".hidden", "a\\b", "sp ace",
        ] {
            assert!(!plain_name(bad), "{bad:?}");
        }
        assert!(!plain_name(&"x".repeat(MAX_NAME + 1)));
    }

    #[test]
    fn destinations_inside_the_data_directory_are_refused_however_written() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir_all(data.join("db")).unwrap();
        std::os::unix::fs::symlink(&data, tmp.path().join("link")).unwrap();
        for inside in [
            data.clone(),
            data.join("backup"),
            data.join("db/new/deeper"),
            tmp.path().join("link/backup"),
            tmp.path().join("elsewhere/../data/backup"),
            data.join("new/../../data/x"),
        ] {
            let err = outside_data_dir(&data, &inside).unwrap_err();
            assert!(
                err.to_string().contains("inside the data directory"),
                "{err}"
            );
        }
        for outside in [
            tmp.path().join("backups/one"),
            tmp.path().join("data-copy"),
            data.join("../sibling"),
            data.join("new/../../other"),
        ] {
            assert!(
                outside_data_dir(&data, &outside).is_ok(),
                "{}",
                outside.display()
            );
        }
    }
}
