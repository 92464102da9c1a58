//! `Repo<T>`: the typed facade over one entity's route.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, BoxStream, StreamExt};

use super::read::{self, ReadMeta};
use super::{Bound, Session};
use crate::config::Consistency;
use crate::query::{Direction, Filter, Order, Query};
use crate::record::{from_fields, to_record};
use crate::store::{StoreQuery, WriteOp, WriteOutcome};
use crate::{Entity, Error, Key, Precondition, Record, Result, Value, token};

/// Options of one write.
///
/// ```
/// use std::time::Duration;
/// use polyrouter::{router::WriteOptions, Precondition};
/// let o = WriteOptions::new().ttl(Duration::from_secs(60)).precondition(Precondition::Absent);
/// assert_eq!(o.precondition, Precondition::Absent);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Condition on the current version.
    pub precondition: Precondition,
    /// Expiry; `None` uses the entity's default TTL.
    pub ttl: Option<Duration>,
}

impl WriteOptions {
    /// Unconditional, default TTL.
    ///
    /// ```
    /// assert_eq!(polyrouter::router::WriteOptions::new().ttl, None);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the precondition.
    ///
    /// ```
    /// let o = polyrouter::router::WriteOptions::new().precondition(polyrouter::Precondition::Exists);
    /// assert_eq!(o.precondition, polyrouter::Precondition::Exists);
    /// ```
    pub fn precondition(mut self, p: Precondition) -> Self {
        self.precondition = p;
        self
    }
    /// Sets the TTL of this write.
    ///
    /// ```
    /// let o = polyrouter::router::WriteOptions::new().ttl(std::time::Duration::from_secs(1));
    /// assert!(o.ttl.is_some());
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

/// One page of query results.
///
/// ```
/// let p: polyrouter::Page<u8> = polyrouter::Page { items: vec![], next: None, query: Default::default() };
/// assert!(p.next_query().is_none());
/// ```
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The rows, in query order.
    pub items: Vec<T>,
    /// Continuation token; `None` on the last page.
    pub next: Option<String>,
    /// The query that produced this page.
    pub query: Query,
}

impl<T> Page<T> {
    /// The query for the next page, if there is one.
    ///
    /// ```
    /// let p: polyrouter::Page<u8> = polyrouter::Page { items: vec![], next: Some("t".into()), query: Default::default() };
    /// assert_eq!(p.next_query().unwrap().after.as_deref(), Some("t"));
    /// ```
    pub fn next_query(&self) -> Option<Query> {
        self.next
            .as_ref()
            .map(|t| self.query.clone().after(t.clone()))
    }
}

/// A typed repository: every operation on one entity type, routed to its
/// store. Cheap to clone.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use polyrouter::{Entity, Precondition, Router};
/// #[derive(Entity, serde::Serialize, serde::Deserialize)]
/// struct Item { id: String, qty: i64 }
/// let r = Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[entities.item]\nstore = \"m\"\n").await.unwrap();
/// let items = r.repo::<Item>().await.unwrap();
/// items.put_if(&Item { id: "a".into(), qty: 1 }, Precondition::Absent).await.unwrap();
/// let again = items.put_if(&Item { id: "a".into(), qty: 2 }, Precondition::Absent).await;
/// assert!(matches!(again, Err(polyrouter::Error::Conflict { actual: Some(1), .. })));
/// assert_eq!(items.get("a").await.unwrap().unwrap().qty, 1);
/// # });
/// ```
pub struct Repo<T> {
    pub(super) b: Arc<Bound>,
    session: Option<Session>,
    consistency: Option<Consistency>,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Repo<T> {
    fn clone(&self) -> Self {
        Repo {
            b: self.b.clone(),
            session: self.session.clone(),
            consistency: self.consistency,
            _t: PhantomData,
        }
    }
}

/// Options of one read: a consistency level overriding the entity's, and
/// a session overriding the repository's.
///
/// ```
/// use polyrouter::{config::Consistency, router::{ReadOptions, Session}};
/// let o = ReadOptions::new().consistency(Consistency::Strong).session(&Session::new());
/// assert_eq!(o.consistency, Some(Consistency::Strong));
/// ```
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// The level of this read; `None`: the repository's, else the entity's.
    pub consistency: Option<Consistency>,
    /// The session of this read; `None`: the repository's, if any.
    pub session: Option<Session>,
}

impl ReadOptions {
    /// The defaults.
    ///
    /// ```
    /// assert!(polyrouter::router::ReadOptions::new().consistency.is_none());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the consistency level of this read.
    ///
    /// ```
    /// let o = polyrouter::router::ReadOptions::new().consistency(polyrouter::config::Consistency::Eventual);
    /// assert!(o.consistency.is_some());
    /// ```
    pub fn consistency(mut self, level: Consistency) -> Self {
        self.consistency = Some(level);
        self
    }
    /// Sets the session of this read.
    ///
    /// ```
    /// let o = polyrouter::router::ReadOptions::new().session(&polyrouter::router::Session::new());
    /// assert!(o.session.is_some());
    /// ```
    pub fn session(mut self, session: &Session) -> Self {
        self.session = Some(session.clone());
        self
    }
}

/// A read's value with how it was answered ([`Repo::get_with`]).
///
/// ```
/// let r: polyrouter::router::Read<u8> = polyrouter::router::Read { value: None, meta: polyrouter::router::ReadMeta::primary(None) };
/// assert!(!r.meta.stale);
/// ```
#[derive(Debug, Clone)]
pub struct Read<T> {
    /// The record, if found.
    pub value: Option<T>,
    /// Source, stale flag, version and age.
    pub meta: ReadMeta,
}

impl<T> std::fmt::Debug for Repo<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo")
            .field("entity", &self.b.info.name())
            .field("store", &self.b.info.store)
            .finish()
    }
}

impl<T: Entity> Repo<T> {
    pub(crate) fn new(b: Arc<Bound>) -> Self {
        Repo {
            b,
            session: None,
            consistency: None,
            _t: PhantomData,
        }
    }

    /// This repository bound to a [`Session`]: its writes record their
    /// versions there, and its reads honour `read_your_writes` and
    /// `monotonic` against it.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct Note { id: i64 }
    /// # let r = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[entities.note]\nstore = \"m\"\n").await.unwrap();
    /// let session = polyrouter::router::Session::new();
    /// let notes = r.repo::<Note>().await.unwrap().with_session(&session);
    /// notes.put(&Note { id: 1 }).await.unwrap();
    /// assert_eq!(session.written("note", &polyrouter::Key::from(1i64)), 1);
    /// # });
    /// ```
    pub fn with_session(&self, session: &Session) -> Repo<T> {
        let mut r = self.clone();
        r.session = Some(session.clone());
        r
    }

    /// This repository reading at another consistency level than the
    /// entity's default.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct Note { id: i64 }
    /// # let r = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[entities.note]\nstore = \"m\"\n").await.unwrap();
    /// let notes = r.repo::<Note>().await.unwrap().with_consistency(polyrouter::config::Consistency::Strong);
    /// assert!(notes.get(1).await.unwrap().is_none());
    /// # });
    /// ```
    pub fn with_consistency(&self, level: Consistency) -> Repo<T> {
        let mut r = self.clone();
        r.consistency = Some(level);
        r
    }

    /// The session this repository records into, if any.
    ///
    /// ```no_run
    /// # fn f(users: polyrouter::Repo<MyUser>) { assert!(users.session().is_none()); }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct MyUser { id: String }
    /// ```
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    fn level(&self, opts: &ReadOptions) -> Consistency {
        opts.consistency
            .or(self.consistency)
            .unwrap_or(self.b.consistency)
    }

    /// Reads one record under explicit options, returning how it was
    /// answered: from the cache, the replica or the primary, and whether
    /// it is a stale entry served while the primary is down.
    ///
    /// ```no_run
    /// # async fn f(users: polyrouter::Repo<MyUser>) -> polyrouter::Result<()> {
    /// use polyrouter::{config::Consistency, router::ReadOptions};
    /// let r = users.get_with("u1", ReadOptions::new().consistency(Consistency::Eventual)).await?;
    /// if r.meta.stale { /* show a "may be out of date" hint */ }
    /// # Ok(()) }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct MyUser { id: String }
    /// ```
    pub async fn get_with(&self, key: impl Into<Key>, opts: ReadOptions) -> Result<Read<T>> {
        let key = self.check_key(key.into())?;
        let level = self.level(&opts);
        let session = opts.session.as_ref().or(self.session.as_ref());
        let (rec, meta) = read::read_one(&self.b, &key, level, session).await?;
        Ok(Read {
            value: rec.map(|r| self.decode(r)).transpose()?,
            meta,
        })
    }

    pub(crate) fn store_name(&self) -> &str {
        &self.b.info.store
    }

    fn entity(&self) -> &'static str {
        self.b.info.name()
    }

    fn invalid(&self, msg: impl std::fmt::Display) -> Error {
        Error::invalid_input(self.store_name(), self.entity(), msg)
    }

    fn unsupported(&self, what: impl std::fmt::Display) -> Error {
        Error::unsupported(self.store_name(), self.entity(), what)
    }

    fn check_key(&self, key: Key) -> Result<Key> {
        let want = self.b.info.schema.key_kind;
        if key.kind() != want {
            return Err(self.invalid(format!(
                "key {key} is a {:?} key, but `{}` keys are {:?}",
                key.kind(),
                self.entity(),
                want
            )));
        }
        Ok(key)
    }

    fn to_record(&self, value: &T) -> Result<Record> {
        let record =
            to_record(self.b.info.schema, value.key(), value).map_err(|e| self.invalid(e))?;
        if let Some(max) = self.b.store.capabilities().max_record_bytes {
            let size = record_size(&record);
            if size > max {
                return Err(self.invalid(format!(
                    "record {} is about {size} bytes; this store accepts at most {max}",
                    record.key
                )));
            }
        }
        Ok(record)
    }

    fn decode(&self, record: Record) -> Result<T> {
        let Record {
            key,
            version,
            fields,
        } = record;
        from_fields(self.b.info.schema, version, fields).map_err(|e| {
            Error::backend(
                self.store_name(),
                self.entity(),
                format!("stored record {key} does not fit the Rust type: {e}"),
            )
        })
    }

    fn check_write(&self, p: Precondition, ttl: Option<Duration>) -> Result<()> {
        let caps = self.b.store.capabilities();
        if !caps.precondition(&p) {
            return Err(self.unsupported(format!("precondition {p}")));
        }
        if ttl.is_some() && !caps.ttl {
            return Err(self.unsupported("ttl"));
        }
        if let Some(problem) = ttl.and_then(crate::capability::ttl_problem) {
            return Err(self.invalid(problem));
        }
        Ok(())
    }

    fn put_op(&self, value: &T, opts: WriteOptions) -> Result<WriteOp> {
        let ttl = opts.ttl.or(self.b.ttl);
        self.check_write(opts.precondition, ttl)?;
        Ok(WriteOp::Put {
            record: self.to_record(value)?,
            precondition: opts.precondition,
            ttl,
        })
    }

    fn delete_op(&self, key: Key, p: Precondition) -> Result<WriteOp> {
        if p == Precondition::Absent {
            return Err(self.invalid("a delete cannot require the record to be absent"));
        }
        self.check_write(p, None)?;
        Ok(WriteOp::Delete {
            key: self.check_key(key)?,
            precondition: p,
        })
    }

    /// `put_many` / `delete_many`: all or nothing where the store can make
    /// this batch so (every batch, or this one because its records share
    /// one partition).
    fn atomic_if_possible(&self, ops: &[WriteOp]) -> bool {
        let caps = self.b.store.capabilities();
        // On an outbox route each write takes two places in a
        // partition-scoped batch: the write and its event.
        let places = if self.b.info.outbox.is_some() && !caps.batch_atomic {
            ops.len() * 2
        } else {
            ops.len()
        };
        caps.atomic_batch(places, one_partition(self.b.info.schema, ops))
    }

    /// Whether a write must be followed by cache invalidation or a
    /// session's read-your-writes bookkeeping.
    fn follows_writes(&self) -> bool {
        self.b.cache.is_some() || self.session.is_some()
    }

    async fn write(&self, ops: Vec<WriteOp>, atomic: bool) -> Result<Vec<WriteOutcome>> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let caps = self.b.store.capabilities();
        // A store atomic only within one partition checks the partitions
        // (and its size limit) itself, with a message saying which.
        if ops.len() > 1 && atomic && !caps.any_atomic_batch() {
            return Err(self.unsupported("atomic batch"));
        }
        let indexing = super::search::plan(&self.b, &ops);
        let blobs = super::cascade::before(&self.b, &ops).await?;
        let whole = atomic || ops.len() == 1;
        if whole && indexing.is_none() && blobs.is_empty() && !self.follows_writes() {
            // Nothing to do around the write (no cache, session, search
            // index or blob cascade): the store's outcomes are the answer,
            // with no bookkeeping to allocate.
            return self
                .b
                .store
                .write(&self.b.info, ops, atomic)
                .await
                .map_err(|e| e.with_entity(self.entity()));
        }
        let keys: Vec<Key> = ops.iter().map(|op| op.key().clone()).collect();
        if let Some(cache) = &self.b.cache {
            cache.bump(&keys);
        }
        // A non-atomic batch has an outcome per write: applied, or failed
        // (the others applied regardless).
        let res: Result<Vec<Result<WriteOutcome>>> = if whole {
            self.b
                .store
                .write(&self.b.info, ops, atomic)
                .await
                .map(|out| out.into_iter().map(Ok).collect())
        } else {
            self.b.store.write_each(&self.b.info, ops).await
        }
        .map_err(|e| e.with_entity(self.entity()));
        // Primary first, then invalidate — also after an error, which may
        // have applied part of a non-atomic batch.
        if let Some(cache) = &self.b.cache {
            cache
                .invalidate(&keys, self.entity(), &self.b.metrics)
                .await;
            cache.bump(&keys);
        }
        let session_keys = keys.clone();
        let mut applied = Vec::new();
        let mut failed = Vec::new();
        for (index, (o, key)) in res?.into_iter().zip(keys).enumerate() {
            match o {
                Ok(o) => applied.push(Some(o)),
                Err(e) => {
                    applied.push(None);
                    failed.push(crate::FailedWrite {
                        index,
                        key,
                        error: e.with_entity(self.entity()),
                    });
                }
            }
        }
        if let Some(s) = &self.session {
            for (o, op_key) in applied.iter().zip(&session_keys) {
                match o {
                    Some(WriteOutcome::Written { version }) => {
                        s.record_write(self.entity(), op_key, *version)
                    }
                    Some(WriteOutcome::Deleted { .. }) => {
                        s.record_write(self.entity(), op_key, super::session::DELETED)
                    }
                    None => {}
                }
            }
        }
        // Blobs of deleted records go after the records (`cascade_blobs`);
        // the search index follows the writes that were applied.
        super::cascade::after(&self.b, blobs, &applied).await?;
        if let Some(plan) = indexing {
            super::search::apply(&self.b, plan, &applied).await?;
        }
        if !failed.is_empty() {
            return Err(Error::Partial {
                store: self.store_name().into(),
                entity: self.entity().into(),
                outcomes: applied,
                failed,
            });
        }
        Ok(applied.into_iter().flatten().collect())
    }

    async fn write_one(&self, op: WriteOp) -> Result<WriteOutcome> {
        let mut out = self.write(vec![op], true).await?;
        out.pop().ok_or_else(|| {
            Error::backend(
                self.store_name(),
                self.entity(),
                "the store returned no outcome for a write",
            )
        })
    }

    /// Reads one record by key.
    ///
    /// ```no_run
    /// # async fn f(users: polyrouter::Repo<MyUser>) -> polyrouter::Result<()> {
    /// let u = users.get("u1").await?;
    /// # Ok(()) }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct MyUser { id: String }
    /// ```
    pub async fn get(&self, key: impl Into<Key>) -> Result<Option<T>> {
        Ok(self.get_with(key, ReadOptions::new()).await?.value)
    }

    /// Reads one record by key, or [`Error::NotFound`].
    ///
    /// ```no_run
    /// # async fn f(users: polyrouter::Repo<MyUser>) -> polyrouter::Result<()> {
    /// let u = users.require("u1").await?;
    /// # Ok(()) }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct MyUser { id: String }
    /// ```
    pub async fn require(&self, key: impl Into<Key>) -> Result<T> {
        let key = key.into();
        let shown = key.to_string();
        self.get(key).await?.ok_or_else(|| Error::NotFound {
            store: self.store_name().into(),
            entity: self.entity().into(),
            key: shown,
        })
    }

    /// Inserts or replaces; returns the new version.
    ///
    /// ```no_run
    /// # async fn f(users: polyrouter::Repo<MyUser>) -> polyrouter::Result<()> {
    /// let v = users.put(&MyUser { id: "u1".into() }).await?;
    /// # Ok(()) }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct MyUser { id: String }
    /// ```
    pub async fn put(&self, value: &T) -> Result<u64> {
        self.put_with(value, WriteOptions::new()).await
    }

    /// Writes only if `precondition` holds; otherwise [`Error::Conflict`]
    /// with the actual version, and nothing is written.
    ///
    /// ```no_run
    /// # async fn f(users: polyrouter::Repo<MyUser>) -> polyrouter::Result<()> {
    /// users.put_if(&MyUser { id: "u1".into() }, polyrouter::Precondition::Version(3)).await?;
    /// # Ok(()) }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct MyUser { id: String }
    /// ```
    pub async fn put_if(&self, value: &T, precondition: Precondition) -> Result<u64> {
        self.put_with(value, WriteOptions::new().precondition(precondition))
            .await
    }

    /// Writes `value` only if the stored record is still at the version
    /// `value` carries in its `#[entity(version)]` field: optimistic
    /// concurrency without spelling the precondition
    /// (`put_if(value, Precondition::Version(value.version))`). A value
    /// whose version field is 0 was never read from the store, so it is
    /// written only if the key is absent. Returns the new version; another
    /// writer in between is [`Error::Conflict`] with the current version.
    /// An entity without a version field is [`Error::InvalidInput`].
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use polyrouter::prelude::*;
    /// #[derive(Entity, serde::Serialize, serde::Deserialize)]
    /// struct Doc { id: String, text: String, #[entity(version)] version: u64 }
    /// let router = Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[entities.doc]\nstore = \"m\"\n").await.unwrap();
    /// let docs = router.repo::<Doc>().await.unwrap();
    /// let mut d = Doc { id: "d1".into(), text: "a".into(), version: 0 };
    /// d.version = docs.update(&d).await.unwrap(); // created: version 1
    /// let stale = Doc { id: "d1".into(), text: "old".into(), version: 0 };
    /// d.text = "b".into();
    /// assert_eq!(docs.update(&d).await.unwrap(), 2);
    /// assert!(matches!(docs.update(&stale).await, Err(Error::Conflict { .. })));
    /// # });
    /// ```
    pub async fn update(&self, value: &T) -> Result<u64> {
        if self.b.info.schema.version.is_none() {
            return Err(self.invalid(
                "`update` needs the entity's version field (`#[entity(version)]`) as its precondition; add one, or use `put_if` with an explicit precondition",
            ));
        }
        let precondition = match self.to_record(value)?.version {
            0 => Precondition::Absent,
            v => Precondition::Version(v),
        };
        self.put_if(value, precondition).await
    }

    /// Writes with explicit options (precondition, per-call TTL).
    ///
    /// ```no_run
    /// # async fn f(s: polyrouter::Repo<MyUser>) -> polyrouter::Result<()> {
    /// use polyrouter::router::WriteOptions;
    /// s.put_with(&MyUser { id: "u1".into() }, WriteOptions::new().ttl(std::time::Duration::from_secs(60))).await?;
    /// # Ok(()) }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct MyUser { id: String }
    /// ```
    pub async fn put_with(&self, value: &T, opts: WriteOptions) -> Result<u64> {
        let op = self.put_op(value, opts)?;
        let out = self.write_one(op).await?;
        out.version().ok_or_else(|| {
            Error::backend(
                self.store_name(),
                self.entity(),
                "the store answered a put with a delete outcome",
            )
        })
    }

    /// Deletes; returns whether a record was there.
    ///
    /// ```no_run
    /// # async fn f(users: polyrouter::Repo<MyUser>) -> polyrouter::Result<()> {
    /// let existed = users.delete("u1").await?;
    /// # Ok(()) }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct MyUser { id: String }
    /// ```
    pub async fn delete(&self, key: impl Into<Key>) -> Result<bool> {
        self.delete_if(key, Precondition::None).await
    }

    /// Deletes only if `precondition` holds (`Exists` or `Version`).
    ///
    /// ```no_run
    /// # async fn f(users: polyrouter::Repo<MyUser>) -> polyrouter::Result<()> {
    /// users.delete_if("u1", polyrouter::Precondition::Version(2)).await?;
    /// # Ok(()) }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct MyUser { id: String }
    /// ```
    pub async fn delete_if(&self, key: impl Into<Key>, precondition: Precondition) -> Result<bool> {
        let op = self.delete_op(key.into(), precondition)?;
        Ok(matches!(
            self.write_one(op).await?,
            WriteOutcome::Deleted { existed: true }
        ))
    }

    /// Reads many records; one slot per key, in the order given.
    ///
    /// ```no_run
    /// # async fn f(users: polyrouter::Repo<MyUser>) -> polyrouter::Result<()> {
    /// let found = users.get_many(["u1", "u2"]).await?;
    /// assert_eq!(found.len(), 2);
    /// # Ok(()) }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct MyUser { id: String }
    /// ```
    pub async fn get_many<K: Into<Key>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Option<T>>> {
        let keys: Vec<Key> = keys
            .into_iter()
            .map(|k| self.check_key(k.into()))
            .collect::<Result<_>>()?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let level = self.level(&ReadOptions::new());
        let recs = read::read_many(&self.b, &keys, level, self.session.as_ref()).await?;
        if recs.len() != keys.len() {
            return Err(Error::backend(
                self.store_name(),
                self.entity(),
                format!(
                    "get_many returned {} slots for {} keys",
                    recs.len(),
                    keys.len()
                ),
            ));
        }
        recs.into_iter()
            .map(|r| r.map(|r| self.decode(r)).transpose())
            .collect()
    }

    /// Inserts or replaces many records in one batch, all or nothing where
    /// the store supports it (on a store atomic only within one partition,
    /// when the records share one partition-key value and are few enough);
    /// returns the new versions. Where the batch cannot be atomic, each put
    /// is applied on its own and a failure of some is [`Error::Partial`]
    /// naming them (the others were applied).
    ///
    /// ```no_run
    /// # async fn f(users: polyrouter::Repo<MyUser>) -> polyrouter::Result<()> {
    /// users.put_many(&[MyUser { id: "a".into() }, MyUser { id: "b".into() }]).await?;
    /// # Ok(()) }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct MyUser { id: String }
    /// ```
    pub async fn put_many(&self, values: &[T]) -> Result<Vec<u64>> {
        let ops = values
            .iter()
            .map(|v| self.put_op(v, WriteOptions::new()))
            .collect::<Result<Vec<_>>>()?;
        let atomic = self.atomic_if_possible(&ops);
        let out = self.write(ops, atomic).await?;
        Ok(out.iter().filter_map(WriteOutcome::version).collect())
    }

    /// Deletes many records; returns how many existed. Where the batch
    /// cannot be atomic, a failure of some deletes is [`Error::Partial`]
    /// naming them (the others were applied).
    ///
    /// ```no_run
    /// # async fn f(users: polyrouter::Repo<MyUser>) -> polyrouter::Result<()> {
    /// let n = users.delete_many(["a", "b"]).await?;
    /// # Ok(()) }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct MyUser { id: String }
    /// ```
    pub async fn delete_many<K: Into<Key>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<u64> {
        let ops = keys
            .into_iter()
            .map(|k| self.delete_op(k.into(), Precondition::None))
            .collect::<Result<Vec<_>>>()?;
        let atomic = self.atomic_if_possible(&ops);
        let out = self.write(ops, atomic).await?;
        Ok(out
            .iter()
            .filter(|o| matches!(o, WriteOutcome::Deleted { existed: true }))
            .count() as u64)
    }

    /// A mixed batch of puts and deletes with per-item preconditions.
    ///
    /// ```no_run
    /// # async fn f(users: polyrouter::Repo<MyUser>) -> polyrouter::Result<()> {
    /// use polyrouter::Precondition;
    /// users.batch()
    ///     .put_if(&MyUser { id: "a".into() }, Precondition::Absent)
    ///     .delete_if("b", Precondition::Version(4))
    ///     .commit()
    ///     .await?;
    /// # Ok(()) }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct MyUser { id: String }
    /// ```
    pub fn batch(&self) -> Batch<T> {
        Batch {
            repo: self.clone(),
            ops: Ok(Vec::new()),
            atomic: true,
        }
    }

    fn plan(&self, q: &Query) -> Result<(StoreQuery, usize, u64)> {
        let schema = self.b.info.schema;
        let caps = self.b.store.capabilities();
        if !caps.query {
            return Err(self.unsupported("query"));
        }
        let filter = match &q.filter {
            Some(f) => Some(crate::query::normalize(f, schema).map_err(|e| self.invalid(e))?),
            None => None,
        };
        let mut order = Vec::with_capacity(q.order.len() + 1);
        for o in &q.order {
            let def = crate::query::check::lookup(schema, &o.field).map_err(|e| self.invalid(e))?;
            if def.ty.kind == crate::FieldKind::Json {
                return Err(self.invalid(format!("json field `{}` cannot be sorted on", o.field)));
            }
            if order.iter().any(|x: &Order| x.field == o.field) {
                return Err(self.invalid(format!("field `{}` is sorted on twice", o.field)));
            }
            order.push(o.clone());
        }
        if !order.is_empty() && !caps.sort {
            return Err(self.unsupported("sort"));
        }
        if !order.iter().any(|o| o.field == schema.key) {
            order.push(Order {
                field: schema.key.into(),
                direction: Direction::Asc,
            });
        }
        let limit = q.limit.unwrap_or(self.b.page_size);
        if limit == 0 || limit > self.b.max_page_size {
            return Err(self.invalid(format!(
                "limit {limit} is out of range: ask for 1 to {} rows per page",
                self.b.max_page_size
            )));
        }
        let fp = token::fingerprint(schema.name, filter.as_ref(), &order);
        let mut full = filter;
        if let Some(t) = &q.after {
            let last = token::decode(t, fp, schema, &order).map_err(|e| self.invalid(e))?;
            let after = token::after_filter(&order, &last);
            full = Some(match full {
                Some(f) => Filter::And(vec![f, after]),
                None => after,
            });
        }
        if let Some(f) = &full {
            if let Some(missing) = caps.filters.first_unsupported(f) {
                return Err(self.unsupported(missing));
            }
        }
        Ok((
            StoreQuery {
                filter: full,
                order,
                limit: Some(limit as usize + 1),
            },
            limit as usize,
            fp,
        ))
    }

    /// One page of a query. Follow [`Page::next_query`] for the next one;
    /// every row comes exactly once.
    ///
    /// ```no_run
    /// # async fn f(users: polyrouter::Repo<MyUser>) -> polyrouter::Result<()> {
    /// use polyrouter::query::{field, Query};
    /// let page = users.query(Query::new().filter(field("id").prefix("a")).limit(50)).await?;
    /// if let Some(next) = page.next_query() {
    ///     let more = users.query(next).await?;
    /// }
    /// # Ok(()) }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct MyUser { id: String }
    /// ```
    pub async fn query(&self, q: Query) -> Result<Page<T>> {
        let (sq, limit, fp) = match self.plan(&q) {
            Ok(planned) => planned,
            Err(e) => {
                // It may be too deep to drop recursively.
                if let Some(f) = q.filter {
                    crate::query::dismantle(f);
                }
                return Err(e);
            }
        };
        let mut rows = self
            .b
            .store
            .query(&self.b.info, &sq)
            .await
            .map_err(|e| e.with_entity(self.entity()))?;
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|last| {
                let values: Vec<&Value> = sq.order.iter().map(|o| last.value(&o.field)).collect();
                token::encode(fp, &values)
            })
        } else {
            None
        };
        let items = rows
            .into_iter()
            .map(|r| self.decode(r))
            .collect::<Result<Vec<T>>>()?;
        let mut query = q;
        query.after = None;
        Ok(Page { items, next, query })
    }

    /// Every row of a query as a stream, fetched page by page.
    ///
    /// ```no_run
    /// # async fn f(users: polyrouter::Repo<MyUser>) -> polyrouter::Result<()> {
    /// use futures::TryStreamExt;
    /// let all: Vec<MyUser> = users.stream(polyrouter::Query::new()).try_collect().await?;
    /// # Ok(()) }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct MyUser { id: String }
    /// ```
    pub fn stream(&self, q: Query) -> BoxStream<'static, Result<T>> {
        let repo = self.clone();
        stream::unfold(Some(q), move |state| {
            let repo = repo.clone();
            async move {
                let q = state?;
                match repo.query(q).await {
                    Ok(page) => {
                        let next = page.next_query();
                        let items: Vec<Result<T>> = page.items.into_iter().map(Ok).collect();
                        Some((stream::iter(items), next))
                    }
                    Err(e) => Some((stream::iter(vec![Err(e)]), None)),
                }
            }
        })
        .flatten()
        .boxed()
    }

    /// The number of rows matching a filter (`None`: all rows).
    ///
    /// ```no_run
    /// # async fn f(users: polyrouter::Repo<MyUser>) -> polyrouter::Result<()> {
    /// let n = users.count(polyrouter::query::field("id").prefix("a")).await?;
    /// let all = users.count(None).await?;
    /// # Ok(()) }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct MyUser { id: String }
    /// ```
    pub async fn count(&self, filter: impl Into<Option<Filter>>) -> Result<u64> {
        let caps = self.b.store.capabilities();
        if !caps.count {
            return Err(self.unsupported("count"));
        }
        let filter = match filter.into() {
            Some(given) => {
                let normalized = crate::query::normalize(&given, self.b.info.schema);
                // It may be too deep to drop recursively.
                crate::query::dismantle(given);
                let f = normalized.map_err(|e| self.invalid(e))?;
                if let Some(missing) = caps.filters.first_unsupported(&f) {
                    return Err(self.unsupported(missing));
                }
                Some(f)
            }
            None => None,
        };
        self.b
            .store
            .count(&self.b.info, filter.as_ref())
            .await
            .map_err(|e| e.with_entity(self.entity()))
    }
}

/// A batch of writes built with [`Repo::batch`]; nothing is sent until
/// [`commit`](Batch::commit). Atomic by default: on a store without atomic
/// batches that is `Unsupported`, and on a store atomic only within one
/// partition (`Capabilities::batch_atomic_partition`, Cosmos DB) a batch
/// whose records span partitions, or exceed its size limit, is too.
#[must_use]
pub struct Batch<T> {
    repo: Repo<T>,
    ops: Result<Vec<WriteOp>>,
    atomic: bool,
}

impl<T: Entity> Batch<T> {
    fn push(mut self, op: Result<WriteOp>) -> Self {
        if let Ok(ops) = &mut self.ops {
            match op {
                Ok(op) => ops.push(op),
                Err(e) => self.ops = Err(e),
            }
        }
        self
    }

    /// Adds an unconditional put.
    ///
    /// ```no_run
    /// # fn f(r: polyrouter::Repo<U>) { let _ = r.batch().put(&U { id: "a".into() }); }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct U { id: String }
    /// ```
    pub fn put(self, value: &T) -> Self {
        let op = self.repo.put_op(value, WriteOptions::new());
        self.push(op)
    }

    /// Adds a conditional put.
    ///
    /// ```no_run
    /// # fn f(r: polyrouter::Repo<U>) { let _ = r.batch().put_if(&U { id: "a".into() }, polyrouter::Precondition::Absent); }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct U { id: String }
    /// ```
    pub fn put_if(self, value: &T, precondition: Precondition) -> Self {
        let op = self
            .repo
            .put_op(value, WriteOptions::new().precondition(precondition));
        self.push(op)
    }

    /// Adds a put with options.
    ///
    /// ```no_run
    /// # fn f(r: polyrouter::Repo<U>) { let _ = r.batch().put_with(&U { id: "a".into() }, Default::default()); }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct U { id: String }
    /// ```
    pub fn put_with(self, value: &T, opts: WriteOptions) -> Self {
        let op = self.repo.put_op(value, opts);
        self.push(op)
    }

    /// Adds an unconditional delete.
    ///
    /// ```no_run
    /// # fn f(r: polyrouter::Repo<U>) { let _ = r.batch().delete("a"); }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct U { id: String }
    /// ```
    pub fn delete(self, key: impl Into<Key>) -> Self {
        let op = self.repo.delete_op(key.into(), Precondition::None);
        self.push(op)
    }

    /// Adds a conditional delete.
    ///
    /// ```no_run
    /// # fn f(r: polyrouter::Repo<U>) { let _ = r.batch().delete_if("a", polyrouter::Precondition::Exists); }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct U { id: String }
    /// ```
    pub fn delete_if(self, key: impl Into<Key>, precondition: Precondition) -> Self {
        let op = self.repo.delete_op(key.into(), precondition);
        self.push(op)
    }

    /// Applies the writes one by one (needed on stores without atomic
    /// batches), each on its own: when some fail, the others are still
    /// applied and `commit` answers [`Error::Partial`] with each write's
    /// outcome and the failed ones (index, key, error — a conflict carries
    /// the current version), so exactly those can be retried.
    ///
    /// ```no_run
    /// # fn f(r: polyrouter::Repo<U>) { let _ = r.batch().non_atomic(); }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct U { id: String }
    /// ```
    pub fn non_atomic(mut self) -> Self {
        self.atomic = false;
        self
    }

    /// Sends the batch; one outcome per write, in order.
    ///
    /// ```no_run
    /// # async fn f(r: polyrouter::Repo<U>) -> polyrouter::Result<()> {
    /// let outcomes = r.batch().put(&U { id: "a".into() }).commit().await?;
    /// assert_eq!(outcomes[0].version(), Some(1));
    /// # Ok(()) }
    /// # #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)] struct U { id: String }
    /// ```
    pub async fn commit(self) -> Result<Vec<WriteOutcome>> {
        let ops = self.ops?;
        self.repo.write(ops, self.atomic).await
    }
}

/// Whether every op's record is in one partition: the same value of the
/// entity's partition key field, else the same key. A delete names only a
/// key, so with a partition key field its partition is unknown here: `false`.
fn one_partition(schema: &crate::entity::Schema, ops: &[WriteOp]) -> bool {
    let by_key = schema.partition_key.is_none_or(|pk| pk == schema.key);
    let partition = |op: &WriteOp| -> Option<Value> {
        match op {
            _ if by_key => Some(op.key().to_value()),
            WriteOp::Put { record, .. } => Some(record.value(schema.partition_key?).clone()),
            WriteOp::Delete { .. } => None,
        }
    };
    let Some((first, rest)) = ops.split_first() else {
        return true;
    };
    let Some(p) = partition(first) else {
        return false;
    };
    rest.iter().all(|op| partition(op).as_ref() == Some(&p))
}

/// The length of `j` serialized, counted without building the string.
fn json_len(j: &serde_json::Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut n = Count(0);
    // Writing to a counter cannot fail; a Value always serializes.
    let _ = serde_json::to_writer(&mut n, j);
    n.0
}

/// An estimate of a record's encoded size, for the store's size limit.
fn record_size(r: &Record) -> usize {
    r.fields
        .iter()
        .map(|(n, v)| {
            n.len()
                + match v {
                    Value::String(s) => s.len(),
                    Value::Bytes(b) => b.len(),
                    Value::Json(j) => json_len(j),
                    _ => 16,
                }
        })
        .sum()
}

#[cfg(test)]
mod size_tests {
    #[test]
    fn json_len_is_the_serialized_length() {
        let j = serde_json::json!({"a": [1, 2.5, "x\"y"], "b": {"c": null, "d": "é"}});
        assert_eq!(super::json_len(&j), j.to_string().len());
    }
}
