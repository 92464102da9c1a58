//! Versioned apply of a batch by lock-then-write with one lock for all its
//! keys (dialects whose [`Dialect::lock_key_list`] says so: MySQL/MariaDB):
//! one `SELECT key, current … WHERE key IN (…) FOR UPDATE` per chunk of
//! the batch's distinct keys locks their rows and gaps and reads them,
//! then each change is decided in Rust and written with the plain
//! statements, in input order. What a key holds after each change is
//! tracked, so a key repeated in the batch gets the answer it would get
//! alone. The writes stay one statement per applied change (see the
//! parent module on why MariaDB has no correct one-statement form).
//!
//! [`Dialect::lock_key_list`]: super::super::dialect::Dialect::lock_key_list

use std::collections::{BTreeMap, HashMap};

use super::super::dialect::{KeyList, WriteMode, number};
use super::super::param::Param;
use super::super::table::{EXPIRES_COL, TableSql, VERSION_COL};
use super::super::write::{Exec, Target};
use super::{Encoded, record, write_locked};
use crate::store::{Applied, VersionedChange};
use crate::{Key, Result};

/// Whether the table's batches take this path.
pub(super) fn by_key_list(t: &TableSql) -> bool {
    t.dialect.write_mode() == WriteMode::LockThenWrite && t.dialect.lock_key_list()
}

/// Locks every key of the batch, then applies each change in order,
/// appending its outcome to `out` and recording its event when applied.
pub(super) async fn apply(
    exec: &mut dyn Exec,
    target: Target<'_>,
    t: &TableSql,
    changes: &[VersionedChange],
    encoded: Vec<Encoded<'_>>,
    now: i64,
    out: &mut Vec<Applied>,
) -> Result<()> {
    // Distinct keys in key order (one lock order for concurrent batches).
    let keys: BTreeMap<&Key, &Param> = changes
        .iter()
        .zip(&encoded)
        .map(|(c, e)| (&c.key, &e.key))
        .collect();
    let mut held: HashMap<Key, Option<i64>> = HashMap::with_capacity(keys.len());
    let keys: Vec<Param<'_>> = keys.into_values().cloned().collect();
    for (sql, params) in lock_statements(t, keys, now) {
        for (k, v) in exec.fetch_key_ints(&sql, params, t.key_column()).await? {
            held.insert(k, Some(v));
        }
    }
    for (c, enc) in changes.iter().zip(encoded) {
        let locked = held.get(&c.key).copied().flatten();
        let (applied, after) = write_locked(exec, t, c, enc, locked, now).await?;
        held.insert(c.key.clone(), after);
        if applied.applied() {
            record(exec, target, t, c).await?;
        }
        out.push(applied);
    }
    Ok(())
}

/// The locking reads of `keys`: `key` and what [`TableSql::lock`] reads
/// (the version if live, minus a tombstone's, 0 if expired), binding now
/// then the keys; as few statements as the dialect's key list allows.
fn lock_statements<'a>(
    t: &TableSql,
    keys: Vec<Param<'a>>,
    now: i64,
) -> Vec<(String, Vec<Param<'a>>)> {
    let d = &*t.dialect;
    let qk = t.quote(t.key_column().name);
    let v = t.quote(VERSION_COL);
    let e = t.quote(EXPIRES_COL);
    let columns = format!(
        "{qk}, CASE WHEN {} THEN {v} WHEN {e} < 0 THEN 0 - {v} ELSE 0 END",
        t.live()
    );
    match d.key_list() {
        KeyList::Array => {
            let sql = d.lock_row(&columns, &t.qtable, &format!("{qk} = ANY(?)"));
            let params = vec![Param::Int(now), Param::Array(t.key_column().kind, keys)];
            vec![(number(d, &sql), params)]
        }
        KeyList::InList { chunk } => keys
            .chunks(chunk.max(1))
            .map(|c| {
                let marks = vec!["?"; c.len()].join(", ");
                let sql = d.lock_row(&columns, &t.qtable, &format!("{qk} IN ({marks})"));
                let mut params = vec![Param::Int(now)];
                params.extend(c.iter().cloned());
                (number(d, &sql), params)
            })
            .collect(),
    }
}
