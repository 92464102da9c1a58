//! Always-run tests of the generated T-SQL and its parameters (no server
//! needed), configuration, and start-up against a closed port; live tests
//! run when `POLYROUTER_TEST_SQLSERVER_URL` names a server.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::DateTime;
use serde_json::json;
use uuid::Uuid;

use super::tsql::{self, CatalogColumn};
use super::*;
use crate::backends::sql::write::{self, Exec};
use crate::backends::sql::{Column, ColumnInfo, Dialect, check_table};
use crate::config::StoreSpec;
use crate::entity::{FieldDef, FieldKind, Schema};
use crate::query::{Direction, Order, field};
use crate::store::Precondition;
use crate::{KeyKind, Value};

const NOW: i64 = 1_700_000_000_000_000;
const COLL: &str = "COLLATE Latin1_General_100_BIN2";

static ITEM_FIELDS: [FieldDef; 11] = [
    FieldDef::required("id", FieldKind::String),
    FieldDef::required("name", FieldKind::String),
    FieldDef::nullable("n", FieldKind::Int),
    FieldDef::nullable("f", FieldKind::Float),
    FieldDef::nullable("b", FieldKind::Bool),
    FieldDef::nullable("ts", FieldKind::Timestamp),
    FieldDef::nullable("u", FieldKind::Uuid),
    FieldDef::nullable("j", FieldKind::Json),
    FieldDef::nullable("by", FieldKind::Bytes),
    FieldDef::nullable("a]b", FieldKind::String),
    FieldDef::nullable("'; DROP TABLE x; --", FieldKind::String),
];
static ITEM: Schema = Schema {
    name: "item",
    key: "id",
    key_kind: KeyKind::Str,
    partition_key: None,
    version: None,
    fields: &ITEM_FIELDS,
};

fn table() -> TableSql {
    TableSql::new(
        Arc::new(SqlServerDialect::new(Some("s".into()))),
        &ITEM,
        "items",
    )
    .unwrap()
}

/// The filter's SQL (after the liveness condition) and its parameters
/// (after `now`).
fn filter_sql(f: &Filter) -> (String, Vec<Param<'static>>) {
    let t = table();
    let s = t.count(Some(f), NOW);
    let head = "SELECT count(*) FROM [s].[items] WHERE ([_pr_expires_at] IS NULL OR [_pr_expires_at] > @P1) AND ";
    assert!(s.sql.starts_with(head), "{}", s.sql);
    assert_eq!(s.params[0], Param::Int(NOW));
    (
        s.sql[head.len()..].to_string(),
        owned(s.params[1..].to_vec()),
    )
}

fn text(s: &str) -> Param<'static> {
    Param::Text(s.to_string().into())
}

#[test]
fn quoting_placeholders_and_numbering() {
    let d = SqlServerDialect::new(None);
    assert_eq!(d.quote("a]b"), "[a]]b]");
    assert_eq!(d.quote_table("t"), "[t]");
    assert_eq!(
        SqlServerDialect::new(Some("x]y".into())).quote_table("t"),
        "[x]]y].[t]"
    );
    let mut s = String::new();
    d.placeholder(12, &mut s);
    assert_eq!(s, "@P12");
    // `]]` inside brackets is data: a `?` after it is not a parameter.
    assert_eq!(
        number(&d, "SELECT [a]]?] FROM [t] WHERE [x] = ? AND N'?' = ?"),
        "SELECT [a]]?] FROM [t] WHERE [x] = @P1 AND N'?' = @P2"
    );
    assert!(d.check_ident("field", "").is_err());
    assert!(d.check_ident("field", "a\0b").is_err());
    assert!(d.check_ident("field", &"x".repeat(129)).is_err());
    assert!(d.check_ident("field", "a]b").is_ok());
}

use crate::backends::sql::number;

#[test]
fn table_names_compare_ignoring_case() {
    let names = SqlServerDialect::new(None).table_names();
    assert_eq!(
        names.identity("Probe_Case").unwrap(),
        names.identity("PROBE_CASE").unwrap()
    );
    assert_eq!(names.identity("Ärger").unwrap(), "ärger");
}

#[test]
fn column_types_keep_reference_order() {
    let d = SqlServerDialect::new(None);
    assert_eq!(
        d.column_type(FieldKind::String, true),
        format!("NVARCHAR(450) {COLL}")
    );
    assert_eq!(
        d.column_type(FieldKind::String, false),
        format!("NVARCHAR(MAX) {COLL}")
    );
    assert_eq!(
        d.column_type(FieldKind::Json, false),
        format!("NVARCHAR(MAX) {COLL}")
    );
    assert_eq!(d.column_type(FieldKind::Int, false), "BIGINT");
    assert_eq!(d.column_type(FieldKind::Timestamp, false), "BIGINT");
    assert_eq!(d.column_type(FieldKind::Float, false), "FLOAT");
    assert_eq!(d.column_type(FieldKind::Bool, false), "BIT");
    assert_eq!(d.column_type(FieldKind::Uuid, true), "BINARY(16)");
    assert_eq!(d.column_type(FieldKind::Bytes, false), "VARBINARY(MAX)");
    // Keys SQL Server cannot tell apart or index are refused, not mangled.
    assert!(d.key_problem("abc").is_none());
    assert!(d.key_problem("abc ").unwrap().contains("trailing spaces"));
    assert!(d.key_problem(&"x".repeat(451)).unwrap().contains("450"));
    assert!(d.key_problem(&"é".repeat(450)).is_none());
    let t = table();
    assert!(!t.storable(&Key::from("a ")));
    assert!(
        t.key(&Key::from("a "))
            .unwrap_err()
            .contains("trailing spaces")
    );
}

#[test]
fn ddl_creates_table_index_and_schema() {
    let t = table();
    let c = tsql::create_table(&t);
    assert_eq!(
        c.sql,
        format!(
            "IF OBJECT_ID(@P1, N'U') IS NULL CREATE TABLE [s].[items] (\
             [id] NVARCHAR(450) {COLL} NOT NULL PRIMARY KEY, [name] NVARCHAR(MAX) {COLL} NOT NULL, \
             [n] BIGINT, [f] FLOAT, [b] BIT, [ts] BIGINT, [u] BINARY(16), [j] NVARCHAR(MAX) {COLL}, \
             [by] VARBINARY(MAX), [a]]b] NVARCHAR(MAX) {COLL}, ['; DROP TABLE x; --] NVARCHAR(MAX) {COLL}, \
             [_pr_version] BIGINT NOT NULL, [_pr_expires_at] BIGINT)"
        )
    );
    assert_eq!(c.params, vec![text("[s].[items]")]);
    assert_eq!(
        t.create_index.as_deref(),
        Some(
            "IF INDEXPROPERTY(OBJECT_ID(N'[s].[items]'), N'items_pr_expires_at', 'IndexID') IS NULL \
             CREATE INDEX [items_pr_expires_at] ON [s].[items] ([_pr_expires_at])"
        )
    );
    let s = tsql::create_schema(&SqlServerDialect::new(None), "run'1");
    assert_eq!(
        s.sql,
        "IF SCHEMA_ID(@P1) IS NULL BEGIN DECLARE @pr_sql NVARCHAR(300) = N'CREATE SCHEMA ' + QUOTENAME(@P2); EXEC(@pr_sql); END"
    );
    assert_eq!(s.params, vec![text("run'1"), text("run'1")]);
    // `EXEC(…)` takes only literals and variables, never a function call.
    assert!(!tsql::DROP_SCHEMA.contains("EXEC(N'"));
    assert!(tsql::DROP_SCHEMA.contains(
        "EXEC(@pr_drop); SET @pr_drop = N'DROP SCHEMA ' + QUOTENAME(@P1); EXEC(@pr_drop);"
    ));
    // A `'` in a table name is doubled inside the N'…' literal.
    let q = TableSql::new(Arc::new(SqlServerDialect::new(None)), &ITEM, "it's").unwrap();
    assert!(
        q.create_index.unwrap().starts_with(
            "IF INDEXPROPERTY(OBJECT_ID(N'[it''s]'), N'it''s_pr_expires_at', 'IndexID')"
        )
    );
    assert_eq!(
        t.purge,
        "DELETE TOP (1000) FROM [s].[items] WHERE [_pr_expires_at] <= @P1 AND ([_pr_expires_at] >= 0 OR [_pr_expires_at] >= @P2)"
    );
    // Expired rows at once; tombstones (negative) after the retention.
    let week = i64::try_from(crate::store::DEFAULT_TOMBSTONE_RETENTION.as_micros()).unwrap();
    assert_eq!(
        t.purge_params(NOW),
        vec![Param::Int(NOW), Param::Int(week - NOW)]
    );
}

#[test]
fn point_statements() {
    let t = table();
    let cols = "[id], [name], [n], [f], [b], [ts], [u], [j], [by], [a]]b], ['; DROP TABLE x; --]";
    assert_eq!(
        t.get,
        format!(
            "SELECT {cols}, [_pr_version] FROM [s].[items] WHERE [id] = @P1 AND ([_pr_expires_at] IS NULL OR [_pr_expires_at] > @P2)"
        )
    );
    assert_eq!(
        t.lock,
        "SELECT CASE WHEN ([_pr_expires_at] IS NULL OR [_pr_expires_at] > @P1) THEN [_pr_version] \
         WHEN [_pr_expires_at] < 0 THEN 0 - [_pr_version] ELSE 0 END \
         FROM [s].[items] WITH (UPDLOCK, HOLDLOCK) WHERE [id] = @P2"
    );
    assert_eq!(
        t.insert,
        format!(
            "INSERT INTO [s].[items] ({cols}, [_pr_version], [_pr_expires_at]) VALUES (@P1, @P2, @P3, @P4, @P5, @P6, @P7, @P8, @P9, @P10, @P11, @P12, @P13)"
        )
    );
    assert_eq!(
        t.update,
        "UPDATE [s].[items] SET [name] = @P1, [n] = @P2, [f] = @P3, [b] = @P4, [ts] = @P5, [u] = @P6, [j] = @P7, [by] = @P8, [a]]b] = @P9, ['; DROP TABLE x; --] = @P10, [_pr_version] = @P11, [_pr_expires_at] = @P12 WHERE [id] = @P13"
    );
    assert_eq!(t.delete, "DELETE FROM [s].[items] WHERE [id] = @P1");
}

#[test]
fn comparisons_of_every_operator() {
    let cases: Vec<(Filter, &str)> = vec![
        (field("n").eq(5), "([n] IS NOT NULL AND [n] = @P2)"),
        (field("n").ne(5), "([n] IS NULL OR [n] <> @P2)"),
        (field("n").lt(5), "([n] IS NOT NULL AND [n] < @P2)"),
        (field("n").le(5), "([n] IS NOT NULL AND [n] <= @P2)"),
        (field("n").gt(5), "([n] IS NOT NULL AND [n] > @P2)"),
        (field("n").ge(5), "([n] IS NOT NULL AND [n] >= @P2)"),
    ];
    for (f, want) in cases {
        let (sql, params) = filter_sql(&f);
        assert_eq!(sql, want, "{f:?}");
        assert_eq!(params, vec![Param::Int(5)], "{f:?}");
    }
    // Text compares in the binary collation, exactly: SQL Server's `=`
    // and `<` ignore trailing spaces, so equal-looking values are told
    // apart by their length (the longer is the greater).
    for (f, want) in [
        (
            field("name").eq("m "),
            format!(
                "([name] IS NOT NULL AND [name] = @P2 {COLL} AND DATALENGTH([name]) = DATALENGTH(@P3))"
            ),
        ),
        (
            field("name").ne("m "),
            format!(
                "([name] IS NULL OR [name] <> @P2 {COLL} OR DATALENGTH([name]) <> DATALENGTH(@P3))"
            ),
        ),
    ] {
        let (sql, params) = filter_sql(&f);
        assert_eq!(sql, want);
        assert_eq!(params, vec![text("m "), text("m ")]);
    }
    for (f, strict, op) in [
        (field("name").lt("m "), "<", "<"),
        (field("name").le("m "), "<", "<="),
        (field("name").gt("m "), ">", ">"),
        (field("name").ge("m "), ">", ">="),
    ] {
        let (sql, params) = filter_sql(&f);
        assert_eq!(
            sql,
            format!(
                "([name] IS NOT NULL AND ([name] {strict} @P2 {COLL} OR ([name] = @P3 {COLL} AND DATALENGTH([name]) {op} DATALENGTH(@P4))))"
            )
        );
        assert_eq!(params, vec![text("m "), text("m "), text("m ")]);
    }
    // Every other kind binds its own parameter type.
    let ts = DateTime::from_timestamp_micros(1_234_567).unwrap();
    let u = Uuid::from_u128(7);
    for (f, want, p) in [
        (
            field("f").gt(1.5),
            "([f] IS NOT NULL AND [f] > @P2)",
            Param::Float(1.5),
        ),
        (
            field("b").eq(true),
            "([b] IS NOT NULL AND [b] = @P2)",
            Param::Bool(true),
        ),
        (
            field("ts").ge(ts),
            "([ts] IS NOT NULL AND [ts] >= @P2)",
            Param::Timestamp(ts),
        ),
        (
            field("u").eq(u),
            "([u] IS NOT NULL AND [u] = @P2)",
            Param::Uuid(u),
        ),
    ] {
        let (sql, params) = filter_sql(&f);
        assert_eq!(sql, want);
        assert_eq!(params, vec![p]);
    }
    // Bytes: `0x01 = 0x0100` in SQL Server; the length tells them apart.
    let (sql, params) = filter_sql(&field("by").eq(Value::Bytes(vec![1, 0])));
    assert_eq!(
        sql,
        "([by] IS NOT NULL AND [by] = @P2 AND DATALENGTH([by]) = DATALENGTH(@P3))"
    );
    assert_eq!(params, vec![Param::Bytes(vec![1, 0].into()); 2]);
    let (sql, params) = filter_sql(&field("by").gt(Value::Bytes(vec![1])));
    assert_eq!(
        sql,
        "([by] IS NOT NULL AND ([by] > @P2 OR ([by] = @P3 AND DATALENGTH([by]) > DATALENGTH(@P4))))"
    );
    assert_eq!(params, vec![Param::Bytes(vec![1].into()); 3]);
    let (sql, params) = filter_sql(&field("j").eq(Value::Json(json!({"a": 1}))));
    assert_eq!(
        sql,
        format!("([j] IS NOT NULL AND [j] = @P2 {COLL} AND DATALENGTH([j]) = DATALENGTH(@P3))")
    );
    assert_eq!(params, vec![Param::Json(Cow::Owned(json!({"a": 1}))); 2]);
    // A fractional float against an integer column: exact, via the floor.
    let (sql, params) = filter_sql(&field("n").lt(2.5));
    assert_eq!(sql, "([n] IS NOT NULL AND [n] <= @P2)");
    assert_eq!(params, vec![Param::Int(2)]);
    assert_eq!(filter_sql(&field("n").eq(2.5)).0, "(1 = 0)");
}

#[test]
fn null_comparisons_and_missing_fields() {
    for (f, want) in [
        (field("n").eq(Value::Null), "([n] IS NULL)"),
        (field("n").ne(Value::Null), "([n] IS NOT NULL)"),
        (field("n").gt(Value::Null), "([n] IS NOT NULL)"),
        (field("n").ge(Value::Null), "([n] IS NOT NULL)"),
        (field("n").lt(Value::Null), "(1 = 0)"),
        (field("n").le(Value::Null), "(1 = 0)"),
        (field("n").is_null(), "([n] IS NULL)"),
        (field("n").is_not_null(), "(NOT ([n] IS NULL))"),
        // A field the table lacks is null in every row.
        (field("zz").eq(1), "(1 = 0)"),
        (field("zz").ne(1), "(1 = 1)"),
        (field("zz").is_null(), "(1 = 1)"),
        // Another type: ordered by type rank, never compared in SQL.
        (field("n").lt("x"), "([n] IS NOT NULL)"),
        (field("n").eq("x"), "(1 = 0)"),
    ] {
        let (sql, params) = filter_sql(&f);
        assert_eq!(sql, want, "{f:?}");
        assert!(params.is_empty(), "{f:?}");
    }
}

#[test]
fn in_prefix_contains() {
    let (sql, params) = filter_sql(&field("n").is_in([1, 2, 3]));
    assert_eq!(sql, "([n] IS NOT NULL AND [n] IN (@P2, @P3, @P4))");
    assert_eq!(params, vec![Param::Int(1), Param::Int(2), Param::Int(3)]);
    let (sql, params) = filter_sql(&field("name").is_in(["a", "b"]));
    assert_eq!(
        sql,
        format!(
            "(([name] IS NOT NULL AND [name] = @P2 {COLL} AND DATALENGTH([name]) = DATALENGTH(@P3)) \
             OR ([name] IS NOT NULL AND [name] = @P4 {COLL} AND DATALENGTH([name]) = DATALENGTH(@P5)))"
        )
    );
    assert_eq!(params, vec![text("a"), text("a"), text("b"), text("b")]);
    assert_eq!(
        filter_sql(&field("n").is_in(Vec::<i64>::new())).0,
        "(1 = 0)"
    );

    // Literal: `%`, `_`, `[` and a trailing space are data, never patterns.
    let p = "50%_[x] ";
    let (sql, params) = filter_sql(&field("name").prefix(p));
    assert_eq!(
        sql,
        format!(
            "([name] IS NOT NULL AND DATALENGTH([name]) >= DATALENGTH(@P2) AND SUBSTRING([name], 1, DATALENGTH(@P3) / 2) = @P4 {COLL})"
        )
    );
    assert_eq!(params, vec![text(p), text(p), text(p)]);
    assert!(!sql.contains("LIKE"));
    let (sql, params) = filter_sql(&field("name").contains(p));
    assert_eq!(
        sql,
        format!("([name] IS NOT NULL AND CHARINDEX(@P2 {COLL}, [name]) > 0)")
    );
    assert_eq!(params, vec![text(p)]);
    assert_eq!(
        filter_sql(&field("name").prefix("")).0,
        "([name] IS NOT NULL)"
    );
    assert_eq!(
        filter_sql(&field("name").contains("")).0,
        "([name] IS NOT NULL)"
    );
    // On a non-string field: nothing matches.
    assert_eq!(filter_sql(&field("n").prefix("1")).0, "(1 = 0)");
}

#[test]
fn and_or_not_nested() {
    let f = field("n").gt(1).and(field("name").prefix("a"));
    let (sql, params) = filter_sql(&f);
    assert_eq!(
        sql,
        format!(
            "(([n] IS NOT NULL AND [n] > @P2) AND ([name] IS NOT NULL AND DATALENGTH([name]) >= DATALENGTH(@P3) AND SUBSTRING([name], 1, DATALENGTH(@P4) / 2) = @P5 {COLL}))"
        )
    );
    assert_eq!(params, vec![Param::Int(1), text("a"), text("a"), text("a")]);
    let f = field("n").eq(1).or(field("b").eq(false)).not();
    let (sql, params) = filter_sql(&f);
    assert_eq!(
        sql,
        "(NOT (([n] IS NOT NULL AND [n] = @P2) OR ([b] IS NOT NULL AND [b] = @P3)))"
    );
    assert_eq!(params, vec![Param::Int(1), Param::Bool(false)]);
    let nested = Filter::And(vec![
        Filter::Or(vec![field("n").lt(0), field("n").is_null()]),
        Filter::Not(Box::new(field("name").contains("x"))),
        Filter::And(vec![]),
        Filter::Or(vec![]),
    ]);
    let (sql, params) = filter_sql(&nested);
    assert_eq!(
        sql,
        format!(
            "((([n] IS NOT NULL AND [n] < @P2) OR ([n] IS NULL)) AND (NOT ([name] IS NOT NULL AND CHARINDEX(@P3 {COLL}, [name]) > 0)) AND (1 = 1) AND (1 = 0))"
        )
    );
    assert_eq!(params, vec![Param::Int(0), text("x")]);
}

#[test]
fn keyset_token_filters() {
    let order = [
        Order {
            field: "n".into(),
            direction: Direction::Asc,
        },
        Order {
            field: "name".into(),
            direction: Direction::Desc,
        },
    ];
    let f = crate::token::after_filter(&order, &[Value::I64(3), Value::from("k")]);
    let (sql, params) = filter_sql(&f);
    assert_eq!(
        sql,
        format!(
            "(([n] IS NOT NULL AND [n] > @P2) OR (([n] IS NOT NULL AND [n] = @P3) AND \
             (([name] IS NOT NULL AND ([name] < @P4 {COLL} OR ([name] = @P5 {COLL} AND DATALENGTH([name]) < DATALENGTH(@P6)))) \
             OR ([name] IS NULL))))"
        )
    );
    assert_eq!(
        params,
        vec![
            Param::Int(3),
            Param::Int(3),
            text("k"),
            text("k"),
            text("k")
        ]
    );
    // After a null: ascending, the non-nulls follow.
    let f = crate::token::after_filter(&order[..1], &[Value::Null]);
    assert_eq!(filter_sql(&f).0, "(NOT ([n] IS NULL))");
}

#[test]
fn order_and_limit_shapes() {
    let t = table();
    let cols = "[id], [name], [n], [f], [b], [ts], [u], [j], [by], [a]]b], ['; DROP TABLE x; --], [_pr_version]";
    let head = format!(
        "SELECT {cols} FROM [s].[items] WHERE ([_pr_expires_at] IS NULL OR [_pr_expires_at] > @P1)"
    );
    let q = |order: Vec<Order>, limit: Option<usize>| {
        let query = StoreQuery {
            filter: None,
            order,
            limit,
        };
        let s = t.query(&query, NOW);
        Select {
            sql: s.sql,
            params: owned(s.params),
        }
    };
    let o = |f: &str, d: Direction| Order {
        field: f.into(),
        direction: d,
    };
    let s = q(vec![], None);
    assert_eq!(s.sql, format!("{head} ORDER BY [id] ASC"));
    assert_eq!(s.params, vec![Param::Int(NOW)]);
    let s = q(vec![o("n", Direction::Desc)], Some(10));
    assert_eq!(
        s.sql,
        format!("{head} ORDER BY [n] DESC, [id] ASC OFFSET 0 ROWS FETCH NEXT @P2 ROWS ONLY")
    );
    assert_eq!(s.params, vec![Param::Int(NOW), Param::Int(10)]);
    let s = q(
        vec![
            o("name", Direction::Asc),
            o("id", Direction::Desc),
            o("n", Direction::Asc),
        ],
        Some(1),
    );
    assert_eq!(
        s.sql,
        format!(
            "{head} ORDER BY [name] ASC, DATALENGTH([name]) ASC, [id] DESC OFFSET 0 ROWS FETCH NEXT @P2 ROWS ONLY"
        )
    );
    // A field the table lacks orders nothing.
    let s = q(vec![o("zz", Direction::Asc)], None);
    assert_eq!(s.sql, format!("{head} ORDER BY [id] ASC"));
    // Filter, order and limit together: the limit is the last parameter.
    let query = StoreQuery {
        filter: Some(field("n").ge(2)),
        order: vec![o("ts", Direction::Asc)],
        limit: Some(50),
    };
    let s = t.query(&query, NOW);
    assert_eq!(
        s.sql,
        format!(
            "{head} AND ([n] IS NOT NULL AND [n] >= @P2) ORDER BY [ts] ASC, [id] ASC OFFSET 0 ROWS FETCH NEXT @P3 ROWS ONLY"
        )
    );
    assert_eq!(
        s.params,
        vec![Param::Int(NOW), Param::Int(2), Param::Int(50)]
    );
}

#[test]
fn injection_strings_are_only_ever_parameters() {
    let evil = "x'); DROP TABLE [s].[items]; --";
    let t = table();
    let filters = [
        field("name").eq(evil),
        field("name").ne(evil),
        field("name").gt(evil),
        field("name").is_in([evil]),
        field("name").prefix(evil),
        field("name").contains(evil),
        field("'; DROP TABLE x; --").eq(evil),
    ];
    for f in filters {
        let (sql, params) = filter_sql(&f);
        assert!(!sql.contains("DROP TABLE [s]"), "{sql}");
        assert!(params.contains(&text(evil)), "{f:?}");
    }
    // Record values too.
    let mut r = Record::new(Key::from(evil));
    r.set("name", Value::from(evil));
    let ops = vec![WriteOp::Put {
        record: r,
        precondition: Precondition::None,
        ttl: None,
    }];
    let target = Target {
        store: "db",
        entity: "item",
        outbox: None,
    };
    let enc = write::locked_writes(target, &t, &ops, NOW).unwrap();
    assert_eq!(enc[0].key, text(evil));
    assert!(enc[0].row.as_ref().unwrap().contains(&text(evil)));
    for s in [&t.insert, &t.update, &t.get, &t.lock] {
        assert!(!s.contains(evil));
    }
    // Identifiers are quoted with `]` doubled: the field name stays one name.
    assert!(t.insert.contains("['; DROP TABLE x; --]"));
    assert!(t.insert.contains("[a]]b]"));
}

fn owned(params: Vec<Param<'_>>) -> Vec<Param<'static>> {
    params.into_iter().map(Param::into_owned).collect()
}

/// Records every statement; answers the lock with scripted results.
#[derive(Default)]
struct Recorder {
    locks: VecDeque<Option<i64>>,
    calls: Vec<(String, Vec<Param<'static>>)>,
}

#[async_trait]
impl Exec for Recorder {
    async fn fetch_int(&mut self, sql: &str, params: Vec<Param<'_>>) -> Result<Option<i64>> {
        self.calls.push((sql.into(), owned(params)));
        Ok(self.locks.pop_front().expect("a scripted lock result"))
    }
    async fn fetch_bool(&mut self, sql: &str, params: Vec<Param<'_>>) -> Result<Option<bool>> {
        self.calls.push((sql.into(), owned(params)));
        Ok(None)
    }
    async fn execute(&mut self, sql: &str, params: Vec<Param<'_>>) -> Result<u64> {
        self.calls.push((sql.into(), owned(params)));
        Ok(1)
    }
    async fn fetch_int_text(
        &mut self,
        sql: &str,
        params: Vec<Param<'_>>,
    ) -> Result<Vec<(i64, String)>> {
        self.calls.push((sql.into(), owned(params)));
        Ok(Vec::new())
    }
    async fn fetch_key_ints(
        &mut self,
        sql: &str,
        params: Vec<Param<'_>>,
        _key: &crate::backends::sql::Column,
    ) -> Result<Vec<(Key, i64)>> {
        self.calls.push((sql.into(), owned(params)));
        Ok(Vec::new())
    }
}

fn rec(id: &str, name: &str) -> Record {
    let mut r = Record::new(Key::from(id));
    r.set("name", Value::from(name));
    r
}

fn put(id: &str, p: Precondition) -> WriteOp {
    WriteOp::Put {
        record: rec(id, "v"),
        precondition: p,
        ttl: None,
    }
}

fn del(id: &str, p: Precondition) -> WriteOp {
    WriteOp::Delete {
        key: Key::from(id),
        precondition: p,
    }
}

/// Runs ops with scripted lock results: outcomes (or the error) and the
/// statements run.
async fn run_locked(
    ops: Vec<WriteOp>,
    locks: Vec<Option<i64>>,
) -> (
    Result<Vec<WriteOutcome>>,
    Vec<(String, Vec<Param<'static>>)>,
) {
    let t = table();
    let target = Target {
        store: "db",
        entity: "item",
        outbox: None,
    };
    let enc = write::locked_writes(target, &t, &ops, NOW).unwrap();
    let mut r = Recorder {
        locks: locks.into(),
        calls: Vec::new(),
    };
    let out = write::apply_all_locked(&mut r, target, &t, &ops, enc, NOW).await;
    (out, r.calls)
}

/// The row values of `rec(id, "v")` in column order.
fn row_of(id: &str) -> Vec<Param<'_>> {
    let mut v = vec![text(id), text("v")];
    v.extend([
        Param::Null(FieldKind::Int),
        Param::Null(FieldKind::Float),
        Param::Null(FieldKind::Bool),
        Param::Null(FieldKind::Timestamp),
        Param::Null(FieldKind::Uuid),
        Param::Null(FieldKind::Json),
        Param::Null(FieldKind::Bytes),
        Param::Null(FieldKind::String),
        Param::Null(FieldKind::String),
    ]);
    v
}

fn conflict_actual(e: &Error) -> Option<u64> {
    match e {
        Error::Conflict { actual, .. } => *actual,
        other => panic!("not a conflict: {other:?}"),
    }
}

#[tokio::test]
async fn put_preconditions() {
    let t = table();
    let lock = t.lock.clone();
    let lock_call = |id: &str| (lock.clone(), vec![Param::Int(NOW), text(id)]);
    let no_ttl = Param::Null(FieldKind::Int);
    let insert = |v: i64| {
        let mut p = row_of("a");
        p.extend([Param::Int(v), Param::Null(FieldKind::Int)]);
        (t.insert.clone(), p)
    };
    let update = |v: i64| {
        let mut p = row_of("a");
        p.remove(0);
        p.extend([Param::Int(v), no_ttl.clone(), text("a")]);
        (t.update.clone(), p)
    };
    // None: insert when absent, +1 when live, restart at 1 over an expired row.
    let (out, calls) = run_locked(vec![put("a", Precondition::None)], vec![None]).await;
    assert_eq!(out.unwrap(), vec![WriteOutcome::Written { version: 1 }]);
    assert_eq!(calls, vec![lock_call("a"), insert(1)]);
    let (out, calls) = run_locked(vec![put("a", Precondition::None)], vec![Some(3)]).await;
    assert_eq!(out.unwrap(), vec![WriteOutcome::Written { version: 4 }]);
    assert_eq!(calls, vec![lock_call("a"), update(4)]);
    let (out, calls) = run_locked(vec![put("a", Precondition::None)], vec![Some(0)]).await;
    assert_eq!(out.unwrap(), vec![WriteOutcome::Written { version: 1 }]);
    assert_eq!(calls, vec![lock_call("a"), update(1)]);
    // Absent.
    let (out, calls) = run_locked(vec![put("a", Precondition::Absent)], vec![None]).await;
    assert_eq!(out.unwrap(), vec![WriteOutcome::Written { version: 1 }]);
    assert_eq!(calls, vec![lock_call("a"), insert(1)]);
    let (out, calls) = run_locked(vec![put("a", Precondition::Absent)], vec![Some(2)]).await;
    assert_eq!(conflict_actual(&out.unwrap_err()), Some(2));
    assert_eq!(calls, vec![lock_call("a")]);
    let (out, _) = run_locked(vec![put("a", Precondition::Absent)], vec![Some(0)]).await;
    assert_eq!(out.unwrap(), vec![WriteOutcome::Written { version: 1 }]);
    // Exists.
    let (out, calls) = run_locked(vec![put("a", Precondition::Exists)], vec![None]).await;
    assert_eq!(conflict_actual(&out.unwrap_err()), None);
    assert_eq!(calls, vec![lock_call("a")]);
    let (out, _) = run_locked(vec![put("a", Precondition::Exists)], vec![Some(0)]).await;
    assert_eq!(conflict_actual(&out.unwrap_err()), None);
    let (out, calls) = run_locked(vec![put("a", Precondition::Exists)], vec![Some(5)]).await;
    assert_eq!(out.unwrap(), vec![WriteOutcome::Written { version: 6 }]);
    assert_eq!(calls, vec![lock_call("a"), update(6)]);
    // Version.
    let (out, calls) = run_locked(vec![put("a", Precondition::Version(5))], vec![Some(5)]).await;
    assert_eq!(out.unwrap(), vec![WriteOutcome::Written { version: 6 }]);
    assert_eq!(calls, vec![lock_call("a"), update(6)]);
    let (out, calls) = run_locked(vec![put("a", Precondition::Version(4))], vec![Some(5)]).await;
    assert_eq!(conflict_actual(&out.unwrap_err()), Some(5));
    assert_eq!(calls, vec![lock_call("a")]);
    let (out, _) = run_locked(vec![put("a", Precondition::Version(1))], vec![None]).await;
    assert_eq!(conflict_actual(&out.unwrap_err()), None);
}

#[tokio::test]
async fn put_with_ttl_binds_the_expiry() {
    let ops = vec![WriteOp::Put {
        record: rec("a", "v"),
        precondition: Precondition::None,
        ttl: Some(Duration::from_secs(2)),
    }];
    let (out, calls) = run_locked(ops, vec![None]).await;
    out.unwrap();
    let insert = &calls[1].1;
    assert_eq!(insert[insert.len() - 1], Param::Int(NOW + 2_000_000));
    assert_eq!(insert[insert.len() - 2], Param::Int(1));
}

#[tokio::test]
async fn delete_preconditions() {
    let t = table();
    let lock = t.lock.clone();
    let lock_call = (lock.clone(), vec![Param::Int(NOW), text("a")]);
    let delete = (t.delete.clone(), vec![text("a")]);
    // A live record becomes a tombstone at its version + 1.
    let bury = |v: i64| {
        (
            t.tombstone.clone(),
            vec![Param::Int(v), Param::Int(-NOW), text("a")],
        )
    };
    let gone = |existed| vec![WriteOutcome::Deleted { existed }];
    // None.
    let (out, calls) = run_locked(vec![del("a", Precondition::None)], vec![Some(2)]).await;
    assert_eq!(out.unwrap(), gone(true));
    assert_eq!(calls, vec![lock_call.clone(), bury(3)]);
    // A tombstone (minus its version) is absent and stays as it is.
    let (out, calls) = run_locked(vec![del("a", Precondition::None)], vec![Some(-4)]).await;
    assert_eq!(out.unwrap(), gone(false));
    assert_eq!(calls, vec![lock_call.clone()]);
    let (out, _) = run_locked(vec![del("a", Precondition::Exists)], vec![Some(-4)]).await;
    assert_eq!(conflict_actual(&out.unwrap_err()), None);
    // A put over a tombstone continues from its version (an update of the row).
    let (out, calls) = run_locked(vec![put("a", Precondition::Absent)], vec![Some(-4)]).await;
    assert_eq!(out.unwrap(), vec![WriteOutcome::Written { version: 5 }]);
    assert!(calls[1].0.starts_with("UPDATE"), "{calls:?}");
    let (out, calls) = run_locked(vec![del("a", Precondition::None)], vec![None]).await;
    assert_eq!(out.unwrap(), gone(false));
    assert_eq!(calls, vec![lock_call.clone()]);
    let (out, calls) = run_locked(vec![del("a", Precondition::None)], vec![Some(0)]).await;
    assert_eq!(out.unwrap(), gone(false));
    assert_eq!(calls, vec![lock_call.clone(), delete.clone()]);
    // Absent: holds only when nothing live is there.
    let (out, _) = run_locked(vec![del("a", Precondition::Absent)], vec![None]).await;
    assert_eq!(out.unwrap(), gone(false));
    let (out, calls) = run_locked(vec![del("a", Precondition::Absent)], vec![Some(3)]).await;
    assert_eq!(conflict_actual(&out.unwrap_err()), Some(3));
    assert_eq!(calls, vec![lock_call.clone()]);
    // Exists.
    let (out, calls) = run_locked(vec![del("a", Precondition::Exists)], vec![Some(1)]).await;
    assert_eq!(out.unwrap(), gone(true));
    assert_eq!(calls, vec![lock_call.clone(), bury(2)]);
    let (out, _) = run_locked(vec![del("a", Precondition::Exists)], vec![Some(0)]).await;
    assert_eq!(conflict_actual(&out.unwrap_err()), None);
    // Version.
    let (out, calls) = run_locked(vec![del("a", Precondition::Version(7))], vec![Some(7)]).await;
    assert_eq!(out.unwrap(), gone(true));
    assert_eq!(calls, vec![lock_call.clone(), bury(8)]);
    let (out, calls) = run_locked(vec![del("a", Precondition::Version(6))], vec![Some(7)]).await;
    assert_eq!(conflict_actual(&out.unwrap_err()), Some(7));
    assert_eq!(calls, vec![lock_call]);
}

#[tokio::test]
async fn mixed_batch_runs_in_order_and_stops_at_the_first_conflict() {
    let t = table();
    let ops = vec![
        put("a", Precondition::None),
        del("b", Precondition::Exists),
        put("c", Precondition::Version(2)),
        put("d", Precondition::Absent),
    ];
    let (out, calls) = run_locked(ops.clone(), vec![None, Some(4), Some(2), None]).await;
    assert_eq!(
        out.unwrap(),
        vec![
            WriteOutcome::Written { version: 1 },
            WriteOutcome::Deleted { existed: true },
            WriteOutcome::Written { version: 3 },
            WriteOutcome::Written { version: 1 },
        ]
    );
    let kinds: Vec<&str> = calls
        .iter()
        .map(|(s, _)| match s {
            s if s.starts_with("SELECT") => "lock",
            s if s.starts_with("INSERT") => "insert",
            s if s.starts_with("UPDATE") => "update",
            s if s.starts_with("DELETE") => "delete",
            _ => "?",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "lock", "insert", "lock", "update", "lock", "update", "lock", "insert"
        ]
    );
    assert_eq!(
        calls[3],
        (
            t.tombstone.clone(),
            vec![Param::Int(5), Param::Int(-NOW), text("b")]
        )
    );
    // The third op's precondition fails: nothing after it runs (the store
    // rolls the transaction back).
    let (out, calls) = run_locked(ops, vec![None, Some(4), Some(9)]).await;
    assert_eq!(conflict_actual(&out.unwrap_err()), Some(9));
    assert_eq!(calls.len(), 5);
    // A bad op is refused before anything runs.
    let t = table();
    let mut bad = rec("x", "v");
    bad.set("n", Value::from("not an int"));
    let e = write::locked_writes(
        Target {
            store: "db",
            entity: "item",
            outbox: None,
        },
        &t,
        &[
            put("a", Precondition::None),
            WriteOp::Put {
                record: bad,
                precondition: Precondition::None,
                ttl: None,
            },
        ],
        NOW,
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e:?}");
    assert!(e.to_string().contains("field `n`"), "{e}");
}

#[test]
fn get_many_is_one_in_list_chunked_under_the_parameter_limit() {
    let t = table();
    let keys: Vec<Key> = (0..4500).map(|i| Key::from(format!("k{i}"))).collect();
    let selects = t.get_many(&keys, NOW).unwrap();
    assert_eq!(selects.len(), 3);
    let mut seen = std::collections::HashSet::new();
    for s in &selects {
        assert!(s.params.len() <= 2100, "{}", s.params.len());
        assert_eq!(s.params.last(), Some(&Param::Int(NOW)));
        let n = s.params.len() - 1;
        assert!(s.sql.contains("WHERE [id] IN (@P1, @P2, "));
        assert!(s.sql.contains(&format!(
            "@P{n}) AND ([_pr_expires_at] IS NULL OR [_pr_expires_at] > @P{})",
            n + 1
        )));
        for p in &s.params[..n] {
            if let Param::Text(k) = p {
                seen.insert(k.clone());
            }
        }
    }
    assert_eq!(selects[0].params.len(), 2001);
    assert_eq!(seen.len(), 4500);
    // Few keys: one statement, padded to a bucket size.
    let keys = [Key::from("a"), Key::from("b"), Key::from("c")];
    let s = t.get_many(&keys, NOW).unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(
        s[0].params,
        vec![text("a"), text("b"), text("c"), text("c"), Param::Int(NOW)]
    );
    // Keys SQL Server cannot store are never found: left out.
    assert!(t.get_many(&[Key::from("a ")], NOW).unwrap().is_empty());
    assert!(t.get_many(&[Key::Int(1)], NOW).is_err());
}

#[test]
fn put_many_is_multi_row_merge() {
    let t = table();
    let ops: Vec<WriteOp> = (0..500)
        .map(|i| put(&format!("k{i}"), Precondition::None))
        .collect();
    assert!(tsql::bulk_puts(&ops));
    let per = tsql::merge_rows(&t);
    assert_eq!(per, 1999 / 12);
    let stmts = tsql::merge_statements(&t, &ops, NOW).unwrap();
    assert_eq!(stmts.len(), 500usize.div_ceil(per));
    let mut rows = 0;
    for s in &stmts {
        assert!(s.params.len() <= 2100);
        assert_eq!(s.params.last(), Some(&Param::Int(NOW)));
        assert_eq!((s.params.len() - 1) % 12, 0);
        rows += (s.params.len() - 1) / 12;
    }
    assert_eq!(rows, 500);
    assert_eq!(
        stmts[0].params[..12],
        {
            let mut r = row_of("k0");
            r.push(Param::Null(FieldKind::Int));
            r
        }[..]
    );
    let cols = "[id], [name], [n], [f], [b], [ts], [u], [j], [by], [a]]b], ['; DROP TABLE x; --]";
    let src = "[_pr_s].[id], [_pr_s].[name], [_pr_s].[n], [_pr_s].[f], [_pr_s].[b], [_pr_s].[ts], [_pr_s].[u], [_pr_s].[j], [_pr_s].[by], [_pr_s].[a]]b], [_pr_s].['; DROP TABLE x; --]";
    assert_eq!(
        tsql::merge(&t, 2),
        format!(
            "MERGE [s].[items] WITH (HOLDLOCK) AS [_pr_t] USING (VALUES \
             (@P1, @P2, @P3, @P4, @P5, @P6, @P7, @P8, @P9, @P10, @P11, @P12), \
             (@P13, @P14, @P15, @P16, @P17, @P18, @P19, @P20, @P21, @P22, @P23, @P24)) \
             AS [_pr_s] ({cols}, [_pr_expires_at]) ON [_pr_t].[id] = [_pr_s].[id] \
             WHEN MATCHED THEN UPDATE SET [name] = [_pr_s].[name], [n] = [_pr_s].[n], [f] = [_pr_s].[f], [b] = [_pr_s].[b], \
             [ts] = [_pr_s].[ts], [u] = [_pr_s].[u], [j] = [_pr_s].[j], [by] = [_pr_s].[by], [a]]b] = [_pr_s].[a]]b], \
             ['; DROP TABLE x; --] = [_pr_s].['; DROP TABLE x; --], \
             [_pr_version] = CASE WHEN [_pr_t].[_pr_expires_at] >= 0 AND [_pr_t].[_pr_expires_at] <= @P25 THEN 1 ELSE [_pr_t].[_pr_version] + 1 END, \
             [_pr_expires_at] = [_pr_s].[_pr_expires_at] \
             WHEN NOT MATCHED THEN INSERT ({cols}, [_pr_version], [_pr_expires_at]) VALUES ({src}, 1, [_pr_s].[_pr_expires_at]) \
             OUTPUT inserted.[id], inserted.[_pr_version];"
        )
    );
    // Not bulk: one op, a precondition, or a key twice (MERGE would fail).
    assert!(!tsql::bulk_puts(&ops[..1]));
    assert!(!tsql::bulk_puts(&[
        put("a", Precondition::None),
        put("a", Precondition::None)
    ]));
    assert!(!tsql::bulk_puts(&[
        put("a", Precondition::None),
        put("b", Precondition::Absent)
    ]));
    assert!(!tsql::bulk_puts(&[
        put("a", Precondition::None),
        del("b", Precondition::None)
    ]));
}

fn catalog(
    name: &str,
    ty: &str,
    len: Option<i64>,
    nullable: bool,
    coll: Option<&str>,
) -> CatalogColumn {
    CatalogColumn {
        name: name.into(),
        data_type: ty.into(),
        max_length: len,
        nullable,
        default: None,
        collation: coll.map(str::to_string),
    }
}

fn good_catalog() -> Vec<CatalogColumn> {
    let bin2 = Some("Latin1_General_100_BIN2");
    vec![
        catalog("id", "nvarchar", Some(450), false, bin2),
        catalog("name", "nvarchar", Some(-1), false, bin2),
        catalog("n", "bigint", None, true, None),
        catalog("f", "float", None, true, None),
        catalog("b", "bit", None, true, None),
        catalog("ts", "bigint", None, true, None),
        catalog("u", "binary", Some(16), true, None),
        catalog("j", "nvarchar", Some(-1), true, bin2),
        catalog("by", "varbinary", Some(-1), true, None),
        catalog("a]b", "nvarchar", Some(-1), true, bin2),
        catalog("'; DROP TABLE x; --", "nvarchar", Some(-1), true, bin2),
        catalog("_pr_version", "bigint", None, false, None),
        catalog("_pr_expires_at", "bigint", None, true, None),
    ]
}

fn check(cols: &[CatalogColumn]) -> std::result::Result<(), String> {
    let infos: Vec<ColumnInfo> = tsql::column_infos(cols, &[("ID".into(), 1)]);
    check_table("db", &table(), &infos)
}

#[test]
fn table_check_names_the_incompatible_column() {
    check(&good_catalog()).unwrap();
    assert_eq!(
        tsql::catalog_type(&good_catalog()[1]),
        "nvarchar(max) COLLATE Latin1_General_100_BIN2"
    );
    // A case-insensitive collation would make `a` equal `A`.
    let mut c = good_catalog();
    c[1].collation = Some("SQL_Latin1_General_CP1_CI_AS".into());
    let e = check(&c).unwrap_err();
    assert!(
        e.contains("store `db`") && e.contains("table `items`") && e.contains("column `name`"),
        "{e}"
    );
    assert!(e.contains("SQL_Latin1_General_CP1_CI_AS"), "{e}");
    // UNIQUEIDENTIFIER orders differently from the reference.
    let mut c = good_catalog();
    c[6] = catalog("u", "uniqueidentifier", None, true, None);
    assert!(check(&c).unwrap_err().contains("column `u`"));
    let mut c = good_catalog();
    c[2] = catalog("n", "int", None, true, None);
    assert!(check(&c).unwrap_err().contains("column `n`"));
    let mut c = good_catalog();
    c[5] = catalog("ts", "datetime2", None, true, None);
    assert!(check(&c).unwrap_err().contains("column `ts`"));
    let mut c = good_catalog();
    c.remove(4);
    let e = check(&c).unwrap_err();
    assert!(
        e.contains("column `b`") && e.contains("ALTER TABLE [s].[items]"),
        "{e}"
    );
    let mut c = good_catalog();
    c[3].nullable = false;
    assert!(check(&c).unwrap_err().contains("column `f`"));
    let infos = tsql::column_infos(&good_catalog(), &[]);
    assert!(
        check_table("db", &table(), &infos)
            .unwrap_err()
            .contains("primary key")
    );
    let mut c = good_catalog();
    c.push(catalog("extra", "int", None, false, None));
    assert!(check(&c).unwrap_err().contains("column `extra`"));
    // Catalog reads bind the schema and table.
    let s = tsql::columns(Some("s"), "items");
    assert_eq!(s.params, vec![text("s"), text("items")]);
    assert!(s.sql.contains("INFORMATION_SCHEMA.COLUMNS"));
    let s = tsql::primary_key(None, "items");
    assert_eq!(
        s.params,
        vec![Param::Null(FieldKind::String), text("items")]
    );
}

#[test]
fn cells_decode_by_column_kind() {
    use tiberius::ColumnData;
    let col = |kind, nullable| Column {
        name: "c",
        kind,
        nullable,
        is_field: true,
    };
    let u = Uuid::from_u128(42);
    assert_eq!(
        codec::column_value(
            &ColumnData::Binary(Some(u.as_bytes().to_vec().into())),
            &col(FieldKind::Uuid, false)
        )
        .unwrap(),
        Value::Uuid(u)
    );
    assert_eq!(
        codec::column_value(
            &ColumnData::I64(Some(1_234_567)),
            &col(FieldKind::Timestamp, false)
        )
        .unwrap(),
        Value::Timestamp(DateTime::from_timestamp_micros(1_234_567).unwrap())
    );
    assert_eq!(
        codec::column_value(
            &ColumnData::String(Some("{\"a\":1}".into())),
            &col(FieldKind::Json, false)
        )
        .unwrap(),
        Value::Json(json!({"a": 1}))
    );
    assert_eq!(
        codec::column_value(&ColumnData::Bit(Some(true)), &col(FieldKind::Bool, false)).unwrap(),
        Value::Bool(true)
    );
    assert_eq!(
        codec::column_value(&ColumnData::I64(None), &col(FieldKind::Int, true)).unwrap(),
        Value::Null
    );
    assert_eq!(
        codec::column_value(&ColumnData::String(None), &col(FieldKind::String, true)).unwrap(),
        Value::Null
    );
    assert!(
        codec::column_value(
            &ColumnData::Binary(Some(vec![1, 2].into())),
            &col(FieldKind::Uuid, false)
        )
        .is_err()
    );
    assert!(
        codec::column_value(
            &ColumnData::String(Some("x".into())),
            &col(FieldKind::Int, false)
        )
        .is_err()
    );
    assert_eq!(codec::int_of(&ColumnData::I32(Some(7))), Some(7));
    // Every parameter kind binds; arrays are refused.
    let mut q = tiberius::Query::new("SELECT 1");
    for p in [
        Param::Null(FieldKind::Json),
        Param::Int(1),
        Param::Float(1.0),
        Param::Bool(true),
        text("x"),
        Param::Bytes(vec![1].into()),
        Param::Timestamp(DateTime::from_timestamp_micros(1).unwrap()),
        Param::Uuid(u),
        Param::Json(Cow::Owned(json!([1]))),
    ] {
        codec::bind(&mut q, p).unwrap();
    }
    assert_eq!(q.param_count(), 9);
    assert!(codec::bind(&mut q, Param::Array(FieldKind::Int, vec![])).is_err());
}

fn spec(toml_text: &str) -> StoreSpec {
    StoreSpec::new("db", "sqlserver", toml::from_str(toml_text).unwrap())
}

#[test]
fn config_parsing_validation_and_redaction() {
    let c: SqlServerConfig = spec("url = \"sqlserver://app:pw@h/shop\"").parse().unwrap();
    assert_eq!(c.encrypt, Encrypt::Required);
    assert!(!c.trust_server_certificate);
    assert_eq!((c.max_connections, c.min_connections), (8, 0));
    let a = c.validate().unwrap();
    assert_eq!(
        (
            a.user.as_str(),
            a.password.as_str(),
            a.host.as_str(),
            a.port
        ),
        ("app", "pw", "h", 1433)
    );
    assert_eq!(a.database.as_deref(), Some("shop"));
    let c: SqlServerConfig = spec(
        "url = \"sqlserver://app%40corp:p%3Aw%40rd@db.example.net:14330/my%20db\"\nschema = \"app\"\nencrypt = \"on\"\n\
         trust_server_certificate = true\nmax_connections = 3\nmin_connections = 1\nconnect_timeout = \"2s\"\n\
         acquire_timeout = \"250ms\"\npurge_interval = \"0s\"",
    )
    .parse()
    .unwrap();
    let a = c.validate().unwrap();
    assert_eq!(
        (a.user.as_str(), a.password.as_str()),
        ("app@corp", "p:w@rd")
    );
    assert_eq!((a.host.as_str(), a.port), ("db.example.net", 14330));
    assert_eq!(a.database.as_deref(), Some("my db"));
    assert_eq!(c.encrypt, Encrypt::On);
    assert_eq!(c.acquire_timeout.0, Duration::from_millis(250));
    assert_eq!(c.schema.as_deref(), Some("app"));
    // Unknown keys and bad values are config errors naming the key.
    let e = spec("url = \"sqlserver://a:b@h/d\"\npool = 3")
        .parse::<SqlServerConfig>()
        .unwrap_err();
    assert!(e.to_string().contains("stores.db.pool"), "{e}");
    let e = spec("url = \"sqlserver://a:b@h/d\"\nencrypt = \"maybe\"")
        .parse::<SqlServerConfig>()
        .unwrap_err();
    assert!(e.to_string().contains("stores.db.encrypt"), "{e}");
    for (url, key) in [
        ("postgres://u:topsecret@h/d", "url"),
        ("sqlserver://u:topsecret@h:99999/d", "url"),
        ("sqlserver://u:topsecret@h/d?encrypt=true", "url"),
        ("sqlserver://h/d", "url"),
    ] {
        let e = SqlServerConfig::new(url).validate().unwrap_err();
        assert_eq!(e.0, key, "{url}");
        assert!(!e.1.contains("topsecret"), "{}", e.1);
    }
    let mut c = SqlServerConfig::new("sqlserver://u:p@h/d");
    c.min_connections = 9;
    assert_eq!(c.validate().unwrap_err().0, "min_connections");
    let mut c = SqlServerConfig::new("sqlserver://u:p@h/d");
    c.trust_server_certificate = true;
    c.ca_file = Some("/ca.pem".into());
    assert_eq!(c.validate().unwrap_err().0, "ca_file");
    let c = SqlServerConfig::new("sqlserver://u:topsecret@h/d");
    assert!(!format!("{c:?}").contains("topsecret"));
    assert!(!format!("{:?}", c.validate().unwrap()).contains("topsecret"));
    assert_eq!(c.location(), "sqlserver://u:***@h/d");
}

#[tokio::test]
async fn closed_port_at_start_up_is_unavailable_naming_store_and_address() {
    // Port 1 on loopback: nothing listens, the connection is refused.
    let mut cfg = SqlServerConfig::new("sqlserver://sa:Sup3r%3BSecret@127.0.0.1:1/app");
    cfg.connect_timeout = crate::config::ConfigDuration(Duration::from_secs(3));
    let e = SqlServerStore::connect("orders", cfg).await.unwrap_err();
    let (text, debug) = (e.to_string(), format!("{e:?}"));
    assert!(matches!(e, Error::Unavailable { .. }), "{debug}");
    assert!(text.contains("orders"), "{text}");
    assert!(text.contains("127.0.0.1:1"), "{text}");
    assert!(
        text.contains("sqlserver://sa:***@127.0.0.1:1/app"),
        "{text}"
    );
    for secret in ["Sup3r", "Secret"] {
        assert!(!text.contains(secret) && !debug.contains(secret), "{debug}");
    }
    // The same through the router's entry point.
    let e = crate::backends::open(spec(
        "url = \"sqlserver://sa:Sup3rSecret@127.0.0.1:1/app\"\nconnect_timeout = \"3s\"",
    ))
    .await
    .unwrap_err();
    assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
    assert!(!format!("{e:?}").contains("Sup3rSecret"));
    // A bad option fails before any connection attempt.
    let e = crate::backends::open(spec(
        "url = \"sqlserver://sa:pw@127.0.0.1:1/app\"\nmax_connections = 0",
    ))
    .await
    .unwrap_err();
    assert!(matches!(e, Error::Config { .. }), "{e:?}");
    assert!(e.to_string().contains("max_connections"), "{e}");
}

#[test]
fn every_statement_kind_is_lock_then_write() {
    // The shared RETURNING statements are never run by this store.
    assert_eq!(
        SqlServerDialect::new(None).write_mode(),
        crate::backends::sql::WriteMode::LockThenWrite
    );
}

mod live;
mod sync;
