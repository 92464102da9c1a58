//! The store traits every backend implements.
//!
//! The router holds each store as `Arc<dyn Store>` and never knows a
//! concrete backend type. Backends see only neutral types: [`EntityInfo`],
//! [`Record`], [`Key`], [`StoreQuery`].

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::entity::Schema;
use crate::query::{Filter, Order};
use crate::{Capabilities, Key, Record, Result};

pub mod blob;
pub mod eval;
pub mod graph;
pub mod kv;
pub mod namespace;
pub mod search;
pub mod sync;
pub mod timeseries;

pub use sync::{Applied, OutboxEntry, OutboxSpec, VersionedChange, outbox_event};

/// A condition a write must meet; a failed one is [`Error::Conflict`](crate::Error::Conflict)
/// and writes nothing.
///
/// ```
/// use polyrouter::Precondition;
/// assert_eq!(Precondition::Version(3).to_string(), "if-version(3)");
/// assert!(Precondition::Absent.holds(None));
/// assert!(!Precondition::Version(2).holds(Some(3)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precondition {
    /// Unconditional.
    #[default]
    None,
    /// Only if no (unexpired) record has the key: insert.
    Absent,
    /// Only if a record has the key: update.
    Exists,
    /// Only if the current version equals this one: optimistic concurrency.
    Version(u64),
}

impl Precondition {
    /// Whether the precondition holds given the current version (`None`: absent).
    ///
    /// ```
    /// assert!(polyrouter::Precondition::Exists.holds(Some(1)));
    /// ```
    pub fn holds(&self, current: Option<u64>) -> bool {
        match self {
            Precondition::None => true,
            Precondition::Absent => current.is_none(),
            Precondition::Exists => current.is_some(),
            Precondition::Version(v) => current == Some(*v),
        }
    }
}

impl fmt::Display for Precondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Precondition::None => f.write_str("none"),
            Precondition::Absent => f.write_str("if-absent"),
            Precondition::Exists => f.write_str("if-exists"),
            Precondition::Version(v) => write!(f, "if-version({v})"),
        }
    }
}

/// Everything a store needs to know about an entity on its route.
///
/// ```
/// # use polyrouter::{FieldDef, KeyKind, Schema, store::EntityInfo};
/// # static F: [FieldDef; 0] = [];
/// # static S: Schema = Schema { name: "user", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
/// let e = EntityInfo::new(&S);
/// assert_eq!(e.table, "user");
/// ```
#[derive(Debug, Clone)]
pub struct EntityInfo {
    /// The entity's static schema.
    pub schema: &'static Schema,
    /// Table, collection or key namespace (default: the entity name).
    pub table: String,
    /// The store's name, for error messages.
    pub store: String,
    /// How long a deleted record's tombstone (which keeps its last
    /// version, so a re-created record continues from it) is kept before
    /// it may be purged; `Duration::ZERO`: no tombstones, a delete removes
    /// the record at once and a re-created record starts again at 1.
    /// Default [`DEFAULT_TOMBSTONE_RETENTION`] (route option
    /// `tombstone_retention`).
    pub tombstone_retention: Duration,
    /// The route's transactional outbox, if it has one (route option
    /// `outbox`): every write, and every applied
    /// [`Store::apply_versioned`] change, also records its
    /// [`ChangeEvent`](crate::sync::ChangeEvent) atomically with it (see
    /// [`outbox_event`]).
    pub outbox: Option<OutboxSpec>,
}

/// How long tombstones are kept by default: 7 days.
///
/// ```
/// assert_eq!(polyrouter::store::DEFAULT_TOMBSTONE_RETENTION.as_secs(), 7 * 86_400);
/// ```
pub const DEFAULT_TOMBSTONE_RETENTION: Duration = Duration::from_secs(7 * 86_400);

impl EntityInfo {
    /// An entity stored under its own name.
    ///
    /// ```
    /// # use polyrouter::{FieldDef, KeyKind, Schema, store::EntityInfo};
    /// # static F: [FieldDef; 0] = [];
    /// # static S: Schema = Schema { name: "t", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
    /// assert_eq!(EntityInfo::new(&S).name(), "t");
    /// ```
    pub fn new(schema: &'static Schema) -> Self {
        EntityInfo {
            schema,
            table: schema.name.to_string(),
            store: String::new(),
            tombstone_retention: DEFAULT_TOMBSTONE_RETENTION,
            outbox: None,
        }
    }

    /// The entity name.
    ///
    /// ```
    /// # use polyrouter::{FieldDef, KeyKind, Schema, store::EntityInfo};
    /// # static F: [FieldDef; 0] = [];
    /// # static S: Schema = Schema { name: "t", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
    /// assert_eq!(EntityInfo::new(&S).name(), "t");
    /// ```
    pub fn name(&self) -> &'static str {
        self.schema.name
    }
}

/// One write in a batch.
///
/// ```
/// use polyrouter::{store::WriteOp, Key, Precondition};
/// let op = WriteOp::Delete { key: Key::from("a"), precondition: Precondition::None };
/// assert_eq!(op.key(), &Key::from("a"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    /// Insert or replace.
    Put {
        /// The record.
        record: Record,
        /// Condition on the current version.
        precondition: Precondition,
        /// Expiry, `None` for never.
        ttl: Option<Duration>,
    },
    /// Delete.
    Delete {
        /// The key.
        key: Key,
        /// Condition on the current version.
        precondition: Precondition,
    },
}

impl WriteOp {
    /// The key written.
    ///
    /// ```
    /// use polyrouter::{store::WriteOp, Key, Precondition, Record};
    /// let op = WriteOp::Put { record: Record::new(Key::from(1i64)), precondition: Precondition::None, ttl: None };
    /// assert_eq!(op.key(), &Key::Int(1));
    /// ```
    pub fn key(&self) -> &Key {
        match self {
            WriteOp::Put { record, .. } => &record.key,
            WriteOp::Delete { key, .. } => key,
        }
    }

    /// The precondition.
    ///
    /// ```
    /// use polyrouter::{store::WriteOp, Key, Precondition};
    /// let op = WriteOp::Delete { key: Key::from("a"), precondition: Precondition::Exists };
    /// assert_eq!(op.precondition(), Precondition::Exists);
    /// ```
    pub fn precondition(&self) -> Precondition {
        match self {
            WriteOp::Put { precondition, .. } | WriteOp::Delete { precondition, .. } => {
                *precondition
            }
        }
    }
}

/// The result of one write.
///
/// ```
/// let w = polyrouter::store::WriteOutcome::Written { version: 1 };
/// assert_eq!(w.version(), Some(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// A put; the record's new version.
    Written {
        /// New version (1 on insert).
        version: u64,
    },
    /// A delete; whether a record was there.
    Deleted {
        /// A record existed and is gone.
        existed: bool,
    },
}

impl WriteOutcome {
    /// The new version for a put.
    ///
    /// ```
    /// assert_eq!(polyrouter::store::WriteOutcome::Deleted { existed: true }.version(), None);
    /// ```
    pub fn version(&self) -> Option<u64> {
        match self {
            WriteOutcome::Written { version } => Some(*version),
            WriteOutcome::Deleted { .. } => None,
        }
    }
}

/// A query as a store receives it: already validated against the schema,
/// with the keyset position folded into `filter` and the key appended to
/// `order`, so the order is total.
///
/// ```
/// let q = polyrouter::store::StoreQuery::default();
/// assert!(q.filter.is_none() && q.limit.is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreQuery {
    /// Rows must match this.
    pub filter: Option<Filter>,
    /// Total order: sort keys then the key.
    pub order: Vec<Order>,
    /// Maximum rows.
    pub limit: Option<usize>,
}

/// The store every backend implements: point reads and writes with
/// preconditions, batches, queries and counts.
///
/// Versions: the store keeps a version per record, 1 on insert and +1 on
/// every write. Expired records (TTL) behave as absent everywhere.
///
/// A key's versions never repeat while its tombstone lives: a delete
/// leaves a tombstone holding the key's last version + 1 (for
/// [`EntityInfo::tombstone_retention`]), invisible to every read, query
/// and count, and absent to preconditions; the next put of the key
/// continues from it. A record that expires by TTL is gone with its
/// version.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// The store's name from the configuration.
    fn name(&self) -> &str;
    /// The store kind, e.g. `sqlite`.
    fn kind(&self) -> &'static str;
    /// What this store can do.
    fn capabilities(&self) -> &Capabilities;
    /// A human-readable location with secrets redacted, e.g. a path or host.
    fn location(&self) -> String;

    /// Prepares storage for an entity (creates or checks tables).
    /// Called at start-up for every routed entity type; idempotent.
    async fn ensure_entity(&self, entity: &EntityInfo) -> Result<()>;

    /// Reads one record.
    async fn get(&self, entity: &EntityInfo, key: &Key) -> Result<Option<Record>>;

    /// Reads many records, one slot per key, in the order given.
    async fn get_many(&self, entity: &EntityInfo, keys: &[Key]) -> Result<Vec<Option<Record>>>;

    /// Applies writes; when `atomic`, all or none.
    async fn write(
        &self,
        entity: &EntityInfo,
        ops: Vec<WriteOp>,
        atomic: bool,
    ) -> Result<Vec<WriteOutcome>>;

    /// [`Store::write`] of borrowed ops: what a caller that keeps the ops
    /// — to send them again ([`Retry`](crate::layers::Retry)), or to show
    /// them to its layers — calls, so that an attempt needs no copy of
    /// them. By default it copies them into [`Store::write`]; a store that
    /// encodes its writes from borrowed ops (the SQL stores, Redis)
    /// overrides it, and its `write` calls it.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use polyrouter::{FieldDef, KeyKind, Key, Precondition, Record, Schema, Store};
    /// # use polyrouter::store::{EntityInfo, WriteOp, WriteOutcome};
    /// # static F: [FieldDef; 0] = [];
    /// # static S: Schema = Schema { name: "t", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
    /// let store = polyrouter::backends::memory::MemoryStore::new("m");
    /// let e = EntityInfo::new(&S);
    /// let ops = [WriteOp::Put { record: Record::new(Key::from("a")), precondition: Precondition::None, ttl: None }];
    /// let out = store.write_ref(&e, &ops, true).await.unwrap();
    /// assert_eq!(out, vec![WriteOutcome::Written { version: 1 }]);
    /// # });
    /// ```
    async fn write_ref(
        &self,
        entity: &EntityInfo,
        ops: &[WriteOp],
        atomic: bool,
    ) -> Result<Vec<WriteOutcome>> {
        self.write(entity, ops.to_vec(), atomic).await
    }

    /// Applies writes one by one, not atomically, with an outcome per
    /// write in op order: its [`WriteOutcome`], or the error that write
    /// met ([`Error::Conflict`](crate::Error::Conflict) with the current
    /// version, …), the others applied regardless. The outer error means
    /// nothing is known to be applied (input refused up front, or the
    /// store unreachable before anything was sent). By default each op is
    /// one [`Store::write`] of its own, in order; a store that can do
    /// better (concurrent requests, one round trip) overrides it.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use polyrouter::{FieldDef, KeyKind, Key, Precondition, Record, Schema, Store};
    /// # use polyrouter::store::{EntityInfo, WriteOp, WriteOutcome};
    /// # static F: [FieldDef; 0] = [];
    /// # static S: Schema = Schema { name: "t", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
    /// let store = polyrouter::backends::memory::MemoryStore::new("m");
    /// let e = EntityInfo::new(&S);
    /// let put = |k: &str, p| WriteOp::Put { record: Record::new(Key::from(k)), precondition: p, ttl: None };
    /// let out = store
    ///     .write_each(&e, vec![put("a", Precondition::None), put("b", Precondition::Version(3)), put("c", Precondition::None)])
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out[0].as_ref().unwrap(), &WriteOutcome::Written { version: 1 });
    /// assert!(matches!(out[1], Err(polyrouter::Error::Conflict { actual: None, .. })));
    /// assert_eq!(out[2].as_ref().unwrap(), &WriteOutcome::Written { version: 1 });
    /// # });
    /// ```
    async fn write_each(
        &self,
        entity: &EntityInfo,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<Result<WriteOutcome>>> {
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            let one = self.write(entity, vec![op], true).await.and_then(|mut o| {
                o.pop().ok_or_else(|| {
                    crate::Error::backend(
                        self.name(),
                        entity.name(),
                        "the store returned no outcome for a write",
                    )
                })
            });
            out.push(one);
        }
        Ok(out)
    }

    /// Applies changes at the versions their source gave them (a
    /// projection's replica, a migration's backfill): each change is
    /// stored only when its version is newer than what the store holds for
    /// the key, live or as a tombstone; otherwise it is
    /// [`Applied::Stale`] and changes nothing. So a change applied twice,
    /// or after a newer one, changes nothing. A put stores the record with
    /// exactly its version and no expiry; a delete leaves a tombstone at
    /// its version (kept for the entity's `tombstone_retention`), so an
    /// older put arriving later stays out. Each key is applied on its own,
    /// in order (two changes of one key in one call: the second sees the
    /// first); an error may leave part applied, and calling again with
    /// the same changes is always safe. Applied changes are recorded in
    /// the route's outbox like writes. Needs the `versioned_apply`
    /// capability; [`Error::Unsupported`](crate::Error::Unsupported) by
    /// default.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use polyrouter::{FieldDef, KeyKind, Key, Record, Schema, Store};
    /// # use polyrouter::store::{Applied, EntityInfo, VersionedChange};
    /// # static F: [FieldDef; 0] = [];
    /// # static S: Schema = Schema { name: "t", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
    /// let store = polyrouter::backends::memory::MemoryStore::new("replica");
    /// let e = EntityInfo::new(&S);
    /// let at = |v| { let mut r = Record::new(Key::from("a")); r.version = v; VersionedChange::put(r) };
    /// let out = store.apply_versioned(&e, vec![at(3), at(2), at(3)]).await.unwrap();
    /// assert_eq!(out, [Applied::Applied, Applied::Stale { current: 3 }, Applied::Stale { current: 3 }]);
    /// assert_eq!(store.get(&e, &Key::from("a")).await.unwrap().unwrap().version, 3);
    /// # });
    /// ```
    async fn apply_versioned(
        &self,
        entity: &EntityInfo,
        changes: Vec<VersionedChange>,
    ) -> Result<Vec<Applied>> {
        let _ = changes;
        Err(crate::Error::unsupported(
            self.name(),
            entity.name(),
            "versioned apply (projections and migrations copy records into it keeping their versions)",
        ))
    }

    /// Up to `max` events from the entity's outbox, oldest first; per key
    /// in version order. An event stays until
    /// [`Store::outbox_remove`] removes it, so a relay that crashes reads
    /// it again. Only committed writes' events are ever seen (a write that
    /// commits late shows up in a later fetch). Needs the `outbox`
    /// capability; [`Error::Unsupported`](crate::Error::Unsupported) by
    /// default.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use polyrouter::{FieldDef, KeyKind, Key, Precondition, Record, Schema, Store};
    /// # use polyrouter::store::{EntityInfo, OutboxSpec, WriteOp};
    /// # static F: [FieldDef; 0] = [];
    /// # static S: Schema = Schema { name: "t", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
    /// let store = polyrouter::backends::memory::MemoryStore::new("main");
    /// let e = EntityInfo { store: "main".into(), outbox: Some(OutboxSpec::default()), ..EntityInfo::new(&S) };
    /// let put = WriteOp::Put { record: Record::new(Key::from("a")), precondition: Precondition::None, ttl: None };
    /// store.write(&e, vec![put], true).await.unwrap();
    /// let pending = store.outbox_fetch(&e, 10).await.unwrap();
    /// assert_eq!(pending[0].event.version, 1);
    /// store.outbox_remove(&e, &[pending[0].id.clone()]).await.unwrap();
    /// assert_eq!(store.outbox_len(&e).await.unwrap(), 0);
    /// # });
    /// ```
    async fn outbox_fetch(&self, entity: &EntityInfo, max: usize) -> Result<Vec<OutboxEntry>> {
        let _ = max;
        Err(sync::no_outbox(self.name(), entity))
    }

    /// Removes relayed events from the entity's outbox by their
    /// [`OutboxEntry::id`]; ids no longer there are ignored.
    async fn outbox_remove(&self, entity: &EntityInfo, ids: &[String]) -> Result<()> {
        let _ = ids;
        Err(sync::no_outbox(self.name(), entity))
    }

    /// How many events wait in the entity's outbox (the relay's backlog).
    async fn outbox_len(&self, entity: &EntityInfo) -> Result<u64> {
        Err(sync::no_outbox(self.name(), entity))
    }

    /// The stream of changes committed to the entity's table by any
    /// writer, read through `slot` (change capture, docs/cdc.md).
    /// [`Error::Unsupported`](crate::Error::Unsupported), with the reason,
    /// for a store without one (the default).
    ///
    /// ```
    /// use polyrouter::{backends::memory::MemoryStore, store::EntityInfo, Error, Store};
    /// # use polyrouter::{FieldDef, KeyKind, Schema};
    /// # static F: [FieldDef; 0] = [];
    /// # static S: Schema = Schema { name: "t", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
    /// let store = MemoryStore::new("m");
    /// assert!(matches!(store.change_source(&EntityInfo::new(&S), "s"), Err(Error::Unsupported { .. })));
    /// ```
    fn change_source(
        &self,
        entity: &EntityInfo,
        slot: &str,
    ) -> Result<std::sync::Arc<dyn crate::sync::capture::ChangeSource>> {
        let _ = slot;
        Err(crate::sync::capture::unsupported(
            self.name(),
            self.kind(),
            entity.name(),
        ))
    }

    /// Rows matching the query, in its order, at most `limit`.
    async fn query(&self, entity: &EntityInfo, query: &StoreQuery) -> Result<Vec<Record>>;

    /// The number of rows matching the filter.
    async fn count(&self, entity: &EntityInfo, filter: Option<&Filter>) -> Result<u64>;

    /// Checks the store answers; used by `polyrouter check`.
    async fn ping(&self) -> Result<()>;

    /// How stale this store's copy may be when it is a read replica that
    /// can measure it: an upper bound, measured by the server now, on the
    /// age of the oldest write its primary committed that this copy does
    /// not show yet (zero: it shows everything its primary had sent it).
    ///
    /// The router reads a `read_from` replica under `bounded_staleness`
    /// only while this bound, plus the time since it was measured, is
    /// within the read's bound; otherwise the primary answers. A store that
    /// is not a replica, or cannot tell, answers
    /// [`Error::Unsupported`](crate::Error::Unsupported) (the default), and
    /// a replica that cannot tell right now (e.g. it lost its primary)
    /// [`Error::Unavailable`](crate::Error::Unavailable): either way the
    /// primary answers bounded reads.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use polyrouter::{backends::memory::MemoryStore, Error, Store};
    /// let store = MemoryStore::new("m");
    /// assert!(matches!(store.replica_lag().await, Err(Error::Unsupported { .. })));
    /// # });
    /// ```
    async fn replica_lag(&self) -> Result<Duration> {
        Err(crate::Error::unsupported(
            self.name(),
            "",
            "measuring replica lag (the store is not a read replica that reports it)",
        ))
    }

    /// Removes the entity's table (collection, container, key namespace)
    /// with every record in it; dropping a table that is not there is not
    /// an error. For tools that own their tables, such as `polyrouter
    /// bench`; `Error::Unsupported` by default.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use polyrouter::{FieldDef, KeyKind, Schema, store::EntityInfo, Store};
    /// # static F: [FieldDef; 0] = [];
    /// # static S: Schema = Schema { name: "t", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
    /// let store = polyrouter::backends::memory::MemoryStore::new("m");
    /// let e = EntityInfo::new(&S);
    /// store.ensure_entity(&e).await.unwrap();
    /// store.drop_entity(&e).await.unwrap();
    /// store.drop_entity(&e).await.unwrap();
    /// # });
    /// ```
    async fn drop_entity(&self, entity: &EntityInfo) -> Result<()> {
        Err(crate::Error::unsupported(
            self.name(),
            entity.name(),
            "dropping an entity's table",
        ))
    }

    /// Where this store keeps its tables and how it compares their names
    /// ([`namespace::Namespace`]), for the router's start-up check that no
    /// two routes or stores share storage. Default: names compared byte for
    /// byte, in storage no other store reaches.
    ///
    /// ```
    /// use polyrouter::backends::memory::MemoryStore;
    /// use polyrouter::Store;
    /// assert!(MemoryStore::new("m").namespace().server.is_none());
    /// ```
    fn namespace(&self) -> namespace::Namespace {
        namespace::Namespace::own(namespace::TableNames::EXACT)
    }

    /// This store's key-value extras (atomic counters, set-if-absent,
    /// expiry changes), if it offers them; `None` by default.
    ///
    /// ```
    /// use polyrouter::backends::memory::MemoryStore;
    /// use polyrouter::Store;
    /// assert!(MemoryStore::new("kv").as_kv().is_some());
    /// ```
    fn as_kv(&self) -> Option<&dyn kv::KvStore> {
        None
    }

    /// This store's graph operations ([`graph::GraphStore`]), if it offers
    /// them (its capabilities then include `graph`); `None` by default.
    ///
    /// ```
    /// use polyrouter::backends::memory::MemoryStore;
    /// use polyrouter::Store;
    /// assert!(MemoryStore::new("g").as_graph().is_some());
    /// ```
    fn as_graph(&self) -> Option<&dyn graph::GraphStore> {
        None
    }

    /// This store's time series operations (append, range, downsample,
    /// latest, retention), if it offers them; `None` by default. A store
    /// that returns `Some` sets the `time_series` capability.
    ///
    /// ```
    /// use polyrouter::backends::memory::MemoryStore;
    /// use polyrouter::Store;
    /// let store = MemoryStore::new("tsdb");
    /// assert!(store.as_time_series().is_some());
    /// assert!(store.capabilities().time_series);
    /// ```
    fn as_time_series(&self) -> Option<&dyn timeseries::TimeSeriesStore> {
        None
    }

    /// This store's blob operations, if it holds blobs; `None` by default.
    ///
    /// ```
    /// use polyrouter::backends::memory::MemoryStore;
    /// use polyrouter::Store;
    /// assert!(MemoryStore::new("images").as_blob().is_some());
    /// ```
    fn as_blob(&self) -> Option<&dyn blob::BlobStore> {
        None
    }

    /// This store's full-text search (indexes, ranked hits, facets), if it
    /// offers it (capability `search`); `None` by default.
    ///
    /// ```
    /// use polyrouter::backends::memory::MemoryStore;
    /// use polyrouter::Store;
    /// assert!(MemoryStore::new("m").as_search().is_none());
    /// ```
    fn as_search(&self) -> Option<&dyn search::SearchStore> {
        None
    }
}
