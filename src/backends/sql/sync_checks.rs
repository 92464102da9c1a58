//! Versioned-apply and outbox edge cases every SQL store is checked
//! against in its own tests (test builds only): tombstones of keys never
//! seen, expired rows counting as absent, version 0, zero tombstone
//! retention, and events recorded only for applied changes.

use std::time::Duration;

use crate::entity::{FieldDef, FieldKind, Schema};
use crate::store::{Applied, EntityInfo, OutboxSpec, VersionedChange, WriteOp};
use crate::sync::Operation;
use crate::{Key, KeyKind, Precondition, Record, Store, Value};

static FIELDS: [FieldDef; 3] = [
    FieldDef::required("id", FieldKind::String),
    FieldDef::required("body", FieldKind::String),
    FieldDef::nullable("n", FieldKind::Int),
];
static ITEM: Schema = Schema {
    name: "item",
    key: "id",
    key_kind: KeyKind::Str,
    partition_key: None,
    version: None,
    fields: &FIELDS,
};

fn at(id: &str, body: &str, version: u64) -> VersionedChange {
    let mut r = Record::new(Key::from(id));
    r.set("id", Value::from(id));
    r.set("body", Value::from(body));
    r.version = version;
    VersionedChange::put(r)
}

/// Runs the checks on `store` in tables `{prefix}_a` and `{prefix}_z`
/// (dropped at the end).
pub(crate) async fn versioned_apply_edges(store: &dyn Store, prefix: &str) {
    let e = EntityInfo {
        store: store.name().into(),
        table: format!("{prefix}_a"),
        outbox: Some(OutboxSpec::default()),
        ..EntityInfo::new(&ITEM)
    };
    store.ensure_entity(&e).await.unwrap();
    let apply = |changes: Vec<VersionedChange>| store.apply_versioned(&e, changes);
    // A delete of a key never seen leaves a tombstone (placeholders in its
    // NOT NULL columns) that keeps older puts out.
    let d = VersionedChange::delete(Key::from("d"), 3);
    assert_eq!(apply(vec![d]).await.unwrap(), [Applied::Applied]);
    assert!(store.get(&e, &Key::from("d")).await.unwrap().is_none());
    assert_eq!(store.count(&e, None).await.unwrap(), 0);
    assert_eq!(
        apply(vec![at("d", "old", 2)]).await.unwrap(),
        [Applied::Stale { current: 3 }]
    );
    assert_eq!(
        apply(vec![at("d", "new", 4)]).await.unwrap(),
        [Applied::Applied]
    );
    let got = store.get(&e, &Key::from("d")).await.unwrap().unwrap();
    assert_eq!(
        (got.version, got.get("body")),
        (4, Some(&Value::from("new")))
    );
    // Version 0 is never newer, even than nothing.
    assert_eq!(
        apply(vec![at("z", "zero", 0)]).await.unwrap(),
        [Applied::Stale { current: 0 }]
    );
    assert!(store.get(&e, &Key::from("z")).await.unwrap().is_none());
    // An expired row counts as absent: version 1 applies over it.
    let mut x = Record::new(Key::from("x"));
    x.set("id", Value::from("x"));
    x.set("body", Value::from("short-lived"));
    let put = WriteOp::Put {
        record: x,
        precondition: Precondition::None,
        ttl: Some(Duration::from_millis(1)),
    };
    store.write(&e, vec![put], true).await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(
        apply(vec![at("x", "kept", 1)]).await.unwrap(),
        [Applied::Applied]
    );
    let got = store.get(&e, &Key::from("x")).await.unwrap().unwrap();
    assert_eq!(
        (got.version, got.get("body")),
        (1, Some(&Value::from("kept")))
    );
    // Events: applied changes and the write, nothing for stale ones.
    let events = store.outbox_fetch(&e, 100).await.unwrap();
    let seen: Vec<(String, Operation, u64)> = events
        .iter()
        .map(|o| (o.event.key.to_string(), o.event.op, o.event.version))
        .collect();
    let want = |k: &str, op, v| (Key::from(k).to_string(), op, v);
    assert_eq!(
        seen,
        [
            want("d", Operation::Delete, 3),
            want("d", Operation::Put, 4),
            want("x", Operation::Put, 1),
            want("x", Operation::Put, 1),
        ]
    );
    let body = events[3].event.data.as_ref().unwrap()["body"].clone();
    assert_eq!(body, "kept");
    store.drop_entity(&e).await.unwrap();

    // Zero tombstone retention: a delete removes the row.
    let z = EntityInfo {
        store: store.name().into(),
        table: format!("{prefix}_z"),
        tombstone_retention: Duration::ZERO,
        ..EntityInfo::new(&ITEM)
    };
    store.ensure_entity(&z).await.unwrap();
    let apply = |changes: Vec<VersionedChange>| store.apply_versioned(&z, changes);
    assert_eq!(
        apply(vec![at("a", "v5", 5)]).await.unwrap(),
        [Applied::Applied]
    );
    let old = VersionedChange::delete(Key::from("a"), 4);
    assert_eq!(
        apply(vec![old]).await.unwrap(),
        [Applied::Stale { current: 5 }]
    );
    let newer = VersionedChange::delete(Key::from("a"), 6);
    assert_eq!(apply(vec![newer]).await.unwrap(), [Applied::Applied]);
    assert!(store.get(&z, &Key::from("a")).await.unwrap().is_none());
    let absent = VersionedChange::delete(Key::from("b"), 2);
    assert_eq!(apply(vec![absent]).await.unwrap(), [Applied::Applied]);
    // No tombstone was kept: an older put applies again.
    assert_eq!(
        apply(vec![at("a", "v3", 3)]).await.unwrap(),
        [Applied::Applied]
    );
    store.drop_entity(&z).await.unwrap();
}
