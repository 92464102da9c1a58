//! Router overhead: the same point get and put through `Repo<T>` and
//! directly on the store object, for the memory store and for SQLite (a file
//! in a temp dir), in one run.
//!
//! ```text
//! cargo bench --bench router
//! ```
//!
//! Benchmark ids: `router/<store>/<op>` goes through `Repo<T>` (key check,
//! serde to and from the neutral `Record`, capability checks, error
//! mapping); `direct/<store>/<op>` calls `Store::get` / `Store::write` on the
//! `Arc<dyn Store>` with a `Record` built beforehand. The difference is the
//! router's overhead per operation. `overhead/memory/<op>` measures that
//! difference directly, running both paths interleaved in one loop so that
//! drift in machine load cancels out. docs/benchmarks.md keeps the figures.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main};
use interleave::interleaved;
use polyrouter::store::{EntityInfo, WriteOp};
use polyrouter::{Entity, Key, Precondition, Record, Repo, Router, Store, Value};
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

#[path = "support/interleave.rs"]
mod interleave;

/// A typical small row: a string key, three fields and a version.
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

fn sample() -> BenchUser {
    BenchUser {
        id: KEY.into(),
        email: "ada@example.com".into(),
        name: "Ada Lovelace".into(),
        score: 42,
        version: 0,
    }
}

/// The record `Repo` would build for `sample()`, built by hand.
fn sample_record() -> Record {
    let u = sample();
    let mut r = Record::new(Key::from(KEY));
    r.set("id", Value::from(u.id.as_str()));
    r.set("email", Value::from(u.email.as_str()));
    r.set("name", Value::from(u.name.as_str()));
    r.set("score", Value::from(u.score));
    r
}

/// One store under test: its router path and its direct path.
struct Target {
    label: &'static str,
    repo: Repo<BenchUser>,
    store: Arc<dyn Store>,
    info: EntityInfo,
}

async fn target(label: &'static str, store_toml: &str) -> Target {
    // The store bare, as before the resilience layers: this bench measures
    // the router; benches/layers.rs measures the layers.
    let toml = format!(
        "[stores.s]\n{store_toml}resilience = {{ enabled = false }}\n[entities.bench_user]\nstore = \"s\"\n"
    );
    let router = Router::from_toml_str(&toml).await.expect("router");
    // Creates the table (sqlite) before either path runs.
    let repo = router.repo::<BenchUser>().await.expect("repo");
    let route = router.route("bench_user").expect("route");
    let info = EntityInfo {
        table: route.table.clone(),
        store: route.store.clone(),
        ..EntityInfo::new(BenchUser::schema())
    };
    let store = router.store("s").expect("store").clone();
    repo.put(&sample()).await.expect("seed row");
    Target {
        label,
        repo,
        store,
        info,
    }
}

fn bench(c: &mut criterion::Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut stores: Vec<(&'static str, String)> = Vec::new();
    if cfg!(feature = "memory") {
        stores.push(("memory", "kind = \"memory\"\n".into()));
    }
    if cfg!(feature = "sqlite") {
        let url = format!("sqlite://{}/bench.db", dir.path().display());
        stores.push(("sqlite", format!("kind = \"sqlite\"\nurl = \"{url}\"\n")));
    }
    let targets = rt.block_on(async {
        let mut targets = Vec::new();
        for (label, toml) in &stores {
            targets.push(target(label, toml).await);
        }
        targets
    });
    for t in &targets {
        bench_target(c, &rt, t);
    }
}

fn bench_target(c: &mut criterion::Criterion, rt: &Runtime, t: &Target) {
    let key = Key::from(KEY);
    let user = sample();
    let record = sample_record();

    // Both paths must see the same row.
    rt.block_on(async {
        let via_repo = t.repo.get(KEY).await.expect("get").expect("row");
        let direct = t.store.get(&t.info, &key).await.expect("get").expect("row");
        assert_eq!(direct.get("email"), record.get("email"));
        assert_eq!(via_repo.version, direct.version);
    });

    let mut g = group(c, "router", t.label);
    g.bench_function("get", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(t.repo.get(black_box(KEY)).await.expect("get")) })
    });
    g.bench_function("put", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(t.repo.put(black_box(&user)).await.expect("put")) })
    });
    g.finish();

    let mut g = group(c, "direct", t.label);
    g.bench_function("get", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(t.store.get(&t.info, black_box(&key)).await.expect("get")) })
    });
    g.bench_function("put", |b| {
        b.to_async(rt).iter(|| async {
            let op = WriteOp::Put {
                record: black_box(&record).clone(),
                precondition: Precondition::None,
                ttl: None,
            };
            black_box(t.store.write(&t.info, vec![op], true).await.expect("put"))
        })
    });
    g.finish();

    if t.label != "memory" {
        // The router does the same work whatever the store. On SQLite the
        // store's own jitter (a hop to sqlx's worker thread per call, fsync
        // per committed write) is microseconds, far more than that work, so
        // an interleaved difference does not resolve it; compare the
        // `router/sqlite` and `direct/sqlite` groups instead.
        return;
    }
    // Router minus direct, measured interleaved in the same loop so that
    // drift in machine load cancels out: the reported time per iteration
    // is the router's overhead per operation.
    let (key, user, record) = (&key, &user, &record);
    let mut g = group(c, "overhead", t.label);
    g.bench_function("get", |b| {
        b.to_async(rt).iter_custom(|iters| {
            interleaved(
                iters,
                move || async move {
                    black_box(t.repo.get(black_box(KEY)).await.expect("get"));
                },
                move || async move {
                    black_box(t.store.get(&t.info, black_box(key)).await.expect("get"));
                },
            )
        })
    });
    g.bench_function("put", |b| {
        b.to_async(rt).iter_custom(|iters| {
            interleaved(
                iters,
                move || async move {
                    black_box(t.repo.put(black_box(user)).await.expect("put"));
                },
                move || async move {
                    let op = WriteOp::Put {
                        record: black_box(record).clone(),
                        precondition: Precondition::None,
                        ttl: None,
                    };
                    black_box(t.store.write(&t.info, vec![op], true).await.expect("put"));
                },
            )
        })
    });
    g.finish();
}

/// A group `PATH/STORE`; its benchmarks are `PATH/STORE/OP`.
///
/// Disk-bound stores (a committed SQLite write waits for fsync) get flat
/// sampling and fewer samples. The `overhead` groups report only the
/// difference between the paths while running both, so their wall time is
/// about (router + direct) / overhead ≈ 5 times their measurement time.
fn group<'a>(
    c: &'a mut criterion::Criterion,
    path: &str,
    store: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(format!("{path}/{store}"));
    if store != "memory" {
        g.sampling_mode(criterion::SamplingMode::Flat)
            .sample_size(20)
            .measurement_time(Duration::from_secs(3));
    }
    if path == "overhead" {
        g.warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(800));
    }
    g
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
