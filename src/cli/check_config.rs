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
            let n = e.errors().len() as u64;
            return Err(Failure::Usage(format!(
                "{}: {}",
                file.display(),
                crate::text::count(n, "error", "errors")
            )));
        }
    };
    let warnings = config.warnings();
    for warning in &warnings {
        eprintln!("hookd: warning: {warning}");
    }
    let heed = match warnings.len() as u64 {
        0 => String::new(),
        w => format!(
            ", with {} to read",
            crate::text::count(w, "warning", "warnings")
        ),
    };
    done(format_args!(
        "{}: valid{heed} ({})",
        file.display(),
        crate::text::count(config.endpoints.len() as u64, "endpoint", "endpoints")
    ))
}
