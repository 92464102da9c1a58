//! `[views.NAME]`: declarative aggregate reads.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::ConfigDuration;

/// `[views.NAME]`: named branches over entities, run with
/// [`Router::view`](crate::Router::view).
///
/// ```
/// let cfg = polyrouter::config::Config::parse(r#"
///     [stores.m]
///     kind = "memory"
///     [entities.user]
///     store = "m"
///     [entities.order]
///     store = "m"
///     [views.dashboard]
///     params = ["user_id"]
///     timeout = "500ms"
///     [views.dashboard.branches.user]
///     entity = "user"
///     get = "$user_id"
///     required = true
///     [views.dashboard.branches.orders]
///     entity = "order"
///     filter = { customer_id = "$user_id" }
///     order_by = "-created_at"
///     limit = 10
/// "#, "<string>").unwrap();
/// assert_eq!(cfg.views["dashboard"].branches.len(), 2);
/// ```
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ViewConfig {
    /// Parameter names the caller must pass; branches refer to them as `"$name"`.
    #[serde(default)]
    pub params: Vec<String>,
    /// Deadline of the whole view (default 30 s).
    pub timeout: Option<ConfigDuration>,
    /// The branches, by name (the names of the result's fields).
    #[serde(default)]
    pub branches: BTreeMap<String, ViewBranch>,
}

/// One branch of a view: a point read (`get`), a join (`join`), a search
/// (`search`), a graph read (`graph`), or else a query (`filter`,
/// `order_by`, `limit`).
///
/// ```
/// let b = polyrouter::config::ViewBranch { entity: "user".into(), ..Default::default() };
/// assert!(!b.required);
/// ```
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ViewBranch {
    /// The entity read: required, except on a `graph` branch, where it is
    /// optional and reads the vertex ids as this entity's records.
    #[serde(default)]
    pub entity: String,
    /// Point read of this key: `"$param"` or a literal.
    pub get: Option<toml::Value>,
    /// Equality filters, field → `"$param"` or a literal (a query branch).
    pub filter: Option<BTreeMap<String, toml::Value>>,
    /// Sort field; a leading `-` sorts descending (a query branch).
    pub order_by: Option<String>,
    /// Row limit (a query branch).
    pub limit: Option<u32>,
    /// Join: read the records referenced by another branch's field.
    pub join: Option<JoinConfig>,
    /// Search the entity's search index, then read the hits' records.
    pub search: Option<ViewSearch>,
    /// Read a `[graphs.NAME]`: neighbours, mutual, recommendations, degree.
    pub graph: Option<ViewGraph>,
    /// The view fails when this branch fails (default: partial result).
    #[serde(default)]
    pub required: bool,
    /// This branch's own deadline.
    pub deadline: Option<ConfigDuration>,
}

/// `search = { text = "$q", filter = { category = "$cat" }, limit = 10 }`:
/// a ranked search on the branch entity's search index, hydrated from its
/// primary store (rank kept, hits whose record is gone dropped and counted).
///
/// ```
/// let s = polyrouter::config::ViewSearch { text: Some("$q".into()), limit: Some(10), ..Default::default() };
/// assert!(s.filter.is_none());
/// ```
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ViewSearch {
    /// Search text (`"$param"` or a literal); absent or empty matches everything.
    pub text: Option<toml::Value>,
    /// Equality filters over the index's `search.filters` fields.
    pub filter: Option<BTreeMap<String, toml::Value>>,
    /// Hits (default: the router's `page_size`).
    pub limit: Option<u32>,
}

/// What a graph branch reads: `op = "out" | "in" | "mutual" | "recommend" | "degree"`.
///
/// ```
/// assert_eq!(polyrouter::config::ViewGraphOp::default(), polyrouter::config::ViewGraphOp::Out);
/// ```
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ViewGraphOp {
    /// Whom the vertex links to (follows).
    #[default]
    Out,
    /// Who links to the vertex (followers).
    In,
    /// Linked both ways.
    Mutual,
    /// Friends of friends ranked by shared connections.
    Recommend,
    /// The number of edges (`direction`, default `out`).
    Degree,
}

/// The direction of a degree: `direction = "out" | "in"`.
///
/// ```
/// assert_eq!(polyrouter::config::ViewDirection::default(), polyrouter::config::ViewDirection::Out);
/// ```
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ViewDirection {
    /// Edges out of the vertex.
    #[default]
    Out,
    /// Edges into the vertex.
    In,
}

/// `graph = { name = "social", op = "in", vertex = "$user_id", label = "follows", limit = 20 }`.
///
/// ```
/// use polyrouter::config::{ViewGraph, ViewGraphOp};
/// let g = ViewGraph { name: "social".into(), op: ViewGraphOp::Recommend, vertex: "$id".into(), label: "follows".into(), ..Default::default() };
/// assert!(g.limit.is_none());
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewGraph {
    /// The `[graphs.NAME]` read.
    pub name: String,
    /// The operation.
    pub op: ViewGraphOp,
    /// The start vertex id: `"$param"` or a literal.
    pub vertex: toml::Value,
    /// The edge label followed.
    pub label: String,
    /// At most this many ids (default: the router's `page_size`); not with `degree`.
    pub limit: Option<u32>,
    /// Direction of a `degree` (default `out`); only with `degree`.
    pub direction: Option<ViewDirection>,
}

impl Default for ViewGraph {
    /// Out-neighbours of an empty vertex id (fill in `name`, `vertex`, `label`).
    ///
    /// ```
    /// assert!(polyrouter::config::ViewGraph::default().name.is_empty());
    /// ```
    fn default() -> Self {
        ViewGraph {
            name: String::new(),
            op: ViewGraphOp::default(),
            vertex: toml::Value::String(String::new()),
            label: String::new(),
            limit: None,
            direction: None,
        }
    }
}

/// `join = { from = "orders", field = "product_id" }`.
///
/// ```
/// let j = polyrouter::config::JoinConfig { from: "orders".into(), field: "product_id".into() };
/// assert_eq!(j.from, "orders");
/// ```
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct JoinConfig {
    /// The branch whose rows hold the references.
    pub from: String,
    /// The field holding the referenced key.
    pub field: String,
}

impl ViewConfig {
    /// Checks the view against the routed entities and the graphs; the
    /// message and the key path (under `views.NAME`) of the first problem.
    pub(crate) fn check(
        &self,
        entities: &BTreeMap<String, super::EntityConfig>,
        graphs: &BTreeMap<String, super::GraphConfig>,
    ) -> Result<(), (Vec<String>, String)> {
        let at = |keys: &[&str], m: String| (keys.iter().map(|k| k.to_string()).collect(), m);
        for (name, b) in &self.branches {
            let kinds = [
                b.get.is_some(),
                b.join.is_some(),
                b.search.is_some(),
                b.graph.is_some(),
                b.filter.is_some() || b.order_by.is_some() || b.limit.is_some(),
            ];
            if kinds.iter().filter(|k| **k).count() > 1 {
                return Err(at(
                    &["branches", name],
                    "a branch is one of: `get`, `join`, `search`, `graph`, or a query (`filter`/`order_by`/`limit`)"
                        .into(),
                ));
            }
            if b.entity.is_empty() && b.graph.is_none() {
                return Err(at(
                    &["branches", name],
                    "a branch needs `entity`, the entity it reads (only a `graph` branch may omit it)"
                        .into(),
                ));
            }
            if !b.entity.is_empty() && !entities.contains_key(&b.entity) {
                return Err(at(
                    &["branches", name, "entity"],
                    format!(
                        "entity `{}` has no route; add [entities.{}]",
                        b.entity, b.entity
                    ),
                ));
            }
            if let Some(j) = &b.join {
                if !self.branches.contains_key(&j.from) || j.from == *name {
                    return Err(at(
                        &["branches", name, "join", "from"],
                        format!("`{}` is not another branch of this view", j.from),
                    ));
                }
            }
            if let Some(s) = &b.search {
                let Some(index) = entities.get(&b.entity).and_then(|e| e.search.as_ref()) else {
                    return Err(at(
                        &["branches", name, "search"],
                        format!(
                            "entity `{}` has no search index; add `search = {{ store = \"...\", fields = [...] }}` to [entities.{}]",
                            b.entity, b.entity
                        ),
                    ));
                };
                for f in s.filter.iter().flat_map(|f| f.keys()) {
                    if !index.filters.contains_key(f) {
                        return Err(at(
                            &["branches", name, "search", "filter", f],
                            format!(
                                "`{f}` is not a filter field of the search index of `{}`; add it to `search.filters`",
                                b.entity
                            ),
                        ));
                    }
                }
                if let Some(t) = &s.text {
                    if !t.is_str() {
                        return Err(at(
                            &["branches", name, "search", "text"],
                            "the search text must be a string or `\"$param\"`".into(),
                        ));
                    }
                }
                if s.limit == Some(0) {
                    return Err(at(
                        &["branches", name, "search", "limit"],
                        "must be at least 1".into(),
                    ));
                }
            }
            if let Some(g) = &b.graph {
                if !graphs.contains_key(&g.name) {
                    return Err(at(
                        &["branches", name, "graph", "name"],
                        format!(
                            "graph `{}` is not configured; add [graphs.{}] with `store = \"...\"`",
                            g.name, g.name
                        ),
                    ));
                }
                if g.label.is_empty() {
                    return Err(at(
                        &["branches", name, "graph", "label"],
                        "the edge label must not be empty".into(),
                    ));
                }
                if !(g.vertex.is_str() || g.vertex.is_integer()) {
                    return Err(at(
                        &["branches", name, "graph", "vertex"],
                        "the vertex must be a string, an integer or `\"$param\"`".into(),
                    ));
                }
                let degree = g.op == ViewGraphOp::Degree;
                if degree && g.limit.is_some() {
                    return Err(at(
                        &["branches", name, "graph", "limit"],
                        "a `degree` counts every edge; remove `limit`".into(),
                    ));
                }
                if !degree && g.direction.is_some() {
                    return Err(at(
                        &["branches", name, "graph", "direction"],
                        "only `op = \"degree\"` takes a direction (`out` and `in` are ops)".into(),
                    ));
                }
                if degree && !b.entity.is_empty() {
                    return Err(at(
                        &["branches", name, "entity"],
                        "a `degree` is a number and cannot be read as records; remove `entity`"
                            .into(),
                    ));
                }
                if g.limit == Some(0) {
                    return Err(at(
                        &["branches", name, "graph", "limit"],
                        "must be at least 1".into(),
                    ));
                }
            }
            let mut values: Vec<(&[&str], &toml::Value)> = Vec::new();
            if let Some(g) = &b.get {
                values.push((&["get"], g));
            }
            for v in b.filter.iter().flat_map(|f| f.values()) {
                values.push((&["filter"], v));
            }
            if let Some(s) = &b.search {
                if let Some(t) = &s.text {
                    values.push((&["search", "text"], t));
                }
                for v in s.filter.iter().flat_map(|f| f.values()) {
                    values.push((&["search", "filter"], v));
                }
            }
            if let Some(g) = &b.graph {
                values.push((&["graph", "vertex"], &g.vertex));
            }
            for (keys, v) in values {
                if let Some(p) = v.as_str().and_then(|s| s.strip_prefix('$')) {
                    if !self.params.iter().any(|x| x == p) {
                        let mut path = vec!["branches", name.as_str()];
                        path.extend_from_slice(keys);
                        return Err(at(
                            &path,
                            format!("parameter `{p}` is not declared; add it to `params`"),
                        ));
                    }
                }
            }
        }
        // Joins must not form a cycle.
        for start in self.branches.keys() {
            let mut at_branch = start;
            for _ in 0..=self.branches.len() {
                match &self.branches[at_branch].join {
                    Some(j) => at_branch = &j.from,
                    None => break,
                }
                if at_branch == start {
                    return Err(at(
                        &["branches", start, "join"],
                        "joins form a cycle".into(),
                    ));
                }
            }
        }
        Ok(())
    }
}
