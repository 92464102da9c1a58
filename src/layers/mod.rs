//! Layers: wrappers any [`Store`] can be put in.
//!
//! A layer is a [`Policy`] — one hook, [`Policy::around`], that receives
//! each [`Call`] (store, entity, operation, class, idempotency) and a
//! function that runs it — and [`Layered`] wraps a store in it, forwarding
//! every operation of [`Store`] and of every extra trait (key-value,
//! graph, blob, search, time series) through that hook. A layer written
//! once therefore wraps every store kind, and a wrapped store still offers
//! everything its inner store offers (OpenDAL's `LayeredAccess` is the
//! model).
//!
//! Production layers, stacked by [`Resilience`] (the router wraps every
//! configured store in one, from `[stores.NAME.resilience]`):
//!
//! - [`Observe`]: a `tracing` span per call with OpenTelemetry database
//!   attribute names, and `metrics` counters and latency histograms;
//! - [`Retry`]: transient errors, only where safe ([`retryable`]), with
//!   backoff, jitter and a per-store [`RetryBudget`];
//! - [`Breaker`]: a circuit breaker per store;
//! - [`Limit`]: a bulkhead and a rate limit;
//! - [`Timeout`]: a deadline per attempt by [`OpClass`].
//!
//! Test doubles (counting, fault injection, lag, mirroring) are in
//! [`testing`]. docs/resilience.md explains the behaviour and the choices.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::sync::Arc;
//! use polyrouter::{backends::memory::MemoryStore, layers::Resilience, Router};
//! let store = Arc::new(Resilience::new().layer(MemoryStore::new("main")));
//! let router = Router::builder().store("main", store).build().await.unwrap();
//! assert_eq!(router.store_names(), vec!["main"]);
//! # });
//! ```

mod breaker;
mod call;
mod layered;
mod limit;
mod observe;
mod resilience;
mod retry;
pub mod testing;
mod timeout;

pub use breaker::{Breaker, BreakerState};
pub use call::{BULK_ITEMS, Call, Idempotency, OpClass, Operation, Target};
pub use layered::{Layered, Outcome, Policy};
pub use limit::Limit;
pub use observe::Observe;
pub use resilience::Resilience;
pub use retry::{Retry, RetryBudget, retryable};
pub use timeout::Timeout;

use std::sync::Arc;

use async_trait::async_trait;

use crate::query::Filter;
use crate::store::{EntityInfo, StoreQuery, WriteOp, WriteOutcome};
use crate::{Capabilities, Key, Record, Result, Store};

/// A shared store is a store: so layers can wrap what
/// [`backends::open`](crate::backends::open) returns.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::sync::Arc;
/// use polyrouter::{backends::memory::MemoryStore, layers::testing::Counting, Store};
/// let opened: Arc<dyn Store> = Arc::new(MemoryStore::new("m"));
/// let counted = Counting::new(opened);
/// assert_eq!(counted.kind(), "memory");
/// # });
/// ```
#[async_trait]
impl Store for Arc<dyn Store> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn kind(&self) -> &'static str {
        (**self).kind()
    }
    fn capabilities(&self) -> &Capabilities {
        (**self).capabilities()
    }
    fn location(&self) -> String {
        (**self).location()
    }
    fn namespace(&self) -> crate::store::namespace::Namespace {
        (**self).namespace()
    }
    fn change_source(
        &self,
        entity: &EntityInfo,
        slot: &str,
    ) -> Result<std::sync::Arc<dyn crate::sync::capture::ChangeSource>> {
        (**self).change_source(entity, slot)
    }
    async fn ensure_entity(&self, entity: &EntityInfo) -> Result<()> {
        (**self).ensure_entity(entity).await
    }
    async fn drop_entity(&self, entity: &EntityInfo) -> Result<()> {
        (**self).drop_entity(entity).await
    }
    async fn get(&self, entity: &EntityInfo, key: &Key) -> Result<Option<Record>> {
        (**self).get(entity, key).await
    }
    async fn get_many(&self, entity: &EntityInfo, keys: &[Key]) -> Result<Vec<Option<Record>>> {
        (**self).get_many(entity, keys).await
    }
    async fn write(
        &self,
        entity: &EntityInfo,
        ops: Vec<WriteOp>,
        atomic: bool,
    ) -> Result<Vec<WriteOutcome>> {
        (**self).write(entity, ops, atomic).await
    }
    async fn write_ref(
        &self,
        entity: &EntityInfo,
        ops: &[WriteOp],
        atomic: bool,
    ) -> Result<Vec<WriteOutcome>> {
        (**self).write_ref(entity, ops, atomic).await
    }

    async fn write_each(
        &self,
        entity: &EntityInfo,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<Result<WriteOutcome>>> {
        (**self).write_each(entity, ops).await
    }

    async fn apply_versioned(
        &self,
        entity: &EntityInfo,
        changes: Vec<crate::store::VersionedChange>,
    ) -> Result<Vec<crate::store::Applied>> {
        (**self).apply_versioned(entity, changes).await
    }
    async fn outbox_fetch(
        &self,
        entity: &EntityInfo,
        max: usize,
    ) -> Result<Vec<crate::store::OutboxEntry>> {
        (**self).outbox_fetch(entity, max).await
    }
    async fn outbox_remove(&self, entity: &EntityInfo, ids: &[String]) -> Result<()> {
        (**self).outbox_remove(entity, ids).await
    }
    async fn outbox_len(&self, entity: &EntityInfo) -> Result<u64> {
        (**self).outbox_len(entity).await
    }
    async fn query(&self, entity: &EntityInfo, query: &StoreQuery) -> Result<Vec<Record>> {
        (**self).query(entity, query).await
    }
    async fn count(&self, entity: &EntityInfo, filter: Option<&Filter>) -> Result<u64> {
        (**self).count(entity, filter).await
    }
    async fn ping(&self) -> Result<()> {
        (**self).ping().await
    }
    async fn replica_lag(&self) -> Result<std::time::Duration> {
        (**self).replica_lag().await
    }
    fn as_kv(&self) -> Option<&dyn crate::store::kv::KvStore> {
        (**self).as_kv()
    }
    fn as_graph(&self) -> Option<&dyn crate::store::graph::GraphStore> {
        (**self).as_graph()
    }
    fn as_time_series(&self) -> Option<&dyn crate::store::timeseries::TimeSeriesStore> {
        (**self).as_time_series()
    }
    fn as_blob(&self) -> Option<&dyn crate::store::blob::BlobStore> {
        (**self).as_blob()
    }
    fn as_search(&self) -> Option<&dyn crate::store::search::SearchStore> {
        (**self).as_search()
    }
}
