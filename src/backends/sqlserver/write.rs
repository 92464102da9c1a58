//! Lock-then-write: each write locks its key (`WITH (UPDLOCK, HOLDLOCK)`)
//! inside the caller's transaction, checks the precondition against the
//! live version in Rust, then inserts, updates or deletes with plain
//! statements. Concurrent writers of one key wait for the lock.
//!
//! (The `sql` module gains the same logic as `write::apply_locked`; this
//! one is the SQL Server store's own until that lands.)

use crate::backends::sql::write::{Exec, Target};
use crate::backends::sql::{Param, TableSql};
use crate::store::{Precondition, WriteOp, WriteOutcome};
use crate::{Error, Result};

/// One write, checked and encoded before the database is touched.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Encoded {
    /// The key as bound.
    pub key: Param,
    /// A put's column values in column order; `None` for a delete.
    pub row: Option<Vec<Param>>,
    /// A put's expiry.
    pub expires: Param,
}

/// Every op checked and encoded; the first bad one is `InvalidInput`.
pub(super) fn encode(
    target: Target<'_>,
    t: &TableSql,
    ops: &[WriteOp],
    now: i64,
) -> Result<Vec<Encoded>> {
    ops.iter()
        .map(|op| {
            Ok(match op {
                WriteOp::Put { record, ttl, .. } => Encoded {
                    key: t.key(&record.key)?,
                    row: Some(t.row(record)?),
                    expires: TableSql::expires(now, *ttl),
                },
                WriteOp::Delete { key, .. } => Encoded {
                    key: t.key(key)?,
                    row: None,
                    expires: Param::Null(crate::FieldKind::Int),
                },
            })
        })
        .collect::<std::result::Result<Vec<_>, String>>()
        .map_err(|m| target.invalid(m))
}

/// Runs one write: `lock` (see [`super::tsql::lock`]), then the statement
/// the precondition and the current row call for. A failed precondition
/// is a conflict carrying the live version.
pub(super) async fn apply(
    exec: &mut dyn Exec,
    target: Target<'_>,
    t: &TableSql,
    lock: &str,
    op: &WriteOp,
    w: Encoded,
    now: i64,
) -> Result<WriteOutcome> {
    // None: no row; Some(0): an expired row; Some(v): live at version v.
    let current = exec
        .fetch_int(lock, vec![Param::Int(now), w.key.clone()])
        .await?;
    let live = current.filter(|v| *v > 0).map(|v| v as u64);
    let holds = match op.precondition() {
        Precondition::None => true,
        Precondition::Absent => live.is_none(),
        Precondition::Exists => live.is_some(),
        Precondition::Version(v) => live == Some(v),
    };
    if !holds {
        return Err(Error::conflict(
            target.store,
            target.entity,
            op.key(),
            op.precondition(),
            live,
        ));
    }
    match w.row {
        Some(mut row) => {
            let version = live.map_or(1, |v| v + 1);
            let v = Param::Int(i64::try_from(version).unwrap_or(i64::MAX));
            if current.is_some() {
                let key = row.remove(t.key_index);
                row.extend([v, w.expires, key]);
                exec.execute(&t.update, row).await?;
            } else {
                row.extend([v, w.expires]);
                exec.execute(&t.insert, row).await?;
            }
            Ok(WriteOutcome::Written { version })
        }
        None => {
            if current.is_some() {
                exec.execute(&t.delete, vec![w.key]).await?;
            }
            Ok(WriteOutcome::Deleted {
                existed: live.is_some(),
            })
        }
    }
}

/// Runs every write in order in the caller's transaction; the first
/// failure stops (the caller rolls back).
pub(super) async fn apply_all(
    exec: &mut dyn Exec,
    target: Target<'_>,
    t: &TableSql,
    lock: &str,
    ops: &[WriteOp],
    encoded: Vec<Encoded>,
    now: i64,
) -> Result<Vec<WriteOutcome>> {
    let mut out = Vec::with_capacity(ops.len());
    for (op, w) in ops.iter().zip(encoded) {
        out.push(apply(exec, target, t, lock, op, w, now).await?);
    }
    Ok(out)
}
