//! PostgreSQL's SQL dialect.

use crate::backends::sql::{BulkUpsert, Column, Dialect, KeyList, Param, WriteMode};
use crate::entity::FieldKind;
use crate::query::Direction;
use crate::store::namespace::{NameCase, TableNames};

/// The longest identifier PostgreSQL keeps whole (`NAMEDATALEN - 1`);
/// longer ones it silently cuts short.
const MAX_IDENT_BYTES: usize = 63;

/// PostgreSQL: `"` quoting, `$n` parameters, `ON CONFLICT … RETURNING`,
/// native types (`TIMESTAMPTZ`, `UUID`, `JSONB`, `BYTEA`), text in the
/// byte-order `"C"` collation; text cannot hold NUL; `get_many` binds one
/// key array.
///
/// ```
/// use polyrouter::backends::sql::Dialect;
/// use polyrouter::backends::postgres::PostgresDialect;
/// assert_eq!(PostgresDialect.column_type(polyrouter::FieldKind::Json, false), "JSONB");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct PostgresDialect;

impl Dialect for PostgresDialect {
    fn name(&self) -> &'static str {
        "PostgreSQL"
    }

    fn kind(&self) -> &'static str {
        "postgres"
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
                "the {what} name {ident:?} contains a NUL character, which PostgreSQL identifiers cannot hold"
            ));
        }
        if ident.len() > MAX_IDENT_BYTES {
            return Err(format!(
                "the {what} name {ident:?} is {} bytes long; PostgreSQL keeps only the first {MAX_IDENT_BYTES} bytes of a name, so it would not find the {what} under its full name; choose a name of at most {MAX_IDENT_BYTES} bytes",
                ident.len()
            ));
        }
        Ok(())
    }

    fn case_insensitive_idents(&self) -> bool {
        false
    }

    fn table_names(&self) -> TableNames {
        TableNames {
            case: NameCase::Exact,
            max_bytes: Some(MAX_IDENT_BYTES),
            rule: "PostgreSQL keeps only the first 63 bytes of a name",
        }
    }

    fn placeholder(&self, n: usize, out: &mut String) {
        out.push('$');
        out.push_str(&n.to_string());
    }

    fn column_type(&self, kind: FieldKind, _key: bool) -> String {
        match kind {
            FieldKind::Int => "BIGINT",
            FieldKind::Bool => "BOOLEAN",
            FieldKind::Timestamp => "TIMESTAMPTZ",
            FieldKind::Float => "DOUBLE PRECISION",
            FieldKind::String => "TEXT COLLATE \"C\"",
            FieldKind::Uuid => "UUID",
            FieldKind::Json => "JSONB",
            FieldKind::Bytes => "BYTEA",
        }
        .to_string()
    }

    fn serial_key(&self) -> &'static str {
        "BIGSERIAL PRIMARY KEY"
    }

    fn bigint_type(&self) -> &'static str {
        "BIGINT"
    }

    fn holds(&self, data_type: &str, kind: FieldKind) -> bool {
        let t = data_type.to_ascii_lowercase();
        match kind {
            FieldKind::Int => t == "bigint",
            FieldKind::Bool => t == "boolean",
            FieldKind::Timestamp => t == "timestamp with time zone",
            FieldKind::Float => t == "double precision",
            FieldKind::String => t == "text" || t == "character varying",
            FieldKind::Bytes => t == "bytea",
            FieldKind::Uuid => t == "uuid",
            FieldKind::Json => t == "jsonb",
        }
    }

    fn json_negative_zero(&self) -> bool {
        false
    }

    fn text_holds_nul(&self) -> bool {
        false
    }

    fn literal(&self, value: bool) -> &'static str {
        if value { "TRUE" } else { "FALSE" }
    }

    fn order(&self, direction: Direction, nullable: bool) -> &'static str {
        // NULLS FIRST/LAST only where nulls can occur: on a NOT NULL column
        // it would stop PostgreSQL from using a plain index.
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
        // Literal (no wildcards) and case-sensitive.
        sql.push_str(&format!("({qc} IS NOT NULL AND starts_with({qc}, ?))"));
        params.push(Param::Text(prefix.to_string().into()));
    }

    fn contains(&self, qc: &str, needle: &str, sql: &mut String, params: &mut Vec<Param<'_>>) {
        sql.push_str(&format!("({qc} IS NOT NULL AND strpos({qc}, ?) > 0)"));
        params.push(Param::Text(needle.to_string().into()));
    }

    fn operand(&self, kind: FieldKind) -> &'static str {
        match kind {
            FieldKind::String => "? COLLATE \"C\"",
            _ => "?",
        }
    }

    fn ordered(&self, c: &Column, qc: &str) -> String {
        // JSON compares by its text, like the reference.
        match c.kind {
            FieldKind::Json => format!("(CAST({qc} AS TEXT) COLLATE \"C\")"),
            _ => qc.to_string(),
        }
    }

    fn ordered_operand(&self, kind: FieldKind) -> &'static str {
        match kind {
            FieldKind::Json => "(CAST(CAST(? AS JSONB) AS TEXT) COLLATE \"C\")",
            _ => self.operand(kind),
        }
    }

    fn write_mode(&self) -> WriteMode {
        WriteMode::Returning
    }

    fn upsert_alias(&self) -> Option<&'static str> {
        Some("_pr_t")
    }

    fn key_list(&self) -> KeyList {
        KeyList::Array
    }

    fn bulk_upsert(&self) -> Option<BulkUpsert> {
        Some(BulkUpsert::Unnest { rows: 5000 })
    }

    fn array_type(&self, kind: FieldKind) -> Option<&'static str> {
        Some(match kind {
            FieldKind::Int => "BIGINT[]",
            FieldKind::Bool => "BOOLEAN[]",
            FieldKind::Timestamp => "TIMESTAMPTZ[]",
            FieldKind::Float => "DOUBLE PRECISION[]",
            FieldKind::String => "TEXT[]",
            FieldKind::Uuid => "UUID[]",
            FieldKind::Json => "JSONB[]",
            FieldKind::Bytes => "BYTEA[]",
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::backends::sql::{ColumnInfo, TableSql, check_table};
    use crate::{FieldDef, KeyKind, Schema};

    static FIELDS: [FieldDef; 2] = [
        FieldDef::required("id", FieldKind::Int),
        FieldDef::required("name", FieldKind::String),
    ];
    static SCHEMA: Schema = Schema {
        name: "e",
        key: "id",
        key_kind: KeyKind::Int,
        partition_key: None,
        version: None,
        fields: &FIELDS,
    };

    fn col(name: &str, ty: &str, nullable: bool, pk: bool) -> ColumnInfo {
        ColumnInfo {
            name: name.into(),
            data_type: ty.into(),
            nullable,
            default: None,
            pk: u32::from(pk),
        }
    }

    fn good() -> Vec<ColumnInfo> {
        vec![
            col("id", "bigint", false, true),
            col("name", "text", false, false),
            col("_pr_version", "bigint", false, false),
            col("_pr_expires_at", "bigint", true, false),
        ]
    }

    fn check(info: Vec<ColumnInfo>) -> Result<(), String> {
        let t = TableSql::new(Arc::new(PostgresDialect), &SCHEMA, "tbl").unwrap();
        check_table("db", &t, &info)
    }

    #[test]
    fn checks_columns() {
        check(good()).unwrap();
        let mut t = good();
        t[1] = col("name", "integer", false, false);
        let e = check(t).unwrap_err();
        assert!(
            e.contains("store `db`") && e.contains("table `tbl`") && e.contains("column `name`"),
            "{e}"
        );
        let mut t = good();
        t.remove(1);
        assert!(check(t).unwrap_err().contains("ALTER TABLE"));
        let mut t = good();
        t[0].pk = 0;
        assert!(check(t).unwrap_err().contains("primary key"));
        // Column names are case-sensitive in PostgreSQL.
        let mut t = good();
        t[1] = col("NAME", "text", false, false);
        assert!(check(t).unwrap_err().contains("column `name`"));
    }

    #[test]
    fn statements_number_their_parameters() {
        let t = TableSql::new(Arc::new(PostgresDialect), &SCHEMA, "tbl").unwrap();
        assert_eq!(
            t.get,
            "SELECT \"id\", \"name\", \"_pr_version\" FROM \"tbl\" WHERE \"id\" = $1 AND (\"_pr_expires_at\" IS NULL OR \"_pr_expires_at\" > $2)"
        );
        assert!(
            t.upsert.starts_with("INSERT INTO \"tbl\" AS \"_pr_t\" (\"id\", \"name\", \"_pr_version\", \"_pr_expires_at\") VALUES ($1, $2, 1, $3)"),
            "{}",
            t.upsert
        );
        assert!(
            t.upsert.ends_with("RETURNING \"_pr_t\".\"_pr_version\""),
            "{}",
            t.upsert
        );
    }
}
