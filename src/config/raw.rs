//! The configuration file as written: serde structs where every key is optional, so a
//! missing key can take its default and an unknown one is refused with its name.
//!
//! Environment variables are applied to these structs (see `env`) before anything is
//! checked, so each value is validated once, wherever it came from.

use super::types::Profile;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) data_dir: Option<PathBuf>,
    pub(super) listen: Option<String>,
    pub(super) admin_listen: Option<String>,
    pub(super) retention_days: Option<u32>,
    pub(super) cache_mb: Option<u64>,
    #[serde(default)]
    pub(super) retention: RawRetention,
    #[serde(default)]
    pub(super) admin: RawAdmin,
    #[serde(default)]
    pub(super) processing: RawProcessing,
    #[serde(default)]
    pub(super) receive: RawReceive,
    #[serde(default)]
    pub(super) endpoints: Vec<RawEndpoint>,
    #[serde(default)]
    pub(super) fasten: RawFasten,
    pub(super) alerts: Option<RawAlerts>,
    pub(super) push: Option<RawPush>,
    #[serde(default)]
    pub(super) store: RawStore,
    pub(super) postgres: Option<RawPostgres>,
}

/// `[store]`: which store hookd uses.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    pub(super) kind: Option<String>,
}

/// `[postgres]`: cluster mode's database.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPostgres {
    pub(super) url: Option<String>,
    pub(super) url_file: Option<PathBuf>,
    pub(super) pool_size: Option<u32>,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) lease_secs: Option<u64>,
    pub(super) instance: Option<String>,
}

/// `[alerts]`: absent means off.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlerts {
    pub(super) url: Option<String>,
    pub(super) secret: Option<String>,
    pub(super) secret_file: Option<PathBuf>,
    pub(super) oldest_queued_secs: Option<u64>,
    pub(super) min_interval_secs: Option<u64>,
    pub(super) timeout_secs: Option<u64>,
}

/// `[push]`: absent means off.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPush {
    pub(super) url: Option<String>,
    pub(super) secret: Option<String>,
    pub(super) secret_file: Option<PathBuf>,
    pub(super) timeout_secs: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetention {
    pub(super) schedule: Option<String>,
    pub(super) export_retention_days: Option<u32>,
    pub(super) batch_size: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub(super) token: Option<String>,
    pub(super) token_file: Option<PathBuf>,
    pub(super) metrics_token: Option<String>,
    pub(super) export_token: Option<String>,
    pub(super) export_token_file: Option<PathBuf>,
    pub(super) password_hash: Option<String>,
    pub(super) session_ttl_secs: Option<u64>,
    pub(super) backup_dir: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProcessing {
    pub(super) workers: Option<usize>,
    pub(super) max_rate_per_sec: Option<f64>,
    pub(super) max_attempts: Option<u32>,
    pub(super) retry_schedule_secs: Option<Vec<u64>>,
    pub(super) retry_jitter: Option<f64>,
    pub(super) attempt_timeout_secs: Option<u64>,
    pub(super) shutdown_grace_secs: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReceive {
    pub(super) queue_high_water: Option<u64>,
    pub(super) log_body_bytes: Option<usize>,
    pub(super) rejected_body_bytes: Option<usize>,
    pub(super) rejected_log_per_sec: Option<f64>,
    pub(super) max_connections: Option<usize>,
    pub(super) header_read_timeout_secs: Option<u64>,
    pub(super) body_timeout_secs: Option<u64>,
    pub(super) body_min_bytes_per_sec: Option<u64>,
    pub(super) body_budget_bytes: Option<usize>,
    pub(super) log_header_bytes: Option<usize>,
    pub(super) rejected_log_bytes_per_sec: Option<f64>,
    pub(super) redact_headers: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEndpoint {
    pub(super) name: String,
    #[serde(default = "default_profile")]
    pub(super) profile: Profile,
    pub(super) secrets: Option<Vec<String>>,
    pub(super) secrets_file: Option<PathBuf>,
    pub(super) events: Option<Vec<String>>,
    pub(super) tolerance_secs: Option<u64>,
    pub(super) max_body_bytes: Option<usize>,
    pub(super) processor: Option<String>,
    pub(super) forward: Option<RawForward>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawForward {
    pub(super) url: String,
    pub(super) secret: Option<String>,
    pub(super) secret_file: Option<PathBuf>,
    pub(super) timeout_secs: Option<u64>,
}

fn default_profile() -> Profile {
    Profile::Standard
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFasten {
    pub(super) api_base: Option<String>,
    pub(super) public_id: Option<String>,
    pub(super) private_key_file: Option<PathBuf>,
    /// Only from HOOKD_FASTEN_PRIVATE_KEY: the file never holds the key itself.
    #[serde(skip)]
    pub(super) private_key: Option<String>,
    pub(super) request_export_on_connection: Option<bool>,
    pub(super) download_hosts: Option<Vec<String>>,
    pub(super) max_export_bytes: Option<u64>,
    pub(super) on_revoke: Option<String>,
    pub(super) exports_dir: Option<PathBuf>,
}

impl RawEndpoint {
    /// An endpoint with nothing but a name: what hookd serves when none is configured.
    pub(super) fn named(name: &str) -> RawEndpoint {
        RawEndpoint {
            name: name.to_owned(),
            profile: default_profile(),
            secrets: None,
            secrets_file: None,
            events: None,
            tolerance_secs: None,
            max_body_bytes: None,
            processor: None,
            forward: None,
        }
    }
}
