//! SQL generation: every statement the PostgreSQL store runs, as text plus the
//! list of bound arguments. Values are always bound, never formatted in;
//! identifiers are always double-quoted. Statements are written with `?`
//! and numbered (`$1`, `$2` …) by [`number`].
//!
//! Filters render to expressions that are never SQL `NULL`, so `NOT` and
//! `OR` follow the reference two-valued logic of [`crate::store::eval`].

use std::fmt::Write as _;

use super::codec::{Arg, encode_field, key_arg, key_field_kind, micros, value_arg};
use crate::KeyKind;
use crate::entity::{FieldKind, Schema};
use crate::query::{CmpOp, Direction, Filter};
use crate::store::{Precondition, StoreQuery, WriteOp};
use crate::{Key, Value};

/// The version column.
pub(super) const VERSION_COL: &str = "_pr_version";
/// The expiry column (unix microseconds, `BIGINT`, `NULL`: never).
pub(super) const EXPIRES_COL: &str = "_pr_expires_at";
/// The reserved column-name prefix.
pub(super) const RESERVED_PREFIX: &str = "_pr_";

const V: &str = "\"_pr_version\"";
const E: &str = "\"_pr_expires_at\"";
/// The row is not expired; binds `now`.
const LIVE: &str = "(\"_pr_expires_at\" IS NULL OR \"_pr_expires_at\" > ?)";

/// Rows deleted per purge statement.
pub(super) const PURGE_CHUNK: u64 = 1000;

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
            "the {what} name {ident:?} contains a NUL character, which PostgreSQL identifiers cannot hold"
        ));
    }
    Ok(())
}

/// The declared SQL type of a column of `kind`.
pub(super) fn sql_type(kind: FieldKind) -> &'static str {
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
                    "field `{}` starts with `{RESERVED_PREFIX}`, which the postgres store reserves for its own columns; rename the field",
                    c.name
                ));
            }
            if columns[..i]
                .iter()
                .any(|o| o.name.eq_ignore_ascii_case(c.name))
            {
                return Err(format!(
                    "two fields are named `{}` ignoring case, which polyrouter's column checks cannot tell apart; rename one",
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
        defs.push(format!("{V} BIGINT NOT NULL"));
        defs.push(format!("{E} BIGINT"));
        let create_table = format!("CREATE TABLE IF NOT EXISTS {q} ({})", defs.join(", "));
        let create_index = format!(
            "CREATE INDEX IF NOT EXISTS {} ON {q} ({E})",
            quote(&format!("{table}{RESERVED_PREFIX}expires_at"))
        );

        let get = format!("SELECT {select_list} FROM {q} WHERE {qk} = ? AND {LIVE}");
        let placeholders = vec!["?"; names.len()].join(", ");
        let insert = format!(
            "INSERT INTO {q} AS \"_pr_t\" ({}, {V}, {E}) VALUES ({placeholders}, 1, ?) ON CONFLICT ({qk}) DO UPDATE SET ",
            names.join(", ")
        );
        let set_excluded: String = non_key
            .iter()
            .map(|n| format!("{n} = excluded.{n}, "))
            .collect();
        let upsert = format!(
            "{insert}{set_excluded}{V} = CASE WHEN \"_pr_t\".{E} <= ? THEN 1 ELSE \"_pr_t\".{V} + 1 END, {E} = excluded.{E} RETURNING {V}"
        );
        // In the upsert, `?` numbering follows the text: columns, expires,
        // then `now` in the CASE. In the if-absent form `now` is in the WHERE.
        let insert_absent = format!(
            "{insert}{set_excluded}{V} = 1, {E} = excluded.{E} WHERE \"_pr_t\".{E} <= ? RETURNING \"_pr_t\".{V}"
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
            get: number(&get),
            upsert: number(&upsert),
            insert_absent: number(&insert_absent),
            update_exists: number(&update_exists),
            update_version: number(&update_version),
            delete_any: number(&delete_any),
            delete_live: number(&delete_live),
            delete_version: number(&delete_version),
            delete_expired: number(&delete_expired),
            live_version: number(&live_version),
            purge: number(&purge),
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
        if matches!(key, Key::Str(s) if s.contains('\0')) {
            return Err(format!(
                "key {key:?} contains a NUL character (\\0), which PostgreSQL text cannot hold"
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
                    None => Arg::Null(FieldKind::Int),
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

    /// `get_many` in one statement: `key = ANY($1)`; binds the key array, now.
    pub fn get_many(&self, keys: &[Key], now: i64) -> Select {
        let arr = match self.schema.key_kind {
            KeyKind::Str => Arg::TextArray(
                keys.iter()
                    .filter_map(|k| match k {
                        Key::Str(s) if !s.contains('\0') => Some(s.clone()),
                        _ => None,
                    })
                    .collect(),
            ),
            KeyKind::Int => Arg::IntArray(
                keys.iter()
                    .filter_map(|k| match k {
                        Key::Int(i) => Some(*i),
                        _ => None,
                    })
                    .collect(),
            ),
            KeyKind::Uuid => Arg::UuidArray(
                keys.iter()
                    .filter_map(|k| match k {
                        Key::Uuid(u) => Some(*u),
                        _ => None,
                    })
                    .collect(),
            ),
        };
        let sql = number(&format!(
            "SELECT {} FROM {} WHERE {} = ANY(?) AND {LIVE}",
            self.select_list,
            self.qtable,
            quote(self.key_column().name),
        ));
        Select {
            sql,
            args: vec![arr, Arg::Int(now)],
        }
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
        let key = self.key_column().name;
        let mut keys_done = false;
        for o in &q.order {
            // A field the table lacks is null in every row: it cannot order them.
            let Some(c) = self.column(&o.field) else {
                continue;
            };
            // NULLS FIRST/LAST only where nulls can occur: on a NOT NULL
            // column it would stop PostgreSQL from using a plain index.
            let dir = match (o.direction, c.nullable) {
                (Direction::Asc, true) => "ASC NULLS FIRST",
                (Direction::Desc, true) => "DESC NULLS LAST",
                (Direction::Asc, false) => "ASC",
                (Direction::Desc, false) => "DESC",
            };
            let _ = write!(sql, "{} {dir}, ", order_expr(c));
            // The key is unique: nothing after it can change the order.
            if c.name == key {
                keys_done = true;
                break;
            }
        }
        if keys_done {
            sql.truncate(sql.len() - 2);
        } else {
            let _ = write!(sql, "{} ASC", quote(key));
        }
        if let Some(limit) = q.limit {
            sql.push_str(" LIMIT ?");
            args.push(Arg::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
        }
        Select {
            sql: number(&sql),
            args,
        }
    }

    /// `count(*)` of live rows matching the filter.
    pub fn count(&self, filter: Option<&Filter>, now: i64) -> Select {
        let mut sql = format!("SELECT count(*) FROM {} WHERE {LIVE}", self.qtable);
        let mut args = vec![Arg::Int(now)];
        if let Some(f) = filter {
            sql.push_str(" AND ");
            self.filter(f, &mut sql, &mut args);
        }
        Select {
            sql: number(&sql),
            args,
        }
    }

    /// Renders a filter as an expression that is always TRUE or FALSE, never NULL.
    pub fn filter(&self, f: &Filter, sql: &mut String, args: &mut Vec<Arg>) {
        match f {
            Filter::Cmp { field, op, value } => self.cmp(field, *op, value, sql, args),
            Filter::In { field, values } => {
                let Some(c) = self.column(field) else {
                    sql.push_str(FALSE); // null never equals a value
                    return;
                };
                let candidates: Vec<Arg> = values
                    .iter()
                    .filter(|v| {
                        !v.is_null()
                            && v.rank() == kind_rank(c.kind)
                            && !sub_micro(v)
                            && !has_nul(v)
                    })
                    .filter_map(|v| operand(c.kind, v))
                    .collect();
                if candidates.is_empty() {
                    sql.push_str(FALSE);
                    return;
                }
                let qc = quote(c.name);
                let _ = write!(
                    sql,
                    "({qc} IS NOT NULL AND {qc} IN ({}))",
                    vec![placeholder(c.kind); candidates.len()].join(", ")
                );
                args.extend(candidates);
            }
            Filter::Prefix { field, prefix } => match self.string_column(field) {
                Some(qc) if prefix.is_empty() => {
                    let _ = write!(sql, "({qc} IS NOT NULL)");
                }
                // No stored text holds NUL.
                Some(_) if prefix.contains('\0') => sql.push_str(FALSE),
                // Literal (no wildcards) and case-sensitive.
                Some(qc) => {
                    let _ = write!(sql, "({qc} IS NOT NULL AND starts_with({qc}, ?))");
                    args.push(Arg::Text(prefix.clone()));
                }
                None => sql.push_str(FALSE),
            },
            Filter::Contains { field, needle } => match self.string_column(field) {
                Some(qc) if needle.is_empty() => {
                    let _ = write!(sql, "({qc} IS NOT NULL)");
                }
                Some(_) if needle.contains('\0') => sql.push_str(FALSE),
                Some(qc) => {
                    let _ = write!(sql, "({qc} IS NOT NULL AND strpos({qc}, ?) > 0)");
                    args.push(Arg::Text(needle.clone()));
                }
                None => sql.push_str(FALSE),
            },
            Filter::IsNull(field) => match self.column(field) {
                Some(c) => {
                    let _ = write!(sql, "({} IS NULL)", quote(c.name));
                }
                None => sql.push_str(TRUE),
            },
            Filter::And(v) | Filter::Or(v) if v.is_empty() => {
                sql.push_str(if matches!(f, Filter::And(_)) {
                    TRUE
                } else {
                    FALSE
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
            sql.push_str(if holds { TRUE } else { FALSE });
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
                _ => sql.push_str(FALSE),
            }
            return;
        }
        let (kr, vr) = (kind_rank(c.kind), value.rank());
        if kr != vr {
            // Values of different types order by type rank: the answer is
            // the same for every non-null row.
            if op == CmpOp::Ne {
                sql.push_str(TRUE);
            } else if op.holds(kr.cmp(&vr)) {
                let _ = write!(sql, "({qc} IS NOT NULL)");
            } else {
                sql.push_str(FALSE);
            }
            return;
        }
        // An operand no stored value can equal, between two stored values:
        // a timestamp with a sub-microsecond part (stored ones are whole
        // microseconds), a string with NUL (stored text holds none: compare
        // with its part before the first NUL), an integer column against a
        // fractional float.
        let between = match value {
            Value::Timestamp(t) if sub_micro(value) => Some(Arg::Ts(
                chrono::DateTime::from_timestamp_micros(micros(t)).unwrap_or(*t),
            )),
            Value::String(s) if s.contains('\0') => {
                Some(Arg::Text(s[..s.find('\0').unwrap_or(0)].to_string()))
            }
            Value::F64(f) if c.kind == FieldKind::Int => match int_floor(*f) {
                Ok(_) => None,
                Err(Bound::Between(fl)) => Some(Arg::Int(fl)),
                Err(bound) => {
                    // Every integer is on one side of the operand.
                    let every = if matches!(bound, Bound::Below) {
                        std::cmp::Ordering::Greater
                    } else {
                        std::cmp::Ordering::Less
                    };
                    if op == CmpOp::Ne {
                        sql.push_str(TRUE);
                    } else if op.holds(every) {
                        let _ = write!(sql, "({qc} IS NOT NULL)");
                    } else {
                        sql.push_str(FALSE);
                    }
                    return;
                }
            },
            _ => None,
        };
        let (op, arg) = match between {
            Some(floor) => match op {
                CmpOp::Eq => return sql.push_str(FALSE),
                CmpOp::Ne => return sql.push_str(TRUE),
                CmpOp::Lt | CmpOp::Le => (CmpOp::Le, floor),
                CmpOp::Gt | CmpOp::Ge => (CmpOp::Gt, floor),
            },
            None => match operand(c.kind, value) {
                Some(a) => (op, a),
                None => return sql.push_str(FALSE),
            },
        };
        let (ce, ph) = if c.kind == FieldKind::Json && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
            (
                cmp_expr(c),
                "(CAST(CAST(? AS JSONB) AS TEXT) COLLATE \"C\")",
            )
        } else {
            (qc.clone(), placeholder(c.kind))
        };
        if op == CmpOp::Ne {
            let _ = write!(sql, "({qc} IS NULL OR {ce} <> {ph})");
        } else {
            let _ = write!(sql, "({qc} IS NOT NULL AND {ce} {} {ph})", op.symbol());
        }
        args.push(arg);
    }
}

const TRUE: &str = "TRUE";
const FALSE: &str = "FALSE";

/// Where a float operand falls among the integers.
enum Bound {
    /// Below every `i64`.
    Below,
    /// Above every `i64` (or NaN, which the reference orders above).
    Above,
    /// Strictly between this integer and the next.
    Between(i64),
}

/// The float as an exact integer, or where it falls.
fn int_floor(f: f64) -> Result<i64, Bound> {
    if f.is_nan() || f >= 9.223_372_036_854_776e18 {
        return Err(Bound::Above);
    }
    if f < -9.223_372_036_854_776e18 {
        return Err(Bound::Below);
    }
    let fl = f.floor();
    if fl == f {
        Ok(f as i64)
    } else {
        Err(Bound::Between(fl as i64))
    }
}

/// A same-rank operand bound as the column's type.
fn operand(kind: FieldKind, v: &Value) -> Option<Arg> {
    Some(match (kind, v) {
        (FieldKind::Int, Value::F64(f)) => Arg::Int(int_floor(*f).ok()?),
        (FieldKind::Float, Value::I64(i)) => Arg::Real(*i as f64),
        _ => value_arg(v),
    })
}

/// The placeholder for an operand compared with a column of `kind`.
fn placeholder(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::String => "? COLLATE \"C\"",
        _ => "?",
    }
}

/// The column as compared with operands: JSON compares by its compact
/// text, like the reference.
fn cmp_expr(c: &Column) -> String {
    match c.kind {
        FieldKind::Json => format!("(CAST({} AS TEXT) COLLATE \"C\")", quote(c.name)),
        _ => quote(c.name),
    }
}

/// The column as ordered.
fn order_expr(c: &Column) -> String {
    cmp_expr(c)
}

/// Whether a string operand holds NUL (no stored text does).
fn has_nul(v: &Value) -> bool {
    matches!(v, Value::String(s) if s.contains('\0'))
}

/// Numbers `?` placeholders `$1`, `$2` … (outside quoted identifiers and literals).
pub(super) fn number(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    let mut quote: Option<char> = None;
    for ch in sql.chars() {
        match (quote, ch) {
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '"' | '\'') => {
                quote = Some(ch);
                out.push(ch);
            }
            (None, '?') => {
                n += 1;
                let _ = write!(out, "${n}");
            }
            (None, c) => out.push(c),
        }
    }
    out
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
