//! `HOOKD_*` environment variables: each one sets a key of the raw configuration, over the
//! file, before anything is validated. Errors about such a value then name the variable.
//!
//! Variables the command line reads itself (`HOOKD_CONFIG`, `HOOKD_LOG`,
//! `HOOKD_SHOW_SECRET`) are not configuration and are ignored here, like any unknown
//! `HOOKD_` variable.

use super::error::{ConfigError, ConfigErrorKind, Invalid, Origin, Problems};
use super::raw::RawConfig;
use std::collections::HashMap;
use std::path::PathBuf;

/// The environment variable that carries an endpoint's secrets: `HOOKD_SECRETS_<NAME>`, the
/// name upper-cased with '-' as '_'.
pub fn secrets_var(endpoint: &str) -> String {
    format!(
        "HOOKD_SECRETS_{}",
        endpoint.to_ascii_uppercase().replace('-', "_")
    )
}

/// Sets the keys `env` names in `raw`, recording in `origin` which variable set which key;
/// a variable that cannot be read is noted in `problems` and sets nothing.
pub(super) fn apply(
    raw: &mut RawConfig,
    env: &HashMap<String, String>,
    origin: &mut Origin,
    problems: &mut Problems,
) {
    // In a fixed order, so the problems are reported the same way every time.
    let mut vars: Vec<_> = env.iter().collect();
    vars.sort();
    for (var, value) in vars {
        if let Some(Some(key)) = problems.ok(apply_one(raw, var, value)) {
            origin.set_by(key, var);
        }
    }
}

/// Applies one variable; returns the key it set, or `None` for a variable that is not
/// configuration.
fn apply_one(raw: &mut RawConfig, var: &str, value: &str) -> Result<Option<String>, ConfigError> {
    let trimmed = || Some(value.trim().to_owned());
    let key = match var {
        "HOOKD_DATA_DIR" => {
            raw.data_dir = Some(PathBuf::from(value));
            "data_dir"
        }
        "HOOKD_LISTEN" => {
            raw.listen = Some(value.to_owned());
            "listen"
        }
        "HOOKD_ADMIN_LISTEN" => {
            raw.admin_listen = Some(value.to_owned());
            "admin_listen"
        }
        "HOOKD_RETENTION_DAYS" => {
            raw.retention_days = Some(number(var, "retention_days", value)?);
            "retention_days"
        }
        "HOOKD_WORKERS" => {
            raw.processing.workers = Some(number(var, "processing.workers", value)?);
            "processing.workers"
        }
        "HOOKD_ADMIN_TOKEN" => {
            // The variable replaces a token_file, but a file that sets both is still refused.
            if raw.admin.token.is_none() {
                raw.admin.token_file = None;
            }
            raw.admin.token = trimmed();
            "admin.token"
        }
        "HOOKD_ADMIN_PASSWORD_HASH" => {
            raw.admin.password_hash = trimmed();
            "admin.password_hash"
        }
        "HOOKD_FASTEN_PRIVATE_KEY" => {
            raw.fasten.private_key = trimmed();
            "fasten.private_key_file"
        }
        _ if var.starts_with("HOOKD_SECRETS_") => return secrets(raw, var, value).map(Some),
        _ => return Ok(None),
    };
    Ok(Some(key.to_owned()))
}

/// `HOOKD_SECRETS_<NAME>`: the endpoint's whole list of secrets (comma, space or newline
/// separated), instead of those in the file.
fn secrets(raw: &mut RawConfig, var: &str, value: &str) -> Result<String, ConfigError> {
    let (i, endpoint) = raw
        .endpoints
        .iter_mut()
        .enumerate()
        .find(|(_, e)| secrets_var(&e.name) == var)
        .ok_or_else(|| variable_err(var, Invalid::NoSuchEndpoint))?;
    endpoint.secrets = Some(
        value
            .split([',', ' ', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    );
    endpoint.secrets_file = None;
    Ok(format!("endpoints[{i}].secrets"))
}

/// A whole number for `key`, of type `T`; an error names the variable with the key.
fn number<T: TryFrom<u64>>(var: &str, key: &str, value: &str) -> Result<T, ConfigError> {
    let named = format!("{var} (key `{key}`)");
    let n: u64 = value
        .trim()
        .parse()
        .map_err(|_| variable_err(&named, Invalid::NotWholeNumber))?;
    T::try_from(n).map_err(|_| variable_err(&named, Invalid::TooLarge))
}

fn variable_err(var: &str, problem: Invalid) -> ConfigError {
    ConfigErrorKind::Variable {
        var: var.to_owned(),
        problem,
    }
    .into()
}
