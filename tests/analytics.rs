//! Analytical SQL (`Router::sql`, feature `analytics`): result parity with
//! DataFusion memory tables holding the same rows, and pushdown shown by
//! the rows each store returned (the `Counting` layer).
//!
//! Stores: those of `POLYROUTER_TEST_STORES` (default `memory,sqlite`)
//! among memory, sqlite, postgres, mysql and cosmos; each run uses its own
//! PostgreSQL schema, MySQL database and Cosmos database, dropped at the end.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::TryStreamExt;
use polyrouter::analytics::datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use polyrouter::analytics::datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use polyrouter::analytics::datafusion::datasource::MemTable;
use polyrouter::analytics::datafusion::prelude::SessionContext;
use polyrouter::analytics::{SqlSession, batches_to_json};
use polyrouter::config::{Config, StoreSpec};
use polyrouter::layers::testing::Counting;
use polyrouter::{Entity, Router, Store};
use serde::{Deserialize, Serialize};

#[derive(Entity, Debug, Clone, Serialize, Deserialize)]
#[entity(name = "an_user", key = "id")]
struct User {
    id: i64,
    name: String,
    country: Option<String>,
    age: Option<i64>,
    score: f64,
    active: Option<bool>,
    joined: DateTime<Utc>,
}

#[derive(Entity, Debug, Clone, Serialize, Deserialize)]
#[entity(name = "an_order", key = "id")]
struct Order {
    id: String,
    user_id: i64,
    total: f64,
    status: String,
    note: Option<String>,
    placed: DateTime<Utc>,
}

const NAMES: [&str; 12] = [
    "Åsa",
    "Zoë",
    "李雷",
    "Ñandú",
    "emoji 🎉",
    "O'Brien",
    "a%b_c",
    "Ämne",
    "  spaced ",
    "Anna",
    "anna",
    "Bob",
];

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
}

fn users() -> Vec<User> {
    (1..=60i64)
        .map(|i| User {
            id: i,
            name: format!("{} {i}", NAMES[(i as usize) % NAMES.len()]),
            country: [Some("SE"), Some("DE"), None, Some("US"), Some("JP")][(i % 5) as usize]
                .map(str::to_string),
            age: (i % 7 != 0).then_some(18 + (i * 13) % 60),
            score: ((i * 37) % 100) as f64 / 4.0,
            active: (i % 5 != 0).then_some(i % 2 == 0),
            joined: base() + Duration::days(i) + Duration::microseconds(i * 7),
        })
        .collect()
}

fn orders() -> Vec<Order> {
    (1..=200i64)
        .map(|i| Order {
            id: format!("o{i:04}"),
            user_id: (i * 7) % 70 + 1,
            total: ((i * 53) % 1000) as f64 / 10.0,
            status: ["new", "paid", "shipped", "cancelled"][(i % 4) as usize].to_string(),
            note: (i % 3 != 0)
                .then(|| ["gift 🎉", "café", "", "naïve", "x%y"][(i % 5) as usize].to_string()),
            placed: base() + Duration::hours(i),
        })
        .collect()
}

/// The same rows as DataFusion memory tables: the reference answers.
fn reference() -> SessionContext {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let ctx = SessionContext::new();
    let u = users();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("country", DataType::Utf8, true),
        Field::new("age", DataType::Int64, true),
        Field::new("score", DataType::Float64, false),
        Field::new("active", DataType::Boolean, true),
        Field::new("joined", ts.clone(), false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(u.iter().map(|x| x.id))),
        Arc::new(StringArray::from_iter_values(
            u.iter().map(|x| x.name.clone()),
        )),
        Arc::new(StringArray::from(
            u.iter().map(|x| x.country.clone()).collect::<Vec<_>>(),
        )),
        Arc::new(Int64Array::from(
            u.iter().map(|x| x.age).collect::<Vec<_>>(),
        )),
        Arc::new(Float64Array::from_iter_values(u.iter().map(|x| x.score))),
        Arc::new(BooleanArray::from(
            u.iter().map(|x| x.active).collect::<Vec<_>>(),
        )),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(
                u.iter().map(|x| x.joined.timestamp_micros()),
            )
            .with_timezone("UTC"),
        ),
    ];
    let batch = RecordBatch::try_new(schema.clone(), cols).unwrap();
    ctx.register_table(
        "an_user",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
    )
    .unwrap();
    let o = orders();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("user_id", DataType::Int64, false),
        Field::new("total", DataType::Float64, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("note", DataType::Utf8, true),
        Field::new("placed", ts, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            o.iter().map(|x| x.id.clone()),
        )),
        Arc::new(Int64Array::from_iter_values(o.iter().map(|x| x.user_id))),
        Arc::new(Float64Array::from_iter_values(o.iter().map(|x| x.total))),
        Arc::new(StringArray::from_iter_values(
            o.iter().map(|x| x.status.clone()),
        )),
        Arc::new(StringArray::from(
            o.iter().map(|x| x.note.clone()).collect::<Vec<_>>(),
        )),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(
                o.iter().map(|x| x.placed.timestamp_micros()),
            )
            .with_timezone("UTC"),
        ),
    ];
    let batch = RecordBatch::try_new(schema.clone(), cols).unwrap();
    ctx.register_table(
        "an_order",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
    )
    .unwrap();
    ctx
}

/// Every filter operator, joins of every kind, group by with nulls,
/// window functions, unicode text, limits and offsets.
const QUERIES: &[&str] = &[
    // Filters, one operator at a time.
    "SELECT id, name FROM an_user WHERE age = 44",
    "SELECT id FROM an_user WHERE age <> 44",
    "SELECT id FROM an_user WHERE age < 30",
    "SELECT id FROM an_user WHERE age <= 31",
    "SELECT id FROM an_user WHERE age > 60",
    "SELECT id FROM an_user WHERE 60 <= age",
    "SELECT id, country FROM an_user WHERE country IN ('SE', 'JP')",
    "SELECT id, country FROM an_user WHERE country NOT IN ('SE', 'JP')",
    "SELECT id, name FROM an_user WHERE name LIKE 'A%'",
    "SELECT id, name FROM an_user WHERE name LIKE '%a%'",
    "SELECT id, name FROM an_user WHERE name NOT LIKE '%a%'",
    "SELECT id, name FROM an_user WHERE name LIKE 'a\\%b%'",
    "SELECT id FROM an_user WHERE country IS NULL",
    "SELECT id FROM an_user WHERE country IS NOT NULL",
    "SELECT id FROM an_user WHERE NOT (age > 40)",
    "SELECT id FROM an_user WHERE age > 40 OR country = 'DE'",
    "SELECT id FROM an_user WHERE age BETWEEN 20 AND 40",
    "SELECT id FROM an_user WHERE age NOT BETWEEN 20 AND 40",
    "SELECT id FROM an_user WHERE active",
    "SELECT id FROM an_user WHERE NOT active",
    "SELECT id FROM an_user WHERE active IS NULL",
    "SELECT id, score FROM an_user WHERE score > 10.5 AND country <> 'US'",
    "SELECT id FROM an_user WHERE NOT (country = 'SE' OR age IS NULL)",
    "SELECT id, name FROM an_user WHERE name = 'Zoë 1'",
    "SELECT id, name FROM an_user WHERE name > 'Z'",
    "SELECT id, name FROM an_user WHERE upper(name) LIKE 'ANNA%'",
    "SELECT id FROM an_user WHERE id IN (1, 2, 3, 59)",
    "SELECT id FROM an_user WHERE joined >= '2024-02-01T00:00:00Z'",
    "SELECT id, note FROM an_order WHERE note LIKE '%🎉%'",
    "SELECT id FROM an_order WHERE note = ''",
    "SELECT id FROM an_order WHERE total >= 50 AND total < 60 AND status <> 'new'",
    // Joins.
    "SELECT u.country, sum(o.total) AS revenue FROM an_order o JOIN an_user u ON o.user_id = u.id GROUP BY u.country",
    "SELECT u.id, count(o.id) AS n FROM an_user u LEFT JOIN an_order o ON o.user_id = u.id GROUP BY u.id",
    "SELECT o.id, u.name FROM an_user u RIGHT JOIN an_order o ON o.user_id = u.id",
    "SELECT u.id AS uid, o.id AS oid FROM an_user u FULL JOIN an_order o ON o.user_id = u.id AND o.status = 'paid'",
    "SELECT id FROM an_user WHERE id IN (SELECT user_id FROM an_order WHERE total > 50)",
    "SELECT id FROM an_user u WHERE NOT EXISTS (SELECT 1 FROM an_order o WHERE o.user_id = u.id)",
    "SELECT id FROM an_order WHERE user_id NOT IN (SELECT id FROM an_user)",
    "SELECT o.id, u.country FROM an_order o JOIN an_user u ON o.user_id = u.id WHERE o.status = 'paid' AND u.country = 'SE'",
    // Group by, nulls as a group.
    "SELECT country, count(*) AS n, avg(age) AS a FROM an_user GROUP BY country",
    "SELECT active, count(*) AS n FROM an_user GROUP BY active",
    "SELECT status, count(*) AS n, min(total) AS lo, max(total) AS hi FROM an_order GROUP BY status HAVING count(*) > 10",
    "SELECT DISTINCT country FROM an_user",
    "SELECT count(*) AS n, count(age) AS with_age, sum(score) AS s FROM an_user",
    // Window functions.
    "SELECT id, country, rank() OVER (PARTITION BY country ORDER BY score DESC, id) AS r FROM an_user",
    "SELECT id, sum(total) OVER (PARTITION BY user_id ORDER BY id) AS running FROM an_order",
    "SELECT id, row_number() OVER (ORDER BY joined) AS rn, lag(score) OVER (ORDER BY id) AS prev FROM an_user",
    // Limits and offsets (over a total order).
    "SELECT id, score FROM an_user ORDER BY score DESC, id LIMIT 5",
    "SELECT id FROM an_user ORDER BY id LIMIT 10 OFFSET 20",
    "SELECT name FROM an_user ORDER BY name LIMIT 7",
    "SELECT id, total FROM an_order WHERE status = 'paid' ORDER BY total DESC, id LIMIT 3 OFFSET 2",
    "SELECT id, age FROM an_user ORDER BY age, id LIMIT 8",
    "SELECT id, age FROM an_user ORDER BY age NULLS FIRST, id LIMIT 8",
    "SELECT id, age FROM an_user ORDER BY age DESC NULLS LAST, id DESC LIMIT 8",
    "SELECT id FROM an_order LIMIT 0",
    "SELECT id, score FROM an_user ORDER BY score DESC, id LIMIT 20",
    "SELECT id, age FROM an_user ORDER BY age NULLS FIRST, id LIMIT 30",
    "SELECT id, country FROM an_user WHERE country <> 'SE' ORDER BY country DESC, id DESC LIMIT 25",
    // Unicode text.
    "SELECT name, character_length(name) AS len, upper(name) AS up FROM an_user WHERE name LIKE '%ä%' OR name LIKE '%李%'",
    "SELECT substr(name, 1, 2) AS head, count(*) AS n FROM an_user GROUP BY substr(name, 1, 2)",
];

/// Rows as sorted, comparable lines (floats to 6 decimals: sums may add up
/// in another order).
fn lines(batches: &[RecordBatch]) -> Vec<String> {
    fn norm(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Number(n) if n.is_f64() => {
                serde_json::Value::String(format!("{:.6}", n.as_f64().unwrap_or_default()))
            }
            serde_json::Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), norm(v))).collect(),
            other => other.clone(),
        }
    }
    let mut out: Vec<String> = batches_to_json(batches)
        .unwrap()
        .iter()
        .map(|r| norm(r).to_string())
        .collect();
    out.sort();
    out
}

async fn run(session: &SqlSession, sql: &str) -> Vec<RecordBatch> {
    session
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn expected(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    ctx.sql(sql).await.unwrap().collect().await.unwrap()
}

fn millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

/// A per-run name: `pr_an_{pid}_{millis}`.
fn run_name() -> String {
    format!("pr_an_{}_{}", std::process::id(), millis())
}

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";
const COSMOS_KEY: &str =
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";

fn cosmos_endpoint() -> String {
    std::env::var("POLYROUTER_COSMOS_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:8081/".into())
}

/// The store's spec for this run, or `None` when `POLYROUTER_TEST_STORES`
/// does not name it.
fn spec(kind: &str, name: &str, dir: &std::path::Path) -> Option<StoreSpec> {
    let list = std::env::var("POLYROUTER_TEST_STORES").unwrap_or_else(|_| "memory,sqlite".into());
    if !list.split(',').any(|s| s.trim() == kind) {
        eprintln!("analytics: {kind} not in POLYROUTER_TEST_STORES; not run");
        return None;
    }
    let mut t = toml::Table::new();
    match kind {
        "memory" => {}
        "sqlite" => {
            t.insert(
                "url".into(),
                format!("sqlite://{}/an.db", dir.display()).into(),
            );
        }
        "postgres" => {
            t.insert("url".into(), PG_URL.into());
            t.insert("schema".into(), name.into());
        }
        "mysql" => {
            t.insert("url".into(), MYSQL_URL.into());
            t.insert("database".into(), name.into());
        }
        "cosmos" => {
            t.insert("endpoint".into(), cosmos_endpoint().into());
            t.insert("key".into(), COSMOS_KEY.into());
            t.insert("database".into(), name.into());
            t.insert("create_if_missing".into(), true.into());
        }
        _ => unreachable!(),
    }
    Some(StoreSpec::new("s", kind, t))
}

/// Drops what the run created on a shared server.
#[cfg_attr(
    not(any(feature = "postgres", feature = "mysql", feature = "cosmos")),
    allow(unused_variables)
)]
async fn clean_up(kind: &str, name: &str) {
    match kind {
        #[cfg(feature = "postgres")]
        "postgres" => {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(PG_URL).await.unwrap();
            sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                .execute(&mut c)
                .await
                .unwrap();
        }
        #[cfg(feature = "mysql")]
        "mysql" => {
            use sqlx::Connection;
            let mut c = sqlx::MySqlConnection::connect(MYSQL_URL).await.unwrap();
            sqlx::query(&format!("DROP DATABASE IF EXISTS `{name}`"))
                .execute(&mut c)
                .await
                .unwrap();
        }
        #[cfg(feature = "cosmos")]
        "cosmos" => {
            use polyrouter::backends::cosmos::{CosmosConfig, CosmosStore};
            let cfg = CosmosConfig::new(cosmos_endpoint(), COSMOS_KEY, name);
            if let Ok(s) = CosmosStore::connect("s", cfg).await {
                s.delete_database().await.unwrap();
            }
        }
        _ => {}
    }
}

/// Loads the rows into `kind`, checks every query against the reference,
/// then the rows each store returned for queries that push work down.
async fn parity(kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let name = run_name();
    let Some(spec) = spec(kind, &name, dir.path()) else {
        return;
    };
    let raw = polyrouter::backends::open(spec)
        .await
        .unwrap_or_else(|e| panic!("cannot open {kind} (is it running? scripts/services): {e}"));
    let store = Arc::new(Counting::new(raw));
    let result = checks(kind, store.clone()).await;
    clean_up(kind, &name).await;
    if let Err(failures) = result {
        panic!(
            "{kind}: {} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

async fn checks(kind: &str, store: Arc<Counting<Arc<dyn Store>>>) -> Result<(), Vec<String>> {
    // Pages of 7 rows: every scan crosses pages (keyset continuation).
    let config = Config::parse("[router]\npage_size = 7\nmax_page_size = 7\n", "<test>").unwrap();
    let router = Router::builder()
        .config(config)
        .store("s", store.clone())
        .route("an_user", "s")
        .route("an_order", "s")
        .build()
        .await
        .unwrap();
    router
        .repo::<User>()
        .await
        .unwrap()
        .put_many(&users())
        .await
        .unwrap();
    router
        .repo::<Order>()
        .await
        .unwrap()
        .put_many(&orders())
        .await
        .unwrap();
    let reference = reference();
    let mut failures = Vec::new();
    assert!(QUERIES.len() >= 40);
    for sql in QUERIES {
        let session = router.sql_session().await.unwrap();
        let got = lines(&run(&session, sql).await);
        let want = lines(&expected(&reference, sql).await);
        if got != want {
            failures.push(format!("{sql}\n  got  {got:?}\n  want {want:?}"));
        }
    }

    // Pushdown: (query, entity, rows the store may return at most, or exactly).
    let pushed: &[(&str, &str, Option<u64>)] = &[
        // A filter the store evaluates: it returns only the matching rows.
        ("SELECT id FROM an_user WHERE age > 60", "an_user", None),
        (
            "SELECT id FROM an_user WHERE name LIKE 'A%' AND country IS NOT NULL",
            "an_user",
            None,
        ),
        (
            "SELECT id FROM an_user WHERE NOT (country = 'SE' OR age IS NULL)",
            "an_user",
            None,
        ),
        // Order and limit taken by the store.
        (
            "SELECT id, score FROM an_user ORDER BY score DESC, id LIMIT 5",
            "an_user",
            Some(5),
        ),
        (
            "SELECT id FROM an_order ORDER BY id LIMIT 7",
            "an_order",
            Some(7),
        ),
        // A function DataFusion evaluates: every row comes back.
        (
            "SELECT id FROM an_user WHERE upper(name) = 'BOB 11'",
            "an_user",
            Some(60),
        ),
    ];
    for (sql, entity, exact) in pushed {
        store.reset();
        let session = router.sql_session().await.unwrap();
        let returned: usize = run(&session, sql).await.iter().map(|b| b.num_rows()).sum();
        let pulled = store.counts().rows_queried;
        let want = exact.unwrap_or(returned as u64);
        if pulled != want || session.rows_pulled(entity) != want {
            failures.push(format!(
                "{sql}: the store returned {pulled} rows (scan counted {}), expected {want}; the answer has {returned}",
                session.rows_pulled(entity)
            ));
        }
    }
    // A join with a filter on each side pulls only the matching rows of each.
    store.reset();
    let session = router.sql_session().await.unwrap();
    run(&session, "SELECT o.id, u.country FROM an_order o JOIN an_user u ON o.user_id = u.id WHERE o.status = 'paid' AND u.country = 'SE'").await;
    let (paid, se) = (
        orders().iter().filter(|o| o.status == "paid").count() as u64,
        users()
            .iter()
            .filter(|u| u.country.as_deref() == Some("SE"))
            .count() as u64,
    );
    if session.rows_pulled("an_order") != paid
        || session.rows_pulled("an_user") != se
        || store.counts().rows_queried != paid + se
    {
        failures.push(format!(
            "join: pulled {} orders (want {paid}), {} users (want {se}), store returned {}",
            session.rows_pulled("an_order"),
            session.rows_pulled("an_user"),
            store.counts().rows_queried
        ));
    }
    // A scan streams: the first batch comes after one page, not the table.
    store.reset();
    let session = router.sql_session().await.unwrap();
    let mut stream = session.sql("SELECT * FROM an_order").await.unwrap();
    let first = stream.try_next().await.unwrap().unwrap();
    let pages_so_far = store.counts().queries;
    if first.num_rows() > 7 || pages_so_far > 2 {
        failures.push(format!(
            "streaming: the first batch has {} rows after {pages_so_far} store queries (want ≤ 7 rows, ≤ 2 queries of 29 pages)",
            first.num_rows()
        ));
    }
    let rest: usize = stream
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .iter()
        .map(|b| b.num_rows())
        .sum();
    if first.num_rows() + rest != 200 || store.counts().queries != 29 {
        failures.push(format!(
            "streaming: {} rows in {} pages, want 200 in 29",
            first.num_rows() + rest,
            store.counts().queries
        ));
    }
    // EXPLAIN names the store and what it was given.
    let plan = lines(
        &run(
            &session,
            "EXPLAIN SELECT id FROM an_user WHERE age > 60 ORDER BY id LIMIT 3",
        )
        .await,
    )
    .join("\n");
    if !plan.contains(&format!(
        "EntityScan: entity=an_user table=an_user store=s ({kind})"
    )) || !plan.contains("filter=[age > 60]")
        || !plan.contains("limit=3")
    {
        failures.push(format!("EXPLAIN does not show the pushdown:\n{plan}"));
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parity_memory() {
    parity("memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parity_sqlite() {
    parity("sqlite").await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parity_postgres() {
    parity("postgres").await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parity_mysql() {
    parity("mysql").await;
}

#[cfg(feature = "cosmos")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parity_cosmos() {
    parity("cosmos").await;
}

/// A store without queries (Redis): a table read by key when the `WHERE`
/// clause names the keys (the other predicates DataFusion's), refused
/// with `Error::Unsupported` naming the store and entity otherwise.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_without_queries_is_read_by_key_or_refused() {
    #[derive(Entity, Debug, Clone, Serialize, Deserialize)]
    #[entity(name = "an_sess", key = "id")]
    struct Sess {
        id: String,
        user_id: i64,
        device: Option<String>,
    }
    let mut t = toml::Table::new();
    t.insert("url".into(), "redis://127.0.0.1:6379".into());
    t.insert("key_prefix".into(), run_name().into());
    let raw = polyrouter::backends::open(StoreSpec::new("kv", "redis", t))
        .await
        .unwrap_or_else(|e| panic!("cannot open redis (is it running? scripts/services): {e}"));
    let store = Arc::new(Counting::new(raw));
    let config = Config::parse("[router]\npage_size = 2\nmax_page_size = 2\n", "<test>").unwrap();
    let router = Router::builder()
        .config(config)
        .store("kv", store.clone())
        .route("an_sess", "kv")
        .build()
        .await
        .unwrap();
    let sessions = router.repo::<Sess>().await.unwrap();
    let all: Vec<Sess> = (1..=6)
        .map(|i| Sess {
            id: format!("s{i}"),
            user_id: i % 3,
            device: (i % 2 == 0).then(|| format!("d{i}")),
        })
        .collect();
    sessions.put_many(&all).await.unwrap();
    #[derive(Deserialize, Debug, PartialEq)]
    struct Row {
        id: String,
        user_id: i64,
    }
    let row = |i: i64| Row {
        id: format!("s{i}"),
        user_id: i % 3,
    };
    // (query, rows, keys read): the keys go to the store, the rest to DataFusion.
    let cases: Vec<(&str, Vec<Row>, u64)> = vec![
        (
            "SELECT id, user_id FROM an_sess WHERE id = 's2'",
            vec![row(2)],
            1,
        ),
        (
            "SELECT id, user_id FROM an_sess WHERE id IN ('s1', 's3', 's5', 's9') AND user_id > 0 ORDER BY id",
            vec![row(1), row(5)],
            4,
        ),
        (
            "SELECT id, user_id FROM an_sess WHERE (id = 's4' OR id = 's6') AND device IS NOT NULL ORDER BY id DESC",
            vec![row(6), row(4)],
            2,
        ),
        (
            "SELECT id, user_id FROM an_sess WHERE id IN ('s1', 's2', 's3', 's4', 's5') AND upper(id) <> 'S3' ORDER BY id LIMIT 3",
            vec![row(1), row(2), row(4)],
            5,
        ),
    ];
    let mut failures = Vec::new();
    for (sql, want, keys) in cases {
        store.reset();
        let got: Vec<Row> = router
            .sql_rows(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let c = store.counts();
        if got != want || c.queries != 0 || c.keys_read > keys {
            failures.push(format!(
                "{sql}: got {got:?} (want {want:?}); {} queries, {} keys read (want 0, at most {keys})",
                c.queries, c.keys_read
            ));
        }
    }
    // What needs a listing of the records is refused, naming store and entity.
    for sql in [
        "SELECT * FROM an_sess",
        "SELECT count(*) FROM an_sess WHERE user_id = 1",
        "SELECT id FROM an_sess WHERE id = 's1' OR user_id = 2",
        "SELECT id FROM an_sess WHERE id > 's3'",
    ] {
        store.reset();
        match router.sql_rows::<serde_json::Value>(sql).await {
            Err(polyrouter::Error::Unsupported {
                store: s,
                entity,
                capability,
            }) if s == "kv" && entity == "an_sess" && capability.contains("read it by key") => {}
            other => failures.push(format!(
                "{sql}: want Unsupported naming kv and an_sess, got {other:?}"
            )),
        }
        if store.counts().reads() != 0 {
            failures.push(format!("{sql}: refused, yet the store was read"));
        }
    }
    for s in &all {
        sessions.delete(s.id.clone()).await.unwrap();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[path = "analytics/series.rs"]
mod series;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_parity_memory() {
    series::parity("memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_parity_sqlite() {
    series::parity("sqlite").await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_parity_postgres() {
    series::parity("postgres").await;
}

/// `search('entity', 'text')` joins a tantivy index with the records.
#[cfg(feature = "tantivy")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_is_a_table_function() {
    #[derive(Entity, Debug, Clone, Serialize, Deserialize)]
    #[entity(name = "an_post", key = "id")]
    struct Post {
        id: String,
        title: String,
        likes: i64,
    }
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[router]\npage_size = 2\n[stores.db]\nkind = \"sqlite\"\nurl = \"sqlite://{0}/p.db\"\n[stores.idx]\nkind = \"tantivy\"\npath = \"{0}/idx\"\n[entities.an_post]\nstore = \"db\"\nsearch = {{ store = \"idx\", fields = [\"title\"] }}\n",
        dir.path().display()
    );
    let router = Router::from_toml_str(&toml).await.unwrap();
    let posts = router.repo::<Post>().await.unwrap();
    for (id, title, likes) in [
        ("p1", "rust async runtime", 5),
        ("p2", "gardening tips", 9),
        ("p3", "async rust in practice", 7),
        ("p4", "rust ownership", 1),
        ("p5", "baking bread", 3),
    ] {
        posts
            .put(&Post {
                id: id.into(),
                title: title.into(),
                likes,
            })
            .await
            .unwrap();
    }
    posts.refresh_search().await.unwrap();
    #[derive(Deserialize, Debug, PartialEq)]
    struct Row {
        id: String,
        likes: i64,
    }
    // Pages of 2 hits: three pages for the three posts about rust.
    let rows: Vec<Row> = router
        .sql_rows("SELECT p.id, p.likes FROM search('an_post', 'rust') s JOIN an_post p ON p.id = s.key ORDER BY p.id")
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![
            Row {
                id: "p1".into(),
                likes: 5
            },
            Row {
                id: "p3".into(),
                likes: 7
            },
            Row {
                id: "p4".into(),
                likes: 1
            },
        ]
    );
    let e = router
        .sql_rows::<Row>("SELECT * FROM search('an_post')")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("two string literals"), "{e}");
    let e = router
        .sql_rows::<Row>("SELECT * FROM search('nope', 'x')")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no Rust type is bound"), "{e}");
}
