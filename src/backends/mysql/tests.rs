//! Tests against the machine's MariaDB/MySQL (`POLYROUTER_MYSQL_URL`,
//! default `mysql://root@127.0.0.1:3306/test`). Each test works in its own
//! database and drops it at the end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::DateTime;
use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::backends::sql::reference::{self, EVERY, info};
use crate::config::ConfigDuration;
use crate::entity::{FieldDef, FieldKind, Schema};
use crate::store::Precondition;
use crate::{KeyKind, Value};

/// String keys and awkward field names.
static NOTE_FIELDS: [FieldDef; 5] = [
    FieldDef::required("id", FieldKind::String),
    FieldDef::required("body", FieldKind::String),
    FieldDef::nullable("group", FieldKind::Int),
    FieldDef::nullable("a`b", FieldKind::String),
    FieldDef::nullable("'; DROP TABLE x; --", FieldKind::String),
];
static NOTE: Schema = Schema {
    name: "note",
    key: "id",
    key_kind: KeyKind::Str,
    partition_key: None,
    version: None,
    fields: &NOTE_FIELDS,
};

fn mysql_url() -> String {
    std::env::var("POLYROUTER_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A store in a fresh database of its own.
async fn open_fresh() -> (MySqlStore, String) {
    let db = format!(
        "pr_test_unit_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut cfg = MySqlConfig::new(mysql_url());
    cfg.database = Some(db.clone());
    cfg.max_connections = 4;
    let store = MySqlStore::connect("db", cfg).await.expect("connect");
    (store, db)
}

async fn drop_db(store: &MySqlStore, db: &str) {
    sqlx::query(&format!(
        "DROP DATABASE IF EXISTS {}",
        store.dialect().quote(db)
    ))
    .execute(&store.inner.pool)
    .await
    .unwrap();
}

async fn ready(store: &MySqlStore, schema: &'static Schema, table: &str) -> EntityInfo {
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
    r.set("a`b", Value::Null);
    r.set("'; DROP TABLE x; --", Value::Null);
    r
}

async fn body(store: &MySqlStore, e: &EntityInfo, id: &str) -> Option<(String, u64)> {
    store.get(e, &Key::from(id)).await.unwrap().map(|r| {
        (
            r.get("body").unwrap().as_str().unwrap().to_string(),
            r.version,
        )
    })
}

async fn raw_count(store: &MySqlStore, table: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM {}", store.dialect().quote(table));
    sqlx::query_scalar(&sql)
        .fetch_one(&store.inner.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn every_value_kind_round_trips_with_nul_and_trailing_spaces() {
    let (store, db) = open_fresh().await;
    assert_eq!(store.dialect(), MySqlDialect::mariadb());
    let e = ready(&store, &EVERY, "every").await;
    store.ensure_entity(&e).await.unwrap(); // idempotent
    let id = Uuid::from_u128(42);
    let mut r = Record::new(Key::Uuid(id));
    r.set("id", Value::Uuid(id));
    r.set("b", Value::Bool(true));
    r.set("i", Value::I64(i64::MIN));
    r.set("f", Value::F64(-1e-300));
    r.set("s", Value::from("é日本 'quote' \"dq\" \\ %_ a\0b 😀 "));
    r.set("by", Value::Bytes(vec![0, 1, 255]));
    r.set(
        "ts",
        Value::Timestamp(DateTime::from_timestamp_micros(-62_000_000_000_000_001).unwrap()),
    );
    r.set("u", Value::Uuid(Uuid::from_u128(u128::MAX)));
    r.set(
        "j",
        Value::Json(json!({"b": [1, 2.5, null], "a": "x\u{0}", "c": {"d": true}})),
    );
    for f in ["ob", "oi", "of", "os", "oby", "ots", "oj"] {
        r.set(f, Value::Null);
    }
    let out = store
        .write(&e, vec![put(r.clone(), Precondition::Absent)], true)
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::Written { version: 1 }]);
    let got = store.get(&e, &Key::Uuid(id)).await.unwrap().unwrap();
    r.version = 1;
    assert_eq!(got, r);
    // Trailing spaces are significant (no-pad collation).
    let q = StoreQuery {
        filter: Some(crate::query::field("s").eq("é日本 'quote' \"dq\" \\ %_ a\0b 😀")),
        ..StoreQuery::default()
    };
    assert!(store.query(&e, &q).await.unwrap().is_empty());
    drop_db(&store, &db).await;
}

#[tokio::test]
async fn preconditions_and_a_conflicting_batch_writes_nothing() {
    let (store, db) = open_fresh().await;
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
    let err = store
        .write(
            &e,
            vec![
                put(note("k1", "new1"), Precondition::None),
                put(note("k2", "new2"), Precondition::Version(1)),
                put(note("k3", "new3"), Precondition::Version(7)),
            ],
            false,
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
                put(note("k2", "x"), Precondition::Exists),
                del("k9", Precondition::Absent),
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
            WriteOutcome::Written { version: 2 },
            WriteOutcome::Deleted { existed: false },
        ]
    );
    for (op, actual) in [
        (put(note("k2", "y"), Precondition::Absent), Some(2)),
        (put(note("zz", "y"), Precondition::Exists), None),
        (del("k2", Precondition::Version(9)), Some(2)),
        (del("zz", Precondition::Exists), None),
    ] {
        let err = store.write(&e, vec![op], true).await.unwrap_err();
        assert!(
            matches!(&err, Error::Conflict { actual: a, .. } if *a == actual),
            "{err}"
        );
    }
    assert_eq!(store.count(&e, None).await.unwrap(), 2);
    // A key longer than the key column: refused on write, absent on read.
    let long = "k".repeat(MAX_KEY_CHARS + 1);
    let err = store
        .write(&e, vec![put(note(&long, "x"), Precondition::None)], true)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert_eq!(body(&store, &e, &long).await, None);
    drop_db(&store, &db).await;
}

#[tokio::test]
async fn concurrent_writers_of_one_key_never_lose_a_write() {
    let (store, db) = open_fresh().await;
    let store = Arc::new(store);
    let e = ready(&store, &NOTE, "notes").await;
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (store, e) = (store.clone(), e.clone());
        tasks.push(tokio::spawn(async move {
            let mut versions = Vec::new();
            for i in 0..5 {
                let out = store
                    .write(
                        &e,
                        vec![put(note("hot", &format!("{w}-{i}")), Precondition::None)],
                        true,
                    )
                    .await
                    .unwrap();
                versions.push(out[0]);
            }
            versions
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let mut versions: Vec<u64> = all
        .iter()
        .map(|o| match o {
            WriteOutcome::Written { version } => *version,
            other => panic!("{other:?}"),
        })
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, (1..=40).collect::<Vec<u64>>());
    assert_eq!(body(&store, &e, "hot").await.unwrap().1, 40);
    drop_db(&store, &db).await;
}

/// A single put's outcome: its version, or the live version a conflict
/// reported.
fn outcome(r: Result<Vec<WriteOutcome>>) -> std::result::Result<u64, Option<u64>> {
    match r {
        Ok(out) => match out[0] {
            WriteOutcome::Written { version } => Ok(version),
            other => panic!("{other:?}"),
        },
        Err(Error::Conflict { actual, .. }) => Err(actual),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn single_statement_puts_match_the_locked_path() {
    let (store, db) = open_fresh().await;
    let e = ready(&store, &NOTE, "notes").await;
    // The key's state before the put: absent, live at 2, expired at 3, a
    // tombstone at 3.
    let states = ["absent", "live", "expired", "buried"];
    let preconditions = [
        Precondition::None,
        Precondition::Absent,
        Precondition::Exists,
        Precondition::Version(2),
        Precondition::Version(3),
    ];
    let key = |path: &str, state: &str, i: usize| format!("{path}-{state}-{i}");
    for state in states {
        for i in 0..preconditions.len() {
            for path in ["single", "locked"] {
                let k = key(path, state, i);
                let mut ops = Vec::new();
                if state != "absent" {
                    ops.push(put(note(&k, "v1"), Precondition::None));
                    ops.push(put(note(&k, "v2"), Precondition::None));
                }
                match state {
                    "expired" => ops.push(WriteOp::Put {
                        record: note(&k, "v3"),
                        precondition: Precondition::None,
                        ttl: Some(Duration::from_millis(1)),
                    }),
                    "buried" => ops.push(del(k.as_str(), Precondition::None)),
                    _ => {}
                }
                // Not all unconditional puts: the lock-then-write path.
                ops.push(del("nobody", Precondition::Absent));
                store.write(&e, ops, true).await.unwrap();
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    for state in states {
        for (i, p) in preconditions.iter().enumerate() {
            let (s, l) = (key("single", state, i), key("locked", state, i));
            let single = outcome(store.write(&e, vec![put(note(&s, "new"), *p)], true).await);
            let locked = outcome(
                store
                    .write(
                        &e,
                        vec![
                            put(note(&l, "new"), *p),
                            del("nobody", Precondition::Absent),
                        ],
                        true,
                    )
                    .await,
            );
            assert_eq!(single, locked, "{state} key, {p:?}");
            assert_eq!(
                body(&store, &e, &s).await,
                body(&store, &e, &l).await,
                "{state} key, {p:?}"
            );
        }
    }
    // Spot checks of the table above against the reference semantics.
    let single = |state: &str, i: usize| key("single", state, i);
    assert_eq!(
        body(&store, &e, &single("absent", 0)).await,
        Some(("new".into(), 1))
    );
    assert_eq!(
        body(&store, &e, &single("live", 0)).await,
        Some(("new".into(), 3))
    );
    assert_eq!(
        body(&store, &e, &single("expired", 0)).await,
        Some(("new".into(), 1))
    );
    assert_eq!(
        body(&store, &e, &single("buried", 0)).await,
        Some(("new".into(), 4))
    );
    assert_eq!(
        body(&store, &e, &single("buried", 1)).await,
        Some(("new".into(), 4))
    );
    assert_eq!(
        body(&store, &e, &single("live", 3)).await,
        Some(("new".into(), 3))
    );
    assert_eq!(body(&store, &e, &single("expired", 4)).await, None);
    drop_db(&store, &db).await;
}

#[tokio::test]
async fn single_statement_and_transactional_writers_of_one_key_serialize() {
    let (store, db) = open_fresh().await;
    let store = Arc::new(store);
    let e = ready(&store, &NOTE, "notes").await;
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (store, e) = (store.clone(), e.clone());
        tasks.push(tokio::spawn(async move {
            let mut versions = Vec::new();
            while versions.len() < 5 {
                let body = format!("{w}-{}", versions.len());
                let ops = match w % 4 {
                    // One unconditional put: one statement.
                    0 | 1 => vec![put(note("hot", &body), Precondition::None)],
                    // In a transaction, locking the key.
                    2 => vec![
                        put(note("hot", &body), Precondition::None),
                        del("nobody", Precondition::Absent),
                    ],
                    // Compare-and-set on the version read.
                    _ => {
                        let p = match store.get(&e, &Key::from("hot")).await.unwrap() {
                            Some(r) => Precondition::Version(r.version),
                            None => Precondition::Absent,
                        };
                        vec![put(note("hot", &body), p)]
                    }
                };
                match outcome(store.write(&e, ops, true).await) {
                    Ok(v) => versions.push(v),
                    Err(_) => assert_eq!(w % 4, 3, "only compare-and-set conflicts"),
                }
            }
            versions
        }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        versions.extend(t.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=40).collect::<Vec<u64>>());
    assert_eq!(body(&store, &e, "hot").await.unwrap().1, 40);
    drop_db(&store, &db).await;
}

#[tokio::test]
async fn expired_rows_are_absent_and_purged() {
    let (store, db) = open_fresh().await;
    let e = ready(&store, &NOTE, "notes").await;
    store
        .write(
            &e,
            vec![
                WriteOp::Put {
                    record: note("t", "short"),
                    precondition: Precondition::None,
                    ttl: Some(Duration::from_millis(1500)),
                },
                put(note("p", "kept"), Precondition::None),
            ],
            true,
        )
        .await
        .unwrap();
    assert!(body(&store, &e, "t").await.is_some());
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(body(&store, &e, "t").await, None);
    assert_eq!(store.count(&e, None).await.unwrap(), 1);
    let got = store
        .get_many(&e, &[Key::from("t"), Key::from("p"), Key::from("t")])
        .await
        .unwrap();
    assert!(got[0].is_none() && got[1].is_some() && got[2].is_none());
    let out = store
        .write(
            &e,
            vec![put(note("t", "again"), Precondition::Absent)],
            true,
        )
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::Written { version: 1 }]);
    store
        .write(
            &e,
            vec![WriteOp::Put {
                record: note("x", "gone"),
                precondition: Precondition::None,
                ttl: Some(Duration::from_millis(1)),
            }],
            true,
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(raw_count(&store, "notes").await, 3);
    assert_eq!(store.purge_expired().await.unwrap(), 1);
    assert_eq!(raw_count(&store, "notes").await, 2);
    drop_db(&store, &db).await;
}

#[tokio::test]
async fn a_key_ordered_page_reads_the_primary_key_in_order() {
    let (store, db) = open_fresh().await;
    let e = ready(&store, &NOTE, "notes").await;
    let ops: Vec<WriteOp> = (0..2000)
        .map(|i| put(note(&format!("k{i:05}"), "x"), Precondition::None))
        .collect();
    store.write(&e, ops, true).await.unwrap();
    sqlx::query("ANALYZE TABLE `notes`")
        .execute(&store.inner.pool)
        .await
        .unwrap();
    let t = store.table_sql(&e).unwrap();
    let key_order = |direction| crate::query::Order {
        field: "id".into(),
        direction,
    };
    let after = Filter::Cmp {
        field: "id".into(),
        op: crate::query::CmpOp::Gt,
        value: Value::from("k01000"),
    };
    for (filter, direction, access) in [
        (None, crate::query::Direction::Asc, "index"),
        (None, crate::query::Direction::Desc, "index"),
        (Some(after), crate::query::Direction::Asc, "range"),
    ] {
        let q = StoreQuery {
            filter,
            order: vec![key_order(direction)],
            limit: Some(51),
        };
        let s = t.query(&q, now_micros());
        let plan = bind_all(sqlx::query(&format!("EXPLAIN {}", s.sql)), s.params)
            .fetch_one(&store.inner.pool)
            .await
            .unwrap();
        let get = |c: &str| -> String {
            plan.try_get::<Option<String>, _>(c)
                .ok()
                .flatten()
                .or_else(|| {
                    plan.try_get::<Option<Vec<u8>>, _>(c)
                        .ok()
                        .flatten()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                })
                .unwrap_or_default()
        };
        let (ty, key, extra) = (get("type"), get("key"), get("Extra"));
        assert_eq!(
            (ty.as_str(), key.as_str()),
            (access, "PRIMARY"),
            "{}: {extra}",
            s.sql
        );
        assert!(!extra.contains("filesort"), "{}: {extra}", s.sql);
    }
    drop_db(&store, &db).await;
}

#[tokio::test]
async fn incompatible_tables_are_config_errors_naming_the_column() {
    let (store, db) = open_fresh().await;
    let bin = store.dialect().collation;
    // A case-insensitive collation would compare differently: refused.
    sqlx::query(&format!(
        "CREATE TABLE `notes` (`id` VARCHAR(255) COLLATE {bin} PRIMARY KEY, `body` LONGTEXT COLLATE utf8mb4_general_ci NOT NULL, \
         `group` BIGINT, `a``b` LONGTEXT COLLATE {bin}, `'; DROP TABLE x; --` LONGTEXT COLLATE {bin}, \
         `_pr_version` BIGINT NOT NULL, `_pr_expires_at` BIGINT) CHARACTER SET utf8mb4"
    ))
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
            for needle in ["store `db`", "table `notes`", "column `body`", "general_ci"] {
                assert!(message.contains(needle), "{needle}: {message}");
            }
        }
        other => panic!("expected a config error, got {other:?}"),
    }
    sqlx::query("ALTER TABLE `notes` MODIFY `body` INT NOT NULL")
        .execute(&store.inner.pool)
        .await
        .unwrap();
    let e = store
        .ensure_entity(&info(&NOTE, "notes"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Config { message, .. } if message.contains("column `body`") && message.contains("int")),
        "{e}"
    );
    drop_db(&store, &db).await;
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_with_the_password_redacted() {
    let mut cfg = MySqlConfig::new("mysql://app:s3cret@127.0.0.1:1/db");
    cfg.connect_timeout = ConfigDuration(Duration::from_secs(2));
    let err = MySqlStore::connect("main", cfg).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(
        matches!(&err, Error::Unavailable { store, .. } if store == "main"),
        "{shown}"
    );
    assert!(shown.contains("127.0.0.1:1"), "{shown}");
    assert!(!shown.contains("s3cret"), "{shown}");
    let err = MySqlStore::connect("main", MySqlConfig::new("postgres://a:b@h/d"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
}

#[tokio::test]
async fn a_connection_killed_mid_batch_writes_nothing_and_the_next_call_recovers() {
    let (store, db) = open_fresh().await;
    let e = ready(&store, &NOTE, "kill_notes").await;
    store
        .write(&e, vec![put(note("k0", "old"), Precondition::None)], true)
        .await
        .unwrap();
    // A second connection holds a row lock the batch will wait on, and
    // kills the batch's connection while it waits.
    let mut killer_cfg = MySqlConfig::new(mysql_url());
    killer_cfg.database = Some(db.clone());
    let killer = MySqlStore::connect("killer", killer_cfg).await.unwrap();
    let mut lock_tx = killer.inner.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM `kill_notes` WHERE `id` = 'k0' FOR UPDATE")
        .execute(&mut *lock_tx)
        .await
        .unwrap();
    let own: i64 = sqlx::query_scalar("SELECT CAST(CONNECTION_ID() AS SIGNED)")
        .fetch_one(&mut *lock_tx)
        .await
        .unwrap();
    let batch = {
        let ops = vec![
            put(note("k1", "new"), Precondition::None),
            put(note("k2", "new"), Precondition::None),
            put(note("k0", "new"), Precondition::None), // waits on the lock
        ];
        let store = &store;
        let e = &e;
        async move { store.write(e, ops, true).await }
    };
    let kill = async {
        // The batch's statement shows in the process list of this test's
        // database while it waits on the row lock (its text is the store's
        // `SELECT … FOR UPDATE`, a prepared statement: command `Execute`);
        // the lock holder and this query's own
        // connection are excluded by id. Polled generously: under a loaded
        // CI machine the batch may take a while to get there.
        for _ in 0..1200 {
            let waiting: Vec<i64> = sqlx::query_scalar(
                "SELECT CAST(ID AS SIGNED) FROM information_schema.PROCESSLIST \
                 WHERE DB = ? AND COMMAND <> 'Sleep' AND ID <> ? AND ID <> CONNECTION_ID() \
                 AND INFO LIKE CONCAT('%FOR ', 'UPDATE%')",
            )
            .bind(&db)
            .bind(own)
            .fetch_all(&killer.inner.pool)
            .await
            .unwrap();
            if let Some(id) = waiting.first() {
                // Give the statement a moment to be parked on the lock
                // (it is listed from the moment it starts).
                tokio::time::sleep(Duration::from_millis(100)).await;
                sqlx::query(&format!("KILL CONNECTION {id}"))
                    .execute(&killer.inner.pool)
                    .await
                    .unwrap();
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the batch never waited on the lock");
    };
    let (res, ()) = tokio::join!(batch, kill);
    let err = res.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    lock_tx.rollback().await.unwrap();
    // Nothing of the batch was written, and the store recovers.
    assert_eq!(body(&store, &e, "k1").await, None);
    assert_eq!(body(&store, &e, "k2").await, None);
    assert_eq!(body(&store, &e, "k0").await, Some(("old".into(), 1)));
    store
        .write(&e, vec![put(note("k1", "later"), Precondition::None)], true)
        .await
        .unwrap();
    assert_eq!(body(&store, &e, "k1").await, Some(("later".into(), 1)));
    drop_db(&store, &db).await;
}

#[tokio::test]
async fn put_many_gives_per_row_versions() {
    let (store, db) = open_fresh().await;
    let e = ready(&store, &reference::ROW, "bulk").await;
    reference::check_put_many(&store, &e, &store.dialect()).await;
    drop_db(&store, &db).await;
}

#[tokio::test]
async fn queries_and_counts_match_the_reference() {
    let (store, db) = open_fresh().await;
    for seed in [0x5EED, 0xB0B, 0xC0FFEE] {
        let e = ready(&store, &reference::ROW, &format!("rows{seed}")).await;
        let t = store.table_sql(&e).unwrap();
        reference::compare_with_reference(&store, &e, seed, &store.dialect(), |q| {
            t.query(q, 0).sql
        })
        .await;
    }
    drop_db(&store, &db).await;
}

#[tokio::test]
async fn versioned_apply_edge_cases() {
    let (store, db) = open_fresh().await;
    crate::backends::sql::sync_checks::versioned_apply_edges(&store, "edges").await;
    drop_db(&store, &db).await;
}
