//! What a store offers the sync layer: a **transactional outbox** (every
//! write of a route with an [`OutboxSpec`] also records its
//! [`ChangeEvent`] in the same transaction, script or batch) and
//! **versioned apply** (a change applied at the version its source gave
//! it, only when newer than what the store holds — how projections and
//! migrations copy records without ever going back in time).
//!
//! Both are optional [`Store`](crate::Store) operations, announced by the
//! capabilities `outbox` and `versioned_apply`; a store without them
//! answers [`Error::Unsupported`], and the
//! router refuses a route that needs them at start-up.

use crate::store::EntityInfo;
use crate::sync::{ChangeEvent, Operation};
use crate::{Error, Key, Record, Result};

/// A route's outbox: every write through the store also records its
/// [`ChangeEvent`] atomically with the write (route option `outbox`).
///
/// ```
/// let spec = polyrouter::store::OutboxSpec::default();
/// assert!(spec.after_image);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxSpec {
    /// Put events carry the record's fields (`data`); otherwise only the
    /// key and version (consumers read the record themselves).
    pub after_image: bool,
}

impl Default for OutboxSpec {
    fn default() -> Self {
        OutboxSpec { after_image: true }
    }
}

/// One event waiting in a store's outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// The store's own id of the entry (a sequence number, a stream entry
    /// id, an item id), for [`Store::outbox_remove`](crate::Store::outbox_remove).
    pub id: String,
    /// The event.
    pub event: ChangeEvent,
}

/// A change to apply at the version its source gave it: the record (a
/// put) or a tombstone (a delete).
///
/// ```
/// use polyrouter::{Key, store::VersionedChange};
/// let c = VersionedChange::delete(Key::from("a"), 4);
/// assert!(c.record.is_none() && c.version == 4);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct VersionedChange {
    /// The key.
    pub key: Key,
    /// The version the key has after the change.
    pub version: u64,
    /// The record (its `version` equal to [`VersionedChange::version`]),
    /// or `None` for a delete.
    pub record: Option<Record>,
}

impl VersionedChange {
    /// A put of `record` at its own version.
    ///
    /// ```
    /// use polyrouter::{Key, Record, store::VersionedChange};
    /// let mut r = Record::new(Key::from("a"));
    /// r.version = 3;
    /// assert_eq!(VersionedChange::put(r).version, 3);
    /// ```
    pub fn put(record: Record) -> Self {
        VersionedChange {
            key: record.key.clone(),
            version: record.version,
            record: Some(record),
        }
    }

    /// A delete leaving a tombstone at `version`.
    ///
    /// ```
    /// use polyrouter::{Key, store::VersionedChange};
    /// assert_eq!(VersionedChange::delete(Key::from(1i64), 2).key, Key::Int(1));
    /// ```
    pub fn delete(key: Key, version: u64) -> Self {
        VersionedChange {
            key,
            version,
            record: None,
        }
    }

    /// The change an event describes, read with the entity's schema. A put
    /// event without an after-image cannot be applied from the event
    /// alone: [`Error::InvalidInput`] saying so.
    ///
    /// ```
    /// # use polyrouter::{FieldDef, FieldKind, KeyKind, Schema, Key, store::{EntityInfo, VersionedChange}};
    /// # static F: [FieldDef; 1] = [FieldDef::required("id", FieldKind::String)];
    /// # static S: Schema = Schema { name: "t", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
    /// use polyrouter::sync::{ChangeEvent, Operation};
    /// let e = ChangeEvent::new("main", "t", Key::from("a"), Operation::Delete, 5);
    /// let c = VersionedChange::from_event(&EntityInfo::new(&S), &e).unwrap();
    /// assert_eq!(c, VersionedChange::delete(Key::from("a"), 5));
    /// ```
    pub fn from_event(entity: &EntityInfo, event: &ChangeEvent) -> Result<Self> {
        match event.op {
            Operation::Delete => match event.typed_key(entity.schema.key_kind) {
                Ok(key) => Ok(VersionedChange::delete(key, event.version)),
                Err(e) => Err(Error::invalid_input(
                    &event.store,
                    entity.name(),
                    format!("event {}: {e}", event.id),
                )),
            },
            Operation::Put => match event.record(entity.schema) {
                Ok(Some(record)) => Ok(VersionedChange::put(record)),
                Ok(None) => Err(Error::invalid_input(
                    &event.store,
                    entity.name(),
                    format!(
                        "event {} carries no after-image; set `outbox = {{ after_image = true }}` on the source route",
                        event.id
                    ),
                )),
                Err(e) => Err(Error::invalid_input(
                    &event.store,
                    entity.name(),
                    format!("event {}: {e}", event.id),
                )),
            },
        }
    }
}

/// What a versioned apply did to one key.
///
/// ```
/// use polyrouter::store::Applied;
/// assert!(Applied::Applied.applied());
/// assert!(!Applied::Stale { current: 3 }.applied());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The change was newer than what the store held, and is stored.
    Applied,
    /// The store already held this version or a newer one (live or as a
    /// tombstone): nothing changed.
    Stale {
        /// The version the store holds.
        current: u64,
    },
}

impl Applied {
    /// Whether the change was stored.
    ///
    /// ```
    /// assert!(polyrouter::store::Applied::Applied.applied());
    /// ```
    pub fn applied(self) -> bool {
        matches!(self, Applied::Applied)
    }
}

/// The event a write records in its route's outbox, if the route has one:
/// a put of `record` (already carrying its new version), or a delete
/// leaving a tombstone at `version`. For backends, inside the transaction
/// (script, batch) that applies the write.
///
/// ```
/// # use polyrouter::{FieldDef, FieldKind, KeyKind, Schema, Key, Record, store::{EntityInfo, OutboxSpec, outbox_event}};
/// # static F: [FieldDef; 1] = [FieldDef::required("id", FieldKind::String)];
/// # static S: Schema = Schema { name: "t", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
/// let mut e = EntityInfo::new(&S);
/// assert!(outbox_event(&e, &Key::from("a"), None, 2).is_none());
/// e.outbox = Some(OutboxSpec { after_image: false });
/// let ev = outbox_event(&e, &Key::from("a"), None, 2).unwrap();
/// assert_eq!(ev.version, 2);
/// ```
pub fn outbox_event(
    entity: &EntityInfo,
    key: &Key,
    record: Option<&Record>,
    version: u64,
) -> Option<ChangeEvent> {
    let spec = entity.outbox?;
    Some(match record {
        Some(r) if spec.after_image => {
            let mut e = ChangeEvent::put_of(&entity.store, entity.schema, r);
            e.version = version;
            e
        }
        Some(_) => ChangeEvent::new(
            &entity.store,
            entity.name(),
            key.clone(),
            Operation::Put,
            version,
        ),
        None => ChangeEvent::new(
            &entity.store,
            entity.name(),
            key.clone(),
            Operation::Delete,
            version,
        ),
    })
}

/// The error of a store without an outbox.
pub(crate) fn no_outbox(store: &str, entity: &EntityInfo) -> Error {
    Error::unsupported(
        store,
        entity.name(),
        "a transactional outbox (recording change events atomically with writes)",
    )
}
