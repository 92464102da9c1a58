//! The cost of the full resilience stack — observe (a `tracing` span with no
//! subscriber, `metrics` with no recorder), retry, breaker, limit (a
//! bulkhead of 1024 slots), timeout — per store call.
//!
//! ```text
//! cargo bench --features postgres --bench layers                # memory and PostgreSQL
//! cargo bench --features postgres --bench layers -- memory      # memory only
//! ```
//!
//! `overhead/memory/<op>`: layered minus bare `Store::get` / `Store::write`
//! on the memory store, interleaved in one loop (the layers' own cost per
//! call; target ≤ 0.5 µs). `router/postgres/interleaved_{get,put}`:
//! `Repo::get` / `Repo::put` through the router on the machine's
//! PostgreSQL with the stack and without, over one store (one pool) so the
//! paths share their connections, alternated in chunks inside one loop; the
//! median ratio layers / bare over the chunk pairs (warm-up included) is
//! printed after the group and is the figure (target ≤ 1.02).
//! docs/benchmarks.md keeps the figures.

use std::hint::black_box;
#[cfg(feature = "postgres")]
use std::sync::{Arc, Mutex};
use std::time::Duration;

use criterion::{criterion_group, criterion_main};
use interleave::interleaved;
#[cfg(feature = "postgres")]
use interleave::{interleaved_ratio, median};
#[cfg(feature = "postgres")]
use polyrouter::Router;
use polyrouter::backends::memory::MemoryStore;
#[cfg(feature = "postgres")]
use polyrouter::config::StoreSpec;
use polyrouter::layers::{Limit, Resilience};
use polyrouter::store::{EntityInfo, WriteOp};
use polyrouter::{Entity, Key, Precondition, Record, Store, Value};
use serde::{Deserialize, Serialize};

#[path = "support/args.rs"]
mod args;
#[path = "support/interleave.rs"]
mod interleave;

#[derive(Entity, Serialize, Deserialize, Debug, Clone)]
#[entity(name = "bench_user", key = "id")]
struct BenchUser {
    id: String,
    email: String,
    name: String,
    score: i64,
    #[entity(version)]
    version: u64,
}

const KEY: &str = "user-000042";

#[cfg(feature = "postgres")]
fn sample() -> BenchUser {
    BenchUser {
        id: KEY.into(),
        email: "ada@example.com".into(),
        name: "Ada Lovelace".into(),
        score: 42,
        version: 0,
    }
}

fn record() -> Record {
    let mut r = Record::new(Key::from(KEY));
    r.set("id", Value::from(KEY));
    r.set("email", Value::from("ada@example.com"));
    r.set("name", Value::from("Ada Lovelace"));
    r.set("score", Value::from(42i64));
    r
}

/// The full stack: every layer on, a bulkhead large enough never to wait.
fn full_stack() -> Resilience {
    Resilience::new().limit(Limit::new().max_concurrency(1024))
}

fn bench(c: &mut criterion::Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if args::wanted("memory") {
        memory(c, &rt);
    }
    #[cfg(feature = "postgres")]
    if args::wanted("postgres") {
        postgres(c, &rt);
    }
}

fn memory(c: &mut criterion::Criterion, rt: &tokio::runtime::Runtime) {
    let bare = MemoryStore::new("m");
    let layered = full_stack().layer(MemoryStore::new("m"));
    let mut info = EntityInfo::new(BenchUser::schema());
    info.store = "m".into();
    let key = Key::from(KEY);
    let rec = record();
    rt.block_on(async {
        for s in [&bare as &dyn Store, &layered] {
            s.ensure_entity(&info).await.unwrap();
            let op = WriteOp::Put {
                record: rec.clone(),
                precondition: Precondition::None,
                ttl: None,
            };
            s.write(&info, vec![op], true).await.unwrap();
        }
    });
    let (info, key, rec, bare, layered) = (&info, &key, &rec, &bare, &layered);
    let mut g = c.benchmark_group("overhead/memory");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    g.bench_function("get", |b| {
        b.to_async(rt).iter_custom(|iters| {
            interleaved(
                iters,
                move || async move {
                    black_box(layered.get(info, black_box(key)).await.unwrap());
                },
                move || async move {
                    black_box(bare.get(info, black_box(key)).await.unwrap());
                },
            )
        })
    });
    g.bench_function("put", |b| {
        b.to_async(rt).iter_custom(|iters| {
            interleaved(
                iters,
                move || async move {
                    let op = WriteOp::Put {
                        record: black_box(rec).clone(),
                        precondition: Precondition::None,
                        ttl: None,
                    };
                    black_box(layered.write(info, vec![op], true).await.unwrap());
                },
                move || async move {
                    let op = WriteOp::Put {
                        record: black_box(rec).clone(),
                        precondition: Precondition::None,
                        ttl: None,
                    };
                    black_box(bare.write(info, vec![op], true).await.unwrap());
                },
            )
        })
    });
    g.finish();
    let mut g = c.benchmark_group("memory");
    g.bench_function("bare/get", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(bare.get(info, black_box(key)).await.unwrap()) })
    });
    g.bench_function("layers/get", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(layered.get(info, black_box(key)).await.unwrap()) })
    });
    g.finish();
}

#[cfg(feature = "postgres")]
fn postgres(c: &mut criterion::Criterion, rt: &tokio::runtime::Runtime) {
    let url = std::env::var("POLYROUTER_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("pr_bench_layers_{}", std::process::id());
    // One store, one pool: the bare router uses it as it is, the layered
    // one through the stack the router would build for
    // `resilience = { limit = { max_concurrency = 1024 } }`, so the two
    // paths share their connections and differ only by the layers.
    let options: toml::Table =
        format!("url = \"{url}\"\nschema = \"{schema}\"\nmax_connections = 4\n")
            .parse()
            .expect("options");
    let store = rt
        .block_on(polyrouter::backends::open(StoreSpec::new(
            "s", "postgres", options,
        )))
        .expect("the machine's PostgreSQL");
    let router = |store: Arc<dyn Store>| {
        rt.block_on(async move {
            let r = Router::builder()
                .store("s", store)
                .entity::<BenchUser>()
                .route("bench_user", "s")
                .build()
                .await
                .expect("router");
            let repo = r.repo::<BenchUser>().await.unwrap();
            repo.put(&sample()).await.unwrap();
            (r, repo)
        })
    };
    let (_bare_router, bare) = router(store.clone());
    let (_layered_router, layered) = router(Arc::new(full_stack().layer(store)));
    let (ratios_get, ratios_put) = (Mutex::new(Vec::new()), Mutex::new(Vec::new()));
    let one = sample();
    let mut g = c.benchmark_group("router/postgres");
    g.sampling_mode(criterion::SamplingMode::Flat)
        .sample_size(30)
        .measurement_time(Duration::from_secs(6));
    // Layered (a) and bare (b) alternate in chunks inside one loop, so
    // drift in the server's load hits both; the figure is the median of
    // the chunk pairs' ratios, printed after the group.
    g.bench_function("interleaved_get", |b| {
        b.to_async(rt).iter_custom(|iters| {
            interleaved_ratio(
                iters,
                &ratios_get,
                || async {
                    black_box(layered.get(black_box(KEY)).await.unwrap());
                },
                || async {
                    black_box(bare.get(black_box(KEY)).await.unwrap());
                },
            )
        })
    });
    g.bench_function("interleaved_put", |b| {
        b.to_async(rt).iter_custom(|iters| {
            interleaved_ratio(
                iters,
                &ratios_put,
                || async {
                    black_box(layered.put(black_box(&one)).await.unwrap());
                },
                || async {
                    black_box(bare.put(black_box(&one)).await.unwrap());
                },
            )
        })
    });
    g.finish();
    for (op, ratios) in [("get", &ratios_get), ("put", &ratios_put)] {
        let (m, n) = median(ratios);
        eprintln!(
            "router/postgres: layers/bare {op} = {m:.3} (interleaved, median of {n} chunk pairs)"
        );
    }
    rt.block_on(async {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(&pool)
            .await
            .unwrap();
    });
}

fn config() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench
}
criterion_main!(benches);
