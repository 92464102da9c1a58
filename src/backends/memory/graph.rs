//! The memory store's [`GraphStore`]: vertices in a map, edges in two
//! ordered sets (by source and by destination), so neighbour pages are range
//! scans in id order. The reference semantics for the other graph backends.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::RwLock;

use super::MemoryStore;
use crate::store::graph::Edge;
use crate::store::graph::{
    EdgeDirection, GraphInfo, GraphStore, NeighbourPage, Properties, Recommendation, Vertex,
    check_edge, check_limit, check_name, check_vertex, decode_page_token, merge, non_null, page_of,
};
use crate::{Error, Key, Precondition, Result};

/// One graph: vertices, and edges indexed both ways.
#[derive(Debug, Default)]
pub(super) struct MemGraph {
    vertices: HashMap<String, (String, Properties)>,
    /// `(src, label, dst)` → properties.
    out: BTreeMap<(String, String, String), Properties>,
    /// `(dst, label, src)`.
    inn: BTreeSet<(String, String, String)>,
}

/// Every graph of a memory store, by vertex table name.
pub(super) type Graphs = RwLock<HashMap<String, Arc<RwLock<MemGraph>>>>;

impl MemGraph {
    /// Ids of `id`'s neighbours over `label` in `dir`, ascending, after `after`.
    fn neighbours<'a>(
        &'a self,
        id: &'a str,
        label: &'a str,
        dir: EdgeDirection,
        after: Option<&'a str>,
    ) -> Box<dyn Iterator<Item = &'a str> + 'a> {
        let start = (
            id.to_string(),
            label.to_string(),
            after.unwrap_or("").to_string(),
        );
        let lower = match after {
            Some(_) => Bound::Excluded(start),
            None => Bound::Included(start),
        };
        let same = move |s: &str, l: &str| s == id && l == label;
        match dir {
            EdgeDirection::Out => Box::new(
                self.out
                    .range((lower, Bound::Unbounded))
                    .map(|(k, _)| k)
                    .take_while(move |(s, l, _)| same(s, l))
                    .map(|(_, _, d)| d.as_str()),
            ),
            EdgeDirection::In => Box::new(
                self.inn
                    .range((lower, Bound::Unbounded))
                    .take_while(move |(s, l, _)| same(s, l))
                    .map(|(_, _, d)| d.as_str()),
            ),
        }
    }

    fn linked(&self, src: &str, label: &str, dst: &str) -> bool {
        self.out
            .contains_key(&(src.to_string(), label.to_string(), dst.to_string()))
    }

    /// Breadth-first distances from `start` over `label` edges in `dir`, up to `max`.
    fn distances(
        &self,
        start: &str,
        label: &str,
        dir: EdgeDirection,
        max: usize,
    ) -> HashMap<String, usize> {
        let mut dist = HashMap::from([(start.to_string(), 0)]);
        let mut queue = VecDeque::from([start.to_string()]);
        while let Some(v) = queue.pop_front() {
            let d = dist[&v];
            if d == max {
                continue;
            }
            let next: Vec<String> = self
                .neighbours(&v, label, dir, None)
                .map(str::to_string)
                .collect();
            for n in next {
                if !dist.contains_key(&n) {
                    dist.insert(n.clone(), d + 1);
                    queue.push_back(n);
                }
            }
        }
        dist
    }
}

impl MemoryStore {
    fn graph(&self, graph: &GraphInfo) -> Arc<RwLock<MemGraph>> {
        if let Some(g) = self.graphs.read().get(&graph.vertices) {
            return g.clone();
        }
        self.graphs
            .write()
            .entry(graph.vertices.clone())
            .or_default()
            .clone()
    }
}

fn missing_end(graph: &GraphInfo, g: &MemGraph, e: &Edge) -> Option<Error> {
    [&e.src, &e.dst]
        .into_iter()
        .find(|id| !g.vertices.contains_key(id.as_str()))
        .map(|id| graph.no_vertex(id))
}

#[async_trait]
impl GraphStore for MemoryStore {
    async fn ensure_graph(&self, graph: &GraphInfo) -> Result<()> {
        self.graph(graph);
        Ok(())
    }

    async fn add_vertex(&self, graph: &GraphInfo, vertex: &Vertex) -> Result<()> {
        check_vertex(graph, vertex)?;
        let g = self.graph(graph);
        let mut g = g.write();
        if g.vertices.contains_key(&vertex.id) {
            return Err(Error::conflict(
                &graph.store,
                &graph.entity(),
                &Key::from(vertex.id.as_str()),
                Precondition::Absent,
                Some(1),
            ));
        }
        g.vertices.insert(
            vertex.id.clone(),
            (vertex.label.clone(), non_null(&vertex.properties)),
        );
        Ok(())
    }

    async fn update_vertex(
        &self,
        graph: &GraphInfo,
        id: &str,
        properties: &Properties,
    ) -> Result<()> {
        check_name(graph, "vertex id", id)?;
        crate::store::graph::check_properties(graph, properties)?;
        let g = self.graph(graph);
        let mut g = g.write();
        let Some((_, current)) = g.vertices.get_mut(id) else {
            return Err(graph.no_vertex(id));
        };
        merge(current, properties);
        Ok(())
    }

    async fn get_vertex(&self, graph: &GraphInfo, id: &str) -> Result<Option<Vertex>> {
        check_name(graph, "vertex id", id)?;
        let g = self.graph(graph);
        let g = g.read();
        Ok(g.vertices.get(id).map(|(label, p)| Vertex {
            id: id.to_string(),
            label: label.clone(),
            properties: p.clone(),
        }))
    }

    async fn remove_vertex(&self, graph: &GraphInfo, id: &str) -> Result<bool> {
        check_name(graph, "vertex id", id)?;
        let g = self.graph(graph);
        let mut g = g.write();
        if g.vertices.remove(id).is_none() {
            return Ok(false);
        }
        g.out.retain(|(s, _, d), _| s != id && d != id);
        g.inn.retain(|(d, _, s)| s != id && d != id);
        Ok(true)
    }

    async fn link(&self, graph: &GraphInfo, edge: &Edge) -> Result<bool> {
        Ok(self.link_many(graph, std::slice::from_ref(edge)).await? == 1)
    }

    async fn link_many(&self, graph: &GraphInfo, edges: &[Edge]) -> Result<u64> {
        for e in edges {
            check_edge(graph, e)?;
        }
        let g = self.graph(graph);
        let mut g = g.write();
        if let Some(err) = edges.iter().find_map(|e| missing_end(graph, &g, e)) {
            return Err(err);
        }
        let mut created = 0;
        for e in edges {
            let key = (e.src.clone(), e.label.clone(), e.dst.clone());
            if g.out.insert(key, non_null(&e.properties)).is_none() {
                created += 1;
            }
            g.inn
                .insert((e.dst.clone(), e.label.clone(), e.src.clone()));
        }
        Ok(created)
    }

    async fn unlink(&self, graph: &GraphInfo, src: &str, label: &str, dst: &str) -> Result<bool> {
        check_edge(graph, &Edge::new(src, label, dst))?;
        let g = self.graph(graph);
        let mut g = g.write();
        let existed = g
            .out
            .remove(&(src.to_string(), label.to_string(), dst.to_string()))
            .is_some();
        g.inn
            .remove(&(dst.to_string(), label.to_string(), src.to_string()));
        Ok(existed)
    }

    async fn get_edge(
        &self,
        graph: &GraphInfo,
        src: &str,
        label: &str,
        dst: &str,
    ) -> Result<Option<Edge>> {
        check_edge(graph, &Edge::new(src, label, dst))?;
        let g = self.graph(graph);
        let g = g.read();
        Ok(g.out
            .get(&(src.to_string(), label.to_string(), dst.to_string()))
            .map(|p| Edge {
                src: src.into(),
                label: label.into(),
                dst: dst.into(),
                properties: p.clone(),
            }))
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
            .transpose()?;
        let g = self.graph(graph);
        let g = g.read();
        let ids = g
            .neighbours(id, label, direction, after.as_deref())
            .take(limit.saturating_add(1))
            .map(str::to_string)
            .collect();
        Ok(page_of(graph, id, label, direction, ids, limit))
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
        let g = self.graph(graph);
        let g = g.read();
        Ok(g.neighbours(id, label, direction, None).count() as u64)
    }

    async fn mutual(&self, graph: &GraphInfo, id: &str, label: &str) -> Result<Vec<String>> {
        check_name(graph, "vertex id", id)?;
        check_name(graph, "edge label", label)?;
        let g = self.graph(graph);
        let g = g.read();
        Ok(g.neighbours(id, label, EdgeDirection::Out, None)
            .filter(|x| g.linked(x, label, id))
            .map(str::to_string)
            .collect())
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
        let g = self.graph(graph);
        let g = g.read();
        let of_b: BTreeSet<&str> = g.neighbours(b, label, direction, None).collect();
        Ok(g.neighbours(a, label, direction, None)
            .filter(|x| of_b.contains(x))
            .map(str::to_string)
            .collect())
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
        let g = self.graph(graph);
        let g = g.read();
        let mut shared: BTreeMap<&str, u64> = BTreeMap::new();
        for friend in g.neighbours(id, label, EdgeDirection::Out, None) {
            for fof in g.neighbours(friend, label, EdgeDirection::Out, None) {
                if fof != id && !g.linked(id, label, fof) {
                    *shared.entry(fof).or_default() += 1;
                }
            }
        }
        let mut ranked: Vec<Recommendation> = shared
            .into_iter()
            .map(|(id, shared)| Recommendation {
                id: id.to_string(),
                shared,
            })
            .collect();
        // Stable sort: equal counts keep their ascending id order.
        ranked.sort_by_key(|r| std::cmp::Reverse(r.shared));
        ranked.truncate(limit);
        Ok(ranked)
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
        let g = self.graph(graph);
        let g = g.read();
        if !g.vertices.contains_key(from) || !g.vertices.contains_key(to) {
            return Ok(None);
        }
        let fwd = g.distances(from, label, EdgeDirection::Out, max_depth);
        let Some(&depth) = fwd.get(to) else {
            return Ok(None);
        };
        let bwd = g.distances(to, label, EdgeDirection::In, depth);
        // From `from`, always the smallest next id still on a shortest path.
        let mut path = vec![from.to_string()];
        let mut cur = from.to_string();
        for d in 0..depth {
            let next = g
                .neighbours(&cur, label, EdgeDirection::Out, None)
                .find(|n| fwd.get(*n) == Some(&(d + 1)) && bwd.get(*n) == Some(&(depth - d - 1)))
                .map(str::to_string);
            cur = next.expect("a vertex on a shortest path has a successor on it");
            path.push(cur.clone());
        }
        Ok(Some(path))
    }
}
