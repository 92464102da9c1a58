//! Cluster mode against the project's Redis Cluster (`scripts/services
//! redis-cluster`, 127.0.0.1:7101-7106). Each test writes under its own
//! key prefix and deletes every key under it on every master when it ends
//! (even when it fails). Failover and redirects: tests/scaleout.

use std::sync::Arc;
use std::time::Duration;

use super::tests::{ITEM, NOTE, entity_of, item, note, put, scan, unique_prefix};
use super::*;
use crate::entity::Schema;
use crate::store::OutboxSpec;

const PORTS: [u16; 6] = [7101, 7102, 7103, 7104, 7105, 7106];

/// Deletes every key under a prefix on every master when dropped.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for port in PORTS {
            let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}")) else {
                continue;
            };
            let Ok(mut conn) = client.get_connection() else {
                continue;
            };
            for k in scan(&mut conn, &format!("{}*", self.0)) {
                // A replica answers MOVED: its master deletes the key.
                let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(k).query(&mut conn);
            }
        }
    }
}

fn config(tag: &str) -> (RedisConfig, Cleanup) {
    let prefix = unique_prefix("cluster-unit", tag);
    let c = RedisConfig::cluster(PORTS.map(|p| format!("redis://127.0.0.1:{p}")))
        .with_key_prefix(&prefix);
    (c, Cleanup(prefix))
}

async fn open(c: RedisConfig) -> RedisStore {
    RedisStore::connect("rc", c).await.expect(
        "the project's Redis Cluster on 127.0.0.1:7101-7106 (scripts/services redis-cluster)",
    )
}

fn entity(schema: &'static Schema) -> EntityInfo {
    entity_of("rc", schema)
}

#[tokio::test]
async fn batches_are_atomic_within_one_slot_and_refused_across_slots() {
    let (c, _guard) = config("batch");
    let s = open(c).await;
    assert!(!s.capabilities().batch_atomic && !s.capabilities().outbox);
    let items = entity(&ITEM);
    let notes = entity(&NOTE);
    // Keys 1 and 2 are in different slots: refused whole, nothing sent.
    let err = s
        .write(&items, vec![put(item(1, "a")), put(item(2, "b"))], true)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    assert!(err.to_string().contains("hash slot"), "{err}");
    assert_eq!(s.get(&items, &Key::Int(1)).await.unwrap(), None);
    // Keys sharing a hash tag: one script, all or nothing.
    let err = s
        .write(
            &notes,
            vec![
                put(note("{o1}:a", "x")),
                put(note("{o1}:b", "y")),
                WriteOp::Delete {
                    key: Key::from("{o1}:c"),
                    precondition: Precondition::Exists,
                },
            ],
            true,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert_eq!(s.get(&notes, &Key::from("{o1}:a")).await.unwrap(), None);
    let out = s
        .write(
            &notes,
            vec![put(note("{o1}:a", "x")), put(note("{o1}:b", "y"))],
            true,
        )
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::Written { version: 1 }; 2]);
    // Non-atomic across slots: split per slot, every write applied.
    let ops: Vec<WriteOp> = (0..50).map(|i| put(item(i, "n"))).collect();
    let out = s.write(&items, ops, false).await.unwrap();
    assert_eq!(out.len(), 50);
    // write_each: a conflict in the middle fails that write alone.
    let mut ops: Vec<WriteOp> = (0..10).map(|i| put(item(i, "m"))).collect();
    ops[5] = WriteOp::Put {
        record: item(5, "m"),
        precondition: Precondition::Absent,
        ttl: None,
    };
    let out = s.write_each(&items, ops).await.unwrap();
    for (i, o) in out.iter().enumerate() {
        match (i, o) {
            (5, Err(Error::Conflict { .. })) => {}
            (5, other) => panic!("write 5: {other:?}"),
            (_, Ok(WriteOutcome::Written { version: 2 })) => {}
            (_, other) => panic!("write {i}: {other:?}"),
        }
    }
    // get_many across slots, in order.
    let keys: Vec<Key> = (0..60).rev().map(Key::Int).collect();
    let got = s.get_many(&items, &keys).await.unwrap();
    for (k, r) in keys.iter().zip(&got) {
        let Key::Int(i) = k else { unreachable!() };
        assert_eq!(
            r.as_ref().map(|r| r.key.clone()),
            (*i < 50).then(|| k.clone())
        );
    }
    // drop_entity reaches every master; the other table stays.
    s.drop_entity(&items).await.unwrap();
    let got = s.get_many(&items, &keys).await.unwrap();
    assert!(got.iter().all(Option::is_none));
    assert!(s.get(&notes, &Key::from("{o1}:b")).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_counters_locks_and_expiry_on_the_cluster() {
    let (c, _guard) = config("kv");
    let s = Arc::new(open(c).await);
    let e = entity(&ITEM);
    // Concurrent increments of one counter: none lost.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (s, e) = (s.clone(), e.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                s.as_kv()
                    .unwrap()
                    .increment(&e, &Key::Int(7), 1, Some(Duration::from_secs(60)))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let kv = s.as_kv().unwrap();
    assert_eq!(kv.increment(&e, &Key::Int(7), 0, None).await.unwrap(), 200);
    // A lock: of concurrent takers, one wins.
    let mut takers = Vec::new();
    for i in 0..8u8 {
        let (s, e) = (s.clone(), e.clone());
        takers.push(tokio::spawn(async move {
            s.as_kv()
                .unwrap()
                .set_if_absent(&e, &Key::Int(8), &[i], Duration::from_secs(30))
                .await
                .unwrap()
        }));
    }
    let mut won = 0;
    for t in takers {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1);
    let holder = kv.get_bytes(&e, &Key::Int(8)).await.unwrap().unwrap();
    assert!(
        !kv.delete_bytes(&e, &Key::Int(8), Some(&[99]))
            .await
            .unwrap()
    );
    assert!(
        kv.delete_bytes(&e, &Key::Int(8), Some(&holder))
            .await
            .unwrap()
    );
    // Record expiry: expire, persist, and a TTL that runs out.
    s.write(&e, vec![put(item(9, "t"))], true).await.unwrap();
    assert!(
        kv.expire(&e, &Key::Int(9), Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert!(kv.persist(&e, &Key::Int(9)).await.unwrap());
    assert!(
        kv.expire(&e, &Key::Int(9), Duration::from_millis(50))
            .await
            .unwrap()
    );
    let mut gone = false;
    for _ in 0..100 {
        if s.get(&e, &Key::Int(9)).await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the record never expired");
}

#[tokio::test]
async fn an_outbox_and_braces_in_names_are_refused() {
    let (c, _guard) = config("refuse");
    let s = open(c.clone()).await;
    let with_outbox = EntityInfo {
        outbox: Some(OutboxSpec::default()),
        ..entity(&ITEM)
    };
    let err = s.ensure_entity(&with_outbox).await.unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    assert!(
        err.to_string().contains("outbox on a Redis Cluster"),
        "{err}"
    );
    let err = s
        .write(&with_outbox, vec![put(item(1, "a"))], true)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    assert_eq!(s.get(&entity(&ITEM), &Key::Int(1)).await.unwrap(), None);
    let braced = EntityInfo {
        table: "a{b}".into(),
        ..entity(&ITEM)
    };
    assert!(matches!(
        s.ensure_entity(&braced).await,
        Err(Error::Config { .. })
    ));
    let err = RedisStore::connect("rc", c.with_key_prefix("x{y}"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("key_prefix"), "{err}");
}

#[tokio::test]
async fn wait_replicas_holds_a_write_until_replicas_have_it() {
    let (c, _guard) = config("wait");
    let e = entity(&ITEM);
    // One replica per master: `WAIT 1` is met.
    let s = open(c.clone().with_wait_replicas(1, Duration::from_secs(2))).await;
    let out = s.write(&e, vec![put(item(1, "a"))], true).await.unwrap();
    assert_eq!(out, vec![WriteOutcome::Written { version: 1 }]);
    assert_eq!(
        s.as_kv()
            .unwrap()
            .increment(&e, &Key::Int(2), 3, None)
            .await
            .unwrap(),
        3
    );
    // Two are asked for, one exists: the write is applied on the master
    // but not acknowledged.
    let s2 = open(c.with_wait_replicas(2, Duration::from_millis(200))).await;
    let err = s2
        .write(&e, vec![put(item(1, "b"))], true)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(
        err.to_string().contains("only 1 of the 2 replicas"),
        "{err}"
    );
    assert_eq!(s.get(&e, &Key::Int(1)).await.unwrap().unwrap().version, 2);
}
