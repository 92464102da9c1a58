//! A DataFusion table per routed entity.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use crate::query::Filter;
use crate::store::EntityInfo;
use crate::{Key, Store};

use super::pushdown::{Pushed, key_set, push};
use super::scan::EntityScan;
use super::schema::{Source, arrow_schema, columns};

/// One entity's table: its store, schema and page size.
#[derive(Debug)]
pub(crate) struct Table {
    pub info: EntityInfo,
    pub store: Arc<dyn Store>,
    pub columns: Vec<Source>,
    pub arrow: SchemaRef,
    /// Rows asked of the store per keyset page.
    pub page: usize,
    /// Rows pulled from the store by every scan of this table.
    pub pulled: Arc<AtomicU64>,
}

impl Table {
    pub(crate) fn new(
        info: EntityInfo,
        store: Arc<dyn Store>,
        page: usize,
        pulled: Arc<AtomicU64>,
    ) -> Self {
        Table {
            columns: columns(info.schema),
            arrow: arrow_schema(info.schema),
            info,
            store,
            page: page.max(1),
            pulled,
        }
    }

    fn push(&self, e: &Expr) -> Pushed {
        let caps = self.store.capabilities();
        if !caps.query {
            return Pushed::Unsupported;
        }
        push(self.info.schema, &self.columns, &caps.filters, e)
    }

    /// The keys a predicate pins the key to (at most [`MAX_LOOKUP_KEYS`]).
    fn keys(&self, e: &Expr) -> Option<BTreeSet<Key>> {
        key_set(self.info.schema, e, MAX_LOOKUP_KEYS)
    }
}

/// The most keys a table of a store without queries reads by key in one
/// scan.
pub(crate) const MAX_LOOKUP_KEYS: usize = 10_000;

/// The [`TableProvider`] of one entity.
#[derive(Debug)]
pub(crate) struct EntityTable(pub Arc<Table>);

#[async_trait]
impl TableProvider for EntityTable {
    fn schema(&self) -> SchemaRef {
        self.0.arrow.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        let t = &self.0;
        if !t.store.capabilities().query {
            // Read by key: the key predicates are exact, the rest DataFusion's.
            return Ok(filters
                .iter()
                .map(|f| match t.keys(f) {
                    Some(_) => TableProviderFilterPushDown::Exact,
                    None => TableProviderFilterPushDown::Unsupported,
                })
                .collect());
        }
        Ok(filters
            .iter()
            .map(|f| match t.push(f) {
                Pushed::Exact(_) => TableProviderFilterPushDown::Exact,
                Pushed::Unsupported => TableProviderFilterPushDown::Unsupported,
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
        let t = &self.0;
        let projection = projection
            .cloned()
            .unwrap_or_else(|| (0..t.columns.len()).collect());
        if !t.store.capabilities().query {
            // No listing: only the keys the WHERE clause names can be read.
            let Some(keys) = filters
                .iter()
                .filter_map(|f| t.keys(f))
                .reduce(|a, b| a.intersection(&b).cloned().collect())
            else {
                return Err(super::scan::external(crate::Error::unsupported(
                    &t.info.store,
                    t.info.name(),
                    format!(
                        "query (listing the entity's records), which a SQL scan needs; read it by key (`WHERE {key} = …` or `{key} IN (…)`), or route the entity to a store that queries",
                        key = t.info.schema.key
                    ),
                )));
            };
            return Ok(Arc::new(
                EntityScan::new(self.0.clone(), projection, None, Vec::new(), limit)
                    .with_keys(keys.into_iter().collect()),
            ));
        }
        let mut pushed: Vec<Filter> = Vec::new();
        for f in filters {
            if let Pushed::Exact(f) = t.push(f) {
                pushed.push(f);
            }
        }
        let filter = match pushed.len() {
            0 => None,
            1 => pushed.pop(),
            _ => Some(Filter::And(pushed)),
        };
        Ok(Arc::new(EntityScan::new(
            self.0.clone(),
            projection,
            filter,
            Vec::new(),
            limit,
        )))
    }
}
