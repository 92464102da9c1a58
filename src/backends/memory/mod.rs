//! `memory`: an in-process store that supports every capability.
//!
//! Its query evaluator ([`crate::store::eval`]) is the reference semantics
//! the other stores are tested against. Data lives as long as the store.
//!
//! ```toml
//! [stores.kv]
//! kind = "memory"
//! ```
#![doc = include_str!("docs.md")]

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
use crate::store::{EntityInfo, Precondition, StoreQuery, WriteOp, WriteOutcome};
use crate::{Capabilities, Error, Key, Record, Result, Store};

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
}

impl Row {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|t| t > now)
    }
}

type Table = Arc<RwLock<BTreeMap<Key, Row>>>;

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
}

impl MemoryStore {
    /// An empty store.
    ///
    /// ```
    /// let s = polyrouter::backends::memory::MemoryStore::new("kv");
    /// # let _ = s;
    /// ```
    pub fn new(name: &str) -> Self {
        MemoryStore {
            name: name.into(),
            caps: Capabilities::all(),
            tables: RwLock::new(HashMap::new()),
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

    fn conflict(&self, entity: &EntityInfo, key: &Key, expected: Precondition, actual: Option<u64>) -> Error {
        Error::Conflict {
            store: self.name.clone(),
            entity: entity.name().into(),
            key: key.to_string(),
            expected,
            actual,
        }
    }
}

fn expiry(now: Instant, ttl: Option<Duration>) -> Option<Instant> {
    ttl.map(|d| now.checked_add(d).unwrap_or(now + Duration::from_secs(86_400 * 365 * 100)))
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

    async fn write(&self, entity: &EntityInfo, ops: Vec<WriteOp>, _atomic: bool) -> Result<Vec<WriteOutcome>> {
        let now = Instant::now();
        let table = self.table(entity);
        let mut t = table.write();
        // Check every precondition against the state as the batch evolves,
        // before touching the table: all or nothing.
        let mut staged: HashMap<&Key, Option<u64>> = HashMap::new();
        let mut outcomes = Vec::with_capacity(ops.len());
        for op in &ops {
            let key = op.key();
            let current = match staged.get(key) {
                Some(v) => *v,
                None => t.get(key).filter(|r| r.live(now)).map(|r| r.record.version),
            };
            let p = op.precondition();
            if !p.holds(current) {
                // Always all-or-nothing, whether or not `atomic` was asked.
                return Err(self.conflict(entity, key, p, current));
            }
            match op {
                WriteOp::Put { .. } => {
                    let v = current.map_or(1, |v| v + 1);
                    staged.insert(key, Some(v));
                    outcomes.push(WriteOutcome::Written { version: v });
                }
                WriteOp::Delete { .. } => {
                    staged.insert(key, None);
                    outcomes.push(WriteOutcome::Deleted { existed: current.is_some() });
                }
            }
        }
        for (op, outcome) in ops.into_iter().zip(&outcomes) {
            match (op, outcome) {
                (WriteOp::Put { mut record, ttl, .. }, WriteOutcome::Written { version }) => {
                    record.version = *version;
                    let key = record.key.clone();
                    t.insert(key, Row { record, expires: expiry(now, ttl) });
                }
                (WriteOp::Delete { key, .. }, _) => {
                    t.remove(&key);
                }
                _ => {}
            }
        }
        if t.len() > 1024 && t.len() % 64 == 0 {
            t.retain(|_, r| r.live(now));
        }
        Ok(outcomes)
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
}
