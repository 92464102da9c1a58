//! The outbox and versioned apply against the local emulator, where the
//! behaviour suite cannot reach: an entity partitioned by a field other
//! than its key, atomic batches, and the raw items.

use super::tests::{ORDER, emulator_store, entity, order, put, raw_item};
use super::*;
use crate::store::{OutboxSpec, VersionedChange};
use crate::sync::Operation;

fn with_outbox(mut e: EntityInfo) -> EntityInfo {
    e.outbox = Some(OutboxSpec::default());
    e
}

#[tokio::test]
async fn an_atomic_batch_records_its_events_in_its_partition_and_reads_skip_them() {
    let store = emulator_store().await;
    let orders = with_outbox(entity(&ORDER));
    store.ensure_entity(&orders).await.unwrap();
    let (o1, o2) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    store
        .write(
            &orders,
            vec![put(order(o1, "c1", 1.0), Precondition::None)],
            true,
        )
        .await
        .unwrap();
    let out = store
        .write(
            &orders,
            vec![
                put(order(o2, "c1", 2.0), Precondition::Absent),
                put(order(o1, "c1", 1.5), Precondition::Version(1)),
                WriteOp::Delete {
                    key: Key::Uuid(o1),
                    precondition: Precondition::Version(2),
                },
            ],
            true,
        )
        .await
        .unwrap();
    assert_eq!(out[2], WriteOutcome::Deleted { existed: true });
    // A refused batch (a precondition fails) records nothing.
    let refused = store
        .write(
            &orders,
            vec![
                put(order(o2, "c1", 9.0), Precondition::Version(7)),
                put(order(o1, "c1", 9.0), Precondition::None),
            ],
            true,
        )
        .await;
    assert!(
        matches!(refused, Err(Error::Conflict { .. })),
        "{refused:?}"
    );
    assert_eq!(store.outbox_len(&orders).await.unwrap(), 4);
    // Outbox items are no records: not counted, queried or read.
    assert_eq!(store.count(&orders, None).await.unwrap(), 1);
    let all = store.query(&orders, &StoreQuery::default()).await.unwrap();
    assert_eq!(all.len(), 1);
    assert!(store.get(&orders, &Key::Uuid(o1)).await.unwrap().is_none());

    let entries = store.outbox_fetch(&orders, 10).await.unwrap();
    let of = |k: uuid::Uuid| -> Vec<(Operation, u64)> {
        entries
            .iter()
            .filter(|e| e.event.typed_key(crate::KeyKind::Uuid).ok() == Some(Key::Uuid(k)))
            .map(|e| (e.event.op, e.event.version))
            .collect()
    };
    assert_eq!(
        of(o1),
        vec![
            (Operation::Put, 1),
            (Operation::Put, 2),
            (Operation::Delete, 3)
        ]
    );
    assert_eq!(of(o2), vec![(Operation::Put, 1)]);
    // Each event lives in its record's partition, next to it.
    let (pk, id) = entries[0].id.rsplit_once('|').unwrap();
    assert_eq!(pk, "\"c1\"");
    assert!(id.starts_with(codec::OUTBOX_ID_PREFIX));
    let tomb = raw_item(&store, &orders, "c1", o1).await.unwrap();
    assert!(codec::is_tombstone(&tomb));
    let last = entries
        .iter()
        .rfind(|e| e.event.typed_key(crate::KeyKind::Uuid).ok() == Some(Key::Uuid(o1)))
        .unwrap();
    let last = order_of_entry(&store, &orders, last).await;
    assert_eq!(
        tomb[codec::ORDER].as_u64(),
        Some(last),
        "the tombstone keeps the latest order"
    );

    let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
    store.outbox_remove(&orders, &ids).await.unwrap();
    store.outbox_remove(&orders, &ids).await.unwrap(); // gone already: fine
    assert_eq!(store.outbox_len(&orders).await.unwrap(), 0);
    store.delete_database().await.unwrap();
}

/// The `pr_order` of the outbox item behind an entry, read raw.
async fn order_of_entry(store: &CosmosStore, e: &EntityInfo, entry: &OutboxEntry) -> u64 {
    let (pk, id) = entry.id.rsplit_once('|').unwrap();
    let pk: String = serde_json::from_str(pk).unwrap();
    let c = store.container(e).await.unwrap();
    let doc: Doc = c
        .client
        .read_item(pk, id, None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    doc[codec::ORDER].as_u64().unwrap()
}

#[tokio::test]
async fn an_atomic_batch_over_50_writes_with_an_outbox_is_unsupported_and_sends_nothing() {
    let store = emulator_store().await;
    let orders = with_outbox(entity(&ORDER));
    store.ensure_entity(&orders).await.unwrap();
    let ops: Vec<WriteOp> = (0..51)
        .map(|i| {
            put(
                order(uuid::Uuid::new_v4(), "c9", f64::from(i)),
                Precondition::None,
            )
        })
        .collect();
    let err = store.write(&orders, ops, true).await.unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("outbox"), "{err}");
    assert_eq!(store.count(&orders, None).await.unwrap(), 0);
    assert_eq!(store.outbox_len(&orders).await.unwrap(), 0);
    store.delete_database().await.unwrap();
}

#[tokio::test]
async fn versioned_apply_moves_a_record_to_its_new_partition_and_records_the_event() {
    let store = emulator_store().await;
    let orders = with_outbox(entity(&ORDER));
    store.ensure_entity(&orders).await.unwrap();
    let o = uuid::Uuid::new_v4();
    let at = |customer: &str, v: u64| {
        let mut r = order(o, customer, v as f64);
        r.version = v;
        VersionedChange::put(r)
    };
    let out = store
        .apply_versioned(&orders, vec![at("c1", 3), at("c2", 5), at("c1", 4)])
        .await
        .unwrap();
    assert_eq!(
        out,
        vec![
            Applied::Applied,
            Applied::Applied,
            Applied::Stale { current: 5 }
        ]
    );
    assert!(
        raw_item(&store, &orders, "c1", o).await.is_none(),
        "moved out of c1"
    );
    let moved = raw_item(&store, &orders, "c2", o).await.unwrap();
    assert_eq!(codec::version_of(&moved), 5);
    assert!(moved.get("ttl").is_none(), "applied records never expire");
    // A delete of an absent key leaves a tombstone (in the null partition:
    // its record's is unknown) that keeps older puts out.
    let gone = uuid::Uuid::new_v4();
    let del = VersionedChange::delete(Key::Uuid(gone), 2);
    let mut old = order(gone, "c3", 1.0);
    old.version = 1;
    assert_eq!(
        store
            .apply_versioned(&orders, vec![del, VersionedChange::put(old)])
            .await
            .unwrap(),
        vec![Applied::Applied, Applied::Stale { current: 2 }]
    );
    let entries = store.outbox_fetch(&orders, 10).await.unwrap();
    let of = |k: uuid::Uuid| -> Vec<(u64, Operation)> {
        entries
            .iter()
            .filter(|e| e.event.typed_key(crate::KeyKind::Uuid).ok() == Some(Key::Uuid(k)))
            .map(|e| (e.event.version, e.event.op))
            .collect()
    };
    assert_eq!(of(o), vec![(3, Operation::Put), (5, Operation::Put)]);
    assert_eq!(of(gone), vec![(2, Operation::Delete)]);
    store.delete_database().await.unwrap();
}
