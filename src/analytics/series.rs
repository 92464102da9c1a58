//! A DataFusion table per `[timeseries.NAME]`: columns `series`, `ts` and
//! one Float64 per field, read through the store's scan in `(series, ts)`
//! keyset pages with the time range and the series keys pushed down.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use datafusion::arrow::array::{
    ArrayRef, Float64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{DataType, Field, Schema as ArrowSchema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::Result as DfResult;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalSortExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use datafusion::scalar::ScalarValue;
use futures::StreamExt;

use crate::router::TimeSeries;
use crate::store::timeseries::{MAX_SCAN_KEYS, Point, SeriesScan, from_micros};

use super::scan::external;

/// The column of the series key.
const SERIES: &str = "series";
/// The column of the instant.
const TS: &str = "ts";

/// The Arrow schema of a time series table: `series` (Utf8), `ts`
/// (Timestamp µs UTC), then each field (Float64, nullable).
pub(crate) fn series_schema(fields: &[String]) -> SchemaRef {
    let mut cols = vec![
        Field::new(SERIES, DataType::Utf8, false),
        Field::new(
            TS,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ];
    cols.extend(
        fields
            .iter()
            .map(|f| Field::new(f, DataType::Float64, true)),
    );
    Arc::new(ArrowSchema::new(cols))
}

/// What a scan asks of the store: `[from, to)` in unix microseconds and,
/// when given, only these series keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bounds {
    pub from: i64,
    pub to: i64,
    pub keys: Option<BTreeSet<String>>,
}

impl Bounds {
    /// Every point.
    pub(crate) fn all() -> Self {
        Bounds {
            from: DateTime::<Utc>::MIN_UTC.timestamp_micros(),
            to: DateTime::<Utc>::MAX_UTC.timestamp_micros(),
            keys: None,
        }
    }

    /// The points both bounds hold.
    pub(crate) fn and(self, other: Bounds) -> Bounds {
        let keys = match (self.keys, other.keys) {
            (Some(a), Some(b)) => Some(a.intersection(&b).cloned().collect()),
            (a, b) => a.or(b),
        };
        Bounds {
            from: self.from.max(other.from),
            to: self.to.min(other.to),
            keys,
        }
    }

    fn range(from: i64, to: i64) -> Bounds {
        Bounds {
            from,
            to,
            ..Bounds::all()
        }
    }

    fn keys(keys: BTreeSet<String>) -> Bounds {
        Bounds {
            keys: Some(keys),
            ..Bounds::all()
        }
    }

    /// Whether no point can match.
    fn is_empty(&self) -> bool {
        self.from >= self.to || self.keys.as_ref().is_some_and(BTreeSet::is_empty)
    }
}

impl fmt::Display for Bounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all = Bounds::all();
        let instant =
            |us: i64| from_micros(us).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        write!(f, "range=[")?;
        if self.from != all.from {
            write!(f, "{}", instant(self.from))?;
        }
        write!(f, ", ")?;
        if self.to != all.to {
            write!(f, "{}", instant(self.to))?;
        }
        write!(f, ")")?;
        if let Some(keys) = &self.keys {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            write!(f, " series=[{}]", keys.join(", "))?;
        }
        Ok(())
    }
}

/// Deeper predicates than this stay in DataFusion.
const MAX_DEPTH: usize = 32;

/// The bounds holding exactly the rows for which `e` is true, if it
/// translates: comparisons and `BETWEEN` of `ts` with a timestamp literal,
/// `series = 'x'` and `series IN (...)`, and `AND` of those (`OR` of
/// series keys). Every `ts` is whole microseconds, so a bound of any
/// precision translates exactly.
pub(crate) fn bounds(e: &Expr) -> Option<Bounds> {
    bounds_at(e, 0)
}

fn bounds_at(e: &Expr, depth: usize) -> Option<Bounds> {
    if depth > MAX_DEPTH {
        return None;
    }
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And => Some(bounds_at(left, depth + 1)?.and(bounds_at(right, depth + 1)?)),
            Operator::Or => {
                // Only a union of series keys over the whole range is exact.
                let (l, r) = (bounds_at(left, depth + 1)?, bounds_at(right, depth + 1)?);
                let all = Bounds::all();
                if (l.from, l.to, r.from, r.to) != (all.from, all.to, all.from, all.to) {
                    return None;
                }
                let mut keys = l.keys?;
                keys.extend(r.keys?);
                (keys.len() <= MAX_SCAN_KEYS).then(|| Bounds::keys(keys))
            }
            _ => comparison(left, *op, right),
        },
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) => {
            is_ts(expr).then_some(())?;
            let lo = ts_bound(Operator::GtEq, nanos(low)?)?;
            let hi = ts_bound(Operator::LtEq, nanos(high)?)?;
            Some(lo.and(hi))
        }
        Expr::InList(l) if !l.negated && is_column(&l.expr, SERIES) => {
            let keys = l.list.iter().map(text).collect::<Option<BTreeSet<_>>>()?;
            (keys.len() <= MAX_SCAN_KEYS).then(|| Bounds::keys(keys))
        }
        _ => None,
    }
}

/// `column op literal`, either way round.
fn comparison(left: &Expr, op: Operator, right: &Expr) -> Option<Bounds> {
    let (col, lit, op) = if is_ts(left) || is_column(left, SERIES) {
        (left, right, op)
    } else {
        (right, left, op.swap()?)
    };
    if is_column(col, SERIES) {
        let key = text(lit).filter(|_| op == Operator::Eq)?;
        return Some(Bounds::keys([key].into()));
    }
    if !is_ts(col) {
        return None;
    }
    ts_bound(op, nanos(lit)?)
}

/// `ts op L` (L in nanoseconds) as a range of whole microseconds.
fn ts_bound(op: Operator, l: i128) -> Option<Bounds> {
    let floor = l.div_euclid(1000);
    let ceil = -((-l).div_euclid(1000));
    let (from, to) = match op {
        Operator::GtEq => (Some(ceil), None),
        Operator::Gt => (Some(floor + 1), None),
        Operator::Lt => (None, Some(ceil)),
        Operator::LtEq => (None, Some(floor + 1)),
        Operator::Eq if l.rem_euclid(1000) == 0 => (Some(floor), Some(floor + 1)),
        Operator::Eq => (Some(0), Some(0)),
        _ => return None,
    };
    let all = Bounds::all();
    let clamp = |v: i128| v.clamp(i128::from(all.from), i128::from(all.to)) as i64;
    Some(Bounds::range(
        from.map_or(all.from, clamp),
        to.map_or(all.to, clamp),
    ))
}

fn is_column(e: &Expr, name: &str) -> bool {
    matches!(e, Expr::Column(c) if c.name == name)
}

/// The `ts` column, or a lossless cast of it (to micro- or nanoseconds,
/// any time zone: the instant is the same number).
fn is_ts(e: &Expr) -> bool {
    match e {
        Expr::Cast(c) => {
            matches!(
                c.field.data_type(),
                DataType::Timestamp(TimeUnit::Microsecond | TimeUnit::Nanosecond, _)
            ) && is_column(&c.expr, TS)
        }
        e => is_column(e, TS),
    }
}

/// A timestamp literal as unix nanoseconds.
fn nanos(e: &Expr) -> Option<i128> {
    let Expr::Literal(s, _) = e else { return None };
    Some(match s {
        ScalarValue::TimestampSecond(Some(v), _) => i128::from(*v) * 1_000_000_000,
        ScalarValue::TimestampMillisecond(Some(v), _) => i128::from(*v) * 1_000_000,
        ScalarValue::TimestampMicrosecond(Some(v), _) => i128::from(*v) * 1_000,
        ScalarValue::TimestampNanosecond(Some(v), _) => i128::from(*v),
        _ => return None,
    })
}

/// A non-null string literal.
fn text(e: &Expr) -> Option<String> {
    match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
            _,
        ) => Some(s.clone()),
        _ => None,
    }
}

/// The [`TableProvider`] of one time series.
#[derive(Debug)]
pub(crate) struct SeriesTable {
    pub series: TimeSeries,
    pub arrow: SchemaRef,
    /// Points asked of the store per page.
    pub page: usize,
    /// Points pulled from the store by every scan of this table.
    pub pulled: Arc<AtomicU64>,
}

impl SeriesTable {
    pub(crate) fn new(series: TimeSeries, page: usize, pulled: Arc<AtomicU64>) -> Self {
        SeriesTable {
            arrow: series_schema(&series.info().fields),
            series,
            page: page.max(1),
            pulled,
        }
    }
}

#[async_trait]
impl TableProvider for SeriesTable {
    fn schema(&self) -> SchemaRef {
        self.arrow.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match bounds(f) {
                Some(_) => TableProviderFilterPushDown::Exact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let projection = projection
            .cloned()
            .unwrap_or_else(|| (0..self.arrow.fields().len()).collect());
        let bounds = filters
            .iter()
            .filter_map(bounds)
            .fold(Bounds::all(), Bounds::and);
        Ok(Arc::new(SeriesScanExec::new(
            self, projection, bounds, limit,
        )?))
    }
}

/// Scans one time series through its store: what EXPLAIN shows as
/// `SeriesScan: series=… store=… (kind) range=[…) series=[…] limit=…`.
#[derive(Debug, Clone)]
pub(crate) struct SeriesScanExec {
    series: TimeSeries,
    /// Indices into the table's columns.
    projection: Vec<usize>,
    schema: SchemaRef,
    bounds: Bounds,
    fetch: Option<usize>,
    page: usize,
    pulled: Arc<AtomicU64>,
    properties: Arc<PlanProperties>,
}

impl SeriesScanExec {
    fn new(
        table: &SeriesTable,
        projection: Vec<usize>,
        bounds: Bounds,
        fetch: Option<usize>,
    ) -> DfResult<Self> {
        let schema = Arc::new(table.arrow.project(&projection)?);
        // Rows come in (series, ts) order: the projected prefix of it.
        let mut order = Vec::new();
        for name in [SERIES, TS] {
            let Ok(i) = schema.index_of(name) else { break };
            order.push(PhysicalSortExpr::new(
                Arc::new(Column::new(name, i)),
                SortOptions {
                    descending: false,
                    nulls_first: false,
                },
            ));
        }
        let eq = EquivalenceProperties::new_with_orderings(schema.clone(), [order]);
        Ok(SeriesScanExec {
            series: table.series.clone(),
            projection,
            schema,
            bounds,
            fetch,
            page: table.page,
            pulled: table.pulled.clone(),
            properties: Arc::new(PlanProperties::new(
                eq,
                Partitioning::UnknownPartitioning(1),
                EmissionType::Incremental,
                Boundedness::Bounded,
            )),
        })
    }
}

impl DisplayAs for SeriesScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let info = self.series.info();
        let cols: Vec<&str> = self
            .schema
            .fields()
            .iter()
            .map(|c| c.name().as_str())
            .collect();
        write!(
            f,
            "SeriesScan: series={} table={} store={} ({}) projection=[{}] {}",
            info.name,
            info.table,
            info.store,
            self.series.store().kind(),
            cols.join(", "),
            self.bounds
        )?;
        if let Some(n) = self.fetch {
            write!(f, " limit={n}")?;
        }
        write!(f, " page={}", self.page)
    }
}

impl ExecutionPlan for SeriesScanExec {
    fn name(&self) -> &str {
        "SeriesScan"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        super::leaf::without_children(self, &children)
    }

    fn with_fetch(&self, limit: Option<usize>) -> Option<Arc<dyn ExecutionPlan>> {
        let mut s = self.clone();
        s.fetch = super::leaf::tighter_fetch(self.fetch, limit);
        Some(Arc::new(s))
    }

    fn fetch(&self) -> Option<usize> {
        self.fetch
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        super::leaf::single_partition("SeriesScan", partition)?;
        let cursor = Cursor {
            scan: self.clone(),
            after: None,
            remaining: self.fetch,
            done: self.bounds.is_empty(),
        };
        let stream = futures::stream::try_unfold(cursor, |mut c| async move {
            match c.next_page().await? {
                Some(batch) => Ok(Some((batch, c))),
                None => Ok(None),
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            stream.boxed(),
        )))
    }
}

/// Where a scan is: the last point's `(series, instant)` and the rows
/// still wanted.
struct Cursor {
    scan: SeriesScanExec,
    after: Option<(String, DateTime<Utc>)>,
    remaining: Option<usize>,
    done: bool,
}

impl Cursor {
    async fn next_page(&mut self) -> DfResult<Option<RecordBatch>> {
        if self.done || self.remaining == Some(0) {
            return Ok(None);
        }
        let s = &self.scan;
        let limit = self.remaining.map_or(s.page, |r| r.min(s.page));
        let request = SeriesScan {
            keys: s.bounds.keys.as_ref().map(|k| k.iter().cloned().collect()),
            range: from_micros(s.bounds.from)..from_micros(s.bounds.to),
            after: self.after.take(),
            limit,
        };
        let points = s.series.scan(&request).await.map_err(external)?;
        if points.len() < limit {
            self.done = true;
        }
        let Some(last) = points.last() else {
            return Ok(None);
        };
        self.after = Some((last.series.clone(), last.at));
        if let Some(r) = self.remaining.as_mut() {
            *r = r.saturating_sub(points.len());
        }
        s.pulled.fetch_add(points.len() as u64, Ordering::Relaxed);
        to_batch(
            &s.series.info().fields,
            &s.projection,
            s.schema.clone(),
            &points,
        )
        .map(Some)
    }
}

/// The projected columns of `points` as one record batch.
fn to_batch(
    fields: &[String],
    projection: &[usize],
    schema: SchemaRef,
    points: &[Point],
) -> DfResult<RecordBatch> {
    let arrays: Vec<ArrayRef> = projection
        .iter()
        .map(|&i| -> ArrayRef {
            match i {
                0 => {
                    let mut b = StringBuilder::new();
                    points.iter().for_each(|p| b.append_value(&p.series));
                    Arc::new(b.finish())
                }
                1 => {
                    let mut b = TimestampMicrosecondBuilder::new().with_timezone("UTC");
                    points
                        .iter()
                        .for_each(|p| b.append_value(p.at.timestamp_micros()));
                    Arc::new(b.finish())
                }
                i => {
                    let name = &fields[i - 2];
                    let mut b = Float64Builder::new();
                    points.iter().for_each(|p| b.append_option(p.get(name)));
                    Arc::new(b.finish())
                }
            }
        })
        .collect();
    let options = RecordBatchOptions::new().with_row_count(Some(points.len()));
    Ok(RecordBatch::try_new_with_options(schema, arrays, &options)?)
}
