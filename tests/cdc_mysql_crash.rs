//! A MariaDB binlog capture worker (capture + handler projection, the real
//! `router.sync()`) SIGKILLed 12 times at random moments while two
//! plain-SQL writers upsert, delete and write 3-row transactions on the
//! same keys; a last worker catches up. Afterwards the projected view
//! equals the table row by row, every key's applied versions only grew
//! (the view's log of applied events, written in the same transaction as
//! each apply, is increasing per key: nothing applied twice), and the
//! durable binlog position advanced.
//!
//! Needs `scripts/services mariadb-binlog` (127.0.0.1:3316, row-based
//! binlog) and Redis on 6379 (the bus: Redis Streams under a prefix of the
//! run, removed afterwards). The workers are this test binary re-executed
//! with `CDC_CHILD` set, killed by their pid.
//!
//! `cargo test --all-features --test cdc_mysql_crash`

#[path = "support/cdc_crash.rs"]
mod cdc_crash;
#[path = "support/cdc_sql.rs"]
mod cdc_sql;
#[path = "support/cdc.rs"]
mod cdc_support;
#[path = "support/crash_main.rs"]
mod crash_main;

use std::process::ExitCode;

use cdc_crash::redis_url;
use cdc_sql::Engine;
use polyrouter::store::Applied;
use polyrouter::sync::projection::Projection;
use polyrouter::sync::redis_streams::{RedisStreamsBus, RedisStreamsConfig};
use polyrouter::sync::{ChangeEvent, Operation};
use sqlx::mysql::MySqlPool;

fn db_url() -> String {
    std::env::var("POLYROUTER_TEST_MARIADB_BINLOG_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3316/test".into())
}

fn config(table: &str) -> String {
    let bus = format!(
        "kind = \"redis-streams\"\nurl = \"{}\"\nprefix = \"cdcmcrash:{table}\"\n",
        redis_url()
    );
    cdc_crash::config("mysql", &db_url(), &bus, table)
}

/// The view: one row per key with the version it shows; each applied event
/// also appends (key, version) to the log, in the same transaction.
struct View {
    pool: MySqlPool,
    table: String,
}

#[async_trait::async_trait]
impl Projection for View {
    async fn apply(&self, e: &ChangeEvent) -> polyrouter::Result<Applied> {
        let failed =
            |err: sqlx::Error| polyrouter::Error::unavailable("view", "item", err.to_string());
        let (key, n) = cdc_crash::key_and_n(e);
        let t = &self.table;
        let version = e.version as i64;
        let mut tx = self.pool.begin().await.map_err(failed)?;
        let shown: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT ver FROM `{t}_view` WHERE id = ? FOR UPDATE"
        ))
        .bind(key)
        .fetch_optional(&mut *tx)
        .await
        .map_err(failed)?;
        if shown.is_some_and(|v| v >= version) {
            tx.rollback().await.map_err(failed)?;
            return Ok(Applied::Stale { current: e.version });
        }
        sqlx::query(&format!(
            "INSERT INTO `{t}_view` (id, n, ver, deleted) VALUES (?, ?, ?, ?) \
             ON DUPLICATE KEY UPDATE n = VALUES(n), ver = VALUES(ver), deleted = VALUES(deleted)"
        ))
        .bind(key)
        .bind(n)
        .bind(version)
        .bind(e.op == Operation::Delete)
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
        sqlx::query(&format!("INSERT INTO `{t}_log` (id, ver) VALUES (?, ?)"))
            .bind(key)
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        Ok(Applied::Applied)
    }
}

async fn child(table: String) {
    let pool = MySqlPool::connect(&db_url()).await.unwrap();
    cdc_crash::serve_worker(&config(&table), View { pool, table }).await;
}

fn spawn(table: &str) -> cdc_support::Worker {
    cdc_support::spawn_worker(&[("CDC_CHILD", "1"), ("CDC_TABLE", table)])
}

async fn parent() {
    let run = cdc_crash::run_id();
    let table = format!("cdcmc_{run}");
    let pool = MySqlPool::connect(&db_url()).await.expect(
        "the mariadb-binlog server (scripts/services mariadb-binlog) answers on 127.0.0.1:3316",
    );
    for ddl in [
        format!(
            "CREATE TABLE `{table}_view` (id VARCHAR(64) PRIMARY KEY, n BIGINT, ver BIGINT NOT NULL, deleted BOOLEAN NOT NULL)"
        ),
        format!(
            "CREATE TABLE `{table}_log` (seq BIGINT AUTO_INCREMENT PRIMARY KEY, id VARCHAR(64) NOT NULL, ver BIGINT NOT NULL)"
        ),
    ] {
        sqlx::query(&ddl).execute(&pool).await.unwrap();
    }
    // The first worker creates the table and the slot's position row.
    let worker = spawn(&table);
    let start = pool.position(&table).await;

    let seed = run.len() as u64 + std::process::id() as u64;
    cdc_crash::kill_workers_while_writing(&pool, &table, seed, start, worker, || spawn(&table))
        .await;

    // Clean up: the position row, the tables, the streams.
    sqlx::query("DELETE FROM polyrouter_capture WHERE slot = ?")
        .bind(&table)
        .execute(&pool)
        .await
        .unwrap();
    cdc_crash::drop_tables(&pool, &table).await;
    RedisStreamsBus::open(
        "events",
        RedisStreamsConfig::new(redis_url()).with_prefix(format!("cdcmcrash:{table}")),
    )
    .unwrap()
    .delete_all()
    .await
    .unwrap();
}

fn main() -> ExitCode {
    crash_main::crash_main(
        "CDC_CHILD",
        || child(std::env::var("CDC_TABLE").unwrap()),
        &["binlog_capture_worker_killed_12_times"],
        |_| parent(),
    )
}
