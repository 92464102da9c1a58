//! `mysql`: a MySQL 8 or MariaDB 10.5+ server via sqlx; a real typed table
//! per entity.
//!
//! ```toml
//! [stores.main]
//! kind = "mysql"
//! url = "mysql://app:${MYSQL_PASSWORD}@db:3306/app"
//! ```
#![doc = include_str!("docs.md")]

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use sqlx::mysql::{
    MySqlConnectOptions, MySqlConnection, MySqlPool, MySqlPoolOptions, MySqlRow, MySqlSslMode,
};
use sqlx::{Connection, Row};

use crate::backends::sql::{
    self, Column, ColumnInfo, Dialect, Message, Param, SslMode, TableSql, Tables,
    entity_config_error, now_micros,
    outbox::SqlOutbox,
    write::{self, Exec, Target},
};
use crate::config::{Redactor, StoreSpec, redact_url};
use crate::query::Filter;
use crate::store::{
    Applied, EntityInfo, OutboxEntry, StoreQuery, VersionedChange, WriteOp, WriteOutcome,
};
use crate::{Capabilities, Error, Key, Record, Result, Store};

mod bulk;
mod capture;
#[cfg(test)]
mod classify_tests;
mod codec;
mod config;
mod dialect;
mod single;
#[cfg(test)]
mod tests;

use codec::{bind_all, column_value};

pub use config::MySqlConfig;
pub use dialect::{MAX_KEY_CHARS, MySqlDialect};

pub(crate) fn open(spec: StoreSpec) -> BoxFuture<'static, Result<Arc<dyn Store>>> {
    Box::pin(async move {
        let cfg: MySqlConfig = spec.parse()?;
        let located = |key: &str, msg: String| spec.error(&[key], msg);
        let store = MySqlStore::connect_inner(&spec.name, cfg, &located).await?;
        Ok(Arc::new(store) as Arc<dyn Store>)
    })
}

/// A store backed by a MySQL or MariaDB database, with a typed table per
/// entity.
///
/// Usually built by the router from `kind = "mysql"`; it can also be opened
/// directly with [`MySqlStore::connect`]. See the [module
/// documentation](self) for the table layout, type mapping, TTL purge and
/// transaction behaviour.
pub struct MySqlStore {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    location: String,
    caps: Capabilities,
    pool: MySqlPool,
    dialect: MySqlDialect,
    tables: Tables,
    /// Each table's single-statement puts, by table name, with the schema
    /// they were built for.
    single: parking_lot::RwLock<HashMap<String, (usize, Arc<single::SingleSql>)>>,
    purge_task: Mutex<Option<tokio::task::AbortHandle>>,
    binlog: capture::BinlogTarget,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self.purge_task.get_mut().take() {
            task.abort();
        }
    }
}

impl fmt::Debug for MySqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MySqlStore")
            .field("name", &self.inner.name)
            .field("location", &self.inner.location)
            .field("dialect", &self.inner.dialect)
            .finish_non_exhaustive()
    }
}

/// The server's error number of a database error (e.g. 1213).
fn error_number(e: &sqlx::Error) -> Option<u16> {
    match e {
        sqlx::Error::Database(d) => d
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .map(|m| m.number()),
        _ => None,
    }
}

/// A deadlock: the server rolled the whole transaction back, so it can run
/// again.
///
/// A duplicate key (1062) in a write transaction counts too: two writers
/// that both found a key absent (or a tombstone) raced to insert it; the
/// loser runs again, sees the winner's row and answers by its
/// precondition (`Conflict` for an insert), never with a driver error.
fn is_deadlock(e: &sqlx::Error) -> bool {
    matches!(error_number(e), Some(1213 | 1062))
}

/// Maps a driver error (the classification table is in docs/resilience.md):
/// a lost server or connection → transient [`Error::Unavailable`] (a
/// write's outcome is unknown); a deadlock (1213) or lock wait timeout
/// (1205), after which the transaction is rolled back → [`Error::Rejected`]
/// `aborted`; too many connections (1040) → [`Error::Rejected`]
/// `throttled`; a value the column cannot hold → [`Error::InvalidInput`];
/// anything else → [`Error::Backend`]. sqlx never puts bound values or the
/// URL's password in its messages.
fn map_err(store: &str, entity: &str, e: sqlx::Error) -> Error {
    let unavailable = |message: String, e: sqlx::Error| Error::Unavailable {
        store: store.into(),
        entity: entity.into(),
        message,
        source: Some(Box::new(e)),
    };
    let rejected = |reason: crate::Rejection, message: String, e: sqlx::Error| Error::Rejected {
        store: store.into(),
        entity: entity.into(),
        reason,
        message,
        retry_after: None,
        source: Some(Box::new(e)),
    };
    let number = error_number(&e).unwrap_or(0);
    match &e {
        sqlx::Error::Io(io) => unavailable(format!("lost the connection to the server: {io}"), e),
        sqlx::Error::Tls(_) => unavailable("TLS error talking to the server".into(), e),
        sqlx::Error::Protocol(p) => unavailable(format!("protocol error: {p}"), e),
        sqlx::Error::PoolTimedOut => unavailable(
            "timed out waiting for a connection; the server is slow or down, or every connection is busy — retry, or raise `max_connections`".into(),
            e,
        ),
        sqlx::Error::PoolClosed => unavailable("the connection pool is closed".into(), e),
        // 1213 deadlock, 1205 lock wait timeout: the write's transaction is
        // rolled back (the backend never commits after an error).
        _ if matches!(number, 1205 | 1213) => rejected(
            crate::Rejection::Aborted,
            format!("the server gave up on a lock held by another transaction ({number}); nothing was written — retry"),
            e,
        ),
        // 1040 too many connections: refused before any statement ran.
        _ if number == 1040 => rejected(
            crate::Rejection::Throttled,
            "the server has too many connections (1040); retry later".into(),
            e,
        ),
        // 1053 shutdown, 1927 connection killed (MariaDB), 2006/2013 gone.
        _ if matches!(number, 1053 | 1927 | 2006 | 2013) => unavailable(
            format!("the server ended the connection ({number}); retry"),
            e,
        ),
        // 1366 incorrect string value, 1406 data too long, 1264 out of range.
        _ if matches!(number, 1264 | 1366 | 1406) => Error::invalid_input(
            store,
            entity,
            format!("MySQL cannot store a value ({number}): {e}"),
        ),
        _ => Error::backend(store, entity, e),
    }
}

/// Runs a batch again when the server broke a deadlock by rolling it back
/// (concurrent writers locking keys in different orders, or inserting the
/// same absent key): every attempt starts from scratch in a new transaction.
const DEADLOCK_ATTEMPTS: usize = 4;

/// Runs `attempt` until it succeeds, fails with anything but a deadlock
/// (the `bool`), or has run [`DEADLOCK_ATTEMPTS`] times.
async fn retry_deadlocks<T, F, Fut>(mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, (Error, bool)>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Ok(outcomes) => return Ok(outcomes),
            Err((_, true)) if tries < DEADLOCK_ATTEMPTS => tries += 1,
            Err((e, _)) => return Err(e),
        }
    }
}

impl MySqlStore {
    /// Connects to the server the configuration names (and creates the
    /// `database`, if set and missing).
    ///
    /// A bad option is an [`Error::Config`]; a server that cannot be
    /// reached is an [`Error::Unavailable`] naming the store and the
    /// address (password redacted).
    ///
    /// ```no_run
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use polyrouter::backends::mysql::{MySqlConfig, MySqlStore};
    /// use polyrouter::Store;
    /// let store = MySqlStore::connect("main", MySqlConfig::new("mysql://root@127.0.0.1:3306/test")).await?;
    /// store.ping().await?;
    /// # Ok::<(), polyrouter::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn connect(name: &str, config: MySqlConfig) -> Result<MySqlStore> {
        let located =
            |key: &str, msg: String| Error::config("<code>", &format!("stores.{name}.{key}"), msg);
        Self::connect_inner(name, config, &located).await
    }

    async fn connect_inner(
        name: &str,
        config: MySqlConfig,
        config_error: &(dyn Fn(&str, String) -> Error + Send + Sync),
    ) -> Result<MySqlStore> {
        if let Err((key, msg)) = config.validate() {
            return Err(config_error(key, msg));
        }
        let location = redact_url(&config.url);
        let secrets = Redactor::new().with_url(&config.url);
        let cannot_connect = |e: sqlx::Error| {
            let shown = secrets.redact(&e.to_string());
            Error::Unavailable {
                store: name.into(),
                entity: String::new(),
                message: format!(
                    "cannot connect to the MySQL server at {location}: {shown}; check the server runs and the URL"
                ),
                source: Some(Box::new(Message(shown))),
            }
        };
        let mut opts = MySqlConnectOptions::from_str(&config.mysql_url())
            .map_err(|e| {
                config_error(
                    "url",
                    format!(
                        "{location:?} is not a valid MySQL URL: {}; a password holding `/`, `?`, `#`, `@`, `:`, `%` or a space must be percent-encoded (`%2F`, `%3F`, `%23`, `%40`, `%3A`, `%25`, `%20`)",
                        secrets.redact(&e.to_string())
                    ),
                )
            })?
            .charset("utf8mb4")
            .statement_cache_capacity(256);
        if let Some(mode) = config.ssl_mode {
            opts = opts.ssl_mode(match mode {
                SslMode::Disable => MySqlSslMode::Disabled,
                SslMode::Prefer => MySqlSslMode::Preferred,
                SslMode::Require => MySqlSslMode::Required,
                SslMode::VerifyCa => MySqlSslMode::VerifyCa,
                SslMode::VerifyFull => MySqlSslMode::VerifyIdentity,
            });
        }
        if let Some(cert) = &config.ssl_root_cert {
            opts = opts.ssl_ca(cert);
        }
        let timeout = config.connect_timeout.0;
        // One connection first: the server's flavour, and the database.
        let mut first = tokio::time::timeout(timeout, MySqlConnection::connect_with(&opts))
            .await
            .map_err(|_| cannot_connect(sqlx::Error::PoolTimedOut))?
            .map_err(cannot_connect)?;
        let version: String = sqlx::query_scalar("SELECT VERSION()")
            .fetch_one(&mut first)
            .await
            .map_err(|e| map_err(name, "", e))?;
        let dialect = MySqlDialect::for_version(&version);
        if let Some(db) = &config.database {
            let create = format!(
                "CREATE DATABASE IF NOT EXISTS {} CHARACTER SET utf8mb4 COLLATE {}",
                dialect.quote(db),
                dialect.collation
            );
            sqlx::query(&create)
                .execute(&mut first)
                .await
                .map_err(|e| map_err(name, "", e))?;
            opts = opts.database(db);
        }
        let _ = first.close().await;
        let idle = config.idle_timeout.0;
        let pool = MySqlPoolOptions::new()
            .max_connections(config.max_connections)
            .min_connections(config.min_connections)
            .acquire_timeout(
                config
                    .acquire_timeout
                    .as_ref()
                    .unwrap_or(&config.connect_timeout)
                    .0,
            )
            .idle_timeout((!idle.is_zero()).then_some(idle));
        let pool = sql::ping_after_idle(pool, config.ping_after_idle.0)
            .connect_with(opts)
            .await
            .map_err(cannot_connect)?;
        let inner = Arc::new(Inner {
            name: name.to_string(),
            location,
            caps: crate::backends::kind_caps::mysql(),
            pool,
            dialect,
            tables: Tables::new(Arc::new(dialect)),
            single: Default::default(),
            purge_task: Mutex::new(None),
            binlog: capture::BinlogTarget::new(&config),
        });
        if !config.purge_interval.0.is_zero() {
            let task = sql::spawn_purge(Arc::downgrade(&inner), config.purge_interval.0, |i| {
                Box::pin(async move { i.purge_expired().await })
            });
            *inner.purge_task.lock() = Some(task);
        }
        Ok(MySqlStore { inner })
    }

    /// The dialect of the server connected to (MariaDB or MySQL).
    pub fn dialect(&self) -> MySqlDialect {
        self.inner.dialect
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

    fn decode(&self, entity: &EntityInfo, t: &TableSql, row: &MySqlRow) -> Result<Record> {
        sql::decode_record(
            t,
            |i, col| column_value(row, i, col),
            |i| row.try_get::<i64, _>(i).map_err(|e| e.to_string()),
        )
        .map_err(|m| {
            Error::backend(
                &self.inner.name,
                entity.name(),
                Message(format!("table `{}`: {m}", t.table)),
            )
        })
    }

    /// The statements of the entity's table, built once per table.
    fn table_sql(&self, entity: &EntityInfo) -> Result<Arc<TableSql>> {
        self.inner.tables.get(&self.inner.name, entity)
    }

    fn target<'a>(&'a self, entity: &'a EntityInfo) -> Target<'a> {
        Target::new(&self.inner.name, entity)
    }

    /// The single-statement puts of the table of `t`, built once.
    fn single_sql(&self, t: &TableSql) -> Arc<single::SingleSql> {
        let schema = std::ptr::from_ref(t.schema) as usize;
        if let Some((s, sql)) = self.inner.single.read().get(&t.table) {
            if *s == schema {
                return sql.clone();
            }
        }
        let sql = Arc::new(single::SingleSql::new(t));
        self.inner
            .single
            .write()
            .insert(t.table.clone(), (schema, sql.clone()));
        sql
    }

    /// One put on a route without an outbox, in one autocommit statement
    /// ([`single`]); `None` when only the lock-then-write path can decide
    /// (an insert-only put that found a row).
    async fn put_single(
        &self,
        entity: &EntityInfo,
        t: &TableSql,
        precondition: crate::store::Precondition,
        key: &Key,
        w: &sql::LockedWrite<'_>,
        now: i64,
    ) -> Result<Option<WriteOutcome>> {
        let s = self.single_sql(t);
        let done = retry_deadlocks(|| async {
            single::put(
                &self.inner.pool,
                &s,
                t.key_index,
                precondition,
                w.clone(),
                now,
            )
            .await
            .map_err(|e| {
                let deadlock = is_deadlock(&e);
                (self.err(entity, e), deadlock)
            })
        })
        .await?;
        match done {
            single::Single::Written(version) => Ok(Some(WriteOutcome::Written { version })),
            single::Single::Conflict(actual) => Err(Error::conflict(
                &self.inner.name,
                entity.name(),
                key,
                precondition,
                actual,
            )),
            single::Single::Locked => Ok(None),
        }
    }

    /// One attempt at a batch: one transaction, lock-then-write per op.
    async fn write_once(
        &self,
        entity: &EntityInfo,
        t: &TableSql,
        ops: &[WriteOp],
        writes: &[sql::LockedWrite<'_>],
        now: i64,
    ) -> std::result::Result<Vec<WriteOutcome>, (Error, bool)> {
        let fail = |e: sqlx::Error| {
            let deadlock = is_deadlock(&e);
            (self.err(entity, e), deadlock)
        };
        let mut tx = self.inner.pool.begin().await.map_err(fail)?;
        let mut exec = MySqlExec {
            conn: &mut tx,
            store: &self.inner.name,
            entity: entity.name(),
            deadlock: false,
        };
        let target = self.target(entity);
        match write::apply_all_locked(&mut exec, target, t, ops, writes.to_vec(), now).await {
            Ok(outcomes) => {
                tx.commit().await.map_err(fail)?;
                Ok(outcomes)
            }
            Err(e) => {
                let deadlock = exec.deadlock;
                let _ = tx.rollback().await;
                Err((e, deadlock))
            }
        }
    }
}

impl MySqlStore {
    /// One attempt at a versioned apply: one transaction, each key locked
    /// then written.
    async fn apply_once(
        &self,
        entity: &EntityInfo,
        t: &TableSql,
        changes: &[VersionedChange],
    ) -> std::result::Result<Vec<Applied>, (Error, bool)> {
        let fail = |e: sqlx::Error| {
            let deadlock = is_deadlock(&e);
            (self.err(entity, e), deadlock)
        };
        let mut tx = self.inner.pool.begin().await.map_err(fail)?;
        let mut exec = MySqlExec {
            conn: &mut tx,
            store: &self.inner.name,
            entity: entity.name(),
            deadlock: false,
        };
        let target = self.target(entity);
        match sql::apply_versioned(&mut exec, target, t, changes, now_micros()).await {
            Ok(out) => {
                tx.commit().await.map_err(fail)?;
                Ok(out)
            }
            Err(e) => {
                let deadlock = exec.deadlock;
                let _ = tx.rollback().await;
                Err((e, deadlock))
            }
        }
    }

    /// A connection from the pool.
    async fn conn(&self, entity: &EntityInfo) -> Result<sqlx::pool::PoolConnection<sqlx::MySql>> {
        self.inner
            .pool
            .acquire()
            .await
            .map_err(|e| self.err(entity, e))
    }

    fn exec<'c>(&'c self, conn: &'c mut MySqlConnection, entity: &'c EntityInfo) -> MySqlExec<'c> {
        MySqlExec {
            conn,
            store: &self.inner.name,
            entity: entity.name(),
            deadlock: false,
        }
    }

    /// One attempt at a bulk put: per chunk, lock every key and read its
    /// version, then one multi-row upsert; one transaction for all chunks.
    async fn put_many_once(
        &self,
        entity: &EntityInfo,
        t: &TableSql,
        chunks: &[bulk::Chunk<'_>],
        ops: &[WriteOp],
    ) -> std::result::Result<Vec<WriteOutcome>, (Error, bool)> {
        let fail = |e: sqlx::Error| {
            let deadlock = is_deadlock(&e);
            (self.err(entity, e), deadlock)
        };
        let mut tx = self.inner.pool.begin().await.map_err(fail)?;
        let mut outcomes = Vec::new();
        for c in chunks {
            let locked = match bind_all(sqlx::query(&c.lock.sql), c.lock.params.clone())
                .fetch_all(&mut *tx)
                .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    let _ = tx.rollback().await;
                    return Err(fail(e));
                }
            };
            let mut versions = HashMap::with_capacity(locked.len());
            for r in &locked {
                let key = column_value(r, 0, t.key_column())
                    .ok()
                    .and_then(|v| Key::from_value(&v));
                match (key, r.try_get::<i64, _>(1)) {
                    (Some(k), Ok(v)) => {
                        versions.insert(k, v);
                    }
                    _ => {
                        let _ = tx.rollback().await;
                        let m = Message("the bulk lock returned an unreadable row".into());
                        return Err((Error::backend(&self.inner.name, entity.name(), m), false));
                    }
                }
            }
            let new = c.versions(&versions);
            if let Err(e) = bind_all(sqlx::query(&c.insert), c.params(&new))
                .execute(&mut *tx)
                .await
            {
                let _ = tx.rollback().await;
                return Err(fail(e));
            }
            outcomes.extend(
                new.into_iter()
                    .map(|version| WriteOutcome::Written { version }),
            );
        }
        let mut exec = MySqlExec {
            conn: &mut tx,
            store: &self.inner.name,
            entity: entity.name(),
            deadlock: false,
        };
        let target = self.target(entity);
        if let Err(e) = write::record_puts(&mut exec, target, t, ops, &outcomes).await {
            let deadlock = exec.deadlock;
            let _ = tx.rollback().await;
            return Err((e, deadlock));
        }
        tx.commit().await.map_err(fail)?;
        Ok(outcomes)
    }
}

/// Runs statements on one MySQL connection, errors mapped for a store and
/// entity.
struct MySqlExec<'c> {
    conn: &'c mut MySqlConnection,
    store: &'c str,
    entity: &'c str,
    /// The last error was a deadlock (the transaction is rolled back).
    deadlock: bool,
}

impl MySqlExec<'_> {
    fn map(&mut self, e: sqlx::Error) -> Error {
        self.deadlock = is_deadlock(&e);
        map_err(self.store, self.entity, e)
    }
}

#[async_trait]
impl Exec for MySqlExec<'_> {
    async fn fetch_int(&mut self, sql: &str, params: Vec<Param<'_>>) -> Result<Option<i64>> {
        let row = match bind_all(sqlx::query(sql), params)
            .fetch_optional(&mut *self.conn)
            .await
        {
            Ok(r) => r,
            Err(e) => return Err(self.map(e)),
        };
        match row.map(|r| r.try_get::<i64, _>(0)).transpose() {
            Ok(v) => Ok(v),
            Err(e) => Err(self.map(e)),
        }
    }

    async fn fetch_bool(&mut self, sql: &str, params: Vec<Param<'_>>) -> Result<Option<bool>> {
        Ok(self.fetch_int(sql, params).await?.map(|i| i != 0))
    }

    async fn execute(&mut self, sql: &str, params: Vec<Param<'_>>) -> Result<u64> {
        match bind_all(sqlx::query(sql), params)
            .execute(&mut *self.conn)
            .await
        {
            Ok(r) => Ok(r.rows_affected()),
            Err(e) => Err(self.map(e)),
        }
    }

    async fn fetch_int_text(
        &mut self,
        sql: &str,
        params: Vec<Param<'_>>,
    ) -> Result<Vec<(i64, String)>> {
        // Text in a binary collation comes back as bytes.
        let rows = bind_all(sqlx::query(sql), params)
            .fetch_all(&mut *self.conn)
            .await
            .and_then(|rows| {
                rows.iter()
                    .map(|r| {
                        let text: Vec<u8> = r.try_get(1)?;
                        let text = String::from_utf8(text)
                            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
                        Ok((r.try_get(0)?, text))
                    })
                    .collect()
            });
        rows.map_err(|e| self.map(e))
    }

    async fn fetch_key_ints(
        &mut self,
        sql: &str,
        params: Vec<Param<'_>>,
        key: &Column,
    ) -> Result<Vec<(Key, i64)>> {
        let rows = match bind_all(sqlx::query(sql), params)
            .fetch_all(&mut *self.conn)
            .await
        {
            Ok(rows) => rows,
            Err(e) => return Err(self.map(e)),
        };
        let what = (self.store, self.entity, "a versioned apply");
        sql::sqlx_key_ints(&rows, what, key, column_value, |e| self.map(e))
    }
}

impl Inner {
    async fn purge_expired(&self) -> Result<u64> {
        let tables = self.tables.ensured();
        if tables.is_empty() {
            return Ok(0);
        }
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| map_err(&self.name, "", e))?;
        let mut exec = MySqlExec {
            conn: &mut conn,
            store: &self.name,
            entity: "",
            deadlock: false,
        };
        sql::purge(&mut exec, &tables).await
    }
}

/// The columns of a table in the current database: name, type (with the
/// collation of text columns), nullability, default, primary-key position.
const COLUMNS: &str = "SELECT c.COLUMN_NAME, CONCAT(c.DATA_TYPE, ' ', COALESCE(c.COLLATION_NAME, '')), \
     CAST(c.IS_NULLABLE = 'YES' AS SIGNED), c.COLUMN_DEFAULT, CAST(COALESCE(k.ORDINAL_POSITION, 0) AS SIGNED) \
     FROM information_schema.COLUMNS c \
     LEFT JOIN information_schema.KEY_COLUMN_USAGE k ON k.TABLE_SCHEMA = c.TABLE_SCHEMA \
     AND k.TABLE_NAME = c.TABLE_NAME AND k.COLUMN_NAME = c.COLUMN_NAME AND k.CONSTRAINT_NAME = 'PRIMARY' \
     WHERE c.TABLE_SCHEMA = DATABASE() AND c.TABLE_NAME = ? ORDER BY c.ORDINAL_POSITION";

sql::outbox::sqlx_outbox!(MySqlStore, sqlx::MySql);

impl MySqlStore {
    /// [`Store::write`] and [`Store::write_ref`]: the ops are encoded from
    /// borrowed ops, so neither copies them.
    async fn write_slice(
        &self,
        entity: &EntityInfo,
        ops: &[WriteOp],
        _atomic: bool,
    ) -> Result<Vec<WriteOutcome>> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let t = self.table_sql(entity)?;
        let now = now_micros();
        // Every op is checked and encoded before the database is touched.
        // Always all or nothing: one transaction (the lock and the write go
        // together), except for one put without an outbox, which is one
        // statement.
        if write::is_put_many(ops) {
            let chunks = bulk::chunks(&t, ops, now).map_err(|m| self.target(entity).invalid(m))?;
            return retry_deadlocks(|| self.put_many_once(entity, &t, &chunks, ops)).await;
        }
        let writes = write::locked_writes(self.target(entity), &t, ops, now)?;
        // One put without an outbox event to commit with it: one statement.
        if let [
            WriteOp::Put {
                precondition,
                record,
                ..
            },
        ] = ops
            && entity.outbox.is_none()
        {
            let one = self
                .put_single(entity, &t, *precondition, &record.key, &writes[0], now)
                .await?;
            if let Some(outcome) = one {
                return Ok(vec![outcome]);
            }
        }
        retry_deadlocks(|| self.write_once(entity, &t, ops, &writes, now)).await
    }
}

#[async_trait]
impl Store for MySqlStore {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn kind(&self) -> &'static str {
        "mysql"
    }

    fn capabilities(&self) -> &Capabilities {
        &self.inner.caps
    }

    fn location(&self) -> String {
        self.inner.location.clone()
    }

    async fn drop_entity(&self, entity: &EntityInfo) -> Result<()> {
        let t = self.table_sql(entity)?;
        for drop in [&t.drop_table, &t.outbox.drop] {
            sqlx::query(drop)
                .execute(&self.inner.pool)
                .await
                .map_err(|e| self.err(entity, e))?;
        }
        self.inner.tables.forget(entity);
        Ok(())
    }

    fn namespace(&self) -> crate::store::namespace::Namespace {
        crate::store::namespace::Namespace::own(self.inner.tables.dialect().table_names())
    }

    fn change_source(
        &self,
        entity: &EntityInfo,
        slot: &str,
    ) -> Result<Arc<dyn crate::sync::capture::ChangeSource>> {
        self.inner.binlog.source(
            &self.inner.name,
            self.inner.pool.clone(),
            entity,
            slot,
            map_err,
        )
    }

    async fn ensure_entity(&self, entity: &EntityInfo) -> Result<()> {
        let t = self.table_sql(entity)?;
        let mut conn = self
            .inner
            .pool
            .acquire()
            .await
            .map_err(|e| self.err(entity, e))?;
        sqlx::query(&t.create_table)
            .execute(&mut *conn)
            .await
            .map_err(|e| self.err(entity, e))?;
        let rows = sqlx::query(COLUMNS)
            .bind(&t.table)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| self.err(entity, e))?;
        let info = rows
            .iter()
            .map(|r| {
                Ok(ColumnInfo {
                    name: r.try_get(0)?,
                    data_type: r.try_get::<String, _>(1)?.trim().to_string(),
                    nullable: r.try_get::<i64, _>(2)? != 0,
                    default: r.try_get(3)?,
                    pk: u32::try_from(r.try_get::<i64, _>(4)?).unwrap_or(0),
                })
            })
            .collect::<std::result::Result<Vec<_>, sqlx::Error>>()
            .map_err(|e| self.err(entity, e))?;
        sql::check_table(&self.inner.name, &t, &info)
            .map_err(|m| entity_config_error(entity, m))?;
        if entity.outbox.is_some() {
            t.outbox
                .check(&*t.dialect)
                .map_err(|m| entity_config_error(entity, m))?;
            sqlx::query(&t.outbox.create)
                .execute(&mut *conn)
                .await
                .map_err(|e| self.err(entity, e))?;
        }
        self.inner.tables.mark_ensured(entity, t);
        Ok(())
    }

    async fn get(&self, entity: &EntityInfo, key: &Key) -> Result<Option<Record>> {
        let t = self.table_sql(entity)?;
        let key_param = t.key(key);
        if key.kind() == t.schema.key_kind && !t.storable(key) {
            return Ok(None); // longer than any stored key
        }
        let key = key_param.map_err(|m| self.target(entity).invalid(m))?;
        let row = bind_all(sqlx::query(&t.get), vec![key, Param::Int(now_micros())])
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
        let selects = t
            .get_many(keys, now_micros())
            .map_err(|m| self.target(entity).invalid(m))?;
        let mut found = HashMap::with_capacity(keys.len());
        for s in selects {
            let rows = bind_all(sqlx::query(&s.sql), s.params)
                .fetch_all(&self.inner.pool)
                .await
                .map_err(|e| self.err(entity, e))?;
            for row in &rows {
                let r = self.decode(entity, &t, row)?;
                found.insert(r.key.clone(), r);
            }
        }
        Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
    }

    async fn write(
        &self,
        entity: &EntityInfo,
        ops: Vec<WriteOp>,
        atomic: bool,
    ) -> Result<Vec<WriteOutcome>> {
        self.write_slice(entity, &ops, atomic).await
    }

    async fn write_ref(
        &self,
        entity: &EntityInfo,
        ops: &[WriteOp],
        atomic: bool,
    ) -> Result<Vec<WriteOutcome>> {
        self.write_slice(entity, ops, atomic).await
    }

    async fn apply_versioned(
        &self,
        entity: &EntityInfo,
        changes: Vec<VersionedChange>,
    ) -> Result<Vec<Applied>> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let t = self.table_sql(entity)?;
        retry_deadlocks(|| self.apply_once(entity, &t, &changes)).await
    }

    async fn outbox_fetch(&self, entity: &EntityInfo, max: usize) -> Result<Vec<OutboxEntry>> {
        self.sql_outbox_fetch(entity, max).await
    }

    async fn outbox_remove(&self, entity: &EntityInfo, ids: &[String]) -> Result<()> {
        self.sql_outbox_remove(entity, ids).await
    }

    async fn outbox_len(&self, entity: &EntityInfo) -> Result<u64> {
        self.sql_outbox_len(entity).await
    }

    async fn query(&self, entity: &EntityInfo, query: &StoreQuery) -> Result<Vec<Record>> {
        let t = self.table_sql(entity)?;
        let s = t.query(query, now_micros());
        crate::backends::sql::check_params(&self.inner.name, entity, &t, &s)?;
        let rows = bind_all(sqlx::query(&s.sql), s.params)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.err(entity, e))?;
        rows.iter().map(|r| self.decode(entity, &t, r)).collect()
    }

    async fn count(&self, entity: &EntityInfo, filter: Option<&Filter>) -> Result<u64> {
        let t = self.table_sql(entity)?;
        let s = t.count(filter, now_micros());
        crate::backends::sql::check_params(&self.inner.name, entity, &t, &s)?;
        let n: i64 = bind_all(sqlx::query(&s.sql), s.params)
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
}
