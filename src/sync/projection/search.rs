//! [`SearchProjection`]: an entity's search index kept from events (the
//! asynchronous alternative to indexing on write).

use std::sync::Arc;

use async_trait::async_trait;

use super::{Projection, typed_key};
use crate::store::search::SearchIndex;
use crate::store::{Applied, EntityInfo};
use crate::sync::ChangeEvent;
use crate::{Error, Key, Record, Result, Store};

/// How many times one event re-reads the primary when it keeps changing
/// under the index write before the event is retried later.
const MAX_ROUNDS: usize = 8;

/// Keeps an entity's search index from change events.
///
/// The index holds no versions, so the projection never indexes what the
/// event carries: it reads the record from the primary and indexes what the
/// primary holds (its search document, [`SearchIndex::document`]), or
/// removes the document when the primary has no record. An event older
/// than the primary's record (a newer event will index it) is skipped as
/// [`Applied::Stale`]. After each index write the primary is read again
/// and, if the record changed meanwhile, indexed again: so whichever
/// writer (two group members, a redelivery) writes the index last leaves
/// it equal to the primary.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::sync::Arc;
/// use polyrouter::backends::memory::MemoryStore;
/// use polyrouter::store::{EntityInfo, search::SearchIndex};
/// use polyrouter::sync::projection::SearchProjection;
/// # use polyrouter::{FieldDef, FieldKind, KeyKind, Schema};
/// # static F: [FieldDef; 1] = [FieldDef::required("id", FieldKind::String)];
/// # static S: Schema = Schema { name: "t", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
/// let primary = Arc::new(MemoryStore::new("main"));
/// // the memory store has no search: the projection says so up front
/// let e = SearchProjection::new(primary.clone(), SearchIndex::new(&S, &[]), primary, EntityInfo::new(&S)).unwrap_err();
/// assert!(matches!(e, polyrouter::Error::Unsupported { .. }));
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct SearchProjection {
    search: Arc<dyn Store>,
    index: SearchIndex,
    primary: Arc<dyn Store>,
    primary_info: EntityInfo,
}

impl SearchProjection {
    /// The projection of `primary_info`'s entity, read from `primary`,
    /// into `index` of the search store `search`
    /// ([`Error::Unsupported`] when it cannot search). Call
    /// [`SearchStore::ensure_index`](crate::store::search::SearchStore::ensure_index)
    /// first (the router does at start-up).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use polyrouter::{FieldDef, KeyKind, Schema, store::{EntityInfo, search::SearchIndex}};
    /// # static F: [FieldDef; 0] = [];
    /// # static S: Schema = Schema { name: "t", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
    /// let m = Arc::new(polyrouter::backends::memory::MemoryStore::new("m"));
    /// assert!(polyrouter::sync::projection::SearchProjection::new(m.clone(), SearchIndex::new(&S, &[]), m, EntityInfo::new(&S)).is_err());
    /// ```
    pub fn new(
        search: Arc<dyn Store>,
        index: SearchIndex,
        primary: Arc<dyn Store>,
        primary_info: EntityInfo,
    ) -> Result<Self> {
        if search.as_search().is_none() || !search.capabilities().search {
            return Err(Error::unsupported(
                search.name(),
                primary_info.name(),
                "search (the search projection needs a `tantivy` or `postgres` store)",
            ));
        }
        Ok(SearchProjection {
            search,
            index,
            primary,
            primary_info,
        })
    }

    /// Makes the index hold what the primary holds for `key`; the version
    /// indexed (`None`: removed).
    async fn index_current(&self, key: &Key, current: Option<Record>) -> Result<Option<u64>> {
        let search = self.search.as_search().ok_or_else(|| {
            Error::unsupported(self.search.name(), self.primary_info.name(), "search")
        })?;
        match current {
            Some(r) => {
                search
                    .index(&self.index, &[self.index.document(&r)])
                    .await?;
                Ok(Some(r.version))
            }
            None => {
                search
                    .remove(&self.index, std::slice::from_ref(key))
                    .await?;
                Ok(None)
            }
        }
    }
}

#[async_trait]
impl Projection for SearchProjection {
    async fn apply(&self, event: &ChangeEvent) -> Result<Applied> {
        let key = typed_key(event, &self.primary_info)?;
        let mut current = self.primary.get(&self.primary_info, &key).await?;
        match &current {
            Some(r) if r.version > event.version => {
                return Ok(Applied::Stale { current: r.version });
            }
            None if event.op == crate::sync::Operation::Put => {
                // deleted since: the delete's event removes the document
                return Ok(Applied::Stale {
                    current: event.version,
                });
            }
            _ => {}
        }
        for _ in 0..MAX_ROUNDS {
            let indexed = self.index_current(&key, current).await?;
            current = self.primary.get(&self.primary_info, &key).await?;
            if current.as_ref().map(|r| r.version) == indexed {
                return Ok(Applied::Applied);
            }
        }
        Err(Error::unavailable(
            self.primary.name(),
            self.primary_info.name(),
            format!("`{key}` changed under every one of {MAX_ROUNDS} index writes; retrying later"),
        ))
    }
}
