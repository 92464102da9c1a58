//! Live tests against a real SQL Server / Azure SQL. No SQL Server can run
//! on the development machine, so they run only when
//! `POLYROUTER_TEST_SQLSERVER_URL=sqlserver://user:pw@host:1433/db` names
//! one (`cargo test --features sqlserver --lib backends::sqlserver`);
//! without it each returns at once and says so on stderr. Each test works
//! in a schema of its own and drops it at the end. Set
//! `POLYROUTER_TEST_SQLSERVER_TRUST_CERT=1` for a server with a self-signed
//! certificate (a local container).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::*;
use crate::backends::sql::reference;
use crate::config::ConfigDuration;

/// The server URL, when one is configured.
fn url() -> Option<String> {
    std::env::var("POLYROUTER_TEST_SQLSERVER_URL").ok()
}

static NEXT: AtomicU64 = AtomicU64::new(0);

fn config(url: String, schema: &str) -> SqlServerConfig {
    let mut c = SqlServerConfig::new(url);
    c.schema = Some(schema.into());
    c.max_connections = 4;
    c.purge_interval = ConfigDuration(Duration::ZERO);
    c.trust_server_certificate =
        std::env::var("POLYROUTER_TEST_SQLSERVER_TRUST_CERT").is_ok_and(|v| v == "1");
    c
}

/// A store in a fresh schema of its own, or `None` (said on stderr) when
/// no server is configured.
pub(super) async fn open_fresh() -> Option<(SqlServerStore, String)> {
    let Some(url) = url() else {
        eprintln!("POLYROUTER_TEST_SQLSERVER_URL is not set: live SQL Server test not run");
        return None;
    };
    let schema = format!(
        "pr_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let store = SqlServerStore::connect("db", config(url, &schema))
        .await
        .unwrap();
    Some((store, schema))
}

/// Drops every table of the schema, then the schema.
pub(super) async fn drop_schema(store: &SqlServerStore, schema: &str) {
    assert!(schema.starts_with("pr_test_"));
    store.drop_schema().await.unwrap();
}

fn info(table: &str) -> EntityInfo {
    EntityInfo {
        table: table.into(),
        store: "db".into(),
        ..EntityInfo::new(&ITEM)
    }
}

fn item(id: &str, name: &str, n: Option<i64>) -> Record {
    let mut r = Record::new(Key::from(id));
    r.set("name", Value::from(name));
    r.set("n", n.map_or(Value::Null, Value::I64));
    r
}

fn put_op(r: Record, p: Precondition) -> WriteOp {
    WriteOp::Put {
        record: r,
        precondition: p,
        ttl: None,
    }
}

#[tokio::test]
async fn live_round_trip() {
    let Some((store, schema)) = open_fresh().await else {
        return;
    };
    let e = info("items");
    store.ensure_entity(&e).await.unwrap();
    store.ensure_entity(&e).await.unwrap(); // idempotent
    let out = store
        .write(
            &e,
            vec![put_op(item("a", "Alpha", Some(1)), Precondition::Absent)],
            true,
        )
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::Written { version: 1 }]);
    let got = store.get(&e, &Key::from("a")).await.unwrap().unwrap();
    assert_eq!(got.version, 1);
    assert_eq!(got.get("name"), Some(&Value::from("Alpha")));
    // Preconditions.
    let err = store
        .write(
            &e,
            vec![put_op(item("a", "x", None), Precondition::Absent)],
            true,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                actual: Some(1),
                ..
            }
        ),
        "{err:?}"
    );
    let out = store
        .write(
            &e,
            vec![put_op(
                item("a", "Alpha2", Some(2)),
                Precondition::Version(1),
            )],
            true,
        )
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::Written { version: 2 }]);
    // A failing batch writes nothing.
    let err = store
        .write(
            &e,
            vec![
                put_op(item("b", "Beta", Some(3)), Precondition::None),
                put_op(item("a", "x", None), Precondition::Version(1)),
            ],
            true,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert!(store.get(&e, &Key::from("b")).await.unwrap().is_none());
    // Bulk put (MERGE), then get_many and a query.
    let ops: Vec<WriteOp> = (0..300)
        .map(|i| {
            put_op(
                item(&format!("k{i:03}"), &format!("n{i}"), Some(i)),
                Precondition::None,
            )
        })
        .collect();
    let out = store.write(&e, ops, true).await.unwrap();
    assert!(
        out.iter()
            .all(|o| *o == WriteOutcome::Written { version: 1 })
    );
    let keys: Vec<Key> = ["k000", "zz", "k299", "a"]
        .into_iter()
        .map(Key::from)
        .collect();
    let many = store.get_many(&e, &keys).await.unwrap();
    assert_eq!(many.iter().filter(|r| r.is_some()).count(), 3);
    assert!(many[1].is_none());
    let q = StoreQuery {
        filter: Some(crate::query::field("name").prefix("n1")),
        order: vec![Order {
            field: "n".into(),
            direction: Direction::Desc,
        }],
        limit: Some(5),
    };
    let rows = store.query(&e, &q).await.unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[0].get("n"), Some(&Value::I64(199)));
    assert_eq!(
        store
            .count(&e, Some(&crate::query::field("n").ge(100)))
            .await
            .unwrap(),
        200
    );
    // TTL: expired rows are invisible, then purged.
    store
        .write(
            &e,
            vec![WriteOp::Put {
                record: item("t", "ttl", None),
                precondition: Precondition::None,
                ttl: Some(Duration::from_millis(50)),
            }],
            true,
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(store.get(&e, &Key::from("t")).await.unwrap().is_none());
    assert!(store.purge_expired().await.unwrap() >= 1);
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn live_incompatible_table_is_a_config_error_naming_the_column() {
    let Some((store, schema)) = open_fresh().await else {
        return;
    };
    store
        .raw(
            &format!(
                "CREATE TABLE [{schema}].[bad] ([id] NVARCHAR(450) COLLATE Latin1_General_100_BIN2 NOT NULL PRIMARY KEY, \
                 [name] NVARCHAR(MAX) COLLATE SQL_Latin1_General_CP1_CI_AS NOT NULL)"
            ),
            vec![],
        )
        .await
        .unwrap();
    let err = store.ensure_entity(&info("bad")).await.unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert!(err.to_string().contains("column `name`"), "{err}");
    drop_schema(&store, &schema).await;
}

#[tokio::test]
async fn live_matches_the_reference() {
    let Some((store, schema)) = open_fresh().await else {
        return;
    };
    let e = EntityInfo {
        table: "reference".into(),
        store: "db".into(),
        ..EntityInfo::new(&reference::ROW)
    };
    store.ensure_entity(&e).await.unwrap();
    let t = store.table_sql(&e).unwrap();
    reference::compare_with_reference(
        &store,
        &e,
        7,
        &SqlServerDialect::new(Some(schema.to_string())),
        |q| t.query(q, 0).sql,
    )
    .await;
    drop_schema(&store, &schema).await;
}
