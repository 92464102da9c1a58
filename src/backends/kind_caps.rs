//! What each store kind can do, written once.
//!
//! Every backend builds its [`Capabilities`] with the function of its kind
//! here, and [`KINDS`](super::KINDS) describes every kind with the same
//! function — compiled whatever the cargo features, so `polyrouter advise`
//! and `polyrouter topology` can reason about a kind without opening a
//! store or compiling its driver. Where a capability depends on a store's
//! options (or its server's settings), [`KindInfo::depends`](super::KindInfo::depends)
//! says which and how.

use crate::{Capabilities, FilterCaps};

/// A capability that depends on a store's options or its server.
///
/// ```
/// let d = polyrouter::backends::kind_caps::OptionDependency { capability: "shared", how: "off for in-memory URLs" };
/// assert_eq!(d.capability, "shared");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionDependency {
    /// The capability's name, as [`Capabilities::names`] spells it (or
    /// `max-record-bytes`).
    pub capability: &'static str,
    /// What changes it.
    pub how: &'static str,
}

/// The most operations one Cosmos DB transactional batch takes.
pub const COSMOS_MAX_BATCH_OPS: usize = 100;
/// The largest item Cosmos DB stores.
pub const COSMOS_MAX_ITEM_BYTES: usize = 2 * 1024 * 1024;
/// The largest record (encoded) Redis accepts as one argument: its default
/// `proto-max-bulk-len`.
pub const REDIS_MAX_RECORD_BYTES: usize = 512 * 1024 * 1024;
/// The most writes of one atomic batch on a Redis Cluster (one script,
/// which blocks its node while it runs).
pub const REDIS_CLUSTER_MAX_BATCH_OPS: usize = 10_000;
/// MySQL's `max_allowed_packet` default (16 MiB; MySQL 8 ships 64 MiB).
pub const MYSQL_MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

/// The in-process store: everything, graphs, time series and blobs; not
/// shared between processes.
///
/// ```
/// assert!(polyrouter::backends::kind_caps::memory().blob);
/// ```
pub const fn memory() -> Capabilities {
    Capabilities {
        graph: true,
        time_series: true,
        blob: true,
        outbox: true,
        versioned_apply: true,
        ..Capabilities::all()
    }
}

/// SQLite; `in_memory`: a `sqlite::memory:` URL, which only this process sees.
///
/// ```
/// assert!(!polyrouter::backends::kind_caps::sqlite(true).shared);
/// ```
pub const fn sqlite(in_memory: bool) -> Capabilities {
    Capabilities {
        shared: !in_memory,
        max_record_bytes: Some(1_000_000_000),
        graph: true,
        time_series: true,
        outbox: true,
        versioned_apply: true,
        ..Capabilities::all()
    }
}

/// PostgreSQL: records, graphs, time series and full-text search.
///
/// ```
/// assert!(polyrouter::backends::kind_caps::postgres().search);
/// ```
pub const fn postgres() -> Capabilities {
    Capabilities {
        shared: true,
        max_record_bytes: Some(1_000_000_000),
        graph: true,
        time_series: true,
        search: true,
        outbox: true,
        versioned_apply: true,
        ..Capabilities::all()
    }
}

/// MySQL / MariaDB: records.
///
/// ```
/// assert!(polyrouter::backends::kind_caps::mysql().transactions);
/// ```
pub const fn mysql() -> Capabilities {
    Capabilities {
        shared: true,
        max_record_bytes: Some(MYSQL_MAX_RECORD_BYTES),
        outbox: true,
        versioned_apply: true,
        ..Capabilities::all()
    }
}

/// SQL Server / Azure SQL: records.
///
/// ```
/// assert!(polyrouter::backends::kind_caps::sqlserver().sort);
/// ```
pub const fn sqlserver() -> Capabilities {
    Capabilities {
        shared: true,
        max_record_bytes: Some(1_000_000_000),
        ..Capabilities::all()
    }
}

/// Redis: point operations, atomic batches, TTL, key prefixes; no queries.
///
/// ```
/// let c = polyrouter::backends::kind_caps::redis();
/// assert!(c.ttl && !c.query);
/// ```
pub const fn redis() -> Capabilities {
    Capabilities {
        records: true,
        ttl: true,
        if_absent: true,
        if_exists: true,
        if_version: true,
        batch: true,
        batch_atomic: true,
        batch_atomic_partition: None,
        query: false,
        filters: FilterCaps::none(),
        sort: false,
        count: false,
        max_record_bytes: Some(REDIS_MAX_RECORD_BYTES),
        transactions: false,
        shared: true,
        key_prefix: true,
        graph: false,
        search: false,
        time_series: false,
        blob: false,
        change_feed: false,
        outbox: true,
        versioned_apply: true,
    }
}

/// Redis Cluster: as [`redis()`], but a batch is atomic only when all its
/// keys share one hash slot (one key, or keys with a common hash tag), and
/// there is no transactional outbox (one stream per table cannot share a
/// slot with every record).
///
/// ```
/// let c = polyrouter::backends::kind_caps::redis_cluster();
/// assert!(c.ttl && !c.batch_atomic && c.batch_atomic_partition.is_some() && !c.outbox);
/// ```
pub const fn redis_cluster() -> Capabilities {
    Capabilities {
        batch_atomic: false,
        batch_atomic_partition: Some(REDIS_CLUSTER_MAX_BATCH_OPS),
        outbox: false,
        ..redis()
    }
}

/// A Gremlin server: graphs only.
///
/// ```
/// let c = polyrouter::backends::kind_caps::gremlin();
/// assert!(c.graph && !c.query);
/// ```
pub const fn gremlin() -> Capabilities {
    Capabilities {
        ttl: false,
        if_absent: false,
        if_exists: false,
        if_version: false,
        batch: false,
        batch_atomic: false,
        query: false,
        filters: FilterCaps::none(),
        sort: false,
        count: false,
        transactions: false,
        shared: true,
        graph: true,
        ..Capabilities::all()
    }
}

/// Blobs in a local directory.
///
/// ```
/// assert!(!polyrouter::backends::kind_caps::fs().records);
/// ```
pub const fn fs() -> Capabilities {
    Capabilities::blob_only()
}

/// Azure Blob Storage: blobs, shared between processes.
///
/// ```
/// assert!(polyrouter::backends::kind_caps::azblob().shared);
/// ```
pub const fn azblob() -> Capabilities {
    Capabilities {
        shared: true,
        ..Capabilities::blob_only()
    }
}

/// Cosmos DB: everything but multi-statement transactions and atomic
/// batches across partitions (an atomic batch is one transactional batch:
/// one partition key value, at most 100 ops; non-atomic batches run their
/// writes one by one).
///
/// ```
/// let c = polyrouter::backends::kind_caps::cosmos();
/// assert_eq!(c.batch_atomic_partition, Some(100));
/// ```
pub const fn cosmos() -> Capabilities {
    Capabilities {
        batch: false,
        batch_atomic: false,
        batch_atomic_partition: Some(COSMOS_MAX_BATCH_OPS),
        transactions: false,
        shared: true,
        max_record_bytes: Some(COSMOS_MAX_ITEM_BYTES),
        filters: FilterCaps::all(),
        // Events in the record's partition, in the write's transactional batch.
        outbox: true,
        versioned_apply: true,
        ..Capabilities::all()
    }
}

/// An embedded tantivy index: search only, no records.
///
/// ```
/// let c = polyrouter::backends::kind_caps::tantivy();
/// assert!(c.search && !c.records);
/// ```
pub const fn tantivy() -> Capabilities {
    Capabilities {
        ttl: false,
        if_absent: false,
        if_exists: false,
        if_version: false,
        batch: false,
        batch_atomic: false,
        query: false,
        filters: FilterCaps::none(),
        sort: false,
        count: false,
        transactions: false,
        shared: false,
        search: true,
        records: false,
        ..Capabilities::all()
    }
}

pub(super) const SQLITE_DEPENDS: &[OptionDependency] = &[OptionDependency {
    capability: "shared",
    how: "off when `url` is an in-memory database (`sqlite::memory:`): only this process sees it",
}];

pub(super) const MYSQL_DEPENDS: &[OptionDependency] = &[OptionDependency {
    capability: "max-record-bytes",
    how: "16 MiB assumed: the server's `max_allowed_packet` sets the real limit",
}];

pub(super) const REDIS_DEPENDS: &[OptionDependency] = &[
    OptionDependency {
        capability: "max-record-bytes",
        how: "512 MiB assumed: the server's `proto-max-bulk-len` sets the real limit",
    },
    OptionDependency {
        capability: "batch-atomic",
        how: "off with `cluster = true`: a batch is atomic only within one hash slot (batch-atomic-in-one-partition)",
    },
    OptionDependency {
        capability: "batch-atomic-in-one-partition",
        how: "on with `cluster = true`: one key, keys with a common hash tag, or one entity with a `partition_key` field",
    },
    OptionDependency {
        capability: "outbox",
        how: "off with `cluster = true`: one outbox stream per table cannot share a hash slot with every record",
    },
];

pub(super) const NONE: &[OptionDependency] = &[];
