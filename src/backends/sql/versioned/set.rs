//! Set-based versioned apply: a run of changes with distinct keys as one
//! conditional multi-row upsert (`INSERT … SELECT FROM UNNEST(…)` with one
//! array per column on PostgreSQL, `INSERT … VALUES (…), (…)` on SQLite)
//! that returns the keys it wrote, then one query for the current
//! versions of the others (stale). Same outcomes as one statement per
//! change: the guard is the same `current < excluded.version`, evaluated
//! by the database per row, and no two rows of a run share a key.

use std::collections::{HashMap, HashSet};

use super::super::dialect::{BulkUpsert, KeyList, WriteMode, number};
use super::super::param::Param;
use super::super::table::{EXPIRES_COL, TableSql, VERSION_COL};
use super::super::write::{Exec, Target};
use super::{Encoded, current_expr, record, tombstone_row};
use crate::entity::FieldKind;
use crate::store::{Applied, VersionedChange};
use crate::{Key, Result};

/// The most changes one set statement takes, or `None` when the table's
/// dialect has no set form (every change then runs alone). PostgreSQL
/// binds one array per column (no parameter limit); SQLite binds every
/// value, within its parameter limit.
pub(super) fn max_rows(t: &TableSql) -> Option<usize> {
    if t.dialect.write_mode() != WriteMode::Returning {
        return None;
    }
    // The columns, the version and the expiry; one more parameter (now).
    Some(t.bulk_max_rows(t.dialect.bulk_upsert()?, 2))
}

/// Applies `run` (distinct keys, each version > 0, no delete under zero
/// tombstone retention) and appends its outcomes to `out` in run order,
/// recording the applied changes' events. An empty run does nothing.
pub(super) async fn apply(
    exec: &mut dyn Exec,
    target: Target<'_>,
    t: &TableSql,
    changes: &[VersionedChange],
    mut run: Vec<(usize, Encoded<'_>)>,
    now: i64,
    out: &mut Vec<Applied>,
) -> Result<()> {
    let Some(bulk) = t.dialect.bulk_upsert() else {
        debug_assert!(run.is_empty(), "a set run on a dialect without a set form");
        return Ok(());
    };
    if run.is_empty() {
        return Ok(());
    }
    // Rows in key order: concurrent appliers of overlapping runs lock
    // their rows in one order (no deadlock between two set statements).
    run.sort_by(|(a, _), (b, _)| changes[*a].key.cmp(&changes[*b].key));
    let (sql, params) = upsert(t, bulk, &mut run, now);
    let written: HashSet<Key> = exec
        .fetch_key_ints(&sql, params, t.key_column())
        .await?
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let stale: Vec<Param<'_>> = run
        .iter()
        .filter(|(i, _)| !written.contains(&changes[*i].key))
        .map(|(_, enc)| enc.key.clone())
        .collect();
    let current = currents(exec, t, stale, now).await?;
    // Outcomes (and events) in input order.
    run.sort_by_key(|(i, _)| *i);
    for (i, _) in &run {
        let c = &changes[*i];
        if written.contains(&c.key) {
            record(exec, target, t, c).await?;
            out.push(Applied::Applied);
        } else {
            out.push(Applied::Stale {
                current: current.get(&c.key).copied().unwrap_or(0),
            });
        }
    }
    Ok(())
}

/// The conditional multi-row upsert of a run and its parameters (the
/// rows, then now); returns `(key, version)` of every row it wrote.
fn upsert<'a>(
    t: &TableSql,
    bulk: BulkUpsert,
    run: &mut [(usize, Encoded<'a>)],
    now: i64,
) -> (String, Vec<Param<'a>>) {
    let d = &*t.dialect;
    let v = t.quote(VERSION_COL);
    let e = t.quote(EXPIRES_COL);
    let names: Vec<String> = t.columns.iter().map(|c| t.quote(c.name)).collect();
    // Each row: its columns (a tombstone's placeholders for a delete),
    // version, expiry (none for a put, -now for a tombstone).
    let rows = run.iter_mut().map(|(_, enc)| {
        let (mut row, expires) = match enc.row.take() {
            Some(row) => (row, Param::Null(FieldKind::Int)),
            None => (tombstone_row(t, enc.key.clone()), Param::Int(-now)),
        };
        row.extend([enc.version.clone(), expires]);
        row
    });
    let (source, mut params) = t.bulk_source(bulk, &[FieldKind::Int, FieldKind::Int], "", rows);
    params.push(Param::Int(now));
    let (head, a) = TableSql::upsert_head(d, &t.qtable, &names, t.key_index, [&v, &e], &source);
    let qk = &names[t.key_index];
    let sql = format!(
        "{head}{v} = excluded.{v}, {e} = excluded.{e} WHERE {} < excluded.{v} RETURNING {a}{qk}, {a}{v}",
        current_expr(d, &a),
    );
    (number(d, &sql), params)
}

/// The current versions of `keys` (live or tombstone; 0 when expired;
/// keys without a row are left out), in as few statements as the dialect's
/// key list allows.
async fn currents(
    exec: &mut dyn Exec,
    t: &TableSql,
    keys: Vec<Param<'_>>,
    now: i64,
) -> Result<HashMap<Key, u64>> {
    let mut found = HashMap::new();
    if keys.is_empty() {
        return Ok(found);
    }
    let d = &*t.dialect;
    let qk = t.quote(t.key_column().name);
    let select = format!(
        "SELECT {qk}, {} FROM {} WHERE {qk}",
        current_expr(d, ""),
        t.qtable
    );
    let statements: Vec<(String, Vec<Param<'_>>)> = match d.key_list() {
        KeyList::Array => vec![(
            format!("{select} = ANY(?)"),
            vec![Param::Int(now), Param::Array(t.key_column().kind, keys)],
        )],
        KeyList::InList { chunk } => keys
            .chunks(chunk.max(1))
            .map(|c| {
                let mut params = vec![Param::Int(now)];
                params.extend(c.iter().cloned());
                let marks = vec!["?"; c.len()].join(", ");
                (format!("{select} IN ({marks})"), params)
            })
            .collect(),
    };
    for (sql, params) in statements {
        let rows = exec
            .fetch_key_ints(&number(d, &sql), params, t.key_column())
            .await?;
        found.extend(rows.into_iter().map(|(k, v)| (k, v.unsigned_abs())));
    }
    Ok(found)
}
