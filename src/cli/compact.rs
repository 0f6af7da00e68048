//! `hookd compact`: rewrite a stopped data directory's store into a fresh one, giving back
//! the disk space sled keeps after deletions.

use super::{db_dir, done, Failure, Outcome};
use crate::store::backup;
use std::path::Path;

/// Compacts the store in `data_dir` and prints its size before and after.
pub(super) fn run(data_dir: &Path) -> Outcome {
    let db = db_dir(data_dir)?;
    let (before, after) = backup::compact(&db).map_err(|e| {
        Failure::Failed(format!(
            "cannot compact {} (is hookd still running on it?): {e}",
            db.display()
        ))
    })?;
    done(format_args!(
        "compacted {}: {} MB before, {} MB after",
        db.display(),
        before / 1_000_000,
        after / 1_000_000
    ))
}
