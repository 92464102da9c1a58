//! Migration throughput: backfill rows/s and verify rows/s, PostgreSQL →
//! PostgreSQL (100 000 rows, two schemas of the machine's server) and
//! PostgreSQL → Cosmos DB (the emulator; 2 000 rows), unthrottled
//! (`rate = 0`), one run each. Figures in docs/benchmarks.md.
//!
//! ```text
//! cargo bench --bench migrate --features postgres,cosmos
//! ```

use std::time::Instant;

use polyrouter::store::{EntityInfo, WriteOp};
use polyrouter::{Entity, Precondition, Record, Router};
use serde::{Deserialize, Serialize};

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const COSMOS_KEY: &str =
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";

#[derive(Entity, Serialize, Deserialize, Debug, Clone)]
#[entity(name = "item", key = "id")]
struct Item {
    id: i64,
    name: String,
    n: i64,
    score: f64,
    note: Option<String>,
    #[entity(version)]
    version: u64,
}

fn config(tag: &str, target: &str, batch: usize) -> String {
    format!(
        r#"[stores.src]
kind = "postgres"
url = "{PG_URL}"
schema = "migbench_src_{tag}"
max_connections = 16

{target}
[buses.events]
kind = "memory"

[sync]
store = "src"

[entities.item]
store = "src"
outbox = {{ bus = "events" }}

[migrations.items]
entity = "item"
to = "dst"
batch = {batch}
rate = 0
"#
    )
}

async fn run(what: &str, cfg: &str, rows: i64) {
    let router = Router::from_toml_str(cfg).await.expect("router");
    router.repo::<Item>().await.expect("repo");
    let src = router.store("src").unwrap();
    let plain = EntityInfo {
        store: "src".into(),
        ..EntityInfo::new(Item::schema())
    };
    for start in (0..rows).step_by(2000) {
        let ops = (start..(start + 2000).min(rows))
            .map(|i| WriteOp::Put {
                record: Record::from_entity(&Item {
                    id: i,
                    name: format!("item-{i}"),
                    n: i,
                    score: i as f64 / 3.0,
                    note: (i % 3 == 0).then(|| format!("note {i}")),
                    version: 0,
                })
                .unwrap(),
                precondition: Precondition::None,
                ttl: None,
            })
            .collect();
        src.write(&plain, ops, true).await.expect("seed");
    }
    let m = router.migration("items").await.expect("migration");
    let t = Instant::now();
    let s = m.start(&mut |_| {}).await.expect("backfill");
    let backfill = t.elapsed();
    let t = Instant::now();
    let v = m.verify(&mut |_| {}).await.expect("verify");
    let verify = t.elapsed();
    let vs = v.verify.expect("verify state");
    assert_eq!(vs.differences(), 0);
    println!(
        "{what}: backfill {} rows in {:.2} s = {:.0} rows/s; verify {} rows (both sides) in {:.2} s = {:.0} rows/s",
        s.backfill.rows,
        backfill.as_secs_f64(),
        s.backfill.rows as f64 / backfill.as_secs_f64(),
        vs.source_rows + vs.target_rows,
        verify.as_secs_f64(),
        (vs.source_rows + vs.target_rows) as f64 / verify.as_secs_f64(),
    );
}

async fn drop_schemas(tag: &str) {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(PG_URL).await.expect("postgres");
    for s in ["src", "dst"] {
        sqlx::query(&format!(
            "DROP SCHEMA IF EXISTS \"migbench_{s}_{tag}\" CASCADE"
        ))
        .execute(&mut c)
        .await
        .expect("drop schema");
    }
}

#[tokio::main]
async fn main() {
    let tag = format!("{}", std::process::id());
    let pg = format!(
        "[stores.dst]\nkind = \"postgres\"\nurl = \"{PG_URL}\"\nschema = \"migbench_dst_{tag}\"\nmax_connections = 16\n"
    );
    run("postgres -> postgres", &config(&tag, &pg, 1000), 100_000).await;
    drop_schemas(&tag).await;
    let db = format!("migbench_{tag}");
    let endpoint = std::env::var("POLYROUTER_COSMOS_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:8081/".into());
    let cosmos = format!(
        "[stores.dst]\nkind = \"cosmos\"\nendpoint = \"{endpoint}\"\nkey = \"{COSMOS_KEY}\"\ndatabase = \"{db}\"\ncreate_if_missing = true\n"
    );
    let tag2 = format!("{tag}c");
    run("postgres -> cosmos", &config(&tag2, &cosmos, 50), 2_000).await;
    drop_schemas(&tag2).await;
    use polyrouter::backends::cosmos::{CosmosConfig, CosmosStore};
    let s = CosmosStore::connect("dst", CosmosConfig::new(endpoint, COSMOS_KEY, &db))
        .await
        .expect("cosmos");
    s.delete_database().await.expect("drop database");
}
