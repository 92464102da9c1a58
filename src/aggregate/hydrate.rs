//! Search-then-hydrate: ids with scores from any source, records from
//! the entity's store.

use serde::{Deserialize, Serialize};

use crate::{Entity, Key, Repo, Result};

/// One hydrated hit: the record and its score.
///
/// ```
/// let s = polyrouter::aggregate::Scored { score: 0.5, item: 7u8 };
/// assert_eq!(s.item, 7);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored<T> {
    /// The score the source gave.
    pub score: f64,
    /// The record.
    pub item: T,
}

/// Hydrated hits in rank order, and the ids whose record is gone.
///
/// ```
/// let h: polyrouter::aggregate::Hydrated<u8> = polyrouter::aggregate::Hydrated { items: vec![], dropped: vec![] };
/// assert!(h.items.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Hydrated<T> {
    /// Found records, in the order of the hits.
    pub items: Vec<Scored<T>>,
    /// Ids that had no record (deleted since they were indexed), in hit order.
    pub dropped: Vec<Key>,
}

/// Reads the records of `hits` (ids with scores, from a search index or
/// any ranking) with one `get_many`, keeping the hits' order; ids whose
/// record is gone are dropped and returned in [`Hydrated::dropped`].
/// Duplicate ids are read once and keep their first rank.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Doc { id: String }
/// let r = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[entities.doc]\nstore = \"m\"\n").await.unwrap();
/// let docs = r.repo::<Doc>().await.unwrap();
/// docs.put(&Doc { id: "b".into() }).await.unwrap();
/// docs.put(&Doc { id: "a".into() }).await.unwrap();
/// let h = polyrouter::aggregate::hydrate(&docs, [("b", 0.9), ("gone", 0.8), ("a", 0.1)]).await.unwrap();
/// assert_eq!(h.items.iter().map(|s| s.item.id.as_str()).collect::<Vec<_>>(), ["b", "a"]);
/// assert_eq!(h.dropped, vec![polyrouter::Key::from("gone")]);
/// # });
/// ```
pub async fn hydrate<T: Entity>(
    repo: &Repo<T>,
    hits: impl IntoIterator<Item = (impl Into<Key>, f64)>,
) -> Result<Hydrated<T>> {
    let mut seen = std::collections::HashSet::new();
    let hits: Vec<(Key, f64)> = hits
        .into_iter()
        .map(|(k, s)| (k.into(), s))
        .filter(|(k, _)| seen.insert(k.clone()))
        .collect();
    let found = repo.get_many(hits.iter().map(|(k, _)| k.clone())).await?;
    let mut out = Hydrated {
        items: Vec::new(),
        dropped: Vec::new(),
    };
    for ((key, score), item) in hits.into_iter().zip(found) {
        match item {
            Some(item) => out.items.push(Scored { score, item }),
            None => out.dropped.push(key),
        }
    }
    Ok(out)
}
