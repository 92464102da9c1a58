//! Per-backend figures through `Repo<T>`: point get, point put, a 10 000-row
//! `put_many` and a 50-row query page, for the memory store, SQLite (a file
//! in a temp dir), Redis (`redis://127.0.0.1:6379`, or `POLYROUTER_BENCH_REDIS`)
//! and PostgreSQL (below).
//! For Redis, the same get and put also go through the raw `redis` crate in
//! the same run, so the router / raw ratio can be computed.
//!
//! ```text
//! cargo bench --features redis,postgres --bench backends
//! ```
//!
//! Benchmark ids are `<store>/<op>`:
//!
//! - `get`, `put`: one row (`user-000042`), replaced in place by every put;
//! - `query_page_50`: `Query::new().limit(50)`, the first page in key order,
//!   over the 10 001 rows left by the seeding;
//! - `put_many_10k`: one `put_many` of 10 000 rows (the same keys every
//!   iteration, so after the first one every row is replaced), with
//!   throughput in rows (elements) per second;
//! - `redis/raw_get`: `HMGET k v d` on a `ConnectionManager` (the command the
//!   store sends), decoded only into `(Option<u64>, Option<Vec<u8>>)`;
//! - `redis/raw_put`: `HSET k v 1 d <payload>`, the payload being the JSON the
//!   router stored for that row (no Lua, no precondition, no `PERSIST`);
//! - `redis/interleaved_get`, `redis/interleaved_put`: router and the
//!   same-semantics baselines below run in
//!   alternating chunks of 16 in one loop; criterion reports the router's
//!   time, and the median router / raw ratio over all chunk pairs (warm-up
//!   included) is printed at the end, so drift in machine load cancels out;
//! - `redis/raw_put_many_10k_pipelined`: the same `HSET` for the 10 000 rows,
//!   in one pipeline (no Lua), for comparison with the router's one-script
//!   batch;
//! - `redis/raw_get_decoded`, `redis/raw_put_versioned`,
//!   `redis/raw_put_many_10k_script`: the **same-semantics** baselines —
//!   `HMGET` with the JSON decoded into the struct; the row encoded as the
//!   store encodes it and sent through the store's own scripts
//!   (`put_one.lua`; `write.lua` over the 10 000 rows, the router's atomic
//!   batch). The interleaved ratios compare the router with these.
//!
//! The Redis store gets a key prefix unique to the run; every key under it
//! is deleted (SCAN + DEL) at the end.
//!
//! PostgreSQL (`postgres://postgres@127.0.0.1:5432/test`, or
//! `POLYROUTER_BENCH_POSTGRES`) gets the same group, in a schema unique to the
//! run (`pr_bench_<pid>`, dropped with `CASCADE` at the end), plus raw sqlx on
//! a separate `PgPool` of the store's shape (8 connections, no ping per
//! checkout) against the table the router created:
//!
//! - `postgres/raw_get`: `SELECT id, email, name, score, _pr_version FROM
//!   t WHERE id = $1`, decoded into a tuple (no expiry filter, no JSON);
//! - `postgres/raw_put`: `INSERT … VALUES ($1, $2, $3, $4, 1, NULL) ON
//!   CONFLICT (id) DO UPDATE SET` the same columns, version + 1 (no expiry
//!   `CASE`, no `RETURNING`);
//! - `postgres/raw_query_page_50`: the store's statement for that page
//!   (expiry filter, `ORDER BY id LIMIT 51`) into tuples;
//! - `postgres/interleaved_{get,put}`: as for Redis, the ratio is printed;
//! - `postgres/interleaved_get_ping_every_checkout`: the router's get on a
//!   second store over the same schema with `ping_after_idle = "0s"` (a
//!   ping before every checkout, the store's old behaviour) against the
//!   default store; the ratio is printed;
//! - `postgres/raw_put_many_10k_tx`: that raw upsert for the 10 000 rows in
//!   one transaction (the router's `put_many` shape, minus its extras);
//! - `postgres/raw_put_many_10k_unnest`: the same upsert as one statement
//!   over `UNNEST` of four array parameters (a multi-row write);
//! - `postgres/raw_get_decoded`, `postgres/raw_put_versioned`,
//!   `postgres/raw_put_many_10k_versioned`: the **same-semantics**
//!   baselines — the store's own statements written out by hand (expiry
//!   filter bound, the version rules, `RETURNING`; the bulk form per 5 000
//!   rows in one transaction), the get decoded into the struct. The
//!   interleaved ratios compare the router with these.
//!
//! The Redis, PostgreSQL and MariaDB groups also have `interleaved_put_many_10k`: the router's
//! `put_many` against the same-semantics bulk baseline in one loop, the
//! ratio printed. With `POLYROUTER_BENCH_BARE=1` the routed stores run
//! without their resilience layers (`resilience.enabled = false`), which
//! shows what the layers cost in these ratios.
//!
//! `cargo bench --features redis,postgres --bench backends -- postgres` runs
//! only that group. docs/benchmarks.md keeps the figures.
//!
//! With the `mysql` feature, MariaDB/MySQL (`mysql://root@127.0.0.1:3306/test`,
//! or `POLYROUTER_BENCH_MYSQL`) gets the same group in a database unique to
//! the run (`pr_bench_<pid>`, dropped at the end), plus `mysql/raw_get`
//! (`SELECT … WHERE id = ?`), `mysql/raw_put` (`INSERT … ON DUPLICATE KEY
//! UPDATE`, version + 1, no expiry, no version read back) and
//! `mysql/raw_put_versioned` (the store's own one-statement put by hand:
//! expiry `CASE`, version read back through `LAST_INSERT_ID`),
//! `mysql/raw_get_decoded` (the store's get by hand: expiry filter bound,
//! decoded into the struct) on a separate
//! sqlx pool, `mysql/raw_put_many_10k_versioned` (the store's bulk put by
//! hand: per 2 000 rows a `SELECT … FOR UPDATE` of the versions and one
//! multi-row upsert, in one transaction), and `mysql/interleaved_{get,put}`
//! (router against `raw_get_decoded` and `raw_put_versioned`, the ratio
//! printed as for Redis):
//! `cargo bench --features redis,postgres,mysql --bench backends -- mysql`.

use std::future::Future;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bench_user::{BenchUser, KEY, now_micros, runtime, sample, user};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use criterion::{criterion_group, criterion_main};
use interleave::{interleaved_bench, median};
use polyrouter::store::DEFAULT_TOMBSTONE_RETENTION;
use polyrouter::{Query, Repo, Router};
use redis::aio::ConnectionManager;
use tokio::runtime::Runtime;

#[path = "support/bench_user.rs"]
mod bench_user;
#[path = "support/interleave.rs"]
mod interleave;
#[path = "support/servers.rs"]
mod servers;

const BULK: usize = 10_000;
const PAGE: u32 = 50;

fn bulk_rows() -> Vec<BenchUser> {
    (0..BULK as i64)
        .map(|i| user(format!("row-{i:05}"), i))
        .collect()
}

async fn repo(store_toml: &str) -> Repo<BenchUser> {
    // `POLYROUTER_BENCH_BARE=1`: the store without its resilience layers,
    // to measure what they cost.
    let bare = if std::env::var_os("POLYROUTER_BENCH_BARE").is_some() {
        "[stores.s.resilience]\nenabled = false\n"
    } else {
        ""
    };
    let toml = format!("[stores.s]\n{store_toml}\n{bare}[entities.bench_user]\nstore = \"s\"\n");
    let router = Router::from_toml_str(&toml).await.expect("router");
    let repo = router.repo::<BenchUser>().await.expect("repo");
    repo.put(&sample()).await.expect("seed row");
    repo.put_many(&bulk_rows()).await.expect("seed rows");
    repo
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let rows = bulk_rows();
    if cfg!(feature = "memory") && wanted("memory") {
        let r = rt.block_on(repo("kind = \"memory\"\n"));
        bench_repo(c, &rt, "memory", &r, &rows, true, &|_| {}, &|_| {});
    }
    if cfg!(feature = "sqlite") && wanted("sqlite") {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/bench.db", dir.path().display());
        let r = rt.block_on(repo(&format!("kind = \"sqlite\"\nurl = \"{url}\"\n")));
        bench_repo(c, &rt, "sqlite", &r, &rows, true, &|_| {}, &|_| {});
    }
    if wanted("redis") {
        bench_redis(c, &rt, &rows);
    }
    if wanted("postgres") {
        bench_postgres(c, &rt, &rows);
    }
    #[cfg(feature = "mysql")]
    if wanted("mysql") {
        bench_mysql(c, &rt, &rows);
    }
}

/// Whether criterion's filter (the first free argument) can match the
/// group `label`, so a server whose group is filtered out is not contacted:
/// false only when the filter names another group and not this one.
fn wanted(label: &str) -> bool {
    const LABELS: [&str; 5] = ["memory", "sqlite", "redis", "postgres", "mysql"];
    match std::env::args().skip(1).find(|a| !a.starts_with('-')) {
        None => true,
        Some(f) => {
            f.contains(label)
                || label.contains(f.as_str())
                || !LABELS
                    .iter()
                    .any(|l| f.contains(l) || l.contains(f.as_str()))
        }
    }
}

type Extra<'x> = &'x dyn Fn(&mut BenchmarkGroup<'_, WallTime>);

/// The group `label`: get, put, (query), then `extra_point`'s benchmarks,
/// then `put_many_10k` and `extra_bulk`'s at 10 samples with element
/// throughput.
#[allow(clippy::too_many_arguments)]
fn bench_repo(
    c: &mut Criterion,
    rt: &Runtime,
    label: &str,
    repo: &Repo<BenchUser>,
    rows: &[BenchUser],
    query: bool,
    extra_point: Extra<'_>,
    extra_bulk: Extra<'_>,
) {
    let one = sample();
    let mut g = c.benchmark_group(label);
    if label != "memory" {
        g.sampling_mode(SamplingMode::Flat).sample_size(20);
    }
    g.bench_function("get", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(repo.get(black_box(KEY)).await.expect("get")) })
    });
    g.bench_function("put", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(repo.put(black_box(&one)).await.expect("put")) })
    });
    if query {
        let page = rt
            .block_on(repo.query(Query::new().limit(PAGE)))
            .expect("query");
        assert_eq!(page.items.len(), PAGE as usize);
        g.bench_function("query_page_50", |b| {
            b.to_async(rt).iter(|| async {
                black_box(
                    repo.query(black_box(Query::new().limit(PAGE)))
                        .await
                        .expect("query"),
                )
            })
        });
    }
    extra_point(&mut g);
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(BULK as u64));
    g.bench_function("put_many_10k", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(repo.put_many(black_box(rows)).await.expect("put_many")) })
    });
    extra_bulk(&mut g);
    g.finish();
}

fn bench_redis(c: &mut Criterion, rt: &Runtime, rows: &[BenchUser]) {
    let url =
        std::env::var("POLYROUTER_BENCH_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let prefix = format!("prbench-{}-{nanos}", std::process::id());
    let client = redis::Client::open(url.as_str()).expect("redis url");
    let conn = rt
        .block_on(ConnectionManager::new(client))
        .expect("connect to redis");
    let repo = rt.block_on(repo(&format!(
        "kind = \"redis\"\nurl = \"{url}\"\nkey_prefix = \"{prefix}\"\n"
    )));

    // The raw path reads and writes the very hash the router uses, with the
    // payload the router encoded for it.
    let record_key = format!("{prefix}:bench_user:{KEY}");
    let payload = rt
        .block_on(hget_d(&conn, &record_key))
        .expect("the router's record hash");
    let bulk: Vec<(String, Vec<u8>)> = rt.block_on(async {
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let k = format!("{prefix}:bench_user:{}", r.id);
            let d = hget_d(&conn, &k).await.expect("a seeded row");
            out.push((k, d));
        }
        out
    });

    let one = sample();
    let put_one = redis::Script::new(include_str!("../src/backends/redis/put_one.lua"));
    let write_script = redis::Script::new(include_str!("../src/backends/redis/write.lua"));
    let ratios = Ratios::default();
    let point = |g: &mut BenchmarkGroup<'_, WallTime>| {
        g.bench_function("raw_get", |b| {
            b.to_async(rt)
                .iter(|| async { black_box(raw_get(&conn, black_box(&record_key)).await) })
        });
        g.bench_function("raw_put", |b| {
            b.to_async(rt).iter(|| async {
                black_box(raw_put(&conn, &record_key, black_box(&payload)).await)
            })
        });
        g.bench_function("raw_get_decoded", |b| {
            b.to_async(rt).iter(|| async {
                black_box(redis_get_decoded(&conn, black_box(&record_key)).await)
            })
        });
        g.bench_function("raw_put_versioned", |b| {
            b.to_async(rt).iter(|| async {
                black_box(redis_put_versioned(&conn, &put_one, &record_key, black_box(&one)).await)
            })
        });
        ratios.bench(
            g,
            rt,
            &repo,
            &one,
            || async {
                black_box(redis_get_decoded(&conn, &record_key).await);
            },
            || async {
                black_box(redis_put_versioned(&conn, &put_one, &record_key, &one).await);
            },
        );
    };
    // The router's atomic batch by hand: every row encoded as the store
    // encodes it, one run of its write script over the 10 000.
    let put_many_script = || async {
        let mut invocation = write_script.prepare_invoke();
        for r in rows {
            invocation
                .key(format!("{prefix}:bench_user:{}", r.id))
                .arg("p")
                .arg("n")
                .arg(redis_payload(r))
                .arg("")
                .arg("");
        }
        // The write script's last argument: the entity's tombstone
        // retention in milliseconds (the store's default here).
        invocation.arg(DEFAULT_TOMBSTONE_RETENTION.as_millis() as u64);
        let reply: Vec<i64> = invocation
            .invoke_async(&mut conn.clone())
            .await
            .expect("write script");
        assert_eq!(reply.len(), rows.len() + 1);
        black_box(reply);
    };
    let bulk_raw = |g: &mut BenchmarkGroup<'_, WallTime>| {
        g.bench_function("raw_put_many_10k_script", |b| {
            b.to_async(rt).iter(put_many_script)
        });
        ratios.bench_bulk(g, rt, &repo, rows, put_many_script);
        g.bench_function("raw_put_many_10k_pipelined", |b| {
            b.to_async(rt).iter(|| async {
                let mut p = redis::pipe();
                for (k, d) in &bulk {
                    p.cmd("HSET")
                        .arg(k.as_str())
                        .arg("v")
                        .arg(1)
                        .arg("d")
                        .arg(d.as_slice())
                        .ignore();
                }
                let () = p.query_async(&mut conn.clone()).await.expect("pipeline");
            })
        });
    };
    bench_repo(c, rt, "redis", &repo, rows, false, &point, &bulk_raw);
    ratios.report("redis");

    let deleted = rt.block_on(delete_prefix(&conn, &prefix));
    eprintln!("redis: deleted {deleted} keys under {prefix}:*");
}

fn bench_postgres(c: &mut Criterion, rt: &Runtime, rows: &[BenchUser]) {
    let url = servers::postgres_url();
    let schema = format!("pr_bench_{}", std::process::id());
    let repo = rt.block_on(repo(&format!(
        "kind = \"postgres\"\nurl = \"{url}\"\nschema = \"{schema}\"\n"
    )));
    // The store's pool shape: 8 connections, no ping per checkout (sqlx's
    // default pings; the store pings only connections idle 30 s).
    let pool = rt
        .block_on(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(8)
                .test_before_acquire(false)
                .connect(&url),
        )
        .expect("connect to postgres");
    // The same store pinging before every checkout (`ping_after_idle =
    // "0s"`, what it did before), for the ping's cost.
    let pinging: Repo<BenchUser> = rt.block_on(async {
        Router::from_toml_str(&format!(
            "[stores.s]\nkind = \"postgres\"\nurl = \"{url}\"\nschema = \"{schema}\"\nping_after_idle = \"0s\"\n[entities.bench_user]\nstore = \"s\"\n"
        ))
        .await
        .expect("router")
        .repo::<BenchUser>()
        .await
        .expect("repo")
    });
    let table = format!("\"{schema}\".\"bench_user\"");
    let get_sql = format!(
        "SELECT \"id\", \"email\", \"name\", \"score\", \"_pr_version\" FROM {table} WHERE \"id\" = $1"
    );
    let put_sql = format!(
        "INSERT INTO {table} AS t (\"id\", \"email\", \"name\", \"score\", \"_pr_version\", \"_pr_expires_at\") \
         VALUES ($1, $2, $3, $4, 1, NULL) ON CONFLICT (\"id\") DO UPDATE SET \
         \"email\" = excluded.\"email\", \"name\" = excluded.\"name\", \"score\" = excluded.\"score\", \
         \"_pr_version\" = t.\"_pr_version\" + 1, \"_pr_expires_at\" = excluded.\"_pr_expires_at\""
    );
    let page_sql = format!(
        "SELECT \"id\", \"email\", \"name\", \"score\", \"_pr_version\" FROM {table} \
         WHERE (\"_pr_expires_at\" IS NULL OR \"_pr_expires_at\" > $1) ORDER BY \"id\" ASC LIMIT $2"
    );
    // The store's own statements by hand (same semantics: the expiry
    // filter, the version rules, RETURNING; src/backends/sql/table.rs).
    let get_versioned_sql = format!(
        "SELECT \"id\", \"email\", \"name\", \"score\", \"_pr_version\" FROM {table} \
         WHERE \"id\" = $1 AND (\"_pr_expires_at\" IS NULL OR \"_pr_expires_at\" > $2)"
    );
    let set_version = "\"email\" = excluded.\"email\", \"name\" = excluded.\"name\", \"score\" = excluded.\"score\", \
         \"_pr_version\" = CASE WHEN \"_pr_t\".\"_pr_expires_at\" >= 0 AND \"_pr_t\".\"_pr_expires_at\" <= $6 \
         THEN 1 ELSE \"_pr_t\".\"_pr_version\" + 1 END, \"_pr_expires_at\" = excluded.\"_pr_expires_at\"";
    let put_versioned_sql = format!(
        "INSERT INTO {table} AS \"_pr_t\" (\"id\", \"email\", \"name\", \"score\", \"_pr_version\", \"_pr_expires_at\") \
         VALUES ($1, $2, $3, $4, 1, $5) ON CONFLICT (\"id\") DO UPDATE SET {set_version} RETURNING \"_pr_t\".\"_pr_version\""
    );
    let put_many_versioned_sql = format!(
        "INSERT INTO {table} AS \"_pr_t\" (\"id\", \"email\", \"name\", \"score\", \"_pr_expires_at\", \"_pr_version\") \
         SELECT *, 1 FROM UNNEST(CAST($1 AS TEXT[]), CAST($2 AS TEXT[]), CAST($3 AS TEXT[]), CAST($4 AS BIGINT[]), CAST($5 AS BIGINT[])) \
         ON CONFLICT (\"id\") DO UPDATE SET {set_version} RETURNING \"_pr_t\".\"id\", \"_pr_t\".\"_pr_version\""
    );
    let one = sample();
    // The raw statements hit the router's row.
    let (id, ..) = rt
        .block_on(pg_raw_get(&pool, &get_sql))
        .expect("the router's row");
    assert_eq!(id, KEY);

    let ratios = Ratios::default();
    let ratios_ping = Mutex::new(Vec::new());
    let point = |g: &mut BenchmarkGroup<'_, WallTime>| {
        g.bench_function("raw_get", |b| {
            b.to_async(rt)
                .iter(|| async { black_box(pg_raw_get(&pool, black_box(&get_sql)).await) })
        });
        // The router's get pinging every checkout, against the default.
        interleaved_bench(
            g,
            rt,
            "interleaved_get_ping_every_checkout",
            &ratios_ping,
            || async {
                black_box(pinging.get(black_box(KEY)).await.expect("get"));
            },
            || async {
                black_box(repo.get(black_box(KEY)).await.expect("get"));
            },
        );
        g.bench_function("raw_put", |b| {
            b.to_async(rt)
                .iter(|| async { pg_raw_put(&pool, &put_sql, black_box(&one)).await })
        });
        g.bench_function("raw_get_decoded", |b| {
            b.to_async(rt).iter(|| async {
                black_box(pg_get_decoded(&pool, black_box(&get_versioned_sql)).await)
            })
        });
        g.bench_function("raw_put_versioned", |b| {
            b.to_async(rt).iter(|| async {
                black_box(pg_put_versioned(&pool, &put_versioned_sql, black_box(&one)).await)
            })
        });
        // The store's query statement for `limit(50)` (it asks for 51 rows).
        g.bench_function("raw_query_page_50", |b| {
            b.to_async(rt).iter(|| async {
                let now = now_micros();
                let rows: Vec<PgRow> = sqlx::query_as(&page_sql)
                    .bind(now)
                    .bind(i64::from(PAGE) + 1)
                    .fetch_all(&pool)
                    .await
                    .expect("page");
                assert_eq!(rows.len(), PAGE as usize + 1);
                black_box(rows)
            })
        });
        ratios.bench(
            g,
            rt,
            &repo,
            &one,
            || async {
                black_box(pg_get_decoded(&pool, &get_versioned_sql).await);
            },
            || async {
                black_box(pg_put_versioned(&pool, &put_versioned_sql, &one).await);
            },
        );
    };
    let many_sql = format!(
        "INSERT INTO {table} AS t (\"id\", \"email\", \"name\", \"score\", \"_pr_version\", \"_pr_expires_at\") \
         SELECT u.*, 1, NULL FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[]) AS u \
         ON CONFLICT (\"id\") DO UPDATE SET \
         \"email\" = excluded.\"email\", \"name\" = excluded.\"name\", \"score\" = excluded.\"score\", \
         \"_pr_version\" = t.\"_pr_version\" + 1, \"_pr_expires_at\" = excluded.\"_pr_expires_at\""
    );
    // The router's `put_many` by hand: in one transaction, the store's
    // multi-row upsert (expiry, version rules, RETURNING key and version)
    // per 5 000 rows.
    let put_many_versioned = || async {
        let now = now_micros();
        let mut tx = pool.begin().await.expect("BEGIN");
        let mut written = 0;
        for chunk in rows.chunks(5000) {
            let out: Vec<(String, i64)> = sqlx::query_as(&put_many_versioned_sql)
                .bind(chunk.iter().map(|r| r.id.as_str()).collect::<Vec<_>>())
                .bind(chunk.iter().map(|r| r.email.as_str()).collect::<Vec<_>>())
                .bind(chunk.iter().map(|r| r.name.as_str()).collect::<Vec<_>>())
                .bind(chunk.iter().map(|r| r.score).collect::<Vec<_>>())
                .bind(vec![None::<i64>; chunk.len()])
                .bind(now)
                .fetch_all(&mut *tx)
                .await
                .expect("UNNEST upsert");
            written += out.len();
        }
        tx.commit().await.expect("COMMIT");
        assert_eq!(written, rows.len());
    };
    let bulk_raw = |g: &mut BenchmarkGroup<'_, WallTime>| {
        // The router's shape: one transaction of single-row upserts.
        g.bench_function("raw_put_many_10k_tx", |b| {
            b.to_async(rt).iter(|| async {
                let mut tx = pool.begin().await.expect("BEGIN");
                for r in rows {
                    sqlx::query(&put_sql)
                        .bind(&r.id)
                        .bind(&r.email)
                        .bind(&r.name)
                        .bind(r.score)
                        .execute(&mut *tx)
                        .await
                        .expect("upsert");
                }
                tx.commit().await.expect("COMMIT");
            })
        });
        g.bench_function("raw_put_many_10k_versioned", |b| {
            b.to_async(rt).iter(put_many_versioned)
        });
        ratios.bench_bulk(g, rt, &repo, rows, put_many_versioned);
        // One multi-row statement: the 10 000 rows as four array parameters.
        g.bench_function("raw_put_many_10k_unnest", |b| {
            b.to_async(rt).iter(|| async {
                sqlx::query(&many_sql)
                    .bind(rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>())
                    .bind(rows.iter().map(|r| r.email.as_str()).collect::<Vec<_>>())
                    .bind(rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>())
                    .bind(rows.iter().map(|r| r.score).collect::<Vec<_>>())
                    .execute(&pool)
                    .await
                    .expect("UNNEST upsert");
            })
        });
    };
    bench_repo(c, rt, "postgres", &repo, rows, true, &point, &bulk_raw);
    ratios.report("postgres");
    let (m, n) = median(&ratios_ping);
    eprintln!(
        "postgres: get pinging every checkout / default = {m:.3} (interleaved, median of {n} chunk pairs)"
    );
    drop(pinging);

    drop(repo);
    rt.block_on(async {
        sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .execute(&pool)
            .await
            .expect("drop schema");
        pool.close().await;
    });
    eprintln!("postgres: dropped schema {schema}");
}

#[cfg(feature = "mysql")]
fn bench_mysql(c: &mut Criterion, rt: &Runtime, rows: &[BenchUser]) {
    let url = servers::mysql_url();
    let db = format!("pr_bench_{}", std::process::id());
    let repo = rt.block_on(repo(&format!(
        "kind = \"mysql\"\nurl = \"{url}\"\ndatabase = \"{db}\"\n"
    )));
    // The store's pool shape (see `bench_postgres`).
    let pool = rt
        .block_on(
            sqlx::mysql::MySqlPoolOptions::new()
                .max_connections(8)
                .test_before_acquire(false)
                .connect(&url),
        )
        .expect("connect to mysql");
    let table = format!("`{db}`.`bench_user`");
    let get_sql =
        format!("SELECT `id`, `email`, `name`, `score`, `_pr_version` FROM {table} WHERE `id` = ?");
    let put_sql = format!(
        "INSERT INTO {table} (`id`, `email`, `name`, `score`, `_pr_version`, `_pr_expires_at`) \
         VALUES (?, ?, ?, ?, 1, NULL) ON DUPLICATE KEY UPDATE \
         `email` = VALUES(`email`), `name` = VALUES(`name`), `score` = VALUES(`score`), \
         `_pr_version` = `_pr_version` + 1, `_pr_expires_at` = NULL"
    );
    // The router's own single-statement put (src/backends/mysql/single.rs),
    // by hand: the version restarts on an expired row, continues on a live
    // one or a tombstone, and comes back in the OK packet.
    let put_versioned_sql = format!(
        "INSERT INTO {table} (`id`, `email`, `name`, `score`, `_pr_version`, `_pr_expires_at`) \
         VALUES (?, ?, ?, ?, 1, ?) ON DUPLICATE KEY UPDATE \
         `_pr_version` = LAST_INSERT_ID(CASE WHEN `_pr_expires_at` >= 0 AND `_pr_expires_at` <= ? \
         THEN 1 ELSE `_pr_version` + 1 END), `_pr_expires_at` = VALUES(`_pr_expires_at`), \
         `email` = VALUES(`email`), `name` = VALUES(`name`), `score` = VALUES(`score`)"
    );
    let one = sample();
    let raw_get = |pool: &sqlx::MySqlPool| {
        let pool = pool.clone();
        let sql = get_sql.clone();
        async move {
            // The store's text columns use a binary collation, which the
            // driver reports as VARBINARY: read bytes, as the store does.
            sqlx::query_as::<_, (Vec<u8>, Vec<u8>, Vec<u8>, i64, i64)>(&sql)
                .bind(KEY)
                .fetch_optional(&pool)
                .await
                .expect("SELECT")
        }
    };
    let (id, ..) = rt.block_on(raw_get(&pool)).expect("the router's row");
    assert_eq!(id, KEY.as_bytes());
    // The store's get by hand: the expiry filter bound, the row decoded
    // into the struct (text arrives as bytes, checked as UTF-8).
    let get_decoded_sql = format!(
        "SELECT `id`, `email`, `name`, `score`, `_pr_version` FROM {table} \
         WHERE `id` = ? AND (`_pr_expires_at` IS NULL OR `_pr_expires_at` > ?)"
    );
    let get_decoded = || async {
        sqlx::query_as::<_, (Vec<u8>, Vec<u8>, Vec<u8>, i64, i64)>(&get_decoded_sql)
            .bind(KEY)
            .bind(now_micros())
            .fetch_optional(&pool)
            .await
            .expect("SELECT")
            .map(|(id, email, name, score, version)| BenchUser {
                id: String::from_utf8(id).expect("UTF-8"),
                email: String::from_utf8(email).expect("UTF-8"),
                name: String::from_utf8(name).expect("UTF-8"),
                score,
                version: version as u64,
            })
    };
    let ratios = Ratios::default();
    let point = |g: &mut BenchmarkGroup<'_, WallTime>| {
        g.bench_function("raw_get", |b| {
            b.to_async(rt)
                .iter(|| async { black_box(raw_get(&pool).await) })
        });
        g.bench_function("raw_put", |b| {
            b.to_async(rt).iter(|| async {
                sqlx::query(&put_sql)
                    .bind(&one.id)
                    .bind(&one.email)
                    .bind(&one.name)
                    .bind(one.score)
                    .execute(&pool)
                    .await
                    .expect("upsert")
            })
        });
        g.bench_function("raw_put_versioned", |b| {
            b.to_async(rt)
                .iter(|| async { my_raw_put_versioned(&pool, &put_versioned_sql, &one).await })
        });
        g.bench_function("raw_get_decoded", |b| {
            b.to_async(rt)
                .iter(|| async { black_box(get_decoded().await) })
        });
        ratios.bench(
            g,
            rt,
            &repo,
            &one,
            || async {
                black_box(get_decoded().await);
            },
            || async {
                my_raw_put_versioned(&pool, &put_versioned_sql, &one).await;
            },
        );
    };
    let bulk_raw = |g: &mut BenchmarkGroup<'_, WallTime>| {
        // The router's `put_many` by hand (src/backends/mysql/bulk.rs): in
        // one transaction, per 2 000 rows, one `SELECT … FOR UPDATE` of
        // the keys' versions, then one multi-row upsert with the versions
        // computed from it.
        g.bench_function("raw_put_many_10k_versioned", |b| {
            b.to_async(rt)
                .iter(|| my_raw_put_many_versioned(&pool, &table, rows))
        });
        ratios.bench_bulk(g, rt, &repo, rows, || {
            my_raw_put_many_versioned(&pool, &table, rows)
        });
    };
    bench_repo(c, rt, "mysql", &repo, rows, true, &point, &bulk_raw);
    ratios.report("mysql");
    drop(repo);
    rt.block_on(async {
        sqlx::query(&format!("DROP DATABASE `{db}`"))
            .execute(&pool)
            .await
            .expect("drop database");
        pool.close().await;
    });
    eprintln!("mysql: dropped database {db}");
}

/// The store's bulk put by hand (see `bench_mysql`).
#[cfg(feature = "mysql")]
async fn my_raw_put_many_versioned(pool: &sqlx::MySqlPool, table: &str, rows: &[BenchUser]) {
    use std::collections::HashMap;
    let now = now_micros();
    let mut tx = pool.begin().await.expect("BEGIN");
    for chunk in rows.chunks(2000) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let lock = format!(
            "SELECT `id`, CASE WHEN (`_pr_expires_at` IS NULL OR `_pr_expires_at` > ?) THEN `_pr_version` \
             WHEN `_pr_expires_at` < 0 THEN 0 - `_pr_version` ELSE 0 END FROM {table} WHERE `id` IN ({marks}) FOR UPDATE"
        );
        let mut q = sqlx::query_as::<_, (Vec<u8>, i64)>(&lock).bind(now);
        for r in chunk {
            q = q.bind(&r.id);
        }
        let locked: HashMap<Vec<u8>, i64> = q
            .fetch_all(&mut *tx)
            .await
            .expect("lock")
            .into_iter()
            .collect();
        let insert = format!(
            "INSERT INTO {table} (`id`, `email`, `name`, `score`, `_pr_version`, `_pr_expires_at`) VALUES {} \
             ON DUPLICATE KEY UPDATE `email` = VALUES(`email`), `name` = VALUES(`name`), `score` = VALUES(`score`), \
             `_pr_version` = VALUES(`_pr_version`), `_pr_expires_at` = VALUES(`_pr_expires_at`)",
            vec!["(?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query(&insert);
        for r in chunk {
            let version = match locked.get(r.id.as_bytes()) {
                Some(v) if *v != 0 => v.unsigned_abs() as i64 + 1,
                _ => 1,
            };
            q = q
                .bind(&r.id)
                .bind(&r.email)
                .bind(&r.name)
                .bind(r.score)
                .bind(version)
                .bind(None::<i64>);
        }
        q.execute(&mut *tx).await.expect("multi-row upsert");
    }
    tx.commit().await.expect("COMMIT");
}

/// The store's single-statement put by hand; the version it wrote.
#[cfg(feature = "mysql")]
async fn my_raw_put_versioned(pool: &sqlx::MySqlPool, sql: &str, u: &BenchUser) -> u64 {
    let now = now_micros();
    let r = sqlx::query(sql)
        .bind(&u.id)
        .bind(&u.email)
        .bind(&u.name)
        .bind(u.score)
        .bind(None::<i64>)
        .bind(now)
        .execute(pool)
        .await
        .expect("versioned upsert");
    black_box(match r.rows_affected() {
        1 => 1,
        _ => r.last_insert_id(),
    })
}

type PgRow = (String, String, String, i64, i64);

/// The router's `get`, minus the expiry filter and decoding into the struct.
async fn pg_raw_get(pool: &sqlx::PgPool, sql: &str) -> Option<PgRow> {
    sqlx::query_as::<_, PgRow>(sql)
        .bind(KEY)
        .fetch_optional(pool)
        .await
        .expect("SELECT")
}

/// The router's get by hand: the store's statement (expiry filter bound),
/// the row decoded into the struct with its version.
async fn pg_get_decoded(pool: &sqlx::PgPool, sql: &str) -> Option<BenchUser> {
    sqlx::query_as::<_, PgRow>(sql)
        .bind(KEY)
        .bind(now_micros())
        .fetch_optional(pool)
        .await
        .expect("SELECT")
        .map(|(id, email, name, score, version)| BenchUser {
            id,
            email,
            name,
            score,
            version: version as u64,
        })
}

/// The router's unconditional put by hand: the store's upsert (no expiry
/// bound, `now` for the version rule), the new version back.
async fn pg_put_versioned(pool: &sqlx::PgPool, sql: &str, u: &BenchUser) -> i64 {
    let (version,): (i64,) = sqlx::query_as(sql)
        .bind(&u.id)
        .bind(&u.email)
        .bind(&u.name)
        .bind(u.score)
        .bind(None::<i64>)
        .bind(now_micros())
        .fetch_one(pool)
        .await
        .expect("INSERT … ON CONFLICT … RETURNING");
    version
}

/// The router's unconditional upsert of the same columns, minus the expiry
/// `CASE` and `RETURNING`.
async fn pg_raw_put(pool: &sqlx::PgPool, sql: &str, u: &BenchUser) {
    sqlx::query(sql)
        .bind(&u.id)
        .bind(&u.email)
        .bind(&u.name)
        .bind(u.score)
        .execute(pool)
        .await
        .expect("INSERT … ON CONFLICT");
}

/// The stored JSON of a row: its fields but the version, as the Redis store
/// writes them (strings, an integer).
#[derive(serde::Serialize, serde::Deserialize)]
struct RedisPayload<'a> {
    #[serde(borrow)]
    id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    email: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    name: std::borrow::Cow<'a, str>,
    score: i64,
}

/// A row encoded as the Redis store stores it (compact JSON).
fn redis_payload(u: &BenchUser) -> Vec<u8> {
    serde_json::to_vec(&RedisPayload {
        id: u.id.as_str().into(),
        email: u.email.as_str().into(),
        name: u.name.as_str().into(),
        score: u.score,
    })
    .expect("JSON")
}

/// The router's get by hand: `HMGET k v d`, the JSON decoded into the
/// struct with the version (same work as `Repo::get`, minus the routing).
async fn redis_get_decoded(conn: &ConnectionManager, key: &str) -> Option<BenchUser> {
    let (v, d) = raw_get(conn, key).await;
    let d = d?;
    let p: RedisPayload<'_> = serde_json::from_slice(&d).expect("stored JSON");
    Some(BenchUser {
        id: p.id.into_owned(),
        email: p.email.into_owned(),
        name: p.name.into_owned(),
        score: p.score,
        version: v.unwrap_or_default(),
    })
}

/// The router's unconditional put by hand: the row encoded as the store
/// encodes it, the store's one-put script (`put_one.lua`: version, data,
/// no expiry), the new version back.
async fn redis_put_versioned(
    conn: &ConnectionManager,
    script: &redis::Script,
    key: &str,
    u: &BenchUser,
) -> u64 {
    script
        .key(key)
        .arg(redis_payload(u))
        .arg("")
        .arg("")
        .invoke_async(&mut conn.clone())
        .await
        .expect("put script")
}

/// `HMGET k v d`, the command `RedisStore::get` sends.
async fn raw_get(conn: &ConnectionManager, key: &str) -> (Option<u64>, Option<Vec<u8>>) {
    redis::cmd("HMGET")
        .arg(key)
        .arg("v")
        .arg("d")
        .query_async(&mut conn.clone())
        .await
        .expect("HMGET")
}

/// `HSET k v 1 d <payload>`: the write of the store's script, without Lua.
async fn raw_put(conn: &ConnectionManager, key: &str, payload: &[u8]) -> i64 {
    redis::cmd("HSET")
        .arg(key)
        .arg("v")
        .arg(1)
        .arg("d")
        .arg(payload)
        .query_async(&mut conn.clone())
        .await
        .expect("HSET")
}

/// The router / raw ratios of a store's interleaved get, put and
/// `put_many`.
#[derive(Default)]
struct Ratios {
    get: Mutex<Vec<f64>>,
    put: Mutex<Vec<f64>>,
    put_many: Mutex<Vec<f64>>,
}

impl Ratios {
    /// `interleaved_get` and `interleaved_put`: the router's get and put of
    /// the row under [`KEY`] and `raw_get` / `raw_put` in one loop each, so
    /// that machine-load drift cancels out of their ratio (printed by
    /// [`Ratios::report`] after the group).
    fn bench<G, GF, P, PF>(
        &self,
        g: &mut BenchmarkGroup<'_, WallTime>,
        rt: &Runtime,
        repo: &Repo<BenchUser>,
        one: &BenchUser,
        raw_get: G,
        raw_put: P,
    ) where
        G: Fn() -> GF,
        GF: Future<Output = ()>,
        P: Fn() -> PF,
        PF: Future<Output = ()>,
    {
        let get = || async {
            black_box(repo.get(black_box(KEY)).await.expect("get"));
        };
        let put = || async {
            black_box(repo.put(black_box(one)).await.expect("put"));
        };
        interleaved_bench(g, rt, "interleaved_get", &self.get, get, raw_get);
        interleaved_bench(g, rt, "interleaved_put", &self.put, put, raw_put);
    }

    /// `interleaved_put_many_10k`: the router's `put_many` of `rows` and
    /// `raw` (the same batch by hand) in one loop, as [`Ratios::bench`].
    fn bench_bulk<P, PF>(
        &self,
        g: &mut BenchmarkGroup<'_, WallTime>,
        rt: &Runtime,
        repo: &Repo<BenchUser>,
        rows: &[BenchUser],
        raw: P,
    ) where
        P: Fn() -> PF,
        PF: Future<Output = ()>,
    {
        let router = || async {
            black_box(repo.put_many(black_box(rows)).await.expect("put_many"));
        };
        interleaved_bench(
            g,
            rt,
            "interleaved_put_many_10k",
            &self.put_many,
            router,
            raw,
        );
    }

    /// Prints the median ratios of `label`'s group.
    fn report(&self, label: &str) {
        for (op, ratios) in [
            ("get", &self.get),
            ("put", &self.put),
            ("put_many", &self.put_many),
        ] {
            let (m, n) = median(ratios);
            if n > 0 {
                eprintln!(
                    "{label}: router/raw {op} = {m:.3} (interleaved, median of {n} chunk pairs)"
                );
            }
        }
    }
}

async fn hget_d(conn: &ConnectionManager, key: &str) -> Option<Vec<u8>> {
    redis::cmd("HGET")
        .arg(key)
        .arg("d")
        .query_async(&mut conn.clone())
        .await
        .expect("HGET")
}

/// Deletes every key under `{prefix}:` and `{prefix}#`; returns how many.
async fn delete_prefix(conn: &ConnectionManager, prefix: &str) -> u64 {
    let mut conn = conn.clone();
    let mut deleted = 0;
    for pattern in [format!("{prefix}:*"), format!("{prefix}#*")] {
        deleted += servers::delete_redis_keys(&mut conn, &pattern)
            .await
            .expect("SCAN + DEL");
    }
    deleted
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench
}
criterion_main!(benches);
