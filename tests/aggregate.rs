//! The aggregator: concurrent branches with deadlines and partial results,
//! joins without N+1, search-then-hydrate, and `[views.NAME]` — on the
//! embedded stores and, with `--features postgres,redis`, on PostgreSQL.

mod support;

use std::sync::Arc;
use std::time::Duration;

use polyrouter::aggregate::{Scored, hydrate};
use polyrouter::config::{Config, EntityConfig, JoinConfig, ViewBranch, ViewConfig};
use polyrouter::layers::testing::{Counting, Faults};
use polyrouter::{Entity, Error, Query, Router, Store, field};
use serde::{Deserialize, Serialize};
use serde_json::json;
use support::{Ctx, Env, Role};

#[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[entity(name = "customer", key = "id")]
struct Customer {
    id: String,
    name: String,
}

#[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[entity(name = "purchase", key = "id")]
struct Purchase {
    id: i64,
    customer_id: String,
    product_id: String,
    placed: i64,
}

#[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[entity(name = "product", key = "sku")]
struct Product {
    sku: String,
    title: String,
}

type Docs = Counting<Faults<Arc<dyn Store>>>;

struct Shop {
    router: Router,
    docs: Arc<Docs>,
    _ctx: Ctx,
}

/// Customers and purchases in the SQL store, products in the document
/// store (counted, and breakable); 100 purchases over 20 products.
async fn shop(env: Env) -> Shop {
    let ctx = Ctx::new(env);
    let sql = ctx.open("sql", Role::Data).await;
    let docs = Arc::new(Counting::new(Faults::new(
        ctx.open("docs", Role::Data).await,
    )));
    let route = |store: &str| EntityConfig {
        store: store.into(),
        ..Default::default()
    };
    let mut dashboard = ViewConfig {
        params: vec!["customer".into()],
        ..Default::default()
    };
    dashboard.branches.insert(
        "customer".into(),
        ViewBranch {
            entity: "customer".into(),
            get: Some("$customer".into()),
            required: true,
            ..Default::default()
        },
    );
    let mut recent = ViewBranch {
        entity: "purchase".into(),
        order_by: Some("-placed".into()),
        limit: Some(5),
        ..Default::default()
    };
    recent.filter = Some([("customer_id".to_string(), toml::Value::from("$customer"))].into());
    dashboard.branches.insert("recent".into(), recent);
    dashboard.branches.insert(
        "products".into(),
        ViewBranch {
            entity: "product".into(),
            join: Some(JoinConfig {
                from: "recent".into(),
                field: "product_id".into(),
            }),
            ..Default::default()
        },
    );
    let router = Router::builder()
        .store("sql", sql)
        .store("docs", docs.clone())
        .route_with("customer", route("sql"))
        .route_with("purchase", route("sql"))
        .route_with("product", route("docs"))
        .view("dashboard", dashboard)
        .entity::<Customer>()
        .entity::<Purchase>()
        .entity::<Product>()
        .build()
        .await
        .unwrap();
    let customers = router.repo::<Customer>().await.unwrap();
    customers
        .put_many(&[
            Customer {
                id: "c1".into(),
                name: "Ada".into(),
            },
            Customer {
                id: "c2".into(),
                name: "Grace".into(),
            },
        ])
        .await
        .unwrap();
    let products: Vec<Product> = (0..20)
        .map(|i| Product {
            sku: format!("p{i:02}"),
            title: format!("Product {i}"),
        })
        .collect();
    router
        .repo::<Product>()
        .await
        .unwrap()
        .put_many(&products)
        .await
        .unwrap();
    let purchases: Vec<Purchase> = (0..100)
        .map(|i| Purchase {
            id: i,
            customer_id: if i % 2 == 0 { "c1" } else { "c2" }.into(),
            // References run p19, p18, ... so first-appearance order is not key order.
            product_id: format!("p{:02}", 19 - (i % 20)),
            placed: 1000 + i,
        })
        .collect();
    router
        .repo::<Purchase>()
        .await
        .unwrap()
        .put_many(&purchases)
        .await
        .unwrap();
    docs.reset();
    Shop {
        router,
        docs,
        _ctx: ctx,
    }
}

async fn join_reads_each_store_once(env: Env) {
    let s = shop(env).await;
    let out = s
        .router
        .aggregate()
        .query::<Purchase>("purchases", Query::new().limit(100))
        .join::<Product>("products", "purchases", "product_id")
        .run()
        .await
        .unwrap();
    let purchases: Vec<Purchase> = out.value("purchases").unwrap();
    assert_eq!(purchases.len(), 100);
    let products: Vec<Product> = out.value("products").unwrap();
    assert_eq!(products.len(), 20, "20 distinct products");
    let counts = s.docs.counts();
    assert_eq!(
        (counts.get_manys, counts.gets, counts.queries),
        (1, 0, 0),
        "{counts:?}"
    );
    assert_eq!(counts.keys_read, 20, "de-duplicated keys");
    // First-reference order: purchase 0 references p19, purchase 1 p18, ...
    let first: Vec<&str> = products.iter().take(3).map(|p| p.sku.as_str()).collect();
    assert_eq!(first, ["p19", "p18", "p17"]);
    assert_eq!(out.branch("products").unwrap().dropped, 0);
}

async fn a_join_drops_and_counts_missing_records(env: Env) {
    let s = shop(env).await;
    s.router
        .repo::<Product>()
        .await
        .unwrap()
        .delete("p19")
        .await
        .unwrap();
    let out = s
        .router
        .aggregate()
        .query::<Purchase>(
            "purchases",
            Query::new().filter(field("customer_id").eq("c2")),
        )
        .join::<Product>("products", "purchases", "product_id")
        .run()
        .await
        .unwrap();
    let products: Vec<Product> = out.value("products").unwrap();
    // c2 holds odd ids → p18, p16, ..., p00 (10 products); none is p19.
    assert_eq!(products.len(), 10);
    assert_eq!(out.branch("products").unwrap().dropped, 0);
    let all = s
        .router
        .aggregate()
        .query::<Purchase>("purchases", Query::new().limit(100))
        .join::<Product>("products", "purchases", "product_id")
        .run()
        .await
        .unwrap();
    assert_eq!(all.value::<Vec<Product>>("products").unwrap().len(), 19);
    assert_eq!(all.branch("products").unwrap().dropped, 1);
}

async fn a_stopped_store_leaves_a_partial_result(env: Env) {
    let s = shop(env).await;
    s.docs.inner().set_down(true);
    let out = s
        .router
        .aggregate()
        .get::<Customer>("customer", "c1")
        .query::<Purchase>(
            "purchases",
            Query::new().filter(field("customer_id").eq("c1")).limit(5),
        )
        .get::<Product>("product", "p01")
        .join::<Product>("products", "purchases", "product_id")
        .run()
        .await
        .unwrap();
    assert_eq!(out.value::<Customer>("customer").unwrap().name, "Ada");
    assert_eq!(out.value::<Vec<Purchase>>("purchases").unwrap().len(), 5);
    let failed: Vec<(&str, String, bool)> = out
        .failures()
        .map(|(n, f)| (n, f.store.clone(), f.timed_out))
        .collect();
    assert_eq!(
        failed,
        vec![
            ("product", "docs".to_string(), true),
            ("products", "docs".to_string(), true)
        ],
        "the failing store is named; Unavailable counts as transient"
    );
    let e = out.value::<Product>("product").unwrap_err();
    assert!(e.to_string().contains("store `docs`"), "{e}");
    let j = out.to_json();
    assert_eq!(j["data"]["customer"]["name"], "Ada");
    assert_eq!(j["errors"]["product"]["store"], "docs");
}

async fn a_slow_branch_misses_its_deadline(env: Env) {
    let s = shop(env).await;
    s.docs.inner().set_delay(Duration::from_secs(5));
    let out = s
        .router
        .aggregate()
        .get::<Customer>("customer", "c1")
        .get::<Product>("product", "p01")
        .deadline(Duration::from_millis(100))
        .timeout(Duration::from_secs(3))
        .run()
        .await
        .unwrap();
    assert_eq!(out.value::<Customer>("customer").unwrap().name, "Ada");
    let (name, f) = out.failures().next().unwrap();
    assert_eq!(
        (name, f.store.as_str(), f.timed_out),
        ("product", "docs", true)
    );
    assert!(f.message.contains("deadline"), "{}", f.message);
    // The overall timeout applies to branches without their own deadline.
    let out = s
        .router
        .aggregate()
        .get::<Customer>("customer", "c1")
        .get::<Product>("product", "p01")
        .timeout(Duration::from_millis(100))
        .run()
        .await
        .unwrap();
    assert!(out.value::<Customer>("customer").is_ok());
    assert!(out.branch("product").unwrap().outcome.is_err());
}

async fn a_required_branch_failure_fails_the_call(env: Env) {
    let s = shop(env).await;
    s.docs.inner().set_down(true);
    let e = s
        .router
        .aggregate()
        .get::<Customer>("customer", "c1")
        .get::<Product>("product", "p01")
        .required()
        .run()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("store `docs`"), "{e}");
    assert!(e.to_string().contains("branch `product`"), "{e}");
    assert!(e.is_transient());
}

async fn search_then_hydrate_keeps_rank_and_drops_the_gone(env: Env) {
    let s = shop(env).await;
    let products = s.router.repo::<Product>().await.unwrap();
    products.delete("p03").await.unwrap();
    s.docs.reset();
    let hits = [
        ("p07", 9.5),
        ("p03", 8.0),
        ("p01", 7.25),
        ("p07", 1.0),
        ("p11", 0.5),
    ];
    let h = hydrate(&products, hits).await.unwrap();
    let got: Vec<(&str, f64)> = h
        .items
        .iter()
        .map(|s| (s.item.sku.as_str(), s.score))
        .collect();
    assert_eq!(got, [("p07", 9.5), ("p01", 7.25), ("p11", 0.5)]);
    assert_eq!(h.dropped, vec![polyrouter::Key::from("p03")]);
    assert_eq!(s.docs.counts().get_manys, 1);
    // The same as an aggregate branch.
    let out = s
        .router
        .aggregate()
        .hydrate::<Product>("results", hits)
        .get::<Customer>("customer", "c2")
        .run()
        .await
        .unwrap();
    let scored: Vec<Scored<Product>> = out.value("results").unwrap();
    assert_eq!(scored.len(), 3);
    assert_eq!(scored[0].item.sku, "p07");
    assert_eq!(out.branch("results").unwrap().dropped, 1);
}

async fn the_dashboard_view_federates_three_entities(env: Env) {
    let s = shop(env).await;
    let out = s
        .router
        .view("dashboard", json!({"customer": "c1"}))
        .await
        .unwrap();
    let j = out.to_json();
    assert_eq!(j["data"]["customer"]["name"], "Ada");
    let recent = j["data"]["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 5);
    assert_eq!(recent[0]["placed"], 1098, "newest first");
    let skus: Vec<&str> = j["data"]["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sku"].as_str().unwrap())
        .collect();
    // Purchases 98, 96, 94, 92, 90 reference p01, p03, p05, p07, p09.
    assert_eq!(skus, ["p01", "p03", "p05", "p07", "p09"]);
    assert_eq!(s.docs.counts().get_manys, 1);
    assert!(j["errors"].as_object().unwrap().is_empty());
    // Bad parameters are refused before anything runs.
    let e = s.router.view("dashboard", json!({})).await.unwrap_err();
    assert!(
        e.to_string().contains("parameter `customer` is missing"),
        "{e}"
    );
    let e = s
        .router
        .view("dashboard", json!({"customer": "c1", "x": 1}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("unknown parameter `x`"), "{e}");
    let e = s.router.view("nope", json!({})).await.unwrap_err();
    assert!(e.to_string().contains("no such view"), "{e}");
    // A missing record is not a failure: the required branch is simply null.
    let missing = s
        .router
        .view("dashboard", json!({"customer": "c9"}))
        .await
        .unwrap();
    assert!(missing.to_json()["data"]["customer"].is_null());
}

async fn views_from_toml(env: Env) {
    let ctx = Ctx::new(env);
    let toml = format!(
        "{}{}{}",
        ctx.store_toml("sql", Role::Data),
        ctx.store_toml("docs", Role::Data),
        r#"
[entities.customer]
store = "sql"
[entities.purchase]
store = "sql"
[entities.product]
store = "docs"

[views.dashboard]
params = ["customer"]
timeout = "2s"

[views.dashboard.branches.customer]
entity = "customer"
get = "$customer"
required = true

[views.dashboard.branches.recent]
entity = "purchase"
filter = { customer_id = "$customer" }
order_by = "-placed"
limit = 3
deadline = "1s"

[views.dashboard.branches.products]
entity = "product"
join = { from = "recent", field = "product_id" }
"#
    );
    let router = Router::builder()
        .config(Config::parse(&toml, "shop.toml").unwrap())
        .entity::<Customer>()
        .entity::<Purchase>()
        .entity::<Product>()
        .build()
        .await
        .unwrap();
    router
        .repo::<Customer>()
        .await
        .unwrap()
        .put(&Customer {
            id: "c1".into(),
            name: "Ada".into(),
        })
        .await
        .unwrap();
    router
        .repo::<Product>()
        .await
        .unwrap()
        .put(&Product {
            sku: "p1".into(),
            title: "Lamp".into(),
        })
        .await
        .unwrap();
    let purchases = router.repo::<Purchase>().await.unwrap();
    for i in 0..4 {
        purchases
            .put(&Purchase {
                id: i,
                customer_id: "c1".into(),
                product_id: "p1".into(),
                placed: i,
            })
            .await
            .unwrap();
    }
    let j = router
        .view("dashboard", json!({"customer": "c1"}))
        .await
        .unwrap()
        .to_json();
    assert_eq!(j["data"]["recent"].as_array().unwrap().len(), 3);
    assert_eq!(
        j["data"]["products"],
        json!([{"sku": "p1", "title": "Lamp"}])
    );
}

#[test]
fn view_config_errors_name_the_key() {
    let base = "[stores.m]\nkind = \"memory\"\n[entities.user]\nstore = \"m\"\n";
    for (extra, want) in [
        (
            "[views.v.branches.a]\nentity = \"nope\"\n",
            "views.v.branches.a.entity",
        ),
        (
            "[views.v.branches.a]\nentity = \"user\"\nget = \"$id\"\n",
            "parameter `id` is not declared",
        ),
        (
            "[views.v.branches.a]\nentity = \"user\"\njoin = { from = \"b\", field = \"x\" }\n[views.v.branches.b]\nentity = \"user\"\njoin = { from = \"a\", field = \"x\" }\n",
            "cycle",
        ),
        (
            "[views.v.branches.a]\nentity = \"user\"\njoin = { from = \"zz\", field = \"x\" }\n",
            "not another branch",
        ),
        (
            "[views.v.branches.a]\nentity = \"user\"\nget = 1\nlimit = 2\n",
            "one of",
        ),
        ("[views.v]\nbogus = 1\n", "views.v.bogus"),
    ] {
        let e = Config::parse(&format!("{base}{extra}"), "app.toml").unwrap_err();
        assert!(e.to_string().contains(want), "{extra}: {e}");
        assert!(e.to_string().starts_with("app.toml:"), "{e}");
    }
}

#[tokio::test]
async fn a_view_over_an_unbound_entity_says_what_to_do() {
    let router = Router::from_toml_str(
        "[stores.m]\nkind = \"memory\"\n[entities.customer]\nstore = \"m\"\n[views.v]\nparams = [\"id\"]\nbranches.c = { entity = \"customer\", get = \"$id\" }\n",
    )
    .await
    .unwrap();
    let e = router.view("v", json!({"id": "x"})).await.unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }));
    assert!(e.to_string().contains("router.repo::<T>()"), "{e}");
}

macro_rules! per_env {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(super::Env::Memory).await })*
        }
        #[cfg(feature = "sqlite")]
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(super::Env::Sqlite).await })*
        }
        #[cfg(all(feature = "postgres", feature = "redis"))]
        mod servers {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(super::Env::Servers).await })*
        }
    };
}

per_env!(
    join_reads_each_store_once,
    a_join_drops_and_counts_missing_records,
    a_stopped_store_leaves_a_partial_result,
    a_slow_branch_misses_its_deadline,
    a_required_branch_failure_fails_the_call,
    search_then_hydrate_keeps_rank_and_drops_the_gone,
    the_dashboard_view_federates_three_entities,
    views_from_toml,
);
