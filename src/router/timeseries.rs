//! [`TimeSeries`]: the router's handle on one `[timeseries.NAME]` table.

use std::ops::Range;
use std::sync::{Arc, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::{Config, TimeSeriesConfig};
use crate::store::timeseries::{Bucket, Point, SeriesInfo, SeriesScan, TimeSeriesStore};
use crate::{Error, Result, Store};

/// A handle on one time series table, from [`Router::time_series`](crate::Router::time_series).
/// Cheap to clone.
///
/// Reads never return points older than the configured `retention`, even
/// before the background purge has deleted them.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::time::Duration;
/// use chrono::{DurationRound, TimeDelta, Utc};
/// use polyrouter::store::timeseries::Point;
/// use polyrouter::Router;
///
/// let router = Router::from_toml_str(r#"
///     [stores.main]
///     kind = "memory"
///     [timeseries.telemetry]
///     store = "main"
///     fields = ["temperature", "humidity"]
///     retention = "30d"
/// "#).await?;
/// let telemetry = router.time_series("telemetry")?;
/// let hour = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap();
/// let points: Vec<Point> = (0..4)
///     .map(|i| Point::new("dev-1", hour + TimeDelta::minutes(15 * i))
///         .field("temperature", 20 + i)
///         .field("humidity", 0.5))
///     .collect();
/// telemetry.append(&points).await?;
///
/// let page = telemetry.range("dev-1", hour..hour + TimeDelta::hours(1), 3).await?;
/// assert_eq!(page.points.len(), 3);
/// let rest = telemetry.range("dev-1", page.next.unwrap(), 3).await?;
/// assert_eq!((rest.points.len(), rest.next), (1, None));
///
/// let hourly = telemetry.downsample("dev-1", hour..hour + TimeDelta::hours(1), Duration::from_secs(3600)).await?;
/// assert_eq!(hourly[0].field("temperature").unwrap().avg(), 21.5);
/// let latest = telemetry.latest(&["dev-1"]).await?;
/// assert_eq!(latest[0].as_ref().unwrap().get("temperature"), Some(23.0));
/// # Ok::<(), polyrouter::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct TimeSeries {
    info: Arc<SeriesInfo>,
    store: Arc<dyn Store>,
    retention: Option<Duration>,
}

/// One page of a [`TimeSeries::range`] read.
///
/// ```
/// let p = polyrouter::router::SeriesPage { points: vec![], next: None };
/// assert!(p.next.is_none());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesPage {
    /// The points, oldest first.
    pub points: Vec<Point>,
    /// The rest of the range, when there may be more points: pass it to
    /// the next [`TimeSeries::range`] call (keyset paging: each point is
    /// returned exactly once, whatever is appended meanwhile).
    pub next: Option<Range<DateTime<Utc>>>,
}

impl TimeSeries {
    /// Opens the handle and prepares the table (start-up).
    pub(crate) async fn open(
        config: &Config,
        name: &str,
        tc: &TimeSeriesConfig,
        store: Arc<dyn Store>,
    ) -> Result<TimeSeries> {
        tc.check(name).map_err(|(key, m)| {
            let path = match key {
                Some(k) => format!("timeseries.{name}.{k}"),
                None => format!("timeseries.{name}"),
            };
            config.error(&path, m)
        })?;
        let Some(ts) = store.as_time_series() else {
            return Err(config.error(
                &format!("timeseries.{name}.store"),
                format!(
                    "store `{}` (kind `{}`) does not support time series; use a memory, sqlite or postgres store",
                    tc.store,
                    store.kind()
                ),
            ));
        };
        let info = SeriesInfo {
            name: name.to_string(),
            table: tc.table.clone().unwrap_or_else(|| name.to_string()),
            store: tc.store.clone(),
            fields: tc.fields.clone(),
        };
        ts.ensure_series(&info).await.map_err(|e| match e {
            Error::Config {
                file,
                path,
                message,
                ..
            } if file.is_empty() => config.error(&path, message),
            e => e,
        })?;
        Ok(TimeSeries {
            info: Arc::new(info),
            store: store.clone(),
            retention: tc.retention.map(|r| r.0),
        })
    }

    fn ts(&self) -> Result<&dyn TimeSeriesStore> {
        self.store
            .as_time_series()
            .ok_or_else(|| Error::unsupported(&self.info.store, &self.info.name, "time series"))
    }

    /// The table's description: name, table, store and fields.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let r = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[timeseries.power]\nstore = \"m\"\nfields = [\"watts\"]\n").await.unwrap();
    /// assert_eq!(r.time_series("power").unwrap().info().fields, vec!["watts"]);
    /// # });
    /// ```
    pub fn info(&self) -> &SeriesInfo {
        &self.info
    }

    /// The configured retention, if any.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let r = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[timeseries.power]\nstore = \"m\"\nfields = [\"watts\"]\nretention = \"1h\"\n").await.unwrap();
    /// assert_eq!(r.time_series("power").unwrap().retention().unwrap().as_secs(), 3600);
    /// # });
    /// ```
    pub fn retention(&self) -> Option<Duration> {
        self.retention
    }

    /// The oldest instant reads may see: now minus the retention.
    fn cutoff(&self) -> Option<DateTime<Utc>> {
        let r = chrono::TimeDelta::from_std(self.retention?).ok()?;
        Utc::now().checked_sub_signed(r)
    }

    /// `range` with its start moved up to the retention cutoff.
    fn clamp(&self, range: Range<DateTime<Utc>>) -> Range<DateTime<Utc>> {
        match self.cutoff() {
            Some(c) if c > range.start => c..range.end,
            _ => range,
        }
    }

    /// Appends a batch of points in one transaction (or statement); returns
    /// how many distinct points were written. A point already stored (same
    /// series and timestamp) is replaced. A bad point (unknown field, NaN,
    /// a non-number, an empty series key) fails the whole batch with
    /// [`Error::InvalidInput`] naming it, and nothing is written.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use polyrouter::store::timeseries::Point;
    /// let r = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[timeseries.power]\nstore = \"m\"\nfields = [\"watts\"]\n").await.unwrap();
    /// let power = r.time_series("power").unwrap();
    /// let now = chrono::Utc::now();
    /// let bad = [Point::new("m1", now).field("watts", 1.0), Point::new("m1", now).field("watts", f64::NAN)];
    /// assert!(matches!(power.append(&bad).await, Err(polyrouter::Error::InvalidInput { .. })));
    /// assert!(power.latest(&["m1"]).await.unwrap()[0].is_none());
    /// # });
    /// ```
    pub async fn append(&self, points: &[Point]) -> Result<u64> {
        if points.is_empty() {
            return Ok(0);
        }
        self.ts()?.append(&self.info, points).await
    }

    /// Up to `limit` points of one series in `[range.start, range.end)`,
    /// oldest first; [`SeriesPage::next`] is the remaining range when there
    /// are more.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use polyrouter::store::timeseries::Point;
    /// let r = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[timeseries.power]\nstore = \"m\"\nfields = [\"watts\"]\n").await.unwrap();
    /// let power = r.time_series("power").unwrap();
    /// let t = chrono::Utc::now();
    /// power.append(&[Point::new("m1", t).field("watts", 5.0)]).await.unwrap();
    /// let page = power.range("m1", t..t + chrono::TimeDelta::seconds(1), 10).await.unwrap();
    /// assert_eq!((page.points.len(), page.next), (1, None));
    /// # });
    /// ```
    pub async fn range(
        &self,
        key: &str,
        range: Range<DateTime<Utc>>,
        limit: usize,
    ) -> Result<SeriesPage> {
        if limit == 0 {
            return Err(Error::invalid_input(
                &self.info.store,
                &self.info.name,
                "a range limit must be at least 1",
            ));
        }
        let end = range.end;
        let mut points = self
            .ts()?
            .range(&self.info, key, self.clamp(range), limit.saturating_add(1))
            .await?;
        let next = if points.len() > limit {
            points.truncate(limit);
            let last = points.last().expect("limit >= 1").at;
            Some(last + chrono::TimeDelta::microseconds(1)..end)
        } else {
            None
        };
        Ok(SeriesPage { points, next })
    }

    /// The points of one series in `[range.start, range.end)` folded into
    /// buckets `width` wide (aligned to the Unix epoch), each with count and
    /// min/max/avg/sum/last per field. Empty buckets are left out.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use polyrouter::store::timeseries::Point;
    /// let r = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[timeseries.power]\nstore = \"m\"\nfields = [\"watts\"]\n").await.unwrap();
    /// let power = r.time_series("power").unwrap();
    /// let t = chrono::DateTime::from_timestamp(3600, 0).unwrap();
    /// let pts: Vec<Point> = (0..3).map(|i| Point::new("m1", t + chrono::TimeDelta::minutes(i)).field("watts", i)).collect();
    /// power.append(&pts).await.unwrap();
    /// let b = power.downsample("m1", t..t + chrono::TimeDelta::hours(1), Duration::from_secs(3600)).await.unwrap();
    /// assert_eq!(b[0].field("watts").unwrap().sum, 3.0);
    /// # });
    /// ```
    pub async fn downsample(
        &self,
        key: &str,
        range: Range<DateTime<Utc>>,
        width: Duration,
    ) -> Result<Vec<Bucket>> {
        self.ts()?
            .downsample(&self.info, key, self.clamp(range), width)
            .await
    }

    /// The latest point of each series key, one slot per key, in order.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let r = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[timeseries.power]\nstore = \"m\"\nfields = [\"watts\"]\n").await.unwrap();
    /// assert_eq!(r.time_series("power").unwrap().latest(&["nobody"]).await.unwrap(), vec![None]);
    /// # });
    /// ```
    pub async fn latest<S: AsRef<str>>(&self, keys: &[S]) -> Result<Vec<Option<Point>>> {
        let keys: Vec<String> = keys.iter().map(|k| k.as_ref().to_string()).collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.ts()?.latest(&self.info, &keys, self.cutoff()).await
    }

    /// One page of a scan over every series (or `scan.keys`) in
    /// `(series, ts)` order, after `scan.after`: what SQL over time series
    /// reads. The range's start is moved up to the retention cutoff.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use polyrouter::store::timeseries::{Point, SeriesScan};
    /// let r = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[timeseries.power]\nstore = \"m\"\nfields = [\"watts\"]\n").await.unwrap();
    /// let power = r.time_series("power").unwrap();
    /// let t = chrono::Utc::now();
    /// power.append(&[Point::new("m2", t), Point::new("m1", t)]).await.unwrap();
    /// let page = power.scan(&SeriesScan::all(10)).await.unwrap();
    /// assert_eq!(page.iter().map(|p| p.series.as_str()).collect::<Vec<_>>(), ["m1", "m2"]);
    /// # });
    /// ```
    pub async fn scan(&self, scan: &SeriesScan) -> Result<Vec<Point>> {
        let range = self.clamp(scan.range.clone());
        if range == scan.range {
            return self.ts()?.scan(&self.info, scan).await;
        }
        let clamped = SeriesScan {
            range,
            ..scan.clone()
        };
        self.ts()?.scan(&self.info, &clamped).await
    }

    /// The store holding the table.
    #[cfg(feature = "analytics")]
    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Deletes the points older than the retention now, returning how many
    /// were deleted (0 without a retention). The background task does this
    /// every `purge_interval`.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use polyrouter::store::timeseries::Point;
    /// let r = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[timeseries.power]\nstore = \"m\"\nfields = [\"watts\"]\nretention = \"1h\"\n").await.unwrap();
    /// let power = r.time_series("power").unwrap();
    /// let now = chrono::Utc::now();
    /// power.append(&[Point::new("m1", now - chrono::TimeDelta::hours(2)), Point::new("m1", now)]).await.unwrap();
    /// assert_eq!(power.purge().await.unwrap(), 1);
    /// # });
    /// ```
    pub async fn purge(&self) -> Result<u64> {
        match self.cutoff() {
            Some(cutoff) => self.delete_before(cutoff).await,
            None => Ok(0),
        }
    }

    /// Deletes every point (of every series) older than `cutoff`.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let r = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[timeseries.power]\nstore = \"m\"\nfields = [\"watts\"]\n").await.unwrap();
    /// assert_eq!(r.time_series("power").unwrap().delete_before(chrono::Utc::now()).await.unwrap(), 0);
    /// # });
    /// ```
    pub async fn delete_before(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        self.ts()?.delete_before(&self.info, cutoff).await
    }
}

/// Spawns the background purge of one time series; it ends when the
/// router's stores are dropped.
pub(crate) fn spawn_purge(series: &TimeSeries, every: Duration) -> tokio::task::AbortHandle {
    let info = series.info.clone();
    let store: Weak<dyn Store> = Arc::downgrade(&series.store);
    let retention = series.retention;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate
        loop {
            tick.tick().await;
            let Some(store) = store.upgrade() else { break };
            let handle = TimeSeries {
                info: info.clone(),
                store,
                retention,
            };
            if let Err(e) = handle.purge().await {
                tracing::warn!(series = %info.name, store = %info.store, error = %e, "purging old time series points failed");
            }
        }
    })
    .abort_handle()
}
