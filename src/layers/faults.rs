//! [`Faults`]: a store that can be made to fail or slow down on demand.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::query::Filter;
use crate::store::graph::{
    Edge, EdgeDirection, GraphInfo, GraphStore, NeighbourPage, Properties, Recommendation, Vertex,
};
use crate::store::{EntityInfo, StoreQuery, WriteOp, WriteOutcome};
use crate::{Capabilities, Error, Key, Record, Result, Store};

/// Wraps a store; [`set_down`](Faults::set_down) makes every call fail with
/// the transient [`Error::Unavailable`], [`set_delay`](Faults::set_delay)
/// makes every call wait first — record calls and graph calls
/// ([`Store::as_graph`] returns the wrapper itself). For tests and chaos drills.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use polyrouter::{backends::memory::MemoryStore, layers::Faults, Store};
/// let store = Faults::new(MemoryStore::new("m"));
/// store.set_down(true);
/// assert!(store.ping().await.unwrap_err().is_transient());
/// store.set_down(false);
/// store.ping().await.unwrap();
/// # });
/// ```
#[derive(Debug)]
pub struct Faults<S> {
    inner: S,
    down: AtomicBool,
    delay_us: AtomicU64,
}

impl<S: Store> Faults<S> {
    /// Wraps `inner`, healthy and without delay.
    ///
    /// ```
    /// let _f = polyrouter::layers::Faults::new(polyrouter::backends::memory::MemoryStore::new("m"));
    /// ```
    pub fn new(inner: S) -> Self {
        Faults {
            inner,
            down: AtomicBool::new(false),
            delay_us: AtomicU64::new(0),
        }
    }

    /// Makes every call fail (`true`) or pass through again (`false`).
    ///
    /// ```
    /// let f = polyrouter::layers::Faults::new(polyrouter::backends::memory::MemoryStore::new("m"));
    /// f.set_down(true);
    /// ```
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Makes every call wait `delay` before it runs (zero: no delay).
    ///
    /// ```
    /// let f = polyrouter::layers::Faults::new(polyrouter::backends::memory::MemoryStore::new("m"));
    /// f.set_delay(std::time::Duration::from_millis(5));
    /// ```
    pub fn set_delay(&self, delay: Duration) {
        self.delay_us
            .store(delay.as_micros() as u64, Ordering::SeqCst);
    }

    async fn enter(&self, entity: &str) -> Result<()> {
        let us = self.delay_us.load(Ordering::SeqCst);
        if us > 0 {
            tokio::time::sleep(Duration::from_micros(us)).await;
        }
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::unavailable(
                self.inner.name(),
                entity,
                "the store is down (fault injected by layers::Faults)",
            ));
        }
        Ok(())
    }
}

impl<S> Faults<S> {
    /// The wrapped store.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use polyrouter::{backends::memory::MemoryStore, Store};
    /// # let s: Arc<dyn Store> = Arc::new(MemoryStore::new("m"));
    /// # let l = polyrouter::layers::Faults::new(MemoryStore::new("m"));
    /// assert_eq!(l.inner().name(), "m");
    /// ```
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

#[async_trait]
impl<S: Store> Store for Faults<S> {
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
        self.enter(entity.name()).await?;
        self.inner.get(entity, key).await
    }
    async fn get_many(&self, entity: &EntityInfo, keys: &[Key]) -> Result<Vec<Option<Record>>> {
        self.enter(entity.name()).await?;
        self.inner.get_many(entity, keys).await
    }
    async fn write(
        &self,
        entity: &EntityInfo,
        ops: Vec<WriteOp>,
        atomic: bool,
    ) -> Result<Vec<WriteOutcome>> {
        self.enter(entity.name()).await?;
        self.inner.write(entity, ops, atomic).await
    }
    async fn query(&self, entity: &EntityInfo, query: &StoreQuery) -> Result<Vec<Record>> {
        self.enter(entity.name()).await?;
        self.inner.query(entity, query).await
    }
    async fn count(&self, entity: &EntityInfo, filter: Option<&Filter>) -> Result<u64> {
        self.enter(entity.name()).await?;
        self.inner.count(entity, filter).await
    }
    async fn ping(&self) -> Result<()> {
        self.enter("").await?;
        self.inner.ping().await
    }
    fn as_kv(&self) -> Option<&dyn crate::store::kv::KvStore> {
        self.inner.as_kv()
    }
    fn as_graph(&self) -> Option<&dyn GraphStore> {
        // Graph calls go through the wrapper, so they fail and wait too.
        self.inner.as_graph().map(|_| self as &dyn GraphStore)
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

impl<S: Store> Faults<S> {
    fn graph_api(&self) -> &dyn GraphStore {
        self.inner
            .as_graph()
            .expect("Faults::as_graph returns the wrapper only when the inner store has graphs")
    }
}

#[async_trait]
impl<S: Store> GraphStore for Faults<S> {
    async fn ensure_graph(&self, graph: &GraphInfo) -> Result<()> {
        self.graph_api().ensure_graph(graph).await
    }
    async fn add_vertex(&self, graph: &GraphInfo, vertex: &Vertex) -> Result<()> {
        self.enter(&graph.entity()).await?;
        self.graph_api().add_vertex(graph, vertex).await
    }
    async fn update_vertex(
        &self,
        graph: &GraphInfo,
        id: &str,
        properties: &Properties,
    ) -> Result<()> {
        self.enter(&graph.entity()).await?;
        self.graph_api().update_vertex(graph, id, properties).await
    }
    async fn get_vertex(&self, graph: &GraphInfo, id: &str) -> Result<Option<Vertex>> {
        self.enter(&graph.entity()).await?;
        self.graph_api().get_vertex(graph, id).await
    }
    async fn remove_vertex(&self, graph: &GraphInfo, id: &str) -> Result<bool> {
        self.enter(&graph.entity()).await?;
        self.graph_api().remove_vertex(graph, id).await
    }
    async fn link(&self, graph: &GraphInfo, edge: &Edge) -> Result<bool> {
        self.enter(&graph.entity()).await?;
        self.graph_api().link(graph, edge).await
    }
    async fn link_many(&self, graph: &GraphInfo, edges: &[Edge]) -> Result<u64> {
        self.enter(&graph.entity()).await?;
        self.graph_api().link_many(graph, edges).await
    }
    async fn unlink(&self, graph: &GraphInfo, src: &str, label: &str, dst: &str) -> Result<bool> {
        self.enter(&graph.entity()).await?;
        self.graph_api().unlink(graph, src, label, dst).await
    }
    async fn get_edge(
        &self,
        graph: &GraphInfo,
        src: &str,
        label: &str,
        dst: &str,
    ) -> Result<Option<Edge>> {
        self.enter(&graph.entity()).await?;
        self.graph_api().get_edge(graph, src, label, dst).await
    }
    async fn neighbours(
        &self,
        graph: &GraphInfo,
        id: &str,
        label: &str,
        direction: EdgeDirection,
        limit: usize,
        after: Option<&str>,
    ) -> Result<NeighbourPage> {
        self.enter(&graph.entity()).await?;
        self.graph_api()
            .neighbours(graph, id, label, direction, limit, after)
            .await
    }
    async fn degree(
        &self,
        graph: &GraphInfo,
        id: &str,
        label: &str,
        direction: EdgeDirection,
    ) -> Result<u64> {
        self.enter(&graph.entity()).await?;
        self.graph_api().degree(graph, id, label, direction).await
    }
    async fn mutual(&self, graph: &GraphInfo, id: &str, label: &str) -> Result<Vec<String>> {
        self.enter(&graph.entity()).await?;
        self.graph_api().mutual(graph, id, label).await
    }
    async fn common(
        &self,
        graph: &GraphInfo,
        a: &str,
        b: &str,
        label: &str,
        direction: EdgeDirection,
    ) -> Result<Vec<String>> {
        self.enter(&graph.entity()).await?;
        self.graph_api().common(graph, a, b, label, direction).await
    }
    async fn recommend(
        &self,
        graph: &GraphInfo,
        id: &str,
        label: &str,
        limit: usize,
    ) -> Result<Vec<Recommendation>> {
        self.enter(&graph.entity()).await?;
        self.graph_api().recommend(graph, id, label, limit).await
    }
    async fn shortest_path(
        &self,
        graph: &GraphInfo,
        from: &str,
        to: &str,
        label: &str,
        max_depth: usize,
    ) -> Result<Option<Vec<String>>> {
        self.enter(&graph.entity()).await?;
        self.graph_api()
            .shortest_path(graph, from, to, label, max_depth)
            .await
    }
}
