//! The `[admin]` section: the admin listener's tokens, UI password hash, session length and
//! the directory API backups go into.

use super::build::read_secret_file;
use super::defaults;
use super::error::{ConfigError, Invalid, Origin};
use super::raw::RawAdmin;
use super::types::Admin;

/// Builds and checks `[admin]`.
pub(super) fn build(raw: RawAdmin, origin: &Origin) -> Result<Admin, ConfigError> {
    let token = match (raw.token, raw.token_file) {
        (Some(_), Some(_)) => {
            return Err(origin.err(
                "admin.token_file",
                Invalid::Exclusive("either admin.token or admin.token_file"),
            ))
        }
        (Some(t), None) => Some(t),
        (None, Some(path)) => Some(
            read_secret_file(origin, "admin.token_file", &path)?
                .trim()
                .to_owned(),
        ),
        (None, None) => None,
    };
    if let Some(t) = &token {
        check_token(t).map_err(|m| origin.err("admin.token", m))?;
    }
    if let Some(t) = &raw.metrics_token {
        check_token(t).map_err(|m| origin.err("admin.metrics_token", m))?;
    }
    let password_hash = raw.password_hash.map(|h| h.trim().to_owned());
    if let Some(h) = &password_hash {
        check_password_hash(h).map_err(|m| origin.err("admin.password_hash", m))?;
    }
    let session_ttl_secs = raw.session_ttl_secs.unwrap_or(defaults::SESSION_TTL_SECS);
    if session_ttl_secs == 0 {
        return Err(origin.err("admin.session_ttl_secs", Invalid::Zero));
    }
    Ok(Admin {
        token,
        metrics_token: raw.metrics_token,
        password_hash,
        session_ttl_secs,
        backup_dir: raw.backup_dir,
    })
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
