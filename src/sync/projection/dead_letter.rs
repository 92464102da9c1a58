//! Dead letters: events a projection gave up on, kept with their error
//! until an operator retries or removes them.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use super::Projection;
use crate::entity::{FieldDef, FieldKind, Schema};
use crate::lease::now_ms;
use crate::query::{Direction, Order, field};
use crate::store::{Applied, EntityInfo, StoreQuery, WriteOp};
use crate::sync::ChangeEvent;
use crate::{Error, Key, KeyKind, Precondition, Record, Result, Store, Value};

/// One event a projection gave up on.
///
/// ```
/// use polyrouter::{Key, sync::{ChangeEvent, Operation, projection::DeadLetter}};
/// let e = ChangeEvent::new("main", "order", Key::from("o1"), Operation::Put, 2);
/// let d = DeadLetter::new("view", e.clone(), "boom", 5);
/// assert_eq!(d.id, format!("view/{}", e.id));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// `{projection}/{event id}`: one dead letter per projection and event.
    pub id: String,
    /// The projection's name (its consumer group).
    pub projection: String,
    /// The event.
    pub event: ChangeEvent,
    /// The last error.
    pub error: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it was dead-lettered (ms since the Unix epoch).
    pub failed_ms: i64,
}

impl DeadLetter {
    /// A dead letter of `event` for `projection`, failed now.
    ///
    /// ```
    /// use polyrouter::{Key, sync::{ChangeEvent, Operation, projection::DeadLetter}};
    /// let e = ChangeEvent::new("main", "t", Key::from("a"), Operation::Delete, 1);
    /// assert_eq!(DeadLetter::new("p", e, "x", 1).attempts, 1);
    /// ```
    pub fn new(projection: &str, event: ChangeEvent, error: &str, attempts: u32) -> Self {
        DeadLetter {
            id: format!("{projection}/{}", event.id),
            projection: projection.into(),
            event,
            error: error.into(),
            attempts,
            failed_ms: now_ms(),
        }
    }
}

/// Where a projection runner puts the events it gives up on.
#[async_trait]
pub trait DeadLetters: Send + Sync + fmt::Debug + 'static {
    /// Keeps `event` as dead for `projection` with its last error and the
    /// attempts made. Idempotent: the same projection and event again
    /// replace the first.
    async fn put(
        &self,
        projection: &str,
        event: &ChangeEvent,
        error: &str,
        attempts: u32,
    ) -> Result<()>;

    /// The dead letters of `projection` (all when `None`), by id.
    async fn list(&self, projection: Option<&str>) -> Result<Vec<DeadLetter>>;

    /// Removes dead letters by id; absent ids are fine.
    async fn remove(&self, ids: &[String]) -> Result<()>;

    /// Applies a dead letter again through `projection` and removes it
    /// when that succeeds (an error leaves it, with the error returned).
    /// An error for an id that is not there.
    async fn retry(&self, id: &str, projection: &dyn Projection) -> Result<Applied> {
        let all = self.list(None).await?;
        let Some(d) = all.into_iter().find(|d| d.id == id) else {
            return Err(Error::invalid_input(
                "",
                "polyrouter_dead_letter",
                format!("no dead letter `{id}`; list them to see their ids"),
            ));
        };
        let applied = projection.apply(&d.event).await?;
        self.remove(&[d.id]).await?;
        Ok(applied)
    }
}

static FIELDS: [FieldDef; 8] = [
    FieldDef::required("id", FieldKind::String),
    FieldDef::required("projection", FieldKind::String),
    FieldDef::required("entity", FieldKind::String),
    FieldDef::required("event_key", FieldKind::String),
    FieldDef::required("event", FieldKind::String),
    FieldDef::required("error", FieldKind::String),
    FieldDef::required("attempts", FieldKind::Int),
    FieldDef::required("failed_ms", FieldKind::Int),
];

static SCHEMA: Schema = Schema {
    name: "polyrouter_dead_letter",
    key: "id",
    key_kind: KeyKind::Str,
    partition_key: None,
    version: None,
    fields: &FIELDS,
};

/// How many dead letters one list query reads at a time.
const PAGE: usize = 500;

/// Dead letters kept as records in any record store that can query and
/// sort (any SQL store; memory for tests), in a table of their own.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::sync::Arc;
/// use polyrouter::{backends::memory::MemoryStore, Key};
/// use polyrouter::sync::{ChangeEvent, Operation, projection::{DeadLetters, StoreDeadLetters}};
/// let dl = StoreDeadLetters::open(Arc::new(MemoryStore::new("m")), "dead_letters").await?;
/// let e = ChangeEvent::new("main", "order", Key::from("o1"), Operation::Put, 2);
/// dl.put("view", &e, "does not fit", 5).await?;
/// let listed = dl.list(Some("view")).await?;
/// assert_eq!(listed[0].event, e);
/// dl.remove(&[listed[0].id.clone()]).await?;
/// assert!(dl.list(None).await?.is_empty());
/// # Ok::<(), polyrouter::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct StoreDeadLetters {
    store: Arc<dyn Store>,
    info: EntityInfo,
}

impl StoreDeadLetters {
    /// The dead letters in `table` of `store` (created when missing).
    /// [`Error::Unsupported`] for a store that cannot query and sort.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let m = std::sync::Arc::new(polyrouter::backends::memory::MemoryStore::new("m"));
    /// assert!(polyrouter::sync::projection::StoreDeadLetters::open(m, "dl").await.is_ok());
    /// # });
    /// ```
    pub async fn open(store: Arc<dyn Store>, table: &str) -> Result<Self> {
        let caps = store.capabilities();
        if !(caps.records
            && caps.query
            && caps.sort
            && caps.filters.eq
            && caps.filters.range
            && caps.filters.and)
        {
            return Err(Error::unsupported(
                store.name(),
                SCHEMA.name,
                "projection dead letters (they need queries with filters and sorting; use any SQL store, or memory for tests)",
            ));
        }
        let info = EntityInfo {
            table: table.into(),
            store: store.name().into(),
            tombstone_retention: std::time::Duration::ZERO,
            ..EntityInfo::new(&SCHEMA)
        };
        store.ensure_entity(&info).await?;
        Ok(StoreDeadLetters { store, info })
    }

    fn decode(&self, r: &Record) -> Result<DeadLetter> {
        let text = |name: &str| match r.value(name) {
            Value::String(s) => Ok(s.clone()),
            other => Err(self.unreadable(r, format!("`{name}` is {other:?}"))),
        };
        let int = |name: &str| match r.value(name) {
            Value::I64(i) => Ok(*i),
            other => Err(self.unreadable(r, format!("`{name}` is {other:?}"))),
        };
        let event =
            ChangeEvent::from_json(text("event")?.as_bytes()).map_err(|m| self.unreadable(r, m))?;
        Ok(DeadLetter {
            id: text("id")?,
            projection: text("projection")?,
            event,
            error: text("error")?,
            attempts: u32::try_from(int("attempts")?).unwrap_or(u32::MAX),
            failed_ms: int("failed_ms")?,
        })
    }

    fn unreadable(&self, r: &Record, what: impl fmt::Display) -> Error {
        Error::backend(
            self.store.name(),
            SCHEMA.name,
            format!(
                "unreadable dead letter `{}` in table `{}`: {what}",
                r.key, self.info.table
            ),
        )
    }
}

#[async_trait]
impl DeadLetters for StoreDeadLetters {
    async fn put(
        &self,
        projection: &str,
        event: &ChangeEvent,
        error: &str,
        attempts: u32,
    ) -> Result<()> {
        let d = DeadLetter::new(projection, event.clone(), error, attempts);
        let mut r = Record::new(Key::Str(d.id.clone()));
        r.set("id", Value::String(d.id));
        r.set("projection", Value::String(d.projection));
        r.set("entity", Value::String(event.entity.clone()));
        r.set("event_key", Value::String(event.key.to_string()));
        r.set(
            "event",
            Value::String(String::from_utf8_lossy(&event.to_json()).into_owned()),
        );
        r.set("error", Value::String(d.error));
        r.set("attempts", Value::I64(i64::from(attempts)));
        r.set("failed_ms", Value::I64(d.failed_ms));
        let op = WriteOp::Put {
            record: r,
            precondition: Precondition::None,
            ttl: None,
        };
        self.store.write(&self.info, vec![op], true).await?;
        Ok(())
    }

    async fn list(&self, projection: Option<&str>) -> Result<Vec<DeadLetter>> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut filter = projection.map(|p| field("projection").eq(p));
            if let Some(a) = &after {
                let f = field("id").gt(a.as_str());
                filter = Some(match filter {
                    Some(p) => p.and(f),
                    None => f,
                });
            }
            let q = StoreQuery {
                filter,
                order: vec![Order {
                    field: "id".into(),
                    direction: Direction::Asc,
                }],
                limit: Some(PAGE),
            };
            let page = self.store.query(&self.info, &q).await?;
            let n = page.len();
            for r in &page {
                out.push(self.decode(r)?);
            }
            after = out.last().map(|d: &DeadLetter| d.id.clone());
            if n < PAGE {
                return Ok(out);
            }
        }
    }

    async fn remove(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ops = ids
            .iter()
            .map(|id| WriteOp::Delete {
                key: Key::Str(id.clone()),
                precondition: Precondition::None,
            })
            .collect();
        self.store.write(&self.info, ops, false).await?;
        Ok(())
    }
}
