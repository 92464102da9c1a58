//! A change-capture worker (capture + handler projection, the real
//! `router.sync()`) SIGKILLed 12 times at random moments while two plain-SQL
//! writers upsert, delete and update in transactions the same keys; a last
//! worker catches up. Afterwards the projected view equals the table row by
//! row, every key's applied versions only grew (the view's log of applied
//! events, written atomically with each apply, is increasing per key), and
//! the replication slot advanced.
//!
//! Needs `scripts/services pg-logical` (127.0.0.1:5442, `wal_level =
//! logical`), Redis on 6379 and NATS on 4222: the run is made once per bus
//! (Redis Streams under a prefix of its own, a JetStream stream of its
//! own; removed afterwards). The workers are this test binary
//! re-executed with `CDC_CHILD` set, killed by their pid.
//!
//! `cargo test --all-features --test cdc_crash`

#[path = "support/cdc.rs"]
mod cdc_support;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use polyrouter::Router;
use polyrouter::store::Applied;
use polyrouter::sync::nats::{NatsBus, NatsConfig};
use polyrouter::sync::projection::Projection;
use polyrouter::sync::redis_streams::{RedisStreamsBus, RedisStreamsConfig};
use polyrouter::sync::{ChangeEvent, Operation};
use sqlx::postgres::PgPool;

const KEYS: u64 = 30;
const KILLS: usize = 12;

fn pg_url() -> String {
    std::env::var("POLYROUTER_TEST_PG_LOGICAL_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5442/test".into())
}

fn redis_url() -> String {
    std::env::var("POLYROUTER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The bus table: Redis Streams under a prefix of the run, or a NATS
/// JetStream stream of its own.
fn bus_toml(bus: &str, table: &str) -> String {
    match bus {
        "nats" => format!(
            "kind = \"nats\"\nurl = \"{}\"\nstream = \"{}\"\nsubject_prefix = \"cdcc.{table}\"\n",
            nats_url(),
            table.to_uppercase()
        ),
        _ => format!(
            "kind = \"redis-streams\"\nurl = \"{}\"\nprefix = \"cdccrash:{table}\"\n",
            redis_url()
        ),
    }
}

fn nats_url() -> String {
    std::env::var("POLYROUTER_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

fn config(table: &str, bus: &str) -> String {
    format!(
        r#"
[stores.main]
kind = "postgres"
url = "{pg}"

[buses.events]
{bus}

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
        pg = pg_url(),
        bus = bus_toml(bus, table),
    )
}

/// The view: one row per key with the version it shows; each applied event
/// also appends (key, version) to the log, in the same statement.
struct View {
    pool: PgPool,
    table: String,
}

#[async_trait::async_trait]
impl Projection for View {
    async fn apply(&self, e: &ChangeEvent) -> polyrouter::Result<Applied> {
        let n = e
            .data
            .as_ref()
            .and_then(|d| d.get("n"))
            .and_then(|v| v.as_i64());
        let polyrouter::Key::Str(key) = &e.key else {
            panic!("string keys only, got {:?}", e.key)
        };
        let t = &self.table;
        let sql = format!(
            "WITH up AS (INSERT INTO \"{t}_view\" (id, n, ver, deleted) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET n = excluded.n, ver = excluded.ver, deleted = excluded.deleted \
             WHERE \"{t}_view\".ver < excluded.ver RETURNING id) \
             INSERT INTO \"{t}_log\" (id, ver) SELECT id, $3 FROM up"
        );
        let done = sqlx::query(&sql)
            .bind(key)
            .bind(n)
            .bind(e.version as i64)
            .bind(e.op == Operation::Delete)
            .execute(&self.pool)
            .await
            .map_err(|err| polyrouter::Error::unavailable("view", "item", err.to_string()))?;
        Ok(if done.rows_affected() == 1 {
            Applied::Applied
        } else {
            Applied::Stale { current: e.version }
        })
    }
}

async fn child(table: String, bus: String) {
    let router = Router::from_toml_str(&config(&table, &bus))
        .await
        .expect("the worker's router");
    let pool = PgPool::connect(&pg_url()).await.unwrap();
    let _sync = router
        .sync_builder()
        .handler("view", View { pool, table })
        .start()
        .await
        .expect("the worker starts");
    println!("READY");
    std::future::pending::<()>().await;
}

fn spawn(table: &str, bus: &str) -> cdc_support::Worker {
    cdc_support::spawn_worker(&[("CDC_CHILD", "1"), ("CDC_TABLE", table), ("CDC_BUS", bus)])
}

/// Plain SQL, never through polyrouter: upserts, deletes, and transactions
/// of three upserts (a deadlock between the writers just loses that one).
async fn writer(
    pool: PgPool,
    table: String,
    seed: u64,
    counter: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = cdc_support::Lcg(seed);
    let t = format!("\"{table}\"");
    let upsert = format!(
        "INSERT INTO {t} (id, n, _pr_version) VALUES ($1, $2, 1) ON CONFLICT (id) DO UPDATE SET n = excluded.n"
    );
    let delete = format!("DELETE FROM {t} WHERE id = $1");
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

async fn slot_position(pool: &PgPool, slot: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT (confirmed_flush_lsn - '0/0'::pg_lsn)::int8 FROM pg_replication_slots WHERE slot_name = $1",
    )
    .bind(slot)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Keys whose view row disagrees with the table.
async fn differences(pool: &PgPool, table: &str) -> Vec<String> {
    let rows: Vec<(String, i64)> = sqlx::query_as(&format!("SELECT id, n FROM \"{table}\""))
        .fetch_all(pool)
        .await
        .unwrap();
    let source: BTreeMap<String, i64> = rows.into_iter().collect();
    let rows: Vec<(String, Option<i64>, bool)> =
        sqlx::query_as(&format!("SELECT id, n, deleted FROM \"{table}_view\""))
            .fetch_all(pool)
            .await
            .unwrap();
    let view: BTreeMap<String, (Option<i64>, bool)> =
        rows.into_iter().map(|(k, n, d)| (k, (n, d))).collect();
    cdc_support::differences(&source, &view)
}

async fn parent(bus: &str) {
    let run = format!(
        "{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            % 1_000_000_000
    );
    let table = format!("cdcc_{run}_{}", &bus[..4]);
    let pool = PgPool::connect(&pg_url())
        .await
        .expect("the pg-logical server (scripts/services pg-logical) answers on 127.0.0.1:5442");
    for ddl in [
        format!(
            "CREATE TABLE \"{table}_view\" (id TEXT PRIMARY KEY, n BIGINT, ver BIGINT NOT NULL, deleted BOOLEAN NOT NULL)"
        ),
        format!(
            "CREATE TABLE \"{table}_log\" (seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL, ver BIGINT NOT NULL)"
        ),
    ] {
        sqlx::query(&ddl).execute(&pool).await.unwrap();
    }
    // The first worker creates the table, the publication and the slot.
    let mut worker = spawn(&table, bus);
    let start = slot_position(&pool, &table).await;

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
        worker = spawn(&table, bus);
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let applied_before_last: i64 =
        sqlx::query_scalar(&format!("SELECT count(*) FROM \"{table}_log\""))
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
        sqlx::query_as(&format!("SELECT id, ver FROM \"{table}_log\" ORDER BY seq"))
            .fetch_all(&pool)
            .await
            .unwrap();
    cdc_support::assert_versions_grow(&log);
    let end = slot_position(&pool, &table).await;
    assert!(end > start, "the slot advanced ({start} → {end})");
    let writes = counter.load(Ordering::Relaxed) - 1;
    println!(
        "{KILLS} capture workers SIGKILLed while plain SQL wrote {writes} upserts over {KEYS} keys; the view equals the table, {} events applied in increasing versions per key",
        log.len()
    );

    // Clean up: the slot (else it keeps log), the publication, the tables, the streams.
    sqlx::query("SELECT pg_drop_replication_slot($1)")
        .bind(&table)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(&format!("DROP PUBLICATION IF EXISTS \"{table}\""))
        .execute(&pool)
        .await
        .unwrap();
    for t in ["", "_view", "_log", "_sync", "_sync_dead_letters"] {
        sqlx::query(&format!("DROP TABLE IF EXISTS \"{table}{t}\""))
            .execute(&pool)
            .await
            .unwrap();
    }
    if bus == "nats" {
        let mut c = NatsConfig::new(nats_url());
        c.stream = table.to_uppercase();
        c.subject_prefix = format!("cdcc.{table}");
        NatsBus::open("events", c)
            .await
            .unwrap()
            .delete_stream()
            .await
            .unwrap();
    } else {
        RedisStreamsBus::open(
            "events",
            RedisStreamsConfig::new(redis_url()).with_prefix(format!("cdccrash:{table}")),
        )
        .unwrap()
        .delete_all()
        .await
        .unwrap();
    }
    println!("({bus} bus)");
}

fn main() -> ExitCode {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if std::env::var("CDC_CHILD").is_ok() {
        let table = std::env::var("CDC_TABLE").unwrap();
        let bus = std::env::var("CDC_BUS").unwrap();
        rt.block_on(child(table, bus));
        return ExitCode::SUCCESS;
    }
    // `cargo test` passes harness flags (`--list`, filters): a listing
    // gets the one test name.
    if std::env::args().any(|a| a == "--list") {
        println!("capture_worker_killed_12_times_redis_streams: test");
        println!("capture_worker_killed_12_times_nats: test");
        return ExitCode::SUCCESS;
    }
    rt.block_on(parent("redis-streams"));
    println!("test capture_worker_killed_12_times_redis_streams ... ok");
    rt.block_on(parent("nats"));
    println!("test capture_worker_killed_12_times_nats ... ok");
    ExitCode::SUCCESS
}
