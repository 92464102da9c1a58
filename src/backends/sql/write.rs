//! Running writes: the per-statement outcome logic every dialect shares.
//! The backend supplies an [`Exec`] over one connection (or transaction)
//! and the transaction around a batch.

use async_trait::async_trait;

use super::param::Param;
use super::table::{Expect, TableSql, WriteStmt};
use crate::store::{Precondition, WriteOp, WriteOutcome};
use crate::{Error, Key, Result};

/// Runs statements on one connection, with driver errors already mapped to
/// [`Error`]s naming the store and entity.
#[async_trait]
pub trait Exec: Send {
    /// Runs a statement; the first column of its first row as an integer,
    /// `None` when it returns no row.
    async fn fetch_int(&mut self, sql: &str, params: Vec<Param>) -> Result<Option<i64>>;
    /// Runs a statement; the first column of its first row as a boolean
    /// (a SQL boolean, or an integer: non-zero is true), `None` when it
    /// returns no row.
    async fn fetch_bool(&mut self, sql: &str, params: Vec<Param>) -> Result<Option<bool>>;
    /// Runs a statement; the number of rows it affected.
    async fn execute(&mut self, sql: &str, params: Vec<Param>) -> Result<u64>;
}

/// The store and entity a write is for, for errors.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Store name.
    pub store: &'a str,
    /// Entity name.
    pub entity: &'a str,
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
    let outcome = match stmt.expect {
        Expect::DeleteAbsent => {
            exec.execute(stmt.sql, stmt.params).await?;
            match live_version(exec, target, t, op.key(), now).await? {
                None => return Ok(WriteOutcome::Deleted { existed: false }),
                actual => return Err(target.conflict(op.key(), op.precondition(), actual)),
            }
        }
        Expect::DeleteAny => {
            let existed = exec.fetch_bool(stmt.sql, stmt.params).await?;
            return Ok(WriteOutcome::Deleted {
                existed: existed.unwrap_or(false),
            });
        }
        Expect::Put => exec
            .fetch_int(stmt.sql, stmt.params)
            .await?
            .map(|v| WriteOutcome::Written { version: v as u64 }),
        Expect::DeleteCond => exec
            .fetch_int(stmt.sql, stmt.params)
            .await?
            .map(|_| WriteOutcome::Deleted { existed: true }),
    };
    match outcome {
        Some(o) => Ok(o),
        None => {
            let actual = live_version(exec, target, t, op.key(), now).await?;
            Err(target.conflict(op.key(), op.precondition(), actual))
        }
    }
}

/// Every op's statement, checked and encoded before the database is touched.
pub fn statements<'t>(
    target: Target<'_>,
    t: &'t TableSql,
    ops: &[WriteOp],
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
