//! Projections: the consuming half of sync. A [`ProjectionRunner`] reads
//! change events from a [`Bus`](crate::sync::Bus) as one member of a
//! consumer group and hands each event to a [`Projection`], which keeps
//! derived data true: a replica ([`ReplicaProjection`]), cache entries
//! ([`InvalidateProjection`]), a search index ([`SearchProjection`]) or a
//! view of your own ([`HandlerProjection`]).
//!
//! What holds (see docs/sync.md, "Projections"):
//!
//! - **at-least-once delivery**: an event is acknowledged only after its
//!   projection applied it (or it was dead-lettered), so a crash or a
//!   failure means it comes again;
//! - **effectively-once application, by version**: every projection
//!   applies an event only when it is newer than what the target holds
//!   ([`Applied::Stale`] otherwise), so duplicates and replays change
//!   nothing and are counted as duplicates;
//! - **per-key order**: a fetched batch is grouped by key and each key's
//!   events are applied one after the other in version order; different
//!   keys are applied concurrently. A failing event holds back the later
//!   events of its key in the same batch (they come again with it);
//! - **a poison event never blocks other keys**: after
//!   [`ProjectionOptions::max_attempts`] (at once for a permanent error:
//!   an event that cannot be read, a record that does not fit) it goes to
//!   the [`DeadLetters`] with its error, and is acknowledged.

mod dead_letter;
mod handler;
mod invalidate;
mod replica;
mod runner;
mod search;
mod stats;

use async_trait::async_trait;

pub use crate::store::Applied;
pub use dead_letter::{DeadLetter, DeadLetters, StoreDeadLetters};
pub use handler::HandlerProjection;
pub use invalidate::{InvalidateHook, InvalidateProjection};
pub use replica::ReplicaProjection;
pub use runner::{ProjectionOptions, ProjectionRunner};
pub use search::SearchProjection;
pub use stats::{ProjectionStats, ProjectionStatus};

use crate::Result;
use crate::sync::ChangeEvent;

/// One projection's effect of one event.
///
/// Implementations must be **idempotent by version**: the same event may
/// come several times, and an older event may come after a newer one of
/// the same key (a redelivery). Apply an event only when its
/// [`ChangeEvent::version`] is newer than what the target holds for the
/// key, and answer [`Applied::Stale`] otherwise (the runner counts those
/// as duplicates). An error is retried (with backoff) until
/// [`ProjectionOptions::max_attempts`]; an
/// [`Error::InvalidInput`](crate::Error::InvalidInput),
/// [`Error::Unsupported`](crate::Error::Unsupported) or
/// [`Error::Config`](crate::Error::Config) is permanent and dead-lettered
/// at once.
///
/// ```
/// use std::collections::HashMap;
/// use parking_lot::Mutex;
/// use polyrouter::sync::{ChangeEvent, projection::{Applied, Projection}};
///
/// /// Counts live records per entity, idempotently: it remembers each key's version.
/// #[derive(Default)]
/// struct Versions(Mutex<HashMap<String, u64>>);
///
/// #[async_trait::async_trait]
/// impl Projection for Versions {
///     async fn apply(&self, event: &ChangeEvent) -> polyrouter::Result<Applied> {
///         let mut seen = self.0.lock();
///         let current = seen.entry(event.subject()).or_default();
///         if event.version <= *current {
///             return Ok(Applied::Stale { current: *current });
///         }
///         *current = event.version;
///         Ok(Applied::Applied)
///     }
/// }
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use polyrouter::{Key, sync::Operation};
/// let p = Versions::default();
/// let e = ChangeEvent::new("main", "order", Key::from("o1"), Operation::Put, 2);
/// assert_eq!(p.apply(&e).await.unwrap(), Applied::Applied);
/// assert_eq!(p.apply(&e).await.unwrap(), Applied::Stale { current: 2 });
/// # });
/// ```
#[async_trait]
pub trait Projection: Send + Sync + 'static {
    /// Applies the event idempotently: [`Applied::Applied`], or
    /// [`Applied::Stale`] when it changed nothing (a duplicate, an older
    /// event, or one a newer change already superseded).
    async fn apply(&self, event: &ChangeEvent) -> Result<Applied>;

    /// Applies several events at once where the projection can (one
    /// store call, e.g. one transaction), each key's events in the order
    /// given: `Some` with one outcome per event, or `None` to have them
    /// applied one by one with [`apply`](Self::apply) (the default). An
    /// error applies nothing the caller relies on: the runner then applies
    /// the events one by one, retrying and dead-lettering each on its own.
    ///
    /// ```
    /// # use polyrouter::sync::{ChangeEvent, Operation, projection::Projection};
    /// # use polyrouter::store::Applied;
    /// struct Each;
    /// #[async_trait::async_trait]
    /// impl Projection for Each {
    ///     async fn apply(&self, _: &ChangeEvent) -> polyrouter::Result<Applied> { Ok(Applied::Applied) }
    /// }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let e = ChangeEvent::new("main", "order", polyrouter::Key::from("o1"), Operation::Put, 1);
    /// assert!(Each.apply_all(&[&e]).await.is_none());
    /// # });
    /// ```
    async fn apply_all(&self, events: &[&ChangeEvent]) -> Option<Result<Vec<Applied>>> {
        let _ = events;
        None
    }
}

/// Whether an error can never succeed by retrying the same event.
pub(crate) fn is_permanent(e: &crate::Error) -> bool {
    matches!(
        e,
        crate::Error::InvalidInput { .. }
            | crate::Error::Unsupported { .. }
            | crate::Error::Config { .. }
    )
}

/// The event's key typed as `schema` says; a key that does not fit is
/// [`Error::InvalidInput`](crate::Error::InvalidInput) (permanent).
pub(crate) fn typed_key(
    event: &ChangeEvent,
    entity: &crate::store::EntityInfo,
) -> Result<crate::Key> {
    if event.entity != entity.name() {
        return Err(crate::Error::invalid_input(
            &event.store,
            &event.entity,
            format!(
                "event {} is about entity `{}`, but this projection keeps `{}`; subscribe it to `{}` only",
                event.id,
                event.entity,
                entity.name(),
                entity.name()
            ),
        ));
    }
    event.typed_key(entity.schema.key_kind).map_err(|m| {
        crate::Error::invalid_input(
            &event.store,
            &event.entity,
            format!("event {}: {m}", event.id),
        )
    })
}
