//! The physical scan of one entity: keyset pages from its store, with the
//! pushed filter, order and limit, as a stream of record batches.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalSortExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream, SortOrderPushdownResult,
};
use futures::StreamExt;

use crate::query::{Direction, Filter, Order};
use crate::store::StoreQuery;
use crate::{Error, Key, Value};

use super::provider::Table;
use super::schema::{Source, to_batch, value_of};

/// Scans one entity through its store: what EXPLAIN shows as
/// `EntityScan: entity=… store=… (kind) filter=… order=… limit=…`.
#[derive(Debug, Clone)]
pub(crate) struct EntityScan {
    table: Arc<Table>,
    /// Indices into the table's columns.
    projection: Vec<usize>,
    schema: SchemaRef,
    /// The pushed filter (and of every exact predicate).
    filter: Option<Filter>,
    /// Pushed sort keys (the key is always appended).
    order: Vec<Order>,
    /// Pushed limit.
    fetch: Option<usize>,
    /// Read these keys (ascending) with `get_many` instead of querying:
    /// how a store without queries is scanned.
    keys: Option<Arc<Vec<Key>>>,
    properties: Arc<PlanProperties>,
}

impl EntityScan {
    pub(crate) fn new(
        table: Arc<Table>,
        projection: Vec<usize>,
        filter: Option<Filter>,
        order: Vec<Order>,
        fetch: Option<usize>,
    ) -> Self {
        let schema = Arc::new(
            table
                .arrow
                .project(&projection)
                .unwrap_or_else(|_| (*table.arrow).clone()),
        );
        let mut scan = EntityScan {
            table,
            projection,
            schema: schema.clone(),
            filter,
            order,
            fetch,
            keys: None,
            properties: Arc::new(PlanProperties::new(
                EquivalenceProperties::new(schema),
                Partitioning::UnknownPartitioning(1),
                EmissionType::Incremental,
                Boundedness::Bounded,
            )),
        };
        scan.properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new_with_orderings(scan.schema.clone(), [scan.output_order()]),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        scan
    }

    /// This scan reading `keys` (ascending, so rows still come in key
    /// order) by key instead of querying.
    pub(crate) fn with_keys(mut self, keys: Vec<Key>) -> Self {
        self.keys = Some(Arc::new(keys));
        self
    }

    /// The total order rows come in: the pushed keys, then the key.
    fn total_order(&self) -> Vec<Order> {
        let key = self.table.info.schema.key;
        let mut order = self.order.clone();
        if !order.iter().any(|o| o.field == key) {
            order.push(Order {
                field: key.into(),
                direction: Direction::Asc,
            });
        }
        order
    }

    /// The longest prefix of the total order whose columns are projected,
    /// as DataFusion sort expressions (nulls first ascending, last descending).
    fn output_order(&self) -> Vec<PhysicalSortExpr> {
        let mut out = Vec::new();
        for o in self.total_order() {
            let Some(i) = self.schema.index_of(&o.field).ok() else {
                break;
            };
            let descending = o.direction == Direction::Desc;
            out.push(PhysicalSortExpr::new(
                Arc::new(Column::new(&o.field, i)),
                SortOptions {
                    descending,
                    nulls_first: !descending,
                },
            ));
        }
        out
    }

    fn columns(&self) -> Vec<Source> {
        self.projection
            .iter()
            .map(|i| self.table.columns[*i])
            .collect()
    }

    /// What was pushed into the store, for EXPLAIN.
    fn pushed(&self) -> String {
        let mut s = String::new();
        if let Some(keys) = &self.keys {
            let shown: Vec<String> = keys.iter().take(10).map(|k| k.to_string()).collect();
            let more = if keys.len() > 10 { ", …" } else { "" };
            s.push_str(&format!(" keys=[{}{more}] (get_many)", shown.join(", ")));
        }
        match &self.filter {
            Some(f) => s.push_str(&format!(" filter=[{f}]")),
            None => s.push_str(" filter=[]"),
        }
        let order: Vec<String> = self
            .total_order()
            .iter()
            .map(|o| match o.direction {
                Direction::Asc => o.field.clone(),
                Direction::Desc => format!("{} desc", o.field),
            })
            .collect();
        s.push_str(&format!(" order=[{}]", order.join(", ")));
        if let Some(n) = self.fetch {
            s.push_str(&format!(" limit={n}"));
        }
        s.push_str(&format!(" page={}", self.table.page));
        s
    }

    /// This scan with the rows ordered by `order` in the store, if the
    /// store sorts and every key is a plain, sortable column.
    fn ordered(&self, order: &[PhysicalSortExpr]) -> Option<EntityScan> {
        if self.fetch.is_some() {
            // A limit already taken in the key order: re-ordering would change the rows.
            return None;
        }
        let schema = self.table.info.schema;
        let mut keys = Vec::new();
        for s in order {
            let col = s.expr.as_ref().downcast_ref::<Column>()?;
            let src = self.table.columns[*self.projection.get(col.index())?];
            let Source::Field(name, kind) = src else {
                return None;
            };
            if kind == crate::FieldKind::Json || name != col.name() {
                return None;
            }
            let nullable = name != schema.key && schema.field(name).is_none_or(|f| f.ty.nullable);
            if nullable && s.options.nulls_first == s.options.descending {
                // The store puts nulls first ascending and last descending.
                return None;
            }
            keys.push(Order {
                field: name.into(),
                direction: if s.options.descending {
                    Direction::Desc
                } else {
                    Direction::Asc
                },
            });
            if name == schema.key {
                break;
            }
        }
        let key_only =
            keys.len() == 1 && keys[0].field == schema.key && keys[0].direction == Direction::Asc;
        if !key_only && (self.keys.is_some() || !self.table.store.capabilities().sort) {
            return None;
        }
        let mut scan = EntityScan::new(
            self.table.clone(),
            self.projection.clone(),
            self.filter.clone(),
            if key_only { Vec::new() } else { keys },
            None,
        );
        scan.keys = self.keys.clone();
        Some(scan)
    }
}

impl DisplayAs for EntityScan {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let cols: Vec<&str> = self.columns().iter().map(|c| c.name()).collect();
        write!(
            f,
            "EntityScan: entity={} table={} store={} ({}) projection=[{}]{}",
            self.table.info.name(),
            self.table.info.table,
            self.table.info.store,
            self.table.store.kind(),
            cols.join(", "),
            self.pushed()
        )
    }
}

impl ExecutionPlan for EntityScan {
    fn name(&self) -> &str {
        "EntityScan"
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

    fn try_pushdown_sort(
        &self,
        order: &[PhysicalSortExpr],
    ) -> DfResult<SortOrderPushdownResult<Arc<dyn ExecutionPlan>>> {
        Ok(match self.ordered(order) {
            Some(s) => SortOrderPushdownResult::Exact { inner: Arc::new(s) },
            None => SortOrderPushdownResult::Unsupported,
        })
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        super::leaf::single_partition("EntityScan", partition)?;
        let cursor = Cursor {
            table: self.table.clone(),
            filter: self.filter.clone(),
            order: self.total_order(),
            columns: self.columns(),
            schema: self.schema.clone(),
            remaining: self.fetch,
            last: None,
            done: false,
            keys: self.keys.clone().map(|k| (k, 0)),
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

/// Where a scan is: the last row's sort values and the rows still wanted.
struct Cursor {
    table: Arc<Table>,
    filter: Option<Filter>,
    order: Vec<Order>,
    columns: Vec<Source>,
    schema: SchemaRef,
    remaining: Option<usize>,
    last: Option<Vec<Value>>,
    done: bool,
    /// Reading by key: the keys and how many were read.
    keys: Option<(Arc<Vec<Key>>, usize)>,
}

pub(crate) fn external(e: Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

impl Cursor {
    /// The next page as a batch; `None` after the last.
    async fn next_page(
        &mut self,
    ) -> DfResult<Option<datafusion::arrow::record_batch::RecordBatch>> {
        if self.done || self.remaining == Some(0) {
            return Ok(None);
        }
        if self.keys.is_some() {
            return self.next_by_key().await;
        }
        let t = &self.table;
        let entity = t.info.name();
        let limit = self.remaining.map_or(t.page, |r| r.min(t.page));
        let after = self
            .last
            .as_ref()
            .map(|last| crate::token::after_filter(&self.order, last));
        let filter = match (self.filter.clone(), after) {
            (Some(f), Some(a)) => Some(Filter::And(vec![f, a])),
            (f, a) => f.or(a),
        };
        if let Some(f) = &filter
            && let Some(missing) = t.store.capabilities().filters.first_unsupported(f)
        {
            return Err(external(Error::unsupported(
                &t.info.store,
                entity,
                format!("{missing}, which scanning the entity page by page (keyset) needs"),
            )));
        }
        let q = StoreQuery {
            filter,
            order: self.order.clone(),
            limit: Some(limit),
        };
        let rows = t
            .store
            .query(&t.info, &q)
            .await
            .map_err(|e| external(e.with_entity(entity)))?;
        if rows.len() < limit {
            self.done = true;
        }
        if rows.is_empty() {
            return Ok(None);
        }
        if let Some(r) = self.remaining.as_mut() {
            *r = r.saturating_sub(rows.len());
        }
        t.pulled
            .fetch_add(rows.len() as u64, std::sync::atomic::Ordering::Relaxed);
        if let Some(last) = rows.last() {
            let schema = t.info.schema;
            self.last = Some(
                self.order
                    .iter()
                    .map(|o| {
                        let kind = schema
                            .field(&o.field)
                            .map_or(crate::FieldKind::String, |f| f.ty.kind);
                        value_of(
                            schema,
                            last,
                            &Source::Field(schema_name(schema, &o.field), kind),
                        )
                    })
                    .collect(),
            );
        }
        to_batch(t.info.schema, &self.columns, self.schema.clone(), &rows)
            .map(Some)
            .map_err(|m| external(Error::backend(&t.info.store, entity, m)))
    }
}

impl Cursor {
    /// The next page of a read by key: up to a page of keys through
    /// `get_many` (absent keys leave no row).
    async fn next_by_key(
        &mut self,
    ) -> DfResult<Option<datafusion::arrow::record_batch::RecordBatch>> {
        let t = &self.table;
        let entity = t.info.name();
        let Some((keys, at)) = self.keys.as_mut() else {
            return Ok(None);
        };
        let mut rows = Vec::new();
        while rows.is_empty() && *at < keys.len() {
            let end = (*at + t.page).min(keys.len());
            let found = t
                .store
                .get_many(&t.info, &keys[*at..end])
                .await
                .map_err(|e| external(e.with_entity(entity)))?;
            *at = end;
            rows.extend(found.into_iter().flatten());
        }
        if rows.is_empty() {
            self.done = true;
            return Ok(None);
        }
        if let Some(r) = self.remaining.as_mut() {
            rows.truncate(*r);
            *r -= rows.len();
        }
        t.pulled
            .fetch_add(rows.len() as u64, std::sync::atomic::Ordering::Relaxed);
        to_batch(t.info.schema, &self.columns, self.schema.clone(), &rows)
            .map(Some)
            .map_err(|m| external(Error::backend(&t.info.store, entity, m)))
    }
}

/// The schema's own `'static` name for a field.
fn schema_name(schema: &'static crate::Schema, field: &str) -> &'static str {
    if field == schema.key {
        return schema.key;
    }
    schema.field(field).map_or(schema.key, |f| f.name)
}
