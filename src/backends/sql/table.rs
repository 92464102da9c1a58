//! One entity's table: its columns and every statement run against it.

use std::fmt::Write as _;
use std::sync::Arc;

use super::dialect::{BulkUpsert, Dialect, KeyList, number};
use super::param::{Param, encode_field, key_field_kind, key_param};
use crate::Key;
use crate::entity::{FieldKind, Schema};
use crate::query::Filter;
use crate::store::{Precondition, StoreQuery, WriteOp};

/// The version column.
pub const VERSION_COL: &str = "_pr_version";
/// The expiry column (unix microseconds, 64-bit integer, `NULL`: never).
/// A negative value marks a tombstone: the row of a deleted record,
/// deleted at minus that many microseconds, keeping the key's last
/// version (never live; purged after the entity's tombstone retention).
pub const EXPIRES_COL: &str = "_pr_expires_at";
/// The reserved column-name prefix.
pub const RESERVED_PREFIX: &str = "_pr_";
/// Rows deleted per purge statement.
pub const PURGE_CHUNK: u64 = 1000;

/// `get_many` pads each `IN` list to one of these sizes (capped at the
/// dialect's chunk) so few distinct statements are prepared and cached.
const GET_MANY_BUCKETS: [usize; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/// One data column of an entity's table.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Column and field name.
    pub name: &'static str,
    /// Logical type.
    pub kind: FieldKind,
    /// May hold `NULL`.
    pub nullable: bool,
    /// Among the schema's fields (false only for a key the schema does not list).
    pub is_field: bool,
}

/// How a write statement's result is read ([`WriteMode::Returning`](super::WriteMode::Returning)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
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
pub struct WriteStmt<'t> {
    /// SQL text (shared per statement shape, so the prepared statement is reused).
    pub sql: &'t str,
    /// Bound parameters, in order (borrowing the op's values).
    pub params: Vec<Param<'t>>,
    /// How to read the result.
    pub expect: Expect,
}

/// One write of [`WriteMode::LockThenWrite`](super::WriteMode::LockThenWrite),
/// encoded: run by [`write::apply_locked`](super::write::apply_locked).
#[derive(Debug, Clone, PartialEq)]
pub struct LockedWrite<'a> {
    /// The key as bound.
    pub key: Param<'a>,
    /// A put's column values in column order; `None` for a delete.
    pub row: Option<Vec<Param<'a>>>,
    /// A put's expiry.
    pub expires: Param<'a>,
}

/// One multi-row upsert of [`TableSql::put_many`]: returns `(key,
/// version)` rows, one per key of `keys` (in any order).
#[derive(Debug, Clone, PartialEq)]
pub struct BulkPut<'a> {
    /// The statement.
    pub select: Select<'a>,
    /// The keys it writes, in op order (distinct).
    pub keys: Vec<&'a Key>,
}

/// A statement built per call (queries, counts, `get_many` chunks).
#[derive(Debug, Clone, PartialEq)]
pub struct Select<'a> {
    /// SQL text, placeholders numbered.
    pub sql: String,
    /// Bound parameters, in order.
    pub params: Vec<Param<'a>>,
}

/// Every fixed statement of one entity's table, built once, in one
/// dialect. Statements list what they bind, in order.
#[derive(Debug)]
pub struct TableSql {
    /// The dialect the statements are written in.
    pub dialect: Arc<dyn Dialect>,
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
    /// `"a", "b", ..., "_pr_version"`: what [`decode_record`](super::decode_record) reads.
    pub select_list: String,
    /// `CREATE TABLE IF NOT EXISTS`.
    pub create_table: String,
    /// `DROP TABLE IF EXISTS`.
    pub drop_table: String,
    /// `CREATE INDEX IF NOT EXISTS` on the expiry column, if separate.
    pub create_index: Option<String>,
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
    /// Delete (writes a tombstone): binds -now, key, now.
    pub delete_any: String,
    /// Delete if exists (writes a tombstone): binds -now, key, now.
    pub delete_live: String,
    /// Delete if version (writes a tombstone): binds -now, key, now, version.
    pub delete_version: String,
    /// Delete an expired row: binds key, now.
    pub delete_expired: String,
    /// The live version of a key: binds key, now.
    pub live_version: String,
    /// Deletes up to [`PURGE_CHUNK`] expired rows and tombstones past
    /// their retention: binds now, -(now - retention).
    pub purge: String,
    /// Lock-then-write: the row's version if live, minus the version of a
    /// tombstone, 0 if expired (no row: absent), locked until the
    /// transaction ends: binds now, key.
    pub lock: String,
    /// Lock-then-write: inserts a row: binds columns..., version, expires.
    pub insert: String,
    /// Lock-then-write: overwrites a row: binds non-key columns...,
    /// version, expires, key.
    pub update: String,
    /// Lock-then-write: deletes a row: binds key.
    pub delete: String,
    /// Lock-then-write: turns a row into a tombstone: binds version, -now, key.
    pub tombstone: String,
    /// The statements of the entity's outbox table (used when its route
    /// has an outbox).
    pub outbox: super::outbox::OutboxSql,
    /// The statements of versioned apply in
    /// [`WriteMode::Returning`](super::WriteMode::Returning).
    pub versioned: super::versioned::VersionedSql,
    /// How long tombstones are kept before [`TableSql::purge`] removes
    /// them ([`EntityInfo::tombstone_retention`](crate::store::EntityInfo::tombstone_retention)).
    pub tombstone_retention: std::time::Duration,
}

impl TableSql {
    /// Builds every statement for `schema` stored in `table`; an error says
    /// which name is unusable.
    pub fn new(
        dialect: Arc<dyn Dialect>,
        schema: &'static Schema,
        table: &str,
    ) -> Result<TableSql, String> {
        let d = &*dialect;
        d.check_ident("table", table)?;
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
            d.check_ident("field", c.name)?;
            if c.name.len() >= RESERVED_PREFIX.len()
                && c.name.as_bytes()[..RESERVED_PREFIX.len()]
                    .eq_ignore_ascii_case(RESERVED_PREFIX.as_bytes())
            {
                return Err(format!(
                    "field `{}` starts with `{RESERVED_PREFIX}`, which the {} store reserves for its own columns; rename the field",
                    c.name,
                    d.kind()
                ));
            }
            if columns[..i]
                .iter()
                .any(|o| o.name.eq_ignore_ascii_case(c.name))
            {
                return Err(format!(
                    "two fields are named `{}` ignoring case, which {} column names or polyrouter's column checks cannot tell apart; rename one",
                    c.name,
                    d.name()
                ));
            }
        }
        let key_index = columns
            .iter()
            .position(|c| c.name == schema.key)
            .unwrap_or(0);
        let q = d.quote_table(table);
        let qk = d.quote(schema.key);
        let v = d.quote(VERSION_COL);
        let e = d.quote(EXPIRES_COL);
        let live = format!("({e} IS NULL OR {e} > ?)");
        let names: Vec<String> = columns.iter().map(|c| d.quote(c.name)).collect();
        let non_key: Vec<&String> = names
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != key_index)
            .map(|(_, n)| n)
            .collect();
        let select_list = names
            .iter()
            .map(String::as_str)
            .chain([v.as_str()])
            .collect::<Vec<_>>()
            .join(", ");

        let mut defs: Vec<String> = columns
            .iter()
            .zip(&names)
            .enumerate()
            .map(|(i, (c, n))| {
                if i == key_index {
                    format!("{n} {} NOT NULL PRIMARY KEY", d.column_type(c.kind, true))
                } else if c.nullable {
                    format!("{n} {}", d.column_type(c.kind, false))
                } else {
                    format!("{n} {} NOT NULL", d.column_type(c.kind, false))
                }
            })
            .collect();
        let big = d.bigint_type();
        defs.push(format!("{v} {big} NOT NULL"));
        defs.push(format!("{e} {big}"));
        let index = d.quote(&format!("{table}{RESERVED_PREFIX}expires_at"));
        defs.extend(d.inline_index(&e));
        let create_table = format!(
            "CREATE TABLE IF NOT EXISTS {q} ({}){}",
            defs.join(", "),
            d.table_suffix(&index, &e)
        );
        let create_index = d.create_index(&index, &q, &e);
        let drop_table = format!("DROP TABLE IF EXISTS {q}");

        let get = format!("SELECT {select_list} FROM {q} WHERE {qk} = ? AND {live}");
        let placeholders = vec!["?"; names.len()].join(", ");
        let (insert_head, t) = Self::upsert_head(
            d,
            &q,
            &names,
            key_index,
            [&v, &e],
            &format!("VALUES ({placeholders}, 1, ?)"),
        );
        // In the upsert, `?` numbering follows the text: columns, expires,
        // then `now` in the CASE. In the if-absent form `now` is in the WHERE.
        // An expired row restarts at 1; a live row or a tombstone (negative
        // expiry) continues from its version.
        let upsert = format!(
            "{insert_head}{v} = CASE WHEN {t}{e} >= 0 AND {t}{e} <= ? THEN 1 ELSE {t}{v} + 1 END, {e} = excluded.{e} RETURNING {t}{v}"
        );
        let insert_absent = format!(
            "{insert_head}{v} = CASE WHEN {t}{e} < 0 THEN {t}{v} + 1 ELSE 1 END, {e} = excluded.{e} WHERE {t}{e} <= ? RETURNING {t}{v}"
        );
        let set_params: String = non_key.iter().map(|n| format!("{n} = ?, ")).collect();
        let update_exists = format!(
            "UPDATE {q} SET {set_params}{v} = {v} + 1, {e} = ? WHERE {qk} = ? AND {live} RETURNING {v}"
        );
        let update_version = format!(
            "UPDATE {q} SET {set_params}{v} = {v} + 1, {e} = ? WHERE {qk} = ? AND {live} AND {v} = ? RETURNING {v}"
        );
        // A delete keeps the row as a tombstone: its version + 1 and a
        // negative expiry (minus the time of the delete); nullable values
        // are cleared.
        let clear: String = columns
            .iter()
            .zip(&names)
            .enumerate()
            .filter(|(i, (c, _))| *i != key_index && c.nullable)
            .map(|(_, (_, n))| format!("{n} = NULL, "))
            .collect();
        let bury =
            format!("UPDATE {q} SET {clear}{v} = {v} + 1, {e} = ? WHERE {qk} = ? AND {live}");
        let delete_any = format!("{bury} RETURNING {v}");
        let delete_live = format!("{bury} RETURNING {v}");
        let delete_version = format!("{bury} AND {v} = ? RETURNING {v}");
        let delete_expired = format!("DELETE FROM {q} WHERE {qk} = ? AND {e} >= 0 AND {e} <= ?");
        let live_version = format!("SELECT {v} FROM {q} WHERE {qk} = ? AND {live}");
        let purge = d.purge(
            &q,
            &qk,
            &format!("{e} <= ? AND ({e} >= 0 OR {e} >= ?)"),
            PURGE_CHUNK,
        );
        let lock = d.lock_row(
            &format!("CASE WHEN {live} THEN {v} WHEN {e} < 0 THEN 0 - {v} ELSE 0 END"),
            &q,
            &format!("{qk} = ?"),
        );
        let insert = format!(
            "INSERT INTO {q} ({}, {v}, {e}) VALUES ({placeholders}, ?, ?)",
            names.join(", ")
        );
        let update = format!("UPDATE {q} SET {set_params}{v} = ?, {e} = ? WHERE {qk} = ?");
        let delete = format!("DELETE FROM {q} WHERE {qk} = ?");
        let tombstone = format!("UPDATE {q} SET {clear}{v} = ?, {e} = ? WHERE {qk} = ?");
        let n = |s: &str| number(d, s);
        let versioned = super::versioned::VersionedSql::new(d, &q, &names, key_index);
        Ok(TableSql {
            outbox: super::outbox::OutboxSql::new(d, table),
            versioned,
            get: n(&get),
            upsert: n(&upsert),
            insert_absent: n(&insert_absent),
            update_exists: n(&update_exists),
            update_version: n(&update_version),
            delete_any: n(&delete_any),
            delete_live: n(&delete_live),
            delete_version: n(&delete_version),
            delete_expired: n(&delete_expired),
            live_version: n(&live_version),
            purge: n(&purge),
            lock: n(&lock),
            insert: n(&insert),
            update: n(&update),
            delete: n(&delete),
            tombstone: n(&tombstone),
            tombstone_retention: crate::store::DEFAULT_TOMBSTONE_RETENTION,
            schema,
            table: table.to_string(),
            qtable: q,
            columns,
            key_index,
            select_list,
            create_table,
            drop_table,
            create_index,
            dialect,
        })
    }

    /// The parameters of [`TableSql::purge`] at `now` (unix microseconds).
    pub fn purge_params(&self, now: i64) -> Vec<Param<'static>> {
        let keep = i64::try_from(self.tombstone_retention.as_micros()).unwrap_or(i64::MAX);
        vec![
            Param::Int(now),
            Param::Int(now.saturating_sub(keep).saturating_neg()),
        ]
    }

    /// The column for a field name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The key column.
    pub fn key_column(&self) -> &Column {
        &self.columns[self.key_index]
    }

    /// The quoted name of a column.
    pub fn quote(&self, ident: &str) -> String {
        self.dialect.quote(ident)
    }

    /// Whether a key of the right kind can be stored at all (a key that
    /// cannot is never found).
    pub fn storable(&self, key: &Key) -> bool {
        match key {
            Key::Str(s) => {
                (self.dialect.text_holds_nul() || !s.contains('\0'))
                    && self.dialect.key_problem(s).is_none()
            }
            _ => true,
        }
    }

    /// A key as bound, checked against the entity's key kind and what the
    /// database can store.
    pub fn key<'a>(&self, key: &'a Key) -> Result<Param<'a>, String> {
        if key.kind() != self.schema.key_kind {
            return Err(format!(
                "key {key} is a {:?} key, but entity `{}` uses {:?} keys",
                key.kind(),
                self.schema.name,
                self.schema.key_kind
            ));
        }
        if let Key::Str(s) = key {
            if !self.dialect.text_holds_nul() && s.contains('\0') {
                return Err(format!(
                    "key {key:?} contains a NUL character (\\0), which {} text cannot hold",
                    self.dialect.name()
                ));
            }
            if let Some(problem) = self.dialect.key_problem(s) {
                return Err(format!("key {key:?}: {problem}"));
            }
        }
        Ok(key_param(key))
    }

    /// The expiry of a write at `now` (unix microseconds) with `ttl`.
    pub fn expires(now: i64, ttl: Option<std::time::Duration>) -> Param<'static> {
        match ttl {
            Some(d) => {
                Param::Int(now.saturating_add(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)))
            }
            None => Param::Null(FieldKind::Int),
        }
    }

    /// Every column value of a record, in column order, checked and encoded.
    pub fn row<'a>(&self, record: &'a crate::Record) -> Result<Vec<Param<'a>>, String> {
        let mut values = Vec::with_capacity(self.columns.len() + 4);
        for (i, c) in self.columns.iter().enumerate() {
            if i == self.key_index {
                values.push(self.key(&record.key)?);
            } else {
                // A record made by polyrouter has its fields in schema
                // order, as the columns are: try the same place first.
                let value = match record.fields.get(i) {
                    Some((name, v)) if name == c.name => v,
                    _ => record.value(c.name),
                };
                values.push(encode_field(&*self.dialect, c, value)?);
            }
        }
        Ok(values)
    }

    /// The statement for one write ([`WriteMode::Returning`](super::WriteMode::Returning)).
    /// `now` is unix microseconds.
    pub fn write<'a>(&'a self, op: &'a WriteOp, now: i64) -> Result<WriteStmt<'a>, String> {
        match op {
            WriteOp::Put {
                record,
                precondition,
                ttl,
            } => {
                let mut values = self.row(record)?;
                let expires = Self::expires(now, *ttl);
                let (sql, params) = match precondition {
                    Precondition::None | Precondition::Absent => {
                        values.push(expires);
                        values.push(Param::Int(now));
                        let sql = if *precondition == Precondition::None {
                            &self.upsert
                        } else {
                            &self.insert_absent
                        };
                        (sql, values)
                    }
                    Precondition::Exists | Precondition::Version(_) => {
                        let key = values.remove(self.key_index);
                        values.push(expires);
                        values.push(key);
                        values.push(Param::Int(now));
                        match precondition {
                            Precondition::Version(v) => {
                                values.push(version_param(*v));
                                (&self.update_version, values)
                            }
                            _ => (&self.update_exists, values),
                        }
                    }
                };
                Ok(WriteStmt {
                    sql,
                    params,
                    expect: Expect::Put,
                })
            }
            WriteOp::Delete { key, precondition } => {
                let mut params = match precondition {
                    Precondition::Absent => vec![self.key(key)?, Param::Int(now)],
                    _ => vec![Param::Int(-now), self.key(key)?, Param::Int(now)],
                };
                let (sql, expect) = match precondition {
                    Precondition::None => (&self.delete_any, Expect::DeleteAny),
                    Precondition::Exists => (&self.delete_live, Expect::DeleteCond),
                    Precondition::Version(v) => {
                        params.push(version_param(*v));
                        (&self.delete_version, Expect::DeleteCond)
                    }
                    Precondition::Absent => (&self.delete_expired, Expect::DeleteAbsent),
                };
                Ok(WriteStmt {
                    sql,
                    params,
                    expect,
                })
            }
        }
    }

    /// One write for [`WriteMode::LockThenWrite`](super::WriteMode::LockThenWrite),
    /// checked and encoded. `now` is unix microseconds.
    pub fn locked<'a>(&self, op: &'a WriteOp, now: i64) -> Result<LockedWrite<'a>, String> {
        Ok(match op {
            WriteOp::Put { record, ttl, .. } => LockedWrite {
                key: self.key(&record.key)?,
                row: Some(self.row(record)?),
                expires: Self::expires(now, *ttl),
            },
            WriteOp::Delete { key, .. } => LockedWrite {
                key: self.key(key)?,
                row: None,
                expires: Param::Null(FieldKind::Int),
            },
        })
    }

    /// Unconditional puts (`ops` must all be `Put` with
    /// `Precondition::None`) as few multi-row upserts as the dialect allows,
    /// each returning `(key, version)` rows, run in order in one
    /// transaction. A key repeated in the batch starts a new statement, so
    /// versions equal those of one upsert per op. `None`: the dialect has no
    /// bulk form.
    pub fn put_many<'a>(
        &self,
        ops: &'a [WriteOp],
        now: i64,
    ) -> Option<Result<Vec<BulkPut<'a>>, String>> {
        let bulk = self.dialect.bulk_upsert()?;
        Some(self.bulk_statements(bulk, ops, now))
    }

    fn bulk_statements<'a>(
        &self,
        bulk: BulkUpsert,
        ops: &'a [WriteOp],
        now: i64,
    ) -> Result<Vec<BulkPut<'a>>, String> {
        // Each row: the columns and the expiry.
        let max_rows = self.bulk_max_rows(bulk, 1);
        let rows = self.bulk_rows(ops, now)?;
        let runs = distinct_runs(rows.iter().map(|(k, _)| *k), max_rows);
        // Each run's rows move into its statement: no value is copied.
        let mut rows = rows.into_iter();
        Ok(runs
            .into_iter()
            .map(|run| self.bulk_statement(bulk, rows.by_ref().take(run.len()).collect(), now))
            .collect())
    }

    /// The rows of a batch of unconditional puts, encoded before the
    /// database is touched: each key with its column values followed by its
    /// expiry.
    pub fn bulk_rows<'a>(
        &self,
        ops: &'a [WriteOp],
        now: i64,
    ) -> Result<Vec<(&'a Key, Vec<Param<'a>>)>, String> {
        let mut rows = Vec::with_capacity(ops.len());
        for op in ops {
            let WriteOp::Put {
                record,
                precondition: Precondition::None,
                ttl,
            } = op
            else {
                return Err("put_many takes only puts without a precondition".into());
            };
            let mut row = self.row(record)?;
            row.push(Self::expires(now, *ttl));
            rows.push((&record.key, row));
        }
        Ok(rows)
    }

    fn bulk_statement<'a>(
        &self,
        bulk: BulkUpsert,
        rows: Vec<(&'a Key, Vec<Param<'a>>)>,
        now: i64,
    ) -> BulkPut<'a> {
        let d = &*self.dialect;
        let v = self.quote(VERSION_COL);
        let e = self.quote(EXPIRES_COL);
        let names: Vec<String> = self.columns.iter().map(|c| self.quote(c.name)).collect();
        // Each row: its columns and expiry bound, its version 1.
        let (keys, values): (Vec<&Key>, Vec<Vec<Param<'_>>>) = rows.into_iter().unzip();
        let (source, mut params) = self.bulk_source(bulk, &[FieldKind::Int], ", 1", values);
        params.push(Param::Int(now));
        let (head, t) =
            Self::upsert_head(d, &self.qtable, &names, self.key_index, [&e, &v], &source);
        let qk = &names[self.key_index];
        let sql = format!(
            "{head}{v} = CASE WHEN {t}{e} >= 0 AND {t}{e} <= ? THEN 1 ELSE {t}{v} + 1 END, {e} = excluded.{e} RETURNING {t}{qk}, {t}{v}"
        );
        BulkPut {
            select: Select {
                sql: number(d, &sql),
                params,
            },
            keys,
        }
    }

    /// The head every upsert of the table shares, `INSERT INTO {q} [AS a]
    /// ({names…}, {extra…}) {source} ON CONFLICT ({key}) DO UPDATE SET c =
    /// excluded.c, …` (every non-key column; the caller appends the version
    /// and expiry assignments), and the prefix that names the existing row
    /// in what follows (`"a".` where the dialect has an
    /// [`upsert_alias`](Dialect::upsert_alias), else empty). `names` are
    /// the quoted columns, `q` the quoted table.
    pub(super) fn upsert_head(
        d: &dyn Dialect,
        q: &str,
        names: &[String],
        key_index: usize,
        extra: [&str; 2],
        source: &str,
    ) -> (String, String) {
        let (alias, row) = match d.upsert_alias() {
            Some(a) => (format!(" AS {}", d.quote(a)), format!("{}.", d.quote(a))),
            None => (String::new(), String::new()),
        };
        let qk = &names[key_index];
        let mut head = format!(
            "INSERT INTO {q}{alias} ({}, {}, {}) {source} ON CONFLICT ({qk}) DO UPDATE SET ",
            names.join(", "),
            extra[0],
            extra[1],
        );
        for (_, n) in names.iter().enumerate().filter(|(i, _)| *i != key_index) {
            let _ = write!(head, "{n} = excluded.{n}, ");
        }
        (head, row)
    }

    /// The most rows one multi-row upsert takes: each row binds the
    /// columns and `extra` more values, and the statement one more (now).
    pub(super) fn bulk_max_rows(&self, bulk: BulkUpsert, extra: usize) -> usize {
        let width = self.columns.len() + extra;
        match bulk {
            BulkUpsert::Unnest { rows } => rows,
            BulkUpsert::Values { max_params } => max_params.saturating_sub(1) / width,
        }
        .max(1)
    }

    /// The source of a multi-row upsert and its parameters: `SELECT
    /// *{tail} FROM UNNEST(…)` with one array parameter per column
    /// ([`BulkUpsert::Unnest`]), or `VALUES (?, …{tail}), …` binding every
    /// value ([`BulkUpsert::Values`]). Each row holds the columns' values
    /// then one of each `extra` kind; `tail` is SQL appended to every row.
    pub(super) fn bulk_source<'a, R: IntoIterator<Item = Param<'a>>>(
        &self,
        bulk: BulkUpsert,
        extra: &[FieldKind],
        tail: &str,
        rows: impl IntoIterator<Item = R>,
    ) -> (String, Vec<Param<'a>>) {
        let d = &*self.dialect;
        let kinds: Vec<FieldKind> = self
            .columns
            .iter()
            .map(|c| c.kind)
            .chain(extra.iter().copied())
            .collect();
        match bulk {
            BulkUpsert::Unnest { .. } => {
                let rows = rows.into_iter();
                let mut arrays: Vec<Vec<Param<'_>>> = (0..kinds.len())
                    .map(|_| Vec::with_capacity(rows.size_hint().0))
                    .collect();
                for row in rows {
                    for (array, value) in arrays.iter_mut().zip(row) {
                        array.push(value);
                    }
                }
                let casts: Vec<String> = kinds
                    .iter()
                    .map(|k| format!("CAST(? AS {})", d.array_type(*k).unwrap_or("TEXT[]")))
                    .collect();
                let params = kinds
                    .iter()
                    .zip(arrays)
                    .map(|(kind, values)| Param::Array(*kind, values))
                    .collect();
                (
                    format!("SELECT *{tail} FROM UNNEST({})", casts.join(", ")),
                    params,
                )
            }
            BulkUpsert::Values { .. } => {
                let one = format!("({}{tail})", vec!["?"; kinds.len()].join(", "));
                let mut params = Vec::new();
                let mut n = 0;
                for row in rows {
                    params.extend(row);
                    n += 1;
                }
                (format!("VALUES {}", vec![one; n].join(", ")), params)
            }
        }
    }

    /// The statements of `get_many`: one (an array parameter) or one per
    /// chunk of an `IN` list, each binding keys…, now. Keys that cannot be
    /// stored are left out (they are never found); a key of the wrong kind
    /// is an error.
    pub fn get_many<'a>(&self, keys: &'a [Key], now: i64) -> Result<Vec<Select<'a>>, String> {
        let mut bound = Vec::with_capacity(keys.len());
        for k in keys {
            if k.kind() == self.schema.key_kind && !self.storable(k) {
                continue;
            }
            bound.push(self.key(k)?);
        }
        if bound.is_empty() {
            return Ok(Vec::new());
        }
        let qk = self.quote(self.key_column().name);
        let live = self.live();
        Ok(match self.dialect.key_list() {
            KeyList::Array => {
                let sql = format!(
                    "SELECT {} FROM {} WHERE {qk} = ANY(?) AND {live}",
                    self.select_list, self.qtable
                );
                vec![Select {
                    sql: number(&*self.dialect, &sql),
                    params: vec![
                        Param::Array(key_field_kind(self.schema.key_kind), bound),
                        Param::Int(now),
                    ],
                }]
            }
            KeyList::InList { chunk } => bound
                .chunks(chunk.max(1))
                .map(|c| {
                    let chunk = chunk.max(1);
                    let n = GET_MANY_BUCKETS
                        .iter()
                        .copied()
                        .find(|b| *b >= c.len())
                        .unwrap_or_else(|| chunk.min(c.len().next_multiple_of(256)))
                        .min(chunk);
                    let mut params: Vec<Param<'_>> = c.to_vec();
                    while params.len() < n {
                        params.push(c[c.len() - 1].clone());
                    }
                    params.push(Param::Int(now));
                    let sql = format!(
                        "SELECT {} FROM {} WHERE {qk} IN ({}) AND {live}",
                        self.select_list,
                        self.qtable,
                        vec!["?"; n].join(", ")
                    );
                    Select {
                        sql: number(&*self.dialect, &sql),
                        params,
                    }
                })
                .collect(),
        })
    }

    /// `(E IS NULL OR E > ?)`: the row is not expired; binds now.
    pub(super) fn live(&self) -> String {
        let e = self.quote(EXPIRES_COL);
        format!("({e} IS NULL OR {e} > ?)")
    }

    /// A query: live rows matching the filter, in the order given then by
    /// key, at most `limit`.
    pub fn query<'a>(&self, q: &'a StoreQuery, now: i64) -> Select<'a> {
        let d = &*self.dialect;
        let key = self.key_column().name;
        // Ordered by the key first (fields the table lacks order nothing).
        let key_first = q
            .order
            .iter()
            .find(|o| self.column(&o.field).is_some())
            .is_none_or(|o| self.column(&o.field).is_some_and(|c| c.name == key));
        let hint = match d.key_order_hint() {
            Some(h) if key_first => format!(" {h}"),
            _ => String::new(),
        };
        let mut sql = format!(
            "SELECT {} FROM {}{hint} WHERE {}",
            self.select_list,
            self.qtable,
            self.live()
        );
        let mut params = vec![Param::Int(now)];
        if let Some(f) = &q.filter {
            sql.push_str(" AND ");
            self.filter(f, &mut sql, &mut params);
        }
        sql.push_str(" ORDER BY ");
        // The key is unique and exact in its index: it needs no tie-break,
        // unless the dialect reads key-first queries by index because its
        // sort would tie keys, and this query sorts.
        let key_tie = |c: &Column, qc: &str| {
            (!key_first && d.key_order_hint().is_some())
                .then(|| d.order_tiebreak(c, qc))
                .flatten()
        };
        let mut keys_done = false;
        for o in &q.order {
            // A field the table lacks is null in every row: it cannot order them.
            let Some(c) = self.column(&o.field) else {
                continue;
            };
            let qc = self.quote(c.name);
            let _ = write!(
                sql,
                "{} {}, ",
                d.ordered(c, &qc),
                d.order(o.direction, c.nullable)
            );
            let tie = if c.name == key {
                key_tie(c, &qc)
            } else {
                d.order_tiebreak(c, &qc)
            };
            if let Some(tie) = tie {
                let _ = write!(sql, "{tie} {}, ", d.order(o.direction, false));
            }
            // The key is unique: nothing after it can change the order.
            if c.name == key {
                keys_done = true;
                break;
            }
        }
        if keys_done {
            sql.truncate(sql.len() - 2);
        } else {
            let c = self.key_column();
            let qc = self.quote(key);
            let _ = write!(sql, "{qc} ASC");
            if let Some(tie) = key_tie(c, &qc) {
                let _ = write!(sql, ", {tie} ASC");
            }
        }
        if let Some(limit) = q.limit {
            d.limit(&mut sql);
            params.push(Param::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
        }
        Select {
            sql: number(d, &sql),
            params,
        }
    }

    /// `count(*)` of live rows matching the filter.
    pub fn count<'a>(&self, filter: Option<&'a Filter>, now: i64) -> Select<'a> {
        let mut sql = format!("SELECT count(*) FROM {} WHERE {}", self.qtable, self.live());
        let mut params = vec![Param::Int(now)];
        if let Some(f) = filter {
            sql.push_str(" AND ");
            self.filter(f, &mut sql, &mut params);
        }
        Select {
            sql: number(&*self.dialect, &sql),
            params,
        }
    }
}

/// A precondition's version as bound. Versions start at 1: -1 never matches.
pub(super) fn version_param(v: u64) -> Param<'static> {
    Param::Int(i64::try_from(v).unwrap_or(-1))
}

/// Splits a sequence of keys into consecutive runs of at most `max` keys in
/// which no key repeats (a repeated key starts a new run), so each run can
/// be one multi-row statement.
///
/// ```
/// use polyrouter::Key;
/// use polyrouter::backends::sql::distinct_runs;
/// let keys: Vec<Key> = ["a", "b", "a", "c", "d"].into_iter().map(Key::from).collect();
/// assert_eq!(distinct_runs(keys.iter(), 2), vec![0..2, 2..4, 4..5]);
/// ```
pub fn distinct_runs<'k>(
    keys: impl IntoIterator<Item = &'k Key>,
    max: usize,
) -> Vec<std::ops::Range<usize>> {
    let max = max.max(1);
    let mut out = Vec::new();
    let mut start = 0;
    let mut seen = foldhash::HashSet::default();
    let mut n = 0;
    for (i, k) in keys.into_iter().enumerate() {
        if i - start == max || seen.contains(k) {
            out.push(start..i);
            start = i;
            seen.clear();
        }
        seen.insert(k);
        n = i + 1;
    }
    if n > start {
        out.push(start..n);
    }
    out
}
