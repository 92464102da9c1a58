//! [`KvStore`]: the extras key-value stores offer beyond [`Store`](crate::Store):
//! atomic counters, lock-style set-if-absent values, and changing a record's
//! expiry without rewriting it.
//!
//! A store that implements it returns itself from
//! [`Store::as_kv`](crate::Store::as_kv):
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use polyrouter::backends::memory::MemoryStore;
//! use polyrouter::store::EntityInfo;
//! use polyrouter::{FieldDef, Key, KeyKind, Schema, Store};
//! # static F: [FieldDef; 0] = [];
//! # static HITS: Schema = Schema { name: "hits", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
//! let store = MemoryStore::new("cache");
//! let kv = store.as_kv().expect("the memory store is a key-value store");
//! let hits = EntityInfo::new(&HITS);
//! assert_eq!(kv.increment(&hits, &Key::from("home"), 1, None).await?, 1);
//! # Ok::<(), polyrouter::Error>(())
//! # }).unwrap();
//! ```
//!
//! # Two key spaces per entity
//!
//! Every operation is keyed by entity and key, like the `Store` operations,
//! but there are two separate key spaces:
//!
//! - **records**, written by [`Store::write`](crate::Store::write):
//!   [`KvStore::expire`] and [`KvStore::persist`] act on them;
//! - **raw values** (counters, locks, flags), which are not records and are
//!   never returned by `get` or touched by `write`:
//!   [`KvStore::increment`], [`KvStore::set_if_absent`],
//!   [`KvStore::get_bytes`] and [`KvStore::delete_bytes`] act on them.
//!
//! So a counter keyed `"u1"` counts next to the record `"u1"` without
//! replacing it. A counter is a raw value holding the decimal text of an
//! `i64`, so `get_bytes` reads it back as e.g. `b"42"`.

use std::time::Duration;

use async_trait::async_trait;

use crate::store::EntityInfo;
use crate::{Error, Key, Result};

/// Key-value extras: atomic counters, set-if-absent (locks), raw values,
/// and expiry changes on records. Object-safe; get one from
/// [`Store::as_kv`](crate::Store::as_kv).
///
/// Keys must have the entity's key kind (a string key for a string-keyed
/// entity, and so on), or the call fails with
/// [`Error::InvalidInput`]. TTLs must be greater
/// than zero.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::time::Duration;
/// use polyrouter::backends::memory::MemoryStore;
/// use polyrouter::store::{kv::KvStore, EntityInfo};
/// use polyrouter::{FieldDef, Key, KeyKind, Schema};
/// # static F: [FieldDef; 0] = [];
/// # static JOB: Schema = Schema { name: "job", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
/// let kv: &dyn KvStore = &MemoryStore::new("cache");
/// let job = EntityInfo::new(&JOB);
/// let lock = Key::from("nightly-report");
/// assert!(kv.set_if_absent(&job, &lock, b"worker-1", Duration::from_secs(30)).await?);
/// assert!(!kv.set_if_absent(&job, &lock, b"worker-2", Duration::from_secs(30)).await?);
/// assert!(kv.delete_bytes(&job, &lock, Some(b"worker-1".as_slice())).await?);
/// # Ok::<(), polyrouter::Error>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait KvStore: Send + Sync {
    /// Atomically adds `delta` (may be negative) to the counter at `key` and
    /// returns the new value. A missing (or expired) counter starts at 0.
    ///
    /// `ttl` applies only when this call creates the counter (a fixed
    /// window, as rate limiters want); an existing counter keeps its expiry.
    /// A result outside `i64`, or a raw value there that is not a decimal
    /// integer, is [`Error::InvalidInput`] and
    /// changes nothing.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use std::time::Duration;
    /// # use polyrouter::backends::memory::MemoryStore;
    /// # use polyrouter::store::{kv::KvStore, EntityInfo};
    /// # use polyrouter::{FieldDef, Key, KeyKind, Schema};
    /// # static F: [FieldDef; 0] = [];
    /// # static S: Schema = Schema { name: "login_attempts", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
    /// # let kv = MemoryStore::new("cache"); let e = EntityInfo::new(&S);
    /// let ip = Key::from("10.0.0.7");
    /// let window = Some(Duration::from_secs(60));
    /// assert_eq!(kv.increment(&e, &ip, 1, window).await?, 1);
    /// assert_eq!(kv.increment(&e, &ip, 4, window).await?, 5);
    /// assert_eq!(kv.increment(&e, &ip, -5, None).await?, 0);
    /// # Ok::<(), polyrouter::Error>(())
    /// # }).unwrap();
    /// ```
    async fn increment(
        &self,
        entity: &EntityInfo,
        key: &Key,
        delta: i64,
        ttl: Option<Duration>,
    ) -> Result<i64>;

    /// Sets the raw value at `key` only if there is none, expiring after
    /// `ttl`; true if this call set it. The building block of a lock: the
    /// holder writes a token only it knows, and releases the lock with
    /// [`KvStore::delete_bytes`] given that token.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use std::time::Duration;
    /// # use polyrouter::backends::memory::MemoryStore;
    /// # use polyrouter::store::{kv::KvStore, EntityInfo};
    /// # use polyrouter::{FieldDef, Key, KeyKind, Schema};
    /// # static F: [FieldDef; 0] = [];
    /// # static S: Schema = Schema { name: "lock", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
    /// # let kv = MemoryStore::new("cache"); let e = EntityInfo::new(&S);
    /// let k = Key::from("invoice-42");
    /// assert!(kv.set_if_absent(&e, &k, b"me", Duration::from_secs(10)).await?);
    /// assert!(!kv.set_if_absent(&e, &k, b"you", Duration::from_secs(10)).await?);
    /// assert_eq!(kv.get_bytes(&e, &k).await?, Some(b"me".to_vec()));
    /// # Ok::<(), polyrouter::Error>(())
    /// # }).unwrap();
    /// ```
    async fn set_if_absent(
        &self,
        entity: &EntityInfo,
        key: &Key,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool>;

    /// The raw value at `key` (a counter reads as its decimal text), `None`
    /// when there is none or it expired.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use polyrouter::backends::memory::MemoryStore;
    /// # use polyrouter::store::{kv::KvStore, EntityInfo};
    /// # use polyrouter::{FieldDef, Key, KeyKind, Schema};
    /// # static F: [FieldDef; 0] = [];
    /// # static S: Schema = Schema { name: "hits", key: "id", key_kind: KeyKind::Int, partition_key: None, version: None, fields: &F };
    /// # let kv = MemoryStore::new("cache"); let e = EntityInfo::new(&S);
    /// assert_eq!(kv.get_bytes(&e, &Key::from(7i64)).await?, None);
    /// kv.increment(&e, &Key::from(7i64), 42, None).await?;
    /// assert_eq!(kv.get_bytes(&e, &Key::from(7i64)).await?, Some(b"42".to_vec()));
    /// # Ok::<(), polyrouter::Error>(())
    /// # }).unwrap();
    /// ```
    async fn get_bytes(&self, entity: &EntityInfo, key: &Key) -> Result<Option<Vec<u8>>>;

    /// Deletes the raw value at `key`; with `expected`, only if the value
    /// equals it (releasing a lock only its holder can release). True if a
    /// value was deleted.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use std::time::Duration;
    /// # use polyrouter::backends::memory::MemoryStore;
    /// # use polyrouter::store::{kv::KvStore, EntityInfo};
    /// # use polyrouter::{FieldDef, Key, KeyKind, Schema};
    /// # static F: [FieldDef; 0] = [];
    /// # static S: Schema = Schema { name: "lock", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
    /// # let kv = MemoryStore::new("cache"); let e = EntityInfo::new(&S);
    /// let k = Key::from("invoice-42");
    /// kv.set_if_absent(&e, &k, b"me", Duration::from_secs(10)).await?;
    /// assert!(!kv.delete_bytes(&e, &k, Some(b"someone else".as_slice())).await?);
    /// assert!(kv.delete_bytes(&e, &k, Some(b"me".as_slice())).await?);
    /// assert!(!kv.delete_bytes(&e, &k, None).await?);
    /// # Ok::<(), polyrouter::Error>(())
    /// # }).unwrap();
    /// ```
    async fn delete_bytes(
        &self,
        entity: &EntityInfo,
        key: &Key,
        expected: Option<&[u8]>,
    ) -> Result<bool>;

    /// Makes the **record** at `key` expire `ttl` from now, without
    /// rewriting it (its version is unchanged). True if the record exists.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use std::time::Duration;
    /// # use polyrouter::backends::memory::MemoryStore;
    /// # use polyrouter::store::{kv::KvStore, EntityInfo, WriteOp};
    /// # use polyrouter::{FieldDef, Key, KeyKind, Precondition, Record, Schema, Store};
    /// # static F: [FieldDef; 0] = [];
    /// # static S: Schema = Schema { name: "session", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
    /// # let store = MemoryStore::new("cache"); let e = EntityInfo::new(&S);
    /// let k = Key::from("s1");
    /// let put = WriteOp::Put { record: Record::new(k.clone()), precondition: Precondition::None, ttl: None };
    /// store.write(&e, vec![put], true).await?;
    /// assert!(store.expire(&e, &k, Duration::from_secs(1800)).await?);
    /// assert!(!store.expire(&e, &Key::from("nope"), Duration::from_secs(1800)).await?);
    /// # Ok::<(), polyrouter::Error>(())
    /// # }).unwrap();
    /// ```
    async fn expire(&self, entity: &EntityInfo, key: &Key, ttl: Duration) -> Result<bool>;

    /// Removes the **record**'s expiry: it lives until deleted. True if the
    /// record exists (whether or not it had an expiry).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use std::time::Duration;
    /// # use polyrouter::backends::memory::MemoryStore;
    /// # use polyrouter::store::{kv::KvStore, EntityInfo, WriteOp};
    /// # use polyrouter::{FieldDef, Key, KeyKind, Precondition, Record, Schema, Store};
    /// # static F: [FieldDef; 0] = [];
    /// # static S: Schema = Schema { name: "session", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
    /// # let store = MemoryStore::new("cache"); let e = EntityInfo::new(&S);
    /// let k = Key::from("s1");
    /// let ttl = Some(Duration::from_secs(60));
    /// let put = WriteOp::Put { record: Record::new(k.clone()), precondition: Precondition::None, ttl };
    /// store.write(&e, vec![put], true).await?;
    /// assert!(store.persist(&e, &k).await?);
    /// # Ok::<(), polyrouter::Error>(())
    /// # }).unwrap();
    /// ```
    async fn persist(&self, entity: &EntityInfo, key: &Key) -> Result<bool>;
}

/// Checks a [`KvStore`] call's key and TTL: the key has the entity's key
/// kind, and the TTL (if any) is greater than zero; errors name `store`.
/// For backend authors.
///
/// ```
/// # use polyrouter::{FieldDef, Key, KeyKind, Schema, store::{kv::check_call, EntityInfo}};
/// # static F: [FieldDef; 0] = [];
/// # static S: Schema = Schema { name: "t", key: "id", key_kind: KeyKind::Int, partition_key: None, version: None, fields: &F };
/// let e = EntityInfo::new(&S);
/// assert!(check_call("cache", &e, &Key::from(1i64), None).is_ok());
/// let err = check_call("cache", &e, &Key::from("1"), None).unwrap_err();
/// assert!(err.to_string().contains("store `cache`"), "{err}");
/// assert!(check_call("cache", &e, &Key::from(1i64), Some(std::time::Duration::ZERO)).is_err());
/// ```
pub fn check_call(
    store: &str,
    entity: &EntityInfo,
    key: &Key,
    ttl: Option<Duration>,
) -> Result<()> {
    let want = entity.schema.key_kind;
    if key.kind() != want {
        return Err(Error::invalid_input(
            store,
            entity.name(),
            format!(
                "key {key} is a {:?} key, but `{}` keys are {:?}",
                key.kind(),
                entity.name(),
                want
            ),
        ));
    }
    if let Some(problem) = ttl.and_then(crate::capability::ttl_problem) {
        return Err(Error::invalid_input(store, entity.name(), problem));
    }
    Ok(())
}
