//! Tests against the machine's Redis at 127.0.0.1:6379. Each test writes
//! under its own key prefix and deletes every key under it when it ends
//! (even when it fails).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::backends::memory::MemoryStore;
use crate::entity::{FieldDef, FieldKind, Schema};
use crate::{Entity, KeyKind, Router, Value};

const URL: &str = "redis://127.0.0.1:6379";

/// Every kind, required and optional, with a UUID key.
static EVERY_FIELDS: [FieldDef; 17] = [
    FieldDef::required("id", FieldKind::Uuid),
    FieldDef::required("b", FieldKind::Bool),
    FieldDef::required("i", FieldKind::Int),
    FieldDef::required("f", FieldKind::Float),
    FieldDef::required("s", FieldKind::String),
    FieldDef::required("by", FieldKind::Bytes),
    FieldDef::required("ts", FieldKind::Timestamp),
    FieldDef::required("u", FieldKind::Uuid),
    FieldDef::required("j", FieldKind::Json),
    FieldDef::nullable("ob", FieldKind::Bool),
    FieldDef::nullable("oi", FieldKind::Int),
    FieldDef::nullable("of", FieldKind::Float),
    FieldDef::nullable("os", FieldKind::String),
    FieldDef::nullable("oby", FieldKind::Bytes),
    FieldDef::nullable("ots", FieldKind::Timestamp),
    FieldDef::nullable("ou", FieldKind::Uuid),
    FieldDef::nullable("oj", FieldKind::Json),
];
static EVERY: Schema = Schema {
    name: "every",
    key: "id",
    key_kind: KeyKind::Uuid,
    partition_key: None,
    version: Some("version"),
    fields: &EVERY_FIELDS,
};

static ITEM_FIELDS: [FieldDef; 2] = [
    FieldDef::required("id", FieldKind::Int),
    FieldDef::required("name", FieldKind::String),
];
pub(super) static ITEM: Schema = Schema {
    name: "item",
    key: "id",
    key_kind: KeyKind::Int,
    partition_key: None,
    version: None,
    fields: &ITEM_FIELDS,
};

static NOTE_FIELDS: [FieldDef; 2] = [
    FieldDef::required("id", FieldKind::String),
    FieldDef::required("body", FieldKind::String),
];
pub(super) static NOTE: Schema = Schema {
    name: "note",
    key: "id",
    key_kind: KeyKind::Str,
    partition_key: None,
    version: None,
    fields: &NOTE_FIELDS,
};

/// The seed's session entity, implemented by hand (the derive names the
/// crate `::polyrouter`, which does not resolve inside it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Session {
    id: String,
    user: String,
}

static SESSION_FIELDS: [FieldDef; 2] = [
    FieldDef::required("id", FieldKind::String),
    FieldDef::required("user", FieldKind::String),
];
static SESSION: Schema = Schema {
    name: "session",
    key: "id",
    key_kind: KeyKind::Str,
    partition_key: None,
    version: None,
    fields: &SESSION_FIELDS,
};

impl Entity for Session {
    fn schema() -> &'static Schema {
        &SESSION
    }
    fn key(&self) -> Key {
        Key::from(&self.id)
    }
}

/// A unique key prefix for one test (`kind`: `unit`, `cluster-unit`).
pub(super) fn unique_prefix(kind: &str, tag: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("polyrouter-{kind}-{}-{tag}-{n}", std::process::id())
}

/// Deletes every key under a prefix when dropped (SCAN + DEL), even when
/// the test panicked.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(URL) else {
            return;
        };
        let Ok(mut conn) = client.get_connection() else {
            return;
        };
        for pattern in [format!("{}:*", self.0), format!("{}#*", self.0)] {
            for chunk in scan(&mut conn, &pattern).chunks(500) {
                let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(chunk).query(&mut conn);
            }
        }
    }
}

/// Every key matching `pattern` (none when the scan fails).
pub(super) fn scan(conn: &mut redis::Connection, pattern: &str) -> Vec<Vec<u8>> {
    match redis::cmd("SCAN")
        .cursor_arg(0)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(1000)
        .clone()
        .iter(conn)
    {
        Ok(iter) => iter.filter_map(|k| k.ok()).collect(),
        Err(_) => Vec::new(),
    }
}

/// A store under a fresh prefix, and the guard that empties it.
async fn store(tag: &str) -> (RedisStore, Cleanup) {
    let prefix = unique_prefix("unit", tag);
    let guard = Cleanup(prefix.clone());
    let store = RedisStore::connect("cache", RedisConfig::new(URL).with_key_prefix(prefix))
        .await
        .expect("the machine's Redis at 127.0.0.1:6379 (start it with redis-server)");
    (store, guard)
}

/// A plain second connection, for inspecting and sabotaging.
async fn raw() -> redis::aio::MultiplexedConnection {
    redis::Client::open(URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

fn entity(schema: &'static Schema) -> EntityInfo {
    entity_of("cache", schema)
}

/// `schema`'s entity, routed to `store`.
pub(super) fn entity_of(store: &str, schema: &'static Schema) -> EntityInfo {
    EntityInfo {
        store: store.into(),
        ..EntityInfo::new(schema)
    }
}

pub(super) fn item(id: i64, name: &str) -> Record {
    let mut r = Record::new(Key::Int(id));
    r.set("id", Value::I64(id));
    r.set("name", Value::from(name));
    r
}

pub(super) fn note(id: &str, body: &str) -> Record {
    let mut r = Record::new(Key::from(id));
    r.set("id", Value::from(id));
    r.set("body", Value::from(body));
    r
}

pub(super) fn put(record: Record) -> WriteOp {
    WriteOp::Put {
        record,
        precondition: Precondition::None,
        ttl: None,
    }
}

fn put_if(record: Record, precondition: Precondition) -> WriteOp {
    WriteOp::Put {
        record,
        precondition,
        ttl: None,
    }
}

fn put_ttl(record: Record, ttl: Duration) -> WriteOp {
    WriteOp::Put {
        record,
        precondition: Precondition::None,
        ttl: Some(ttl),
    }
}

fn delete(key: impl Into<Key>, precondition: Precondition) -> WriteOp {
    WriteOp::Delete {
        key: key.into(),
        precondition,
    }
}

fn every(id: Uuid, change: impl Fn(&mut Record)) -> Record {
    let t =
        |s: &str| Value::Timestamp(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc));
    let mut r = Record::new(Key::Uuid(id));
    r.set("id", Value::Uuid(id));
    r.set("b", Value::Bool(true));
    r.set("i", Value::I64(-42));
    r.set("f", Value::F64(3.25));
    r.set(
        "s",
        Value::from("héllo wörld ✓ 日本語 🎉 \"quoted\" \\ \n\t"),
    );
    r.set("by", Value::Bytes((0..=255u8).collect()));
    r.set("ts", t("2024-02-29T23:59:58.123456Z"));
    r.set(
        "u",
        Value::Uuid(Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef)),
    );
    r.set(
        "j",
        Value::Json(json!({"a": [1, 2.5, null, "x"], "b": {"c": true}, "q": "'\""})),
    );
    r.set("ob", Value::Bool(false));
    r.set("oi", Value::I64(7));
    r.set("of", Value::Null);
    r.set("os", Value::from(""));
    r.set("oby", Value::Bytes(vec![]));
    r.set("ots", t("1900-01-01T00:00:00Z"));
    r.set("ou", Value::Null);
    r.set("oj", Value::Null);
    change(&mut r);
    r
}

#[tokio::test]
async fn round_trip_of_every_kind_matches_the_memory_store() {
    let (redis, _guard) = store("kinds").await;
    let memory = MemoryStore::new("cache");
    let e = entity(&EVERY);
    redis.ensure_entity(&e).await.unwrap();
    type Change = Box<dyn Fn(&mut Record)>;
    let cases: Vec<Change> = vec![
        Box::new(|_| {}),
        Box::new(|r| {
            r.set("i", Value::I64(i64::MAX));
            r.set("f", Value::F64(f64::MAX));
            r.set("of", Value::F64(f64::MIN_POSITIVE));
        }),
        Box::new(|r| {
            r.set("i", Value::I64(i64::MIN));
            r.set("f", Value::F64(f64::MIN));
            r.set("of", Value::F64(-1e-300));
        }),
        Box::new(|r| {
            r.set("f", Value::F64(f64::INFINITY));
            r.set("of", Value::F64(f64::NEG_INFINITY));
        }),
        Box::new(|r| {
            r.set("f", Value::F64(0.1 + 0.2));
            r.set("of", Value::F64(5e-324));
        }),
        Box::new(|r| r.set("s", Value::from("x".repeat(1 << 20)))),
        Box::new(|r| {
            r.set("s", Value::from("\u{0}nul\u{0}inside\u{0}"));
            r.set("os", Value::from("\u{10FFFF}\u{FEFF}\u{202E}"));
        }),
        Box::new(|r| {
            r.set(
                "ts",
                Value::Timestamp(Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap()),
            );
            let late = DateTime::parse_from_rfc3339("2199-12-31T23:59:59.999999-08:00").unwrap();
            r.set("ots", Value::timestamp(late));
            r.set("ou", Value::Uuid(Uuid::nil()));
        }),
        Box::new(|r| {
            r.set("j", Value::Json(json!([])));
            r.set(
                "oj",
                Value::Json(json!({"deep": {"er": [[], {}, "", 1e300, -0.5]}})),
            );
            r.set("ob", Value::Null);
            r.set("oi", Value::Null);
            r.set("os", Value::Null);
            r.set("oby", Value::Null);
            r.set("ots", Value::Null);
        }),
        Box::new(|r| r.set("j", Value::Json(json!("just a string")))),
    ];
    let mut keys = Vec::new();
    for (n, change) in cases.iter().enumerate() {
        let id = Uuid::from_u128(n as u128 + 1);
        keys.push(Key::Uuid(id));
        let r = every(id, change);
        let a = redis.write(&e, vec![put(r.clone())], true).await.unwrap();
        let b = memory.write(&e, vec![put(r)], true).await.unwrap();
        assert_eq!(a, b, "case {n}");
        let from_redis = redis.get(&e, &Key::Uuid(id)).await.unwrap();
        let from_memory = memory.get(&e, &Key::Uuid(id)).await.unwrap();
        assert!(from_redis.is_some(), "case {n}");
        assert_eq!(from_redis, from_memory, "case {n}");
    }
    keys.insert(2, Key::Uuid(Uuid::max()));
    keys.push(keys[0].clone());
    let many = redis.get_many(&e, &keys).await.unwrap();
    assert_eq!(many, memory.get_many(&e, &keys).await.unwrap());
    assert!(many[2].is_none());
    assert_eq!(many.last().unwrap().as_ref().unwrap().key, keys[0]);
    assert_eq!(redis.get(&e, &Key::Uuid(Uuid::max())).await.unwrap(), None);
    assert!(redis.get_many(&e, &[]).await.unwrap().is_empty());

    // The stored form: a hash with the version and compact JSON.
    let rkey = codec::record_key(redis.key_prefix(), "every", &keys[0], codec::Tag::None);
    let (v, d): (u64, String) = redis::cmd("HMGET")
        .arg(&rkey)
        .arg("v")
        .arg("d")
        .query_async(&mut raw().await)
        .await
        .unwrap();
    assert_eq!(v, 1);
    assert!(
        d.starts_with(
            "{\"id\":\"00000000-0000-0000-0000-000000000001\",\"b\":true,\"i\":-42,\"f\":\"3.25\""
        ),
        "{d}"
    );
    assert!(!d.contains("\"of\""), "nulls are left out: {d}");
}

#[tokio::test]
async fn versions_preconditions_and_conflicts_that_write_nothing() {
    let (s, _guard) = store("pre").await;
    let e = entity(&ITEM);
    let one = |name: &str| item(1, name);
    let out = s
        .write(&e, vec![put_if(one("first"), Precondition::Absent)], true)
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::Written { version: 1 }]);

    let conflict = |r: Result<Vec<WriteOutcome>>| match r {
        Err(Error::Conflict {
            actual,
            expected,
            key,
            store,
            entity,
            ..
        }) => {
            assert_eq!((store.as_str(), entity.as_str()), ("cache", "item"));
            (expected, actual, key)
        }
        other => panic!("expected a conflict, got {other:?}"),
    };
    let (exp, act, key) = conflict(
        s.write(&e, vec![put_if(one("second"), Precondition::Absent)], true)
            .await,
    );
    assert_eq!(
        (exp, act, key.as_str()),
        (Precondition::Absent, Some(1), "1")
    );
    let (_, act, _) = conflict(
        s.write(
            &e,
            vec![put_if(item(2, "ghost"), Precondition::Exists)],
            true,
        )
        .await,
    );
    assert_eq!(act, None);
    assert_eq!(
        s.get(&e, &Key::Int(2)).await.unwrap(),
        None,
        "a failed if-exists wrote nothing"
    );
    let (exp, act, _) = conflict(
        s.write(
            &e,
            vec![put_if(one("second"), Precondition::Version(7))],
            true,
        )
        .await,
    );
    assert_eq!((exp, act), (Precondition::Version(7), Some(1)));
    let still = s.get(&e, &Key::Int(1)).await.unwrap().unwrap();
    assert_eq!(
        (still.get("name"), still.version),
        (Some(&Value::from("first")), 1)
    );

    let v = |r: Result<Vec<WriteOutcome>>| r.unwrap()[0].version();
    assert_eq!(
        v(s.write(
            &e,
            vec![put_if(one("second"), Precondition::Version(1))],
            true
        )
        .await),
        Some(2)
    );
    assert_eq!(
        v(
            s.write(&e, vec![put_if(one("third"), Precondition::Exists)], true)
                .await
        ),
        Some(3)
    );
    assert_eq!(
        v(s.write(&e, vec![put(one("fourth"))], true).await),
        Some(4)
    );
    let (_, act, _) = conflict(
        s.write(&e, vec![delete(1i64, Precondition::Version(2))], true)
            .await,
    );
    assert_eq!(act, Some(4));
    let (_, act, _) = conflict(
        s.write(&e, vec![delete(99i64, Precondition::Exists)], true)
            .await,
    );
    assert_eq!(act, None);
    let out = s
        .write(&e, vec![delete(1i64, Precondition::Version(4))], true)
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::Deleted { existed: true }]);
    let out = s
        .write(&e, vec![delete(1i64, Precondition::None)], true)
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::Deleted { existed: false }]);
    assert_eq!(
        v(s.write(&e, vec![put(one("again"))], true).await),
        Some(6),
        "re-created: continues after the tombstone (the delete was version 5)"
    );

    // Wrong key kinds and bad records are invalid input.
    let err = s.get(&e, &Key::from("1")).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    let mut bad = item(5, "x");
    bad.set("name", Value::I64(3));
    let err = s
        .write(&e, vec![put(item(4, "ok")), put(bad)], true)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert_eq!(s.get(&e, &Key::Int(4)).await.unwrap(), None);
    assert!(s.write(&e, vec![], true).await.unwrap().is_empty());
}

#[tokio::test]
async fn batches_are_all_or_nothing_against_their_own_evolving_state() {
    let (s, _guard) = store("batch").await;
    let e = entity(&ITEM);
    s.write(&e, vec![put(item(3, "existing"))], true)
        .await
        .unwrap();
    let err = s
        .write(
            &e,
            vec![
                put(item(1, "one")),
                put(item(2, "two")),
                delete(3i64, Precondition::None),
                // Sees the delete above: 3 is absent now.
                put_if(item(3, "clash"), Precondition::Version(1)),
            ],
            true,
        )
        .await
        .unwrap_err();
    match err {
        Error::Conflict {
            key,
            actual: None,
            expected: Precondition::Version(1),
            ..
        } => assert_eq!(key, "3"),
        other => panic!("expected a conflict on key 3, got {other:?}"),
    }
    assert_eq!(
        s.get(&e, &Key::Int(1)).await.unwrap(),
        None,
        "first write rolled back"
    );
    assert_eq!(
        s.get(&e, &Key::Int(2)).await.unwrap(),
        None,
        "second write rolled back"
    );
    let three = s
        .get(&e, &Key::Int(3))
        .await
        .unwrap()
        .expect("the delete was not applied");
    assert_eq!(
        (three.get("name"), three.version),
        (Some(&Value::from("existing")), 1)
    );

    let out = s
        .write(
            &e,
            vec![
                put(item(5, "a")),
                put_if(item(5, "b"), Precondition::Version(1)),
                put_if(item(3, "updated"), Precondition::Version(1)),
                delete(5i64, Precondition::Version(2)),
                put_if(item(5, "c"), Precondition::Absent),
                delete(6i64, Precondition::None),
            ],
            true,
        )
        .await
        .unwrap();
    assert_eq!(
        out,
        vec![
            WriteOutcome::Written { version: 1 },
            WriteOutcome::Written { version: 2 },
            WriteOutcome::Written { version: 2 },
            WriteOutcome::Deleted { existed: true },
            WriteOutcome::Written { version: 4 },
            WriteOutcome::Deleted { existed: false },
        ]
    );
    let five = s.get(&e, &Key::Int(5)).await.unwrap().unwrap();
    assert_eq!(
        (five.get("name"), five.version),
        (Some(&Value::from("c")), 4)
    );

    // Another program's key of another type: the script fails in its check
    // phase, before anything is written.
    let rkey = codec::record_key(s.key_prefix(), "item", &Key::Int(9), codec::Tag::None);
    let _: () = redis::cmd("SET")
        .arg(&rkey)
        .arg("not a hash")
        .query_async(&mut raw().await)
        .await
        .unwrap();
    let err = s
        .write(&e, vec![put(item(8, "eight")), put(item(9, "nine"))], true)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err}");
    assert!(err.to_string().contains("WRONGTYPE"), "{err}");
    assert_eq!(s.get(&e, &Key::Int(8)).await.unwrap(), None);
    let err = s.get(&e, &Key::Int(9)).await.unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err}");
}

#[tokio::test]
async fn ten_thousand_puts_are_one_atomic_script_call() {
    let (s, _guard) = store("bulk").await;
    let e = entity(&ITEM);
    let ops: Vec<WriteOp> = (0..10_000)
        .map(|i| put(item(i, &format!("name {i}"))))
        .collect();
    let out = s.write(&e, ops, true).await.unwrap();
    assert_eq!(out.len(), 10_000);
    assert!(
        out.iter()
            .all(|o| *o == WriteOutcome::Written { version: 1 })
    );
    let keys: Vec<Key> = (0..10_000).map(Key::Int).collect();
    let got = s.get_many(&e, &keys).await.unwrap();
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, r)| r.as_ref().map(|r| r.key.clone()) == Some(Key::Int(i as i64)))
    );

    // 10 000 more with a conflict in the very last: none is written.
    let mut ops: Vec<WriteOp> = (10_000..20_000).map(|i| put(item(i, "x"))).collect();
    ops.push(put_if(item(0, "clash"), Precondition::Absent));
    let err = s.write(&e, ops, true).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                actual: Some(1),
                ..
            }
        ),
        "{err}"
    );
    let keys: Vec<Key> = (10_000..20_000).map(Key::Int).collect();
    assert!(
        s.get_many(&e, &keys)
            .await
            .unwrap()
            .iter()
            .all(Option::is_none)
    );

    // Non-atomic: chunks of 1000 writes, each all or nothing, in order.
    let ops: Vec<WriteOp> = (20_000..22_500).map(|i| put(item(i, "y"))).collect();
    let out = s.write(&e, ops, false).await.unwrap();
    assert_eq!(out.len(), 2500);
    assert!(
        out.iter()
            .all(|o| *o == WriteOutcome::Written { version: 1 })
    );
    let mut ops: Vec<WriteOp> = (30_000..32_500).map(|i| put(item(i, "z"))).collect();
    ops[2100] = put_if(item(0, "clash"), Precondition::Absent);
    let err = s.write(&e, ops, false).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                actual: Some(1),
                ..
            }
        ),
        "{err}"
    );
    let keys: Vec<Key> = (30_000..32_500).map(Key::Int).collect();
    let got = s.get_many(&e, &keys).await.unwrap();
    assert!(
        got[..2000].iter().all(Option::is_some),
        "the chunks before the conflict"
    );
    assert!(
        got[2000..].iter().all(Option::is_none),
        "the conflicting chunk and after"
    );
}

#[tokio::test]
async fn records_expire_natively() {
    let (s, _guard) = store("ttl").await;
    let e = entity(&NOTE);
    let mut conn = raw().await;
    s.write(
        &e,
        vec![
            put_ttl(note("short", "gone soon"), Duration::from_millis(300)),
            put(note("forever", "stays")),
        ],
        true,
    )
    .await
    .unwrap();
    let pttl: i64 = redis::cmd("PTTL")
        .arg(codec::record_key(
            s.key_prefix(),
            "note",
            &Key::from("short"),
            codec::Tag::None,
        ))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(pttl > 0 && pttl <= 300, "{pttl}");
    assert!(s.get(&e, &Key::from("short")).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(s.get(&e, &Key::from("short")).await.unwrap(), None);
    let both = s
        .get_many(&e, &[Key::from("short"), Key::from("forever")])
        .await
        .unwrap();
    assert!(both[0].is_none() && both[1].is_some());
    // Expired is absent: for preconditions, deletes and versions.
    let out = s
        .write(
            &e,
            vec![put_if(note("short", "again"), Precondition::Absent)],
            true,
        )
        .await
        .unwrap();
    assert_eq!(out[0].version(), Some(1));

    // A put without a TTL over a record with one makes it permanent.
    s.write(
        &e,
        vec![put_ttl(note("t", "1"), Duration::from_secs(60))],
        true,
    )
    .await
    .unwrap();
    s.write(&e, vec![put(note("t", "2"))], true).await.unwrap();
    let pttl: i64 = redis::cmd("PTTL")
        .arg(codec::record_key(
            s.key_prefix(),
            "note",
            &Key::from("t"),
            codec::Tag::None,
        ))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(pttl, -1);
    // A sub-millisecond TTL is rounded up; one longer than the longest
    // polyrouter keeps is refused, with nothing written.
    assert_eq!(ttl_ms(Duration::from_micros(1)), 1);
    assert_eq!(ttl_ms(Duration::from_secs(u64::MAX)) as u128, MAX_TTL_MS);
    let err = s
        .write(
            &e,
            vec![put_ttl(note("huge", "x"), Duration::from_secs(u64::MAX))],
            true,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert!(s.get(&e, &Key::from("huge")).await.unwrap().is_none());
    s.write(
        &e,
        vec![put_ttl(note("huge", "x"), crate::Capabilities::MAX_TTL)],
        true,
    )
    .await
    .unwrap();
    assert!(s.get(&e, &Key::from("huge")).await.unwrap().is_some());
    s.write(
        &e,
        vec![put_ttl(note("tiny", "x"), Duration::from_micros(1))],
        true,
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let out = s
        .write(&e, vec![delete("tiny", Precondition::None)], true)
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::Deleted { existed: false }]);
}

#[tokio::test]
async fn the_session_store_expires_sessions() {
    let prefix = unique_prefix("unit", "sessions");
    let _guard = Cleanup(prefix.clone());
    let config = format!(
        "[stores.cache]\nkind = \"redis\"\nurl = \"{URL}\"\nkey_prefix = \"{prefix}\"\n\n[entities.session]\nstore = \"cache\"\nttl = \"700ms\"\n"
    );
    let router = Router::from_toml_str(&config).await.unwrap();
    let sessions = router.repo::<Session>().await.unwrap();
    let s1 = Session {
        id: "s1".into(),
        user: "u1".into(),
    };
    assert_eq!(sessions.put(&s1).await.unwrap(), 1);
    sessions
        .put(&Session {
            id: "s2".into(),
            user: "u2".into(),
        })
        .await
        .unwrap();
    assert_eq!(sessions.get("s1").await.unwrap(), Some(s1.clone()));
    // The session is stored under {prefix}:session:s1 with the entity's TTL.
    let pttl: i64 = redis::cmd("PTTL")
        .arg(format!("{prefix}:session:s1"))
        .query_async(&mut raw().await)
        .await
        .unwrap();
    assert!(pttl > 0 && pttl <= 700, "{pttl}");
    // Touching a session keeps it alive (KvStore::expire).
    let store = router.store("cache").unwrap();
    let kv = store.as_kv().expect("redis is a key-value store");
    let info = EntityInfo {
        table: "session".into(),
        ..entity(&SESSION)
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        kv.expire(&info, &Key::from("s2"), Duration::from_secs(5))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        sessions.get("s1").await.unwrap(),
        None,
        "the session expired"
    );
    assert!(
        sessions.get("s2").await.unwrap().is_some(),
        "the touched session lives on"
    );
    assert!(!sessions.delete("s1").await.unwrap());
    // No queries or counts on Redis: the router says so.
    let err = sessions.count(None).await.unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { capability, .. } if capability == "count"),
        "{err}"
    );
    let err = sessions.query(crate::Query::new()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { capability, .. } if capability == "query"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_counters_locks_and_record_expiry() {
    let (s, _guard) = store("kv").await;
    let s = Arc::new(s);
    let e = entity(&NOTE);
    let hits = Key::from("hits");
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (s, e, k) = (s.clone(), e.clone(), hits.clone());
            tokio::spawn(async move { s.increment(&e, &k, 1, None).await })
        })
        .collect();
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap().unwrap());
    }
    seen.sort();
    assert_eq!(
        seen,
        (1..=100).collect::<Vec<i64>>(),
        "every increment saw its own value"
    );
    assert_eq!(s.get_bytes(&e, &hits).await.unwrap(), Some(b"100".to_vec()));
    assert_eq!(s.increment(&e, &hits, -150, None).await.unwrap(), -50);

    // A TTL applies when the counter is created; later calls keep it.
    let window = Key::from("window");
    assert_eq!(
        s.increment(&e, &window, 5, Some(Duration::from_millis(300)))
            .await
            .unwrap(),
        5
    );
    assert_eq!(
        s.increment(&e, &window, 1, Some(Duration::from_secs(60)))
            .await
            .unwrap(),
        6
    );
    let pttl: i64 = redis::cmd("PTTL")
        .arg(codec::value_key(
            s.key_prefix(),
            "note",
            &window,
            codec::Tag::None,
        ))
        .query_async(&mut raw().await)
        .await
        .unwrap();
    assert!(pttl > 0 && pttl <= 300, "{pttl}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(s.get_bytes(&e, &window).await.unwrap(), None);
    assert_eq!(
        s.increment(&e, &window, 1, Some(Duration::from_secs(60)))
            .await
            .unwrap(),
        1
    );

    // Not a counter, or an overflow: invalid input, nothing changed.
    assert!(
        s.set_if_absent(&e, &Key::from("text"), b"abc", Duration::from_secs(60))
            .await
            .unwrap()
    );
    let err = s
        .increment(&e, &Key::from("text"), 1, None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    s.increment(&e, &Key::from("big"), i64::MAX, None)
        .await
        .unwrap();
    let err = s
        .increment(&e, &Key::from("big"), 1, Some(Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert_eq!(
        s.get_bytes(&e, &Key::from("big")).await.unwrap(),
        Some(i64::MAX.to_string().into_bytes())
    );

    // Locks.
    let lock = Key::from("lock");
    let ttl = Duration::from_millis(300);
    assert!(
        s.set_if_absent(&e, &lock, b"owner-1\0\xff", ttl)
            .await
            .unwrap()
    );
    assert!(!s.set_if_absent(&e, &lock, b"owner-2", ttl).await.unwrap());
    assert_eq!(
        s.get_bytes(&e, &lock).await.unwrap(),
        Some(b"owner-1\0\xff".to_vec())
    );
    assert!(
        !s.delete_bytes(&e, &lock, Some(b"owner-2".as_slice()))
            .await
            .unwrap()
    );
    assert!(
        s.delete_bytes(&e, &lock, Some(b"owner-1\0\xff".as_slice()))
            .await
            .unwrap()
    );
    assert!(s.set_if_absent(&e, &lock, b"owner-2", ttl).await.unwrap());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        s.set_if_absent(&e, &lock, b"owner-3", ttl).await.unwrap(),
        "an expired lock is free"
    );
    assert!(s.delete_bytes(&e, &lock, None).await.unwrap());
    assert!(!s.delete_bytes(&e, &lock, None).await.unwrap());
    let err = s
        .set_if_absent(&e, &lock, b"x", Duration::ZERO)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");

    // Raw values and records are apart: a counter keyed like a record
    // leaves the record alone.
    s.write(&e, vec![put(note("r1", "record"))], true)
        .await
        .unwrap();
    assert_eq!(s.increment(&e, &Key::from("r1"), 3, None).await.unwrap(), 3);
    assert_eq!(
        s.get(&e, &Key::from("r1"))
            .await
            .unwrap()
            .unwrap()
            .get("body"),
        Some(&Value::from("record"))
    );
    assert_eq!(s.get(&e, &hits).await.unwrap(), None);

    // Record expiry.
    assert!(
        !s.expire(&e, &Key::from("nope"), Duration::from_secs(1))
            .await
            .unwrap()
    );
    assert!(!s.persist(&e, &Key::from("nope")).await.unwrap());
    assert!(
        s.persist(&e, &Key::from("r1")).await.unwrap(),
        "exists, had no TTL"
    );
    assert!(
        s.expire(&e, &Key::from("r1"), Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert!(s.persist(&e, &Key::from("r1")).await.unwrap());
    assert!(
        s.expire(&e, &Key::from("r1"), Duration::from_millis(200))
            .await
            .unwrap()
    );
    let r1 = s.get(&e, &Key::from("r1")).await.unwrap().unwrap();
    assert_eq!(r1.version, 1, "expire does not rewrite the record");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.get(&e, &Key::from("r1")).await.unwrap(), None);
    let err = s
        .expire(&e, &Key::Int(1), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
}

#[tokio::test]
async fn kv_semantics_match_the_memory_store() {
    let (redis, _guard) = store("kvmem").await;
    let memory = MemoryStore::new("cache");
    let e = entity(&ITEM);
    let k = Key::Int(1);
    for kv in [redis.as_kv().unwrap(), memory.as_kv().unwrap()] {
        assert_eq!(kv.get_bytes(&e, &k).await.unwrap(), None);
        assert_eq!(kv.increment(&e, &k, 2, None).await.unwrap(), 2);
        assert_eq!(kv.increment(&e, &k, 0, None).await.unwrap(), 2);
        assert!(
            !kv.set_if_absent(&e, &k, b"x", Duration::from_secs(1))
                .await
                .unwrap()
        );
        assert!(
            !kv.delete_bytes(&e, &k, Some(b"3".as_slice()))
                .await
                .unwrap()
        );
        assert!(
            kv.delete_bytes(&e, &k, Some(b"2".as_slice()))
                .await
                .unwrap()
        );
        assert!(!kv.expire(&e, &k, Duration::from_secs(1)).await.unwrap());
        let err = kv.get_bytes(&e, &Key::from("1")).await.unwrap_err();
        assert!(err.to_string().contains("store `cache`"), "{err}");
    }
}

const EVIL: &[&str] = &[
    "'; DROP TABLE note; --",
    "\"; DROP TABLE \"note\"; --",
    "' OR '1'='1",
    "back\\slash\\",
    "nul\u{0}byte",
    "]]; redis.call('FLUSHALL') --[[",
    "*",
    "?[a-z]*",
    "\r\nFLUSHALL\r\n",
    "$-1\r\n",
    "%_%",
    "\u{202E}rtl\u{FEFF}",
    "🎉 emoji",
    "",
    " trailing space ",
    "a:b:c",
    "#kv:x",
];

#[tokio::test]
async fn injection_strings_are_data() {
    let (s, _guard) = store("evil").await;
    let e = entity(&NOTE);
    s.write(&e, vec![put(note("canary", "still here"))], true)
        .await
        .unwrap();
    for (i, evil) in EVIL.iter().enumerate() {
        let key = format!("{evil}{i}");
        let out = s
            .write(
                &e,
                vec![put_if(note(&key, evil), Precondition::Absent)],
                true,
            )
            .await
            .unwrap();
        assert_eq!(out[0].version(), Some(1), "{evil:?}");
        let got = s
            .get(&e, &Key::from(key.as_str()))
            .await
            .unwrap()
            .expect("round trip");
        assert_eq!(got.get("body"), Some(&Value::from(*evil)));
        assert_eq!(got.get("id"), Some(&Value::from(key.as_str())));
        assert_eq!(
            s.increment(&e, &Key::from(key.as_str()), 1, None)
                .await
                .unwrap(),
            1
        );
        assert!(
            s.set_if_absent(
                &e,
                &Key::from(*evil),
                evil.as_bytes(),
                Duration::from_secs(60)
            )
            .await
            .unwrap()
        );
        assert_eq!(
            s.get_bytes(&e, &Key::from(*evil)).await.unwrap(),
            Some(evil.as_bytes().to_vec())
        );
    }
    assert_eq!(s.get(&e, &Key::from(EVIL[0])).await.unwrap(), None);
    assert_eq!(
        s.get(&e, &Key::from("canary"))
            .await
            .unwrap()
            .unwrap()
            .get("body"),
        Some(&Value::from("still here"))
    );
    let keys: Vec<Key> = EVIL
        .iter()
        .enumerate()
        .map(|(i, evil)| Key::from(format!("{evil}{i}")))
        .collect();
    assert!(
        s.get_many(&e, &keys)
            .await
            .unwrap()
            .iter()
            .all(Option::is_some)
    );
    // Redis still holds the canary: nothing was flushed.
    let n: i64 = redis::cmd("EXISTS")
        .arg(codec::record_key(
            s.key_prefix(),
            "note",
            &Key::from("canary"),
            codec::Tag::None,
        ))
        .query_async(&mut raw().await)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn table_names_with_a_colon_are_refused() {
    let (s, _guard) = store("table").await;
    let e = EntityInfo {
        table: "a:b".into(),
        ..entity(&NOTE)
    };
    let err = s.ensure_entity(&e).await.unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
    assert!(err.to_string().contains("entities.note"), "{err}");
    let err = s.get(&e, &Key::from("x")).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    let err = s.increment(&e, &Key::from("x"), 1, None).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    s.ensure_entity(&entity(&NOTE)).await.unwrap();
}

#[tokio::test]
async fn unreachable_at_start_up_is_unavailable_with_the_password_redacted() {
    let err = RedisStore::connect(
        "cache",
        RedisConfig::new("redis://app:s3cret@127.0.0.1:1/0"),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Unavailable { .. }), "{text}");
    assert!(err.is_transient());
    assert!(
        text.contains("store `cache`") && text.contains("redis://app:***@127.0.0.1:1/0"),
        "{text}"
    );
    assert!(
        !text.contains("s3cret") && !format!("{err:?}").contains("s3cret"),
        "{text}"
    );

    // Through the router: the same, naming the store.
    let config = "[stores.sessions]\nkind = \"redis\"\nurl = \"redis://:s3cret@127.0.0.1:1\"\nconnect_timeout = \"500ms\"\n";
    let err = Router::from_toml_str(config).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Unavailable { .. }), "{text}");
    assert!(
        text.contains("store `sessions`") && text.contains("127.0.0.1:1"),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "{text}");

    // Bad options are configuration errors at their key.
    let err = Router::from_toml_str("[stores.c]\nkind = \"redis\"\nurl = \"http://:s3cret@h\"\n")
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Config { .. }) && err.to_string().contains("stores.c.url"),
        "{err}"
    );
    assert!(!err.to_string().contains("s3cret"), "{err}");
    let err = Router::from_toml_str(
        "[stores.c]\nkind = \"redis\"\nurl = \"redis://h\"\nprefix = \"x\"\n",
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("stores.c.prefix"), "{err}");
}

/// The id of the store's current connection, as the server knows it.
async fn client_id(s: &RedisStore) -> i64 {
    redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut s.conn())
        .await
        .unwrap()
}

/// Kills one client connection from a second connection.
async fn kill(id: i64) {
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .arg("TYPE")
        .arg("normal")
        .query_async(&mut raw().await)
        .await
        .unwrap();
    assert_eq!(killed, 1);
}

#[tokio::test]
async fn a_killed_connection_is_re_established_without_a_restart() {
    let (s, _guard) = store("kill").await;
    let e = entity(&ITEM);
    s.write(&e, vec![put(item(1, "before"))], true)
        .await
        .unwrap();
    s.ping().await.unwrap();

    // Killed between calls: the next call may fail (transient), the one
    // after it succeeds on a new connection.
    let before = client_id(&s).await;
    kill(before).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    match s.get(&e, &Key::Int(1)).await {
        Ok(r) => assert!(r.is_some()),
        Err(err) => assert!(
            err.is_transient(),
            "a lost connection is Unavailable: {err}"
        ),
    }
    let r = s
        .get(&e, &Key::Int(1))
        .await
        .expect("the next call succeeds");
    assert_eq!(r.unwrap().get("name"), Some(&Value::from("before")));
    assert_ne!(client_id(&s).await, before, "a new connection");

    // Killed while a big batch is in flight: the batch is written whole or
    // not at all, and the store keeps working.
    for round in 0..3i64 {
        let id = client_id(&s).await;
        let base = 100_000 * (round + 1);
        let ops: Vec<WriteOp> = (base..base + 5000)
            .map(|i| put(item(i, &"x".repeat(100))))
            .collect();
        let (written, ()) = tokio::join!(s.write(&e, ops, true), async {
            tokio::time::sleep(Duration::from_millis(round as u64 * 3)).await;
            kill(id).await;
        });
        if let Err(err) = &written {
            assert!(err.is_transient(), "{err}");
        }
        let keys: Vec<Key> = (base..base + 5000).map(Key::Int).collect();
        let got = loop {
            match s.get_many(&e, &keys).await {
                Ok(got) => break got,
                Err(err) => {
                    assert!(err.is_transient(), "{err}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        let present = got.iter().filter(|r| r.is_some()).count();
        assert!(
            present == 0 || present == 5000,
            "round {round}: a partial batch of {present}"
        );
        if written.is_ok() {
            assert_eq!(present, 5000, "round {round}");
        }
        s.write(&e, vec![put(item(base, "after"))], true)
            .await
            .expect("works after the kill");
    }
}

#[path = "sync_tests.rs"]
mod sync_tests;
