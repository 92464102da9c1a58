//! Type-erased repositories: what views and joins read through, with
//! records rendered by the entity's own serde representation.

use async_trait::async_trait;
use serde_json::Value as Json;

use crate::config::Consistency;
use crate::router::{SearchQuery, Session};
use crate::{Entity, Error, Key, KeyKind, Query, Repo, Result, Schema};

/// Reads of one entity without its Rust type, as JSON.
#[async_trait]
pub(crate) trait DynRepo: Send + Sync + std::fmt::Debug + 'static {
    fn schema(&self) -> &'static Schema;
    fn store(&self) -> &str;
    async fn get_json(&self, key: Key, ctx: &ReadCtx) -> Result<Json>;
    async fn get_many_json(&self, keys: Vec<Key>, ctx: &ReadCtx) -> Result<Vec<Json>>;
    async fn query_json(&self, q: Query) -> Result<Json>;
    /// One page of the entity's search index: ranked keys with scores.
    async fn search_hits(&self, q: SearchQuery) -> Result<Vec<(Key, f64)>>;
    /// One page of the search index and the token of the next page.
    #[cfg(feature = "analytics")]
    async fn search_page(&self, q: SearchQuery) -> Result<(Vec<(Key, f64)>, Option<String>)>;
}

/// Session and level applied to every branch of one aggregate call.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReadCtx {
    pub session: Option<Session>,
    pub consistency: Option<Consistency>,
}

fn json<T: Entity>(store: &str, v: &T) -> Result<Json> {
    serde_json::to_value(v).map_err(|e| {
        Error::backend(
            store,
            T::schema().name,
            format!("cannot render the record as JSON: {e}"),
        )
    })
}

impl<T: Entity> Repo<T> {
    fn in_ctx(&self, ctx: &ReadCtx) -> Repo<T> {
        let mut r = self.clone();
        if let Some(s) = &ctx.session {
            r = r.with_session(s);
        }
        if let Some(c) = ctx.consistency {
            r = r.with_consistency(c);
        }
        r
    }
}

#[async_trait]
impl<T: Entity> DynRepo for Repo<T> {
    fn schema(&self) -> &'static Schema {
        T::schema()
    }
    fn store(&self) -> &str {
        self.store_name()
    }
    async fn get_json(&self, key: Key, ctx: &ReadCtx) -> Result<Json> {
        match self.in_ctx(ctx).get(key).await? {
            Some(v) => json(self.store_name(), &v),
            None => Ok(Json::Null),
        }
    }
    async fn get_many_json(&self, keys: Vec<Key>, ctx: &ReadCtx) -> Result<Vec<Json>> {
        self.in_ctx(ctx)
            .get_many(keys)
            .await?
            .iter()
            .map(|v| match v {
                Some(v) => json(self.store_name(), v),
                None => Ok(Json::Null),
            })
            .collect()
    }
    async fn query_json(&self, q: Query) -> Result<Json> {
        let page = self.query(q).await?;
        let items = page
            .items
            .iter()
            .map(|v| json(self.store_name(), v))
            .collect::<Result<Vec<_>>>()?;
        Ok(Json::Array(items))
    }
    async fn search_hits(&self, q: SearchQuery) -> Result<Vec<(Key, f64)>> {
        let page = self.search_keys(q).await?;
        Ok(page
            .hits
            .into_iter()
            .map(|h| (h.key, f64::from(h.score)))
            .collect())
    }
    #[cfg(feature = "analytics")]
    async fn search_page(&self, q: SearchQuery) -> Result<(Vec<(Key, f64)>, Option<String>)> {
        let page = self.search_keys(q).await?;
        let hits = page
            .hits
            .into_iter()
            .map(|h| (h.key, f64::from(h.score)))
            .collect();
        Ok((hits, page.next))
    }
}

/// A key of `kind` from a JSON value (a string, an integer, or a UUID string).
pub(crate) fn json_key(kind: KeyKind, v: &Json) -> Option<Key> {
    match (kind, v) {
        (KeyKind::Str, Json::String(s)) => Some(Key::Str(s.clone())),
        (KeyKind::Str, Json::Number(n)) => Some(Key::Str(n.to_string())),
        (KeyKind::Int, Json::Number(n)) => n.as_i64().map(Key::Int),
        (KeyKind::Int, Json::String(s)) => s.parse().ok().map(Key::Int),
        (KeyKind::Uuid, Json::String(s)) => s.parse().ok().map(Key::Uuid),
        _ => None,
    }
}
