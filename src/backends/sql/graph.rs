//! The SQL text of the embedded graph (a vertex table and an edge table)
//! that the relational stores offer as their `GraphStore`, written once:
//! each store supplies its [`GraphFlavor`] and [`Dialect`] (placeholders),
//! and runs the statements with its own driver.
//!
//! ```sql
//! CREATE TABLE "{prefix}vertices" (id TEXT PRIMARY KEY, label TEXT, properties TEXT);
//! CREATE TABLE "{prefix}edges" (src TEXT, label TEXT, dst TEXT, properties TEXT,
//!                               PRIMARY KEY (src, label, dst));
//! CREATE INDEX "{prefix}edges_in" ON "{prefix}edges" (dst, label, src);
//! ```
//!
//! Out-neighbours are a range of the primary key, in-neighbours a range of
//! the reverse index; mutual connections, common neighbours and
//! friends-of-friends are one set-based statement each; shortest paths are
//! recursive CTEs (distances from both ends, then the layers of the
//! shortest paths). Every value is a bound parameter; the SQL text holds
//! only the quoted table names.

use async_trait::async_trait;

use crate::backends::sql::{Dialect, Message, Param, number};
use crate::store::graph::{
    Edge, EdgeDirection, GraphInfo, NeighbourPage, Recommendation, check_edge, check_limit,
    check_name, decode_page_token, decode_properties, page_of,
};
use crate::{Error, Result};

/// What differs between databases in the graph's SQL.
///
/// ```
/// use polyrouter::backends::sql::graph::GraphFlavor;
/// let f = GraphFlavor { text: "TEXT", table_options: "", anchor: "?, 0" };
/// assert_eq!(f.text, "TEXT");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct GraphFlavor {
    /// The column type of ids and labels, compared in byte order
    /// (`TEXT`; `TEXT COLLATE "C"` on PostgreSQL).
    pub text: &'static str,
    /// Appended to each `CREATE TABLE` (` WITHOUT ROWID` on SQLite).
    pub table_options: &'static str,
    /// The first row of a recursive walk, a vertex id parameter and depth 0
    /// (`?, 0`; typed on PostgreSQL, which needs the column types there).
    pub anchor: &'static str,
}

/// The statements of one graph, built from its table names, with the
/// dialect's placeholders.
///
/// ```
/// # #[cfg(feature = "sqlite")] {
/// use polyrouter::backends::sql::graph::{GraphFlavor, GraphSql};
/// use polyrouter::store::graph::{EdgeDirection, GraphInfo};
/// let flavor = GraphFlavor { text: "TEXT", table_options: "", anchor: "?, 0" };
/// let g = GraphSql::new(&GraphInfo::new("social", "db"), flavor, &polyrouter::backends::sqlite::SqliteDialect);
/// assert!(g.degree(EdgeDirection::Out).starts_with("SELECT count(*) FROM"));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct GraphSql {
    /// The quoted vertex table.
    pub v: String,
    /// The quoted edge table.
    pub e: String,
    /// The quoted reverse index (dst, label, src).
    index: String,
    flavor: GraphFlavor,
    dialect: &'static dyn Dialect,
}

impl GraphSql {
    /// The statements of `graph` in `dialect`.
    pub fn new(graph: &GraphInfo, flavor: GraphFlavor, dialect: &'static dyn Dialect) -> Self {
        GraphSql {
            v: dialect.quote(&graph.vertices),
            e: dialect.quote(&graph.edges),
            index: dialect.quote(&format!("{}_in", graph.edges)),
            flavor,
            dialect,
        }
    }

    fn n(&self, sql: &str) -> String {
        number(self.dialect, sql)
    }

    /// The vertex table, the edge table and the reverse index.
    pub fn create(&self) -> [String; 3] {
        let (v, e, t, o) = (
            &self.v,
            &self.e,
            self.flavor.text,
            self.flavor.table_options,
        );
        [
            format!(
                "CREATE TABLE IF NOT EXISTS {v} (id {t} NOT NULL PRIMARY KEY, label {t} NOT NULL, properties TEXT NOT NULL){o}"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {e} (src {t} NOT NULL, label {t} NOT NULL, dst {t} NOT NULL, properties TEXT NOT NULL, PRIMARY KEY (src, label, dst)){o}"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {e} (dst, label, src)",
                self.index
            ),
        ]
    }

    /// `(from column, to column)` of a direction: `Out` follows src → dst.
    pub fn cols(direction: EdgeDirection) -> (&'static str, &'static str) {
        match direction {
            EdgeDirection::Out => ("src", "dst"),
            EdgeDirection::In => ("dst", "src"),
        }
    }

    /// A page of neighbours. Binds: vertex, label, after, limit.
    pub fn neighbours(&self, direction: EdgeDirection) -> String {
        let (a, b) = Self::cols(direction);
        self.n(&format!(
            "SELECT {b} FROM {} WHERE {a} = ? AND label = ? AND {b} > ? ORDER BY {b} LIMIT ?",
            self.e
        ))
    }

    /// The number of edges. Binds: vertex, label.
    pub fn degree(&self, direction: EdgeDirection) -> String {
        let (a, _) = Self::cols(direction);
        self.n(&format!(
            "SELECT count(*) FROM {} WHERE {a} = ? AND label = ?",
            self.e
        ))
    }

    /// Neighbours two vertices share. Binds: a, b, label.
    pub fn common(&self, direction: EdgeDirection) -> String {
        let (a, b) = Self::cols(direction);
        self.n(&format!(
            "SELECT x.{b} FROM {e} x JOIN {e} y ON y.{b} = x.{b} AND y.label = x.label \
             WHERE x.{a} = ? AND y.{a} = ? AND x.label = ? ORDER BY x.{b}",
            e = self.e
        ))
    }

    /// Vertices linked both ways. Binds: vertex, label.
    pub fn mutual(&self) -> String {
        self.n(&format!(
            "SELECT x.dst FROM {e} x JOIN {e} y ON y.src = x.dst AND y.label = x.label AND y.dst = x.src \
             WHERE x.src = ? AND x.label = ? ORDER BY x.dst",
            e = self.e
        ))
    }

    /// Friends of friends by shared connections. Binds: vertex, label, limit.
    pub fn recommend(&self) -> String {
        self.n(&format!(
            "SELECT f2.dst, count(*) AS shared FROM {e} f1 \
             JOIN {e} f2 ON f2.src = f1.dst AND f2.label = f1.label \
             WHERE f1.src = ? AND f1.label = ? AND f2.dst <> f1.src \
             AND NOT EXISTS (SELECT 1 FROM {e} x WHERE x.src = f1.src AND x.label = f1.label AND x.dst = f2.dst) \
             GROUP BY f2.dst ORDER BY shared DESC, f2.dst LIMIT ?",
            e = self.e
        ))
    }

    /// The length of a shortest path, or NULL. Binds: from, label, max
    /// depth, to.
    pub fn distance(&self) -> String {
        self.n(&format!(
            "WITH RECURSIVE fwd(v, d) AS (SELECT {a} UNION \
             SELECT e.dst, f.d + 1 FROM fwd f JOIN {e} e ON e.src = f.v AND e.label = ? WHERE f.d < ?) \
             SELECT min(d) FROM fwd WHERE v = ?",
            a = self.flavor.anchor,
            e = self.e
        ))
    }

    /// The edges of every shortest path, by layer: `(depth, src, dst)`.
    /// Binds: from, label, depth, to, label, depth, depth, label. The
    /// reachability sets are materialized: each is read twice.
    pub fn layers(&self) -> String {
        self.n(&format!(
            "WITH RECURSIVE fwd(v, d) AS (SELECT {a} UNION \
               SELECT e.dst, f.d + 1 FROM fwd f JOIN {e} e ON e.src = f.v AND e.label = ? WHERE f.d < ?), \
             bwd(v, d) AS (SELECT {a} UNION \
               SELECT e.src, b.d + 1 FROM bwd b JOIN {e} e ON e.dst = b.v AND e.label = ? WHERE b.d < ?), \
             fm AS MATERIALIZED (SELECT v, min(d) AS d FROM fwd GROUP BY v), \
             bm AS MATERIALIZED (SELECT v, min(d) AS d FROM bwd GROUP BY v), \
             p AS MATERIALIZED (SELECT fm.v, fm.d FROM fm JOIN bm ON bm.v = fm.v WHERE fm.d + bm.d = ?) \
             SELECT p1.d, e.src, e.dst FROM p p1 JOIN {e} e ON e.src = p1.v AND e.label = ? \
             JOIN p p2 ON p2.v = e.dst AND p2.d = p1.d + 1",
            a = self.flavor.anchor,
            e = self.e
        ))
    }

    /// Deletes one edge. Binds: src, label, dst.
    pub fn unlink(&self) -> String {
        self.n(&format!(
            "DELETE FROM {} WHERE src = ? AND label = ? AND dst = ?",
            self.e
        ))
    }

    /// One edge's properties. Binds: src, label, dst.
    pub fn edge_properties(&self) -> String {
        self.n(&format!(
            "SELECT properties FROM {} WHERE src = ? AND label = ? AND dst = ?",
            self.e
        ))
    }

    /// How many of `rows` edges exist. Binds: (src, label, dst) per edge.
    pub fn existing_edges(&self, rows: usize) -> String {
        let tuples = vec!["(?, ?, ?)"; rows].join(", ");
        self.n(&format!(
            "SELECT count(*) FROM {} WHERE (src, label, dst) IN (VALUES {tuples})",
            self.e
        ))
    }

    /// Inserts `rows` edges, replacing the properties of existing ones.
    /// Binds: (src, label, dst, properties) per edge.
    pub fn upsert_edges(&self, rows: usize) -> String {
        let tuples = vec!["(?, ?, ?, ?)"; rows].join(", ");
        self.n(&format!(
            "INSERT INTO {} (src, label, dst, properties) VALUES {tuples} \
             ON CONFLICT (src, label, dst) DO UPDATE SET properties = excluded.properties",
            self.e
        ))
    }
}

/// The statements a relational store runs for the graph reads below, one
/// at a time on its pool, values bound as [`Param`]s; errors name the
/// store and the graph.
#[async_trait]
pub trait GraphDb: Send + Sync {
    /// The store's name, for errors.
    fn store_name(&self) -> &str;
    /// This database's statements for `graph`.
    fn graph_sql(&self, graph: &GraphInfo) -> GraphSql;
    /// The first column of every row, as text.
    async fn texts(
        &self,
        graph: &GraphInfo,
        sql: &str,
        params: Vec<Param<'_>>,
    ) -> Result<Vec<String>>;
    /// Every row as `(text, integer)`.
    async fn text_ints(
        &self,
        graph: &GraphInfo,
        sql: &str,
        params: Vec<Param<'_>>,
    ) -> Result<Vec<(String, i64)>>;
    /// The integer of the first row's first column.
    async fn int(&self, graph: &GraphInfo, sql: &str, params: Vec<Param<'_>>) -> Result<i64>;
    /// Runs a statement; the rows it affected.
    async fn execute(&self, graph: &GraphInfo, sql: &str, params: Vec<Param<'_>>) -> Result<u64>;
}

fn text(s: &str) -> Param<'static> {
    Param::Text(s.to_string().into())
}

fn int(n: usize) -> Param<'static> {
    Param::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// `GraphStore::unlink` on a relational store.
pub async fn unlink(
    db: &dyn GraphDb,
    graph: &GraphInfo,
    src: &str,
    label: &str,
    dst: &str,
) -> Result<bool> {
    check_edge(graph, &Edge::new(src, label, dst))?;
    let sql = db.graph_sql(graph).unlink();
    Ok(db
        .execute(graph, &sql, vec![text(src), text(label), text(dst)])
        .await?
        > 0)
}

/// `GraphStore::get_edge` on a relational store.
pub async fn get_edge(
    db: &dyn GraphDb,
    graph: &GraphInfo,
    src: &str,
    label: &str,
    dst: &str,
) -> Result<Option<Edge>> {
    check_edge(graph, &Edge::new(src, label, dst))?;
    let sql = db.graph_sql(graph).edge_properties();
    let props = db
        .texts(graph, &sql, vec![text(src), text(label), text(dst)])
        .await?;
    props
        .first()
        .map(|p| {
            let properties = decode_properties(p).map_err(|m| {
                Error::backend(
                    db.store_name(),
                    &graph.entity(),
                    Message(format!("table `{}`: {m}", graph.edges)),
                )
            })?;
            Ok(Edge {
                src: src.into(),
                label: label.into(),
                dst: dst.into(),
                properties,
            })
        })
        .transpose()
}

/// `GraphStore::neighbours` on a relational store.
pub async fn neighbours(
    db: &dyn GraphDb,
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
    let sql = db.graph_sql(graph).neighbours(direction);
    let params = vec![
        text(id),
        text(label),
        Param::Text(after.into()),
        int(limit.saturating_add(1)),
    ];
    let ids = db.texts(graph, &sql, params).await?;
    Ok(page_of(graph, id, label, direction, ids, limit))
}

/// `GraphStore::degree` on a relational store.
pub async fn degree(
    db: &dyn GraphDb,
    graph: &GraphInfo,
    id: &str,
    label: &str,
    direction: EdgeDirection,
) -> Result<u64> {
    check_name(graph, "vertex id", id)?;
    check_name(graph, "edge label", label)?;
    let sql = db.graph_sql(graph).degree(direction);
    Ok(db.int(graph, &sql, vec![text(id), text(label)]).await? as u64)
}

/// `GraphStore::mutual` on a relational store.
pub async fn mutual(
    db: &dyn GraphDb,
    graph: &GraphInfo,
    id: &str,
    label: &str,
) -> Result<Vec<String>> {
    check_name(graph, "vertex id", id)?;
    check_name(graph, "edge label", label)?;
    let sql = db.graph_sql(graph).mutual();
    db.texts(graph, &sql, vec![text(id), text(label)]).await
}

/// `GraphStore::common` on a relational store.
pub async fn common(
    db: &dyn GraphDb,
    graph: &GraphInfo,
    a: &str,
    b: &str,
    label: &str,
    direction: EdgeDirection,
) -> Result<Vec<String>> {
    check_name(graph, "vertex id", a)?;
    check_name(graph, "vertex id", b)?;
    check_name(graph, "edge label", label)?;
    let sql = db.graph_sql(graph).common(direction);
    db.texts(graph, &sql, vec![text(a), text(b), text(label)])
        .await
}

/// `GraphStore::recommend` on a relational store.
pub async fn recommend(
    db: &dyn GraphDb,
    graph: &GraphInfo,
    id: &str,
    label: &str,
    limit: usize,
) -> Result<Vec<Recommendation>> {
    check_name(graph, "vertex id", id)?;
    check_name(graph, "edge label", label)?;
    check_limit(graph, limit)?;
    let sql = db.graph_sql(graph).recommend();
    let rows = db
        .text_ints(graph, &sql, vec![text(id), text(label), int(limit)])
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, shared)| Recommendation {
            id,
            shared: shared as u64,
        })
        .collect())
}
