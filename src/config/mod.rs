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
mod build;
pub mod defaults;
mod endpoints;
mod env;
mod error;
mod fasten;
mod processing;
mod raw;
mod retention;
#[cfg(test)]
mod tests;
mod types;

pub use env::secrets_var;
pub use error::{ConfigError, ConfigErrorKind, Invalid, ScheduleError};
pub use types::{
    Admin, Config, DownloadHost, Endpoint, Fasten, OnRevoke, Processing, ProcessorConfig, Profile,
    Receive, Retention,
};

use error::Origin;
use raw::{RawConfig, RawEndpoint};
use std::collections::HashMap;
use std::path::Path;

impl Config {
    /// Loads `file` (if given) and applies `env` over it. `env` is passed in so tests do not
    /// depend on the process environment.
    pub fn load(file: Option<&Path>, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let (mut raw, file_name) = match file {
            Some(path) => (read(path)?, path.display().to_string()),
            None => (RawConfig::default(), "(embedded defaults)".to_string()),
        };
        // Made up before the environment is applied, so HOOKD_SECRETS_DEFAULT can reach it.
        let default_endpoint = raw.endpoints.is_empty();
        if default_endpoint {
            raw.endpoints.push(RawEndpoint::named("default"));
        }
        let mut origin = Origin::new(file_name);
        env::apply(&mut raw, env, &mut origin)?;
        let mut config = build::build(raw, default_endpoint, &origin)?;
        config.source = file.map(Path::to_path_buf);
        Ok(config)
    }

    /// The process environment's `HOOKD_*` variables.
    pub fn process_env() -> HashMap<String, String> {
        std::env::vars()
            .filter(|(k, _)| k.starts_with("HOOKD_"))
            .collect()
    }
}

fn read(path: &Path) -> Result<RawConfig, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigErrorKind::Read {
        file: file.clone(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| {
        ConfigErrorKind::Parse {
            file,
            message: e.to_string().trim_end().replace('\n', "\n  "),
        }
        .into()
    })
}
