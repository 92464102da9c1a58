//! Change capture: the changes committed to an entity's table by *any*
//! writer — polyrouter, another application, `psql` — read from the
//! store's own change stream and published as the same [`ChangeEvent`]s
//! the outbox emits, so the same projections apply them (docs/cdc.md).
//!
//! A store that has a change stream hands out a [`ChangeSource`]
//! ([`Store::change_source`](crate::Store::change_source)); [`Capture`]
//! moves its changes to a bus at least once: it reads from the durable
//! position, publishes, and only then moves the position
//! ([`ChangeSource::commit`]). A capture that dies in between reads the
//! same changes again, as events with the same ids (the bus keeps them
//! once) and the same versions (projections apply by version).
//!
//! PostgreSQL: logical decoding (`wal_level = logical`) through a
//! replication slot and a publication of the entity's table. MySQL /
//! MariaDB: the row-based binary log (`binlog_format = ROW`), read over
//! the replication protocol from a position kept in the table
//! `polyrouter_capture`. Redis has no reliable change stream and Cosmos
//! DB and SQL Server are not read yet: they answer
//! [`Error::Unsupported`](crate::Error) with the reason ([`unsupported`]).

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::ChangeEvent;
use crate::Result;

#[cfg(feature = "mysql")]
pub(crate) mod mysql;
#[cfg(feature = "mysql")]
mod mysql_rows;
#[cfg(feature = "postgres")]
pub(crate) mod pgoutput;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
mod runner;
mod start;
#[cfg(feature = "postgres")]
mod text;

pub use runner::{Capture, CaptureStatus};
pub(crate) use start::start_captures;

/// What one [`ChangeSource::read`] returns.
///
/// ```
/// let b = polyrouter::sync::capture::CapturedBatch::default();
/// assert!(b.events.is_empty() && b.position.is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CapturedBatch {
    /// The row changes of whole committed transactions, in commit order
    /// (per key: in the order the store applied them).
    pub events: Vec<ChangeEvent>,
    /// Where the next read starts once [`ChangeSource::commit`]ted (a
    /// PostgreSQL LSN; for MySQL / MariaDB the binlog file's number in the
    /// high 32 bits and the offset in it in the low 32); `None`: nothing
    /// to move past.
    pub position: Option<u64>,
}

/// How much change history the server keeps for a source (a stopped
/// consumer's slot keeps write-ahead log until it resumes).
///
/// ```
/// let r = polyrouter::sync::capture::Retention::default();
/// assert_eq!(r.retained_bytes, 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Retention {
    /// Bytes of log the server keeps for this source.
    pub retained_bytes: u64,
    /// The server's word on it: PostgreSQL's `wal_status` (`reserved`,
    /// `extended`, `unreserved`, or `lost` when `max_slot_wal_keep_size`
    /// removed log the slot still needed); MySQL / MariaDB: `reserved`, or
    /// `lost` once the binlog file of the position was purged.
    pub status: String,
    /// The durable position (the slot's confirmed LSN; MySQL / MariaDB:
    /// as in [`CapturedBatch::position`]).
    pub position: u64,
}

/// A store's stream of the changes committed to one entity's table.
#[async_trait]
pub trait ChangeSource: Send + Sync + fmt::Debug + 'static {
    /// Where it reads, e.g. `replication slot polyrouter_order`.
    fn describe(&self) -> String;

    /// Creates what it reads from when missing (idempotent); the changes
    /// committed from then on are captured. `Error::Unsupported` when the
    /// server cannot (e.g. `wal_level` is not `logical`).
    async fn prepare(&self) -> Result<()>;

    /// The changes committed after the durable position: whole
    /// transactions, about `max` messages (more when one transaction is
    /// larger). Until [`commit`](Self::commit), reading again returns the
    /// same events with the same ids and versions.
    async fn read(&self, max: usize) -> Result<CapturedBatch>;

    /// Makes `position` durable: later reads start after it.
    async fn commit(&self, position: u64) -> Result<()>;

    /// How much log the server keeps for this source now.
    async fn retention(&self) -> Result<Retention>;

    /// Where the store's log ends now (PostgreSQL: the flushed WAL
    /// position; MySQL / MariaDB: the binlog's end, encoded as in
    /// [`CapturedBatch::position`]): every change committed before this
    /// call lies before it. With [`published_through`](Self::published_through),
    /// what a migration's cutover waits on.
    async fn head(&self) -> Result<u64>;

    /// Whether every change of the table committed before `head` (a value
    /// of [`head`](Self::head)) has been published by the capture: its
    /// durable position passed `head`, or nothing of the table lies
    /// between the durable position and the log's end. Reads nothing that
    /// the capture worker reads at the same moment.
    async fn published_through(&self, head: u64) -> Result<bool>;

    /// Removes what [`prepare`](Self::prepare) created (the server stops
    /// keeping log for it).
    async fn remove(&self) -> Result<()>;
}

/// The `Error::Unsupported` of a store kind without a change stream
/// polyrouter reads, with the reason.
///
/// ```
/// let e = polyrouter::sync::capture::unsupported("cache", "redis", "session");
/// assert!(e.to_string().contains("no reliable change stream"));
/// ```
pub fn unsupported(store: &str, kind: &str, entity: &str) -> crate::Error {
    let why = match kind {
        "redis" => {
            "change capture: Redis has no reliable change stream (keyspace notifications are fire-and-forget, lost while no client listens, and carry no values); write through polyrouter with `outbox` instead"
        }
        "cosmos" => {
            "change capture: not built for Cosmos DB yet (the SDK's latest-version change feed reports no deletes; its all-versions-and-deletes mode needs continuous backup on the account); use `outbox`"
        }
        "sqlserver" => {
            "change capture: not built for SQL Server yet (its CDC tables need SQL Server Agent); use `outbox`"
        }
        "mysql" => {
            "change capture: this build reads the MySQL / MariaDB binlog only with the cargo feature `mysql` (which the store needs anyway); use `outbox` otherwise"
        }
        _ => "change capture: this store kind has no change stream polyrouter reads; use `outbox`",
    };
    crate::Error::unsupported(store, entity, why)
}
