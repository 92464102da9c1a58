//! Tests against real SQLite database files.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::DateTime;
use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::Value;
use crate::backends::sql::Dialect;
use crate::backends::sql::reference::{self, EVERY, EVERY_FIELDS, NOTE, info};
use crate::config::ConfigDuration;
use crate::entity::Schema;
use crate::query::field;
use crate::store::Precondition;

fn url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}/nested/dir/t.db", dir.path().display())
}

async fn open_at(url: &str) -> SqliteStore {
    SqliteStore::connect("db", SqliteConfig::new(url))
        .await
        .expect("open")
}

async fn ready(store: &SqliteStore, schema: &'static Schema, table: &str) -> EntityInfo {
    let e = info(schema, table);
    store.ensure_entity(&e).await.expect("ensure_entity");
    e
}

fn put(record: Record, precondition: Precondition) -> WriteOp {
    WriteOp::Put {
        record,
        precondition,
        ttl: None,
    }
}

fn del(key: impl Into<Key>, precondition: Precondition) -> WriteOp {
    WriteOp::Delete {
        key: key.into(),
        precondition,
    }
}

fn note(id: &str, body: &str) -> Record {
    let mut r = Record::new(Key::from(id));
    r.set("id", Value::from(id));
    r.set("body", Value::from(body));
    r.set("group", Value::Null);
    r.set("a\"b", Value::Null);
    r.set("'; DROP TABLE x; --", Value::Null);
    r
}

async fn body(store: &SqliteStore, e: &EntityInfo, id: &str) -> Option<(String, u64)> {
    store.get(e, &Key::from(id)).await.unwrap().map(|r| {
        (
            r.get("body").unwrap().as_str().unwrap().to_string(),
            r.version,
        )
    })
}

async fn raw_count(store: &SqliteStore, table: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM {}", SqliteDialect.quote(table));
    sqlx::query_scalar(&sql)
        .fetch_one(&store.inner.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn creates_the_table_and_directories_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_at(&url(&dir)).await;
    assert!(dir.path().join("nested/dir/t.db").exists());
    assert_eq!(store.kind(), "sqlite");
    assert!(store.location().ends_with("/nested/dir/t.db"));
    assert!(store.capabilities().shared && store.capabilities().ttl);
    assert_eq!(store.capabilities().max_record_bytes, Some(1_000_000_000));
    store.ping().await.unwrap();
    let e = ready(&store, &reference::ROW, "rows").await;
    store.ensure_entity(&e).await.unwrap();
    let cols: Vec<(String, String, i64, i64)> =
        sqlx::query_as("SELECT name, type, \"notnull\", pk FROM pragma_table_info('rows')")
            .fetch_all(&store.inner.pool)
            .await
            .unwrap();
    let want = [
        ("id", "INTEGER", 1, 1),
        ("b", "INTEGER", 0, 0),
        ("i", "INTEGER", 0, 0),
        ("f", "REAL", 0, 0),
        ("s", "TEXT", 0, 0),
        ("by", "BLOB", 0, 0),
        ("ts", "INTEGER", 0, 0),
        ("u", "TEXT", 0, 0),
        ("j", "TEXT", 0, 0),
        ("_pr_version", "INTEGER", 1, 0),
        ("_pr_expires_at", "INTEGER", 0, 0),
    ];
    let got: Vec<(&str, &str, i64, i64)> = cols
        .iter()
        .map(|(a, b, c, d)| (a.as_str(), b.as_str(), *c, *d))
        .collect();
    assert_eq!(got, want);
    let idx: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pragma_index_list('rows') WHERE name = 'rows_pr_expires_at'",
    )
    .fetch_one(&store.inner.pool)
    .await
    .unwrap();
    assert_eq!(idx, 1);
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&store.inner.pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&store.inner.pool)
        .await
        .unwrap();
    assert_eq!(sync, 2, "synchronous = FULL");
    // A second store on the same file sees the same table.
    let other = open_at(&url(&dir)).await;
    other.ensure_entity(&e).await.unwrap();
}

#[tokio::test]
async fn incompatible_tables_are_config_errors_naming_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_at(&url(&dir)).await;
    sqlx::query(
        "CREATE TABLE \"notes\" (\"id\" TEXT PRIMARY KEY, \"body\" INTEGER NOT NULL, \"group\" INTEGER, \"a\"\"b\" TEXT, \
         \"'; DROP TABLE x; --\" TEXT, \"_pr_version\" INTEGER NOT NULL, \"_pr_expires_at\" INTEGER)",
    )
    .execute(&store.inner.pool)
    .await
    .unwrap();
    let e = store
        .ensure_entity(&info(&NOTE, "notes"))
        .await
        .unwrap_err();
    match &e {
        Error::Config { path, message, .. } => {
            assert_eq!(path, "entities.note");
            for needle in ["store `db`", "table `notes`", "column `body`", "INTEGER"] {
                assert!(message.contains(needle), "{needle}: {message}");
            }
        }
        other => panic!("expected a config error, got {other:?}"),
    }
    // Missing column.
    sqlx::query("CREATE TABLE \"notes2\" (\"id\" TEXT PRIMARY KEY, \"_pr_version\" INTEGER NOT NULL, \"_pr_expires_at\" INTEGER)")
        .execute(&store.inner.pool)
        .await
        .unwrap();
    let e = store
        .ensure_entity(&info(&NOTE, "notes2"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("column `body`")
            && e.contains("ALTER TABLE \"notes2\" ADD COLUMN \"body\" TEXT"),
        "{e}"
    );
    // Different primary key.
    sqlx::query(
        "CREATE TABLE \"notes3\" (\"id\" TEXT, \"body\" TEXT PRIMARY KEY, \"group\" INTEGER, \"a\"\"b\" TEXT, \
         \"'; DROP TABLE x; --\" TEXT, \"_pr_version\" INTEGER NOT NULL, \"_pr_expires_at\" INTEGER)",
    )
    .execute(&store.inner.pool)
    .await
    .unwrap();
    let e = store
        .ensure_entity(&info(&NOTE, "notes3"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("primary key is (body)"), "{e}");
    // NUL in a table name.
    let e = store
        .ensure_entity(&info(&NOTE, "bad\0name"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Config { message, .. } if message.contains("NUL")),
        "{e}"
    );
}

fn every(id: Uuid) -> Record {
    let mut r = Record::new(Key::Uuid(id));
    let t = DateTime::from_timestamp_micros(1_709_251_198_123_456).unwrap();
    let vals: [(&'static str, Value); 16] = [
        ("id", Value::Uuid(id)),
        ("b", Value::Bool(true)),
        ("i", Value::I64(i64::MIN)),
        ("f", Value::F64(f64::MAX)),
        ("s", Value::from("héllo\0wörld ✓ 日本語 🎉 '\"\\")),
        ("by", Value::Bytes((0..=255u8).collect())),
        ("ts", Value::Timestamp(t)),
        (
            "u",
            Value::Uuid(Uuid::from_u128(0xFFFF_0000_0000_0000_0000_0000_0000_ABCD)),
        ),
        (
            "j",
            Value::Json(json!({"a": [1, 2.5, null, "x"], "b": {"c": true}, "q": "'\""})),
        ),
        ("ob", Value::Bool(false)),
        ("oi", Value::I64(i64::MAX)),
        ("of", Value::F64(f64::NEG_INFINITY)),
        ("os", Value::from("")),
        ("oby", Value::Bytes(vec![])),
        (
            "ots",
            Value::Timestamp(DateTime::from_timestamp_micros(-2_208_988_800_000_000).unwrap()),
        ),
        ("oj", Value::Json(serde_json::Value::Null)),
    ];
    for (k, v) in vals {
        r.set(k, v);
    }
    r
}

#[tokio::test]
async fn every_value_kind_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_at(&url(&dir)).await;
    let e = ready(&store, &EVERY, "every").await;
    let id = Uuid::new_v4();
    let mut r = every(id);
    let out = store
        .write(&e, vec![put(r.clone(), Precondition::None)], false)
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::Written { version: 1 }]);
    r.version = 1;
    assert_eq!(
        store.get(&e, &Key::Uuid(id)).await.unwrap(),
        Some(r.clone())
    );

    // Nulls, other extremes; fields come back in schema order.
    let id2 = Uuid::new_v4();
    let mut r2 = every(id2);
    for f in ["ob", "oi", "of", "os", "oby", "ots", "oj"] {
        r2.set(f, Value::Null);
    }
    r2.set("f", Value::F64(f64::INFINITY));
    r2.set("i", Value::I64(0));
    r2.set("s", Value::from(""));
    r2.set("by", Value::Bytes(vec![0]));
    r2.set("j", Value::Json(json!([])));
    r2.set(
        "ts",
        Value::Timestamp(DateTime::from_timestamp_micros(0).unwrap()),
    );
    r2.fields.reverse();
    store
        .write(&e, vec![put(r2.clone(), Precondition::None)], false)
        .await
        .unwrap();
    let got = store.get(&e, &Key::Uuid(id2)).await.unwrap().unwrap();
    let names: Vec<&str> = got.fields.iter().map(|(n, _)| n.as_ref()).collect();
    let schema_names: Vec<&str> = EVERY_FIELDS.iter().map(|f| f.name).collect();
    assert_eq!(names, schema_names);
    for (n, v) in &r2.fields {
        assert_eq!(got.get(n), Some(v), "{n}");
    }
    // Stored representation: uuid text lowercase, timestamp micros, json text.
    let (u, ts, oj): (String, i64, Option<String>) =
        sqlx::query_as("SELECT \"u\", \"ts\", \"oj\" FROM \"every\" WHERE \"id\" = ?")
            .bind(id.to_string())
            .fetch_one(&store.inner.pool)
            .await
            .unwrap();
    assert_eq!(u, "ffff0000-0000-0000-0000-00000000abcd");
    assert_eq!(ts, 1_709_251_198_123_456);
    assert_eq!(oj.as_deref(), Some("null"));
    // Bad input is rejected before anything is written.
    let mut bad = every(Uuid::new_v4());
    bad.set("f", Value::F64(f64::NAN));
    let err = store
        .write(
            &e,
            vec![
                put(every(Uuid::new_v4()), Precondition::None),
                put(bad, Precondition::None),
            ],
            true,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput { message, .. } if message.contains("`f`")),
        "{err}"
    );
    let mut bad = every(Uuid::new_v4());
    bad.set("s", Value::Null);
    assert!(matches!(
        store
            .write(&e, vec![put(bad, Precondition::None)], true)
            .await,
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        store.get(&e, &Key::from("not-a-uuid")).await,
        Err(Error::InvalidInput { .. })
    ));
    assert_eq!(store.count(&e, None).await.unwrap(), 2);
}

#[tokio::test]
async fn versions_and_preconditions() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_at(&url(&dir)).await;
    let e = ready(&store, &NOTE, "notes").await;
    let w = |ops| store.write(&e, ops, true);
    assert_eq!(
        w(vec![put(note("a", "1"), Precondition::Absent)])
            .await
            .unwrap()[0]
            .version(),
        Some(1)
    );
    assert_eq!(
        w(vec![put(note("a", "2"), Precondition::None)])
            .await
            .unwrap()[0]
            .version(),
        Some(2)
    );
    assert_eq!(
        w(vec![put(note("a", "3"), Precondition::Exists)])
            .await
            .unwrap()[0]
            .version(),
        Some(3)
    );
    assert_eq!(
        w(vec![put(note("a", "4"), Precondition::Version(3))])
            .await
            .unwrap()[0]
            .version(),
        Some(4)
    );
    for (p, actual) in [
        (Precondition::Absent, Some(4)),
        (Precondition::Version(3), Some(4)),
        (Precondition::Version(u64::MAX), Some(4)),
    ] {
        match w(vec![put(note("a", "x"), p)]).await {
            Err(Error::Conflict {
                expected,
                actual: a,
                key,
                entity,
                store: s,
                ..
            }) => {
                assert_eq!((expected, a), (p, actual));
                assert_eq!(
                    (key.as_str(), entity.as_str(), s.as_str()),
                    ("\"a\"", "note", "db")
                );
            }
            other => panic!("{p}: {other:?}"),
        }
    }
    match w(vec![put(note("b", "x"), Precondition::Exists)]).await {
        Err(Error::Conflict { actual: None, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(body(&store, &e, "a").await, Some(("4".into(), 4)));
    assert_eq!(body(&store, &e, "b").await, None);
    match w(vec![del("a", Precondition::Version(1))]).await {
        Err(Error::Conflict {
            actual: Some(4), ..
        }) => {}
        other => panic!("{other:?}"),
    }
    match w(vec![del("a", Precondition::Absent)]).await {
        Err(Error::Conflict {
            actual: Some(4), ..
        }) => {}
        other => panic!("{other:?}"),
    }
    match w(vec![del("zz", Precondition::Exists)]).await {
        Err(Error::Conflict { actual: None, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(
        w(vec![del("zz", Precondition::Absent)]).await.unwrap(),
        vec![WriteOutcome::Deleted { existed: false }]
    );
    assert_eq!(
        w(vec![del("a", Precondition::Version(4))]).await.unwrap(),
        vec![WriteOutcome::Deleted { existed: true }]
    );
    assert_eq!(
        w(vec![del("a", Precondition::None)]).await.unwrap(),
        vec![WriteOutcome::Deleted { existed: false }]
    );
    assert_eq!(
        w(vec![put(note("a", "again"), Precondition::None)])
            .await
            .unwrap()[0]
            .version(),
        Some(6)
    );
    assert_eq!(
        w(vec![del("a", Precondition::Exists)]).await.unwrap(),
        vec![WriteOutcome::Deleted { existed: true }]
    );
}

#[tokio::test]
async fn a_conflicting_batch_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_at(&url(&dir)).await;
    let e = ready(&store, &NOTE, "notes").await;
    store
        .write(
            &e,
            vec![
                put(note("k2", "old2"), Precondition::None),
                put(note("k3", "old3"), Precondition::None),
            ],
            true,
        )
        .await
        .unwrap();
    // The third op conflicts: the first two (insert, update) are rolled back.
    let err = store
        .write(
            &e,
            vec![
                put(note("k1", "new1"), Precondition::None),
                put(note("k2", "new2"), Precondition::Version(1)),
                put(note("k3", "new3"), Precondition::Version(7)),
            ],
            false, // all or nothing even when not asked
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { key, actual: Some(1), .. } if key == "\"k3\""),
        "{err}"
    );
    assert_eq!(body(&store, &e, "k1").await, None);
    assert_eq!(body(&store, &e, "k2").await, Some(("old2".into(), 1)));
    assert_eq!(body(&store, &e, "k3").await, Some(("old3".into(), 1)));
    // A conflict caused by an earlier op of the same batch.
    let err = store
        .write(
            &e,
            vec![
                del("k2", Precondition::None),
                put(note("k4", "a"), Precondition::Absent),
                put(note("k4", "b"), Precondition::Absent),
            ],
            true,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Conflict {
                actual: Some(1),
                expected: Precondition::Absent,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(body(&store, &e, "k2").await, Some(("old2".into(), 1)));
    assert_eq!(body(&store, &e, "k4").await, None);
    // A batch sees its own writes, like the memory store.
    let out = store
        .write(
            &e,
            vec![
                put(note("k5", "a"), Precondition::Absent),
                put(note("k5", "b"), Precondition::Version(1)),
                del("k5", Precondition::Version(2)),
                put(note("k5", "c"), Precondition::Absent),
                del("k3", Precondition::None),
                del("k3", Precondition::None),
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
            WriteOutcome::Deleted { existed: true },
            WriteOutcome::Written { version: 4 },
            WriteOutcome::Deleted { existed: true },
            WriteOutcome::Deleted { existed: false },
        ]
    );
    assert_eq!(store.count(&e, None).await.unwrap(), 2);
}

/// A delete leaves a tombstone row that keeps the version; the purge
/// removes it only after the entity's tombstone retention.
#[tokio::test]
async fn tombstones_keep_versions_until_their_retention_ends() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_at(&url(&dir)).await;
    let e = ready(&store, &NOTE, "notes").await;
    let w = |e: EntityInfo, ops: Vec<WriteOp>| {
        let store = &store;
        async move { store.write(&e, ops, true).await.unwrap() }
    };
    w(e.clone(), vec![put(note("a", "1"), Precondition::None)]).await;
    w(e.clone(), vec![del("a", Precondition::None)]).await;
    assert_eq!(raw_count(&store, "notes").await, 1, "the tombstone row");
    assert_eq!(store.count(&e, None).await.unwrap(), 0);
    assert_eq!(store.purge_expired().await.unwrap(), 0, "within retention");
    let out = w(e.clone(), vec![put(note("a", "2"), Precondition::Absent)]).await;
    assert_eq!(out, vec![WriteOutcome::Written { version: 3 }]);

    // Retention zero: the next purge removes the tombstone, and the key
    // starts again at 1.
    let brief = EntityInfo {
        tombstone_retention: std::time::Duration::ZERO,
        ..info(&NOTE, "brief")
    };
    store.ensure_entity(&brief).await.unwrap();
    w(brief.clone(), vec![put(note("b", "1"), Precondition::None)]).await;
    w(brief.clone(), vec![del("b", Precondition::None)]).await;
    assert_eq!(raw_count(&store, "brief").await, 1);
    assert_eq!(store.purge_expired().await.unwrap(), 1);
    assert_eq!(raw_count(&store, "brief").await, 0);
    let out = w(brief.clone(), vec![put(note("b", "2"), Precondition::None)]).await;
    assert_eq!(out, vec![WriteOutcome::Written { version: 1 }]);
}

#[tokio::test]
async fn expired_rows_are_absent_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SqliteConfig::new(url(&dir));
    cfg.purge_interval = ConfigDuration(Duration::ZERO);
    let store = SqliteStore::connect("db", cfg).await.unwrap();
    let e = ready(&store, &NOTE, "notes").await;
    let ttl_put = |id: &str, p| WriteOp::Put {
        record: note(id, "short"),
        precondition: p,
        ttl: Some(Duration::from_millis(1500)),
    };
    store
        .write(
            &e,
            vec![
                ttl_put("t1", Precondition::None),
                ttl_put("t2", Precondition::None),
                ttl_put("t3", Precondition::None),
                ttl_put("t4", Precondition::None),
                ttl_put("t5", Precondition::None),
                put(note("keep", "long"), Precondition::None),
            ],
            true,
        )
        .await
        .unwrap();
    // A second put with a TTL on t1 bumps the version and keeps expiring.
    assert_eq!(
        store
            .write(&e, vec![ttl_put("t1", Precondition::Exists)], true)
            .await
            .unwrap()[0]
            .version(),
        Some(2)
    );
    assert_eq!(store.count(&e, None).await.unwrap(), 6);
    assert!(body(&store, &e, "t1").await.is_some());
    tokio::time::sleep(Duration::from_millis(1700)).await;

    assert_eq!(body(&store, &e, "t1").await, None);
    let many = store
        .get_many(&e, &[Key::from("t1"), Key::from("keep")])
        .await
        .unwrap();
    assert_eq!(
        many.iter().map(Option::is_some).collect::<Vec<_>>(),
        vec![false, true]
    );
    assert_eq!(store.count(&e, None).await.unwrap(), 1);
    assert_eq!(
        store
            .count(&e, Some(&field("body").eq("short")))
            .await
            .unwrap(),
        0
    );
    let all = store.query(&e, &StoreQuery::default()).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.key.clone()).collect::<Vec<_>>(),
        vec![Key::from("keep")]
    );
    // Preconditions see expired rows as absent.
    match store
        .write(&e, vec![put(note("t2", "x"), Precondition::Exists)], true)
        .await
    {
        Err(Error::Conflict { actual: None, .. }) => {}
        other => panic!("{other:?}"),
    }
    match store
        .write(
            &e,
            vec![put(note("t2", "x"), Precondition::Version(1))],
            true,
        )
        .await
    {
        Err(Error::Conflict { actual: None, .. }) => {}
        other => panic!("{other:?}"),
    }
    match store
        .write(&e, vec![del("t2", Precondition::Exists)], true)
        .await
    {
        Err(Error::Conflict { actual: None, .. }) => {}
        other => panic!("{other:?}"),
    }
    let out = store
        .write(
            &e,
            vec![
                put(note("t1", "back"), Precondition::Absent),
                put(note("t2", "back"), Precondition::None),
                del("t3", Precondition::None),
                del("t4", Precondition::Absent),
            ],
            true,
        )
        .await
        .unwrap();
    assert_eq!(
        out,
        vec![
            WriteOutcome::Written { version: 1 },
            WriteOutcome::Written { version: 1 },
            WriteOutcome::Deleted { existed: false },
            WriteOutcome::Deleted { existed: false },
        ]
    );
    assert_eq!(body(&store, &e, "t1").await, Some(("back".into(), 1)));
    // t3 and t5 are still stored, expired (a delete leaves an expired
    // row to the purge): the purge removes them.
    assert_eq!(raw_count(&store, "notes").await, 5);
    assert_eq!(store.purge_expired().await.unwrap(), 2);
    assert_eq!(raw_count(&store, "notes").await, 3);
}

#[tokio::test]
async fn the_purge_task_runs_and_ends_with_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SqliteConfig::new(url(&dir));
    cfg.purge_interval = ConfigDuration(Duration::from_millis(50));
    let store = SqliteStore::connect("db", cfg).await.unwrap();
    let e = ready(&store, &NOTE, "notes").await;
    let ops = (0..2500)
        .map(|i| WriteOp::Put {
            record: note(&format!("n{i}"), "x"),
            precondition: Precondition::None,
            ttl: Some(Duration::from_millis(1)),
        })
        .collect();
    store.write(&e, ops, true).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while raw_count(&store, "notes").await > 0 {
        assert!(
            Instant::now() < deadline,
            "the purge task did not delete expired rows"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let task = store.inner.purge_task.lock().clone().expect("purge task");
    assert!(!task.is_finished());
    drop(store);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !task.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the purge task outlived the store"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const EVIL: &[&str] = &[
    "'; DROP TABLE x; --",
    "\"; DROP TABLE \"notes\"; --",
    "\"",
    "\\",
    "back\\slash\\",
    "nul\0byte",
    "\0",
    "' OR '1'='1",
    "%_%",
    "\u{202E}rtl\u{FEFF}",
    "🎉 日本語 émoji",
    "",
    " ",
];

#[tokio::test]
async fn injection_strings_are_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_at(&url(&dir)).await;
    let table = "notes'; DROP TABLE x; --\"ü";
    let e = ready(&store, &NOTE, table).await;
    store
        .write(
            &e,
            vec![put(note("canary", "still here"), Precondition::None)],
            true,
        )
        .await
        .unwrap();
    for (i, evil) in EVIL.iter().enumerate() {
        for key in [evil.to_string(), format!("{evil}{i}")] {
            let mut r = note(&key, evil);
            r.set("a\"b", Value::from(*evil));
            r.set("'; DROP TABLE x; --", Value::from(*evil));
            r.set("group", Value::I64(i as i64));
            store
                .write(&e, vec![put(r.clone(), Precondition::None)], true)
                .await
                .unwrap();
            let got = store
                .get(&e, &Key::from(key.as_str()))
                .await
                .unwrap()
                .expect("round trip");
            assert_eq!(got.fields, r.fields, "{key:?}");
            let found = store
                .query(
                    &e,
                    &StoreQuery {
                        filter: Some(field("body").eq(*evil)),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            assert!(
                found.iter().any(|n| n.key == Key::from(key.as_str())),
                "eq on {evil:?}"
            );
            let found = store
                .query(
                    &e,
                    &StoreQuery {
                        filter: Some(field("a\"b").eq(*evil)),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            assert!(
                found.iter().any(|n| n.key == Key::from(key.as_str())),
                "eq on a\"b {evil:?}"
            );
        }
        let n = store
            .count(&e, Some(&field("id").prefix(format!("{evil}{i}"))))
            .await
            .unwrap();
        assert_eq!(n, 1, "prefix on {evil:?}");
        let n = store.count(&e, Some(&field("id").eq(*evil))).await.unwrap();
        assert_eq!(n, 1, "eq on key {evil:?}");
    }
    assert_eq!(
        body(&store, &e, "canary").await,
        Some(("still here".into(), 1))
    );
    // NUL-sensitive prefix/contains: "nul" is a prefix of "nul\0byte", "nul\0x" is not.
    assert_eq!(
        store
            .count(&e, Some(&field("body").prefix("nul\0b")))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .count(&e, Some(&field("body").prefix("nul\0x")))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .count(&e, Some(&field("body").contains("\0")))
            .await
            .unwrap(),
        4
    );
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_schema WHERE type = 'table'")
        .fetch_one(&store.inner.pool)
        .await
        .unwrap();
    assert_eq!(tables, 1);
    assert_eq!(
        store.count(&e, None).await.unwrap(),
        1 + 2 * EVIL.len() as u64
    );
}

#[tokio::test]
async fn get_many_keeps_order_and_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_at(&url(&dir)).await;
    let e = ready(&store, &reference::ROW, "rows").await;
    let ops = (0..1200)
        .map(|i| {
            put(
                reference::row(i, &mut reference::Rng(1), &SqliteDialect),
                Precondition::None,
            )
        })
        .collect();
    store.write(&e, ops, true).await.unwrap();
    let keys: Vec<Key> = [1199i64, 5, -1, 5, 0, 100_000]
        .into_iter()
        .map(Key::Int)
        .collect();
    let got = store.get_many(&e, &keys).await.unwrap();
    let ids: Vec<Option<Key>> = got
        .iter()
        .map(|r| r.as_ref().map(|r| r.key.clone()))
        .collect();
    assert_eq!(
        ids,
        vec![
            Some(Key::Int(1199)),
            Some(Key::Int(5)),
            None,
            Some(Key::Int(5)),
            Some(Key::Int(0)),
            None
        ]
    );
    let keys: Vec<Key> = (0..1300).rev().map(Key::Int).collect();
    let got = store.get_many(&e, &keys).await.unwrap();
    assert_eq!(got.len(), 1300);
    for (k, r) in keys.iter().zip(&got) {
        match k {
            Key::Int(i) if *i < 1200 => assert_eq!(r.as_ref().map(|r| &r.key), Some(k)),
            _ => assert!(r.is_none()),
        }
    }
    assert!(store.get_many(&e, &[]).await.unwrap().is_empty());
    assert!(matches!(
        store.get_many(&e, &[Key::from("x")]).await,
        Err(Error::InvalidInput { .. })
    ));
}

#[tokio::test]
async fn large_batches_round_trip_in_one_call() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_at(&url(&dir)).await;
    let e = ready(&store, &reference::ROW, "rows").await;
    let mut rng = reference::Rng(7);
    let rows: Vec<Record> = (0..10_000)
        .map(|i| reference::row(i, &mut rng, &SqliteDialect))
        .collect();
    let out = store
        .write(
            &e,
            rows.iter()
                .cloned()
                .map(|r| put(r, Precondition::None))
                .collect(),
            true,
        )
        .await
        .unwrap();
    assert!(
        out.iter()
            .all(|o| *o == WriteOutcome::Written { version: 1 })
    );
    let out = store
        .write(
            &e,
            rows.iter()
                .cloned()
                .map(|r| put(r, Precondition::Version(1)))
                .collect(),
            true,
        )
        .await
        .unwrap();
    assert!(
        out.iter()
            .all(|o| *o == WriteOutcome::Written { version: 2 })
    );
    let keys: Vec<Key> = (0..10_000).map(Key::Int).collect();
    let got = store.get_many(&e, &keys).await.unwrap();
    assert!(
        got.iter()
            .all(|r| r.as_ref().is_some_and(|r| r.version == 2))
    );
    assert_eq!(store.count(&e, None).await.unwrap(), 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_on_one_file_never_lose_a_write() {
    let dir = tempfile::tempdir().unwrap();
    let a = Arc::new(open_at(&url(&dir)).await);
    let b = Arc::new(open_at(&url(&dir)).await);
    let e = ready(&a, &NOTE, "notes").await;
    b.ensure_entity(&e).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..6 {
        let store = if w % 2 == 0 { a.clone() } else { b.clone() };
        let e = e.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..30 {
                let ops = (0..4)
                    .map(|k| {
                        put(
                            note(&format!("k{}", (i + k + w) % 5), "x"),
                            Precondition::None,
                        )
                    })
                    .collect();
                store.write(&e, ops, true).await.unwrap();
                // Single writes and reads interleaved.
                store
                    .write(&e, vec![put(note("single", "y"), Precondition::None)], true)
                    .await
                    .unwrap();
                store.count(&e, None).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let all = a.query(&e, &StoreQuery::default()).await.unwrap();
    let total: u64 = all
        .iter()
        .filter(|r| r.key != Key::from("single"))
        .map(|r| r.version)
        .sum();
    assert_eq!(total, 6 * 30 * 4);
    assert_eq!(body(&b, &e, "single").await.unwrap().1, 6 * 30);
}

#[tokio::test]
async fn a_held_lock_is_a_transient_error() {
    let dir = tempfile::tempdir().unwrap();
    let a = open_at(&url(&dir)).await;
    let e = ready(&a, &NOTE, "notes").await;
    let mut cfg = SqliteConfig::new(url(&dir));
    cfg.busy_timeout = ConfigDuration(Duration::from_millis(100));
    let b = SqliteStore::connect("db2", cfg).await.unwrap();
    let mut tx = a.inner.pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("DELETE FROM \"notes\"")
        .execute(&mut *tx)
        .await
        .unwrap();
    let err = b
        .write(
            &e,
            vec![
                put(note("a", "1"), Precondition::None),
                put(note("b", "1"), Precondition::None),
            ],
            true,
        )
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(
        err.to_string().contains("store `db2`, entity `note`"),
        "{err}"
    );
    let err = b
        .write(&e, vec![put(note("a", "1"), Precondition::None)], true)
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    // Readers are not blocked by the writer (WAL).
    assert_eq!(b.count(&e, None).await.unwrap(), 0);
    tx.rollback().await.unwrap();
    b.write(&e, vec![put(note("a", "1"), Precondition::None)], true)
        .await
        .unwrap();
}

#[tokio::test]
async fn unopenable_databases_and_bad_options() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("db.sqlite")).unwrap();
    let location = format!("sqlite://{}/db.sqlite", dir.path().display());
    let err = SqliteStore::connect("main", SqliteConfig::new(location.clone()))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("store `main`") && text.contains(&location),
        "{text}"
    );

    let spec = |t: &str| StoreSpec::new("db", "sqlite", toml::from_str(t).unwrap());
    let err = open(spec("url = \"postgres://u:pw@h/x\""))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config { path, .. } if path == "stores.db.url"),
        "{err:?}"
    );
    assert!(!err.to_string().contains("pw@"), "{err}");
    let err = open(spec("url = \"sqlite::memory:\"\nmax_connections = 0"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config { path, .. } if path == "stores.db.max_connections"),
        "{err:?}"
    );
    let err = open(spec("url = \"sqlite::memory:\"\npool = 1"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("stores.db.pool"), "{err}");
    let err = open(spec("url = \"sqlite:x.db?mode=bogus\""))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config { path, .. } if path == "stores.db.url"),
        "{err:?}"
    );
}

#[tokio::test]
async fn in_memory_databases_work_and_are_not_shared() {
    let store = open(StoreSpec::new(
        "mem",
        "sqlite",
        toml::from_str("url = \"sqlite::memory:\"\nmax_connections = 3").unwrap(),
    ))
    .await
    .unwrap();
    assert!(!store.capabilities().shared);
    assert_eq!(store.location(), "sqlite::memory:");
    let e = info(&NOTE, "notes");
    store.ensure_entity(&e).await.unwrap();
    let ops = (0..50)
        .map(|i| put(note(&format!("n{i}"), "b"), Precondition::None))
        .collect();
    store.write(&e, ops, true).await.unwrap();
    // Concurrent reads on several pooled connections see the same database.
    let reads = (0..6).map(|_| store.count(&e, None));
    for n in futures::future::join_all(reads).await {
        assert_eq!(n.unwrap(), 50);
    }
}

// ---------------------------------------------------------------------------
// Query and count results equal the reference evaluator on the same data.

#[tokio::test]
async fn queries_and_counts_match_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_at(&url(&dir)).await;
    for seed in [0x5EED, 0xB0B, 0xC0FFEE] {
        let e = ready(&store, &reference::ROW, &format!("rows{seed}")).await;
        let t = store.table_sql(&e).unwrap();
        reference::compare_with_reference(&store, &e, seed, &SqliteDialect, |q| t.query(q, 0).sql)
            .await;
    }
}

#[tokio::test]
async fn put_many_is_bulk_with_per_row_versions() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_at(&url(&dir)).await;
    let e = ready(&store, &reference::ROW, "bulk").await;
    reference::check_put_many(&store, &e, &SqliteDialect).await;
}

#[tokio::test]
async fn versioned_apply_edge_cases() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_at(&url(&dir)).await;
    crate::backends::sql::sync_checks::versioned_apply_edges(&store, "edges").await;
}
