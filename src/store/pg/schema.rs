//! The schema's migrations: embedded in the binary, numbered, applied at start in one
//! transaction under an advisory lock (so two instances starting together do not race), and
//! recorded in `hookd_schema`. A database whose schema is newer than this binary knows is
//! refused: an older hookd must not write into tables whose meaning it does not know.

use super::db;
use crate::store::StoreError;
use tokio_postgres::Client;

/// The migrations, in order; the schema version is the number of them applied.
const MIGRATIONS: &[&str] = &[include_str!("schema/001_initial.sql")];

/// The schema version this binary writes.
pub const VERSION: i32 = MIGRATIONS.len() as i32;

/// The advisory lock held while migrating (an arbitrary constant: "hookd" + 1).
const MIGRATION_LOCK: i64 = 0x686f_6f6b_6401;

/// Brings the schema up to [`VERSION`]; returns the version found before.
pub async fn migrate(client: &mut Client) -> Result<i32, StoreError> {
    let tx = client.transaction().await.map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS hookd_schema (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(db)?;
    let found: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM hookd_schema", &[])
        .await
        .map_err(db)?
        .get(0);
    if found > VERSION {
        return Err(StoreError::NewerSchema {
            found,
            known: VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = i as i32 + 1;
        tx.batch_execute(sql)
            .await
            .map_err(|e| StoreError::Migration {
                version,
                detail: super::describe(&e),
            })?;
        tx.execute(
            "INSERT INTO hookd_schema (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    if found < VERSION {
        tracing::info!(from = found, to = VERSION, "database schema migrated");
    }
    Ok(found)
}
