//! [`GraphStore`]: vertices and labelled edges, neighbours both ways with
//! keyset paging, degrees, mutual connections, friends-of-friends
//! recommendations and bounded shortest paths.
//!
//! A store that implements it returns itself from
//! [`Store::as_graph`](crate::Store::as_graph); the router hands out a
//! [`Graph`](crate::router::Graph) handle per `[graphs.NAME]`.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use polyrouter::backends::memory::MemoryStore;
//! use polyrouter::store::graph::{Edge, GraphInfo, Vertex};
//! use polyrouter::Store;
//! let store = MemoryStore::new("g");
//! let graph = store.as_graph().expect("the memory store is a graph store");
//! let social = GraphInfo::new("social", "g");
//! graph.ensure_graph(&social).await?;
//! graph.add_vertex(&social, &Vertex::new("ada", "user")).await?;
//! graph.add_vertex(&social, &Vertex::new("bob", "user")).await?;
//! assert!(graph.link(&social, &Edge::new("ada", "follows", "bob")).await?);
//! assert!(!graph.link(&social, &Edge::new("ada", "follows", "bob")).await?); // idempotent
//! # Ok::<(), polyrouter::Error>(())
//! # }).unwrap();
//! ```
//!
//! # Semantics every backend follows
//!
//! - Vertex ids and labels are non-empty strings without NUL characters.
//! - A property whose value is [`Value::Null`] is the same as an absent one:
//!   it is not stored, and [`GraphStore::update_vertex`] with `Null` removes it.
//! - Between two vertices there is at most one edge per label and direction:
//!   [`GraphStore::link`] again replaces its properties and returns `false`.
//! - Removing a vertex removes every edge into and out of it.
//! - Neighbour pages are ordered by vertex id (byte order); the token
//!   continues after the last id, so each neighbour appears exactly once
//!   across pages even when edges change between pages.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use crate::{Error, Result, Value};

/// Which way edges are followed from a vertex.
///
/// ```
/// use polyrouter::store::graph::EdgeDirection;
/// assert_eq!(EdgeDirection::Out.reverse(), EdgeDirection::In);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EdgeDirection {
    /// Edges from the vertex (`a -> x`): whom `a` follows.
    Out,
    /// Edges into the vertex (`x -> a`): who follows `a`.
    In,
}

impl EdgeDirection {
    /// The other direction.
    ///
    /// ```
    /// assert_eq!(polyrouter::store::graph::EdgeDirection::In.reverse(),
    ///            polyrouter::store::graph::EdgeDirection::Out);
    /// ```
    pub fn reverse(self) -> Self {
        match self {
            EdgeDirection::Out => EdgeDirection::In,
            EdgeDirection::In => EdgeDirection::Out,
        }
    }
}

/// Everything a store needs to know about a graph on its route: its name,
/// its store, and the names of its vertex and edge tables.
///
/// ```
/// let g = polyrouter::store::graph::GraphInfo::new("social", "main");
/// assert_eq!(g.vertices, "social_vertices");
/// assert_eq!(g.edges, "social_edges");
/// let p = polyrouter::store::graph::GraphInfo::with_prefix("social", "main", "g1_");
/// assert_eq!(p.vertices, "g1_vertices");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphInfo {
    /// The graph's name from `[graphs.NAME]`.
    pub name: String,
    /// The store's name, for error messages.
    pub store: String,
    /// The vertex table (or collection, or label namespace).
    pub vertices: String,
    /// The edge table.
    pub edges: String,
    /// Prepended to every vertex id on stores that keep several graphs in
    /// one id space (gremlin): the graph's explicit `table_prefix`, else empty.
    pub id_prefix: String,
}

impl GraphInfo {
    /// A graph whose tables are `{name}_vertices` and `{name}_edges`.
    ///
    /// ```
    /// assert_eq!(polyrouter::store::graph::GraphInfo::new("g", "s").store, "s");
    /// ```
    pub fn new(name: &str, store: &str) -> Self {
        GraphInfo {
            id_prefix: String::new(),
            ..Self::with_prefix(name, store, &format!("{name}_"))
        }
    }

    /// A graph whose tables are `{prefix}vertices` and `{prefix}edges`, and
    /// whose vertex ids carry `prefix` on gremlin stores.
    ///
    /// ```
    /// let g = polyrouter::store::graph::GraphInfo::with_prefix("g", "s", "app_");
    /// assert_eq!(g.edges, "app_edges");
    /// assert_eq!(g.id_prefix, "app_");
    /// ```
    pub fn with_prefix(name: &str, store: &str, prefix: &str) -> Self {
        GraphInfo {
            name: name.into(),
            store: store.into(),
            vertices: format!("{prefix}vertices"),
            edges: format!("{prefix}edges"),
            id_prefix: prefix.into(),
        }
    }

    /// An [`Error::InvalidInput`] naming this graph's store and the graph.
    ///
    /// ```
    /// let g = polyrouter::store::graph::GraphInfo::new("social", "main");
    /// assert!(g.invalid("bad id").to_string().contains("graph `social`"));
    /// ```
    pub fn invalid(&self, message: impl fmt::Display) -> Error {
        Error::invalid_input(&self.store, &self.entity(), message)
    }

    /// How errors name this graph in their entity slot: `graph `NAME``.
    ///
    /// ```
    /// assert_eq!(polyrouter::store::graph::GraphInfo::new("s", "m").entity(), "graph `s`");
    /// ```
    pub fn entity(&self) -> String {
        format!("graph `{}`", self.name)
    }

    /// A [`Error::NotFound`] for a vertex of this graph.
    ///
    /// ```
    /// let g = polyrouter::store::graph::GraphInfo::new("social", "main");
    /// assert!(matches!(g.no_vertex("ada"), polyrouter::Error::NotFound { .. }));
    /// ```
    pub fn no_vertex(&self, id: &str) -> Error {
        Error::NotFound {
            store: self.store.clone(),
            entity: self.entity(),
            key: format!("{id:?} (vertex)"),
        }
    }
}

/// Properties of a vertex or an edge, by name.
pub type Properties = BTreeMap<String, Value>;

/// A vertex: id, label and properties.
///
/// ```
/// use polyrouter::store::graph::Vertex;
/// let v = Vertex::new("ada", "user").property("name", "Ada");
/// assert_eq!(v.properties["name"], polyrouter::Value::from("Ada"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Vertex {
    /// The id, unique in the graph.
    pub id: String,
    /// The label, e.g. `user`.
    pub label: String,
    /// The properties (never `Null`: a null property is absent).
    pub properties: Properties,
}

impl Vertex {
    /// A vertex without properties.
    ///
    /// ```
    /// assert_eq!(polyrouter::store::graph::Vertex::new("a", "user").label, "user");
    /// ```
    pub fn new(id: impl Into<String>, label: impl Into<String>) -> Self {
        Vertex {
            id: id.into(),
            label: label.into(),
            properties: Properties::new(),
        }
    }

    /// Adds a property.
    ///
    /// ```
    /// let v = polyrouter::store::graph::Vertex::new("a", "user").property("age", 36);
    /// assert_eq!(v.properties.len(), 1);
    /// ```
    pub fn property(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.properties.insert(name.into(), value.into());
        self
    }
}

/// A directed, labelled edge with properties.
///
/// ```
/// use polyrouter::store::graph::Edge;
/// let e = Edge::new("ada", "follows", "bob").property("since", 2021);
/// assert_eq!((e.src.as_str(), e.dst.as_str()), ("ada", "bob"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    /// The vertex the edge leaves.
    pub src: String,
    /// The label, e.g. `follows`.
    pub label: String,
    /// The vertex the edge enters.
    pub dst: String,
    /// The properties (never `Null`).
    pub properties: Properties,
}

impl Edge {
    /// An edge without properties.
    ///
    /// ```
    /// assert_eq!(polyrouter::store::graph::Edge::new("a", "knows", "b").label, "knows");
    /// ```
    pub fn new(src: impl Into<String>, label: impl Into<String>, dst: impl Into<String>) -> Self {
        Edge {
            src: src.into(),
            label: label.into(),
            dst: dst.into(),
            properties: Properties::new(),
        }
    }

    /// Adds a property.
    ///
    /// ```
    /// let e = polyrouter::store::graph::Edge::new("a", "knows", "b").property("w", 0.5);
    /// assert_eq!(e.properties.len(), 1);
    /// ```
    pub fn property(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.properties.insert(name.into(), value.into());
        self
    }
}

/// One page of neighbour ids, in id order, and the token of the next page.
///
/// ```
/// let p = polyrouter::store::graph::NeighbourPage { ids: vec!["b".into()], next: None };
/// assert!(p.next.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighbourPage {
    /// Neighbour ids, ascending (byte order).
    pub ids: Vec<String>,
    /// Pass to the next call to continue; `None` on the last page.
    pub next: Option<String>,
}

/// A friends-of-friends candidate and how many connections it shares.
///
/// ```
/// let r = polyrouter::store::graph::Recommendation { id: "cy".into(), shared: 2 };
/// assert_eq!(r.shared, 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recommendation {
    /// The candidate's id.
    pub id: String,
    /// How many of the vertex's neighbours link to the candidate.
    pub shared: u64,
}

/// Vertices and labelled edges: the graph extras a store may offer.
/// Object-safe; get one from [`Store::as_graph`](crate::Store::as_graph).
///
/// Every call names its graph ([`GraphInfo`]), prepared once with
/// [`GraphStore::ensure_graph`]. Bad ids, labels or limits are
/// [`Error::InvalidInput`] and change nothing.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use polyrouter::backends::memory::MemoryStore;
/// use polyrouter::store::graph::{Edge, EdgeDirection, GraphInfo, GraphStore, Vertex};
/// let g: &dyn GraphStore = &MemoryStore::new("g");
/// let s = GraphInfo::new("social", "g");
/// g.ensure_graph(&s).await?;
/// for id in ["ada", "bob", "cy"] { g.add_vertex(&s, &Vertex::new(id, "user")).await?; }
/// g.link(&s, &Edge::new("ada", "follows", "bob")).await?;
/// g.link(&s, &Edge::new("bob", "follows", "cy")).await?;
/// let recs = g.recommend(&s, "ada", "follows", 10).await?;
/// assert_eq!(recs[0].id, "cy");
/// assert_eq!(g.shortest_path(&s, "ada", "cy", "follows", 3).await?,
///            Some(vec!["ada".into(), "bob".into(), "cy".into()]));
/// # Ok::<(), polyrouter::Error>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait GraphStore: Send + Sync {
    /// Prepares storage for the graph (tables, indexes); idempotent.
    async fn ensure_graph(&self, graph: &GraphInfo) -> Result<()>;

    /// Adds a vertex; [`Error::Conflict`] when the id exists (nothing changes).
    async fn add_vertex(&self, graph: &GraphInfo, vertex: &Vertex) -> Result<()>;

    /// Merges `properties` into a vertex (a `Null` value removes that
    /// property); [`Error::NotFound`] when there is no such vertex.
    async fn update_vertex(
        &self,
        graph: &GraphInfo,
        id: &str,
        properties: &Properties,
    ) -> Result<()>;

    /// The vertex with this id.
    async fn get_vertex(&self, graph: &GraphInfo, id: &str) -> Result<Option<Vertex>>;

    /// Removes a vertex and every edge into or out of it; true if it existed.
    async fn remove_vertex(&self, graph: &GraphInfo, id: &str) -> Result<bool>;

    /// Links `src -[label]-> dst`; true if the edge is new. Linking again
    /// replaces the edge's properties. [`Error::NotFound`] when either
    /// vertex is missing.
    async fn link(&self, graph: &GraphInfo, edge: &Edge) -> Result<bool>;

    /// Links many edges in batches (bulk loads); the number of new edges.
    /// Missing vertices are [`Error::NotFound`]; the batch is all or nothing
    /// on stores with transactions.
    async fn link_many(&self, graph: &GraphInfo, edges: &[Edge]) -> Result<u64>;

    /// Removes `src -[label]-> dst`; true if it existed.
    async fn unlink(&self, graph: &GraphInfo, src: &str, label: &str, dst: &str) -> Result<bool>;

    /// The edge `src -[label]-> dst`, with its properties.
    async fn get_edge(
        &self,
        graph: &GraphInfo,
        src: &str,
        label: &str,
        dst: &str,
    ) -> Result<Option<Edge>>;

    /// One page of `id`'s neighbours over `label` edges in `direction`,
    /// ascending by id, at most `limit` (≥ 1); `after` is the previous
    /// page's [`NeighbourPage::next`].
    async fn neighbours(
        &self,
        graph: &GraphInfo,
        id: &str,
        label: &str,
        direction: EdgeDirection,
        limit: usize,
        after: Option<&str>,
    ) -> Result<NeighbourPage>;

    /// How many `label` edges leave (`Out`) or enter (`In`) the vertex.
    async fn degree(
        &self,
        graph: &GraphInfo,
        id: &str,
        label: &str,
        direction: EdgeDirection,
    ) -> Result<u64>;

    /// Vertices linked with `id` both ways over `label` (`id -> x` and
    /// `x -> id`), ascending by id.
    async fn mutual(&self, graph: &GraphInfo, id: &str, label: &str) -> Result<Vec<String>>;

    /// Vertices that are `direction` neighbours of both `a` and `b` over
    /// `label`, ascending by id; with `In` and `follows`: the followers they share.
    async fn common(
        &self,
        graph: &GraphInfo,
        a: &str,
        b: &str,
        label: &str,
        direction: EdgeDirection,
    ) -> Result<Vec<String>>;

    /// Friends of friends: vertices two `label` hops out from `id`, not `id`
    /// itself and not already linked from it, ranked by how many of `id`'s
    /// out-neighbours link to them (descending), ties by id ascending; at
    /// most `limit`.
    async fn recommend(
        &self,
        graph: &GraphInfo,
        id: &str,
        label: &str,
        limit: usize,
    ) -> Result<Vec<Recommendation>>;

    /// A shortest path of `label` edges from `from` to `to` with at most
    /// `max_depth` edges, both ends included; `None` when there is none within
    /// the limit. Of several shortest paths, the one whose ids are smallest
    /// step by step from `from` (so every backend answers the same).
    async fn shortest_path(
        &self,
        graph: &GraphInfo,
        from: &str,
        to: &str,
        label: &str,
        max_depth: usize,
    ) -> Result<Option<Vec<String>>>;
}

/// Checks a vertex id or label: non-empty, no NUL. For backend authors.
///
/// ```
/// use polyrouter::store::graph::{check_name, GraphInfo};
/// let g = GraphInfo::new("g", "s");
/// assert!(check_name(&g, "vertex id", "x'); g.V().drop(); ('").is_ok());
/// assert!(check_name(&g, "vertex id", "").is_err());
/// ```
pub fn check_name(graph: &GraphInfo, what: &str, s: &str) -> Result<()> {
    if s.is_empty() {
        return Err(graph.invalid(format!("a {what} must not be empty")));
    }
    if s.contains('\0') {
        return Err(graph.invalid(format!("a {what} must not contain NUL characters")));
    }
    Ok(())
}

/// Checks a vertex: id, label, property names. For backend authors.
///
/// ```
/// use polyrouter::store::graph::{check_vertex, GraphInfo, Vertex};
/// let g = GraphInfo::new("g", "s");
/// assert!(check_vertex(&g, &Vertex::new("a", "user")).is_ok());
/// assert!(check_vertex(&g, &Vertex::new("a", "")).is_err());
/// ```
pub fn check_vertex(graph: &GraphInfo, v: &Vertex) -> Result<()> {
    check_name(graph, "vertex id", &v.id)?;
    check_name(graph, "vertex label", &v.label)?;
    check_properties(graph, &v.properties)
}

/// Checks an edge: ends, label, property names. For backend authors.
///
/// ```
/// use polyrouter::store::graph::{check_edge, Edge, GraphInfo};
/// let g = GraphInfo::new("g", "s");
/// assert!(check_edge(&g, &Edge::new("a", "knows", "b")).is_ok());
/// assert!(check_edge(&g, &Edge::new("a", "knows", "")).is_err());
/// ```
pub fn check_edge(graph: &GraphInfo, e: &Edge) -> Result<()> {
    check_name(graph, "vertex id", &e.src)?;
    check_name(graph, "edge label", &e.label)?;
    check_name(graph, "vertex id", &e.dst)?;
    check_properties(graph, &e.properties)
}

/// Checks property names (non-empty, no NUL) and values (text without NUL).
/// For backend authors.
///
/// ```
/// use polyrouter::store::graph::{check_properties, GraphInfo, Properties};
/// let g = GraphInfo::new("g", "s");
/// let mut p = Properties::new();
/// p.insert("".into(), 1.into());
/// assert!(check_properties(&g, &p).is_err());
/// ```
pub fn check_properties(graph: &GraphInfo, p: &Properties) -> Result<()> {
    for (k, v) in p {
        check_name(graph, "property name", k)?;
        match v {
            Value::String(s) if s.contains('\0') => {
                return Err(graph.invalid(format!(
                    "property `{k}`: text must not contain NUL characters"
                )));
            }
            Value::F64(f) if f.is_nan() => {
                return Err(graph.invalid(format!("property `{k}`: NaN cannot be stored")));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks a page or result limit: at least 1.
///
/// ```
/// use polyrouter::store::graph::{check_limit, GraphInfo};
/// assert!(check_limit(&GraphInfo::new("g", "s"), 0).is_err());
/// ```
pub fn check_limit(graph: &GraphInfo, limit: usize) -> Result<()> {
    if limit == 0 {
        return Err(graph.invalid("a limit must be at least 1"));
    }
    Ok(())
}

/// The properties without `Null` values (a null property is absent).
///
/// ```
/// use polyrouter::{store::graph::{non_null, Properties}, Value};
/// let mut p = Properties::new();
/// p.insert("a".into(), Value::Null);
/// assert!(non_null(&p).is_empty());
/// ```
pub fn non_null(p: &Properties) -> Properties {
    p.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Merges `update` into `current`: `Null` removes, anything else sets.
///
/// ```
/// use polyrouter::{store::graph::{merge, Properties}, Value};
/// let mut cur = Properties::new();
/// cur.insert("a".into(), Value::from(1));
/// let mut up = Properties::new();
/// up.insert("a".into(), Value::Null);
/// up.insert("b".into(), Value::from(2));
/// merge(&mut cur, &up);
/// assert_eq!(cur.keys().collect::<Vec<_>>(), vec!["b"]);
/// ```
pub fn merge(current: &mut Properties, update: &Properties) {
    for (k, v) in update {
        if v.is_null() {
            current.remove(k);
        } else {
            current.insert(k.clone(), v.clone());
        }
    }
}

/// Encodes properties as JSON text that keeps every [`Value`] type exactly
/// (each value tagged: `{"s": "text"}`, `{"i": 1}`, …); nulls are dropped.
/// The embedded graphs store this in their `properties` column.
///
/// ```
/// use polyrouter::{store::graph::{decode_properties, encode_properties, Properties}, Value};
/// let mut p = Properties::new();
/// p.insert("name".into(), Value::from("x'); g.V().drop(); ('"));
/// p.insert("bytes".into(), Value::Bytes(vec![0, 1]));
/// let text = encode_properties(&p);
/// assert_eq!(decode_properties(&text).unwrap(), p);
/// ```
pub fn encode_properties(p: &Properties) -> String {
    use serde_json::{Value as J, json};
    let map: serde_json::Map<String, J> = p
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| {
            let tagged = match v {
                Value::Null => J::Null,
                Value::Bool(b) => json!({ "b": b }),
                Value::I64(i) => json!({ "i": i }),
                Value::F64(f) if f.is_finite() => json!({ "f": f }),
                Value::F64(f) => json!({ "f": if *f > 0.0 { "inf" } else { "-inf" } }),
                Value::String(s) => json!({ "s": s }),
                Value::Bytes(b) => json!({ "y": STANDARD.encode(b) }),
                Value::Timestamp(t) => json!({ "t": t.timestamp_micros() }),
                Value::Uuid(u) => json!({ "u": u.to_string() }),
                Value::Json(j) => json!({ "j": j }),
            };
            (k.clone(), tagged)
        })
        .collect();
    J::Object(map).to_string()
}

/// Decodes [`encode_properties`] text; an error says what is malformed.
///
/// ```
/// assert!(polyrouter::store::graph::decode_properties("{\"a\": 1}").is_err());
/// assert!(polyrouter::store::graph::decode_properties("{}").unwrap().is_empty());
/// ```
pub fn decode_properties(text: &str) -> std::result::Result<Properties, String> {
    use serde_json::Value as J;
    let J::Object(map) = serde_json::from_str::<J>(text).map_err(|e| e.to_string())? else {
        return Err("properties are not a JSON object".into());
    };
    let mut out = Properties::new();
    for (k, tagged) in map {
        let bad = || format!("property `{k}` is not a tagged value");
        let J::Object(t) = tagged else {
            return Err(bad());
        };
        let (tag, v) = t.into_iter().next().ok_or_else(bad)?;
        let value = match (tag.as_str(), v) {
            ("b", J::Bool(b)) => Value::Bool(b),
            ("i", J::Number(n)) => Value::I64(n.as_i64().ok_or_else(bad)?),
            ("f", J::Number(n)) => Value::F64(n.as_f64().ok_or_else(bad)?),
            ("f", J::String(s)) if s == "inf" => Value::F64(f64::INFINITY),
            ("f", J::String(s)) if s == "-inf" => Value::F64(f64::NEG_INFINITY),
            ("s", J::String(s)) => Value::String(s),
            ("y", J::String(s)) => Value::Bytes(STANDARD.decode(s).map_err(|_| bad())?),
            ("t", J::Number(n)) => Value::Timestamp(
                chrono::DateTime::from_timestamp_micros(n.as_i64().ok_or_else(bad)?)
                    .ok_or_else(bad)?,
            ),
            ("u", J::String(s)) => Value::Uuid(s.parse().map_err(|_| bad())?),
            ("j", j) => Value::Json(j),
            _ => return Err(bad()),
        };
        out.insert(k, value);
    }
    Ok(out)
}

fn page_fingerprint(graph: &GraphInfo, id: &str, label: &str, direction: EdgeDirection) -> u64 {
    let text = format!("{}\0{id}\0{label}\0{direction:?}", graph.name);
    crate::token::fnv(text.as_bytes(), 0x6a09)
}

/// The token continuing a neighbour listing after `last`. For backend authors.
///
/// ```
/// use polyrouter::store::graph::{decode_page_token, encode_page_token, EdgeDirection, GraphInfo};
/// let g = GraphInfo::new("g", "s");
/// let t = encode_page_token(&g, "ada", "follows", EdgeDirection::Out, "bob");
/// assert_eq!(decode_page_token(&g, "ada", "follows", EdgeDirection::Out, &t).unwrap(), "bob");
/// assert!(decode_page_token(&g, "cy", "follows", EdgeDirection::Out, &t).is_err());
/// ```
pub fn encode_page_token(
    graph: &GraphInfo,
    id: &str,
    label: &str,
    direction: EdgeDirection,
    last: &str,
) -> String {
    let mut b = page_fingerprint(graph, id, label, direction)
        .to_be_bytes()
        .to_vec();
    b.extend_from_slice(last.as_bytes());
    URL_SAFE_NO_PAD.encode(b)
}

/// The last id a neighbour token continues after; [`Error::InvalidInput`]
/// for a token of another listing or a forged one. For backend authors.
///
/// ```
/// use polyrouter::store::graph::{decode_page_token, EdgeDirection, GraphInfo};
/// let g = GraphInfo::new("g", "s");
/// assert!(decode_page_token(&g, "a", "l", EdgeDirection::In, "!!").is_err());
/// ```
pub fn decode_page_token(
    graph: &GraphInfo,
    id: &str,
    label: &str,
    direction: EdgeDirection,
    token: &str,
) -> Result<String> {
    let bad = || {
        graph.invalid(
            "neighbour page token rejected: it belongs to another listing or was altered; start again from the first page",
        )
    };
    let b = URL_SAFE_NO_PAD
        .decode(token.as_bytes())
        .map_err(|_| bad())?;
    if b.len() < 9 {
        return Err(bad());
    }
    let (fp, last) = b.split_at(8);
    if fp != page_fingerprint(graph, id, label, direction).to_be_bytes() {
        return Err(bad());
    }
    String::from_utf8(last.to_vec()).map_err(|_| bad())
}

/// Builds a page from up to `limit + 1` sorted ids. For backend authors.
///
/// ```
/// use polyrouter::store::graph::{page_of, EdgeDirection, GraphInfo};
/// let g = GraphInfo::new("g", "s");
/// let p = page_of(&g, "a", "l", EdgeDirection::Out, vec!["b".into(), "c".into()], 1);
/// assert_eq!(p.ids, vec!["b".to_string()]);
/// assert!(p.next.is_some());
/// ```
pub fn page_of(
    graph: &GraphInfo,
    id: &str,
    label: &str,
    direction: EdgeDirection,
    mut ids: Vec<String>,
    limit: usize,
) -> NeighbourPage {
    let next = if ids.len() > limit {
        ids.truncate(limit);
        ids.last()
            .map(|last| encode_page_token(graph, id, label, direction, last))
    } else {
        None
    };
    NeighbourPage { ids, next }
}

/// Picks the path [`GraphStore::shortest_path`] returns from the edges of
/// the shortest-path layers (`(layer of src, src, dst)`, `dst` one layer
/// further): from `from`, the smallest next id at every step. For backend authors.
///
/// ```
/// use polyrouter::store::graph::pick_path;
/// let layers = vec![(0, "a".to_string(), "c".to_string()), (0, "a".into(), "b".into()),
///                   (1, "b".into(), "d".into()), (1, "c".into(), "d".into())];
/// assert_eq!(pick_path("a", "d", 2, &layers), Some(vec!["a".into(), "b".into(), "d".into()]));
/// ```
pub fn pick_path(
    from: &str,
    to: &str,
    depth: usize,
    layers: &[(usize, String, String)],
) -> Option<Vec<String>> {
    let mut path = vec![from.to_string()];
    let mut cur = from.to_string();
    for d in 0..depth {
        let next = layers
            .iter()
            .filter(|(l, s, _)| *l == d && *s == cur)
            .map(|(_, _, t)| t)
            .min_by(|a, b| a.as_bytes().cmp(b.as_bytes()))?;
        cur = next.clone();
        path.push(cur.clone());
    }
    (cur == to).then_some(path)
}
