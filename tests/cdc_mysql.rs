//! Change capture from the MariaDB row-based binlog (docs/cdc.md, "MySQL /
//! MariaDB"): rows written with plain SQL — a raw sqlx connection, not the
//! router — reach projections as change events.
//!
//! Needs the private binlog server `scripts/services mariadb-binlog` starts
//! on 127.0.0.1:3316 (`POLYROUTER_TEST_MARIADB_BINLOG_URL` overrides it);
//! the refusal test also reads the settings of the machine's MariaDB on
//! 3306 (binlog off) and starts a MariaDB of its own (a `STATEMENT`
//! binlog, then purged files) with `mariadb-install-db` and `mariadbd`.
//!
//! `cargo test --all-features --test cdc_mysql`
#![cfg(all(feature = "mysql", feature = "redis"))]

#[path = "support/cdc.rs"]
mod cdc_support;
#[path = "support/mariadb.rs"]
mod mariadb;

use std::time::Duration;

use cdc_support::{Seen, n_of};
use polyrouter::sync::Operation;
use polyrouter::{Error, FieldDef, FieldKind, Key, KeyKind, Router, Schema, Store, Value};
use sqlx::mysql::MySqlPool;

static FIELDS: [FieldDef; 3] = [
    FieldDef::required("id", FieldKind::String),
    FieldDef::required("n", FieldKind::Int),
    FieldDef::nullable("note", FieldKind::String),
];
/// The entity as its `sql` columns declare it.
static ITEM: Schema = Schema {
    name: "item",
    key: "id",
    key_kind: KeyKind::Str,
    partition_key: None,
    version: None,
    fields: &FIELDS,
};

fn binlog_url() -> String {
    std::env::var("POLYROUTER_TEST_MARIADB_BINLOG_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3316/test".into())
}

fn unique(tag: &str) -> String {
    cdc_support::unique("cdcm", tag)
}

fn config(url: &str, table: &str) -> String {
    format!(
        r#"
[stores.main]
kind = "mysql"
url = "{url}"

[stores.replica]
kind = "memory"

[buses.events]
kind = "memory"

[sync]
store = "main"
table = "{table}_sync"
lease = "1s"

[entities.item]
store = "main"
table = "{table}"
change_capture = {{ bus = "events", slot = "{table}", interval = "20ms" }}
sql = {{ key = "id", columns = {{ id = "string", n = "int", note = "string?" }} }}

[projections.seen]
kind = "handler"
entities = ["item"]

[projections.item_replica]
kind = "replica"
entities = ["item"]
store = "replica"
"#
    )
}

async fn pool() -> MySqlPool {
    let pool = MySqlPool::connect(&binlog_url()).await.expect(
        "the mariadb-binlog server (scripts/services mariadb-binlog) answers on 127.0.0.1:3316",
    );
    sweep_dead_runs(&pool).await;
    pool
}

/// Drops the tables and position rows of earlier runs of this test binary
/// whose process is gone. Names are `cdcm_{tag}_{pid}_{n}…`.
async fn sweep_dead_runs(pool: &MySqlPool) {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'cdcm\\_%'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for name in names {
        if cdc_support::run_is_dead(&name) {
            let base = name.split('_').take(4).collect::<Vec<_>>().join("_");
            drop_run(pool, &base).await;
        }
    }
}

async fn drop_run(pool: &MySqlPool, table: &str) {
    for t in [
        table.to_string(),
        format!("{table}_sync"),
        format!("{table}_sync_dead_letters"),
    ] {
        sqlx::query(&format!("DROP TABLE IF EXISTS `{t}`"))
            .execute(pool)
            .await
            .unwrap();
    }
    let _ = sqlx::query("DELETE FROM polyrouter_capture WHERE slot = ?")
        .bind(table)
        .execute(pool)
        .await;
}

/// The slot's durable position.
async fn position(pool: &MySqlPool, slot: &str) -> u64 {
    sqlx::query_scalar("SELECT position FROM polyrouter_capture WHERE slot = ?")
        .bind(slot)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plain_sql_inserts_updates_deletes_and_transactions_reach_projections() {
    let table = unique("crud");
    let router = Router::from_toml_str(&config(&binlog_url(), &table))
        .await
        .unwrap();
    let seen = Seen::default();
    let sync = router
        .sync_builder()
        .handler("seen", seen.clone())
        .start()
        .await
        .unwrap();
    let db = pool().await;
    let before = position(&db, &table).await;
    let t = format!("`{table}`");
    // Plain SQL: polyrouter's version column is set to 0 and never bumped.
    let ins = format!("INSERT INTO {t} (id, n, note, _pr_version) VALUES (?, ?, ?, 0)");
    sqlx::query(&ins)
        .bind("a")
        .bind(1i64)
        .bind("first")
        .execute(&db)
        .await
        .unwrap();
    // A multi-row transaction.
    let mut tx = db.begin().await.unwrap();
    for (k, n) in [("b", 2i64), ("c", 3)] {
        sqlx::query(&ins)
            .bind(k)
            .bind(n)
            .bind(None::<String>)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    sqlx::query(&format!("UPDATE {t} SET n = n + 100 WHERE id = 'a'"))
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // A rolled-back transaction: nothing of it may be emitted.
    let mut tx = db.begin().await.unwrap();
    sqlx::query(&ins)
        .bind("never")
        .bind(9i64)
        .bind("rolled back")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(&format!("UPDATE {t} SET n = -1 WHERE id = 'a'"))
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    sqlx::query(&format!("UPDATE {t} SET n = 20, note = 'x' WHERE id = 'b'"))
        .execute(&db)
        .await
        .unwrap();
    sqlx::query(&format!("DELETE FROM {t} WHERE id = 'c'"))
        .execute(&db)
        .await
        .unwrap();
    // A key changed by UPDATE: the old key is deleted, the new one put.
    sqlx::query(&format!("UPDATE {t} SET id = 'd' WHERE id = 'b'"))
        .execute(&db)
        .await
        .unwrap();
    // One statement, three rows: one rows event, an event (and id) each.
    sqlx::query(&format!(
        "INSERT INTO {t} (id, n, _pr_version) VALUES ('m1', 1, 0), ('m2', 2, 0), ('m3', 3, 0)"
    ))
    .execute(&db)
    .await
    .unwrap();
    // With the `mariadb` command-line client too.
    let out = std::process::Command::new("mariadb")
        .args(["--protocol=tcp", "-h", "127.0.0.1", "-P3316", "-u", "root", "test", "-e"])
        .arg(format!(
            "INSERT INTO {t} (id, n, _pr_version) VALUES ('cli', 7, 0); UPDATE {t} SET n = 8 WHERE id = 'cli'"
        ))
        .output()
        .expect("run the mariadb client");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Writes through polyrouter's store are captured too; its delete
    // leaves a tombstone row (an update), captured as a delete.
    let main = router.store("main").unwrap().clone();
    let main_info = polyrouter::store::EntityInfo {
        table: table.clone(),
        store: "main".into(),
        ..polyrouter::store::EntityInfo::new(&ITEM)
    };
    let mut r = polyrouter::Record::new(Key::from("e"));
    r.set("id", Value::from("e"));
    r.set("n", Value::I64(5));
    r.set("note", Value::Null);
    for op in [
        polyrouter::store::WriteOp::Put {
            record: r,
            precondition: polyrouter::Precondition::None,
            ttl: None,
        },
        polyrouter::store::WriteOp::Delete {
            key: Key::from("e"),
            precondition: polyrouter::Precondition::None,
        },
    ] {
        main.write(&main_info, vec![op], true).await.unwrap();
    }
    sync.settle(Duration::from_secs(30)).await.unwrap();

    let got = seen.by_key();
    let ops = |k: &str| -> Vec<(Operation, Option<i64>)> {
        got.get(k)
            .map(|v| v.iter().map(|e| (e.op, n_of(e))).collect())
            .unwrap_or_default()
    };
    use Operation::{Delete, Put};
    assert_eq!(ops("a"), vec![(Put, Some(1)), (Put, Some(101))]);
    assert_eq!(
        ops("b"),
        vec![(Put, Some(2)), (Put, Some(20)), (Delete, None)]
    );
    assert_eq!(ops("c"), vec![(Put, Some(3)), (Delete, None)]);
    assert_eq!(ops("d"), vec![(Put, Some(20))]);
    assert_eq!(ops("cli"), vec![(Put, Some(7)), (Put, Some(8))]);
    assert_eq!(ops("e"), vec![(Put, Some(5)), (Delete, None)]);
    for k in ["m1", "m2", "m3"] {
        assert_eq!(ops(k).len(), 1, "{k}");
    }
    assert!(
        !got.contains_key("never"),
        "a rolled-back insert was emitted"
    );
    assert_eq!(got.len(), 9, "{:?}", got.keys());
    let mut ids = std::collections::BTreeSet::new();
    for (k, events) in &got {
        for w in events.windows(2) {
            assert!(
                w[0].version < w[1].version,
                "{k}: versions must grow: {} then {}",
                w[0].version,
                w[1].version
            );
        }
        for e in events {
            assert_eq!((e.store.as_str(), e.entity.as_str()), ("main", "item"));
            assert!(e.id.starts_with(&format!("mysql:{table}:")), "{}", e.id);
            assert!(ids.insert(e.id.clone()), "id {} twice", e.id);
        }
    }
    // The transaction's changes share its commit time.
    assert_eq!(got["b"][0].time, got["c"][0].time);
    let a_first = &got["a"][0];
    assert_eq!(
        a_first.data.as_ref().unwrap()["note"],
        serde_json::json!("first")
    );
    assert!(
        a_first.data.as_ref().unwrap().get("_pr_version").is_none(),
        "only the entity's fields travel"
    );

    // The replica projection holds the table's final state, at the
    // captured versions.
    let replica = router.store("replica").unwrap().clone();
    let info = polyrouter::store::EntityInfo {
        table: table.clone(),
        store: "replica".into(),
        ..polyrouter::store::EntityInfo::new(&ITEM)
    };
    let get = |k: &'static str| {
        let (replica, info) = (replica.clone(), info.clone());
        async move { replica.get(&info, &Key::from(k)).await.unwrap() }
    };
    let a = get("a").await.expect("a in the replica");
    assert_eq!(a.value("n"), &Value::I64(101));
    assert_eq!(a.version, got["a"][1].version);
    assert_eq!(get("d").await.unwrap().value("n"), &Value::I64(20));
    assert_eq!(get("cli").await.unwrap().value("n"), &Value::I64(8));
    assert!(get("b").await.is_none() && get("c").await.is_none() && get("e").await.is_none());
    let status = sync.status();
    assert_eq!(status.captures.len(), 1);
    assert_eq!(status.captures[0].captured, 15);
    assert!(status.captures[0].last_error.is_none());
    let after = position(&db, &table).await;
    assert!(after > before, "the position advanced ({before} → {after})");
    let r = polyrouter::sync::capture_retention(
        &router,
        router.routes().find(|r| r.entity == "item").unwrap(),
    )
    .await
    .unwrap();
    assert!(r.position >= after, "{} < {after}", r.position);
    assert_eq!(r.status, "reserved");
    sync.shutdown().await.unwrap();
    drop_run(&db, &table).await;
}

/// The source contract: until `commit`, reading again returns the same
/// events with the same ids and versions; after it, nothing of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_source_rereads_the_same_events_until_committed() {
    let table = unique("source");
    let router = Router::from_toml_str(&config(&binlog_url(), &table))
        .await
        .unwrap();
    let store = router.store("main").unwrap().clone();
    let info = polyrouter::store::EntityInfo {
        table: table.clone(),
        store: "main".into(),
        ..polyrouter::store::EntityInfo::new(&ITEM)
    };
    store.ensure_entity(&info).await.unwrap();
    let source = store.change_source(&info, &table).unwrap();
    source.prepare().await.unwrap();
    source.prepare().await.unwrap(); // idempotent
    let db = pool().await;
    for i in 0..3i64 {
        sqlx::query(&format!(
            "INSERT INTO `{table}` (id, n, _pr_version) VALUES (?, ?, 1) ON DUPLICATE KEY UPDATE n = VALUES(n)"
        ))
        .bind("k")
        .bind(i)
        .execute(&db)
        .await
        .unwrap();
    }
    let first = source.read(100).await.unwrap();
    let again = source.read(100).await.unwrap();
    assert_eq!(first.events.len(), 3);
    let ids = |b: &polyrouter::sync::capture::CapturedBatch| {
        b.events
            .iter()
            .map(|e| (e.id.clone(), e.version))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&first),
        ids(&again),
        "a re-read gives the same ids and versions"
    );
    assert!(first.events.windows(2).all(|w| w[0].version < w[1].version));
    // `max` bounds a read at a transaction's end.
    let one = source.read(1).await.unwrap();
    assert_eq!(ids(&one), ids(&first)[..1].to_vec());
    source.commit(one.position.unwrap()).await.unwrap();
    let rest = source.read(100).await.unwrap();
    assert_eq!(ids(&rest), ids(&first)[1..].to_vec());
    source.commit(first.position.unwrap()).await.unwrap();
    let after = source.read(100).await.unwrap();
    assert!(after.events.is_empty(), "{:?}", ids(&after));
    let r = source.retention().await.unwrap();
    assert!(r.position >= first.position.unwrap());
    assert_eq!(r.status, "reserved");
    source.remove().await.unwrap();
    assert!(source.retention().await.is_err(), "the position is gone");
    drop_run(&db, &table).await;
}

fn expect_unsupported<T: std::fmt::Debug>(r: polyrouter::Result<T>, needle: &str) {
    match r {
        Err(Error::Unsupported { capability, .. }) => {
            assert!(capability.contains(needle), "{capability}")
        }
        other => panic!("expected Unsupported naming {needle:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_without_a_row_binlog_are_refused_and_a_purged_position_fails_loudly() {
    // The machine's shared server on 3306 runs without a binlog: only
    // read here (its settings are never changed).
    let shared = MySqlPool::connect("mysql://root@127.0.0.1:3306/test")
        .await
        .expect("the machine's MariaDB answers on 127.0.0.1:3306 (scripts/services mariadb)");
    let log_bin: i64 = sqlx::query_scalar("SELECT @@log_bin + 0")
        .fetch_one(&shared)
        .await
        .unwrap();
    if log_bin == 0 {
        let table = unique("nobin");
        let router = Router::from_toml_str(&config("mysql://root@127.0.0.1:3306/test", &table))
            .await
            .unwrap();
        expect_unsupported(
            router.sync_builder().projections(false).start().await,
            "`log_bin = OFF`",
        );
        drop_run(&shared, &table).await;
    } else {
        eprintln!("the shared server on 3306 writes a binlog: its refusal is not checked");
    }

    // A server of this test's own, logging statements.
    let server = mariadb::PrivateMariaDb::start(&[
        "--server-id=1",
        "--log-bin=binlog",
        "--binlog-format=STATEMENT",
    ]);
    let table = unique("stmt");
    let router = Router::from_toml_str(&config(&server.url(), &table))
        .await
        .unwrap();
    expect_unsupported(
        router.sync_builder().projections(false).start().await,
        "binlog_format = ROW",
    );
    // Row images without every column.
    server.sql("SET GLOBAL binlog_format = 'ROW'; SET GLOBAL binlog_row_image = 'MINIMAL'");
    expect_unsupported(
        router.sync_builder().projections(false).start().await,
        "binlog_row_image = FULL",
    );
    server.sql("SET GLOBAL binlog_row_image = 'FULL'");

    // A position whose binlog file was purged before it was read: the
    // status says `lost` and reading fails loudly, naming the loss.
    let store = router.store("main").unwrap().clone();
    let info = polyrouter::store::EntityInfo {
        table: table.clone(),
        store: "main".into(),
        ..polyrouter::store::EntityInfo::new(&ITEM)
    };
    store.ensure_entity(&info).await.unwrap();
    let source = store.change_source(&info, &table).unwrap();
    source.prepare().await.unwrap();
    server.sql(&format!(
        "INSERT INTO test.`{table}` (id, n, _pr_version) VALUES ('k', 1, 1); FLUSH BINARY LOGS"
    ));
    let current = server.sql("SHOW MASTER STATUS");
    let current = current.split_whitespace().next().unwrap().to_string();
    // The server keeps a file until its binlog checkpoint is written
    // (asynchronously, after the flush): purge until the first is gone.
    let mut oldest = String::new();
    for _ in 0..100 {
        server.sql(&format!("PURGE BINARY LOGS TO '{current}'"));
        oldest = server.sql("SHOW BINARY LOGS");
        if oldest.split_whitespace().next() == Some(current.as_str()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = source.retention().await.unwrap();
    assert_eq!(r.status, "lost", "binlog files now: {oldest}");
    let e = source.read(100).await.unwrap_err();
    assert!(e.to_string().contains("purged"), "{e}");
    // `remove` and `prepare` start it again at the end.
    source.remove().await.unwrap();
    source.prepare().await.unwrap();
    assert!(source.read(100).await.unwrap().events.is_empty());
    assert_eq!(source.retention().await.unwrap().status, "reserved");
}
