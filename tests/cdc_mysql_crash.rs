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

#[path = "support/cdc.rs"]
mod cdc_support;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use polyrouter::Router;
use polyrouter::store::Applied;
use polyrouter::sync::projection::Projection;
use polyrouter::sync::redis_streams::{RedisStreamsBus, RedisStreamsConfig};
use polyrouter::sync::{ChangeEvent, Operation};
use sqlx::mysql::MySqlPool;

const KEYS: u64 = 30;
const KILLS: usize = 12;

fn db_url() -> String {
    std::env::var("POLYROUTER_TEST_MARIADB_BINLOG_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3316/test".into())
}

fn redis_url() -> String {
    std::env::var("POLYROUTER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn config(table: &str) -> String {
    format!(
        r#"
[stores.main]
kind = "mysql"
url = "{db}"

[buses.events]
kind = "redis-streams"
url = "{redis}"
prefix = "cdcmcrash:{table}"

[sync]
store = "main"
table = "{table}_sync"
lease = "500ms"

[entities.item]
store = "main"
table = "{table}"
change_capture = {{ bus = "events", slot = "{table}", interval = "20ms" }}
sql = {{ key = "id", columns = {{ id = "string", n = "int" }} }}

[projections.view]
kind = "handler"
entities = ["item"]
ack_wait = "1s"
retry_delay = "50ms"
max_attempts = 50
"#,
        db = db_url(),
        redis = redis_url(),
    )
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
        let n = e
            .data
            .as_ref()
            .and_then(|d| d.get("n"))
            .and_then(|v| v.as_i64());
        let polyrouter::Key::Str(key) = &e.key else {
            panic!("string keys only, got {:?}", e.key)
        };
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
    let router = Router::from_toml_str(&config(&table))
        .await
        .expect("the worker's router");
    let pool = MySqlPool::connect(&db_url()).await.unwrap();
    let _sync = router
        .sync_builder()
        .handler("view", View { pool, table })
        .start()
        .await
        .expect("the worker starts");
    println!("READY");
    std::future::pending::<()>().await;
}

fn spawn(table: &str) -> cdc_support::Worker {
    cdc_support::spawn_worker(&[("CDC_CHILD", "1"), ("CDC_TABLE", table)])
}

/// Plain SQL, never through polyrouter: upserts, deletes, and transactions
/// of three upserts (a deadlock between the writers just loses that one).
async fn writer(
    pool: MySqlPool,
    table: String,
    seed: u64,
    counter: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = cdc_support::Lcg(seed);
    let upsert = format!(
        "INSERT INTO `{table}` (id, n, _pr_version) VALUES (?, ?, 1) ON DUPLICATE KEY UPDATE n = VALUES(n)"
    );
    let delete = format!("DELETE FROM `{table}` WHERE id = ?");
    while !stop.load(Ordering::Relaxed) {
        let key = |rng: &mut cdc_support::Lcg| format!("k{:02}", rng.next(KEYS));
        match rng.next(10) {
            0..=5 => {
                sqlx::query(&upsert)
                    .bind(key(&mut rng))
                    .bind(counter.fetch_add(1, Ordering::Relaxed))
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            6 | 7 => {
                sqlx::query(&delete)
                    .bind(key(&mut rng))
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            _ => {
                let mut tx = pool.begin().await.unwrap();
                let mut ok = true;
                for _ in 0..3 {
                    let r = sqlx::query(&upsert)
                        .bind(key(&mut rng))
                        .bind(counter.fetch_add(1, Ordering::Relaxed))
                        .execute(&mut *tx)
                        .await;
                    if r.is_err() {
                        ok = false;
                        break;
                    }
                }
                if ok {
                    let _ = tx.commit().await;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn position(pool: &MySqlPool, slot: &str) -> u64 {
    sqlx::query_scalar("SELECT position FROM polyrouter_capture WHERE slot = ?")
        .bind(slot)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Keys whose view row disagrees with the table.
async fn differences(pool: &MySqlPool, table: &str) -> Vec<String> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as(&format!("SELECT CAST(id AS CHAR), n FROM `{table}`"))
            .fetch_all(pool)
            .await
            .unwrap();
    let source: BTreeMap<String, i64> = rows.into_iter().collect();
    let rows: Vec<(String, Option<i64>, bool)> =
        sqlx::query_as(&format!("SELECT id, n, deleted FROM `{table}_view`"))
            .fetch_all(pool)
            .await
            .unwrap();
    let view: BTreeMap<String, (Option<i64>, bool)> =
        rows.into_iter().map(|(k, n, d)| (k, (n, d))).collect();
    cdc_support::differences(&source, &view)
}

async fn parent() {
    let run = format!(
        "{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            % 1_000_000_000
    );
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
    let mut worker = spawn(&table);
    let start = position(&pool, &table).await;

    let counter = Arc::new(AtomicI64::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|i| {
            tokio::spawn(writer(
                pool.clone(),
                table.clone(),
                11 + i,
                counter.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let mut rng = cdc_support::Lcg(run.len() as u64 + std::process::id() as u64);
    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(100 + rng.next(500))).await;
        worker.kill().expect("SIGKILL the worker by its pid");
        worker.wait().unwrap();
        worker = spawn(&table);
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let applied_before_last: i64 =
        sqlx::query_scalar(&format!("SELECT count(*) FROM `{table}_log`"))
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        applied_before_last > 0,
        "the killed workers applied nothing"
    );

    // The last worker catches up.
    let mut diff = Vec::new();
    for _ in 0..600 {
        diff = differences(&pool, &table).await;
        if diff.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worker.kill().unwrap();
    worker.wait().unwrap();
    assert!(
        diff.is_empty(),
        "the view differs from the table: {diff:#?}"
    );

    // Per key, the applied versions only grew.
    let log: Vec<(String, i64)> =
        sqlx::query_as(&format!("SELECT id, ver FROM `{table}_log` ORDER BY seq"))
            .fetch_all(&pool)
            .await
            .unwrap();
    cdc_support::assert_versions_grow(&log);
    let end = position(&pool, &table).await;
    assert!(end > start, "the position advanced ({start} → {end})");
    let writes = counter.load(Ordering::Relaxed) - 1;
    println!(
        "{KILLS} capture workers SIGKILLed while plain SQL wrote {writes} upserts over {KEYS} keys; the view equals the table, {} events applied in increasing versions per key",
        log.len()
    );

    // Clean up: the position row, the tables, the streams.
    sqlx::query("DELETE FROM polyrouter_capture WHERE slot = ?")
        .bind(&table)
        .execute(&pool)
        .await
        .unwrap();
    for t in ["", "_view", "_log", "_sync", "_sync_dead_letters"] {
        sqlx::query(&format!("DROP TABLE IF EXISTS `{table}{t}`"))
            .execute(&pool)
            .await
            .unwrap();
    }
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if std::env::var("CDC_CHILD").is_ok() {
        let table = std::env::var("CDC_TABLE").unwrap();
        rt.block_on(child(table));
        return ExitCode::SUCCESS;
    }
    // `cargo test` passes harness flags (`--list`, filters): a listing
    // gets the one test name.
    if std::env::args().any(|a| a == "--list") {
        println!("binlog_capture_worker_killed_12_times: test");
        return ExitCode::SUCCESS;
    }
    rt.block_on(parent());
    println!("test binlog_capture_worker_killed_12_times ... ok");
    ExitCode::SUCCESS
}
