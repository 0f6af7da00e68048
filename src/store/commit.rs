//! Group commit: one fsync covers every request that is waiting for one.
//!
//! A request writes its records (in memory, in sled's log) and then waits here. A single
//! flusher thread takes every waiter that has arrived, calls `Db::flush` once, and wakes
//! them all. Whatever a waiter wrote before it queued is in that flush, so its 200 can go
//! out. Under load a flush covers dozens of requests, so durability costs little throughput;
//! when idle, a lone request pays one fsync.

use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

type Waiter = oneshot::Sender<Result<(), Arc<sled::Error>>>;

/// Handle to the flusher thread. Dropping it stops the thread and waits for it, so the
/// database is closed (and its lock released) when the store is dropped.
pub struct GroupCommit {
    tx: Option<mpsc::UnboundedSender<Waiter>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GroupCommit {
    /// Starts the flusher thread for `db`.
    pub fn start(db: sled::Db) -> std::io::Result<GroupCommit> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Waiter>();
        let thread = std::thread::Builder::new()
            .name("hookd-commit".into())
            .spawn(move || {
                let mut batch = Vec::new();
                while let Some(first) = rx.blocking_recv() {
                    batch.push(first);
                    while let Ok(more) = rx.try_recv() {
                        batch.push(more);
                    }
                    let result = db.flush().map(|_| ()).map_err(Arc::new);
                    for waiter in batch.drain(..) {
                        // A waiter whose request was dropped no longer listens; nothing to do.
                        let _ = waiter.send(result.clone());
                    }
                }
            })?;
        Ok(GroupCommit {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Waits until everything written before this call is on disk.
    pub async fn commit(&self) -> Result<(), Arc<sled::Error>> {
        let (tx, rx) = oneshot::channel();
        let gone = || {
            Arc::new(sled::Error::Unsupported(
                "the commit thread has stopped".into(),
            ))
        };
        let sender = self.tx.as_ref().ok_or_else(gone)?;
        sender.send(tx).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
