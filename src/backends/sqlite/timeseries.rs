//! Time series on SQLite: one `WITHOUT ROWID` table per series table,
//! clustered by its primary key `(series, ts)`; `ts` is unix microseconds.
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS "telemetry" (
//!     "series" TEXT NOT NULL,
//!     "ts" INTEGER NOT NULL,          -- unix microseconds
//!     "temperature" REAL,             -- one nullable REAL per field
//!     PRIMARY KEY ("series", "ts")
//! ) WITHOUT ROWID;
//! CREATE INDEX IF NOT EXISTS "telemetry_ts" ON "telemetry" ("ts");  -- retention
//! ```
//!
//! A batch is multi-row `INSERT … ON CONFLICT DO UPDATE` statements in one
//! `BEGIN IMMEDIATE` transaction; the downsample is one `GROUP BY` over the
//! bucket expression, with each field's last value found through the
//! primary key. Values are always bound; identifiers are checked names,
//! double-quoted.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row as _;
use sqlx::sqlite::SqliteRow;

use super::{SqliteStore, map_err};
use crate::store::timeseries::{
    Bucket, FieldStats, Point, Row, SeriesInfo, SeriesScan, TimeSeriesStore, check_name,
    check_series_key, check_width, encode_batch, from_micros, micros_range,
};
use crate::{Error, Result};

/// The most bound parameters in one statement (SQLite's limit is 32 766).
const MAX_PARAMS: usize = 30_000;
/// The most rows in one multi-row insert.
const MAX_ROWS: usize = 1_000;
/// The most keys in one `latest` statement.
const LATEST_CHUNK: usize = 250;
/// Rows deleted per retention statement (each holds the write lock briefly).
const DELETE_CHUNK: u64 = 10_000;

fn q(ident: &str) -> String {
    format!("\"{ident}\"")
}

/// The statements of one series table.
struct SeriesSql {
    table: String,
    /// `"f1", "f2"`.
    cols: String,
}

impl SeriesSql {
    fn new(info: &SeriesInfo) -> std::result::Result<Self, String> {
        check_name(&info.table)?;
        for f in &info.fields {
            check_name(f)?;
        }
        let cols = info
            .fields
            .iter()
            .map(|f| q(f))
            .collect::<Vec<_>>()
            .join(", ");
        Ok(SeriesSql {
            table: q(&info.table),
            cols,
        })
    }

    fn select_cols(&self, alias: &str) -> String {
        let mut s = format!("{alias}.\"series\", {alias}.\"ts\"");
        for c in self.cols.split(", ").filter(|c| !c.is_empty()) {
            let _ = write!(s, ", {alias}.{c}");
        }
        s
    }

    fn insert(&self, info: &SeriesInfo, rows: usize) -> String {
        let n = info.fields.len();
        let one = format!("({})", vec!["?"; n + 2].join(", "));
        let mut sql = format!(
            "INSERT INTO {} (\"series\", \"ts\", {}) VALUES {}",
            self.table,
            self.cols,
            vec![one.as_str(); rows].join(", ")
        );
        sql.push_str(" ON CONFLICT (\"series\", \"ts\") DO UPDATE SET ");
        let sets: Vec<String> = info
            .fields
            .iter()
            .map(|f| format!("{c} = excluded.{c}", c = q(f)))
            .collect();
        sql.push_str(&sets.join(", "));
        sql
    }

    fn downsample(&self, info: &SeriesInfo) -> String {
        let mut inner =
            String::from("SELECT \"ts\" - (((\"ts\" % ?) + ?) % ?) AS b, COUNT(*) AS n");
        let mut outer = String::from("SELECT g.b, g.n");
        let mut joins = String::new();
        for (i, f) in info.fields.iter().enumerate() {
            let c = q(f);
            let _ = write!(
                inner,
                ", COUNT({c}) AS c{i}, MIN({c}) AS mn{i}, MAX({c}) AS mx{i}, SUM({c}) AS s{i}, MAX(CASE WHEN {c} IS NOT NULL THEN \"ts\" END) AS lt{i}"
            );
            let _ = write!(outer, ", g.c{i}, g.mn{i}, g.mx{i}, g.s{i}, l{i}.{c}");
            let _ = write!(
                joins,
                " LEFT JOIN {t} AS l{i} ON l{i}.\"series\" = ? AND l{i}.\"ts\" = g.lt{i}",
                t = self.table
            );
        }
        format!(
            "{outer} FROM ({inner} FROM {t} WHERE \"series\" = ? AND \"ts\" >= ? AND \"ts\" < ? GROUP BY b) AS g{joins} ORDER BY g.b",
            t = self.table
        )
    }
}

fn decode_row(info: &SeriesInfo, r: &SqliteRow) -> std::result::Result<Row, sqlx::Error> {
    let mut values = Vec::with_capacity(info.fields.len());
    for i in 0..info.fields.len() {
        values.push(r.try_get::<Option<f64>, _>(i + 2)?);
    }
    Ok(Row {
        series: r.try_get(0)?,
        ts: r.try_get(1)?,
        values,
    })
}

fn series_config_error(info: &SeriesInfo, message: String) -> Error {
    Error::Config {
        file: String::new(),
        line: 0,
        column: 0,
        path: format!("timeseries.{}", info.name),
        message,
    }
}

impl SqliteStore {
    fn ts_err(&self, info: &SeriesInfo, e: sqlx::Error) -> Error {
        map_err(&self.inner.name, &info.name, e)
    }

    fn series_sql(&self, info: &SeriesInfo) -> Result<SeriesSql> {
        SeriesSql::new(info).map_err(|m| {
            Error::invalid_input(&self.inner.name, &info.name, format!("series table: {m}"))
        })
    }
}

#[async_trait]
impl TimeSeriesStore for SqliteStore {
    async fn ensure_series(&self, series: &SeriesInfo) -> Result<()> {
        let s = self.series_sql(series)?;
        let mut create = format!(
            "CREATE TABLE IF NOT EXISTS {} (\"series\" TEXT NOT NULL, \"ts\" INTEGER NOT NULL",
            s.table
        );
        for f in &series.fields {
            let _ = write!(create, ", {} REAL", q(f));
        }
        create.push_str(", PRIMARY KEY (\"series\", \"ts\")) WITHOUT ROWID");
        let index = format!(
            "CREATE INDEX IF NOT EXISTS {} ON {} (\"ts\")",
            q(&format!("{}_ts", series.table)),
            s.table
        );
        let mut conn = self
            .inner
            .pool
            .acquire()
            .await
            .map_err(|e| self.ts_err(series, e))?;
        sqlx::query(&create)
            .execute(&mut *conn)
            .await
            .map_err(|e| self.ts_err(series, e))?;
        let cols: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?)")
            .bind(&series.table)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| self.ts_err(series, e))?;
        for f in ["series", "ts"]
            .iter()
            .copied()
            .chain(series.fields.iter().map(String::as_str))
        {
            if !cols.iter().any(|c| c == f) {
                return Err(series_config_error(
                    series,
                    format!(
                        "store `{}`: table `{}` exists but has no column `{f}`; add it with ALTER TABLE {} ADD COLUMN {} REAL",
                        self.inner.name,
                        series.table,
                        s.table,
                        q(f)
                    ),
                ));
            }
        }
        sqlx::query(&index)
            .execute(&mut *conn)
            .await
            .map_err(|e| self.ts_err(series, e))?;
        Ok(())
    }

    async fn append(&self, series: &SeriesInfo, points: &[Point]) -> Result<u64> {
        let rows = encode_batch(series, points)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let s = self.series_sql(series)?;
        let per = (MAX_PARAMS / (series.fields.len() + 2)).clamp(1, MAX_ROWS);
        let mut tx = self
            .inner
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| self.ts_err(series, e))?;
        let mut full: Option<String> = None;
        for chunk in rows.chunks(per) {
            let sql = if chunk.len() == per {
                full.get_or_insert_with(|| s.insert(series, per)).clone()
            } else {
                s.insert(series, chunk.len())
            };
            let mut query = sqlx::query(&sql);
            for r in chunk {
                query = query.bind(r.series.as_str()).bind(r.ts);
                for v in &r.values {
                    query = query.bind(*v);
                }
            }
            if let Err(e) = query.execute(&mut *tx).await {
                let _ = tx.rollback().await;
                return Err(self.ts_err(series, e));
            }
        }
        tx.commit().await.map_err(|e| self.ts_err(series, e))?;
        Ok(rows.len() as u64)
    }

    async fn range(
        &self,
        series: &SeriesInfo,
        key: &str,
        range: Range<DateTime<Utc>>,
        limit: usize,
    ) -> Result<Vec<Point>> {
        check_series_key(series, key)?;
        let (from, to) = micros_range(&range);
        if from >= to || limit == 0 {
            return Ok(Vec::new());
        }
        let s = self.series_sql(series)?;
        let sql = format!(
            "SELECT {} FROM {} AS t WHERE t.\"series\" = ? AND t.\"ts\" >= ? AND t.\"ts\" < ? ORDER BY t.\"ts\" LIMIT ?",
            s.select_cols("t"),
            s.table
        );
        let rows = sqlx::query(&sql)
            .bind(key)
            .bind(from)
            .bind(to)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.ts_err(series, e))?;
        rows.iter()
            .map(|r| {
                decode_row(series, r)
                    .map(|row| row.into_point(series))
                    .map_err(|e| self.ts_err(series, e))
            })
            .collect()
    }

    async fn downsample(
        &self,
        series: &SeriesInfo,
        key: &str,
        range: Range<DateTime<Utc>>,
        width: Duration,
    ) -> Result<Vec<Bucket>> {
        check_series_key(series, key)?;
        let width = check_width(series, width)?;
        let (from, to) = micros_range(&range);
        if from >= to {
            return Ok(Vec::new());
        }
        let s = self.series_sql(series)?;
        let sql = s.downsample(series);
        let mut query = sqlx::query(&sql)
            .bind(width)
            .bind(width)
            .bind(width)
            .bind(key)
            .bind(from)
            .bind(to);
        for _ in &series.fields {
            query = query.bind(key);
        }
        let rows = query
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.ts_err(series, e))?;
        rows.iter()
            .map(|r| decode_bucket(series, r).map_err(|e| self.ts_err(series, e)))
            .collect()
    }

    async fn latest(
        &self,
        series: &SeriesInfo,
        keys: &[String],
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<Option<Point>>> {
        for k in keys {
            check_series_key(series, k)?;
        }
        let s = self.series_sql(series)?;
        let since = since.map_or(i64::MIN, |t| t.timestamp_micros());
        let mut found: HashMap<String, Row> = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(LATEST_CHUNK) {
            let sql = format!(
                "WITH k(s) AS (VALUES {}) SELECT {} FROM k JOIN {t} AS t ON t.\"series\" = k.s AND t.\"ts\" = (SELECT MAX(x.\"ts\") FROM {t} AS x WHERE x.\"series\" = k.s AND x.\"ts\" >= ?)",
                vec!["(?)"; chunk.len()].join(", "),
                s.select_cols("t"),
                t = s.table
            );
            let mut query = sqlx::query(&sql);
            for k in chunk {
                query = query.bind(k.as_str());
            }
            let rows = query
                .bind(since)
                .fetch_all(&self.inner.pool)
                .await
                .map_err(|e| self.ts_err(series, e))?;
            for r in &rows {
                let row = decode_row(series, r).map_err(|e| self.ts_err(series, e))?;
                found.insert(row.series.clone(), row);
            }
        }
        Ok(keys
            .iter()
            .map(|k| found.get(k).cloned().map(|r| r.into_point(series)))
            .collect())
    }

    async fn scan(&self, series: &SeriesInfo, scan: &SeriesScan) -> Result<Vec<Point>> {
        let keys = scan.check(series)?;
        let (from, to) = micros_range(&scan.range);
        if from >= to || keys.as_ref().is_some_and(Vec::is_empty) {
            return Ok(Vec::new());
        }
        let s = self.series_sql(series)?;
        let mut sql = format!(
            "SELECT {} FROM {} AS t WHERE t.\"ts\" >= ? AND t.\"ts\" < ?",
            s.select_cols("t"),
            s.table
        );
        if let Some(keys) = &keys {
            let _ = write!(
                sql,
                " AND t.\"series\" IN ({})",
                vec!["?"; keys.len()].join(", ")
            );
        }
        if scan.after.is_some() {
            sql.push_str(" AND (t.\"series\", t.\"ts\") > (?, ?)");
        }
        sql.push_str(" ORDER BY t.\"series\", t.\"ts\" LIMIT ?");
        let mut query = sqlx::query(&sql).bind(from).bind(to);
        for k in keys.iter().flatten() {
            query = query.bind(k.as_str());
        }
        if let Some((key, at)) = &scan.after {
            query = query.bind(key.as_str()).bind(at.timestamp_micros());
        }
        let rows = query
            .bind(i64::try_from(scan.limit).unwrap_or(i64::MAX))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.ts_err(series, e))?;
        rows.iter()
            .map(|r| {
                decode_row(series, r)
                    .map(|row| row.into_point(series))
                    .map_err(|e| self.ts_err(series, e))
            })
            .collect()
    }

    async fn delete_before(&self, series: &SeriesInfo, cutoff: DateTime<Utc>) -> Result<u64> {
        let s = self.series_sql(series)?;
        let sql = format!(
            "DELETE FROM {t} WHERE (\"series\", \"ts\") IN (SELECT \"series\", \"ts\" FROM {t} WHERE \"ts\" < ? LIMIT {DELETE_CHUNK})",
            t = s.table
        );
        let cutoff = cutoff.timestamp_micros();
        let mut total = 0;
        loop {
            let n = sqlx::query(&sql)
                .bind(cutoff)
                .execute(&self.inner.pool)
                .await
                .map_err(|e| self.ts_err(series, e))?
                .rows_affected();
            total += n;
            if n < DELETE_CHUNK {
                return Ok(total);
            }
        }
    }
}

/// One row of the downsample statement: bucket, count, then per field
/// count, min, max, sum and last.
fn decode_bucket(info: &SeriesInfo, r: &SqliteRow) -> std::result::Result<Bucket, sqlx::Error> {
    let start: i64 = r.try_get(0)?;
    let count: i64 = r.try_get(1)?;
    let mut fields = std::collections::BTreeMap::new();
    for (i, f) in info.fields.iter().enumerate() {
        let at = 2 + i * 5;
        let n: i64 = r.try_get(at)?;
        if n == 0 {
            continue;
        }
        let get = |j: usize| -> std::result::Result<f64, sqlx::Error> {
            Ok(r.try_get::<Option<f64>, _>(at + j)?.unwrap_or(f64::NAN))
        };
        fields.insert(
            f.clone(),
            FieldStats {
                count: n as u64,
                min: get(1)?,
                max: get(2)?,
                sum: get(3)?,
                last: get(4)?,
            },
        );
    }
    Ok(Bucket {
        start: from_micros(start),
        count: count as u64,
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_bind_every_value_and_quote_names() {
        let info = SeriesInfo::new("telemetry", ["temperature", "humidity"]);
        let s = SeriesSql::new(&info).unwrap();
        let insert = s.insert(&info, 2);
        assert_eq!(insert.matches('?').count(), 8);
        assert!(
            insert.contains("\"humidity\" = excluded.\"humidity\""),
            "{insert}"
        );
        let ds = s.downsample(&info);
        assert_eq!(ds.matches('?').count(), 6 + 2, "{ds}");
        assert!(ds.contains("GROUP BY b"), "{ds}");
        assert!(SeriesSql::new(&SeriesInfo::new("t\"; DROP", ["a"])).is_err());
    }
}
