//! The queue on PostgreSQL: the events table is the queue. A claim takes due events with
//! `FOR UPDATE SKIP LOCKED`, so instances claiming together never block on or take each
//! other's rows, and gives each a lease; the heartbeat renews the leases of the events an
//! instance runs, and hands back (as interrupted attempts) those whose lease ran out.

use super::{db, Inner, Result};
use crate::store::model::{Attempt, AttemptOutcome, Event, EventState};
use crate::store::queue::{Next, ReplayError};
use tokio_postgres::{GenericClient, Row, Transaction};

/// The columns [`to_event`] reads, in its order.
pub const EVENT_COLUMNS: &str = "seq, endpoint, event_id, event_type, received_at_ms, \
     delivery_id, state, attempts, next_attempt_at_ms, last_error, replays, \
     attempts_before_replay";

pub fn state_of(text: &str) -> EventState {
    EventState::ALL
        .into_iter()
        .find(|s| s.as_str() == text)
        .unwrap_or(EventState::Dead)
}

/// An event from a row of [`EVENT_COLUMNS`] (from column `at` on).
pub fn to_event(row: &Row, at: usize) -> Event {
    Event {
        seq: row.get::<_, i64>(at) as u64,
        endpoint: row.get(at + 1),
        event_id: row.get(at + 2),
        event_type: row.get(at + 3),
        received_at_ms: row.get::<_, i64>(at + 4) as u64,
        delivery_id: row.get::<_, i64>(at + 5) as u64,
        state: state_of(row.get(at + 6)),
        attempts: row.get::<_, i32>(at + 7) as u32,
        next_attempt_at_ms: row.get::<_, Option<i64>>(at + 8).map(|t| t as u64),
        last_error: row.get(at + 9),
        replays: row.get::<_, i32>(at + 10) as u32,
        attempts_before_replay: row.get::<_, i32>(at + 11) as u32,
    }
}

/// Claims up to `max` due events for this instance, records the attempt each begins as
/// running, and returns them with their payloads in queue order.
pub async fn claim(
    tx: &Transaction<'_>,
    inner: &Inner,
    now_ms: u64,
    max: usize,
) -> Result<Vec<(Event, bytes::Bytes, EventState)>> {
    let (now, until) = (now_ms as i64, (now_ms + inner.lease_ms) as i64);
    let rows = tx
        .query(
            &format!(
                "WITH due AS (
                     SELECT seq, state AS was, next_attempt_at_ms AS due_at FROM hookd_events
                     WHERE state IN ('queued', 'retrying') AND next_attempt_at_ms <= $1
                     ORDER BY next_attempt_at_ms, seq
                     LIMIT $2
                     FOR UPDATE SKIP LOCKED)
                 UPDATE hookd_events e
                 SET state = 'processing', next_attempt_at_ms = NULL,
                     lease_node = $3, lease_until_ms = $4
                 FROM due WHERE e.seq = due.seq
                 RETURNING due.due_at, due.was, e.payload, {}",
                EVENT_COLUMNS
                    .split(", ")
                    .map(|c| format!("e.{}", c.trim()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            &[&now, &(max as i64), &inner.node, &until],
        )
        .await
        .map_err(db)?;
    let mut claimed: Vec<(i64, Event, bytes::Bytes, EventState)> = rows
        .iter()
        .map(|row| {
            (
                row.get::<_, i64>(0),
                to_event(row, 3),
                bytes::Bytes::from(row.get::<_, Vec<u8>>(2)),
                state_of(row.get(1)),
            )
        })
        .collect();
    claimed.sort_by_key(|(due, e, _, _)| (*due, e.seq));
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    // The attempt is on record before it starts: a crash cannot hide it.
    let seqs: Vec<i64> = claimed.iter().map(|(_, e, _, _)| e.seq as i64).collect();
    let numbers: Vec<i32> = claimed
        .iter()
        .map(|(_, e, _, _)| e.attempts as i32 + 1)
        .collect();
    tx.execute(
        "INSERT INTO hookd_attempts (seq, number, node, instance, processor, started_at_ms,
             finished_at_ms, outcome, detail)
         SELECT s, n, $3, $4, '', $5, 0, 'running', ''
         FROM unnest($1::int8[], $2::int4[]) AS u(s, n)
         ON CONFLICT (seq, number) DO UPDATE
             SET node = excluded.node, instance = excluded.instance, processor = '',
                 started_at_ms = excluded.started_at_ms, finished_at_ms = 0,
                 outcome = 'running', detail = ''",
        &[&seqs, &numbers, &inner.node, &inner.instance, &now],
    )
    .await
    .map_err(db)?;
    Ok(claimed
        .into_iter()
        .map(|(_, mut e, p, was)| {
            e.state = EventState::Processing;
            e.next_attempt_at_ms = None;
            (e, p, was)
        })
        .collect())
}

pub(super) fn outcome_str(o: AttemptOutcome) -> &'static str {
    match o {
        AttemptOutcome::Ok => "ok",
        AttemptOutcome::Error => "error",
        AttemptOutcome::Running => "running",
        AttemptOutcome::Interrupted => "interrupted",
    }
}

pub fn outcome_of(text: &str) -> AttemptOutcome {
    match text {
        "ok" => AttemptOutcome::Ok,
        "running" => AttemptOutcome::Running,
        "interrupted" => AttemptOutcome::Interrupted,
        _ => AttemptOutcome::Error,
    }
}

/// Records an attempt and moves the event on, if this instance still holds its lease. One
/// that lost it (it ran past its lease, and another instance took the event) still records
/// its attempt under its own number, and leaves the event to the new holder.
pub async fn finish(
    tx: &Transaction<'_>,
    inner: &Inner,
    seq: u64,
    attempt: &Attempt,
    next: Next,
) -> Result<()> {
    let seq = seq as i64;
    tx.execute(
        "INSERT INTO hookd_attempts (seq, number, node, instance, processor, started_at_ms,
             finished_at_ms, outcome, detail)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9
         WHERE EXISTS (SELECT 1 FROM hookd_events WHERE seq = $1)
         ON CONFLICT (seq, number) DO UPDATE
             SET node = excluded.node, instance = excluded.instance,
                 processor = excluded.processor, started_at_ms = excluded.started_at_ms,
                 finished_at_ms = excluded.finished_at_ms, outcome = excluded.outcome,
                 detail = excluded.detail",
        &[
            &seq,
            &(attempt.number as i32),
            &inner.node,
            &inner.instance,
            &attempt.processor,
            &(attempt.started_at_ms as i64),
            &(attempt.finished_at_ms as i64),
            &outcome_str(attempt.outcome),
            &attempt.detail,
        ],
    )
    .await
    .map_err(db)?;
    let (state, due) = match next {
        Next::Done => (EventState::Done, None),
        Next::Dead => (EventState::Dead, None),
        Next::RetryAt(at) => (EventState::Retrying, Some(at as i64)),
    };
    let error = match attempt.outcome {
        AttemptOutcome::Ok => None,
        _ => Some(attempt.detail.as_str()),
    };
    let moved = tx
        .execute(
            "UPDATE hookd_events
             SET state = $2, next_attempt_at_ms = $3, attempts = greatest(attempts, $4),
                 last_error = $5, lease_node = NULL, lease_until_ms = NULL
             WHERE seq = $1 AND state = 'processing' AND lease_node = $6",
            &[
                &seq,
                &state.as_str(),
                &due,
                &(attempt.number as i32),
                &error,
                &inner.node,
            ],
        )
        .await
        .map_err(db)?;
    if moved == 0 {
        tracing::warn!(
            seq,
            number = attempt.number,
            "an attempt finished after its lease passed to another instance; recorded, \
             the event left to that instance"
        );
    } else if !matches!(next, Next::RetryAt(_)) {
        inner.backlog.finished();
    }
    Ok(())
}

/// Puts events whose lease ran out back on the queue, due now: their instance stopped (or
/// stopped renewing). The attempt that was cut short stays on record as interrupted, and the
/// next one gets the next number. Returns how many.
pub async fn expire_leases(inner: &Inner, now_ms: u64) -> Result<usize> {
    let mut client = inner.client().await?;
    let tx = client.transaction().await.map_err(db)?;
    let now = now_ms as i64;
    let rows = tx
        .query(
            "UPDATE hookd_events
             SET state = 'queued', next_attempt_at_ms = $1, attempts = attempts + 1,
                 lease_node = NULL, lease_until_ms = NULL
             WHERE seq IN (SELECT seq FROM hookd_events
                           WHERE state = 'processing' AND lease_until_ms < $1
                           FOR UPDATE SKIP LOCKED)
             RETURNING seq, attempts",
            &[&now],
        )
        .await
        .map_err(db)?;
    if rows.is_empty() {
        return Ok(0);
    }
    let seqs: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    let numbers: Vec<i32> = rows.iter().map(|r| r.get(1)).collect();
    tx.execute(
        "UPDATE hookd_attempts a
         SET outcome = 'interrupted', finished_at_ms = $3,
             detail = 'the instance running this attempt stopped renewing its lease'
         FROM unnest($1::int8[], $2::int4[]) AS u(s, n)
         WHERE a.seq = u.s AND a.number = u.n AND a.outcome = 'running'",
        &[&seqs, &numbers, &now],
    )
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
    tracing::warn!(
        events = rows.len(),
        "events whose instance stopped renewing their lease are queued again"
    );
    inner.work.notify_one();
    Ok(rows.len())
}

/// Counts the events not finished (the receiver's high-water mark reads it often; the
/// heartbeat keeps it fresh).
pub async fn refresh_backlog(inner: &Inner) -> Result<()> {
    let count = inner.backlog.begin_count().await;
    let mut client = inner.client().await?;
    // One snapshot for the count and for which of the events queued here meanwhile it holds
    // (a repeatable-read transaction takes it at its first statement): see `backlog`.
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(db)?;
    let unfinished = "state IN ('queued', 'retrying', 'processing')";
    let total = format!("SELECT count(*) FROM hookd_events WHERE {unfinished}");
    let n: i64 = tx.query_one(&total, &[]).await.map_err(db)?.get(0);
    let held = format!("SELECT count(*) FROM hookd_events WHERE seq = ANY($1) AND {unfinished}");
    // Events keep arriving while the check runs; a few rounds catch up with a burst, and
    // then what is left unchecked counts as missed.
    for round in 1..=3 {
        let queued: Vec<i64> = count.queued().into_iter().map(|s| s as i64).collect();
        let seen: i64 = if queued.is_empty() {
            0
        } else {
            tx.query_one(&held, &[&queued]).await.map_err(db)?.get(0)
        };
        if count.settle(n as u64, queued.len(), seen as u64, round == 3) {
            break;
        }
    }
    tx.commit().await.map_err(db)?;
    Ok(())
}

/// When the first queued event is due, on any instance.
pub async fn next_due(client: &impl GenericClient) -> Result<Option<u64>> {
    let row = client
        .query_one(
            "SELECT min(next_attempt_at_ms) FROM hookd_events
             WHERE state IN ('queued', 'retrying')",
            &[],
        )
        .await
        .map_err(db)?;
    Ok(row.get::<_, Option<i64>>(0).map(|t| t as u64))
}

/// Re-queues a done or dead event for a fresh round of attempts.
pub async fn replay(inner: &Inner, seq: u64, now_ms: u64) -> Result<Event, ReplayError> {
    let client = inner.client().await?;
    let row = client
        .query_opt(
            &format!(
                "UPDATE hookd_events
                 SET state = 'queued', next_attempt_at_ms = $2, replays = replays + 1,
                     attempts_before_replay = attempts
                 WHERE seq = $1 AND state IN ('done', 'dead')
                 RETURNING {EVENT_COLUMNS}"
            ),
            &[&(seq as i64), &(now_ms as i64)],
        )
        .await
        .map_err(db)?;
    if let Some(row) = row {
        inner.backlog.add(seq);
        inner.work.notify_one();
        return Ok(to_event(&row, 0));
    }
    let state = client
        .query_opt(
            "SELECT state FROM hookd_events WHERE seq = $1",
            &[&(seq as i64)],
        )
        .await
        .map_err(db)?;
    Err(match state {
        None => ReplayError::NotFound,
        Some(row) => ReplayError::NotFinished(state_of(row.get(0)).as_str()),
    })
}
