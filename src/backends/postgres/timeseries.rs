//! Time series on PostgreSQL: one table per series table with primary key
//! `(series, ts)`.
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS "telemetry" (
//!     "series" TEXT COLLATE "C" NOT NULL,
//!     "ts" TIMESTAMPTZ NOT NULL,
//!     "temperature" DOUBLE PRECISION,     -- one nullable column per field
//!     PRIMARY KEY ("series", "ts")
//! );
//! CREATE INDEX IF NOT EXISTS "telemetry_ts" ON "telemetry" ("ts");  -- retention
//! ```
//!
//! A batch is one `INSERT … SELECT * FROM UNNEST($1::text[], $2::timestamptz[],
//! $3::float8[], …) ON CONFLICT DO UPDATE` per 10 000 points (several in one
//! transaction); the downsample is one `GROUP BY date_bin(…)` with each
//! field's last value found through the primary key; `latest` is one
//! `LATERAL` lookup per key down the primary key. Values are always bound;
//! identifiers are checked names, double-quoted.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row as _;
use sqlx::postgres::PgRow;

use super::{PostgresStore, map_err, sqlstate};
use crate::store::timeseries::{
    Bucket, FieldStats, Point, SeriesInfo, SeriesScan, TimeSeriesStore, check_name,
    check_series_key, check_width, encode_batch,
};
use crate::{Error, Result, Value};

/// Points per `INSERT … UNNEST` statement.
const INSERT_CHUNK: usize = 10_000;
/// Rows deleted per retention statement (each holds its row locks briefly).
const DELETE_CHUNK: u64 = 10_000;

fn q(ident: &str) -> String {
    format!("\"{ident}\"")
}

/// The earliest instant PostgreSQL's `timestamptz` holds (4713 BC); range
/// bounds before it are moved up to it.
fn pg_min() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(-4712, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The statements of one series table.
struct SeriesSql {
    table: String,
    cols: Vec<String>,
}

impl SeriesSql {
    fn new(info: &SeriesInfo) -> std::result::Result<Self, String> {
        check_name(&info.table)?;
        for f in &info.fields {
            check_name(f)?;
        }
        Ok(SeriesSql {
            table: q(&info.table),
            cols: info.fields.iter().map(|f| q(f)).collect(),
        })
    }

    fn select_cols(&self, alias: &str) -> String {
        let mut s = format!("{alias}.\"series\", {alias}.\"ts\"");
        for c in &self.cols {
            let _ = write!(s, ", {alias}.{c}");
        }
        s
    }

    fn insert(&self) -> String {
        let mut arrays = String::from("$1::text[], $2::timestamptz[]");
        for i in 0..self.cols.len() {
            let _ = write!(arrays, ", ${}::float8[]", i + 3);
        }
        let sets: Vec<String> = self
            .cols
            .iter()
            .map(|c| format!("{c} = EXCLUDED.{c}"))
            .collect();
        format!(
            "INSERT INTO {} (\"series\", \"ts\", {}) SELECT * FROM UNNEST({arrays}) ON CONFLICT (\"series\", \"ts\") DO UPDATE SET {}",
            self.table,
            self.cols.join(", "),
            sets.join(", ")
        )
    }

    /// `$1` width in µs, `$2` key, `$3` from, `$4` to.
    fn downsample(&self) -> String {
        let mut inner = String::from(
            "SELECT date_bin($1::bigint * INTERVAL '1 microsecond', \"ts\", TIMESTAMPTZ '1970-01-01 00:00:00+00') AS b, COUNT(*) AS n",
        );
        let mut outer = String::from("SELECT g.b, g.n");
        let mut joins = String::new();
        for (i, c) in self.cols.iter().enumerate() {
            let _ = write!(
                inner,
                ", COUNT({c}) AS c{i}, MIN({c}) AS mn{i}, MAX({c}) AS mx{i}, SUM({c}) AS s{i}, MAX(\"ts\") FILTER (WHERE {c} IS NOT NULL) AS lt{i}"
            );
            let _ = write!(outer, ", g.c{i}, g.mn{i}, g.mx{i}, g.s{i}, l{i}.{c}");
            let _ = write!(
                joins,
                " LEFT JOIN {t} AS l{i} ON l{i}.\"series\" = $2 AND l{i}.\"ts\" = g.lt{i}",
                t = self.table
            );
        }
        format!(
            "{outer} FROM ({inner} FROM {t} WHERE \"series\" = $2 AND \"ts\" >= $3 AND \"ts\" < $4 GROUP BY 1) AS g{joins} ORDER BY g.b",
            t = self.table
        )
    }

    /// `$1` keys, `$2` since (when `since`).
    fn latest(&self, since: bool) -> String {
        let since = if since { " AND x.\"ts\" >= $2" } else { "" };
        format!(
            "SELECT {} FROM UNNEST($1::text[]) AS k(s) CROSS JOIN LATERAL (SELECT * FROM {} AS x WHERE x.\"series\" = k.s{since} ORDER BY x.\"ts\" DESC LIMIT 1) AS p",
            self.select_cols("p"),
            self.table
        )
    }
}

fn decode_point(info: &SeriesInfo, r: &PgRow) -> std::result::Result<Point, sqlx::Error> {
    let series: String = r.try_get(0)?;
    let at: DateTime<Utc> = r.try_get(1)?;
    let mut p = Point::new(series, at);
    for (i, f) in info.fields.iter().enumerate() {
        if let Some(v) = r.try_get::<Option<f64>, _>(i + 2)? {
            p.fields.insert(f.clone(), Value::F64(v));
        }
    }
    Ok(p)
}

fn decode_bucket(info: &SeriesInfo, r: &PgRow) -> std::result::Result<Bucket, sqlx::Error> {
    let start: DateTime<Utc> = r.try_get(0)?;
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
        start,
        count: count as u64,
        fields,
    })
}

impl PostgresStore {
    fn ts_err(&self, info: &SeriesInfo, e: sqlx::Error) -> Error {
        map_err(&self.inner.name, &info.name, e)
    }

    fn series_sql(&self, info: &SeriesInfo) -> Result<SeriesSql> {
        SeriesSql::new(info).map_err(|m| {
            Error::invalid_input(&self.inner.name, &info.name, format!("series table: {m}"))
        })
    }

    /// Runs a DDL statement; another connection doing the same is fine.
    async fn ts_ddl(&self, info: &SeriesInfo, sql: &str) -> Result<()> {
        match sqlx::query(sql).execute(&self.inner.pool).await {
            Ok(_) => Ok(()),
            Err(e) if matches!(sqlstate(&e).as_deref(), Some("23505" | "42P07")) => Ok(()),
            Err(e) => Err(self.ts_err(info, e)),
        }
    }
}

#[async_trait]
impl TimeSeriesStore for PostgresStore {
    async fn ensure_series(&self, series: &SeriesInfo) -> Result<()> {
        let s = self.series_sql(series)?;
        let mut create = format!(
            "CREATE TABLE IF NOT EXISTS {} (\"series\" TEXT COLLATE \"C\" NOT NULL, \"ts\" TIMESTAMPTZ NOT NULL",
            s.table
        );
        for c in &s.cols {
            let _ = write!(create, ", {c} DOUBLE PRECISION");
        }
        create.push_str(", PRIMARY KEY (\"series\", \"ts\"))");
        self.ts_ddl(series, &create).await?;
        let cols: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1",
        )
        .bind(&series.table)
        .fetch_all(&self.inner.pool)
        .await
        .map_err(|e| self.ts_err(series, e))?;
        for f in ["series", "ts"]
            .iter()
            .copied()
            .chain(series.fields.iter().map(String::as_str))
        {
            if !cols.iter().any(|c| c == f) {
                return Err(Error::Config {
                    file: String::new(),
                    line: 0,
                    column: 0,
                    path: format!("timeseries.{}", series.name),
                    message: format!(
                        "store `{}`: table `{}` exists but has no column `{f}`; add it with ALTER TABLE {} ADD COLUMN {} DOUBLE PRECISION",
                        self.inner.name,
                        series.table,
                        s.table,
                        q(f)
                    ),
                });
            }
        }
        let index = format!(
            "CREATE INDEX IF NOT EXISTS {} ON {} (\"ts\")",
            q(&format!("{}_ts", series.table)),
            s.table
        );
        self.ts_ddl(series, &index).await
    }

    async fn append(&self, series: &SeriesInfo, points: &[Point]) -> Result<u64> {
        let rows = encode_batch(series, points)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let s = self.series_sql(series)?;
        let sql = s.insert();
        let mut tx = self
            .inner
            .pool
            .begin()
            .await
            .map_err(|e| self.ts_err(series, e))?;
        for chunk in rows.chunks(INSERT_CHUNK) {
            let keys: Vec<&str> = chunk.iter().map(|r| r.series.as_str()).collect();
            let times: Vec<DateTime<Utc>> = chunk
                .iter()
                .map(|r| crate::store::timeseries::from_micros(r.ts))
                .collect();
            let mut query = sqlx::query(&sql).bind(keys).bind(times);
            for i in 0..series.fields.len() {
                let col: Vec<Option<f64>> = chunk.iter().map(|r| r.values[i]).collect();
                query = query.bind(col);
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
        let from = range.start.max(pg_min());
        if from >= range.end || limit == 0 {
            return Ok(Vec::new());
        }
        let s = self.series_sql(series)?;
        let sql = format!(
            "SELECT {} FROM {} AS t WHERE t.\"series\" = $1 AND t.\"ts\" >= $2 AND t.\"ts\" < $3 ORDER BY t.\"ts\" LIMIT $4",
            s.select_cols("t"),
            s.table
        );
        let rows = sqlx::query(&sql)
            .bind(key)
            .bind(from)
            .bind(range.end)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.ts_err(series, e))?;
        rows.iter()
            .map(|r| decode_point(series, r).map_err(|e| self.ts_err(series, e)))
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
        let from = range.start.max(pg_min());
        if from >= range.end {
            return Ok(Vec::new());
        }
        let s = self.series_sql(series)?;
        let rows = sqlx::query(&s.downsample())
            .bind(width)
            .bind(key)
            .bind(from)
            .bind(range.end)
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
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let s = self.series_sql(series)?;
        let sql = s.latest(since.is_some());
        let mut query = sqlx::query(&sql).bind(keys);
        if let Some(since) = since {
            query = query.bind(since.max(pg_min()));
        }
        let rows = query
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.ts_err(series, e))?;
        let mut found: HashMap<String, Point> = HashMap::with_capacity(rows.len());
        for r in &rows {
            let p = decode_point(series, r).map_err(|e| self.ts_err(series, e))?;
            found.insert(p.series.clone(), p);
        }
        Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
    }

    async fn scan(&self, series: &SeriesInfo, scan: &SeriesScan) -> Result<Vec<Point>> {
        let keys = scan.check(series)?;
        let from = scan.range.start.max(pg_min());
        if from >= scan.range.end || keys.as_ref().is_some_and(Vec::is_empty) {
            return Ok(Vec::new());
        }
        let s = self.series_sql(series)?;
        // $1 from, $2 to, $3 limit, then the keys and the cursor when given.
        let mut sql = format!(
            "SELECT {} FROM {} AS t WHERE t.\"ts\" >= $1 AND t.\"ts\" < $2",
            s.select_cols("t"),
            s.table
        );
        let mut n = 3;
        if keys.is_some() {
            n += 1;
            let _ = write!(sql, " AND t.\"series\" = ANY(${n}::text[])");
        }
        if scan.after.is_some() {
            let _ = write!(
                sql,
                " AND (t.\"series\", t.\"ts\") > (${}::text COLLATE \"C\", ${}::timestamptz)",
                n + 1,
                n + 2
            );
        }
        sql.push_str(" ORDER BY t.\"series\", t.\"ts\" LIMIT $3");
        let mut query = sqlx::query(&sql)
            .bind(from)
            .bind(scan.range.end)
            .bind(i64::try_from(scan.limit).unwrap_or(i64::MAX));
        if let Some(keys) = keys {
            query = query.bind(keys);
        }
        if let Some((key, at)) = &scan.after {
            query = query.bind(key.as_str()).bind(*at);
        }
        let rows = query
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.ts_err(series, e))?;
        rows.iter()
            .map(|r| decode_point(series, r).map_err(|e| self.ts_err(series, e)))
            .collect()
    }

    async fn delete_before(&self, series: &SeriesInfo, cutoff: DateTime<Utc>) -> Result<u64> {
        if cutoff <= pg_min() {
            return Ok(0);
        }
        let s = self.series_sql(series)?;
        let sql = format!(
            "DELETE FROM {t} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {t} WHERE \"ts\" < $1 LIMIT {DELETE_CHUNK}))",
            t = s.table
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_bind_every_value_and_quote_names() {
        let info = SeriesInfo::new("telemetry", ["temperature", "humidity"]);
        let s = SeriesSql::new(&info).unwrap();
        let insert = s.insert();
        assert!(
            insert.contains("UNNEST($1::text[], $2::timestamptz[], $3::float8[], $4::float8[])"),
            "{insert}"
        );
        assert!(
            insert.contains("\"humidity\" = EXCLUDED.\"humidity\""),
            "{insert}"
        );
        let ds = s.downsample();
        assert!(
            ds.contains("GROUP BY 1") && ds.contains("date_bin($1::bigint"),
            "{ds}"
        );
        assert!(s.latest(true).contains("x.\"ts\" >= $2"));
        assert!(!s.latest(false).contains("$2"));
        assert!(SeriesSql::new(&SeriesInfo::new("t\"; DROP", ["a"])).is_err());
        assert!(pg_min() < DateTime::from_timestamp(0, 0).unwrap());
    }
}
