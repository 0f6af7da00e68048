//! `hookd verify-data DIR`: check that a stopped data directory's indexes agree.

use super::{db_dir, Failure, Outcome};
use crate::store::check;
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

/// Prints each tree's count and every problem found; exit 0 when consistent, 1 when not,
/// 2 when the store cannot be opened.
pub(super) fn run(dir: &Path) -> Outcome {
    let report = check::check(&db_dir(dir)?).map_err(|e| {
        Failure::Usage(format!(
            "cannot open {} (is hookd running on it?): {e}",
            dir.display()
        ))
    })?;
    if report.in_use {
        eprintln!(
            "hookd: warning: a running hookd holds {}: this checked a copy of a live store, \
             where a write in progress can look like a problem; stop hookd, or check a backup",
            dir.display()
        );
    }
    let mut text = String::new();
    for (tree, n) in &report.counts {
        let _ = writeln!(text, "{tree:>13}: {n}");
    }
    let _ = writeln!(text, "{:>13}: {}", "record bytes", report.record_bytes);
    for p in &report.problems {
        let _ = writeln!(text, "problem: {p}");
    }
    if report.consistent() {
        text.push_str("consistent\n");
    } else {
        let problems = crate::text::count(report.problem_count as u64, "problem", "problems");
        let _ = writeln!(text, "{problems} found");
    }
    print!("{text}");
    Ok(if report.consistent() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
