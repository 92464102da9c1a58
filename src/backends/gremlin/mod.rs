//! `gremlin`: graphs on a Gremlin server (Azure Cosmos DB Gremlin API, or
//! any Apache TinkerPop server) via `gremlin-client`.
//!
//! ```toml
//! [stores.graph]
//! kind = "gremlin"
//! url = "ws://127.0.0.1:8182/gremlin"
//!
//! [graphs.social]
//! store = "graph"
//! ```
#![doc = include_str!("docs.md")]

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use futures::future::BoxFuture;
use gremlin_client::aio::GremlinClient;
use gremlin_client::{
    ConnectionOptions, GKey, GValue, GraphSON, GremlinError, TlsOptions, ToGValue,
};

use crate::config::{Redactor, StoreSpec, redact_url};
use crate::query::Filter;
use crate::store::graph::{
    Edge, EdgeDirection, GraphInfo, GraphStore, NeighbourPage, Properties, Recommendation, Vertex,
    check_edge, check_limit, check_name, check_properties, check_vertex, decode_page_token,
    page_of,
};
use crate::store::{EntityInfo, StoreQuery, WriteOp, WriteOutcome};
use crate::{Capabilities, Error, FilterCaps, Key, Precondition, Record, Result, Store, Value};

mod config;
mod script;
#[cfg(test)]
mod tests;

pub use config::{GraphsonVersion, GremlinConfig};
use script::{Dialect, Script};

/// The most paths a shortest-path search reads back from the server.
const MAX_PATHS: i64 = 10_000;

pub(crate) fn open(spec: StoreSpec) -> BoxFuture<'static, Result<Arc<dyn Store>>> {
    Box::pin(async move {
        let cfg: GremlinConfig = spec.parse()?;
        let located = |key: &str, msg: String| spec.error(&[key], msg);
        let store = GremlinStore::connect_inner(&spec.name, cfg, &located).await?;
        Ok(Arc::new(store) as Arc<dyn Store>)
    })
}

/// A graph store on a Gremlin server. Holds graphs only: entity routes to
/// it fail with [`Error::Unsupported`].
///
/// ```no_run
/// # async fn f() -> polyrouter::Result<()> {
/// use polyrouter::backends::gremlin::{GremlinConfig, GremlinStore};
/// use polyrouter::Store;
/// let store = GremlinStore::connect("graph", GremlinConfig::new("ws://127.0.0.1:8182/gremlin")).await?;
/// assert!(store.capabilities().graph);
/// # Ok(()) }
/// ```
pub struct GremlinStore {
    name: String,
    location: String,
    /// The password, removed from every message.
    secrets: Redactor,
    caps: Capabilities,
    client: GremlinClient,
    dialect: Dialect,
}

impl fmt::Debug for GremlinStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GremlinStore")
            .field("name", &self.name)
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// A binding value as `gremlin-client` takes it.
struct Bound<'a>(&'a GValue);

impl ToGValue for Bound<'_> {
    fn to_gvalue(&self) -> GValue {
        self.0.clone()
    }
}

/// The error of a driver error: connection trouble is transient.
fn map_err(
    store: &str,
    location: &str,
    secrets: &Redactor,
    entity: &str,
    e: GremlinError,
) -> Error {
    match e {
        GremlinError::Request((code, message)) => Error::backend(
            store,
            entity,
            std::io::Error::other(format!(
                "the server refused the request ({code}): {}",
                secrets.redact(&message)
            )),
        ),
        GremlinError::Cast(_) | GremlinError::WrongType(_) | GremlinError::Json(_) => {
            Error::backend(store, entity, e)
        }
        other => Error::Unavailable {
            store: store.into(),
            entity: entity.into(),
            message: format!(
                "cannot talk to the Gremlin server at {location}: {}",
                secrets.redact(&other.to_string())
            ),
            source: None,
        },
    }
}

impl GremlinStore {
    /// Connects and runs a real query (the client's pool connects lazily), so
    /// an unreachable server fails here with [`Error::Unavailable`] naming the
    /// store and address, secrets redacted.
    pub async fn connect(name: &str, config: GremlinConfig) -> Result<GremlinStore> {
        let located =
            |key: &str, msg: String| Error::config("<code>", &format!("stores.{name}.{key}"), msg);
        Self::connect_inner(name, config, &located).await
    }

    async fn connect_inner(
        name: &str,
        config: GremlinConfig,
        config_error: &(dyn Fn(&str, String) -> Error + Send + Sync),
    ) -> Result<GremlinStore> {
        let ep = config
            .endpoint()
            .map_err(|(key, msg)| config_error(key, msg))?;
        let location = redact_url(&config.url);
        let mut secrets = Redactor::new().with_url(&config.url);
        if let Some(p) = &config.password {
            secrets = secrets.with_secret(p.expose());
        }
        let graphson = match config.serializer {
            GraphsonVersion::V2 => GraphSON::V2,
            GraphsonVersion::V3 => GraphSON::V3,
        };
        let mut opts = ConnectionOptions::builder()
            .host(ep.host.clone())
            .port(ep.port)
            .ssl(ep.ssl)
            .pool_size(config.pool_size)
            .pool_connection_timeout(Some(config.connect_timeout.0))
            .serializer(graphson.clone())
            .deserializer(graphson);
        if config.accept_invalid_certs {
            opts = opts.tls_options(TlsOptions {
                accept_invalid_certs: true,
            });
        }
        if let (Some(u), Some(p)) = (&config.username, &config.password) {
            opts = opts.credentials(u, p.expose());
        }
        let unavailable = |message: String| Error::unavailable(name, "", message);
        let client = GremlinClient::connect(opts.build()).await.map_err(|e| {
            unavailable(format!(
                "cannot connect to {location}: {}",
                secrets.redact(&e.to_string())
            ))
        })?;
        let store = GremlinStore {
            name: name.into(),
            location,
            secrets,
            caps: Capabilities {
                ttl: false,
                if_absent: false,
                if_exists: false,
                if_version: false,
                batch: false,
                batch_atomic: false,
                query: false,
                filters: FilterCaps::none(),
                sort: false,
                count: false,
                transactions: false,
                shared: true,
                graph: true,
                ..Capabilities::all()
            },
            client,
            dialect: Dialect {
                partition_key: config.partition_key.clone(),
            },
        };
        match tokio::time::timeout(config.connect_timeout.0, store.ping()).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(unavailable(format!(
                    "the Gremlin server at {} did not answer within {:?}",
                    store.location, config.connect_timeout.0
                )));
            }
        }
        Ok(store)
    }

    /// Sends a script with its bindings and reads every result.
    async fn run(&self, entity: &str, s: Script) -> Result<Vec<GValue>> {
        let bound: Vec<(&str, Bound<'_>)> = s
            .bindings
            .iter()
            .map(|(k, v)| (k.as_str(), Bound(v)))
            .collect();
        let params: Vec<(&str, &dyn ToGValue)> = bound
            .iter()
            .map(|(k, v)| (*k, v as &dyn ToGValue))
            .collect();
        let err = |e| map_err(&self.name, &self.location, &self.secrets, entity, e);
        let mut results = self
            .client
            .execute(s.text.clone(), &params)
            .await
            .map_err(err)?;
        let mut out = Vec::new();
        while let Some(r) = results.next().await {
            out.push(r.map_err(err)?);
        }
        Ok(out)
    }

    fn unexpected(&self, graph: &GraphInfo, what: &str, got: &[GValue]) -> Error {
        Error::backend(
            &self.name,
            &graph.entity(),
            std::io::Error::other(format!("unexpected answer to {what}: {got:?}")),
        )
    }

    /// Checks property names and types Gremlin can store.
    fn check_gremlin_props(&self, graph: &GraphInfo, props: &Properties) -> Result<()> {
        check_properties(graph, props)?;
        for (k, v) in props {
            let reserved = k == "id"
                || k == "label"
                || self.dialect.partition_key.as_deref() == Some(k.as_str());
            if reserved {
                return Err(graph.invalid(format!(
                    "property name `{k}` is reserved on a Gremlin store (id, label, partition key)"
                )));
            }
            if !v.is_null() && script::to_gvalue(v).is_none() {
                return Err(Error::unsupported(
                    &self.name,
                    &graph.entity(),
                    format!(
                        "a {} property (`{k}`) on a Gremlin store (strings, integers, floats and booleans only)",
                        v.type_name()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A returned vertex id without the graph's id prefix.
    fn id_of(&self, graph: &GraphInfo, v: &GValue) -> Result<String> {
        match v {
            GValue::String(s) => Ok(s
                .strip_prefix(graph.id_prefix.as_str())
                .unwrap_or(s)
                .to_string()),
            other => Err(self.unexpected(graph, "a vertex id", std::slice::from_ref(other))),
        }
    }

    fn ids(&self, graph: &GraphInfo, vs: &[GValue]) -> Result<Vec<String>> {
        vs.iter().map(|v| self.id_of(graph, v)).collect()
    }

    fn count(&self, graph: &GraphInfo, what: &str, vs: &[GValue]) -> Result<u64> {
        match vs {
            [GValue::Int64(n)] => Ok(*n as u64),
            [GValue::Int32(n)] => Ok(*n as u64),
            other => Err(self.unexpected(graph, what, other)),
        }
    }

    /// A `valueMap()` as properties (vertex values come as lists).
    fn props_of(&self, graph: &GraphInfo, v: &GValue) -> Result<Properties> {
        let GValue::Map(m) = v else {
            return Err(self.unexpected(graph, "a property map", std::slice::from_ref(v)));
        };
        let mut out = Properties::new();
        for (k, v) in m.iter() {
            let GKey::String(k) = k else { continue };
            if self.dialect.partition_key.as_deref() == Some(k.as_str()) {
                continue;
            }
            let v = match v {
                GValue::List(l) => l.iter().next(),
                other => Some(other),
            };
            if let Some(value) = v.and_then(script::from_gvalue) {
                out.insert(k.clone(), value);
            }
        }
        Ok(out)
    }

    async fn exists(&self, graph: &GraphInfo, id: &str) -> Result<bool> {
        let r = self
            .run(
                &graph.entity(),
                script::count_vertex(&self.dialect, graph, id),
            )
            .await?;
        Ok(self.count(graph, "a vertex count", &r)? > 0)
    }

    fn entity_unsupported(&self, entity: &EntityInfo) -> Error {
        Error::unsupported(
            &self.name,
            entity.name(),
            "entities (a gremlin store holds graphs only: route the entity to another store and the graph with [graphs.NAME])",
        )
    }
}

#[async_trait]
impl Store for GremlinStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "gremlin"
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    async fn ensure_entity(&self, entity: &EntityInfo) -> Result<()> {
        Err(self.entity_unsupported(entity))
    }

    async fn get(&self, entity: &EntityInfo, _key: &Key) -> Result<Option<Record>> {
        Err(self.entity_unsupported(entity))
    }

    async fn get_many(&self, entity: &EntityInfo, _keys: &[Key]) -> Result<Vec<Option<Record>>> {
        Err(self.entity_unsupported(entity))
    }

    async fn write(
        &self,
        entity: &EntityInfo,
        _ops: Vec<WriteOp>,
        _atomic: bool,
    ) -> Result<Vec<WriteOutcome>> {
        Err(self.entity_unsupported(entity))
    }

    async fn query(&self, entity: &EntityInfo, _query: &StoreQuery) -> Result<Vec<Record>> {
        Err(self.entity_unsupported(entity))
    }

    async fn count(&self, entity: &EntityInfo, _filter: Option<&Filter>) -> Result<u64> {
        Err(self.entity_unsupported(entity))
    }

    async fn ping(&self) -> Result<()> {
        self.run("", script::ping()).await.map(|_| ())
    }

    fn as_graph(&self) -> Option<&dyn GraphStore> {
        Some(self)
    }
}

#[async_trait]
impl GraphStore for GremlinStore {
    async fn ensure_graph(&self, _graph: &GraphInfo) -> Result<()> {
        // Gremlin servers are schema-less here: vertices carry their graph's
        // id prefix; nothing to create.
        Ok(())
    }

    async fn add_vertex(&self, graph: &GraphInfo, vertex: &Vertex) -> Result<()> {
        check_vertex(graph, vertex)?;
        self.check_gremlin_props(graph, &vertex.properties)?;
        let s = script::add_vertex(
            &self.dialect,
            graph,
            &vertex.id,
            &vertex.label,
            &vertex.properties,
        );
        match self.run(&graph.entity(), s).await?.as_slice() {
            [GValue::Bool(true)] => Ok(()),
            [GValue::Bool(false)] => Err(Error::conflict(
                &self.name,
                &graph.entity(),
                &Key::from(vertex.id.as_str()),
                Precondition::Absent,
                Some(1),
            )),
            other => Err(self.unexpected(graph, "addV", other)),
        }
    }

    async fn update_vertex(
        &self,
        graph: &GraphInfo,
        id: &str,
        properties: &Properties,
    ) -> Result<()> {
        check_name(graph, "vertex id", id)?;
        self.check_gremlin_props(graph, properties)?;
        let s = script::update_vertex(&self.dialect, graph, id, properties);
        if self.run(&graph.entity(), s).await?.is_empty() {
            return Err(graph.no_vertex(id));
        }
        Ok(())
    }

    async fn get_vertex(&self, graph: &GraphInfo, id: &str) -> Result<Option<Vertex>> {
        check_name(graph, "vertex id", id)?;
        let r = self
            .run(
                &graph.entity(),
                script::get_vertex(&self.dialect, graph, id),
            )
            .await?;
        let Some(GValue::Map(m)) = r.first() else {
            return Ok(None);
        };
        let label = match m.get("l") {
            Some(GValue::String(l)) => l.clone(),
            _ => return Err(self.unexpected(graph, "a vertex", &r)),
        };
        let properties = match m.get("p") {
            Some(p) => self.props_of(graph, p)?,
            None => Properties::new(),
        };
        Ok(Some(Vertex {
            id: id.into(),
            label,
            properties,
        }))
    }

    async fn remove_vertex(&self, graph: &GraphInfo, id: &str) -> Result<bool> {
        check_name(graph, "vertex id", id)?;
        let r = self
            .run(
                &graph.entity(),
                script::remove_vertex(&self.dialect, graph, id),
            )
            .await?;
        Ok(self.count(graph, "drop", &r)? > 0)
    }

    async fn link(&self, graph: &GraphInfo, edge: &Edge) -> Result<bool> {
        check_edge(graph, edge)?;
        self.check_gremlin_props(graph, &edge.properties)?;
        let s = script::link(
            &self.dialect,
            graph,
            &edge.src,
            &edge.label,
            &edge.dst,
            &edge.properties,
        );
        match self.run(&graph.entity(), s).await?.as_slice() {
            [GValue::Bool(new)] => Ok(*new),
            [] => {
                let missing = if self.exists(graph, &edge.src).await? {
                    &edge.dst
                } else {
                    &edge.src
                };
                Err(graph.no_vertex(missing))
            }
            other => Err(self.unexpected(graph, "addE", other)),
        }
    }

    /// Not atomic on Gremlin servers: every vertex is checked first, then
    /// the edges are linked one by one.
    async fn link_many(&self, graph: &GraphInfo, edges: &[Edge]) -> Result<u64> {
        for e in edges {
            check_edge(graph, e)?;
            self.check_gremlin_props(graph, &e.properties)?;
        }
        let ends: std::collections::BTreeSet<&str> = edges
            .iter()
            .flat_map(|e| [e.src.as_str(), e.dst.as_str()])
            .collect();
        for id in ends {
            if !self.exists(graph, id).await? {
                return Err(graph.no_vertex(id));
            }
        }
        let mut created = 0;
        for e in edges {
            if self.link(graph, e).await? {
                created += 1;
            }
        }
        Ok(created)
    }

    async fn unlink(&self, graph: &GraphInfo, src: &str, label: &str, dst: &str) -> Result<bool> {
        check_edge(graph, &Edge::new(src, label, dst))?;
        let r = self
            .run(
                &graph.entity(),
                script::unlink(&self.dialect, graph, src, label, dst),
            )
            .await?;
        Ok(self.count(graph, "drop", &r)? > 0)
    }

    async fn get_edge(
        &self,
        graph: &GraphInfo,
        src: &str,
        label: &str,
        dst: &str,
    ) -> Result<Option<Edge>> {
        check_edge(graph, &Edge::new(src, label, dst))?;
        let r = self
            .run(
                &graph.entity(),
                script::get_edge(&self.dialect, graph, src, label, dst),
            )
            .await?;
        r.first()
            .map(|m| {
                Ok(Edge {
                    src: src.into(),
                    label: label.into(),
                    dst: dst.into(),
                    properties: self.props_of(graph, m)?,
                })
            })
            .transpose()
    }

    async fn neighbours(
        &self,
        graph: &GraphInfo,
        id: &str,
        label: &str,
        direction: EdgeDirection,
        limit: usize,
        after: Option<&str>,
    ) -> Result<NeighbourPage> {
        check_name(graph, "vertex id", id)?;
        check_name(graph, "edge label", label)?;
        check_limit(graph, limit)?;
        let after = after
            .map(|t| decode_page_token(graph, id, label, direction, t))
            .transpose()?
            .unwrap_or_default();
        let n = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        let s = script::neighbours(&self.dialect, graph, id, label, direction, &after, n);
        let r = self.run(&graph.entity(), s).await?;
        Ok(page_of(
            graph,
            id,
            label,
            direction,
            self.ids(graph, &r)?,
            limit,
        ))
    }

    async fn degree(
        &self,
        graph: &GraphInfo,
        id: &str,
        label: &str,
        direction: EdgeDirection,
    ) -> Result<u64> {
        check_name(graph, "vertex id", id)?;
        check_name(graph, "edge label", label)?;
        let s = script::degree(&self.dialect, graph, id, label, direction);
        let r = self.run(&graph.entity(), s).await?;
        self.count(graph, "a degree", &r)
    }

    async fn mutual(&self, graph: &GraphInfo, id: &str, label: &str) -> Result<Vec<String>> {
        check_name(graph, "vertex id", id)?;
        check_name(graph, "edge label", label)?;
        let r = self
            .run(
                &graph.entity(),
                script::mutual(&self.dialect, graph, id, label),
            )
            .await?;
        self.ids(graph, &r)
    }

    async fn common(
        &self,
        graph: &GraphInfo,
        a: &str,
        b: &str,
        label: &str,
        direction: EdgeDirection,
    ) -> Result<Vec<String>> {
        check_name(graph, "vertex id", a)?;
        check_name(graph, "vertex id", b)?;
        check_name(graph, "edge label", label)?;
        let s = script::common(&self.dialect, graph, a, b, label, direction);
        let r = self.run(&graph.entity(), s).await?;
        self.ids(graph, &r)
    }

    async fn recommend(
        &self,
        graph: &GraphInfo,
        id: &str,
        label: &str,
        limit: usize,
    ) -> Result<Vec<Recommendation>> {
        check_name(graph, "vertex id", id)?;
        check_name(graph, "edge label", label)?;
        check_limit(graph, limit)?;
        let n = i64::try_from(limit).unwrap_or(i64::MAX);
        let s = script::recommend(&self.dialect, graph, id, label, n);
        let r = self.run(&graph.entity(), s).await?;
        r.iter()
            .map(|entry| {
                let GValue::Map(m) = entry else {
                    return Err(self.unexpected(graph, "groupCount", &r));
                };
                let Some((GKey::String(k), v)) = m.iter().next() else {
                    return Err(self.unexpected(graph, "groupCount", &r));
                };
                let shared = self.count(graph, "groupCount", std::slice::from_ref(v))?;
                Ok(Recommendation {
                    id: self.id_of(graph, &GValue::String(k.clone()))?,
                    shared,
                })
            })
            .collect()
    }

    async fn shortest_path(
        &self,
        graph: &GraphInfo,
        from: &str,
        to: &str,
        label: &str,
        max_depth: usize,
    ) -> Result<Option<Vec<String>>> {
        check_name(graph, "vertex id", from)?;
        check_name(graph, "vertex id", to)?;
        check_name(graph, "edge label", label)?;
        if from == to {
            return Ok(self
                .exists(graph, from)
                .await?
                .then(|| vec![from.to_string()]));
        }
        if max_depth == 0 {
            return Ok(None);
        }
        let maxd = i64::try_from(max_depth).unwrap_or(i64::MAX);
        let s = script::paths(&self.dialect, graph, from, to, label, maxd, MAX_PATHS);
        let r = self.run(&graph.entity(), s).await?;
        let mut best: Option<Vec<String>> = None;
        for p in &r {
            let GValue::Path(path) = p else {
                return Err(self.unexpected(graph, "path", &r));
            };
            let ids: Vec<String> = path
                .objects()
                .iter()
                .map(|v| self.id_of(graph, v))
                .collect::<Result<_>>()?;
            // The shortest, then the smallest ids step by step.
            let better = match &best {
                None => true,
                Some(b) => (ids.len(), &ids) < (b.len(), b),
            };
            if better {
                best = Some(ids);
            }
        }
        Ok(best)
    }
}

/// Values a Gremlin store can hold as properties.
///
/// ```
/// use polyrouter::backends::gremlin::stores_natively;
/// assert!(stores_natively(&polyrouter::Value::from("x")));
/// assert!(!stores_natively(&polyrouter::Value::Bytes(vec![1])));
/// ```
pub fn stores_natively(v: &Value) -> bool {
    v.is_null() || script::to_gvalue(v).is_some()
}
