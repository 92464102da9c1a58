//! PostgreSQL full-text search: a side table per search index with a
//! generated `tsvector` column and a GIN index; `websearch_to_tsquery`
//! for the query syntax, `ts_rank_cd` for ranking, `GROUP BY` for facets.
//!
//! Every value is a bound parameter; identifiers are double-quoted; the
//! text search configuration (the index's `language`) is checked against a
//! fixed list before it appears in DDL.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{Postgres, Row};
use uuid::Uuid;

use super::{PostgresStore, map_err, sqlstate};
use crate::entity::FieldKind;
use crate::query::{CmpOp, Filter};
use crate::store::search::{
    FacetCounts, Hit, LANGUAGES, SearchIndex, SearchRequest, SearchResults, SearchStore,
};
use crate::{Error, FilterCaps, Key, KeyKind, Record, Result, Value};

const KEY: &str = "\"_pr_key\"";
const TSV: &str = "\"_pr_tsv\"";
/// Rows per multi-row upsert.
const CHUNK: usize = 500;

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// A bound parameter.
#[derive(Debug, Clone)]
enum P {
    Str(Option<String>),
    I64(Option<i64>),
    F64(Option<f64>),
    F32(f32),
    Bool(Option<bool>),
    Ts(Option<DateTime<Utc>>),
    Uuid(Option<Uuid>),
    StrArr(Vec<String>),
    I64Arr(Vec<i64>),
    UuidArr(Vec<Uuid>),
}

fn bind<'q>(q: Query<'q, Postgres, PgArguments>, p: P) -> Query<'q, Postgres, PgArguments> {
    match p {
        P::Str(v) => q.bind(v),
        P::I64(v) => q.bind(v),
        P::F64(v) => q.bind(v),
        P::F32(v) => q.bind(v),
        P::Bool(v) => q.bind(v),
        P::Ts(v) => q.bind(v),
        P::Uuid(v) => q.bind(v),
        P::StrArr(v) => q.bind(v),
        P::I64Arr(v) => q.bind(v),
        P::UuidArr(v) => q.bind(v),
    }
}

/// SQL text with numbered parameters.
#[derive(Default)]
struct Sql {
    text: String,
    args: Vec<P>,
}

impl Sql {
    fn arg(&mut self, p: P) -> String {
        self.args.push(p);
        format!("${}", self.args.len())
    }
    fn query(&self) -> Query<'_, Postgres, PgArguments> {
        self.args
            .iter()
            .cloned()
            .fold(sqlx::query(&self.text), bind)
    }
}

/// The side table's layout.
struct Layout {
    table: String,
    key_kind: KeyKind,
    text: Vec<String>,
    values: Vec<(String, FieldKind)>,
    language: String,
}

fn sql_type(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Int => "BIGINT",
        FieldKind::Float => "DOUBLE PRECISION",
        FieldKind::Bool => "BOOLEAN",
        FieldKind::Timestamp => "TIMESTAMPTZ",
        FieldKind::Uuid => "UUID",
        _ => "TEXT COLLATE \"C\"",
    }
}

fn text_col(f: &str) -> String {
    quote(&format!("t_{f}"))
}

fn value_col(f: &str) -> String {
    quote(&format!("f_{f}"))
}

impl Layout {
    fn new(index: &SearchIndex) -> std::result::Result<Layout, String> {
        let table = format!("{}__search", index.name);
        if table.len() > 63 || index.name.contains('\0') {
            return Err(format!(
                "search table name {table:?} is too long or has a NUL (PostgreSQL names hold at most 63 bytes); set `search.index` to a shorter name"
            ));
        }
        if !LANGUAGES.contains(&index.language.as_str()) {
            return Err(format!(
                "unknown language `{}`; known: {}",
                index.language,
                LANGUAGES.join(", ")
            ));
        }
        let mut values = Vec::new();
        for f in index.value_fields() {
            match index.kind_of(f) {
                Some(
                    k @ (FieldKind::String
                    | FieldKind::Int
                    | FieldKind::Float
                    | FieldKind::Bool
                    | FieldKind::Timestamp
                    | FieldKind::Uuid),
                ) => values.push((f.to_string(), k)),
                Some(k) => {
                    return Err(format!(
                        "field `{f}` is a {} field; search filters and facets take string, int, float, bool, timestamp or uuid fields",
                        k.name()
                    ));
                }
                None => return Err(format!("field `{f}` is not in the entity's schema")),
            }
        }
        Ok(Layout {
            table,
            key_kind: index.schema.key_kind,
            text: index.fields.clone(),
            values,
            language: index.language.clone(),
        })
    }

    fn t(&self) -> String {
        quote(&self.table)
    }

    fn key_type(&self) -> &'static str {
        match self.key_kind {
            KeyKind::Str => "TEXT COLLATE \"C\"",
            KeyKind::Int => "BIGINT",
            KeyKind::Uuid => "UUID",
        }
    }

    fn create(&self) -> String {
        let mut cols = vec![format!("{KEY} {} PRIMARY KEY", self.key_type())];
        for f in &self.text {
            cols.push(format!("{} TEXT", text_col(f)));
        }
        for (f, k) in &self.values {
            cols.push(format!("{} {}", value_col(f), sql_type(*k)));
        }
        // The language is one of LANGUAGES (checked): safe as a literal.
        let vector = if self.text.is_empty() {
            "''::tsvector".to_string()
        } else {
            self.text
                .iter()
                .map(|f| {
                    format!(
                        "to_tsvector('{}'::regconfig, coalesce({}, ''))",
                        self.language,
                        text_col(f)
                    )
                })
                .collect::<Vec<_>>()
                .join(" || ")
        };
        cols.push(format!(
            "{TSV} tsvector GENERATED ALWAYS AS ({vector}) STORED"
        ));
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            self.t(),
            cols.join(", ")
        )
    }

    fn gin(&self) -> String {
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON {} USING GIN ({TSV})",
            quote(&format!("{}_tsv", self.table)),
            self.t()
        )
    }

    /// A fingerprint of the DDL, kept as the table comment.
    fn fingerprint(&self) -> String {
        format!(
            "polyrouter search {:016x}",
            crate::token::fnv(self.create().as_bytes(), 7)
        )
    }

    fn key_param(&self, k: &Key) -> std::result::Result<P, String> {
        Ok(match (self.key_kind, k) {
            (KeyKind::Str, Key::Str(s)) => {
                if s.contains('\0') {
                    return Err(
                        "the key contains a NUL character, which PostgreSQL text cannot hold"
                            .into(),
                    );
                }
                P::Str(Some(s.clone()))
            }
            (KeyKind::Int, Key::Int(i)) => P::I64(Some(*i)),
            (KeyKind::Uuid, Key::Uuid(u)) => P::Uuid(Some(*u)),
            (want, k) => return Err(format!("key {k} is not a {want:?} key")),
        })
    }

    fn keys_param(&self, keys: &[Key]) -> std::result::Result<P, String> {
        Ok(match self.key_kind {
            KeyKind::Str => P::StrArr(
                keys.iter()
                    .filter_map(|k| match k {
                        Key::Str(s) if !s.contains('\0') => Some(s.clone()),
                        _ => None,
                    })
                    .collect(),
            ),
            KeyKind::Int => P::I64Arr(
                keys.iter()
                    .filter_map(|k| match k {
                        Key::Int(i) => Some(*i),
                        _ => None,
                    })
                    .collect(),
            ),
            KeyKind::Uuid => P::UuidArr(
                keys.iter()
                    .filter_map(|k| match k {
                        Key::Uuid(u) => Some(*u),
                        _ => None,
                    })
                    .collect(),
            ),
        })
    }

    fn decode_key(&self, row: &PgRow) -> std::result::Result<Key, sqlx::Error> {
        Ok(match self.key_kind {
            KeyKind::Str => Key::Str(row.try_get(0)?),
            KeyKind::Int => Key::Int(row.try_get(0)?),
            KeyKind::Uuid => Key::Uuid(row.try_get(0)?),
        })
    }
}

/// A value as a parameter of a column of `kind`; `Err` says why not.
fn value_param(name: &str, kind: FieldKind, v: &Value) -> std::result::Result<P, String> {
    let nul = || {
        format!("field `{name}` contains a NUL character (\\0), which PostgreSQL text cannot hold")
    };
    Ok(match (kind, v) {
        (FieldKind::String, Value::Null) => P::Str(None),
        (FieldKind::String, Value::String(s)) if s.contains('\0') => return Err(nul()),
        (FieldKind::String, Value::String(s)) => P::Str(Some(s.clone())),
        (FieldKind::Uuid, Value::Null) => P::Uuid(None),
        (FieldKind::Uuid, Value::Uuid(u)) => P::Uuid(Some(*u)),
        (FieldKind::Uuid, Value::String(s)) => P::Uuid(Some(
            s.parse()
                .map_err(|_| format!("`{name}`: {s:?} is not a UUID"))?,
        )),
        (FieldKind::Int, Value::Null) => P::I64(None),
        (FieldKind::Int, Value::I64(i)) => P::I64(Some(*i)),
        (FieldKind::Float, Value::Null) => P::F64(None),
        (FieldKind::Float, Value::F64(x)) => P::F64(Some(*x)),
        (FieldKind::Float, Value::I64(i)) => P::F64(Some(*i as f64)),
        (FieldKind::Bool, Value::Null) => P::Bool(None),
        (FieldKind::Bool, Value::Bool(b)) => P::Bool(Some(*b)),
        (FieldKind::Timestamp, Value::Null) => P::Ts(None),
        (FieldKind::Timestamp, Value::Timestamp(t)) => P::Ts(Some(*t)),
        (k, v) => {
            return Err(format!(
                "field `{name}` is a {} field but the value is a {}",
                k.name(),
                v.type_name()
            ));
        }
    })
}

/// Compiles a filter to an expression that is never `NULL` (two-valued logic).
fn filter_sql(
    f: &Filter,
    fields: &[(String, FieldKind)],
    sql: &mut Sql,
) -> std::result::Result<String, String> {
    let col = |name: &str| -> std::result::Result<(String, FieldKind), String> {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(n, k)| (value_col(n), *k))
            .ok_or_else(|| {
                format!("field `{name}` is not a filter field of this search index; add it to the entity's `search.filters`")
            })
    };
    Ok(match f {
        Filter::Cmp { field, op, value } => {
            let (c, k) = col(field)?;
            if value.is_null() {
                return Err(format!("`{field}` is compared with null; use is_null"));
            }
            let p = sql.arg(value_param(field, k, value)?);
            match op {
                CmpOp::Ne => format!("({c} IS DISTINCT FROM {p})"),
                op => format!("coalesce({c} {} {p}, false)", op.symbol()),
            }
        }
        Filter::In { field, values } => {
            let (c, k) = col(field)?;
            let ps = values
                .iter()
                .filter(|v| !v.is_null())
                .map(|v| Ok(sql.arg(value_param(field, k, v)?)))
                .collect::<std::result::Result<Vec<_>, String>>()?;
            if ps.is_empty() {
                "false".into()
            } else {
                format!("coalesce({c} IN ({}), false)", ps.join(", "))
            }
        }
        Filter::Prefix { field, prefix } => {
            let (c, k) = col(field)?;
            if k != FieldKind::String {
                return Err(format!(
                    "prefix needs a string field; `{field}` is {}",
                    k.name()
                ));
            }
            let p = sql.arg(value_param(field, k, &Value::String(prefix.clone()))?);
            format!("coalesce(starts_with({c}, {p}), false)")
        }
        Filter::Contains { field, needle } => {
            let (c, k) = col(field)?;
            if k != FieldKind::String {
                return Err(format!(
                    "contains needs a string field; `{field}` is {}",
                    k.name()
                ));
            }
            let p = sql.arg(value_param(field, k, &Value::String(needle.clone()))?);
            format!("coalesce(strpos({c}, {p}) > 0, false)")
        }
        Filter::IsNull(field) => {
            let (c, _) = col(field)?;
            format!("({c} IS NULL)")
        }
        Filter::And(v) if v.is_empty() => "true".into(),
        Filter::Or(v) if v.is_empty() => "false".into(),
        Filter::And(v) | Filter::Or(v) => {
            let sep = if matches!(f, Filter::And(_)) {
                " AND "
            } else {
                " OR "
            };
            let parts = v
                .iter()
                .map(|x| filter_sql(x, fields, sql))
                .collect::<std::result::Result<Vec<_>, String>>()?;
            format!("({})", parts.join(sep))
        }
        Filter::Not(x) => format!("(NOT {})", filter_sql(x, fields, sql)?),
    })
}

impl PostgresStore {
    fn search_err(&self, index: &SearchIndex, e: sqlx::Error) -> Error {
        map_err(&self.inner.name, index.entity(), e)
    }

    fn search_invalid(&self, index: &SearchIndex, m: impl std::fmt::Display) -> Error {
        Error::invalid_input(&self.inner.name, index.entity(), m)
    }

    fn layout(&self, index: &SearchIndex) -> Result<Layout> {
        Layout::new(index).map_err(|m| {
            Error::config(
                "",
                &format!("entities.{}.search", index.entity()),
                format!("store `{}`: {m}", self.inner.name),
            )
        })
    }

    /// `FROM` and `WHERE` of a search (text and filter), and the score expression.
    fn matching(
        &self,
        index: &SearchIndex,
        l: &Layout,
        req: &SearchRequest,
        sql: &mut Sql,
    ) -> Result<(String, String)> {
        let mut from = l.t();
        let mut conds = Vec::new();
        let score = if req.text.trim().is_empty() {
            "0::real".to_string()
        } else {
            if req.text.contains('\0') {
                return Err(self.search_invalid(index, "the search text contains a NUL character"));
            }
            let p = sql.arg(P::Str(Some(req.text.clone())));
            from.push_str(&format!(
                ", websearch_to_tsquery('{}'::regconfig, {p}) AS pr_q(q)",
                l.language
            ));
            conds.push(format!("{TSV} @@ pr_q.q"));
            format!("ts_rank_cd({TSV}, pr_q.q)::real")
        };
        if let Some(f) = &req.filter {
            if let Some(c) = self.filter_caps().first_unsupported(f) {
                return Err(Error::unsupported(&self.inner.name, index.entity(), c));
            }
            conds.push(filter_sql(f, &l.values, sql).map_err(|m| self.search_invalid(index, m))?);
        }
        let cond = if conds.is_empty() {
            "true".to_string()
        } else {
            conds.join(" AND ")
        };
        Ok((format!("FROM {from} WHERE {cond}"), score))
    }
}

#[async_trait]
impl SearchStore for PostgresStore {
    async fn ensure_index(&self, index: &SearchIndex) -> Result<()> {
        let l = self.layout(index)?;
        let mut conn = self
            .inner
            .pool
            .acquire()
            .await
            .map_err(|e| self.search_err(index, e))?;
        for stmt in [l.create(), l.gin()] {
            if let Err(e) = sqlx::query(&stmt).execute(&mut *conn).await {
                // Another connection creating it at the same time is fine.
                if !matches!(sqlstate(&e).as_deref(), Some("23505" | "42P07")) {
                    return Err(self.search_err(index, e));
                }
            }
        }
        let comment: Option<String> =
            sqlx::query_scalar("SELECT obj_description(to_regclass($1), 'pg_class')")
                .bind(l.t())
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| self.search_err(index, e))?;
        let want = l.fingerprint();
        match comment {
            Some(c) if c == want => Ok(()),
            Some(_) => Err(Error::config(
                "",
                &format!("entities.{}.search", index.entity()),
                format!(
                    "store `{}`: search table {} was built with another layout (fields, filters, facets or language); drop it and run `polyrouter reindex {}`",
                    self.inner.name,
                    l.t(),
                    index.entity()
                ),
            )),
            None => {
                // `want` is hex digits and fixed words: safe as a literal.
                let stmt = format!("COMMENT ON TABLE {} IS '{want}'", l.t());
                sqlx::query(&stmt)
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| self.search_err(index, e))?;
                Ok(())
            }
        }
    }

    async fn index(&self, index: &SearchIndex, docs: &[Record]) -> Result<()> {
        if docs.is_empty() {
            return Ok(());
        }
        let l = self.layout(index)?;
        // The last document per key wins (one upsert cannot touch a row twice).
        let mut last: HashMap<&Key, usize> = HashMap::new();
        for (i, d) in docs.iter().enumerate() {
            last.insert(&d.key, i);
        }
        let docs: Vec<&Record> = docs
            .iter()
            .enumerate()
            .filter(|(i, d)| last.get(&d.key) == Some(i))
            .map(|(_, d)| d)
            .collect();
        let mut cols = vec![KEY.to_string()];
        cols.extend(l.text.iter().map(|f| text_col(f)));
        cols.extend(l.values.iter().map(|(f, _)| value_col(f)));
        let set: Vec<String> = cols[1..]
            .iter()
            .map(|c| format!("{c} = EXCLUDED.{c}"))
            .collect();
        let mut tx = self
            .inner
            .pool
            .begin()
            .await
            .map_err(|e| self.search_err(index, e))?;
        for chunk in docs.chunks(CHUNK) {
            let mut sql = Sql::default();
            let mut rows = Vec::with_capacity(chunk.len());
            for d in chunk {
                let bad = |m: String| self.search_invalid(index, format!("record {}: {m}", d.key));
                let mut ps = vec![sql.arg(l.key_param(&d.key).map_err(bad)?)];
                for f in &l.text {
                    let v = d.get(f).unwrap_or(&Value::Null);
                    ps.push(sql.arg(value_param(f, FieldKind::String, v).map_err(bad)?));
                }
                for (f, k) in &l.values {
                    let v = d.get(f).unwrap_or(&Value::Null);
                    ps.push(sql.arg(value_param(f, *k, v).map_err(bad)?));
                }
                rows.push(format!("({})", ps.join(", ")));
            }
            sql.text = format!(
                "INSERT INTO {} ({}) VALUES {} ON CONFLICT ({KEY}) DO {}",
                l.t(),
                cols.join(", "),
                rows.join(", "),
                if set.is_empty() {
                    "NOTHING".to_string()
                } else {
                    format!("UPDATE SET {}", set.join(", "))
                }
            );
            sql.query()
                .execute(&mut *tx)
                .await
                .map_err(|e| self.search_err(index, e))?;
        }
        tx.commit().await.map_err(|e| self.search_err(index, e))
    }

    async fn remove(&self, index: &SearchIndex, keys: &[Key]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let l = self.layout(index)?;
        let mut sql = Sql::default();
        let p = sql.arg(
            l.keys_param(keys)
                .map_err(|m| self.search_invalid(index, m))?,
        );
        sql.text = format!("DELETE FROM {} WHERE {KEY} = ANY({p})", l.t());
        sql.query()
            .execute(&self.inner.pool)
            .await
            .map_err(|e| self.search_err(index, e))?;
        Ok(())
    }

    async fn clear(&self, index: &SearchIndex) -> Result<()> {
        let l = self.layout(index)?;
        sqlx::query(&format!("DELETE FROM {}", l.t()))
            .execute(&self.inner.pool)
            .await
            .map_err(|e| self.search_err(index, e))?;
        Ok(())
    }

    async fn flush(&self, _: &SearchIndex) -> Result<()> {
        Ok(()) // every write is committed, hence searchable, when it returns
    }

    async fn search(&self, index: &SearchIndex, req: &SearchRequest) -> Result<SearchResults> {
        let l = self.layout(index)?;
        for f in &req.facets {
            if !index.facets.contains(f) {
                return Err(self.search_invalid(
                    index,
                    format!("`{f}` is not a facet of this search index; add it to the entity's `search.facets`"),
                ));
            }
        }
        // Hits.
        let mut sql = Sql::default();
        let (body, score) = self.matching(index, &l, req, &mut sql)?;
        let after = match &req.after {
            Some(c) => {
                let s = sql.arg(P::F32(c.score));
                let k = sql.arg(
                    l.key_param(&c.key)
                        .map_err(|m| self.search_invalid(index, m))?,
                );
                format!("WHERE (pr_score < {s} OR (pr_score = {s} AND {KEY} > {k}))")
            }
            None => String::new(),
        };
        let limit = sql.arg(P::I64(Some(req.limit as i64)));
        sql.text = format!(
            "SELECT {KEY}, pr_score FROM (SELECT {KEY}, {score} AS pr_score {body}) AS pr_m {after} ORDER BY pr_score DESC, {KEY} ASC LIMIT {limit}"
        );
        let rows = sql
            .query()
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.search_err(index, e))?;
        let hits = rows
            .iter()
            .map(|r| {
                Ok(Hit {
                    key: l.decode_key(r)?,
                    score: r.try_get::<f32, _>(1)?,
                })
            })
            .collect::<std::result::Result<Vec<_>, sqlx::Error>>()
            .map_err(|e| self.search_err(index, e))?;
        // Total.
        let mut sql = Sql::default();
        let (body, _) = self.matching(index, &l, req, &mut sql)?;
        sql.text = format!("SELECT count(*) {body}");
        let total: i64 = sql
            .query()
            .fetch_one(&self.inner.pool)
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| self.search_err(index, e))?;
        // Facets.
        let mut facets = Vec::with_capacity(req.facets.len());
        for f in &req.facets {
            let mut sql = Sql::default();
            let (body, _) = self.matching(index, &l, req, &mut sql)?;
            let c = value_col(f);
            let n = sql.arg(P::I64(Some(req.facet_limit as i64)));
            sql.text = format!(
                "SELECT {c}::text, count(*) {body} AND {c} IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 ASC LIMIT {n}"
            );
            let rows = sql
                .query()
                .fetch_all(&self.inner.pool)
                .await
                .map_err(|e| self.search_err(index, e))?;
            let mut fc = FacetCounts {
                field: f.clone(),
                counts: rows
                    .iter()
                    .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)? as u64)))
                    .collect::<std::result::Result<Vec<_>, sqlx::Error>>()
                    .map_err(|e| self.search_err(index, e))?,
            };
            fc.sort_and_truncate(req.facet_limit);
            facets.push(fc);
        }
        Ok(SearchResults {
            hits,
            total: total as u64,
            facets,
        })
    }

    fn filter_caps(&self) -> FilterCaps {
        FilterCaps::all()
    }
}
