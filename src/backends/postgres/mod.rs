//! `postgres`: a PostgreSQL server via sqlx; a real typed table per entity.
//!
//! ```toml
//! [stores.main]
//! kind = "postgres"
//! url = "postgres://app:${PG_PASSWORD}@db:5432/app"
//! ```
#![doc = include_str!("docs.md")]

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use parking_lot::{Mutex, RwLock};
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};

use crate::config::{StoreSpec, redact_url};
use crate::query::Filter;
use crate::store::{EntityInfo, Precondition, StoreQuery, WriteOp, WriteOutcome};
use crate::{Capabilities, Error, Key, Record, Result, Store};

mod codec;
mod config;
mod ddl;
mod search;
mod sql;
#[cfg(test)]
mod tests;

use codec::{Arg, bind_all, decode_record};
use sql::{Expect, PURGE_CHUNK, TableSql, WriteStmt};

pub use config::PostgresConfig;

pub(crate) fn open(spec: StoreSpec) -> BoxFuture<'static, Result<Arc<dyn Store>>> {
    Box::pin(async move {
        let cfg: PostgresConfig = spec.parse()?;
        let located = |key: &str, msg: String| spec.error(&[key], msg);
        let store = PostgresStore::connect_inner(&spec.name, cfg, &located).await?;
        Ok(Arc::new(store) as Arc<dyn Store>)
    })
}

/// A store backed by a PostgreSQL database, with a typed table per entity.
///
/// Usually built by the router from `kind = "postgres"`; it can also be
/// opened directly with [`PostgresStore::connect`]. See the [module
/// documentation](self) for the table layout, type mapping, TTL purge and
/// transaction behaviour.
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    location: String,
    caps: Capabilities,
    pool: PgPool,
    tables: RwLock<HashMap<String, Entry>>,
    purge_task: Mutex<Option<tokio::task::AbortHandle>>,
}

/// A table's statements, and whether `ensure_entity` prepared it (only
/// those are purged).
struct Entry {
    sql: Arc<TableSql>,
    ensured: bool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self.purge_task.get_mut().take() {
            task.abort();
        }
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("name", &self.inner.name)
            .field("location", &self.inner.location)
            .finish_non_exhaustive()
    }
}

/// A driver-independent error message, as an error source.
#[derive(Debug)]
struct Message(String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Message {}

/// Now, in unix microseconds: the clock expiry is measured against.
fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// A string key holding NUL, which no stored key does.
fn nul_key(key: &Key) -> bool {
    matches!(key, Key::Str(s) if s.contains('\0'))
}

/// The SQLSTATE of a database error.
fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(d) => d.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// Maps a driver error: a lost server or connection → transient
/// [`Error::Unavailable`]; anything else → [`Error::Backend`]. sqlx never
/// puts bound values or the URL's password in its messages.
fn map_err(store: &str, entity: &str, e: sqlx::Error) -> Error {
    let unavailable = |message: String, e: sqlx::Error| Error::Unavailable {
        store: store.into(),
        entity: entity.into(),
        message,
        source: Some(Box::new(e)),
    };
    let state = sqlstate(&e);
    let state = state.as_deref().unwrap_or("");
    match &e {
        sqlx::Error::Io(io) => unavailable(format!("lost the connection to the server: {io}"), e),
        sqlx::Error::Tls(_) => unavailable("TLS error talking to the server".into(), e),
        sqlx::Error::Protocol(p) => unavailable(format!("protocol error: {p}"), e),
        sqlx::Error::PoolTimedOut => unavailable(
            "timed out waiting for a connection; the server is slow or down, or every connection is busy — retry, or raise `max_connections`".into(),
            e,
        ),
        sqlx::Error::PoolClosed => unavailable("the connection pool is closed".into(), e),
        // 08: connection exception; 57P01..03: shutdown, crash, cannot connect now;
        // 53300: too many connections; 40001/40P01: serialization failure, deadlock.
        _ if state.starts_with("08")
            || matches!(state, "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01") =>
        {
            unavailable(format!("the server refused or ended the operation ({state}); retry"), e)
        }
        _ if matches!(state, "54000" | "22021" | "22008" | "22003" | "22P05") => Error::invalid_input(
            store,
            entity,
            format!("PostgreSQL cannot store a value ({state}): {e}"),
        ),
        _ => Error::backend(store, entity, e),
    }
}

/// A configuration error about an entity; the router fills in the file.
fn entity_config_error(entity: &EntityInfo, message: String) -> Error {
    Error::Config {
        file: String::new(),
        line: 0,
        column: 0,
        path: format!("entities.{}", entity.name()),
        message,
    }
}

impl PostgresStore {
    /// Connects to the server the configuration names (and creates the
    /// `schema`, if set and missing).
    ///
    /// A bad option is an [`Error::Config`]; a server that cannot be
    /// reached is an [`Error::Unavailable`] naming the store and the
    /// address (password redacted).
    pub async fn connect(name: &str, config: PostgresConfig) -> Result<PostgresStore> {
        let located =
            |key: &str, msg: String| Error::config("<code>", &format!("stores.{name}.{key}"), msg);
        Self::connect_inner(name, config, &located).await
    }

    async fn connect_inner(
        name: &str,
        config: PostgresConfig,
        config_error: &(dyn Fn(&str, String) -> Error + Send + Sync),
    ) -> Result<PostgresStore> {
        if let Err((key, msg)) = config.validate() {
            return Err(config_error(key, msg));
        }
        let location = redact_url(&config.url);
        let unavailable = |message: String, source: Option<crate::BoxError>| Error::Unavailable {
            store: name.into(),
            entity: String::new(),
            message,
            source,
        };
        let mut opts = PgConnectOptions::from_str(&config.url)
            .map_err(|e| {
                config_error(
                    "url",
                    format!(
                        "{location:?} is not a valid PostgreSQL URL: {}",
                        redact_url(&e.to_string())
                    ),
                )
            })?
            .application_name(&format!("polyrouter:{name}"))
            .statement_cache_capacity(256);
        if let Some(schema) = &config.schema {
            opts = opts.options([("search_path", sql::quote(schema))]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.connect_timeout.0)
            .idle_timeout(Some(Duration::from_secs(300)))
            .test_before_acquire(true)
            .connect_with(opts)
            .await
            .map_err(|e| {
                unavailable(
                    format!(
                        "cannot connect to the PostgreSQL server at {location}: {}; check the server runs and the URL",
                        redact_url(&e.to_string())
                    ),
                    Some(Box::new(Message(redact_url(&e.to_string())))),
                )
            })?;
        if let Some(schema) = &config.schema {
            let create = format!("CREATE SCHEMA IF NOT EXISTS {}", sql::quote(schema));
            if let Err(e) = sqlx::query(&create).execute(&pool).await {
                // Another connection creating it at the same time is fine.
                if !matches!(sqlstate(&e).as_deref(), Some("23505" | "42P06")) {
                    return Err(map_err(name, "", e));
                }
            }
        }
        let inner = Arc::new(Inner {
            name: name.to_string(),
            location,
            caps: Capabilities {
                shared: true,
                max_record_bytes: Some(1_000_000_000),
                search: true,
                ..Capabilities::all()
            },
            pool,
            tables: RwLock::new(HashMap::new()),
            purge_task: Mutex::new(None),
        });
        if !config.purge_interval.0.is_zero() {
            let task = spawn_purge(Arc::downgrade(&inner), config.purge_interval.0);
            *inner.purge_task.lock() = Some(task);
        }
        Ok(PostgresStore { inner })
    }

    /// Deletes expired rows from every table prepared with
    /// [`Store::ensure_entity`] now, and returns how many were deleted. The
    /// background task does this every `purge_interval`; expired rows are
    /// invisible either way.
    pub async fn purge_expired(&self) -> Result<u64> {
        self.inner.purge_expired().await
    }

    fn err(&self, entity: &EntityInfo, e: sqlx::Error) -> Error {
        map_err(&self.inner.name, entity.name(), e)
    }

    fn decode(&self, entity: &EntityInfo, t: &TableSql, row: &PgRow) -> Result<Record> {
        decode_record(t, row).map_err(|m| {
            Error::backend(
                &self.inner.name,
                entity.name(),
                Message(format!("table `{}`: {m}", t.table)),
            )
        })
    }

    /// The statements of the entity's table, built once per table.
    fn table_sql(&self, entity: &EntityInfo) -> Result<Arc<TableSql>> {
        if let Some(e) = self.inner.tables.read().get(&entity.table) {
            if std::ptr::eq(e.sql.schema, entity.schema) {
                return Ok(e.sql.clone());
            }
        }
        let t = TableSql::new(entity.schema, &entity.table).map_err(|m| {
            entity_config_error(entity, format!("store `{}`: {m}", self.inner.name))
        })?;
        let t = Arc::new(t);
        let mut tables = self.inner.tables.write();
        let ensured = tables.get(&entity.table).is_some_and(|e| e.ensured);
        tables.insert(
            entity.table.clone(),
            Entry {
                sql: t.clone(),
                ensured,
            },
        );
        Ok(t)
    }

    fn key_arg(&self, entity: &EntityInfo, t: &TableSql, key: &Key) -> Result<Arg> {
        t.key(key)
            .map_err(|m| Error::invalid_input(&self.inner.name, entity.name(), m))
    }

    fn conflict(
        &self,
        entity: &EntityInfo,
        key: &Key,
        expected: Precondition,
        actual: Option<u64>,
    ) -> Error {
        Error::conflict(&self.inner.name, entity.name(), key, expected, actual)
    }

    /// The live version of a key, on the connection (inside its transaction).
    async fn live_version(
        &self,
        conn: &mut PgConnection,
        entity: &EntityInfo,
        t: &TableSql,
        key: &Key,
        now: i64,
    ) -> Result<Option<u64>> {
        let key = self.key_arg(entity, t, key)?;
        let row = bind_all(sqlx::query(&t.live_version), vec![key, Arg::Int(now)])
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| self.err(entity, e))?;
        row.map(|r| r.try_get::<i64, _>(0).map(|v| v as u64))
            .transpose()
            .map_err(|e| self.err(entity, e))
    }

    /// Runs one write statement and reads its outcome; a failed
    /// precondition is a conflict carrying the current live version.
    async fn apply(
        &self,
        conn: &mut PgConnection,
        entity: &EntityInfo,
        t: &TableSql,
        op: &WriteOp,
        stmt: WriteStmt<'_>,
        now: i64,
    ) -> Result<WriteOutcome> {
        let query = bind_all(sqlx::query(stmt.sql), stmt.args);
        if stmt.expect == Expect::DeleteAbsent {
            query
                .execute(&mut *conn)
                .await
                .map_err(|e| self.err(entity, e))?;
            return match self.live_version(conn, entity, t, op.key(), now).await? {
                None => Ok(WriteOutcome::Deleted { existed: false }),
                actual => Err(self.conflict(entity, op.key(), op.precondition(), actual)),
            };
        }
        let row = query
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| self.err(entity, e))?;
        let first = |r: &PgRow| r.try_get::<i64, _>(0).map_err(|e| self.err(entity, e));
        match (stmt.expect, row) {
            (Expect::Put, Some(r)) => Ok(WriteOutcome::Written {
                version: first(&r)? as u64,
            }),
            (Expect::DeleteAny, r) => Ok(WriteOutcome::Deleted {
                existed: match r {
                    Some(r) => r.try_get::<bool, _>(0).map_err(|e| self.err(entity, e))?,
                    None => false,
                },
            }),
            (Expect::DeleteCond, Some(_)) => Ok(WriteOutcome::Deleted { existed: true }),
            _ => {
                let actual = self.live_version(conn, entity, t, op.key(), now).await?;
                Err(self.conflict(entity, op.key(), op.precondition(), actual))
            }
        }
    }
}

fn spawn_purge(inner: Weak<Inner>, every: Duration) -> tokio::task::AbortHandle {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate
        loop {
            tick.tick().await;
            // Hold the store only while purging: dropping it ends the task.
            let Some(inner) = inner.upgrade() else { break };
            if let Err(e) = inner.purge_expired().await {
                tracing::warn!(store = %inner.name, error = %e, "purging expired rows failed");
            }
        }
    })
    .abort_handle()
}

impl Inner {
    async fn purge_expired(&self) -> Result<u64> {
        let tables: Vec<Arc<TableSql>> = self
            .tables
            .read()
            .values()
            .filter(|e| e.ensured)
            .map(|e| e.sql.clone())
            .collect();
        let mut total = 0;
        for t in tables {
            // Small chunks: each holds its row locks only briefly.
            loop {
                let n = sqlx::query(&t.purge)
                    .bind(now_micros())
                    .execute(&self.pool)
                    .await
                    .map_err(|e| map_err(&self.name, t.schema.name, e))?
                    .rows_affected();
                total += n;
                if n < PURGE_CHUNK {
                    break;
                }
            }
        }
        Ok(total)
    }
}

/// The columns of a table in the current schema.
const COLUMNS: &str = "SELECT column_name::text, data_type::text, is_nullable::text = 'YES', column_default::text \
     FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position";

/// The primary-key columns of a table (by its quoted name).
const PRIMARY_KEY: &str = "SELECT a.attname::text FROM pg_index i \
     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
     WHERE i.indrelid = to_regclass($1) AND i.indisprimary";

#[async_trait]
impl Store for PostgresStore {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn capabilities(&self) -> &Capabilities {
        &self.inner.caps
    }

    fn location(&self) -> String {
        self.inner.location.clone()
    }

    async fn ensure_entity(&self, entity: &EntityInfo) -> Result<()> {
        let t = self.table_sql(entity)?;
        let mut conn = self
            .inner
            .pool
            .acquire()
            .await
            .map_err(|e| self.err(entity, e))?;
        if let Err(e) = sqlx::query(&t.create_table).execute(&mut *conn).await {
            // Two stores creating the same table at once: the loser sees a
            // duplicate type or relation; the table is there either way.
            if !matches!(sqlstate(&e).as_deref(), Some("23505" | "42P07")) {
                return Err(self.err(entity, e));
            }
        }
        let rows = sqlx::query(COLUMNS)
            .bind(&t.table)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| self.err(entity, e))?;
        let pk: Vec<String> = sqlx::query_scalar(PRIMARY_KEY)
            .bind(&t.qtable)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| self.err(entity, e))?;
        let info = rows
            .iter()
            .map(|r| {
                let name: String = r.try_get(0)?;
                Ok(ddl::ColumnInfo {
                    pk: pk.contains(&name),
                    name,
                    data_type: r.try_get(1)?,
                    nullable: r.try_get(2)?,
                    default: r.try_get(3)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(|e| self.err(entity, e))?;
        ddl::check_table(&self.inner.name, &t, &info)
            .map_err(|m| entity_config_error(entity, m))?;
        if let Err(e) = sqlx::query(&t.create_index).execute(&mut *conn).await {
            if !matches!(sqlstate(&e).as_deref(), Some("23505" | "42P07")) {
                return Err(self.err(entity, e));
            }
        }
        self.inner.tables.write().insert(
            entity.table.clone(),
            Entry {
                sql: t,
                ensured: true,
            },
        );
        Ok(())
    }

    async fn get(&self, entity: &EntityInfo, key: &Key) -> Result<Option<Record>> {
        let t = self.table_sql(entity)?;
        if nul_key(key) {
            return Ok(None); // no stored key holds NUL
        }
        let key = self.key_arg(entity, &t, key)?;
        let row = bind_all(sqlx::query(&t.get), vec![key, Arg::Int(now_micros())])
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(|e| self.err(entity, e))?;
        row.map(|r| self.decode(entity, &t, &r)).transpose()
    }

    async fn get_many(&self, entity: &EntityInfo, keys: &[Key]) -> Result<Vec<Option<Record>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let t = self.table_sql(entity)?;
        for k in keys.iter().filter(|k| !nul_key(k)) {
            self.key_arg(entity, &t, k)?;
        }
        let s = t.get_many(keys, now_micros());
        let rows = bind_all(sqlx::query(&s.sql), s.args)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.err(entity, e))?;
        let mut found = HashMap::with_capacity(rows.len());
        for row in &rows {
            let r = self.decode(entity, &t, row)?;
            found.insert(r.key.clone(), r);
        }
        Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
    }

    async fn write(
        &self,
        entity: &EntityInfo,
        ops: Vec<WriteOp>,
        _atomic: bool,
    ) -> Result<Vec<WriteOutcome>> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let t = self.table_sql(entity)?;
        let now = now_micros();
        // Every op is checked and encoded before the database is touched.
        let mut stmts = ops
            .iter()
            .map(|op| t.write(op, now))
            .collect::<Result<Vec<_>, String>>()
            .map_err(|m| Error::invalid_input(&self.inner.name, entity.name(), m))?;
        if let [op] = ops.as_slice() {
            // One statement is atomic on its own.
            let stmt = stmts.pop().expect("one statement");
            let mut conn = self
                .inner
                .pool
                .acquire()
                .await
                .map_err(|e| self.err(entity, e))?;
            return Ok(vec![
                self.apply(&mut conn, entity, &t, op, stmt, now).await?,
            ]);
        }
        // Always all or nothing: one transaction; the first failure rolls
        // it back (a lost connection rolls back on the server).
        let mut tx = self
            .inner
            .pool
            .begin()
            .await
            .map_err(|e| self.err(entity, e))?;
        let mut outcomes = Vec::with_capacity(ops.len());
        for (op, stmt) in ops.iter().zip(stmts) {
            match self.apply(&mut tx, entity, &t, op, stmt, now).await {
                Ok(o) => outcomes.push(o),
                Err(e) => {
                    let _ = tx.rollback().await;
                    return Err(e);
                }
            }
        }
        tx.commit().await.map_err(|e| self.err(entity, e))?;
        Ok(outcomes)
    }

    async fn query(&self, entity: &EntityInfo, query: &StoreQuery) -> Result<Vec<Record>> {
        let t = self.table_sql(entity)?;
        let s = t.query(query, now_micros());
        let rows = bind_all(sqlx::query(&s.sql), s.args)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.err(entity, e))?;
        rows.iter().map(|r| self.decode(entity, &t, r)).collect()
    }

    async fn count(&self, entity: &EntityInfo, filter: Option<&Filter>) -> Result<u64> {
        let t = self.table_sql(entity)?;
        let s = t.count(filter, now_micros());
        let n: i64 = bind_all(sqlx::query(&s.sql), s.args)
            .fetch_one(&self.inner.pool)
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| self.err(entity, e))?;
        Ok(n as u64)
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.inner.pool)
            .await
            .map(|_| ())
            .map_err(|e| map_err(&self.inner.name, "", e))
    }

    fn as_search(&self) -> Option<&dyn crate::store::search::SearchStore> {
        Some(self)
    }
}
