//! [`Graph`]: the handle `router.graph("NAME")` returns for `[graphs.NAME]`.

use std::sync::Arc;

use crate::store::graph::{
    Edge, EdgeDirection, GraphInfo, GraphStore, NeighbourPage, Properties, Recommendation, Vertex,
};
use crate::{Result, Store};

/// A graph on its store: vertices, labelled edges and traversals.
///
/// Cheap to clone. Every method is the [`GraphStore`] operation of the same
/// name on this graph; see there for the exact semantics.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use polyrouter::store::graph::Vertex;
/// let router = polyrouter::Router::from_toml_str(r#"
///     [stores.main]
///     kind = "memory"
///     [graphs.social]
///     store = "main"
/// "#).await?;
/// let social = router.graph("social")?;
/// for id in ["ada", "bob", "cy"] {
///     social.add_vertex(&Vertex::new(id, "user")).await?;
/// }
/// social.link("follows", "ada", "bob").await?;
/// social.link("follows", "bob", "cy").await?;
/// let followers = social.followers("bob", "follows", 100, None).await?;
/// assert_eq!(followers.ids, vec!["ada".to_string()]);
/// let fof = social.recommend("ada", "follows", 10).await?;
/// assert_eq!(fof[0].id, "cy");
/// # Ok::<(), polyrouter::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Graph {
    info: GraphInfo,
    store: Arc<dyn Store>,
}

impl Graph {
    /// A handle on `store`, which must offer graphs
    /// ([`Store::as_graph`]); the router checks that at start-up.
    pub(crate) fn new(info: GraphInfo, store: Arc<dyn Store>) -> Self {
        Graph { info, store }
    }

    fn api(&self) -> &dyn GraphStore {
        self.store
            .as_graph()
            .expect("the router only builds graphs on stores with the graph capability")
    }

    /// The graph's name, store and table names.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let r = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[graphs.g]\nstore = \"m\"\n").await.unwrap();
    /// assert_eq!(r.graph("g").unwrap().info().vertices, "g_vertices");
    /// # });
    /// ```
    pub fn info(&self) -> &GraphInfo {
        &self.info
    }

    /// The store holding the graph.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let r = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[graphs.g]\nstore = \"m\"\n").await.unwrap();
    /// assert_eq!(r.graph("g").unwrap().store().kind(), "memory");
    /// # });
    /// ```
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Adds a vertex; [`Error::Conflict`](crate::Error::Conflict) when the id exists.
    pub async fn add_vertex(&self, vertex: &Vertex) -> Result<()> {
        self.api().add_vertex(&self.info, vertex).await
    }

    /// Merges properties into a vertex (`Null` removes one).
    pub async fn update_vertex(&self, id: &str, properties: &Properties) -> Result<()> {
        self.api().update_vertex(&self.info, id, properties).await
    }

    /// The vertex with this id.
    pub async fn vertex(&self, id: &str) -> Result<Option<Vertex>> {
        self.api().get_vertex(&self.info, id).await
    }

    /// Removes a vertex and its edges; true if it existed.
    pub async fn remove_vertex(&self, id: &str) -> Result<bool> {
        self.api().remove_vertex(&self.info, id).await
    }

    /// Links `src -[label]-> dst` without properties; true if new (idempotent).
    pub async fn link(&self, label: &str, src: &str, dst: &str) -> Result<bool> {
        self.api()
            .link(&self.info, &Edge::new(src, label, dst))
            .await
    }

    /// Links an edge with its properties; true if new.
    pub async fn link_edge(&self, edge: &Edge) -> Result<bool> {
        self.api().link(&self.info, edge).await
    }

    /// Links many edges in batches; the number of new edges.
    pub async fn link_many(&self, edges: &[Edge]) -> Result<u64> {
        self.api().link_many(&self.info, edges).await
    }

    /// Removes `src -[label]-> dst`; true if it existed.
    pub async fn unlink(&self, label: &str, src: &str, dst: &str) -> Result<bool> {
        self.api().unlink(&self.info, src, label, dst).await
    }

    /// The edge `src -[label]-> dst`.
    pub async fn edge(&self, label: &str, src: &str, dst: &str) -> Result<Option<Edge>> {
        self.api().get_edge(&self.info, src, label, dst).await
    }

    /// A page of neighbours in either direction.
    pub async fn neighbours(
        &self,
        id: &str,
        label: &str,
        direction: EdgeDirection,
        limit: usize,
        after: Option<&str>,
    ) -> Result<NeighbourPage> {
        self.api()
            .neighbours(&self.info, id, label, direction, limit, after)
            .await
    }

    /// A page of the vertices `id` links to (whom it follows).
    pub async fn following(
        &self,
        id: &str,
        label: &str,
        limit: usize,
        after: Option<&str>,
    ) -> Result<NeighbourPage> {
        self.neighbours(id, label, EdgeDirection::Out, limit, after)
            .await
    }

    /// A page of the vertices linking to `id` (its followers).
    pub async fn followers(
        &self,
        id: &str,
        label: &str,
        limit: usize,
        after: Option<&str>,
    ) -> Result<NeighbourPage> {
        self.neighbours(id, label, EdgeDirection::In, limit, after)
            .await
    }

    /// The number of `label` edges out of or into `id`.
    pub async fn degree(&self, id: &str, label: &str, direction: EdgeDirection) -> Result<u64> {
        self.api().degree(&self.info, id, label, direction).await
    }

    /// Vertices linked with `id` both ways.
    pub async fn mutual(&self, id: &str, label: &str) -> Result<Vec<String>> {
        self.api().mutual(&self.info, id, label).await
    }

    /// Neighbours `a` and `b` share in `direction` (`In`: common followers).
    pub async fn common(
        &self,
        a: &str,
        b: &str,
        label: &str,
        direction: EdgeDirection,
    ) -> Result<Vec<String>> {
        self.api().common(&self.info, a, b, label, direction).await
    }

    /// Friends of friends ranked by shared connections.
    pub async fn recommend(
        &self,
        id: &str,
        label: &str,
        limit: usize,
    ) -> Result<Vec<Recommendation>> {
        self.api().recommend(&self.info, id, label, limit).await
    }

    /// A shortest path of at most `max_depth` edges, or `None`.
    pub async fn shortest_path(
        &self,
        from: &str,
        to: &str,
        label: &str,
        max_depth: usize,
    ) -> Result<Option<Vec<String>>> {
        self.api()
            .shortest_path(&self.info, from, to, label, max_depth)
            .await
    }
}
