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

#[path = "support/cdc_scenarios.rs"]
mod cdc_scenarios;
#[path = "support/cdc_sql.rs"]
mod cdc_sql;
#[path = "support/cdc.rs"]
mod cdc_support;
#[path = "support/mariadb.rs"]
mod mariadb;

use std::time::Duration;

use cdc_scenarios::{item_in, start_seen};
use cdc_sql::{Engine, Exec};
use polyrouter::sync::Operation;
use polyrouter::{Error, Router, Store};
use sqlx::mysql::MySqlPool;

fn binlog_url() -> String {
    std::env::var("POLYROUTER_TEST_MARIADB_BINLOG_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3316/test".into())
}

fn unique(tag: &str) -> String {
    cdc_support::unique("cdcm", tag)
}

fn config(url: &str, table: &str) -> String {
    cdc_scenarios::config("mysql", url, table)
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
    for base in cdc_support::dead_runs(&names) {
        drop_run(pool, &base).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plain_sql_inserts_updates_deletes_and_transactions_reach_projections() {
    let table = unique("crud");
    let router = Router::from_toml_str(&config(&binlog_url(), &table))
        .await
        .unwrap();
    let (sync, seen) = start_seen(&router).await;
    let db = pool().await;
    let before = db.position(&table).await;
    // Plain SQL: polyrouter's version column is set to 0 and never bumped.
    cdc_scenarios::plain_sql_changes(&db, &table, 0).await;
    let t = format!("`{table}`");
    // One statement, three rows: one rows event, an event (and id) each.
    db.execute(
        &format!(
            "INSERT INTO {t} (id, n, _pr_version) VALUES ('m1', 1, 0), ('m2', 2, 0), ('m3', 3, 0)"
        ),
        &[],
    )
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
    cdc_scenarios::put_and_delete_through_the_store(&router, &table).await;
    sync.settle(Duration::from_secs(30)).await.unwrap();

    let got = seen.by_key();
    cdc_scenarios::assert_crud_events(&got, &table, "mysql");
    use Operation::Put;
    assert_eq!(
        cdc_scenarios::ops(&got, "cli"),
        vec![(Put, Some(7)), (Put, Some(8))]
    );
    for k in ["m1", "m2", "m3"] {
        assert_eq!(cdc_scenarios::ops(&got, k).len(), 1, "{k}");
    }
    cdc_scenarios::assert_replica_and_status(&router, &sync, &table, &got, &[("cli", 8)]).await;
    let after = db.position(&table).await;
    assert!(after > before, "the position advanced ({before} → {after})");
    let r = cdc_scenarios::item_retention(&router).await;
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
    let db = pool().await;
    let (source, first) = cdc_scenarios::source_with_three_events(&router, &db, &table).await;
    let ids = cdc_scenarios::ids;
    // `max` bounds a read at a transaction's end.
    let one = source.read(1).await.unwrap();
    assert_eq!(ids(&one), ids(&first)[..1].to_vec());
    source.commit(one.position.unwrap()).await.unwrap();
    let rest = source.read(100).await.unwrap();
    assert_eq!(ids(&rest), ids(&first)[1..].to_vec());
    cdc_scenarios::commit_read_and_remove(&*source, &first, Some("reserved")).await;
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
    let info = item_in("main", &table);
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
