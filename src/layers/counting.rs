//! [`Counting`]: counts the calls reaching a store.

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use crate::query::Filter;
use crate::store::{EntityInfo, StoreQuery, WriteOp, WriteOutcome};
use crate::{Capabilities, Key, Record, Result, Store};

/// A snapshot of the calls a [`Counting`] store has seen.
///
/// ```
/// let c = polyrouter::layers::Counts::default();
/// assert_eq!(c.reads(), 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// `get` calls.
    pub gets: u64,
    /// `get_many` calls.
    pub get_manys: u64,
    /// Keys asked for by `get_many` calls, in total.
    pub keys_read: u64,
    /// `write` calls (each batch counts once).
    pub writes: u64,
    /// `query` calls.
    pub queries: u64,
    /// `count` calls.
    pub counts: u64,
}

impl Counts {
    /// Every read call: `get` + `get_many` + `query` + `count`.
    ///
    /// ```
    /// let c = polyrouter::layers::Counts { gets: 2, queries: 1, ..Default::default() };
    /// assert_eq!(c.reads(), 3);
    /// ```
    pub fn reads(&self) -> u64 {
        self.gets + self.get_manys + self.queries + self.counts
    }
}

/// Wraps a store and counts the calls that reach it.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use polyrouter::{backends::memory::MemoryStore, layers::Counting, Store};
/// let store = Counting::new(MemoryStore::new("m"));
/// store.ping().await.unwrap();
/// assert_eq!(store.counts().reads(), 0);
/// store.reset();
/// # });
/// ```
#[derive(Debug)]
pub struct Counting<S> {
    inner: S,
    gets: AtomicU64,
    get_manys: AtomicU64,
    keys_read: AtomicU64,
    writes: AtomicU64,
    queries: AtomicU64,
    counts: AtomicU64,
}

impl<S: Store> Counting<S> {
    /// Wraps `inner`.
    ///
    /// ```
    /// let _c = polyrouter::layers::Counting::new(polyrouter::backends::memory::MemoryStore::new("m"));
    /// ```
    pub fn new(inner: S) -> Self {
        Counting {
            inner,
            gets: AtomicU64::new(0),
            get_manys: AtomicU64::new(0),
            keys_read: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            queries: AtomicU64::new(0),
            counts: AtomicU64::new(0),
        }
    }

    /// The calls counted so far.
    ///
    /// ```
    /// let c = polyrouter::layers::Counting::new(polyrouter::backends::memory::MemoryStore::new("m"));
    /// assert_eq!(c.counts().writes, 0);
    /// ```
    pub fn counts(&self) -> Counts {
        let l = |a: &AtomicU64| a.load(Ordering::SeqCst);
        Counts {
            gets: l(&self.gets),
            get_manys: l(&self.get_manys),
            keys_read: l(&self.keys_read),
            writes: l(&self.writes),
            queries: l(&self.queries),
            counts: l(&self.counts),
        }
    }

    /// Sets every counter back to zero.
    ///
    /// ```
    /// let c = polyrouter::layers::Counting::new(polyrouter::backends::memory::MemoryStore::new("m"));
    /// c.reset();
    /// ```
    pub fn reset(&self) {
        for a in [
            &self.gets,
            &self.get_manys,
            &self.keys_read,
            &self.writes,
            &self.queries,
            &self.counts,
        ] {
            a.store(0, Ordering::SeqCst);
        }
    }

    /// The wrapped store.
    ///
    /// ```
    /// use polyrouter::Store;
    /// let c = polyrouter::layers::Counting::new(polyrouter::backends::memory::MemoryStore::new("m"));
    /// assert_eq!(c.inner().name(), "m");
    /// ```
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

#[async_trait]
impl<S: Store> Store for Counting<S> {
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
    async fn get(&self, entity: &EntityInfo, key: &Key) -> Result<Option<Record>> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(entity, key).await
    }
    async fn get_many(&self, entity: &EntityInfo, keys: &[Key]) -> Result<Vec<Option<Record>>> {
        self.get_manys.fetch_add(1, Ordering::SeqCst);
        self.keys_read
            .fetch_add(keys.len() as u64, Ordering::SeqCst);
        self.inner.get_many(entity, keys).await
    }
    async fn write(
        &self,
        entity: &EntityInfo,
        ops: Vec<WriteOp>,
        atomic: bool,
    ) -> Result<Vec<WriteOutcome>> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.write(entity, ops, atomic).await
    }
    async fn query(&self, entity: &EntityInfo, query: &StoreQuery) -> Result<Vec<Record>> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        self.inner.query(entity, query).await
    }
    async fn count(&self, entity: &EntityInfo, filter: Option<&Filter>) -> Result<u64> {
        self.counts.fetch_add(1, Ordering::SeqCst);
        self.inner.count(entity, filter).await
    }
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
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
