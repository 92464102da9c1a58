//! Time series in memory: one ordered map per series table, keyed by
//! (series, microseconds). The downsample is the reference fold,
//! [`downsample_rows`], which the SQL backends are tested against.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use parking_lot::RwLock;

use super::MemoryStore;
use crate::Result;
use crate::store::timeseries::{
    Bucket, Point, Row, SeriesInfo, SeriesScan, TimeSeriesStore, check_series_key, check_width,
    downsample_rows, encode_batch, micros_range,
};

/// The series tables of one memory store, by table name.
#[derive(Debug, Default)]
pub(super) struct SeriesTables {
    tables: RwLock<HashMap<String, Arc<RwLock<SeriesTable>>>>,
}

/// One table: its field columns and its points.
#[derive(Debug, Default)]
struct SeriesTable {
    fields: Vec<String>,
    points: BTreeMap<(String, i64), Vec<Option<f64>>>,
}

impl SeriesTable {
    /// For each field of `info`, its column in this table.
    fn columns(&self, info: &SeriesInfo) -> Vec<Option<usize>> {
        info.fields
            .iter()
            .map(|f| self.fields.iter().position(|c| c == f))
            .collect()
    }

    fn row(&self, cols: &[Option<usize>], series: &str, ts: i64, stored: &[Option<f64>]) -> Row {
        Row {
            series: series.to_string(),
            ts,
            values: cols
                .iter()
                .map(|c| c.and_then(|c| stored.get(c).copied().flatten()))
                .collect(),
        }
    }
}

impl SeriesTables {
    fn table(&self, info: &SeriesInfo) -> Arc<RwLock<SeriesTable>> {
        if let Some(t) = self.tables.read().get(&info.table) {
            return t.clone();
        }
        self.tables
            .write()
            .entry(info.table.clone())
            .or_default()
            .clone()
    }
}

/// The keys of one series in `[from, to)`.
fn span(key: &str, from: i64, to: i64) -> Range<(String, i64)> {
    (key.to_string(), from)..(key.to_string(), to)
}

#[async_trait]
impl TimeSeriesStore for MemoryStore {
    async fn ensure_series(&self, series: &SeriesInfo) -> Result<()> {
        let table = self.series.table(series);
        let mut t = table.write();
        for f in &series.fields {
            if !t.fields.contains(f) {
                t.fields.push(f.clone());
            }
        }
        Ok(())
    }

    async fn append(&self, series: &SeriesInfo, points: &[Point]) -> Result<u64> {
        let rows = encode_batch(series, points)?;
        self.ensure_series(series).await?;
        let table = self.series.table(series);
        let mut t = table.write();
        let cols = t.columns(series);
        let width = t.fields.len();
        let n = rows.len() as u64;
        for row in rows {
            let mut stored = vec![None; width];
            for (c, v) in cols.iter().zip(row.values) {
                if let Some(c) = c {
                    stored[*c] = v;
                }
            }
            t.points.insert((row.series, row.ts), stored);
        }
        Ok(n)
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
        if from >= to {
            return Ok(Vec::new());
        }
        let table = self.series.table(series);
        let t = table.read();
        let cols = t.columns(series);
        Ok(t.points
            .range(span(key, from, to))
            .take(limit)
            .map(|((s, ts), v)| t.row(&cols, s, *ts, v).into_point(series))
            .collect())
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
        let table = self.series.table(series);
        let t = table.read();
        let cols = t.columns(series);
        let rows: Vec<Row> = t
            .points
            .range(span(key, from, to))
            .map(|((s, ts), v)| t.row(&cols, s, *ts, v))
            .collect();
        Ok(downsample_rows(series, rows.iter(), width))
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
        let since = since.map_or(i64::MIN, |s| s.timestamp_micros());
        let table = self.series.table(series);
        let t = table.read();
        let cols = t.columns(series);
        Ok(keys
            .iter()
            .map(|k| {
                t.points
                    .range(span(k, since, i64::MAX))
                    // No instant is `i64::MAX` µs: chrono's range ends earlier.
                    .next_back()
                    .map(|((s, ts), v)| t.row(&cols, s, *ts, v).into_point(series))
            })
            .collect())
    }

    async fn scan(&self, series: &SeriesInfo, scan: &SeriesScan) -> Result<Vec<Point>> {
        let keys = scan.check(series)?;
        let table = self.series.table(series);
        let t = table.read();
        let cols = t.columns(series);
        let mut out = Vec::new();
        let take = |key: &str, from: i64, to: i64, out: &mut Vec<Point>| {
            let room = scan.limit - out.len();
            out.extend(
                t.points
                    .range(span(key, from, to))
                    .take(room)
                    .map(|((s, ts), v)| t.row(&cols, s, *ts, v).into_point(series)),
            );
        };
        match keys {
            Some(keys) => {
                for k in &keys {
                    if out.len() == scan.limit {
                        break;
                    }
                    if let Some((from, to)) = scan.span_of(k) {
                        take(k, from, to, &mut out);
                    }
                }
            }
            None => {
                // Walk the series present from the cursor on, one span each.
                let mut next = scan.after.as_ref().map(|(s, _)| s.clone());
                let mut first = true;
                while out.len() < scan.limit {
                    let key = match (&next, first) {
                        (Some(k), true) => Some(k.clone()),
                        (Some(k), false) => t
                            .points
                            .range((
                                std::ops::Bound::Excluded((k.clone(), i64::MAX)),
                                std::ops::Bound::Unbounded,
                            ))
                            .next()
                            .map(|((s, _), _)| s.clone()),
                        (None, _) => t.points.keys().next().map(|(s, _)| s.clone()),
                    };
                    first = false;
                    let Some(key) = key else { break };
                    if let Some((from, to)) = scan.span_of(&key) {
                        take(&key, from, to, &mut out);
                    }
                    next = Some(key);
                }
            }
        }
        Ok(out)
    }

    async fn delete_before(&self, series: &SeriesInfo, cutoff: DateTime<Utc>) -> Result<u64> {
        let cutoff = cutoff.timestamp_micros();
        let table = self.series.table(series);
        let mut t = table.write();
        let before = t.points.len();
        t.points.retain(|(_, ts), _| *ts >= cutoff);
        Ok((before - t.points.len()) as u64)
    }
}
