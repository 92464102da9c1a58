//! Stores for the cache, consistency and aggregator tests: embedded
//! (memory, sqlite + memory as the KV) or the machine's servers
//! (PostgreSQL + Redis, a unique schema / key prefix per test, dropped at
//! the end even when the test fails). A missing server fails the test.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use polyrouter::Store;
use polyrouter::config::StoreSpec;

pub const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Env {
    /// Every store in memory.
    Memory,
    /// SQL and documents in SQLite files, KV/cache in memory.
    Sqlite,
    /// SQL and documents in PostgreSQL, KV/cache in Redis.
    Servers,
}

/// What a store is for: decides its kind per environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Relational / document data.
    Data,
    /// Cache or sessions: a TTL key-value store.
    Kv,
}

pub struct Ctx {
    pub env: Env,
    id: String,
    dir: tempfile::TempDir,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

impl Ctx {
    pub fn new(env: Env) -> Ctx {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            % 1_000_000_000;
        Ctx {
            env,
            id: format!(
                "{}_{started}_{}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::SeqCst)
            ),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The `[stores.NAME]` spec of a store for `role`.
    pub fn spec(&self, name: &str, role: Role) -> StoreSpec {
        let mut t = toml::Table::new();
        let kind = match (self.env, role) {
            (Env::Memory, _) | (Env::Sqlite, Role::Kv) => "memory",
            (Env::Sqlite, Role::Data) => {
                t.insert(
                    "url".into(),
                    format!("sqlite://{}/{name}.db", self.dir.path().display()).into(),
                );
                "sqlite"
            }
            (Env::Servers, Role::Data) => {
                t.insert("url".into(), PG_URL.into());
                t.insert("schema".into(), format!("pr_agg_{}_{name}", self.id).into());
                t.insert("max_connections".into(), 4.into());
                "postgres"
            }
            (Env::Servers, Role::Kv) => {
                t.insert("url".into(), REDIS_URL.into());
                t.insert(
                    "key_prefix".into(),
                    format!("pr-agg-{}-{name}", self.id).into(),
                );
                "redis"
            }
        };
        StoreSpec::new(name, kind, t)
    }

    /// Opens a store for `role`; a missing server fails loudly.
    pub async fn open(&self, name: &str, role: Role) -> Arc<dyn Store> {
        let spec = self.spec(name, role);
        let kind = spec.kind.clone();
        polyrouter::backends::open(spec).await.unwrap_or_else(|e| {
            panic!("cannot open the {kind} store `{name}` (is the server running? scripts/services): {e}")
        })
    }

    /// TOML for a `[stores.NAME]` table of this environment.
    pub fn store_toml(&self, name: &str, role: Role) -> String {
        let spec = self.spec(name, role);
        let mut t = spec.options.clone();
        t.insert("kind".into(), spec.kind.clone().into());
        let mut outer = toml::Table::new();
        let mut stores = toml::Table::new();
        stores.insert(name.into(), t.into());
        outer.insert("stores".into(), stores.into());
        toml::to_string(&outer).unwrap()
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        if self.env != Env::Servers {
            return;
        }
        let id = self.id.clone();
        let res = std::thread::spawn(move || cleanup(&id)).join();
        if let Ok(Err(e)) = res {
            eprintln!("clean-up of test {} failed: {e}", self.id);
        }
    }
}

#[cfg(all(feature = "postgres", feature = "redis"))]
fn cleanup(id: &str) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(PG_URL)
            .await
            .map_err(|e| e.to_string())?;
        let names: Vec<String> =
            sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE $1")
                .bind(format!("pr_agg_{id}_%"))
                .fetch_all(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
        for n in names {
            sqlx::query(&format!("DROP SCHEMA \"{n}\" CASCADE"))
                .execute(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok::<(), String>(())
    })?;
    let client = redis::Client::open(REDIS_URL).map_err(|e| e.to_string())?;
    let mut conn = client.get_connection().map_err(|e| e.to_string())?;
    let keys: Vec<Vec<u8>> = redis::cmd("SCAN")
        .cursor_arg(0)
        .arg("MATCH")
        .arg(format!("pr-agg-{id}-*"))
        .arg("COUNT")
        .arg(1000)
        .clone()
        .iter(&mut conn)
        .map_err(|e| e.to_string())?
        .filter_map(|k| k.ok())
        .collect();
    for chunk in keys.chunks(500) {
        redis::cmd("DEL")
            .arg(chunk)
            .query::<i64>(&mut conn)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(not(all(feature = "postgres", feature = "redis")))]
fn cleanup(_id: &str) -> Result<(), String> {
    Ok(())
}
