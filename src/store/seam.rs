//! The store's one face: [`Store`] is the embedded sled store of one hookd or cluster mode's
//! PostgreSQL store, and every other module uses it the same way without knowing which. An
//! enum rather than a trait object: the set of backends is closed, the methods include
//! async and generic ones (which a `dyn` trait cannot carry without boxing each), and a
//! match costs nothing next to a disk or network write. Both backends have every method
//! under the same signature; the `on!` macro below calls whichever runs.

use super::fasten::{Connection, ExportRecord, ResourceIndexer, ResourceLoc};
use super::pg::{PgOptions, PgStore};
use super::snapshot::CopySummary;
use super::{
    Accepted, Attempt, Count, Delivery, DeliveryDraft, DeliveryFilter, DeliveryPage, Event,
    EventFilter, EventPage, HourCounts, LastPrune, NewEvent, Next, Original, PruneBatch, PruneTurn,
    ReplayError, Respond, Result, SledStore, Stats, StoreError,
};
use std::path::Path;
use tokio::sync::Notify;

enum Backend {
    Sled(SledStore),
    Pg(PgStore),
}

/// Why cluster mode has no backup into a directory.
const PG_BACKUP: &str = "in cluster mode the data is in PostgreSQL: back it up with PostgreSQL's \
                         tools (pg_dump, pg_basebackup, a standby); see docs/cluster.md";

/// The hookd data store. Share it as `Arc<Store>`.
pub struct Store {
    backend: Backend,
}

/// Calls the same method on whichever backend runs.
macro_rules! on {
    ($self:ident, $s:ident => $call:expr) => {
        match &$self.backend {
            Backend::Sled($s) => $call,
            Backend::Pg($s) => $call,
        }
    };
}

impl Store {
    /// Opens (or creates) the embedded store in `dir`, migrating an older data format in
    /// place first (see [`SledStore::open`]).
    pub fn open(dir: &Path, cache_mb: u64) -> Result<Store> {
        Ok(Store {
            backend: Backend::Sled(SledStore::open(dir, cache_mb)?),
        })
    }

    /// Connects to cluster mode's PostgreSQL database (see [`PgStore::open`]).
    pub fn open_postgres(options: &PgOptions) -> Result<Store> {
        Ok(Store {
            backend: Backend::Pg(PgStore::open(options)?),
        })
    }

    /// The PostgreSQL store, when it runs: for cluster mode's own tests and tools.
    #[doc(hidden)]
    pub fn postgres(&self) -> Option<&PgStore> {
        match &self.backend {
            Backend::Pg(p) => Some(p),
            Backend::Sled(_) => None,
        }
    }

    /// How many readers (admin requests) may use the store at once without starving its
    /// writer: the acks come first.
    pub fn read_concurrency(&self) -> usize {
        on!(self, s => s.read_concurrency())
    }

    pub async fn flush(&self) -> Result<()> {
        on!(self, s => s.flush().await)
    }
    pub fn work_notify(&self) -> &Notify {
        on!(self, s => s.work_notify())
    }
    pub fn health(&self) -> std::result::Result<(), String> {
        on!(self, s => s.health())
    }
    pub fn index_now(&self) -> Result<()> {
        on!(self, s => s.index_now())
    }
    #[doc(hidden)]
    pub fn crash_writer(&self) {
        on!(self, s => s.crash_writer())
    }

    // Receiving.
    pub fn backlog(&self) -> u64 {
        on!(self, s => s.backlog())
    }
    pub fn record(&self, draft: DeliveryDraft) -> Result<u64> {
        on!(self, s => s.record(draft))
    }
    pub async fn record_durable(&self, draft: DeliveryDraft) -> Result<u64> {
        on!(self, s => s.record_durable(draft).await)
    }
    pub fn count_unlogged_rejection(&self) -> Result<()> {
        on!(self, s => s.count_unlogged_rejection())
    }
    pub async fn accept(
        &self,
        draft: DeliveryDraft,
        event: NewEvent,
        respond: Respond,
    ) -> Result<Accepted> {
        on!(self, s => s.accept(draft, event, respond).await)
    }
    pub fn set_latency(&self, delivery_id: u64, micros: u64) -> Result<()> {
        on!(self, s => s.set_latency(delivery_id, micros))
    }

    // The queue.
    pub fn next_due(&self) -> Result<Option<u64>> {
        on!(self, s => s.next_due())
    }
    pub async fn claim(&self, now_ms: u64, max: usize) -> Result<Vec<(Event, bytes::Bytes)>> {
        on!(self, s => s.claim(now_ms, max).await)
    }
    pub fn finish(&self, seq: u64, attempt: Attempt, next: Next) -> Result<()> {
        on!(self, s => s.finish(seq, attempt, next))
    }
    pub fn finishes_pending(&self) -> bool {
        on!(self, s => s.finishes_pending())
    }
    pub fn requeue_inflight(&self, now_ms: u64) -> Result<usize> {
        on!(self, s => s.requeue_inflight(now_ms))
    }
    pub fn replay(&self, seq: u64, now_ms: u64) -> Result<Event, ReplayError> {
        on!(self, s => s.replay(seq, now_ms))
    }

    // Browsing.
    pub fn delivery(&self, id: u64) -> Result<Option<Delivery>> {
        on!(self, s => s.delivery(id))
    }
    pub fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<DeliveryPage> {
        on!(self, s => s.list_deliveries(filter, before, limit))
    }
    pub fn event(&self, seq: u64) -> Result<Option<Event>> {
        on!(self, s => s.event(seq))
    }
    pub fn payload(&self, seq: u64) -> Result<Option<bytes::Bytes>> {
        on!(self, s => s.payload(seq))
    }
    pub fn attempts(&self, seq: u64) -> Result<Vec<Attempt>> {
        on!(self, s => s.attempts(seq))
    }
    /// The instance that made each attempt, by number: cluster mode's; empty for the
    /// embedded store (one hookd made them all).
    pub fn attempt_instances(&self, seq: u64) -> Result<Vec<(u32, String)>> {
        match &self.backend {
            Backend::Pg(p) => Ok(p
                .attempts_by_instance(seq)?
                .into_iter()
                .map(|(a, instance)| (a.number, instance))
                .collect()),
            Backend::Sled(_) => Ok(Vec::new()),
        }
    }
    pub fn find_event(&self, endpoint: &str, event_id: &str) -> Result<Option<u64>> {
        on!(self, s => s.find_event(endpoint, event_id))
    }
    pub fn list_events(
        &self,
        filter: &EventFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<EventPage> {
        on!(self, s => s.list_events(filter, before, limit))
    }
    /// Deliveries per hour and verdict for the hours starting at `from_hour` up to and
    /// including `to_hour` (hours since the epoch).
    pub fn hourly_counts(&self, from_hour: u64, to_hour: u64) -> Result<Vec<HourCounts>> {
        let hours = to_hour.saturating_sub(from_hour) + 1;
        self.bucket_counts(from_hour * 3_600_000, 3_600_000, hours)
    }
    pub fn bucket_counts(
        &self,
        from_ms: u64,
        bucket_ms: u64,
        buckets: u64,
    ) -> Result<Vec<HourCounts>> {
        on!(self, s => s.bucket_counts(from_ms, bucket_ms, buckets))
    }
    pub fn count_deliveries(&self, filter: &DeliveryFilter) -> Result<Count> {
        on!(self, s => s.count_deliveries(filter))
    }
    pub fn event_types(&self) -> Result<Vec<String>> {
        on!(self, s => s.event_types())
    }
    pub fn original(&self, id: u64) -> Result<Option<Original>> {
        on!(self, s => s.original(id))
    }
    pub fn full_body(&self, id: u64) -> Result<Option<bytes::Bytes>> {
        on!(self, s => s.full_body(id))
    }
    pub fn stats(&self, now_ms: u64) -> Result<Stats> {
        on!(self, s => s.stats(now_ms))
    }

    // Retention.
    /// This instance's turn to prune, or `None` while another instance (cluster mode) has
    /// it: that instance's run covers this one.
    pub fn prune_turn(&self) -> Result<Option<PruneTurn>> {
        on!(self, s => s.prune_turn())
    }
    /// Keeps what a finished prune did where every instance reads it (cluster mode).
    pub fn record_prune(&self, prune: &LastPrune) -> Result<()> {
        on!(self, s => s.record_prune(prune))
    }
    /// The last prune of the shared store, whichever instance ran it (cluster mode); `None`
    /// where each instance keeps its own figures.
    pub fn shared_last_prune(&self) -> Result<Option<LastPrune>> {
        on!(self, s => s.shared_last_prune())
    }
    pub fn prune_deliveries(
        &self,
        turn: &PruneTurn,
        cutoff_ms: u64,
        from: u64,
        max: usize,
    ) -> Result<PruneBatch> {
        on!(self, s => s.prune_deliveries(turn, cutoff_ms, from, max))
    }
    pub fn prune_events(
        &self,
        turn: &PruneTurn,
        cutoff_ms: u64,
        from: u64,
        max: usize,
    ) -> Result<PruneBatch> {
        on!(self, s => s.prune_events(turn, cutoff_ms, from, max))
    }

    // Fasten Connect.
    pub fn connection(&self, id: &str) -> Result<Option<Connection>> {
        on!(self, s => s.connection(id))
    }
    pub fn connections(&self) -> Result<Vec<Connection>> {
        on!(self, s => s.connections())
    }
    pub fn update_connection<T>(
        &self,
        id: &str,
        change: impl FnMut(&mut Connection) -> T,
    ) -> Result<(Connection, T)> {
        on!(self, s => s.update_connection(id, change))
    }
    pub fn resource_indexer(&self, connection: &str) -> Result<ResourceIndexer> {
        on!(self, s => s.resource_indexer(connection))
    }
    pub async fn put_export(&self, record: &ExportRecord) -> Result<()> {
        on!(self, s => s.put_export(record).await)
    }
    pub fn export(&self, connection: &str, task_id: &str) -> Result<Option<ExportRecord>> {
        on!(self, s => s.export(connection, task_id))
    }
    pub fn export_by_task(&self, task_id: &str) -> Result<Option<ExportRecord>> {
        on!(self, s => s.export_by_task(task_id))
    }
    pub fn exports(&self, connection: &str) -> Result<Vec<ExportRecord>> {
        on!(self, s => s.exports(connection))
    }
    pub fn resource(
        &self,
        connection: &str,
        resource_type: &str,
        id: &str,
    ) -> Result<Option<ResourceLoc>> {
        on!(self, s => s.resource(connection, resource_type, id))
    }
    pub async fn remove_connection_data(
        &self,
        connection: &str,
    ) -> Result<(Vec<ExportRecord>, u64)> {
        on!(self, s => s.remove_connection_data(connection).await)
    }
    pub fn remove_export_data(&self, connection: &str, task_id: &str) -> Result<u64> {
        on!(self, s => s.remove_export_data(connection, task_id))
    }

    // Web UI sessions: in memory on one machine, in the database in cluster mode (so a user
    // stays logged in whichever instance answers).
    pub fn put_session(&self, id: &str, csrf: &str, expires_at_ms: u64) -> Result<()> {
        on!(self, s => s.put_session(id, csrf, expires_at_ms))
    }
    /// The CSRF token of session `id`, while it lives.
    pub fn session(&self, id: &str, now_ms: u64) -> Result<Option<String>> {
        on!(self, s => s.session(id, now_ms))
    }
    pub fn remove_session(&self, id: &str) -> Result<()> {
        on!(self, s => s.remove_session(id))
    }

    /// Loads this embedded store's history into `target`, an empty cluster database
    /// (`hookd copy-store`). `progress` hears each kind of record as it goes.
    pub fn copy_to_postgres(
        &self,
        target: &Store,
        progress: impl FnMut(&str, u64),
    ) -> Result<super::pg::CopyReport> {
        match (&self.backend, &target.backend) {
            (Backend::Sled(from), Backend::Pg(to)) => to.copy_from(from, progress),
            _ => Err(StoreError::Settings(
                "copy-store copies an embedded store into a PostgreSQL database".into(),
            )),
        }
    }

    /// A consistent copy of the embedded store into `dest`. Cluster mode's data is the
    /// database's to back up, with its own tools.
    pub fn backup_to(&self, dest: &Path) -> Result<CopySummary> {
        match &self.backend {
            Backend::Sled(s) => s.backup_to(dest),
            Backend::Pg(_) => Err(StoreError::Settings(PG_BACKUP.into())),
        }
    }

    /// Why this store cannot be backed up into a directory (`backup_to`), if it cannot: the
    /// API answers it before it makes the backup's directory.
    pub fn backup_refusal(&self) -> Option<&'static str> {
        match &self.backend {
            Backend::Sled(_) => None,
            Backend::Pg(_) => Some(PG_BACKUP),
        }
    }
}
