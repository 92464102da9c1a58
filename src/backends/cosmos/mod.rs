//! `cosmos`: Azure Cosmos DB (NoSQL API) via `azure_data_cosmos`; a
//! container per entity, items with ETag preconditions, Cosmos SQL queries
//! and per-item TTL.
//!
//! ```toml
//! [stores.catalog]
//! kind = "cosmos"
//! endpoint = "https://ACCOUNT.documents.azure.com:443/"
//! key = "${COSMOS_KEY}"
//! database = "shop"
//! create_if_missing = true
//! ```
#![doc = include_str!("docs.md")]

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_data_cosmos::clients::{ContainerClient, DatabaseClient};
use azure_data_cosmos::models::{ContainerProperties, TimeToLive};
use azure_data_cosmos::options::{
    BinaryEncodingOptions, ConnectionPoolOptions, ItemWriteOptions,
    Precondition as CosmosPrecondition, ServerCertificateValidation,
};
use azure_data_cosmos::{
    AccountReference, CosmosClient, CosmosError, CosmosRuntime, FeedScope, PartitionKey,
    RoutingStrategy,
};
use futures::TryStreamExt;
use futures::future::BoxFuture;
use parking_lot::RwLock;
use serde_json::{Map, Value as Json};

use crate::config::StoreSpec;
use crate::entity::Schema;
use crate::query::{Filter, Order};
use crate::store::{
    Applied, EntityInfo, OutboxEntry, Precondition, StoreQuery, VersionedChange, WriteOp,
    WriteOutcome,
};
use crate::{Capabilities, Error, Key, Record, Result, Store, Value};
use batch::BatchOp;

mod batch;
#[cfg(test)]
mod classify_tests;
mod codec;
mod config;
mod query;
mod sync;
#[cfg(test)]
mod sync_tests;
#[cfg(test)]
mod tests;

pub use config::CosmosConfig;

type Doc = Map<String, Json>;

/// How often a write re-reads and retries when another writer changed the
/// item between its read and its conditional write.
const WRITE_ATTEMPTS: usize = 16;
/// The longest pause before a write's next attempt after it lost a race.
const MAX_CONTENTION_PAUSE: Duration = Duration::from_millis(50);

/// Before attempt `n` (from 0) of a read-then-conditional-write: nothing
/// the first time, then a random pause of up to 1, 2, 4, … ms (at most
/// [`MAX_CONTENTION_PAUSE`]), so writers that keep colliding on one item
/// spread out instead of losing to each other in lock-step.
async fn contention_pause(n: usize) {
    if n == 0 {
        return;
    }
    let cap = Duration::from_millis(1 << n.min(16)).min(MAX_CONTENTION_PAUSE);
    let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
    tokio::time::sleep(Duration::from_nanos(fastrand::u64(0..=nanos))).await;
}

/// Writes of one non-atomic batch in flight at once.
const WRITE_CONCURRENCY: usize = 16;
/// How many writes of one call may run at once: [`WRITE_CONCURRENCY`]
/// when every key is distinct (their writes are independent), else one
/// at a time, so a key written twice keeps the call's order.
fn concurrency_for<'a>(mut keys: impl ExactSizeIterator<Item = &'a Key>) -> usize {
    let mut seen = std::collections::HashSet::with_capacity(keys.len());
    if keys.all(|k| seen.insert(k)) {
        WRITE_CONCURRENCY
    } else {
        1
    }
}

/// Point reads of one `get_many` in flight at once.
const GET_MANY_CONCURRENCY: usize = 16;
/// The largest item Cosmos DB stores.
const MAX_ITEM_BYTES: usize = crate::backends::kind_caps::COSMOS_MAX_ITEM_BYTES;

pub(crate) fn open(spec: StoreSpec) -> BoxFuture<'static, Result<Arc<dyn Store>>> {
    Box::pin(async move {
        let cfg: CosmosConfig = spec.parse()?;
        let located = |key: &str, msg: String| spec.error(&[key], msg);
        let store = CosmosStore::connect_inner(&spec.name, cfg, &located).await?;
        Ok(Arc::new(store) as Arc<dyn Store>)
    })
}

/// A store backed by an Azure Cosmos DB database: one container per entity.
///
/// Usually built by the router from `kind = "cosmos"`; it can also be
/// opened directly with [`CosmosStore::connect`]. See the [module
/// documentation](self) for the item layout, id encoding, queries, TTL and
/// what the local emulator lacks.
pub struct CosmosStore {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    location: String,
    caps: Capabilities,
    client: CosmosClient,
    database: DatabaseClient,
    database_name: String,
    create_if_missing: bool,
    containers: RwLock<HashMap<String, Container>>,
}

/// A container the store checked or created, and whether items in it can
/// expire (its default TTL is set, `-1` or more).
#[derive(Clone)]
struct Container {
    client: ContainerClient,
    ttl_enabled: bool,
}

impl fmt::Debug for CosmosStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CosmosStore")
            .field("name", &self.inner.name)
            .field("location", &self.inner.location)
            .finish_non_exhaustive()
    }
}

/// A driver-independent error message, as an error source.
#[derive(Debug)]
struct Message(String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Message {}

/// The HTTP status of a service answer; `None` when no answer came
/// (connection refused, timeout, TLS).
fn status(e: &CosmosError) -> Option<u16> {
    if !e.is_from_wire() {
        return None;
    }
    Some(u16::from(e.status().status_code()))
}

/// `endpoint/database`, without any secret.
fn location_of(endpoint: &str, database: &str) -> String {
    let endpoint = config::shown_endpoint(endpoint);
    format!("{}/{database}", endpoint.trim_end_matches('/'))
}

/// Maps a client error (the classification table is in docs/resilience.md):
/// throttling (429, after the client's own throttle retries) →
/// [`Error::Rejected`] `throttled` with the service's `x-ms-retry-after-ms`;
/// 449 "retry with" (a concurrent write conflicted) → [`Error::Rejected`]
/// `aborted`; no answer, timeouts and service unavailability (408, 500,
/// 502, 503, 504) → transient [`Error::Unavailable`]; a too-large item →
/// [`Error::InvalidInput`]; anything else → [`Error::Backend`]. The client
/// never puts the account key in its messages (requests carry an HMAC
/// signature, not the key).
fn map_err(store: &str, location: &str, entity: &str, e: CosmosError) -> Error {
    let retry_after = e
        .response()
        .and_then(|r| r.headers().retry_after_ms)
        .map(Duration::from_millis);
    map_status(store, location, entity, status(&e), retry_after, e)
}

/// [`map_err`] given the HTTP status (`None`: no answer) and the wait the
/// service asked for.
fn map_status(
    store: &str,
    location: &str,
    entity: &str,
    status: Option<u16>,
    retry_after: Option<Duration>,
    e: CosmosError,
) -> Error {
    let unavailable = |message: String, e: CosmosError| Error::Unavailable {
        store: store.into(),
        entity: entity.into(),
        message,
        source: Some(Box::new(e)),
    };
    let rejected = |reason: crate::Rejection, message: String, e: CosmosError| Error::Rejected {
        store: store.into(),
        entity: entity.into(),
        reason,
        message,
        retry_after,
        source: Some(Box::new(e)),
    };
    match status {
        None => unavailable(
            format!(
                "cannot reach Cosmos DB at {location}: {e}; check the endpoint and that the service (or `scripts/emulators/start`) runs"
            ),
            e,
        ),
        Some(429) => rejected(
            crate::Rejection::Throttled,
            format!(
                "Cosmos DB at {location} is throttling (429: request units exhausted); retry after the wait it asked for, or raise the container's throughput"
            ),
            e,
        ),
        Some(449) => rejected(
            crate::Rejection::Aborted,
            format!(
                "Cosmos DB at {location} asked to retry the write (449: a concurrent update conflicted); nothing was written"
            ),
            e,
        ),
        Some(code @ (408 | 500 | 502 | 503 | 504)) => {
            unavailable(format!("Cosmos DB at {location} answered {code}; retry"), e)
        }
        Some(code @ (401 | 403)) => Error::Backend {
            store: store.into(),
            entity: entity.into(),
            source: Box::new(Message(format!(
                "Cosmos DB at {location} refused the request ({code}): check the account key; {e}"
            ))),
        },
        Some(413) => Error::invalid_input(
            store,
            entity,
            format!("the item is larger than Cosmos DB accepts (2 MiB): {e}"),
        ),
        Some(_) => Error::backend(store, entity, e),
    }
}

/// A configuration error about an entity; the router fills in the file.
fn entity_config_error(entity: &EntityInfo, message: String) -> Error {
    Error::Config {
        file: String::new(),
        line: 0,
        column: 0,
        path: format!("entities.{}", entity.name()),
        message,
    }
}

/// A typed JSON value as a partition key value.
fn partition_key(v: &Json) -> std::result::Result<PartitionKey, String> {
    Ok(match v {
        Json::String(s) => PartitionKey::from(s.clone()),
        Json::Bool(b) => PartitionKey::from(*b),
        Json::Number(n) => {
            let f = n
                .as_f64()
                .ok_or("the partition key is not a finite number")?;
            PartitionKey::try_from(f).map_err(|e| e.to_string())?
        }
        Json::Null => PartitionKey::from(None::<String>),
        _ => return Err("a partition key must be a string, number, bool or null".into()),
    })
}

/// Seconds to live for a TTL: whole seconds, rounded up (Cosmos' unit),
/// so a record never expires before it was asked to; at most
/// `i32::MAX`, the most an item's `ttl` holds.
fn ttl_secs(ttl: Duration) -> std::result::Result<u64, String> {
    let s = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0))
        .max(1);
    if s > i32::MAX as u64 {
        return Err(format!(
            "a TTL of {s} s is longer than Cosmos DB keeps ({} s)",
            i32::MAX
        ));
    }
    Ok(s)
}

/// The current state of an item: its document (version, etag, partition).
struct Current {
    doc: Doc,
}

impl Current {
    /// The version a put continues from: the record's, or its tombstone's.
    fn version(&self) -> u64 {
        codec::version_of(&self.doc)
    }

    /// The record's version; `None` for a tombstone (absent).
    fn live(&self) -> Option<u64> {
        (!codec::is_tombstone(&self.doc)).then(|| self.version())
    }
}

impl CosmosStore {
    /// Connects to the account the configuration names, and checks (or,
    /// with `create_if_missing`, creates) the database.
    ///
    /// A bad option is an [`Error::Config`]; an account that cannot be
    /// reached is an [`Error::Unavailable`] naming the store and the
    /// endpoint (never the key).
    ///
    /// ```no_run
    /// # async fn f() -> polyrouter::Result<()> {
    /// use polyrouter::backends::cosmos::{CosmosConfig, CosmosStore};
    /// let cfg = CosmosConfig::new("http://127.0.0.1:8081/", "a2V5", "shop").create_if_missing(true);
    /// let store = CosmosStore::connect("catalog", cfg).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(name: &str, config: CosmosConfig) -> Result<CosmosStore> {
        let located =
            |key: &str, msg: String| Error::config("<code>", &format!("stores.{name}.{key}"), msg);
        Self::connect_inner(name, config, &located).await
    }

    async fn connect_inner(
        name: &str,
        config: CosmosConfig,
        config_error: &(dyn Fn(&str, String) -> Error + Send + Sync),
    ) -> Result<CosmosStore> {
        let (endpoint, key) = config.validate().map_err(|(k, m)| config_error(k, m))?;
        let key_option = if config.connection_string.is_some() {
            "connection_string"
        } else {
            "endpoint"
        };
        let location = location_of(&endpoint, &config.database);
        let url: azure_data_cosmos::AccountEndpoint = endpoint.parse().map_err(|e| {
            config_error(
                key_option,
                format!(
                    "the account endpoint {:?} is not usable: {e}",
                    config::shown_endpoint(&endpoint)
                ),
            )
        })?;
        let client = build_client(url, key, &config)
            .await
            .map_err(|e| map_err(name, &location, "", e))?;
        let database = client.database_client(config.database.as_str());
        let inner = Inner {
            name: name.to_string(),
            location: location.clone(),
            caps: capabilities(),
            client,
            database,
            database_name: config.database.clone(),
            create_if_missing: config.create_if_missing,
            containers: RwLock::new(HashMap::new()),
        };
        let store = CosmosStore {
            inner: Arc::new(inner),
        };
        store.check_database(config_error).await?;
        Ok(store)
    }

    async fn check_database(
        &self,
        config_error: &(dyn Fn(&str, String) -> Error + Send + Sync),
    ) -> Result<()> {
        let i = &self.inner;
        match i.database.read(None).await {
            Ok(_) => Ok(()),
            Err(e) if status(&e) == Some(404) && i.create_if_missing => {
                match i.client.create_database(&i.database_name, None).await {
                    Ok(_) => Ok(()),
                    Err(e) if status(&e) == Some(409) => Ok(()), // created meanwhile
                    Err(e) => Err(self.err("", e)),
                }
            }
            Err(e) if status(&e) == Some(404) => Err(config_error(
                "database",
                format!(
                    "the database {:?} does not exist at {}; create it, or set `create_if_missing = true`",
                    i.database_name, i.location
                ),
            )),
            Err(e) => Err(self.err("", e)),
        }
    }

    /// Deletes this store's whole database with every container in it;
    /// for tests and tear-down. Deleting a missing database is not an error.
    ///
    /// ```no_run
    /// # async fn f(store: polyrouter::backends::cosmos::CosmosStore) -> polyrouter::Result<()> {
    /// store.delete_database().await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete_database(&self) -> Result<()> {
        match self.inner.database.delete(None).await {
            Ok(_) => {
                self.inner.containers.write().clear();
                Ok(())
            }
            Err(e) if status(&e) == Some(404) => Ok(()),
            Err(e) => Err(self.err("", e)),
        }
    }

    fn err(&self, entity: &str, e: CosmosError) -> Error {
        map_err(&self.inner.name, &self.inner.location, entity, e)
    }

    fn invalid(&self, entity: &EntityInfo, m: impl fmt::Display) -> Error {
        Error::invalid_input(&self.inner.name, entity.name(), m)
    }

    fn corrupt(&self, entity: &EntityInfo, m: String) -> Error {
        Error::backend(
            &self.inner.name,
            entity.name(),
            Message(format!("container `{}`: {m}", entity.table)),
        )
    }

    /// The entity's container: checked (or created) once.
    async fn container(&self, entity: &EntityInfo) -> Result<Container> {
        if let Some(c) = self.inner.containers.read().get(&entity.table) {
            return Ok(c.clone());
        }
        self.ensure_entity(entity).await?;
        self.inner
            .containers
            .read()
            .get(&entity.table)
            .cloned()
            .ok_or_else(|| self.corrupt(entity, "the container is not ready".into()))
    }

    fn item_id(&self, entity: &EntityInfo, key: &Key) -> Result<String> {
        if key.kind() != entity.schema.key_kind {
            return Err(self.invalid(
                entity,
                format!(
                    "key {key} is {:?}, but the entity's key is {:?}",
                    key.kind(),
                    entity.schema.key_kind
                ),
            ));
        }
        codec::item_id(key).map_err(|m| self.invalid(entity, m))
    }

    /// Whether the container is partitioned by the key (then the partition
    /// of a key is known without a query).
    fn partitioned_by_key(schema: &Schema) -> bool {
        codec::partition_field(schema) == schema.key
    }

    /// Reads the item of a key: a point read when the container is
    /// partitioned by the key, else a query by id over every partition.
    async fn current(
        &self,
        entity: &EntityInfo,
        c: &Container,
        key: &Key,
        id: &str,
    ) -> Result<Option<Current>> {
        if Self::partitioned_by_key(entity.schema) {
            let pk = partition_key(&codec::key_json(key)).map_err(|m| self.invalid(entity, m))?;
            return match c.client.read_item(pk, id, None).await {
                Ok(resp) => {
                    let doc: Doc = resp
                        .into_model()
                        .map_err(|e| self.corrupt(entity, format!("unreadable item: {e}")))?;
                    Ok(Some(Current { doc }))
                }
                Err(e) if status(&e) == Some(404) => Ok(None),
                Err(e) => Err(self.err(entity.name(), e)),
            };
        }
        let q = azure_data_cosmos::Query::from("SELECT * FROM c WHERE c.id = @id")
            .with_parameter("@id", id)
            .map_err(|e| self.err(entity.name(), e))?;
        let mut items = c
            .client
            .query_items::<Doc>(q, FeedScope::full_container(), None)
            .await
            .map_err(|e| self.err(entity.name(), e))?;
        match items.try_next().await {
            Ok(doc) => Ok(doc.map(|doc| Current { doc })),
            Err(e) => Err(self.err(entity.name(), e)),
        }
    }

    /// One write; `bulk`: one of many in a non-atomic batch, where new
    /// items are the common case (see [`CosmosStore::put`]).
    async fn write_one(
        &self,
        entity: &EntityInfo,
        c: &Container,
        op: &WriteOp,
        bulk: bool,
    ) -> Result<WriteOutcome> {
        match op {
            WriteOp::Put {
                record,
                precondition,
                ttl,
            } => self.put(entity, c, record, *precondition, *ttl, bulk).await,
            WriteOp::Delete { key, precondition } => {
                self.delete(entity, c, key, *precondition).await
            }
        }
    }

    async fn read_decoded(
        &self,
        entity: &EntityInfo,
        c: &Container,
        key: &Key,
        id: &str,
    ) -> Result<Option<Record>> {
        match self.current(entity, c, key, id).await? {
            Some(cur) if cur.live().is_some() => self.decode(entity, &cur.doc).map(Some),
            _ => Ok(None),
        }
    }

    fn decode(&self, entity: &EntityInfo, doc: &Doc) -> Result<Record> {
        codec::decode_record(entity.schema, doc).map_err(|m| self.corrupt(entity, m))
    }

    fn conflict(
        &self,
        entity: &EntityInfo,
        key: &Key,
        expected: Precondition,
        actual: Option<u64>,
    ) -> Error {
        Error::conflict(&self.inner.name, entity.name(), key, expected, actual)
    }

    fn ttl_unsupported(&self, entity: &EntityInfo) -> Error {
        Error::unsupported(
            &self.inner.name,
            entity.name(),
            format!(
                "ttl (container `{}` has no default TTL, so Cosmos DB ignores item TTLs; set its default TTL to -1 or more)",
                entity.table
            ),
        )
    }

    /// The item for a record (version 1, to be set by the writer), refused
    /// with `InvalidInput` when a value cannot be stored or the item is
    /// larger than Cosmos DB stores.
    fn encode_item(
        &self,
        entity: &EntityInfo,
        record: &Record,
        ttl: Option<Duration>,
    ) -> Result<Doc> {
        let ttl = ttl
            .map(ttl_secs)
            .transpose()
            .map_err(|m| self.invalid(entity, m))?;
        let doc = codec::encode_record(entity.schema, record, 1, ttl)
            .map_err(|m| self.invalid(entity, m))?;
        let size = serde_json::to_vec(&doc).map(|v| v.len()).unwrap_or(0);
        if size > MAX_ITEM_BYTES {
            return Err(self.invalid(
                entity,
                format!("the record is {size} bytes as a Cosmos DB item; Cosmos DB stores at most {MAX_ITEM_BYTES}"),
            ));
        }
        Ok(doc)
    }

    async fn put(
        &self,
        entity: &EntityInfo,
        c: &Container,
        record: &Record,
        precondition: Precondition,
        ttl: Option<Duration>,
        bulk: bool,
    ) -> Result<WriteOutcome> {
        if ttl.is_some() && !c.ttl_enabled {
            return Err(self.ttl_unsupported(entity));
        }
        let id = self.item_id(entity, &record.key)?;
        // Encode before any request: bad values are refused with nothing sent.
        let mut doc = self.encode_item(entity, record, ttl)?;
        let pk_prop = codec::stored_name(codec::partition_field(entity.schema));
        let pk_json = doc.get(&pk_prop).cloned().unwrap_or(Json::Null);
        // A partition key value Cosmos cannot take is refused with nothing sent.
        partition_key(&pk_json).map_err(|m| self.invalid(entity, m))?;
        // An insert (`Absent`), and an unconditional put among many (bulk
        // loads mostly add items), try the create first where the
        // partition of the key is known (ids are unique per partition
        // only): one request, three on an existing item (create → 409,
        // read, replace). A single put reads first and then creates or
        // replaces with `If-Match`: two requests whether the item exists
        // or not.
        let create_first = match precondition {
            Precondition::Absent => true,
            Precondition::None => bulk,
            _ => false,
        };
        if Self::partitioned_by_key(entity.schema) && create_first {
            let mut doc = doc.clone();
            let event = self.event_item(
                entity,
                Some(&mut doc),
                None,
                &pk_json,
                &record.key,
                Some(record),
                1,
            );
            // Exists (`409`): read, then replace.
            if self
                .commit(entity, c, &pk_json, BatchOp::Create(doc), event)
                .await?
            {
                return Ok(WriteOutcome::Written { version: 1 });
            }
        }
        for attempt in 0..WRITE_ATTEMPTS {
            contention_pause(attempt).await;
            let current = self.current(entity, c, &record.key, &id).await?;
            let version = current.as_ref().and_then(Current::live);
            if !precondition.holds(version) {
                return Err(self.conflict(entity, &record.key, precondition, version));
            }
            let prev_order = current.as_ref().and_then(|c| sync::order_of(&c.doc));
            if let Some(cur) = current.as_ref().filter(|c| c.live().is_none())
                && cur.doc.get(&pk_prop).unwrap_or(&Json::Null) != &pk_json
            {
                // A tombstone in another partition: the new item goes
                // to its own partition; the tombstone makes way first.
                let next = cur.version() + 1;
                let old = cur.doc.get(&pk_prop).cloned().unwrap_or(Json::Null);
                let delete = BatchOp::Delete {
                    id: id.clone(),
                    if_match: codec::etag_of(&cur.doc),
                };
                if !self.commit(entity, c, &old, delete, None).await? {
                    continue;
                }
                doc.insert(codec::VERSION.into(), Json::from(next));
                let event = self.event_item(
                    entity,
                    Some(&mut doc),
                    prev_order,
                    &pk_json,
                    &record.key,
                    Some(record),
                    next,
                );
                let create = BatchOp::Create(doc.clone());
                if self.commit(entity, c, &pk_json, create, event).await? {
                    return Ok(WriteOutcome::Written { version: next });
                }
                continue;
            }
            let (next, op) = match current {
                None => (1, None),
                Some(cur) => {
                    if cur.doc.get(&pk_prop).unwrap_or(&Json::Null) != &pk_json {
                        return Err(self.invalid(
                            entity,
                            format!(
                                "the partition key `{}` of a stored record cannot change in Cosmos DB; delete the record and insert it again",
                                codec::partition_field(entity.schema)
                            ),
                        ));
                    }
                    let Some(etag) = codec::etag_of(&cur.doc) else {
                        return Err(self.corrupt(entity, "the item has no `_etag`".into()));
                    };
                    (cur.version() + 1, Some(etag))
                }
            };
            doc.insert(codec::VERSION.into(), Json::from(next));
            let event = self.event_item(
                entity,
                Some(&mut doc),
                prev_order,
                &pk_json,
                &record.key,
                Some(record),
                next,
            );
            let op = match op {
                None => BatchOp::Create(doc.clone()),
                Some(etag) => BatchOp::Replace {
                    id: id.clone(),
                    doc: doc.clone(),
                    if_match: Some(etag),
                },
            };
            // Created, changed or deleted by another writer since the
            // read: re-read.
            if self.commit(entity, c, &pk_json, op, event).await? {
                return Ok(WriteOutcome::Written { version: next });
            }
        }
        Err(Error::unavailable(
            &self.inner.name,
            entity.name(),
            format!(
                "key {}: other writers kept changing the item; retry",
                record.key
            ),
        ))
    }

    async fn delete(
        &self,
        entity: &EntityInfo,
        c: &Container,
        key: &Key,
        precondition: Precondition,
    ) -> Result<WriteOutcome> {
        let id = self.item_id(entity, key)?;
        let tombstones = !entity.tombstone_retention.is_zero();
        // Without tombstones or an event to record, a plain delete.
        if precondition == Precondition::None
            && Self::partitioned_by_key(entity.schema)
            && !tombstones
            && entity.outbox.is_none()
        {
            let pk = partition_key(&codec::key_json(key)).map_err(|m| self.invalid(entity, m))?;
            return match c.client.delete_item(pk, &id, None).await {
                Ok(_) => Ok(WriteOutcome::Deleted { existed: true }),
                Err(e) if status(&e) == Some(404) => Ok(WriteOutcome::Deleted { existed: false }),
                Err(e) => Err(self.err(entity.name(), e)),
            };
        }
        let pk_prop = codec::stored_name(codec::partition_field(entity.schema));
        for attempt in 0..WRITE_ATTEMPTS {
            contention_pause(attempt).await;
            let current = self.current(entity, c, key, &id).await?;
            let version = current.as_ref().and_then(Current::live);
            if !precondition.holds(version) {
                return Err(self.conflict(entity, key, precondition, version));
            }
            let (Some(cur), Some(v)) = (current, version) else {
                // Absent, or already a tombstone: nothing to delete.
                return Ok(WriteOutcome::Deleted { existed: false });
            };
            let pk_json = cur.doc.get(&pk_prop).cloned().unwrap_or(Json::Null);
            let prev_order = sync::order_of(&cur.doc);
            let if_match = codec::etag_of(&cur.doc);
            let mut tomb = tombstones
                .then(|| self.tombstone(entity, c, &id, &pk_prop, pk_json.clone(), v + 1));
            let event = self.event_item(
                entity,
                tomb.as_mut(),
                prev_order,
                &pk_json,
                key,
                None,
                v + 1,
            );
            let op = match tomb {
                Some(doc) => BatchOp::Replace {
                    id: id.clone(),
                    doc,
                    if_match,
                },
                None => BatchOp::Delete {
                    id: id.clone(),
                    if_match,
                },
            };
            if self.commit(entity, c, &pk_json, op, event).await? {
                return Ok(WriteOutcome::Deleted { existed: true });
            }
        }
        Err(Error::unavailable(
            &self.inner.name,
            entity.name(),
            format!("key {key}: other writers kept changing the item; retry"),
        ))
    }

    /// The tombstone of a deleted record: its id, partition key and
    /// version (its last + 1), expiring after the entity's tombstone
    /// retention where the container honours item TTLs (capped at
    /// `i32::MAX` seconds; without a container default TTL it stays).
    fn tombstone(
        &self,
        entity: &EntityInfo,
        c: &Container,
        id: &str,
        pk_prop: &str,
        pk: Json,
        version: u64,
    ) -> Doc {
        let mut doc = Doc::new();
        doc.insert("id".into(), Json::from(id));
        doc.insert(pk_prop.into(), pk);
        doc.insert(codec::VERSION.into(), Json::from(version));
        doc.insert(codec::DELETED.into(), Json::Bool(true));
        if c.ttl_enabled {
            let secs = entity
                .tombstone_retention
                .as_secs()
                .clamp(1, i32::MAX as u64);
            doc.insert("ttl".into(), Json::from(secs));
        }
        doc
    }

    /// Runs an ordered query and decodes its rows: at most `limit`, plus
    /// the rows tied with the last of them on the first sort key.
    async fn run_records(
        &self,
        entity: &EntityInfo,
        sql: query::CosmosSql,
        filter: Option<&Filter>,
        first: Option<&Order>,
        limit: Option<usize>,
    ) -> Result<Vec<Record>> {
        let mut items = self.start(entity, sql, filter).await?;
        let value_of = |r: &Record, field: &str| {
            if field == entity.schema.key && entity.schema.field(field).is_none() {
                r.key.to_value()
            } else {
                r.value(field).clone()
            }
        };
        let mut out: Vec<Record> = Vec::new();
        let mut boundary: Option<Value> = None;
        loop {
            let doc = match items.try_next().await {
                Ok(Some(doc)) => doc,
                Ok(None) => break,
                Err(e) => return Err(self.err(entity.name(), e)),
            };
            let rec = self.decode(entity, &doc)?;
            if let Some(b) = &boundary {
                let tied = first.is_some_and(|o| {
                    value_of(&rec, &o.field).partial_cmp(b) == Some(std::cmp::Ordering::Equal)
                });
                if !tied {
                    break;
                }
            }
            out.push(rec);
            if boundary.is_none() && limit.is_some_and(|n| out.len() >= n) {
                match first {
                    Some(o) => boundary = Some(value_of(&out[out.len() - 1], &o.field)),
                    None => break,
                }
            }
        }
        Ok(out)
    }

    /// Starts a query, in the partition the filter pins if it pins one.
    async fn start<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        entity: &EntityInfo,
        sql: query::CosmosSql,
        filter: Option<&Filter>,
    ) -> Result<azure_data_cosmos::feed::QueryItemIterator<T>> {
        let c = self.container(entity).await?;
        let mut q = azure_data_cosmos::Query::from(sql.text);
        for (name, v) in &sql.params {
            q = q
                .with_parameter(name.as_str(), v)
                .map_err(|e| self.err(entity.name(), e))?;
        }
        let pk_field = codec::partition_field(entity.schema);
        let scope = match query::pinned_partition(pk_field, filter) {
            Some(v) => {
                let (json, _) = codec::encode_value(v).map_err(|m| self.invalid(entity, m))?;
                FeedScope::partition(partition_key(&json).map_err(|m| self.invalid(entity, m))?)
            }
            None => FeedScope::full_container(),
        };
        c.client
            .query_items::<T>(q, scope, None)
            .await
            .map_err(|e| self.err(entity.name(), e))
    }

    /// Runs a query, in the partition the filter pins if it pins one,
    /// collecting at most `limit` items.
    async fn run<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        entity: &EntityInfo,
        sql: query::CosmosSql,
        filter: Option<&Filter>,
        limit: Option<usize>,
    ) -> Result<Vec<T>> {
        let mut items = self.start::<T>(entity, sql, filter).await?;
        let mut out = Vec::new();
        while limit.is_none_or(|n| out.len() < n) {
            match items.try_next().await {
                Ok(Some(item)) => out.push(item),
                Ok(None) => break,
                Err(e) => return Err(self.err(entity.name(), e)),
            }
        }
        Ok(out)
    }
}

/// What a cosmos store can do ([`kind_caps::cosmos`](crate::backends::kind_caps::cosmos)).
fn capabilities() -> Capabilities {
    crate::backends::kind_caps::cosmos()
}

async fn build_client(
    endpoint: azure_data_cosmos::AccountEndpoint,
    key: String,
    config: &CosmosConfig,
) -> std::result::Result<CosmosClient, CosmosError> {
    let pool = ConnectionPoolOptions::builder()
        // The emulator speaks HTTP/1.1 only; the service accepts it too.
        .with_is_http2_allowed(false)
        // Certificate checks stay on, except for emulator hosts (localhost,
        // 127.0.0.1, ::1, or AZURE_COSMOS_EMULATOR_HOST).
        .with_server_certificate_validation(ServerCertificateValidation::RequiredUnlessEmulator)
        .with_min_connect_timeout(config.connect_timeout.0.min(Duration::from_millis(500)))
        .with_max_connect_timeout(config.connect_timeout.0)
        .with_max_dataplane_request_timeout(config.request_timeout.0)
        // The client caps metadata requests at 65 s.
        .with_max_metadata_request_timeout(config.request_timeout.0.min(Duration::from_secs(65)))
        .build()?;
    let runtime = CosmosRuntime::builder()
        .with_connection_pool(pool)
        .build()
        .await?;
    let account = AccountReference::with_authentication_key(endpoint, key);
    CosmosClient::builder()
        .with_runtime(runtime)
        // Cosmos binary JSON: the emulator cannot read it; text JSON works everywhere.
        .with_binary_encoding_options(BinaryEncodingOptions::new().with_enabled(false))
        .build(account, RoutingStrategy::PreferredRegions(Vec::new()))
        .await
}

#[async_trait]
impl Store for CosmosStore {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn kind(&self) -> &'static str {
        "cosmos"
    }

    fn capabilities(&self) -> &Capabilities {
        &self.inner.caps
    }

    fn location(&self) -> String {
        self.inner.location.clone()
    }

    async fn drop_entity(&self, entity: &EntityInfo) -> Result<()> {
        config::check_database_name(&entity.table)
            .map_err(|m| self.invalid(entity, format!("table (container name) {m}")))?;
        let db = &self.inner.database;
        let result = match db.container_client(entity.table.as_str(), None).await {
            Ok(c) => c.delete(None).await.map(|_| ()),
            Err(e) => Err(e),
        };
        self.inner.containers.write().remove(&entity.table);
        match result {
            Ok(()) => Ok(()),
            Err(e) if status(&e) == Some(404) => Ok(()),
            Err(e) => Err(self.err(entity.name(), e)),
        }
    }

    async fn ensure_entity(&self, entity: &EntityInfo) -> Result<()> {
        let schema = entity.schema;
        let name_error =
            |m: String| entity_config_error(entity, format!("store `{}`: {m}", self.inner.name));
        codec::check_schema(schema).map_err(name_error)?;
        config::check_database_name(&entity.table)
            .map_err(|m| name_error(format!("table (container name) {m}")))?;
        let path = codec::partition_path(schema);
        let db = &self.inner.database;
        let create = || async {
            let props = ContainerProperties::new(entity.table.clone(), path.clone().into())
                .with_default_ttl(TimeToLive::NoDefault);
            match db.create_container(props, None).await {
                Ok(_) => Ok(()),
                Err(e) if status(&e) == Some(409) => Ok(()), // created meanwhile
                Err(e) => Err(self.err(entity.name(), e)),
            }
        };
        let client = match db.container_client(entity.table.as_str(), None).await {
            Ok(c) => c,
            Err(e) if status(&e) == Some(404) && self.inner.create_if_missing => {
                create().await?;
                db.container_client(entity.table.as_str(), None)
                    .await
                    .map_err(|e| self.err(entity.name(), e))?
            }
            Err(e) if status(&e) == Some(404) => {
                return Err(name_error(format!(
                    "the container {:?} does not exist in database {:?}; create it with partition key path {path:?} and default TTL -1, or set `create_if_missing = true`",
                    entity.table, self.inner.database_name
                )));
            }
            Err(e) => return Err(self.err(entity.name(), e)),
        };
        let read = match client.read(None).await {
            // The client resolved a container deleted since (`drop_entity`,
            // or another process): make it again.
            Err(e) if status(&e) == Some(404) && self.inner.create_if_missing => {
                create().await?;
                client.read(None).await
            }
            read => read,
        };
        let props = read
            .map_err(|e| self.err(entity.name(), e))?
            .into_model()
            .map_err(|e| self.err(entity.name(), e))?;
        let paths: Vec<String> = props
            .partition_key
            .paths()
            .iter()
            .map(|p| p.to_string())
            .collect();
        if paths != [path.clone()] {
            return Err(name_error(format!(
                "container {:?} is partitioned by {paths:?}, but entity `{}` needs {path:?} (its partition key, else its key); use another container",
                entity.table,
                entity.name()
            )));
        }
        let ttl_enabled = !props.default_ttl.is_forever();
        self.inner.containers.write().insert(
            entity.table.clone(),
            Container {
                client,
                ttl_enabled,
            },
        );
        Ok(())
    }

    async fn get(&self, entity: &EntityInfo, key: &Key) -> Result<Option<Record>> {
        let id = self.item_id(entity, key)?;
        let c = self.container(entity).await?;
        self.read_decoded(entity, &c, key, &id).await
    }

    async fn get_many(&self, entity: &EntityInfo, keys: &[Key]) -> Result<Vec<Option<Record>>> {
        use futures::StreamExt;
        // Every key is checked before any request.
        let ids = keys
            .iter()
            .map(|k| self.item_id(entity, k))
            .collect::<Result<Vec<_>>>()?;
        let c = self.container(entity).await?;
        let mut reads = Vec::with_capacity(keys.len());
        for (k, id) in keys.iter().zip(&ids) {
            reads.push(self.read_decoded(entity, &c, k, id));
        }
        futures::stream::iter(reads)
            .buffered(GET_MANY_CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }

    async fn write(
        &self,
        entity: &EntityInfo,
        ops: Vec<WriteOp>,
        atomic: bool,
    ) -> Result<Vec<WriteOutcome>> {
        if atomic && ops.len() > 1 {
            // One transactional batch: one partition, at most 100 ops.
            let c = self.container(entity).await?;
            return self.write_atomic(entity, &c, &ops).await;
        }
        self.write_each(entity, ops).await?.into_iter().collect()
    }

    /// Every op is checked before anything is sent (a bad one fails the
    /// call, nothing applied); then writes to distinct keys run
    /// concurrently, each with its own outcome.
    async fn write_each(
        &self,
        entity: &EntityInfo,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<Result<WriteOutcome>>> {
        // Check every op before sending anything.
        for op in &ops {
            self.item_id(entity, op.key())?;
            if let WriteOp::Put { record, .. } = op {
                codec::encode_record(entity.schema, record, 1, None)
                    .map_err(|m| self.invalid(entity, m))?;
            }
        }
        let c = self.container(entity).await?;
        // Writes to distinct keys are independent: run them concurrently
        // (outcomes in op order). A key written twice keeps op order.
        let width = concurrency_for(ops.iter().map(WriteOp::key));
        let mut writes = Vec::with_capacity(ops.len());
        for op in &ops {
            writes.push(self.write_one(entity, &c, op, ops.len() > 1));
        }
        use futures::StreamExt;
        Ok(futures::stream::iter(writes)
            .buffered(width)
            .collect::<Vec<_>>()
            .await)
    }

    /// Each change reads the key's item and is written with `If-Match`
    /// (or as a create), re-read on a concurrent write; see `docs.md`.
    async fn apply_versioned(
        &self,
        entity: &EntityInfo,
        changes: Vec<VersionedChange>,
    ) -> Result<Vec<Applied>> {
        self.apply_changes(entity, changes).await
    }

    async fn outbox_fetch(&self, entity: &EntityInfo, max: usize) -> Result<Vec<OutboxEntry>> {
        self.fetch_outbox(entity, max).await
    }

    async fn outbox_remove(&self, entity: &EntityInfo, ids: &[String]) -> Result<()> {
        self.remove_outbox(entity, ids).await
    }

    async fn outbox_len(&self, entity: &EntityInfo) -> Result<u64> {
        self.outbox_count(entity).await
    }

    async fn query(&self, entity: &EntityInfo, q: &StoreQuery) -> Result<Vec<Record>> {
        // The server orders by the first sort key; rows tied with the last
        // one wanted are fetched too, and the full order (further keys, the
        // key) is finished here. With the key as the only sort key, TOP.
        let first = q.order.first();
        let whole = q.order.len() == 1;
        let top = if whole { q.limit } else { None };
        let sql = query::select(entity.schema, q.filter.as_ref(), first, top)
            .map_err(|m| self.invalid(entity, m))?;
        let records = self
            .run_records(entity, sql, q.filter.as_ref(), first, q.limit)
            .await?;
        let mut records = records;
        if !whole {
            records.sort_by(|a, b| crate::store::eval::compare(&q.order, a, b));
        }
        if let Some(n) = q.limit {
            records.truncate(n);
        }
        Ok(records)
    }

    async fn count(&self, entity: &EntityInfo, filter: Option<&Filter>) -> Result<u64> {
        let sql = query::count(entity.schema, filter).map_err(|m| self.invalid(entity, m))?;
        let parts: Vec<Json> = self.run(entity, sql, filter, None).await?;
        // One value, or one per partition range: the sum either way.
        Ok(parts.iter().filter_map(Json::as_u64).sum())
    }

    async fn ping(&self) -> Result<()> {
        self.inner
            .database
            .read(None)
            .await
            .map(|_| ())
            .map_err(|e| self.err("", e))
    }
}
