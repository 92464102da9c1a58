//! The shared SQL layer for backend authors: table layout, statement
//! building, filter translation, table checks, row decoding and the write
//! logic every SQL store uses. Not a store itself (like OpenDAL's `raw`):
//! the `sqlite`, `postgres`, `mysql` and `sqlserver` backends are thin
//! layers over it — configuration, pool, parameter binding and their
//! [`Dialect`].
//!
//! Compiled when any SQL backend feature (`sqlite`, `postgres`, `mysql`,
//! `sqlserver`) is on; a new SQL backend adds its feature to the
//! `cfg(any(…))` on `mod sql` in `src/backends/mod.rs`.
//!
//! # What is shared
//!
//! - [`TableSql`]: one entity's table — [`Column`]s (the key first when the
//!   schema does not list it), the bookkeeping columns `_pr_version` and
//!   `_pr_expires_at` (unix microseconds, `NULL`: never), `CREATE TABLE`,
//!   and every statement, built once per table. Statements are text plus
//!   an ordered `Vec` of driver-neutral [`Param`]s, so any driver can run
//!   them (sqlx, tiberius, …). Values are always bound, identifiers always
//!   quoted. A write's text, bytes and JSON parameters borrow the record
//!   they come from, so a row is converted once (struct → [`Record`](crate::Record))
//!   and the driver encodes straight from the record.
//! - Filters ([`TableSql::filter`]) render to expressions that are never
//!   SQL `NULL`, so `NOT`/`OR` follow the two-valued logic of
//!   [`crate::store::eval`]: comparisons across types follow the
//!   reference type rank, sub-microsecond timestamps and fractional floats
//!   against integer columns compare exactly, prefix/contains are literal
//!   (never `LIKE` on user text).
//! - Keyset paging order ([`TableSql::query`]): the requested order, nulls
//!   first ascending and last descending, then the key.
//! - [`check_table`]: an existing table that cannot hold the entity is a
//!   config error naming the store, table and column, and what to do.
//! - [`decode_record`] and storage helpers for rows coming back.
//! - [`write`](mod@write): the outcome of each conditional write (versions, conflicts
//!   with the current version) over a backend's [`write::Exec`].
//! - [`Tables`], [`purge`], [`spawn_purge`]: the per-store statement cache
//!   and TTL purge.
//! - [`OutboxSql`], [`record_event`], [`outbox_entry`]: the transactional
//!   outbox (`<table>__outbox`); writes run through [`write`](mod@write)
//!   record their events when [`write::Target::outbox`] is set.
//! - [`apply_versioned`]: versioned apply over a backend's [`write::Exec`].
//!
//! # Adding a dialect
//!
//! 1. Implement [`Dialect`] in the backend's folder (`src/backends/<kind>/dialect.rs`).
//!    Each dialect must supply:
//!    - identifier quoting ([`Dialect::quote`]) and name checks
//!      ([`Dialect::check_ident`], [`Dialect::case_insensitive_idents`]);
//!    - parameter markers ([`Dialect::placeholder`]: `?`, `$n`, `@Pn`);
//!      the builder writes `?` and [`number`] rewrites them;
//!    - column types per logical [`FieldKind`](crate::FieldKind), for data
//!      and key columns ([`Dialect::column_type`]), the 64-bit integer of
//!      the bookkeeping columns ([`Dialect::bigint_type`]), and which
//!      existing column types are compatible ([`Dialect::holds`]); JSON and
//!      timestamps are stored so that ordering matches the reference
//!      (JSON by its compact text, timestamps to the microsecond);
//!    - whether text holds NUL ([`Dialect::text_holds_nul`]) and key
//!      limits ([`Dialect::key_problem`]);
//!    - boolean literals ([`Dialect::literal`]), null ordering
//!      ([`Dialect::order`]), limit syntax ([`Dialect::limit`]);
//!    - literal, byte-exact [`Dialect::prefix`] and [`Dialect::contains`]
//!      (`%`, `_` and NUL are data; no `LIKE` on user text unless escaped);
//!    - how conditional writes learn their outcome ([`Dialect::write_mode`]):
//!      `RETURNING` (PostgreSQL, SQLite; the upsert is
//!      `INSERT … ON CONFLICT … DO UPDATE`) or lock-then-write (MySQL/MariaDB:
//!      `SELECT … FOR UPDATE`, then plain `INSERT`/`UPDATE`/`DELETE`; SQL
//!      Server can use it with [`Dialect::lock_row`] as
//!      `WITH (UPDLOCK, HOLDLOCK)`);
//!    - how `get_many` passes keys ([`Dialect::key_list`]), the expiry index
//!      ([`Dialect::create_index`], [`Dialect::table_suffix`]) and the purge
//!      statement ([`Dialect::purge`]).
//!
//!    Optional hooks with defaults: [`Dialect::operand`],
//!    [`Dialect::ordered`], [`Dialect::ordered_operand`] (casts or collations
//!    around compared values), [`Dialect::upsert_alias`],
//!    [`Dialect::quote_table`] (schema-qualified table names),
//!    [`Dialect::exact_cmp`], [`Dialect::order_tiebreak`] and
//!    [`Dialect::key_order_hint`] (comparisons and orders made exact where
//!    the database pads values, as SQL Server does with trailing spaces and
//!    MariaDB's sort keys with zero bytes).
//! 2. Bind [`Param`]s with the driver (one `match` over the enum; bind a
//!    borrowed value as a reference where the driver can), and read
//!    rows with [`decode_record`].
//! 3. Implement [`write::Exec`] over a connection and run writes with
//!    [`write::statements`] + [`write::apply`] / [`write::apply_all`] inside
//!    a transaction for batches (or [`write::locked_writes`] +
//!    [`write::apply_locked`] inside a transaction in lock-then-write mode).
//! 4. Read the table's catalog into [`ColumnInfo`]s and call [`check_table`]
//!    in `ensure_entity`.
//! 5. Unit-test the generated SQL text, and run
//!    `reference::compare_with_reference` (test builds) against a live
//!    server.
//!
//! ```
//! # #[cfg(feature = "sqlite")] {
//! use std::sync::Arc;
//! use polyrouter::backends::sql::TableSql;
//! use polyrouter::{FieldDef, FieldKind, KeyKind, Schema};
//! static F: [FieldDef; 2] = [FieldDef::required("id", FieldKind::Int), FieldDef::nullable("n", FieldKind::String)];
//! static S: Schema = Schema { name: "t", key: "id", key_kind: KeyKind::Int, partition_key: None, version: None, fields: &F };
//! let t = TableSql::new(Arc::new(polyrouter::backends::sqlite::SqliteDialect), &S, "t").unwrap();
//! assert!(t.create_table.starts_with("CREATE TABLE IF NOT EXISTS \"t\""));
//! # }
//! ```

mod ddl;
mod decode;
mod dialect;
mod filter;
pub mod graph;
pub mod outbox;
mod param;
mod pool;
#[cfg(test)]
pub(crate) mod reference;
mod support;
#[cfg(test)]
pub(crate) mod sync_checks;
mod table;
mod versioned;
pub mod write;

pub use ddl::{ColumnInfo, check_table};
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub(crate) use decode::sqlx_key_ints;
pub use decode::{
    decode_record, json_from_text, key_ints, timestamp_from_micros, uuid_from_text, uuid_text,
};
pub use dialect::{BulkUpsert, Dialect, KeyList, WriteMode, number};
pub use outbox::{OUTBOX_SUFFIX, OutboxSql, outbox_entry, record_event};
pub use param::{Param, encode_field, floor_micros, key_field_kind, key_param, value_param};
pub use pool::{DEFAULT_PING_AFTER_IDLE, SslMode, check_pool_options, ping_after_idle};
pub use support::{
    Message, Tables, check_params, entity_config_error, now_micros, purge, spawn_purge,
};
pub use table::{
    BulkPut, Column, EXPIRES_COL, Expect, LockedWrite, PURGE_CHUNK, RESERVED_PREFIX, Select,
    TableSql, VERSION_COL, WriteStmt, distinct_runs,
};
pub use versioned::{VersionedSql, apply_versioned};
