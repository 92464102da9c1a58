//! What a store can do. The router checks a route's needs against it at
//! start-up, and each call's needs again before sending it.

use std::fmt;

use crate::query::{CmpOp, Filter};
use crate::store::Precondition;

/// Which filter operators a store can evaluate.
///
/// ```
/// let f = polyrouter::FilterCaps::all();
/// assert!(f.prefix && f.not);
/// assert!(!polyrouter::FilterCaps::none().eq);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterCaps {
    /// `eq`.
    pub eq: bool,
    /// `ne`.
    pub ne: bool,
    /// `lt`, `le`, `gt`, `ge`.
    pub range: bool,
    /// `in`.
    pub is_in: bool,
    /// `prefix`.
    pub prefix: bool,
    /// `contains`.
    pub contains: bool,
    /// `is_null`.
    pub is_null: bool,
    /// `and`.
    pub and: bool,
    /// `or`.
    pub or: bool,
    /// `not`.
    pub not: bool,
}

impl FilterCaps {
    /// Every operator.
    ///
    /// ```
    /// assert!(polyrouter::FilterCaps::all().range);
    /// ```
    pub const fn all() -> Self {
        FilterCaps {
            eq: true,
            ne: true,
            range: true,
            is_in: true,
            prefix: true,
            contains: true,
            is_null: true,
            and: true,
            or: true,
            not: true,
        }
    }

    /// No operator.
    ///
    /// ```
    /// assert!(!polyrouter::FilterCaps::none().and);
    /// ```
    pub const fn none() -> Self {
        FilterCaps {
            eq: false,
            ne: false,
            range: false,
            is_in: false,
            prefix: false,
            contains: false,
            is_null: false,
            and: false,
            or: false,
            not: false,
        }
    }

    fn supports(&self, f: &Filter) -> bool {
        match f {
            Filter::Cmp { op, .. } => match op {
                CmpOp::Eq => self.eq,
                CmpOp::Ne => self.ne,
                _ => self.range,
            },
            Filter::In { .. } => self.is_in,
            Filter::Prefix { .. } => self.prefix,
            Filter::Contains { .. } => self.contains,
            Filter::IsNull(_) => self.is_null,
            Filter::And(_) => self.and,
            Filter::Or(_) => self.or,
            Filter::Not(_) => self.not,
        }
    }

    /// The first node of `filter` this store cannot evaluate, as a capability name.
    ///
    /// ```
    /// use polyrouter::{query::field, FilterCaps};
    /// let caps = FilterCaps { prefix: false, ..FilterCaps::all() };
    /// assert_eq!(caps.first_unsupported(&field("a").prefix("x")), Some("filter prefix".into()));
    /// ```
    pub fn first_unsupported(&self, filter: &Filter) -> Option<String> {
        if !self.supports(filter) {
            return Some(filter.capability());
        }
        match filter {
            Filter::And(v) | Filter::Or(v) => v.iter().find_map(|f| self.first_unsupported(f)),
            Filter::Not(f) => self.first_unsupported(f),
            _ => None,
        }
    }
}

/// What a store can do.
///
/// ```
/// let c = polyrouter::Capabilities::all();
/// assert!(c.ttl && c.batch_atomic);
/// assert!(c.precondition(&polyrouter::Precondition::Version(1)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// Holds entity records (the `Store` point operations); `false` for a
    /// blob-only store or a search index, to which the router refuses to
    /// route an entity.
    pub records: bool,
    /// Per-record expiry.
    pub ttl: bool,
    /// `Precondition::Absent`.
    pub if_absent: bool,
    /// `Precondition::Exists`.
    pub if_exists: bool,
    /// `Precondition::Version`.
    pub if_version: bool,
    /// Batches run as one call.
    pub batch: bool,
    /// Every batch is all-or-nothing, whatever its keys.
    pub batch_atomic: bool,
    /// All-or-nothing only *within one partition*: a batch of at most this
    /// many operations whose records all share one partition-key value (the
    /// entity's `partition_key` field, else its key) — e.g. Cosmos DB's
    /// transactional batch (100). Such a store refuses an atomic batch
    /// spanning partitions, or longer than this, with
    /// [`Error::Unsupported`](crate::Error::Unsupported); `put_many` and
    /// `delete_many` then run non-atomically (on a route with an `outbox`
    /// each write takes two places: the write and its event). `None`: no partition-scoped
    /// atomicity (only what `batch_atomic` says).
    ///
    /// ```
    /// let c = polyrouter::Capabilities { batch_atomic: false, batch_atomic_partition: Some(100), ..polyrouter::Capabilities::all() };
    /// assert!(c.atomic_batch(100, true) && !c.atomic_batch(2, false) && !c.atomic_batch(101, true));
    /// ```
    pub batch_atomic_partition: Option<usize>,
    /// Queries over filters (otherwise only point operations).
    pub query: bool,
    /// Which filter operators queries may use.
    pub filters: FilterCaps,
    /// Ordering by any field.
    pub sort: bool,
    /// Counting rows matching a filter.
    pub count: bool,
    /// The largest encoded record the store accepts, if limited.
    pub max_record_bytes: Option<usize>,
    /// Multi-statement transactions.
    pub transactions: bool,
    /// A second router on the same location sees the same data.
    pub shared: bool,
    /// Keys are namespaced with a configurable prefix (`key_prefix`), as in key-value stores.
    pub key_prefix: bool,
    /// Implements `GraphStore`.
    pub graph: bool,
    /// Implements `SearchStore`.
    pub search: bool,
    /// Implements `TimeSeriesStore`.
    pub time_series: bool,
    /// Implements `BlobStore`.
    pub blob: bool,
    /// Implements `ChangeFeed`.
    pub change_feed: bool,
    /// A transactional outbox: writes of a route with `outbox` record
    /// their change events atomically with them
    /// ([`Store::outbox_fetch`](crate::Store::outbox_fetch)).
    pub outbox: bool,
    /// [`Store::apply_versioned`](crate::Store::apply_versioned): changes
    /// stored at their source's versions, only when newer (what a
    /// projection's replica or a migration's target needs).
    pub versioned_apply: bool,
}

impl Capabilities {
    /// The longest TTL polyrouter asks any store to keep: 2^31 − 1 seconds
    /// (about 68 years), Cosmos DB's limit and the smallest of the stores'.
    /// A longer (or zero) TTL is refused with
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) before any I/O —
    /// and an entity's or cache's configured `ttl` at start-up — so no
    /// store ever clamps, wraps or overflows one.
    ///
    /// ```
    /// assert_eq!(polyrouter::Capabilities::MAX_TTL.as_secs(), i32::MAX as u64);
    /// ```
    pub const MAX_TTL: std::time::Duration = std::time::Duration::from_secs(i32::MAX as u64);

    /// Everything the `Store` trait offers; the specialised traits off.
    ///
    /// ```
    /// assert!(!polyrouter::Capabilities::all().graph);
    /// ```
    pub const fn all() -> Self {
        Capabilities {
            records: true,
            ttl: true,
            if_absent: true,
            if_exists: true,
            if_version: true,
            batch: true,
            batch_atomic: true,
            batch_atomic_partition: None,
            query: true,
            filters: FilterCaps::all(),
            sort: true,
            count: true,
            max_record_bytes: None,
            transactions: true,
            shared: false,
            key_prefix: false,
            graph: false,
            search: false,
            time_series: false,
            blob: false,
            change_feed: false,
            outbox: false,
            versioned_apply: false,
        }
    }

    /// A blob-only store: no entity records, only [`BlobStore`](crate::store::blob::BlobStore).
    ///
    /// ```
    /// let c = polyrouter::Capabilities::blob_only();
    /// assert!(c.blob && !c.records && !c.query);
    /// ```
    pub const fn blob_only() -> Self {
        Capabilities {
            records: false,
            ttl: false,
            if_absent: false,
            if_exists: false,
            if_version: false,
            batch: false,
            batch_atomic: false,
            batch_atomic_partition: None,
            query: false,
            filters: FilterCaps::none(),
            sort: false,
            count: false,
            max_record_bytes: None,
            transactions: false,
            shared: false,
            key_prefix: false,
            graph: false,
            search: false,
            time_series: false,
            blob: true,
            change_feed: false,
            outbox: false,
            versioned_apply: false,
        }
    }

    /// Whether `p` can be honoured.
    ///
    /// ```
    /// let c = polyrouter::Capabilities { if_version: false, ..polyrouter::Capabilities::all() };
    /// assert!(!c.precondition(&polyrouter::Precondition::Version(2)));
    /// assert!(c.precondition(&polyrouter::Precondition::None));
    /// ```
    pub fn precondition(&self, p: &Precondition) -> bool {
        match p {
            Precondition::None => true,
            Precondition::Absent => self.if_absent,
            Precondition::Exists => self.if_exists,
            Precondition::Version(_) => self.if_version,
        }
    }

    /// Whether a batch of `ops` operations can be all-or-nothing here;
    /// `one_partition`: its records share one partition-key value (the
    /// entity's partition key field, else its key). A single operation
    /// always is.
    ///
    /// ```
    /// let c = polyrouter::Capabilities::all();
    /// assert!(c.atomic_batch(5000, false));
    /// let c = polyrouter::Capabilities { batch_atomic: false, ..c };
    /// assert!(c.atomic_batch(1, false) && !c.atomic_batch(2, true));
    /// ```
    pub fn atomic_batch(&self, ops: usize, one_partition: bool) -> bool {
        ops <= 1
            || self.batch_atomic
            || (one_partition && self.batch_atomic_partition.is_some_and(|max| ops <= max))
    }

    /// Whether an atomic batch of more than one operation can be asked of
    /// this store at all (every batch, or those within one partition).
    ///
    /// ```
    /// let c = polyrouter::Capabilities { batch_atomic: false, batch_atomic_partition: Some(100), ..polyrouter::Capabilities::all() };
    /// assert!(c.any_atomic_batch());
    /// ```
    pub fn any_atomic_batch(&self) -> bool {
        self.batch_atomic || self.batch_atomic_partition.is_some()
    }

    /// The names of the supported capabilities, for `polyrouter check`.
    ///
    /// ```
    /// let names = polyrouter::Capabilities::all().names();
    /// assert!(names.contains(&"ttl"));
    /// ```
    pub fn names(&self) -> Vec<&'static str> {
        let f = &self.filters;
        [
            (self.records, "records"),
            (self.ttl, "ttl"),
            (self.if_absent, "if-absent"),
            (self.if_exists, "if-exists"),
            (self.if_version, "if-version"),
            (self.batch, "batch"),
            (self.batch_atomic, "batch-atomic"),
            (
                !self.batch_atomic && self.batch_atomic_partition.is_some(),
                "batch-atomic-in-one-partition",
            ),
            (self.query, "query"),
            (f.eq, "eq"),
            (f.ne, "ne"),
            (f.range, "range"),
            (f.is_in, "in"),
            (f.prefix, "prefix"),
            (f.contains, "contains"),
            (f.is_null, "is-null"),
            (f.and && f.or && f.not, "and/or/not"),
            (self.sort, "sort"),
            (self.count, "count"),
            (self.transactions, "transactions"),
            (self.shared, "shared"),
            (self.key_prefix, "key-prefix"),
            (self.graph, "graph"),
            (self.search, "search"),
            (self.time_series, "time-series"),
            (self.blob, "blob"),
            (self.change_feed, "change-feed"),
            (self.outbox, "outbox"),
            (self.versioned_apply, "versioned-apply"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| n)
        .collect()
    }
}

impl fmt::Display for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(", "))
    }
}

/// Why a TTL cannot be kept, if it cannot: zero, or longer than
/// [`Capabilities::MAX_TTL`].
pub(crate) fn ttl_problem(ttl: std::time::Duration) -> Option<String> {
    if ttl.is_zero() {
        Some("a TTL must be greater than zero".into())
    } else if ttl > Capabilities::MAX_TTL {
        Some(format!(
            "a TTL of {} s is longer than the longest polyrouter keeps ({} s, about 68 years); leave the TTL out to keep the record until it is deleted",
            ttl.as_secs(),
            Capabilities::MAX_TTL.as_secs()
        ))
    } else {
        None
    }
}
