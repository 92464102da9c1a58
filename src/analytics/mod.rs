//! Analytical SQL across routed entities, on [Apache DataFusion](https://datafusion.apache.org)
//! (cargo feature `analytics`).
//!
//! Every entity bound to a Rust type ([`Router::repo`]) is a table named
//! after the entity, with a column per field (Arrow types from the
//! [`FieldDef`](crate::FieldDef)s, nullability kept) and one for the
//! version when the entity has one. Every `[timeseries.NAME]` is a table
//! too: `series`, `ts` (a UTC timestamp) and one Float64 per field, with
//! the time range and the series keys of the `WHERE` clause pushed into
//! the store's scan. A query reads each table through its
//! store in keyset pages, never a whole table at once, and pushes into the
//! store what the store can do: the projection, every `WHERE` predicate
//! its filter capabilities evaluate exactly (the rest DataFusion
//! evaluates), `ORDER BY` plain columns when it sorts, and `LIMIT`.
//! `EXPLAIN` shows an `EntityScan` per table with what was pushed.
//! See `docs/analytics.md` for the rules per store.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use futures::TryStreamExt;
//! #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)]
//! #[entity(name = "item", key = "id")]
//! struct Item { id: i64, price: f64 }
//! let router = polyrouter::Router::from_toml_str(
//!     "[stores.m]\nkind = \"memory\"\n[entities.item]\nstore = \"m\"\n").await.unwrap();
//! let items = router.repo::<Item>().await.unwrap();
//! items.put(&Item { id: 1, price: 2.5 }).await.unwrap();
//! items.put(&Item { id: 2, price: 7.0 }).await.unwrap();
//! let batches: Vec<_> = router.sql("SELECT id FROM item WHERE price > 3").await.unwrap()
//!     .try_collect().await.unwrap();
//! assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
//! # });
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::TryStreamExt;
use serde::de::DeserializeOwned;

use crate::{Error, Result, Router};

mod leaf;
mod provider;
mod pushdown;
mod scan;
mod schema;
mod search;
mod series;
#[cfg(test)]
mod tests;

pub use datafusion;

/// A stream of Arrow record batches: the answer of [`Router::sql`].
pub type SqlStream = SendableRecordBatchStream;

/// The error of a SQL statement: a store's own [`Error`] as it was, any
/// other (parse, plan, execution) as [`Error::InvalidInput`] naming the
/// statement's problem.
fn sql_error(e: DataFusionError) -> Error {
    match e.find_root() {
        DataFusionError::External(inner) => match inner.downcast_ref::<Error>() {
            Some(err) => err.clone_lossy(),
            None => Error::invalid_input("sql", "", inner),
        },
        other => Error::invalid_input("sql", "", format!("{other}")),
    }
}

/// The tables of one SQL session: rows pulled from each store, counted.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let router = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n").await.unwrap();
/// let session = router.sql_session().await.unwrap();
/// assert_eq!(session.rows_pulled("nope"), 0);
/// # });
/// ```
#[derive(Clone)]
pub struct SqlSession {
    ctx: SessionContext,
    pulled: BTreeMap<String, Arc<AtomicU64>>,
}

impl std::fmt::Debug for SqlSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlSession")
            .field("tables", &self.pulled.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl SqlSession {
    /// The DataFusion context, for registering more tables or functions.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let router = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n").await.unwrap();
    /// let session = router.sql_session().await.unwrap();
    /// assert!(session.context().table_exist("nope").is_ok());
    /// # });
    /// ```
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Runs one statement; its rows as a stream of record batches.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use futures::TryStreamExt;
    /// let router = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n").await.unwrap();
    /// let session = router.sql_session().await.unwrap();
    /// let b: Vec<_> = session.sql("SELECT 1 AS one").await.unwrap().try_collect().await.unwrap();
    /// assert_eq!(b[0].num_rows(), 1);
    /// # });
    /// ```
    pub async fn sql(&self, sql: &str) -> Result<SqlStream> {
        let df = self.ctx.sql(sql).await.map_err(sql_error)?;
        df.execute_stream().await.map_err(sql_error)
    }

    /// Runs one statement and deserializes every row (a JSON object of
    /// its columns) into `T`.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// #[derive(serde::Deserialize)]
    /// struct Row { one: i64 }
    /// let router = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n").await.unwrap();
    /// let rows: Vec<Row> = router.sql_session().await.unwrap().sql_rows("SELECT 1 AS one").await.unwrap();
    /// assert_eq!(rows[0].one, 1);
    /// # });
    /// ```
    pub async fn sql_rows<T: DeserializeOwned>(&self, sql: &str) -> Result<Vec<T>> {
        let batches: Vec<RecordBatch> = self
            .sql(sql)
            .await?
            .try_collect()
            .await
            .map_err(sql_error)?;
        rows(&batches)
    }

    /// Rows pulled from the store of `entity` (or points of the time
    /// series of that name) by this session's scans so far.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let router = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n").await.unwrap();
    /// assert_eq!(router.sql_session().await.unwrap().rows_pulled("x"), 0);
    /// # });
    /// ```
    pub fn rows_pulled(&self, entity: &str) -> u64 {
        self.pulled
            .get(entity)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// Record batches as JSON objects (one per row), deserialized into `T`.
fn rows<T: DeserializeOwned>(batches: &[RecordBatch]) -> Result<Vec<T>> {
    let json = batches_to_json(batches)?;
    json.into_iter()
        .map(|row| {
            serde_path_to_error::deserialize(row).map_err(|e| {
                Error::invalid_input(
                    "sql",
                    "",
                    format!(
                        "a row does not fit the Rust type {}: {e}",
                        std::any::type_name::<T>()
                    ),
                )
            })
        })
        .collect()
}

/// Record batches as JSON objects, one per row (nulls kept as `null`).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use futures::TryStreamExt;
/// let router = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n").await.unwrap();
/// let b: Vec<_> = router.sql("SELECT 1 AS one, NULL AS two").await.unwrap().try_collect().await.unwrap();
/// let rows = polyrouter::analytics::batches_to_json(&b).unwrap();
/// assert_eq!(rows[0], serde_json::json!({"one": 1, "two": null}));
/// # });
/// ```
pub fn batches_to_json(batches: &[RecordBatch]) -> Result<Vec<serde_json::Value>> {
    use datafusion::arrow::json::{WriterBuilder, writer::JsonArray};
    let mut buf = Vec::new();
    {
        let mut w = WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, JsonArray>(&mut buf);
        for b in batches {
            w.write(b)
                .map_err(|e| Error::invalid_input("sql", "", format!("rendering rows: {e}")))?;
        }
        w.finish()
            .map_err(|e| Error::invalid_input("sql", "", format!("rendering rows: {e}")))?;
    }
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&buf)
        .map_err(|e| Error::invalid_input("sql", "", format!("rendering rows: {e}")))
}

impl Router {
    /// A SQL session over every entity bound to a Rust type so far (see
    /// [`Router::repo`]), each a table named after the entity, and every
    /// `[timeseries.NAME]`, a table named `NAME`.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let router = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n").await.unwrap();
    /// let session = router.sql_session().await.unwrap();
    /// # let _ = session;
    /// # });
    /// ```
    pub async fn sql_session(&self) -> Result<SqlSession> {
        let config = SessionConfig::new().with_information_schema(true);
        let ctx = SessionContext::new_with_config(config);
        let mut pulled = BTreeMap::new();
        let mut tables = self.sql_tables();
        for route in self.routes() {
            let Some(cols) = &route.config.sql else {
                continue;
            };
            if tables
                .iter()
                .any(|(info, _, _)| info.name() == route.entity)
            {
                continue; // a Rust type describes it
            }
            let schema = cols.schema(&route.entity).map_err(|(path, m)| {
                self.config()
                    .error(&format!("entities.{}.sql{path}", route.entity), m)
            })?;
            let Some(store) = self.store(&route.store).cloned() else {
                continue;
            };
            let info = route.entity_info(schema);
            store
                .ensure_entity(&info)
                .await
                .map_err(|e| e.with_entity(&route.entity))?;
            tables.push((info, store, self.config().router.max_page_size as usize));
        }
        for (info, store, page) in tables {
            let name = info.name().to_string();
            let counter = Arc::new(AtomicU64::new(0));
            let table = provider::Table::new(info, store, page, counter.clone());
            ctx.register_table(&name, Arc::new(provider::EntityTable(Arc::new(table))))
                .map_err(sql_error)?;
            pulled.insert(name, counter);
        }
        let page = self.config().router.max_page_size as usize;
        for name in self.config().timeseries.keys() {
            if pulled.contains_key(name) {
                return Err(self.config().error(
                    &format!("timeseries.{name}"),
                    format!(
                        "the SQL table `{name}` would be both the entity `{name}` and this time series; rename one of them"
                    ),
                ));
            }
            let series = self.time_series(name)?;
            let counter = Arc::new(AtomicU64::new(0));
            let table = series::SeriesTable::new(series, page, counter.clone());
            ctx.register_table(name, Arc::new(table))
                .map_err(sql_error)?;
            pulled.insert(name.clone(), counter);
        }
        ctx.register_udtf(
            "search",
            Arc::new(search::SearchFn {
                router: self.clone(),
                page: self.config().router.page_size,
            }),
        );
        Ok(SqlSession { ctx, pulled })
    }

    /// Runs one SQL statement over the routed entities (see
    /// [`Router::sql_session`]); its rows as a stream of Arrow record batches.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use futures::TryStreamExt;
    /// let router = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n").await.unwrap();
    /// let b: Vec<_> = router.sql("SELECT 40 + 2 AS n").await.unwrap().try_collect().await.unwrap();
    /// assert_eq!(b[0].num_rows(), 1);
    /// # });
    /// ```
    pub async fn sql(&self, sql: &str) -> Result<SqlStream> {
        self.sql_session().await?.sql(sql).await
    }

    /// Runs one SQL statement and deserializes each row into `T` with serde
    /// (columns by name).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// #[derive(serde::Deserialize)]
    /// struct Row { n: i64 }
    /// let router = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n").await.unwrap();
    /// let rows: Vec<Row> = router.sql_rows("SELECT 42 AS n").await.unwrap();
    /// assert_eq!(rows[0].n, 42);
    /// # });
    /// ```
    pub async fn sql_rows<T: DeserializeOwned>(&self, sql: &str) -> Result<Vec<T>> {
        self.sql_session().await?.sql_rows(sql).await
    }
}
