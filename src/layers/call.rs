//! [`Call`]: what a layer knows about one store call before it runs.

use std::borrow::Cow;

use crate::Key;
use crate::store::graph::GraphInfo;
use crate::store::search::SearchIndex;
use crate::store::timeseries::SeriesInfo;
use crate::store::{EntityInfo, WriteOp};

/// The class of an operation, which picks its timeout
/// ([`TimeoutConfig`](crate::config::TimeoutConfig)).
///
/// ```
/// use polyrouter::layers::{OpClass, Operation};
/// assert_eq!(Operation::Get.class(1), OpClass::Read);
/// assert_eq!(Operation::Write.class(500), OpClass::Bulk);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpClass {
    /// Point reads by key, `ping`.
    Read,
    /// Writes of one record or a small batch.
    Write,
    /// Query pages, counts, searches, traversals, ranges, listings.
    Query,
    /// Large batches, bulk loads, uploads, purges.
    Bulk,
    /// Preparing storage (tables, indexes) and index maintenance.
    Admin,
}

impl OpClass {
    /// The class's name, as in `resilience.timeout`.
    ///
    /// ```
    /// assert_eq!(polyrouter::layers::OpClass::Query.name(), "query");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            OpClass::Read => "read",
            OpClass::Write => "write",
            OpClass::Query => "query",
            OpClass::Bulk => "bulk",
            OpClass::Admin => "admin",
        }
    }
}

/// Whether a call may be sent again after it failed.
///
/// ```
/// use polyrouter::layers::{Idempotency, Operation};
/// assert_eq!(Operation::Get.idempotency(), Idempotency::Idempotent);
/// assert_eq!(Operation::KvIncrement.idempotency(), Idempotency::NotIdempotent);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Idempotency {
    /// Applying it twice leaves the same state as once (reads, deletes,
    /// writes guarded by a version or `Absent` precondition, re-indexing):
    /// it may be sent again after any transient error.
    Idempotent,
    /// Applying it twice differs from once (a blind increment, an
    /// unconditional put that bumps the version, a non-atomic batch): it
    /// is sent again only after an error that proves nothing was applied
    /// ([`Error::nothing_applied`](crate::Error::nothing_applied)).
    NotIdempotent,
    /// It cannot be sent twice at all (a streamed blob body is consumed by
    /// the first attempt).
    OneShot,
}

macro_rules! operations {
    ($($(#[$doc:meta])* $variant:ident => $name:literal, $class:ident, $idem:ident;)*) => {
        /// Every operation a store offers, across [`Store`](crate::Store) and
        /// the extra traits; its name is the span's `db.operation.name`.
        ///
        /// ```
        /// use polyrouter::layers::Operation;
        /// assert_eq!(Operation::GraphLink.name(), "graph.link");
        /// ```
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Operation {
            $($(#[$doc])* $variant,)*
        }

        impl Operation {
            /// The name in spans, metrics and errors, e.g. `get` or `kv.increment`.
            ///
            /// ```
            /// assert_eq!(polyrouter::layers::Operation::Get.name(), "get");
            /// ```
            pub fn name(self) -> &'static str {
                match self { $(Operation::$variant => $name,)* }
            }

            /// The operation's class for a call of `items` keys, ops, documents or points.
            ///
            /// ```
            /// use polyrouter::layers::{OpClass, Operation};
            /// assert_eq!(Operation::Query.class(1), OpClass::Query);
            /// assert_eq!(Operation::GetMany.class(100), OpClass::Read);
            /// assert_eq!(Operation::GetMany.class(101), OpClass::Bulk);
            /// ```
            pub fn class(self, items: usize) -> OpClass {
                let class = match self { $(Operation::$variant => OpClass::$class,)* };
                if matches!(class, OpClass::Write | OpClass::Read) && items > BULK_ITEMS {
                    OpClass::Bulk
                } else {
                    class
                }
            }

            /// Whether the operation, whatever its arguments, may be sent
            /// twice; record writes depend on their preconditions
            /// ([`Call::write`]).
            ///
            /// ```
            /// use polyrouter::layers::{Idempotency, Operation};
            /// assert_eq!(Operation::BlobPut.idempotency(), Idempotency::OneShot);
            /// ```
            pub fn idempotency(self) -> Idempotency {
                match self { $(Operation::$variant => Idempotency::$idem,)* }
            }
        }
    };
}

/// Writes or keys read in one call above which it counts as
/// [`OpClass::Bulk`] (a `get_many` of 1 000 keys is not a point read).
pub const BULK_ITEMS: usize = 100;

operations! {
    /// [`Store::ensure_entity`](crate::Store::ensure_entity).
    EnsureEntity => "ensure_entity", Admin, Idempotent;
    /// [`Store::drop_entity`](crate::Store::drop_entity).
    DropEntity => "drop_entity", Admin, Idempotent;
    /// [`Store::get`](crate::Store::get).
    Get => "get", Read, Idempotent;
    /// [`Store::get_many`](crate::Store::get_many).
    GetMany => "get_many", Read, Idempotent;
    /// [`Store::write`](crate::Store::write); idempotency from the ops.
    Write => "write", Write, NotIdempotent;
    /// [`Store::apply_versioned`](crate::Store::apply_versioned): guarded by versions.
    ApplyVersioned => "apply_versioned", Write, Idempotent;
    /// [`Store::outbox_fetch`](crate::Store::outbox_fetch).
    OutboxFetch => "outbox.fetch", Query, Idempotent;
    /// [`Store::outbox_remove`](crate::Store::outbox_remove).
    OutboxRemove => "outbox.remove", Write, Idempotent;
    /// [`Store::outbox_len`](crate::Store::outbox_len).
    OutboxLen => "outbox.len", Read, Idempotent;
    /// [`Store::query`](crate::Store::query).
    Query => "query", Query, Idempotent;
    /// [`Store::count`](crate::Store::count).
    Count => "count", Query, Idempotent;
    /// [`Store::ping`](crate::Store::ping).
    Ping => "ping", Read, Idempotent;
    /// [`Store::replica_lag`](crate::Store::replica_lag).
    ReplicaLag => "replica_lag", Read, Idempotent;
    /// [`KvStore::increment`](crate::store::kv::KvStore::increment): never idempotent.
    KvIncrement => "kv.increment", Write, NotIdempotent;
    /// [`KvStore::set_if_absent`](crate::store::kv::KvStore::set_if_absent):
    /// a retry after it applied would answer `false` and orphan the lock
    /// until its TTL, so it is not retried after an unknown outcome.
    KvSetIfAbsent => "kv.set_if_absent", Write, NotIdempotent;
    /// [`KvStore::get_bytes`](crate::store::kv::KvStore::get_bytes).
    KvGetBytes => "kv.get_bytes", Read, Idempotent;
    /// [`KvStore::delete_bytes`](crate::store::kv::KvStore::delete_bytes).
    KvDeleteBytes => "kv.delete_bytes", Write, Idempotent;
    /// [`KvStore::expire`](crate::store::kv::KvStore::expire).
    KvExpire => "kv.expire", Write, Idempotent;
    /// [`KvStore::persist`](crate::store::kv::KvStore::persist).
    KvPersist => "kv.persist", Write, Idempotent;
    /// [`GraphStore::ensure_graph`](crate::store::graph::GraphStore::ensure_graph).
    GraphEnsure => "graph.ensure_graph", Admin, Idempotent;
    /// [`GraphStore::add_vertex`](crate::store::graph::GraphStore::add_vertex): an insert (conflict when present).
    GraphAddVertex => "graph.add_vertex", Write, Idempotent;
    /// [`GraphStore::update_vertex`](crate::store::graph::GraphStore::update_vertex): a merge of the same properties.
    GraphUpdateVertex => "graph.update_vertex", Write, Idempotent;
    /// [`GraphStore::get_vertex`](crate::store::graph::GraphStore::get_vertex).
    GraphGetVertex => "graph.get_vertex", Read, Idempotent;
    /// [`GraphStore::remove_vertex`](crate::store::graph::GraphStore::remove_vertex).
    GraphRemoveVertex => "graph.remove_vertex", Write, Idempotent;
    /// [`GraphStore::link`](crate::store::graph::GraphStore::link): one edge per `(src, label, dst)`.
    GraphLink => "graph.link", Write, Idempotent;
    /// [`GraphStore::link_many`](crate::store::graph::GraphStore::link_many).
    GraphLinkMany => "graph.link_many", Bulk, Idempotent;
    /// [`GraphStore::unlink`](crate::store::graph::GraphStore::unlink).
    GraphUnlink => "graph.unlink", Write, Idempotent;
    /// [`GraphStore::get_edge`](crate::store::graph::GraphStore::get_edge).
    GraphGetEdge => "graph.get_edge", Read, Idempotent;
    /// [`GraphStore::neighbours`](crate::store::graph::GraphStore::neighbours).
    GraphNeighbours => "graph.neighbours", Query, Idempotent;
    /// [`GraphStore::degree`](crate::store::graph::GraphStore::degree).
    GraphDegree => "graph.degree", Query, Idempotent;
    /// [`GraphStore::mutual`](crate::store::graph::GraphStore::mutual).
    GraphMutual => "graph.mutual", Query, Idempotent;
    /// [`GraphStore::common`](crate::store::graph::GraphStore::common).
    GraphCommon => "graph.common", Query, Idempotent;
    /// [`GraphStore::recommend`](crate::store::graph::GraphStore::recommend).
    GraphRecommend => "graph.recommend", Query, Idempotent;
    /// [`GraphStore::shortest_path`](crate::store::graph::GraphStore::shortest_path).
    GraphShortestPath => "graph.shortest_path", Query, Idempotent;
    /// [`BlobStore::put`](crate::store::blob::BlobStore::put): a streamed body, sent once.
    BlobPut => "blob.put", Bulk, OneShot;
    /// [`BlobStore::put_bytes`](crate::store::blob::BlobStore::put_bytes); idempotent when conditional.
    BlobPutBytes => "blob.put_bytes", Bulk, NotIdempotent;
    /// [`BlobStore::get`](crate::store::blob::BlobStore::get) (the body streams after the call).
    BlobGet => "blob.get", Read, Idempotent;
    /// [`BlobStore::get_bytes`](crate::store::blob::BlobStore::get_bytes) (the whole body).
    BlobGetBytes => "blob.get_bytes", Bulk, Idempotent;
    /// [`BlobStore::head`](crate::store::blob::BlobStore::head).
    BlobHead => "blob.head", Read, Idempotent;
    /// [`BlobStore::list`](crate::store::blob::BlobStore::list).
    BlobList => "blob.list", Query, Idempotent;
    /// [`BlobStore::delete`](crate::store::blob::BlobStore::delete).
    BlobDelete => "blob.delete", Write, Idempotent;
    /// [`BlobStore::copy`](crate::store::blob::BlobStore::copy).
    BlobCopy => "blob.copy", Bulk, Idempotent;
    /// [`SearchStore::ensure_index`](crate::store::search::SearchStore::ensure_index).
    SearchEnsure => "search.ensure_index", Admin, Idempotent;
    /// [`SearchStore::index`](crate::store::search::SearchStore::index): add or replace by key.
    SearchIndex => "search.index", Bulk, Idempotent;
    /// [`SearchStore::remove`](crate::store::search::SearchStore::remove).
    SearchRemove => "search.remove", Bulk, Idempotent;
    /// [`SearchStore::clear`](crate::store::search::SearchStore::clear).
    SearchClear => "search.clear", Admin, Idempotent;
    /// [`SearchStore::flush`](crate::store::search::SearchStore::flush).
    SearchFlush => "search.flush", Admin, Idempotent;
    /// [`SearchStore::search`](crate::store::search::SearchStore::search).
    Search => "search.search", Query, Idempotent;
    /// [`TimeSeriesStore::ensure_series`](crate::store::timeseries::TimeSeriesStore::ensure_series).
    SeriesEnsure => "ts.ensure_series", Admin, Idempotent;
    /// [`TimeSeriesStore::append`](crate::store::timeseries::TimeSeriesStore::append): a point replaces its twin.
    SeriesAppend => "ts.append", Bulk, Idempotent;
    /// [`TimeSeriesStore::range`](crate::store::timeseries::TimeSeriesStore::range).
    SeriesRange => "ts.range", Query, Idempotent;
    /// [`TimeSeriesStore::downsample`](crate::store::timeseries::TimeSeriesStore::downsample).
    SeriesDownsample => "ts.downsample", Query, Idempotent;
    /// [`TimeSeriesStore::latest`](crate::store::timeseries::TimeSeriesStore::latest).
    SeriesLatest => "ts.latest", Query, Idempotent;
    /// [`TimeSeriesStore::delete_before`](crate::store::timeseries::TimeSeriesStore::delete_before).
    SeriesDeleteBefore => "ts.delete_before", Bulk, Idempotent;
    /// [`TimeSeriesStore::scan`](crate::store::timeseries::TimeSeriesStore::scan).
    SeriesScan => "ts.scan", Query, Idempotent;
}

/// What a call works on: its span's `db.collection.name` and its errors'
/// entity.
///
/// ```
/// use polyrouter::layers::Target;
/// assert_eq!(Target::Store.entity(), "");
/// ```
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// The store as a whole (`ping`, blobs).
    Store,
    /// An entity's table or collection.
    Entity(&'a EntityInfo),
    /// A graph.
    Graph(&'a GraphInfo),
    /// A search index.
    Index(&'a SearchIndex),
    /// A time series table.
    Series(&'a SeriesInfo),
}

impl Target<'_> {
    /// The entity (or graph, index, series) name errors use; a graph is
    /// named as its own errors name it (``graph `social` ``).
    ///
    /// ```
    /// use polyrouter::{FieldDef, KeyKind, Schema, store::EntityInfo, layers::Target};
    /// # static F: [FieldDef; 0] = [];
    /// # static S: Schema = Schema { name: "user", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
    /// assert_eq!(Target::Entity(&EntityInfo::new(&S)).entity(), "user");
    /// ```
    pub fn entity(&self) -> Cow<'_, str> {
        match self {
            Target::Store => Cow::Borrowed(""),
            Target::Entity(e) => Cow::Borrowed(e.name()),
            Target::Graph(g) => Cow::Owned(g.entity()),
            Target::Index(i) => Cow::Borrowed(i.entity()),
            Target::Series(s) => Cow::Borrowed(&s.name),
        }
    }

    /// The table, collection or index the store holds it in.
    ///
    /// ```
    /// assert_eq!(polyrouter::layers::Target::Store.collection(), "");
    /// ```
    pub fn collection(&self) -> &str {
        match self {
            Target::Store => "",
            Target::Entity(e) => &e.table,
            Target::Graph(g) => &g.name,
            Target::Index(i) => &i.name,
            Target::Series(s) => &s.table,
        }
    }
}

/// One store call as a layer sees it before it runs: which store, what on,
/// which operation, its class and whether it may be sent twice.
///
/// ```
/// use polyrouter::layers::{Call, Idempotency, OpClass, Operation, Target};
/// let call = Call::new("main", "memory", Target::Store, Operation::Ping);
/// assert_eq!(call.class, OpClass::Read);
/// assert_eq!(call.idempotency, Idempotency::Idempotent);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The store's name.
    pub store: &'a str,
    /// The store's kind (`db.system.name`).
    pub kind: &'static str,
    /// What the call works on.
    pub target: Target<'a>,
    /// The operation.
    pub operation: Operation,
    /// Its class (picks the timeout).
    pub class: OpClass,
    /// Whether it may be sent again.
    pub idempotency: Idempotency,
    /// Keys, ops, documents, edges or points in the call (1 for point calls).
    pub items: usize,
    /// For [`Operation::Write`]: the ops and whether they are atomic.
    pub write: Option<(&'a [WriteOp], bool)>,
    /// The key of a single-key call, for spans that ask for it.
    pub key: Option<&'a Key>,
}

impl<'a> Call<'a> {
    /// A call of one item with the operation's own idempotency.
    ///
    /// ```
    /// use polyrouter::layers::{Call, Operation, Target};
    /// assert_eq!(Call::new("s", "redis", Target::Store, Operation::KvGetBytes).items, 1);
    /// ```
    pub fn new(
        store: &'a str,
        kind: &'static str,
        target: Target<'a>,
        operation: Operation,
    ) -> Self {
        Call {
            store,
            kind,
            target,
            operation,
            class: operation.class(1),
            idempotency: operation.idempotency(),
            items: 1,
            write: None,
            key: None,
        }
    }

    /// Sets the number of items (and the class that follows from it).
    ///
    /// ```
    /// use polyrouter::layers::{Call, OpClass, Operation, Target};
    /// let c = Call::new("s", "memory", Target::Store, Operation::GetMany).items(3);
    /// assert_eq!((c.items, c.class), (3, OpClass::Read));
    /// ```
    pub fn items(mut self, items: usize) -> Self {
        self.items = items;
        self.class = self.operation.class(items);
        self
    }

    /// Sets the idempotency.
    ///
    /// ```
    /// use polyrouter::layers::{Call, Idempotency, Operation, Target};
    /// let c = Call::new("s", "fs", Target::Store, Operation::BlobPutBytes).idempotency(Idempotency::Idempotent);
    /// assert_eq!(c.idempotency, Idempotency::Idempotent);
    /// ```
    pub fn idempotency(mut self, idempotency: Idempotency) -> Self {
        self.idempotency = idempotency;
        self
    }

    /// A [`Store::write`](crate::Store::write) call of `ops`: idempotent
    /// when every op is guarded so that applying it twice cannot change
    /// more than applying it once — a put under `Version(n)` or `Absent`,
    /// or any delete — and the call is one op or atomic (a non-atomic
    /// batch that fails half-way leaves part applied).
    ///
    /// ```
    /// use polyrouter::{Key, Precondition, Record};
    /// use polyrouter::layers::{Call, Idempotency, Target};
    /// use polyrouter::store::WriteOp;
    /// let guarded = [WriteOp::Put { record: Record::new(Key::from("a")), precondition: Precondition::Version(3), ttl: None }];
    /// assert_eq!(Call::write("s", "memory", Target::Store, &guarded, true).idempotency, Idempotency::Idempotent);
    /// let blind = [WriteOp::Put { record: Record::new(Key::from("a")), precondition: Precondition::None, ttl: None }];
    /// assert_eq!(Call::write("s", "memory", Target::Store, &blind, true).idempotency, Idempotency::NotIdempotent);
    /// ```
    pub fn write(
        store: &'a str,
        kind: &'static str,
        target: Target<'a>,
        ops: &'a [WriteOp],
        atomic: bool,
    ) -> Self {
        let guarded = ops.iter().all(|op| match op {
            WriteOp::Put { precondition, .. } => matches!(
                precondition,
                crate::Precondition::Version(_) | crate::Precondition::Absent
            ),
            WriteOp::Delete { .. } => true,
        });
        let whole = ops.len() <= 1 || atomic;
        let mut call = Call::new(store, kind, target, Operation::Write).items(ops.len());
        call.idempotency = if guarded && whole {
            Idempotency::Idempotent
        } else {
            Idempotency::NotIdempotent
        };
        call.write = Some((ops, atomic));
        call
    }

    /// The entity (graph, index, series) name, empty for store-level calls.
    ///
    /// ```
    /// use polyrouter::layers::{Call, Operation, Target};
    /// assert_eq!(Call::new("s", "memory", Target::Store, Operation::Ping).entity(), "");
    /// ```
    pub fn entity(&self) -> Cow<'_, str> {
        self.target.entity()
    }
}
