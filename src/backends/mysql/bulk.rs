//! `put_many` on MySQL / MariaDB: a batch of unconditional puts runs per
//! chunk as two statements instead of two per row — one `SELECT … FOR
//! UPDATE` that locks every key of the chunk and reads its live version,
//! then one multi-row `INSERT … ON DUPLICATE KEY UPDATE` carrying the
//! versions computed from what was locked. All chunks run in one
//! transaction, so the batch stays all or nothing.

use std::collections::HashMap;

use crate::Key;
use crate::backends::sql::{
    EXPIRES_COL, Param, Select, TableSql, VERSION_COL, distinct_runs, number,
};
use crate::store::WriteOp;

/// MySQL's limit of placeholders per prepared statement is 65 535.
const MAX_PARAMS: usize = 60_000;
/// Rows per chunk, whatever the width.
const MAX_ROWS: usize = 2_000;

/// One chunk of a bulk put: distinct keys, in op order; its values borrow
/// the batch's records.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Chunk<'a> {
    /// Locks the chunk's keys: binds now, keys…; returns `(key, live
    /// version, minus a tombstone's version, or 0 when expired)` for the
    /// rows that exist.
    pub lock: Select<'a>,
    /// The upsert, with a `?` per value; bind [`Chunk::params`].
    pub insert: String,
    /// The keys, one per row, in op order.
    pub keys: Vec<&'a Key>,
    /// Each row's column values followed by its expiry (the version goes
    /// between them when the chunk runs).
    pub rows: Vec<Vec<Param<'a>>>,
}

impl<'a> Chunk<'a> {
    /// The upsert's parameters once the new versions are known (one per
    /// row, in row order). Borrowed values are not copied, so a retried
    /// chunk costs no copy of its rows.
    pub fn params(&self, versions: &[u64]) -> Vec<Param<'a>> {
        let mut out = Vec::with_capacity(self.rows.iter().map(|r| r.len() + 1).sum());
        for (row, v) in self.rows.iter().zip(versions) {
            let (expires, columns) = row.split_last().expect("a row ends with its expiry");
            out.extend(columns.iter().cloned());
            out.push(Param::Int(i64::try_from(*v).unwrap_or(i64::MAX)));
            out.push(expires.clone());
        }
        out
    }

    /// The new version of every row from the locked rows' versions: the
    /// next one for a live row or a tombstone, 1 for an absent or expired one.
    pub fn versions(&self, locked: &HashMap<Key, i64>) -> Vec<u64> {
        self.keys
            .iter()
            .map(|k| match locked.get(k) {
                // Live, or a tombstone (minus its version): continue.
                Some(v) if *v != 0 => v.unsigned_abs() + 1,
                _ => 1,
            })
            .collect()
    }
}

/// The chunks of a batch of unconditional puts (see
/// [`write::is_put_many`](crate::backends::sql::write::is_put_many)); a
/// key seen again starts a new chunk, so each chunk's rows are distinct.
/// Every record is encoded first: bad input fails before the database.
pub(super) fn chunks<'a>(
    t: &TableSql,
    ops: &'a [WriteOp],
    now: i64,
) -> Result<Vec<Chunk<'a>>, String> {
    let width = t.columns.len() + 2;
    let max_rows = (MAX_PARAMS / width).clamp(1, MAX_ROWS);
    let rows = t.bulk_rows(ops, now)?;
    let runs = distinct_runs(rows.iter().map(|(k, _)| *k), max_rows);
    // Each run's rows move into its chunk: no value is copied.
    let mut rows = rows.into_iter();
    runs.into_iter()
        .map(|run| chunk(t, rows.by_ref().take(run.len()).collect(), now))
        .collect()
}

fn chunk<'a>(
    t: &TableSql,
    rows: Vec<(&'a Key, Vec<Param<'a>>)>,
    now: i64,
) -> Result<Chunk<'a>, String> {
    let d = &*t.dialect;
    let q = &t.qtable;
    let qk = t.quote(t.key_column().name);
    let v = t.quote(VERSION_COL);
    let e = t.quote(EXPIRES_COL);
    let keys = vec!["?"; rows.len()].join(", ");
    let lock = d.lock_row(
        &format!(
            "{qk}, CASE WHEN ({e} IS NULL OR {e} > ?) THEN {v} WHEN {e} < 0 THEN 0 - {v} ELSE 0 END"
        ),
        q,
        &format!("{qk} IN ({keys})"),
    );
    let mut lock_params = Vec::with_capacity(rows.len() + 1);
    lock_params.push(Param::Int(now));
    for (k, _) in &rows {
        lock_params.push(t.key(k)?);
    }
    let names: Vec<String> = t.columns.iter().map(|c| t.quote(c.name)).collect();
    let one = format!("({})", vec!["?"; names.len() + 2].join(", "));
    let set: Vec<String> = names
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != t.key_index)
        .map(|(_, n)| format!("{n} = VALUES({n})"))
        .chain([format!("{v} = VALUES({v})"), format!("{e} = VALUES({e})")])
        .collect();
    let insert = format!(
        "INSERT INTO {q} ({}, {v}, {e}) VALUES {} ON DUPLICATE KEY UPDATE {}",
        names.join(", "),
        vec![one; rows.len()].join(", "),
        set.join(", ")
    );
    let (keys, rows) = rows.into_iter().unzip();
    Ok(Chunk {
        lock: Select {
            sql: number(d, &lock),
            params: lock_params,
        },
        insert: number(d, &insert),
        keys,
        rows,
    })
}
