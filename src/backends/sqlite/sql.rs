//! SQL generation: every statement the SQLite store runs, as text plus the
//! list of bound arguments. Values are always bound, never formatted in;
//! identifiers are always double-quoted.
//!
//! Filters render to expressions that are never SQL `NULL`, so `NOT` and
//! `OR` follow the reference two-valued logic of [`crate::store::eval`].

use std::fmt::Write as _;

use super::codec::{Arg, encode_field, key_arg, key_field_kind, micros, value_arg};
use crate::entity::{FieldKind, Schema};
use crate::query::{CmpOp, Direction, Filter};
use crate::store::{Precondition, StoreQuery, WriteOp};
use crate::{Key, Value};

/// The version column.
pub(super) const VERSION_COL: &str = "_pr_version";
/// The expiry column (unix microseconds, `NULL`: never).
pub(super) const EXPIRES_COL: &str = "_pr_expires_at";
/// The reserved column-name prefix.
pub(super) const RESERVED_PREFIX: &str = "_pr_";

const V: &str = "\"_pr_version\"";
const E: &str = "\"_pr_expires_at\"";
/// The row is not expired; binds `now`.
const LIVE: &str = "(\"_pr_expires_at\" IS NULL OR \"_pr_expires_at\" > ?)";

/// Rows deleted per purge statement.
pub(super) const PURGE_CHUNK: u64 = 1000;
/// The most keys in one `IN (...)` of `get_many`.
pub(super) const GET_MANY_CHUNK: usize = 500;
/// `get_many` pads each chunk to one of these sizes so few distinct
/// statements are prepared and cached.
const GET_MANY_BUCKETS: [usize; 10] = [1, 2, 4, 8, 16, 32, 64, 128, 256, GET_MANY_CHUNK];

/// A double-quoted SQL identifier (`"` doubled).
///
/// ```text
/// quote(r#"a"b"#) == r#""a""b""#
/// ```
pub(super) fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Checks a table or column name can be quoted.
pub(super) fn check_ident(what: &str, ident: &str) -> Result<(), String> {
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

/// The declared SQL type of a column of `kind`.
pub(super) fn sql_type(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Int | FieldKind::Bool | FieldKind::Timestamp => "INTEGER",
        FieldKind::Float => "REAL",
        FieldKind::String | FieldKind::Uuid | FieldKind::Json => "TEXT",
        FieldKind::Bytes => "BLOB",
    }
}

/// One data column of an entity's table.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Column {
    /// Column and field name.
    pub name: &'static str,
    /// Logical type.
    pub kind: FieldKind,
    /// May hold `NULL`.
    pub nullable: bool,
    /// Among the schema's fields (false only for a key the schema does not list).
    pub is_field: bool,
}

/// How a write statement's result is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
    /// `RETURNING _pr_version`; no row: the precondition failed.
    Put,
    /// `RETURNING <was live>`; no row: nothing was there.
    DeleteAny,
    /// `RETURNING _pr_version`; no row: the precondition failed.
    DeleteCond,
    /// Deletes an expired row; then the key must have no live row.
    DeleteAbsent,
}

/// A write statement, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct WriteStmt<'t> {
    /// SQL text (shared per statement shape, so the prepared statement is reused).
    pub sql: &'t str,
    /// Bound arguments, in order.
    pub args: Vec<Arg>,
    /// How to read the result.
    pub expect: Expect,
}

/// A statement built per call (queries, counts, `get_many` chunks).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Select {
    /// SQL text.
    pub sql: String,
    /// Bound arguments, in order.
    pub args: Vec<Arg>,
}

/// Every fixed statement of one entity's table, built once.
#[derive(Debug)]
pub(super) struct TableSql {
    /// The schema the statements were built from.
    pub schema: &'static Schema,
    /// The table name, unquoted.
    pub table: String,
    /// The quoted table name.
    pub qtable: String,
    /// Data columns: the schema's fields in order (the key first if the
    /// schema does not list it).
    pub columns: Vec<Column>,
    /// Index of the key column in `columns`.
    pub key_index: usize,
    /// `"a", "b", ..., "_pr_version"`.
    pub select_list: String,
    /// `CREATE TABLE IF NOT EXISTS`.
    pub create_table: String,
    /// `CREATE INDEX IF NOT EXISTS` on the expiry column.
    pub create_index: String,
    /// One row by key: binds key, now.
    pub get: String,
    /// Put with no precondition: binds columns..., expires, now.
    pub upsert: String,
    /// Put if absent: binds columns..., expires, now.
    pub insert_absent: String,
    /// Put if exists: binds non-key columns..., expires, key, now.
    pub update_exists: String,
    /// Put if version: binds non-key columns..., expires, key, now, version.
    pub update_version: String,
    /// Delete: binds key, now.
    pub delete_any: String,
    /// Delete if exists: binds key, now.
    pub delete_live: String,
    /// Delete if version: binds key, now, version.
    pub delete_version: String,
    /// Delete an expired row: binds key, now.
    pub delete_expired: String,
    /// The live version of a key: binds key, now.
    pub live_version: String,
    /// Deletes up to [`PURGE_CHUNK`] expired rows: binds now.
    pub purge: String,
}

impl TableSql {
    /// Builds every statement for `schema` stored in `table`; an error says
    /// which name is unusable.
    pub fn new(schema: &'static Schema, table: &str) -> Result<TableSql, String> {
        check_ident("table", table)?;
        let mut columns = Vec::with_capacity(schema.fields.len() + 1);
        if schema.field(schema.key).is_none() {
            columns.push(Column {
                name: schema.key,
                kind: key_field_kind(schema.key_kind),
                nullable: false,
                is_field: false,
            });
        }
        for f in schema.fields {
            let is_key = f.name == schema.key;
            columns.push(Column {
                name: f.name,
                kind: if is_key {
                    key_field_kind(schema.key_kind)
                } else {
                    f.ty.kind
                },
                nullable: f.ty.nullable && !is_key,
                is_field: true,
            });
        }
        for (i, c) in columns.iter().enumerate() {
            check_ident("field", c.name)?;
            if c.name.len() >= RESERVED_PREFIX.len()
                && c.name[..RESERVED_PREFIX.len()].eq_ignore_ascii_case(RESERVED_PREFIX)
            {
                return Err(format!(
                    "field `{}` starts with `{RESERVED_PREFIX}`, which the sqlite store reserves for its own columns; rename the field",
                    c.name
                ));
            }
            if columns[..i]
                .iter()
                .any(|o| o.name.eq_ignore_ascii_case(c.name))
            {
                return Err(format!(
                    "two fields are named `{}` ignoring case, which SQLite column names cannot tell apart; rename one",
                    c.name
                ));
            }
        }
        let key_index = columns
            .iter()
            .position(|c| c.name == schema.key)
            .unwrap_or(0);
        let q = quote(table);
        let qk = quote(schema.key);
        let names: Vec<String> = columns.iter().map(|c| quote(c.name)).collect();
        let non_key: Vec<&String> = names
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != key_index)
            .map(|(_, n)| n)
            .collect();
        let select_list = names
            .iter()
            .map(String::as_str)
            .chain([V])
            .collect::<Vec<_>>()
            .join(", ");

        let mut defs: Vec<String> = columns
            .iter()
            .zip(&names)
            .enumerate()
            .map(|(i, (c, n))| {
                if i == key_index {
                    format!("{n} {} NOT NULL PRIMARY KEY", sql_type(c.kind))
                } else if c.nullable {
                    format!("{n} {}", sql_type(c.kind))
                } else {
                    format!("{n} {} NOT NULL", sql_type(c.kind))
                }
            })
            .collect();
        defs.push(format!("{V} INTEGER NOT NULL"));
        defs.push(format!("{E} INTEGER"));
        let create_table = format!("CREATE TABLE IF NOT EXISTS {q} ({})", defs.join(", "));
        let create_index = format!(
            "CREATE INDEX IF NOT EXISTS {} ON {q} ({E})",
            quote(&format!("{table}{RESERVED_PREFIX}expires_at"))
        );

        let get = format!("SELECT {select_list} FROM {q} WHERE {qk} = ? AND {LIVE}");
        let placeholders = vec!["?"; names.len()].join(", ");
        let insert = format!(
            "INSERT INTO {q} ({}, {V}, {E}) VALUES ({placeholders}, 1, ?) ON CONFLICT ({qk}) DO UPDATE SET ",
            names.join(", ")
        );
        let set_excluded: String = non_key
            .iter()
            .map(|n| format!("{n} = excluded.{n}, "))
            .collect();
        let upsert = format!(
            "{insert}{set_excluded}{V} = CASE WHEN {E} <= ? THEN 1 ELSE {V} + 1 END, {E} = excluded.{E} RETURNING {V}"
        );
        // In the upsert, `?` numbering follows the text: columns, expires,
        // then `now` in the CASE. In the if-absent form `now` is in the WHERE.
        let insert_absent = format!(
            "{insert}{set_excluded}{V} = 1, {E} = excluded.{E} WHERE {E} <= ? RETURNING {V}"
        );
        let set_params: String = non_key.iter().map(|n| format!("{n} = ?, ")).collect();
        let update_exists = format!(
            "UPDATE {q} SET {set_params}{V} = {V} + 1, {E} = ? WHERE {qk} = ? AND {LIVE} RETURNING {V}"
        );
        let update_version = format!(
            "UPDATE {q} SET {set_params}{V} = {V} + 1, {E} = ? WHERE {qk} = ? AND {LIVE} AND {V} = ? RETURNING {V}"
        );
        let delete_any = format!("DELETE FROM {q} WHERE {qk} = ? RETURNING {LIVE}");
        let delete_live = format!("DELETE FROM {q} WHERE {qk} = ? AND {LIVE} RETURNING {V}");
        let delete_version =
            format!("DELETE FROM {q} WHERE {qk} = ? AND {LIVE} AND {V} = ? RETURNING {V}");
        let delete_expired = format!("DELETE FROM {q} WHERE {qk} = ? AND {E} <= ?");
        let live_version = format!("SELECT {V} FROM {q} WHERE {qk} = ? AND {LIVE}");
        let purge = format!(
            "DELETE FROM {q} WHERE {qk} IN (SELECT {qk} FROM {q} WHERE {E} <= ? LIMIT {PURGE_CHUNK})"
        );
        Ok(TableSql {
            schema,
            table: table.to_string(),
            qtable: q,
            columns,
            key_index,
            select_list,
            create_table,
            create_index,
            get,
            upsert,
            insert_absent,
            update_exists,
            update_version,
            delete_any,
            delete_live,
            delete_version,
            delete_expired,
            live_version,
            purge,
        })
    }

    /// The column for a field name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The key column.
    pub fn key_column(&self) -> &Column {
        &self.columns[self.key_index]
    }

    /// A key as bound, checked against the entity's key kind.
    pub fn key(&self, key: &Key) -> Result<Arg, String> {
        if key.kind() != self.schema.key_kind {
            return Err(format!(
                "key {key} is a {:?} key, but entity `{}` uses {:?} keys",
                key.kind(),
                self.schema.name,
                self.schema.key_kind
            ));
        }
        Ok(key_arg(key))
    }

    /// The statement for one write. `now` is unix microseconds.
    pub fn write(&self, op: &WriteOp, now: i64) -> Result<WriteStmt<'_>, String> {
        match op {
            WriteOp::Put {
                record,
                precondition,
                ttl,
            } => {
                let key = self.key(&record.key)?;
                let expires = match ttl {
                    Some(d) => Arg::Int(
                        now.saturating_add(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
                    ),
                    None => Arg::Null,
                };
                let mut values = Vec::with_capacity(self.columns.len() + 4);
                for (i, c) in self.columns.iter().enumerate() {
                    if i == self.key_index {
                        values.push(key.clone());
                    } else {
                        values.push(encode_field(c, record.value(c.name))?);
                    }
                }
                let (sql, args) = match precondition {
                    Precondition::None | Precondition::Absent => {
                        values.push(expires);
                        values.push(Arg::Int(now));
                        let sql = if *precondition == Precondition::None {
                            &self.upsert
                        } else {
                            &self.insert_absent
                        };
                        (sql, values)
                    }
                    Precondition::Exists | Precondition::Version(_) => {
                        values.remove(self.key_index);
                        values.push(expires);
                        values.push(key);
                        values.push(Arg::Int(now));
                        match precondition {
                            Precondition::Version(v) => {
                                values.push(version_arg(*v));
                                (&self.update_version, values)
                            }
                            _ => (&self.update_exists, values),
                        }
                    }
                };
                Ok(WriteStmt {
                    sql,
                    args,
                    expect: Expect::Put,
                })
            }
            WriteOp::Delete { key, precondition } => {
                let mut args = vec![self.key(key)?, Arg::Int(now)];
                let (sql, expect) = match precondition {
                    Precondition::None => (&self.delete_any, Expect::DeleteAny),
                    Precondition::Exists => (&self.delete_live, Expect::DeleteCond),
                    Precondition::Version(v) => {
                        args.push(version_arg(*v));
                        (&self.delete_version, Expect::DeleteCond)
                    }
                    Precondition::Absent => (&self.delete_expired, Expect::DeleteAbsent),
                };
                Ok(WriteStmt { sql, args, expect })
            }
        }
    }

    /// One chunk (at most [`GET_MANY_CHUNK`] keys) of `get_many`, padded
    /// with the last key to a bucket size. `keys` must not be empty.
    pub fn get_many(&self, keys: &[Arg], now: i64) -> Select {
        debug_assert!(!keys.is_empty() && keys.len() <= GET_MANY_CHUNK);
        let n = GET_MANY_BUCKETS
            .iter()
            .copied()
            .find(|b| *b >= keys.len())
            .unwrap_or(keys.len());
        let mut args: Vec<Arg> = keys.to_vec();
        while args.len() < n {
            args.push(keys[keys.len() - 1].clone());
        }
        args.push(Arg::Int(now));
        let sql = format!(
            "SELECT {} FROM {} WHERE {} IN ({}) AND {LIVE}",
            self.select_list,
            self.qtable,
            quote(self.key_column().name),
            vec!["?"; n].join(", ")
        );
        Select { sql, args }
    }

    /// A query: live rows matching the filter, in the order given then by
    /// key, at most `limit`.
    pub fn query(&self, q: &StoreQuery, now: i64) -> Select {
        let mut sql = format!(
            "SELECT {} FROM {} WHERE {LIVE}",
            self.select_list, self.qtable
        );
        let mut args = vec![Arg::Int(now)];
        if let Some(f) = &q.filter {
            sql.push_str(" AND ");
            self.filter(f, &mut sql, &mut args);
        }
        sql.push_str(" ORDER BY ");
        for o in &q.order {
            // A field the table lacks is null in every row: it cannot order them.
            if let Some(c) = self.column(&o.field) {
                let _ = write!(
                    sql,
                    "{} {}, ",
                    quote(c.name),
                    match o.direction {
                        Direction::Asc => "ASC NULLS FIRST",
                        Direction::Desc => "DESC NULLS LAST",
                    }
                );
            }
        }
        let _ = write!(sql, "{} ASC", quote(self.key_column().name));
        if let Some(limit) = q.limit {
            sql.push_str(" LIMIT ?");
            args.push(Arg::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
        }
        Select { sql, args }
    }

    /// `count(*)` of live rows matching the filter.
    pub fn count(&self, filter: Option<&Filter>, now: i64) -> Select {
        let mut sql = format!("SELECT count(*) FROM {} WHERE {LIVE}", self.qtable);
        let mut args = vec![Arg::Int(now)];
        if let Some(f) = filter {
            sql.push_str(" AND ");
            self.filter(f, &mut sql, &mut args);
        }
        Select { sql, args }
    }

    /// Renders a filter as an expression that is always 0 or 1, never NULL.
    pub fn filter(&self, f: &Filter, sql: &mut String, args: &mut Vec<Arg>) {
        match f {
            Filter::Cmp { field, op, value } => self.cmp(field, *op, value, sql, args),
            Filter::In { field, values } => {
                let Some(c) = self.column(field) else {
                    sql.push('0'); // null never equals a value
                    return;
                };
                let candidates: Vec<Arg> = values
                    .iter()
                    .filter(|v| !v.is_null() && v.rank() == kind_rank(c.kind) && !sub_micro(v))
                    .map(value_arg)
                    .collect();
                if candidates.is_empty() {
                    sql.push('0');
                    return;
                }
                let qc = quote(c.name);
                let _ = write!(
                    sql,
                    "({qc} IS NOT NULL AND {qc} IN ({}))",
                    vec!["?"; candidates.len()].join(", ")
                );
                args.extend(candidates);
            }
            Filter::Prefix { field, prefix } => match self.string_column(field) {
                // Every string starts with "" (and SQLite's substr of an
                // empty blob is NULL, not empty).
                Some(qc) if prefix.is_empty() => {
                    let _ = write!(sql, "({qc} IS NOT NULL)");
                }
                // Compared as bytes: literal (no wildcards), case-sensitive,
                // and safe with NUL characters, which SQLite's text functions
                // stop at. An empty value gives NULL: coalesced to false.
                Some(qc) => {
                    let _ = write!(
                        sql,
                        "({qc} IS NOT NULL AND coalesce(substr(CAST({qc} AS BLOB), 1, length(?)) = ?, 0))"
                    );
                    args.push(Arg::Blob(prefix.as_bytes().to_vec()));
                    args.push(Arg::Blob(prefix.as_bytes().to_vec()));
                }
                None => sql.push('0'),
            },
            Filter::Contains { field, needle } => match self.string_column(field) {
                Some(qc) if needle.is_empty() => {
                    let _ = write!(sql, "({qc} IS NOT NULL)");
                }
                Some(qc) => {
                    let _ = write!(
                        sql,
                        "({qc} IS NOT NULL AND instr(CAST({qc} AS BLOB), ?) > 0)"
                    );
                    args.push(Arg::Blob(needle.as_bytes().to_vec()));
                }
                None => sql.push('0'),
            },
            Filter::IsNull(field) => match self.column(field) {
                Some(c) => {
                    let _ = write!(sql, "({} IS NULL)", quote(c.name));
                }
                None => sql.push('1'),
            },
            Filter::And(v) | Filter::Or(v) if v.is_empty() => {
                sql.push(if matches!(f, Filter::And(_)) {
                    '1'
                } else {
                    '0'
                });
            }
            Filter::And(v) | Filter::Or(v) => {
                let sep = if matches!(f, Filter::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                sql.push('(');
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        sql.push_str(sep);
                    }
                    self.filter(x, sql, args);
                }
                sql.push(')');
            }
            Filter::Not(x) => {
                sql.push_str("(NOT ");
                self.filter(x, sql, args);
                sql.push(')');
            }
        }
    }

    /// The quoted column of a string field, if the table has one.
    fn string_column(&self, field: &str) -> Option<String> {
        self.column(field)
            .filter(|c| c.kind == FieldKind::String)
            .map(|c| quote(c.name))
    }

    fn cmp(&self, field: &str, op: CmpOp, value: &Value, sql: &mut String, args: &mut Vec<Arg>) {
        // A field the table lacks is null in every row.
        let Some(c) = self.column(field) else {
            let holds = if value.is_null() {
                op == CmpOp::Eq
            } else {
                op == CmpOp::Ne
            };
            sql.push(if holds { '1' } else { '0' });
            return;
        };
        let qc = quote(c.name);
        if value.is_null() {
            // `eq(null)` is `is_null`; other rows rank above null.
            match op {
                CmpOp::Eq => {
                    let _ = write!(sql, "({qc} IS NULL)");
                }
                CmpOp::Ne | CmpOp::Gt | CmpOp::Ge => {
                    let _ = write!(sql, "({qc} IS NOT NULL)");
                }
                _ => sql.push('0'),
            }
            return;
        }
        let (kr, vr) = (kind_rank(c.kind), value.rank());
        if kr != vr {
            // Values of different types order by type rank: the answer is
            // the same for every non-null row.
            if op == CmpOp::Ne {
                sql.push('1');
            } else if op.holds(kr.cmp(&vr)) {
                let _ = write!(sql, "({qc} IS NOT NULL)");
            } else {
                sql.push('0');
            }
            return;
        }
        let (op, arg) = match value {
            // Stored timestamps are whole microseconds; an operand between two
            // of them equals none and sits above the floor.
            Value::Timestamp(t) if sub_micro(value) => {
                let floor = Arg::Int(micros(t));
                match op {
                    CmpOp::Eq => return sql.push('0'),
                    CmpOp::Ne => return sql.push('1'),
                    CmpOp::Lt | CmpOp::Le => (CmpOp::Le, floor),
                    CmpOp::Gt | CmpOp::Ge => (CmpOp::Gt, floor),
                }
            }
            _ => (op, value_arg(value)),
        };
        if op == CmpOp::Ne {
            let _ = write!(sql, "({qc} IS NULL OR {qc} <> ?)");
        } else {
            let _ = write!(sql, "({qc} IS NOT NULL AND {qc} {} ?)", op.symbol());
        }
        args.push(arg);
    }
}

fn version_arg(v: u64) -> Arg {
    // Versions start at 1: -1 never matches.
    Arg::Int(i64::try_from(v).unwrap_or(-1))
}

/// A timestamp with a sub-microsecond part, which no stored value equals.
fn sub_micro(v: &Value) -> bool {
    matches!(v, Value::Timestamp(t) if t.timestamp_subsec_nanos() % 1000 != 0)
}

/// The reference order's type rank of the values a column kind holds.
fn kind_rank(k: FieldKind) -> u8 {
    match k {
        FieldKind::Bool => 1,
        FieldKind::Int | FieldKind::Float => 2,
        FieldKind::String => 3,
        FieldKind::Bytes => 4,
        FieldKind::Timestamp => 5,
        FieldKind::Uuid => 6,
        FieldKind::Json => 7,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::query::{Order, field};
    use crate::{FieldDef, FieldType, KeyKind, Record};

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
        TableSql::new(&SCHEMA, "things").unwrap()
    }

    fn render(f: Filter) -> (String, Vec<Arg>) {
        let (mut sql, mut args) = (String::new(), Vec::new());
        t().filter(&f, &mut sql, &mut args);
        (sql, args)
    }

    fn text(s: &str) -> Arg {
        Arg::Text(s.into())
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("a"), "\"a\"");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote("'; DROP TABLE x; --"), "\"'; DROP TABLE x; --\"");
        assert!(check_ident("table", "a\0b").unwrap_err().contains("NUL"));
        assert!(check_ident("table", "").is_err());
        assert!(TableSql::new(&SCHEMA, "x\0").is_err());
        let q = TableSql::new(&SCHEMA, "we\"ird").unwrap();
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
            t.create_index,
            "CREATE INDEX IF NOT EXISTS \"things_pr_expires_at\" ON \"things\" (\"_pr_expires_at\")"
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
        assert!(TableSql::new(&S1, "a").unwrap_err().contains("reserves"));
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
            TableSql::new(&S2, "a")
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
        let t = TableSql::new(&S, "a").unwrap();
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
        let t = TableSql::new(&S, "k").unwrap();
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
        let w = t
            .write(
                &WriteOp::Put {
                    record: r,
                    precondition: Precondition::Exists,
                    ttl: None,
                },
                1,
            )
            .unwrap();
        assert_eq!(w.args, vec![Arg::Null, Arg::Int(4), Arg::Int(1)]);
    }

    #[test]
    fn comparisons_are_two_valued() {
        assert_eq!(
            render(field("n").eq(1)),
            (
                "(\"n\" IS NOT NULL AND \"n\" = ?)".into(),
                vec![Arg::Int(1)]
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
            ("(\"n\" IS NULL OR \"n\" <> ?)".into(), vec![Arg::Int(1)])
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
                vec![Arg::Int(1), Arg::Int(2)]
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
                vec![Arg::Int(3)]
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
                vec![Arg::Blob(b"a%_".to_vec()), Arg::Blob(b"a%_".to_vec())]
            )
        );
        assert_eq!(
            render(field("s").contains("x\0")),
            (
                "(\"s\" IS NOT NULL AND instr(CAST(\"s\" AS BLOB), ?) > 0)".into(),
                vec![Arg::Blob(b"x\0".to_vec())]
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
                vec![Arg::Int(1), text("a"), Arg::Int(0)]
            )
        );
    }

    #[test]
    fn timestamps_bind_as_micros_and_sub_micro_operands_are_exact() {
        let at = chrono::DateTime::from_timestamp_micros(1_000_001).unwrap();
        assert_eq!(render(field("at").ge(at)).1, vec![Arg::Int(1_000_001)]);
        let between = chrono::DateTime::from_timestamp(1, 1_500).unwrap(); // 1.0000015 s
        let f = |op| Filter::Cmp {
            field: "at".into(),
            op,
            value: Value::Timestamp(between),
        };
        assert_eq!(render(f(CmpOp::Eq)).0, "0");
        assert_eq!(render(f(CmpOp::Ne)).0, "1");
        assert_eq!(
            render(f(CmpOp::Lt)),
            (
                "(\"at\" IS NOT NULL AND \"at\" <= ?)".into(),
                vec![Arg::Int(1_000_001)]
            )
        );
        assert_eq!(
            render(f(CmpOp::Ge)),
            (
                "(\"at\" IS NOT NULL AND \"at\" > ?)".into(),
                vec![Arg::Int(1_000_001)]
            )
        );
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
             AND (\"n\" IS NOT NULL AND \"n\" > ?) ORDER BY \"s\" ASC NULLS FIRST, \"n\" DESC NULLS LAST, \"id\" ASC NULLS FIRST, \"id\" ASC LIMIT ?"
        );
        assert_eq!(s.args, vec![Arg::Int(77), Arg::Int(1), Arg::Int(10)]);
        let s = t().query(&StoreQuery::default(), 5);
        assert!(s.sql.ends_with("ORDER BY \"id\" ASC"), "{}", s.sql);
        assert_eq!(s.args, vec![Arg::Int(5)]);
    }

    #[test]
    fn count() {
        let s = t().count(Some(&field("s").eq("a")), 9);
        assert_eq!(
            s.sql,
            "SELECT count(*) FROM \"things\" WHERE (\"_pr_expires_at\" IS NULL OR \"_pr_expires_at\" > ?) AND (\"s\" IS NOT NULL AND \"s\" = ?)"
        );
        assert_eq!(s.args, vec![Arg::Int(9), text("a")]);
    }

    #[test]
    fn get_many_pads_to_buckets() {
        let s = t().get_many(&[text("a"), text("b"), text("c")], 1);
        assert!(s.sql.contains("\"id\" IN (?, ?, ?, ?) AND"), "{}", s.sql);
        assert_eq!(
            s.args,
            vec![text("a"), text("b"), text("c"), text("c"), Arg::Int(1)]
        );
        let keys: Vec<Arg> = (0..300).map(Arg::Int).collect();
        assert_eq!(t().get_many(&keys, 1).args.len(), 501);
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
        let w = t.write(&put(Precondition::None, None), 100).unwrap();
        assert_eq!(
            w.sql,
            "INSERT INTO \"things\" (\"id\", \"n\", \"s\", \"at\", \"_pr_version\", \"_pr_expires_at\") VALUES (?, ?, ?, ?, 1, ?) \
             ON CONFLICT (\"id\") DO UPDATE SET \"n\" = excluded.\"n\", \"s\" = excluded.\"s\", \"at\" = excluded.\"at\", \
             \"_pr_version\" = CASE WHEN \"_pr_expires_at\" <= ? THEN 1 ELSE \"_pr_version\" + 1 END, \
             \"_pr_expires_at\" = excluded.\"_pr_expires_at\" RETURNING \"_pr_version\""
        );
        assert_eq!(
            w.args,
            vec![
                text("k"),
                Arg::Null,
                text("v"),
                Arg::Null,
                Arg::Null,
                Arg::Int(100)
            ]
        );
        assert_eq!(w.expect, Expect::Put);

        let w = t
            .write(
                &put(Precondition::Absent, Some(Duration::from_millis(2))),
                100,
            )
            .unwrap();
        assert!(w.sql.ends_with(
            "\"_pr_version\" = 1, \"_pr_expires_at\" = excluded.\"_pr_expires_at\" WHERE \"_pr_expires_at\" <= ? RETURNING \"_pr_version\""
        ), "{}", w.sql);
        assert_eq!(
            w.args,
            vec![
                text("k"),
                Arg::Null,
                text("v"),
                Arg::Null,
                Arg::Int(2100),
                Arg::Int(100)
            ]
        );

        let w = t.write(&put(Precondition::Exists, None), 100).unwrap();
        assert_eq!(
            w.sql,
            "UPDATE \"things\" SET \"n\" = ?, \"s\" = ?, \"at\" = ?, \"_pr_version\" = \"_pr_version\" + 1, \"_pr_expires_at\" = ? \
             WHERE \"id\" = ? AND (\"_pr_expires_at\" IS NULL OR \"_pr_expires_at\" > ?) RETURNING \"_pr_version\""
        );
        assert_eq!(
            w.args,
            vec![
                Arg::Null,
                text("v"),
                Arg::Null,
                Arg::Null,
                text("k"),
                Arg::Int(100)
            ]
        );

        let w = t.write(&put(Precondition::Version(3), None), 100).unwrap();
        assert!(
            w.sql
                .ends_with("AND \"_pr_version\" = ? RETURNING \"_pr_version\""),
            "{}",
            w.sql
        );
        assert_eq!(
            w.args,
            vec![
                Arg::Null,
                text("v"),
                Arg::Null,
                Arg::Null,
                text("k"),
                Arg::Int(100),
                Arg::Int(3)
            ]
        );
        let w = t
            .write(&put(Precondition::Version(u64::MAX), None), 100)
            .unwrap();
        assert_eq!(w.args.last(), Some(&Arg::Int(-1)));
    }

    #[test]
    fn conditional_deletes() {
        let t = t();
        let del = |p| WriteOp::Delete {
            key: Key::from("k"),
            precondition: p,
        };
        let w = t.write(&del(Precondition::None), 5).unwrap();
        assert_eq!(
            w.sql,
            "DELETE FROM \"things\" WHERE \"id\" = ? RETURNING (\"_pr_expires_at\" IS NULL OR \"_pr_expires_at\" > ?)"
        );
        assert_eq!(
            (w.args, w.expect),
            (vec![text("k"), Arg::Int(5)], Expect::DeleteAny)
        );
        let w = t.write(&del(Precondition::Exists), 5).unwrap();
        assert_eq!(
            w.sql,
            "DELETE FROM \"things\" WHERE \"id\" = ? AND (\"_pr_expires_at\" IS NULL OR \"_pr_expires_at\" > ?) RETURNING \"_pr_version\""
        );
        assert_eq!(w.expect, Expect::DeleteCond);
        let w = t.write(&del(Precondition::Version(2)), 5).unwrap();
        assert!(
            w.sql
                .ends_with("AND \"_pr_version\" = ? RETURNING \"_pr_version\"")
        );
        assert_eq!(w.args, vec![text("k"), Arg::Int(5), Arg::Int(2)]);
        let w = t.write(&del(Precondition::Absent), 5).unwrap();
        assert_eq!(
            w.sql,
            "DELETE FROM \"things\" WHERE \"id\" = ? AND \"_pr_expires_at\" <= ?"
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
    fn statements_are_shared_per_shape() {
        let t = t();
        let a = t.write(&put(Precondition::None, None), 1).unwrap();
        let b = t
            .write(&put(Precondition::None, Some(Duration::from_secs(1))), 2)
            .unwrap();
        assert!(std::ptr::eq(a.sql, b.sql));
    }
}
