//! `sqlserver`: SQL Server or Azure SQL via tiberius (TLS with rustls) and
//! a bb8 pool; a real typed table per entity.
//!
//! ```toml
//! [stores.main]
//! kind = "sqlserver"
//! url = "sqlserver://app:${SQL_PASSWORD}@myserver.database.windows.net:1433/shop"
//! encrypt = "required"
//! ```
#![doc = include_str!("docs.md")]

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use tiberius::{AuthMethod, Client, EncryptionLevel, Row};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

use crate::backends::sql::{
    self, Column, Message, Param, Select, TableSql, Tables, entity_config_error, now_micros,
    outbox::SqlOutbox,
    write::{self, Exec, Target},
};
use crate::config::{Redactor, StoreSpec};
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
#[cfg(test)]
mod tests;
mod tsql;

use codec::{column_value, int_of};
pub use config::{Address, Encrypt, SqlServerConfig};
pub use dialect::{BINARY_COLLATION, GET_MANY_CHUNK, MAX_KEY_UNITS, SqlServerDialect};

pub(crate) fn open(spec: StoreSpec) -> BoxFuture<'static, Result<Arc<dyn Store>>> {
    Box::pin(async move {
        let cfg: SqlServerConfig = spec.parse()?;
        let located = |key: &str, msg: String| spec.error(&[key], msg);
        let store = SqlServerStore::connect_inner(&spec.name, cfg, &located).await?;
        Ok(Arc::new(store) as Arc<dyn Store>)
    })
}

/// One pooled connection; `broken` after an I/O failure (the pool drops it).
pub(crate) struct Conn {
    client: Client<Compat<TcpStream>>,
    broken: bool,
}

/// Opens connections for the pool.
pub(crate) struct Manager {
    config: tiberius::Config,
    timeout: Duration,
}

/// Opens one connection: TCP, TLS, login (following an Azure SQL
/// gateway's redirect), then `SET XACT_ABORT ON` so any error inside a
/// transaction rolls all of it back.
async fn open_conn(config: tiberius::Config) -> tiberius::Result<Conn> {
    let tcp = TcpStream::connect(config.get_addr()).await?;
    tcp.set_nodelay(true)?;
    let mut client = match Client::connect(config.clone(), tcp.compat_write()).await {
        Ok(c) => c,
        Err(tiberius::error::Error::Routing { host, port }) => {
            let mut config = config;
            config.host(&host);
            config.port(port);
            let tcp = TcpStream::connect(config.get_addr()).await?;
            tcp.set_nodelay(true)?;
            Client::connect(config, tcp.compat_write()).await?
        }
        Err(e) => return Err(e),
    };
    client
        .simple_query("SET XACT_ABORT ON")
        .await?
        .into_results()
        .await?;
    Ok(Conn {
        client,
        broken: false,
    })
}

impl bb8::ManageConnection for Manager {
    type Connection = Conn;
    type Error = tiberius::error::Error;

    async fn connect(&self) -> std::result::Result<Conn, Self::Error> {
        match tokio::time::timeout(self.timeout, open_conn(self.config.clone())).await {
            Ok(r) => r,
            Err(_) => Err(tiberius::error::Error::Io {
                kind: std::io::ErrorKind::TimedOut,
                message: format!("connecting took longer than {:?}", self.timeout),
            }),
        }
    }

    async fn is_valid(&self, conn: &mut Conn) -> std::result::Result<(), Self::Error> {
        conn.client
            .simple_query("SELECT 1")
            .await?
            .into_row()
            .await?;
        Ok(())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken
    }
}

type Pool = bb8::Pool<Manager>;

/// A store backed by a SQL Server or Azure SQL database, with a typed
/// table per entity.
///
/// Usually built by the router from `kind = "sqlserver"`; it can also be
/// opened directly with [`SqlServerStore::connect`]. See the [module
/// documentation](self) for the table layout, type mapping and what is
/// tested where.
pub struct SqlServerStore {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    location: String,
    /// The URL's secrets, removed from every message.
    secrets: Redactor,
    /// The schema tables live in, when configured.
    schema: Option<String>,
    caps: Capabilities,
    pool: Pool,
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

impl fmt::Debug for SqlServerStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlServerStore")
            .field("name", &self.inner.name)
            .field("location", &self.inner.location)
            .finish_non_exhaustive()
    }
}

/// SQL Server error numbers after which the server rolled the statement's
/// transaction back: deadlock victim, lock request timeout.
const ABORTED: &[u32] = &[1205, 1222];

/// Azure SQL error numbers that refuse work for now, before doing any:
/// resource limits, service busy, too many requests.
const THROTTLED: &[u32] = &[10928, 10929, 40501, 49918, 49919, 49920];

/// Azure SQL's other transient errors (database unavailable, failover,
/// reconfiguration, login not yet possible): the connection may have been
/// lost with a write in flight.
const TRANSIENT: &[u32] = &[4060, 4221, 40143, 40197, 40613];

/// How long Azure SQL asks to wait after 40501 ("service busy").
const BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// SQL Server error numbers that mean the value cannot be stored:
/// truncation, arithmetic overflow, conversion failure.
const BAD_VALUE: &[u32] = &[220, 232, 242, 8115, 8152, 2628, 245, 8114];

/// Maps a driver error (the classification table is in docs/resilience.md):
/// a lost server or connection, or a transient server error →
/// [`Error::Unavailable`] (a write's outcome is unknown); a deadlock victim
/// or lock timeout ([`ABORTED`]) → [`Error::Rejected`] `aborted`; Azure SQL
/// throttling ([`THROTTLED`]) → [`Error::Rejected`] `throttled` (40501
/// asks for 10 s); a value the server refuses → [`Error::InvalidInput`];
/// anything else → [`Error::Backend`]. The password never appears.
fn map_err(store: &str, entity: &str, secrets: &Redactor, e: tiberius::error::Error) -> Error {
    use tiberius::error::Error as T;
    let text = secrets.redact(&e.to_string());
    let unavailable = |message: String| Error::Unavailable {
        store: store.into(),
        entity: entity.into(),
        message,
        source: Some(Box::new(Message(text.clone()))),
    };
    match &e {
        T::Io { .. } => unavailable(format!("lost the connection to the server: {text}")),
        T::Tls(_) => unavailable(format!("TLS error talking to the server: {text}")),
        T::Protocol(_) => unavailable(format!("protocol error: {text}")),
        T::Routing { host, port } => unavailable(format!(
            "the server redirected to {host}:{port} in the middle of a session; retry"
        )),
        T::Server(t) => map_server_error(store, entity, t.code(), text),
        _ => Error::backend(store, entity, Message(text)),
    }
}

/// [`map_err`] for an error the server sent, by its number; `text` is the
/// message with the password scrubbed.
fn map_server_error(store: &str, entity: &str, code: u32, text: String) -> Error {
    let rejected = |reason, message: String, retry_after| Error::Rejected {
        store: store.into(),
        entity: entity.into(),
        reason,
        message,
        retry_after,
        source: Some(Box::new(Message(text.clone()))),
    };
    if ABORTED.contains(&code) {
        rejected(
            crate::Rejection::Aborted,
            format!(
                "the server rolled the transaction back (error {code}); nothing was written — retry: {text}"
            ),
            None,
        )
    } else if THROTTLED.contains(&code) {
        rejected(
            crate::Rejection::Throttled,
            format!(
                "the server is busy or over a resource limit (error {code}); retry later: {text}"
            ),
            (code == 40501).then_some(BUSY_WAIT),
        )
    } else if TRANSIENT.contains(&code) {
        Error::Unavailable {
            store: store.into(),
            entity: entity.into(),
            message: format!(
                "the server refused or ended the operation (error {code}); retry: {text}"
            ),
            source: Some(Box::new(Message(text.clone()))),
        }
    } else if BAD_VALUE.contains(&code) {
        Error::invalid_input(
            store,
            entity,
            format!("SQL Server cannot store a value (error {code}): {text}"),
        )
    } else {
        Error::backend(store, entity, Message(text))
    }
}

/// A pool error: a timed-out wait, or a failed connect.
fn pool_err(
    store: &str,
    entity: &str,
    secrets: &Redactor,
    e: bb8::RunError<tiberius::error::Error>,
) -> Error {
    match e {
        bb8::RunError::User(e) => map_err(store, entity, secrets, e),
        bb8::RunError::TimedOut => Error::Unavailable {
            store: store.into(),
            entity: entity.into(),
            message: "timed out waiting for a connection; the server is slow or down, or every connection is busy — retry, or raise `max_connections` or `acquire_timeout`".into(),
            source: None,
        },
    }
}

/// The tiberius configuration for an address and the TLS options.
fn tiberius_config(name: &str, address: &Address, cfg: &SqlServerConfig) -> tiberius::Config {
    let mut c = tiberius::Config::new();
    c.host(&address.host);
    c.port(address.port);
    if let Some(db) = &address.database {
        c.database(db);
    }
    c.application_name(format!("polyrouter:{name}"));
    c.authentication(AuthMethod::sql_server(&address.user, &address.password));
    c.encryption(match cfg.encrypt {
        Encrypt::Off => EncryptionLevel::Off,
        Encrypt::On => EncryptionLevel::On,
        Encrypt::Required => EncryptionLevel::Required,
    });
    if cfg.trust_server_certificate {
        c.trust_cert();
    } else if let Some(ca) = &cfg.ca_file {
        c.trust_cert_ca(ca);
    }
    c
}

impl SqlServerStore {
    /// Connects to the server the configuration names (and creates the
    /// `schema`, if set and missing).
    ///
    /// A bad option is an [`Error::Config`]; a server that cannot be
    /// reached is an [`Error::Unavailable`] naming the store and the
    /// address (password redacted).
    ///
    /// ```no_run
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use polyrouter::backends::sqlserver::{SqlServerConfig, SqlServerStore};
    /// let cfg = SqlServerConfig::new("sqlserver://sa:secret@127.0.0.1:1433/app");
    /// let store = SqlServerStore::connect("main", cfg).await.unwrap();
    /// # });
    /// ```
    pub async fn connect(name: &str, config: SqlServerConfig) -> Result<SqlServerStore> {
        let located =
            |key: &str, msg: String| Error::config("<code>", &format!("stores.{name}.{key}"), msg);
        Self::connect_inner(name, config, &located).await
    }

    async fn connect_inner(
        name: &str,
        config: SqlServerConfig,
        config_error: &(dyn Fn(&str, String) -> Error + Send + Sync),
    ) -> Result<SqlServerStore> {
        let address = config.validate().map_err(|(k, m)| config_error(k, m))?;
        if let Some(ca) = &config.ca_file {
            if !std::path::Path::new(ca).is_file() {
                return Err(config_error(
                    "ca_file",
                    format!(
                        "{ca:?} is not a readable file; give the path of the CA certificate (PEM or DER)"
                    ),
                ));
            }
        }
        let location = config.location();
        let secrets = Redactor::new()
            .with_url(&config.url)
            .with_secret(&address.password);
        let manager = Manager {
            config: tiberius_config(name, &address, &config),
            timeout: config.connect_timeout.0,
        };
        // One connection first, so a server that cannot be reached fails
        // now with its real cause (the pool would only time out).
        let mut first = bb8::ManageConnection::connect(&manager)
            .await
            .map_err(|e| Error::Unavailable {
                store: name.into(),
                entity: String::new(),
                message: format!(
                    "cannot connect to the SQL Server at {} ({location}): {}; check the server runs, the URL and the TLS options",
                    address.host_port(),
                    secrets.redact(&e.to_string())
                ),
                source: Some(Box::new(Message(secrets.redact(&e.to_string())))),
            })?;
        let dialect = SqlServerDialect::new(config.schema.clone());
        if let Some(schema) = &config.schema {
            let s = tsql::create_schema(&dialect, schema);
            if let Err(e) = run(&mut first, &s.sql, s.params).await {
                // Another connection creating it at the same time is fine.
                if server_code(&e) != Some(2714) {
                    return Err(map_err(name, "", &secrets, e));
                }
            }
        }
        drop(first);
        let mut builder = bb8::Pool::builder()
            .max_size(config.max_connections)
            .connection_timeout(config.acquire_timeout.0)
            .idle_timeout(Some(Duration::from_secs(300)))
            .test_on_check_out(true);
        if config.min_connections > 0 {
            builder = builder.min_idle(Some(config.min_connections));
        }
        let pool = builder.build_unchecked(manager);
        let inner = Arc::new(Inner {
            name: name.to_string(),
            location,
            secrets,
            schema: config.schema.clone(),
            caps: crate::backends::kind_caps::sqlserver(),
            pool,
            tables: Tables::new(Arc::new(dialect)),
            purge_task: Mutex::new(None),
        });
        if !config.purge_interval.0.is_zero() {
            let task = sql::spawn_purge(Arc::downgrade(&inner), config.purge_interval.0, |i| {
                Box::pin(async move { i.purge_expired().await })
            });
            *inner.purge_task.lock() = Some(task);
        }
        Ok(SqlServerStore { inner })
    }

    /// Deletes expired rows from every table prepared with
    /// [`Store::ensure_entity`] now, and returns how many were deleted. The
    /// background task does this every `purge_interval`; expired rows are
    /// invisible either way.
    pub async fn purge_expired(&self) -> Result<u64> {
        self.inner.purge_expired().await
    }

    /// Drops every table in the configured `schema`, then the schema
    /// itself: clean-up for test runs that use a schema of their own.
    /// Refuses (`InvalidInput`) when no `schema` is configured, so it never
    /// touches the login's default schema.
    ///
    /// ```no_run
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use polyrouter::backends::sqlserver::{SqlServerConfig, SqlServerStore};
    /// let mut cfg = SqlServerConfig::new("sqlserver://sa:secret@127.0.0.1:1433/app");
    /// cfg.schema = Some("pr_test_1".into());
    /// SqlServerStore::connect("main", cfg).await.unwrap().drop_schema().await.unwrap();
    /// # });
    /// ```
    pub async fn drop_schema(&self) -> Result<()> {
        let Some(schema) = self.inner.schema.clone() else {
            return Err(Error::invalid_input(
                &self.inner.name,
                "",
                "drop_schema needs the store's `schema` option; without it the tables are in the login's default schema, which polyrouter never drops",
            ));
        };
        let mut conn = self.conn("").await?;
        self.inner
            .exec(&mut conn, "")
            .rows(tsql::DROP_SCHEMA, vec![Param::Text(schema.into())])
            .await?;
        Ok(())
    }

    fn table_sql(&self, entity: &EntityInfo) -> Result<Arc<TableSql>> {
        self.inner.tables.get(&self.inner.name, entity)
    }

    fn target<'a>(&'a self, entity: &'a EntityInfo) -> Target<'a> {
        Target::new(&self.inner.name, entity)
    }

    async fn conn(&self, entity: &str) -> Result<bb8::PooledConnection<'_, Manager>> {
        self.inner
            .pool
            .get()
            .await
            .map_err(|e| pool_err(&self.inner.name, entity, &self.inner.secrets, e))
    }

    fn decode(&self, entity: &EntityInfo, t: &TableSql, row: &Row) -> Result<Record> {
        decode_row(t, row).map_err(|m| {
            Error::backend(
                &self.inner.name,
                entity.name(),
                Message(format!("table `{}`: {m}", t.table)),
            )
        })
    }

    /// Runs selects on one connection; every row.
    async fn select(&self, entity: &EntityInfo, selects: Vec<Select<'_>>) -> Result<Vec<Row>> {
        let mut conn = self.conn(entity.name()).await?;
        let mut exec = self.inner.exec(&mut conn, entity.name());
        let mut rows = Vec::new();
        for s in selects {
            rows.extend(exec.rows(&s.sql, s.params).await?);
        }
        Ok(rows)
    }
}

#[cfg(test)]
impl SqlServerStore {
    /// Runs any statement (live tests' set-up and clean-up).
    pub(crate) async fn raw(&self, sql: &str, params: Vec<Param<'_>>) -> Result<Vec<Row>> {
        let mut conn = self.conn("").await?;
        self.inner.exec(&mut conn, "").rows(sql, params).await
    }
}

/// A row selected with `select_list` as a record.
fn decode_row(t: &TableSql, row: &Row) -> std::result::Result<Record, String> {
    sql::decode_record(
        t,
        |i, col| {
            row.get_column_data(i)
                .map_err(|e| e.to_string())
                .and_then(|d| column_value(d, col))
        },
        |i| {
            row.get_column_data(i)
                .ok()
                .and_then(int_of)
                .ok_or_else(|| "not an integer".to_string())
        },
    )
}

/// The server's error number, if the server sent one.
fn server_code(e: &tiberius::error::Error) -> Option<u32> {
    match e {
        tiberius::error::Error::Server(t) => Some(t.code()),
        _ => None,
    }
}

/// Runs one statement on a connection; every row of its first result.
async fn run(conn: &mut Conn, sql: &str, params: Vec<Param<'_>>) -> tiberius::Result<Vec<Row>> {
    let q = codec::query(sql, params).map_err(|m| tiberius::error::Error::Conversion(m.into()))?;
    let res = async { q.query(&mut conn.client).await?.into_first_result().await }.await;
    if matches!(res, Err(tiberius::error::Error::Io { .. })) {
        conn.broken = true;
    }
    res
}

/// Runs statements on one pooled connection, errors mapped for a store
/// and entity.
struct MsExec<'c> {
    conn: &'c mut Conn,
    store: &'c str,
    entity: &'c str,
    secrets: &'c Redactor,
}

impl MsExec<'_> {
    fn err(&self, e: tiberius::error::Error) -> Error {
        map_err(self.store, self.entity, self.secrets, e)
    }

    async fn rows(&mut self, sql: &str, params: Vec<Param<'_>>) -> Result<Vec<Row>> {
        run(self.conn, sql, params).await.map_err(|e| self.err(e))
    }

    async fn first_int(&mut self, sql: &str, params: Vec<Param<'_>>) -> Result<Option<i64>> {
        let rows = self.rows(sql, params).await?;
        Ok(rows
            .first()
            .and_then(|r| r.get_column_data(0).ok())
            .map(|d| int_of(d).unwrap_or(0)))
    }

    async fn transaction(&mut self, sql: &str) -> Result<()> {
        let res = async {
            self.conn
                .client
                .simple_query(sql)
                .await?
                .into_results()
                .await
        }
        .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) => {
                if matches!(e, tiberius::error::Error::Io { .. }) {
                    self.conn.broken = true;
                }
                Err(self.err(e))
            }
        }
    }

    /// Rolls back; a connection whose rollback fails is not reused.
    async fn rollback(&mut self) {
        if self
            .transaction("IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION")
            .await
            .is_err()
        {
            self.conn.broken = true;
        }
    }
}

#[async_trait]
impl Exec for MsExec<'_> {
    async fn fetch_int(&mut self, sql: &str, params: Vec<Param<'_>>) -> Result<Option<i64>> {
        self.first_int(sql, params).await
    }

    async fn fetch_bool(&mut self, sql: &str, params: Vec<Param<'_>>) -> Result<Option<bool>> {
        Ok(self.first_int(sql, params).await?.map(|v| v != 0))
    }

    async fn execute(&mut self, sql: &str, params: Vec<Param<'_>>) -> Result<u64> {
        let q = codec::query(sql, params)
            .map_err(|m| Error::backend(self.store, self.entity, Message(m)))?;
        let res = q.execute(&mut self.conn.client).await;
        match res {
            Ok(r) => Ok(r.total()),
            Err(e) => {
                if matches!(e, tiberius::error::Error::Io { .. }) {
                    self.conn.broken = true;
                }
                Err(self.err(e))
            }
        }
    }

    async fn fetch_int_text(
        &mut self,
        sql: &str,
        params: Vec<Param<'_>>,
    ) -> Result<Vec<(i64, String)>> {
        let rows = self.rows(sql, params).await?;
        rows.iter()
            .map(|r| {
                let seq = r.get_column_data(0).ok().and_then(int_of);
                match (seq, text_cell(r, 1)) {
                    (Some(seq), Some(text)) => Ok((seq, text)),
                    _ => Err(Error::backend(
                        self.store,
                        self.entity,
                        Message("an outbox row does not read as (seq, event)".into()),
                    )),
                }
            })
            .collect()
    }

    async fn fetch_key_ints(
        &mut self,
        sql: &str,
        params: Vec<Param<'_>>,
        key: &Column,
    ) -> Result<Vec<(Key, i64)>> {
        let rows = self.rows(sql, params).await?;
        rows.iter()
            .map(|r| {
                let k = r
                    .get_column_data(0)
                    .ok()
                    .and_then(|d| column_value(d, key).ok())
                    .and_then(|v| Key::from_value(&v));
                let n = r.get_column_data(1).ok().and_then(int_of);
                match (k, n) {
                    (Some(k), Some(n)) => Ok((k, n)),
                    _ => Err(Error::backend(
                        self.store,
                        self.entity,
                        Message("a row does not read as (key, integer)".into()),
                    )),
                }
            })
            .collect()
    }
}

impl Inner {
    fn exec<'c>(&'c self, conn: &'c mut Conn, entity: &'c str) -> MsExec<'c> {
        MsExec {
            conn,
            store: &self.name,
            entity,
            secrets: &self.secrets,
        }
    }

    async fn purge_expired(&self) -> Result<u64> {
        let tables = self.tables.ensured();
        if tables.is_empty() {
            return Ok(0);
        }
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| pool_err(&self.name, "", &self.secrets, e))?;
        let mut exec = self.exec(&mut conn, "");
        sql::purge(&mut exec, &tables).await
    }
}

/// Reads an optional string cell.
fn text_cell(row: &Row, i: usize) -> Option<String> {
    row.try_get::<&str, _>(i).ok().flatten().map(str::to_string)
}

impl SqlServerStore {
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
        // Every op is checked and encoded before the database is touched.
        let bulk = tsql::bulk_puts(ops);
        let merges = if bulk {
            tsql::merge_statements(&t, ops, now).map_err(|m| target.invalid(m))?
        } else {
            Vec::new()
        };
        let encoded = if bulk {
            Vec::new()
        } else {
            write::locked_writes(target, &t, ops, now)?
        };
        let mut conn = self.conn(entity.name()).await?;
        let mut exec = self.inner.exec(&mut conn, entity.name());
        // Always all or nothing, and the row locks need a transaction.
        exec.transaction("BEGIN TRANSACTION").await?;
        let res = if bulk {
            match self.run_merges(&mut exec, &t, ops, merges).await {
                Ok(outcomes) => write::record_puts(&mut exec, target, &t, ops, &outcomes)
                    .await
                    .map(|()| outcomes),
                Err(e) => Err(e),
            }
        } else {
            write::apply_all_locked(&mut exec, target, &t, ops, encoded, now).await
        };
        match res {
            Ok(outcomes) => {
                exec.transaction("COMMIT TRANSACTION").await?;
                Ok(outcomes)
            }
            Err(e) => {
                exec.rollback().await;
                Err(e)
            }
        }
    }
}

#[async_trait]
impl SqlOutbox for SqlServerStore {
    type Conn<'a> = bb8::PooledConnection<'a, Manager>;

    fn outbox_table(&self, entity: &EntityInfo) -> Result<Arc<TableSql>> {
        self.table_sql(entity)
    }

    async fn outbox_conn<'a>(&'a self, entity: &'a EntityInfo) -> Result<Self::Conn<'a>> {
        self.conn(entity.name()).await
    }

    fn outbox_exec<'c>(
        &'c self,
        conn: &'c mut Self::Conn<'_>,
        entity: &'c EntityInfo,
    ) -> Box<dyn Exec + 'c> {
        Box::new(self.inner.exec(conn, entity.name()))
    }
}

#[async_trait]
impl Store for SqlServerStore {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn kind(&self) -> &'static str {
        "sqlserver"
    }

    fn capabilities(&self) -> &Capabilities {
        &self.inner.caps
    }

    fn location(&self) -> String {
        self.inner.location.clone()
    }

    async fn drop_entity(&self, entity: &EntityInfo) -> Result<()> {
        let t = self.table_sql(entity)?;
        let mut conn = self.conn(entity.name()).await?;
        let exec = self.inner.exec(&mut conn, entity.name());
        for drop in [&t.drop_table, &t.outbox.drop] {
            run(exec.conn, drop, Vec::new())
                .await
                .map_err(|e| exec.err(e))?;
        }
        self.inner.tables.forget(entity);
        Ok(())
    }

    fn namespace(&self) -> crate::store::namespace::Namespace {
        crate::store::namespace::Namespace::own(self.inner.tables.dialect().table_names())
    }

    async fn ensure_entity(&self, entity: &EntityInfo) -> Result<()> {
        let t = self.table_sql(entity)?;
        let mut conn = self.conn(entity.name()).await?;
        let mut exec = self.inner.exec(&mut conn, entity.name());
        let create = tsql::create_table(&t);
        if let Err(e) = run(exec.conn, &create.sql, create.params).await {
            // Two stores creating the same table at once: the table is
            // there either way.
            if server_code(&e) != Some(2714) {
                return Err(exec.err(e));
            }
        }
        let schema = self.inner.schema.clone();
        let cols = tsql::columns(schema.as_deref(), &t.table);
        let rows = exec.rows(&cols.sql, cols.params).await?;
        let catalog: Vec<tsql::CatalogColumn> = rows
            .iter()
            .map(|r| tsql::CatalogColumn {
                name: text_cell(r, 0).unwrap_or_default(),
                data_type: text_cell(r, 1).unwrap_or_default(),
                max_length: r.get_column_data(2).ok().and_then(int_of),
                nullable: r.get_column_data(3).ok().and_then(int_of) == Some(1),
                default: text_cell(r, 4),
                collation: text_cell(r, 5),
            })
            .collect();
        let pk = tsql::primary_key(schema.as_deref(), &t.table);
        let pk: Vec<(String, i64)> = exec
            .rows(&pk.sql, pk.params)
            .await?
            .iter()
            .map(|r| {
                (
                    text_cell(r, 0).unwrap_or_default(),
                    r.get_column_data(1).ok().and_then(int_of).unwrap_or(1),
                )
            })
            .collect();
        let info = tsql::column_infos(&catalog, &pk);
        sql::check_table(&self.inner.name, &t, &info)
            .map_err(|m| entity_config_error(entity, m))?;
        if let Some(create_index) = &t.create_index {
            if let Err(e) = run(exec.conn, create_index, Vec::new()).await {
                // 1913: another store created it meanwhile.
                if server_code(&e) != Some(1913) {
                    return Err(exec.err(e));
                }
            }
        }
        if entity.outbox.is_some() {
            t.outbox
                .check(&*t.dialect)
                .map_err(|m| entity_config_error(entity, m))?;
            let create = tsql::create_outbox(&t);
            if let Err(e) = run(exec.conn, &create.sql, create.params).await {
                if server_code(&e) != Some(2714) {
                    return Err(exec.err(e));
                }
            }
        }
        self.inner.tables.mark_ensured(entity, t);
        Ok(())
    }

    async fn get(&self, entity: &EntityInfo, key: &Key) -> Result<Option<Record>> {
        let t = self.table_sql(entity)?;
        if key.kind() == t.schema.key_kind && !t.storable(key) {
            return Ok(None); // no stored key can equal it
        }
        let key = t.key(key).map_err(|m| self.target(entity).invalid(m))?;
        let rows = self
            .select(
                entity,
                vec![Select {
                    sql: t.get.clone(),
                    params: vec![key, Param::Int(now_micros())],
                }],
            )
            .await?;
        rows.first().map(|r| self.decode(entity, &t, r)).transpose()
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
        if !selects.is_empty() {
            for row in &self.select(entity, selects).await? {
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
        let target = self.target(entity);
        let mut conn = self.conn(entity.name()).await?;
        let mut exec = self.inner.exec(&mut conn, entity.name());
        exec.transaction("BEGIN TRANSACTION").await?;
        match sql::apply_versioned(&mut exec, target, &t, &changes, now_micros()).await {
            Ok(out) => {
                exec.transaction("COMMIT TRANSACTION").await?;
                Ok(out)
            }
            Err(e) => {
                exec.rollback().await;
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
        if query.limit == Some(0) {
            // `FETCH NEXT 0 ROWS` is an error in T-SQL; no rows is the answer.
            return Ok(Vec::new());
        }
        let s = t.query(query, now_micros());
        crate::backends::sql::check_params(&self.inner.name, entity, &t, &s)?;
        let rows = self.select(entity, vec![s]).await?;
        rows.iter().map(|r| self.decode(entity, &t, r)).collect()
    }

    async fn count(&self, entity: &EntityInfo, filter: Option<&Filter>) -> Result<u64> {
        let t = self.table_sql(entity)?;
        let s = t.count(filter, now_micros());
        crate::backends::sql::check_params(&self.inner.name, entity, &t, &s)?;
        let rows = self.select(entity, vec![s]).await?;
        let n = rows
            .first()
            .and_then(|r| r.get_column_data(0).ok())
            .and_then(int_of)
            .unwrap_or(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn ping(&self) -> Result<()> {
        let mut conn = self.conn("").await?;
        let mut exec = self.inner.exec(&mut conn, "");
        exec.rows("SELECT 1", Vec::new()).await.map(|_| ())
    }
}

impl SqlServerStore {
    /// Runs the `MERGE`s of a bulk put; each key's new version.
    async fn run_merges(
        &self,
        exec: &mut MsExec<'_>,
        t: &TableSql,
        ops: &[WriteOp],
        merges: Vec<Select<'_>>,
    ) -> Result<Vec<WriteOutcome>> {
        let key_col = t.key_column();
        let mut versions: HashMap<Key, u64> = HashMap::with_capacity(ops.len());
        for m in merges {
            for row in exec.rows(&m.sql, m.params).await? {
                let key = row
                    .get_column_data(0)
                    .map_err(|e| e.to_string())
                    .and_then(|d| column_value(d, key_col))
                    .ok()
                    .and_then(|v| Key::from_value(&v));
                let version = row.get_column_data(1).ok().and_then(int_of);
                if let (Some(k), Some(v)) = (key, version) {
                    versions.insert(k, v as u64);
                }
            }
        }
        ops.iter()
            .map(|op| {
                versions
                    .get(op.key())
                    .map(|v| WriteOutcome::Written { version: *v })
                    .ok_or_else(|| {
                        Error::backend(
                            &self.inner.name,
                            t.schema.name,
                            Message(format!(
                                "MERGE into table `{}` returned no version for key {}",
                                t.table,
                                op.key()
                            )),
                        )
                    })
            })
            .collect()
    }
}
