//! A point read from a PostgreSQL hot standby (`read_from`) against the same
//! read from its primary, through `Repo<T>`:
//!
//! ```text
//! scripts/services pg-replica
//! cargo bench --features redis,postgres --bench replica
//! ```
//!
//! The primary is `postgres://postgres@127.0.0.1:5440/test` and the standby
//! `…:5441/test` (`scripts/services pg-replica`; or
//! `POLYROUTER_BENCH_PG_PRIMARY` / `POLYROUTER_BENCH_PG_REPLICA`). One row,
//! in a schema unique to the run (dropped with `CASCADE` at the end):
//!
//! - `replica/get_primary`: `consistency = strong`, always the primary;
//! - `replica/get_replica`: `eventual`, always the standby;
//! - `replica/get_bounded_5s`: `bounded_staleness = "5s"`, the standby while
//!   its measured lag (`Store::replica_lag`, one query per sample) proves it
//!   within 5 s; the counters printed at the end say how many reads the
//!   standby answered and how often the lag was measured.
//!
//! docs/benchmarks.md keeps the figures.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use polyrouter::config::{ConfigDuration, Consistency};
use polyrouter::router::{ReadOptions, ReadSource};
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

fn url(var: &str, port: u16) -> String {
    std::env::var(var).unwrap_or_else(|_| format!("postgres://postgres@127.0.0.1:{port}/test"))
}

fn replica(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let schema = format!("pr_bench_replica_{}", std::process::id());
    let config = format!(
        "[stores.pg]\nkind = \"postgres\"\nurl = \"{}\"\nschema = \"{schema}\"\n\
         [stores.pg_replica]\nkind = \"postgres\"\nurl = \"{}\"\nschema = \"{schema}\"\n\
         [entities.bench_user]\nstore = \"pg\"\nread_from = \"pg_replica\"\n",
        url("POLYROUTER_BENCH_PG_PRIMARY", 5440),
        url("POLYROUTER_BENCH_PG_REPLICA", 5441),
    );
    let (router, repo): (Router, Repo<BenchUser>) = rt.block_on(async {
        let router = Router::from_toml_str(&config).await.expect(
            "the primary on 5440 and the standby on 5441: run `scripts/services pg-replica`",
        );
        let repo = router.repo::<BenchUser>().await.expect("repo");
        repo.put(&BenchUser {
            id: "user-000042".into(),
            email: "u42@example.com".into(),
            name: "User 42".into(),
            score: 42,
            version: 0,
        })
        .await
        .expect("put");
        // Wait until the standby shows the row.
        loop {
            let r = repo
                .get_with(
                    "user-000042",
                    ReadOptions::new().consistency(Consistency::Eventual),
                )
                .await
                .expect("get");
            if r.meta.source == ReadSource::Replica {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (router, repo)
    });
    let mut g = c.benchmark_group("replica");
    for (name, level) in [
        ("get_primary", Consistency::Strong),
        ("get_replica", Consistency::Eventual),
        (
            "get_bounded_5s",
            Consistency::BoundedStaleness(ConfigDuration(Duration::from_secs(5))),
        ),
    ] {
        let repo = repo.clone();
        g.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                repo.get_with("user-000042", ReadOptions::new().consistency(level))
                    .await
                    .expect("get")
            })
        });
    }
    g.finish();
    println!(
        "read-path counters: {:?}",
        router.metrics().entity("bench_user")
    );
    drop(repo);
    drop(router);
    let _ = std::process::Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            "5440",
            "-U",
            "postgres",
            "-d",
            "test",
            "-c",
        ])
        .arg(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .status();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = replica
}
criterion_main!(benches);
