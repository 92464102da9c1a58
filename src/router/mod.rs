//! The router: holds the stores, maps each entity to its route, and hands
//! out typed [`Repo`]s.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use polyrouter::Router;
//! let router = Router::from_toml_str(r#"
//!     [stores.kv]
//!     kind = "memory"
//!     [entities.session]
//!     store = "kv"
//!     ttl = "30m"
//! "#).await.unwrap();
//! assert_eq!(router.store_names(), vec!["kv"]);
//! # });
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use parking_lot::RwLock;

use crate::config::{BusSpec, Config, Consistency, EntityConfig, StoreSpec};
use crate::store::EntityInfo;
use crate::sync::Bus;
use crate::{Entity, Error, Result, Store};

mod cache;
mod cascade;
mod coalesce;
mod graph;
mod metrics;
mod namespace;
mod read;
mod replica;
mod repo;
mod search;
mod session;
mod timeseries;

pub(crate) use cache::cache_entity;
pub use graph::Graph;
pub use metrics::{EntityCounters, Metrics, WARN_INTERVAL};
pub use read::{ReadMeta, ReadSource};
pub use repo::{Batch, Page, Read, ReadOptions, Repo, WriteOptions};
pub use search::{ReindexProgress, SearchHit, SearchPage, SearchQuery};
pub use session::{DEFAULT_SESSION_KEYS, MAX_SESSION_KEYS, Session};
pub use timeseries::{SeriesPage, TimeSeries};

/// One entity's route, from `[entities.NAME]`.
#[derive(Debug, Clone)]
pub struct Route {
    /// Entity name.
    pub entity: String,
    /// Primary store name.
    pub store: String,
    /// Table / collection name.
    pub table: String,
    /// Default TTL of writes.
    pub ttl: Option<Duration>,
    /// Default read consistency.
    pub consistency: Consistency,
    /// The configuration it came from.
    pub config: EntityConfig,
}

impl Route {
    /// What the primary store needs to know about the entity on this
    /// route: table, store, tombstone retention, outbox.
    pub(crate) fn entity_info(&self, schema: &'static crate::Schema) -> EntityInfo {
        EntityInfo {
            table: self.table.clone(),
            store: self.store.clone(),
            tombstone_retention: self.config.tombstone_retention(),
            outbox: self.config.outbox.as_ref().map(|o| o.spec()),
            ..EntityInfo::new(schema)
        }
    }
}

/// A route bound to a Rust type: what a [`Repo`] holds.
#[derive(Debug)]
pub(crate) struct Bound {
    pub info: EntityInfo,
    pub store: Arc<dyn Store>,
    pub ttl: Option<Duration>,
    pub page_size: u32,
    pub max_page_size: u32,
    /// Cache-aside route, if configured.
    pub cache: Option<Arc<cache::CacheRoute>>,
    /// `read_from` replica, if configured.
    pub replica: Option<replica::Replica>,
    /// Default read consistency.
    pub consistency: Consistency,
    pub metrics: Arc<metrics::EntityMetrics>,
    /// `cascade_blobs`: blobs deleted after their record.
    pub cascade: Vec<cascade::Cascade>,
    /// The entity's search index, when it has one.
    pub search: Option<Arc<search::SearchRoute>>,
    /// `coalesce_reads`: concurrent primary point reads share round trips.
    pub coalesce: Option<Arc<coalesce::Coalescer>>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    stores: BTreeMap<String, Arc<dyn Store>>,
    routes: BTreeMap<String, Route>,
    metrics: BTreeMap<String, Arc<metrics::EntityMetrics>>,
    graphs: BTreeMap<String, Graph>,
    bound: RwLock<HashMap<&'static str, Arc<Bound>>>,
    /// Type-erased repositories by entity name, for views.
    dyn_repos: RwLock<HashMap<&'static str, Arc<dyn crate::aggregate::DynRepo>>>,
    binding: tokio::sync::Mutex<()>,
    time_series: BTreeMap<String, TimeSeries>,
    /// Event buses from `[buses.NAME]` and added in code.
    buses: BTreeMap<String, Arc<dyn Bus>>,
    /// Background purges of the time series; stopped with the router.
    purges: Vec<tokio::task::AbortHandle>,
    /// Per (entity, replica store): the commit time (ms since the Unix
    /// epoch) before which every write is applied to the replica, kept by
    /// a replica projection's watermark task; 0 while unknown.
    watermarks: parking_lot::Mutex<HashMap<(String, String), Arc<std::sync::atomic::AtomicI64>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in &self.purges {
            task.abort();
        }
    }
}

/// Routes every entity to its store. Cheap to clone; share one per process.
///
/// Build it from a file ([`Router::from_file`]), a string
/// ([`Router::from_toml_str`]) or in code ([`Router::builder`]).
#[derive(Debug, Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

type Registration = Box<dyn FnOnce(Router) -> BoxFuture<'static, Result<()>> + Send>;

/// Builds a [`Router`] from a config, stores made in code, routes and
/// entity types to prepare at start-up.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::sync::Arc;
/// use polyrouter::{backends::memory::MemoryStore, Router};
/// let router = Router::builder()
///     .store("kv", Arc::new(MemoryStore::new("kv")))
///     .route("session", "kv")
///     .build()
///     .await
///     .unwrap();
/// assert!(router.route("session").is_some());
/// # });
/// ```
#[must_use]
pub struct RouterBuilder {
    config: Config,
    stores: Vec<(String, Arc<dyn Store>)>,
    buses: Vec<(String, Arc<dyn Bus>)>,
    registrations: Vec<Registration>,
}

impl Router {
    /// A builder with an empty configuration.
    ///
    /// ```
    /// let _b = polyrouter::Router::builder();
    /// ```
    pub fn builder() -> RouterBuilder {
        RouterBuilder {
            config: Config::empty("<code>"),
            stores: Vec::new(),
            buses: Vec::new(),
            registrations: Vec::new(),
        }
    }

    /// Reads a TOML file, opens every store and checks every route.
    ///
    /// ```no_run
    /// # async fn f() -> polyrouter::Result<()> {
    /// let router = polyrouter::Router::from_file("polyrouter.toml").await?;
    /// # Ok(()) }
    /// ```
    pub async fn from_file(path: impl AsRef<Path>) -> Result<Router> {
        Self::builder()
            .config(Config::from_file(path)?)
            .build()
            .await
    }

    /// Parses TOML text, opens every store and checks every route.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let e = polyrouter::Router::from_toml_str("[stores.x]\nkind = \"memory\"\nbogus = 1\n").await.unwrap_err();
    /// assert!(e.to_string().starts_with("<string>:3:1: `stores.x.bogus`"), "{e}");
    /// # });
    /// ```
    pub async fn from_toml_str(text: &str) -> Result<Router> {
        Self::builder()
            .config(Config::parse(text, "<string>")?)
            .build()
            .await
    }

    /// A typed repository for `T`, preparing its storage (creating or
    /// checking the table) the first time it is asked for.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)]
    /// #[entity(name = "note", key = "id")]
    /// struct Note { id: i64, text: String }
    /// let router = polyrouter::Router::from_toml_str(
    ///     "[stores.m]\nkind = \"memory\"\n[entities.note]\nstore = \"m\"\n").await.unwrap();
    /// let notes = router.repo::<Note>().await.unwrap();
    /// notes.put(&Note { id: 1, text: "hi".into() }).await.unwrap();
    /// assert_eq!(notes.get(1).await.unwrap().unwrap().text, "hi");
    /// # });
    /// ```
    pub async fn repo<T: Entity>(&self) -> Result<Repo<T>> {
        let repo = Repo::new(self.bind(T::schema()).await?);
        if !self.inner.dyn_repos.read().contains_key(T::schema().name) {
            self.inner
                .dyn_repos
                .write()
                .entry(T::schema().name)
                .or_insert_with(|| Arc::new(repo.clone()));
        }
        Ok(repo)
    }

    /// The entities bound to a Rust type so far, with their primary store
    /// and the rows to ask per page: the tables of a SQL session.
    #[cfg(feature = "analytics")]
    pub(crate) fn sql_tables(&self) -> Vec<(EntityInfo, Arc<dyn Store>, usize)> {
        let bound = self.inner.bound.read();
        let mut out: Vec<_> = bound
            .values()
            .map(|b| (b.info.clone(), b.store.clone(), b.max_page_size as usize))
            .collect();
        out.sort_by(|a, b| a.0.name().cmp(b.0.name()));
        out
    }

    /// A typed repository for `T` in table `table` of store `store`,
    /// without an `[entities.NAME]` route: for the router's own records
    /// (the saga log) and tools that choose the table at run time. The
    /// table is created or checked now; keep the repository rather than
    /// asking again. It has no cache, replica, search index or cascade.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)]
    /// #[entity(name = "note", key = "id")]
    /// struct Note { id: i64, text: String }
    /// let router = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n").await.unwrap();
    /// let notes = router.repo_at::<Note>("m", "notes_2026").await.unwrap();
    /// notes.put(&Note { id: 1, text: "hi".into() }).await.unwrap();
    /// assert_eq!(notes.get(1).await.unwrap().unwrap().text, "hi");
    /// assert!(router.repo_at::<Note>("nope", "notes").await.is_err());
    /// # });
    /// ```
    pub async fn repo_at<T: Entity>(&self, store: &str, table: &str) -> Result<Repo<T>> {
        let schema = T::schema();
        let Some(s) = self.inner.stores.get(store) else {
            return Err(self.inner.config.error(
                &format!("stores.{store}"),
                format!("store `{store}` is not defined; add a [stores.{store}] table"),
            ));
        };
        if !s.capabilities().records {
            return Err(Error::unsupported(
                store,
                schema.name,
                format!("entity records (kind `{}`)", s.kind()),
            ));
        }
        let info = EntityInfo {
            table: table.to_string(),
            store: store.to_string(),
            ..EntityInfo::new(schema)
        };
        s.ensure_entity(&info)
            .await
            .map_err(|e| self.located(e, schema.name))?;
        Ok(Repo::new(Arc::new(Bound {
            info,
            store: s.clone(),
            ttl: None,
            page_size: self.inner.config.router.page_size,
            max_page_size: self.inner.config.router.max_page_size,
            cache: None,
            replica: None,
            consistency: Consistency::Strong,
            metrics: Arc::new(metrics::EntityMetrics::new(store, schema.name)),
            cascade: Vec::new(),
            search: None,
            coalesce: None,
        })))
    }

    /// The schema `entity` has in this process: its bound Rust type's, else
    /// the one its `sql = { ... }` columns describe, else `None`.
    pub(crate) fn entity_schema(&self, entity: &str) -> Result<Option<&'static crate::Schema>> {
        if let Some(s) = self.bound_schema(entity) {
            return Ok(Some(s));
        }
        let Some(cols) = self
            .inner
            .routes
            .get(entity)
            .and_then(|r| r.config.sql.as_ref())
        else {
            return Ok(None);
        };
        cols.schema(entity).map(Some).map_err(|(path, m)| {
            self.inner
                .config
                .error(&format!("entities.{entity}.sql{path}"), m)
        })
    }

    /// Bumps the cache epoch of `key` in this process's cache route of
    /// `entity`, if it is bound and cached: a fill in flight is dropped.
    pub(crate) fn bump_cache_epoch(&self, entity: &str, key: &crate::Key) {
        if let Some(c) = self
            .inner
            .bound
            .read()
            .get(entity)
            .and_then(|b| b.cache.clone())
        {
            c.bump(std::slice::from_ref(key));
        }
    }

    /// The watermark of `entity`'s replica in `store` (see
    /// [`replica::Replica`]): shared by the read path and the projection
    /// that fills the replica.
    pub(crate) fn replica_watermark(
        &self,
        entity: &str,
        store: &str,
    ) -> Arc<std::sync::atomic::AtomicI64> {
        self.inner
            .watermarks
            .lock()
            .entry((entity.to_string(), store.to_string()))
            .or_default()
            .clone()
    }

    /// The search route of an entity with a `search` option, for `schema`.
    pub(crate) async fn search_route(
        &self,
        route: &Route,
        schema: &'static crate::Schema,
    ) -> Result<Option<Arc<search::SearchRoute>>> {
        search::bind(&self.inner.config, &self.inner.stores, route, schema).await
    }

    /// The schema of the Rust type bound to `entity` so far, if any.
    pub(crate) fn bound_schema(&self, entity: &str) -> Option<&'static crate::Schema> {
        self.inner.bound.read().get(entity).map(|b| b.info.schema)
    }

    /// The type-erased repository of an entity a Rust type was bound to.
    pub(crate) fn dyn_repo(&self, entity: &str) -> Option<Arc<dyn crate::aggregate::DynRepo>> {
        self.inner.dyn_repos.read().get(entity).cloned()
    }

    async fn bind(&self, schema: &'static crate::Schema) -> Result<Arc<Bound>> {
        if let Some(b) = self.bound(schema)? {
            return Ok(b);
        }
        let _guard = self.inner.binding.lock().await;
        if let Some(b) = self.bound(schema)? {
            return Ok(b);
        }
        let Some(route) = self.inner.routes.get(schema.name) else {
            return Err(self.inner.config.error(
                &format!("entities.{}", schema.name),
                format!(
                    "entity `{}` has no route; add [entities.{}] with `store = \"...\"`",
                    schema.name, schema.name
                ),
            ));
        };
        let store = self.inner.stores[&route.store].clone();
        let store = crate::migrate::route_store(self, route, store).await?;
        let cascade = cascade::resolve(
            schema.name,
            schema,
            &route.config.cascade_blobs,
            &self.inner.stores,
            &self.inner.config,
        )?;
        let info = route.entity_info(schema);
        store
            .ensure_entity(&info)
            .await
            .map_err(|e| self.located(e, schema.name))?;
        let fix = |e: Error| self.located(e, schema.name);
        let cache = match &route.config.cache {
            Some(cc) => {
                let cstore = self.inner.stores[&cc.store].clone();
                let cinfo = cache::cache_entity(schema.key_kind, &info.table, &cc.store);
                cstore.ensure_entity(&cinfo).await.map_err(fix)?;
                Some(Arc::new(cache::CacheRoute::new(cstore, cinfo, cc)))
            }
            None => None,
        };
        let replica = match &route.config.read_from {
            Some(r) => {
                let rstore = self.inner.stores[r].clone();
                let rinfo = EntityInfo {
                    table: info.table.clone(),
                    store: r.clone(),
                    tombstone_retention: info.tombstone_retention,
                    ..EntityInfo::new(schema)
                };
                rstore.ensure_entity(&rinfo).await.map_err(fix)?;
                let watermark = self.replica_watermark(&route.entity, r);
                Some(replica::Replica::new(rstore, rinfo, watermark))
            }
            None => None,
        };
        let search = search::bind(&self.inner.config, &self.inner.stores, route, schema).await?;
        let coalesce = route.config.coalesce_reads.then(|| {
            coalesce::Coalescer::new(
                store.clone(),
                info.clone(),
                route.config.coalesce_max_batch.unwrap_or(128),
            )
        });
        let bound = Arc::new(Bound {
            info,
            store,
            ttl: route.ttl,
            page_size: self.inner.config.router.page_size,
            max_page_size: self.inner.config.router.max_page_size,
            cache,
            replica,
            consistency: route.consistency,
            metrics: self.inner.metrics[schema.name].clone(),
            cascade,
            search,
            coalesce,
        });
        self.inner.bound.write().insert(schema.name, bound.clone());
        Ok(bound)
    }

    /// A store's error about `entity`: a configuration error the store
    /// raised without a file (its options are checked in code) gets this
    /// router's file and line; any other error names the entity.
    fn located(&self, e: Error, entity: &str) -> Error {
        match e {
            Error::Config {
                file,
                path,
                message,
                ..
            } if file.is_empty() => self.inner.config.error(&path, message),
            e => e.with_entity(entity),
        }
    }

    /// The entity already bound under this schema's name; an error when a
    /// different Rust type claimed the name first.
    fn bound(&self, schema: &'static crate::Schema) -> Result<Option<Arc<Bound>>> {
        match self.inner.bound.read().get(schema.name) {
            Some(b) if b.info.schema == schema => Ok(Some(b.clone())),
            Some(b) => Err(Error::invalid_input(
                &b.info.store,
                schema.name,
                "two Rust types declare this entity name with different schemas; give one of them another `#[entity(name = ...)]`",
            )),
            None => Ok(None),
        }
    }

    /// The route of an entity, by name.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let r = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[entities.a]\nstore = \"m\"\n").await.unwrap();
    /// assert_eq!(r.route("a").unwrap().store, "m");
    /// # });
    /// ```
    pub fn route(&self, entity: &str) -> Option<&Route> {
        self.inner.routes.get(entity)
    }

    /// Every route, by entity name.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let r = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n").await.unwrap();
    /// assert_eq!(r.routes().count(), 0);
    /// # });
    /// ```
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.inner.routes.values()
    }

    /// A store by name.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let r = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n").await.unwrap();
    /// assert_eq!(r.store("m").unwrap().kind(), "memory");
    /// # });
    /// ```
    pub fn store(&self, name: &str) -> Option<&Arc<dyn Store>> {
        self.inner.stores.get(name)
    }

    /// The blob store named `store` (`[stores.NAME]` of kind `fs`,
    /// `azblob` or `memory`); an error when there is no such store or it
    /// does not hold blobs.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use polyrouter::store::blob::PutOptions;
    /// let r = polyrouter::Router::from_toml_str("[stores.images]\nkind = \"memory\"\n").await.unwrap();
    /// let images = r.blobs("images").unwrap();
    /// images.put_bytes("a.png", vec![1, 2], PutOptions::new()).await.unwrap();
    /// assert_eq!(images.head("a.png").await.unwrap().unwrap().size, 2);
    /// assert!(r.blobs("nope").is_err());
    /// # });
    /// ```
    pub fn blobs(&self, store: &str) -> Result<&dyn crate::store::blob::BlobStore> {
        let Some(s) = self.inner.stores.get(store) else {
            return Err(self.inner.config.error(
                &format!("stores.{store}"),
                format!("store `{store}` is not defined; add a [stores.{store}] table with a blob kind (`fs`, `azblob`, `memory`)"),
            ));
        };
        s.as_blob().ok_or_else(|| {
            Error::unsupported(
                store,
                "",
                format!("blobs (kind `{}` holds records only; use a store of kind `fs`, `azblob` or `memory`)", s.kind()),
            )
        })
    }

    /// Store names, sorted.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let r = polyrouter::Router::from_toml_str("[stores.b]\nkind = \"memory\"\n[stores.a]\nkind = \"memory\"\n").await.unwrap();
    /// assert_eq!(r.store_names(), vec!["a", "b"]);
    /// # });
    /// ```
    pub fn store_names(&self) -> Vec<&str> {
        self.inner.stores.keys().map(String::as_str).collect()
    }

    /// Read-path counters (cache hits, misses, fallbacks, stale answers,
    /// single-flight joins) of every routed entity.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let r = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[entities.a]\nstore = \"m\"\n").await.unwrap();
    /// assert_eq!(r.metrics().entity("a").unwrap().primary_reads, 0);
    /// # });
    /// ```
    pub fn metrics(&self) -> Metrics {
        Metrics {
            entities: self
                .inner
                .metrics
                .iter()
                .map(|(k, v)| (k.clone(), v.snapshot()))
                .collect(),
        }
    }

    /// The graph configured as `[graphs.NAME]`; an error naming the graph
    /// when there is none.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let r = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[graphs.social]\nstore = \"m\"\n").await.unwrap();
    /// assert!(r.graph("social").is_ok());
    /// assert!(r.graph("nope").unwrap_err().to_string().contains("graph `nope`"));
    /// # });
    /// ```
    pub fn graph(&self, name: &str) -> Result<Graph> {
        self.inner.graphs.get(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = self.inner.graphs.keys().map(String::as_str).collect();
            self.inner.config.error(
                &format!("graphs.{name}"),
                format!(
                    "graph `{name}` is not configured; add [graphs.{name}] with `store = \"...\"` (configured graphs: {})",
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                ),
            )
        })
    }

    /// The handle on a time series table from `[timeseries.NAME]`.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let r = polyrouter::Router::from_toml_str(
    ///     "[stores.m]\nkind = \"memory\"\n[timeseries.power]\nstore = \"m\"\nfields = [\"watts\"]\n").await.unwrap();
    /// assert_eq!(r.time_series("power").unwrap().info().table, "power");
    /// assert!(r.time_series("nope").is_err());
    /// # });
    /// ```
    pub fn time_series(&self, name: &str) -> Result<TimeSeries> {
        self.inner.time_series.get(name).cloned().ok_or_else(|| {
            self.inner.config.error(
                &format!("timeseries.{name}"),
                format!(
                    "time series `{name}` is not configured; add [timeseries.{name}] with `store` and `fields`"
                ),
            )
        })
    }

    /// The event bus configured as `[buses.NAME]` (or added in code); an
    /// error naming the bus when there is none.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let r = polyrouter::Router::from_toml_str("[buses.events]\nkind = \"memory\"\n").await.unwrap();
    /// assert_eq!(r.bus("events").unwrap().kind(), "memory");
    /// assert!(r.bus("nope").unwrap_err().to_string().contains("bus `nope`"));
    /// # });
    /// ```
    pub fn bus(&self, name: &str) -> Result<Arc<dyn Bus>> {
        self.inner.buses.get(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = self.inner.buses.keys().map(String::as_str).collect();
            self.inner.config.error(
                &format!("buses.{name}"),
                format!(
                    "bus `{name}` is not configured; add [buses.{name}] with `kind = \"memory\"`, `\"nats\"` or `\"redis-streams\"` (configured buses: {})",
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                ),
            )
        })
    }

    /// Bus names, sorted.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let r = polyrouter::Router::from_toml_str("[buses.b]\nkind = \"memory\"\n[buses.a]\nkind = \"memory\"\n").await.unwrap();
    /// assert_eq!(r.bus_names(), vec!["a", "b"]);
    /// # });
    /// ```
    pub fn bus_names(&self) -> Vec<&str> {
        self.inner.buses.keys().map(String::as_str).collect()
    }

    /// The configuration the router was built from.
    ///
    /// ```
    /// let r = tokio::runtime::Runtime::new().unwrap().block_on(polyrouter::Router::builder().build()).unwrap();
    /// assert_eq!(r.config().file, "<code>");
    /// ```
    pub fn config(&self) -> &Config {
        &self.inner.config
    }
}

impl RouterBuilder {
    /// Uses a parsed configuration (replacing any earlier one).
    ///
    /// ```
    /// let cfg = polyrouter::config::Config::parse("[stores.m]\nkind = \"memory\"\n", "<string>").unwrap();
    /// let _b = polyrouter::Router::builder().config(cfg);
    /// ```
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Adds a store made in code (e.g. wrapped in layers).
    ///
    /// ```
    /// use std::sync::Arc;
    /// let _b = polyrouter::Router::builder()
    ///     .store("kv", Arc::new(polyrouter::backends::memory::MemoryStore::new("kv")));
    /// ```
    pub fn store(mut self, name: &str, store: Arc<dyn Store>) -> Self {
        self.stores.push((name.into(), store));
        self
    }

    /// Adds a store from a kind and options, as `[stores.NAME]` would.
    ///
    /// ```
    /// let _b = polyrouter::Router::builder().store_spec(
    ///     polyrouter::config::StoreSpec::new("kv", "memory", toml::Table::new()));
    /// ```
    pub fn store_spec(mut self, spec: StoreSpec) -> Self {
        self.config.stores.insert(spec.name.clone(), spec);
        self
    }

    /// Adds an event bus made in code.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let _b = polyrouter::Router::builder()
    ///     .bus("events", Arc::new(polyrouter::sync::MemoryBus::new("events")));
    /// ```
    pub fn bus(mut self, name: &str, bus: Arc<dyn Bus>) -> Self {
        self.buses.push((name.into(), bus));
        self
    }

    /// Adds an event bus from a kind and options, as `[buses.NAME]` would.
    ///
    /// ```
    /// let _b = polyrouter::Router::builder().bus_spec(
    ///     polyrouter::config::BusSpec::new("events", "memory", toml::Table::new()));
    /// ```
    pub fn bus_spec(mut self, spec: BusSpec) -> Self {
        self.config.buses.insert(spec.name.clone(), spec);
        self
    }

    /// Routes an entity to a store with default settings.
    ///
    /// ```
    /// let _b = polyrouter::Router::builder().route("user", "main");
    /// ```
    pub fn route(self, entity: &str, store: &str) -> Self {
        self.route_with(
            entity,
            EntityConfig {
                store: store.into(),
                ..Default::default()
            },
        )
    }

    /// Routes an entity with full settings, as `[entities.NAME]` would.
    ///
    /// ```
    /// use polyrouter::config::{ConfigDuration, EntityConfig};
    /// let _b = polyrouter::Router::builder().route_with("session", EntityConfig {
    ///     store: "kv".into(),
    ///     ttl: Some(ConfigDuration(std::time::Duration::from_secs(1800))),
    ///     ..Default::default()
    /// });
    /// ```
    pub fn route_with(mut self, entity: &str, config: EntityConfig) -> Self {
        self.config.entities.insert(entity.into(), config);
        self
    }

    /// Adds a view, as `[views.NAME]` would (checked by [`build`](Self::build)).
    ///
    /// ```
    /// use polyrouter::config::{ViewBranch, ViewConfig};
    /// let mut v = ViewConfig { params: vec!["id".into()], ..Default::default() };
    /// v.branches.insert("user".into(), ViewBranch { entity: "user".into(), get: Some("$id".into()), ..Default::default() });
    /// let _b = polyrouter::Router::builder().view("profile", v);
    /// ```
    pub fn view(mut self, name: &str, view: crate::config::ViewConfig) -> Self {
        self.config.views.insert(name.into(), view);
        self
    }

    /// Adds a graph, as `[graphs.NAME]` would.
    ///
    /// ```
    /// use polyrouter::config::GraphConfig;
    /// let _b = polyrouter::Router::builder()
    ///     .graph("social", GraphConfig { store: "main".into(), table_prefix: None });
    /// ```
    pub fn graph(mut self, name: &str, config: crate::config::GraphConfig) -> Self {
        self.config.graphs.insert(name.into(), config);
        self
    }

    /// Adds a time series table, as `[timeseries.NAME]` would.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::sync::Arc;
    /// use polyrouter::config::TimeSeriesConfig;
    /// let router = polyrouter::Router::builder()
    ///     .store("m", Arc::new(polyrouter::backends::memory::MemoryStore::new("m")))
    ///     .time_series("power", TimeSeriesConfig { store: "m".into(), fields: vec!["watts".into()], ..Default::default() })
    ///     .build()
    ///     .await
    ///     .unwrap();
    /// assert!(router.time_series("power").is_ok());
    /// # });
    /// ```
    pub fn time_series(mut self, name: &str, config: crate::config::TimeSeriesConfig) -> Self {
        self.config.timeseries.insert(name.into(), config);
        self
    }

    /// Prepares `T`'s storage during [`build`](Self::build), so a bad table
    /// fails start-up rather than the first request.
    ///
    /// ```
    /// #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)]
    /// struct Item { id: String }
    /// let _b = polyrouter::Router::builder().entity::<Item>();
    /// ```
    pub fn entity<T: Entity>(mut self) -> Self {
        self.registrations.push(Box::new(|router: Router| {
            Box::pin(async move { router.repo::<T>().await.map(|_| ()) })
        }));
        self
    }

    /// Opens every store, checks every route against its store's
    /// capabilities, and prepares the registered entity types.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let e = polyrouter::Router::builder().route("user", "nope").build().await.unwrap_err();
    /// assert!(e.to_string().contains("store `nope` is not defined"), "{e}");
    /// # });
    /// ```
    pub async fn build(self) -> Result<Router> {
        let config = self.config;
        let mut stores: BTreeMap<String, Arc<dyn Store>> = BTreeMap::new();
        for (name, spec) in &config.stores {
            let store = crate::backends::open(spec.clone()).await?;
            let store = crate::layers::Resilience::configured(&spec.resilience, store);
            stores.insert(name.clone(), store);
        }
        for (name, store) in self.stores {
            if stores.contains_key(&name) {
                return Err(config.error(
                    &format!("stores.{name}"),
                    format!("duplicate store name `{name}`: it is both in the configuration and added in code"),
                ));
            }
            stores.insert(name, store);
        }
        let buses = open_buses(&config, self.buses).await?;
        let mut routes = BTreeMap::new();
        for (entity, ec) in &config.entities {
            let route = check_route(&config, &stores, entity, ec)?;
            routes.insert(entity.clone(), route);
        }
        namespace::check(&config, &stores, &routes)?;
        for (name, v) in &config.views {
            if let Err((keys, msg)) = v.check(&config.entities, &config.graphs) {
                let path = format!("views.{name}.{}", keys.join("."));
                return Err(config.error(&path, msg));
            }
        }
        let metrics = routes
            .iter()
            .map(|(k, r): (&String, &Route)| {
                (
                    k.clone(),
                    Arc::new(metrics::EntityMetrics::new(&r.store, k)),
                )
            })
            .collect();
        let graphs = open_graphs(&config, &stores).await?;
        let mut time_series = BTreeMap::new();
        let mut purges = Vec::new();
        for (name, tc) in &config.timeseries {
            let Some(store) = stores.get(&tc.store) else {
                return Err(config.error(
                    &format!("timeseries.{name}.store"),
                    format!("store `{}` is not defined", tc.store),
                ));
            };
            let handle = TimeSeries::open(&config, name, tc, store.clone()).await?;
            if handle.retention().is_some() && !tc.purge_interval().is_zero() {
                purges.push(timeseries::spawn_purge(&handle, tc.purge_interval()));
            }
            time_series.insert(name.clone(), handle);
        }
        let router = Router {
            inner: Arc::new(Inner {
                config,
                stores,
                routes,
                metrics,
                graphs,
                bound: RwLock::new(HashMap::new()),
                dyn_repos: RwLock::new(HashMap::new()),
                binding: tokio::sync::Mutex::new(()),
                time_series,
                buses,
                purges,
                watermarks: Default::default(),
            }),
        };
        for register in self.registrations {
            register(router.clone()).await?;
        }
        Ok(router)
    }
}

/// Opens the configured buses (which checks their options, not their
/// servers: a bus that is down reports it on use) and adds those made in
/// code.
async fn open_buses(
    config: &Config,
    in_code: Vec<(String, Arc<dyn Bus>)>,
) -> Result<BTreeMap<String, Arc<dyn Bus>>> {
    let mut buses = BTreeMap::new();
    for (name, spec) in &config.buses {
        buses.insert(name.clone(), crate::sync::open_bus(spec.clone()).await?);
    }
    for (name, bus) in in_code {
        if buses.contains_key(&name) {
            return Err(config.error(
                &format!("buses.{name}"),
                format!(
                    "duplicate bus name `{name}`: it is both in the configuration and added in code"
                ),
            ));
        }
        buses.insert(name, bus);
    }
    Ok(buses)
}

/// Checks one route against the stores' capabilities.
fn check_route(
    config: &Config,
    stores: &BTreeMap<String, Arc<dyn Store>>,
    entity: &str,
    ec: &EntityConfig,
) -> Result<Route> {
    let Some(store) = stores.get(&ec.store) else {
        return Err(config.error(
            &format!("entities.{entity}.store"),
            format!(
                "store `{}` is not defined; add a [stores.{}] table",
                ec.store, ec.store
            ),
        ));
    };
    search::check_route(config, stores, entity, ec)?;
    let caps = store.capabilities();
    if !caps.records {
        let what = if caps.blob {
            "holds blobs only, not entity records; route the entity to a record store and keep the blob key in a field (see `cascade_blobs`)"
        } else {
            "cannot hold entity records; make it the entity's `search.store` and route `store` to a record store"
        };
        return Err(config.error(
            &format!("entities.{entity}.store"),
            format!("store `{}` (kind `{}`) {what}", ec.store, store.kind()),
        ));
    }
    if ec.ttl.is_some() && !caps.ttl {
        return Err(Error::unsupported(
            &ec.store,
            entity,
            format!(
                "ttl (asked for by `entities.{entity}.ttl` in {})",
                config.file
            ),
        ));
    }
    let ttls = [
        ("ttl", ec.ttl),
        ("cache.ttl", ec.cache.as_ref().and_then(|c| c.ttl)),
    ];
    for (key, ttl) in ttls {
        if let Some(problem) = ttl.and_then(|t| crate::capability::ttl_problem(t.0)) {
            return Err(config.error(&format!("entities.{entity}.{key}"), problem));
        }
    }
    if ec.key_prefix.is_some() && !caps.key_prefix {
        return Err(Error::unsupported(
            &ec.store,
            entity,
            format!(
                "key_prefix (`entities.{entity}.key_prefix` in {}): this store namespaces entities by table; use `table` instead",
                config.file
            ),
        ));
    }
    if let Some(cc) = &ec.cache {
        let Some(cstore) = stores.get(&cc.store) else {
            return Err(config.error(
                &format!("entities.{entity}.cache.store"),
                format!(
                    "store `{}` is not defined; add a [stores.{}] table",
                    cc.store, cc.store
                ),
            ));
        };
        if cc.store == ec.store {
            return Err(config.error(
                &format!("entities.{entity}.cache.store"),
                "the cache store must differ from the primary store",
            ));
        }
        if !cstore.capabilities().ttl {
            return Err(Error::unsupported(
                &cc.store,
                entity,
                format!(
                    "ttl, which a cache store needs (`entities.{entity}.cache` in {}); use a store with TTL such as redis or memory",
                    config.file
                ),
            ));
        }
        if cc.ttl.is_none() {
            return Err(config.error(
                &format!("entities.{entity}.cache"),
                "a cache needs `ttl`, e.g. `cache = { store = \"cache\", ttl = \"1h\" }`",
            ));
        }
    }
    if ec.outbox.is_some() && !caps.outbox {
        return Err(Error::unsupported(
            &ec.store,
            entity,
            format!(
                "a transactional outbox (`entities.{entity}.outbox` in {}): this store cannot record change events atomically with its writes, and polyrouter never dual-writes; put the entity on a store with an outbox (sqlite, postgres, mysql, redis, cosmos, memory)",
                config.file
            ),
        ));
    }
    if let Some(r) = &ec.read_from {
        if !stores.contains_key(r) || *r == ec.store {
            return Err(config.error(
                &format!("entities.{entity}.read_from"),
                format!(
                    "`{r}` must be a defined store other than the primary `{}`",
                    ec.store
                ),
            ));
        }
    }
    Ok(Route {
        entity: entity.into(),
        store: ec.store.clone(),
        // On key-value stores the key prefix, when set, is the entity's namespace.
        table: ec
            .key_prefix
            .clone()
            .filter(|_| caps.key_prefix)
            .or_else(|| ec.table.clone())
            .unwrap_or_else(|| entity.to_string()),
        ttl: ec.ttl.map(|d| d.0),
        consistency: ec.read_consistency(),
        config: ec.clone(),
    })
}

/// Checks every `[graphs.NAME]` against its store and prepares its tables.
async fn open_graphs(
    config: &Config,
    stores: &BTreeMap<String, Arc<dyn Store>>,
) -> Result<BTreeMap<String, Graph>> {
    let mut graphs = BTreeMap::new();
    for (name, gc) in &config.graphs {
        let Some(store) = stores.get(&gc.store) else {
            return Err(config.error(
                &format!("graphs.{name}.store"),
                format!(
                    "store `{}` is not defined; add a [stores.{}] table",
                    gc.store, gc.store
                ),
            ));
        };
        let Some(api) = store.as_graph().filter(|_| store.capabilities().graph) else {
            return Err(config.error(
                &format!("graphs.{name}.store"),
                format!(
                    "store `{}` (kind `{}`) cannot hold graphs; use a store with the graph capability (memory, sqlite, postgres, gremlin)",
                    gc.store,
                    store.kind()
                ),
            ));
        };
        let info = match &gc.table_prefix {
            Some(prefix) => crate::store::graph::GraphInfo::with_prefix(name, &gc.store, prefix),
            None => crate::store::graph::GraphInfo::new(name, &gc.store),
        };
        api.ensure_graph(&info).await?;
        graphs.insert(name.clone(), Graph::new(info, store.clone()));
    }
    Ok(graphs)
}
