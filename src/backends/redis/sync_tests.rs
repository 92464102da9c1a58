//! The outbox and versioned apply against the machine's Redis: where the
//! stream lives, what a refused or sabotaged call leaves, events of
//! applied changes, tombstones and expiry.

use super::*;
use crate::store::{Applied, OutboxSpec, VersionedChange};
use crate::sync::Operation;

fn with_outbox(schema: &'static Schema) -> EntityInfo {
    EntityInfo {
        outbox: Some(OutboxSpec::default()),
        ..entity(schema)
    }
}

fn at(mut record: Record, version: u64) -> VersionedChange {
    record.version = version;
    VersionedChange::put(record)
}

/// Every event in the outbox, removed as read; (op, key, version).
async fn drain(s: &RedisStore, e: &EntityInfo) -> Vec<crate::sync::ChangeEvent> {
    let mut out = Vec::new();
    loop {
        let batch = s.outbox_fetch(e, 3).await.unwrap();
        if batch.is_empty() {
            return out;
        }
        let ids: Vec<String> = batch.iter().map(|b| b.id.clone()).collect();
        s.outbox_remove(e, &ids).await.unwrap();
        out.extend(batch.into_iter().map(|b| b.event));
    }
}

fn summary(events: &[crate::sync::ChangeEvent]) -> Vec<(Operation, Key, u64)> {
    events
        .iter()
        .map(|e| (e.op, e.key.clone(), e.version))
        .collect()
}

#[tokio::test]
async fn the_outbox_is_a_stream_in_the_namespace_that_drop_entity_removes() {
    let (s, _guard) = store("obns").await;
    let e = with_outbox(&NOTE);
    s.write(&e, vec![put(note("a", "1")), put(note("b", "2"))], true)
        .await
        .unwrap();
    s.write(&e, vec![delete("a", Precondition::None)], true)
        .await
        .unwrap();
    let stream = format!("{}:note#outbox", s.key_prefix());
    let mut conn = raw().await;
    let kind: String = redis::cmd("TYPE")
        .arg(&stream)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(kind, "stream");
    assert_eq!(s.outbox_len(&e).await.unwrap(), 3);
    // A route without an outbox writes none, and reads an empty one.
    let plain = EntityInfo {
        table: "plain".into(),
        ..entity(&NOTE)
    };
    s.write(&plain, vec![put(note("a", "1"))], true)
        .await
        .unwrap();
    assert_eq!(s.outbox_len(&plain).await.unwrap(), 0);
    assert!(s.outbox_fetch(&plain, 10).await.unwrap().is_empty());
    s.drop_entity(&e).await.unwrap();
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&stream)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(exists, 0, "drop_entity removes the outbox");
    assert_eq!(s.outbox_len(&e).await.unwrap(), 0);
}

#[tokio::test]
async fn an_outbox_key_of_another_type_fails_before_any_write() {
    let (s, _guard) = store("obwt").await;
    let e = with_outbox(&NOTE);
    let mut conn = raw().await;
    let _: () = redis::cmd("SET")
        .arg(format!("{}:note#outbox", s.key_prefix()))
        .arg("not a stream")
        .query_async(&mut conn)
        .await
        .unwrap();
    let err = s
        .write(&e, vec![put(note("a", "1"))], true)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err}");
    let err = s
        .apply_versioned(&e, vec![at(note("b", "1"), 4)])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err}");
    let got = s
        .get_many(&e, &[Key::from("a"), Key::from("b")])
        .await
        .unwrap();
    assert_eq!(got, vec![None, None], "nothing written");
}

#[tokio::test]
async fn refused_and_partial_batches_record_only_what_they_wrote() {
    let (s, _guard) = store("obpart").await;
    let e = EntityInfo {
        tombstone_retention: Duration::ZERO,
        ..with_outbox(&NOTE)
    };
    // No tombstones: the delete's event is at the deleted version + 1,
    // and the key starts again at 1.
    s.write(&e, vec![put(note("a", "1"))], true).await.unwrap();
    s.write(&e, vec![delete("a", Precondition::None)], true)
        .await
        .unwrap();
    s.write(&e, vec![delete("a", Precondition::None)], true)
        .await
        .unwrap();
    s.write(&e, vec![put(note("a", "2"))], true).await.unwrap();
    let a = Key::from("a");
    assert_eq!(
        summary(&drain(&s, &e).await),
        vec![
            (Operation::Put, a.clone(), 1),
            (Operation::Delete, a.clone(), 2),
            (Operation::Put, a.clone(), 1),
        ]
    );
    // One at a time: the conflicting write records nothing, the others do.
    let out = s
        .write_each(
            &e,
            vec![
                put(note("b", "1")),
                put_if(note("a", "x"), Precondition::Version(9)),
                put_if(note("c", "1"), Precondition::Absent),
            ],
        )
        .await
        .unwrap();
    assert!(matches!(out[1], Err(Error::Conflict { .. })));
    assert_eq!(
        summary(&drain(&s, &e).await),
        vec![
            (Operation::Put, Key::from("b"), 1),
            (Operation::Put, Key::from("c"), 1),
        ]
    );
    // Ids that are not stream ids, or gone, are ignored.
    s.outbox_remove(&e, &["nope".into(), "1-1".into()])
        .await
        .unwrap();
    assert_eq!(s.outbox_fetch(&e, 0).await.unwrap(), vec![]);
}

#[tokio::test]
async fn applied_changes_record_events_with_typed_keys_and_after_images() {
    let (s, _guard) = store("obapply").await;
    let e = with_outbox(&EVERY);
    let id = Uuid::from_u128(7);
    let record = every(id, |_| {});
    let out = s
        .apply_versioned(
            &e,
            vec![
                at(record.clone(), 3),
                at(record.clone(), 2),
                VersionedChange::delete(Key::Uuid(id), 5),
                at(record.clone(), 4),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        out,
        vec![
            Applied::Applied,
            Applied::Stale { current: 3 },
            Applied::Applied,
            Applied::Stale { current: 5 },
        ]
    );
    let events = drain(&s, &e).await;
    assert_eq!(
        summary(&events),
        vec![
            (Operation::Put, Key::Uuid(id), 3),
            (Operation::Delete, Key::Uuid(id), 5),
        ]
    );
    let image = events[0].record(&EVERY).unwrap().unwrap();
    assert_eq!(image.version, 3);
    assert_eq!(image.fields, record.fields);
    // Without an after-image: key and version only.
    let lean = EntityInfo {
        outbox: Some(OutboxSpec { after_image: false }),
        ..e.clone()
    };
    s.apply_versioned(&lean, vec![at(record, 6)]).await.unwrap();
    let events = drain(&s, &lean).await;
    assert_eq!(summary(&events), vec![(Operation::Put, Key::Uuid(id), 6)]);
    assert!(events[0].data.is_none());
}

#[tokio::test]
async fn applied_puts_never_expire_and_tombstones_keep_the_retention() {
    let (s, _guard) = store("obttl").await;
    let e = EntityInfo {
        tombstone_retention: Duration::from_secs(3600),
        ..entity(&NOTE)
    };
    let rkey = format!("{}:note:k", s.key_prefix());
    let mut conn = raw().await;
    let pttl = |conn: &mut redis::aio::MultiplexedConnection| {
        let mut conn = conn.clone();
        let rkey = rkey.clone();
        async move {
            let ms: i64 = redis::cmd("PTTL")
                .arg(&rkey)
                .query_async(&mut conn)
                .await
                .unwrap();
            ms
        }
    };
    // A record written with a TTL, replaced by an applied put: no expiry.
    s.write(
        &e,
        vec![put_ttl(note("k", "t"), Duration::from_secs(600))],
        true,
    )
    .await
    .unwrap();
    assert!(pttl(&mut conn).await > 0);
    s.apply_versioned(&e, vec![at(note("k", "v7"), 7)])
        .await
        .unwrap();
    assert_eq!(pttl(&mut conn).await, -1, "an applied put has no expiry");
    let k = s.get(&e, &Key::from("k")).await.unwrap().unwrap();
    assert_eq!((k.version, k.get("body")), (7, Some(&Value::from("v7"))));
    // An applied delete: a tombstone holding its version, expiring after
    // the retention.
    s.apply_versioned(&e, vec![VersionedChange::delete(Key::from("k"), 8)])
        .await
        .unwrap();
    let ms = pttl(&mut conn).await;
    assert!(ms > 0 && ms <= 3_600_000, "{ms}");
    let v: Option<String> = redis::cmd("HGET")
        .arg(&rkey)
        .arg("v")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(v.as_deref(), Some("8"));
    assert!(s.get(&e, &Key::from("k")).await.unwrap().is_none());
    // Without tombstones the key goes, and an older put applies again.
    let bare = EntityInfo {
        tombstone_retention: Duration::ZERO,
        table: "bare".into(),
        ..e.clone()
    };
    let out = s
        .apply_versioned(
            &bare,
            vec![
                at(note("k", "v2"), 2),
                VersionedChange::delete(Key::from("k"), 3),
                at(note("k", "v1"), 1),
            ],
        )
        .await
        .unwrap();
    assert_eq!(out, vec![Applied::Applied; 3]);
    let k = s.get(&bare, &Key::from("k")).await.unwrap().unwrap();
    assert_eq!(k.version, 1);
    // A key of another type fails before anything of the call is written.
    let _: () = redis::cmd("SET")
        .arg(format!("{}:note:zz", s.key_prefix()))
        .arg("x")
        .query_async(&mut conn)
        .await
        .unwrap();
    let err = s
        .apply_versioned(&e, vec![at(note("new", "n"), 1), at(note("zz", "z"), 1)])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err}");
    assert!(s.get(&e, &Key::from("new")).await.unwrap().is_none());
    // Versions a Lua number cannot hold exactly are refused up front.
    let err = s
        .apply_versioned(&e, vec![at(note("big", "b"), (1 << 53) + 1)])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
}

/// The child mode of [`killed_writers_leave_every_event_with_its_write`]:
/// the key prefix to write under.
const CRASH_CHILD: &str = "POLYROUTER_REDIS_OUTBOX_CRASH_CHILD";

/// Keys the crash children write (versions continue over deletes, so
/// each key's events are exactly 1..=n) and apply (versions only grow).
const WRITE_KEYS: u64 = 6;
const APPLY_KEYS: u64 = 3;

/// The child: writes batches, single writes, one-at-a-time writes and
/// versioned applies with an outbox, forever, printing `tick` after each.
async fn crash_child(prefix: String, seed: u64) {
    let s = RedisStore::connect("cache", RedisConfig::new(URL).with_key_prefix(prefix))
        .await
        .unwrap();
    let e = with_outbox(&NOTE);
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut next = move |n: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % n
    };
    for i in 0..1_000_000u64 {
        let key = |k: u64| format!("w{k}");
        match next(4) {
            0 | 1 => {
                let ops = (0..1 + next(4))
                    .map(|j| {
                        let k = key(next(WRITE_KEYS));
                        if next(3) == 0 {
                            delete(k.as_str(), Precondition::None)
                        } else {
                            put(note(&k, &format!("{seed}-{i}-{j}")))
                        }
                    })
                    .collect::<Vec<_>>();
                // Conflicts are expected: a refused batch writes nothing.
                let _ = s.write(&e, ops, next(2) == 0).await;
            }
            2 => {
                let k = key(next(WRITE_KEYS));
                let ops = vec![
                    put(note(&k, &format!("{seed}-{i}-a"))),
                    put_if(note(&k, "never"), Precondition::Version(1 << 40)),
                    delete(key(next(WRITE_KEYS)).as_str(), Precondition::Exists),
                ];
                s.write_each(&e, ops).await.unwrap();
            }
            _ => {
                let k = format!("a{}", next(APPLY_KEYS));
                let v = 1 + next(200);
                let change = if next(4) == 0 {
                    VersionedChange::delete(Key::from(k.as_str()), v)
                } else {
                    at(note(&k, &format!("{seed}-{i}-v{v}")), v)
                };
                s.apply_versioned(&e, vec![change]).await.unwrap();
            }
        }
        println!("tick {i}");
    }
}

/// Writer processes SIGKILLed at many points, three at a time on the same
/// keys: afterwards every key's events are exactly its committed writes
/// (versions 1..=n for written keys, growing for applied ones) and the
/// last event is what the key holds, fields included.
#[tokio::test]
async fn killed_writers_leave_every_event_with_its_write() {
    if let Ok(prefix) = std::env::var(CRASH_CHILD) {
        let seed = std::env::var("POLYROUTER_CRASH_SEED")
            .unwrap()
            .parse()
            .unwrap();
        crash_child(prefix, seed).await;
        return;
    }
    let (s, _guard) = store("obcrash").await;
    let exe = std::env::current_exe().unwrap();
    let name =
        "backends::redis::tests::sync_tests::killed_writers_leave_every_event_with_its_write";
    for round in 0..10u64 {
        let mut children = Vec::new();
        for c in 0..3u64 {
            let mut child = std::process::Command::new(&exe)
                .args(["--exact", name, "--nocapture", "--test-threads=1"])
                .env(CRASH_CHILD, s.key_prefix())
                .env("POLYROUTER_CRASH_SEED", (round * 3 + c).to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            children.push((child, stdout, 5 + (round * 7 + c * 13) % 40));
        }
        // Each child is killed after its own number of completed calls,
        // while its next call is in flight.
        let handles: Vec<_> = children
            .into_iter()
            .map(|(mut child, stdout, ticks)| {
                std::thread::spawn(move || {
                    use std::io::BufRead;
                    let mut seen = 0;
                    for line in std::io::BufReader::new(stdout).lines() {
                        if line.unwrap().starts_with("tick") {
                            seen += 1;
                            if seen == ticks {
                                break;
                            }
                        }
                    }
                    assert_eq!(seen, ticks, "the child stopped early");
                    child.kill().unwrap();
                    child.wait().unwrap();
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }
    let e = with_outbox(&NOTE);
    let events: Vec<_> = s
        .outbox_fetch(&e, usize::MAX >> 1)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.event)
        .collect();
    assert!(events.len() > 100, "{} events", events.len());
    let mut conn = raw().await;
    let keys = (0..WRITE_KEYS)
        .map(|k| format!("w{k}"))
        .chain((0..APPLY_KEYS).map(|k| format!("a{k}")));
    for k in keys {
        let key = Key::from(k.as_str());
        let mine: Vec<_> = events.iter().filter(|ev| ev.key == key).collect();
        let versions: Vec<u64> = mine.iter().map(|ev| ev.version).collect();
        if k.starts_with('w') {
            assert_eq!(
                versions,
                (1..=versions.len() as u64).collect::<Vec<_>>(),
                "{k}: one event per committed write"
            );
        } else {
            assert!(
                versions.windows(2).all(|w| w[0] < w[1]),
                "{k}: {versions:?}"
            );
        }
        let stored = s.get(&e, &key).await.unwrap();
        let tomb: Option<u64> = redis::cmd("HGET")
            .arg(format!("{}:note:{k}", s.key_prefix()))
            .arg("v")
            .query_async(&mut conn)
            .await
            .unwrap();
        match mine.last() {
            None => assert!(tomb.is_none(), "{k}: written without an event"),
            Some(ev) if ev.op == Operation::Put => {
                let stored = stored.unwrap_or_else(|| panic!("{k}: the put's record is gone"));
                assert_eq!(stored.version, ev.version, "{k}");
                assert_eq!(ev.record(&NOTE).unwrap().unwrap().fields, stored.fields);
            }
            Some(ev) => {
                assert!(stored.is_none(), "{k}: deleted, but live");
                assert_eq!(tomb, Some(ev.version), "{k}: the tombstone's version");
            }
        }
    }
}

/// Single unconditional puts take the short script: concurrent writers on
/// one key get every version once, each with its event, continuing over
/// a tombstone; a key of another type fails before any write.
#[tokio::test]
async fn concurrent_single_puts_take_every_version_once() {
    let (s, _guard) = store("obput1").await;
    let s = Arc::new(s);
    let e = with_outbox(&NOTE);
    s.write(&e, vec![put(note("hot", "0"))], true)
        .await
        .unwrap();
    s.write(&e, vec![delete("hot", Precondition::None)], true)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for w in 0..5 {
        let (s, e) = (s.clone(), e.clone());
        tasks.push(tokio::spawn(async move {
            let mut versions = Vec::new();
            for i in 0..20 {
                let out = s
                    .write(&e, vec![put(note("hot", &format!("{w}-{i}")))], true)
                    .await
                    .unwrap();
                versions.push(out[0].version().unwrap());
            }
            versions
        }));
    }
    let mut acknowledged = Vec::new();
    for t in tasks {
        acknowledged.extend(t.await.unwrap());
    }
    acknowledged.sort_unstable();
    assert_eq!(acknowledged, (3..=102).collect::<Vec<u64>>());
    let events = drain(&s, &e).await;
    let versions: Vec<u64> = events.iter().map(|ev| ev.version).collect();
    assert_eq!(versions, (1..=102).collect::<Vec<u64>>());
    let last = s.get(&e, &Key::from("hot")).await.unwrap().unwrap();
    assert_eq!(last.version, 102);
    assert_eq!(
        events[101].record(&NOTE).unwrap().unwrap().fields,
        last.fields
    );
    let mut conn = raw().await;
    let _: () = redis::cmd("SET")
        .arg(format!("{}:note:str", s.key_prefix()))
        .arg("x")
        .query_async(&mut conn)
        .await
        .unwrap();
    let err = s
        .write(&e, vec![put(note("str", "n"))], true)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err}");
    let kept: String = redis::cmd("GET")
        .arg(format!("{}:note:str", s.key_prefix()))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(kept, "x");
    assert_eq!(s.outbox_len(&e).await.unwrap(), 0);
}
