//! `hookd check-config FILE`: load a configuration file as `serve` would and say whether it
//! is valid.

use super::{done, Failure, Outcome};
use crate::config::Config;
use std::path::Path;

/// Exit 0 with the endpoint count when `file` is valid (warnings printed first); exit 2
/// with every error, one line each, naming the key at fault.
pub(super) fn run(file: &Path) -> Outcome {
    let config = match Config::load(Some(file), &Config::process_env()) {
        Ok(config) => config,
        Err(e) => {
            for error in e.errors() {
                eprintln!("hookd: error: {error}");
            }
            let n = e.errors().len();
            return Err(Failure::Usage(format!(
                "{}: {n} error{}",
                file.display(),
                if n == 1 { "" } else { "s" }
            )));
        }
    };
    for warning in config.warnings() {
        eprintln!("hookd: warning: {warning}");
    }
    let n = config.endpoints.len();
    done(format_args!(
        "{}: valid ({n} endpoint{})",
        file.display(),
        if n == 1 { "" } else { "s" }
    ))
}
