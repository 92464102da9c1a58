//! Migration benches, one run each; figures in docs/benchmarks.md.
//!
//! - `throughput`: backfill rows/s and verify rows/s, PostgreSQL →
//!   PostgreSQL (100 000 rows, two schemas of the machine's server),
//!   unthrottled (`rate = 0`).
//! - `cosmos`: the same, PostgreSQL → Cosmos DB (the emulator; 2 000 rows).
//! - `foreground`: a steady point load on the source through the router
//!   (8 tasks, 500 ops/s in all, half gets and half puts of random keys of
//!   100 000), its p50 / p99 latency while idle (10 s before and 10 s
//!   after) and while a backfill of the 100 000 rows runs PostgreSQL →
//!   PostgreSQL with the default throttle and batch
//!   (`POLYROUTER_BENCH_RATE` / `POLYROUTER_BENCH_BATCH` set others). The
//!   idle window after shows how far the machine's own load drifted.
//!
//! ```text
//! cargo bench --bench migrate --features postgres,cosmos [-- throughput|cosmos|foreground …]
//! ```
//! (no name: all three).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use polyrouter::store::{EntityInfo, WriteOp};
use polyrouter::{Entity, Precondition, Record, Router};
use serde::{Deserialize, Serialize};

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const COSMOS_KEY: &str =
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";

#[derive(Entity, Serialize, Deserialize, Debug, Clone)]
#[entity(name = "item", key = "id")]
struct Item {
    id: i64,
    name: String,
    n: i64,
    score: f64,
    note: Option<String>,
    #[entity(version)]
    version: u64,
}

/// `rate`: the migration's `rate`; `None`: the default throttle.
fn config(tag: &str, target: &str, batch: usize, rate: Option<u64>) -> String {
    let rate = rate.map_or(String::new(), |r| format!("rate = {r}\n"));
    format!(
        r#"[stores.src]
kind = "postgres"
url = "{PG_URL}"
schema = "migbench_src_{tag}"
max_connections = 16

{target}
[buses.events]
kind = "memory"

[sync]
store = "src"

[entities.item]
store = "src"
outbox = {{ bus = "events" }}

[migrations.items]
entity = "item"
to = "dst"
batch = {batch}
{rate}"#
    )
}

fn item(i: i64) -> Item {
    Item {
        id: i,
        name: format!("item-{i}"),
        n: i,
        score: i as f64 / 3.0,
        note: (i % 3 == 0).then(|| format!("note {i}")),
        version: 0,
    }
}

/// Writes `rows` items to the source without events (pre-existing rows).
async fn seed(router: &Router, rows: i64) {
    router.repo::<Item>().await.expect("repo");
    let src = router.store("src").unwrap();
    let plain = EntityInfo {
        store: "src".into(),
        ..EntityInfo::new(Item::schema())
    };
    for start in (0..rows).step_by(2000) {
        let ops = (start..(start + 2000).min(rows))
            .map(|i| WriteOp::Put {
                record: Record::from_entity(&item(i)).unwrap(),
                precondition: Precondition::None,
                ttl: None,
            })
            .collect();
        src.write(&plain, ops, true).await.expect("seed");
    }
}

async fn run(what: &str, cfg: &str, rows: i64) {
    let router = Router::from_toml_str(cfg).await.expect("router");
    seed(&router, rows).await;
    let m = router.migration("items").await.expect("migration");
    let t = Instant::now();
    let s = m.start(&mut |_| {}).await.expect("backfill");
    let backfill = t.elapsed();
    let t = Instant::now();
    let v = m.verify(&mut |_| {}).await.expect("verify");
    let verify = t.elapsed();
    let vs = v.verify.expect("verify state");
    assert_eq!(vs.differences(), 0);
    println!(
        "{what}: backfill {} rows in {:.2} s = {:.0} rows/s; verify {} rows (both sides) in {:.2} s = {:.0} rows/s",
        s.backfill.rows,
        backfill.as_secs_f64(),
        s.backfill.rows as f64 / backfill.as_secs_f64(),
        vs.source_rows + vs.target_rows,
        verify.as_secs_f64(),
        (vs.source_rows + vs.target_rows) as f64 / verify.as_secs_f64(),
    );
}

async fn drop_schemas(tag: &str) {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(PG_URL).await.expect("postgres");
    for s in ["src", "dst"] {
        sqlx::query(&format!(
            "DROP SCHEMA IF EXISTS \"migbench_{s}_{tag}\" CASCADE"
        ))
        .execute(&mut c)
        .await
        .expect("drop schema");
    }
}

/// Latency percentiles of one phase, in µs.
fn percentiles(mut v: Vec<u32>) -> (usize, u32, u32) {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    (v.len(), at(0.50), at(0.99))
}

/// The foreground load: `TASKS` tasks, `RATE` ops/s in all, alternating a
/// get and a put of random keys, each latency kept under the phase it
/// started in (0 warm-up, 1 idle before, 2 backfill, 3 idle after; 4
/// stops the tasks).
async fn foreground(tag: &str) {
    const TASKS: usize = 8;
    const RATE: f64 = 500.0;
    const ROWS: i64 = 100_000;
    let rate = std::env::var("POLYROUTER_BENCH_RATE")
        .ok()
        .map(|r| r.parse::<u64>().expect("POLYROUTER_BENCH_RATE: rows/s"));
    let batch = std::env::var("POLYROUTER_BENCH_BATCH")
        .map_or(1000, |b| b.parse().expect("POLYROUTER_BENCH_BATCH: rows"));
    let pg = format!(
        "[stores.dst]\nkind = \"postgres\"\nurl = \"{PG_URL}\"\nschema = \"migbench_dst_{tag}\"\nmax_connections = 16\n"
    );
    let router = Router::from_toml_str(&config(tag, &pg, batch, rate))
        .await
        .expect("router");
    seed(&router, ROWS).await;
    let items = router.repo::<Item>().await.expect("repo");
    let phase = Arc::new(AtomicUsize::new(0));
    let period = Duration::from_secs_f64(TASKS as f64 / RATE);
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (items, phase) = (items.clone(), phase.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(t as u64);
            let start = tokio::time::Instant::now() + period.mul_f64(t as f64 / TASKS as f64);
            let mut tick = tokio::time::interval_at(start, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut seen: [Vec<u32>; 4] = Default::default();
            for n in 0u64.. {
                tick.tick().await;
                let p = phase.load(Ordering::Acquire);
                if p == 4 {
                    break;
                }
                let id = rng.i64(0..ROWS);
                let t0 = Instant::now();
                if n % 2 == 0 {
                    items.get(id).await.expect("get");
                } else {
                    items.put(&item(id)).await.expect("put");
                }
                seen[p].push(t0.elapsed().as_micros() as u32);
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    phase.store(1, Ordering::Release);
    tokio::time::sleep(Duration::from_secs(10)).await;
    phase.store(2, Ordering::Release);
    let m = router.migration("items").await.expect("migration");
    let t = Instant::now();
    let s = m.start(&mut |_| {}).await.expect("backfill");
    let backfill = t.elapsed();
    phase.store(3, Ordering::Release);
    tokio::time::sleep(Duration::from_secs(10)).await;
    phase.store(4, Ordering::Release);
    let mut by_phase: [Vec<u32>; 4] = Default::default();
    for t in tasks {
        for (all, mine) in by_phase.iter_mut().zip(t.await.expect("load task")) {
            all.extend(mine);
        }
    }
    let [_, idle, busy, after] = by_phase;
    let (na, p50a, p99a) = percentiles(after);
    let (ni, p50i, p99i) = percentiles(idle);
    let (nb, p50b, p99b) = percentiles(busy);
    println!(
        "foreground (rate = {}, batch = {batch}): backfill {} rows in {:.2} s = {:.0} rows/s",
        rate.map_or("default".into(), |r| r.to_string()),
        s.backfill.rows,
        backfill.as_secs_f64(),
        s.backfill.rows as f64 / backfill.as_secs_f64(),
    );
    println!(
        "  idle before: {ni} ops, p50 {p50i} µs, p99 {p99i} µs; during backfill: {nb} ops, p50 {p50b} µs, p99 {p99b} µs; idle after: {na} ops, p50 {p50a} µs, p99 {p99a} µs"
    );
    println!(
        "  p99 during / idle before {:.2}, / idle after {:.2}; p50 {:.2}, {:.2}",
        p99b as f64 / p99i as f64,
        p99b as f64 / p99a as f64,
        p50b as f64 / p50i as f64,
        p50b as f64 / p50a as f64,
    );
}

#[tokio::main]
async fn main() {
    let names: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wants = |n: &str| names.is_empty() || names.iter().any(|a| a == n);
    let tag = format!("{}", std::process::id());
    if wants("throughput") {
        let pg = format!(
            "[stores.dst]\nkind = \"postgres\"\nurl = \"{PG_URL}\"\nschema = \"migbench_dst_{tag}\"\nmax_connections = 16\n"
        );
        run(
            "postgres -> postgres",
            &config(&tag, &pg, 1000, Some(0)),
            100_000,
        )
        .await;
        drop_schemas(&tag).await;
    }
    if wants("foreground") {
        let tag = format!("{tag}f");
        foreground(&tag).await;
        drop_schemas(&tag).await;
    }
    if wants("cosmos") {
        cosmos(&tag).await;
    }
}

async fn cosmos(tag: &str) {
    let db = format!("migbench_{tag}");
    let endpoint = std::env::var("POLYROUTER_COSMOS_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:8081/".into());
    let cosmos = format!(
        "[stores.dst]\nkind = \"cosmos\"\nendpoint = \"{endpoint}\"\nkey = \"{COSMOS_KEY}\"\ndatabase = \"{db}\"\ncreate_if_missing = true\n"
    );
    let tag2 = format!("{tag}c");
    run(
        "postgres -> cosmos",
        &config(&tag2, &cosmos, 50, Some(0)),
        2_000,
    )
    .await;
    drop_schemas(&tag2).await;
    use polyrouter::backends::cosmos::{CosmosConfig, CosmosStore};
    let s = CosmosStore::connect("dst", CosmosConfig::new(endpoint, COSMOS_KEY, &db))
        .await
        .expect("cosmos");
    s.delete_database().await.expect("drop database");
}
