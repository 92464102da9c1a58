//! [`Lag`]: holds writes back to inject replication or invalidation lag.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::query::Filter;
use crate::store::{EntityInfo, StoreQuery, WriteOp, WriteOutcome};
use crate::{Capabilities, Key, Record, Result, Store};

/// Wraps a store; while [paused](Lag::pause), record writes
/// ([`Store::write`]) are queued instead of
/// applied (the call answers at once, with a placeholder outcome: version 0
/// for a put, `existed: true` for a delete), and [`resume`](Lag::resume)
/// applies them in order. Reads always see the inner store as it is — so a
/// paused cache keeps serving entries whose invalidation is still queued,
/// and a paused replica keeps serving old versions.
///
/// As a replica it reports its lag ([`Store::replica_lag`]) truthfully:
/// the time since the oldest write still queued, zero when none is.
///
/// A test layer: the placeholder outcomes are not real answers. It is not
/// built on [`Layered`](crate::layers::Layered) because it answers writes
/// without running them; every other call, and every extra trait, goes to
/// the inner store unchanged.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use polyrouter::{backends::memory::MemoryStore, layers::testing::Lag};
/// let lag = Lag::new(MemoryStore::new("replica"));
/// lag.pause();
/// assert_eq!(lag.queued(), 0);
/// lag.resume().await.unwrap();
/// # });
/// ```
#[derive(Debug)]
pub struct Lag<S> {
    inner: S,
    paused: AtomicBool,
    queue: Mutex<Vec<Queued>>,
}

/// A write held back, and since when.
#[derive(Debug)]
struct Queued {
    since: Instant,
    entity: EntityInfo,
    ops: Vec<WriteOp>,
    atomic: bool,
}

impl<S: Store> Lag<S> {
    /// Wraps `inner`, not paused.
    ///
    /// ```
    /// let _l = polyrouter::layers::testing::Lag::new(polyrouter::backends::memory::MemoryStore::new("m"));
    /// ```
    pub fn new(inner: S) -> Self {
        Lag {
            inner,
            paused: AtomicBool::new(false),
            queue: Mutex::new(Vec::new()),
        }
    }

    /// Queues writes from now on.
    ///
    /// ```
    /// polyrouter::layers::testing::Lag::new(polyrouter::backends::memory::MemoryStore::new("m")).pause();
    /// ```
    pub fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
    }

    /// How many write calls wait in the queue.
    ///
    /// ```
    /// assert_eq!(polyrouter::layers::testing::Lag::new(polyrouter::backends::memory::MemoryStore::new("m")).queued(), 0);
    /// ```
    pub fn queued(&self) -> usize {
        self.queue.lock().len()
    }

    /// Applies the queued writes in order and stops queueing. The first
    /// failing write's error is returned after the rest were tried.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// polyrouter::layers::testing::Lag::new(polyrouter::backends::memory::MemoryStore::new("m")).resume().await.unwrap();
    /// # });
    /// ```
    pub async fn resume(&self) -> Result<()> {
        self.paused.store(false, Ordering::SeqCst);
        let queued = std::mem::take(&mut *self.queue.lock());
        let mut first = None;
        for Queued {
            entity,
            ops,
            atomic,
            ..
        } in queued
        {
            if let Err(e) = self.inner.write(&entity, ops, atomic).await {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl<S> Lag<S> {
    /// The wrapped store.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use polyrouter::{backends::memory::MemoryStore, Store};
    /// # let s: Arc<dyn Store> = Arc::new(MemoryStore::new("m"));
    /// # let l = polyrouter::layers::testing::Lag::new(MemoryStore::new("m"));
    /// assert_eq!(l.inner().name(), "m");
    /// ```
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

#[async_trait]
impl<S: Store> Store for Lag<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    fn location(&self) -> String {
        self.inner.location()
    }
    fn namespace(&self) -> crate::store::namespace::Namespace {
        self.inner.namespace()
    }
    async fn ensure_entity(&self, entity: &EntityInfo) -> Result<()> {
        self.inner.ensure_entity(entity).await
    }
    async fn drop_entity(&self, entity: &EntityInfo) -> Result<()> {
        self.inner.drop_entity(entity).await
    }
    async fn get(&self, entity: &EntityInfo, key: &Key) -> Result<Option<Record>> {
        self.inner.get(entity, key).await
    }
    async fn get_many(&self, entity: &EntityInfo, keys: &[Key]) -> Result<Vec<Option<Record>>> {
        self.inner.get_many(entity, keys).await
    }
    async fn write(
        &self,
        entity: &EntityInfo,
        ops: Vec<WriteOp>,
        atomic: bool,
    ) -> Result<Vec<WriteOutcome>> {
        if self.paused.load(Ordering::SeqCst) {
            let outcomes = ops
                .iter()
                .map(|op| match op {
                    WriteOp::Put { .. } => WriteOutcome::Written { version: 0 },
                    WriteOp::Delete { .. } => WriteOutcome::Deleted { existed: true },
                })
                .collect();
            self.queue.lock().push(Queued {
                since: Instant::now(),
                entity: entity.clone(),
                ops,
                atomic,
            });
            return Ok(outcomes);
        }
        self.inner.write(entity, ops, atomic).await
    }
    async fn apply_versioned(
        &self,
        entity: &EntityInfo,
        changes: Vec<crate::store::VersionedChange>,
    ) -> Result<Vec<crate::store::Applied>> {
        self.inner.apply_versioned(entity, changes).await
    }
    async fn outbox_fetch(
        &self,
        entity: &EntityInfo,
        max: usize,
    ) -> Result<Vec<crate::store::OutboxEntry>> {
        self.inner.outbox_fetch(entity, max).await
    }
    async fn outbox_remove(&self, entity: &EntityInfo, ids: &[String]) -> Result<()> {
        self.inner.outbox_remove(entity, ids).await
    }
    async fn outbox_len(&self, entity: &EntityInfo) -> Result<u64> {
        self.inner.outbox_len(entity).await
    }
    fn change_source(
        &self,
        entity: &EntityInfo,
        slot: &str,
    ) -> Result<std::sync::Arc<dyn crate::sync::capture::ChangeSource>> {
        self.inner.change_source(entity, slot)
    }
    async fn query(&self, entity: &EntityInfo, query: &StoreQuery) -> Result<Vec<Record>> {
        self.inner.query(entity, query).await
    }
    async fn count(&self, entity: &EntityInfo, filter: Option<&Filter>) -> Result<u64> {
        self.inner.count(entity, filter).await
    }
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
    async fn replica_lag(&self) -> Result<Duration> {
        let oldest = self.queue.lock().first().map(|q| q.since);
        Ok(oldest.map_or(Duration::ZERO, |t| t.elapsed()))
    }
    fn as_kv(&self) -> Option<&dyn crate::store::kv::KvStore> {
        self.inner.as_kv()
    }
    fn as_graph(&self) -> Option<&dyn crate::store::graph::GraphStore> {
        self.inner.as_graph()
    }
    fn as_time_series(&self) -> Option<&dyn crate::store::timeseries::TimeSeriesStore> {
        self.inner.as_time_series()
    }
    fn as_blob(&self) -> Option<&dyn crate::store::blob::BlobStore> {
        self.inner.as_blob()
    }
    fn as_search(&self) -> Option<&dyn crate::store::search::SearchStore> {
        self.inner.as_search()
    }
}
