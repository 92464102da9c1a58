//! Concurrent point reads: the router with `coalesce_reads`, the router
//! without it, and the raw driver used directly as a typical application
//! would (one `ConnectionManager`; one sqlx pool of 8 connections), at 1,
//! 8, 64 and 256 concurrent callers, on Redis and PostgreSQL.
//!
//! ```text
//! cargo bench --features redis,postgres --bench coalesce
//! cargo bench --features redis,postgres --bench coalesce -- postgres
//! ```
//!
//! Each iteration is one round of `callers` tasks reading 20 random keys
//! each (of 1 000 rows), so criterion's time per iteration divided by
//! `callers × 20` is the time per read, and its element throughput is reads
//! per second. Per-read latencies of a separate fixed run are printed as
//! p50 / p99 at the end of each group.
//!
//! Same work: the raw Redis read is `HMGET k v d` (the command the store
//! sends for one key) decoded into the version and the JSON bytes; the raw
//! PostgreSQL read is the store's column list by key into a tuple. Both
//! return less than the router, which also decodes into the struct (the
//! router does more).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use polyrouter::{Entity, Repo, Router};
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

#[path = "support/args.rs"]
mod args;
#[path = "support/servers.rs"]
mod servers;

#[derive(Entity, Serialize, Deserialize, Debug, Clone)]
#[entity(name = "co_user", key = "id")]
struct CoUser {
    id: String,
    email: String,
    score: i64,
    #[entity(version)]
    version: u64,
}

const ROWS: usize = 1_000;
const READS: usize = 20;
const CALLERS: [usize; 4] = [1, 8, 64, 256];

fn key(i: usize) -> String {
    format!("user-{i:04}")
}

fn rows() -> Vec<CoUser> {
    (0..ROWS)
        .map(|i| CoUser {
            id: key(i),
            email: format!("u{i}@example.com"),
            score: i as i64,
            version: 0,
        })
        .collect()
}

/// One way to read a row by key.
#[derive(Clone)]
enum Reader {
    Router(Repo<CoUser>),
    Redis(ConnectionManager, String),
    Postgres(sqlx::PgPool, Arc<str>),
}

impl Reader {
    async fn read(&self, k: &str) {
        match self {
            Reader::Router(r) => {
                let u = r.get(k).await.expect("router get");
                assert!(u.is_some(), "{k} seeded");
            }
            Reader::Redis(conn, prefix) => {
                let (v, d): (Option<u64>, Option<Vec<u8>>) = redis::cmd("HMGET")
                    .arg(format!("{prefix}{k}"))
                    .arg("v")
                    .arg("d")
                    .query_async(&mut conn.clone())
                    .await
                    .expect("HMGET");
                assert!(v.is_some() && d.is_some(), "{prefix}{k} seeded");
            }
            Reader::Postgres(pool, sql) => {
                let row: Option<(String, String, i64, i64)> = sqlx::query_as(sql)
                    .bind(k)
                    .fetch_optional(pool)
                    .await
                    .expect("SELECT");
                assert!(row.is_some(), "{k} seeded");
            }
        }
    }
}

/// `callers` tasks, `READS` random keys each; returns the wall time and
/// every read's latency.
async fn round(reader: &Reader, callers: usize) -> (Duration, Vec<Duration>) {
    let start = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let reader = reader.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(READS);
                for _ in 0..READS {
                    let k = key(fastrand::usize(0..ROWS));
                    let t = Instant::now();
                    reader.read(&k).await;
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::with_capacity(callers * READS);
    for t in tasks {
        all.extend(t.await.expect("reader task"));
    }
    (start.elapsed(), all)
}

fn percentiles(mut lat: Vec<Duration>) -> (Duration, Duration) {
    lat.sort();
    let at = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize];
    (at(0.5), at(0.99))
}

fn group(c: &mut Criterion, rt: &Runtime, label: &str, readers: &[(&str, Reader)]) {
    let mut g = c.benchmark_group(label);
    g.sample_size(10);
    let mut summary = Vec::new();
    for callers in CALLERS {
        g.throughput(Throughput::Elements((callers * READS) as u64));
        for (name, reader) in readers {
            g.bench_function(format!("{name}/{callers}"), |b| {
                b.to_async(rt).iter_custom(|iters| {
                    let reader = reader.clone();
                    async move {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            total += round(&reader, callers).await.0;
                        }
                        total
                    }
                })
            });
            // Latencies from 5 further rounds.
            let lat = rt.block_on(async {
                let mut lat = Vec::new();
                for _ in 0..5 {
                    lat.extend(round(reader, callers).await.1);
                }
                lat
            });
            let (p50, p99) = percentiles(lat);
            summary.push(format!(
                "{label}/{name}/{callers}: p50 {:.0} µs, p99 {:.0} µs",
                p50.as_secs_f64() * 1e6,
                p99.as_secs_f64() * 1e6
            ));
        }
    }
    g.finish();
    for line in summary {
        println!("{line}");
    }
}

async fn routers(store_toml: &str) -> (Repo<CoUser>, Repo<CoUser>) {
    let mut out = Vec::new();
    for coalesce in [false, true] {
        let toml = format!(
            "[stores.s]\n{store_toml}\n[entities.co_user]\nstore = \"s\"\ncoalesce_reads = {coalesce}\n"
        );
        let router = Router::from_toml_str(&toml).await.expect("router");
        out.push(router.repo::<CoUser>().await.expect("repo"));
    }
    out[0].put_many(&rows()).await.expect("seed rows");
    let coalesced = out.pop().expect("two");
    (out.pop().expect("one"), coalesced)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let wanted = args::wanted;
    let run = std::process::id();
    if wanted("redis") {
        let url = std::env::var("POLYROUTER_BENCH_REDIS")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = format!("pr_co_{run}");
        let (plain, coalesced) = rt.block_on(routers(&format!(
            "kind = \"redis\"\nurl = \"{url}\"\nkey_prefix = \"{prefix}\"\n"
        )));
        let conn = rt.block_on(async {
            let client = redis::Client::open(url.as_str()).expect("redis url");
            ConnectionManager::new(client)
                .await
                .expect("connect to redis")
        });
        // Records are `{key_prefix}:{table}:{key}` (src/backends/redis/docs.md).
        let key_prefix = format!("{prefix}:co_user:");
        group(
            c,
            &rt,
            "coalesce_redis",
            &[
                ("router", Reader::Router(plain)),
                ("router_coalesced", Reader::Router(coalesced)),
                ("raw", Reader::Redis(conn.clone(), key_prefix)),
            ],
        );
        rt.block_on(delete_prefix(&conn, &prefix));
    }
    if wanted("postgres") {
        let url = servers::postgres_url();
        let schema = format!("pr_co_{run}");
        let (plain, coalesced) = rt.block_on(routers(&format!(
            "kind = \"postgres\"\nurl = \"{url}\"\nschema = \"{schema}\"\n"
        )));
        let pool = rt
            .block_on(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(8)
                    .connect(&url),
            )
            .expect("connect to postgres");
        let sql: Arc<str> = format!(
            "SELECT \"id\", \"email\", \"score\", \"_pr_version\" FROM \"{schema}\".\"co_user\" WHERE \"id\" = $1"
        )
        .into();
        group(
            c,
            &rt,
            "coalesce_postgres",
            &[
                ("router", Reader::Router(plain)),
                ("router_coalesced", Reader::Router(coalesced)),
                ("raw", Reader::Postgres(pool.clone(), sql)),
            ],
        );
        rt.block_on(async {
            sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
                .execute(&pool)
                .await
                .expect("drop the bench schema");
        });
    }
}

async fn delete_prefix(conn: &ConnectionManager, prefix: &str) {
    servers::delete_redis_keys(&mut conn.clone(), &format!("{prefix}*"))
        .await
        .expect("SCAN + DEL");
}

criterion_group!(benches, bench);
criterion_main!(benches);
