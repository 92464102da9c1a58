//! `search('entity', 'text')`: an entity's full-text search index as a
//! table of `(key, score)`, best first, read page by page.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema as ArrowSchema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use datafusion::scalar::ScalarValue;
use futures::StreamExt;

use crate::aggregate::DynRepo;
use crate::router::SearchQuery;
use crate::{Error, Key, KeyKind, Router};

use super::scan::external;

/// The `search` table function of a SQL session.
#[derive(Debug)]
pub(crate) struct SearchFn {
    pub router: Router,
    pub page: u32,
}

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

impl TableFunctionImpl for SearchFn {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        let (Some(entity), Some(query), 2) = (
            exprs.first().and_then(text),
            exprs.get(1).and_then(text),
            exprs.len(),
        ) else {
            return Err(DataFusionError::Plan(
                "search() takes two string literals: search('entity', 'text')".into(),
            ));
        };
        let Some(repo) = self.router.dyn_repo(&entity) else {
            return Err(external(Error::invalid_input(
                "sql",
                &entity,
                "search(): no Rust type is bound to this entity; call router.repo::<T>() first",
            )));
        };
        let key = match repo.schema().key_kind {
            KeyKind::Int => DataType::Int64,
            KeyKind::Str | KeyKind::Uuid => DataType::Utf8,
        };
        let schema = Arc::new(ArrowSchema::new(vec![
            Field::new("key", key, false),
            Field::new("score", DataType::Float64, false),
        ]));
        Ok(Arc::new(SearchTable(Arc::new(Search {
            repo,
            entity,
            query,
            schema,
            page: self.page.max(1),
        }))))
    }
}

struct Search {
    repo: Arc<dyn DynRepo>,
    entity: String,
    query: String,
    schema: SchemaRef,
    page: u32,
}

impl fmt::Debug for Search {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Search")
            .field("entity", &self.entity)
            .field("query", &self.query)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct SearchTable(Arc<Search>);

#[async_trait]
impl TableProvider for SearchTable {
    fn schema(&self) -> SchemaRef {
        self.0.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let projection = projection.cloned().unwrap_or_else(|| vec![0, 1]);
        let schema = Arc::new(self.0.schema.project(&projection)?);
        Ok(Arc::new(SearchScan {
            search: self.0.clone(),
            projection,
            properties: Arc::new(PlanProperties::new(
                EquivalenceProperties::new(schema.clone()),
                Partitioning::UnknownPartitioning(1),
                EmissionType::Incremental,
                Boundedness::Bounded,
            )),
            schema,
            fetch: limit,
        }))
    }
}

#[derive(Debug)]
struct SearchScan {
    search: Arc<Search>,
    projection: Vec<usize>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    fetch: Option<usize>,
}

impl DisplayAs for SearchScan {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "SearchScan: entity={} store={} text={:?} page={}",
            self.search.entity,
            self.search.repo.store(),
            self.search.query,
            self.search.page
        )?;
        if let Some(n) = self.fetch {
            write!(f, " limit={n}")?;
        }
        Ok(())
    }
}

struct Pages {
    search: Arc<Search>,
    projection: Vec<usize>,
    schema: SchemaRef,
    after: Option<String>,
    remaining: Option<usize>,
    done: bool,
}

impl Pages {
    async fn next(&mut self) -> DfResult<Option<RecordBatch>> {
        if self.done || self.remaining == Some(0) {
            return Ok(None);
        }
        let s = &self.search;
        let limit = self
            .remaining
            .map_or(s.page, |r| r.min(s.page as usize) as u32);
        let mut q = SearchQuery::new(s.query.clone()).limit(limit);
        if let Some(t) = self.after.take() {
            q = q.after(t);
        }
        let (hits, next) = s.repo.search_page(q).await.map_err(external)?;
        self.done = next.is_none() || hits.is_empty();
        self.after = next;
        if hits.is_empty() {
            return Ok(None);
        }
        if let Some(r) = self.remaining.as_mut() {
            *r = r.saturating_sub(hits.len());
        }
        let key: ArrayRef = match s.repo.schema().key_kind {
            KeyKind::Int => Arc::new(Int64Array::from_iter_values(hits.iter().map(
                |(k, _)| match k {
                    Key::Int(i) => *i,
                    _ => 0,
                },
            ))),
            _ => Arc::new(StringArray::from_iter_values(hits.iter().map(
                |(k, _)| match k {
                    Key::Str(s) => s.clone(),
                    other => other.to_string(),
                },
            ))),
        };
        let score: ArrayRef =
            Arc::new(Float64Array::from_iter_values(hits.iter().map(|(_, s)| *s)));
        let all = [key, score];
        let cols = self.projection.iter().map(|i| all[*i].clone()).collect();
        let options = datafusion::arrow::record_batch::RecordBatchOptions::new()
            .with_row_count(Some(hits.len()));
        RecordBatch::try_new_with_options(self.schema.clone(), cols, &options)
            .map(Some)
            .map_err(|e| DataFusionError::ArrowError(Box::new(e), None))
    }
}

impl ExecutionPlan for SearchScan {
    fn name(&self) -> &str {
        "SearchScan"
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

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        super::leaf::single_partition("SearchScan", partition)?;
        let pages = Pages {
            search: self.search.clone(),
            projection: self.projection.clone(),
            schema: self.schema.clone(),
            after: None,
            remaining: self.fetch,
            done: false,
        };
        let stream = futures::stream::try_unfold(pages, |mut p| async move {
            Ok(p.next().await?.map(|b| (b, p)))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            stream.boxed(),
        )))
    }
}
