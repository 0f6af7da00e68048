//! The writer task: group commit on PostgreSQL. Requests queue their write (the sled store's
//! [`Write`]s, through the same handle) and wait; the task takes every write that has
//! arrived and applies them in order in one transaction, and replies once it has committed.
//! Under load a batch holds dozens of writes, so one commit (one WAL flush) and a few round
//! trips serve them all, where a transaction per request would cost a round trip and a
//! flush each.

use super::{db, ingest, queue, Inner, Result};
use crate::store::apply::Outcome;
use crate::store::writer::{Write, Writer};
use crate::store::StoreError;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Most writes in one transaction.
const MAX_BATCH: usize = 256;

/// Starts the task; the returned handle is how the store sends it writes.
pub fn start(inner: Arc<Inner>) -> Writer {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(inner, rx));
    Writer::with_sender(tx)
}

/// Marks the writer stopped however the task ends.
struct Alive(Arc<Inner>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.writer_alive.store(false, Ordering::Relaxed);
    }
}

async fn run(inner: Arc<Inner>, mut rx: mpsc::UnboundedReceiver<Write>) {
    let _alive = Alive(inner.clone());
    let mut batch = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        if batch.iter().any(|w| matches!(w, Write::Crash)) {
            tracing::error!("the store's writer was stopped on purpose");
            return;
        }
        let batch = std::mem::take(&mut batch);
        if !inner.writer_alive.load(Ordering::Relaxed) {
            fail_all(&inner, batch, Arc::new(StoreError::WriterStopped));
            continue;
        }
        match apply_retrying(&inner, &batch).await {
            Ok(outcomes) => {
                if crate::store::recovered(&inner.write_error) {
                    tracing::info!("the database takes writes again");
                }
                reply_all(&inner, batch, outcomes);
            }
            Err(e) => {
                tracing::error!(error = %e, "write batch failed; its requests get 503");
                inner.set_write_error(Some(e.to_string()));
                fail_all(&inner, batch, Arc::new(e));
            }
        }
    }
}

/// Times a batch is tried when PostgreSQL aborts it for a deadlock or a serialization
/// conflict with another instance: nothing of it was committed, so it can simply run again.
const TRIES: usize = 3;

async fn apply_retrying(inner: &Inner, batch: &[Write]) -> Result<Vec<Outcome>> {
    let mut tries = 0;
    loop {
        tries += 1;
        match apply(inner, batch).await {
            Err(StoreError::Conflict(why)) if tries < TRIES => {
                tracing::debug!(why, "write batch aborted by a conflict; running it again");
            }
            other => return other,
        }
    }
}

/// Applies a batch in one transaction, in order; consecutive deliveries go in together.
async fn apply(inner: &Inner, batch: &[Write]) -> Result<Vec<Outcome>> {
    let mut client = inner.client().await?;
    let tx = client.transaction().await.map_err(db)?;
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut i = 0;
    while i < batch.len() {
        match &batch[i] {
            Write::Accept { .. } | Write::Record { .. } => {
                let run = batch[i..]
                    .iter()
                    .take_while(|w| matches!(w, Write::Accept { .. } | Write::Record { .. }))
                    .count();
                outcomes.extend(ingest::insert(&tx, inner, &batch[i..i + run]).await?);
                i += run;
                continue;
            }
            Write::Claim { now_ms, max, .. } => {
                let claimed = queue::claim(&tx, inner, *now_ms, *max).await?;
                outcomes.push(Outcome::Claimed(claimed, Vec::new()));
            }
            Write::Finish { seq, attempt, next } => {
                queue::finish(&tx, inner, *seq, attempt, *next).await?;
                outcomes.push(Outcome::Finished(None));
            }
            Write::Flush { .. } | Write::Crash => outcomes.push(Outcome::Flushed),
        }
        i += 1;
    }
    tx.commit().await.map_err(db)?;
    Ok(outcomes)
}

fn fail_all(inner: &Inner, batch: Vec<Write>, e: Arc<StoreError>) {
    for write in batch {
        if let Some(seq) = write.fail(&e) {
            // The event keeps its lease until it runs out; then it runs again.
            inner.pending_finishes.fetch_sub(1, Ordering::Relaxed);
            tracing::error!(seq, "an attempt's result was not recorded");
        }
    }
}

fn reply_all(inner: &Inner, batch: Vec<Write>, outcomes: Vec<Outcome>) {
    let mut wake = false;
    for (write, outcome) in batch.into_iter().zip(outcomes) {
        match (write, outcome) {
            (Write::Accept { reply, .. }, Outcome::Accepted(a)) => {
                if a.verdict == crate::store::Verdict::Accepted {
                    inner.backlog.add(a.seq);
                    wake = true;
                }
                let _ = reply.send(Ok(a));
            }
            (Write::Record { reply, .. }, Outcome::Recorded(id)) => {
                let _ = reply.send(Ok(id));
            }
            (Write::Claim { reply, .. }, Outcome::Claimed(events, _)) => {
                let _ = reply.send(Ok(events.into_iter().map(|(e, p, _)| (e, p)).collect()));
            }
            (Write::Finish { .. }, Outcome::Finished(_)) => {
                inner.pending_finishes.fetch_sub(1, Ordering::Relaxed);
                wake = true;
            }
            (Write::Flush { reply }, Outcome::Flushed) => {
                let _ = reply.send(Ok(()));
            }
            _ => {}
        }
    }
    if wake {
        inner.work.notify_one();
    }
}
