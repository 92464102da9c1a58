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

use crate::config::{Config, EntityConfig, StoreSpec};
use crate::store::EntityInfo;
use crate::{Entity, Error, Result, Store};

mod repo;
mod search;

pub use repo::{Batch, Page, Repo, WriteOptions};
pub use search::{ReindexProgress, SearchHit, SearchPage, SearchQuery};

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
    /// The configuration it came from.
    pub config: EntityConfig,
}

/// A route bound to a Rust type: what a [`Repo`] holds.
#[derive(Debug)]
pub(crate) struct Bound {
    pub info: EntityInfo,
    pub store: Arc<dyn Store>,
    pub ttl: Option<Duration>,
    pub page_size: u32,
    pub max_page_size: u32,
    /// The entity's search index, when it has one.
    pub search: Option<Arc<search::SearchRoute>>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    stores: BTreeMap<String, Arc<dyn Store>>,
    routes: BTreeMap<String, Route>,
    bound: RwLock<HashMap<&'static str, Arc<Bound>>>,
    binding: tokio::sync::Mutex<()>,
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
        Ok(Repo::new(self.bind(T::schema()).await?))
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
        let info = EntityInfo {
            schema,
            table: route.table.clone(),
            store: route.store.clone(),
        };
        store.ensure_entity(&info).await.map_err(|e| match e {
            Error::Config {
                file,
                path,
                message,
                ..
            } if file.is_empty() => self.inner.config.error(&path, message),
            e => e.with_entity(schema.name),
        })?;
        let search = search::bind(&self.inner.config, &self.inner.stores, route, schema).await?;
        let bound = Arc::new(Bound {
            info,
            store,
            ttl: route.ttl,
            page_size: self.inner.config.router.page_size,
            max_page_size: self.inner.config.router.max_page_size,
            search,
        });
        self.inner.bound.write().insert(schema.name, bound.clone());
        Ok(bound)
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
        let mut routes = BTreeMap::new();
        for (entity, ec) in &config.entities {
            let route = check_route(&config, &stores, entity, ec)?;
            routes.insert(entity.clone(), route);
        }
        let router = Router {
            inner: Arc::new(Inner {
                config,
                stores,
                routes,
                bound: RwLock::new(HashMap::new()),
                binding: tokio::sync::Mutex::new(()),
            }),
        };
        for register in self.registrations {
            register(router.clone()).await?;
        }
        Ok(router)
    }
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
    if ec.cache.is_some() {
        return Err(Error::unsupported(
            &ec.store,
            entity,
            format!(
                "cache-aside (`entities.{entity}.cache` in {}, planned for a later release)",
                config.file
            ),
        ));
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
        config: ec.clone(),
    })
}
