//! Entities and stores that would share storage are refused at start-up
//! with a located configuration error naming both and saying why.
//!
//! Needs the machine's PostgreSQL, MariaDB and Redis for the tests of those
//! kinds (run with `--all-features`); a missing server fails the test.

use polyrouter::{Entity, Error, Router};
use serde::{Deserialize, Serialize};

/// Builds a router from `text`; the error it fails with, as text.
async fn refused(text: &str) -> String {
    match Router::from_toml_str(text).await {
        Ok(_) => panic!("accepted a clashing configuration:\n{text}"),
        Err(e @ Error::Config { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with("<string>:") && !msg.starts_with("<string>:0:"),
                "located: {msg}"
            );
            msg
        }
        Err(e) => panic!("expected a configuration error, got {e}"),
    }
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_tables_differing_only_in_ascii_case_are_one_table() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!(
        "[stores.main]\nkind = \"sqlite\"\nurl = \"sqlite://{}/n.db\"\n",
        dir.path().display()
    );
    let msg = refused(&format!(
        "{store}[entities.a]\nstore = \"main\"\ntable = \"probe_case\"\n[entities.b]\nstore = \"main\"\ntable = \"PROBE_CASE\"\n"
    ))
    .await;
    assert!(
        msg.contains("entity `a` (table `probe_case`)")
            && msg.contains("entity `b` (table `PROBE_CASE`)")
            && msg.contains("ignoring the case of ASCII letters"),
        "{msg}"
    );
    assert!(msg.contains("`entities.b.table`"), "{msg}");
    // The entity name is the default table: `Note` and `note` clash too.
    let msg = refused(&format!(
        "{store}[entities.note]\nstore = \"main\"\n[entities.Note]\nstore = \"main\"\n"
    ))
    .await;
    assert!(msg.contains("one table in store `main`"), "{msg}");
    // Non-ASCII letters are compared exactly by SQLite: two tables.
    Router::from_toml_str(&format!(
        "{store}[entities.a]\nstore = \"main\"\ntable = \"ärger\"\n[entities.b]\nstore = \"main\"\ntable = \"Ärger\"\n[entities.c]\nstore = \"main\"\ntable = \"é\"\n[entities.d]\nstore = \"main\"\ntable = \"É\"\n"
    ))
    .await
    .unwrap();
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn cache_time_series_and_graph_tables_are_compared_too() {
    let dir = tempfile::tempdir().unwrap();
    let stores = format!(
        "[stores.main]\nkind = \"sqlite\"\nurl = \"sqlite://{}/n.db\"\n[stores.cache]\nkind = \"memory\"\n",
        dir.path().display()
    );
    // An entity whose table is another entity's cache namespace.
    let msg = refused(&format!(
        "{stores}[entities.user]\nstore = \"main\"\ncache = {{ store = \"cache\", ttl = \"1m\" }}\n[entities.other]\nstore = \"cache\"\ntable = \"user__cache\"\n"
    ))
    .await;
    assert!(
        msg.contains("the cache of entity `user`") && msg.contains("entity `other`"),
        "{msg}"
    );
    let msg = refused(&format!(
        "{stores}[entities.reading]\nstore = \"main\"\ntable = \"Telemetry\"\n[timeseries.telemetry]\nstore = \"main\"\nfields = [\"v\"]\n"
    ))
    .await;
    assert!(msg.contains("time series `telemetry`"), "{msg}");
    let msg = refused(&format!(
        "{stores}[entities.v]\nstore = \"main\"\ntable = \"Social_Vertices\"\n[graphs.social]\nstore = \"main\"\n"
    ))
    .await;
    assert!(
        msg.contains("graph `social` (table `social_vertices`)"),
        "{msg}"
    );
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_names_longer_than_63_bytes_are_refused() {
    let store = "[stores.pg]\nkind = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/test\"\nmax_connections = 1\n";
    // Two names PostgreSQL would cut to the same 63 bytes.
    let long = "t".repeat(63);
    let msg = refused(&format!(
        "{store}[entities.a]\nstore = \"pg\"\ntable = \"{long}_a\"\n[entities.b]\nstore = \"pg\"\ntable = \"{long}_b\"\n"
    ))
    .await;
    assert!(
        msg.contains("`entities.a.table`")
            && msg.contains("65 bytes long")
            && msg.contains("first 63 bytes"),
        "{msg}"
    );
    // Case matters to PostgreSQL (names are quoted): two tables.
    Router::from_toml_str(&format!(
        "{store}[entities.a]\nstore = \"pg\"\ntable = \"probe_case\"\n[entities.b]\nstore = \"pg\"\ntable = \"PROBE_CASE\"\n[entities.c]\nstore = \"pg\"\ntable = \"{long}\"\n"
    ))
    .await
    .unwrap();
}

/// A field name of 64 bytes: one more than PostgreSQL keeps.
#[derive(Entity, Serialize, Deserialize)]
#[entity(name = "long_column", key = "id")]
struct LongColumn {
    id: String,
    a_field_name_that_is_much_longer_than_postgres_keeps_for_a_column: i64,
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn a_postgres_column_name_longer_than_63_bytes_is_a_clear_error() {
    // Refused before any DDL: nothing is created in the database.
    let router = Router::from_toml_str(
        "[stores.pg]\nkind = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/test\"\nmax_connections = 1\n[entities.long_column]\nstore = \"pg\"\n",
    )
    .await
    .unwrap();
    let err = router.repo::<LongColumn>().await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Config { .. }), "{msg}");
    assert!(
        msg.contains(
            "field name \"a_field_name_that_is_much_longer_than_postgres_keeps_for_a_column\""
        ) && msg.contains("first 63 bytes")
            && !msg.contains("missing"),
        "{msg}"
    );
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn mariadb_tables_differing_in_case_are_one_table() {
    let store = "[stores.my]\nkind = \"mysql\"\nurl = \"mysql://root@127.0.0.1:3306/test\"\nmax_connections = 1\n";
    let msg = refused(&format!(
        "{store}[entities.a]\nstore = \"my\"\ntable = \"probe_case\"\n[entities.b]\nstore = \"my\"\ntable = \"PROBE_CASE\"\n"
    ))
    .await;
    assert!(
        msg.contains("entity `a` (table `probe_case`)")
            && msg.contains("lower_case_table_names")
            && !msg.contains("primary key"),
        "{msg}"
    );
}

#[cfg(feature = "redis")]
const REDIS: &str = "redis://127.0.0.1:6379";

#[cfg(feature = "redis")]
#[tokio::test]
async fn a_redis_key_prefix_equal_to_another_entitys_table_is_refused() {
    let msg = refused(&format!(
        "[stores.kv]\nkind = \"redis\"\nurl = \"{REDIS}\"\nkey_prefix = \"pr-ns\"\n[entities.first]\nstore = \"kv\"\nkey_prefix = \"collide\"\n[entities.other]\nstore = \"kv\"\ntable = \"collide\"\n"
    ))
    .await;
    assert!(
        msg.contains("entity `first` (key prefix `collide`)")
            && msg.contains("entity `other` (table `collide`)")
            && msg.contains("one table in store `kv`"),
        "{msg}"
    );
    // The entity name is the namespace when neither is set.
    let msg = refused(&format!(
        "[stores.kv]\nkind = \"redis\"\nurl = \"{REDIS}\"\nkey_prefix = \"pr-ns\"\n[entities.first]\nstore = \"kv\"\nkey_prefix = \"other\"\n[entities.other]\nstore = \"kv\"\n"
    ))
    .await;
    assert!(msg.contains("`entities.other`"), "{msg}");
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_stores_on_one_server_with_nesting_key_prefixes_are_refused() {
    let two = |a: &str, b: &str, url_b: &str| {
        format!(
            "[stores.a]\nkind = \"redis\"\nurl = \"{REDIS}\"\nkey_prefix = \"{a}\"\n[stores.b]\nkind = \"redis\"\nurl = \"{url_b}\"\nkey_prefix = \"{b}\"\n"
        )
    };
    for (a, b) in [
        ("p", "p:probe_doc"),
        ("p:probe_doc", "p"),
        ("p", "p"),
        ("p", "p#kv"),
        ("p", "p#kv:x"),
    ] {
        let msg = refused(&two(a, b, REDIS)).await;
        assert!(
            msg.contains("stores `a` and `b` write to the same server (redis 127.0.0.1:6379/0)")
                && msg.contains("`stores.b`"),
            "{a} / {b}: {msg}"
        );
    }
    // Prefixes that only share letters, and other databases, are apart.
    for (a, b, url) in [
        ("app", "app2", REDIS.to_string()),
        ("p", "p#kvx", REDIS.to_string()),
        ("p", "p:probe_doc", format!("{REDIS}/1")),
    ] {
        Router::from_toml_str(&two(a, b, &url))
            .await
            .unwrap_or_else(|e| panic!("{a} / {b} on {url}: {e}"));
    }
    // The same database written two ways is one server.
    let msg = refused(&two("p", "p:x", &format!("{REDIS}/0"))).await;
    assert!(msg.contains("same server"), "{msg}");
}
