//! `memory`: an in-process store with every capability of the `Store` trait,
//! the key-value extras, graphs, time series and blobs — but no full-text
//! search, no `key_prefix` namespaces, and nothing shared between processes.
//!
//! Its query evaluator ([`crate::store::eval`]) is the reference semantics
//! the other stores are tested against. Data lives as long as the store.
//!
//! ```toml
//! [stores.kv]
//! kind = "memory"
//! ```
#![doc = include_str!("docs.md")]

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future::BoxFuture;
use parking_lot::RwLock;
use serde::Deserialize;

use crate::config::StoreSpec;
use crate::query::Filter;
use crate::store::eval::{compare, matches};
use crate::store::kv::{KvStore, check_call};
use crate::store::{
    Applied, EntityInfo, OutboxEntry, Precondition, StoreQuery, VersionedChange, WriteOp,
    WriteOutcome, outbox_event,
};
use crate::sync::ChangeEvent;
use crate::{Capabilities, Error, Key, Record, Result, Store};

mod blob;
mod graph;
mod timeseries;

/// Options of a `memory` store (none yet; unknown keys are errors).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemoryConfig {}

pub(crate) fn open(spec: StoreSpec) -> BoxFuture<'static, Result<Arc<dyn Store>>> {
    Box::pin(async move {
        let _: MemoryConfig = spec.parse()?;
        Ok(Arc::new(MemoryStore::new(&spec.name)) as Arc<dyn Store>)
    })
}

#[derive(Debug, Clone)]
struct Row {
    record: Record,
    expires: Option<Instant>,
    /// A tombstone: a deleted record's last version, kept until this
    /// instant so a re-created record continues from it. Never live.
    tombstone: Option<Instant>,
}

impl Row {
    fn live(&self, now: Instant) -> bool {
        self.tombstone.is_none() && self.expires.is_none_or(|t| t > now)
    }

    /// The version a put continues from: the live record's or the
    /// tombstone's; 0 (start at 1) for an absent or expired record.
    fn base(&self, now: Instant) -> u64 {
        if self.tombstone.is_some() || self.live(now) {
            self.record.version
        } else {
            0
        }
    }

    /// Kept by the sweep: live, or a tombstone within its retention.
    fn kept(&self, now: Instant) -> bool {
        self.live(now) || self.tombstone.is_some_and(|t| t > now)
    }
}

/// What a batch does to one key, decided before the table is touched.
enum Apply {
    Put(u64),
    Tombstone(u64),
    /// Removed without a tombstone; the version the delete's event carries.
    Remove(u64),
}

/// One table: its rows by key and, under the same lock (so an event is
/// recorded atomically with its write), its outbox by sequence number.
#[derive(Debug, Default)]
struct Rows {
    map: BTreeMap<Key, Row>,
    outbox: BTreeMap<u64, ChangeEvent>,
    next_seq: u64,
}

impl Rows {
    fn record_event(&mut self, event: Option<ChangeEvent>) {
        if let Some(e) = event {
            self.next_seq += 1;
            self.outbox.insert(self.next_seq, e);
        }
    }
}

impl std::ops::Deref for Rows {
    type Target = BTreeMap<Key, Row>;
    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl std::ops::DerefMut for Rows {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.map
    }
}

type Table = Arc<RwLock<Rows>>;

/// The in-process store.
///
/// ```
/// use polyrouter::backends::memory::MemoryStore;
/// use polyrouter::Store;
/// let s = MemoryStore::new("kv");
/// assert!(s.capabilities().ttl);
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    name: String,
    caps: Capabilities,
    tables: RwLock<HashMap<String, Table>>,
    /// [`KvStore`] raw values (counters, locks), by table and key; apart
    /// from the records.
    values: parking_lot::Mutex<HashMap<(String, Key), RawValue>>,
    /// [`GraphStore`](crate::store::graph::GraphStore) graphs, by vertex table.
    graphs: graph::Graphs,
    /// Time series tables ([`crate::store::timeseries`]).
    series: timeseries::SeriesTables,
    /// [`BlobStore`](crate::store::blob::BlobStore) blobs, by key; apart from the records.
    blobs: blob::Blobs,
}

#[derive(Debug)]
struct RawValue {
    bytes: Vec<u8>,
    expires: Option<Instant>,
}

impl RawValue {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|t| t > now)
    }
}

impl MemoryStore {
    /// [`Store::write`] and [`Store::write_ref`]: always all or nothing.
    fn apply_writes(
        &self,
        entity: &EntityInfo,
        ops: Cow<'_, [WriteOp]>,
    ) -> Result<Vec<WriteOutcome>> {
        let now = Instant::now();
        let table = self.table(entity);
        let mut t = table.write();
        // Check every precondition against the state as the batch evolves,
        // before touching the table: all or nothing. The state of a key is
        // (live version, version a put continues from).
        let mut staged: HashMap<&Key, (Option<u64>, u64)> = HashMap::new();
        let mut outcomes = Vec::with_capacity(ops.len());
        let mut applies = Vec::with_capacity(ops.len());
        let tombstones = !entity.tombstone_retention.is_zero();
        for op in ops.iter() {
            let key = op.key();
            let (current, base) = match staged.get(key) {
                Some(s) => *s,
                None => t.get(key).map_or((None, 0), |r| {
                    (r.live(now).then_some(r.record.version), r.base(now))
                }),
            };
            let p = op.precondition();
            if !p.holds(current) {
                // Always all-or-nothing, whether or not `atomic` was asked.
                return Err(self.conflict(entity, key, p, current));
            }
            match op {
                WriteOp::Put { .. } => {
                    let v = base + 1;
                    staged.insert(key, (Some(v), v));
                    outcomes.push(WriteOutcome::Written { version: v });
                    applies.push(Apply::Put(v));
                }
                WriteOp::Delete { .. } => {
                    match current {
                        Some(v) if tombstones => {
                            staged.insert(key, (None, v + 1));
                            applies.push(Apply::Tombstone(v + 1));
                        }
                        Some(v) => {
                            staged.insert(key, (None, 0));
                            applies.push(Apply::Remove(v + 1));
                        }
                        // Nothing live: a tombstone stays as it is.
                        None => applies.push(Apply::Tombstone(0)),
                    }
                    outcomes.push(WriteOutcome::Deleted {
                        existed: current.is_some(),
                    });
                }
            }
        }
        let purge_at = now
            .checked_add(entity.tombstone_retention)
            .unwrap_or(now + Duration::from_secs(86_400 * 365 * 100));
        // What the table keeps: the ops themselves when they were handed
        // over, a copy when they were lent.
        let (mut moved, mut copied);
        let owned: &mut dyn Iterator<Item = WriteOp> = match ops {
            Cow::Owned(v) => {
                moved = v.into_iter();
                &mut moved
            }
            Cow::Borrowed(s) => {
                copied = s.iter().cloned();
                &mut copied
            }
        };
        for (op, apply) in owned.zip(applies) {
            match (op, apply) {
                (
                    WriteOp::Put {
                        mut record, ttl, ..
                    },
                    Apply::Put(version),
                ) => {
                    record.version = version;
                    let key = record.key.clone();
                    let event = outbox_event(entity, &key, Some(&record), version);
                    t.record_event(event);
                    t.insert(
                        key,
                        Row {
                            record,
                            expires: expiry(now, ttl),
                            tombstone: None,
                        },
                    );
                }
                // An expired record goes; a tombstone stays.
                (WriteOp::Delete { key, .. }, Apply::Tombstone(0))
                    if t.get(&key).is_some_and(|r| r.tombstone.is_none()) =>
                {
                    t.remove(&key);
                }
                (WriteOp::Delete { .. }, Apply::Tombstone(0)) => {}
                (WriteOp::Delete { key, .. }, Apply::Tombstone(version)) => {
                    t.record_event(outbox_event(entity, &key, None, version));
                    // The deleted values go; the key's last version stays.
                    let record = Record {
                        version,
                        ..Record::new(key.clone())
                    };
                    t.insert(
                        key,
                        Row {
                            record,
                            expires: None,
                            tombstone: Some(purge_at),
                        },
                    );
                }
                (WriteOp::Delete { key, .. }, Apply::Remove(version)) => {
                    t.record_event(outbox_event(entity, &key, None, version));
                    t.remove(&key);
                }
                _ => {}
            }
        }
        if t.len() > 1024 && t.len() % 64 == 0 {
            t.retain(|_, r| r.kept(now));
        }
        Ok(outcomes)
    }

    /// An empty store.
    ///
    /// ```
    /// let s = polyrouter::backends::memory::MemoryStore::new("kv");
    /// # let _ = s;
    /// ```
    pub fn new(name: &str) -> Self {
        MemoryStore {
            name: name.into(),
            caps: crate::backends::kind_caps::memory(),
            tables: RwLock::new(HashMap::new()),
            values: parking_lot::Mutex::new(HashMap::new()),
            graphs: Default::default(),
            series: timeseries::SeriesTables::default(),
            blobs: blob::Blobs::default(),
        }
    }

    fn table(&self, entity: &EntityInfo) -> Table {
        if let Some(t) = self.tables.read().get(&entity.table) {
            return t.clone();
        }
        self.tables
            .write()
            .entry(entity.table.clone())
            .or_default()
            .clone()
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
}

fn expiry(now: Instant, ttl: Option<Duration>) -> Option<Instant> {
    ttl.map(|d| {
        now.checked_add(d)
            .unwrap_or(now + Duration::from_secs(86_400 * 365 * 100))
    })
}

#[async_trait]
impl Store for MemoryStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn location(&self) -> String {
        "in-process".into()
    }

    async fn ensure_entity(&self, entity: &EntityInfo) -> Result<()> {
        self.table(entity);
        Ok(())
    }

    async fn drop_entity(&self, entity: &EntityInfo) -> Result<()> {
        self.tables.write().remove(&entity.table);
        self.values
            .lock()
            .retain(|(table, _), _| *table != entity.table);
        Ok(())
    }

    async fn get(&self, entity: &EntityInfo, key: &Key) -> Result<Option<Record>> {
        let now = Instant::now();
        let table = self.table(entity);
        let t = table.read();
        Ok(t.get(key).filter(|r| r.live(now)).map(|r| r.record.clone()))
    }

    async fn get_many(&self, entity: &EntityInfo, keys: &[Key]) -> Result<Vec<Option<Record>>> {
        let now = Instant::now();
        let table = self.table(entity);
        let t = table.read();
        Ok(keys
            .iter()
            .map(|k| t.get(k).filter(|r| r.live(now)).map(|r| r.record.clone()))
            .collect())
    }

    async fn write(
        &self,
        entity: &EntityInfo,
        ops: Vec<WriteOp>,
        _atomic: bool,
    ) -> Result<Vec<WriteOutcome>> {
        self.apply_writes(entity, Cow::Owned(ops))
    }

    async fn write_ref(
        &self,
        entity: &EntityInfo,
        ops: &[WriteOp],
        _atomic: bool,
    ) -> Result<Vec<WriteOutcome>> {
        self.apply_writes(entity, Cow::Borrowed(ops))
    }

    async fn apply_versioned(
        &self,
        entity: &EntityInfo,
        changes: Vec<VersionedChange>,
    ) -> Result<Vec<Applied>> {
        let now = Instant::now();
        let table = self.table(entity);
        let mut t = table.write();
        let purge_at = now
            .checked_add(entity.tombstone_retention)
            .unwrap_or(now + Duration::from_secs(86_400 * 365 * 100));
        let mut out = Vec::with_capacity(changes.len());
        for change in changes {
            let current = t.get(&change.key).map_or(0, |r| r.base(now));
            if change.version <= current {
                out.push(Applied::Stale { current });
                continue;
            }
            let event = outbox_event(entity, &change.key, change.record.as_ref(), change.version);
            t.record_event(event);
            match change.record {
                Some(mut record) => {
                    record.version = change.version;
                    record.key = change.key.clone();
                    let row = Row {
                        record,
                        expires: None,
                        tombstone: None,
                    };
                    t.insert(change.key, row);
                }
                None if entity.tombstone_retention.is_zero() => {
                    t.remove(&change.key);
                }
                None => {
                    let row = Row {
                        record: Record {
                            version: change.version,
                            ..Record::new(change.key.clone())
                        },
                        expires: None,
                        tombstone: Some(purge_at),
                    };
                    t.insert(change.key, row);
                }
            }
            out.push(Applied::Applied);
        }
        Ok(out)
    }

    async fn outbox_fetch(&self, entity: &EntityInfo, max: usize) -> Result<Vec<OutboxEntry>> {
        let table = self.table(entity);
        let t = table.read();
        Ok(t.outbox
            .iter()
            .take(max)
            .map(|(seq, event)| OutboxEntry {
                id: seq.to_string(),
                event: event.clone(),
            })
            .collect())
    }

    async fn outbox_remove(&self, entity: &EntityInfo, ids: &[String]) -> Result<()> {
        let table = self.table(entity);
        let mut t = table.write();
        for id in ids {
            if let Ok(seq) = id.parse::<u64>() {
                t.outbox.remove(&seq);
            }
        }
        Ok(())
    }

    async fn outbox_len(&self, entity: &EntityInfo) -> Result<u64> {
        Ok(self.table(entity).read().outbox.len() as u64)
    }

    async fn query(&self, entity: &EntityInfo, query: &StoreQuery) -> Result<Vec<Record>> {
        let now = Instant::now();
        let table = self.table(entity);
        let t = table.read();
        let mut rows: Vec<&Record> = t
            .values()
            .filter(|r| r.live(now))
            .map(|r| &r.record)
            .filter(|r| query.filter.as_ref().is_none_or(|f| matches(f, r)))
            .collect();
        rows.sort_by(|a, b| compare(&query.order, a, b));
        let limit = query.limit.unwrap_or(usize::MAX);
        Ok(rows.into_iter().take(limit).cloned().collect())
    }

    async fn count(&self, entity: &EntityInfo, filter: Option<&Filter>) -> Result<u64> {
        let now = Instant::now();
        let table = self.table(entity);
        let t = table.read();
        Ok(t.values()
            .filter(|r| r.live(now))
            .filter(|r| filter.is_none_or(|f| matches(f, &r.record)))
            .count() as u64)
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    fn as_kv(&self) -> Option<&dyn KvStore> {
        Some(self)
    }

    fn as_graph(&self) -> Option<&dyn crate::store::graph::GraphStore> {
        Some(self)
    }

    fn as_time_series(&self) -> Option<&dyn crate::store::timeseries::TimeSeriesStore> {
        Some(self)
    }

    fn as_blob(&self) -> Option<&dyn crate::store::blob::BlobStore> {
        Some(self)
    }
}

/// Raw values live in their own map, apart from the records, and expire
/// like them; counters are stored as decimal text.
#[async_trait]
impl KvStore for MemoryStore {
    async fn increment(
        &self,
        entity: &EntityInfo,
        key: &Key,
        delta: i64,
        ttl: Option<Duration>,
    ) -> Result<i64> {
        check_call(&self.name, entity, key, ttl)?;
        let now = Instant::now();
        let mut values = self.values.lock();
        let slot = (entity.table.clone(), key.clone());
        let current = values.get(&slot).filter(|v| v.live(now));
        let (old, expires) = match current {
            Some(v) => {
                let n = std::str::from_utf8(&v.bytes)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok());
                let Some(n) = n else {
                    return Err(Error::invalid_input(
                        &self.name,
                        entity.name(),
                        format!("the value at key {key} is not an integer counter"),
                    ));
                };
                (n, v.expires)
            }
            None => (0, expiry(now, ttl)),
        };
        let Some(new) = old.checked_add(delta) else {
            return Err(Error::invalid_input(
                &self.name,
                entity.name(),
                format!("incrementing the counter at key {key} by {delta} would overflow an i64"),
            ));
        };
        values.insert(
            slot,
            RawValue {
                bytes: new.to_string().into_bytes(),
                expires,
            },
        );
        if values.len() > 1024 && values.len() % 64 == 0 {
            values.retain(|_, v| v.live(now));
        }
        Ok(new)
    }

    async fn set_if_absent(
        &self,
        entity: &EntityInfo,
        key: &Key,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool> {
        check_call(&self.name, entity, key, Some(ttl))?;
        let now = Instant::now();
        let mut values = self.values.lock();
        let slot = (entity.table.clone(), key.clone());
        if values.get(&slot).is_some_and(|v| v.live(now)) {
            return Ok(false);
        }
        values.insert(
            slot,
            RawValue {
                bytes: value.to_vec(),
                expires: expiry(now, Some(ttl)),
            },
        );
        Ok(true)
    }

    async fn get_bytes(&self, entity: &EntityInfo, key: &Key) -> Result<Option<Vec<u8>>> {
        check_call(&self.name, entity, key, None)?;
        let now = Instant::now();
        let values = self.values.lock();
        Ok(values
            .get(&(entity.table.clone(), key.clone()))
            .filter(|v| v.live(now))
            .map(|v| v.bytes.clone()))
    }

    async fn delete_bytes(
        &self,
        entity: &EntityInfo,
        key: &Key,
        expected: Option<&[u8]>,
    ) -> Result<bool> {
        check_call(&self.name, entity, key, None)?;
        let now = Instant::now();
        let mut values = self.values.lock();
        let slot = (entity.table.clone(), key.clone());
        let matching = values
            .get(&slot)
            .is_some_and(|v| v.live(now) && expected.is_none_or(|e| e == v.bytes.as_slice()));
        if matching {
            values.remove(&slot);
        }
        Ok(matching)
    }

    async fn expire(&self, entity: &EntityInfo, key: &Key, ttl: Duration) -> Result<bool> {
        check_call(&self.name, entity, key, Some(ttl))?;
        let now = Instant::now();
        let table = self.table(entity);
        let mut t = table.write();
        match t.get_mut(key).filter(|r| r.live(now)) {
            Some(row) => {
                row.expires = expiry(now, Some(ttl));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn persist(&self, entity: &EntityInfo, key: &Key) -> Result<bool> {
        check_call(&self.name, entity, key, None)?;
        let now = Instant::now();
        let table = self.table(entity);
        let mut t = table.write();
        match t.get_mut(key).filter(|r| r.live(now)) {
            Some(row) => {
                row.expires = None;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
