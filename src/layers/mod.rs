//! Wrappers any [`Store`] can be put in.
//!
//! - [`Counting`]: counts the calls that reach the inner store (how tests
//!   prove single-flight and N+1-free joins; also handy in production).
//! - [`Faults`]: makes the inner store fail ("down") or slow on demand.
//! - [`Lag`]: holds writes back and applies them later, to inject
//!   replication or cache-invalidation lag in tests.
//! - [`Mirror`]: applies every write of a primary to a second store too
//!   (a replica, as `read_from` reads), through any layer, e.g. [`Lag`].
//!
//! Every layer is itself a `Store`, so they compose and the router never
//! knows it holds one:
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::sync::Arc;
//! use polyrouter::{backends::memory::MemoryStore, layers::Counting, Router};
//! let counted = Arc::new(Counting::new(MemoryStore::new("main")));
//! let router = Router::builder().store("main", counted.clone()).build().await.unwrap();
//! assert_eq!(counted.counts().gets, 0);
//! # });
//! ```

mod counting;
mod faults;
mod lag;
mod mirror;

pub use counting::{Counting, Counts};
pub use faults::Faults;
pub use lag::Lag;
pub use mirror::Mirror;

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
/// use polyrouter::{backends::memory::MemoryStore, layers::Counting, Store};
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
    async fn ensure_entity(&self, entity: &EntityInfo) -> Result<()> {
        (**self).ensure_entity(entity).await
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
    async fn query(&self, entity: &EntityInfo, query: &StoreQuery) -> Result<Vec<Record>> {
        (**self).query(entity, query).await
    }
    async fn count(&self, entity: &EntityInfo, filter: Option<&Filter>) -> Result<u64> {
        (**self).count(entity, filter).await
    }
    async fn ping(&self) -> Result<()> {
        (**self).ping().await
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
