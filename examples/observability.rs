//! What the resilience layers show: the e-commerce flow with a `tracing`
//! span for every store call, printed by `tracing-subscriber`, and a
//! snapshot of the `metrics` they count. Zero servers: SQLite files and the
//! in-process store.
//!
//! ```text
//! cargo run --example observability
//! ```
//!
//! Every store the router opens is wrapped in timeouts, safe retries, a
//! circuit breaker and a span per call (`[stores.NAME.resilience]`, see
//! docs/resilience.md). Spans carry the OpenTelemetry database attribute
//! names (`db.system.name`, `db.operation.name`, `db.collection.name`,
//! `server.address`), the outcome, the attempts and the rows — never a
//! record's values. The metrics go through the `metrics` facade; here the
//! debugging recorder of `metrics-util` holds them, in production an
//! exporter (Prometheus, OpenTelemetry) would.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use polyrouter::prelude::*;
use polyrouter::{Error, router::ReadOptions};
use serde::{Deserialize, Serialize};
use tracing_subscriber::fmt::format::FmtSpan;

#[derive(Entity, Serialize, Deserialize, Debug, Clone)]
#[entity(name = "user", key = "id")]
struct User {
    id: String,
    email: String,
    name: String,
    #[entity(version)]
    version: u64,
}

#[derive(Entity, Serialize, Deserialize, Debug, Clone)]
#[entity(name = "order", key = "id")]
struct Order {
    id: i64,
    customer_id: String,
    product_id: String,
    quantity: i64,
    placed_at: chrono::DateTime<Utc>,
}

#[derive(Entity, Serialize, Deserialize, Debug, Clone)]
#[entity(name = "product", key = "sku")]
struct Product {
    sku: String,
    title: String,
    price_cents: i64,
}

fn config(dir: &std::path::Path) -> String {
    format!(
        r#"
[stores.sql]
kind = "sqlite"
url = "sqlite://{dir}/shop.db"
# Tighter than the defaults, as a latency-sensitive shop might set them.
[stores.sql.resilience]
timeout = {{ read = "500ms", write = "2s", query = "2s" }}
retry = {{ max_attempts = 3, base_delay = "10ms" }}
breaker = {{ minimum_calls = 10, open_for = "2s" }}

[stores.catalog]
kind = "sqlite"
url = "sqlite://{dir}/catalog.db"

[stores.kv]
kind = "memory"
resilience = {{ limit = {{ max_concurrency = 256 }} }}

[entities.user]
store = "sql"
table = "users"
cache = {{ store = "kv", ttl = "1h", stale_if_error = "10m" }}
consistency = "read_your_writes"

[entities.order]
store = "sql"
table = "orders"

[entities.product]
store = "catalog"
table = "products"
"#,
        dir = dir.display()
    )
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // The recorder first: metric handles bind to the recorder installed
    // when they are registered.
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).expect("no other recorder");
    // Spans, printed when they close, with their fields.
    tracing_subscriber::fmt()
        .with_span_events(FmtSpan::CLOSE)
        .with_target(false)
        .with_ansi(false)
        .init();

    let dir = tempfile::tempdir().expect("a temp dir");
    let router = Router::from_toml_str(&config(dir.path())).await?;
    let users = router.repo::<User>().await?;
    let orders = router.repo::<Order>().await?;
    let products = router.repo::<Product>().await?;

    println!("== the shop's flow, one span per store call");
    let ada = User {
        id: "u1".into(),
        email: "ada@example.com".into(),
        name: "Ada".into(),
        version: 0,
    };
    users.put(&ada).await?;
    products
        .put_many(&[
            Product {
                sku: "p1".into(),
                title: "Lamp".into(),
                price_cents: 4_500,
            },
            Product {
                sku: "p2".into(),
                title: "Desk".into(),
                price_cents: 29_900,
            },
        ])
        .await?;
    let t0 = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    for (id, sku) in [(1, "p1"), (2, "p2")] {
        orders
            .put(&Order {
                id,
                customer_id: "u1".into(),
                product_id: sku.into(),
                quantity: 1,
                placed_at: t0 + chrono::Duration::minutes(id),
            })
            .await?;
    }
    // A cache miss (primary read + fill), then a hit (the cache store only).
    users.get("u1").await?;
    let hit = users.get_with("u1", ReadOptions::new()).await?;
    println!("second read answered by {:?}", hit.meta.source);
    // A query page and a join's batched read.
    let page = orders
        .query(Query::new().filter(field("customer_id").eq("u1")).limit(10))
        .await?;
    let skus: Vec<String> = page.items.iter().map(|o| o.product_id.clone()).collect();
    let found = products.get_many(skus).await?;
    println!("{} orders, {} products", page.items.len(), found.len());
    // An optimistic-concurrency conflict: an error span, and no retry.
    let stale = users.put_if(&ada, Precondition::Version(7)).await;
    println!("a stale write: {}", stale.unwrap_err());

    println!("\n== metrics snapshot");
    let mut lines = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let labels: Vec<String> = key
            .key()
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let shown = match value {
            DebugValue::Counter(n) => n.to_string(),
            DebugValue::Gauge(g) => g.to_string(),
            DebugValue::Histogram(v) => format!("{} samples", v.len()),
        };
        lines.insert(
            format!("{}{{{}}}", key.key().name(), labels.join(",")),
            shown,
        );
    }
    for (k, v) in lines.iter().filter(|(_, v)| v.as_str() != "0") {
        println!("{k} {v}");
    }
    // What the CI run checks: calls, errors, latency and read-path counters.
    let has = |needle: &str| lines.keys().any(|k| k.contains(needle));
    assert!(has(
        "polyrouter_store_calls_total{store=sql,entity=user,operation=write,outcome=ok}"
    ));
    assert!(has(
        "polyrouter_store_errors_total{store=sql,entity=user,operation=write,kind=conflict}"
    ));
    assert!(has(
        "polyrouter_store_call_duration_seconds{store=catalog,entity=product,operation=get_many}"
    ));
    assert!(
        lines
            .get("polyrouter_read_path_total{store=sql,entity=user,event=cache_hits}")
            .is_some_and(|v| v != "0")
    );
    Ok(())
}
