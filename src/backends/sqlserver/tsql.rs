//! The T-SQL statements that differ in shape from the shared builder's:
//! DDL (`IF OBJECT_ID(…) IS NULL CREATE TABLE`), schema creation, catalog
//! reads, the row lock of lock-then-write, and the multi-row `MERGE` of
//! bulk puts. Pure text and parameters, unit-tested without a server.

use crate::backends::sql::{
    ColumnInfo, Dialect, EXPIRES_COL, Param, Select, TableSql, VERSION_COL, number,
};
use crate::entity::FieldKind;
use crate::store::{Precondition, WriteOp};

/// SQL Server's limit on parameters per statement is 2100; statements
/// here stay at or below this many.
pub(super) const MAX_PARAMS: usize = 2000;

/// `CREATE TABLE` when the table is missing: binds the quoted table name.
pub(super) fn create_table(t: &TableSql) -> Select<'_> {
    if_missing(&*t.dialect, &t.create_table, &t.qtable)
}

/// The outbox table when it is missing: binds its quoted name.
pub(super) fn create_outbox(t: &TableSql) -> Select<'static> {
    if_missing(&*t.dialect, &t.outbox.create, &t.outbox.qtable)
}

/// A shared builder's `CREATE TABLE IF NOT EXISTS` in T-SQL's terms.
fn if_missing(d: &dyn Dialect, create: &str, qtable: &str) -> Select<'static> {
    let body = create
        .strip_prefix("CREATE TABLE IF NOT EXISTS ")
        .unwrap_or(create);
    Select {
        sql: number(
            d,
            &format!("IF OBJECT_ID(?, N'U') IS NULL CREATE TABLE {body}"),
        ),
        params: vec![Param::Text(qtable.to_string().into())],
    }
}

/// Creates a schema when missing (`CREATE SCHEMA` must be alone in its
/// batch, hence `EXEC` of a variable — `EXEC(…)` takes no function calls):
/// binds the name twice.
pub(super) fn create_schema<'a>(d: &dyn Dialect, schema: &'a str) -> Select<'a> {
    Select {
        sql: number(
            d,
            "IF SCHEMA_ID(?) IS NULL BEGIN DECLARE @pr_sql NVARCHAR(300) = N'CREATE SCHEMA ' + QUOTENAME(?); EXEC(@pr_sql); END",
        ),
        params: vec![Param::Text(schema.into()), Param::Text(schema.into())],
    }
}

/// Drops every table of a schema, then the schema (binds the schema name,
/// used twice as `@P1`); nothing when the schema is missing.
pub(super) const DROP_SCHEMA: &str = "IF SCHEMA_ID(@P1) IS NOT NULL BEGIN \
     DECLARE @pr_drop NVARCHAR(MAX) = N''; \
     SELECT @pr_drop += N'DROP TABLE ' + QUOTENAME(SCHEMA_NAME(schema_id)) + N'.' + QUOTENAME(name) + N'; ' \
     FROM sys.tables WHERE schema_id = SCHEMA_ID(@P1); \
     EXEC(@pr_drop); SET @pr_drop = N'DROP SCHEMA ' + QUOTENAME(@P1); EXEC(@pr_drop); END";

/// The schema parameter of catalog reads: the configured one, or `NULL`
/// for the login's default (`SCHEMA_NAME()`).
fn schema_param(schema: Option<&str>) -> Param<'_> {
    schema.map_or(Param::Null(FieldKind::String), |s| Param::Text(s.into()))
}

/// A table's columns: name, type, max length, nullable, default, collation.
pub(super) fn columns<'a>(schema: Option<&'a str>, table: &'a str) -> Select<'a> {
    Select {
        sql: "SELECT COLUMN_NAME, DATA_TYPE, CAST(CHARACTER_MAXIMUM_LENGTH AS BIGINT), \
              CAST(CASE WHEN IS_NULLABLE = 'YES' THEN 1 ELSE 0 END AS BIT), COLUMN_DEFAULT, COLLATION_NAME \
              FROM INFORMATION_SCHEMA.COLUMNS \
              WHERE TABLE_SCHEMA = COALESCE(@P1, SCHEMA_NAME()) AND TABLE_NAME = @P2 \
              ORDER BY ORDINAL_POSITION"
            .into(),
        params: vec![schema_param(schema), Param::Text(table.into())],
    }
}

/// A table's primary-key columns and their positions.
pub(super) fn primary_key<'a>(schema: Option<&'a str>, table: &'a str) -> Select<'a> {
    Select {
        sql: "SELECT k.COLUMN_NAME, CAST(k.ORDINAL_POSITION AS BIGINT) \
              FROM INFORMATION_SCHEMA.TABLE_CONSTRAINTS c \
              JOIN INFORMATION_SCHEMA.KEY_COLUMN_USAGE k \
              ON k.CONSTRAINT_SCHEMA = c.CONSTRAINT_SCHEMA AND k.CONSTRAINT_NAME = c.CONSTRAINT_NAME \
              WHERE c.CONSTRAINT_TYPE = 'PRIMARY KEY' \
              AND c.TABLE_SCHEMA = COALESCE(@P1, SCHEMA_NAME()) AND c.TABLE_NAME = @P2"
            .into(),
        params: vec![schema_param(schema), Param::Text(table.into())],
    }
}

/// One row of [`columns`], as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CatalogColumn {
    pub name: String,
    pub data_type: String,
    /// `CHARACTER_MAXIMUM_LENGTH`: characters; -1 for `MAX`.
    pub max_length: Option<i64>,
    pub nullable: bool,
    pub default: Option<String>,
    pub collation: Option<String>,
}

/// The type as [`Dialect::holds`] reads it: `nvarchar(max) COLLATE
/// Latin1_General_100_BIN2`, `binary(16)`, `bigint`.
pub(super) fn catalog_type(c: &CatalogColumn) -> String {
    let mut t = c.data_type.to_ascii_lowercase();
    match c.max_length {
        Some(-1) => t.push_str("(max)"),
        Some(n) => t.push_str(&format!("({n})")),
        None => {}
    }
    if let Some(coll) = &c.collation {
        t.push_str(" COLLATE ");
        t.push_str(coll);
    }
    t
}

/// The catalog rows as [`ColumnInfo`]s for [`check_table`](crate::backends::sql::check_table).
pub(super) fn column_infos(cols: &[CatalogColumn], pk: &[(String, i64)]) -> Vec<ColumnInfo> {
    cols.iter()
        .map(|c| ColumnInfo {
            name: c.name.clone(),
            data_type: catalog_type(c),
            nullable: c.nullable,
            default: c.default.clone(),
            pk: pk
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(&c.name))
                .map_or(0, |(_, p)| u32::try_from(*p).unwrap_or(1)),
        })
        .collect()
}

/// Whether a batch can be one multi-row `MERGE` per chunk: more than one
/// op, every op an unconditional put, no key twice.
pub(super) fn bulk_puts(ops: &[WriteOp]) -> bool {
    if ops.len() < 2 {
        return false;
    }
    let mut keys = std::collections::HashSet::with_capacity(ops.len());
    ops.iter().all(|op| {
        matches!(
            op,
            WriteOp::Put {
                precondition: Precondition::None,
                ..
            }
        ) && keys.insert(op.key().clone())
    })
}

/// Rows per `MERGE`, so one statement binds at most [`MAX_PARAMS`].
pub(super) fn merge_rows(t: &TableSql) -> usize {
    ((MAX_PARAMS - 1) / (t.columns.len() + 1)).max(1)
}

/// An upsert of `rows` rows in one statement; returns each key and its new
/// version (`OUTPUT`). Binds per row columns..., expires; then now. A live
/// row's version goes up by one, an expired or new row starts at 1.
pub(super) fn merge(t: &TableSql, rows: usize) -> String {
    let d = &*t.dialect;
    let q = &t.qtable;
    let v = d.quote(VERSION_COL);
    let e = d.quote(EXPIRES_COL);
    let qk = d.quote(t.key_column().name);
    let names: Vec<String> = t.columns.iter().map(|c| d.quote(c.name)).collect();
    let row = format!("({})", vec!["?"; names.len() + 1].join(", "));
    let values = vec![row.as_str(); rows].join(", ");
    let set: String = names
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != t.key_index)
        .map(|(_, n)| format!("{n} = [_pr_s].{n}, "))
        .collect();
    let source_cols: Vec<String> = names.iter().map(|n| format!("[_pr_s].{n}")).collect();
    number(
        d,
        &format!(
            "MERGE {q} WITH (HOLDLOCK) AS [_pr_t] USING (VALUES {values}) AS [_pr_s] ({}, {e}) \
             ON [_pr_t].{qk} = [_pr_s].{qk} \
             WHEN MATCHED THEN UPDATE SET {set}{v} = CASE WHEN [_pr_t].{e} >= 0 AND [_pr_t].{e} <= ? THEN 1 ELSE [_pr_t].{v} + 1 END, {e} = [_pr_s].{e} \
             WHEN NOT MATCHED THEN INSERT ({}, {v}, {e}) VALUES ({}, 1, [_pr_s].{e}) \
             OUTPUT inserted.{qk}, inserted.{v};",
            names.join(", "),
            names.join(", "),
            source_cols.join(", ")
        ),
    )
}

/// The `MERGE` statements of a bulk put ([`bulk_puts`]), every row checked
/// and encoded first.
pub(super) fn merge_statements<'a>(
    t: &TableSql,
    ops: &'a [WriteOp],
    now: i64,
) -> Result<Vec<Select<'a>>, String> {
    let mut rows = Vec::with_capacity(ops.len());
    for op in ops {
        if let WriteOp::Put { record, ttl, .. } = op {
            let mut row = t.row(record)?;
            row.push(TableSql::expires(now, *ttl));
            rows.push(row);
        }
    }
    Ok(rows
        .chunks(merge_rows(t))
        .map(|chunk| {
            let mut params: Vec<Param<'_>> = chunk.iter().flatten().cloned().collect();
            params.push(Param::Int(now));
            Select {
                sql: merge(t, chunk.len()),
                params,
            }
        })
        .collect())
}
