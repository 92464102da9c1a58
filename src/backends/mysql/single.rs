//! One put in one statement (autocommit, one round trip), instead of the
//! lock-then-write transaction (`BEGIN`, `SELECT … FOR UPDATE`, write,
//! `COMMIT`: four round trips).
//!
//! Taken by a write of exactly one put on a route without an outbox (an
//! outbox event must commit with its write, so those keep the
//! transaction). The statement and how its outcome is read, by
//! precondition:
//!
//! - **none**: `INSERT … ON DUPLICATE KEY UPDATE v = LAST_INSERT_ID(CASE
//!   WHEN <expired> THEN 1 ELSE v + 1 END), e = VALUES(e), c = VALUES(c)…`.
//!   A new row is inserted at version 1 (affected rows 1); an existing one
//!   (live, expired or a tombstone) is updated (affected rows 2) and its new
//!   version comes back in the OK packet's insert id, which
//!   `LAST_INSERT_ID(expr)` sets. The version is the first assignment:
//!   MariaDB runs assignments left to right, each seeing the ones before,
//!   so it must read the old expiry before `e` is assigned. Only the
//!   version reads the old row, so one order serves (unlike versioned
//!   apply, whose condition reads both columns: see `sql::versioned`).
//! - **version n**: `UPDATE … SET …, v = v + 1 WHERE k = ? AND <live> AND
//!   v = n`: one row affected means written at n + 1 (the version always
//!   changes, so "changed" and "matched" counts agree); none is a conflict,
//!   and the live version is read for the error (a second round trip, only
//!   on conflict).
//! - **exists**: the same `UPDATE` without `v = n`, the new version from
//!   `LAST_INSERT_ID(v + 1)`.
//! - **absent**: a plain `INSERT` at version 1. A duplicate key (1062)
//!   means a row is there — live (a conflict) or dead (expired or a
//!   tombstone, which the put replaces); the caller then runs the
//!   lock-then-write path, which tells them apart.
//!
//! Every statement takes the row's (or gap's) lock like the locked path,
//! so single-statement and transactional writers of one key serialize.

use sqlx::Row;
use sqlx::mysql::{MySqlPool, MySqlQueryResult};

use super::codec::bind_all;
use crate::backends::sql::{LockedWrite, Param, TableSql};
use crate::store::Precondition;

/// The statements of one table's single-statement puts.
#[derive(Debug)]
pub(super) struct SingleSql {
    /// Put with no precondition: binds columns…, expires, now.
    upsert: String,
    /// Put if absent: binds columns…, expires.
    insert: String,
    /// Put if exists: binds non-key columns…, expires, key, now.
    update_exists: String,
    /// Put if version: binds non-key columns…, expires, key, now, version.
    update_version: String,
    /// The live version: binds key, now.
    live_version: String,
}

impl SingleSql {
    /// The statements for a table whose shared statements are `t`.
    pub(super) fn new(t: &TableSql) -> Self {
        let d = &*t.dialect;
        let q = &t.qtable;
        let names: Vec<String> = t.columns.iter().map(|c| d.quote(c.name)).collect();
        let qk = &names[t.key_index];
        let non_key: Vec<&String> = names
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != t.key_index)
            .map(|(_, n)| n)
            .collect();
        let v = d.quote(crate::backends::sql::VERSION_COL);
        let e = d.quote(crate::backends::sql::EXPIRES_COL);
        let live = format!("({e} IS NULL OR {e} > ?)");
        let head = format!(
            "INSERT INTO {q} ({}, {v}, {e}) VALUES ({}, 1, ?)",
            names.join(", "),
            vec!["?"; names.len()].join(", ")
        );
        let set_values: String = non_key
            .iter()
            .map(|n| format!(", {n} = VALUES({n})"))
            .collect();
        // The version first: it reads the old expiry (see the module doc).
        let upsert = format!(
            "{head} ON DUPLICATE KEY UPDATE {v} = LAST_INSERT_ID(CASE WHEN {e} >= 0 AND {e} <= ? THEN 1 ELSE {v} + 1 END), {e} = VALUES({e}){set_values}"
        );
        let set_params: String = non_key.iter().map(|n| format!("{n} = ?, ")).collect();
        let update_exists = format!(
            "UPDATE {q} SET {set_params}{v} = LAST_INSERT_ID({v} + 1), {e} = ? WHERE {qk} = ? AND {live}"
        );
        let update_version = format!(
            "UPDATE {q} SET {set_params}{v} = {v} + 1, {e} = ? WHERE {qk} = ? AND {live} AND {v} = ?"
        );
        SingleSql {
            upsert,
            insert: head,
            update_exists,
            update_version,
            live_version: format!("SELECT {v} FROM {q} WHERE {qk} = ? AND {live}"),
        }
    }
}

/// What one single-statement put did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Single {
    /// Written at this version.
    Written(u64),
    /// The precondition failed; the key's live version then.
    Conflict(Option<u64>),
    /// Undecided without the lock (an insert-only put found a row): run
    /// the lock-then-write path.
    Locked,
}

/// Runs one put of `w` under `precondition` in one autocommit statement.
/// Driver errors are returned as they are, for the caller to map (and
/// retry deadlocks).
pub(super) async fn put(
    pool: &MySqlPool,
    s: &SingleSql,
    key_index: usize,
    precondition: Precondition,
    w: LockedWrite<'_>,
    now: i64,
) -> Result<Single, sqlx::Error> {
    let mut row = w.row.unwrap_or_default();
    match precondition {
        Precondition::None => {
            row.extend([w.expires, Param::Int(now)]);
            let r = bind_all(sqlx::query(&s.upsert), row).execute(pool).await?;
            upserted(&r).map(Single::Written)
        }
        Precondition::Absent => {
            row.push(w.expires);
            match bind_all(sqlx::query(&s.insert), row).execute(pool).await {
                Ok(_) => Ok(Single::Written(1)),
                Err(e) if super::error_number(&e) == Some(1062) => Ok(Single::Locked),
                Err(e) => Err(e),
            }
        }
        Precondition::Exists | Precondition::Version(_) => {
            let key = row.remove(key_index);
            row.extend([w.expires, key, Param::Int(now)]);
            let sql = match precondition {
                Precondition::Version(v) => {
                    row.push(Param::Int(i64::try_from(v).unwrap_or(i64::MAX)));
                    &s.update_version
                }
                _ => &s.update_exists,
            };
            let r = bind_all(sqlx::query(sql), row).execute(pool).await?;
            match (r.rows_affected(), precondition) {
                (0, _) => {
                    let live = bind_all(sqlx::query(&s.live_version), vec![w.key, Param::Int(now)])
                        .fetch_optional(pool)
                        .await?
                        .map(|r| r.try_get::<i64, _>(0))
                        .transpose()?;
                    Ok(Single::Conflict(live.map(|v| v as u64)))
                }
                (_, Precondition::Version(v)) => Ok(Single::Written(v + 1)),
                _ => Ok(Single::Written(r.last_insert_id())),
            }
        }
    }
}

/// The version an upsert wrote: 1 for an inserted row (affected rows 1,
/// no `LAST_INSERT_ID(expr)` ran), else the insert id the version
/// assignment set.
fn upserted(r: &MySqlQueryResult) -> Result<u64, sqlx::Error> {
    match (r.rows_affected(), r.last_insert_id()) {
        (1, _) => Ok(1),
        (_, v) if v > 0 => Ok(v),
        (n, v) => Err(sqlx::Error::Protocol(format!(
            "the upsert reported {n} affected rows and insert id {v}; expected 1, or 2 and the new version"
        ))),
    }
}
