//! [`ReplicaProjection`]: an entity copied into another store at the
//! primary's versions.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Projection, typed_key};
use crate::store::{Applied, EntityInfo, VersionedChange};
use crate::sync::{ChangeEvent, Operation};
use crate::{Error, Result, Store};

/// Keeps a replica of an entity in `target` (any store with the
/// `versioned_apply` capability) at exactly the primary's versions: each
/// event becomes a [`VersionedChange`] applied with
/// [`Store::apply_versioned`], which stores it only when newer than what
/// the replica holds, so duplicates and late redeliveries change nothing.
///
/// A put event without an after-image (a route with
/// `outbox = { after_image = false }`) is applied from the `source` (the
/// primary): what the primary holds now, at its version — never older than
/// the event (that is a transient error, retried); a record the primary no
/// longer has is skipped ([`Applied::Stale`]), its delete event follows.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::sync::Arc;
/// use polyrouter::{backends::memory::MemoryStore, Key, Record, Store, Value};
/// use polyrouter::store::EntityInfo;
/// use polyrouter::sync::{ChangeEvent, Operation, projection::{Applied, Projection, ReplicaProjection}};
/// # use polyrouter::{FieldDef, FieldKind, KeyKind, Schema};
/// # static F: [FieldDef; 2] = [FieldDef::required("id", FieldKind::String), FieldDef::required("n", FieldKind::Int)];
/// # static S: Schema = Schema { name: "t", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
/// let replica = Arc::new(MemoryStore::new("replica"));
/// let info = EntityInfo::new(&S);
/// let p = ReplicaProjection::new(replica.clone(), info.clone(), None);
/// let mut r = Record::new(Key::from("a"));
/// r.set("id", Value::from("a"));
/// r.set("n", Value::I64(1));
/// r.version = 3;
/// let put = ChangeEvent::put_of("main", &S, &r);
/// assert_eq!(p.apply(&put).await.unwrap(), Applied::Applied);
/// assert_eq!(p.apply(&put).await.unwrap(), Applied::Stale { current: 3 });
/// assert_eq!(replica.get(&info, &Key::from("a")).await.unwrap(), Some(r));
/// let del = ChangeEvent::new("main", "t", Key::from("a"), Operation::Delete, 4);
/// assert_eq!(p.apply(&del).await.unwrap(), Applied::Applied);
/// assert_eq!(replica.get(&info, &Key::from("a")).await.unwrap(), None);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct ReplicaProjection {
    target: Arc<dyn Store>,
    target_info: EntityInfo,
    source: Option<(Arc<dyn Store>, EntityInfo)>,
}

impl ReplicaProjection {
    /// A replica of `target_info`'s entity in `target`; `source` (the
    /// primary store and its route) answers put events without an
    /// after-image.
    ///
    /// ```
    /// # use polyrouter::{FieldDef, KeyKind, Schema, store::EntityInfo};
    /// # static F: [FieldDef; 0] = [];
    /// # static S: Schema = Schema { name: "t", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
    /// let target = std::sync::Arc::new(polyrouter::backends::memory::MemoryStore::new("r"));
    /// let _ = polyrouter::sync::projection::ReplicaProjection::new(target, EntityInfo::new(&S), None);
    /// ```
    pub fn new(
        target: Arc<dyn Store>,
        target_info: EntityInfo,
        source: Option<(Arc<dyn Store>, EntityInfo)>,
    ) -> Self {
        ReplicaProjection {
            target,
            target_info,
            source,
        }
    }

    /// The change to apply for a put event without an after-image: what
    /// the source holds now (`None`: nothing to apply).
    async fn read_source(&self, event: &ChangeEvent) -> Result<Option<VersionedChange>> {
        let key = typed_key(event, &self.target_info)?;
        let Some((source, info)) = &self.source else {
            return Err(Error::invalid_input(
                &event.store,
                &event.entity,
                format!(
                    "event {} carries no after-image and the replica projection has no source store to read the record from; set `outbox = {{ after_image = true }}` on the source route",
                    event.id
                ),
            ));
        };
        match source.get(info, &key).await? {
            None => Ok(None),
            Some(r) if r.version < event.version => Err(Error::unavailable(
                source.name(),
                info.name(),
                format!(
                    "the source holds version {} of `{key}`, older than event {}'s version {}; retrying until it shows it",
                    r.version, event.id, event.version
                ),
            )),
            Some(r) => Ok(Some(VersionedChange::put(r))),
        }
    }
}

#[async_trait]
impl Projection for ReplicaProjection {
    /// Events that carry their record, in one `apply_versioned` call, on a
    /// target that applies a batch at once (`batch_atomic`: one
    /// transaction or script). `None` — one by one, keys concurrently —
    /// on the others (Cosmos DB applies a batch change by change, slower
    /// than the runner's concurrent keys) and when an event needs the
    /// source read (no after-image).
    async fn apply_all(&self, events: &[&ChangeEvent]) -> Option<Result<Vec<Applied>>> {
        if !self.target.capabilities().batch_atomic
            || events
                .iter()
                .any(|e| e.op == Operation::Put && e.data.is_none())
        {
            return None;
        }
        let changes = events
            .iter()
            .map(|e| {
                typed_key(e, &self.target_info)?;
                VersionedChange::from_event(&self.target_info, e)
            })
            .collect::<Result<Vec<_>>>();
        Some(match changes {
            Ok(changes) => {
                let n = changes.len();
                self.target
                    .apply_versioned(&self.target_info, changes)
                    .await
                    .and_then(|out| {
                        if out.len() == n {
                            Ok(out)
                        } else {
                            Err(Error::backend(
                                self.target.name(),
                                self.target_info.name(),
                                format!(
                                    "the store returned {} outcomes for {n} versioned changes",
                                    out.len()
                                ),
                            ))
                        }
                    })
            }
            Err(e) => Err(e),
        })
    }

    async fn apply(&self, event: &ChangeEvent) -> Result<Applied> {
        typed_key(event, &self.target_info)?;
        let change = if event.op == Operation::Put && event.data.is_none() {
            match self.read_source(event).await? {
                Some(c) => c,
                None => {
                    return Ok(Applied::Stale {
                        current: event.version,
                    });
                }
            }
        } else {
            VersionedChange::from_event(&self.target_info, event)?
        };
        let mut out = self
            .target
            .apply_versioned(&self.target_info, vec![change])
            .await?;
        out.pop().ok_or_else(|| {
            Error::backend(
                self.target.name(),
                self.target_info.name(),
                "the store returned no outcome for a versioned apply",
            )
        })
    }
}
