//! Store selection, per-trial isolation and the behaviour type.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use futures::future::BoxFuture;
use polyrouter::{Capabilities, Entity, Repo, Router};

/// One behaviour: a name, the capability it needs, and its body.
pub struct Behaviour {
    pub name: &'static str,
    pub needs: fn(&Capabilities) -> Option<&'static str>,
    pub run: fn(Ctx) -> BoxFuture<'static, polyrouter::Result<()>>,
}

/// A behaviour every store that holds entity records must pass (blob-only
/// stores, `records = false`, run the blob behaviours instead).
pub fn always(c: &Capabilities) -> Option<&'static str> {
    (!c.records).then_some("entity records")
}

/// Declares behaviours: `behaviour!(name, needs, body_fn)`.
#[macro_export]
macro_rules! behaviour {
    ($name:ident, $needs:expr) => {
        $crate::harness::Behaviour {
            name: stringify!($name),
            needs: $needs,
            run: |ctx| Box::pin($name(ctx)),
        }
    };
}

/// The stores named in `POLYROUTER_TEST_STORES` (default `memory,sqlite`).
pub fn stores_under_test() -> Vec<String> {
    let list = std::env::var("POLYROUTER_TEST_STORES").unwrap_or_else(|_| "memory,sqlite".into());
    let stores: Vec<String> = list
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    for s in &stores {
        if store_toml(s).is_none() {
            panic!(
                "POLYROUTER_TEST_STORES names `{s}`, which the behaviour suite does not know; known: memory, sqlite, postgres, mysql, sqlserver, redis, redis-cluster, cosmos, fs, azblob, gremlin, tantivy"
            );
        }
    }
    stores
}

fn tmp() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"))
}

/// The `[stores.s]` body for a store under test.
pub fn store_toml(store: &str) -> Option<String> {
    Some(match store {
        "memory" => "kind = \"memory\"\n".to_string(),
        "sqlite" => format!(
            "kind = \"sqlite\"\nurl = \"sqlite://{}/behavior.db\"\n",
            tmp().path().display()
        ),
        // The machine's PostgreSQL; tables in a per-run schema.
        "postgres" => format!(
            "kind = \"postgres\"\nurl = \"{PG_URL}\"\nschema = \"pr_test_{}\"\nmax_connections = 2\n",
            std::process::id()
        ),
        // The machine's MariaDB/MySQL; tables in a per-run database.
        "mysql" => format!(
            "kind = \"mysql\"\nurl = \"{MYSQL_URL}\"\ndatabase = \"pr_test_{}\"\nmax_connections = 2\n",
            std::process::id()
        ),
        // The machine's Redis; a per-run prefix keeps runs apart.
        "redis" => format!(
            "kind = \"redis\"\nurl = \"{REDIS_URL}\"\nkey_prefix = \"{}\"\n",
            redis_prefix()
        ),
        // The project's Redis Cluster (`scripts/services redis-cluster`),
        // with the same per-run prefix.
        "redis-cluster" => format!(
            "kind = \"redis\"\nurl = \"{}\"\ncluster = true\ncluster_urls = [\"{}\"]\nkey_prefix = \"{}\"\n",
            REDIS_CLUSTER_URLS[0],
            REDIS_CLUSTER_URLS[1],
            redis_prefix()
        ),
        // A live Gremlin server, only when POLYROUTER_TEST_GREMLIN_URL names one.
        "gremlin" => format!("kind = \"gremlin\"\nurl = \"{}\"\n", gremlin_url()),
        // Blobs in a per-run directory, removed by `clean_up`.
        "fs" => format!("kind = \"fs\"\nroot = \"{}\"\n", fs_root().display()),
        // Azurite (started by `scripts/emulators/start`), or the account in
        // POLYROUTER_TEST_AZBLOB_CONNECTION_STRING; a per-run container,
        // deleted by `clean_up`.
        "azblob" => azblob_toml(),
        // The Cosmos emulator (`scripts/emulators/start`); a per-run database.
        // Longer per-call timeouts than the defaults: the emulator is one
        // Node.js process sharing two cores with the build and every other
        // test, and a 1 500-write batch queues behind itself (a loaded
        // local run saw 7 of them pass the 10 s write bound).
        "cosmos" => format!(
            "kind = \"cosmos\"\nendpoint = \"{}\"\nkey = \"{COSMOS_KEY}\"\ndatabase = \"{}\"\ncreate_if_missing = true\nresilience = {{ timeout = {{ read = \"30s\", write = \"60s\" }} }}\n",
            cosmos_endpoint(),
            cosmos_database()
        ),
        // A SQL Server / Azure SQL named by POLYROUTER_TEST_SQLSERVER_URL
        // (none can run on the development machine); tables in a per-run
        // schema. Named without the URL, the suite fails loudly.
        "sqlserver" => format!(
            "kind = \"sqlserver\"\nurl = \"{}\"\nschema = \"pr_test_{}\"\nmax_connections = 2\ntrust_server_certificate = {}\n",
            sqlserver_url(),
            std::process::id(),
            sqlserver_trust_cert()
        ),
        // An embedded search index in the run's temp dir; commits every 200ms.
        "tantivy" => format!(
            "kind = \"tantivy\"\npath = \"{}/tantivy\"\ncommit_interval = \"200ms\"\n",
            tmp().path().display()
        ),
        _ => return None,
    })
}

/// `POLYROUTER_TEST_SQLSERVER_URL`; panics when the suite names
/// `sqlserver` without it.
fn sqlserver_url() -> String {
    std::env::var("POLYROUTER_TEST_SQLSERVER_URL").unwrap_or_else(|_| {
        panic!(
            "POLYROUTER_TEST_STORES names `sqlserver`, but POLYROUTER_TEST_SQLSERVER_URL is not set; \
             set it to sqlserver://user:password@host:1433/database"
        )
    })
}

/// `POLYROUTER_TEST_SQLSERVER_TRUST_CERT=1`: accept a self-signed server
/// certificate (a local container).
fn sqlserver_trust_cert() -> bool {
    std::env::var("POLYROUTER_TEST_SQLSERVER_TRUST_CERT").is_ok_and(|v| v == "1")
}

/// Drops this run's SQL Server schema and its tables.
#[cfg(feature = "sqlserver")]
async fn remove_sqlserver_schema() -> Result<(), String> {
    use polyrouter::backends::sqlserver::{SqlServerConfig, SqlServerStore};
    let mut cfg = SqlServerConfig::new(sqlserver_url());
    cfg.schema = Some(format!("pr_test_{}", std::process::id()));
    cfg.trust_server_certificate = sqlserver_trust_cert();
    let store = SqlServerStore::connect("s", cfg)
        .await
        .map_err(|e| e.to_string())?;
    store.drop_schema().await.map_err(|e| e.to_string())
}

/// The emulator (`scripts/emulators/start`), or `POLYROUTER_COSMOS_ENDPOINT`.
fn cosmos_endpoint() -> String {
    std::env::var("POLYROUTER_COSMOS_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:8081/".into())
}
/// The emulators' well-known, public account key.
const COSMOS_KEY: &str =
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";

/// `pr_test_{pid}_{start time}`: this run's Cosmos database.
fn cosmos_database() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        format!("pr_test_{}_{started}", std::process::id())
    })
}

/// Deletes this run's Cosmos database.
#[cfg(feature = "cosmos")]
async fn remove_cosmos_database() -> Result<(), String> {
    use polyrouter::backends::cosmos::{CosmosConfig, CosmosStore};
    let cfg = CosmosConfig::new(cosmos_endpoint(), COSMOS_KEY, cosmos_database());
    match CosmosStore::connect("s", cfg).await {
        Ok(store) => store.delete_database().await.map_err(|e| e.to_string()),
        // Never created (or already gone): nothing to remove.
        Err(polyrouter::Error::Config { .. }) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// `POLYROUTER_TEST_GREMLIN_URL`; naming `gremlin` without it fails the run.
fn gremlin_url() -> String {
    std::env::var("POLYROUTER_TEST_GREMLIN_URL").unwrap_or_else(|_| {
        panic!(
            "POLYROUTER_TEST_STORES names `gremlin`, but POLYROUTER_TEST_GREMLIN_URL is not set; set it to a live server, e.g. ws://127.0.0.1:8182/gremlin"
        )
    })
}

/// Stores that hold blobs only: no entity routes in their trial config.
pub fn blob_only(store: &str) -> bool {
    matches!(store, "fs" | "azblob")
}

fn fs_root() -> std::path::PathBuf {
    tmp().path().join(format!("blobs-{}", std::process::id()))
}

/// Azurite's development account (public, documented by Microsoft).
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// `pr-behavior-{pid}-{start time}`: this run's container.
fn azblob_container() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        format!("pr-behavior-{}-{started}", std::process::id())
    })
}

/// The suite's azblob stores stage blocks of 1 MiB (the smallest the
/// behaviours' multi-block bodies need to span several blocks quickly).
fn azblob_toml() -> String {
    let container = azblob_container();
    match std::env::var("POLYROUTER_TEST_AZBLOB_CONNECTION_STRING") {
        Ok(cs) => format!(
            "kind = \"azblob\"\ncontainer = \"{container}\"\ncreate_if_missing = true\nblock_size = 1048576\nconnection_string = \"{cs}\"\n"
        ),
        Err(_) => {
            let url = std::env::var("POLYROUTER_TEST_AZBLOB_URL")
                .unwrap_or_else(|_| "http://127.0.0.1:10000/devstoreaccount1".into());
            format!(
                "kind = \"azblob\"\ncontainer = \"{container}\"\ncreate_if_missing = true\nblock_size = 1048576\naccount = \"devstoreaccount1\"\nkey = \"{AZURITE_KEY}\"\nendpoint = \"{url}\"\n"
            )
        }
    }
}

/// Whether the store holds entity records (a search-only store does not:
/// no entity can be routed to it).
pub fn holds_records(store: &str) -> bool {
    store != "tantivy"
}

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// Whether the store's text can hold NUL characters (PostgreSQL's cannot:
/// it refuses such values with `InvalidInput`).
pub fn text_holds_nul(store: &str) -> bool {
    store != "postgres"
}

/// Whether the store's floats can hold ±infinity (MySQL/MariaDB `DOUBLE`
/// and SQL Server `FLOAT` cannot: such a write is `InvalidInput`).
pub fn float_holds_infinity(store: &str) -> bool {
    !matches!(store, "mysql" | "sqlserver")
}

const REDIS_URL: &str = "redis://127.0.0.1:6379";
const REDIS_PREFIX: &str = "polyrouter-behavior-";
/// The nodes of `scripts/services redis-cluster`.
const REDIS_CLUSTER_URLS: [&str; 6] = [
    "redis://127.0.0.1:7101",
    "redis://127.0.0.1:7102",
    "redis://127.0.0.1:7103",
    "redis://127.0.0.1:7104",
    "redis://127.0.0.1:7105",
    "redis://127.0.0.1:7106",
];

/// `polyrouter-behavior-{pid}-{start time}`: unique per run, even when a
/// later run gets the same process id.
fn redis_prefix() -> &'static str {
    static PREFIX: OnceLock<String> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        format!("{REDIS_PREFIX}{}-{started}", std::process::id())
    })
}

/// Deletes the keys earlier runs left in Redis: those under a prefix whose
/// process no longer runs (runs going on at the same time keep theirs).
#[cfg(feature = "redis")]
fn remove_stale_redis_keys(include_own: bool) -> Result<(), String> {
    remove_stale_keys_at(REDIS_URL, include_own)
}

/// As [`remove_stale_redis_keys`], on every master of the Redis Cluster
/// (each holds its own slots' keys; a key is deleted on its master).
#[cfg(feature = "redis")]
fn remove_stale_redis_cluster_keys(include_own: bool) -> Result<(), String> {
    for url in REDIS_CLUSTER_URLS {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        let mut conn = client.get_connection().map_err(|e| e.to_string())?;
        let role: Vec<redis::Value> = redis::cmd("ROLE")
            .query(&mut conn)
            .map_err(|e| e.to_string())?;
        if matches!(role.first(), Some(redis::Value::BulkString(r)) if r == b"master") {
            remove_stale_keys_at(url, include_own)?;
        }
    }
    Ok(())
}

#[cfg(feature = "redis")]
fn remove_stale_keys_at(url: &str, include_own: bool) -> Result<(), String> {
    if !std::path::Path::new("/proc/self").exists() {
        return Ok(()); // cannot tell which runs are over
    }
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = client.get_connection().map_err(|e| e.to_string())?;
    let keys: Vec<Vec<u8>> = redis::cmd("SCAN")
        .cursor_arg(0)
        .arg("MATCH")
        .arg(format!("{REDIS_PREFIX}*"))
        .arg("COUNT")
        .arg(1000)
        .clone()
        .iter(&mut conn)
        .map_err(|e| e.to_string())?
        .filter_map(|k| k.ok())
        .collect();
    let stale: Vec<&Vec<u8>> = keys
        .iter()
        .filter(|k| {
            let pid = k[REDIS_PREFIX.len()..]
                .split(|b| *b == b'-' || *b == b':')
                .next()
                .unwrap_or_default();
            let pid = std::str::from_utf8(pid).unwrap_or_default();
            !pid.is_empty() && (ended(pid) || (include_own && own(pid)))
        })
        .collect();
    // One key per DEL: on a cluster node, keys of several slots cannot
    // share one command.
    for chunk in stale.chunks(500) {
        let mut pipe = redis::pipe();
        for key in chunk {
            pipe.cmd("DEL").arg(key).ignore();
        }
        pipe.query::<()>(&mut conn).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Drops the schemas earlier runs left in PostgreSQL: `pr_test_{pid}` of a
/// process that no longer runs (runs going on at the same time keep theirs).
#[cfg(feature = "postgres")]
async fn remove_stale_pg_schemas(include_own: bool) -> Result<(), String> {
    use sqlx::Connection;
    if !std::path::Path::new("/proc/self").exists() {
        return Ok(()); // cannot tell which runs are over
    }
    let mut conn = sqlx::PgConnection::connect(PG_URL)
        .await
        .map_err(|e| e.to_string())?;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname ~ '^pr_test_[0-9]+$'",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(|e| e.to_string())?;
    for name in names {
        let pid = &name["pr_test_".len()..];
        if ended(pid) || (include_own && own(pid)) {
            sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                .execute(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Drops the databases earlier runs left in MariaDB/MySQL: `pr_test_{pid}`
/// of a process that no longer runs (runs going on at the same time keep
/// theirs).
#[cfg(feature = "mysql")]
async fn remove_stale_mysql_databases(include_own: bool) -> Result<(), String> {
    use sqlx::Connection;
    if !std::path::Path::new("/proc/self").exists() {
        return Ok(()); // cannot tell which runs are over
    }
    let mut conn = sqlx::MySqlConnection::connect(MYSQL_URL)
        .await
        .map_err(|e| e.to_string())?;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME REGEXP '^pr_test_[0-9]+$'",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(|e| e.to_string())?;
    for name in names {
        let pid = &name["pr_test_".len()..];
        if ended(pid) || (include_own && own(pid)) {
            sqlx::query(&format!("DROP DATABASE IF EXISTS `{name}`"))
                .execute(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Whether the run with this process id has ended.
#[allow(dead_code)]
fn ended(pid: &str) -> bool {
    !std::path::Path::new("/proc").join(pid).exists()
}

/// Whether this process id is this run's.
#[allow(dead_code)]
fn own(pid: &str) -> bool {
    pid == std::process::id().to_string()
}

/// Removes what this run (and any ended run) left in the server stores.
pub async fn clean_up(stores: &[String]) -> Result<(), String> {
    for store in stores {
        #[cfg(feature = "redis")]
        if store == "redis" {
            remove_stale_redis_keys(true)?;
        }
        #[cfg(feature = "redis")]
        if store == "redis-cluster" {
            remove_stale_redis_cluster_keys(true)?;
        }
        #[cfg(feature = "postgres")]
        if store == "postgres" {
            remove_stale_pg_schemas(true).await?;
        }
        #[cfg(feature = "cosmos")]
        if store == "cosmos" {
            remove_cosmos_database().await?;
        }
        if store == "fs" {
            match std::fs::remove_dir_all(fs_root()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot remove the fs store's root: {e}")),
            }
        }
        #[cfg(feature = "azblob")]
        if store == "azblob" {
            delete_azblob_container().await?;
        }
        #[cfg(feature = "mysql")]
        if store == "mysql" {
            remove_stale_mysql_databases(true).await?;
        }
        #[cfg(feature = "sqlserver")]
        if store == "sqlserver" {
            remove_sqlserver_schema().await?;
        }
        if store == "tantivy" {
            let dir = tmp().path().join("tantivy");
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
        }
        let _ = store;
    }
    Ok(())
}

/// Deletes this run's container.
#[cfg(feature = "azblob")]
async fn delete_azblob_container() -> Result<(), String> {
    use polyrouter::backends::azblob::{AzBlobConfig, AzBlobStore};
    let text = azblob_toml().replacen("kind = \"azblob\"\n", "", 1);
    let cfg: AzBlobConfig = toml::from_str(&text).map_err(|e| e.to_string())?;
    let store = AzBlobStore::open("s", cfg)
        .await
        .map_err(|e| e.to_string())?;
    store.delete_container().await.map_err(|e| e.to_string())
}

/// Capabilities of the stores probed so far, by store under test.
fn probed() -> &'static Mutex<HashMap<String, Capabilities>> {
    static CAPS: OnceLock<Mutex<HashMap<String, Capabilities>>> = OnceLock::new();
    CAPS.get_or_init(Default::default)
}

/// Opens the store once and returns its capabilities, or why it failed.
pub async fn probe(store: &str) -> Result<Capabilities, String> {
    let ctx = Ctx::new(store);
    let router = Router::from_toml_str(&ctx.blob_store_config())
        .await
        .map_err(|e| format!("store `{store}` is not usable: {e}"))?;
    let s = router.store("s").expect("store s");
    s.ping()
        .await
        .map_err(|e| format!("store `{store}` does not answer: {e}"))?;
    #[cfg(feature = "redis")]
    if store == "redis" {
        remove_stale_redis_keys(false)
            .map_err(|e| format!("cannot remove keys of earlier runs from Redis: {e}"))?;
    }
    #[cfg(feature = "redis")]
    if store == "redis-cluster" {
        remove_stale_redis_cluster_keys(false).map_err(|e| {
            format!("cannot remove keys of earlier runs from the Redis Cluster: {e}")
        })?;
    }
    #[cfg(feature = "postgres")]
    if store == "postgres" {
        remove_stale_pg_schemas(false)
            .await
            .map_err(|e| format!("cannot drop schemas of earlier runs from PostgreSQL: {e}"))?;
    }
    #[cfg(feature = "mysql")]
    if store == "mysql" {
        remove_stale_mysql_databases(false)
            .await
            .map_err(|e| format!("cannot drop databases of earlier runs from MySQL: {e}"))?;
    }
    let caps = s.capabilities().clone();
    probed()
        .lock()
        .unwrap()
        .insert(store.to_string(), caps.clone());
    Ok(caps)
}

/// One trial's context: its store and a unique table suffix.
#[derive(Clone)]
pub struct Ctx {
    pub store: String,
    pub id: String,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

impl Ctx {
    pub fn new(store: &str) -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Ctx {
            store: store.to_string(),
            id: format!("{}_{}", std::process::id(), n),
        }
    }

    /// The config text for this trial: the store as `s`, every test entity
    /// on its own table.
    pub fn config(&self) -> String {
        let mut cfg = self.blob_store_config();
        // Blob stores and gremlin hold no entity records: no entity routes.
        if blob_only(&self.store) || self.store == "gremlin" || !holds_records(&self.store) {
            return cfg;
        }
        for (entity, extra) in [
            ("everything", ""),
            ("item", ""),
            ("note", ""),
            ("session", "ttl = \"1s\"\n"),
            ("purchase", ""),
            ("doc", ""),
        ] {
            cfg.push_str(&format!(
                "[entities.{entity}]\nstore = \"s\"\ntable = \"{entity}_{}\"\n{extra}\n",
                self.id
            ));
        }
        cfg
    }

    /// Only the store under test, as `[stores.s]`, with no entity routes.
    pub fn blob_store_config(&self) -> String {
        format!(
            "[stores.s]\n{}\n",
            store_toml(&self.store).expect("known store")
        )
    }

    /// The capabilities of this trial's store (probed at start-up).
    pub fn caps(&self) -> Capabilities {
        probed()
            .lock()
            .unwrap()
            .get(&self.store)
            .cloned()
            .expect("store probed before its trials")
    }

    /// [`Ctx::config`] plus this trial's time series tables: `telemetry`
    /// (three fields, no retention) and `recent` (one field, retention 1h,
    /// purged every 200ms).
    pub fn ts_config(&self) -> String {
        format!(
            "{}[timeseries.telemetry]\nstore = \"s\"\ntable = \"telemetry_{id}\"\nfields = [\"temperature\", \"humidity\", \"battery\"]\n\n[timeseries.recent]\nstore = \"s\"\ntable = \"recent_{id}\"\nfields = [\"v\"]\nretention = \"1h\"\npurge_interval = \"200ms\"\n",
            self.config(),
            id = self.id
        )
    }

    /// A router with the time series tables of [`Ctx::ts_config`].
    pub async fn ts_router(&self) -> polyrouter::Result<Router> {
        Router::from_toml_str(&self.ts_config()).await
    }

    pub async fn router(&self) -> polyrouter::Result<Router> {
        Router::from_toml_str(&self.config()).await
    }

    pub async fn repo<T: Entity>(&self) -> polyrouter::Result<Repo<T>> {
        self.router().await?.repo::<T>().await
    }
}
