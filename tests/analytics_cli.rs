//! `polyrouter sql` (features `analytics` and `cli`): an entity declared with
//! `sql = { columns = ... }` queried without its Rust type, in every format.

use std::process::Command;

use polyrouter::{Entity, Router};
use serde::{Deserialize, Serialize};

#[derive(Entity, Debug, Clone, Serialize, Deserialize)]
#[entity(name = "sale", key = "id")]
struct Sale {
    id: i64,
    region: Option<String>,
    amount: f64,
}

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("polyrouter.toml");
    std::fs::write(
        &path,
        format!(
            "[stores.db]\nkind = \"sqlite\"\nurl = \"sqlite://{}/s.db\"\n\n[entities.sale]\nstore = \"db\"\nsql = {{ columns = {{ id = \"int\", region = \"string?\", amount = \"float\" }} }}\n",
            dir.display()
        ),
    )
    .unwrap();
    path
}

fn sql(config: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_polyrouter"))
        .arg("sql")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn sql_prints_table_csv_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = config(dir.path());
    let router = Router::from_file(&path).await.unwrap();
    let sales = router.repo::<Sale>().await.unwrap();
    for (id, region, amount) in [
        (1, Some("north"), 10.5),
        (2, None, 4.0),
        (3, Some("north"), 1.5),
        (4, Some("söder"), 2.0),
    ] {
        sales
            .put(&Sale {
                id,
                region: region.map(str::to_string),
                amount,
            })
            .await
            .unwrap();
    }
    drop(sales);
    drop(router);

    let q =
        "SELECT region, sum(amount) AS total FROM sale GROUP BY region ORDER BY region NULLS FIRST";
    let (ok, out, err) = sql(&path, &[q, "--format", "csv"]);
    assert!(ok, "{err}");
    assert_eq!(out, "region,total\n,4.0\nnorth,12.0\nsöder,2.0\n");

    let (ok, out, err) = sql(&path, &[q, "--format", "json"]);
    assert!(ok, "{err}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[1],
        serde_json::json!({"region": "north", "total": 12.0})
    );

    let (ok, out, err) = sql(&path, &[q]);
    assert!(ok, "{err}");
    assert!(out.contains("| north  | 12.0  |"), "{out}");

    // EXPLAIN shows the store and what it was given.
    let (ok, out, err) = sql(&path, &["EXPLAIN SELECT id FROM sale WHERE amount > 3"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("EntityScan: entity=sale table=sale store=db (sqlite)"),
        "{out}"
    );
    assert!(out.contains("filter=[amount > 3]"), "{out}");

    // A statement that does not plan: exit 1 and a message.
    let (ok, _, err) = sql(&path, &["SELECT nope FROM sale"]);
    assert!(!ok);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn sql_refuses_an_unknown_column_kind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[stores.m]\nkind = \"memory\"\n[entities.t]\nstore = \"m\"\nsql = { columns = { id = \"int\", x = \"decimal\" } }\n",
    )
    .unwrap();
    let (ok, _, err) = sql(&path, &["SELECT * FROM t"]);
    assert!(!ok);
    assert!(err.contains("entities.t.sql.columns.x"), "{err}");
    assert!(err.contains("unknown column kind `decimal`"), "{err}");
}
