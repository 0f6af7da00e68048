//! The `[store]` and `[postgres]` sections: the embedded store (the default) or cluster
//! mode's PostgreSQL database, and how to reach it.

use super::build::read_secret_file;
use super::error::{ConfigError, Invalid, Origin, Problems};
use super::raw::{RawPostgres, RawStore};
use crate::store::pg::PgOptions;

/// Where hookd keeps its data.
#[derive(Debug, Clone, Default)]
pub enum StoreKind {
    /// The embedded sled store in `data_dir/db`.
    #[default]
    Sled,
    /// Cluster mode: one PostgreSQL database shared by every instance.
    Postgres(PgOptions),
}

const KINDS: &str = "sled, postgres";

/// Lease on a claimed event, default and bounds (seconds): long enough for a slow attempt's
/// instance to renew it (every third of it), short enough that another instance takes over
/// soon after a crash.
const LEASE_SECS: u64 = 60;

/// Builds and checks both sections together: `[postgres]` is required with `kind =
/// "postgres"` and refused without it (a database set up but not used is a mistake).
pub(super) fn build(
    store: RawStore,
    postgres: Option<RawPostgres>,
    origin: &Origin,
) -> Result<StoreKind, ConfigError> {
    let mut problems = Problems::default();
    let kind = store.kind.unwrap_or_else(|| "sled".into());
    let out = match (kind.as_str(), postgres) {
        ("sled", None) => Some(StoreKind::Sled),
        ("sled", Some(_)) => {
            problems.add(origin.err("store.kind", Invalid::PostgresUnused));
            None
        }
        ("postgres", None) => {
            problems.add(origin.err(
                "postgres.url",
                Invalid::Required("with store.kind = \"postgres\" (or postgres.url_file)"),
            ));
            None
        }
        ("postgres", Some(raw)) => problems
            .ok(postgres_options(raw, origin))
            .map(StoreKind::Postgres),
        (other, _) => {
            problems.add(origin.err(
                "store.kind",
                Invalid::NotOneOf {
                    value: other.to_string(),
                    choices: KINDS,
                },
            ));
            None
        }
    };
    problems.finish(out)
}

fn postgres_options(raw: RawPostgres, origin: &Origin) -> Result<PgOptions, ConfigError> {
    let mut problems = Problems::default();
    let url = match (raw.url, raw.url_file) {
        (Some(_), Some(_)) => {
            problems.add(origin.err(
                "postgres.url_file",
                Invalid::Exclusive("either postgres.url or postgres.url_file"),
            ));
            None
        }
        (Some(url), None) => Some(url),
        (None, Some(path)) => problems
            .ok(read_secret_file(origin, "postgres.url_file", &path))
            .map(|s| s.trim().to_string()),
        (None, None) => {
            problems.add(origin.err(
                "postgres.url",
                Invalid::Required("with store.kind = \"postgres\" (or postgres.url_file)"),
            ));
            None
        }
    };
    // Checked here so check-config finds a malformed string; the message never repeats it
    // (it holds the password).
    if let Some(url) = &url {
        if let Err(e) = crate::store::pg::parse_url(url) {
            problems.add(origin.err("postgres.url", Invalid::Connection(e.to_string())));
        }
    }
    let pool_size = raw.pool_size.unwrap_or(8);
    if !(2..=256).contains(&pool_size) {
        problems.add(origin.err("postgres.pool_size", Invalid::OutOfRange(2, 256)));
    }
    let lease_secs = raw.lease_secs.unwrap_or(LEASE_SECS);
    if !(5..=3600).contains(&lease_secs) {
        problems.add(origin.err("postgres.lease_secs", Invalid::OutOfRange(5, 3600)));
    }
    let instance = raw.instance.unwrap_or_else(default_instance);
    if instance.trim().is_empty() {
        problems.add(origin.err("postgres.instance", Invalid::Zero));
    }
    if let Some(path) = &raw.ca_file {
        if let Err(e) = std::fs::read(path) {
            problems.add(origin.err(
                "postgres.ca_file",
                Invalid::Unreadable {
                    path: path.clone(),
                    source: e,
                },
            ));
        }
    }
    let options = url.map(|url| PgOptions {
        url,
        pool_size: pool_size as usize,
        ca_file: raw.ca_file,
        lease_ms: lease_secs * 1000,
        instance,
    });
    problems.finish(options)
}

/// The machine's host name (and the process id, so two instances on one machine differ).
fn default_instance() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let host = if host.is_empty() {
        "hookd".into()
    } else {
        host
    };
    format!("{host}:{}", std::process::id())
}
