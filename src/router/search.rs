//! Search routes: an entity's `search = { store, fields, ... }` kept up to
//! date on every write through its [`Repo`], ranked searches hydrated from
//! the primary store, and full re-indexing.
//!
//! **Failures after the primary write are never silent.** The primary store
//! is written first; then the search index is updated. When the index
//! update fails, the call returns [`Error::NotIndexed`]: the record *is*
//! stored (with its new version), the index may be stale for those keys.
//! Repeating the write (puts and deletes are idempotent for the index) or
//! [`Repo::reindex`] / `polyrouter reindex ENTITY` repairs it. A failed
//! *non-atomic* batch may have applied some writes without indexing them:
//! re-index after such a failure.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{Bound, Repo, Route, Router};
use crate::config::{Config, EntityConfig, SearchConfig};
use crate::entity::{FieldDef, FieldKind, FieldType, Schema};
use crate::query::{Direction, Filter, Order, field};
use crate::store::search::{FacetCounts, Hit, SearchCursor, SearchIndex, SearchRequest};
use crate::store::{EntityInfo, StoreQuery, WriteOp, WriteOutcome};
use crate::token::fnv;
use crate::{Entity, Error, Key, KeyKind, Record, Result, Store};

/// An entity's search index and the store holding it.
#[derive(Debug)]
pub(crate) struct SearchRoute {
    pub store: Arc<dyn Store>,
    pub index: SearchIndex,
}

/// Start-up checks of a route's `search` (no Rust types yet): the search
/// store exists and can search. (The primary's `records` capability is
/// checked by the router's own route check.)
pub(super) fn check_route(
    config: &Config,
    stores: &BTreeMap<String, Arc<dyn Store>>,
    entity: &str,
    ec: &EntityConfig,
) -> Result<()> {
    let Some(s) = &ec.search else { return Ok(()) };
    let Some(store) = stores.get(&s.store) else {
        return Err(config.error(
            &format!("entities.{entity}.search.store"),
            format!(
                "store `{}` is not defined; add a [stores.{}] table",
                s.store, s.store
            ),
        ));
    };
    if !store.capabilities().search || store.as_search().is_none() {
        return Err(Error::unsupported(
            &s.store,
            entity,
            format!(
                "search (asked for by `entities.{entity}.search` in {}; use a `tantivy` or `postgres` store)",
                config.file
            ),
        ));
    }
    Ok(())
}

fn kind_of(name: &str) -> Option<FieldKind> {
    Some(match name {
        "string" => FieldKind::String,
        "int" => FieldKind::Int,
        "float" => FieldKind::Float,
        "bool" => FieldKind::Bool,
        "timestamp" => FieldKind::Timestamp,
        "uuid" => FieldKind::Uuid,
        _ => return None,
    })
}

fn key_kind_of(name: &str) -> KeyKind {
    match name {
        "int" => KeyKind::Int,
        "uuid" => KeyKind::Uuid,
        _ => KeyKind::Str,
    }
}

/// The index layout of a route over a schema.
fn layout(route: &Route, s: &SearchConfig, schema: &'static Schema) -> SearchIndex {
    SearchIndex {
        name: s.index.clone().unwrap_or_else(|| route.table.clone()),
        store: s.store.clone(),
        schema,
        fields: s.fields.clone(),
        filters: s.filters.keys().cloned().collect(),
        facets: s.facets.clone(),
        language: s.language.clone(),
    }
}

/// Checks the search config against the Rust schema and prepares the index.
pub(crate) async fn bind(
    config: &Config,
    stores: &BTreeMap<String, Arc<dyn Store>>,
    route: &Route,
    schema: &'static Schema,
) -> Result<Option<Arc<SearchRoute>>> {
    let Some(s) = &route.config.search else {
        return Ok(None);
    };
    let entity = &route.entity;
    let err =
        |key: &str, msg: String| config.error(&format!("entities.{entity}.search.{key}"), msg);
    if s.key != schema.key {
        return Err(err(
            "key",
            format!(
                "the entity's key is `{}`; write `key = \"{}\"`",
                schema.key, schema.key
            ),
        ));
    }
    if key_kind_of(&s.key_kind) != schema.key_kind {
        let want = match schema.key_kind {
            KeyKind::Str => "string",
            KeyKind::Int => "int",
            KeyKind::Uuid => "uuid",
        };
        return Err(err(
            "key_kind",
            format!("the entity's key is a {want} key; write `key_kind = \"{want}\"`"),
        ));
    }
    for f in &s.fields {
        match schema.field(f) {
            Some(d) if d.ty.kind == FieldKind::String => {}
            Some(d) => {
                return Err(err(
                    "fields",
                    format!(
                        "`{f}` is a {} field; full-text fields must be strings",
                        d.ty.kind.name()
                    ),
                ));
            }
            None => return Err(err("fields", format!("the entity has no field `{f}`"))),
        }
    }
    for (f, k) in &s.filters {
        let actual = if f == schema.key {
            Some(
                layout(route, s, schema)
                    .kind_of(f)
                    .unwrap_or(FieldKind::String),
            )
        } else {
            schema.field(f).map(|d| d.ty.kind)
        };
        match actual {
            Some(a) if Some(a) == kind_of(k) => {}
            Some(a) => {
                return Err(err(
                    "filters",
                    format!(
                        "`{f}` is a {} field; write `{f} = \"{}\"`",
                        a.name(),
                        a.name()
                    ),
                ));
            }
            None => return Err(err("filters", format!("the entity has no field `{f}`"))),
        }
    }
    let store = stores[&s.store].clone();
    let mut index = layout(route, s, schema);
    index.store = s.store.clone();
    let search = store
        .as_search()
        .ok_or_else(|| Error::unsupported(&s.store, entity, "search"))?;
    search
        .ensure_index(&index)
        .await
        .map_err(|e| relocate(config, e, entity))?;
    Ok(Some(Arc::new(SearchRoute { store, index })))
}

/// Places a backend's unlocated config error in the configuration file.
fn relocate(config: &Config, e: Error, entity: &str) -> Error {
    match e {
        Error::Config {
            file,
            path,
            message,
            ..
        } if file.is_empty() => config.error(&path, message),
        e => e.with_entity(entity),
    }
}

/// What the index must do once the primary write succeeded: the last
/// operation per key, in order.
pub(super) struct Plan {
    ops: Vec<(usize, Pending)>,
}

enum Pending {
    Put(Record),
    Delete(Key),
}

/// Records what to index for these writes, when the entity has a search route.
pub(super) fn plan(b: &Bound, ops: &[WriteOp]) -> Option<Plan> {
    let route = b.search.as_ref()?;
    let mut last: HashMap<&Key, usize> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        last.insert(op.key(), i);
    }
    let mut out = Vec::with_capacity(last.len());
    for (i, op) in ops.iter().enumerate() {
        if last.get(op.key()) != Some(&i) {
            continue;
        }
        out.push((
            i,
            match op {
                WriteOp::Put { record, .. } => Pending::Put(route.index.document(record)),
                WriteOp::Delete { key, .. } => Pending::Delete(key.clone()),
            },
        ));
    }
    Some(Plan { ops: out })
}

/// Applies a plan after the primary write returned `out`.
pub(super) async fn apply(b: &Bound, plan: Plan, out: &[Option<WriteOutcome>]) -> Result<()> {
    let Some(route) = &b.search else {
        return Ok(());
    };
    let search = route
        .store
        .as_search()
        .ok_or_else(|| Error::unsupported(&route.index.store, b.info.name(), "search"))?;
    let mut docs = Vec::new();
    let mut gone = Vec::new();
    for (i, p) in plan.ops {
        match (p, out.get(i).and_then(Option::as_ref)) {
            (Pending::Put(r), Some(WriteOutcome::Written { .. })) => docs.push(r),
            (Pending::Delete(k), Some(WriteOutcome::Deleted { .. })) => gone.push(k),
            _ => {}
        }
    }
    let shown = |keys: Vec<String>| {
        if keys.len() > 5 {
            format!("{} and {} more", keys[..5].join(", "), keys.len() - 5)
        } else {
            keys.join(", ")
        }
    };
    let fail = |e: Error, keys: Vec<String>| Error::NotIndexed {
        store: b.info.store.clone(),
        entity: b.info.name().into(),
        search_store: route.index.store.clone(),
        keys: shown(keys),
        source: Box::new(e.with_entity(b.info.name())),
    };
    if !docs.is_empty() {
        if let Err(e) = search.index(&route.index, &docs).await {
            return Err(fail(e, docs.iter().map(|d| d.key.to_string()).collect()));
        }
    }
    if !gone.is_empty() {
        if let Err(e) = search.remove(&route.index, &gone).await {
            return Err(fail(e, gone.iter().map(Key::to_string).collect()));
        }
    }
    Ok(())
}

/// A full-text search over an entity: web-search text, a filter over the
/// index's filter fields, facets to count, and a page size.
///
/// ```
/// use polyrouter::{query::field, router::SearchQuery};
/// let q = SearchQuery::new("red shoes -used")
///     .filter(field("category").eq("shoes"))
///     .facet("brand")
///     .limit(20);
/// assert_eq!(q.limit, Some(20));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchQuery {
    /// Words, `"phrases"`, `-exclusions`, `OR`; empty matches everything.
    pub text: String,
    /// Filter over `search.filters` fields.
    pub filter: Option<Filter>,
    /// Facet fields to count (from `search.facets`).
    pub facets: Vec<String>,
    /// At most this many values per facet (default 100).
    pub facet_limit: Option<usize>,
    /// Hits per page (default: the router's page size).
    pub limit: Option<u32>,
    /// Continuation token from [`SearchPage::next`].
    pub after: Option<String>,
}

impl SearchQuery {
    /// A search for `text`.
    ///
    /// ```
    /// assert_eq!(polyrouter::router::SearchQuery::new("x").text, "x");
    /// ```
    pub fn new(text: impl Into<String>) -> Self {
        SearchQuery {
            text: text.into(),
            ..Default::default()
        }
    }
    /// Only documents matching `f` (and-ed with an earlier filter).
    ///
    /// ```
    /// let q = polyrouter::router::SearchQuery::new("").filter(polyrouter::field("a").eq(1));
    /// assert!(q.filter.is_some());
    /// ```
    pub fn filter(mut self, f: Filter) -> Self {
        self.filter = Some(match self.filter.take() {
            Some(old) => old.and(f),
            None => f,
        });
        self
    }
    /// Counts the values of a facet field over every match.
    ///
    /// ```
    /// assert_eq!(polyrouter::router::SearchQuery::new("").facet("c").facets, vec!["c"]);
    /// ```
    pub fn facet(mut self, field: impl Into<String>) -> Self {
        self.facets.push(field.into());
        self
    }
    /// At most `n` values per facet.
    ///
    /// ```
    /// assert_eq!(polyrouter::router::SearchQuery::new("").facet_limit(5).facet_limit, Some(5));
    /// ```
    pub fn facet_limit(mut self, n: usize) -> Self {
        self.facet_limit = Some(n);
        self
    }
    /// Hits per page.
    ///
    /// ```
    /// assert_eq!(polyrouter::router::SearchQuery::new("").limit(3).limit, Some(3));
    /// ```
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }
    /// Continues after a page's token.
    ///
    /// ```
    /// assert!(polyrouter::router::SearchQuery::new("").after("t").after.is_some());
    /// ```
    pub fn after(mut self, token: impl Into<String>) -> Self {
        self.after = Some(token.into());
        self
    }
}

/// One hydrated hit.
///
/// ```
/// let h = polyrouter::router::SearchHit { key: "a".into(), score: 1.0, item: 5u8 };
/// assert_eq!(h.item, 5);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit<T> {
    /// The record's key.
    pub key: Key,
    /// Relevance (higher first; comparable only within one search).
    pub score: f32,
    /// The record, read from the primary store.
    pub item: T,
}

/// One page of search results.
///
/// ```
/// let p: polyrouter::router::SearchPage<polyrouter::Key> = polyrouter::router::SearchPage {
///     hits: vec![], total: 0, facets: vec![], missing: 0, next: None, query: Default::default() };
/// assert!(p.next_query().is_none());
/// ```
#[derive(Debug, Clone)]
pub struct SearchPage<T> {
    /// Hits in rank order (score descending, ties by key).
    pub hits: Vec<T>,
    /// Documents matching text and filter, over all pages.
    pub total: u64,
    /// Counts per requested facet, in request order.
    pub facets: Vec<FacetCounts>,
    /// Hits whose record the primary store no longer has (dropped from
    /// `hits`; the index lags a delete or an expiry).
    pub missing: u64,
    /// Continuation token; `None` on the last page.
    pub next: Option<String>,
    /// The query that produced this page.
    pub query: SearchQuery,
}

impl<T> SearchPage<T> {
    /// The query for the next page, if there is one.
    ///
    /// ```
    /// let p: polyrouter::router::SearchPage<u8> = polyrouter::router::SearchPage {
    ///     hits: vec![], total: 0, facets: vec![], missing: 0, next: Some("t".into()), query: Default::default() };
    /// assert_eq!(p.next_query().unwrap().after.as_deref(), Some("t"));
    /// ```
    pub fn next_query(&self) -> Option<SearchQuery> {
        self.next
            .as_ref()
            .map(|t| self.query.clone().after(t.clone()))
    }
}

/// Progress of a re-index: rows done, and the total when the store can count.
///
/// ```
/// let p = polyrouter::router::ReindexProgress { done: 5, total: Some(10) };
/// assert_eq!(p.done, 5);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReindexProgress {
    /// Rows indexed so far.
    pub done: u64,
    /// Rows in the primary store when the re-index started, if known.
    pub total: Option<u64>,
}

const TOKEN_FORMAT: u8 = 1;

fn fingerprint(entity: &str, text: &str, filter: Option<&Filter>) -> u64 {
    fnv(
        format!("search\u{0}{entity}\u{0}{text}\u{0}{filter:?}").as_bytes(),
        0,
    )
}

fn encode(fp: u64, last: &Hit) -> String {
    let mut b = vec![TOKEN_FORMAT];
    b.extend_from_slice(&fp.to_be_bytes());
    b.extend_from_slice(&last.score.to_bits().to_be_bytes());
    let key = crate::store::search::key_text(&last.key);
    b.extend_from_slice(key.as_bytes());
    let sum = fnv(&b, 0x5eed);
    b.extend_from_slice(&sum.to_be_bytes()[..4]);
    URL_SAFE_NO_PAD.encode(b)
}

fn decode(token: &str, fp: u64, kind: KeyKind) -> std::result::Result<SearchCursor, String> {
    let bad = |why: &str| {
        format!("search continuation token rejected: {why}; start again from the first page")
    };
    let b = URL_SAFE_NO_PAD
        .decode(token.as_bytes())
        .map_err(|_| bad("not a polyrouter token"))?;
    if b.len() < 17 || b[0] != TOKEN_FORMAT {
        return Err(bad("not a search token"));
    }
    let (body, sum) = b.split_at(b.len() - 4);
    if fnv(body, 0x5eed).to_be_bytes()[..4] != *sum {
        return Err(bad("it was altered or truncated"));
    }
    let got = u64::from_be_bytes(body[1..9].try_into().expect("8 bytes"));
    if got != fp {
        return Err(bad("it belongs to another search (text or filter differ)"));
    }
    let score = f32::from_bits(u32::from_be_bytes(body[9..13].try_into().expect("4 bytes")));
    let key = std::str::from_utf8(&body[13..]).map_err(|_| bad("bad key"))?;
    let key = crate::store::search::key_from_text(key, kind).ok_or_else(|| bad("bad key"))?;
    Ok(SearchCursor { score, key })
}

impl<T: Entity> Repo<T> {
    fn search_route(&self) -> Result<&Arc<SearchRoute>> {
        self.b.search.as_ref().ok_or_else(|| {
            Error::unsupported(
                &self.b.info.store,
                self.b.info.name(),
                format!(
                    "search (entity `{}` has no search index; add `search = {{ store = \"...\", fields = [...] }}` to [entities.{}])",
                    self.b.info.name(),
                    self.b.info.name()
                ),
            )
        })
    }

    /// Ranked keys with scores, total and facets, without reading the records.
    ///
    /// ```no_run
    /// # async fn f(products: polyrouter::Repo<P>) -> polyrouter::Result<()> {
    /// let page = products.search_keys(polyrouter::router::SearchQuery::new("lamp")).await?;
    /// for hit in &page.hits { println!("{} {}", hit.key, hit.score); }
    /// # Ok(()) }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct P { id: String }
    /// ```
    pub async fn search_keys(&self, q: SearchQuery) -> Result<SearchPage<Hit>> {
        let route = self.search_route()?;
        let search = route
            .store
            .as_search()
            .ok_or_else(|| Error::unsupported(&route.index.store, self.b.info.name(), "search"))?;
        let idx = &route.index;
        let entity = self.b.info.name();
        let invalid = |m: String| Error::invalid_input(&idx.store, entity, m);
        let filter = match &q.filter {
            Some(f) => {
                let f = match crate::query::normalize(f, self.b.info.schema) {
                    Ok(f) => f,
                    Err(e) => {
                        // It may be too deep to drop recursively.
                        if let Some(f) = q.filter {
                            crate::query::dismantle(f);
                        }
                        return Err(invalid(e));
                    }
                };
                let mut unknown = None;
                f.visit(&mut |node| {
                    let name = match node {
                        Filter::Cmp { field, .. }
                        | Filter::In { field, .. }
                        | Filter::Prefix { field, .. }
                        | Filter::Contains { field, .. }
                        | Filter::IsNull(field) => field,
                        _ => return,
                    };
                    if unknown.is_none() && !idx.filters.contains(name) {
                        unknown = Some(name.clone());
                    }
                });
                if let Some(name) = unknown {
                    return Err(invalid(format!(
                        "`{name}` is not a filter field of the search index; add it to `search.filters`"
                    )));
                }
                if let Some(missing) = search.filter_caps().first_unsupported(&f) {
                    return Err(Error::unsupported(&idx.store, entity, missing));
                }
                Some(f)
            }
            None => None,
        };
        for f in &q.facets {
            if !idx.facets.contains(f) {
                return Err(invalid(format!(
                    "`{f}` is not a facet of the search index; add it to `search.facets`"
                )));
            }
        }
        let limit = q.limit.unwrap_or(self.b.page_size);
        if limit == 0 || limit > self.b.max_page_size {
            return Err(invalid(format!(
                "limit {limit} is out of range: ask for 1 to {} hits per page",
                self.b.max_page_size
            )));
        }
        let fp = fingerprint(entity, &q.text, filter.as_ref());
        let after = match &q.after {
            Some(t) => Some(decode(t, fp, self.b.info.schema.key_kind).map_err(invalid)?),
            None => None,
        };
        let req = SearchRequest {
            text: q.text.clone(),
            filter,
            facets: q.facets.clone(),
            facet_limit: q.facet_limit.unwrap_or(100),
            limit: limit as usize + 1,
            after,
        };
        let mut res = search
            .search(idx, &req)
            .await
            .map_err(|e| e.with_entity(entity))?;
        let next = if res.hits.len() > limit as usize {
            res.hits.truncate(limit as usize);
            res.hits.last().map(|h| encode(fp, h))
        } else {
            None
        };
        let mut query = q;
        query.after = None;
        Ok(SearchPage {
            hits: res.hits,
            total: res.total,
            facets: res.facets,
            missing: 0,
            next,
            query,
        })
    }

    /// Searches, then reads the hits' records from the primary store (one
    /// `get_many`), keeping rank order. Hits whose record is gone are
    /// dropped and counted in [`SearchPage::missing`].
    ///
    /// ```no_run
    /// # async fn f(products: polyrouter::Repo<P>) -> polyrouter::Result<()> {
    /// use polyrouter::router::SearchQuery;
    /// let page = products.search(SearchQuery::new("desk lamp -broken").facet("brand").limit(10)).await?;
    /// for hit in &page.hits { println!("{} {}", hit.score, hit.item.id); }
    /// if let Some(next) = page.next_query() { let _more = products.search(next).await?; }
    /// # Ok(()) }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct P { id: String }
    /// ```
    pub async fn search(&self, q: SearchQuery) -> Result<SearchPage<SearchHit<T>>> {
        let page = self.search_keys(q).await?;
        let keys: Vec<Key> = page.hits.iter().map(|h| h.key.clone()).collect();
        let items = self.get_many(keys).await?;
        let mut missing = 0;
        let hits = page
            .hits
            .into_iter()
            .zip(items)
            .filter_map(|(h, item)| match item {
                Some(item) => Some(SearchHit {
                    key: h.key,
                    score: h.score,
                    item,
                }),
                None => {
                    missing += 1;
                    None
                }
            })
            .collect();
        Ok(SearchPage {
            hits,
            total: page.total,
            facets: page.facets,
            missing,
            next: page.next,
            query: page.query,
        })
    }

    /// Makes every write so far searchable now, rather than after the
    /// search store's refresh interval.
    ///
    /// ```no_run
    /// # async fn f(products: polyrouter::Repo<P>) -> polyrouter::Result<()> {
    /// products.refresh_search().await?;
    /// # Ok(()) }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct P { id: String }
    /// ```
    pub async fn refresh_search(&self) -> Result<()> {
        let route = self.search_route()?;
        let search = route
            .store
            .as_search()
            .ok_or_else(|| Error::unsupported(&route.index.store, self.b.info.name(), "search"))?;
        search
            .flush(&route.index)
            .await
            .map_err(|e| e.with_entity(self.b.info.name()))
    }

    /// Rebuilds the search index from every record of the primary store;
    /// returns how many were indexed. `progress` is called after each page.
    ///
    /// ```no_run
    /// # async fn f(products: polyrouter::Repo<P>) -> polyrouter::Result<()> {
    /// let n = products.reindex(|p| println!("{}/{:?}", p.done, p.total)).await?;
    /// # Ok(()) }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct P { id: String }
    /// ```
    pub async fn reindex(&self, mut progress: impl FnMut(ReindexProgress) + Send) -> Result<u64> {
        let route = self.search_route()?.clone();
        reindex(&self.b.info, &self.b.store, &route, 500, &mut progress).await
    }
}

impl Router {
    /// Rebuilds an entity's search index from its primary store, by entity
    /// name, without its Rust type: the layout comes from the entity's
    /// `search` configuration (key, key kind, filter kinds). What
    /// `polyrouter reindex` runs.
    ///
    /// ```no_run
    /// # async fn f(router: polyrouter::Router) -> polyrouter::Result<()> {
    /// let n = router.reindex("product", &mut |p| println!("{}", p.done)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn reindex(
        &self,
        entity: &str,
        progress: &mut (dyn FnMut(ReindexProgress) + Send),
    ) -> Result<u64> {
        let Some(route) = self.inner.routes.get(entity) else {
            return Err(self.inner.config.error(
                &format!("entities.{entity}"),
                format!("entity `{entity}` is not configured; add [entities.{entity}]"),
            ));
        };
        let Some(s) = &route.config.search else {
            return Err(self.inner.config.error(
                &format!("entities.{entity}"),
                format!("entity `{entity}` has no `search`; add `search = {{ store = \"...\", fields = [...] }}`"),
            ));
        };
        let schema = config_schema(entity, s);
        let primary = self.inner.stores[&route.store].clone();
        let info = route.entity_info(schema);
        let search_route = match bind(&self.inner.config, &self.inner.stores, route, schema).await?
        {
            Some(r) => r,
            None => unreachable!("the route has a search config"),
        };
        reindex(&info, &primary, &search_route, 500, progress).await
    }
}

/// A schema built from a `search` configuration: the key, the text fields
/// (nullable strings) and the filters (nullable, their configured kinds).
/// Leaked: built once per CLI run.
fn config_schema(entity: &str, s: &SearchConfig) -> &'static Schema {
    let leak = |x: &str| -> &'static str { Box::leak(x.to_string().into_boxed_str()) };
    let mut fields: Vec<FieldDef> = Vec::new();
    let mut push = |name: &str, kind: FieldKind| {
        if name != s.key && !fields.iter().any(|f| f.name == name) {
            fields.push(FieldDef {
                name: leak(name),
                ty: FieldType {
                    kind,
                    nullable: true,
                },
            });
        }
    };
    for f in &s.fields {
        push(f, FieldKind::String);
    }
    for (f, k) in &s.filters {
        push(f, kind_of(k).unwrap_or(FieldKind::String));
    }
    let fields: &'static [FieldDef] = Box::leak(fields.into_boxed_slice());
    Box::leak(Box::new(Schema {
        name: leak(entity),
        key: leak(&s.key),
        key_kind: key_kind_of(&s.key_kind),
        partition_key: None,
        version: None,
        fields,
    }))
}

/// Clears the index, then streams the primary store's records into it in
/// key order, page by page, and flushes.
async fn reindex(
    info: &EntityInfo,
    primary: &Arc<dyn Store>,
    route: &SearchRoute,
    page: usize,
    progress: &mut (dyn FnMut(ReindexProgress) + Send),
) -> Result<u64> {
    let entity = info.name();
    let caps = primary.capabilities();
    if !caps.query {
        return Err(Error::unsupported(
            &info.store,
            entity,
            "listing every record (query), which a re-index needs",
        ));
    }
    let search = route
        .store
        .as_search()
        .ok_or_else(|| Error::unsupported(&route.index.store, entity, "search"))?;
    let total = if caps.count {
        Some(
            primary
                .count(info, None)
                .await
                .map_err(|e| e.with_entity(entity))?,
        )
    } else {
        None
    };
    search
        .clear(&route.index)
        .await
        .map_err(|e| e.with_entity(entity))?;
    let key = info.schema.key;
    let order = vec![Order {
        field: key.into(),
        direction: Direction::Asc,
    }];
    let mut last: Option<Key> = None;
    let mut done = 0u64;
    progress(ReindexProgress { done, total });
    loop {
        let q = StoreQuery {
            filter: last.as_ref().map(|k| field(key).gt(k.to_value())),
            order: order.clone(),
            limit: Some(page),
        };
        let rows = primary
            .query(info, &q)
            .await
            .map_err(|e| e.with_entity(entity))?;
        if rows.is_empty() {
            break;
        }
        let n = rows.len();
        last = rows.last().map(|r| r.key.clone());
        search
            .index(&route.index, &rows)
            .await
            .map_err(|e| e.with_entity(entity))?;
        done += n as u64;
        progress(ReindexProgress { done, total });
        if n < page {
            break;
        }
    }
    search
        .flush(&route.index)
        .await
        .map_err(|e| e.with_entity(entity))?;
    Ok(done)
}
