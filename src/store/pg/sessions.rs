//! Web UI sessions in the database (cluster mode), keyed by the SHA-256 of the session id:
//! a reader of the database cannot use what it finds there to log in.

use super::{db, PgStore, Result};
use sha2::{Digest, Sha256};

fn key(id: &str) -> String {
    Sha256::digest(id.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl PgStore {
    /// Stores a new session, and drops the expired ones.
    pub fn put_session(&self, id: &str, csrf: &str, expires_at_ms: u64) -> Result<()> {
        let (k, csrf) = (key(id), csrf.to_string());
        let now = crate::clock::now_ms() as i64;
        self.block(move |inner| async move {
            let client = inner.client().await?;
            client
                .execute(
                    "DELETE FROM hookd_sessions WHERE expires_at_ms <= $1",
                    &[&now],
                )
                .await
                .map_err(db)?;
            client
                .execute(
                    "INSERT INTO hookd_sessions (id_sha256, csrf, expires_at_ms)
                     VALUES ($1, $2, $3)",
                    &[&k, &csrf, &(expires_at_ms as i64)],
                )
                .await
                .map_err(db)?;
            Ok(())
        })
    }

    /// The CSRF token of a live session.
    pub fn session(&self, id: &str, now_ms: u64) -> Result<Option<String>> {
        let k = key(id);
        self.block(move |inner| async move {
            let row = inner
                .client()
                .await?
                .query_opt(
                    "SELECT csrf FROM hookd_sessions WHERE id_sha256 = $1 AND expires_at_ms > $2",
                    &[&k, &(now_ms as i64)],
                )
                .await
                .map_err(db)?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    /// Ends a session on every instance.
    pub fn remove_session(&self, id: &str) -> Result<()> {
        let k = key(id);
        self.block(move |inner| async move {
            inner
                .client()
                .await?
                .execute("DELETE FROM hookd_sessions WHERE id_sha256 = $1", &[&k])
                .await
                .map_err(db)?;
            Ok(())
        })
    }
}
