//! [`Mirror`]: applies a primary's writes to a replica too.

use std::sync::Arc;

use async_trait::async_trait;

use crate::query::Filter;
use crate::store::{EntityInfo, StoreQuery, WriteOp, WriteOutcome};
use crate::{Capabilities, Key, Precondition, Record, Result, Store};

/// Wraps a primary store; every successful write is applied to `replica`
/// as well, in the same order and without preconditions (they held on the
/// primary), so the replica's versions follow the primary's. Entities are
/// prepared on both. Reads go to the primary only.
///
/// A stand-in for the sync layer's read-model projections: put the replica
/// in a [`Lag`](super::Lag) to make it fall behind on demand. A replica
/// write that fails is logged, never fails the primary write.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::sync::Arc;
/// use polyrouter::{backends::memory::MemoryStore, layers::Mirror, Store};
/// let replica: Arc<dyn Store> = Arc::new(MemoryStore::new("replica"));
/// let primary = Mirror::new(MemoryStore::new("main"), replica.clone());
/// assert_eq!(primary.name(), "main");
/// # });
/// ```
#[derive(Debug)]
pub struct Mirror<S> {
    inner: S,
    replica: Arc<dyn Store>,
}

impl<S: Store> Mirror<S> {
    /// Mirrors `inner`'s writes to `replica`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use polyrouter::backends::memory::MemoryStore;
    /// let _m = polyrouter::layers::Mirror::new(MemoryStore::new("a"), Arc::new(MemoryStore::new("b")));
    /// ```
    pub fn new(inner: S, replica: Arc<dyn Store>) -> Self {
        Mirror { inner, replica }
    }
}

impl<S> Mirror<S> {
    /// The wrapped store.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use polyrouter::{backends::memory::MemoryStore, Store};
    /// # let s: Arc<dyn Store> = Arc::new(MemoryStore::new("m"));
    /// # let l = polyrouter::layers::Mirror::new(MemoryStore::new("m"), s);
    /// assert_eq!(l.inner().name(), "m");
    /// ```
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

#[async_trait]
impl<S: Store> Store for Mirror<S> {
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
        self.inner.ensure_entity(entity).await?;
        let mut on_replica = entity.clone();
        on_replica.store = self.replica.name().to_string();
        self.replica.ensure_entity(&on_replica).await
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
        let mirrored: Vec<WriteOp> = ops
            .iter()
            .cloned()
            .map(|mut op| {
                match &mut op {
                    WriteOp::Put { precondition, .. } | WriteOp::Delete { precondition, .. } => {
                        *precondition = Precondition::None
                    }
                }
                op
            })
            .collect();
        let out = self.inner.write(entity, ops, atomic).await?;
        let mut on_replica = entity.clone();
        on_replica.store = self.replica.name().to_string();
        if let Err(e) = self.replica.write(&on_replica, mirrored, false).await {
            tracing::warn!(replica = self.replica.name(), error = %e, "mirroring a write to the replica failed");
        }
        Ok(out)
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
}
