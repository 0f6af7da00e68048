//! `POST /api/backup?to=DIR`: an online backup of the running hookd into a new directory on
//! this machine (what `hookd backup --to DIR` asks for). Receiving goes on meanwhile; see
//! `store::backup` for how the copy stays consistent without pausing the writer.

use super::{Admin, ApiError};
use crate::store::backup;
use http::StatusCode;
use std::path::PathBuf;
use warp::Reply;

/// Handles `/api/backup`.
pub async fn handle(admin: &Admin, query: &str) -> Result<warp::reply::Response, ApiError> {
    let to = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "to")
        .map(|(_, v)| PathBuf::from(v.into_owned()))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "`to` must name the new backup directory",
            )
        })?;
    if !to.is_absolute() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "`to` must be an absolute path",
        ));
    }
    if to.exists() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "{} already exists; a backup goes into a new directory",
                to.display()
            ),
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
