//! Aggregator fan-out, cache hit vs miss, and single-flight.
//!
//! ```text
//! cargo bench --bench aggregate -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! - `fanout/concurrent` vs `fanout/sequential`: four `get` branches on four
//!   stores whose calls are delayed 5, 10, 15 and 20 ms (`layers::testing::Faults`),
//!   as one `aggregate()` call vs the same four `get`s awaited in turn.
//!   Target: concurrent ≤ 1.1 × the slowest branch (20 ms).
//! - `cache/hit`, `cache/miss`, `cache/primary`: a point get on SQLite with a
//!   memory cache: a fresh entry; an absent key (cache lookup + primary read,
//!   no negative caching); `strong` (primary only), for reference.
//! - `single_flight/1000`: 1000 concurrent gets of one key right after a write
//!   invalidated it (one primary read; the count is printed), vs
//!   `single_flight/strong_1000`, the same 1000 gets all sent to the primary.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use polyrouter::config::{CacheConfig, ConfigDuration, Consistency, EntityConfig, StoreSpec};
use polyrouter::layers::testing::{Counting, Faults};
use polyrouter::router::ReadOptions;
use polyrouter::{Entity, Repo, Router, Store};
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

macro_rules! entity {
    ($t:ident, $name:literal) => {
        #[derive(Entity, Serialize, Deserialize, Debug, Clone)]
        #[entity(name = $name, key = "id")]
        struct $t {
            id: String,
            payload: String,
        }
    };
}
entity!(A, "a");
entity!(B, "b");
entity!(C, "c");
entity!(D, "d");
entity!(User, "user");

fn memory(name: &str, delay_ms: u64) -> Arc<dyn Store> {
    let f = Faults::new(polyrouter::backends::memory::MemoryStore::new(name));
    f.set_delay(Duration::from_millis(delay_ms));
    Arc::new(f)
}

fn route(store: &str) -> EntityConfig {
    EntityConfig {
        store: store.into(),
        ..Default::default()
    }
}

async fn fanout_router() -> Router {
    let router = Router::builder()
        .store("s5", memory("s5", 5))
        .store("s10", memory("s10", 10))
        .store("s15", memory("s15", 15))
        .store("s20", memory("s20", 20))
        .route_with("a", route("s5"))
        .route_with("b", route("s10"))
        .route_with("c", route("s15"))
        .route_with("d", route("s20"))
        .build()
        .await
        .unwrap();
    let p = |id: &str| id.to_string();
    router
        .repo::<A>()
        .await
        .unwrap()
        .put(&A {
            id: p("k"),
            payload: p("a"),
        })
        .await
        .unwrap();
    router
        .repo::<B>()
        .await
        .unwrap()
        .put(&B {
            id: p("k"),
            payload: p("b"),
        })
        .await
        .unwrap();
    router
        .repo::<C>()
        .await
        .unwrap()
        .put(&C {
            id: p("k"),
            payload: p("c"),
        })
        .await
        .unwrap();
    router
        .repo::<D>()
        .await
        .unwrap()
        .put(&D {
            id: p("k"),
            payload: p("d"),
        })
        .await
        .unwrap();
    router
}

fn fanout(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let router = rt.block_on(fanout_router());
    let mut g = c.benchmark_group("fanout");
    g.sample_size(20);
    g.bench_function("concurrent", |b| {
        b.to_async(&rt).iter(|| async {
            let out = router
                .aggregate()
                .get::<A>("a", "k")
                .get::<B>("b", "k")
                .get::<C>("c", "k")
                .get::<D>("d", "k")
                .run()
                .await
                .unwrap();
            assert_eq!(out.failures().count(), 0);
        })
    });
    g.bench_function("sequential", |b| {
        b.to_async(&rt).iter(|| async {
            router
                .repo::<A>()
                .await
                .unwrap()
                .get("k")
                .await
                .unwrap()
                .unwrap();
            router
                .repo::<B>()
                .await
                .unwrap()
                .get("k")
                .await
                .unwrap()
                .unwrap();
            router
                .repo::<C>()
                .await
                .unwrap()
                .get("k")
                .await
                .unwrap()
                .unwrap();
            router
                .repo::<D>()
                .await
                .unwrap()
                .get("k")
                .await
                .unwrap()
                .unwrap();
        })
    });
    g.bench_function("slowest_alone", |b| {
        b.to_async(&rt).iter(|| async {
            router
                .repo::<D>()
                .await
                .unwrap()
                .get("k")
                .await
                .unwrap()
                .unwrap();
        })
    });
    g.finish();
}

struct Cached {
    users: Repo<User>,
    primary: Arc<Counting<Arc<dyn Store>>>,
    _dir: tempfile::TempDir,
}

async fn cached() -> Cached {
    let dir = tempfile::tempdir().unwrap();
    let mut t = toml::Table::new();
    t.insert(
        "url".into(),
        format!("sqlite://{}/bench.db", dir.path().display()).into(),
    );
    let sqlite = polyrouter::backends::open(StoreSpec::new("main", "sqlite", t))
        .await
        .unwrap();
    let primary = Arc::new(Counting::new(sqlite));
    let router = Router::builder()
        .store("main", primary.clone())
        .store("cache", memory("cache", 0))
        .route_with(
            "user",
            EntityConfig {
                cache: Some(CacheConfig {
                    store: "cache".into(),
                    ttl: Some(ConfigDuration(Duration::from_secs(3600))),
                    timeout: Some(ConfigDuration(Duration::from_secs(30))),
                    ..Default::default()
                }),
                ..route("main")
            },
        )
        .build()
        .await
        .unwrap();
    let users = router.repo::<User>().await.unwrap();
    users
        .put(&User {
            id: "hot".into(),
            payload: "x".repeat(200),
        })
        .await
        .unwrap();
    users.get("hot").await.unwrap();
    Cached {
        users,
        primary,
        _dir: dir,
    }
}

fn cache(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let s = rt.block_on(cached());
    let mut g = c.benchmark_group("cache");
    g.bench_function("hit", |b| {
        b.to_async(&rt)
            .iter(|| async { s.users.get("hot").await.unwrap().unwrap() })
    });
    g.bench_function("miss", |b| {
        b.to_async(&rt)
            .iter(|| async { assert!(s.users.get("absent").await.unwrap().is_none()) })
    });
    g.bench_function("primary", |b| {
        b.to_async(&rt).iter(|| async {
            s.users
                .get_with("hot", ReadOptions::new().consistency(Consistency::Strong))
                .await
                .unwrap()
        })
    });
    g.finish();
}

async fn stampede(users: &Repo<User>, level: Consistency) {
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let u = users.clone();
            tokio::spawn(async move {
                u.get_with("hot", ReadOptions::new().consistency(level))
                    .await
                    .unwrap()
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

fn single_flight(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let s = rt.block_on(cached());
    let user = User {
        id: "hot".into(),
        payload: "y".repeat(200),
    };
    let mut g = c.benchmark_group("single_flight");
    g.sample_size(10);
    for (name, level) in [
        ("1000", Consistency::Eventual),
        ("strong_1000", Consistency::Strong),
    ] {
        let reads = (AtomicU64::new(0), AtomicU64::new(0));
        g.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let s = &s;
                let user = user.clone();
                let reads = &reads;
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        s.users.put(&user).await.unwrap(); // invalidates the entry
                        let before = s.primary.counts().gets;
                        let t0 = Instant::now();
                        stampede(&s.users, level).await;
                        total += t0.elapsed();
                        reads.0.fetch_add(s.primary.counts().gets - before, Relaxed);
                        reads.1.fetch_add(1, Relaxed);
                    }
                    total
                }
            })
        });
        println!(
            "single_flight/{name}: {:.1} primary reads per 1000 concurrent gets",
            reads.0.load(Relaxed) as f64 / reads.1.load(Relaxed).max(1) as f64
        );
    }
    g.finish();
}

criterion_group!(benches, fanout, cache, single_flight);
criterion_main!(benches);
