//! Instances: each takes a node number at start and keeps it alive with a heartbeat, which
//! also renews the leases of the events it runs, hands back the leases of instances that
//! stopped renewing theirs, writes the answers' latencies, and wakes the dispatcher for
//! events other instances accepted.

use super::{db, queue, Inner, Result};
use crate::store::StoreError;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio_postgres::Client;

/// Serialises node choice between instances starting together ("hookd" + 2).
const NODE_LOCK: i64 = 0x686f_6f6b_6402;

/// Node numbers: the id layout has room for 256.
const NODES: i32 = 256;

/// A node whose heartbeat is older than this is free for a new instance. Far longer than a
/// heartbeat so a live but slow instance keeps its number (two instances on one node would
/// make the same ids; the primary key refuses the second write rather than lose it).
const STALE_MS: u64 = 10 * 60 * 1000;

/// Takes the lowest free node number for `name`.
pub async fn take(client: &mut Client, name: &str, now_ms: u64) -> Result<i32> {
    let tx = client.transaction().await.map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&NODE_LOCK])
        .await
        .map_err(db)?;
    let rows = tx
        .query("SELECT node, heartbeat_ms, name FROM hookd_instances", &[])
        .await
        .map_err(db)?;
    let live =
        |r: &&tokio_postgres::Row| (r.get::<_, i64>(1) as u64).saturating_add(STALE_MS) > now_ms;
    if rows
        .iter()
        .filter(live)
        .any(|r| r.get::<_, String>(2) == name)
    {
        tracing::warn!(
            instance = name,
            "another live instance has this name: attempts will not tell the two apart; give \
             each instance its own postgres.instance"
        );
    }
    let busy: std::collections::HashSet<i32> = rows.iter().filter(live).map(|r| r.get(0)).collect();
    let node = (0..NODES).find(|n| !busy.contains(n)).ok_or_else(|| {
        StoreError::Database(format!(
            "all {NODES} node numbers are taken by live instances (hookd_instances)"
        ))
    })?;
    let now = now_ms as i64;
    tx.execute(
        "INSERT INTO hookd_instances (node, name, started_at_ms, heartbeat_ms)
         VALUES ($1, $2, $3, $3)
         ON CONFLICT (node) DO UPDATE
             SET name = excluded.name, started_at_ms = excluded.started_at_ms,
                 heartbeat_ms = excluded.heartbeat_ms",
        &[&node, &name, &now],
    )
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(node)
}

/// Marks this instance's row stopped at a clean stop: its name no longer counts as a live
/// instance's (a restart under the same name is not another instance), while its node number
/// stays taken until the row goes stale. A restart gets a new node, as after a crash: events
/// this run left `processing` keep `lease_node` = this node, and a new instance on it would
/// renew their leases instead of letting another instance re-queue them.
pub async fn leave(inner: &Inner) -> Result<()> {
    let client = inner.client().await?;
    client
        .execute(
            "UPDATE hookd_instances SET name = name || $3 WHERE node = $1 AND name = $2",
            &[&inner.node, &inner.instance, &STOPPED],
        )
        .await
        .map_err(db)?;
    Ok(())
}

/// What [`leave`] appends to a stopped instance's name.
const STOPPED: &str = " (stopped)";

/// How often the heartbeat runs: a third of the lease, so two beats can fail before a lease
/// runs out; at most every second (it is also how soon other instances' events are seen).
fn period_ms(lease_ms: u64) -> u64 {
    (lease_ms / 3).clamp(100, 1_000)
}

/// Runs until the store is dropped.
pub async fn heartbeat(inner: Arc<Inner>) {
    let mut tick =
        tokio::time::interval(std::time::Duration::from_millis(period_ms(inner.lease_ms)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_hour = 0;
    loop {
        tick.tick().await;
        let now = crate::clock::now_ms();
        if let Err(e) = beat(&inner, now).await {
            // Kept for /healthz (and the watchdog) until a beat succeeds: an instance that
            // cannot reach the database says so even while nobody sends it anything.
            let mut slot = inner.db_error.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                tracing::warn!(error = %e, "database heartbeat failed");
            }
            *slot = Some(e.to_string());
            continue;
        }
        if crate::store::recovered(&inner.db_error) {
            tracing::info!("the database answers the heartbeat again");
        }
        // New day partitions are made ahead, once an hour is plenty.
        let hour = now / 3_600_000;
        if hour != last_hour {
            match super::prune::ensure_partitions(&inner, now).await {
                Ok(()) => last_hour = hour,
                Err(e) => tracing::warn!(error = %e, "making delivery log partitions failed"),
            }
        }
        inner.work.notify_one();
    }
}

async fn beat(inner: &Inner, now_ms: u64) -> Result<()> {
    let client = inner.client().await?;
    let now = now_ms as i64;
    let mine = client
        .execute(
            "UPDATE hookd_instances SET heartbeat_ms = $3 WHERE node = $1 AND name = $2",
            &[&inner.node, &inner.instance, &now],
        )
        .await
        .map_err(db)?;
    if mine == 0 {
        // Another instance took this node after a long silence: ids could collide.
        inner.set_write_error(Some(format!(
            "node {} was taken over by another instance after this one missed its \
             heartbeats; restart hookd",
            inner.node
        )));
        inner.writer_alive.store(false, Ordering::Relaxed);
    }
    let until = (now_ms + inner.lease_ms) as i64;
    client
        .execute(
            // SKIP LOCKED: a row the writer is finishing or claiming right now needs no
            // renewal, and waiting for it while holding others could deadlock with the
            // writer's batch (it updates several rows too, in its own order).
            "UPDATE hookd_events SET lease_until_ms = $2
             WHERE seq IN (SELECT seq FROM hookd_events
                           WHERE state = 'processing' AND lease_node = $1
                           FOR UPDATE SKIP LOCKED)",
            &[&inner.node, &until],
        )
        .await
        .map_err(db)?;
    write_latencies(inner, &**client).await?;
    write_unlogged(inner, &**client).await?;
    drop(client);
    queue::expire_leases(inner, now_ms).await?;
    queue::refresh_backlog(inner).await
}

/// Writes the answers' latencies noted since the last call into their deliveries (the
/// heartbeat's, and the flush at a stop's). On failure they stay noted for the next call.
pub(super) async fn write_latencies(
    inner: &Inner,
    client: &impl tokio_postgres::GenericClient,
) -> Result<()> {
    let _turn = inner.noted_turn.lock().await;
    let noted = || inner.latencies.lock().unwrap_or_else(|p| p.into_inner());
    let latencies = std::mem::take(&mut *noted());
    if latencies.is_empty() {
        return Ok(());
    }
    let (ids, micros): (Vec<i64>, Vec<i64>) = latencies.iter().copied().unzip();
    client
        .execute(
            "UPDATE hookd_deliveries d SET latency_us = u.l
             FROM unnest($1::int8[], $2::int8[]) AS u(i, l) WHERE d.id = u.i",
            &[&ids, &micros],
        )
        .await
        .map_err(db)
        .map(drop)
        .inspect_err(|_| noted().extend(latencies))
}

/// Adds the rejections counted in memory since the last call to the database's count (the
/// heartbeat's, and the flush at a stop's). On failure they stay counted for the next call.
pub(super) async fn write_unlogged(
    inner: &Inner,
    client: &impl tokio_postgres::GenericClient,
) -> Result<()> {
    // One writer at a time: a flush returns only once a beat's addition has landed too.
    let _turn = inner.noted_turn.lock().await;
    let n = inner.unlogged.swap(0, Ordering::Relaxed);
    if n == 0 {
        return Ok(());
    }
    add_unlogged(client, n as i64).await.inspect_err(|_| {
        inner.unlogged.fetch_add(n, Ordering::Relaxed);
    })
}

/// Adds `n` to the count of rejections that were counted but not stored.
pub(super) async fn add_unlogged(
    client: &impl tokio_postgres::GenericClient,
    n: i64,
) -> Result<()> {
    client
        .execute(
            "INSERT INTO hookd_counters (name, n) VALUES ('rejected_unlogged', $1)
             ON CONFLICT (name) DO UPDATE SET n = hookd_counters.n + excluded.n",
            &[&n],
        )
        .await
        .map_err(db)?;
    Ok(())
}
