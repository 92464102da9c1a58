//! [`HandlerProjection`]: your own [`Projection`] (a denormalized view
//! combining entities) run by a [`ProjectionRunner`](super::ProjectionRunner).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use async_trait::async_trait;
use futures::FutureExt;

use super::Projection;
use crate::store::Applied;
use crate::sync::ChangeEvent;
use crate::{Error, Result};

/// Wraps a handler of your own. A handler that panics does not take the
/// runner down: the panic becomes a permanent error and the event goes to
/// the dead letters.
///
/// **Handlers must be idempotent by version themselves**: an event may
/// come more than once, and an older event may come after a newer one of
/// the same key. Keep the version you applied next to what you write, and
/// write only when the event is newer — with a conditional write, so two
/// runners cannot interleave. Here the view is one record per order in any
/// store with `versioned_apply`, written with the event's version:
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::sync::Arc;
/// use polyrouter::{backends::memory::MemoryStore, Key, Record, Store, Value};
/// use polyrouter::store::{EntityInfo, VersionedChange};
/// use polyrouter::sync::{ChangeEvent, Operation};
/// use polyrouter::sync::projection::{Applied, HandlerProjection, Projection};
/// # use polyrouter::{FieldDef, FieldKind, KeyKind, Schema};
/// # static F: [FieldDef; 2] = [FieldDef::required("id", FieldKind::String), FieldDef::nullable("status", FieldKind::String)];
/// # static VIEW: Schema = Schema { name: "order_view", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
///
/// struct OrderView { store: Arc<MemoryStore>, info: EntityInfo }
///
/// #[async_trait::async_trait]
/// impl Projection for OrderView {
///     async fn apply(&self, event: &ChangeEvent) -> polyrouter::Result<Applied> {
///         let change = match event.op {
///             Operation::Delete => VersionedChange::delete(event.key.clone(), event.version),
///             Operation::Put => {
///                 let mut view = Record::new(event.key.clone());
///                 view.set("id", event.key.to_value());
///                 let status = event.data.as_ref().and_then(|d| d.get("status")).and_then(|s| s.as_str());
///                 view.set("status", status.map(Value::from).unwrap_or(Value::Null));
///                 view.version = event.version; // the view keeps the source's version...
///                 VersionedChange::put(view)
///             }
///         };
///         // ...and is written only when newer: duplicates and late events are Stale
///         let mut out = self.store.apply_versioned(&self.info, vec![change]).await?;
///         Ok(out.pop().expect("one outcome per change"))
///     }
/// }
///
/// let view = OrderView { store: Arc::new(MemoryStore::new("views")), info: EntityInfo::new(&VIEW) };
/// let p = HandlerProjection::new(view);
/// let e = ChangeEvent::new("main", "order", Key::from("o1"), Operation::Put, 2);
/// assert_eq!(p.apply(&e).await.unwrap(), Applied::Applied);
/// assert_eq!(p.apply(&e).await.unwrap(), Applied::Stale { current: 2 });
/// # });
/// ```
#[derive(Clone)]
pub struct HandlerProjection {
    handler: Arc<dyn Projection>,
}

impl std::fmt::Debug for HandlerProjection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerProjection").finish_non_exhaustive()
    }
}

impl HandlerProjection {
    /// Wraps `handler`.
    ///
    /// ```
    /// use polyrouter::sync::{ChangeEvent, projection::{Applied, HandlerProjection, Projection}};
    /// struct Nothing;
    /// #[async_trait::async_trait]
    /// impl Projection for Nothing {
    ///     async fn apply(&self, e: &ChangeEvent) -> polyrouter::Result<Applied> {
    ///         Ok(Applied::Stale { current: e.version })
    ///     }
    /// }
    /// let _ = HandlerProjection::new(Nothing);
    /// ```
    pub fn new(handler: impl Projection) -> Self {
        HandlerProjection {
            handler: Arc::new(handler),
        }
    }

    /// Wraps a shared handler.
    ///
    /// ```
    /// # use polyrouter::sync::{ChangeEvent, projection::{Applied, HandlerProjection, Projection}};
    /// # struct Nothing;
    /// # #[async_trait::async_trait]
    /// # impl Projection for Nothing {
    /// #     async fn apply(&self, e: &ChangeEvent) -> polyrouter::Result<Applied> { Ok(Applied::Applied) }
    /// # }
    /// let _ = HandlerProjection::shared(std::sync::Arc::new(Nothing));
    /// ```
    pub fn shared(handler: Arc<dyn Projection>) -> Self {
        HandlerProjection { handler }
    }
}

#[async_trait]
impl Projection for HandlerProjection {
    async fn apply(&self, event: &ChangeEvent) -> Result<Applied> {
        match AssertUnwindSafe(self.handler.apply(event))
            .catch_unwind()
            .await
        {
            Ok(r) => r,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-text panic".into());
                Err(Error::invalid_input(
                    &event.store,
                    &event.entity,
                    format!(
                        "the projection handler panicked on event {}: {what}",
                        event.id
                    ),
                ))
            }
        }
    }
}
