//! `polyrouter bench`: every workload on real stores with small numbers —
//! the report's shape, the refusals, the clean-up, the user's data left
//! alone. No latency or throughput is asserted.

use std::process::Command;

use polyrouter::bench::{BENCH_TABLE, BenchOptions, BenchReport, Workload, bench};
use polyrouter::config::Config;
use polyrouter::{Entity, Router};
use serde::{Deserialize, Serialize};

const RECORDS: u64 = 60;
const OPS: u64 = 120;

fn options(cfg: Config) -> BenchOptions {
    let mut o = BenchOptions::new(cfg);
    o.records = RECORDS;
    o.operations = OPS;
    o.threads = 3;
    o
}

/// Every run measured `OPS` operations of its workload's types with
/// ordered percentiles, or was refused with a reason.
fn check_shape(report: &BenchReport, stores: &[&str]) {
    assert_eq!(report.runs.len(), 6 * stores.len());
    for (i, w) in Workload::ALL.iter().enumerate() {
        for (j, store) in stores.iter().enumerate() {
            let run = &report.runs[i * stores.len() + j];
            assert_eq!(run.workload, w.letter());
            assert_eq!(&run.store, store);
            if run.refused.is_some() {
                assert!(run.operations.is_empty());
                continue;
            }
            let names: Vec<&str> = w.mix().iter().map(|(op, _)| op.name()).collect();
            let got: Vec<&str> = run
                .operations
                .iter()
                .map(|o| o.operation.as_str())
                .collect();
            assert_eq!(got, names, "workload {} on {store}", w.letter());
            assert_eq!(run.operations.iter().map(|o| o.count).sum::<u64>(), OPS);
            for o in &run.operations {
                assert_eq!(o.errors, 0, "{} on {store}: {o:?}", w.letter());
                if o.count > 0 {
                    assert!(
                        o.p50_us <= o.p95_us && o.p95_us <= o.p99_us && o.p99_us <= o.max_us,
                        "{o:?}"
                    );
                    assert!(o.p50_us >= 1);
                }
            }
            assert!(run.throughput > 0.0 && run.elapsed_ms > 0.0);
        }
    }
}

#[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[entity(name = "customer", key = "id")]
struct Customer {
    id: String,
    name: String,
    #[entity(version)]
    version: u64,
}

#[cfg(feature = "sqlite")]
async fn sqlite_tables(path: &std::path::Path) -> Vec<String> {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn every_workload_runs_on_memory_and_sqlite_and_leaves_the_users_data_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let text = format!(
        "[stores.kv]\nkind = \"memory\"\n\n[stores.main]\nkind = \"sqlite\"\nurl = \"sqlite://{}\"\n\n[entities.customer]\nstore = \"main\"\n",
        db.display()
    );
    // The user's own data, before the bench.
    let router = Router::from_toml_str(&text).await.unwrap();
    let customers = router.repo::<Customer>().await.unwrap();
    for i in 0..10 {
        let c = Customer {
            id: format!("c{i}"),
            name: format!("n{i}"),
            version: 0,
        };
        customers.put(&c).await.unwrap();
    }
    customers
        .put(&Customer {
            id: "c0".into(),
            name: "again".into(),
            version: 0,
        })
        .await
        .unwrap();
    let before: Vec<Customer> = customers
        .get_many(["c0", "c1", "c9"])
        .await
        .unwrap()
        .into_iter()
        .flatten()
        .collect();

    let cfg = Config::parse(&text, "app.toml").unwrap();
    let report = bench(&options(cfg), &|_| {}).await.unwrap();
    check_shape(&report, &["kv", "main"]);
    assert!(
        report.runs.iter().all(|r| r.refused.is_none()),
        "memory and sqlite serve every workload"
    );

    // The bench table is gone; the user's table and rows are as they were.
    let tables = sqlite_tables(&db).await;
    assert!(!tables.iter().any(|t| t == BENCH_TABLE), "{tables:?}");
    assert!(tables.iter().any(|t| t == "customer"), "{tables:?}");
    let after: Vec<Customer> = customers
        .get_many(["c0", "c1", "c9"])
        .await
        .unwrap()
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(before, after);
    assert_eq!(after[0].version, 2);
    assert_eq!(customers.count(None).await.unwrap(), 10);
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn an_entity_route_is_measured_with_its_cache_and_the_cache_is_cleaned_too() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let cache_db = dir.path().join("cache.db");
    let text = format!(
        "[stores.main]\nkind = \"sqlite\"\nurl = \"sqlite://{}\"\n\n[stores.cache]\nkind = \"sqlite\"\nurl = \"sqlite://{}\"\n\n[entities.customer]\nstore = \"main\"\ncache = {{ store = \"cache\", ttl = \"1m\" }}\nconsistency = \"eventual\"\n",
        db.display(),
        cache_db.display()
    );
    let cfg = Config::parse(&text, "app.toml").unwrap();
    let mut o = options(cfg);
    o.entity = Some("customer".into());
    o.workloads = vec![Workload::B];
    let report = bench(&o, &|_| {}).await.unwrap();
    assert_eq!(report.runs.len(), 1);
    assert_eq!(report.runs[0].store, "main");
    assert_eq!(
        report.runs[0]
            .operations
            .iter()
            .map(|o| o.count)
            .sum::<u64>(),
        OPS
    );
    for path in [&db, &cache_db] {
        let tables = sqlite_tables(path).await;
        assert!(
            !tables.iter().any(|t| t.starts_with(BENCH_TABLE)),
            "{}: {tables:?}",
            path.display()
        );
    }
}

#[tokio::test]
async fn a_user_table_named_like_the_bench_table_is_refused_before_anything_runs() {
    let cfg = Config::parse(
        &format!("[stores.kv]\nkind = \"memory\"\n[entities.mine]\nstore = \"kv\"\ntable = \"{BENCH_TABLE}\"\n"),
        "app.toml",
    )
    .unwrap();
    let e = bench(&options(cfg), &|_| {}).await.unwrap_err();
    assert!(e.to_string().contains("entities.mine"), "{e}");
    assert!(e.to_string().contains("rename its table"), "{e}");
}

#[tokio::test]
async fn stores_without_records_are_not_measured_and_a_config_of_none_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::parse(
        &format!(
            "[stores.files]\nkind = \"fs\"\nroot = \"{}\"\n",
            dir.path().display()
        ),
        "blobs.toml",
    )
    .unwrap();
    let e = bench(&options(cfg), &|_| {}).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("no store of this configuration holds records"),
        "{e}"
    );
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_serves_point_workloads_and_refuses_scans_naming_the_capabilities() {
    let prefix = format!("polyrouter-bench-test-{}", std::process::id());
    let cfg = Config::parse(
        &format!("[stores.kv]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\nkey_prefix = \"{prefix}\"\n"),
        "redis.toml",
    )
    .unwrap();
    let report = bench(&options(cfg), &|_| {})
        .await
        .expect("redis at 127.0.0.1:6379 (scripts/services redis)");
    check_shape(&report, &["kv"]);
    let e = report.runs.iter().find(|r| r.workload == "e").unwrap();
    let why = e.refused.as_deref().unwrap();
    assert!(
        why.contains("range scans") && why.contains("lacks query, range, sort"),
        "{why}"
    );
    assert_eq!(
        report.runs.iter().filter(|r| r.refused.is_none()).count(),
        5
    );
    // Nothing left under the prefix.
    let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_runs_every_workload_and_drops_its_table() {
    use sqlx::Connection;
    let url = "postgres://postgres@127.0.0.1:5432/test";
    let schema = format!("polyrouter_bench_test_{}", std::process::id());
    let cfg = Config::parse(
        &format!("[stores.pg]\nkind = \"postgres\"\nurl = \"{url}\"\nschema = \"{schema}\"\nmax_connections = 4\n"),
        "pg.toml",
    )
    .unwrap();
    let report = bench(&options(cfg), &|_| {})
        .await
        .expect("PostgreSQL at 127.0.0.1:5432 (scripts/services postgres)");
    check_shape(&report, &["pg"]);
    assert!(report.runs.iter().all(|r| r.refused.is_none()));
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
    )
    .bind(&schema)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0, "tables left in schema {schema}");
}

#[cfg(feature = "sqlite")]
#[test]
fn the_cli_prints_stores_side_by_side_and_json_feeds_advise() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("app.toml");
    std::fs::write(
        &cfg,
        format!(
            "[stores.kv]\nkind = \"memory\"\n\n[stores.main]\nkind = \"sqlite\"\nurl = \"sqlite://{}/app.db\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_polyrouter"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let cfg_arg = cfg.to_str().unwrap();
    let text = run(&[
        "bench",
        "--config",
        cfg_arg,
        "--workload",
        "a",
        "--records",
        "40",
        "--ops",
        "80",
        "--threads",
        "2",
    ]);
    assert!(text.contains("workload A: update heavy"), "{text}");
    let header = text
        .lines()
        .find(|l| l.contains("kv (memory)"))
        .unwrap_or_default();
    assert!(
        header.contains("main (sqlite)"),
        "stores side by side:\n{text}"
    );
    for row in [
        "throughput",
        "read p50/p95/p99/max",
        "update p50/p95/p99/max",
    ] {
        assert!(text.contains(row), "{row}:\n{text}");
    }
    let json = run(&[
        "bench",
        "--config",
        cfg_arg,
        "--workload",
        "c",
        "--records",
        "40",
        "--ops",
        "80",
        "--format",
        "json",
    ]);
    let report = BenchReport::from_json(&json).unwrap();
    assert_eq!(report.runs.len(), 2);
    let path = dir.path().join("bench.json");
    std::fs::write(&path, &json).unwrap();
    let advice = run(&[
        "advise",
        "--entity",
        "note",
        "--platform",
        "embedded",
        "--processes",
        "1",
        "--access",
        "point",
        "--latency-ms",
        "1000",
        "--bench",
        path.to_str().unwrap(),
    ]);
    assert!(advice.contains("measured on store `main`"), "{advice}");
}
