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

use super::codec::bind_all;
use super::{SqliteStore, map_err};
use crate::backends::sql::Param;
use crate::backends::sql::graph::{self as reads, GraphDb, GraphFlavor, GraphSql};
use crate::store::graph::{
    Edge, EdgeDirection, GraphInfo, GraphStore, NeighbourPage, Properties, Recommendation, Vertex,
    check_edge, check_name, check_properties, check_vertex, decode_properties, encode_properties,
    merge, pick_path,
};
use crate::{Error, Key, Precondition, Result};

/// Edges per multi-row statement (4 parameters each, well under SQLite's limit).
const CHUNK: usize = 500;

/// What differs in this database's graph SQL.
const FLAVOR: GraphFlavor = GraphFlavor {
    text: "TEXT",
    table_options: " WITHOUT ROWID",
    anchor: "?, 0",
};

/// The statements of `graph` in this database.
fn sql(graph: &GraphInfo) -> GraphSql {
    GraphSql::new(graph, FLAVOR, &super::SqliteDialect)
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
            sql(graph).v
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
        let s = sql(graph);
        let existing_sql = s.existing_edges(chunk.len());
        let mut q = sqlx::query_scalar::<_, i64>(&existing_sql);
        for edge in chunk {
            q = q.bind(&edge.src).bind(&edge.label).bind(&edge.dst);
        }
        let existing = q
            .fetch_one(&mut *conn)
            .await
            .map_err(|er| self.gerr(graph, er))?;
        let insert = s.upsert_edges(chunk.len());
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
        let s = sql(graph);
        let mut conn = self
            .inner
            .pool
            .acquire()
            .await
            .map_err(|e| self.gerr(graph, e))?;
        for stmt in s.create() {
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
            sql(graph).v
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
        let v = sql(graph).v;
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
            sql(graph).v
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
        let s = sql(graph);
        let (v, e) = (&s.v, &s.e);
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
        reads::unlink(self, graph, src, label, dst).await
    }

    async fn get_edge(
        &self,
        graph: &GraphInfo,
        src: &str,
        label: &str,
        dst: &str,
    ) -> Result<Option<Edge>> {
        reads::get_edge(self, graph, src, label, dst).await
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
        reads::neighbours(self, graph, id, label, direction, limit, after).await
    }

    async fn degree(
        &self,
        graph: &GraphInfo,
        id: &str,
        label: &str,
        direction: EdgeDirection,
    ) -> Result<u64> {
        reads::degree(self, graph, id, label, direction).await
    }

    async fn mutual(&self, graph: &GraphInfo, id: &str, label: &str) -> Result<Vec<String>> {
        reads::mutual(self, graph, id, label).await
    }

    async fn common(
        &self,
        graph: &GraphInfo,
        a: &str,
        b: &str,
        label: &str,
        direction: EdgeDirection,
    ) -> Result<Vec<String>> {
        reads::common(self, graph, a, b, label, direction).await
    }

    async fn recommend(
        &self,
        graph: &GraphInfo,
        id: &str,
        label: &str,
        limit: usize,
    ) -> Result<Vec<Recommendation>> {
        reads::recommend(self, graph, id, label, limit).await
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
        let s = sql(graph);
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

#[async_trait]
impl GraphDb for SqliteStore {
    fn store_name(&self) -> &str {
        &self.inner.name
    }

    fn graph_sql(&self, graph: &GraphInfo) -> GraphSql {
        sql(graph)
    }

    async fn texts(
        &self,
        graph: &GraphInfo,
        sql: &str,
        params: Vec<Param<'_>>,
    ) -> Result<Vec<String>> {
        bind_all(sqlx::query(sql), params)
            .fetch_all(&self.inner.pool)
            .await
            .and_then(|rows| rows.iter().map(|r| r.try_get(0)).collect())
            .map_err(|e| self.gerr(graph, e))
    }

    async fn text_ints(
        &self,
        graph: &GraphInfo,
        sql: &str,
        params: Vec<Param<'_>>,
    ) -> Result<Vec<(String, i64)>> {
        bind_all(sqlx::query(sql), params)
            .fetch_all(&self.inner.pool)
            .await
            .and_then(|rows| {
                rows.iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                    .collect()
            })
            .map_err(|e| self.gerr(graph, e))
    }

    async fn int(&self, graph: &GraphInfo, sql: &str, params: Vec<Param<'_>>) -> Result<i64> {
        bind_all(sqlx::query(sql), params)
            .fetch_one(&self.inner.pool)
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| self.gerr(graph, e))
    }

    async fn execute(&self, graph: &GraphInfo, sql: &str, params: Vec<Param<'_>>) -> Result<u64> {
        bind_all(sqlx::query(sql), params)
            .execute(&self.inner.pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(|e| self.gerr(graph, e))
    }
}
