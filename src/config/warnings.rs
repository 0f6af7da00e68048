//! Warnings: settings that are valid, so hookd starts, but that will not do all the operator
//! likely wants. `check-config` prints them and `serve` logs them at start-up.

use super::types::{Config, ProcessorConfig};

impl Config {
    /// What is valid but likely not what was meant, each naming the file and the key.
    pub fn warnings(&self) -> Vec<String> {
        let file = self.source.as_ref().map_or_else(
            || "(embedded defaults)".to_owned(),
            |p| p.display().to_string(),
        );
        let mut warnings = Vec::new();
        let fasten: Vec<&str> = self
            .endpoints
            .iter()
            .filter(|e| e.processor == ProcessorConfig::Fasten)
            .map(|e| e.name.as_str())
            .collect();
        let missing = match (&self.fasten.public_id, &self.fasten.private_key) {
            (None, _) => Some("fasten.public_id"),
            (_, None) => Some("fasten.private_key_file"),
            _ => None,
        };
        // A warning, not an error: the endpoint still verifies, stores and records every
        // event, so nothing Fasten sends is lost; only the API calls (requesting and
        // downloading exports) fail, each attempt saying why, and can be replayed once the
        // credentials are set. Refusing to start would instead make Fasten's deliveries fail.
        if let (Some(key), false) = (missing, fasten.is_empty()) {
            warnings.push(format!(
                "{file}: key `{key}`: the fasten processor of endpoint{} `{}` has no Fasten API \
                 credentials (set fasten.public_id, and fasten.private_key_file or \
                 HOOKD_FASTEN_PRIVATE_KEY): events are received and stored, but exports cannot \
                 be requested or downloaded until then (replay those events afterwards)",
                if fasten.len() == 1 { "" } else { "s" },
                fasten.join("`, `"),
            ));
        }
        // Cluster mode keeps the export index in the database, but the files where
        // `exports_dir` says. Valid for a single instance on PostgreSQL; with two, an export
        // stored by one is listed by both and can be read through one only.
        if matches!(self.store, super::StoreKind::Postgres(_))
            && !fasten.is_empty()
            && self.fasten.exports_dir.is_none()
        {
            warnings.push(format!(
                "{file}: key `fasten.exports_dir`: not set in cluster mode, so this instance \
                 keeps Fasten export files in its own data_dir/exports; with more than one \
                 instance, set it to a directory every instance shares (NFS, a shared volume), \
                 or an export stored by one is not readable through the others"
            ));
        }
        // A signature's timestamp is the sender's clock at signing; it reaches hookd a moment
        // later, from a clock that is never exactly the same. A window of a few seconds
        // refuses genuine deliveries whenever either is a little off.
        for (i, e) in self.endpoints.iter().enumerate() {
            if e.tolerance_secs < 5 {
                warnings.push(format!(
                    "{file}: key `endpoints[{i}].tolerance_secs`: {} s refuses every delivery \
                     signed more than {} s from this machine's clock, network delays and \
                     clock drift included (the Standard Webhooks default is 300)",
                    e.tolerance_secs, e.tolerance_secs
                ));
            }
        }
        // Online backups go only into backup_dir, and hookd does not make it (it is a place
        // chosen by the operator, often another disk): a missing one fails every backup.
        if let Some(dir) = &self.admin.backup_dir {
            let problem = match std::fs::metadata(dir) {
                Ok(m) if m.is_dir() => None,
                Ok(_) => Some("is not a directory (a file is there)".to_owned()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Some("does not exist yet; make it, writable by hookd's user".to_owned())
                }
                Err(e) => Some(format!("cannot be looked at ({e})")),
            };
            // A relative path is looked up from where this command runs, which need not be
            // where hookd runs.
            let relative = if dir.is_relative() {
                " (a relative path: it is taken from the directory hookd starts in)"
            } else {
                ""
            };
            if let Some(problem) = problem {
                warnings.push(format!(
                    "{file}: key `admin.backup_dir`: {} {problem}{relative}; until then, \
                     online backups fail",
                    dir.display()
                ));
            }
        }
        // A file with no endpoint still starts (with the same `default` endpoint as no file
        // at all), but a file was written for a reason: say so rather than pass in silence.
        if self.default_endpoint && self.source.is_some() {
            warnings.push(format!(
                "{file}: no [[endpoints]]: hookd makes one standard endpoint named `default` \
                 (POST /webhooks/default) and generates its secret under data_dir/secrets"
            ));
        }
        // Only the fasten processor has anything to push; valid, but surely not meant.
        if self.push.is_some() && fasten.is_empty() {
            warnings.push(format!(
                "{file}: key `push`: no endpoint has the fasten processor, so nothing will be \
                 pushed (push tells of stored Fasten exports and revoked connections)"
            ));
        }
        warnings
    }
}
