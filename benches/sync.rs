//! Sync: commit → visible-in-projection lag, relay throughput, and the
//! outbox's cost per write.
//!
//! ```text
//! cargo bench --all-features --bench sync
//! ```
//!
//! - `lag`: writers put distinct keys at a paced rate (200, 1 000 and 5 000
//!   events/s, 3 s each) through an `outbox` route; a replica projection
//!   (`ReplicaProjection`, wrapped to note when each key was applied)
//!   copies them into the replica store. Lag = time the replica write
//!   returned − time the primary put returned, per event; p50 / p99 / max
//!   printed. Pipelines: PostgreSQL → NATS → Redis, SQLite (file) → memory
//!   bus → memory. Default `[sync]` and projection options.
//! - `relay`: 20 000 events waiting in an outbox, then one relay started
//!   alone; events / s until the outbox is empty.
//! - `outbox/postgres/{plain,outbox}` (criterion) and an interleaved ratio:
//!   a put of the same row shape into a table without and with an outbox.
//!
//! Servers: PostgreSQL `postgres://postgres@127.0.0.1:5432/test` (schema
//! `pr_sync_bench_<pid>`, dropped at the end), Redis `127.0.0.1:6379` (keys
//! under `prsyncbench<pid>`), NATS `127.0.0.1:4222` (stream
//! `PR_SYNC_BENCH_<pid>`, deleted at the end).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{Criterion, criterion_group, criterion_main};
use parking_lot::Mutex;
use polyrouter::store::{Applied, EntityInfo};
use polyrouter::sync::ChangeEvent;
use polyrouter::sync::projection::{Projection, ReplicaProjection};
use polyrouter::{Entity, Key, Repo, Router};
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

#[path = "support/servers.rs"]
mod servers;

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const NATS_URL: &str = "nats://127.0.0.1:4222";

/// Events with an outbox (the lag and relay runs).
#[derive(Entity, Serialize, Deserialize, Debug, Clone)]
#[entity(name = "ev", key = "id")]
struct Ev {
    id: String,
    n: i64,
    payload: String,
}

/// The same shape in a table with an outbox ...
#[derive(Entity, Serialize, Deserialize, Debug, Clone)]
#[entity(name = "boxed", key = "id")]
struct Boxed {
    id: String,
    n: i64,
    payload: String,
}

/// ... and without.
#[derive(Entity, Serialize, Deserialize, Debug, Clone)]
#[entity(name = "plain", key = "id")]
struct Plain {
    id: String,
    n: i64,
    payload: String,
}

/// The replica projection, noting when each key was applied.
struct Timed {
    inner: ReplicaProjection,
    applied: Arc<Mutex<HashMap<Key, Instant>>>,
}

#[async_trait]
impl Projection for Timed {
    async fn apply(&self, event: &ChangeEvent) -> polyrouter::Result<Applied> {
        let out = self.inner.apply(event).await?;
        self.applied
            .lock()
            .entry(event.key.clone())
            .or_insert_with(Instant::now);
        Ok(out)
    }
}

fn config(pipeline: &str, dir: &std::path::Path) -> String {
    let pid = std::process::id();
    let (primary, bus, replica) = match pipeline {
        "postgres" => (
            format!("kind = \"postgres\"\nurl = \"{PG_URL}\"\nschema = \"pr_sync_bench_{pid}\""),
            format!(
                "kind = \"nats\"\nurl = \"{NATS_URL}\"\nstream = \"PR_SYNC_BENCH_{pid}\"\nsubject_prefix = \"prsyncbench{pid}\""
            ),
            format!(
                "kind = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\nkey_prefix = \"prsyncbench{pid}\""
            ),
        ),
        _ => (
            format!(
                "kind = \"sqlite\"\nurl = \"sqlite://{}/bench.db\"",
                dir.display()
            ),
            "kind = \"memory\"".into(),
            "kind = \"memory\"".into(),
        ),
    };
    format!(
        r#"
[stores.primary]
{primary}

[stores.replica]
{replica}

[buses.events]
{bus}

[sync]
store = "primary"

[entities.ev]
store = "primary"
table = "ev_{pid}"
outbox = {{ bus = "events", after_image = true }}

[entities.boxed]
store = "primary"
table = "boxed_{pid}"
outbox = {{ bus = "events", after_image = true }}

[entities.plain]
store = "primary"
table = "plain_{pid}"

[projections.lag_{pid}]
kind = "handler"
entities = ["ev"]
"#
    )
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Paced writers: `rate` puts per second for `secs`, each of a new key;
/// returns when each put returned.
async fn paced_writes(
    evs: &Repo<Ev>,
    prefix: &str,
    rate: u64,
    secs: u64,
) -> (HashMap<Key, Instant>, Duration) {
    let committed = Arc::new(Mutex::new(HashMap::new()));
    let (tick_ms, per_tick) = if rate >= 1000 {
        (1, rate / 1000)
    } else {
        (1000 / rate, 1)
    };
    let mut tick = tokio::time::interval(Duration::from_millis(tick_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    // At most 64 puts in flight: a primary slower than the rate lowers
    // the achieved rate (printed) instead of queueing puts until they time out.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(64));
    let start = Instant::now();
    for t in 0..secs * 1000 / tick_ms {
        tick.tick().await;
        for j in 0..per_tick {
            let permit = in_flight.clone().acquire_owned().await.unwrap();
            let evs = evs.clone();
            let committed = committed.clone();
            let id = format!("{prefix}-{t}-{j}");
            tasks.spawn(async move {
                let e = Ev {
                    id: id.clone(),
                    n: t as i64,
                    payload: "x".repeat(64),
                };
                evs.put(&e).await.expect("put");
                drop(permit);
                committed
                    .lock()
                    .insert(Key::from(id.as_str()), Instant::now());
            });
        }
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let took = start.elapsed();
    let map = std::mem::take(&mut *committed.lock());
    (map, took)
}

async fn lag_and_relay(pipeline: &str, dir: &std::path::Path) {
    let router = Router::from_toml_str(&config(pipeline, dir)).await.unwrap();
    let evs = router.repo::<Ev>().await.unwrap();
    // Bound before sync starts: binding creates the tables and outboxes.
    let boxed = router.repo::<Boxed>().await.unwrap();
    let replica = router.store("replica").unwrap().clone();
    let applied = Arc::new(Mutex::new(HashMap::new()));
    let timed = Timed {
        inner: ReplicaProjection::new(
            replica,
            EntityInfo {
                store: "replica".into(),
                table: format!("ev_{}", std::process::id()),
                ..EntityInfo::new(Ev::schema())
            },
            None,
        ),
        applied: applied.clone(),
    };
    let sync = router
        .sync_builder()
        .handler(&format!("lag_{}", std::process::id()), timed)
        .start()
        .await
        .unwrap();
    for rate in [200u64, 1000, 5000] {
        let (committed, took) = paced_writes(&evs, &format!("r{rate}"), rate, 3).await;
        if let Err(e) = sync.settle(Duration::from_secs(120)).await {
            panic!("{e}: {:#?}", sync.status());
        }
        let applied = std::mem::take(&mut *applied.lock());
        let mut lags: Vec<Duration> = committed
            .iter()
            .map(|(k, c)| {
                applied
                    .get(k)
                    .expect("every event applied")
                    .saturating_duration_since(*c)
            })
            .collect();
        lags.sort_unstable();
        println!(
            "lag/{pipeline}/{rate}: {} events in {:.2} s ({:.0} events/s achieved): p50 {} p99 {} max {}",
            lags.len(),
            took.as_secs_f64(),
            lags.len() as f64 / took.as_secs_f64(),
            ms(pct(&lags, 0.50)),
            ms(pct(&lags, 0.99)),
            ms(*lags.last().unwrap())
        );
    }
    sync.shutdown().await.unwrap();

    // Relay throughput: a backlog of N events, then one relay alone.
    const N: usize = 20_000;
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let boxed = boxed.clone();
        let next = next.clone();
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= N as u64 {
                    break;
                }
                boxed
                    .put(&Boxed {
                        id: format!("b{i}"),
                        n: i as i64,
                        payload: "x".repeat(64),
                    })
                    .await
                    .unwrap();
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let start = Instant::now();
    let sync = router
        .sync_builder()
        .projections(false)
        .start()
        .await
        .unwrap();
    sync.settle(Duration::from_secs(300)).await.unwrap();
    let took = start.elapsed();
    let relayed: u64 = sync.status().relays.iter().map(|r| r.relayed).sum();
    assert_eq!(relayed, N as u64);
    println!(
        "relay/{pipeline}: {N} events in {:.2} s = {:.0} events/s (relay_batch 512)",
        took.as_secs_f64(),
        N as f64 / took.as_secs_f64()
    );
    sync.shutdown().await.unwrap();
}

/// Interleaved: chunks of 16 plain and 16 outbox puts in alternation; the
/// median of the per-chunk ratios.
async fn outbox_ratio(plain: &Repo<Plain>, boxed: &Repo<Boxed>) -> (f64, Duration, Duration) {
    let (mut ratios, mut tp, mut tb) = (Vec::new(), Vec::new(), Vec::new());
    for chunk in 0..100 {
        let t = Instant::now();
        for i in 0..16 {
            let id = format!("ratio-{}", i % 4);
            plain
                .put(&Plain {
                    id,
                    n: chunk,
                    payload: "x".repeat(64),
                })
                .await
                .unwrap();
        }
        let p = t.elapsed();
        let t = Instant::now();
        for i in 0..16 {
            let id = format!("ratio-{}", i % 4);
            boxed
                .put(&Boxed {
                    id,
                    n: chunk,
                    payload: "x".repeat(64),
                })
                .await
                .unwrap();
        }
        let b = t.elapsed();
        ratios.push(b.as_secs_f64() / p.as_secs_f64());
        tp.push(p / 16);
        tb.push(b / 16);
    }
    ratios.sort_by(f64::total_cmp);
    tp.sort_unstable();
    tb.sort_unstable();
    (ratios[ratios.len() / 2], tp[tp.len() / 2], tb[tb.len() / 2])
}

fn bench(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let only = std::env::var("SYNC_BENCH_PIPELINE").ok();
    for pipeline in ["memory", "postgres"] {
        if only.as_deref().is_some_and(|o| o != pipeline) {
            continue;
        }
        rt.block_on(lag_and_relay(pipeline, dir.path()));
    }

    // The outbox's cost per put on PostgreSQL.
    let router = rt
        .block_on(Router::from_toml_str(&config("postgres", dir.path())))
        .unwrap();
    let plain = rt.block_on(router.repo::<Plain>()).unwrap();
    let boxed = rt.block_on(router.repo::<Boxed>()).unwrap();
    let (ratio, p, b) = rt.block_on(outbox_ratio(&plain, &boxed));
    println!(
        "outbox/postgres: put {} plain, {} with outbox (medians per put); interleaved ratio {ratio:.2}",
        ms(p),
        ms(b)
    );
    let mut g = c.benchmark_group("outbox/postgres");
    g.sample_size(20);
    let n = Arc::new(AtomicU64::new(0));
    g.bench_function("plain", |bch| {
        bch.to_async(&rt).iter(|| {
            let plain = plain.clone();
            let i = n.fetch_add(1, Ordering::Relaxed);
            async move {
                plain
                    .put(&Plain {
                        id: format!("c-{}", i % 64),
                        n: i as i64,
                        payload: "x".repeat(64),
                    })
                    .await
                    .unwrap()
            }
        })
    });
    g.bench_function("outbox", |bch| {
        bch.to_async(&rt).iter(|| {
            let boxed = boxed.clone();
            let i = n.fetch_add(1, Ordering::Relaxed);
            async move {
                boxed
                    .put(&Boxed {
                        id: format!("c-{}", i % 64),
                        n: i as i64,
                        payload: "x".repeat(64),
                    })
                    .await
                    .unwrap()
            }
        })
    });
    g.finish();

    rt.block_on(async {
        let pid = std::process::id();
        if let Ok(pool) = sqlx::PgPool::connect(PG_URL).await {
            let _ = sqlx::query(&format!(
                "DROP SCHEMA IF EXISTS pr_sync_bench_{pid} CASCADE"
            ))
            .execute(&pool)
            .await;
        }
        if let Ok(client) = redis::Client::open("redis://127.0.0.1:6379") {
            if let Ok(mut con) = client.get_multiplexed_async_connection().await {
                let _ = servers::delete_redis_keys(&mut con, &format!("prsyncbench{pid}*")).await;
            }
        }
        if let Ok(client) = async_nats::connect(NATS_URL).await {
            let _ = async_nats::jetstream::new(client)
                .delete_stream(format!("PR_SYNC_BENCH_{pid}"))
                .await;
        }
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
