//! The `[admin]` section: the admin listener's tokens, UI password hash, session length and
//! the directory API backups go into.

use super::build::read_secret_file;
use super::defaults;
use super::error::{ConfigError, Invalid, Origin, Problems};
use super::raw::RawAdmin;
use super::types::Admin;

/// Builds and checks `[admin]`.
pub(super) fn build(raw: RawAdmin, origin: &Origin) -> Result<Admin, ConfigError> {
    let mut problems = Problems::default();
    let token = match (raw.token, raw.token_file) {
        (Some(_), Some(_)) => {
            problems.add(origin.err(
                "admin.token_file",
                Invalid::Exclusive("either admin.token or admin.token_file"),
            ));
            None
        }
        (Some(t), None) => Some(t),
        (None, Some(path)) => problems
            .ok(read_secret_file(origin, "admin.token_file", &path))
            .map(|t| t.trim().to_owned()),
        (None, None) => None,
    };
    if let Some(t) = &token {
        problems.ok(check_token(t).map_err(|m| origin.err("admin.token", m)));
    }
    if let Some(t) = &raw.metrics_token {
        problems.ok(check_token(t).map_err(|m| origin.err("admin.metrics_token", m)));
    }
    let export_token = match (raw.export_token, raw.export_token_file) {
        (Some(_), Some(_)) => {
            problems.add(origin.err(
                "admin.export_token_file",
                Invalid::Exclusive("either admin.export_token or admin.export_token_file"),
            ));
            None
        }
        (Some(t), None) => Some(t),
        (None, Some(path)) => problems
            .ok(read_secret_file(origin, "admin.export_token_file", &path))
            .map(|t| t.trim().to_owned()),
        (None, None) => None,
    };
    if let Some(t) = &export_token {
        problems.ok(check_token(t).map_err(|m| origin.err("admin.export_token", m)));
        // A request is told apart by its token alone: the same one cannot open two sets.
        for (other, name) in [
            (&token, "admin.token"),
            (&raw.metrics_token, "admin.metrics_token"),
        ] {
            if other.as_deref() == Some(t.as_str()) {
                problems.add(origin.err("admin.export_token", Invalid::SameToken(name)));
            }
        }
    }
    let password_hash = raw.password_hash.map(|h| h.trim().to_owned());
    if let Some(h) = &password_hash {
        problems.ok(check_password_hash(h).map_err(|m| origin.err("admin.password_hash", m)));
    }
    let session_ttl_secs = raw.session_ttl_secs.unwrap_or(defaults::SESSION_TTL_SECS);
    if session_ttl_secs == 0 {
        problems.add(origin.err("admin.session_ttl_secs", Invalid::Zero));
    }
    problems.finish(Some(Admin {
        token,
        metrics_token: raw.metrics_token,
        export_token,
        password_hash,
        session_ttl_secs,
        backup_dir: raw.backup_dir,
    }))
}

fn check_password_hash(hash: &str) -> Result<(), Invalid> {
    match argon2::PasswordHash::new(hash) {
        Ok(h) if h.algorithm.as_str().starts_with("argon2") => Ok(()),
        _ => Err(Invalid::NotArgon2),
    }
}

fn check_token(token: &str) -> Result<(), Invalid> {
    if token.len() < 16 {
        return Err(Invalid::ShortToken);
    }
    Ok(())
}
