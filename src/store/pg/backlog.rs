//! The backlog this instance believes the cluster has: events not finished, counted in the
//! database by the heartbeat and moved in between by what this instance does. The
//! receiver's high-water mark reads it on every request, so it is an atomic, not a query.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub(super) struct Backlog {
    events: AtomicU64,
    /// Events this instance has added since start; see [`Backlog::settle`].
    adds: AtomicU64,
}

/// Where a count from the database began (see [`Backlog::begin_count`]).
pub(super) struct CountMark(u64);

impl Backlog {
    pub(super) fn get(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    /// An event this instance queued (accepted or replayed).
    pub(super) fn add(&self) {
        self.adds.fetch_add(1, Ordering::SeqCst);
        self.events.fetch_add(1, Ordering::Relaxed);
    }

    /// An event this instance finished (done or dead).
    pub(super) fn finished(&self) {
        let _ = self
            .events
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Taken just before the database counts.
    pub(super) fn begin_count(&self) -> CountMark {
        CountMark(self.adds.load(Ordering::SeqCst))
    }

    /// Stores the database's count `n`. Events added here while the count ran may be
    /// missing from it: storing the bare count would undo their increments, and the
    /// high-water mark would let them through uncounted. They are added back. One that the
    /// count did see is then counted twice until the next count: the error is at most the
    /// events of one count's duration, never cumulative, and on the side of refusing early.
    pub(super) fn settle(&self, mark: CountMark, n: u64) {
        let added = self.adds.load(Ordering::SeqCst).wrapping_sub(mark.0);
        self.events
            .store(n.saturating_add(added), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_keeps_the_events_added_while_it_ran() {
        let b = Backlog::default();
        let mark = b.begin_count();
        b.add(); // committed after the database took its count of 4
        b.settle(mark, 4);
        assert_eq!(b.get(), 5);
        // A count with nothing added meanwhile is taken as it is, down as well as up.
        b.finished();
        let mark = b.begin_count();
        b.settle(mark, 2);
        assert_eq!(b.get(), 2);
        b.finished();
        b.finished();
        b.finished();
        assert_eq!(b.get(), 0, "never below zero");
    }
}
