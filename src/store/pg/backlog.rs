//! The backlog this instance believes the cluster has: events not finished, counted in the
//! database by the heartbeat and moved in between by what this instance does. The
//! receiver's high-water mark reads it on every request, so it is an atomic, not a query.
//!
//! A count races with this instance's own accepts: one committed just before the count's
//! snapshot is in the count, one committed just after is not, and both call [`Backlog::add`]
//! after their COMMIT. So while a count runs the events queued here are listed, and the
//! count asks the same snapshot which of them it holds ([`Backlog::settle`]): storing the bare
//! count would drop the ones it missed (the high-water mark would let them through
//! uncounted), adding them all back would count the others twice (it refused early).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Default)]
pub(super) struct Backlog {
    events: AtomicU64,
    /// While a count runs: the seqs of the events queued here since it began.
    counting: Mutex<Option<Vec<u64>>>,
    /// Held by the count that runs: one list serves one count at a time.
    count_turn: tokio::sync::Mutex<()>,
}

/// A count in progress ([`Backlog::begin_count`]). It holds the turn; dropped unsettled (the
/// count failed), it stops the listing.
pub(super) struct Count<'a> {
    backlog: &'a Backlog,
    _turn: tokio::sync::MutexGuard<'a, ()>,
}

impl Backlog {
    pub(super) fn get(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    fn counting(&self) -> std::sync::MutexGuard<'_, Option<Vec<u64>>> {
        self.counting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Event `seq` was queued here (accepted or replayed), after its COMMIT.
    pub(super) fn add(&self, seq: u64) {
        let mut counting = self.counting();
        self.events.fetch_add(1, Ordering::Relaxed);
        if let Some(seqs) = counting.as_mut() {
            seqs.push(seq);
        }
    }

    /// An event this instance finished (done or dead).
    pub(super) fn finished(&self) {
        let _ = self
            .events
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Taken just before the database counts; waits for a count already running.
    pub(super) async fn begin_count(&self) -> Count<'_> {
        let turn = self.count_turn.lock().await;
        *self.counting() = Some(Vec::new());
        Count {
            backlog: self,
            _turn: turn,
        }
    }
}

impl Count<'_> {
    /// The events queued here since the count began.
    pub(super) fn queued(&self) -> Vec<u64> {
        self.backlog.counting().clone().unwrap_or_default()
    }

    /// Stores the database's count `n`, plus those of the `checked` first events queued
    /// during the count that its snapshot did not hold (`seen` is how many it held). Returns
    /// false, storing nothing, when more were queued after `checked` was taken: the caller
    /// checks again. `force` stores anyway, counting every event not checked as missed
    /// (the error then leans towards refusing early).
    pub(super) fn settle(&self, n: u64, checked: usize, seen: u64, force: bool) -> bool {
        let mut counting = self.backlog.counting();
        let queued = counting.as_ref().map_or(0, Vec::len);
        if queued != checked && !force {
            return false;
        }
        let missed = (queued as u64).saturating_sub(seen);
        self.backlog
            .events
            .store(n.saturating_add(missed), Ordering::Relaxed);
        *counting = None;
        true
    }
}

impl Drop for Count<'_> {
    fn drop(&mut self) {
        *self.backlog.counting() = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_count_adds_back_only_the_events_its_snapshot_missed() {
        let b = Backlog::default();
        let count = b.begin_count().await;
        b.add(7); // committed before the database's snapshot: in its count of 4
        b.add(8); // committed after it: missing from the count
        let queued = count.queued();
        assert_eq!(queued, [7, 8]);
        assert!(count.settle(4, queued.len(), 1, false));
        drop(count);
        assert_eq!(b.get(), 5);
        // A count with nothing queued meanwhile is taken as it is, down as well as up.
        b.finished();
        assert!(b.begin_count().await.settle(2, 0, 0, false));
        assert_eq!(b.get(), 2);
        b.finished();
        b.finished();
        b.finished();
        assert_eq!(b.get(), 0, "never below zero");
    }

    #[tokio::test]
    async fn an_event_queued_after_the_check_sends_the_count_round_again() {
        let b = Backlog::default();
        let count = b.begin_count().await;
        b.add(1);
        let queued = count.queued();
        b.add(2); // after the snapshot was asked about `queued`
        assert!(!count.settle(10, queued.len(), 0, false), "not settled");
        assert_eq!(b.get(), 2, "the increments stand meanwhile");
        // Forced: event 2, never checked, counts as missed.
        assert!(count.settle(10, queued.len(), 0, true));
        assert_eq!(b.get(), 12);
        drop(count);
        b.add(3);
        assert_eq!(b.get(), 13);
    }

    #[tokio::test]
    async fn a_failed_count_stops_the_listing_and_frees_the_turn() {
        let b = Backlog::default();
        drop(b.begin_count().await); // the query failed
        b.add(1);
        assert!(b.counting().is_none(), "nothing listed between counts");
        let count = b.begin_count().await; // not left waiting for the failed one
        assert!(count.queued().is_empty());
    }
}
