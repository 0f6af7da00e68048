//! Connecting: the connection string, the pool, and TLS to the database.

use super::Result;
use crate::store::StoreError;
use deadpool_postgres::{Manager, ManagerConfig, Pool};
use std::path::PathBuf;
use std::sync::Arc;

/// How to reach the database, and this instance's part in the cluster.
#[derive(Clone)]
pub struct PgOptions {
    /// A `postgres://` URL or a `key=value` connection string. Holds the password: never
    /// logged, never shown (see the `Debug` impl).
    pub url: String,
    /// Connections in the pool.
    pub pool_size: usize,
    /// PEM file of the certificate authorities to trust for the database's TLS certificate,
    /// in place of the public web roots (a private CA).
    pub ca_file: Option<PathBuf>,
    /// How long a claimed event stays with this instance without a renewal (the heartbeat
    /// renews it): the time another instance waits before it runs an event whose instance
    /// died.
    pub lease_ms: u64,
    /// This instance's name in `hookd_instances` and in attempt records.
    pub instance: String,
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("url", &"<hidden>")
            .field("pool_size", &self.pool_size)
            .field("ca_file", &self.ca_file)
            .field("lease_ms", &self.lease_ms)
            .field("instance", &self.instance)
            .finish()
    }
}

/// Parses the connection string; the error never repeats it (it holds the password).
pub fn parse(url: &str) -> Result<tokio_postgres::Config> {
    let mut config: tokio_postgres::Config = url.trim().parse().map_err(|e| {
        StoreError::Settings(format!(
            "the PostgreSQL connection string is not valid ({})",
            reason_without_input(&e)
        ))
    })?;
    if config.get_application_name().is_none() {
        config.application_name("hookd");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    // A network that splits leaves an open connection with no error: a query sent on it would
    // wait for the kernel's retransmissions (a quarter of an hour), and the writer, and every
    // ack, with it. Data unacknowledged for 20 s, or a silent peer found by keepalives,
    // closes the connection instead (on Linux), so the batch fails (503) and the pool
    // connects anew. What the URL sets wins.
    let set = |key: &str| url.contains(key);
    if !set("tcp_user_timeout") {
        config.tcp_user_timeout(std::time::Duration::from_secs(20));
    }
    if !set("keepalives_idle") {
        config.keepalives_idle(std::time::Duration::from_secs(15));
    }
    if !set("keepalives_interval") {
        config.keepalives_interval(std::time::Duration::from_secs(5));
    }
    Ok(config)
}

/// tokio-postgres's parse errors name the offending part ("invalid value for option
/// `port`"), not the input; kept to that.
fn reason_without_input(e: &tokio_postgres::Error) -> String {
    let text = e.to_string();
    let mut reason = match std::error::Error::source(e) {
        Some(s) => format!("{text}: {s}"),
        None => text,
    };
    // libpq takes more modes than tokio-postgres; say which ones work here.
    if reason.contains("sslmode") {
        reason.push_str(
            "; hookd takes sslmode=disable, prefer or require (require verifies the \
             certificate and the host name, as libpq's verify-full does)",
        );
    }
    reason
}

/// The connection pool. TLS is used as the connection string's `sslmode` says (`prefer` by
/// default, `require` to insist); the server's certificate is checked against `ca_file`, or
/// the public web roots.
pub fn pool(options: &PgOptions) -> Result<Pool> {
    let config = parse(&options.url)?;
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(options)?);
    let manager = Manager::from_config(config, tls, ManagerConfig::default());
    Pool::builder(manager)
        .max_size(options.pool_size.max(2))
        .wait_timeout(Some(std::time::Duration::from_secs(30)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Settings(format!("the database pool cannot be built: {e}")))
}

fn tls_config(options: &PgOptions) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match &options.ca_file {
        Some(path) => {
            use rustls::pki_types::pem::PemObject;
            let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| {
                    StoreError::Settings(format!(
                        "postgres.ca_file {} cannot be read as PEM certificates: {e}",
                        path.display()
                    ))
                })?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(StoreError::Settings(format!(
                    "postgres.ca_file {} holds no usable certificate",
                    path.display()
                )));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Settings(format!("TLS to the database: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_network_is_noticed_in_seconds_unless_the_url_says_otherwise() {
        let config = parse("postgres://db/hookd").unwrap();
        let secs = |d: &std::time::Duration| d.as_secs();
        assert_eq!(config.get_tcp_user_timeout().map(secs), Some(20));
        assert_eq!(config.get_keepalives_idle().as_secs(), 15);
        assert_eq!(config.get_keepalives_interval().as_ref().map(secs), Some(5));
        assert!(config.get_keepalives());
        let config = parse("postgres://db/hookd?tcp_user_timeout=60&keepalives_idle=7200").unwrap();
        assert_eq!(config.get_tcp_user_timeout().map(secs), Some(60));
        assert_eq!(
            config.get_keepalives_idle().as_secs(),
            7200,
            "as the URL says"
        );
    }

    #[test]
    fn a_bad_connection_string_is_refused_without_repeating_it() {
        let e = parse("postgres://hookd:s3cret@db:notaport/hookd").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("not valid"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }

    #[test]
    fn an_sslmode_of_libpq_only_names_the_ones_taken() {
        let e = parse("postgres://hookd:s3cret@db/hookd?sslmode=verify-full").unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("sslmode") && text.contains("disable, prefer or require"),
            "{text}"
        );
        assert!(!text.contains("s3cret"), "{text}");
    }

    #[test]
    fn options_never_show_the_password() {
        let o = PgOptions {
            url: "postgres://hookd:s3cret@db/hookd".into(),
            pool_size: 4,
            ca_file: None,
            lease_ms: 60_000,
            instance: "a".into(),
        };
        assert!(!format!("{o:?}").contains("s3cret"));
    }

    #[test]
    fn an_unreadable_ca_file_is_named() {
        let o = PgOptions {
            url: "postgres://db/hookd".into(),
            pool_size: 4,
            ca_file: Some("/nonexistent/ca.pem".into()),
            lease_ms: 60_000,
            instance: "a".into(),
        };
        let text = pool(&o).unwrap_err().to_string();
        assert!(text.contains("/nonexistent/ca.pem"), "{text}");
    }
}
