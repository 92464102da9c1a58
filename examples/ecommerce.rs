//! The e-commerce flow: polyglot persistence behind one API.
//!
//! ```text
//! cargo run --example ecommerce                                   # embedded, zero servers
//! cargo run --features postgres,redis --example ecommerce -- examples/ecommerce-servers.toml
//! cargo run --features cosmos,postgres,redis --example ecommerce -- examples/ecommerce-azure.toml   # catalog in Cosmos DB
//! ```
//!
//! - users and orders in SQL; the product catalog in a document store
//!   (Cosmos DB with `ecommerce-azure.toml`, SQL standing in otherwise);
//!   sessions in a key-value store with a 30-minute TTL;
//! - users cached for an hour (cache-aside, invalidated on every write) and
//!   read at `read_your_writes`: a session token carried like a cookie makes
//!   a profile edit visible to its author at once;
//! - a customer dashboard view federating the user, their recent orders and
//!   the products those orders reference — one call, one product read for
//!   all the orders, partial results if the catalog is slow.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use polyrouter::config::Config;
use polyrouter::prelude::*;
use polyrouter::router::{ReadOptions, Session};
use serde::{Deserialize, Serialize};

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
    placed_at: DateTime<Utc>,
}

#[derive(Entity, Serialize, Deserialize, Debug, Clone)]
#[entity(name = "product", key = "sku")]
struct Product {
    sku: String,
    title: String,
    category: String,
    price_cents: i64,
    /// Free-form attributes: a document store's strength.
    attributes: serde_json::Value,
}

/// A login session (not to be confused with the consistency [`Session`]).
#[derive(Entity, Serialize, Deserialize, Debug, Clone)]
#[entity(name = "session", key = "id")]
struct LoginSession {
    id: String,
    user_id: String,
    /// The consistency token, as a web app would keep it in a cookie.
    consistency: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/ecommerce.toml")
        });
    let router = Router::builder()
        .config(Config::from_file(&file)?)
        .entity::<User>()
        .entity::<Order>()
        .entity::<Product>()
        .entity::<LoginSession>()
        .build()
        .await?;
    println!("routes from {}:", file.display());
    for r in router.routes() {
        println!(
            "  {:<8} -> {:<8} (consistency {:?}{})",
            r.entity,
            r.store,
            r.consistency,
            r.config
                .cache
                .as_ref()
                .map(|c| format!(", cached in {}", c.store))
                .unwrap_or_default()
        );
    }

    let users = router.repo::<User>().await?;
    let orders = router.repo::<Order>().await?;
    let products = router.repo::<Product>().await?;
    let logins = router.repo::<LoginSession>().await?;

    // Seed: 3 users, 8 products, 40 orders (replacing earlier runs' rows).
    let names = [("u1", "Ada"), ("u2", "Grace"), ("u3", "Linus")];
    users
        .put_many(
            &names
                .iter()
                .map(|(id, n)| User {
                    id: (*id).into(),
                    email: format!("{}@example.com", n.to_lowercase()),
                    name: (*n).into(),
                    version: 0,
                })
                .collect::<Vec<_>>(),
        )
        .await?;
    let catalog: Vec<Product> = (0..8)
        .map(|i| Product {
            sku: format!("sku-{i}"),
            title: [
                "Lamp", "Desk", "Chair", "Shelf", "Rug", "Mug", "Pen", "Clock",
            ][i]
                .into(),
            category: if i < 5 { "furniture" } else { "office" }.into(),
            price_cents: 1_000 + 750 * i as i64,
            attributes: serde_json::json!({ "colour": (["oak", "black", "white"][i % 3]) }),
        })
        .collect();
    products.put_many(&catalog).await?;
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
    let seeded: Vec<Order> = (0..40)
        .map(|i| Order {
            id: i,
            customer_id: names[(i % 3) as usize].0.into(),
            product_id: format!("sku-{}", (i * 5) % 8),
            quantity: 1 + i % 3,
            placed_at: t0 + chrono::Duration::hours(i),
        })
        .collect();
    orders.put_many(&seeded).await?;

    // Log in: a session record in the KV store, expiring after 30 minutes.
    let consistency = Session::new();
    let login = LoginSession {
        id: "sess-42".into(),
        user_id: "u1".into(),
        consistency: consistency.to_token(),
    };
    logins.put(&login).await?;

    // Read Ada twice: a miss fills the cache, the second read is a hit.
    let first = users.get_with("u1", ReadOptions::new()).await?;
    let second = users.get_with("u1", ReadOptions::new()).await?;
    println!(
        "\nuser u1: first read from {:?}, second from {:?}",
        first.meta.source, second.meta.source
    );

    // Ada edits her profile within her session; the next request carries
    // the token (cookie) and is guaranteed to see the edit.
    let mine = users.with_session(&consistency);
    let mut ada = second.value.expect("seeded");
    ada.name = "Ada Lovelace".into();
    let v = mine.put(&ada).await?;
    let cookie = consistency.to_token();
    logins
        .put(&LoginSession {
            consistency: cookie.clone(),
            ..login
        })
        .await?;
    println!(
        "profile saved as version {v}; session cookie {cookie} ({} bytes)",
        cookie.len()
    );
    let next_request = Session::parse(&logins.require("sess-42").await?.consistency)?;
    let seen = users
        .get_with("u1", ReadOptions::new().session(&next_request))
        .await?;
    println!(
        "next request sees {:?} (version {:?}, from {:?})",
        seen.value.map(|u| u.name),
        seen.meta.version,
        seen.meta.source
    );

    // The dashboard, declared in TOML: user + recent orders + their products.
    let dash = router
        .view("dashboard", serde_json::json!({ "user_id": "u1" }))
        .await?;
    let j = dash.to_json();
    println!("\ndashboard for u1 ({} branches):", dash.branches.len());
    println!("  user:     {}", j["data"]["user"]["name"]);
    for o in j["data"]["recent_orders"].as_array().into_iter().flatten() {
        println!(
            "  order {:>2}: {} x {} at {}",
            o["id"], o["quantity"], o["product_id"], o["placed_at"]
        );
    }
    let titles: Vec<&str> = j["data"]["products"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["title"].as_str())
        .collect();
    println!(
        "  products: {} (one catalog read for all orders)",
        titles.join(", ")
    );
    for (name, f) in dash.failures() {
        println!("  ! {name} failed: {f}");
    }

    // The same dashboard in code, typed.
    let out = router
        .aggregate()
        .get::<User>("user", "u2")
        .required()
        .query::<Order>(
            "recent_orders",
            Query::new()
                .filter(field("customer_id").eq("u2"))
                .order_by_desc("placed_at")
                .limit(5),
        )
        .deadline(Duration::from_millis(200))
        .join::<Product>("products", "recent_orders", "product_id")
        .timeout(Duration::from_millis(500))
        .run()
        .await?;
    let grace: User = out.value("user")?;
    let recent: Vec<Order> = out.value("recent_orders")?;
    let bought: Vec<Product> = out.value("products")?;
    println!(
        "\ntyped dashboard for {}: {} recent orders, {} distinct products, total {} cents",
        grace.name,
        recent.len(),
        bought.len(),
        recent
            .iter()
            .map(|o| {
                o.quantity
                    * bought
                        .iter()
                        .find(|p| p.sku == o.product_id)
                        .map_or(0, |p| p.price_cents)
            })
            .sum::<i64>()
    );

    let m = router.metrics();
    let u = m.entity("user").expect("routed");
    println!(
        "\nuser cache: {} hits, {} misses, {} fills, {} invalidations, {} primary reads",
        u.cache_hits, u.cache_misses, u.fills, u.invalidations, u.primary_reads
    );
    Ok(())
}
