//! Versioned apply on SQL stores ([`Store::apply_versioned`](crate::Store::apply_versioned)):
//! a change is stored only when its version is newer than the key's
//! current one (a live row's or a tombstone's; an expired row counts as
//! absent).
//!
//! - Set form (dialects with a [`Dialect::bulk_upsert`], PostgreSQL and
//!   SQLite): a batch is applied as few statements as it allows, one
//!   `INSERT … ON CONFLICT (key) DO UPDATE SET … WHERE current <
//!   excluded.version RETURNING key` per run of distinct keys, then one
//!   query for the current versions of the run's stale keys ([`set`]).
//!   A key repeated in the batch starts a new run (split, not deduped:
//!   every change gets the answer it would get alone, in input order).
//!   Version 0 and deletes with zero tombstone retention take the per-row
//!   path at their place in the batch.
//! - [`WriteMode::Returning`] without a set form: one conditional
//!   statement per change, `INSERT … ON CONFLICT (key) DO UPDATE SET …
//!   WHERE current < excluded.version RETURNING version`: a row back means
//!   applied, none means stale (the current version is then read).
//! - [`WriteMode::LockThenWrite`] (MySQL/MariaDB, SQL Server): the key's
//!   row (or gap) is locked and read, then written with the plain
//!   statements; where [`Dialect::lock_key_list`] says so (MySQL/MariaDB)
//!   all the batch's keys are locked by one statement first ([`locked`]). MariaDB's one-statement form (`ON DUPLICATE KEY UPDATE c
//!   = IF(…)`) cannot work here: its assignments run left to right, and
//!   the condition reads both the version and the expiry column, so
//!   whichever is assigned first changes the condition of the other (an
//!   expired row would keep its old version).
//!
//! A delete leaves a tombstone (the store's usual one: a negative expiry)
//! at its version; with zero tombstone retention it removes the row.

mod locked;
mod set;

use std::collections::HashSet;

use super::dialect::{Dialect, WriteMode, number};
use super::outbox::record_event;
use super::param::Param;
use super::table::{EXPIRES_COL, TableSql, VERSION_COL};
use super::write::{Exec, Target};
use crate::Result;
use crate::entity::FieldKind;
use crate::store::{Applied, VersionedChange, outbox_event};

/// The statements of versioned apply in [`WriteMode::Returning`].
#[derive(Debug, Clone, PartialEq)]
pub struct VersionedSql {
    /// The key's current version (live or tombstone; 0 when expired; no
    /// row when absent): binds now, key.
    pub current: String,
    /// Stores a row at its version when newer: binds columns…, version,
    /// expires, now; returns the version when applied, no row when stale.
    pub upsert: String,
    /// Removes the row when older (zero tombstone retention): binds key,
    /// now, version.
    pub remove: String,
}

impl VersionedSql {
    /// The statements for a table (`names` quoted columns, `q` the quoted
    /// table).
    pub(super) fn new(d: &dyn Dialect, q: &str, names: &[String], key_index: usize) -> Self {
        let v = d.quote(VERSION_COL);
        let e = d.quote(EXPIRES_COL);
        let qk = &names[key_index];
        let (head, t) = TableSql::upsert_head(
            d,
            q,
            names,
            key_index,
            [&v, &e],
            &format!("VALUES ({}, ?, ?)", vec!["?"; names.len()].join(", ")),
        );
        let upsert = format!(
            "{head}{v} = excluded.{v}, {e} = excluded.{e} WHERE {} < excluded.{v} RETURNING {t}{v}",
            current_expr(d, &t),
        );
        VersionedSql {
            current: number(
                d,
                &format!("SELECT {} FROM {q} WHERE {qk} = ?", current_expr(d, "")),
            ),
            upsert: number(d, &upsert),
            remove: number(
                d,
                &format!(
                    "DELETE FROM {q} WHERE {qk} = ? AND {} < ?",
                    current_expr(d, "")
                ),
            ),
        }
    }
}

/// `CASE … END`: the current version of the row `a` qualifies (`"a".` or
/// empty): live or tombstone; 0 when expired. Binds now.
fn current_expr(d: &dyn Dialect, a: &str) -> String {
    let v = d.quote(VERSION_COL);
    let e = d.quote(EXPIRES_COL);
    format!("CASE WHEN {a}{e} IS NULL OR {a}{e} < 0 OR {a}{e} > ? THEN {a}{v} ELSE 0 END")
}

/// A placeholder for a NOT NULL column of a tombstone row that has no
/// record behind it (never read: tombstones are invisible).
fn zero(kind: FieldKind) -> Param<'static> {
    match kind {
        FieldKind::Bool => Param::Bool(false),
        FieldKind::Int => Param::Int(0),
        FieldKind::Float => Param::Float(0.0),
        FieldKind::String => Param::Text("".into()),
        FieldKind::Bytes => Param::Bytes((&[][..]).into()),
        FieldKind::Timestamp => Param::Timestamp(chrono::DateTime::UNIX_EPOCH),
        FieldKind::Uuid => Param::Uuid(uuid::Uuid::nil()),
        FieldKind::Json => Param::Json(std::borrow::Cow::Owned(serde_json::Value::Null)),
    }
}

/// The columns of a tombstone row: the key, `NULL` in nullable columns,
/// placeholders in the others.
fn tombstone_row<'a>(t: &TableSql, key: Param<'a>) -> Vec<Param<'a>> {
    t.columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i == t.key_index {
                key.clone()
            } else if c.nullable {
                Param::Null(c.kind)
            } else {
                zero(c.kind)
            }
        })
        .collect()
}

/// Applies every change in order on one connection (the caller's
/// transaction), recording applied changes in the route's outbox; one
/// outcome per change, in input order. Every change is checked and
/// encoded before the database is touched.
pub async fn apply_versioned(
    exec: &mut dyn Exec,
    target: Target<'_>,
    t: &TableSql,
    changes: &[VersionedChange],
    now: i64,
) -> Result<Vec<Applied>> {
    let mut encoded = changes
        .iter()
        .map(|c| encode(target, t, c).map(Some))
        .collect::<Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(changes.len());
    if locked::by_key_list(t) {
        let encoded = encoded.into_iter().flatten().collect();
        locked::apply(exec, target, t, changes, encoded, now, &mut out).await?;
        return Ok(out);
    }
    let max_rows = set::max_rows(t);
    let mut run: Vec<(usize, Encoded)> = Vec::new();
    let mut seen = HashSet::new();
    for (i, c) in changes.iter().enumerate() {
        let enc = encoded[i].take().expect("each change is encoded once");
        let settable = c.version > 0 && (c.record.is_some() || !t.tombstone_retention.is_zero());
        // The run so far is applied before a change that cannot join it:
        // a full run, a repeated key, or a change that runs alone.
        let joins = max_rows.filter(|_| settable);
        if joins.is_none_or(|max| run.len() == max || seen.contains(&c.key)) {
            let run = std::mem::take(&mut run);
            set::apply(exec, target, t, changes, run, now, &mut out).await?;
            seen.clear();
        }
        match joins {
            Some(_) => {
                seen.insert(&c.key);
                run.push((i, enc));
            }
            None => {
                let applied = match t.dialect.write_mode() {
                    WriteMode::LockThenWrite => apply_locked(exec, t, c, enc, now).await?,
                    _ => apply_returning(exec, t, c, enc, now).await?,
                };
                if applied.applied() {
                    record(exec, target, t, c).await?;
                }
                out.push(applied);
            }
        }
    }
    set::apply(exec, target, t, changes, run, now, &mut out).await?;
    Ok(out)
}

/// Records an applied change's event in the route's outbox, if it has one.
async fn record(
    exec: &mut dyn Exec,
    target: Target<'_>,
    t: &TableSql,
    c: &VersionedChange,
) -> Result<()> {
    if let Some(entity) = target.outbox {
        let event = outbox_event(entity, &c.key, c.record.as_ref(), c.version);
        record_event(exec, &t.outbox, event).await?;
    }
    Ok(())
}

/// A change encoded: the key, the version, the row (the record's columns,
/// or `None` for a delete).
struct Encoded<'a> {
    key: Param<'a>,
    version: Param<'a>,
    row: Option<Vec<Param<'a>>>,
}

/// The change's key, version and row (the record's columns, or a
/// tombstone's), encoded.
fn encode<'a>(target: Target<'_>, t: &TableSql, c: &'a VersionedChange) -> Result<Encoded<'a>> {
    let key = t.key(&c.key).map_err(|m| target.invalid(m))?;
    let version = i64::try_from(c.version).map_err(|_| {
        target.invalid(format!(
            "version {} of key {} is beyond the store's 64-bit versions",
            c.version, c.key
        ))
    })?;
    let row = match &c.record {
        Some(r) if r.key != c.key => {
            return Err(target.invalid(format!(
                "the change of key {} carries the record of key {}",
                c.key, r.key
            )));
        }
        Some(r) => Some(t.row(r).map_err(|m| target.invalid(m))?),
        None => None,
    };
    Ok(Encoded {
        key,
        version: Param::Int(version),
        row,
    })
}

/// The key's current version: live or tombstone; 0 when absent or expired.
async fn current(exec: &mut dyn Exec, vs: &VersionedSql, key: Param<'_>, now: i64) -> Result<u64> {
    Ok(exec
        .fetch_int(&vs.current, vec![Param::Int(now), key])
        .await?
        .map_or(0, |v| v.unsigned_abs()))
}

async fn apply_returning(
    exec: &mut dyn Exec,
    t: &TableSql,
    c: &VersionedChange,
    Encoded { key, version, row }: Encoded<'_>,
    now: i64,
) -> Result<Applied> {
    let vs = &t.versioned;
    if c.version == 0 {
        return Ok(Applied::Stale {
            current: current(exec, vs, key, now).await?,
        });
    }
    let (mut params, expires) = match row {
        Some(row) => (row, Param::Null(FieldKind::Int)),
        None if t.tombstone_retention.is_zero() => {
            let n = exec
                .execute(&vs.remove, vec![key.clone(), Param::Int(now), version])
                .await?;
            let cur = if n > 0 {
                0
            } else {
                current(exec, vs, key, now).await?
            };
            return Ok(if cur < c.version {
                Applied::Applied
            } else {
                Applied::Stale { current: cur }
            });
        }
        None => (tombstone_row(t, key.clone()), Param::Int(-now)),
    };
    params.extend([version, expires, Param::Int(now)]);
    match exec.fetch_int(&vs.upsert, params).await? {
        Some(_) => Ok(Applied::Applied),
        None => Ok(Applied::Stale {
            current: current(exec, vs, key, now).await?,
        }),
    }
}

async fn apply_locked(
    exec: &mut dyn Exec,
    t: &TableSql,
    c: &VersionedChange,
    enc: Encoded<'_>,
    now: i64,
) -> Result<Applied> {
    let locked = exec
        .fetch_int(&t.lock, vec![Param::Int(now), enc.key.clone()])
        .await?;
    Ok(write_locked(exec, t, c, enc, locked, now).await?.0)
}

/// Writes a change whose key is locked, given what the lock read (`None`:
/// no row; `Some(0)`: expired; `Some(v)`: live at v; `Some(-v)`: a
/// tombstone at v); returns the outcome and what a lock would read now.
async fn write_locked(
    exec: &mut dyn Exec,
    t: &TableSql,
    c: &VersionedChange,
    Encoded { key, version, row }: Encoded<'_>,
    locked: Option<i64>,
    now: i64,
) -> Result<(Applied, Option<i64>)> {
    let current = locked.map_or(0, |v| v.unsigned_abs());
    if c.version <= current {
        return Ok((Applied::Stale { current }, locked));
    }
    // `c.version` fits an i64: `encode` checked it.
    let v = c.version as i64;
    let exists = locked.is_some();
    let (mut row, expires) = match row {
        Some(row) => (row, Param::Null(FieldKind::Int)),
        None if t.tombstone_retention.is_zero() => {
            if exists {
                exec.execute(&t.delete, vec![key]).await?;
            }
            return Ok((Applied::Applied, None));
        }
        None if exists => {
            exec.execute(&t.tombstone, vec![version, Param::Int(-now), key])
                .await?;
            return Ok((Applied::Applied, Some(-v)));
        }
        None => (tombstone_row(t, key.clone()), Param::Int(-now)),
    };
    let after = match expires {
        Param::Int(_) => Some(-v),
        _ => Some(v),
    };
    if exists {
        row.remove(t.key_index);
        row.extend([version, expires, key]);
        exec.execute(&t.update, row).await?;
    } else {
        row.extend([version, expires]);
        exec.execute(&t.insert, row).await?;
    }
    Ok((Applied::Applied, after))
}
