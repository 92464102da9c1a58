//! Cosmos DB figures against the local emulator (`scripts/emulators/start`;
//! `POLYROUTER_BENCH_COSMOS`, default `http://127.0.0.1:8081/`): point get,
//! point put and a 50-row query page through `Repo<T>`, and the same three
//! through the raw `azure_data_cosmos` client in the same run, so the
//! router / raw ratio can be computed.
//!
//! ```text
//! scripts/emulators/start
//! cargo bench --features cosmos --bench cosmos -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! - `cosmos/get`, `cosmos/raw_get`: one item (`user-000042`); raw is
//!   `read_item` into a `serde_json::Value`;
//! - `cosmos/put`, `cosmos/raw_put`: the router's versioned put (read,
//!   then replace with `If-Match`: two requests) against a raw
//!   `upsert_item` of the same document (one request, no version, no
//!   precondition);
//! - `cosmos/query_page_50`, `cosmos/raw_query_page_50`: the first 50 items
//!   in key order; raw is `SELECT TOP 50 * FROM c ORDER BY c["pr_id"] ASC`.
//!
//! The run uses its own database (`pr_bench_<pid>`) and deletes it at the
//! end. Figures are the emulator's (a single-threaded Node process), not
//! the service's. docs/benchmarks.md keeps them.

use std::hint::black_box;
use std::time::Duration;

use azure_data_cosmos::options::{BinaryEncodingOptions, ConnectionPoolOptions};
use azure_data_cosmos::{
    AccountReference, CosmosClient, CosmosRuntime, FeedScope, RoutingStrategy,
};
use bench_user::{BenchUser, KEY, runtime, sample, user};
use criterion::{Criterion, criterion_group, criterion_main};
use futures::TryStreamExt;
use polyrouter::backends::cosmos::{CosmosConfig, CosmosStore};
use polyrouter::{Query, Router};

#[path = "support/bench_user.rs"]
mod bench_user;

const ROWS: i64 = 200;
/// The emulators' well-known, public account key.
const KEY_B64: &str =
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let endpoint = std::env::var("POLYROUTER_BENCH_COSMOS")
        .unwrap_or_else(|_| "http://127.0.0.1:8081/".into());
    let database = format!("pr_bench_{}", std::process::id());
    let toml = format!(
        "[stores.s]\nkind = \"cosmos\"\nendpoint = \"{endpoint}\"\nkey = \"{KEY_B64}\"\ndatabase = \"{database}\"\ncreate_if_missing = true\n[entities.bench_user]\nstore = \"s\"\n"
    );
    let repo = rt.block_on(async {
        let router = Router::from_toml_str(&toml)
            .await
            .expect("the Cosmos emulator runs (scripts/emulators/start)");
        let repo = router.repo::<BenchUser>().await.expect("repo");
        let rows: Vec<BenchUser> = (0..ROWS).map(|i| user(format!("row-{i:05}"), i)).collect();
        repo.put_many(&rows).await.expect("seed rows");
        repo.put(&sample()).await.expect("seed row");
        repo
    });
    let container = rt.block_on(async {
        let pool = ConnectionPoolOptions::builder()
            .with_is_http2_allowed(false)
            .build()
            .expect("pool");
        let runtime = CosmosRuntime::builder()
            .with_connection_pool(pool)
            .build()
            .await
            .expect("runtime");
        let account = AccountReference::with_authentication_key(
            endpoint.parse().expect("endpoint"),
            KEY_B64.to_string(),
        );
        let client = CosmosClient::builder()
            .with_runtime(runtime)
            .with_binary_encoding_options(BinaryEncodingOptions::new().with_enabled(false))
            .build(account, RoutingStrategy::PreferredRegions(Vec::new()))
            .await
            .expect("client");
        client
            .database_client(database.as_str())
            .container_client("bench_user", None)
            .await
            .expect("container")
    });
    let doc: serde_json::Value = rt.block_on(async {
        container
            .read_item(KEY.to_string(), KEY, None)
            .await
            .expect("read")
            .into_model()
            .expect("json")
    });

    let mut g = c.benchmark_group("cosmos");
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("get", |b| {
        b.iter(|| rt.block_on(async { black_box(repo.get(KEY).await.unwrap()) }))
    });
    g.bench_function("raw_get", |b| {
        b.iter(|| {
            rt.block_on(async {
                let v: serde_json::Value = container
                    .read_item(KEY.to_string(), KEY, None)
                    .await
                    .unwrap()
                    .into_model()
                    .unwrap();
                black_box(v)
            })
        })
    });
    let row = sample();
    g.bench_function("put", |b| {
        b.iter(|| rt.block_on(async { black_box(repo.put(&row).await.unwrap()) }))
    });
    g.bench_function("raw_put", |b| {
        b.iter(|| {
            rt.block_on(async {
                black_box(
                    container
                        .upsert_item(KEY.to_string(), KEY, &doc, None)
                        .await
                        .unwrap(),
                )
            })
        })
    });
    g.bench_function("query_page_50", |b| {
        b.iter(|| {
            rt.block_on(async { black_box(repo.query(Query::new().limit(50)).await.unwrap()) })
        })
    });
    g.bench_function("raw_query_page_50", |b| {
        b.iter(|| {
            rt.block_on(async {
                let q = azure_data_cosmos::Query::from(
                    "SELECT TOP 50 * FROM c ORDER BY c[\"pr_id\"] ASC",
                );
                let items: Vec<serde_json::Value> = container
                    .query_items::<serde_json::Value>(q, FeedScope::full_container(), None)
                    .await
                    .unwrap()
                    .try_collect()
                    .await
                    .unwrap();
                black_box(items)
            })
        })
    });
    g.finish();
    rt.block_on(async {
        let cfg = CosmosConfig::new(endpoint.as_str(), KEY_B64, &database);
        let store = CosmosStore::connect("s", cfg).await.expect("store");
        store
            .delete_database()
            .await
            .expect("delete the bench database");
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
