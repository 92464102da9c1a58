//! `redis`: Redis via the `redis` crate (tokio, reconnecting
//! `ConnectionManager`): point reads and writes with preconditions, atomic
//! batches, native TTL, and the [`KvStore`] extras (counters, locks).
//!
//! ```toml
//! [stores.cache]
//! kind = "redis"
//! url = "redis://127.0.0.1:6379"
//! key_prefix = "shop"
//! ```
#![doc = include_str!("docs.md")]

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_routing::Slot;
use redis::{ErrorKind, RedisError, Script, ServerErrorKind};

use crate::config::{Redactor, StoreSpec, redact_url};
use crate::query::Filter;
use crate::store::kv::{KvStore, check_call};
use crate::store::namespace::{Namespace, TableNames};
use crate::store::{
    Applied, EntityInfo, OutboxEntry, Precondition, StoreQuery, VersionedChange, WriteOp,
    WriteOutcome,
};
use crate::{Capabilities, Error, Key, Record, Result, Store};

#[cfg(test)]
mod classify_tests;
mod cluster;
#[cfg(test)]
mod cluster_tests;
mod codec;
mod config;
mod conn;
mod sync;
#[cfg(test)]
mod tests;

pub use config::RedisConfig;
use conn::Conn;

/// The batch write script: checks every precondition, then writes (and
/// records the writes' events in the route's outbox).
const WRITE_LUA: &str = include_str!("write.lua");

/// The versioned apply script: stores each change only when newer.
const APPLY_LUA: &str = include_str!("apply.lua");

/// One unconditional put: the write script's common case, shorter.
const PUT_ONE_LUA: &str = include_str!("put_one.lua");

/// Deletes a raw value only if it holds the expected bytes.
const DELETE_IF_EQUAL_LUA: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
     return redis.call('DEL', KEYS[1]) else return 0 end";

/// The largest record (encoded) Redis accepts as one argument.
const MAX_RECORD_BYTES: usize = crate::backends::kind_caps::REDIS_MAX_RECORD_BYTES;

/// TTLs are capped at 100 years (Redis refuses expiry times that overflow).
const MAX_TTL_MS: u128 = 100 * 365 * 86_400 * 1000;

/// The most an atomic batch may send in its one script call: below Redis'
/// default `client-query-buffer-limit` (1 GiB).
const MAX_ATOMIC_BATCH_BYTES: usize = 960 * 1024 * 1024;

/// Writes per script call of a non-atomic batch.
const CHUNK_OPS: usize = 1000;

/// Bytes per script call of a non-atomic batch (a single larger write is
/// sent alone).
const CHUNK_BYTES: usize = 16 * 1024 * 1024;

/// Keys per pipelined `get_many` round trip.
const GET_MANY_CHUNK: usize = 1000;

pub(crate) fn open(spec: StoreSpec) -> BoxFuture<'static, Result<Arc<dyn Store>>> {
    Box::pin(async move {
        let cfg: RedisConfig = spec.parse()?;
        let located = |key: &str, msg: String| spec.error(&[key], msg);
        let store = RedisStore::connect_inner(&spec.name, cfg, &located).await?;
        Ok(Arc::new(store) as Arc<dyn Store>)
    })
}

/// A store backed by a Redis server (single node).
///
/// Usually built by the router from `kind = "redis"`; it can also be
/// opened directly. See the [module documentation](self) for the key
/// layout, value encoding, batch atomicity and TTL behaviour.
///
/// ```no_run
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use polyrouter::backends::redis::{RedisConfig, RedisStore};
/// use polyrouter::store::{EntityInfo, WriteOp, WriteOutcome};
/// use polyrouter::{FieldDef, FieldKind, FieldType, Key, KeyKind, Precondition, Record, Schema, Store, Value};
///
/// static FIELDS: [FieldDef; 2] = [
///     FieldDef { name: "id", ty: FieldType::required(FieldKind::String) },
///     FieldDef { name: "user", ty: FieldType::required(FieldKind::String) },
/// ];
/// static SESSION: Schema = Schema {
///     name: "session", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &FIELDS,
/// };
///
/// let config = RedisConfig::new("redis://127.0.0.1:6379").with_key_prefix("app");
/// let store = RedisStore::connect("cache", config).await?;
/// let session = EntityInfo { store: "cache".into(), ..EntityInfo::new(&SESSION) };
/// store.ensure_entity(&session).await?;
///
/// let mut r = Record::new(Key::from("s1"));
/// r.set("id", Value::from("s1"));
/// r.set("user", Value::from("u1"));
/// let ttl = Some(std::time::Duration::from_secs(1800));
/// let put = WriteOp::Put { record: r, precondition: Precondition::Absent, ttl };
/// // One Lua script: HSET app:session:s1 v 1 d {...}; PEXPIRE app:session:s1 1800000
/// let out = store.write(&session, vec![put], true).await?;
/// assert_eq!(out, vec![WriteOutcome::Written { version: 1 }]);
/// assert_eq!(store.get(&session, &Key::from("s1")).await?.unwrap().version, 1);
/// # Ok::<(), polyrouter::Error>(())
/// # }).unwrap();
/// ```
pub struct RedisStore {
    name: String,
    location: String,
    /// `redis {host:port or socket}/{db}`: which stores share a key space.
    server: String,
    prefix: String,
    caps: Capabilities,
    /// The connection; on a cluster replaced by a fresh one after a
    /// `READONLY` reply ([`RedisStore::refresh_slot_map`]).
    conn: Arc<std::sync::RwLock<Conn>>,
    /// On a cluster, the client that opens a fresh connection.
    cluster_client: Option<redis::cluster::ClusterClient>,
    /// A fresh cluster connection is being opened.
    refreshing: Arc<std::sync::atomic::AtomicBool>,
    /// A Redis Cluster: hash-tagged keys, one slot per script call.
    cluster: bool,
    /// `WAIT` after each write: replicas and timeout in milliseconds.
    wait: Option<(u32, u64)>,
    write_script: Script,
    apply_script: Script,
    put_one_script: Script,
    delete_if_equal: Script,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("name", &self.name)
            .field("location", &self.location)
            .field("key_prefix", &self.prefix)
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

/// Whether a driver error means the server could not be reached, dropped
/// the connection (also mid-reply), timed out, or is temporarily unable to
/// answer.
pub(crate) fn is_transient(e: &RedisError) -> bool {
    // A reply cut off mid-stream (the connection was reset while the server
    // answered) is a parse error, after which the driver reconnects.
    e.kind() == ErrorKind::Parse
        || e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ClusterDown
            )
        )
        || e.code() == Some("BUSY")
        || is_cluster_change(e)
}

/// A Redis Cluster changing under the call (a failover or a slot
/// migration): a `MOVED` / `ASK` / `READONLY` reply still there after the
/// driver's retries, or no connection to the slot's node. Transient, but
/// not a refusal: an earlier attempt of the driver may have been applied.
fn is_cluster_change(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ClusterConnectionNotFound
            | ErrorKind::Server(
                ServerErrorKind::Moved | ServerErrorKind::Ask | ServerErrorKind::ReadOnly
            )
    )
}

/// Whether the server refused the command without running it: `BUSY` (a
/// script is running), `LOADING` (the dataset is loading), `TRYAGAIN`,
/// `MASTERDOWN`, `CLUSTERDOWN`.
fn is_refusal(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
                | ServerErrorKind::TryAgain
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ClusterDown
        )
    ) || e.code() == Some("BUSY")
}

/// Maps a driver error (the classification table is in docs/resilience.md):
/// a command the server refused without running it (`BUSY`, `LOADING`,
/// `TRYAGAIN`, `MASTERDOWN`, `CLUSTERDOWN`) → [`Error::Rejected`]
/// `throttled`; a lost connection or a timeout → the transient
/// [`Error::Unavailable`] (a write's outcome is unknown); anything else →
/// [`Error::Backend`]. Redis' messages never hold the values sent, and the
/// driver's never the password.
fn map_err(store: &str, location: &str, entity: &str, e: RedisError) -> Error {
    if is_refusal(&e) {
        Error::Rejected {
            store: store.into(),
            entity: entity.into(),
            reason: crate::Rejection::Throttled,
            message: format!(
                "Redis at {location} refused the command for now ({}); nothing was written — retry",
                e.code().unwrap_or("busy")
            ),
            retry_after: None,
            source: Some(Box::new(e)),
        }
    } else if is_transient(&e) {
        let what = if e.is_timeout() {
            "timed out waiting for Redis"
        } else if is_cluster_change(&e) {
            "the Redis Cluster's slots are moving (failover or resharding)"
        } else {
            "lost the connection to Redis"
        };
        Error::Unavailable {
            store: store.into(),
            entity: entity.into(),
            message: format!(
                "{what} at {location}: {e}; the connection is re-established on the next call"
            ),
            source: Some(Box::new(e)),
        }
    } else {
        Error::backend(store, entity, e)
    }
}

/// Which server and database a connection reaches, as stores sharing one
/// key space are told apart: `redis 127.0.0.1:6379/0` (host names as
/// written, in lower case).
fn server_id(info: &redis::ConnectionInfo) -> String {
    let addr = match info.addr() {
        redis::ConnectionAddr::Unix(path) => path.display().to_string(),
        other => other.to_string().to_ascii_lowercase(),
    };
    format!("redis {addr}/{}", info.redis_settings().db())
}

/// A TTL as Redis milliseconds: rounded up, at least 1, at most 100 years.
/// `PEXPIRE` on a record, not on a tombstone (a hash without `d`).
const EXPIRE_RECORD_LUA: &str = "if redis.call('HEXISTS', KEYS[1], 'd') == 1 then return redis.call('PEXPIRE', KEYS[1], ARGV[1]) else return 0 end";

/// `PERSIST` on a record, not on a tombstone; 1 when the record exists.
const PERSIST_RECORD_LUA: &str = "if redis.call('HEXISTS', KEYS[1], 'd') == 1 then redis.call('PERSIST', KEYS[1]); return 1 else return 0 end";

fn ttl_ms(ttl: Duration) -> u64 {
    let ms = ttl.as_nanos().div_ceil(1_000_000).clamp(1, MAX_TTL_MS);
    ms as u64
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

impl RedisStore {
    /// Connects to the server the configuration names.
    ///
    /// A bad option is an [`Error::Config`]; a server that cannot be
    /// reached is an [`Error::Unavailable`] naming the store and the
    /// address (password redacted).
    ///
    /// ```no_run
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use polyrouter::backends::redis::{RedisConfig, RedisStore};
    /// use polyrouter::Store;
    /// let store = RedisStore::connect("cache", RedisConfig::new("redis://:pw@127.0.0.1:6379")).await?;
    /// assert_eq!(store.location(), "redis://:***@127.0.0.1:6379");
    /// store.ping().await?;
    /// # Ok::<(), polyrouter::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn connect(name: &str, config: RedisConfig) -> Result<RedisStore> {
        let located =
            |key: &str, msg: String| Error::config("<code>", &format!("stores.{name}.{key}"), msg);
        Self::connect_inner(name, config, &located).await
    }

    async fn connect_inner(
        name: &str,
        config: RedisConfig,
        config_error: &(dyn Fn(&str, String) -> Error + Send + Sync),
    ) -> Result<RedisStore> {
        if let Err((key, msg)) = config.validate() {
            return Err(config_error(key, msg));
        }
        let location = redact_url(&config.url);
        // The driver's parse errors may quote the URL: never shown.
        let client = redis::Client::open(config.url.as_str()).map_err(|_| {
            config_error(
                "url",
                format!(
                    "{location:?} is not a valid Redis URL; write `redis://[user:password@]host[:port][/db]` or `redis+unix:///path/to/redis.sock`; a password holding `/`, `?`, `#`, `@`, `:`, `%` or a space must be percent-encoded (`%2F`, `%3F`, `%23`, `%40`, `%3A`, `%25`, `%20`)"
                ),
            )
        })?;
        let server = server_id(client.get_connection_info());
        let (conn, cluster_client) = if config.cluster {
            let (client, conn) = cluster::connect(name, &config, &location, config_error).await?;
            (Conn::Cluster(conn), Some(client))
        } else {
            let conn = Self::connect_single(name, &config, &location, client).await?;
            (Conn::Single(conn), None)
        };
        Ok(RedisStore {
            name: name.to_string(),
            location,
            server: if config.cluster {
                server.replacen("redis ", "redis-cluster ", 1)
            } else {
                server
            },
            prefix: config.key_prefix,
            caps: if config.cluster {
                crate::backends::kind_caps::redis_cluster()
            } else {
                crate::backends::kind_caps::redis()
            },
            conn: Arc::new(std::sync::RwLock::new(conn)),
            cluster_client,
            refreshing: Arc::default(),
            cluster: config.cluster,
            wait: (config.wait_replicas > 0).then(|| {
                (
                    config.wait_replicas,
                    config.wait_timeout.0.as_millis().clamp(1, u64::MAX as u128) as u64,
                )
            }),
            write_script: Script::new(WRITE_LUA),
            apply_script: Script::new(APPLY_LUA),
            put_one_script: Script::new(PUT_ONE_LUA),
            delete_if_equal: Script::new(DELETE_IF_EQUAL_LUA),
        })
    }

    /// The reconnecting connection to one server.
    async fn connect_single(
        name: &str,
        config: &RedisConfig,
        location: &str,
        client: redis::Client,
    ) -> Result<ConnectionManager> {
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout.0))
            .set_response_timeout(Some(config.response_timeout.0))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        ConnectionManager::new_with_config(client, manager_config)
            .await
            .map_err(|e| {
                let shown = Redactor::new().with_url(&config.url).redact(&e.to_string());
                let message = format!(
                    "cannot connect to Redis at {location}: {shown}; check that the server runs and the URL, user and password are right"
                );
                Error::Unavailable {
                    store: name.into(),
                    entity: String::new(),
                    message,
                    source: Some(Box::new(Message(shown))),
                }
            })
    }

    /// The key prefix every key of this store starts with.
    ///
    /// ```no_run
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use polyrouter::backends::redis::{RedisConfig, RedisStore};
    /// let store = RedisStore::connect("cache", RedisConfig::new("redis://127.0.0.1:6379")).await?;
    /// assert_eq!(store.key_prefix(), "polyrouter");
    /// # Ok::<(), polyrouter::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    fn conn(&self) -> Conn {
        self.conn.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn err(&self, entity: &EntityInfo, e: RedisError) -> Error {
        if self.cluster && e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly) {
            self.refresh_slot_map();
        }
        map_err(&self.name, &self.location, entity.name(), e)
    }

    fn invalid(&self, entity: &EntityInfo, message: impl fmt::Display) -> Error {
        Error::invalid_input(&self.name, entity.name(), message)
    }

    fn check_table(&self, entity: &EntityInfo) -> Result<()> {
        self.table_problem(entity)
            .map_err(|m| self.invalid(entity, format!("store `{}`: {m}", self.name)))
    }

    /// Why the entity's table cannot be a Redis namespace of this store.
    fn table_problem(&self, entity: &EntityInfo) -> std::result::Result<(), String> {
        codec::check_table(&entity.table)?;
        if self.cluster && entity.table.contains(['{', '}']) {
            return Err(format!(
                "table `{}` holds `{{` or `}}`, which on a Redis Cluster would choose the hash slot of every key; rename it",
                entity.table
            ));
        }
        Ok(())
    }

    /// The Redis key of a record, after checking the key's kind.
    fn record_key(&self, entity: &EntityInfo, key: &Key) -> Result<Vec<u8>> {
        let want = entity.schema.key_kind;
        if key.kind() != want {
            return Err(self.invalid(
                entity,
                format!(
                    "key {key} is a {:?} key, but `{}` keys are {:?}",
                    key.kind(),
                    entity.name(),
                    want
                ),
            ));
        }
        Ok(codec::record_key(
            &self.prefix,
            &entity.table,
            key,
            self.tag(entity),
        ))
    }

    /// Which part of the entity's keys is their hash tag: none on one
    /// server; on a cluster the key, or the table for an entity with a
    /// `partition_key` field (so a batch within a partition, which the
    /// router may send as one atomic call, is one slot).
    fn tag(&self, entity: &EntityInfo) -> codec::Tag {
        let schema = entity.schema;
        if !self.cluster {
            codec::Tag::None
        } else if schema.partition_key.is_some_and(|pk| pk != schema.key) {
            codec::Tag::Table
        } else {
            codec::Tag::Key
        }
    }

    /// The Redis key of the entity's outbox stream.
    fn outbox_key(&self, entity: &EntityInfo) -> Vec<u8> {
        codec::outbox_key(&self.prefix, &entity.table)
    }

    fn decode(&self, entity: &EntityInfo, key: &Key, version: u64, data: &[u8]) -> Result<Record> {
        codec::decode_record(entity.schema, key, version, data).map_err(|m| {
            Error::backend(
                &self.name,
                entity.name(),
                Message(format!(
                    "the record with key {key} in table `{}`: {m}",
                    entity.table
                )),
            )
        })
    }

    fn conflict(
        &self,
        entity: &EntityInfo,
        key: &Key,
        expected: Precondition,
        actual: Option<u64>,
    ) -> Error {
        Error::conflict(&self.name, entity.name(), key, expected, actual)
    }

    /// One write as the script's key and four arguments, checked.
    fn encode_op(&self, entity: &EntityInfo, op: &WriteOp) -> Result<EncodedOp> {
        let key = self.record_key(entity, op.key())?;
        let precondition = match op.precondition() {
            Precondition::None => "n".into(),
            Precondition::Absent => "a".into(),
            Precondition::Exists => "e".into(),
            Precondition::Version(v) => v.to_string().into(),
        };
        Ok(match op {
            WriteOp::Put { record, ttl, .. } => {
                let data = self.encode_data(entity, record)?;
                if let Some(problem) = ttl.and_then(crate::capability::ttl_problem) {
                    return Err(self.invalid(entity, format!("record {}: {problem}", record.key)));
                }
                EncodedOp {
                    key,
                    kind: "p",
                    precondition,
                    data,
                    ttl: ttl.map(|t| ttl_ms(t).to_string()).unwrap_or_default(),
                    event: sync::event_json(entity, &record.key, Some(record)),
                }
            }
            WriteOp::Delete { key: k, .. } => EncodedOp {
                key,
                kind: "d",
                precondition,
                data: Vec::new(),
                ttl: String::new(),
                event: sync::event_json(entity, k, None),
            },
        })
    }

    /// A record's fields as the `d` the scripts store, checked: every
    /// value fits its field, and the whole fits one Redis argument.
    fn encode_data(&self, entity: &EntityInfo, record: &Record) -> Result<Vec<u8>> {
        let data = codec::encode_record(entity.schema, record)
            .map_err(|m| self.invalid(entity, format!("record {}: {m}", record.key)))?;
        if data.len() > MAX_RECORD_BYTES {
            return Err(self.invalid(
                entity,
                format!(
                    "record {} is {} bytes encoded; Redis accepts at most {MAX_RECORD_BYTES}",
                    record.key,
                    data.len()
                ),
            ));
        }
        Ok(data)
    }

    /// Runs the write script over `ops` (all or nothing) and appends their
    /// outcomes; a failed precondition is a conflict naming its op.
    async fn run_script(
        &self,
        entity: &EntityInfo,
        ops: &[WriteOp],
        encoded: &[EncodedOp],
        outcomes: &mut Vec<WriteOutcome>,
    ) -> Result<()> {
        match self.run_chunk(entity, encoded).await? {
            ScriptReply::Conflict { index, actual } => {
                let op = &ops[index];
                Err(self.conflict(entity, op.key(), op.precondition(), actual))
            }
            ScriptReply::Done(values) => {
                outcomes.extend(outcomes_of(ops, values));
                Ok(())
            }
        }
    }

    /// The end of the chunk of a non-atomic batch starting at `start`:
    /// at most [`CHUNK_OPS`] writes and [`CHUNK_BYTES`] (at least one),
    /// and on a cluster only writes in the first one's hash slot.
    fn chunk_end(&self, encoded: &[EncodedOp], start: usize) -> usize {
        let end = chunk_end_by(encoded.len(), start, |i| encoded[i].size());
        self.same_slot_end(start, end, |i| &encoded[i].key)
    }

    /// Runs the write script over one chunk (all or nothing).
    async fn run_chunk(&self, entity: &EntityInfo, encoded: &[EncodedOp]) -> Result<ScriptReply> {
        if self.cluster && entity.outbox.is_some() {
            return Err(self.no_cluster_outbox(entity));
        }
        let mut invocation = self.write_script.prepare_invoke();
        for e in encoded {
            invocation
                .key(&e.key)
                .arg(e.kind)
                .arg(e.precondition.as_ref())
                .arg(&e.data)
                .arg(&e.ttl)
                .arg(&e.event);
        }
        if entity.outbox.is_some() {
            invocation.key(self.outbox_key(entity));
        }
        invocation.arg(tombstone_ms(entity));
        let reply: Vec<i64> = self
            .conn()
            .invoke(&invocation, WRITE_LUA, &encoded[0].key)
            .await
            .map_err(|e| self.err(entity, e))?;
        let reply = parse_reply(reply, encoded.len())
            .map_err(|m| Error::backend(&self.name, entity.name(), Message(m)))?;
        if matches!(reply, ScriptReply::Done(_)) {
            self.replicated(entity, &encoded[0].key).await?;
        }
        Ok(reply)
    }

    /// One unconditional put (`put_one.lua`): its new version.
    async fn put_one(&self, entity: &EntityInfo, e: &EncodedOp) -> Result<u64> {
        if self.cluster && entity.outbox.is_some() {
            return Err(self.no_cluster_outbox(entity));
        }
        let mut invocation = self.put_one_script.prepare_invoke();
        invocation
            .key(&e.key)
            .arg(&e.data)
            .arg(&e.ttl)
            .arg(&e.event);
        if entity.outbox.is_some() {
            invocation.key(self.outbox_key(entity));
        }
        let version: i64 = self
            .conn()
            .invoke(&invocation, PUT_ONE_LUA, &e.key)
            .await
            .map_err(|e| self.err(entity, e))?;
        u64::try_from(version).map_err(|_| {
            Error::backend(
                &self.name,
                entity.name(),
                Message(format!(
                    "the put script returned version {version}; is another program writing this key?"
                )),
            )
        })
    }

    /// Checks a [`KvStore`] call and returns the Redis key of its raw value.
    fn kv_value_key(
        &self,
        entity: &EntityInfo,
        key: &Key,
        ttl: Option<Duration>,
    ) -> Result<Vec<u8>> {
        check_call(&self.name, entity, key, ttl)?;
        self.check_table(entity)?;
        Ok(codec::value_key(
            &self.prefix,
            &entity.table,
            key,
            self.tag(entity),
        ))
    }

    /// Checks a [`KvStore`] call and returns the Redis key of its record.
    fn kv_record_key(
        &self,
        entity: &EntityInfo,
        key: &Key,
        ttl: Option<Duration>,
    ) -> Result<Vec<u8>> {
        check_call(&self.name, entity, key, ttl)?;
        self.check_table(entity)?;
        Ok(codec::record_key(
            &self.prefix,
            &entity.table,
            key,
            self.tag(entity),
        ))
    }

    /// An `ERR ... not an integer` / overflow reply to INCRBY as invalid input.
    fn counter_err(&self, entity: &EntityInfo, key: &Key, e: RedisError) -> Error {
        let text = e.to_string();
        if !is_transient(&e) && (text.contains("not an integer") || text.contains("overflow")) {
            return self.invalid(
                entity,
                format!("the value at key {key} is not an integer counter, or the increment would overflow an i64"),
            );
        }
        self.err(entity, e)
    }
}

/// One write, encoded for the write script.
struct EncodedOp {
    key: Vec<u8>,
    kind: &'static str,
    precondition: std::borrow::Cow<'static, str>,
    data: Vec<u8>,
    ttl: String,
    /// The outbox event (JSON), empty when the route has no outbox.
    event: Vec<u8>,
}

impl EncodedOp {
    /// Bytes sent for it, roughly.
    fn size(&self) -> usize {
        self.key.len()
            + self.data.len()
            + self.precondition.len()
            + self.ttl.len()
            + self.event.len()
            + 40
    }
}

/// The end of a chunk of `len` items starting at `start`: at most
/// [`CHUNK_OPS`] items and [`CHUNK_BYTES`] by `size` (at least one item).
fn chunk_end_by(len: usize, start: usize, size: impl Fn(usize) -> usize) -> usize {
    let mut end = start;
    let mut bytes = 0;
    while end < len && end - start < CHUNK_OPS && (end == start || bytes + size(end) <= CHUNK_BYTES)
    {
        bytes += size(end);
        end += 1;
    }
    end
}

/// The entity's tombstone retention as the scripts take it: milliseconds,
/// `0` for no tombstones.
fn tombstone_ms(entity: &EntityInfo) -> u64 {
    let keep = entity.tombstone_retention;
    if keep.is_zero() { 0 } else { ttl_ms(keep) }
}

/// Decodes the write script's reply.
enum ScriptReply {
    /// `{1, outcome_1, ..., outcome_n}`.
    Done(Vec<i64>),
    /// `{0, i, actual}`: op `i` (1-based) failed its precondition.
    Conflict { index: usize, actual: Option<u64> },
}

fn outcomes_of(ops: &[WriteOp], values: Vec<i64>) -> impl Iterator<Item = WriteOutcome> + '_ {
    ops.iter().zip(values).map(|(op, v)| match op {
        WriteOp::Put { .. } => WriteOutcome::Written { version: v as u64 },
        WriteOp::Delete { .. } => WriteOutcome::Deleted { existed: v != 0 },
    })
}

fn parse_reply(reply: Vec<i64>, ops: usize) -> std::result::Result<ScriptReply, String> {
    match reply.first() {
        Some(1) if reply.len() == ops + 1 => Ok(ScriptReply::Done(reply[1..].to_vec())),
        Some(0) if reply.len() == 3 && reply[1] >= 1 && (reply[1] as usize) <= ops => {
            Ok(ScriptReply::Conflict {
                index: reply[1] as usize - 1,
                actual: u64::try_from(reply[2]).ok(),
            })
        }
        _ => Err(format!(
            "the write script returned {} values for {ops} writes; is another program writing these keys?",
            reply.len()
        )),
    }
}

impl RedisStore {
    /// [`Store::write`] and [`Store::write_ref`]: the ops are encoded from
    /// borrowed ops, so neither copies them.
    async fn write_slice(
        &self,
        entity: &EntityInfo,
        ops: &[WriteOp],
        atomic: bool,
    ) -> Result<Vec<WriteOutcome>> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        self.check_table(entity)?;
        // Encode and check everything before sending anything.
        let encoded = ops
            .iter()
            .map(|op| self.encode_op(entity, op))
            .collect::<Result<Vec<_>>>()?;
        let total: usize = encoded.iter().map(EncodedOp::size).sum();
        if atomic && total > MAX_ATOMIC_BATCH_BYTES {
            return Err(self.invalid(
                entity,
                format!(
                    "the batch is {total} bytes encoded; an atomic batch on Redis is one script call of at most {MAX_ATOMIC_BATCH_BYTES} bytes — split it, or commit it non-atomically"
                ),
            ));
        }
        if atomic {
            self.check_one_slot(entity, ops, &encoded)?;
        }
        if let [
            WriteOp::Put {
                precondition: Precondition::None,
                ..
            },
        ] = ops
        {
            let version = self.put_one(entity, &encoded[0]).await?;
            self.replicated(entity, &encoded[0].key).await?;
            return Ok(vec![WriteOutcome::Written { version }]);
        }
        let mut outcomes = Vec::with_capacity(ops.len());
        let mut start = 0;
        while start < ops.len() {
            let end = if atomic {
                ops.len()
            } else {
                self.chunk_end(&encoded, start)
            };
            self.run_script(
                entity,
                &ops[start..end],
                &encoded[start..end],
                &mut outcomes,
            )
            .await?;
            start = end;
        }
        Ok(outcomes)
    }
}

#[async_trait]
impl Store for RedisStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    /// Every key begins `{key_prefix}:` (records) or `{key_prefix}#kv:`
    /// (raw values), on the server and database of the URL.
    fn namespace(&self) -> Namespace {
        Namespace::shared(
            self.server.clone(),
            vec![format!("{}:", self.prefix), format!("{}#kv:", self.prefix)],
            TableNames::EXACT,
        )
    }

    /// Nothing to create: checks only that the table name can be a Redis
    /// namespace (no `:`).
    async fn ensure_entity(&self, entity: &EntityInfo) -> Result<()> {
        self.table_problem(entity)
            .map_err(|m| entity_config_error(entity, format!("store `{}`: {m}", self.name)))?;
        if self.cluster && entity.outbox.is_some() {
            return Err(self.no_cluster_outbox(entity));
        }
        Ok(())
    }

    async fn drop_entity(&self, entity: &EntityInfo) -> Result<()> {
        self.check_table(entity)?;
        if self.cluster {
            return self.drop_cluster_entity(entity).await;
        }
        // Every record and raw value of the table: `{prefix}:{table}:*`
        // and `{prefix}#kv:{table}:*`, found with SCAN, removed with UNLINK.
        let mut conn = self.conn();
        for space in ["", "#kv"] {
            let pattern = format!(
                "{}{space}:{}:*",
                codec::glob_escape(&self.prefix),
                codec::glob_escape(&entity.table)
            );
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| self.err(entity, e))?;
                if !keys.is_empty() {
                    let _: u64 = redis::cmd("UNLINK")
                        .arg(&keys)
                        .query_async(&mut conn)
                        .await
                        .map_err(|e| self.err(entity, e))?;
                }
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
        // The outbox stream, `{prefix}:{table}#outbox`.
        let _: u64 = redis::cmd("UNLINK")
            .arg(self.outbox_key(entity))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.err(entity, e))?;
        Ok(())
    }

    async fn get(&self, entity: &EntityInfo, key: &Key) -> Result<Option<Record>> {
        self.check_table(entity)?;
        let rkey = self.record_key(entity, key)?;
        let (version, data): (Option<u64>, Option<Vec<u8>>) = redis::cmd("HMGET")
            .arg(rkey)
            .arg("v")
            .arg("d")
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.err(entity, e))?;
        match (version, data) {
            (Some(v), Some(d)) => self.decode(entity, key, v, &d).map(Some),
            _ => Ok(None),
        }
    }

    async fn get_many(&self, entity: &EntityInfo, keys: &[Key]) -> Result<Vec<Option<Record>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.check_table(entity)?;
        let rkeys = keys
            .iter()
            .map(|k| self.record_key(entity, k))
            .collect::<Result<Vec<_>>>()?;
        if self.cluster {
            return self.get_many_cluster(entity, keys, &rkeys).await;
        }
        let mut out = Vec::with_capacity(keys.len());
        let mut conn = self.conn();
        for (chunk, rchunk) in keys
            .chunks(GET_MANY_CHUNK)
            .zip(rkeys.chunks(GET_MANY_CHUNK))
        {
            let mut pipe = redis::pipe();
            for rkey in rchunk {
                pipe.cmd("HMGET").arg(rkey).arg("v").arg("d");
            }
            let rows: Vec<(Option<u64>, Option<Vec<u8>>)> = pipe
                .query_async(&mut conn)
                .await
                .map_err(|e| self.err(entity, e))?;
            for (key, row) in chunk.iter().zip(rows) {
                out.push(match row {
                    (Some(v), Some(d)) => Some(self.decode(entity, key, v, &d)?),
                    _ => None,
                });
            }
        }
        Ok(out)
    }

    /// An atomic call is one Lua script: all preconditions first, then all
    /// writes. A non-atomic one is the same script over chunks of at most
    /// 1000 writes / 16 MiB, in order, stopping at the first failure.
    async fn write(
        &self,
        entity: &EntityInfo,
        ops: Vec<WriteOp>,
        atomic: bool,
    ) -> Result<Vec<WriteOutcome>> {
        self.write_slice(entity, &ops, atomic).await
    }

    async fn write_ref(
        &self,
        entity: &EntityInfo,
        ops: &[WriteOp],
        atomic: bool,
    ) -> Result<Vec<WriteOutcome>> {
        self.write_slice(entity, ops, atomic).await
    }

    /// The script over chunks, as a non-atomic [`Store::write`]; a chunk
    /// that fails a precondition at write `i` wrote nothing, so the writes
    /// before `i` run again as a chunk of their own, write `i` gets its
    /// `Conflict`, and the batch goes on after it. A lost connection
    /// fails the chunk it was sending and every write after it.
    async fn write_each(
        &self,
        entity: &EntityInfo,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<Result<WriteOutcome>>> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        self.check_table(entity)?;
        let encoded = ops
            .iter()
            .map(|op| self.encode_op(entity, op))
            .collect::<Result<Vec<_>>>()?;
        let mut out: Vec<Result<WriteOutcome>> = Vec::with_capacity(ops.len());
        let mut start = 0;
        let mut cap = ops.len();
        while start < ops.len() {
            let end = self.chunk_end(&encoded, start).min(cap.max(start + 1));
            match self.run_chunk(entity, &encoded[start..end]).await {
                Ok(ScriptReply::Done(values)) => {
                    out.extend(outcomes_of(&ops[start..end], values).map(Ok));
                    start = end;
                    cap = ops.len();
                }
                Ok(ScriptReply::Conflict { index: 0, actual }) => {
                    let op = &ops[start];
                    out.push(Err(self.conflict(
                        entity,
                        op.key(),
                        op.precondition(),
                        actual,
                    )));
                    start += 1;
                    cap = ops.len();
                }
                // Nothing of the chunk was written: run the writes before
                // the conflicting one alone, then decide that one again.
                Ok(ScriptReply::Conflict { index, .. }) => cap = start + index,
                Err(e) if out.is_empty() => return Err(e),
                Err(e) => {
                    while out.len() < ops.len() {
                        out.push(Err(e.clone_lossy()));
                    }
                    break;
                }
            }
        }
        Ok(out)
    }

    /// One apply script per chunk of at most 1000 changes / 16 MiB.
    async fn apply_versioned(
        &self,
        entity: &EntityInfo,
        changes: Vec<VersionedChange>,
    ) -> Result<Vec<Applied>> {
        self.apply_changes(entity, &changes).await
    }

    /// `XRANGE {outbox} - + COUNT max`.
    async fn outbox_fetch(&self, entity: &EntityInfo, max: usize) -> Result<Vec<OutboxEntry>> {
        self.outbox_entries(entity, max).await
    }

    /// `XDEL {outbox} ids…`.
    async fn outbox_remove(&self, entity: &EntityInfo, ids: &[String]) -> Result<()> {
        self.outbox_delete(entity, ids).await
    }

    /// `XLEN {outbox}`.
    async fn outbox_len(&self, entity: &EntityInfo) -> Result<u64> {
        self.check_table(entity)?;
        if self.cluster {
            return Err(self.no_cluster_outbox(entity));
        }
        redis::cmd("XLEN")
            .arg(self.outbox_key(entity))
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.err(entity, e))
    }

    async fn query(&self, entity: &EntityInfo, _query: &StoreQuery) -> Result<Vec<Record>> {
        Err(Error::unsupported(&self.name, entity.name(), "query"))
    }

    async fn count(&self, entity: &EntityInfo, _filter: Option<&Filter>) -> Result<u64> {
        Err(Error::unsupported(&self.name, entity.name(), "count"))
    }

    async fn ping(&self) -> Result<()> {
        let _: String = redis::cmd("PING")
            .query_async(&mut self.conn())
            .await
            .map_err(|e| map_err(&self.name, &self.location, "", e))?;
        Ok(())
    }

    fn as_kv(&self) -> Option<&dyn KvStore> {
        Some(self)
    }
}

/// Raw values live under `{key_prefix}#kv:{table}:{key}`, apart from the
/// records; `expire` and `persist` act on records.
#[async_trait]
impl KvStore for RedisStore {
    async fn increment(
        &self,
        entity: &EntityInfo,
        key: &Key,
        delta: i64,
        ttl: Option<Duration>,
    ) -> Result<i64> {
        let vkey = self.kv_value_key(entity, key, ttl)?;
        let mut conn = self.conn();
        let n = match ttl {
            None => redis::cmd("INCRBY")
                .arg(&vkey)
                .arg(delta)
                .query_async(&mut conn)
                .await
                .map_err(|e| self.counter_err(entity, key, e)),
            Some(ttl) => {
                // Create at 0 with the TTL if absent, then add: one MULTI.
                let (n,): (i64,) = redis::pipe()
                    .atomic()
                    .cmd("SET")
                    .arg(&vkey)
                    .arg(0)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms(ttl))
                    .ignore()
                    .cmd("INCRBY")
                    .arg(&vkey)
                    .arg(delta)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| self.counter_err(entity, key, e))?;
                Ok(n)
            }
        }?;
        self.replicated(entity, &vkey).await?;
        Ok(n)
    }

    async fn set_if_absent(
        &self,
        entity: &EntityInfo,
        key: &Key,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool> {
        let vkey = self.kv_value_key(entity, key, Some(ttl))?;
        let set: Option<String> = redis::cmd("SET")
            .arg(&vkey)
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms(ttl))
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.err(entity, e))?;
        if set.is_some() {
            self.replicated(entity, &vkey).await?;
        }
        Ok(set.is_some())
    }

    async fn get_bytes(&self, entity: &EntityInfo, key: &Key) -> Result<Option<Vec<u8>>> {
        let vkey = self.kv_value_key(entity, key, None)?;
        redis::cmd("GET")
            .arg(vkey)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.err(entity, e))
    }

    async fn delete_bytes(
        &self,
        entity: &EntityInfo,
        key: &Key,
        expected: Option<&[u8]>,
    ) -> Result<bool> {
        let vkey = self.kv_value_key(entity, key, None)?;
        let n: i64 = match expected {
            None => {
                redis::cmd("DEL")
                    .arg(&vkey)
                    .query_async(&mut self.conn())
                    .await
            }
            Some(v) => {
                let mut invocation = self.delete_if_equal.prepare_invoke();
                invocation.key(&vkey).arg(v);
                self.conn()
                    .invoke(&invocation, DELETE_IF_EQUAL_LUA, &vkey)
                    .await
            }
        }
        .map_err(|e| self.err(entity, e))?;
        if n > 0 {
            self.replicated(entity, &vkey).await?;
        }
        Ok(n > 0)
    }

    async fn expire(&self, entity: &EntityInfo, key: &Key, ttl: Duration) -> Result<bool> {
        let rkey = self.kv_record_key(entity, key, Some(ttl))?;
        // A tombstone (a hash without `d`) is no record: left alone.
        let script = redis::Script::new(EXPIRE_RECORD_LUA);
        let mut invocation = script.prepare_invoke();
        invocation.key(&rkey).arg(ttl_ms(ttl));
        let n: i64 = self
            .conn()
            .invoke(&invocation, EXPIRE_RECORD_LUA, &rkey)
            .await
            .map_err(|e| self.err(entity, e))?;
        if n == 1 {
            self.replicated(entity, &rkey).await?;
        }
        Ok(n == 1)
    }

    async fn persist(&self, entity: &EntityInfo, key: &Key) -> Result<bool> {
        let rkey = self.kv_record_key(entity, key, None)?;
        let script = redis::Script::new(PERSIST_RECORD_LUA);
        let mut invocation = script.prepare_invoke();
        invocation.key(&rkey);
        let exists: i64 = self
            .conn()
            .invoke(&invocation, PERSIST_RECORD_LUA, &rkey)
            .await
            .map_err(|e| self.err(entity, e))?;
        if exists == 1 {
            self.replicated(entity, &rkey).await?;
        }
        Ok(exists == 1)
    }
}
