//! Graph reads as aggregate branches: neighbours, mutual connections,
//! friends-of-friends and degrees of a `[graphs.NAME]`, optionally read
//! as entity records with one `get_many` (no N+1 over the vertex ids).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::{Aggregate, Branch, DynRepo, Produced, ReadCtx, Run, hydrate_json, records_json};
use crate::aggregate::dynrepo::json_key;
use crate::router::Graph;
use crate::store::graph::EdgeDirection;
use crate::{Entity, Error, Key, Result};

/// What a [`GraphRead`] asks of the graph.
///
/// ```
/// use polyrouter::{aggregate::GraphOp, store::graph::EdgeDirection};
/// assert_ne!(GraphOp::Neighbours(EdgeDirection::In), GraphOp::Degree(EdgeDirection::In));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GraphOp {
    /// The first page of neighbours, ascending by id (`Out`: whom the
    /// vertex follows; `In`: its followers).
    Neighbours(EdgeDirection),
    /// Vertices linked with the vertex both ways, ascending by id.
    Mutual,
    /// Friends of friends, ranked by shared connections (ties by id).
    Recommend,
    /// The number of edges in a direction.
    Degree(EdgeDirection),
}

/// One graph read for [`Aggregate::graph`] and [`Aggregate::graph_records`].
///
/// Values: neighbours and mutual are the ids (`Vec<String>`), recommend is
/// `Vec<Recommended>`, degree a number (`u64`). Read as records, neighbours
/// and mutual are `Vec<T>` and recommend is `Vec<Scored<T>>` (the score is
/// the number of shared connections).
///
/// ```
/// use polyrouter::aggregate::{GraphOp, GraphRead};
/// let r = GraphRead::followers("ada", "follows").limit(20);
/// assert_eq!((r.vertex.as_str(), r.limit), ("ada", Some(20)));
/// assert_eq!(GraphRead::recommend("ada", "follows").op, GraphOp::Recommend);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphRead {
    /// The operation.
    pub op: GraphOp,
    /// The vertex id it starts from.
    pub vertex: String,
    /// The edge label it follows.
    pub label: String,
    /// At most this many ids (default: the router's `page_size`); not used by degree.
    pub limit: Option<usize>,
}

impl GraphRead {
    fn new(op: GraphOp, vertex: impl Into<String>, label: impl Into<String>) -> Self {
        GraphRead {
            op,
            vertex: vertex.into(),
            label: label.into(),
            limit: None,
        }
    }

    /// Neighbours of `vertex` over `label` in `direction`.
    ///
    /// ```
    /// use polyrouter::{aggregate::GraphRead, store::graph::EdgeDirection};
    /// let r = GraphRead::neighbours("ada", "follows", EdgeDirection::Out);
    /// assert_eq!(r, GraphRead::following("ada", "follows"));
    /// ```
    pub fn neighbours(
        vertex: impl Into<String>,
        label: impl Into<String>,
        direction: EdgeDirection,
    ) -> Self {
        GraphRead::new(GraphOp::Neighbours(direction), vertex, label)
    }

    /// The vertices `vertex` links to (whom it follows).
    ///
    /// ```
    /// let r = polyrouter::aggregate::GraphRead::following("ada", "follows");
    /// assert_eq!(r.label, "follows");
    /// ```
    pub fn following(vertex: impl Into<String>, label: impl Into<String>) -> Self {
        GraphRead::neighbours(vertex, label, EdgeDirection::Out)
    }

    /// The vertices linking to `vertex` (its followers).
    ///
    /// ```
    /// use polyrouter::{aggregate::{GraphOp, GraphRead}, store::graph::EdgeDirection};
    /// assert_eq!(GraphRead::followers("ada", "follows").op, GraphOp::Neighbours(EdgeDirection::In));
    /// ```
    pub fn followers(vertex: impl Into<String>, label: impl Into<String>) -> Self {
        GraphRead::neighbours(vertex, label, EdgeDirection::In)
    }

    /// Vertices linked with `vertex` both ways (mutual follows).
    ///
    /// ```
    /// use polyrouter::aggregate::{GraphOp, GraphRead};
    /// assert_eq!(GraphRead::mutual("ada", "follows").op, GraphOp::Mutual);
    /// ```
    pub fn mutual(vertex: impl Into<String>, label: impl Into<String>) -> Self {
        GraphRead::new(GraphOp::Mutual, vertex, label)
    }

    /// Friends of friends of `vertex`, ranked by shared connections.
    ///
    /// ```
    /// use polyrouter::aggregate::{GraphOp, GraphRead};
    /// assert_eq!(GraphRead::recommend("ada", "follows").limit(5).limit, Some(5));
    /// ```
    pub fn recommend(vertex: impl Into<String>, label: impl Into<String>) -> Self {
        GraphRead::new(GraphOp::Recommend, vertex, label)
    }

    /// The number of `label` edges out of (`Out`) or into (`In`) `vertex`.
    ///
    /// ```
    /// use polyrouter::{aggregate::{GraphOp, GraphRead}, store::graph::EdgeDirection};
    /// let r = GraphRead::degree("ada", "follows", EdgeDirection::In);
    /// assert_eq!(r.op, GraphOp::Degree(EdgeDirection::In));
    /// ```
    pub fn degree(
        vertex: impl Into<String>,
        label: impl Into<String>,
        direction: EdgeDirection,
    ) -> Self {
        GraphRead::new(GraphOp::Degree(direction), vertex, label)
    }

    /// At most `n` ids.
    ///
    /// ```
    /// assert_eq!(polyrouter::aggregate::GraphRead::mutual("a", "f").limit(3).limit, Some(3));
    /// ```
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }
}

/// One friend-of-friend suggestion: the value of a recommend branch that
/// is not read as records.
///
/// ```
/// let r: polyrouter::aggregate::Recommended = serde_json::from_value(serde_json::json!({"id": "cy", "shared": 2})).unwrap();
/// assert_eq!((r.id.as_str(), r.shared), ("cy", 2));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recommended {
    /// The candidate's vertex id.
    pub id: String,
    /// How many of the vertex's neighbours link to the candidate.
    pub shared: u64,
}

/// Runs `read` on `graph`; with `records`, the ids are read as that
/// entity's records (one `get_many`).
pub(super) async fn run_graph(
    graph: &Graph,
    read: &GraphRead,
    limit: usize,
    records: Option<(&dyn DynRepo, &ReadCtx)>,
) -> Result<Produced> {
    let (v, label) = (read.vertex.as_str(), read.label.as_str());
    let ranked: Vec<(String, u64)> = match read.op {
        GraphOp::Degree(d) => {
            if let Some((repo, _)) = records {
                return Err(degree_has_no_records(
                    &graph.info().store,
                    repo.schema().name,
                ));
            }
            let n = graph.degree(v, label, d).await?;
            return Ok(Produced {
                value: Json::from(n),
                dropped: 0,
            });
        }
        GraphOp::Neighbours(d) => graph
            .neighbours(v, label, d, limit, None)
            .await?
            .ids
            .into_iter()
            .map(|id| (id, 0))
            .collect(),
        GraphOp::Mutual => {
            let mut ids = graph.mutual(v, label).await?;
            ids.truncate(limit);
            ids.into_iter().map(|id| (id, 0)).collect()
        }
        GraphOp::Recommend => graph
            .recommend(v, label, limit)
            .await?
            .into_iter()
            .map(|r| (r.id, r.shared))
            .collect(),
    };
    let scored = read.op == GraphOp::Recommend;
    let Some((repo, ctx)) = records else {
        let value = if scored {
            let list: Vec<Recommended> = ranked
                .into_iter()
                .map(|(id, shared)| Recommended { id, shared })
                .collect();
            serde_json::to_value(list).unwrap_or(Json::Null)
        } else {
            Json::Array(ranked.into_iter().map(|(id, _)| Json::String(id)).collect())
        };
        return Ok(Produced { value, dropped: 0 });
    };
    let schema = repo.schema();
    let mut keyed: Vec<(Key, u64)> = Vec::with_capacity(ranked.len());
    for (id, shared) in ranked {
        let key = json_key(schema.key_kind, &Json::String(id.clone())).ok_or_else(|| {
            Error::invalid_input(
                &graph.info().store,
                schema.name,
                format!(
                    "graph `{}` returned vertex `{id}`, which is not a {:?} key of `{}`; read this graph as records of another entity",
                    graph.info().name,
                    schema.key_kind,
                    schema.name
                ),
            )
        })?;
        keyed.push((key, shared));
    }
    if scored {
        let hits = keyed.into_iter().map(|(k, s)| (k, s as f64)).collect();
        hydrate_json(repo, ctx, hits).await
    } else {
        records_json(repo, ctx, keyed.into_iter().map(|(k, _)| k).collect()).await
    }
}

pub(super) fn degree_has_no_records(store: &str, entity: &str) -> Error {
    Error::invalid_input(
        store,
        entity,
        "a degree is a number and cannot be read as records; use `Aggregate::graph` (or drop `entity` from the view branch)",
    )
}

impl Aggregate {
    fn graph_handle(&mut self, graph: &str) -> Option<Graph> {
        match self.router.graph(graph) {
            Ok(g) => Some(g),
            Err(e) => {
                self.error.get_or_insert(e);
                None
            }
        }
    }

    fn graph_limit(&self, read: &GraphRead) -> usize {
        read.limit
            .unwrap_or(self.router.config().router.page_size as usize)
    }

    /// A graph read as a branch, on `[graphs.GRAPH]`: out- or
    /// in-neighbours (first page, ascending by id), mutual connections,
    /// friends-of-friends recommendations or a degree (see [`GraphRead`]
    /// for the values). A failure names the graph's store; a graph that
    /// is not configured makes [`run`](Aggregate::run) fail.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use polyrouter::aggregate::{GraphRead, Recommended};
    /// use polyrouter::store::graph::EdgeDirection;
    /// let router = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[graphs.social]\nstore = \"m\"\n").await?;
    /// let social = router.graph("social")?;
    /// for id in ["ada", "bob", "cy"] {
    ///     social.add_vertex(&polyrouter::store::graph::Vertex::new(id, "user")).await?;
    /// }
    /// social.link("follows", "ada", "bob").await?;
    /// social.link("follows", "bob", "cy").await?;
    /// social.link("follows", "cy", "bob").await?;
    /// let out = router.aggregate()
    ///     .graph("followers", "social", GraphRead::followers("bob", "follows"))
    ///     .graph("fans", "social", GraphRead::degree("bob", "follows", EdgeDirection::In))
    ///     .graph("friends", "social", GraphRead::mutual("bob", "follows"))
    ///     .graph("suggest", "social", GraphRead::recommend("ada", "follows").limit(5))
    ///     .run().await?;
    /// assert_eq!(out.value::<Vec<String>>("followers")?, ["ada", "cy"]);
    /// assert_eq!(out.value::<u64>("fans")?, 2);
    /// assert_eq!(out.value::<Vec<String>>("friends")?, ["cy"]);
    /// assert_eq!(out.value::<Vec<Recommended>>("suggest")?, [Recommended { id: "cy".into(), shared: 1 }]);
    /// # Ok::<(), polyrouter::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn graph(mut self, name: &str, graph: &str, read: GraphRead) -> Self {
        let Some(g) = self.graph_handle(graph) else {
            return self;
        };
        let limit = self.graph_limit(&read);
        let store = g.info().store.clone();
        let run: Run =
            Box::new(move |_| Box::pin(async move { run_graph(&g, &read, limit, None).await }));
        self.push(Branch {
            name: name.into(),
            store,
            entity: String::new(),
            needs: None,
            required: false,
            deadline: None,
            store_from_error: false,
            run,
        })
    }

    /// A graph read whose vertex ids are `T`'s keys, read as records with
    /// **one** `get_many` (followers → user records, without N+1):
    /// neighbours and mutual give `Vec<T>` in the graph's order,
    /// recommend gives `Vec<Scored<T>>` ranked by shared connections.
    /// Ids without a record are dropped and counted in
    /// [`BranchResult::dropped`](super::BranchResult::dropped). A failure
    /// names the store that failed (the graph's or `T`'s); a degree cannot
    /// be read as records ([`run`](Aggregate::run) fails with `InvalidInput`).
    ///
    /// ```no_run
    /// # async fn f(r: polyrouter::Router) -> polyrouter::Result<()> {
    /// use polyrouter::aggregate::{GraphRead, Scored};
    /// let out = r.aggregate()
    ///     .graph_records::<User>("followers", "social", GraphRead::followers("ada", "follows").limit(50))
    ///     .graph_records::<User>("suggest", "social", GraphRead::recommend("ada", "follows").limit(10))
    ///     .run().await?;
    /// let followers: Vec<User> = out.value("followers")?;
    /// let suggest: Vec<Scored<User>> = out.value("suggest")?;
    /// # Ok(()) }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct User { id: String }
    /// ```
    pub fn graph_records<T: Entity>(mut self, name: &str, graph: &str, read: GraphRead) -> Self {
        let Some(g) = self.graph_handle(graph) else {
            return self;
        };
        let store = g.info().store.clone();
        if matches!(read.op, GraphOp::Degree(_)) {
            self.error
                .get_or_insert(degree_has_no_records(&store, T::schema().name));
        }
        let limit = self.graph_limit(&read);
        self.typed_at::<T>(name, store, true, None, move |repo, ctx, _| {
            Box::pin(async move { run_graph(&g, &read, limit, Some((&*repo, &ctx))).await })
        })
    }
}

/// A graph branch of a view, ready to run.
pub(super) fn graph_run(
    graph: Graph,
    read: GraphRead,
    limit: usize,
    records: Option<(Arc<dyn DynRepo>, ReadCtx)>,
) -> Run {
    Box::new(move |_| {
        Box::pin(async move {
            match &records {
                Some((repo, ctx)) => run_graph(&graph, &read, limit, Some((&**repo, ctx))).await,
                None => run_graph(&graph, &read, limit, None).await,
            }
        })
    })
}
