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
use polyrouter::sync::nats::{NatsBus, NatsConfig};
use polyrouter::sync::projection::Projection;
use polyrouter::sync::redis_streams::{RedisStreamsBus, RedisStreamsConfig};
use polyrouter::sync::{ChangeEvent, Operation};
use sqlx::postgres::PgPool;

fn pg_url() -> String {
    std::env::var("POLYROUTER_TEST_PG_LOGICAL_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5442/test".into())
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
    cdc_crash::config("postgres", &pg_url(), &bus_toml(bus, table), table)
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
        let (key, n) = cdc_crash::key_and_n(e);
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
    let pool = PgPool::connect(&pg_url()).await.unwrap();
    cdc_crash::serve_worker(&config(&table, &bus), View { pool, table }).await;
}

fn spawn(table: &str, bus: &str) -> cdc_support::Worker {
    cdc_support::spawn_worker(&[("CDC_CHILD", "1"), ("CDC_TABLE", table), ("CDC_BUS", bus)])
}

async fn parent(bus: &str) {
    let run = cdc_crash::run_id();
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
    let worker = spawn(&table, bus);
    let start = pool.position(&table).await;

    let seed = run.len() as u64 + std::process::id() as u64;
    cdc_crash::kill_workers_while_writing(&pool, &table, seed, start, worker, || {
        spawn(&table, bus)
    })
    .await;

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
    cdc_crash::drop_tables(&pool, &table).await;
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
    crash_main::crash_main(
        "CDC_CHILD",
        || child(env("CDC_TABLE"), env("CDC_BUS")),
        &[
            "capture_worker_killed_12_times_redis_streams",
            "capture_worker_killed_12_times_nats",
        ],
        |name| {
            parent(if name.ends_with("_nats") {
                "nats"
            } else {
                "redis-streams"
            })
        },
    )
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap()
}
