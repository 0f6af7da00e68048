//! `hookd check-config FILE`: load a configuration file as `serve` would and say whether it
//! is valid.

use super::{done, load_file, Outcome};
use std::path::Path;

/// Exit 0 with the endpoint count when `file` is valid; exit 2 naming the key at fault.
pub(super) fn run(file: &Path) -> Outcome {
    let config = load_file(Some(file))?;
    let n = config.endpoints.len();
    done(format_args!(
        "{}: valid ({n} endpoint{})",
        file.display(),
        if n == 1 { "" } else { "s" }
    ))
}
