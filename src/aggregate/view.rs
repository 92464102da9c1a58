//! Running `[views.NAME]`: each branch becomes an aggregate branch over
//! the entity's type-erased repository.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value as Json;

use super::dynrepo::json_key;
use super::graph::{GraphOp, GraphRead, graph_run};
use super::{
    Aggregate, Aggregated, Branch, DynRepo, Inputs, Produced, Run, join_values, search_json,
};
use crate::config::{ViewBranch, ViewConfig, ViewDirection, ViewGraph, ViewGraphOp, ViewSearch};
use crate::query::{Filter, field};
use crate::router::SearchQuery;
use crate::store::graph::EdgeDirection;
use crate::{Error, FieldKind, Query, Result, Router, Schema, Value};

fn bad(view: &str, msg: impl std::fmt::Display) -> Error {
    Error::invalid_input("view", "", format!("view `{view}`: {msg}"))
}

/// A literal or `"$param"` from the view definition, as JSON.
fn resolve(view: &str, v: &toml::Value, params: &serde_json::Map<String, Json>) -> Result<Json> {
    if let Some(p) = v.as_str().and_then(|s| s.strip_prefix('$')) {
        return params
            .get(p)
            .cloned()
            .ok_or_else(|| bad(view, format!("parameter `{p}` is missing")));
    }
    serde_json::to_value(v).map_err(|e| bad(view, e))
}

/// A JSON value as a field value of `kind`.
fn json_value(kind: FieldKind, j: &Json) -> Option<Value> {
    Some(match (kind, j) {
        (_, Json::Null) => Value::Null,
        (FieldKind::Bool, Json::Bool(b)) => Value::Bool(*b),
        (FieldKind::Int, Json::Number(n)) => Value::I64(n.as_i64()?),
        (FieldKind::Int, Json::String(s)) => Value::I64(s.parse().ok()?),
        (FieldKind::Float, Json::Number(n)) => Value::F64(n.as_f64()?),
        (FieldKind::String, Json::String(s)) => Value::String(s.clone()),
        (FieldKind::String, Json::Number(n)) => Value::String(n.to_string()),
        (FieldKind::Uuid, Json::String(s)) => Value::Uuid(s.parse().ok()?),
        (FieldKind::Timestamp, Json::String(s)) => {
            Value::timestamp(chrono::DateTime::parse_from_rfc3339(s).ok()?)
        }
        (FieldKind::Json, j) => Value::Json(j.clone()),
        _ => return None,
    })
}

/// Equality filters (field → `"$param"` or a literal) as one filter,
/// each value converted to its field's kind.
fn eq_filter<'a>(
    view: &str,
    name: &str,
    schema: &Schema,
    filter: impl IntoIterator<Item = (&'a String, &'a toml::Value)>,
    params: &serde_json::Map<String, Json>,
) -> Result<Option<Filter>> {
    let mut out: Option<Filter> = None;
    for (f, v) in filter {
        let def = schema.field(f).ok_or_else(|| {
            bad(
                view,
                format!(
                    "branch `{name}` filters on `{f}`, which `{}` does not have",
                    schema.name
                ),
            )
        })?;
        let j = resolve(view, v, params)?;
        let value = json_value(def.ty.kind, &j).ok_or_else(|| {
            bad(
                view,
                format!(
                    "branch `{name}`: {j} is not a {} for field `{f}`",
                    def.ty.kind.name()
                ),
            )
        })?;
        let cond = field(f.clone()).eq(value);
        out = Some(match out.take() {
            Some(prev) => prev.and(cond),
            None => cond,
        });
    }
    Ok(out)
}

fn query_for(
    view: &str,
    name: &str,
    schema: &Schema,
    b: &ViewBranch,
    params: &serde_json::Map<String, Json>,
) -> Result<Query> {
    let mut q = Query::new();
    q.filter = eq_filter(view, name, schema, b.filter.iter().flatten(), params)?;
    if let Some(o) = &b.order_by {
        q = match o.strip_prefix('-') {
            Some(desc) => q.order_by_desc(desc),
            None => q.order_by(o.clone()),
        };
    }
    if let Some(l) = b.limit {
        q = q.limit(l);
    }
    Ok(q)
}

fn search_for(
    view: &str,
    name: &str,
    schema: &Schema,
    s: &ViewSearch,
    params: &serde_json::Map<String, Json>,
) -> Result<SearchQuery> {
    let text = match &s.text {
        None => String::new(),
        Some(t) => match resolve(view, t, params)? {
            Json::String(t) => t,
            Json::Null => String::new(),
            other => {
                return Err(bad(
                    view,
                    format!("branch `{name}`: the search text must be a string, not {other}"),
                ));
            }
        },
    };
    let mut q = SearchQuery::new(text);
    q.filter = eq_filter(view, name, schema, s.filter.iter().flatten(), params)?;
    q.limit = s.limit;
    Ok(q)
}

fn graph_read(
    view: &str,
    name: &str,
    g: &ViewGraph,
    params: &serde_json::Map<String, Json>,
) -> Result<GraphRead> {
    let vertex = match resolve(view, &g.vertex, params)? {
        Json::String(s) => s,
        Json::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        other => {
            return Err(bad(
                view,
                format!("branch `{name}`: the graph vertex must be a string id, not {other}"),
            ));
        }
    };
    let op = match g.op {
        ViewGraphOp::Out => GraphOp::Neighbours(EdgeDirection::Out),
        ViewGraphOp::In => GraphOp::Neighbours(EdgeDirection::In),
        ViewGraphOp::Mutual => GraphOp::Mutual,
        ViewGraphOp::Recommend => GraphOp::Recommend,
        ViewGraphOp::Degree => GraphOp::Degree(match g.direction.unwrap_or_default() {
            ViewDirection::Out => EdgeDirection::Out,
            ViewDirection::In => EdgeDirection::In,
        }),
    };
    Ok(GraphRead {
        op,
        vertex,
        label: g.label.clone(),
        limit: g.limit.map(|l| l as usize),
    })
}

impl Router {
    /// Runs the view `[views.NAME]` with `params` (an object holding every
    /// declared parameter), returning one value or failure per branch
    /// ([`Aggregated::to_json`] gives `{"data": .., "errors": ..}`).
    ///
    /// Each entity a view reads must have been bound to its Rust type
    /// first ([`Router::repo`] or [`RouterBuilder::entity`](crate::RouterBuilder::entity)),
    /// which gives its records their JSON form.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)]
    /// struct User { id: String, name: String }
    /// let router = polyrouter::Router::builder()
    ///     .config(polyrouter::config::Config::parse(r#"
    ///         [stores.m]
    ///         kind = "memory"
    ///         [entities.user]
    ///         store = "m"
    ///         [views.profile]
    ///         params = ["id"]
    ///         branches.user = { entity = "user", get = "$id", required = true }
    ///     "#, "<string>").unwrap())
    ///     .entity::<User>()
    ///     .build().await.unwrap();
    /// router.repo::<User>().await.unwrap().put(&User { id: "u1".into(), name: "Ada".into() }).await.unwrap();
    /// let out = router.view("profile", serde_json::json!({"id": "u1"})).await.unwrap();
    /// assert_eq!(out.to_json()["data"]["user"]["name"], "Ada");
    /// # });
    /// ```
    pub async fn view(&self, name: &str, params: impl Serialize) -> Result<Aggregated> {
        let def = self
            .config()
            .views
            .get(name)
            .cloned()
            .ok_or_else(|| bad(name, "no such view; add a [views.NAME] table"))?;
        let params = match serde_json::to_value(params).map_err(|e| bad(name, e))? {
            Json::Object(m) => m,
            Json::Null => serde_json::Map::new(),
            other => {
                return Err(bad(
                    name,
                    format!("parameters must be an object, not {other}"),
                ));
            }
        };
        for p in params.keys() {
            if !def.params.contains(p) {
                return Err(bad(
                    name,
                    format!("unknown parameter `{p}`; it declares {:?}", def.params),
                ));
            }
        }
        for p in &def.params {
            if !params.contains_key(p) {
                return Err(bad(name, format!("parameter `{p}` is missing")));
            }
        }
        let agg = self.view_aggregate(name, &def, &params)?;
        agg.run().await
    }

    fn view_aggregate(
        &self,
        view: &str,
        def: &ViewConfig,
        params: &serde_json::Map<String, Json>,
    ) -> Result<Aggregate> {
        let mut agg = self.aggregate();
        if let Some(t) = def.timeout {
            agg = agg.timeout(t.0);
        }
        // Dependencies first: a join after the branch it reads.
        let mut order: Vec<&String> = Vec::new();
        while order.len() < def.branches.len() {
            let before = order.len();
            for (n, b) in &def.branches {
                let ready = b.join.as_ref().is_none_or(|j| order.contains(&&j.from));
                if !order.contains(&n) && ready {
                    order.push(n);
                }
            }
            if order.len() == before {
                return Err(bad(view, "joins form a cycle"));
            }
        }
        for n in order {
            let b = &def.branches[n];
            let repo: Option<Arc<dyn DynRepo>> = if b.entity.is_empty() {
                None
            } else {
                Some(self.dyn_repo(&b.entity).ok_or_else(|| {
                    bad(
                        view,
                        format!(
                            "entity `{}` is not bound to a Rust type yet; call router.repo::<T>() or RouterBuilder::entity::<T>() first",
                            b.entity
                        ),
                    )
                })?)
            };
            let ctx = agg.ctx.clone();
            let mut store = repo_store(self, &b.entity);
            let mut store_from_error = false;
            let run: Run = if let Some(g) = &b.graph {
                let graph = self.graph(&g.name)?;
                let read = graph_read(view, n, g, params)?;
                if repo.is_some() && matches!(read.op, GraphOp::Degree(_)) {
                    return Err(bad(
                        view,
                        format!("branch `{n}`: a degree cannot be read as records"),
                    ));
                }
                let limit = read
                    .limit
                    .unwrap_or(self.config().router.page_size as usize);
                store = graph.info().store.clone();
                store_from_error = true;
                graph_run(graph, read, limit, repo.map(|r| (r, ctx)))
            } else {
                let repo = repo.ok_or_else(|| {
                    bad(
                        view,
                        format!("branch `{n}` needs `entity`, the entity it reads"),
                    )
                })?;
                let schema = repo.schema();
                if let Some(g) = &b.get {
                    let j = resolve(view, g, params)?;
                    let key = json_key(schema.key_kind, &j).ok_or_else(|| {
                        bad(
                            view,
                            format!(
                                "branch `{n}`: {j} is not a {:?} key of `{}`",
                                schema.key_kind, schema.name
                            ),
                        )
                    })?;
                    Box::new(move |_: Inputs| {
                        Box::pin(async move {
                            Ok(Produced {
                                value: repo.get_json(key, &ctx).await?,
                                dropped: 0,
                            })
                        })
                    })
                } else if let Some(j) = &b.join {
                    let (field, from) = (j.field.clone(), j.from.clone());
                    Box::new(move |inputs: Inputs| {
                        Box::pin(async move {
                            let source = inputs.source.unwrap_or_default();
                            join_values(&*repo, &ctx, &source, &field, &from).await
                        })
                    })
                } else if let Some(s) = &b.search {
                    let q = search_for(view, n, schema, s, params)?;
                    if let Some(sc) = self.route(&b.entity).and_then(|r| r.config.search.as_ref()) {
                        store = sc.store.clone();
                    }
                    store_from_error = true;
                    Box::new(move |_: Inputs| {
                        Box::pin(async move { search_json(&*repo, &ctx, q).await })
                    })
                } else {
                    let q = query_for(view, n, schema, b, params)?;
                    Box::new(move |_: Inputs| {
                        Box::pin(async move {
                            Ok(Produced {
                                value: repo.query_json(q).await?,
                                dropped: 0,
                            })
                        })
                    })
                }
            };
            agg = agg.push(Branch {
                name: n.clone(),
                store,
                entity: b.entity.clone(),
                needs: b.join.as_ref().map(|j| j.from.clone()),
                required: b.required,
                deadline: b.deadline.map(|d| d.0),
                store_from_error,
                run,
            });
        }
        if let Some(e) = agg.error.take() {
            return Err(e);
        }
        Ok(agg)
    }
}

fn repo_store(router: &Router, entity: &str) -> String {
    router
        .route(entity)
        .map(|r| r.store.clone())
        .unwrap_or_default()
}
