//! `hookd check-config FILE`: load a configuration file as `serve` would and say whether it
//! is valid.

use super::{done, Failure, Outcome};
use crate::config::Config;
use std::path::Path;

/// Exit 0 with the endpoint count when `file` is valid (warnings printed first, and counted
/// on the verdict's line: a file that starts but will not do what was meant is not plainly
/// "valid"); exit 2 with every error, one line each, naming the key at fault.
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
    let warnings = config.warnings();
    for warning in &warnings {
        eprintln!("hookd: warning: {warning}");
    }
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let n = config.endpoints.len();
    let heed = match warnings.len() {
        0 => String::new(),
        w => format!(", with {w} warning{} to read", plural(w)),
    };
    done(format_args!(
        "{}: valid{heed} ({n} endpoint{})",
        file.display(),
        plural(n)
    ))
}
