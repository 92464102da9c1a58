//! `[graphs.NAME]`: validated at start-up with file:line errors; `router.graph()`.

use std::sync::Arc;

use async_trait::async_trait;
use polyrouter::backends::memory::MemoryStore;
use polyrouter::config::GraphConfig;
use polyrouter::query::Filter;
use polyrouter::store::graph::Vertex;
use polyrouter::store::{EntityInfo, StoreQuery, WriteOp, WriteOutcome};
use polyrouter::{Capabilities, Error, Key, Record, Router, Store};

/// A store without graphs: the memory store minus `as_graph`.
#[derive(Debug)]
struct NoGraph(MemoryStore, Capabilities);

#[async_trait]
impl Store for NoGraph {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn kind(&self) -> &'static str {
        "nograph"
    }
    fn capabilities(&self) -> &Capabilities {
        &self.1
    }
    fn location(&self) -> String {
        "test".into()
    }
    async fn ensure_entity(&self, e: &EntityInfo) -> polyrouter::Result<()> {
        self.0.ensure_entity(e).await
    }
    async fn get(&self, e: &EntityInfo, k: &Key) -> polyrouter::Result<Option<Record>> {
        self.0.get(e, k).await
    }
    async fn get_many(&self, e: &EntityInfo, k: &[Key]) -> polyrouter::Result<Vec<Option<Record>>> {
        self.0.get_many(e, k).await
    }
    async fn write(
        &self,
        e: &EntityInfo,
        ops: Vec<WriteOp>,
        atomic: bool,
    ) -> polyrouter::Result<Vec<WriteOutcome>> {
        self.0.write(e, ops, atomic).await
    }
    async fn query(&self, e: &EntityInfo, q: &StoreQuery) -> polyrouter::Result<Vec<Record>> {
        self.0.query(e, q).await
    }
    async fn count(&self, e: &EntityInfo, f: Option<&Filter>) -> polyrouter::Result<u64> {
        self.0.count(e, f).await
    }
    async fn ping(&self) -> polyrouter::Result<()> {
        Ok(())
    }
}

fn config_error(e: &Error) -> (String, usize, String) {
    match e {
        Error::Config {
            file, line, path, ..
        } => (file.clone(), *line, path.clone()),
        other => panic!("expected a config error, got {other}"),
    }
}

#[tokio::test]
async fn a_graph_on_an_undefined_store_is_a_located_config_error() {
    let text = "[stores.m]\nkind = \"memory\"\n\n[graphs.social]\nstore = \"nope\"\n";
    let e = Router::from_toml_str(text).await.unwrap_err();
    let (file, line, path) = config_error(&e);
    assert_eq!(
        (file.as_str(), line, path.as_str()),
        ("<string>", 5, "graphs.social.store")
    );
    assert!(e.to_string().contains("store `nope` is not defined"), "{e}");
}

#[tokio::test]
async fn unknown_graph_keys_and_bad_prefixes_are_rejected() {
    let text = "[stores.m]\nkind = \"memory\"\n[graphs.social]\nstore = \"m\"\nstor = \"m\"\n";
    let e = Router::from_toml_str(text).await.unwrap_err();
    let (_, line, path) = config_error(&e);
    assert_eq!((line, path.as_str()), (5, "graphs.social.stor"), "{e}");
    let text = "[stores.m]\nkind = \"memory\"\n[graphs.social]\nstore = \"m\"\ntable_prefix = \"a\\\"; DROP\"\n";
    let e = Router::from_toml_str(text).await.unwrap_err();
    let (_, line, path) = config_error(&e);
    assert_eq!(
        (line, path.as_str()),
        (5, "graphs.social.table_prefix"),
        "{e}"
    );
}

#[tokio::test]
async fn a_store_without_the_graph_capability_is_refused_at_start_up() {
    let store = NoGraph(MemoryStore::new("plain"), Capabilities::all());
    let e = Router::builder()
        .store("plain", Arc::new(store))
        .graph(
            "social",
            GraphConfig {
                store: "plain".into(),
                table_prefix: None,
            },
        )
        .build()
        .await
        .unwrap_err();
    let (_, _, path) = config_error(&e);
    assert_eq!(path, "graphs.social.store");
    assert!(e.to_string().contains("cannot hold graphs"), "{e}");
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn a_redis_store_cannot_hold_a_graph_and_the_error_names_the_line() {
    let text = "[stores.kv]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n[graphs.social]\nstore = \"kv\"\n";
    let e = Router::from_toml_str(text).await.unwrap_err();
    let (_, line, path) = config_error(&e);
    assert_eq!((line, path.as_str()), (5, "graphs.social.store"), "{e}");
}

#[tokio::test]
async fn router_graph_names_an_unknown_graph_and_serves_a_known_one() {
    let text = "[stores.m]\nkind = \"memory\"\n[graphs.social]\nstore = \"m\"\n[graphs.work]\nstore = \"m\"\ntable_prefix = \"w_\"\n";
    let router = Router::from_toml_str(text).await.unwrap();
    let e = router.graph("friends").unwrap_err();
    assert!(
        e.to_string().contains("graph `friends` is not configured"),
        "{e}"
    );
    assert!(
        e.to_string().contains("social, work"),
        "lists the graphs: {e}"
    );
    let social = router.graph("social").unwrap();
    let work = router.graph("work").unwrap();
    assert_eq!(work.info().vertices, "w_vertices");
    social
        .add_vertex(&Vertex::new("ada", "user"))
        .await
        .unwrap();
    assert!(social.vertex("ada").await.unwrap().is_some());
    assert_eq!(work.vertex("ada").await.unwrap(), None, "graphs are apart");
}

#[tokio::test]
async fn sqlite_graph_tables_are_created_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[stores.db]\nkind = \"sqlite\"\nurl = \"sqlite://{}/g.db\"\n[graphs.social]\nstore = \"db\"\n",
        dir.path().display()
    );
    let _router = Router::from_toml_str(&text).await.unwrap();
    // Before any graph call, the tables and both edge indexes exist.
    use sqlx::Connection;
    let mut conn =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}/g.db", dir.path().display()))
            .await
            .unwrap();
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE name LIKE 'social%' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        names,
        vec!["social_edges", "social_edges_in", "social_vertices"]
    );
}
