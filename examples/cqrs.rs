//! CQRS, the order flow of the architecture document: the command side
//! writes orders and customers to SQL only; every write records a change
//! event in the same transaction (the outbox), a relay moves the events to a
//! bus, and projections keep the query side true — a denormalized order view
//! (order + customer name) in a document store, the order cache, and a
//! full-text index of orders.
//!
//! ```text
//! cargo run --features tantivy --example cqrs                                  # SQLite + memory bus + memory + tantivy
//! cargo run --all-features --example cqrs -- examples/cqrs-azure.toml          # PostgreSQL → NATS → Cosmos + Redis + tantivy
//! ```
//!
//! Two routers from one file stand for two processes: `command` writes SQL
//! (no cache, no search index, no sync), `query` runs the relay and the
//! projections and answers reads. So everything the query side holds came
//! through the events. The view is written with the order's version through
//! `apply_versioned`: a redelivered or late event changes nothing.
//! (A customer renamed after an order was placed is not propagated to its
//! views here: that needs a per-customer version in the view.)

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use polyrouter::config::Config;
use polyrouter::router::SearchQuery;
use polyrouter::store::{Applied, EntityInfo, VersionedChange};
use polyrouter::sync::projection::Projection;
use polyrouter::sync::{ChangeEvent, Operation};
use polyrouter::{Entity, Error, Record, Router, Store};
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[entity(name = "customer", key = "id")]
struct Customer {
    id: String,
    name: String,
}

#[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[entity(name = "order", key = "id")]
struct Order {
    id: String,
    customer_id: String,
    item: String,
    total_cents: i64,
    status: String,
}

/// The read model: one document per order, with its customer's name, at
/// the order's version.
#[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[entity(name = "order_view", key = "id")]
struct OrderView {
    id: String,
    customer_id: String,
    customer_name: String,
    item: String,
    total_cents: i64,
    status: String,
    #[entity(version)]
    version: u64,
}

/// The `order_view` handler projection: builds the view from the event's
/// after-image and the customer's name (read from SQL), and stores it at the
/// order's version only when newer than what the view holds.
struct OrderViewProjection {
    router: Router,
    view_store: Arc<dyn Store>,
    view_info: EntityInfo,
}

#[async_trait]
impl Projection for OrderViewProjection {
    async fn apply(&self, event: &ChangeEvent) -> polyrouter::Result<Applied> {
        let change = match event.op {
            Operation::Delete => VersionedChange::delete(event.key.clone(), event.version),
            Operation::Put => {
                let data = event.data.clone().ok_or_else(|| {
                    Error::invalid_input(
                        &event.store,
                        &event.entity,
                        "no after-image: set `outbox = { ..., after_image = true }`",
                    )
                })?;
                let order: Order = serde_json::from_value(serde_json::Value::Object(data))
                    .map_err(|e| {
                        Error::invalid_input(&event.store, &event.entity, e.to_string())
                    })?;
                let customers = self.router.repo::<Customer>().await?;
                let customer_name = customers
                    .get(&order.customer_id)
                    .await?
                    .map(|c| c.name)
                    .unwrap_or_else(|| "(unknown)".into());
                let view = OrderView {
                    id: order.id,
                    customer_id: order.customer_id,
                    customer_name,
                    item: order.item,
                    total_cents: order.total_cents,
                    status: order.status,
                    version: event.version,
                };
                let mut record = Record::from_entity(&view)?;
                record.version = event.version; // the view keeps the order's version
                VersionedChange::put(record)
            }
        };
        // Written only when newer: duplicates and late events are Stale.
        let mut out = self
            .view_store
            .apply_versioned(&self.view_info, vec![change])
            .await?;
        Ok(out.pop().expect("one outcome per change"))
    }
}

/// The command side's configuration: the same file without the query
/// side (no cache, no search index, no view, no projections).
fn command_side(config: &Config) -> Config {
    let mut c = config.clone();
    c.entities
        .retain(|name, _| name == "order" || name == "customer");
    for e in c.entities.values_mut() {
        e.cache = None;
        e.search = None;
    }
    c.projections.clear();
    let sql = c.entities["order"].store.clone();
    c.stores.retain(|name, _| *name == sql);
    c
}

#[tokio::main]
async fn main() -> polyrouter::Result<()> {
    let path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/cqrs.toml"))
        });
    let config = Config::from_file(&path)?;
    let command = Router::builder()
        .config(command_side(&config))
        .build()
        .await?;
    let query = Router::builder().config(config).build().await?;

    // The query side: relay and projections, with the view handler.
    // Binding the Rust types first lets the projections read the events.
    let views = query.repo::<OrderView>().await?;
    let q_orders = query.repo::<Order>().await?;
    query.repo::<Customer>().await?;
    let route = query.route("order_view").expect("order_view is routed");
    let projection = OrderViewProjection {
        router: query.clone(),
        view_store: query.store(&route.store).expect("its store").clone(),
        view_info: EntityInfo {
            store: route.store.clone(),
            table: route.table.clone(),
            ..EntityInfo::new(OrderView::schema())
        },
    };
    let sync = query
        .sync_builder()
        .handler("order_view", projection)
        .start()
        .await?;
    println!(
        "query side: {} relay(s), projections {:?}",
        sync.status().relays.len(),
        {
            let mut p: Vec<_> = sync
                .status()
                .projections
                .into_iter()
                .map(|p| p.projection)
                .collect();
            p.sort();
            p
        }
    );

    // Fresh ids per run (the stores may keep earlier runs' rows).
    let run = uuid::Uuid::new_v4().simple().to_string();
    let run = &run[..8];
    let cid = format!("c-{run}");
    let oid = |n: u32| format!("o-{run}-{n}");

    // The command side: a customer and three orders, then one order updated.
    let customers = command.repo::<Customer>().await?;
    let orders = command.repo::<Order>().await?;
    customers
        .put(&Customer {
            id: cid.clone(),
            name: "Ada Lovelace".into(),
        })
        .await?;
    let items = [
        ("brass desk lamp", 4_900),
        ("walnut bookshelf", 18_900),
        ("linen armchair", 32_000),
    ];
    for (n, (item, total)) in items.iter().enumerate() {
        orders
            .put(&Order {
                id: oid(n as u32),
                customer_id: cid.clone(),
                item: (*item).into(),
                total_cents: *total,
                status: "pending".into(),
            })
            .await?;
    }
    println!("command side: customer {cid} and 3 orders written to SQL");
    sync.settle(Duration::from_secs(30)).await?;

    // The view: one document per order, with the customer's name, at the
    // order's version (1: written once).
    for (n, (item, total)) in items.iter().enumerate() {
        let v = views.require(&oid(n as u32)).await?;
        assert_eq!((v.item.as_str(), v.total_cents), (*item, *total));
        assert_eq!(v.customer_name, "Ada Lovelace");
        assert_eq!(v.version, 1, "{v:?}");
    }
    println!("order view: 3 documents with the customer's name, at version 1");

    // Search: the search projection indexed what SQL holds.
    q_orders.refresh_search().await?;
    let hits = q_orders
        .search(SearchQuery::new("bookshelf").limit(10))
        .await?;
    assert!(
        hits.hits.iter().any(|h| h.item.id == oid(1)),
        "the bookshelf order is found: {:?}",
        hits.hits.iter().map(|h| &h.item.id).collect::<Vec<_>>()
    );
    println!(
        "search \"bookshelf\": {} hit(s), {} among them",
        hits.hits.len(),
        oid(1)
    );

    // The cache: the query side reads an order twice (a miss fills the
    // cache, then a hit); the command side, which has no cache, ships it;
    // the invalidate projection removes the query side's entry, so the next
    // read misses and sees the new status.
    let counters = |r: &Router| {
        let m = r.metrics();
        let c = m.entity("order").expect("order is routed");
        (c.cache_hits, c.cache_misses)
    };
    let (h0, _) = counters(&query);
    assert_eq!(q_orders.require(&oid(0)).await?.status, "pending");
    assert_eq!(q_orders.require(&oid(0)).await?.status, "pending");
    let (h1, m1) = counters(&query);
    assert!(h1 > h0, "the second read is served by the cache");
    let mut shipped = orders.require(&oid(0)).await?;
    shipped.status = "shipped".into();
    orders.put(&shipped).await?;
    sync.settle(Duration::from_secs(30)).await?;
    assert_eq!(q_orders.require(&oid(0)).await?.status, "shipped");
    let (_, m2) = counters(&query);
    assert!(m2 > m1, "the cache entry was gone: the read went to SQL");
    println!(
        "cache: order {} invalidated by its event, read again from SQL",
        oid(0)
    );

    // ...and the view followed, at version 2.
    let v = views.require(&oid(0)).await?;
    assert_eq!((v.status.as_str(), v.version), ("shipped", 2));
    println!("order view: {} shipped at version 2", oid(0));

    // A cancelled order: deleted in SQL, gone from the view and the index.
    orders.delete(oid(2).as_str()).await?;
    sync.settle(Duration::from_secs(30)).await?;
    assert!(views.get(&oid(2)).await?.is_none());
    q_orders.refresh_search().await?;
    let hits = q_orders
        .search(SearchQuery::new("armchair").limit(10))
        .await?;
    assert!(hits.hits.iter().all(|h| h.item.id != oid(2)));
    println!("order {} deleted: gone from the view and the index", oid(2));

    let status = sync.status();
    for p in &status.projections {
        println!(
            "  projection {:<12} applied {:>3}  duplicates {:>2}  dead letters {}",
            p.projection, p.applied, p.duplicates, p.dead_lettered
        );
        assert_eq!(p.dead_lettered, 0, "{p:?}");
    }
    for r in &status.relays {
        println!(
            "  relay {:<20} relayed {:>3}  backlog {}",
            r.entity, r.relayed, r.backlog
        );
    }
    sync.shutdown().await?;
    println!(
        "status: `polyrouter sync status --config {}`",
        path.display()
    );
    Ok(())
}
