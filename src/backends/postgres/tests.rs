//! Tests against the machine's PostgreSQL (`POLYROUTER_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`). Each test works in its own
//! schema and drops it at the end.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::DateTime;
use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::Value;
use crate::backends::sql::reference::{self, EVERY, NOTE, info};
use crate::config::ConfigDuration;
use crate::entity::Schema;
use crate::store::Precondition;

fn pg_url() -> String {
    std::env::var("POLYROUTER_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A store in a fresh schema of its own.
async fn open_fresh() -> (PostgresStore, String) {
    let schema = format!(
        "pr_test_unit_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut cfg = PostgresConfig::new(pg_url());
    cfg.schema = Some(schema.clone());
    cfg.max_connections = 3;
    let store = PostgresStore::connect("db", cfg).await.expect("connect");
    (store, schema)
}

async fn drop_schema(store: &PostgresStore, schema: &str) {
    sqlx::query(&format!(
        "DROP SCHEMA IF EXISTS {} CASCADE",
        PostgresDialect.quote(schema)
    ))
    .execute(&store.inner.pool)
    .await
    .unwrap();
}

async fn ready(store: &PostgresStore, schema: &'static Schema, table: &str) -> EntityInfo {
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

async fn body(store: &PostgresStore, e: &EntityInfo, id: &str) -> Option<(String, u64)> {
    store.get(e, &Key::from(id)).await.unwrap().map(|r| {
        (
            r.get("body").unwrap().as_str().unwrap().to_string(),
            r.version,
        )
    })
}

async fn raw_count(store: &PostgresStore, table: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM {}", PostgresDialect.quote(table));
    sqlx::query_scalar(&sql)
        .fetch_one(&store.inner.pool)
        .await
        .unwrap()
}

#[test]
fn placeholders_are_numbered_outside_quotes() {
    assert_eq!(
        sql::number(
            &PostgresDialect,
            "SELECT \"a?\" FROM t WHERE x = ? AND y = '?' AND z IN (?, ?)"
        ),
        "SELECT \"a?\" FROM t WHERE x = $1 AND y = '?' AND z IN ($2, $3)"
    );
}

#[tokio::test]
async fn every_value_kind_round_trips_and_nul_is_refused() {
    let (store, schema) = open_fresh().await;
    let e = ready(&store, &EVERY, "every").await;
    // Idempotent.
    store.ensure_entity(&e).await.unwrap();
    let id = Uuid::from_u128(42);
    let mut r = Record::new(Key::Uuid(id));
    r.set("id", Value::Uuid(id));
    r.set("b", Value::Bool(true));
    r.set("i", Value::I64(i64::MIN));
    r.set("f", Value::F64(-1e-300));
    r.set("s", Value::from("é日本 'quote' \"dq\" \\ %_"));
    r.set("by", Value::Bytes(vec![0, 1, 255]));
    r.set(
        "ts",
        Value::Timestamp(DateTime::from_timestamp_micros(-1_000_001).unwrap()),
    );
    r.set("u", Value::Uuid(Uuid::from_u128(u128::MAX)));
    r.set(
        "j",
        Value::Json(json!({"b": [1, 2.5, null], "a": "x", "c": {"d": true}})),
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

    // NUL in a string or JSON string: InvalidInput naming the field, nothing written.
    let id2 = Uuid::from_u128(43);
    let mut bad = r.clone();
    bad.key = Key::Uuid(id2);
    bad.set("id", Value::Uuid(id2));
    bad.set("s", Value::from("a\0b"));
    let err = store
        .write(&e, vec![put(bad.clone(), Precondition::None)], true)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput { message, .. } if message.contains("`s`") && message.contains("NUL")),
        "{err}"
    );
    bad.set("s", Value::from("ok"));
    bad.set("j", Value::Json(json!({"k": "x\0"})));
    let err = store
        .write(&e, vec![put(bad, Precondition::None)], true)
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::InvalidInput { .. }), "{err}");
    assert_eq!(store.get(&e, &Key::Uuid(id2)).await.unwrap(), None);
    assert_eq!(raw_count(&store, "every").await, 1);
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn a_conflicting_batch_writes_nothing() {
    let (store, schema) = open_fresh().await;
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
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn expired_rows_are_absent_and_purged() {
    let (store, schema) = open_fresh().await;
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
    // An expired row is absent to preconditions: insert starts at version 1.
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
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn incompatible_tables_are_config_errors_naming_the_column() {
    let (store, schema) = open_fresh().await;
    sqlx::query(
        "CREATE TABLE \"notes\" (\"id\" TEXT PRIMARY KEY, \"body\" INTEGER NOT NULL, \"group\" BIGINT, \"a\"\"b\" TEXT, \
         \"'; DROP TABLE x; --\" TEXT, \"_pr_version\" BIGINT NOT NULL, \"_pr_expires_at\" BIGINT)",
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
            for needle in ["store `db`", "table `notes`", "column `body`", "integer"] {
                assert!(message.contains(needle), "{needle}: {message}");
            }
        }
        other => panic!("expected a config error, got {other:?}"),
    }
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_with_the_password_redacted() {
    let mut cfg = PostgresConfig::new("postgres://app:s3cret@127.0.0.1:1/db");
    cfg.connect_timeout = ConfigDuration(Duration::from_secs(2));
    let err = PostgresStore::connect("main", cfg).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(
        matches!(&err, Error::Unavailable { store, .. } if store == "main"),
        "{shown}"
    );
    assert!(shown.contains("127.0.0.1:1"), "{shown}");
    assert!(!shown.contains("s3cret"), "{shown}");
    let err = PostgresStore::connect("main", PostgresConfig::new("mysql://a:b@h/d"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
}

#[tokio::test]
async fn a_connection_killed_mid_batch_writes_nothing_and_the_next_call_recovers() {
    let (store, schema) = open_fresh().await;
    let e = ready(&store, &NOTE, "notes").await;
    store
        .write(&e, vec![put(note("k0", "old"), Precondition::None)], true)
        .await
        .unwrap();
    // A second connection kills the store's connections while the batch's
    // transaction waits on a row lock the test holds.
    let killer = PostgresStore::connect("killer", PostgresConfig::new(pg_url()))
        .await
        .unwrap();
    let mut lock_tx = killer.inner.pool.begin().await.unwrap();
    sqlx::query(&format!(
        "SELECT 1 FROM {}.\"notes\" WHERE \"id\" = 'k0' FOR UPDATE",
        PostgresDialect.quote(&schema)
    ))
    .execute(&mut *lock_tx)
    .await
    .unwrap();
    let batch = {
        let ops = vec![
            put(note("k1", "new"), Precondition::None),
            put(note("k2", "new"), Precondition::None),
            put(note("k0", "new"), Precondition::None), // blocks on the lock
        ];
        let store = &store;
        let e = &e;
        async move { store.write(e, ops, true).await }
    };
    let kill = async {
        // Wait until the batch blocks on the lock, then kill its connection.
        for _ in 0..200 {
            let killed: Vec<bool> = sqlx::query_scalar(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = 'polyrouter:db' AND pid <> pg_backend_pid() \
                 AND wait_event_type = 'Lock'",
            )
            .fetch_all(&killer.inner.pool)
            .await
            .unwrap();
            if killed.contains(&true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the batch never blocked on the lock");
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
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn queries_and_counts_match_the_reference() {
    let (store, schema) = open_fresh().await;
    for seed in [0x5EED, 0xB0B, 0xC0FFEE] {
        let e = ready(&store, &reference::ROW, &format!("rows{seed}")).await;
        let t = store.table_sql(&e).unwrap();
        reference::compare_with_reference(&store, &e, seed, &PostgresDialect, |q| {
            t.query(q, 0).sql
        })
        .await;
    }
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn put_many_is_bulk_with_per_row_versions() {
    let (store, schema) = open_fresh().await;
    let e = ready(&store, &reference::ROW, "bulk").await;
    reference::check_put_many(&store, &e, &PostgresDialect).await;
    drop_schema(&store, &schema).await;
}

fn with_outbox(mut e: EntityInfo) -> EntityInfo {
    e.outbox = Some(crate::store::OutboxSpec::default());
    e
}

/// Fetches and removes everything committed in the outbox now.
async fn relay_once(store: &PostgresStore, e: &EntityInfo) -> Vec<OutboxEntry> {
    let mut out = Vec::new();
    loop {
        let batch = store.outbox_fetch(e, 16).await.unwrap();
        if batch.is_empty() {
            return out;
        }
        let ids: Vec<String> = batch.iter().map(|b| b.id.clone()).collect();
        store.outbox_remove(e, &ids).await.unwrap();
        out.extend(batch);
    }
}

#[tokio::test]
async fn an_outbox_event_committed_late_is_fetched_later_and_nothing_is_skipped() {
    let (store, schema) = open_fresh().await;
    let e = with_outbox(info(&NOTE, "late"));
    store.ensure_entity(&e).await.unwrap();
    // Transaction A writes x through the store's own write path and stays
    // open: its event has the lower seq but is not committed.
    let mut tx_a = store.inner.pool.begin().await.unwrap();
    let ops = vec![put(note("x", "a"), Precondition::None)];
    let now = now_micros();
    let target = store.target(&e);
    let t = store.table_sql(&e).unwrap();
    let mut stmts = write::statements(target, &t, &ops, now).unwrap();
    let mut exec = store.exec(&mut tx_a, &e);
    let out = write::apply(&mut exec, target, &t, &ops[0], stmts.remove(0), now)
        .await
        .unwrap();
    assert_eq!(out, WriteOutcome::Written { version: 1 });
    // Transaction B (another connection) writes y and commits.
    store
        .write(&e, vec![put(note("y", "b"), Precondition::None)], true)
        .await
        .unwrap();
    // The relay sees only y, and removes it.
    let first = relay_once(&store, &e).await;
    let keys: Vec<&Key> = first.iter().map(|o| &o.event.key).collect();
    assert_eq!(keys, [&Key::from("y")]);
    assert_eq!(
        store.outbox_len(&e).await.unwrap(),
        0,
        "x is not visible yet"
    );
    // A commits: the next fetch sees x, although its seq is lower than y's.
    tx_a.commit().await.unwrap();
    let second = relay_once(&store, &e).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].event.key, Key::from("x"));
    assert_eq!(second[0].event.version, 1);
    let seq = |o: &OutboxEntry| o.id.parse::<i64>().unwrap();
    assert!(
        seq(&second[0]) < seq(&first[0]),
        "x took its seq before y did"
    );
    assert_eq!(store.outbox_len(&e).await.unwrap(), 0);
    store.drop_entity(&e).await.unwrap();
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn concurrent_writers_and_a_concurrent_relay_see_every_event_once_in_key_order() {
    let schema = format!(
        "pr_test_unit_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut cfg = PostgresConfig::new(pg_url());
    cfg.schema = Some(schema.clone());
    cfg.max_connections = 10;
    let store = Arc::new(PostgresStore::connect("db", cfg).await.expect("connect"));
    let e = with_outbox(info(&NOTE, "mixed"));
    store.ensure_entity(&e).await.unwrap();
    const WRITERS: usize = 8;
    const EACH: usize = 25;
    let done = Arc::new(AtomicBool::new(false));
    // The relay fetches and removes while the writers write.
    let relay = {
        let (store, e, done) = (store.clone(), e.clone(), done.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let finished = done.load(Ordering::SeqCst);
                let batch = relay_once(&store, &e).await;
                seen.extend(batch.into_iter().map(|o| o.event));
                if finished {
                    return seen;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (store, e) = (store.clone(), e.clone());
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..EACH {
                // Mixed keys (each shared by several writers), single puts
                // and two-key transactions.
                let k1 = format!("k{}", (w + i) % 5);
                let k2 = format!("k{}", (w * 3 + i + 1) % 5);
                let mut ops = vec![put(note(&k1, &format!("{w}-{i}")), Precondition::None)];
                if i % 4 == 0 && k1 != k2 {
                    ops.push(put(note(&k2, &format!("{w}-{i}b")), Precondition::None));
                }
                let keys: Vec<String> = ops.iter().map(|o| o.key().to_string()).collect();
                // Two transactions locking two keys in opposite orders may
                // deadlock: the server rolls one back (nothing written, no
                // event) and it is not acknowledged.
                match store.write(&e, ops, true).await {
                    Ok(out) => {
                        for (k, o) in keys.into_iter().zip(out) {
                            acked.push((k, o.version().unwrap()));
                        }
                    }
                    Err(Error::Rejected { .. }) => {}
                    Err(other) => panic!("{other}"),
                }
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    done.store(true, Ordering::SeqCst);
    let events = relay.await.unwrap();
    let mut per_key: HashMap<String, Vec<u64>> = HashMap::new();
    for ev in &events {
        per_key
            .entry(ev.key.to_string())
            .or_default()
            .push(ev.version);
    }
    for (k, versions) in &per_key {
        assert!(
            versions.windows(2).all(|w| w[0] < w[1]),
            "key {k}: events out of version order: {versions:?}"
        );
    }
    let mut seen: Vec<(String, u64)> = events
        .iter()
        .map(|ev| (ev.key.to_string(), ev.version))
        .collect();
    seen.sort();
    acked.sort();
    assert_eq!(
        seen, acked,
        "every acknowledged write's event, exactly once"
    );
    assert_eq!(store.outbox_len(&e).await.unwrap(), 0);
    store.drop_entity(&e).await.unwrap();
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn versioned_apply_edge_cases() {
    let (store, schema) = open_fresh().await;
    crate::backends::sql::sync_checks::versioned_apply_edges(&store, "edges").await;
    drop_schema(&store, &schema).await;
}

/// Ends every session of the store named `store` from a session of its
/// own (`pg_terminate_backend`) and waits until they are gone; how many
/// there were.
async fn terminate_sessions(store: &str) -> usize {
    use sqlx::Connection as _;
    let mut admin = PgConnection::connect(&pg_url()).await.unwrap();
    let app = format!("polyrouter:{store}");
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&app)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    for _ in 0..200 {
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
                .bind(&app)
                .fetch_one(&mut admin)
                .await
                .unwrap();
        if left == 0 {
            return ended.len();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the sessions of {app} did not end");
}

#[tokio::test]
async fn a_dead_pooled_connection_costs_a_read_no_error_with_a_ping_or_a_retry() {
    let (setup, schema) = open_fresh().await;
    let e = ready(&setup, &NOTE, "notes").await;
    setup
        .write(&e, vec![put(note("k", "v"), Precondition::None)], true)
        .await
        .unwrap();
    let hour = Duration::from_secs(3600);
    // (ping_after_idle, through the resilience layer, the read succeeds)
    for (ping_after_idle, resilient, ok) in [
        (Duration::ZERO, false, true), // the ping finds it dead
        (hour, true, true),            // no ping: the retry takes a new one
        (hour, false, false),          // control: the connection was dead
    ] {
        let name = format!(
            "dead_conn_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut cfg = PostgresConfig::new(pg_url());
        cfg.schema = Some(schema.clone());
        cfg.max_connections = 1;
        cfg.ping_after_idle = ConfigDuration(ping_after_idle);
        let store = PostgresStore::connect(&name, cfg).await.unwrap();
        assert!(body_of(&store, &e).await.is_ok());
        assert_eq!(terminate_sessions(&name).await, 1);
        let got = if resilient {
            body_of(&crate::layers::Resilience::new().layer(store), &e).await
        } else {
            body_of(&store, &e).await
        };
        match got {
            Ok(found) => {
                assert!(
                    ok,
                    "the read after the kill succeeded without ping or retry"
                );
                assert_eq!(found.as_deref(), Some("v"));
            }
            Err(err) => {
                assert!(
                    !ok,
                    "ping_after_idle {ping_after_idle:?}, resilient {resilient}: {err}"
                );
                assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
            }
        }
    }
    drop_schema(&setup, &schema).await;
}

async fn body_of(store: &impl Store, e: &EntityInfo) -> Result<Option<String>> {
    Ok(store
        .get(e, &Key::from("k"))
        .await?
        .map(|r| r.get("body").unwrap().as_str().unwrap().to_string()))
}
