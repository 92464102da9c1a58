//! Running writes: the per-statement outcome logic every dialect shares.
//! The backend supplies an [`Exec`] over one connection (or transaction)
//! and the transaction around a batch.

use async_trait::async_trait;

use super::outbox::record_event;
use super::param::Param;
use super::table::{BulkPut, Column, Expect, LockedWrite, TableSql, WriteStmt};
use crate::store::{EntityInfo, Precondition, WriteOp, WriteOutcome, outbox_event};
use crate::{Error, Key, Result};

/// Runs statements on one connection, with driver errors already mapped to
/// [`Error`]s naming the store and entity.
#[async_trait]
pub trait Exec: Send {
    /// Runs a statement; the first column of its first row as an integer,
    /// `None` when it returns no row.
    async fn fetch_int(&mut self, sql: &str, params: Vec<Param<'_>>) -> Result<Option<i64>>;
    /// Runs a statement; the first column of its first row as a boolean
    /// (a SQL boolean, or an integer: non-zero is true), `None` when it
    /// returns no row.
    async fn fetch_bool(&mut self, sql: &str, params: Vec<Param<'_>>) -> Result<Option<bool>>;
    /// Runs a statement; the number of rows it affected.
    async fn execute(&mut self, sql: &str, params: Vec<Param<'_>>) -> Result<u64>;
    /// Runs a statement; every row's first column as an integer and its
    /// second as text (outbox entries: `seq`, `event`).
    async fn fetch_int_text(
        &mut self,
        sql: &str,
        params: Vec<Param<'_>>,
    ) -> Result<Vec<(i64, String)>>;
    /// Runs a statement; every row's first column read as a key of the
    /// key column `key`, its second as an integer (set-based versioned
    /// apply: the keys a multi-row upsert wrote, current versions).
    async fn fetch_key_ints(
        &mut self,
        sql: &str,
        params: Vec<Param<'_>>,
        key: &Column,
    ) -> Result<Vec<(Key, i64)>>;
}

/// The store and entity a write is for, for errors, and the route's
/// outbox its writes record their events in.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Store name.
    pub store: &'a str,
    /// Entity name.
    pub entity: &'a str,
    /// The entity when its route has an outbox
    /// ([`EntityInfo::outbox`](crate::store::EntityInfo::outbox)): every
    /// applied write records its event in the same transaction.
    pub outbox: Option<&'a EntityInfo>,
}

impl<'a> Target<'a> {
    /// The target of writes of `entity` through store `store`.
    ///
    /// ```
    /// # use polyrouter::{FieldDef, KeyKind, Schema, store::EntityInfo};
    /// # static F: [FieldDef; 0] = [];
    /// # static S: Schema = Schema { name: "t", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
    /// # #[cfg(feature = "sqlite")] {
    /// let e = EntityInfo::new(&S);
    /// let t = polyrouter::backends::sql::write::Target::new("main", &e);
    /// assert!(t.entity == "t" && t.outbox.is_none());
    /// # }
    /// ```
    pub fn new(store: &'a str, entity: &'a EntityInfo) -> Self {
        Target {
            store,
            entity: entity.name(),
            outbox: entity.outbox.map(|_| entity),
        }
    }
}

impl Target<'_> {
    fn conflict(&self, key: &Key, expected: Precondition, actual: Option<u64>) -> Error {
        Error::conflict(self.store, self.entity, key, expected, actual)
    }

    /// Bad input: [`Error::InvalidInput`] naming the store and entity.
    pub fn invalid(&self, message: String) -> Error {
        Error::invalid_input(self.store, self.entity, message)
    }
}

/// The live version of a key, on the connection (inside its transaction).
pub async fn live_version(
    exec: &mut dyn Exec,
    target: Target<'_>,
    t: &TableSql,
    key: &Key,
    now: i64,
) -> Result<Option<u64>> {
    let key = t.key(key).map_err(|m| target.invalid(m))?;
    Ok(exec
        .fetch_int(&t.live_version, vec![key, Param::Int(now)])
        .await?
        .map(|v| v as u64))
}

/// Runs one [`WriteMode::Returning`](super::WriteMode::Returning) statement
/// and reads its outcome; a failed precondition is a conflict carrying the
/// current live version.
pub async fn apply(
    exec: &mut dyn Exec,
    target: Target<'_>,
    t: &TableSql,
    op: &WriteOp,
    stmt: WriteStmt<'_>,
    now: i64,
) -> Result<WriteOutcome> {
    // The new version of a put, or of a deleted record's tombstone.
    let version = match stmt.expect {
        Expect::DeleteAbsent => {
            exec.execute(stmt.sql, stmt.params).await?;
            match live_version(exec, target, t, op.key(), now).await? {
                None => return Ok(WriteOutcome::Deleted { existed: false }),
                actual => return Err(target.conflict(op.key(), op.precondition(), actual)),
            }
        }
        Expect::DeleteAny => {
            let Some(v) = exec.fetch_int(stmt.sql, stmt.params).await? else {
                return Ok(WriteOutcome::Deleted { existed: false });
            };
            Some(v)
        }
        Expect::Put | Expect::DeleteCond => exec.fetch_int(stmt.sql, stmt.params).await?,
    };
    let Some(version) = version else {
        let actual = live_version(exec, target, t, op.key(), now).await?;
        return Err(target.conflict(op.key(), op.precondition(), actual));
    };
    let version = version as u64;
    record_write(exec, target, t, op, version).await?;
    Ok(match op {
        WriteOp::Put { .. } => WriteOutcome::Written { version },
        WriteOp::Delete { .. } => WriteOutcome::Deleted { existed: true },
    })
}

/// Records the event of an applied write (a put at `version`, or a
/// delete leaving its tombstone at `version`) in the route's outbox, if it
/// has one, on the write's connection and transaction.
pub async fn record_write(
    exec: &mut dyn Exec,
    target: Target<'_>,
    t: &TableSql,
    op: &WriteOp,
    version: u64,
) -> Result<()> {
    let Some(entity) = target.outbox else {
        return Ok(());
    };
    let event = match op {
        WriteOp::Put { record, .. } => {
            let mut record = record.clone();
            record.version = version;
            outbox_event(entity, &record.key, Some(&record), version)
        }
        WriteOp::Delete { key, .. } => outbox_event(entity, key, None, version),
    };
    record_event(exec, &t.outbox, event).await
}

/// Records the events of a batch of puts written by one of the bulk paths
/// ([`TableSql::put_many`], or a backend's own), from their outcomes, in
/// the batch's transaction.
pub async fn record_puts(
    exec: &mut dyn Exec,
    target: Target<'_>,
    t: &TableSql,
    ops: &[WriteOp],
    outcomes: &[WriteOutcome],
) -> Result<()> {
    if target.outbox.is_none() {
        return Ok(());
    }
    for (op, outcome) in ops.iter().zip(outcomes) {
        if let WriteOutcome::Written { version } = outcome {
            record_write(exec, target, t, op, *version).await?;
        }
    }
    Ok(())
}

/// Every op's statement, checked and encoded before the database is touched.
pub fn statements<'t>(
    target: Target<'_>,
    t: &'t TableSql,
    ops: &'t [WriteOp],
    now: i64,
) -> Result<Vec<WriteStmt<'t>>> {
    ops.iter()
        .map(|op| t.write(op, now))
        .collect::<std::result::Result<Vec<_>, String>>()
        .map_err(|m| target.invalid(m))
}

/// Runs every statement in order on one connection (the caller's
/// transaction); the first failure stops and is returned (the caller rolls
/// back).
pub async fn apply_all(
    exec: &mut dyn Exec,
    target: Target<'_>,
    t: &TableSql,
    ops: &[WriteOp],
    stmts: Vec<WriteStmt<'_>>,
    now: i64,
) -> Result<Vec<WriteOutcome>> {
    let mut outcomes = Vec::with_capacity(ops.len());
    for (op, stmt) in ops.iter().zip(stmts) {
        outcomes.push(apply(exec, target, t, op, stmt, now).await?);
    }
    Ok(outcomes)
}

/// Every op checked and encoded for [`apply_locked`], before the database
/// is touched.
pub fn locked_writes<'a>(
    target: Target<'_>,
    t: &TableSql,
    ops: &'a [WriteOp],
    now: i64,
) -> Result<Vec<LockedWrite<'a>>> {
    ops.iter()
        .map(|op| t.locked(op, now))
        .collect::<std::result::Result<Vec<_>, String>>()
        .map_err(|m| target.invalid(m))
}

/// Runs one write in [`WriteMode::LockThenWrite`](super::WriteMode::LockThenWrite)
/// inside the caller's transaction: locks the key's row (or gap) with
/// [`TableSql::lock`], checks the precondition against the live version,
/// then inserts, updates or deletes. Concurrent writers of one key wait for
/// the lock; the outcomes equal [`apply`]'s.
pub async fn apply_locked(
    exec: &mut dyn Exec,
    target: Target<'_>,
    t: &TableSql,
    op: &WriteOp,
    w: LockedWrite<'_>,
    now: i64,
) -> Result<WriteOutcome> {
    // None: no row; Some(0): an expired row; Some(v): live at version v;
    // Some(-v): a tombstone at version v.
    let current = exec
        .fetch_int(&t.lock, vec![Param::Int(now), w.key.clone()])
        .await?;
    let live = current.filter(|v| *v > 0).map(|v| v as u64);
    let buried = current.filter(|v| *v < 0).map(|v| v.unsigned_abs());
    let holds = match op.precondition() {
        Precondition::None => true,
        Precondition::Absent => live.is_none(),
        Precondition::Exists => live.is_some(),
        Precondition::Version(v) => live == Some(v),
    };
    if !holds {
        return Err(target.conflict(op.key(), op.precondition(), live));
    }
    match w.row {
        Some(mut row) => {
            let version = live.or(buried).map_or(1, |v| v + 1);
            let v = Param::Int(i64::try_from(version).unwrap_or(i64::MAX));
            if current.is_some() {
                let key = row.remove(t.key_index);
                row.extend([v, w.expires, key]);
                exec.execute(&t.update, row).await?;
            } else {
                row.extend([v, w.expires]);
                exec.execute(&t.insert, row).await?;
            }
            record_write(exec, target, t, op, version).await?;
            Ok(WriteOutcome::Written { version })
        }
        None => {
            match live {
                Some(v) => {
                    let p = Param::Int(i64::try_from(v + 1).unwrap_or(i64::MAX));
                    exec.execute(&t.tombstone, vec![p, Param::Int(-now), w.key])
                        .await?;
                    record_write(exec, target, t, op, v + 1).await?;
                }
                // An expired row goes; a tombstone stays.
                None if current == Some(0) => {
                    exec.execute(&t.delete, vec![w.key]).await?;
                }
                None => {}
            }
            Ok(WriteOutcome::Deleted {
                existed: live.is_some(),
            })
        }
    }
}

/// Runs every write of a batch in order with [`apply_locked`] inside the
/// caller's transaction; the first failure stops (the caller rolls back).
pub async fn apply_all_locked(
    exec: &mut dyn Exec,
    target: Target<'_>,
    t: &TableSql,
    ops: &[WriteOp],
    writes: Vec<LockedWrite<'_>>,
    now: i64,
) -> Result<Vec<WriteOutcome>> {
    let mut out = Vec::with_capacity(ops.len());
    for (op, w) in ops.iter().zip(writes) {
        out.push(apply_locked(exec, target, t, op, w, now).await?);
    }
    Ok(out)
}

/// Whether a batch is only unconditional puts (and more than one op), so
/// [`TableSql::put_many`] can write it.
pub fn is_put_many(ops: &[WriteOp]) -> bool {
    ops.len() > 1
        && ops.iter().all(|op| {
            matches!(
                op,
                WriteOp::Put {
                    precondition: Precondition::None,
                    ..
                }
            )
        })
}

/// The outcomes of one [`BulkPut`] from the `(key, version)` rows it
/// returned, in op order.
pub fn bulk_outcomes(
    target: Target<'_>,
    bulk: &BulkPut,
    returned: Vec<(Key, i64)>,
) -> Result<Vec<WriteOutcome>> {
    let versions: foldhash::HashMap<Key, i64> = returned.into_iter().collect();
    bulk.keys
        .iter()
        .map(|k| match versions.get(k) {
            Some(v) => Ok(WriteOutcome::Written { version: *v as u64 }),
            None => Err(Error::backend(
                target.store,
                target.entity,
                super::Message(format!("the bulk upsert returned no version for key {k}")),
            )),
        })
        .collect()
}
