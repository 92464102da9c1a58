//! Store backends, one folder each, each behind a cargo feature.
//!
//! | kind | feature | what |
//! | --- | --- | --- |
//! | `memory` | `memory` (default) | in-process; every `Store` capability, key-value extras, graphs, time series and blobs (no search); the reference semantics |
//! | `sqlite` | `sqlite` (default) | embedded SQLite via sqlx; a typed table per entity |
//! | `postgres` | `postgres` | a PostgreSQL server via sqlx; a typed table per entity |
//! | `gremlin` | `gremlin` | a Gremlin server (Cosmos DB Gremlin API, TinkerPop) via `gremlin-client`; graphs only ([`GraphStore`](crate::store::graph::GraphStore)) |
//! | `fs` | `fs` (default) | blobs in a local directory ([`BlobStore`](crate::store::blob::BlobStore)); atomic puts; no entity records |
//! | `azblob` | `azblob` | Azure Blob Storage (and Azurite) via the official `azure_storage_blob`; blobs only |
//! | `cosmos` | `cosmos` | Azure Cosmos DB (NoSQL API) via `azure_data_cosmos`; a container per entity, ETag preconditions, Cosmos SQL queries, TTL; atomic batches within one partition (transactional batch) |
//! | `mysql` | `mysql` | a MySQL 8 or MariaDB 10.5+ server via sqlx; a typed table per entity |
//! | `sqlserver` | `sqlserver` | SQL Server / Azure SQL via tiberius (rustls TLS, bb8 pool); a typed table per entity; T-SQL unit-tested here, live tests only with `POLYROUTER_TEST_SQLSERVER_URL` |
//! | `tantivy` | `tantivy` | an embedded full-text index in a directory; search only ([`SearchStore`](crate::store::search::SearchStore)), no records |
//! | `redis` | `redis` | a Redis server via the `redis` crate; point ops, atomic batches, TTL, counters ([`KvStore`](crate::store::kv::KvStore)); no queries |

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::config::StoreSpec;
use crate::{Capabilities, Result, Store};

pub use kind_caps::OptionDependency;

#[cfg(feature = "azblob")]
pub mod azblob;
#[cfg(feature = "cosmos")]
pub mod cosmos;
#[cfg(feature = "fs")]
pub mod fs;
#[cfg(feature = "gremlin")]
pub mod gremlin;
pub mod kind_caps;
#[cfg(feature = "memory")]
pub mod memory;
#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(
    feature = "sqlite",
    feature = "postgres",
    feature = "mysql",
    feature = "sqlserver"
))]
pub mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "sqlserver")]
pub mod sqlserver;
#[cfg(feature = "tantivy")]
pub mod tantivy;

/// Opens a store of one kind from its spec.
pub type OpenFn = fn(StoreSpec) -> BoxFuture<'static, Result<Arc<dyn Store>>>;

/// A store kind polyrouter knows, and the cargo feature that builds it.
///
/// ```
/// assert!(polyrouter::backends::KINDS.iter().any(|k| k.name == "sqlite"));
/// ```
#[derive(Debug, Clone)]
pub struct KindInfo {
    /// The `kind` in `[stores.NAME]`.
    pub name: &'static str,
    /// The cargo feature that compiles it.
    pub feature: &'static str,
    /// Opens a store from its spec, when the feature is compiled in.
    pub open: Option<OpenFn>,
    /// What a store of this kind can do with default options: the very
    /// value its backend starts from ([`kind_caps`]), known whether the
    /// feature is compiled in or not.
    pub capabilities: Capabilities,
    /// The capabilities that a store's options (or its server) change.
    pub depends: &'static [OptionDependency],
}

/// The kind called `name`, compiled in or not.
///
/// ```
/// let redis = polyrouter::backends::kind("redis").unwrap();
/// assert!(redis.capabilities.ttl && !redis.capabilities.query);
/// assert!(polyrouter::backends::kind("oracle").is_none());
/// ```
pub fn kind(name: &str) -> Option<&'static KindInfo> {
    KINDS.iter().find(|k| k.name == name)
}

impl crate::config::KindEntry<OpenFn> for KindInfo {
    fn name(&self) -> &'static str {
        self.name
    }
    fn feature(&self) -> &'static str {
        self.feature
    }
    fn opener(&self) -> Option<OpenFn> {
        self.open
    }
}

/// Every store kind, compiled in or not (so a config naming a kind whose
/// feature is off gets a precise error).
pub const KINDS: &[KindInfo] = &[
    KindInfo {
        name: "memory",
        feature: "memory",
        #[cfg(feature = "memory")]
        open: Some(memory::open),
        #[cfg(not(feature = "memory"))]
        open: None,
        capabilities: kind_caps::memory(),
        depends: kind_caps::NONE,
    },
    KindInfo {
        name: "sqlite",
        feature: "sqlite",
        #[cfg(feature = "sqlite")]
        open: Some(sqlite::open),
        #[cfg(not(feature = "sqlite"))]
        open: None,
        capabilities: kind_caps::sqlite(false),
        depends: kind_caps::SQLITE_DEPENDS,
    },
    KindInfo {
        name: "postgres",
        feature: "postgres",
        #[cfg(feature = "postgres")]
        open: Some(postgres::open),
        #[cfg(not(feature = "postgres"))]
        open: None,
        capabilities: kind_caps::postgres(),
        depends: kind_caps::NONE,
    },
    KindInfo {
        name: "mysql",
        feature: "mysql",
        #[cfg(feature = "mysql")]
        open: Some(mysql::open),
        #[cfg(not(feature = "mysql"))]
        open: None,
        capabilities: kind_caps::mysql(),
        depends: kind_caps::MYSQL_DEPENDS,
    },
    KindInfo {
        name: "sqlserver",
        feature: "sqlserver",
        #[cfg(feature = "sqlserver")]
        open: Some(sqlserver::open),
        #[cfg(not(feature = "sqlserver"))]
        open: None,
        capabilities: kind_caps::sqlserver(),
        depends: kind_caps::NONE,
    },
    KindInfo {
        name: "redis",
        feature: "redis",
        #[cfg(feature = "redis")]
        open: Some(redis::open),
        #[cfg(not(feature = "redis"))]
        open: None,
        capabilities: kind_caps::redis(),
        depends: kind_caps::REDIS_DEPENDS,
    },
    KindInfo {
        name: "gremlin",
        feature: "gremlin",
        #[cfg(feature = "gremlin")]
        open: Some(gremlin::open),
        #[cfg(not(feature = "gremlin"))]
        open: None,
        capabilities: kind_caps::gremlin(),
        depends: kind_caps::NONE,
    },
    KindInfo {
        name: "fs",
        feature: "fs",
        #[cfg(feature = "fs")]
        open: Some(fs::open),
        #[cfg(not(feature = "fs"))]
        open: None,
        capabilities: kind_caps::fs(),
        depends: kind_caps::NONE,
    },
    KindInfo {
        name: "azblob",
        feature: "azblob",
        #[cfg(feature = "azblob")]
        open: Some(azblob::open),
        #[cfg(not(feature = "azblob"))]
        open: None,
        capabilities: kind_caps::azblob(),
        depends: kind_caps::NONE,
    },
    KindInfo {
        name: "cosmos",
        feature: "cosmos",
        #[cfg(feature = "cosmos")]
        open: Some(cosmos::open),
        #[cfg(not(feature = "cosmos"))]
        open: None,
        capabilities: kind_caps::cosmos(),
        depends: kind_caps::NONE,
    },
    KindInfo {
        name: "tantivy",
        feature: "tantivy",
        #[cfg(feature = "tantivy")]
        open: Some(tantivy::open),
        #[cfg(not(feature = "tantivy"))]
        open: None,
        capabilities: kind_caps::tantivy(),
        depends: kind_caps::NONE,
    },
];

/// Opens the store a spec describes.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let spec = polyrouter::config::StoreSpec::new("kv", "memory", toml::Table::new());
/// let store = polyrouter::backends::open(spec).await.unwrap();
/// assert_eq!(store.kind(), "memory");
/// # });
/// ```
pub async fn open(spec: StoreSpec) -> Result<Arc<dyn Store>> {
    let open = crate::config::opener(KINDS, "store", &spec.kind)
        .map_err(|msg| spec.error(&["kind"], msg))?;
    open(spec).await
}
