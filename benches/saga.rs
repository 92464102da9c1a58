//! Per-step overhead of a saga against the same writes without one, on
//! SQLite and PostgreSQL.
//!
//! ```text
//! cargo bench --features postgres --bench saga -- --warm-up-time 1 --measurement-time 5
//! ```
//!
//! - `saga/<store>/plain`: three `put_if(Absent)` of a small record, one
//!   after the other (what a three-step saga's steps write);
//! - `saga/<store>/saga`: the same three writes as the three steps of a
//!   saga started with `Sagas::start` (log on the same store).
//!
//! Before timing, the store calls of one saga are counted (a
//! `layers::testing::Counting` store): the log's writes per saga, and the
//! extra round trips per step, printed. Target: at most one extra round trip
//! per step. PostgreSQL: `postgres://postgres@127.0.0.1:5432/test`, tables in
//! a schema of this run (`pr_saga_bench_<pid>`, dropped at the end).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use polyrouter::config::{Config, SagasConfig};
use polyrouter::layers::testing::Counting;
use polyrouter::saga::{Saga, Sagas, StepCtx, StepError};
use polyrouter::{Entity, Precondition, Repo, Router, Store};
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const STEPS: usize = 3;

#[derive(Entity, Serialize, Deserialize, Debug, Clone)]
#[entity(name = "effect", key = "id")]
struct Effect {
    id: String,
    payload: String,
}

struct Setup {
    sagas: Sagas,
    saga: Saga<u64>,
    effects: Repo<Effect>,
    counting: Arc<Counting<Arc<dyn Store>>>,
}

async fn setup(kind: &str, dir: &std::path::Path) -> Setup {
    let options = match kind {
        "sqlite" => format!(
            "[stores.s]\nkind = \"sqlite\"\nurl = \"sqlite://{}/bench.db\"\n",
            dir.display()
        ),
        _ => format!(
            "[stores.s]\nkind = \"postgres\"\nurl = \"{PG_URL}\"\nschema = \"pr_saga_bench_{}\"\n",
            std::process::id()
        ),
    };
    let config = Config::parse(&options, "<bench>").unwrap();
    let opened = polyrouter::backends::open(config.stores["s"].clone())
        .await
        .unwrap();
    let counting = Arc::new(Counting::new(opened));
    let router = Router::builder()
        .store("c", counting.clone() as Arc<dyn Store>)
        .build()
        .await
        .unwrap();
    let effects: Repo<Effect> = router.repo_at("c", "bench_effects").await.unwrap();
    let sagas = Sagas::with_config(&router, SagasConfig::new("c"))
        .await
        .unwrap();
    let mut b = Saga::<u64>::builder("bench");
    for step in ["one", "two", "three"] {
        let effects = effects.clone();
        b = b.step(step, move |ctx: StepCtx<u64>| {
            let effects = effects.clone();
            async move {
                let e = Effect {
                    id: ctx.key(),
                    payload: "x".repeat(64),
                };
                effects.put_if(&e, Precondition::Absent).await?;
                Ok::<(), StepError>(())
            }
        });
    }
    let saga = b.build().unwrap();
    sagas.register(&saga).unwrap();
    Setup {
        sagas,
        saga,
        effects,
        counting,
    }
}

fn bench(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let next = Arc::new(AtomicU64::new(0));
    for kind in ["sqlite", "postgres"] {
        let s = rt.block_on(setup(kind, dir.path()));
        // Round trips of one saga, counted at the store.
        let run = next.fetch_add(1, Ordering::Relaxed);
        s.counting.reset();
        rt.block_on(s.sagas.start(&s.saga, Some(&format!("count-{run}")), &run))
            .unwrap();
        let with = s.counting.counts();
        s.counting.reset();
        rt.block_on(async {
            for i in 0..STEPS {
                let e = Effect {
                    id: format!("plain-count-{run}/{i}"),
                    payload: "x".repeat(64),
                };
                s.effects.put_if(&e, Precondition::Absent).await.unwrap();
            }
        });
        let without = s.counting.counts();
        let extra = with.calls - without.calls;
        println!(
            "saga/{kind}: {} store calls per {STEPS}-step saga ({} writes, {} reads) vs {} without: {extra} extra = {:.2} per step",
            with.calls,
            with.writes,
            with.reads(),
            without.calls,
            extra as f64 / STEPS as f64
        );

        let mut g = c.benchmark_group(format!("saga/{kind}"));
        g.sample_size(20);
        let n = next.clone();
        g.bench_function("plain", |b| {
            b.to_async(&rt).iter(|| {
                let i = n.fetch_add(1, Ordering::Relaxed);
                let effects = s.effects.clone();
                async move {
                    for step in 0..STEPS {
                        let e = Effect {
                            id: format!("plain-{i}/{step}"),
                            payload: "x".repeat(64),
                        };
                        effects.put_if(&e, Precondition::Absent).await.unwrap();
                    }
                }
            })
        });
        let n = next.clone();
        g.bench_function("saga", |b| {
            b.to_async(&rt).iter(|| {
                let i = n.fetch_add(1, Ordering::Relaxed);
                let sagas = s.sagas.clone();
                let saga = s.saga.clone();
                async move {
                    let out = sagas
                        .start(&saga, Some(&format!("saga-{i}")), &i)
                        .await
                        .unwrap();
                    assert!(out.is_completed());
                }
            })
        });
        g.finish();
        if kind == "postgres" {
            rt.block_on(async {
                if let Ok(pool) = sqlx::PgPool::connect(PG_URL).await {
                    let _ = sqlx::query(&format!(
                        "DROP SCHEMA IF EXISTS pr_saga_bench_{} CASCADE",
                        std::process::id()
                    ))
                    .execute(&pool)
                    .await;
                }
            });
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
