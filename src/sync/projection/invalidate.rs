//! [`InvalidateProjection`]: cache entries removed when their record
//! changes, in every process that caches the entity.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use super::Projection;
use crate::store::{Applied, EntityInfo, WriteOp};
use crate::sync::ChangeEvent;
use crate::{Error, Key, Precondition, Result, Store, Value};

/// What the router runs for each invalidated key (it bumps the key's cache
/// epoch, so a fill that read the primary before the change, in flight in
/// this process, is not stored).
pub type InvalidateHook = Arc<dyn Fn(&Key) + Send + Sync>;

/// Deletes the cache entry of each changed key from the cache store and
/// calls the hook. An entry already filled at the event's version or later
/// (the fill read the primary after the change) is left alone and the
/// event counts as a duplicate ([`Applied::Stale`]); the hook runs either
/// way.
///
/// The cache entity (`cache_info`) is the router's private cache table of
/// the entity (`{table}__cache`); entries keep the primary record's version
/// in their `ver` field.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
/// use polyrouter::{backends::memory::MemoryStore, Key, Store};
/// use polyrouter::sync::{ChangeEvent, Operation, projection::{Applied, InvalidateProjection, Projection}};
/// # use polyrouter::{FieldDef, FieldKind, KeyKind, Schema, store::EntityInfo};
/// # static F: [FieldDef; 2] = [FieldDef::required("key", FieldKind::String), FieldDef::required("ver", FieldKind::Int)];
/// # static S: Schema = Schema { name: "t", key: "key", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
/// let cache = Arc::new(MemoryStore::new("cache"));
/// let hooked = Arc::new(AtomicUsize::new(0));
/// let h = hooked.clone();
/// let p = InvalidateProjection::new(cache, EntityInfo::new(&S), Arc::new(move |_: &Key| { h.fetch_add(1, Ordering::SeqCst); }));
/// let e = ChangeEvent::new("main", "t", Key::from("a"), Operation::Put, 2);
/// assert_eq!(p.apply(&e).await.unwrap(), Applied::Applied);
/// assert_eq!(hooked.load(Ordering::SeqCst), 1);
/// # });
/// ```
#[derive(Clone)]
pub struct InvalidateProjection {
    cache: Arc<dyn Store>,
    cache_info: EntityInfo,
    hook: InvalidateHook,
}

impl fmt::Debug for InvalidateProjection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvalidateProjection")
            .field("cache", &self.cache.name())
            .field("table", &self.cache_info.table)
            .finish_non_exhaustive()
    }
}

impl InvalidateProjection {
    /// Invalidation of the entries of `cache_info` (the entity's cache
    /// table) in `cache`, calling `hook` for each key. Every event handed to
    /// it is taken as one of the cached entity: subscribe it to that entity
    /// only.
    ///
    /// ```
    /// # use polyrouter::{FieldDef, KeyKind, Schema, store::EntityInfo};
    /// # static F: [FieldDef; 0] = [];
    /// # static S: Schema = Schema { name: "t", key: "key", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
    /// let cache = std::sync::Arc::new(polyrouter::backends::memory::MemoryStore::new("c"));
    /// let _ = polyrouter::sync::projection::InvalidateProjection::new(cache, EntityInfo::new(&S), std::sync::Arc::new(|_: &polyrouter::Key| {}));
    /// ```
    pub fn new(cache: Arc<dyn Store>, cache_info: EntityInfo, hook: InvalidateHook) -> Self {
        InvalidateProjection {
            cache,
            cache_info,
            hook,
        }
    }
}

#[async_trait]
impl Projection for InvalidateProjection {
    async fn apply(&self, event: &ChangeEvent) -> Result<Applied> {
        // The cache has its own schema (`polyrouter_cache`): the key is
        // typed by it, whatever the event's entity.
        let info = &self.cache_info;
        let key = event.typed_key(info.schema.key_kind).map_err(|m| {
            Error::invalid_input(
                &event.store,
                &event.entity,
                format!("event {}: {m}", event.id),
            )
        })?;
        (self.hook)(&key);
        if let Some(entry) = self.cache.get(info, &key).await? {
            let filled_at = match (entry.value("rec"), entry.value("ver")) {
                (Value::Null, _) => None,
                (_, Value::I64(v)) => u64::try_from(*v).ok(),
                _ => None,
            };
            if let Some(v) = filled_at.filter(|v| *v >= event.version) {
                return Ok(Applied::Stale { current: v });
            }
        }
        self.cache
            .write(
                info,
                vec![WriteOp::Delete {
                    key,
                    precondition: Precondition::None,
                }],
                false,
            )
            .await?;
        Ok(Applied::Applied)
    }
}
