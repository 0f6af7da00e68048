//! `hookd copy-store --from DATA_DIR --to URL`: moves an appliance's history into a
//! cluster's PostgreSQL database (see docs/cluster.md). The appliance must be stopped (its
//! store is opened, and sled allows one process); the database must hold no hookd data yet.

use super::{db_dir, done, Failure, Outcome};
use crate::store::pg::PgOptions;
use crate::store::Store;
use std::path::{Path, PathBuf};

/// The connection string: `--to`, or the file `--to-file` names (a URL holds a password,
/// and a command line is visible to every user of the machine).
fn url(to: Option<String>, to_file: Option<PathBuf>) -> Result<String, Failure> {
    match (to, to_file) {
        (Some(url), None) => Ok(url),
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map(|s| s.trim().to_string())
            .map_err(|e| Failure::Usage(format!("cannot read --to-file {}: {e}", path.display()))),
        _ => Err(Failure::Usage(
            "give the database as --to postgres://... or --to-file FILE".into(),
        )),
    }
}

/// The URL with a longer `tcp_user_timeout` than a serving hookd's 20 s (unless it sets
/// one): a one-off copy sends whole payloads in large batches, and a database busy for a
/// while (a checkpoint) must not cut it off halfway.
fn patient(url: String) -> String {
    if url.contains("tcp_user_timeout") || !url.starts_with("postgres") {
        return url;
    }
    let joint = if url.contains('?') { '&' } else { '?' };
    format!("{url}{joint}tcp_user_timeout=120")
}

pub(super) fn run(
    from: &Path,
    to: Option<String>,
    to_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
) -> Outcome {
    let db = db_dir(from)?;
    let options = PgOptions {
        url: patient(url(to, to_file)?),
        pool_size: 2,
        ca_file,
        lease_ms: 60_000,
        instance: "copy-store".into(),
    };
    let source = Store::open(&db, 64).map_err(|e| {
        Failure::Failed(format!(
            "cannot open {} (is hookd still running on it?): {e}",
            db.display()
        ))
    })?;
    // The store's messages name the configuration's key; here it is an option.
    let target = Store::open_postgres(&options).map_err(|e| {
        Failure::Failed(format!(
            "cannot use the database: {}",
            e.to_string().replace("postgres.ca_file", "--ca-file")
        ))
    })?;
    let report = source
        .copy_to_postgres(&target, |what, n| eprintln!("copied {n} {what}"))
        .map_err(|e| Failure::Failed(format!("copy-store stopped: {e}")))?;
    // What is left to do by hand: the export files, when there are any, and the secrets.
    let exports = from.join("exports");
    let files = if exports.is_dir() {
        format!(
            "copy {} into the cluster's exports_dir, and ",
            exports.display()
        )
    } else {
        String::new()
    };
    done(format_args!(
        "copied {} into the database: {} deliveries, {} events ({} attempts), {} Fasten \
         connections ({} exports, {} index entries); {files}give the cluster's [[endpoints]] \
         the appliance's endpoint secrets (from its configuration, or \
         data_dir/secrets/default.secret for an appliance started with embedded defaults)",
        from.display(),
        report.deliveries,
        report.events,
        report.attempts,
        report.connections,
        report.exports,
        report.resources
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_copy_waits_longer_on_a_busy_database_unless_the_url_says() {
        assert_eq!(
            super::patient("postgres://db/h".into()),
            "postgres://db/h?tcp_user_timeout=120"
        );
        assert_eq!(
            super::patient("postgres://db/h?sslmode=require".into()),
            "postgres://db/h?sslmode=require&tcp_user_timeout=120"
        );
        let set = "postgres://db/h?tcp_user_timeout=0";
        assert_eq!(super::patient(set.into()), set);
        let config = crate::store::pg::parse_url(&super::patient("postgres://db/h".into()));
        assert_eq!(
            config.unwrap().get_tcp_user_timeout().map(|d| d.as_secs()),
            Some(120)
        );
    }
}
