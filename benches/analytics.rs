//! Analytical SQL across two stores: 100 000 orders on PostgreSQL joined
//! with 10 000 users on SQLite, filters on both sides, through
//! `Router::sql` (filters pushed into each store, keyset pages) against a
//! baseline that pulls both tables whole into DataFusion memory tables and
//! runs the same query there. Prints the time (median of 5) and the rows
//! pulled from the stores.
//!
//! PostgreSQL: `postgres://postgres@127.0.0.1:5432/test` or
//! `POLYROUTER_BENCH_POSTGRES`, in a schema unique to the run, dropped at
//! the end; SQLite: a file in a temp dir.
//!
//! ```text
//! cargo bench --features analytics,postgres,sqlite --bench analytics
//! ```
//!
//! docs/benchmarks.md keeps the figures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use polyrouter::analytics::datafusion::datasource::MemTable;
use polyrouter::analytics::datafusion::prelude::SessionContext;
use polyrouter::{Entity, Router};
use serde::{Deserialize, Serialize};

#[derive(Entity, Debug, Clone, Serialize, Deserialize)]
#[entity(name = "bench_order", key = "id")]
struct Order {
    id: i64,
    user_id: i64,
    total: f64,
    status: String,
}

#[derive(Entity, Debug, Clone, Serialize, Deserialize)]
#[entity(name = "bench_user", key = "id")]
struct User {
    id: i64,
    country: String,
    tier: String,
}

const ORDERS: i64 = 100_000;
const USERS: i64 = 10_000;
const QUERY: &str = "SELECT u.country, count(*) AS n, sum(o.total) AS revenue \
    FROM bench_order o JOIN bench_user u ON o.user_id = u.id \
    WHERE o.status = 'paid' AND o.total >= 900 AND u.tier = 'gold' \
    GROUP BY u.country";

fn pg_url() -> String {
    std::env::var("POLYROUTER_BENCH_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn rows(router: &Router, sql: &str) -> usize {
    let b: Vec<_> = router.sql(sql).await.unwrap().try_collect().await.unwrap();
    b.iter().map(|b| b.num_rows()).sum()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list`: nothing to list
    }
    let dir = tempfile::tempdir().unwrap();
    let schema = format!(
        "pr_anbench_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let toml = format!(
        "[router]\nmax_page_size = 10000\n\
         [stores.pg]\nkind = \"postgres\"\nurl = \"{}\"\nschema = \"{schema}\"\n\
         [stores.lite]\nkind = \"sqlite\"\nurl = \"sqlite://{}/users.db\"\n\
         [entities.bench_order]\nstore = \"pg\"\ntable = \"orders\"\n\
         [entities.bench_user]\nstore = \"lite\"\ntable = \"users\"\n",
        pg_url(),
        dir.path().display()
    );
    let router = Router::from_toml_str(&toml).await.unwrap();
    let orders = router.repo::<Order>().await.unwrap();
    let users = router.repo::<User>().await.unwrap();
    let started = Instant::now();
    for chunk in (1..=ORDERS).collect::<Vec<_>>().chunks(5_000) {
        let batch: Vec<Order> = chunk
            .iter()
            .map(|&i| Order {
                id: i,
                user_id: (i * 7919) % USERS + 1,
                total: ((i * 37) % 1000) as f64,
                status: ["new", "paid", "shipped", "cancelled"][(i % 4) as usize].into(),
            })
            .collect();
        orders.put_many(&batch).await.unwrap();
    }
    for chunk in (1..=USERS).collect::<Vec<_>>().chunks(5_000) {
        let batch: Vec<User> = chunk
            .iter()
            .map(|&i| User {
                id: i,
                country: ["SE", "DE", "US", "JP", "BR"][(i % 5) as usize].into(),
                tier: ["gold", "silver", "bronze", "basic"][(i % 4) as usize].into(),
            })
            .collect();
        users.put_many(&batch).await.unwrap();
    }
    println!(
        "loaded {ORDERS} orders (postgres) and {USERS} users (sqlite) in {:.1?}",
        started.elapsed()
    );

    // Rows the answer needs: the orders and users passing their filters.
    let need_orders = rows(
        &router,
        "SELECT id FROM bench_order WHERE status = 'paid' AND total >= 900",
    )
    .await;
    let need_users = rows(&router, "SELECT id FROM bench_user WHERE tier = 'gold'").await;
    let needed = (need_orders + need_users) as u64;

    // Pushdown: Router::sql.
    let mut times = Vec::new();
    let mut pulled = 0;
    let mut groups = 0;
    for _ in 0..5 {
        let session = router.sql_session().await.unwrap();
        let t = Instant::now();
        let b: Vec<_> = session
            .sql(QUERY)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        times.push(t.elapsed());
        groups = b.iter().map(|b| b.num_rows()).sum::<usize>();
        pulled = session.rows_pulled("bench_order") + session.rows_pulled("bench_user");
    }
    let pushdown = median(times);

    // Baseline: pull both tables whole, then the same query in memory.
    let mut times = Vec::new();
    let mut base_pulled = 0;
    for _ in 0..5 {
        let session = router.sql_session().await.unwrap();
        let t = Instant::now();
        let ctx = SessionContext::new();
        for (name, sql) in [
            ("bench_order", "SELECT * FROM bench_order"),
            ("bench_user", "SELECT * FROM bench_user"),
        ] {
            let stream = session.sql(sql).await.unwrap();
            let schema = stream.schema();
            let batches: Vec<_> = stream.try_collect().await.unwrap();
            ctx.register_table(
                name,
                Arc::new(MemTable::try_new(schema, vec![batches]).unwrap()),
            )
            .unwrap();
        }
        let b: Vec<_> = ctx.sql(QUERY).await.unwrap().collect().await.unwrap();
        times.push(t.elapsed());
        assert_eq!(b.iter().map(|b| b.num_rows()).sum::<usize>(), groups);
        base_pulled = session.rows_pulled("bench_order") + session.rows_pulled("bench_user");
    }
    let baseline = median(times);

    println!("query: {QUERY}");
    println!("rows the answer needs (orders + users passing their filters): {needed}");
    println!(
        "pushdown  (Router::sql):        {pushdown:>10.1?}  rows pulled {pulled:>7}  ({:.2} x needed)",
        pulled as f64 / needed as f64
    );
    println!(
        "baseline  (pull both, then join): {baseline:>8.1?}  rows pulled {base_pulled:>7}  ({:.2} x needed)",
        base_pulled as f64 / needed as f64
    );

    {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
        sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .execute(&mut c)
            .await
            .unwrap();
    }
}
