//! `sqlite`: embedded SQLite via sqlx; a real typed table per entity.
//!
//! ```toml
//! [stores.main]
//! kind = "sqlite"
//! url = "sqlite://data/app.db"
//! ```
#![doc = include_str!("docs.md")]

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow,
};

use crate::backends::sql::{
    self, BulkPut, Column, ColumnInfo, Message, Param, Select, TableSql, Tables,
    entity_config_error, now_micros,
    outbox::SqlOutbox,
    write::{self, Exec, Target},
};
use crate::config::{StoreSpec, redact_url};
use crate::query::Filter;
use crate::store::{
    Applied, EntityInfo, OutboxEntry, StoreQuery, VersionedChange, WriteOp, WriteOutcome,
};
use crate::{Capabilities, Error, Key, Record, Result, Store};

mod codec;
mod config;
mod dialect;
mod graph;
#[cfg(test)]
mod tests;
mod timeseries;

use codec::{bind_all, column_value};

pub use config::SqliteConfig;
pub use dialect::SqliteDialect;

pub(crate) fn open(spec: StoreSpec) -> BoxFuture<'static, Result<Arc<dyn Store>>> {
    Box::pin(async move {
        let cfg: SqliteConfig = spec.parse()?;
        let located = |key: &str, msg: String| spec.error(&[key], msg);
        let store = SqliteStore::connect_inner(&spec.name, cfg, &located).await?;
        Ok(Arc::new(store) as Arc<dyn Store>)
    })
}

/// A store backed by an SQLite database file (or an in-memory database),
/// with a typed table per entity.
///
/// Usually built by the router from `kind = "sqlite"`; it can also be
/// opened directly. See the [module documentation](self) for the table
/// layout, type mapping, TTL purge and transaction behaviour.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use polyrouter::backends::sqlite::{SqliteConfig, SqliteStore};
/// use polyrouter::store::{EntityInfo, WriteOp, WriteOutcome};
/// use polyrouter::{FieldDef, FieldKind, FieldType, Key, KeyKind, Precondition, Record, Schema, Store, Value};
///
/// static FIELDS: [FieldDef; 2] = [
///     FieldDef { name: "id", ty: FieldType::required(FieldKind::String) },
///     FieldDef { name: "email", ty: FieldType::required(FieldKind::String) },
/// ];
/// static USER: Schema = Schema {
///     name: "user", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &FIELDS,
/// };
///
/// let dir = tempfile::tempdir().unwrap();
/// let url = format!("sqlite://{}/data/app.db", dir.path().display());
/// let store = SqliteStore::connect("main", SqliteConfig::new(url)).await?;
/// let user = EntityInfo { store: "main".into(), ..EntityInfo::new(&USER) };
/// store.ensure_entity(&user).await?; // CREATE TABLE "user" (...)
///
/// let mut r = Record::new(Key::from("u1"));
/// r.set("id", Value::from("u1"));
/// r.set("email", Value::from("ada@example.com"));
/// let put = WriteOp::Put { record: r, precondition: Precondition::Absent, ttl: None };
/// let out = store.write(&user, vec![put], true).await?;
/// assert_eq!(out, vec![WriteOutcome::Written { version: 1 }]);
///
/// let got = store.get(&user, &Key::from("u1")).await?.unwrap();
/// assert_eq!(got.version, 1);
/// assert_eq!(got.get("email"), Some(&Value::from("ada@example.com")));
/// # Ok::<(), polyrouter::Error>(())
/// # }).unwrap();
/// ```
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    location: String,
    caps: Capabilities,
    pool: SqlitePool,
    tables: Tables,
    purge_task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self.purge_task.get_mut().take() {
            task.abort();
        }
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("name", &self.inner.name)
            .field("location", &self.inner.location)
            .finish_non_exhaustive()
    }
}

/// SQLite's primary result code of a database error.
fn sqlite_code(e: &sqlx::Error) -> Option<i32> {
    match e {
        sqlx::Error::Database(d) => d
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .map(|c| c & 0xff),
        _ => None,
    }
}

/// `SQLITE_BUSY` or `SQLITE_LOCKED`: another connection holds the lock.
fn is_busy(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            let m = d.message().to_ascii_lowercase();
            matches!(sqlite_code(e), Some(5 | 6))
                || m.contains("database is locked")
                || m.contains("busy")
        }
        _ => false,
    }
}

/// Maps a driver error: lost or busy database → transient
/// [`Error::Unavailable`]; anything else → [`Error::Backend`]. sqlx never
/// puts bound values in its messages, and SQLite URLs hold no passwords.
fn map_err(store: &str, entity: &str, e: sqlx::Error) -> Error {
    let unavailable = |message: String, e: sqlx::Error| Error::Unavailable {
        store: store.into(),
        entity: entity.into(),
        message,
        source: Some(Box::new(e)),
    };
    match &e {
        sqlx::Error::Io(io) => unavailable(format!("I/O error on the database file: {io}"), e),
        sqlx::Error::PoolTimedOut => unavailable(
            "timed out waiting for a free connection; every connection is busy — retry, or raise `max_connections`".into(),
            e,
        ),
        sqlx::Error::PoolClosed => unavailable("the connection pool is closed".into(), e),
        sqlx::Error::WorkerCrashed => unavailable("the SQLite worker thread crashed".into(), e),
        _ if is_busy(&e) => unavailable(
            "the database is locked by another connection for longer than `busy_timeout`; retry, or raise `busy_timeout`"
                .into(),
            e,
        ),
        _ if sqlite_code(&e) == Some(18) => Error::invalid_input(
            store,
            entity,
            "a value is larger than SQLite's limit (1 000 000 000 bytes); store it elsewhere",
        ),
        _ => Error::backend(store, entity, e),
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database the configuration names.
    ///
    /// A bad option is an [`Error::Config`]; a database that cannot be
    /// opened is an [`Error::Unavailable`] naming the store and location.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use polyrouter::backends::sqlite::{SqliteConfig, SqliteStore};
    /// use polyrouter::Store;
    /// let store = SqliteStore::connect("cache", SqliteConfig::new("sqlite::memory:")).await?;
    /// assert_eq!(store.location(), "sqlite::memory:");
    /// store.ping().await?;
    /// # Ok::<(), polyrouter::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn connect(name: &str, config: SqliteConfig) -> Result<SqliteStore> {
        let located =
            |key: &str, msg: String| Error::config("<code>", &format!("stores.{name}.{key}"), msg);
        Self::connect_inner(name, config, &located).await
    }

    async fn connect_inner(
        name: &str,
        config: SqliteConfig,
        config_error: &(dyn Fn(&str, String) -> Error + Send + Sync),
    ) -> Result<SqliteStore> {
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
        let memory = config.in_memory();
        let mut opts = SqliteConnectOptions::from_str(&config.url)
            .map_err(|e| {
                config_error(
                    "url",
                    format!("{location:?} is not a valid SQLite URL: {e}"),
                )
            })?
            .create_if_missing(true)
            .busy_timeout(config.busy_timeout.0)
            .statement_cache_capacity(256);
        if !memory {
            opts = opts.journal_mode(SqliteJournalMode::Wal);
            if let Some(dir) = opts
                .get_filename()
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(|e| {
                    unavailable(
                        format!("cannot create the directory of the database at {location}: {e}"),
                        Some(Box::new(e)),
                    )
                })?;
            }
        }
        let mut pool_opts = SqlitePoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.busy_timeout.0.max(Duration::from_secs(30)))
            .test_before_acquire(false);
        if memory {
            // The in-memory database lives as long as one connection does.
            pool_opts = pool_opts
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        // Switching a new file to WAL takes a lock the busy handler does not
        // wait for: retry while another process does the same.
        let deadline = Instant::now().checked_add(config.busy_timeout.0);
        let pool = loop {
            match pool_opts.clone().connect_with(opts.clone()).await {
                Ok(pool) => break pool,
                Err(e) if is_busy(&e) && deadline.is_none_or(|d| Instant::now() < d) => {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                Err(e) => {
                    return Err(unavailable(
                        format!(
                            "cannot open the SQLite database at {location}: {e}; check the path is a writable file"
                        ),
                        Some(Box::new(e)),
                    ));
                }
            }
        };
        let inner = Arc::new(Inner {
            name: name.to_string(),
            location,
            caps: crate::backends::kind_caps::sqlite(memory),
            pool,
            tables: Tables::new(Arc::new(SqliteDialect)),
            purge_task: Mutex::new(None),
        });
        if !config.purge_interval.0.is_zero() {
            let task = sql::spawn_purge(Arc::downgrade(&inner), config.purge_interval.0, |i| {
                Box::pin(async move { i.purge_expired().await })
            });
            *inner.purge_task.lock() = Some(task);
        }
        Ok(SqliteStore { inner })
    }

    /// Deletes expired rows from every table prepared with
    /// [`Store::ensure_entity`] now, and returns how many were deleted. The
    /// background task does this every `purge_interval`; expired rows are
    /// invisible either way.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use polyrouter::backends::sqlite::{SqliteConfig, SqliteStore};
    /// let store = SqliteStore::connect("s", SqliteConfig::new("sqlite::memory:")).await?;
    /// assert_eq!(store.purge_expired().await?, 0);
    /// # Ok::<(), polyrouter::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn purge_expired(&self) -> Result<u64> {
        self.inner.purge_expired().await
    }

    fn err(&self, entity: &EntityInfo, e: sqlx::Error) -> Error {
        map_err(&self.inner.name, entity.name(), e)
    }

    fn decode(&self, entity: &EntityInfo, t: &TableSql, row: &SqliteRow) -> Result<Record> {
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

    fn exec<'c>(
        &'c self,
        conn: &'c mut SqliteConnection,
        entity: &'c EntityInfo,
    ) -> SqliteExec<'c> {
        SqliteExec {
            conn,
            store: &self.inner.name,
            entity: entity.name(),
        }
    }

    /// Unconditional puts as multi-row upserts, in one transaction.
    async fn put_many(
        &self,
        entity: &EntityInfo,
        t: &TableSql,
        bulk: Vec<BulkPut<'_>>,
        ops: &[WriteOp],
    ) -> Result<Vec<WriteOutcome>> {
        let mut tx = self
            .inner
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| self.err(entity, e))?;
        let mut outcomes = Vec::new();
        for mut b in bulk {
            // The values move into the statement; the keys stay for the
            // outcomes.
            let params = std::mem::take(&mut b.select.params);
            let rows = bind_all(sqlx::query(&b.select.sql), params)
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| self.err(entity, e));
            let what = (&*self.inner.name, entity.name(), "the bulk upsert");
            let returned = rows.and_then(|rows| {
                sql::sqlx_key_ints(&rows, what, t.key_column(), column_value, |e| {
                    self.err(entity, e)
                })
            });
            match returned.and_then(|r| write::bulk_outcomes(self.target(entity), &b, r)) {
                Ok(o) => outcomes.extend(o),
                Err(e) => {
                    let _ = tx.rollback().await;
                    return Err(e);
                }
            }
        }
        let target = self.target(entity);
        let recorded =
            write::record_puts(&mut self.exec(&mut tx, entity), target, t, ops, &outcomes).await;
        if let Err(e) = recorded {
            let _ = tx.rollback().await;
            return Err(e);
        }
        tx.commit().await.map_err(|e| self.err(entity, e))?;
        Ok(outcomes)
    }

    /// A connection from the pool.
    async fn conn(&self, entity: &EntityInfo) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>> {
        self.inner
            .pool
            .acquire()
            .await
            .map_err(|e| self.err(entity, e))
    }

    fn target<'a>(&'a self, entity: &'a EntityInfo) -> Target<'a> {
        Target::new(&self.inner.name, entity)
    }

    /// Fetches `get_many` statements on one connection into `found`.
    async fn fetch_many(
        &self,
        conn: &mut SqliteConnection,
        entity: &EntityInfo,
        t: &TableSql,
        selects: Vec<Select<'_>>,
        found: &mut HashMap<Key, Record>,
    ) -> Result<()> {
        for s in selects {
            let rows = bind_all(sqlx::query(&s.sql), s.params)
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| self.err(entity, e))?;
            for row in &rows {
                let r = self.decode(entity, t, row)?;
                found.insert(r.key.clone(), r);
            }
        }
        Ok(())
    }
}

/// Runs statements on one SQLite connection, errors mapped for a store and
/// entity.
struct SqliteExec<'c> {
    conn: &'c mut SqliteConnection,
    store: &'c str,
    entity: &'c str,
}

#[async_trait]
impl Exec for SqliteExec<'_> {
    async fn fetch_int(&mut self, sql: &str, params: Vec<Param<'_>>) -> Result<Option<i64>> {
        let row = bind_all(sqlx::query(sql), params)
            .fetch_optional(&mut *self.conn)
            .await
            .map_err(|e| map_err(self.store, self.entity, e))?;
        row.map(|r| r.try_get::<i64, _>(0))
            .transpose()
            .map_err(|e| map_err(self.store, self.entity, e))
    }

    async fn fetch_bool(&mut self, sql: &str, params: Vec<Param<'_>>) -> Result<Option<bool>> {
        Ok(self.fetch_int(sql, params).await?.map(|i| i != 0))
    }

    async fn execute(&mut self, sql: &str, params: Vec<Param<'_>>) -> Result<u64> {
        bind_all(sqlx::query(sql), params)
            .execute(&mut *self.conn)
            .await
            .map(|r| r.rows_affected())
            .map_err(|e| map_err(self.store, self.entity, e))
    }

    async fn fetch_int_text(
        &mut self,
        sql: &str,
        params: Vec<Param<'_>>,
    ) -> Result<Vec<(i64, String)>> {
        bind_all(sqlx::query(sql), params)
            .fetch_all(&mut *self.conn)
            .await
            .and_then(|rows| {
                rows.iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                    .collect()
            })
            .map_err(|e| map_err(self.store, self.entity, e))
    }

    async fn fetch_key_ints(
        &mut self,
        sql: &str,
        params: Vec<Param<'_>>,
        key: &Column,
    ) -> Result<Vec<(Key, i64)>> {
        let (store, entity) = (self.store, self.entity);
        let rows = bind_all(sqlx::query(sql), params)
            .fetch_all(&mut *self.conn)
            .await
            .map_err(|e| map_err(store, entity, e))?;
        let what = (store, entity, "a versioned apply");
        sql::sqlx_key_ints(&rows, what, key, column_value, |e| {
            map_err(store, entity, e)
        })
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
        let mut exec = SqliteExec {
            conn: &mut conn,
            store: &self.name,
            entity: "",
        };
        sql::purge(&mut exec, &tables).await
    }
}

const TABLE_INFO: &str = "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?)";

sql::outbox::sqlx_outbox!(SqliteStore, sqlx::Sqlite);

impl SqliteStore {
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
        let target = self.target(entity);
        let now = now_micros();
        if write::is_put_many(ops) {
            if let Some(bulk) = t.put_many(ops, now) {
                let bulk = bulk.map_err(|m| target.invalid(m))?;
                return self.put_many(entity, &t, bulk, ops).await;
            }
        }
        // Every op is checked and encoded before the database is touched.
        let mut stmts = write::statements(target, &t, ops, now)?;
        if let ([op], None) = (ops, entity.outbox) {
            // One statement is atomic on its own (with an outbox, the
            // event's insert joins it in a transaction).
            let stmt = stmts.pop().expect("one statement");
            let mut conn = self
                .inner
                .pool
                .acquire()
                .await
                .map_err(|e| self.err(entity, e))?;
            let mut exec = self.exec(&mut conn, entity);
            return Ok(vec![
                write::apply(&mut exec, target, &t, op, stmt, now).await?,
            ]);
        }
        // Always all or nothing. IMMEDIATE takes the write lock up front (the
        // busy handler waits for it), so a transaction never fails to
        // upgrade a read lock half-way through.
        let mut tx = self
            .inner
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| self.err(entity, e))?;
        let res =
            write::apply_all(&mut self.exec(&mut tx, entity), target, &t, ops, stmts, now).await;
        match res {
            Ok(outcomes) => {
                tx.commit().await.map_err(|e| self.err(entity, e))?;
                Ok(outcomes)
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn kind(&self) -> &'static str {
        "sqlite"
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
        let rows = sqlx::query(TABLE_INFO)
            .bind(&t.table)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| self.err(entity, e))?;
        let info = rows
            .iter()
            .map(|r| {
                Ok(ColumnInfo {
                    name: r.try_get(0)?,
                    data_type: r.try_get::<Option<String>, _>(1)?.unwrap_or_default(),
                    nullable: r.try_get::<i64, _>(2)? == 0,
                    default: r.try_get(3)?,
                    pk: u32::try_from(r.try_get::<i64, _>(4)?).unwrap_or(0),
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(|e| self.err(entity, e))?;
        sql::check_table(&self.inner.name, &t, &info)
            .map_err(|m| entity_config_error(entity, m))?;
        if let Some(create_index) = &t.create_index {
            sqlx::query(create_index)
                .execute(&mut *conn)
                .await
                .map_err(|e| self.err(entity, e))?;
        }
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
        let key = t.key(key).map_err(|m| self.target(entity).invalid(m))?;
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
        if selects.len() <= 1 {
            let mut conn = self
                .inner
                .pool
                .acquire()
                .await
                .map_err(|e| self.err(entity, e))?;
            self.fetch_many(&mut conn, entity, &t, selects, &mut found)
                .await?;
        } else {
            // Several statements: one read transaction, one snapshot.
            let mut tx = self
                .inner
                .pool
                .begin()
                .await
                .map_err(|e| self.err(entity, e))?;
            self.fetch_many(&mut tx, entity, &t, selects, &mut found)
                .await?;
            tx.commit().await.map_err(|e| self.err(entity, e))?;
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
        let mut tx = self
            .inner
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| self.err(entity, e))?;
        let target = self.target(entity);
        let mut exec = self.exec(&mut tx, entity);
        match sql::apply_versioned(&mut exec, target, &t, &changes, now_micros()).await {
            Ok(out) => {
                tx.commit().await.map_err(|e| self.err(entity, e))?;
                Ok(out)
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
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

    fn as_graph(&self) -> Option<&dyn crate::store::graph::GraphStore> {
        Some(self)
    }

    fn as_time_series(&self) -> Option<&dyn crate::store::timeseries::TimeSeriesStore> {
        Some(self)
    }
}
