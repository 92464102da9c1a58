//! The sqlite store's [`GraphStore`]: an embedded graph in two tables.
//!
//! ```sql
//! CREATE TABLE "{prefix}vertices" (id TEXT PRIMARY KEY, label TEXT, properties TEXT) WITHOUT ROWID;
//! CREATE TABLE "{prefix}edges" (src TEXT, label TEXT, dst TEXT, properties TEXT,
//!                               PRIMARY KEY (src, label, dst)) WITHOUT ROWID;
//! CREATE INDEX "{prefix}edges_in" ON "{prefix}edges" (dst, label, src);
//! ```
//!
//! Out-neighbours are a range of the primary key, in-neighbours a range of
//! the reverse index; mutual connections, common neighbours and
//! friends-of-friends are one set-based statement each; shortest paths
//! are recursive CTEs (distances from both ends, then the layers of the
//! shortest paths). Every value is a bound parameter; the SQL text holds
//! only the quoted table names. Properties are tagged JSON text
//! ([`encode_properties`]).

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteConnection;

use super::{SqliteStore, map_err};
use crate::store::graph::{
    Edge, EdgeDirection, GraphInfo, GraphStore, NeighbourPage, Properties, Recommendation, Vertex,
    check_edge, check_limit, check_name, check_properties, check_vertex, decode_page_token,
    decode_properties, encode_properties, merge, page_of, pick_path,
};
use crate::{Error, Key, Precondition, Result};

/// Edges per multi-row statement (4 parameters each, well under SQLite's limit).
const CHUNK: usize = 500;

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The statements of one graph, built from its table names.
struct GraphSql {
    v: String,
    e: String,
}

impl GraphSql {
    fn new(graph: &GraphInfo) -> Self {
        GraphSql {
            v: quote(&graph.vertices),
            e: quote(&graph.edges),
        }
    }

    fn create(&self, graph: &GraphInfo) -> [String; 3] {
        let (v, e) = (&self.v, &self.e);
        [
            format!(
                "CREATE TABLE IF NOT EXISTS {v} (id TEXT NOT NULL PRIMARY KEY, label TEXT NOT NULL, properties TEXT NOT NULL) WITHOUT ROWID"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {e} (src TEXT NOT NULL, label TEXT NOT NULL, dst TEXT NOT NULL, properties TEXT NOT NULL, PRIMARY KEY (src, label, dst)) WITHOUT ROWID"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {e} (dst, label, src)",
                quote(&format!("{}_in", graph.edges))
            ),
        ]
    }

    /// `(from column, to column)` of a direction: `Out` follows src → dst.
    fn cols(direction: EdgeDirection) -> (&'static str, &'static str) {
        match direction {
            EdgeDirection::Out => ("src", "dst"),
            EdgeDirection::In => ("dst", "src"),
        }
    }

    fn neighbours(&self, direction: EdgeDirection) -> String {
        let (a, b) = Self::cols(direction);
        format!(
            "SELECT {b} FROM {} WHERE {a} = ? AND label = ? AND {b} > ? ORDER BY {b} LIMIT ?",
            self.e
        )
    }

    fn degree(&self, direction: EdgeDirection) -> String {
        let (a, _) = Self::cols(direction);
        format!(
            "SELECT count(*) FROM {} WHERE {a} = ? AND label = ?",
            self.e
        )
    }

    fn common(&self, direction: EdgeDirection) -> String {
        let (a, b) = Self::cols(direction);
        format!(
            "SELECT x.{b} FROM {e} x JOIN {e} y ON y.{b} = x.{b} AND y.label = x.label \
             WHERE x.{a} = ? AND y.{a} = ? AND x.label = ? ORDER BY x.{b}",
            e = self.e
        )
    }

    fn mutual(&self) -> String {
        format!(
            "SELECT x.dst FROM {e} x JOIN {e} y ON y.src = x.dst AND y.label = x.label AND y.dst = x.src \
             WHERE x.src = ? AND x.label = ? ORDER BY x.dst",
            e = self.e
        )
    }

    fn recommend(&self) -> String {
        format!(
            "SELECT f2.dst, count(*) AS shared FROM {e} f1 \
             JOIN {e} f2 ON f2.src = f1.dst AND f2.label = f1.label \
             WHERE f1.src = ? AND f1.label = ? AND f2.dst <> f1.src \
             AND NOT EXISTS (SELECT 1 FROM {e} x WHERE x.src = f1.src AND x.label = f1.label AND x.dst = f2.dst) \
             GROUP BY f2.dst ORDER BY shared DESC, f2.dst LIMIT ?",
            e = self.e
        )
    }

    /// Binds: from, label, max depth, to.
    fn distance(&self) -> String {
        format!(
            "WITH RECURSIVE fwd(v, d) AS (SELECT ?, 0 UNION \
             SELECT e.dst, f.d + 1 FROM fwd f JOIN {e} e ON e.src = f.v AND e.label = ? WHERE f.d < ?) \
             SELECT min(d) FROM fwd WHERE v = ?",
            e = self.e
        )
    }

    /// Binds: from, label, depth, to, label, depth, depth, label.
    fn layers(&self) -> String {
        format!(
            "WITH RECURSIVE fwd(v, d) AS (SELECT ?, 0 UNION \
               SELECT e.dst, f.d + 1 FROM fwd f JOIN {e} e ON e.src = f.v AND e.label = ? WHERE f.d < ?), \
             bwd(v, d) AS (SELECT ?, 0 UNION \
               SELECT e.src, b.d + 1 FROM bwd b JOIN {e} e ON e.dst = b.v AND e.label = ? WHERE b.d < ?), \
             fm AS MATERIALIZED (SELECT v, min(d) AS d FROM fwd GROUP BY v), \
             bm AS MATERIALIZED (SELECT v, min(d) AS d FROM bwd GROUP BY v), \
             p AS MATERIALIZED (SELECT fm.v, fm.d FROM fm JOIN bm ON bm.v = fm.v WHERE fm.d + bm.d = ?) \
             SELECT p1.d, e.src, e.dst FROM p p1 JOIN {e} e ON e.src = p1.v AND e.label = ? \
             JOIN p p2 ON p2.v = e.dst AND p2.d = p1.d + 1",
            e = self.e
        )
    }
}

impl SqliteStore {
    fn gerr(&self, graph: &GraphInfo, e: sqlx::Error) -> Error {
        map_err(&self.inner.name, &graph.entity(), e)
    }

    fn corrupt(&self, graph: &GraphInfo, what: String) -> Error {
        Error::backend(
            &self.inner.name,
            &graph.entity(),
            super::Message(format!("table `{}`: {what}", graph.vertices)),
        )
    }

    fn props(&self, graph: &GraphInfo, text: &str) -> Result<Properties> {
        decode_properties(text).map_err(|m| self.corrupt(graph, m))
    }

    /// The ids among `ids` that are not vertices, on the connection.
    async fn missing(
        &self,
        conn: &mut SqliteConnection,
        graph: &GraphInfo,
        ids: &BTreeSet<&str>,
    ) -> Result<Option<String>> {
        let sql = format!(
            "SELECT id FROM {} WHERE id IN (SELECT value FROM json_each(?))",
            quote(&graph.vertices)
        );
        let list: Vec<&str> = ids.iter().copied().collect();
        for chunk in list.chunks(CHUNK) {
            let json = serde_json::to_string(chunk).expect("strings serialize");
            let found: BTreeSet<String> = sqlx::query_scalar(&sql)
                .bind(json)
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| self.gerr(graph, e))?
                .into_iter()
                .collect();
            if let Some(m) = chunk.iter().find(|id| !found.contains(**id)) {
                return Ok(Some(m.to_string()));
            }
        }
        Ok(None)
    }

    async fn link_chunk(
        &self,
        conn: &mut SqliteConnection,
        graph: &GraphInfo,
        chunk: &[&Edge],
    ) -> Result<u64> {
        let e = quote(&graph.edges);
        let tuples = vec!["(?, ?, ?)"; chunk.len()].join(", ");
        let existing_sql =
            format!("SELECT count(*) FROM {e} WHERE (src, label, dst) IN (VALUES {tuples})");
        let mut q = sqlx::query_scalar::<_, i64>(&existing_sql);
        for edge in chunk {
            q = q.bind(&edge.src).bind(&edge.label).bind(&edge.dst);
        }
        let existing = q
            .fetch_one(&mut *conn)
            .await
            .map_err(|er| self.gerr(graph, er))?;
        let rows = vec!["(?, ?, ?, ?)"; chunk.len()].join(", ");
        let insert = format!(
            "INSERT INTO {e} (src, label, dst, properties) VALUES {rows} \
             ON CONFLICT (src, label, dst) DO UPDATE SET properties = excluded.properties"
        );
        let mut q = sqlx::query(&insert);
        for edge in chunk {
            q = q
                .bind(&edge.src)
                .bind(&edge.label)
                .bind(&edge.dst)
                .bind(encode_properties(&edge.properties));
        }
        q.execute(&mut *conn)
            .await
            .map_err(|er| self.gerr(graph, er))?;
        Ok(chunk.len() as u64 - existing as u64)
    }
}

#[async_trait]
impl GraphStore for SqliteStore {
    async fn ensure_graph(&self, graph: &GraphInfo) -> Result<()> {
        let s = GraphSql::new(graph);
        let mut conn = self
            .inner
            .pool
            .acquire()
            .await
            .map_err(|e| self.gerr(graph, e))?;
        for stmt in s.create(graph) {
            sqlx::query(&stmt)
                .execute(&mut *conn)
                .await
                .map_err(|e| self.gerr(graph, e))?;
        }
        Ok(())
    }

    async fn add_vertex(&self, graph: &GraphInfo, vertex: &Vertex) -> Result<()> {
        check_vertex(graph, vertex)?;
        let sql = format!(
            "INSERT INTO {} (id, label, properties) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING",
            quote(&graph.vertices)
        );
        let n = sqlx::query(&sql)
            .bind(&vertex.id)
            .bind(&vertex.label)
            .bind(encode_properties(&vertex.properties))
            .execute(&self.inner.pool)
            .await
            .map_err(|e| self.gerr(graph, e))?
            .rows_affected();
        if n == 0 {
            return Err(Error::conflict(
                &self.inner.name,
                &graph.entity(),
                &Key::from(vertex.id.as_str()),
                Precondition::Absent,
                Some(1),
            ));
        }
        Ok(())
    }

    async fn update_vertex(
        &self,
        graph: &GraphInfo,
        id: &str,
        properties: &Properties,
    ) -> Result<()> {
        check_name(graph, "vertex id", id)?;
        check_properties(graph, properties)?;
        let v = quote(&graph.vertices);
        let mut tx = self
            .inner
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| self.gerr(graph, e))?;
        let current: Option<String> =
            sqlx::query_scalar(&format!("SELECT properties FROM {v} WHERE id = ?"))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| self.gerr(graph, e))?;
        let Some(current) = current else {
            return Err(graph.no_vertex(id));
        };
        let mut props = self.props(graph, &current)?;
        merge(&mut props, properties);
        sqlx::query(&format!("UPDATE {v} SET properties = ? WHERE id = ?"))
            .bind(encode_properties(&props))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.gerr(graph, e))?;
        tx.commit().await.map_err(|e| self.gerr(graph, e))
    }

    async fn get_vertex(&self, graph: &GraphInfo, id: &str) -> Result<Option<Vertex>> {
        check_name(graph, "vertex id", id)?;
        let sql = format!(
            "SELECT label, properties FROM {} WHERE id = ?",
            quote(&graph.vertices)
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(|e| self.gerr(graph, e))?;
        let Some(row) = row else { return Ok(None) };
        let label: String = row.try_get(0).map_err(|e| self.gerr(graph, e))?;
        let props: String = row.try_get(1).map_err(|e| self.gerr(graph, e))?;
        Ok(Some(Vertex {
            id: id.into(),
            label,
            properties: self.props(graph, &props)?,
        }))
    }

    async fn remove_vertex(&self, graph: &GraphInfo, id: &str) -> Result<bool> {
        check_name(graph, "vertex id", id)?;
        let (v, e) = (quote(&graph.vertices), quote(&graph.edges));
        let mut tx = self
            .inner
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|er| self.gerr(graph, er))?;
        // The vertex first: on servers its row lock waits for links to it in flight.
        let n = sqlx::query(&format!("DELETE FROM {v} WHERE id = ?"))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|er| self.gerr(graph, er))?
            .rows_affected();
        for sql in [
            format!("DELETE FROM {e} WHERE src = ?"),
            format!("DELETE FROM {e} WHERE dst = ?"),
        ] {
            sqlx::query(&sql)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|er| self.gerr(graph, er))?;
        }
        tx.commit().await.map_err(|er| self.gerr(graph, er))?;
        Ok(n > 0)
    }

    async fn link(&self, graph: &GraphInfo, edge: &Edge) -> Result<bool> {
        Ok(self.link_many(graph, std::slice::from_ref(edge)).await? == 1)
    }

    async fn link_many(&self, graph: &GraphInfo, edges: &[Edge]) -> Result<u64> {
        for e in edges {
            check_edge(graph, e)?;
        }
        // The last of several links of one edge wins, as one after another would.
        let unique: BTreeMap<(&str, &str, &str), &Edge> = edges
            .iter()
            .map(|e| ((e.src.as_str(), e.label.as_str(), e.dst.as_str()), e))
            .collect();
        let unique: Vec<&Edge> = unique.into_values().collect();
        let ends: BTreeSet<&str> = edges
            .iter()
            .flat_map(|e| [e.src.as_str(), e.dst.as_str()])
            .collect();
        let mut tx = self
            .inner
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|er| self.gerr(graph, er))?;
        if let Some(id) = self.missing(&mut tx, graph, &ends).await? {
            return Err(graph.no_vertex(&id));
        }
        let mut created = 0;
        for chunk in unique.chunks(CHUNK) {
            created += self.link_chunk(&mut tx, graph, chunk).await?;
        }
        tx.commit().await.map_err(|er| self.gerr(graph, er))?;
        Ok(created)
    }

    async fn unlink(&self, graph: &GraphInfo, src: &str, label: &str, dst: &str) -> Result<bool> {
        check_edge(graph, &Edge::new(src, label, dst))?;
        let sql = format!(
            "DELETE FROM {} WHERE src = ? AND label = ? AND dst = ?",
            quote(&graph.edges)
        );
        let n = sqlx::query(&sql)
            .bind(src)
            .bind(label)
            .bind(dst)
            .execute(&self.inner.pool)
            .await
            .map_err(|e| self.gerr(graph, e))?
            .rows_affected();
        Ok(n > 0)
    }

    async fn get_edge(
        &self,
        graph: &GraphInfo,
        src: &str,
        label: &str,
        dst: &str,
    ) -> Result<Option<Edge>> {
        check_edge(graph, &Edge::new(src, label, dst))?;
        let sql = format!(
            "SELECT properties FROM {} WHERE src = ? AND label = ? AND dst = ?",
            quote(&graph.edges)
        );
        let props: Option<String> = sqlx::query_scalar(&sql)
            .bind(src)
            .bind(label)
            .bind(dst)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(|e| self.gerr(graph, e))?;
        props
            .map(|p| {
                Ok(Edge {
                    src: src.into(),
                    label: label.into(),
                    dst: dst.into(),
                    properties: self.props(graph, &p)?,
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
        let ids: Vec<String> = sqlx::query_scalar(&GraphSql::new(graph).neighbours(direction))
            .bind(id)
            .bind(label)
            .bind(after)
            .bind(i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.gerr(graph, e))?;
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
        let n: i64 = sqlx::query_scalar(&GraphSql::new(graph).degree(direction))
            .bind(id)
            .bind(label)
            .fetch_one(&self.inner.pool)
            .await
            .map_err(|e| self.gerr(graph, e))?;
        Ok(n as u64)
    }

    async fn mutual(&self, graph: &GraphInfo, id: &str, label: &str) -> Result<Vec<String>> {
        check_name(graph, "vertex id", id)?;
        check_name(graph, "edge label", label)?;
        sqlx::query_scalar(&GraphSql::new(graph).mutual())
            .bind(id)
            .bind(label)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.gerr(graph, e))
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
        sqlx::query_scalar(&GraphSql::new(graph).common(direction))
            .bind(a)
            .bind(b)
            .bind(label)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.gerr(graph, e))
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
        let rows = sqlx::query(&GraphSql::new(graph).recommend())
            .bind(id)
            .bind(label)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.gerr(graph, e))?;
        rows.iter()
            .map(|r| {
                Ok(Recommendation {
                    id: r.try_get(0)?,
                    shared: r.try_get::<i64, _>(1)? as u64,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|e| self.gerr(graph, e))
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
        let s = GraphSql::new(graph);
        // One read transaction: both statements see one snapshot.
        let mut conn = self
            .inner
            .pool
            .begin()
            .await
            .map_err(|e| self.gerr(graph, e))?;
        let ends = BTreeSet::from([from, to]);
        if self.missing(&mut conn, graph, &ends).await?.is_some() {
            return Ok(None);
        }
        let max = i64::try_from(max_depth).unwrap_or(i64::MAX);
        let depth: Option<i64> = sqlx::query_scalar(&s.distance())
            .bind(from)
            .bind(label)
            .bind(max)
            .bind(to)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| self.gerr(graph, e))?;
        let Some(depth) = depth else { return Ok(None) };
        let rows = sqlx::query(&s.layers())
            .bind(from)
            .bind(label)
            .bind(depth)
            .bind(to)
            .bind(label)
            .bind(depth)
            .bind(depth)
            .bind(label)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| self.gerr(graph, e))?;
        let layers = rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get::<i64, _>(0)? as usize,
                    r.try_get(1)?,
                    r.try_get(2)?,
                ))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(|e| self.gerr(graph, e))?;
        conn.commit().await.map_err(|e| self.gerr(graph, e))?;
        let path = pick_path(from, to, depth as usize, &layers);
        if path.is_none() {
            return Err(self.corrupt(
                graph,
                "the graph changed while its shortest path was read; retry".into(),
            ));
        }
        Ok(path)
    }
}
