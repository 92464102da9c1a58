//! The aggregator: one call that reads several entities, possibly in
//! several stores, concurrently, with a deadline per branch and one for the
//! whole call, and a result per branch that is a value or the named store
//! that failed and why.
//!
//! Branch kinds ([`Aggregate`]): point reads (`get`, `get_many`), queries
//! (`query`), joins without N+1 (`join`: one `get_many` per branch),
//! full-text search hydrated from the primary store (`search`), ranked ids
//! from any source hydrated the same way (`hydrate`), graph reads —
//! neighbours, mutual connections, friends of friends, degrees — as ids
//! (`graph`) or as entity records with one `get_many` (`graph_records`),
//! and any future (`branch`). `[views.NAME]` declares the same branches in
//! TOML ([`Router::view`]).
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::time::Duration;
//! use polyrouter::{query::field, Entity, Query, Router};
//! #[derive(Entity, serde::Serialize, serde::Deserialize, Debug)]
//! struct Customer { id: String, name: String }
//! #[derive(Entity, serde::Serialize, serde::Deserialize, Debug)]
//! struct Purchase { id: i64, customer_id: String, sku: String }
//! #[derive(Entity, serde::Serialize, serde::Deserialize, Debug)]
//! #[entity(name = "catalog_item", key = "sku")]
//! struct CatalogItem { sku: String, title: String }
//! let router = Router::from_toml_str(r#"
//!     [stores.sql]
//!     kind = "memory"
//!     [stores.docs]
//!     kind = "memory"
//!     [entities.customer]
//!     store = "sql"
//!     [entities.purchase]
//!     store = "sql"
//!     [entities.catalog_item]
//!     store = "docs"
//! "#).await?;
//! router.repo::<Customer>().await?.put(&Customer { id: "c1".into(), name: "Ada".into() }).await?;
//! router.repo::<Purchase>().await?.put(&Purchase { id: 1, customer_id: "c1".into(), sku: "p9".into() }).await?;
//! router.repo::<CatalogItem>().await?.put(&CatalogItem { sku: "p9".into(), title: "Lamp".into() }).await?;
//! let out = router.aggregate()
//!     .get::<Customer>("customer", "c1").required()
//!     .query::<Purchase>("purchases", Query::new().filter(field("customer_id").eq("c1")).limit(10))
//!     .join::<CatalogItem>("items", "purchases", "sku")
//!     .timeout(Duration::from_millis(500))
//!     .run().await?;
//! let c: Customer = out.value("customer")?;
//! let items: Vec<CatalogItem> = out.value("items")?;
//! assert_eq!((c.name.as_str(), items[0].title.as_str()), ("Ada", "Lamp"));
//! assert!(out.failures().next().is_none());
//! # Ok::<(), polyrouter::Error>(())
//! # }).unwrap();
//! ```

mod dynrepo;
mod graph;
mod hydrate;
mod view;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, join_all};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

pub(crate) use dynrepo::DynRepo;
use dynrepo::{ReadCtx, json_key};
pub use graph::{GraphOp, GraphRead, Recommended};
pub use hydrate::{Hydrated, Scored, hydrate};

use crate::config::Consistency;
use crate::router::{SearchQuery, Session};
use crate::{Entity, Error, Key, Query, Result, Router};

/// The default deadline of the whole call when none is set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

type Run = Box<dyn FnOnce(Inputs) -> BoxFuture<'static, Result<Produced>> + Send>;

/// What a branch produced: its JSON value and how many referenced records
/// were missing (joins and hydration drop those).
struct Produced {
    value: Json,
    dropped: usize,
}

/// The finished branch a dependent branch reads.
#[derive(Clone)]
struct Inputs {
    source: Option<Arc<Json>>,
}

struct Branch {
    name: String,
    store: String,
    entity: String,
    needs: Option<String>,
    required: bool,
    deadline: Option<Duration>,
    /// Branches that read two stores (search then primary, graph then
    /// primary) report the store their error names, not only `store`.
    store_from_error: bool,
    run: Run,
}

/// Why a branch has no value.
///
/// ```
/// let f = polyrouter::aggregate::BranchFailure { store: "db".into(), entity: "user".into(), timed_out: true, message: "deadline".into() };
/// assert!(f.to_string().contains("store `db`"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BranchFailure {
    /// The store the branch read (or was to read).
    pub store: String,
    /// The entity it read.
    pub entity: String,
    /// True when it missed its deadline (or the call's).
    pub timed_out: bool,
    /// The error, as text.
    pub message: String,
}

impl fmt::Display for BranchFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "store `{}`, entity `{}`: {}",
            self.store, self.entity, self.message
        )
    }
}

/// One branch's outcome.
///
/// ```
/// let b = polyrouter::aggregate::BranchResult { name: "x".into(), outcome: Ok(serde_json::json!(1)), dropped: 0, elapsed: Default::default() };
/// assert!(b.outcome.is_ok());
/// ```
#[derive(Debug, Clone)]
pub struct BranchResult {
    /// The branch name.
    pub name: String,
    /// Its value as JSON, or why it has none.
    pub outcome: std::result::Result<Json, BranchFailure>,
    /// Referenced records that were gone (joins, hydration), dropped from the value.
    pub dropped: usize,
    /// How long it ran.
    pub elapsed: Duration,
}

/// The result of [`Aggregate::run`] and [`Router::view`]: one outcome per
/// branch, in the order they were declared.
///
/// ```
/// let a = polyrouter::aggregate::Aggregated::default();
/// assert!(a.branch("x").is_none());
/// assert_eq!(a.to_json(), serde_json::json!({"data": {}, "errors": {}}));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Aggregated {
    /// Every branch, in declaration order.
    pub branches: Vec<BranchResult>,
}

impl Aggregated {
    /// A branch by name.
    ///
    /// ```
    /// assert!(polyrouter::aggregate::Aggregated::default().branch("user").is_none());
    /// ```
    pub fn branch(&self, name: &str) -> Option<&BranchResult> {
        self.branches.iter().find(|b| b.name == name)
    }

    /// A branch's value as `V`: an entity for `get` (or `Option<E>`),
    /// `Vec<E>` for `query` and `join`, `Vec<Option<E>>` for `get_many`,
    /// `Vec<Scored<E>>` for `hydrate` and `search`; for graph branches see
    /// [`GraphRead`]. A failed branch is the error naming
    /// its store; an unknown branch or a type mismatch is `InvalidInput`.
    ///
    /// ```
    /// let e = polyrouter::aggregate::Aggregated::default().value::<i64>("nope").unwrap_err();
    /// assert!(e.to_string().contains("no branch `nope`"));
    /// ```
    pub fn value<V: DeserializeOwned>(&self, name: &str) -> Result<V> {
        let b = self.branch(name).ok_or_else(|| {
            Error::invalid_input(
                "aggregate",
                "",
                format!("no branch `{name}` in this result"),
            )
        })?;
        match &b.outcome {
            Ok(v) => serde_json::from_value(v.clone()).map_err(|e| {
                Error::invalid_input(
                    "aggregate",
                    "",
                    format!("branch `{name}` does not fit the requested type: {e}"),
                )
            }),
            Err(f) => Err(failure_error(name, f)),
        }
    }

    /// The failed branches and why.
    ///
    /// ```
    /// assert_eq!(polyrouter::aggregate::Aggregated::default().failures().count(), 0);
    /// ```
    pub fn failures(&self) -> impl Iterator<Item = (&str, &BranchFailure)> {
        self.branches
            .iter()
            .filter_map(|b| b.outcome.as_ref().err().map(|f| (b.name.as_str(), f)))
    }

    /// Everything as one JSON object: `{"data": {branch: value},
    /// "errors": {branch: {store, entity, timed_out, message}}}`.
    ///
    /// ```
    /// let j = polyrouter::aggregate::Aggregated::default().to_json();
    /// assert!(j["data"].is_object());
    /// ```
    pub fn to_json(&self) -> Json {
        let mut data = serde_json::Map::new();
        let mut errors = serde_json::Map::new();
        for b in &self.branches {
            match &b.outcome {
                Ok(v) => {
                    data.insert(b.name.clone(), v.clone());
                }
                Err(f) => {
                    errors.insert(
                        b.name.clone(),
                        serde_json::to_value(f).unwrap_or(Json::Null),
                    );
                }
            }
        }
        serde_json::json!({ "data": data, "errors": errors })
    }
}

fn failure_error(name: &str, f: &BranchFailure) -> Error {
    let msg = format!("aggregate branch `{name}` failed: {}", f.message);
    if f.timed_out {
        Error::unavailable(&f.store, &f.entity, msg)
    } else {
        Error::backend(&f.store, &f.entity, msg)
    }
}

/// Builds one aggregate read; nothing runs until [`run`](Aggregate::run).
/// Get one with [`Router::aggregate`].
///
/// Branches run concurrently; a `join` or `join_many` branch runs as soon
/// as the branch it reads from is done. Branches are **optional** by
/// default (their failure leaves a partial result); mark one
/// [`required`](Aggregate::required) to make its failure fail the call.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// # let router = polyrouter::Router::builder().build().await.unwrap();
/// let out = router.aggregate().run().await.unwrap();
/// assert!(out.branches.is_empty());
/// # });
/// ```
#[must_use]
pub struct Aggregate {
    router: Router,
    branches: Vec<Branch>,
    timeout: Duration,
    ctx: ReadCtx,
    error: Option<Error>,
}

impl fmt::Debug for Aggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aggregate")
            .field(
                "branches",
                &self.branches.iter().map(|b| &b.name).collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Router {
    /// Starts an aggregate read over this router's entities.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let router = polyrouter::Router::builder().build().await.unwrap();
    /// let _a = router.aggregate().timeout(std::time::Duration::from_millis(200));
    /// # });
    /// ```
    pub fn aggregate(&self) -> Aggregate {
        Aggregate {
            router: self.clone(),
            branches: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            ctx: ReadCtx::default(),
            error: None,
        }
    }
}

impl Aggregate {
    fn push(mut self, b: Branch) -> Self {
        if self.branches.iter().any(|x| x.name == b.name) {
            self.error.get_or_insert(Error::invalid_input(
                "aggregate",
                &b.entity,
                format!(
                    "two branches are named `{}`; give each its own name",
                    b.name
                ),
            ));
        }
        if let Some(n) = &b.needs {
            if !self.branches.iter().any(|x| &x.name == n) {
                self.error.get_or_insert(Error::invalid_input(
                    "aggregate",
                    &b.entity,
                    format!(
                        "branch `{}` reads from `{n}`, which is not declared before it",
                        b.name
                    ),
                ));
            }
        }
        self.branches.push(b);
        self
    }

    fn store_of(&self, entity: &str) -> String {
        self.router
            .route(entity)
            .map(|r| r.store.clone())
            .unwrap_or_default()
    }

    fn typed<T: Entity>(
        self,
        name: &str,
        needs: Option<String>,
        run: impl FnOnce(Arc<dyn DynRepo>, ReadCtx, Inputs) -> BoxFuture<'static, Result<Produced>>
        + Send
        + 'static,
    ) -> Self {
        let store = self.store_of(T::schema().name);
        self.typed_at::<T>(name, store, false, needs, run)
    }

    /// A branch over `T`'s repository that reports `store` when it fails
    /// (and, with `store_from_error`, the store its error names).
    fn typed_at<T: Entity>(
        self,
        name: &str,
        store: String,
        store_from_error: bool,
        needs: Option<String>,
        run: impl FnOnce(Arc<dyn DynRepo>, ReadCtx, Inputs) -> BoxFuture<'static, Result<Produced>>
        + Send
        + 'static,
    ) -> Self {
        let router = self.router.clone();
        let ctx = self.ctx.clone();
        let entity = T::schema().name;
        let run: Run = Box::new(move |inputs| {
            Box::pin(async move {
                let repo: Arc<dyn DynRepo> = Arc::new(router.repo::<T>().await?);
                run(repo, ctx, inputs).await
            })
        });
        self.push(Branch {
            name: name.into(),
            store,
            entity: entity.into(),
            needs,
            required: false,
            deadline: None,
            store_from_error,
            run,
        })
    }

    /// A point read; its value is the entity or `null`.
    ///
    /// ```no_run
    /// # async fn f(r: polyrouter::Router) -> polyrouter::Result<()> {
    /// let out = r.aggregate().get::<U>("user", "u1").run().await?;
    /// let u: Option<U> = out.value("user")?;
    /// # Ok(()) }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct U { id: String }
    /// ```
    pub fn get<T: Entity>(self, name: &str, key: impl Into<Key>) -> Self {
        let key = key.into();
        self.typed::<T>(name, None, move |repo, ctx, _| {
            Box::pin(async move {
                Ok(Produced {
                    value: repo.get_json(key, &ctx).await?,
                    dropped: 0,
                })
            })
        })
    }

    /// A batched point read: one `get_many`; a slot per key, `null` when absent.
    ///
    /// ```no_run
    /// # async fn f(r: polyrouter::Router) -> polyrouter::Result<()> {
    /// let out = r.aggregate().get_many::<U>("users", ["a", "b"]).run().await?;
    /// let us: Vec<Option<U>> = out.value("users")?;
    /// # Ok(()) }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct U { id: String }
    /// ```
    pub fn get_many<T: Entity>(
        self,
        name: &str,
        keys: impl IntoIterator<Item = impl Into<Key>>,
    ) -> Self {
        let keys: Vec<Key> = keys.into_iter().map(Into::into).collect();
        self.typed::<T>(name, None, move |repo, ctx, _| {
            Box::pin(async move {
                Ok(Produced {
                    value: Json::Array(repo.get_many_json(keys, &ctx).await?),
                    dropped: 0,
                })
            })
        })
    }

    /// A query (one page); its value is the list of rows.
    ///
    /// ```no_run
    /// # async fn f(r: polyrouter::Router) -> polyrouter::Result<()> {
    /// let out = r.aggregate().query::<U>("users", polyrouter::Query::new().limit(5)).run().await?;
    /// let us: Vec<U> = out.value("users")?;
    /// # Ok(()) }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct U { id: String }
    /// ```
    pub fn query<T: Entity>(self, name: &str, q: Query) -> Self {
        self.typed::<T>(name, None, move |repo, _, _| {
            Box::pin(async move {
                Ok(Produced {
                    value: repo.query_json(q).await?,
                    dropped: 0,
                })
            })
        })
    }

    /// A cross-store join without N+1: once branch `from` is done, the
    /// values of its rows' `field` are collected, de-duplicated (first
    /// appearance order kept), and read with **one** `get_many` of `T`.
    /// The value is the list of found `T`s in that order; keys whose
    /// record is gone are dropped and counted in
    /// [`BranchResult::dropped`].
    ///
    /// ```no_run
    /// # async fn f(r: polyrouter::Router) -> polyrouter::Result<()> {
    /// let out = r.aggregate()
    ///     .query::<O>("orders", polyrouter::Query::new())
    ///     .join::<P>("products", "orders", "product_id")
    ///     .run().await?;
    /// let products: Vec<P> = out.value("products")?;
    /// # Ok(()) }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct O { id: i64, product_id: String }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct P { id: String }
    /// ```
    pub fn join<T: Entity>(self, name: &str, from: &str, field: &str) -> Self {
        let field = field.to_string();
        let from_name = from.to_string();
        self.typed::<T>(name, Some(from.into()), move |repo, ctx, inputs| {
            Box::pin(async move {
                let source = inputs.source.unwrap_or_default();
                join_values(&*repo, &ctx, &source, &field, &from_name).await
            })
        })
    }

    /// Search-then-hydrate as a branch: `hits` are ids with scores from
    /// any source (a search index, a recommender, a ranking); one
    /// `get_many` reads them, rank order is kept, ids whose record is
    /// gone are dropped and counted. The value is `[{id, score, item}]`
    /// (read it as `Vec<Scored<T>>`).
    ///
    /// ```no_run
    /// # async fn f(r: polyrouter::Router) -> polyrouter::Result<()> {
    /// use polyrouter::aggregate::Scored;
    /// let out = r.aggregate().hydrate::<P>("results", [("p1", 0.9), ("p2", 0.5)]).run().await?;
    /// let hits: Vec<Scored<P>> = out.value("results")?;
    /// # Ok(()) }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct P { id: String }
    /// ```
    pub fn hydrate<T: Entity>(
        self,
        name: &str,
        hits: impl IntoIterator<Item = (impl Into<Key>, f64)>,
    ) -> Self {
        let hits: Vec<(Key, f64)> = hits.into_iter().map(|(k, s)| (k.into(), s)).collect();
        self.typed::<T>(name, None, move |repo, ctx, _| {
            Box::pin(async move { hydrate_json(&*repo, &ctx, hits).await })
        })
    }

    /// Full-text search as a branch: `q` runs on `T`'s search index
    /// (`search = { store, fields, ... }` on the entity), then the hits are
    /// read from the primary store with **one** `get_many`, as
    /// [`hydrate`](Aggregate::hydrate) does: rank order kept, hits whose
    /// record is gone dropped and counted in [`BranchResult::dropped`].
    /// The value is `[{id, score, item}]` (read it as `Vec<Scored<T>>`).
    /// A failure names the store that failed: the search store or the
    /// primary. An entity without a search index makes
    /// [`run`](Aggregate::run) fail with [`Error::Unsupported`].
    ///
    /// ```no_run
    /// # async fn f(r: polyrouter::Router) -> polyrouter::Result<()> {
    /// use polyrouter::{aggregate::Scored, router::SearchQuery};
    /// let out = r.aggregate()
    ///     .search::<P>("results", SearchQuery::new("desk lamp").limit(10))
    ///     .run().await?;
    /// let hits: Vec<Scored<P>> = out.value("results")?;
    /// println!("{} shown, {} gone", hits.len(), out.branch("results").unwrap().dropped);
    /// # Ok(()) }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct P { id: String }
    /// ```
    pub fn search<T: Entity>(mut self, name: &str, q: SearchQuery) -> Self {
        let entity = T::schema().name;
        let store = match self.router.route(entity) {
            Some(r) => match &r.config.search {
                Some(s) => s.store.clone(),
                None => {
                    self.error.get_or_insert(no_search_index(&r.store, entity));
                    r.store.clone()
                }
            },
            None => String::new(),
        };
        self.typed_at::<T>(name, store, true, None, move |repo, ctx, _| {
            Box::pin(async move { search_json(&*repo, &ctx, q).await })
        })
    }

    /// Any other read as a branch (a graph traversal, a search, a call to
    /// another service): `store` names what it reads for failure reports.
    ///
    /// ```no_run
    /// # async fn f(r: polyrouter::Router) -> polyrouter::Result<()> {
    /// let out = r.aggregate()
    ///     .branch("answer", "oracle", async { Ok::<_, polyrouter::Error>(42) })
    ///     .run().await?;
    /// assert_eq!(out.value::<i64>("answer")?, 42);
    /// # Ok(()) }
    /// ```
    pub fn branch<V, F>(self, name: &str, store: &str, fut: F) -> Self
    where
        V: Serialize,
        F: std::future::Future<Output = Result<V>> + Send + 'static,
    {
        let label = store.to_string();
        let run: Run = Box::new(move |_| {
            Box::pin(async move {
                let v = fut.await?;
                let value = serde_json::to_value(v).map_err(|e| {
                    Error::backend(&label, "", format!("cannot render as JSON: {e}"))
                })?;
                Ok(Produced { value, dropped: 0 })
            })
        });
        self.push(Branch {
            name: name.into(),
            store: store.into(),
            entity: String::new(),
            needs: None,
            required: false,
            deadline: None,
            store_from_error: false,
            run,
        })
    }

    /// Marks the last declared branch required: its failure fails the call.
    ///
    /// ```no_run
    /// # fn f(r: polyrouter::Router) { let _ = r.aggregate().get::<U>("user", "u1").required(); }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct U { id: String }
    /// ```
    pub fn required(mut self) -> Self {
        if let Some(b) = self.branches.last_mut() {
            b.required = true;
        }
        self
    }

    /// Gives the last declared branch its own deadline (within the call's).
    ///
    /// ```no_run
    /// # fn f(r: polyrouter::Router) { let _ = r.aggregate().get::<U>("user", "u1").deadline(std::time::Duration::from_millis(50)); }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct U { id: String }
    /// ```
    pub fn deadline(mut self, d: Duration) -> Self {
        if let Some(b) = self.branches.last_mut() {
            b.deadline = Some(d);
        }
        self
    }

    /// The deadline of the whole call (default [`DEFAULT_TIMEOUT`]); a
    /// branch still running then fails as timed out.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let router = polyrouter::Router::builder().build().await.unwrap();
    /// let _a = router.aggregate().timeout(std::time::Duration::from_millis(100));
    /// # });
    /// ```
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// Reads every branch within this session (read-your-writes, monotonic).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let router = polyrouter::Router::builder().build().await.unwrap();
    /// let _a = router.aggregate().session(&polyrouter::router::Session::new());
    /// # });
    /// ```
    pub fn session(mut self, s: &Session) -> Self {
        self.ctx.session = Some(s.clone());
        self
    }

    /// Reads every entity branch at this level instead of the entities' own.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let router = polyrouter::Router::builder().build().await.unwrap();
    /// let _a = router.aggregate().consistency(polyrouter::config::Consistency::Strong);
    /// # });
    /// ```
    pub fn consistency(mut self, level: Consistency) -> Self {
        self.ctx.consistency = Some(level);
        self
    }

    /// Runs every branch. `Err` only when the call is malformed or a
    /// required branch failed; otherwise each branch has a value or a
    /// [`BranchFailure`].
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let router = polyrouter::Router::builder().build().await.unwrap();
    /// let out = router.aggregate()
    ///     .branch("ok", "here", async { Ok::<_, polyrouter::Error>(1) })
    ///     .branch("down", "there", async { Err::<i64, _>(polyrouter::Error::unavailable("there", "", "no route")) })
    ///     .run().await.unwrap();
    /// assert_eq!(out.value::<i64>("ok").unwrap(), 1);
    /// assert_eq!(out.failures().next().unwrap().1.store, "there");
    /// # });
    /// ```
    pub async fn run(self) -> Result<Aggregated> {
        if let Some(e) = self.error {
            return Err(e);
        }
        run_branches(self.branches, self.timeout).await
    }
}

async fn run_branches(branches: Vec<Branch>, timeout: Duration) -> Result<Aggregated> {
    let started = Instant::now();
    let order: Vec<String> = branches.iter().map(|b| b.name.clone()).collect();
    let mut pending: Vec<Branch> = branches;
    let mut done: HashMap<String, BranchResult> = HashMap::new();
    while !pending.is_empty() {
        let (ready, waiting): (Vec<Branch>, Vec<Branch>) = pending
            .into_iter()
            .partition(|b| b.needs.as_ref().is_none_or(|n| done.contains_key(n)));
        pending = waiting;
        if ready.is_empty() {
            break; // cannot happen: dependencies are declared before use
        }
        let remaining = timeout.saturating_sub(started.elapsed());
        let runs = ready.into_iter().map(|b| {
            let source = b.needs.as_ref().map(|n| done[n].outcome.clone());
            async move {
                let t0 = Instant::now();
                let limit = b.deadline.map_or(remaining, |d| d.min(remaining));
                let fail = |timed_out: bool, message: String| BranchFailure {
                    store: b.store.clone(),
                    entity: b.entity.clone(),
                    timed_out,
                    message,
                };
                let store_from_error = b.store_from_error;
                let outcome = match source {
                    Some(Err(f)) => Err(fail(
                        f.timed_out,
                        format!(
                            "its source branch `{}` failed ({f})",
                            b.needs.clone().unwrap_or_default()
                        ),
                    )),
                    other => {
                        let inputs = Inputs {
                            source: other.and_then(Result::ok).map(Arc::new),
                        };
                        match tokio::time::timeout(limit, (b.run)(inputs)).await {
                            Ok(Ok(p)) => Ok(p),
                            Ok(Err(e)) => {
                                let mut f = fail(e.is_transient(), e.to_string());
                                match e.store() {
                                    Some(s) if store_from_error && !s.is_empty() => {
                                        f.store = s.to_string();
                                    }
                                    _ => {}
                                }
                                Err(f)
                            }
                            Err(_) => Err(fail(
                                true,
                                format!("no answer within the deadline of {limit:?}"),
                            )),
                        }
                    }
                };
                let (outcome, dropped) = match outcome {
                    Ok(p) => (Ok(p.value), p.dropped),
                    Err(f) => (Err(f), 0),
                };
                (
                    b.required,
                    BranchResult {
                        name: b.name,
                        outcome,
                        dropped,
                        elapsed: t0.elapsed(),
                    },
                )
            }
        });
        for (required, r) in join_all(runs).await {
            if required {
                if let Err(f) = &r.outcome {
                    return Err(failure_error(&r.name, f));
                }
            }
            done.insert(r.name.clone(), r);
        }
    }
    let branches = order.into_iter().filter_map(|n| done.remove(&n)).collect();
    Ok(Aggregated { branches })
}

/// The keys a join reads: `field` of every row of `source` (an object, or
/// an array of objects; `null`s skipped), de-duplicated, first appearance first.
async fn join_values(
    repo: &dyn DynRepo,
    ctx: &ReadCtx,
    source: &Json,
    field: &str,
    from: &str,
) -> Result<Produced> {
    let kind = repo.schema().key_kind;
    let rows: Vec<&Json> = match source {
        Json::Array(a) => a.iter().collect(),
        Json::Null => Vec::new(),
        one => vec![one],
    };
    let mut seen = HashSet::new();
    let mut keys = Vec::new();
    for row in rows {
        let row = match row.get("item") {
            Some(item) if row.get("score").is_some() => item, // hydrated rows
            _ => row,
        };
        match row.get(field) {
            None | Some(Json::Null) => continue,
            Some(v) => {
                let key = json_key(kind, v).ok_or_else(|| {
                    Error::invalid_input(
                        repo.store(),
                        repo.schema().name,
                        format!(
                            "field `{field}` of branch `{from}` holds {v}, which is not a {kind:?} key of `{}`",
                            repo.schema().name
                        ),
                    )
                })?;
                if seen.insert(key.clone()) {
                    keys.push(key);
                }
            }
        }
    }
    records_json(repo, ctx, keys).await
}

/// The records of `keys` with one `get_many`, in the keys' order; keys
/// whose record is gone are dropped and counted.
async fn records_json(repo: &dyn DynRepo, ctx: &ReadCtx, keys: Vec<Key>) -> Result<Produced> {
    if keys.is_empty() {
        return Ok(Produced {
            value: Json::Array(Vec::new()),
            dropped: 0,
        });
    }
    let found = repo.get_many_json(keys, ctx).await?;
    let dropped = found.iter().filter(|v| v.is_null()).count();
    Ok(Produced {
        value: Json::Array(found.into_iter().filter(|v| !v.is_null()).collect()),
        dropped,
    })
}

/// Hydration of ranked ids: one `get_many`, `[{id, score, item}]` in the
/// hits' order, ids whose record is gone dropped and counted. Duplicate
/// ids keep their first rank.
async fn hydrate_json(
    repo: &dyn DynRepo,
    ctx: &ReadCtx,
    hits: Vec<(Key, f64)>,
) -> Result<Produced> {
    let mut seen = HashSet::new();
    let hits: Vec<(Key, f64)> = hits
        .into_iter()
        .filter(|(k, _)| seen.insert(k.clone()))
        .collect();
    if hits.is_empty() {
        return Ok(Produced {
            value: Json::Array(Vec::new()),
            dropped: 0,
        });
    }
    let keys: Vec<Key> = hits.iter().map(|(k, _)| k.clone()).collect();
    let found = repo.get_many_json(keys, ctx).await?;
    let mut dropped = 0;
    let mut out = Vec::new();
    for ((k, score), item) in hits.into_iter().zip(found) {
        if item.is_null() {
            dropped += 1;
        } else {
            out.push(serde_json::json!({"id": k.to_value_json(), "score": score, "item": item}));
        }
    }
    Ok(Produced {
        value: Json::Array(out),
        dropped,
    })
}

/// Search-then-hydrate: the entity's search index ranks, the primary
/// store supplies the records.
async fn search_json(repo: &dyn DynRepo, ctx: &ReadCtx, q: SearchQuery) -> Result<Produced> {
    let hits = repo.search_hits(q).await?;
    hydrate_json(repo, ctx, hits).await
}

/// The error for a search branch over an entity without a search index.
fn no_search_index(store: &str, entity: &str) -> Error {
    Error::unsupported(
        store,
        entity,
        format!(
            "search (entity `{entity}` has no search index; add `search = {{ store = \"...\", fields = [...] }}` to [entities.{entity}])"
        ),
    )
}

trait KeyJson {
    fn to_value_json(&self) -> Json;
}

impl KeyJson for Key {
    fn to_value_json(&self) -> Json {
        match self {
            Key::Str(s) => Json::String(s.clone()),
            Key::Int(i) => Json::from(*i),
            Key::Uuid(u) => Json::String(u.to_string()),
        }
    }
}
