//! [`TimeSeriesStore`]: append-only numeric telemetry with range reads,
//! downsampling into fixed buckets, the latest point per series, and
//! retention.
//!
//! A time series table (one per `[timeseries.NAME]`) holds **points**: a
//! series key (e.g. a device id), a timestamp (UTC, whole microseconds, like
//! [`Value::Timestamp`]) and a fixed set of numeric **fields** named in the
//! configuration. `(series, timestamp)` is unique: appending a point that is
//! already there replaces it (telemetry is often sent twice).
//!
//! A store that implements the trait returns itself from
//! [`Store::as_time_series`](crate::Store::as_time_series) and sets the
//! `time_series` capability. Applications use it through the router's
//! [`TimeSeries`](crate::router::TimeSeries) handle, which adds keyset
//! paging and applies the retention to reads.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::time::Duration;
//! use chrono::{TimeZone, Utc};
//! use polyrouter::backends::memory::MemoryStore;
//! use polyrouter::store::timeseries::{Point, SeriesInfo};
//! use polyrouter::Store;
//!
//! let store = MemoryStore::new("tsdb");
//! let ts = store.as_time_series().expect("memory stores time series");
//! let info = SeriesInfo::new("telemetry", ["temperature", "humidity"]);
//! ts.ensure_series(&info).await?;
//! let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
//! let points: Vec<Point> = (0..6)
//!     .map(|i| Point::new("dev-1", t0 + Duration::from_secs(600 * i))
//!         .field("temperature", 20.0 + i as f64))
//!     .collect();
//! assert_eq!(ts.append(&info, &points).await?, 6);
//! let hourly = ts.downsample(&info, "dev-1", t0..t0 + Duration::from_secs(7200), Duration::from_secs(3600)).await?;
//! assert_eq!(hourly.len(), 1);
//! let temp = hourly[0].field("temperature").unwrap();
//! assert_eq!((temp.count, temp.min, temp.max, temp.last), (6, 20.0, 25.0, 25.0));
//! assert_eq!(temp.avg(), 22.5);
//! # Ok::<(), polyrouter::Error>(())
//! # }).unwrap();
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};

use crate::{Error, Result, Value};

/// The column names every time series table has besides its fields.
pub const RESERVED_COLUMNS: [&str; 2] = ["series", "ts"];

/// The widest downsample bucket: 100 years.
pub const MAX_BUCKET: Duration = Duration::from_secs(100 * 366 * 86_400);

/// Everything a store needs to know about one time series table, as
/// [`EntityInfo`](crate::store::EntityInfo) is for entities.
///
/// ```
/// use polyrouter::store::timeseries::SeriesInfo;
/// let s = SeriesInfo::new("telemetry", ["temperature"]);
/// assert_eq!(s.table, "telemetry");
/// assert_eq!(s.field_index("temperature"), Some(0));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesInfo {
    /// The name under `[timeseries.NAME]`, used in errors.
    pub name: String,
    /// The table holding the points (default: the name).
    pub table: String,
    /// The store's name, for error messages.
    pub store: String,
    /// The numeric fields, in column order.
    pub fields: Vec<String>,
}

impl SeriesInfo {
    /// A series table named `name` with these fields.
    ///
    /// ```
    /// let s = polyrouter::store::timeseries::SeriesInfo::new("power", ["watts", "volts"]);
    /// assert_eq!(s.fields, vec!["watts", "volts"]);
    /// ```
    pub fn new<I, S>(name: &str, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        SeriesInfo {
            name: name.into(),
            table: name.into(),
            store: String::new(),
            fields: fields.into_iter().map(Into::into).collect(),
        }
    }

    /// The column position of a field.
    ///
    /// ```
    /// let s = polyrouter::store::timeseries::SeriesInfo::new("p", ["a", "b"]);
    /// assert_eq!(s.field_index("b"), Some(1));
    /// assert_eq!(s.field_index("c"), None);
    /// ```
    pub fn field_index(&self, field: &str) -> Option<usize> {
        self.fields.iter().position(|f| f == field)
    }

    fn invalid(&self, message: impl fmt::Display) -> Error {
        Error::invalid_input(&self.store, &self.name, message)
    }
}

/// Checks a field or table name of a time series: letters, digits and `_`,
/// not starting with a digit, at most 63 bytes (PostgreSQL's limit), not
/// `series` or `ts`. Returns what is wrong.
///
/// ```
/// use polyrouter::store::timeseries::check_name;
/// assert!(check_name("temperature_c").is_ok());
/// assert!(check_name("ts").is_err());
/// assert!(check_name("a b").is_err());
/// ```
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    let mut chars = name.chars();
    let ok_start = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !ok_start || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') || name.len() > 63 {
        return Err(format!(
            "{name:?} is not a valid name: use 1 to 63 ASCII letters, digits and `_`, not starting with a digit"
        ));
    }
    if RESERVED_COLUMNS.contains(&name) {
        return Err(format!(
            "`{name}` is reserved (every time series table has `series` and `ts` columns)"
        ));
    }
    Ok(())
}

/// One point: a series key, an instant and named numeric fields.
///
/// Field values may be any [`Value`] that is a finite number
/// ([`Value::F64`], or [`Value::I64`] exactly representable as `f64`) or
/// [`Value::Null`] (no value). The timestamp is truncated to microseconds.
///
/// ```
/// use chrono::Utc;
/// use polyrouter::store::timeseries::Point;
/// let p = Point::new("dev-1", Utc::now()).field("temperature", 21.5).field("rssi", -67);
/// assert_eq!(p.get("temperature"), Some(21.5));
/// assert_eq!(p.get("rssi"), Some(-67.0));
/// assert_eq!(p.get("humidity"), None);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The series key, e.g. a device id.
    pub series: String,
    /// The instant, UTC, whole microseconds.
    pub at: DateTime<Utc>,
    /// The field values by name.
    pub fields: BTreeMap<String, Value>,
}

impl Point {
    /// A point with no fields yet.
    ///
    /// ```
    /// let p = polyrouter::store::timeseries::Point::new("s", chrono::Utc::now());
    /// assert!(p.fields.is_empty());
    /// ```
    pub fn new(series: impl Into<String>, at: DateTime<Utc>) -> Self {
        Point {
            series: series.into(),
            at: at.trunc_subsecs(6),
            fields: BTreeMap::new(),
        }
    }

    /// Sets a field (replacing an earlier value of the same name).
    ///
    /// ```
    /// let p = polyrouter::store::timeseries::Point::new("s", chrono::Utc::now()).field("v", 1.5);
    /// assert_eq!(p.get("v"), Some(1.5));
    /// ```
    pub fn field(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.fields.insert(name.into(), value.into());
        self
    }

    /// A field as a number, `None` when absent, null or not a number.
    ///
    /// ```
    /// let p = polyrouter::store::timeseries::Point::new("s", chrono::Utc::now()).field("n", 3);
    /// assert_eq!(p.get("n"), Some(3.0));
    /// ```
    pub fn get(&self, name: &str) -> Option<f64> {
        match self.fields.get(name)? {
            Value::F64(f) => Some(*f),
            Value::I64(i) => Some(*i as f64),
            _ => None,
        }
    }
}

/// A validated point as backends write it: series, microseconds, and one
/// slot per field of the [`SeriesInfo`], in order. For backend authors.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The series key.
    pub series: String,
    /// Unix microseconds.
    pub ts: i64,
    /// One value per field, `None` when the point has none.
    pub values: Vec<Option<f64>>,
}

impl Row {
    /// Back to a [`Point`] (null fields left out).
    ///
    /// ```
    /// use polyrouter::store::timeseries::{Row, SeriesInfo};
    /// let info = SeriesInfo::new("t", ["a", "b"]);
    /// let p = Row { series: "s".into(), ts: 1_000_000, values: vec![Some(1.0), None] }.into_point(&info);
    /// assert_eq!(p.at.timestamp(), 1);
    /// assert_eq!((p.get("a"), p.fields.contains_key("b")), (Some(1.0), false));
    /// ```
    pub fn into_point(self, info: &SeriesInfo) -> Point {
        let fields = info
            .fields
            .iter()
            .zip(self.values)
            .filter_map(|(f, v)| v.map(|v| (f.clone(), Value::F64(v))))
            .collect();
        Point {
            series: self.series,
            at: from_micros(self.ts),
            fields,
        }
    }
}

/// Unix microseconds to an instant (saturating at chrono's range).
///
/// ```
/// assert_eq!(polyrouter::store::timeseries::from_micros(-1).timestamp_micros(), -1);
/// ```
pub fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or(if us < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// Checks a series key: not empty, no NUL character (no store can keep one
/// in every backend).
///
/// ```
/// use polyrouter::store::timeseries::{check_series_key, SeriesInfo};
/// let info = SeriesInfo::new("t", ["a"]);
/// assert!(check_series_key(&info, "dev'; DROP TABLE t; --").is_ok());
/// assert!(check_series_key(&info, "").is_err());
/// ```
pub fn check_series_key(info: &SeriesInfo, key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(info.invalid("a series key must not be empty"));
    }
    if key.contains('\0') {
        return Err(info.invalid(format!(
            "the series key {key:?} contains a NUL character, which time series keys cannot hold"
        )));
    }
    Ok(())
}

/// Validates and encodes a batch before anything is written: every field
/// named in the schema, every value a finite number, every key valid.
/// Points with the same series and timestamp collapse to the last one.
/// Errors name the point (by position), the series and the field.
///
/// ```
/// use chrono::Utc;
/// use polyrouter::store::timeseries::{encode_batch, Point, SeriesInfo};
/// let info = SeriesInfo::new("t", ["a"]);
/// let now = Utc::now();
/// let rows = encode_batch(&info, &[Point::new("s", now).field("a", 1), Point::new("s", now).field("a", 2)]).unwrap();
/// assert_eq!(rows.len(), 1);
/// assert_eq!(rows[0].values, vec![Some(2.0)]);
/// let err = encode_batch(&info, &[Point::new("s", now).field("b", 1)]).unwrap_err();
/// assert!(err.to_string().contains("unknown field `b`"), "{err}");
/// ```
pub fn encode_batch(info: &SeriesInfo, points: &[Point]) -> Result<Vec<Row>> {
    let mut rows: Vec<Row> = Vec::with_capacity(points.len());
    let mut seen: HashMap<(&str, i64), usize> = HashMap::new();
    for (i, p) in points.iter().enumerate() {
        check_series_key(info, &p.series).map_err(|e| at_point(e, i))?;
        let ts = p.at.timestamp_micros();
        let mut values = vec![None; info.fields.len()];
        for (name, v) in &p.fields {
            let Some(slot) = info.field_index(name) else {
                return Err(info.invalid(format!(
                    "point {i} (series {:?}): unknown field `{name}`; the fields of `{}` are: {}",
                    p.series,
                    info.name,
                    info.fields.join(", ")
                )));
            };
            values[slot] = number(v).map_err(|m| {
                info.invalid(format!(
                    "point {i} (series {:?}): field `{name}`: {m}; nothing of the batch was written",
                    p.series
                ))
            })?;
        }
        let row = Row {
            series: p.series.clone(),
            ts,
            values,
        };
        match seen.get(&(p.series.as_str(), ts)) {
            Some(&at) => rows[at] = row,
            None => {
                seen.insert((p.series.as_str(), ts), rows.len());
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

fn at_point(e: Error, i: usize) -> Error {
    match e {
        Error::InvalidInput {
            store,
            entity,
            message,
        } => Error::InvalidInput {
            store,
            entity,
            message: format!("point {i}: {message}; nothing of the batch was written"),
        },
        e => e,
    }
}

/// A field value as a finite `f64`.
fn number(v: &Value) -> std::result::Result<Option<f64>, String> {
    match v {
        Value::Null => Ok(None),
        Value::F64(f) if f.is_finite() => Ok(Some(*f)),
        Value::F64(f) => Err(format!(
            "{f} is not a finite number; time series fields hold finite numbers only"
        )),
        Value::I64(i) => {
            let f = *i as f64;
            if f as i128 == *i as i128 && f.abs() < 9.007_199_254_740_992e15 {
                Ok(Some(f))
            } else {
                Err(format!("{i} cannot be stored exactly as a 64-bit float"))
            }
        }
        other => Err(format!(
            "a {} is not a number; time series fields hold numbers",
            other.type_name()
        )),
    }
}

/// Checks a downsample bucket width: whole microseconds, at least 1 µs and
/// at most [`MAX_BUCKET`]; returns it in microseconds.
///
/// ```
/// use std::time::Duration;
/// use polyrouter::store::timeseries::{check_width, SeriesInfo};
/// let info = SeriesInfo::new("t", ["a"]);
/// assert_eq!(check_width(&info, Duration::from_secs(1)).unwrap(), 1_000_000);
/// assert!(check_width(&info, Duration::ZERO).is_err());
/// assert!(check_width(&info, Duration::from_nanos(1500)).is_err());
/// ```
pub fn check_width(info: &SeriesInfo, width: Duration) -> Result<i64> {
    if width.is_zero() || width > MAX_BUCKET || width.subsec_nanos() % 1000 != 0 {
        return Err(info.invalid(format!(
            "a bucket width of {width:?} is not allowed: use whole microseconds between 1µs and 100 years"
        )));
    }
    Ok(width.as_micros() as i64)
}

/// The start of the bucket holding `ts`, buckets being `width` µs wide and
/// aligned to the Unix epoch (also before it).
///
/// ```
/// use polyrouter::store::timeseries::bucket_start;
/// assert_eq!(bucket_start(25, 10), 20);
/// assert_eq!(bucket_start(-1, 10), -10);
/// ```
pub fn bucket_start(ts: i64, width: i64) -> i64 {
    ts - ts.rem_euclid(width)
}

/// A range as unix microseconds `[from, to)`.
///
/// ```
/// use chrono::DateTime;
/// let r = DateTime::from_timestamp(1, 0).unwrap()..DateTime::from_timestamp(2, 0).unwrap();
/// assert_eq!(polyrouter::store::timeseries::micros_range(&r), (1_000_000, 2_000_000));
/// ```
pub fn micros_range(range: &Range<DateTime<Utc>>) -> (i64, i64) {
    (range.start.timestamp_micros(), range.end.timestamp_micros())
}

/// The aggregates of one field over one bucket (only values that are
/// present count).
///
/// ```
/// use polyrouter::store::timeseries::FieldStats;
/// let s = FieldStats { count: 2, min: 1.0, max: 3.0, sum: 4.0, last: 3.0 };
/// assert_eq!(s.avg(), 2.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FieldStats {
    /// How many points in the bucket have a value.
    pub count: u64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// The sum of the values.
    pub sum: f64,
    /// The value of the latest point in the bucket that has one.
    pub last: f64,
}

impl FieldStats {
    /// The mean: `sum / count`.
    ///
    /// ```
    /// use polyrouter::store::timeseries::FieldStats;
    /// assert_eq!(FieldStats { count: 4, min: 0.0, max: 4.0, sum: 8.0, last: 1.0 }.avg(), 2.0);
    /// ```
    pub fn avg(&self) -> f64 {
        self.sum / self.count as f64
    }
}

/// One downsample bucket: `[start, start + width)`.
///
/// ```
/// use polyrouter::store::timeseries::{Bucket, FieldStats};
/// let b = Bucket { start: chrono::Utc::now(), count: 1, fields: [("v".to_string(), FieldStats { count: 1, min: 1.0, max: 1.0, sum: 1.0, last: 1.0 })].into() };
/// assert_eq!(b.field("v").unwrap().last, 1.0);
/// assert!(b.field("w").is_none());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    /// The bucket's first instant (aligned to the epoch).
    pub start: DateTime<Utc>,
    /// How many points fall in the bucket.
    pub count: u64,
    /// Aggregates per field; a field with no value in the bucket is absent.
    pub fields: BTreeMap<String, FieldStats>,
}

impl Bucket {
    /// The aggregates of one field, if it has values in this bucket.
    ///
    /// ```
    /// # use polyrouter::store::timeseries::Bucket;
    /// let b = Bucket { start: chrono::Utc::now(), count: 0, fields: Default::default() };
    /// assert!(b.field("v").is_none());
    /// ```
    pub fn field(&self, name: &str) -> Option<&FieldStats> {
        self.fields.get(name)
    }
}

/// The reference downsample: rows of one series, in ascending time order,
/// folded into buckets. The memory store runs it; SQL backends compute the
/// same with `GROUP BY`. For backend authors.
///
/// ```
/// use polyrouter::store::timeseries::{downsample_rows, Row, SeriesInfo};
/// let info = SeriesInfo::new("t", ["v"]);
/// let rows = [(0, 1.0), (5, 3.0), (12, 2.0)].map(|(ts, v)| Row { series: "s".into(), ts, values: vec![Some(v)] });
/// let b = downsample_rows(&info, rows.iter(), 10);
/// assert_eq!(b.len(), 2);
/// assert_eq!(b[0].field("v").unwrap().sum, 4.0);
/// assert_eq!(b[1].start.timestamp_micros(), 10);
/// ```
pub fn downsample_rows<'a>(
    info: &SeriesInfo,
    rows: impl Iterator<Item = &'a Row>,
    width: i64,
) -> Vec<Bucket> {
    let mut out: Vec<(i64, u64, Vec<Option<FieldStats>>)> = Vec::new();
    for row in rows {
        let start = bucket_start(row.ts, width);
        if out.last().is_none_or(|b| b.0 != start) {
            out.push((start, 0, vec![None; info.fields.len()]));
        }
        let b = out.last_mut().expect("a bucket");
        b.1 += 1;
        for (slot, v) in b.2.iter_mut().zip(&row.values) {
            let Some(v) = *v else { continue };
            match slot {
                None => {
                    *slot = Some(FieldStats {
                        count: 1,
                        min: v,
                        max: v,
                        sum: v,
                        last: v,
                    })
                }
                Some(s) => {
                    s.count += 1;
                    s.min = s.min.min(v);
                    s.max = s.max.max(v);
                    s.sum += v;
                    s.last = v;
                }
            }
        }
    }
    out.into_iter()
        .map(|(start, count, stats)| Bucket {
            start: from_micros(start),
            count,
            fields: info
                .fields
                .iter()
                .zip(stats)
                .filter_map(|(f, s)| s.map(|s| (f.clone(), s)))
                .collect(),
        })
        .collect()
}

/// The most series keys one [`SeriesScan`] may name.
pub const MAX_SCAN_KEYS: usize = 1000;

/// One page of a scan over a whole series table, in `(series, ts)` order:
/// what a SQL table over the time series reads page by page
/// ([`TimeSeriesStore::scan`]).
///
/// ```
/// use polyrouter::store::timeseries::SeriesScan;
/// let all = SeriesScan::all(100);
/// assert!(all.keys.is_none() && all.after.is_none());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesScan {
    /// Only these series keys (at most [`MAX_SCAN_KEYS`]); `None`: every series.
    pub keys: Option<Vec<String>>,
    /// The instants `[start, end)`.
    pub range: Range<DateTime<Utc>>,
    /// Only points strictly after this `(series, instant)`: the last point
    /// of the previous page (keyset paging).
    pub after: Option<(String, DateTime<Utc>)>,
    /// At most this many points (at least 1).
    pub limit: usize,
}

impl SeriesScan {
    /// Every point of every series, at most `limit` of them.
    ///
    /// ```
    /// let s = polyrouter::store::timeseries::SeriesScan::all(10);
    /// assert_eq!(s.limit, 10);
    /// ```
    pub fn all(limit: usize) -> Self {
        SeriesScan {
            keys: None,
            range: DateTime::<Utc>::MIN_UTC..DateTime::<Utc>::MAX_UTC,
            after: None,
            limit,
        }
    }

    /// Checks the request before any I/O: a limit of at least 1, at most
    /// [`MAX_SCAN_KEYS`] keys, each a valid series key. Returns the keys
    /// sorted and without duplicates (`None`: every series).
    ///
    /// ```
    /// use polyrouter::store::timeseries::{SeriesInfo, SeriesScan};
    /// let info = SeriesInfo::new("t", ["v"]);
    /// let mut s = SeriesScan::all(10);
    /// s.keys = Some(vec!["b".into(), "a".into(), "b".into()]);
    /// assert_eq!(s.check(&info).unwrap(), Some(vec!["a".to_string(), "b".to_string()]));
    /// s.keys = Some(vec![String::new()]);
    /// assert!(s.check(&info).is_err());
    /// ```
    pub fn check(&self, info: &SeriesInfo) -> Result<Option<Vec<String>>> {
        if self.limit == 0 {
            return Err(info.invalid("a scan limit must be at least 1"));
        }
        let Some(keys) = &self.keys else {
            return Ok(None);
        };
        if keys.len() > MAX_SCAN_KEYS {
            return Err(info.invalid(format!(
                "a scan names {} series keys; at most {MAX_SCAN_KEYS} are allowed, scan in several parts",
                keys.len()
            )));
        }
        for k in keys {
            check_series_key(info, k)?;
        }
        let mut keys = keys.clone();
        keys.sort();
        keys.dedup();
        Ok(Some(keys))
    }

    /// The range as unix microseconds `[from, to)`, its start moved past
    /// `after` when that lies in `series`'s part of the scan — for
    /// backends that walk series by series.
    ///
    /// ```
    /// use polyrouter::store::timeseries::{from_micros, SeriesScan};
    /// let mut s = SeriesScan::all(10);
    /// s.range = from_micros(0)..from_micros(100);
    /// s.after = Some(("b".into(), from_micros(40)));
    /// assert_eq!(s.span_of("a"), None); // before the cursor
    /// assert_eq!(s.span_of("b"), Some((41, 100)));
    /// assert_eq!(s.span_of("c"), Some((0, 100)));
    /// ```
    pub fn span_of(&self, series: &str) -> Option<(i64, i64)> {
        let (mut from, to) = micros_range(&self.range);
        if let Some((s, at)) = &self.after {
            match series.cmp(s.as_str()) {
                std::cmp::Ordering::Less => return None,
                std::cmp::Ordering::Equal => from = from.max(at.timestamp_micros() + 1),
                std::cmp::Ordering::Greater => {}
            }
        }
        (from < to).then_some((from, to))
    }
}

/// Time series operations. Object-safe; get one from
/// [`Store::as_time_series`](crate::Store::as_time_series).
///
/// Every method validates its input before touching storage and fails
/// with [`Error::InvalidInput`] naming the store, the series table and
/// what is wrong. Ranges are half-open: `from` included, `to` excluded.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use chrono::{Duration, Utc};
/// use polyrouter::backends::memory::MemoryStore;
/// use polyrouter::store::timeseries::{Point, SeriesInfo, TimeSeriesStore};
/// let ts: &dyn TimeSeriesStore = &MemoryStore::new("tsdb");
/// let info = SeriesInfo::new("power", ["watts"]);
/// ts.ensure_series(&info).await?;
/// let now = Utc::now();
/// ts.append(&info, &[Point::new("meter-1", now).field("watts", 1200.0)]).await?;
/// let latest = ts.latest(&info, &["meter-1".to_string(), "meter-2".to_string()], None).await?;
/// assert_eq!(latest[0].as_ref().unwrap().get("watts"), Some(1200.0));
/// assert!(latest[1].is_none());
/// let points = ts.range(&info, "meter-1", now..now + Duration::seconds(1), 10).await?;
/// assert_eq!(points.len(), 1);
/// # Ok::<(), polyrouter::Error>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait TimeSeriesStore: Send + Sync {
    /// Creates the series table (or checks it has every field); idempotent.
    /// The router calls it at start-up for every `[timeseries.NAME]`.
    async fn ensure_series(&self, series: &SeriesInfo) -> Result<()>;

    /// Writes a batch of points in one transaction (or one statement) and
    /// returns how many distinct points were written. A point whose series
    /// and timestamp are already stored replaces it. A bad point fails the
    /// whole batch with nothing written.
    async fn append(&self, series: &SeriesInfo, points: &[Point]) -> Result<u64>;

    /// The points of one series in `[from, to)`, oldest first, at most `limit`.
    async fn range(
        &self,
        series: &SeriesInfo,
        key: &str,
        range: Range<DateTime<Utc>>,
        limit: usize,
    ) -> Result<Vec<Point>>;

    /// The points of one series in `[from, to)` folded into buckets `width`
    /// wide, aligned to the Unix epoch, oldest first; buckets without points
    /// are left out.
    async fn downsample(
        &self,
        series: &SeriesInfo,
        key: &str,
        range: Range<DateTime<Utc>>,
        width: Duration,
    ) -> Result<Vec<Bucket>>;

    /// The latest point of each series key (one slot per key, in order),
    /// looking only at points at or after `since` when given.
    async fn latest(
        &self,
        series: &SeriesInfo,
        keys: &[String],
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<Option<Point>>>;

    /// Deletes every point (of every series) older than `cutoff` and
    /// returns how many were deleted.
    async fn delete_before(&self, series: &SeriesInfo, cutoff: DateTime<Utc>) -> Result<u64>;

    /// One page of a scan of the whole table (or of some series keys) in
    /// `(series, ts)` order, series keys compared byte by byte: at most
    /// `scan.limit` points in `scan.range`, strictly after `scan.after`.
    /// What SQL over time series reads (feature `analytics`). A store that
    /// cannot list its series answers [`Error::Unsupported`] (the default).
    async fn scan(&self, series: &SeriesInfo, scan: &SeriesScan) -> Result<Vec<Point>> {
        let _ = scan;
        Err(Error::unsupported(
            &series.store,
            &series.name,
            "scanning a time series table (every series, in order)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_checked() {
        assert_eq!(number(&Value::I64(3)), Ok(Some(3.0)));
        assert!(number(&Value::I64(i64::MAX)).is_err());
        assert!(number(&Value::F64(f64::NAN)).is_err());
        assert!(number(&Value::F64(f64::INFINITY)).is_err());
        assert!(number(&Value::from("1")).is_err());
        assert_eq!(number(&Value::Null), Ok(None));
    }

    #[test]
    fn buckets_align_to_the_epoch() {
        assert_eq!(bucket_start(0, 7), 0);
        assert_eq!(bucket_start(6, 7), 0);
        assert_eq!(bucket_start(7, 7), 7);
        assert_eq!(bucket_start(-7, 7), -7);
        assert_eq!(bucket_start(-8, 7), -14);
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("_x1").is_ok());
        assert!(check_name("1x").is_err());
        assert!(check_name("").is_err());
        assert!(check_name("series").is_err());
        assert!(check_name(&"a".repeat(64)).is_err());
        assert!(check_name("a\"b").is_err());
    }
}
