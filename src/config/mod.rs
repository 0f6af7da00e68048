//! Configuration: embedded defaults, then a TOML file, then `HOOKD_*` environment variables.
//!
//! The file is read into raw structs (`raw`), the environment is applied over them (`env`),
//! and only then is every value checked, once, while the immutable [`Config`] is built (one
//! file per section). Every error names the key and the file, and the variable when the value
//! came from one.
//!
//! Only the command line reads the environment besides this module, for what is not
//! configuration: `HOOKD_CONFIG` (which file to load, so it cannot be in one), `HOOKD_LOG`
//! (the log filter, needed before the config is loaded so that loading can log), and
//! `HOOKD_SHOW_SECRET` (print a newly generated secret even when stdout is not a terminal: a
//! property of the terminal, not of the service). `hookd simulate` also takes its stand-in's
//! key from `HOOKD_FASTEN_PRIVATE_KEY`, the same variable the service reads.

mod admin;
mod alerts;
mod build;
pub mod defaults;
mod endpoints;
mod env;
mod error;
mod fasten;
mod plain;
mod processing;
#[cfg(test)]
mod proptests;
mod raw;
mod read;
mod retention;
mod store;
#[cfg(test)]
mod tests;
mod types;
mod warnings;

pub use env::secrets_var;
pub use error::{ConfigError, ConfigErrorKind, Invalid, ScheduleError};
pub use store::StoreKind;
pub use types::{
    shown_url, Admin, Alerts, Config, DownloadHost, Endpoint, Fasten, OnRevoke, Processing,
    ProcessorConfig, Profile, Push, Receive, Retention,
};

use error::{ConfigErrorKind as Kind, Origin, Problems};
use raw::{RawConfig, RawEndpoint};
use std::collections::HashMap;
use std::path::Path;

/// Loads `text` as a config file with `env` over it: other modules' tests write a config the
/// way a user does and read it the same way. The file is gone once this returns.
#[cfg(test)]
pub(crate) fn load_text(text: &str, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("hookd.toml");
    std::fs::write(&path, text).expect("the config file");
    Config::load(Some(&path), env)
}

impl Config {
    /// Loads `file` (if given) and applies `env` over it. `env` is passed in so tests do not
    /// depend on the process environment. The error holds every problem found, not only the
    /// first.
    pub fn load(file: Option<&Path>, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let mut problems = Problems::default();
        let (raw, read, file_name) = match file {
            Some(path) => {
                let mut read = read::read(path)?;
                for problem in std::mem::take(&mut read.problems) {
                    problems.add(problem.into());
                }
                (read.raw.take(), Some(read), path.display().to_string())
            }
            None => (
                Some(RawConfig::default()),
                None,
                "(embedded defaults)".to_string(),
            ),
        };
        let Some(mut raw) = raw else {
            return problems.finish(None);
        };
        // Made up before the environment is applied, so HOOKD_SECRETS_DEFAULT can reach it.
        let default_endpoint = raw.endpoints.is_empty();
        if default_endpoint {
            raw.endpoints.push(RawEndpoint::named("default"));
        }
        let mut origin = Origin::new(file_name);
        env::apply(&mut raw, env, &mut origin, &mut problems);
        let mut found = Problems::default();
        let config = found.ok(build::build(raw, default_endpoint, &origin));
        if let Some(read) = &read {
            // A key the file got wrong was left out: what validation says of it follows.
            found.retain(|e| !matches!(e, Kind::Value { key, .. } if read.touches(key)));
        }
        problems.append(found);
        problems.finish(config.map(|mut c| {
            c.source = file.map(Path::to_path_buf);
            c
        }))
    }

    /// The process environment's `HOOKD_*` variables.
    pub fn process_env() -> HashMap<String, String> {
        std::env::vars()
            .filter(|(k, _)| k.starts_with("HOOKD_"))
            .collect()
    }
}
