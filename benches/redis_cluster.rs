//! Point get and put through `Repo<T>` on a Redis Cluster against the same
//! on a single Redis, in one run:
//!
//! ```text
//! scripts/services redis redis-cluster
//! cargo bench --features redis --bench redis_cluster -- --warm-up-time 1 --measurement-time 5
//! ```
//!
//! The single server is `redis://127.0.0.1:6379` (or
//! `POLYROUTER_BENCH_REDIS`); the cluster the project's six nodes on
//! `127.0.0.1:7101-7106` (or `POLYROUTER_BENCH_REDIS_CLUSTER`, a comma list
//! of node URLs). One row (`user-000042`), replaced in place by every put,
//! under a key prefix unique to the run (dropped at the end):
//!
//! - `redis_cluster/get_single`, `redis_cluster/get_cluster`: one get;
//! - `redis_cluster/put_single`, `redis_cluster/put_cluster`: one put;
//! - `redis_cluster/put_cluster_wait1`: one put with `wait_replicas = 1`
//!   (the put, then `WAIT 1` for the slot's replica).
//!
//! docs/benchmarks.md keeps the figures.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use polyrouter::store::EntityInfo;
use polyrouter::{Entity, Repo, Router};
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

#[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[entity(name = "bench_user", key = "id")]
struct BenchUser {
    id: String,
    email: String,
    name: String,
    score: i64,
    #[entity(version)]
    version: u64,
}

fn row() -> BenchUser {
    BenchUser {
        id: "user-000042".into(),
        email: "u42@example.com".into(),
        name: "User 42".into(),
        score: 42,
        version: 0,
    }
}

/// A router with `bench_user` on a redis store of these options, and the
/// row written once.
async fn open(options: &str) -> (Router, Repo<BenchUser>) {
    let prefix = format!("pr-bench-cluster-{}", std::process::id());
    let config = format!(
        "[stores.s]\nkind = \"redis\"\nkey_prefix = \"{prefix}\"\n{options}\n\
         [entities.bench_user]\nstore = \"s\"\n"
    );
    let router = Router::from_toml_str(&config).await.expect(
        "Redis on 6379 and the cluster on 7101-7106: run `scripts/services redis redis-cluster`",
    );
    let repo = router.repo::<BenchUser>().await.expect("repo");
    repo.put(&row()).await.expect("put");
    (router, repo)
}

/// Removes the run's keys (the store's own `drop_entity`).
async fn drop_table(router: &Router) {
    let store = router.store("s").expect("store s");
    let info = EntityInfo {
        table: router.route("bench_user").expect("route").table.clone(),
        store: "s".into(),
        ..EntityInfo::new(<BenchUser as Entity>::schema())
    };
    store.drop_entity(&info).await.expect("drop the bench keys");
}

fn redis_cluster(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let single =
        std::env::var("POLYROUTER_BENCH_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let nodes = std::env::var("POLYROUTER_BENCH_REDIS_CLUSTER").unwrap_or_else(|_| {
        (7101..=7106)
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    });
    let nodes: Vec<&str> = nodes.split(',').collect();
    let cluster = format!(
        "url = \"{}\"\ncluster = true\ncluster_urls = [{}]",
        nodes[0],
        nodes[1..]
            .iter()
            .map(|u| format!("\"{u}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let (single_router, single_repo) = rt.block_on(open(&format!("url = \"{single}\"")));
    let (cluster_router, cluster_repo) = rt.block_on(open(&cluster));
    let (wait_router, wait_repo) = rt.block_on(open(&format!(
        "{cluster}\nwait_replicas = 1\nwait_timeout = \"2s\""
    )));

    let mut g = c.benchmark_group("redis_cluster");
    for (name, repo) in [("get_single", &single_repo), ("get_cluster", &cluster_repo)] {
        g.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| async { repo.get("user-000042").await.expect("get") })
        });
    }
    for (name, repo) in [
        ("put_single", &single_repo),
        ("put_cluster", &cluster_repo),
        ("put_cluster_wait1", &wait_repo),
    ] {
        let r = row();
        g.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| async { repo.put(&r).await.expect("put") })
        });
    }
    g.finish();
    rt.block_on(async {
        drop_table(&single_router).await;
        drop_table(&cluster_router).await;
        drop(wait_router);
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = redis_cluster
}
criterion_main!(benches);
