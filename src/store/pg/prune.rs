//! Retention on PostgreSQL. The delivery log is partitioned by day: a day older than the
//! window goes with `DROP TABLE`, which gives its space back to the file system at once and
//! leaves nothing for vacuum, where deleting rows would leave dead tuples behind under the
//! receiving load. Events (the dedup log) are deleted in bounded batches. A whole run
//! (deliveries, events, then the shared exports directory) holds a session-level advisory
//! lock taken with `try` ([`Turn`]): while one instance prunes, the others skip their turn.

use super::{db, Inner, Result};
use crate::store::keys::first_id_at;

pub(super) const DAY_MS: u64 = 86_400_000;

/// The advisory lock of a pruning pass ("hookd" + 3).
const PRUNE_LOCK: i64 = 0x686f_6f6b_6403;

/// Serialises partition creation between instances ("hookd" + 4).
const PARTITION_LOCK: i64 = 0x686f_6f6b_6404;

/// The day partitions that exist: (name, day number since the epoch).
async fn partitions(client: &impl tokio_postgres::GenericClient) -> Result<Vec<(String, i64)>> {
    let rows = client
        .query(
            "SELECT c.relname::text,
                    (to_date(right(c.relname, 8), 'YYYYMMDD') - date '1970-01-01')::int8
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'hookd_deliveries'::regclass
               AND c.relname ~ '^hookd_deliveries_[0-9]{8}$'",
            &[],
        )
        .await
        .map_err(db)?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Makes the day partitions from yesterday to two days ahead, so a delivery never waits
/// for one (a row with no day partition lands in the default one, and is pruned by DELETE).
pub async fn ensure_partitions(inner: &Inner, now_ms: u64) -> Result<()> {
    let today = (now_ms / DAY_MS) as i64;
    ensure_days(inner, (today - 1..=today + 2).collect()).await
}

/// Makes the partitions of `days` (days since the epoch) that do not exist yet.
pub async fn ensure_days(inner: &Inner, days: Vec<i64>) -> Result<()> {
    let mut client = inner.client().await?;
    let have: std::collections::HashSet<i64> = partitions(&**client)
        .await?
        .into_iter()
        .map(|(_, day)| day)
        .collect();
    let missing: Vec<i64> = days.into_iter().filter(|d| !have.contains(d)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let tx = client.transaction().await.map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
        .await
        .map_err(db)?;
    for day in missing {
        let name: String = tx
            .query_one(
                "SELECT 'hookd_deliveries_' || to_char(date '1970-01-01' + $1::int4, 'YYYYMMDD')",
                &[&(day as i32)],
            )
            .await
            .map_err(db)?
            .get(0);
        let from = first_id_at(day as u64 * DAY_MS);
        let to = first_id_at((day as u64 + 1) * DAY_MS);
        // Names and bounds are made here from numbers, never from input.
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {name} PARTITION OF hookd_deliveries
             FOR VALUES FROM ({from}) TO ({to})"
        );
        tx.batch_execute(&sql).await.map_err(db)?;
    }
    tx.commit().await.map_err(db)
}

/// This instance's turn to prune: retention's advisory lock, held by the session of a
/// connection taken out of the pool. Out of the pool because a session lock lives as long as
/// its connection: a pooled one would go back still holding it if the unlock were missed,
/// and stop every instance's retention until that instance restarted. A connection of its
/// own closes when it is dropped (or when hookd dies), and the database releases the lock.
/// (So retention's lock needs direct connections, or a pooler in session mode: see
/// docs/cluster.md.)
pub struct Turn {
    client: Option<std::sync::Arc<deadpool_postgres::ClientWrapper>>,
    runtime: tokio::runtime::Handle,
}

/// How long a check of the turn, or its unlock, may take before it counts as lost.
const TURN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl Turn {
    pub fn new(client: deadpool_postgres::ClientWrapper, runtime: tokio::runtime::Handle) -> Turn {
        Turn {
            client: Some(std::sync::Arc::new(client)),
            runtime,
        }
    }
}

impl crate::store::prune::Held for Turn {
    /// The connection is open and answers: its session still holds the lock.
    fn still_held(&self) -> bool {
        let Some(client) = self.client.clone() else {
            return false;
        };
        if client.is_closed() {
            return false;
        }
        let answered = super::wait_bounded(
            &self.runtime,
            async move { client.simple_query("SELECT 1").await.is_ok() },
            TURN_WAIT,
        );
        matches!(answered, Ok(true))
    }
}

impl Drop for Turn {
    /// Unlocks and closes the connection, and waits for it (bounded), so this instance's
    /// next run, or another's, finds the lock free at once.
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = super::wait_bounded(
                &self.runtime,
                async move {
                    let _ = client
                        .execute("SELECT pg_advisory_unlock($1)", &[&PRUNE_LOCK])
                        .await;
                },
                TURN_WAIT,
            );
        }
    }
}

/// Takes retention's lock on a connection of its own, unless another instance holds it.
pub async fn take_turn(inner: &Inner) -> Result<Option<deadpool_postgres::ClientWrapper>> {
    let client = deadpool_postgres::Object::take(inner.client().await?);
    let taken: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&PRUNE_LOCK])
        .await
        .map_err(db)?
        .get(0);
    if taken {
        // The server frees the lock when it notices the session is gone; for a host that
        // died or a network that split, its keepalives notice within a minute instead of
        // the kernel's two hours. (Settings any user may make; an older server without
        // one of them keeps its default.)
        for setting in [
            "SET tcp_keepalives_idle = 15",
            "SET tcp_keepalives_interval = 5",
            "SET tcp_keepalives_count = 3",
            "SET tcp_user_timeout = 20000",
        ] {
            let _ = client.batch_execute(setting).await;
        }
    }
    Ok(taken.then_some(client))
}

/// Drops the day partitions wholly before `cutoff_ms`, and deletes older rows of the
/// default partition. Returns the deliveries removed. Run under a [`Turn`].
pub async fn prune_deliveries(inner: &Inner, cutoff_ms: u64) -> Result<u64> {
    let mut client = inner.client().await?;
    let tx = client.transaction().await.map_err(db)?;
    let mut removed = 0u64;
    for (name, day) in partitions(&*tx).await? {
        if (day as u64 + 1) * DAY_MS > cutoff_ms {
            continue;
        }
        let n: i64 = tx
            .query_one(&format!("SELECT count(*) FROM {name}"), &[])
            .await
            .map_err(db)?
            .get(0);
        tx.batch_execute(&format!("DROP TABLE {name}"))
            .await
            .map_err(db)?;
        removed += n as u64;
    }
    removed += tx
        .execute(
            "DELETE FROM hookd_deliveries_default WHERE id < $1",
            &[&(first_id_at(cutoff_ms) as i64)],
        )
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(removed)
}

/// Deletes up to `max` finished events accepted before `cutoff_ms`, with their attempts. An
/// event stays while any delivery of it is still kept (deliveries go first, by whole days):
/// a late retry inside the window is still recognised as a duplicate, and a duplicate kept
/// in a day not yet dropped still finds its original's payload. Returns the events removed.
/// Run under a [`Turn`].
pub async fn prune_events(inner: &Inner, cutoff_ms: u64, max: usize) -> Result<u64> {
    let mut client = inner.client().await?;
    let tx = client.transaction().await.map_err(db)?;
    let gone = tx
        .query(
            "DELETE FROM hookd_events WHERE seq IN (
                 SELECT e.seq FROM hookd_events e
                 WHERE e.received_at_ms < $1 AND e.state IN ('done', 'dead')
                   AND NOT EXISTS (SELECT 1 FROM hookd_deliveries d WHERE d.event_seq = e.seq)
                 LIMIT $2)
             RETURNING seq",
            &[&(cutoff_ms as i64), &(max as i64)],
        )
        .await
        .map_err(db)?;
    let seqs: Vec<i64> = gone.iter().map(|r| r.get(0)).collect();
    tx.execute("DELETE FROM hookd_attempts WHERE seq = ANY($1)", &[&seqs])
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(seqs.len() as u64)
}
