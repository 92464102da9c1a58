//! [`Mirror`]: applies a primary's writes to a replica too.

use std::future::Future;
use std::sync::Arc;

use crate::layers::{Call, Layered, Operation, Outcome, Policy, Target};
use crate::store::WriteOp;
use crate::{Precondition, Result, Store};

/// The [`Policy`] of [`Mirror`]: after each successful record write (and
/// `ensure_entity`), the same on the replica.
///
/// ```
/// use std::sync::Arc;
/// let _p = polyrouter::layers::testing::MirrorTo::new(Arc::new(polyrouter::backends::memory::MemoryStore::new("r")));
/// ```
#[derive(Debug)]
pub struct MirrorTo {
    replica: Arc<dyn Store>,
}

impl MirrorTo {
    /// Mirrors to `replica`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use polyrouter::Store;
    /// let p = polyrouter::layers::testing::MirrorTo::new(Arc::new(polyrouter::backends::memory::MemoryStore::new("r")));
    /// assert_eq!(p.replica().name(), "r");
    /// ```
    pub fn new(replica: Arc<dyn Store>) -> Self {
        MirrorTo { replica }
    }

    /// The replica.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # let p = polyrouter::layers::testing::MirrorTo::new(Arc::new(polyrouter::backends::memory::MemoryStore::new("r")));
    /// let _r = p.replica();
    /// ```
    pub fn replica(&self) -> &Arc<dyn Store> {
        &self.replica
    }
}

impl Policy for MirrorTo {
    async fn around<'a, T, F, Fut>(&'a self, call: &'a Call<'a>, run: F) -> Result<T>
    where
        T: Outcome + 'a,
        F: Fn() -> Fut + Send + Sync + 'a,
        Fut: Future<Output = Result<T>> + Send + 'a,
    {
        let out = run().await?;
        let Target::Entity(entity) = call.target else {
            return Ok(out);
        };
        let mut on_replica = entity.clone();
        on_replica.store = self.replica.name().to_string();
        match (call.operation, call.write) {
            (Operation::EnsureEntity, _) => self.replica.ensure_entity(&on_replica).await?,
            (Operation::DropEntity, _) => self.replica.drop_entity(&on_replica).await?,
            (Operation::Write, Some((ops, _))) => {
                // Without preconditions (they held on the primary), so
                // the replica's versions follow the primary's.
                let mirrored: Vec<WriteOp> = ops
                    .iter()
                    .cloned()
                    .map(|mut op| {
                        match &mut op {
                            WriteOp::Put { precondition, .. }
                            | WriteOp::Delete { precondition, .. } => {
                                *precondition = Precondition::None
                            }
                        }
                        op
                    })
                    .collect();
                if let Err(e) = self.replica.write(&on_replica, mirrored, false).await {
                    tracing::warn!(replica = self.replica.name(), error = %e, "mirroring a write to the replica failed");
                }
            }
            _ => {}
        }
        Ok(out)
    }
}

/// Wraps a primary store; every successful record write is applied to
/// `replica` as well, in the same order and without preconditions (they
/// held on the primary), so the replica's versions follow the primary's.
/// Entities are prepared on both. Reads go to the primary only, and so do
/// the extra traits (key-value, graph, blob, search, time series), which
/// it forwards.
///
/// A stand-in for the sync layer's read-model projections: put the replica
/// in a [`Lag`](super::Lag) to make it fall behind on demand. A replica
/// write that fails is logged, never fails the primary write.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::sync::Arc;
/// use polyrouter::{backends::memory::MemoryStore, layers::testing::Mirror, Store};
/// let replica: Arc<dyn Store> = Arc::new(MemoryStore::new("replica"));
/// let primary = Mirror::new(MemoryStore::new("main"), replica.clone());
/// assert_eq!(primary.name(), "main");
/// assert!(primary.as_graph().is_some(), "the primary's graphs stay reachable");
/// # });
/// ```
pub type Mirror<S> = Layered<S, MirrorTo>;

impl<S> Layered<S, MirrorTo> {
    /// Mirrors `inner`'s writes to `replica`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use polyrouter::backends::memory::MemoryStore;
    /// let _m = polyrouter::layers::testing::Mirror::new(MemoryStore::new("a"), Arc::new(MemoryStore::new("b")));
    /// ```
    pub fn new(inner: S, replica: Arc<dyn Store>) -> Self {
        Layered::wrap(inner, MirrorTo::new(replica))
    }
}
