//! SQLite's SQL dialect.

use crate::backends::sql::{BulkUpsert, Dialect, KeyList, Param, WriteMode};
use crate::entity::FieldKind;
use crate::query::Direction;
use crate::store::namespace::{NameCase, TableNames};

/// SQLite: `"` quoting, `?` parameters, `ON CONFLICT … RETURNING`, booleans
/// and timestamps (unix microseconds) as `INTEGER`, UUIDs and JSON (compact
/// text) as `TEXT`; text may hold NUL; prefix/contains compare bytes.
///
/// ```
/// use polyrouter::backends::sql::Dialect;
/// use polyrouter::backends::sqlite::SqliteDialect;
/// assert_eq!(SqliteDialect.column_type(polyrouter::FieldKind::Timestamp, false), "INTEGER");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SqliteDialect;

/// SQLite's type affinity of a declared type (<https://sqlite.org/datatype3.html>, 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Affinity {
    Integer,
    Text,
    Blob,
    Real,
    Numeric,
}

pub(super) fn affinity(decl: &str) -> Affinity {
    let t = decl.to_ascii_uppercase();
    if t.contains("INT") {
        Affinity::Integer
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        Affinity::Text
    } else if t.contains("BLOB") || t.trim().is_empty() {
        Affinity::Blob
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        Affinity::Real
    } else {
        Affinity::Numeric
    }
}

impl Dialect for SqliteDialect {
    fn name(&self) -> &'static str {
        "SQLite"
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn quote(&self, ident: &str) -> String {
        format!("\"{}\"", ident.replace('"', "\"\""))
    }

    fn check_ident(&self, what: &str, ident: &str) -> Result<(), String> {
        if ident.is_empty() {
            return Err(format!("the {what} name is empty"));
        }
        if ident.contains('\0') {
            return Err(format!(
                "the {what} name {ident:?} contains a NUL character, which SQLite identifiers cannot hold"
            ));
        }
        Ok(())
    }

    fn case_insensitive_idents(&self) -> bool {
        true
    }

    fn table_names(&self) -> TableNames {
        TableNames {
            case: NameCase::AsciiInsensitive,
            max_bytes: None,
            rule: "SQLite compares table names ignoring the case of ASCII letters",
        }
    }

    fn placeholder(&self, _n: usize, out: &mut String) {
        out.push('?');
    }

    fn column_type(&self, kind: FieldKind, _key: bool) -> String {
        match kind {
            FieldKind::Int | FieldKind::Bool | FieldKind::Timestamp => "INTEGER",
            FieldKind::Float => "REAL",
            FieldKind::String | FieldKind::Uuid | FieldKind::Json => "TEXT",
            FieldKind::Bytes => "BLOB",
        }
        .to_string()
    }

    fn serial_key(&self) -> &'static str {
        "INTEGER PRIMARY KEY AUTOINCREMENT"
    }

    fn bigint_type(&self) -> &'static str {
        "INTEGER"
    }

    fn holds(&self, data_type: &str, kind: FieldKind) -> bool {
        use Affinity::*;
        let a = affinity(data_type);
        match kind {
            // REAL affinity would turn large integers into lossy floats.
            FieldKind::Int | FieldKind::Bool | FieldKind::Timestamp => {
                matches!(a, Integer | Numeric)
            }
            FieldKind::Float => matches!(a, Real | Numeric | Integer),
            // NUMERIC/INTEGER/REAL affinity would turn "123" into a number.
            FieldKind::String | FieldKind::Uuid | FieldKind::Json => matches!(a, Text | Blob),
            FieldKind::Bytes => matches!(a, Blob | Text),
        }
    }

    fn max_params(&self) -> usize {
        // SQLITE_MAX_VARIABLE_NUMBER is 32766 since 3.32.
        32_766
    }

    fn text_holds_nul(&self) -> bool {
        true
    }

    fn literal(&self, value: bool) -> &'static str {
        if value { "1" } else { "0" }
    }

    fn order(&self, direction: Direction, nullable: bool) -> &'static str {
        match (direction, nullable) {
            (Direction::Asc, true) => "ASC NULLS FIRST",
            (Direction::Desc, true) => "DESC NULLS LAST",
            (Direction::Asc, false) => "ASC",
            (Direction::Desc, false) => "DESC",
        }
    }

    fn limit(&self, sql: &mut String) {
        sql.push_str(" LIMIT ?");
    }

    fn prefix(&self, qc: &str, prefix: &str, sql: &mut String, params: &mut Vec<Param<'_>>) {
        // Compared as bytes: literal (no wildcards), case-sensitive, and safe
        // with NUL characters, which SQLite's text functions stop at. An
        // empty value gives NULL: coalesced to false.
        sql.push_str(&format!(
            "({qc} IS NOT NULL AND coalesce(substr(CAST({qc} AS BLOB), 1, length(?)) = ?, 0))"
        ));
        params.push(Param::Bytes(prefix.as_bytes().to_vec().into()));
        params.push(Param::Bytes(prefix.as_bytes().to_vec().into()));
    }

    fn contains(&self, qc: &str, needle: &str, sql: &mut String, params: &mut Vec<Param<'_>>) {
        sql.push_str(&format!(
            "({qc} IS NOT NULL AND instr(CAST({qc} AS BLOB), ?) > 0)"
        ));
        params.push(Param::Bytes(needle.as_bytes().to_vec().into()));
    }

    fn write_mode(&self) -> WriteMode {
        WriteMode::Returning
    }

    fn key_list(&self) -> KeyList {
        KeyList::InList { chunk: 500 }
    }

    fn bulk_upsert(&self) -> Option<BulkUpsert> {
        // SQLITE_MAX_VARIABLE_NUMBER is 32766 since 3.32.
        Some(BulkUpsert::Values { max_params: 32766 })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::super::codec::{Stored, stored};
    use super::*;
    use crate::backends::sql::{Column, ColumnInfo, Expect, TableSql, check_table, encode_field};
    use crate::query::{CmpOp, Filter, Order, field};
    use crate::store::{Precondition, StoreQuery, WriteOp};
    use crate::{FieldDef, FieldType, Key, KeyKind, Record, Schema, Value};
    use uuid::Uuid;

    static FIELDS: [FieldDef; 4] = [
        FieldDef {
            name: "id",
            ty: FieldType::required(FieldKind::String),
        },
        FieldDef {
            name: "n",
            ty: FieldType {
                kind: FieldKind::Int,
                nullable: true,
            },
        },
        FieldDef {
            name: "s",
            ty: FieldType::required(FieldKind::String),
        },
        FieldDef {
            name: "at",
            ty: FieldType {
                kind: FieldKind::Timestamp,
                nullable: true,
            },
        },
    ];
    static SCHEMA: Schema = Schema {
        name: "thing",
        key: "id",
        key_kind: KeyKind::Str,
        partition_key: None,
        version: None,
        fields: &FIELDS,
    };

    fn t() -> TableSql {
        TableSql::new(Arc::new(SqliteDialect), &SCHEMA, "things").unwrap()
    }

    fn render(f: Filter) -> (String, Vec<Param<'static>>) {
        let (mut sql, mut args) = (String::new(), Vec::new());
        t().filter(&f, &mut sql, &mut args);
        (sql, args.into_iter().map(Param::into_owned).collect())
    }

    fn text(s: &str) -> Param<'_> {
        Param::Text(s.into())
    }

    #[test]
    fn quoting() {
        let d = SqliteDialect;
        assert_eq!(d.quote("a"), "\"a\"");
        assert_eq!(d.quote("a\"b"), "\"a\"\"b\"");
        assert_eq!(d.quote("'; DROP TABLE x; --"), "\"'; DROP TABLE x; --\"");
        assert!(d.check_ident("table", "a\0b").unwrap_err().contains("NUL"));
        assert!(d.check_ident("table", "").is_err());
        assert!(TableSql::new(Arc::new(SqliteDialect), &SCHEMA, "x\0").is_err());
        let q = TableSql::new(Arc::new(SqliteDialect), &SCHEMA, "we\"ird").unwrap();
        assert!(
            q.create_table
                .starts_with("CREATE TABLE IF NOT EXISTS \"we\"\"ird\" ("),
            "{}",
            q.create_table
        );
    }

    #[test]
    fn ddl() {
        let t = t();
        assert_eq!(
            t.create_table,
            "CREATE TABLE IF NOT EXISTS \"things\" (\"id\" TEXT NOT NULL PRIMARY KEY, \"n\" INTEGER, \"s\" TEXT NOT NULL, \
             \"at\" INTEGER, \"_pr_version\" INTEGER NOT NULL, \"_pr_expires_at\" INTEGER)"
        );
        assert_eq!(
            t.create_index.as_deref(),
            Some(
                "CREATE INDEX IF NOT EXISTS \"things_pr_expires_at\" ON \"things\" (\"_pr_expires_at\")"
            )
        );
        assert_eq!(
            t.select_list,
            "\"id\", \"n\", \"s\", \"at\", \"_pr_version\""
        );
    }

    #[test]
    fn reserved_and_duplicate_names_are_rejected() {
        static F1: [FieldDef; 2] = [
            FieldDef {
                name: "id",
                ty: FieldType::required(FieldKind::Int),
            },
            FieldDef {
                name: "_PR_x",
                ty: FieldType::required(FieldKind::Int),
            },
        ];
        static S1: Schema = Schema {
            name: "a",
            key: "id",
            key_kind: KeyKind::Int,
            partition_key: None,
            version: None,
            fields: &F1,
        };
        assert!(
            TableSql::new(Arc::new(SqliteDialect), &S1, "a")
                .unwrap_err()
                .contains("reserves")
        );
        static F2: [FieldDef; 2] = [
            FieldDef {
                name: "id",
                ty: FieldType::required(FieldKind::Int),
            },
            FieldDef {
                name: "ID",
                ty: FieldType::required(FieldKind::Int),
            },
        ];
        static S2: Schema = Schema {
            name: "a",
            key: "id",
            key_kind: KeyKind::Int,
            partition_key: None,
            version: None,
            fields: &F2,
        };
        assert!(
            TableSql::new(Arc::new(SqliteDialect), &S2, "a")
                .unwrap_err()
                .contains("ignoring case")
        );
    }

    #[test]
    fn key_not_among_fields_gets_a_column() {
        static F: [FieldDef; 1] = [FieldDef {
            name: "v",
            ty: FieldType::required(FieldKind::Bool),
        }];
        static S: Schema = Schema {
            name: "a",
            key: "k",
            key_kind: KeyKind::Uuid,
            partition_key: None,
            version: None,
            fields: &F,
        };
        let t = TableSql::new(Arc::new(SqliteDialect), &S, "a").unwrap();
        assert_eq!(t.key_index, 0);
        assert!(!t.columns[0].is_field);
        assert!(
            t.create_table
                .contains("\"k\" TEXT NOT NULL PRIMARY KEY, \"v\" INTEGER NOT NULL"),
            "{}",
            t.create_table
        );
    }

    #[test]
    fn a_table_of_only_the_key() {
        static F: [FieldDef; 1] = [FieldDef {
            name: "id",
            ty: FieldType::required(FieldKind::Int),
        }];
        static S: Schema = Schema {
            name: "k",
            key: "id",
            key_kind: KeyKind::Int,
            partition_key: None,
            version: None,
            fields: &F,
        };
        let t = TableSql::new(Arc::new(SqliteDialect), &S, "k").unwrap();
        assert!(
            t.upsert.contains("DO UPDATE SET \"_pr_version\" = CASE"),
            "{}",
            t.upsert
        );
        assert!(
            t.update_exists
                .starts_with("UPDATE \"k\" SET \"_pr_version\" = \"_pr_version\" + 1, "),
            "{}",
            t.update_exists
        );
        let mut r = Record::new(Key::Int(4));
        r.set("id", Value::I64(4));
        let op = WriteOp::Put {
            record: r,
            precondition: Precondition::Exists,
            ttl: None,
        };
        let w = t.write(&op, 1).unwrap();
        assert_eq!(
            w.params,
            vec![Param::Null(FieldKind::Int), Param::Int(4), Param::Int(1)]
        );
    }

    #[test]
    fn comparisons_are_two_valued() {
        assert_eq!(
            render(field("n").eq(1)),
            (
                "(\"n\" IS NOT NULL AND \"n\" = ?)".into(),
                vec![Param::Int(1)]
            )
        );
        assert_eq!(
            render(field("n").lt(1)).0,
            "(\"n\" IS NOT NULL AND \"n\" < ?)"
        );
        assert_eq!(
            render(field("n").le(1)).0,
            "(\"n\" IS NOT NULL AND \"n\" <= ?)"
        );
        assert_eq!(
            render(field("n").gt(1)).0,
            "(\"n\" IS NOT NULL AND \"n\" > ?)"
        );
        assert_eq!(
            render(field("n").ge(1)).0,
            "(\"n\" IS NOT NULL AND \"n\" >= ?)"
        );
        assert_eq!(
            render(field("n").ne(1)),
            ("(\"n\" IS NULL OR \"n\" <> ?)".into(), vec![Param::Int(1)])
        );
        assert_eq!(
            render(field("s").eq("x'y")),
            (
                "(\"s\" IS NOT NULL AND \"s\" = ?)".into(),
                vec![text("x'y")]
            )
        );
    }

    #[test]
    fn null_operands_and_unknown_fields() {
        assert_eq!(
            render(field("n").eq(Value::Null)),
            ("(\"n\" IS NULL)".into(), vec![])
        );
        assert_eq!(render(field("n").lt(Value::Null)), ("0".into(), vec![]));
        assert_eq!(
            render(field("n").ne(Value::Null)),
            ("(\"n\" IS NOT NULL)".into(), vec![])
        );
        assert_eq!(
            render(field("n").gt(Value::Null)),
            ("(\"n\" IS NOT NULL)".into(), vec![])
        );
        assert_eq!(render(field("nope").eq(1)), ("0".into(), vec![]));
        assert_eq!(render(field("nope").ne(1)), ("1".into(), vec![]));
        assert_eq!(render(field("nope").ne(Value::Null)), ("0".into(), vec![]));
        assert_eq!(render(field("nope").is_null()), ("1".into(), vec![]));
        assert_eq!(render(field("nope").eq(Value::Null)), ("1".into(), vec![]));
        assert_eq!(render(field("nope").is_in([1])), ("0".into(), vec![]));
        assert_eq!(render(field("nope").prefix("a")), ("0".into(), vec![]));
    }

    #[test]
    fn mismatched_operand_types_compare_by_rank() {
        // int (rank 2) vs string (rank 3): every non-null int is less.
        assert_eq!(render(field("n").lt("a")).0, "(\"n\" IS NOT NULL)");
        assert_eq!(render(field("n").gt("a")).0, "0");
        assert_eq!(render(field("n").eq("a")).0, "0");
        assert_eq!(render(field("n").ne("a")).0, "1");
        // Timestamp (rank 5) vs string (3).
        assert_eq!(render(field("at").gt("2020")).0, "(\"at\" IS NOT NULL)");
        // Prefix on a non-string column never matches.
        assert_eq!(render(field("n").prefix("1")).0, "0");
        assert_eq!(render(field("n").contains("1")).0, "0");
    }

    #[test]
    fn in_lists() {
        assert_eq!(
            render(field("n").is_in([1, 2])),
            (
                "(\"n\" IS NOT NULL AND \"n\" IN (?, ?))".into(),
                vec![Param::Int(1), Param::Int(2)]
            )
        );
        assert_eq!(
            render(field("n").is_in(Vec::<i64>::new())),
            ("0".into(), vec![])
        );
        // Nulls and other types never equal a value: dropped.
        let f = Filter::In {
            field: "n".into(),
            values: vec![Value::Null, Value::from("x"), Value::I64(3)],
        };
        assert_eq!(
            render(f),
            (
                "(\"n\" IS NOT NULL AND \"n\" IN (?))".into(),
                vec![Param::Int(3)]
            )
        );
        let f = Filter::In {
            field: "n".into(),
            values: vec![Value::Null],
        };
        assert_eq!(render(f).0, "0");
    }

    #[test]
    fn prefix_and_contains_are_literal_bytes() {
        assert_eq!(
            render(field("s").prefix("a%_")),
            (
                "(\"s\" IS NOT NULL AND coalesce(substr(CAST(\"s\" AS BLOB), 1, length(?)) = ?, 0))".into(),
                vec![Param::Bytes(b"a%_".to_vec().into()), Param::Bytes(b"a%_".to_vec().into())]
            )
        );
        assert_eq!(
            render(field("s").contains("x\0")),
            (
                "(\"s\" IS NOT NULL AND instr(CAST(\"s\" AS BLOB), ?) > 0)".into(),
                vec![Param::Bytes(b"x\0".to_vec().into())]
            )
        );
        assert!(!render(field("s").prefix("a")).0.contains("LIKE"));
        assert_eq!(
            render(field("s").prefix("")),
            ("(\"s\" IS NOT NULL)".into(), vec![])
        );
        assert_eq!(
            render(field("s").contains("")),
            ("(\"s\" IS NOT NULL)".into(), vec![])
        );
    }

    #[test]
    fn is_null_and_boolean_nodes() {
        assert_eq!(render(field("n").is_null()).0, "(\"n\" IS NULL)");
        assert_eq!(render(field("n").is_not_null()).0, "(NOT (\"n\" IS NULL))");
        assert_eq!(render(Filter::And(vec![])).0, "1");
        assert_eq!(render(Filter::Or(vec![])).0, "0");
        assert_eq!(
            render(field("n").eq(1).and(field("s").ne("a")).or(field("n").lt(0).not())),
            (
                "(((\"n\" IS NOT NULL AND \"n\" = ?) AND (\"s\" IS NULL OR \"s\" <> ?)) OR (NOT (\"n\" IS NOT NULL AND \"n\" < ?)))"
                    .to_string(),
                vec![Param::Int(1), text("a"), Param::Int(0)]
            )
        );
    }

    #[test]
    fn timestamps_bind_as_micros_and_sub_micro_operands_are_exact() {
        let at = chrono::DateTime::from_timestamp_micros(1_000_001).unwrap();
        let micros = |p: Vec<Param<'static>>| p.into_iter().map(stored).collect::<Vec<_>>();
        assert_eq!(
            micros(render(field("at").ge(at)).1),
            vec![Stored::Int(1_000_001)]
        );
        let between = chrono::DateTime::from_timestamp(1, 1_500).unwrap(); // 1.0000015 s
        let f = |op| Filter::Cmp {
            field: "at".into(),
            op,
            value: Value::Timestamp(between),
        };
        assert_eq!(render(f(CmpOp::Eq)).0, "0");
        assert_eq!(render(f(CmpOp::Ne)).0, "1");
        let (sql, params) = render(f(CmpOp::Lt));
        assert_eq!(sql, "(\"at\" IS NOT NULL AND \"at\" <= ?)");
        assert_eq!(micros(params), vec![Stored::Int(1_000_001)]);
        let (sql, params) = render(f(CmpOp::Ge));
        assert_eq!(sql, "(\"at\" IS NOT NULL AND \"at\" > ?)");
        assert_eq!(micros(params), vec![Stored::Int(1_000_001)]);
    }

    #[test]
    fn order_and_limit() {
        let q = StoreQuery {
            filter: Some(field("n").gt(1)),
            order: vec![
                Order {
                    field: "s".into(),
                    direction: Direction::Asc,
                },
                Order {
                    field: "n".into(),
                    direction: Direction::Desc,
                },
                Order {
                    field: "id".into(),
                    direction: Direction::Asc,
                },
            ],
            limit: Some(10),
        };
        let s = t().query(&q, 77);
        assert_eq!(
            s.sql,
            "SELECT \"id\", \"n\", \"s\", \"at\", \"_pr_version\" FROM \"things\" WHERE (\"_pr_expires_at\" IS NULL OR \"_pr_expires_at\" > ?) \
             AND (\"n\" IS NOT NULL AND \"n\" > ?) ORDER BY \"s\" ASC, \"n\" DESC NULLS LAST, \"id\" ASC LIMIT ?"
        );
        assert_eq!(
            s.params,
            vec![Param::Int(77), Param::Int(1), Param::Int(10)]
        );
        let query = StoreQuery::default();
        let s = t().query(&query, 5);
        assert!(s.sql.ends_with("ORDER BY \"id\" ASC"), "{}", s.sql);
        assert_eq!(s.params, vec![Param::Int(5)]);
    }

    #[test]
    fn count() {
        let filter = field("s").eq("a");
        let s = t().count(Some(&filter), 9);
        assert_eq!(
            s.sql,
            "SELECT count(*) FROM \"things\" WHERE (\"_pr_expires_at\" IS NULL OR \"_pr_expires_at\" > ?) AND (\"s\" IS NOT NULL AND \"s\" = ?)"
        );
        assert_eq!(s.params, vec![Param::Int(9), text("a")]);
    }

    #[test]
    fn get_many_pads_to_buckets() {
        let keys = [Key::from("a"), Key::from("b"), Key::from("c")];
        let s = t().get_many(&keys, 1).unwrap().remove(0);
        assert!(s.sql.contains("\"id\" IN (?, ?, ?, ?) AND"), "{}", s.sql);
        assert_eq!(
            s.params,
            vec![text("a"), text("b"), text("c"), text("c"), Param::Int(1)]
        );
        let keys: Vec<Key> = (0..300).map(|i| Key::from(format!("k{i}"))).collect();
        let s = t().get_many(&keys, 1).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].params.len(), 501);
        let keys: Vec<Key> = (0..700).map(|i| Key::from(format!("k{i}"))).collect();
        let s = t().get_many(&keys, 1).unwrap();
        assert_eq!(
            s.iter().map(|s| s.params.len()).collect::<Vec<_>>(),
            vec![501, 257]
        );
        assert!(t().get_many(&[Key::Int(1)], 1).is_err());
    }

    fn rec() -> Record {
        let mut r = Record::new(Key::from("k"));
        r.set("id", Value::from("k"));
        r.set("n", Value::Null);
        r.set("s", Value::from("v"));
        r
    }

    fn put(p: Precondition, ttl: Option<Duration>) -> WriteOp {
        WriteOp::Put {
            record: rec(),
            precondition: p,
            ttl,
        }
    }

    #[test]
    fn conditional_puts() {
        let t = t();
        let op = put(Precondition::None, None);
        let w = t.write(&op, 100).unwrap();
        assert_eq!(
            w.sql,
            "INSERT INTO \"things\" (\"id\", \"n\", \"s\", \"at\", \"_pr_version\", \"_pr_expires_at\") VALUES (?, ?, ?, ?, 1, ?) \
             ON CONFLICT (\"id\") DO UPDATE SET \"n\" = excluded.\"n\", \"s\" = excluded.\"s\", \"at\" = excluded.\"at\", \
             \"_pr_version\" = CASE WHEN \"_pr_expires_at\" >= 0 AND \"_pr_expires_at\" <= ? THEN 1 ELSE \"_pr_version\" + 1 END, \
             \"_pr_expires_at\" = excluded.\"_pr_expires_at\" RETURNING \"_pr_version\""
        );
        assert_eq!(
            w.params,
            vec![
                text("k"),
                Param::Null(FieldKind::Int),
                text("v"),
                Param::Null(FieldKind::Timestamp),
                Param::Null(FieldKind::Int),
                Param::Int(100)
            ]
        );
        assert_eq!(w.expect, Expect::Put);

        let op = put(Precondition::Absent, Some(Duration::from_millis(2)));
        let w = t.write(&op, 100).unwrap();
        assert!(w.sql.ends_with(
            "\"_pr_version\" = CASE WHEN \"_pr_expires_at\" < 0 THEN \"_pr_version\" + 1 ELSE 1 END, \"_pr_expires_at\" = excluded.\"_pr_expires_at\" WHERE \"_pr_expires_at\" <= ? RETURNING \"_pr_version\""
        ), "{}", w.sql);
        assert_eq!(
            w.params,
            vec![
                text("k"),
                Param::Null(FieldKind::Int),
                text("v"),
                Param::Null(FieldKind::Timestamp),
                Param::Int(2100),
                Param::Int(100)
            ]
        );

        let op = put(Precondition::Exists, None);

        let w = t.write(&op, 100).unwrap();
        assert_eq!(
            w.sql,
            "UPDATE \"things\" SET \"n\" = ?, \"s\" = ?, \"at\" = ?, \"_pr_version\" = \"_pr_version\" + 1, \"_pr_expires_at\" = ? \
             WHERE \"id\" = ? AND (\"_pr_expires_at\" IS NULL OR \"_pr_expires_at\" > ?) RETURNING \"_pr_version\""
        );
        assert_eq!(
            w.params,
            vec![
                Param::Null(FieldKind::Int),
                text("v"),
                Param::Null(FieldKind::Timestamp),
                Param::Null(FieldKind::Int),
                text("k"),
                Param::Int(100)
            ]
        );

        let op = put(Precondition::Version(3), None);

        let w = t.write(&op, 100).unwrap();
        assert!(
            w.sql
                .ends_with("AND \"_pr_version\" = ? RETURNING \"_pr_version\""),
            "{}",
            w.sql
        );
        assert_eq!(
            w.params,
            vec![
                Param::Null(FieldKind::Int),
                text("v"),
                Param::Null(FieldKind::Timestamp),
                Param::Null(FieldKind::Int),
                text("k"),
                Param::Int(100),
                Param::Int(3)
            ]
        );
        let op = put(Precondition::Version(u64::MAX), None);
        let w = t.write(&op, 100).unwrap();
        assert_eq!(w.params.last(), Some(&Param::Int(-1)));
    }

    #[test]
    fn conditional_deletes() {
        let t = t();
        let del = |p| WriteOp::Delete {
            key: Key::from("k"),
            precondition: p,
        };
        // A delete leaves a tombstone: version + 1, expiry minus the time
        // of the delete, nullable values cleared.
        let op = del(Precondition::None);
        let w = t.write(&op, 5).unwrap();
        assert_eq!(
            w.sql,
            "UPDATE \"things\" SET \"n\" = NULL, \"at\" = NULL, \"_pr_version\" = \"_pr_version\" + 1, \"_pr_expires_at\" = ? \
             WHERE \"id\" = ? AND (\"_pr_expires_at\" IS NULL OR \"_pr_expires_at\" > ?) RETURNING \"_pr_version\""
        );
        assert_eq!(
            (w.params, w.expect),
            (
                vec![Param::Int(-5), text("k"), Param::Int(5)],
                Expect::DeleteAny
            )
        );
        let op = del(Precondition::Exists);
        let w = t.write(&op, 5).unwrap();
        assert_eq!(
            w.sql,
            "UPDATE \"things\" SET \"n\" = NULL, \"at\" = NULL, \"_pr_version\" = \"_pr_version\" + 1, \"_pr_expires_at\" = ? \
             WHERE \"id\" = ? AND (\"_pr_expires_at\" IS NULL OR \"_pr_expires_at\" > ?) RETURNING \"_pr_version\""
        );
        assert_eq!(w.expect, Expect::DeleteCond);
        let op = del(Precondition::Version(2));
        let w = t.write(&op, 5).unwrap();
        assert!(
            w.sql
                .ends_with("AND \"_pr_version\" = ? RETURNING \"_pr_version\"")
        );
        assert_eq!(
            w.params,
            vec![Param::Int(-5), text("k"), Param::Int(5), Param::Int(2)]
        );
        let op = del(Precondition::Absent);
        let w = t.write(&op, 5).unwrap();
        assert_eq!(
            w.sql,
            "DELETE FROM \"things\" WHERE \"id\" = ? AND \"_pr_expires_at\" >= 0 AND \"_pr_expires_at\" <= ?"
        );
        assert_eq!(w.expect, Expect::DeleteAbsent);
    }

    #[test]
    fn bad_writes_are_rejected_before_sql() {
        let t = t();
        let mut r = rec();
        r.set("s", Value::Null);
        let e = t
            .write(
                &WriteOp::Put {
                    record: r,
                    precondition: Precondition::None,
                    ttl: None,
                },
                0,
            )
            .unwrap_err();
        assert!(e.contains("`s` is not nullable"), "{e}");
        let e = t
            .write(
                &WriteOp::Delete {
                    key: Key::Int(1),
                    precondition: Precondition::None,
                },
                0,
            )
            .unwrap_err();
        assert!(e.contains("Str keys"), "{e}");
    }

    #[test]
    fn a_writes_text_is_bound_from_the_record_without_a_copy() {
        let t = t();
        let op = put(Precondition::None, None);
        let WriteOp::Put { record, .. } = &op else {
            unreachable!()
        };
        let w = t.write(&op, 1).unwrap();
        let borrowed: Vec<*const u8> = w
            .params
            .iter()
            .filter_map(|p| match p {
                Param::Text(std::borrow::Cow::Borrowed(s)) => Some(s.as_ptr()),
                Param::Text(std::borrow::Cow::Owned(s)) => panic!("copied: {s:?}"),
                _ => None,
            })
            .collect();
        // The key and field `s` point into the record itself.
        let Key::Str(key) = &record.key else {
            unreachable!()
        };
        let Some(Value::String(s)) = record.get("s") else {
            unreachable!()
        };
        assert_eq!(borrowed, vec![key.as_ptr(), s.as_ptr()]);
    }

    #[test]
    fn statements_are_shared_per_shape() {
        let t = t();
        let op = put(Precondition::None, None);
        let a = t.write(&op, 1).unwrap();
        let op_b = put(Precondition::None, Some(Duration::from_secs(1)));
        let b = t.write(&op_b, 2).unwrap();
        assert!(std::ptr::eq(a.sql, b.sql));
    }

    // Table checks.

    static DDL_FIELDS: [FieldDef; 3] = [
        FieldDef {
            name: "id",
            ty: FieldType::required(FieldKind::Int),
        },
        FieldDef {
            name: "name",
            ty: FieldType::required(FieldKind::String),
        },
        FieldDef {
            name: "score",
            ty: FieldType {
                kind: FieldKind::Float,
                nullable: true,
            },
        },
    ];
    static DDL_SCHEMA: Schema = Schema {
        name: "e",
        key: "id",
        key_kind: KeyKind::Int,
        partition_key: None,
        version: None,
        fields: &DDL_FIELDS,
    };

    fn col(name: &str, ty: &str, notnull: bool, pk: u32) -> ColumnInfo {
        ColumnInfo {
            name: name.into(),
            data_type: ty.into(),
            nullable: !notnull,
            default: None,
            pk,
        }
    }

    fn good() -> Vec<ColumnInfo> {
        vec![
            col("id", "INTEGER", true, 1),
            col("name", "TEXT", true, 0),
            col("score", "REAL", false, 0),
            col("_pr_version", "INTEGER", true, 0),
            col("_pr_expires_at", "INTEGER", false, 0),
        ]
    }

    fn check(info: Vec<ColumnInfo>) -> Result<(), String> {
        check_table(
            "db",
            &TableSql::new(Arc::new(SqliteDialect), &DDL_SCHEMA, "tbl").unwrap(),
            &info,
        )
    }

    #[test]
    fn affinities() {
        assert_eq!(affinity("BIGINT"), Affinity::Integer);
        assert_eq!(affinity("varchar(20)"), Affinity::Text);
        assert_eq!(affinity(""), Affinity::Blob);
        assert_eq!(affinity("DOUBLE PRECISION"), Affinity::Real);
        assert_eq!(affinity("DECIMAL(10,2)"), Affinity::Numeric);
    }

    #[test]
    fn compatible_tables_pass() {
        check(good()).unwrap();
        let mut t = good();
        t[1] = col("NAME", "varchar(10)", false, 0); // nullable column for a required field is fine
        t.push(ColumnInfo {
            default: Some("0".into()),
            ..col("extra", "INTEGER", true, 0)
        });
        t.push(col("other", "TEXT", false, 0));
        check(t).unwrap();
    }

    #[test]
    fn incompatible_tables_name_the_column() {
        let mut t = good();
        t.remove(1);
        let e = check(t).unwrap_err();
        assert!(
            e.contains("store `db`")
                && e.contains("table `tbl`")
                && e.contains("column `name`")
                && e.contains("ALTER TABLE"),
            "{e}"
        );

        let mut t = good();
        t[1] = col("name", "INTEGER", true, 0);
        let e = check(t).unwrap_err();
        assert!(
            e.contains("column `name`") && e.contains("`INTEGER`"),
            "{e}"
        );

        let mut t = good();
        t[2] = col("score", "REAL", true, 0);
        assert!(
            check(t)
                .unwrap_err()
                .contains("NOT NULL but field `score` is optional")
        );

        let mut t = good();
        t[0].pk = 0;
        t[1].pk = 1;
        assert!(check(t).unwrap_err().contains("primary key is (name)"));

        let mut t = good();
        t[1].pk = 2;
        assert!(check(t).unwrap_err().contains("primary key is (id, name)"));

        let mut t = good();
        t.push(col("extra", "TEXT", true, 0));
        assert!(check(t).unwrap_err().contains("column `extra`"));

        let mut t = good();
        t.remove(3);
        assert!(check(t).unwrap_err().contains("column `_pr_version`"));

        let mut t = good();
        t[4].nullable = false;
        assert!(check(t).unwrap_err().contains("column `_pr_expires_at`"));
    }

    // Encoding.

    fn kcol(kind: FieldKind, nullable: bool) -> Column {
        Column {
            name: "c",
            kind,
            nullable,
            is_field: true,
        }
    }

    #[test]
    fn encodes_every_kind() {
        let t = chrono::DateTime::from_timestamp_micros(-1_500_001).unwrap();
        let u = Uuid::from_u128(0xABCD_EF00_0000_0000_0000_0000_0000_0001);
        let cases = [
            (FieldKind::Bool, Value::Bool(true), Stored::Int(1)),
            (FieldKind::Int, Value::I64(i64::MIN), Stored::Int(i64::MIN)),
            (FieldKind::Float, Value::F64(1.5), Stored::Real(1.5)),
            (FieldKind::Float, Value::I64(2), Stored::Real(2.0)),
            (
                FieldKind::String,
                Value::from("a\0b"),
                Stored::Text("a\0b".into()),
            ),
            (
                FieldKind::Bytes,
                Value::Bytes(vec![0, 255]),
                Stored::Blob(vec![0, 255].into()),
            ),
            (
                FieldKind::Timestamp,
                Value::Timestamp(t),
                Stored::Int(-1_500_001),
            ),
            (
                FieldKind::Uuid,
                Value::Uuid(u),
                Stored::Text("abcdef00-0000-0000-0000-000000000001".into()),
            ),
            (
                FieldKind::Json,
                Value::Json(serde_json::json!({"b": 1, "a": [null]})),
                Stored::Text(r#"{"a":[null],"b":1}"#.into()),
            ),
            (
                FieldKind::Json,
                Value::Json(serde_json::Value::Null),
                Stored::Text("null".into()),
            ),
        ];
        for (kind, v, want) in cases {
            assert_eq!(
                stored(encode_field(&SqliteDialect, &kcol(kind, false), &v).unwrap()),
                want,
                "{kind:?}"
            );
        }
        assert_eq!(
            encode_field(&SqliteDialect, &kcol(FieldKind::Int, true), &Value::Null).unwrap(),
            Param::Null(FieldKind::Int)
        );
        assert!(
            encode_field(&SqliteDialect, &kcol(FieldKind::Int, false), &Value::Null)
                .unwrap_err()
                .contains("not nullable")
        );
        assert!(
            encode_field(
                &SqliteDialect,
                &kcol(FieldKind::Float, false),
                &Value::F64(f64::NAN)
            )
            .unwrap_err()
            .contains("NaN")
        );
        assert!(
            encode_field(
                &SqliteDialect,
                &kcol(FieldKind::Int, false),
                &Value::from("x")
            )
            .unwrap_err()
            .contains("is int")
        );
    }
}
