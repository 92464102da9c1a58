//! [`Layered`]: a store wrapped in a [`Policy`], forwarding every
//! operation of every store trait through the policy's one hook.

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::call::{Call, Idempotency, Operation, Target};
use crate::query::Filter;
use crate::store::blob::{
    Blob, BlobCondition, BlobMeta, BlobStore, ByteStream, ListOptions, ListPage, PutOptions,
};
use crate::store::graph::{
    Edge, EdgeDirection, GraphInfo, GraphStore, NeighbourPage, Properties, Recommendation, Vertex,
};
use crate::store::kv::KvStore;
use crate::store::search::{SearchIndex, SearchRequest, SearchResults, SearchStore};
use crate::store::timeseries::{Bucket, Point, SeriesInfo, SeriesScan, TimeSeriesStore};
use crate::store::{
    Applied, EntityInfo, OutboxEntry, StoreQuery, VersionedChange, WriteOp, WriteOutcome,
};
use crate::{Capabilities, Error, FilterCaps, Key, Record, Result, Store};

/// What a call returned, as far as a layer needs to know: how many rows
/// (records, ops, hits, ids, points) it carried, for spans and metrics.
///
/// ```
/// use polyrouter::layers::Outcome;
/// assert_eq!(vec![1, 2, 3].rows(), Some(3));
/// assert_eq!(Some(1).rows(), Some(1));
/// assert_eq!(true.rows(), None);
/// ```
pub trait Outcome: Send {
    /// Rows returned or written, when the result has rows.
    fn rows(&self) -> Option<u64>;
}

impl<T: Send> Outcome for Vec<T> {
    fn rows(&self) -> Option<u64> {
        Some(self.len() as u64)
    }
}

impl<T: Send> Outcome for Option<T> {
    fn rows(&self) -> Option<u64> {
        Some(u64::from(self.is_some()))
    }
}

impl Outcome for u64 {
    fn rows(&self) -> Option<u64> {
        Some(*self)
    }
}

macro_rules! no_rows {
    ($($t:ty),*) => { $(impl Outcome for $t { fn rows(&self) -> Option<u64> { None } })* };
}
no_rows!((), bool, i64, String, Duration, Applied);

impl Outcome for NeighbourPage {
    fn rows(&self) -> Option<u64> {
        Some(self.ids.len() as u64)
    }
}

impl Outcome for ListPage {
    fn rows(&self) -> Option<u64> {
        Some(self.blobs.len() as u64)
    }
}

impl Outcome for SearchResults {
    fn rows(&self) -> Option<u64> {
        Some(self.hits.len() as u64)
    }
}

impl Outcome for BlobMeta {
    fn rows(&self) -> Option<u64> {
        Some(1)
    }
}

/// What a layer does around each store call: one hook, `around`, that
/// gets the [`Call`] and a function that runs it (as often as the policy
/// wants: a retry runs it again, a breaker not at all). Wrap a store with
/// [`Layered::wrap`] and every operation of every store trait — records,
/// key-value, graph, blob, search, time series — goes through the hook.
///
/// Tuples compose: `(A, B)` runs `A` around `B` around the call; `None`
/// (an `Option<P>`) and `()` let calls through untouched.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::future::Future;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use polyrouter::layers::{Call, Layered, Outcome, Policy};
/// use polyrouter::{backends::memory::MemoryStore, Result, Store};
///
/// #[derive(Debug, Default)]
/// struct CountPings(AtomicU64);
///
/// impl Policy for CountPings {
///     fn around<'a, T, F, Fut>(&'a self, call: &'a Call<'a>, run: F) -> impl Future<Output = Result<T>> + Send + 'a
///     where
///         T: Outcome + 'a,
///         F: Fn() -> Fut + Send + Sync + 'a,
///         Fut: Future<Output = Result<T>> + Send + 'a,
///     {
///         if call.operation.name() == "ping" {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///         run()
///     }
/// }
///
/// let store = Layered::wrap(MemoryStore::new("m"), CountPings::default());
/// store.ping().await.unwrap();
/// assert_eq!(store.policy().0.load(Ordering::Relaxed), 1);
/// # });
/// ```
pub trait Policy: Send + Sync + fmt::Debug + 'static {
    /// Runs `call` by calling `run` (zero, one or more times) and returns
    /// what the caller gets.
    fn around<'a, T, F, Fut>(
        &'a self,
        call: &'a Call<'a>,
        run: F,
    ) -> impl Future<Output = Result<T>> + Send + 'a
    where
        T: Outcome + 'a,
        F: Fn() -> Fut + Send + Sync + 'a,
        Fut: Future<Output = Result<T>> + Send + 'a;
}

impl Policy for () {
    fn around<'a, T, F, Fut>(
        &'a self,
        _call: &'a Call<'a>,
        run: F,
    ) -> impl Future<Output = Result<T>> + Send + 'a
    where
        T: Outcome + 'a,
        F: Fn() -> Fut + Send + Sync + 'a,
        Fut: Future<Output = Result<T>> + Send + 'a,
    {
        run()
    }
}

impl<P: Policy> Policy for Option<P> {
    fn around<'a, T, F, Fut>(
        &'a self,
        call: &'a Call<'a>,
        run: F,
    ) -> impl Future<Output = Result<T>> + Send + 'a
    where
        T: Outcome + 'a,
        F: Fn() -> Fut + Send + Sync + 'a,
        Fut: Future<Output = Result<T>> + Send + 'a,
    {
        match self {
            Some(p) => futures::future::Either::Left(p.around(call, run)),
            None => futures::future::Either::Right(run()),
        }
    }
}

/// Implements [`Policy`] for a tuple: the first element outermost.
macro_rules! tuple_policy {
    ($first:ident $(, $rest:ident)+) => {
        impl<$first: Policy $(, $rest: Policy)+> Policy for ($first, $($rest),+) {
            #[allow(non_snake_case)]
            fn around<'a, T, F, Fut>(
                &'a self,
                call: &'a Call<'a>,
                run: F,
            ) -> impl Future<Output = Result<T>> + Send + 'a
            where
                T: Outcome + 'a,
                F: Fn() -> Fut + Send + Sync + 'a,
                Fut: Future<Output = Result<T>> + Send + 'a,
            {
                let ($first, $($rest),+) = self;
                async move {
                    let run = &run;
                    tuple_policy!(@nest call, run, $first $(, $rest)+)
                }
            }
        }
    };
    (@nest $call:ident, $run:ident, $last:ident) => {
        $last.around($call, $run).await
    };
    (@nest $call:ident, $run:ident, $head:ident $(, $tail:ident)+) => {{
        let inner = || async move { tuple_policy!(@nest $call, $run $(, $tail)+) };
        $head.around($call, &inner).await
    }};
}

tuple_policy!(A, B);
tuple_policy!(A, B, C);
tuple_policy!(A, B, C, D);
tuple_policy!(A, B, C, D, E);
tuple_policy!(A, B, C, D, E, G);

/// A store wrapped in a [`Policy`]. It is itself a [`Store`] and offers
/// every extra trait its inner store offers ([`Store::as_kv`],
/// [`Store::as_graph`], [`Store::as_blob`], [`Store::as_search`],
/// [`Store::as_time_series`] return the wrapper), so the policy sees
/// every call — a layer written once wraps every store kind. Calls that
/// do no I/O (`name`, `capabilities`, `signed_url`, `filter_caps`) go
/// straight through.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use polyrouter::layers::{Layered, Timeout};
/// use polyrouter::{backends::memory::MemoryStore, Store};
/// let store = Layered::wrap(MemoryStore::new("m"), Timeout::new());
/// assert!(store.as_graph().is_some(), "the memory store's graphs are wrapped too");
/// store.ping().await.unwrap();
/// # });
/// ```
#[derive(Debug)]
pub struct Layered<S, P> {
    inner: S,
    policy: P,
}

impl<S, P> Layered<S, P> {
    /// Wraps `inner` in `policy`.
    ///
    /// ```
    /// let s = polyrouter::layers::Layered::wrap(polyrouter::backends::memory::MemoryStore::new("m"), ());
    /// assert_eq!(*s.policy(), ());
    /// ```
    pub fn wrap(inner: S, policy: P) -> Self {
        Layered { inner, policy }
    }

    /// The wrapped store.
    ///
    /// ```
    /// use polyrouter::Store;
    /// let s = polyrouter::layers::Layered::wrap(polyrouter::backends::memory::MemoryStore::new("m"), ());
    /// assert_eq!(s.inner().name(), "m");
    /// ```
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The policy.
    ///
    /// ```
    /// let s = polyrouter::layers::Layered::wrap(polyrouter::backends::memory::MemoryStore::new("m"), ());
    /// let () = *s.policy();
    /// ```
    pub fn policy(&self) -> &P {
        &self.policy
    }
}

impl<S: Store, P: Policy> Layered<S, P> {
    fn call<'a>(&'a self, target: Target<'a>, operation: Operation) -> Call<'a> {
        Call::new(self.inner.name(), self.inner.kind(), target, operation)
    }

    /// [`Store::write`] and [`Store::write_ref`] (one boxed future either way).
    async fn write_slice(
        &self,
        entity: &EntityInfo,
        ops: &[WriteOp],
        atomic: bool,
    ) -> Result<Vec<WriteOutcome>> {
        let mut call = Call::write(
            self.inner.name(),
            self.inner.kind(),
            Target::Entity(entity),
            ops,
            atomic,
        );
        if let [op] = ops {
            call.key = Some(op.key());
        }
        // The ops stay here, seen by the layers (`call.write`); every
        // attempt sends the very same ops, borrowed: a store that writes
        // from borrowed ops copies nothing, one that keeps them (the
        // memory store) copies what it keeps.
        self.policy
            .around(&call, || self.inner.write_ref(entity, ops, atomic))
            .await
    }

    fn missing(&self, what: &str) -> Error {
        Error::unsupported(self.inner.name(), "", what)
    }

    fn kv(&self) -> Result<&dyn KvStore> {
        self.inner
            .as_kv()
            .ok_or_else(|| self.missing("key-value operations"))
    }

    fn graphs(&self) -> Result<&dyn GraphStore> {
        self.inner.as_graph().ok_or_else(|| self.missing("graphs"))
    }

    fn blobs(&self) -> Result<&dyn BlobStore> {
        self.inner.as_blob().ok_or_else(|| self.missing("blobs"))
    }

    fn searches(&self) -> Result<&dyn SearchStore> {
        self.inner.as_search().ok_or_else(|| self.missing("search"))
    }

    fn series(&self) -> Result<&dyn TimeSeriesStore> {
        self.inner
            .as_time_series()
            .ok_or_else(|| self.missing("time series"))
    }
}

#[async_trait]
impl<S: Store, P: Policy> Store for Layered<S, P> {
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
    fn change_source(
        &self,
        entity: &EntityInfo,
        slot: &str,
    ) -> Result<std::sync::Arc<dyn crate::sync::capture::ChangeSource>> {
        self.inner.change_source(entity, slot)
    }
    async fn ensure_entity(&self, entity: &EntityInfo) -> Result<()> {
        let call = self.call(Target::Entity(entity), Operation::EnsureEntity);
        self.policy
            .around(&call, || self.inner.ensure_entity(entity))
            .await
    }
    async fn drop_entity(&self, entity: &EntityInfo) -> Result<()> {
        let call = self.call(Target::Entity(entity), Operation::DropEntity);
        self.policy
            .around(&call, || self.inner.drop_entity(entity))
            .await
    }
    async fn get(&self, entity: &EntityInfo, key: &Key) -> Result<Option<Record>> {
        let mut call = self.call(Target::Entity(entity), Operation::Get);
        call.key = Some(key);
        self.policy
            .around(&call, || self.inner.get(entity, key))
            .await
    }
    async fn get_many(&self, entity: &EntityInfo, keys: &[Key]) -> Result<Vec<Option<Record>>> {
        let call = self
            .call(Target::Entity(entity), Operation::GetMany)
            .items(keys.len());
        self.policy
            .around(&call, || self.inner.get_many(entity, keys))
            .await
    }
    async fn write(
        &self,
        entity: &EntityInfo,
        ops: Vec<WriteOp>,
        atomic: bool,
    ) -> Result<Vec<WriteOutcome>> {
        self.write_slice(entity, &ops, atomic).await
    }
    async fn write_ref(
        &self,
        entity: &EntityInfo,
        ops: &[WriteOp],
        atomic: bool,
    ) -> Result<Vec<WriteOutcome>> {
        self.write_slice(entity, ops, atomic).await
    }
    async fn apply_versioned(
        &self,
        entity: &EntityInfo,
        changes: Vec<VersionedChange>,
    ) -> Result<Vec<Applied>> {
        let mut call = self
            .call(Target::Entity(entity), Operation::ApplyVersioned)
            .items(changes.len());
        if let [c] = changes.as_slice() {
            call.key = Some(&c.key);
        }
        self.policy
            .around(&call, || {
                self.inner.apply_versioned(entity, changes.clone())
            })
            .await
    }
    async fn outbox_fetch(&self, entity: &EntityInfo, max: usize) -> Result<Vec<OutboxEntry>> {
        let call = self.call(Target::Entity(entity), Operation::OutboxFetch);
        self.policy
            .around(&call, || self.inner.outbox_fetch(entity, max))
            .await
    }
    async fn outbox_remove(&self, entity: &EntityInfo, ids: &[String]) -> Result<()> {
        let call = self
            .call(Target::Entity(entity), Operation::OutboxRemove)
            .items(ids.len());
        self.policy
            .around(&call, || self.inner.outbox_remove(entity, ids))
            .await
    }
    async fn outbox_len(&self, entity: &EntityInfo) -> Result<u64> {
        let call = self.call(Target::Entity(entity), Operation::OutboxLen);
        self.policy
            .around(&call, || self.inner.outbox_len(entity))
            .await
    }
    async fn query(&self, entity: &EntityInfo, query: &StoreQuery) -> Result<Vec<Record>> {
        let call = self.call(Target::Entity(entity), Operation::Query);
        self.policy
            .around(&call, || self.inner.query(entity, query))
            .await
    }
    async fn count(&self, entity: &EntityInfo, filter: Option<&Filter>) -> Result<u64> {
        let call = self.call(Target::Entity(entity), Operation::Count);
        self.policy
            .around(&call, || self.inner.count(entity, filter))
            .await
    }
    async fn ping(&self) -> Result<()> {
        let call = self.call(Target::Store, Operation::Ping);
        self.policy.around(&call, || self.inner.ping()).await
    }
    async fn replica_lag(&self) -> Result<Duration> {
        let call = self.call(Target::Store, Operation::ReplicaLag);
        self.policy.around(&call, || self.inner.replica_lag()).await
    }
    fn as_kv(&self) -> Option<&dyn KvStore> {
        self.inner.as_kv().map(|_| self as &dyn KvStore)
    }
    fn as_graph(&self) -> Option<&dyn GraphStore> {
        self.inner.as_graph().map(|_| self as &dyn GraphStore)
    }
    fn as_time_series(&self) -> Option<&dyn TimeSeriesStore> {
        self.inner
            .as_time_series()
            .map(|_| self as &dyn TimeSeriesStore)
    }
    fn as_blob(&self) -> Option<&dyn BlobStore> {
        self.inner.as_blob().map(|_| self as &dyn BlobStore)
    }
    fn as_search(&self) -> Option<&dyn SearchStore> {
        self.inner.as_search().map(|_| self as &dyn SearchStore)
    }
}

#[async_trait]
impl<S: Store, P: Policy> KvStore for Layered<S, P> {
    async fn increment(
        &self,
        entity: &EntityInfo,
        key: &Key,
        delta: i64,
        ttl: Option<Duration>,
    ) -> Result<i64> {
        let kv = self.kv()?;
        let mut call = self.call(Target::Entity(entity), Operation::KvIncrement);
        call.key = Some(key);
        self.policy
            .around(&call, || kv.increment(entity, key, delta, ttl))
            .await
    }
    async fn set_if_absent(
        &self,
        entity: &EntityInfo,
        key: &Key,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool> {
        let kv = self.kv()?;
        let mut call = self.call(Target::Entity(entity), Operation::KvSetIfAbsent);
        call.key = Some(key);
        self.policy
            .around(&call, || kv.set_if_absent(entity, key, value, ttl))
            .await
    }
    async fn get_bytes(&self, entity: &EntityInfo, key: &Key) -> Result<Option<Vec<u8>>> {
        let kv = self.kv()?;
        let mut call = self.call(Target::Entity(entity), Operation::KvGetBytes);
        call.key = Some(key);
        self.policy
            .around(&call, || kv.get_bytes(entity, key))
            .await
    }
    async fn delete_bytes(
        &self,
        entity: &EntityInfo,
        key: &Key,
        expected: Option<&[u8]>,
    ) -> Result<bool> {
        let kv = self.kv()?;
        let mut call = self.call(Target::Entity(entity), Operation::KvDeleteBytes);
        call.key = Some(key);
        self.policy
            .around(&call, || kv.delete_bytes(entity, key, expected))
            .await
    }
    async fn expire(&self, entity: &EntityInfo, key: &Key, ttl: Duration) -> Result<bool> {
        let kv = self.kv()?;
        let mut call = self.call(Target::Entity(entity), Operation::KvExpire);
        call.key = Some(key);
        self.policy
            .around(&call, || kv.expire(entity, key, ttl))
            .await
    }
    async fn persist(&self, entity: &EntityInfo, key: &Key) -> Result<bool> {
        let kv = self.kv()?;
        let mut call = self.call(Target::Entity(entity), Operation::KvPersist);
        call.key = Some(key);
        self.policy.around(&call, || kv.persist(entity, key)).await
    }
}

#[async_trait]
impl<S: Store, P: Policy> GraphStore for Layered<S, P> {
    async fn ensure_graph(&self, graph: &GraphInfo) -> Result<()> {
        let g = self.graphs()?;
        let call = self.call(Target::Graph(graph), Operation::GraphEnsure);
        self.policy.around(&call, || g.ensure_graph(graph)).await
    }
    async fn add_vertex(&self, graph: &GraphInfo, vertex: &Vertex) -> Result<()> {
        let g = self.graphs()?;
        let call = self.call(Target::Graph(graph), Operation::GraphAddVertex);
        self.policy
            .around(&call, || g.add_vertex(graph, vertex))
            .await
    }
    async fn update_vertex(
        &self,
        graph: &GraphInfo,
        id: &str,
        properties: &Properties,
    ) -> Result<()> {
        let g = self.graphs()?;
        let call = self.call(Target::Graph(graph), Operation::GraphUpdateVertex);
        self.policy
            .around(&call, || g.update_vertex(graph, id, properties))
            .await
    }
    async fn get_vertex(&self, graph: &GraphInfo, id: &str) -> Result<Option<Vertex>> {
        let g = self.graphs()?;
        let call = self.call(Target::Graph(graph), Operation::GraphGetVertex);
        self.policy.around(&call, || g.get_vertex(graph, id)).await
    }
    async fn remove_vertex(&self, graph: &GraphInfo, id: &str) -> Result<bool> {
        let g = self.graphs()?;
        let call = self.call(Target::Graph(graph), Operation::GraphRemoveVertex);
        self.policy
            .around(&call, || g.remove_vertex(graph, id))
            .await
    }
    async fn link(&self, graph: &GraphInfo, edge: &Edge) -> Result<bool> {
        let g = self.graphs()?;
        let call = self.call(Target::Graph(graph), Operation::GraphLink);
        self.policy.around(&call, || g.link(graph, edge)).await
    }
    async fn link_many(&self, graph: &GraphInfo, edges: &[Edge]) -> Result<u64> {
        let g = self.graphs()?;
        let call = self
            .call(Target::Graph(graph), Operation::GraphLinkMany)
            .items(edges.len());
        self.policy
            .around(&call, || g.link_many(graph, edges))
            .await
    }
    async fn unlink(&self, graph: &GraphInfo, src: &str, label: &str, dst: &str) -> Result<bool> {
        let g = self.graphs()?;
        let call = self.call(Target::Graph(graph), Operation::GraphUnlink);
        self.policy
            .around(&call, || g.unlink(graph, src, label, dst))
            .await
    }
    async fn get_edge(
        &self,
        graph: &GraphInfo,
        src: &str,
        label: &str,
        dst: &str,
    ) -> Result<Option<Edge>> {
        let g = self.graphs()?;
        let call = self.call(Target::Graph(graph), Operation::GraphGetEdge);
        self.policy
            .around(&call, || g.get_edge(graph, src, label, dst))
            .await
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
        let g = self.graphs()?;
        let call = self.call(Target::Graph(graph), Operation::GraphNeighbours);
        self.policy
            .around(&call, || {
                g.neighbours(graph, id, label, direction, limit, after)
            })
            .await
    }
    async fn degree(
        &self,
        graph: &GraphInfo,
        id: &str,
        label: &str,
        direction: EdgeDirection,
    ) -> Result<u64> {
        let g = self.graphs()?;
        let call = self.call(Target::Graph(graph), Operation::GraphDegree);
        self.policy
            .around(&call, || g.degree(graph, id, label, direction))
            .await
    }
    async fn mutual(&self, graph: &GraphInfo, id: &str, label: &str) -> Result<Vec<String>> {
        let g = self.graphs()?;
        let call = self.call(Target::Graph(graph), Operation::GraphMutual);
        self.policy
            .around(&call, || g.mutual(graph, id, label))
            .await
    }
    async fn common(
        &self,
        graph: &GraphInfo,
        a: &str,
        b: &str,
        label: &str,
        direction: EdgeDirection,
    ) -> Result<Vec<String>> {
        let g = self.graphs()?;
        let call = self.call(Target::Graph(graph), Operation::GraphCommon);
        self.policy
            .around(&call, || g.common(graph, a, b, label, direction))
            .await
    }
    async fn recommend(
        &self,
        graph: &GraphInfo,
        id: &str,
        label: &str,
        limit: usize,
    ) -> Result<Vec<Recommendation>> {
        let g = self.graphs()?;
        let call = self.call(Target::Graph(graph), Operation::GraphRecommend);
        self.policy
            .around(&call, || g.recommend(graph, id, label, limit))
            .await
    }
    async fn shortest_path(
        &self,
        graph: &GraphInfo,
        from: &str,
        to: &str,
        label: &str,
        max_depth: usize,
    ) -> Result<Option<Vec<String>>> {
        let g = self.graphs()?;
        let call = self.call(Target::Graph(graph), Operation::GraphShortestPath);
        self.policy
            .around(&call, || g.shortest_path(graph, from, to, label, max_depth))
            .await
    }
}

/// Whether a blob put may be sent twice: only under a condition.
fn blob_put_idempotency(options: &PutOptions) -> Idempotency {
    match options.condition {
        BlobCondition::None => Idempotency::NotIdempotent,
        BlobCondition::IfAbsent | BlobCondition::IfMatch(_) => Idempotency::Idempotent,
    }
}

#[async_trait]
impl<S: Store, P: Policy> BlobStore for Layered<S, P> {
    async fn put(&self, key: &str, body: ByteStream, options: PutOptions) -> Result<BlobMeta> {
        let b = self.blobs()?;
        let call = self.call(Target::Store, Operation::BlobPut);
        // The body is a stream: the first attempt consumes it.
        let body = parking_lot::Mutex::new(Some(body));
        self.policy
            .around(&call, || {
                let body = body.lock().take();
                let options = options.clone();
                async move {
                    match body {
                        Some(body) => b.put(key, body, options).await,
                        None => Err(Error::invalid_input(
                            self.inner.name(),
                            "",
                            "a streamed blob body cannot be sent twice; use `put_bytes` to make the upload retryable",
                        )),
                    }
                }
            })
            .await
    }
    async fn get(
        &self,
        key: &str,
        range: Option<crate::store::blob::ByteRange>,
    ) -> Result<Option<Blob>> {
        let b = self.blobs()?;
        let call = self.call(Target::Store, Operation::BlobGet);
        self.policy.around(&call, || b.get(key, range)).await
    }
    async fn head(&self, key: &str) -> Result<Option<BlobMeta>> {
        let b = self.blobs()?;
        let call = self.call(Target::Store, Operation::BlobHead);
        self.policy.around(&call, || b.head(key)).await
    }
    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        let b = self.blobs()?;
        let call = self.call(Target::Store, Operation::BlobList);
        self.policy.around(&call, || b.list(options)).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        let b = self.blobs()?;
        let call = self.call(Target::Store, Operation::BlobDelete);
        self.policy.around(&call, || b.delete(key)).await
    }
    async fn copy(&self, from: &str, to: &str) -> Result<BlobMeta> {
        let b = self.blobs()?;
        let call = self.call(Target::Store, Operation::BlobCopy);
        self.policy.around(&call, || b.copy(from, to)).await
    }
    async fn signed_url(&self, key: &str, expires_in: Duration) -> Result<String> {
        self.blobs()?.signed_url(key, expires_in).await
    }
    async fn put_bytes(&self, key: &str, data: Vec<u8>, options: PutOptions) -> Result<BlobMeta> {
        let b = self.blobs()?;
        let call = self
            .call(Target::Store, Operation::BlobPutBytes)
            .idempotency(blob_put_idempotency(&options));
        self.policy
            .around(&call, || b.put_bytes(key, data.clone(), options.clone()))
            .await
    }
    async fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let b = self.blobs()?;
        let call = self.call(Target::Store, Operation::BlobGetBytes);
        self.policy.around(&call, || b.get_bytes(key)).await
    }
}

#[async_trait]
impl<S: Store, P: Policy> SearchStore for Layered<S, P> {
    async fn ensure_index(&self, index: &SearchIndex) -> Result<()> {
        let s = self.searches()?;
        let call = self.call(Target::Index(index), Operation::SearchEnsure);
        self.policy.around(&call, || s.ensure_index(index)).await
    }
    async fn index(&self, index: &SearchIndex, docs: &[Record]) -> Result<()> {
        let s = self.searches()?;
        let call = self
            .call(Target::Index(index), Operation::SearchIndex)
            .items(docs.len());
        self.policy.around(&call, || s.index(index, docs)).await
    }
    async fn remove(&self, index: &SearchIndex, keys: &[Key]) -> Result<()> {
        let s = self.searches()?;
        let call = self
            .call(Target::Index(index), Operation::SearchRemove)
            .items(keys.len());
        self.policy.around(&call, || s.remove(index, keys)).await
    }
    async fn clear(&self, index: &SearchIndex) -> Result<()> {
        let s = self.searches()?;
        let call = self.call(Target::Index(index), Operation::SearchClear);
        self.policy.around(&call, || s.clear(index)).await
    }
    async fn flush(&self, index: &SearchIndex) -> Result<()> {
        let s = self.searches()?;
        let call = self.call(Target::Index(index), Operation::SearchFlush);
        self.policy.around(&call, || s.flush(index)).await
    }
    async fn search(&self, index: &SearchIndex, request: &SearchRequest) -> Result<SearchResults> {
        let s = self.searches()?;
        let call = self.call(Target::Index(index), Operation::Search);
        self.policy.around(&call, || s.search(index, request)).await
    }
    fn filter_caps(&self) -> FilterCaps {
        self.inner
            .as_search()
            .map(|s| s.filter_caps())
            .unwrap_or(FilterCaps::none())
    }
}

#[async_trait]
impl<S: Store, P: Policy> TimeSeriesStore for Layered<S, P> {
    async fn ensure_series(&self, series: &SeriesInfo) -> Result<()> {
        let t = self.series()?;
        let call = self.call(Target::Series(series), Operation::SeriesEnsure);
        self.policy.around(&call, || t.ensure_series(series)).await
    }
    async fn append(&self, series: &SeriesInfo, points: &[Point]) -> Result<u64> {
        let t = self.series()?;
        let call = self
            .call(Target::Series(series), Operation::SeriesAppend)
            .items(points.len());
        self.policy.around(&call, || t.append(series, points)).await
    }
    async fn range(
        &self,
        series: &SeriesInfo,
        key: &str,
        range: Range<DateTime<Utc>>,
        limit: usize,
    ) -> Result<Vec<Point>> {
        let t = self.series()?;
        let call = self.call(Target::Series(series), Operation::SeriesRange);
        self.policy
            .around(&call, || t.range(series, key, range.clone(), limit))
            .await
    }
    async fn downsample(
        &self,
        series: &SeriesInfo,
        key: &str,
        range: Range<DateTime<Utc>>,
        width: Duration,
    ) -> Result<Vec<Bucket>> {
        let t = self.series()?;
        let call = self.call(Target::Series(series), Operation::SeriesDownsample);
        self.policy
            .around(&call, || t.downsample(series, key, range.clone(), width))
            .await
    }
    async fn latest(
        &self,
        series: &SeriesInfo,
        keys: &[String],
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<Option<Point>>> {
        let t = self.series()?;
        let call = self
            .call(Target::Series(series), Operation::SeriesLatest)
            .items(keys.len());
        self.policy
            .around(&call, || t.latest(series, keys, since))
            .await
    }
    async fn delete_before(&self, series: &SeriesInfo, cutoff: DateTime<Utc>) -> Result<u64> {
        let t = self.series()?;
        let call = self.call(Target::Series(series), Operation::SeriesDeleteBefore);
        self.policy
            .around(&call, || t.delete_before(series, cutoff))
            .await
    }
    async fn scan(&self, series: &SeriesInfo, scan: &SeriesScan) -> Result<Vec<Point>> {
        let t = self.series()?;
        let call = self.call(Target::Series(series), Operation::SeriesScan);
        self.policy.around(&call, || t.scan(series, scan)).await
    }
}
