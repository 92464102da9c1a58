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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow, PgSslMode};

use crate::backends::sql::{
    self, BulkPut, Column, ColumnInfo, Dialect, Message, Param, SslMode, TableSql, Tables,
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

#[cfg(test)]
mod classify_tests;
mod codec;
mod config;
mod dialect;
mod graph;
mod search;
#[cfg(test)]
mod tests;
mod timeseries;

use codec::{bind_all, column_value};

pub use config::PostgresConfig;
pub use dialect::PostgresDialect;

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
    tables: Tables,
    purge_task: Mutex<Option<tokio::task::AbortHandle>>,
    /// The server refused DDL as read-only (SQLSTATE 25006): a hot
    /// standby, whose tables come from its primary.
    standby: AtomicBool,
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

/// The SQLSTATE of a database error.
fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(d) => d.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// Maps a driver error (the classification table is in docs/resilience.md):
/// a lost server or connection → transient [`Error::Unavailable`] (a write's
/// outcome is unknown); a serialization failure or deadlock the server
/// rolled back (40001, 40P01) → [`Error::Rejected`] `aborted`; a server
/// that refuses new work for now (57P03 starting up, 53300 too many
/// connections) → [`Error::Rejected`] `throttled`; a value the column
/// cannot hold → [`Error::InvalidInput`]; anything else →
/// [`Error::Backend`]. sqlx never puts bound values or the URL's password
/// in its messages.
pub(crate) fn map_err(store: &str, entity: &str, e: sqlx::Error) -> Error {
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
        // 40001 serialization failure, 40P01 deadlock: the transaction was
        // rolled back, nothing of it applied.
        _ if matches!(state, "40001" | "40P01") => rejected(
            crate::Rejection::Aborted,
            format!("the server rolled the transaction back to resolve a conflict with another one ({state}); nothing was written — retry"),
            e,
        ),
        // 57P03 cannot connect now (starting up), 53300 too many connections:
        // refused before any statement ran.
        _ if matches!(state, "57P03" | "53300") => rejected(
            crate::Rejection::Throttled,
            format!("the server refused a new connection ({state}); retry later"),
            e,
        ),
        // 08: connection exception; 57P01/57P02: administrator or crash shutdown.
        _ if state.starts_with("08") || matches!(state, "57P01" | "57P02") => {
            unavailable(format!("the server ended the connection ({state}); retry"), e)
        }
        _ if matches!(state, "54000" | "22021" | "22008" | "22003" | "22P05") => Error::invalid_input(
            store,
            entity,
            format!("PostgreSQL cannot store a value ({state}): {e}"),
        ),
        _ => Error::backend(store, entity, e),
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
        let secrets = Redactor::new().with_url(&config.url);
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
                        "{location:?} is not a valid PostgreSQL URL: {}; a password holding `/`, `?`, `#`, `@`, `:`, `%` or a space must be percent-encoded (`%2F`, `%3F`, `%23`, `%40`, `%3A`, `%25`, `%20`)",
                        secrets.redact(&e.to_string())
                    ),
                )
            })?
            .application_name(&format!("polyrouter:{name}"))
            .statement_cache_capacity(256);
        if let Some(schema) = &config.schema {
            opts = opts.options([("search_path", PostgresDialect.quote(schema))]);
        }
        if let Some(mode) = config.ssl_mode {
            opts = opts.ssl_mode(match mode {
                SslMode::Disable => PgSslMode::Disable,
                SslMode::Prefer => PgSslMode::Prefer,
                SslMode::Require => PgSslMode::Require,
                SslMode::VerifyCa => PgSslMode::VerifyCa,
                SslMode::VerifyFull => PgSslMode::VerifyFull,
            });
        }
        if let Some(cert) = &config.ssl_root_cert {
            opts = opts.ssl_root_cert(cert);
        }
        let idle = config.idle_timeout.0;
        let pool = PgPoolOptions::new()
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
            .map_err(|e| {
                unavailable(
                    format!(
                        "cannot connect to the PostgreSQL server at {location}: {}; check the server runs and the URL",
                        secrets.redact(&e.to_string())
                    ),
                    Some(Box::new(Message(secrets.redact(&e.to_string())))),
                )
            })?;
        if let Some(schema) = &config.schema {
            let create = format!(
                "CREATE SCHEMA IF NOT EXISTS {}",
                PostgresDialect.quote(schema)
            );
            if let Err(e) = sqlx::query(&create).execute(&pool).await {
                // Another connection creating it at the same time is fine;
                // a hot standby gets it from its primary.
                if !matches!(sqlstate(&e).as_deref(), Some("23505" | "42P06" | READ_ONLY)) {
                    return Err(map_err(name, "", e));
                }
            }
        }
        let inner = Arc::new(Inner {
            name: name.to_string(),
            location,
            caps: crate::backends::kind_caps::postgres(),
            pool,
            tables: Tables::new(Arc::new(PostgresDialect)),
            purge_task: Mutex::new(None),
            standby: AtomicBool::new(false),
        });
        if !config.purge_interval.0.is_zero() {
            let task = sql::spawn_purge(Arc::downgrade(&inner), config.purge_interval.0, |i| {
                Box::pin(async move { i.purge_expired().await })
            });
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

    /// On a hot standby, waits for the table the primary creates to be
    /// replayed here; a configuration error if it does not come.
    async fn await_replicated_table(
        &self,
        entity: &EntityInfo,
        t: &TableSql,
        conn: &mut PgConnection,
    ) -> Result<()> {
        let deadline = Instant::now() + REPLICATED_TABLE_WAIT;
        loop {
            let found: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                .bind(&t.qtable)
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| self.err(entity, e))?;
            if found {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(entity_config_error(
                    entity,
                    format!(
                        "table {} does not exist on store `{}`, a read-only hot standby, {REPLICATED_TABLE_WAIT:?} after start-up; tables are created on the primary: route an entity to the primary first, and check this standby replicates from it",
                        t.qtable, self.inner.name
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn exec<'c>(&'c self, conn: &'c mut PgConnection, entity: &'c EntityInfo) -> PgExec<'c> {
        PgExec {
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
            .begin()
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
    async fn conn(
        &self,
        entity: &EntityInfo,
    ) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>> {
        self.inner
            .pool
            .acquire()
            .await
            .map_err(|e| self.err(entity, e))
    }

    fn target<'a>(&'a self, entity: &'a EntityInfo) -> Target<'a> {
        Target::new(&self.inner.name, entity)
    }
}

/// Runs statements on one PostgreSQL connection, errors mapped for a store
/// and entity.
struct PgExec<'c> {
    conn: &'c mut PgConnection,
    store: &'c str,
    entity: &'c str,
}

impl PgExec<'_> {
    async fn fetch_first(&mut self, sql: &str, params: Vec<Param<'_>>) -> Result<Option<PgRow>> {
        bind_all(sqlx::query(sql), params)
            .fetch_optional(&mut *self.conn)
            .await
            .map_err(|e| map_err(self.store, self.entity, e))
    }
}

#[async_trait]
impl Exec for PgExec<'_> {
    async fn fetch_int(&mut self, sql: &str, params: Vec<Param<'_>>) -> Result<Option<i64>> {
        let row = self.fetch_first(sql, params).await?;
        row.map(|r| r.try_get::<i64, _>(0))
            .transpose()
            .map_err(|e| map_err(self.store, self.entity, e))
    }

    async fn fetch_bool(&mut self, sql: &str, params: Vec<Param<'_>>) -> Result<Option<bool>> {
        let row = self.fetch_first(sql, params).await?;
        row.map(|r| r.try_get::<bool, _>(0))
            .transpose()
            .map_err(|e| map_err(self.store, self.entity, e))
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
        if self.standby.load(Ordering::Relaxed) {
            // A standby's rows are its primary's to purge; once promoted,
            // it purges its own.
            let recovering: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
                .fetch_one(&self.pool)
                .await
                .map_err(|e| map_err(&self.name, "", e))?;
            if recovering {
                return Ok(0);
            }
            self.standby.store(false, Ordering::Relaxed);
        }
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| map_err(&self.name, "", e))?;
        let mut exec = PgExec {
            conn: &mut conn,
            store: &self.name,
            entity: "",
        };
        sql::purge(&mut exec, &tables).await
    }
}

/// SQLSTATE `read_only_sql_transaction`: DDL or a write on a hot standby.
const READ_ONLY: &str = "25006";

/// How long `ensure_entity` on a hot standby waits for the primary's
/// `CREATE TABLE` to be replayed.
const REPLICATED_TABLE_WAIT: Duration = Duration::from_secs(10);

/// The lag of a hot standby, as it measures it (see
/// [`PostgresStore::replica_lag`](crate::Store::replica_lag)):
/// whether it is a standby, whether its WAL receiver runs (and, for a role
/// allowed to see it, streams), seconds since the last replayed commit's
/// primary timestamp, and — when it has replayed all the WAL its primary
/// last reported having — seconds since the primary sent that report.
const REPLICA_LAG: &str = "SELECT pg_is_in_recovery(), r.pid IS NOT NULL, \
       COALESCE(r.status, 'streaming') = 'streaming', \
       EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8, \
       CASE WHEN pg_last_wal_replay_lsn() >= r.latest_end_lsn \
            THEN EXTRACT(EPOCH FROM clock_timestamp() - r.last_msg_send_time)::float8 END \
     FROM (SELECT 1) AS one LEFT JOIN pg_stat_wal_receiver AS r ON true";

/// The columns of a table in the current schema.
const COLUMNS: &str = "SELECT column_name::text, data_type::text, is_nullable::text = 'YES', column_default::text \
     FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position";

/// The primary-key columns of a table (by its quoted name).
const PRIMARY_KEY: &str = "SELECT a.attname::text FROM pg_index i \
     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
     WHERE i.indrelid = to_regclass($1) AND i.indisprimary";

sql::outbox::sqlx_outbox!(PostgresStore, sqlx::Postgres);

impl PostgresStore {
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
        // Always all or nothing: one transaction; the first failure rolls
        // it back (a lost connection rolls back on the server).
        let mut tx = self
            .inner
            .pool
            .begin()
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
        Ok(Arc::new(
            crate::sync::capture::postgres::PgChangeSource::new(
                &self.inner.name,
                self.inner.pool.clone(),
                entity.clone(),
                slot,
                map_err,
            ),
        ))
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
            match sqlstate(&e).as_deref() {
                // Two stores creating the same table at once: the loser sees
                // a duplicate type or relation; the table is there either way.
                Some("23505" | "42P07") => {}
                // A hot standby (a `read_from` replica): the table is made
                // on the primary and arrives by replication.
                Some(READ_ONLY) => {
                    self.inner.standby.store(true, Ordering::Relaxed);
                    self.await_replicated_table(entity, &t, &mut conn).await?;
                }
                _ => return Err(self.err(entity, e)),
            }
        }
        if entity.outbox.is_some() {
            t.outbox
                .check(&*t.dialect)
                .map_err(|m| entity_config_error(entity, m))?;
            if let Err(e) = sqlx::query(&t.outbox.create).execute(&mut *conn).await {
                if !matches!(sqlstate(&e).as_deref(), Some("23505" | "42P07" | READ_ONLY)) {
                    return Err(self.err(entity, e));
                }
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
                Ok(ColumnInfo {
                    pk: u32::from(pk.contains(&name)),
                    name,
                    data_type: r.try_get(1)?,
                    nullable: r.try_get(2)?,
                    default: r.try_get(3)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(|e| self.err(entity, e))?;
        sql::check_table(&self.inner.name, &t, &info)
            .map_err(|m| entity_config_error(entity, m))?;
        if let Some(create_index) = &t.create_index {
            if let Err(e) = sqlx::query(create_index).execute(&mut *conn).await {
                if !matches!(sqlstate(&e).as_deref(), Some("23505" | "42P07" | READ_ONLY)) {
                    return Err(self.err(entity, e));
                }
            }
        }
        self.inner.tables.mark_ensured(entity, t);
        Ok(())
    }

    async fn get(&self, entity: &EntityInfo, key: &Key) -> Result<Option<Record>> {
        let t = self.table_sql(entity)?;
        let key_param = t.key(key);
        if key.kind() == t.schema.key_kind && !t.storable(key) {
            return Ok(None); // no stored key holds NUL
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
        let mut tx = self
            .inner
            .pool
            .begin()
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

    /// On a hot standby: the smaller of two upper bounds on how stale its
    /// copy is, both from the server's clock and the primary's timestamps
    /// (PostgreSQL's own lag views assume the two clocks agree too):
    /// the time since the last replayed commit was made on the primary
    /// (every commit missing here came later), and, when the standby has
    /// replayed all the WAL its primary reported having in its last
    /// message, the time since that message was sent. A standby whose WAL
    /// receiver is not streaming answers [`Error::Unavailable`] (its lag is
    /// unknown: it may have lost its primary); a server that is not a
    /// standby, [`Error::Unsupported`]. The role needs `pg_monitor` (or
    /// `pg_read_all_stats`) for the receiver's status; without it a running
    /// receiver counts as streaming.
    async fn replica_lag(&self) -> Result<Duration> {
        let row = sqlx::query(REPLICA_LAG)
            .fetch_one(&self.inner.pool)
            .await
            .map_err(|e| map_err(&self.inner.name, "", e))?;
        let get = |row: &PgRow| -> std::result::Result<_, sqlx::Error> {
            Ok((
                row.try_get::<bool, _>(0)?,
                row.try_get::<bool, _>(1)?,
                row.try_get::<bool, _>(2)?,
                row.try_get::<Option<f64>, _>(3)?,
                row.try_get::<Option<f64>, _>(4)?,
            ))
        };
        let (standby, receiving, streaming, since_commit, since_sync) =
            get(&row).map_err(|e| map_err(&self.inner.name, "", e))?;
        if !standby {
            return Err(Error::unsupported(
                &self.inner.name,
                "",
                "measuring replica lag: the server is not a hot standby (pg_is_in_recovery() is false); point `read_from` at a standby",
            ));
        }
        if !(receiving && streaming) {
            return Err(Error::Unavailable {
                store: self.inner.name.clone(),
                entity: String::new(),
                message: "the hot standby is not streaming from its primary, so its lag is unknown; check `pg_stat_wal_receiver` and the standby's `primary_conninfo`".into(),
                source: None,
            });
        }
        let secs = [since_commit, since_sync]
            .into_iter()
            .flatten()
            .fold(f64::INFINITY, f64::min);
        if !secs.is_finite() {
            // Nothing replayed since the standby started and no report
            // from the primary yet.
            return Err(Error::Unavailable {
                store: self.inner.name.clone(),
                entity: String::new(),
                message: "the hot standby has not replayed a commit or heard from its primary since it started, so its lag is unknown yet".into(),
                source: None,
            });
        }
        Ok(Duration::from_secs_f64(secs.max(0.0)))
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

    fn as_search(&self) -> Option<&dyn crate::store::search::SearchStore> {
        Some(self)
    }
}
