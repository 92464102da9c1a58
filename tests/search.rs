//! Search routes through the router: records in SQLite, the index in
//! tantivy. Index on write, delete, start-up checks, a failed index update
//! that must be visible, and re-indexing (library and `polyrouter reindex`).

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use polyrouter::backends::tantivy::{TantivyConfig, TantivyStore};
use polyrouter::config::Config;
use polyrouter::query::{Filter, field};
use polyrouter::router::SearchQuery;
use polyrouter::store::search::{SearchIndex, SearchRequest, SearchResults, SearchStore};
use polyrouter::store::{EntityInfo, StoreQuery, WriteOp, WriteOutcome};
use polyrouter::{Capabilities, Entity, Error, FilterCaps, Key, Record, Result, Router, Store};
use serde::{Deserialize, Serialize};

#[derive(Entity, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[entity(name = "article", key = "id")]
struct Article {
    id: i64,
    title: String,
    body: String,
    section: String,
    #[entity(version)]
    version: u64,
}

fn article(id: i64, title: &str, body: &str, section: &str) -> Article {
    Article {
        id,
        title: title.into(),
        body: body.into(),
        section: section.into(),
        version: 0,
    }
}

fn config(dir: &std::path::Path) -> String {
    format!(
        r#"
[stores.main]
kind = "sqlite"
url = "sqlite://{d}/app.db"

[stores.search]
kind = "tantivy"
path = "{d}/index"
commit_interval = "100ms"

[entities.article]
store = "main"
search = {{ store = "search", fields = ["title", "body"], key_kind = "int", filters = {{ section = "string" }}, facets = ["section"] }}
"#,
        d = dir.display()
    )
}

async fn titles(router: &Router, text: &str) -> Result<Vec<String>> {
    let repo = router.repo::<Article>().await?;
    let page = repo.search(SearchQuery::new(text)).await?;
    Ok(page.hits.into_iter().map(|h| h.item.title).collect())
}

#[tokio::test]
async fn put_is_found_and_delete_is_gone() -> Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let router = Router::from_toml_str(&config(dir.path())).await?;
    let repo = router.repo::<Article>().await?;
    repo.put(&article(
        1,
        "Rust ownership explained",
        "borrowing and lifetimes",
        "tech",
    ))
    .await?;
    repo.put(&article(
        2,
        "Gardening in spring",
        "tomatoes and borrowing tools",
        "home",
    ))
    .await?;
    repo.refresh_search().await?;
    assert_eq!(
        titles(&router, "ownership").await?,
        vec!["Rust ownership explained"]
    );
    let page = repo
        .search(
            SearchQuery::new("borrowing")
                .filter(field("section").eq("home"))
                .facet("section"),
        )
        .await?;
    assert_eq!(page.hits.len(), 1);
    assert_eq!(page.hits[0].key, Key::Int(2));
    assert_eq!(
        page.hits[0].item.version, 1,
        "hydrated from the primary store"
    );
    assert_eq!(page.facets[0].count("home"), 1);
    assert!(repo.delete(1).await?);
    repo.refresh_search().await?;
    assert!(titles(&router, "ownership").await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn an_index_that_lags_the_primary_store_drops_missing_records() -> Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let router = Router::from_toml_str(&config(dir.path())).await?;
    let repo = router.repo::<Article>().await?;
    repo.put(&article(7, "orphan record", "", "x")).await?;
    repo.refresh_search().await?;
    // Delete in the primary store behind the router's back.
    let main = router.store("main").unwrap();
    let info = EntityInfo {
        table: "article".into(),
        store: "main".into(),
        ..EntityInfo::new(Article::schema())
    };
    main.write(
        &info,
        vec![WriteOp::Delete {
            key: Key::Int(7),
            precondition: Default::default(),
        }],
        true,
    )
    .await?;
    let page = repo.search(SearchQuery::new("orphan")).await?;
    assert!(page.hits.is_empty());
    assert_eq!(page.missing, 1);
    assert_eq!(page.total, 1);
    Ok(())
}

#[tokio::test]
async fn reindex_rebuilds_a_dropped_index() -> Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let router = Router::from_toml_str(&config(dir.path())).await?;
    let repo = router.repo::<Article>().await?;
    let all: Vec<Article> = (0..1234)
        .map(|i| {
            article(
                i,
                &format!("title {i}"),
                if i % 2 == 0 {
                    "even story"
                } else {
                    "odd story"
                },
                "s",
            )
        })
        .collect();
    repo.put_many(&all).await?;
    repo.refresh_search().await?;
    // Drop the index's content.
    let search = router.store("search").unwrap().as_search().unwrap();
    let idx = {
        let mut i = SearchIndex::new(Article::schema(), &["title", "body"]);
        i.name = "article".into();
        i.store = "search".into();
        i.filters = vec!["section".into()];
        i.facets = vec!["section".into()];
        i
    };
    search.clear(&idx).await?;
    search.flush(&idx).await?;
    assert_eq!(repo.search(SearchQuery::new("even")).await?.total, 0);
    let mut seen = Vec::new();
    let n = repo.reindex(|p| seen.push(p)).await?;
    assert_eq!(n, 1234);
    assert_eq!(seen.last().unwrap().done, 1234);
    assert_eq!(seen.last().unwrap().total, Some(1234));
    assert!(seen.len() > 2, "progress after every page: {seen:?}");
    assert_eq!(repo.search(SearchQuery::new("even")).await?.total, 617);
    assert_eq!(repo.search(SearchQuery::new("")).await?.total, 1234);
    // By entity name (no Rust type, as the CLI does), beside the bound repo.
    let mut calls = 0;
    assert_eq!(router.reindex("article", &mut |_| calls += 1).await?, 1234);
    assert!(calls > 2);
    assert_eq!(repo.search(SearchQuery::new("odd")).await?.total, 617);
    Ok(())
}

#[tokio::test]
async fn a_search_only_store_cannot_be_the_primary_store() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[stores.search]\nkind = \"tantivy\"\npath = \"{}\"\n\n[entities.article]\nstore = \"search\"\n",
        dir.path().display()
    );
    let e = Router::from_toml_str(&cfg).await.unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("entities.article.store") && msg.contains("cannot hold entity records"),
        "{msg}"
    );
    let s = TantivyStore::open("s", TantivyConfig::new(dir.path())).unwrap();
    assert!(!s.capabilities().records && s.capabilities().search);
}

#[tokio::test]
async fn search_routes_are_checked_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let base = config(dir.path());
    let cases: Vec<(String, &str)> = vec![
        // The search store cannot search.
        (
            base.replace(
                &format!(
                    "kind = \"tantivy\"\npath = \"{}/index\"\ncommit_interval = \"100ms\"",
                    dir.path().display()
                ),
                "kind = \"memory\"",
            ),
            "search (asked for by `entities.article.search`",
        ),
        (
            base.replace("store = \"search\", fields", "store = \"nope\", fields"),
            "store `nope` is not defined",
        ),
        (
            base.replace(
                "fields = [\"title\", \"body\"]",
                "fields = [\"title\", \"bogus\"]",
            ),
            "no field `bogus`",
        ),
        (
            base.replace("fields = [\"title\", \"body\"]", "fields = []"),
            "at least one text field",
        ),
        (
            base.replace(
                "section = \"string\"",
                "section = \"string\", title = \"int\"",
            ),
            "`title` is a string field",
        ),
        (
            base.replace("key_kind = \"int\"", "key_kind = \"string\""),
            "key_kind = \\\"int\\\"",
        ),
        (
            base.replace("facets = [\"section\"]", "facets = [\"title\"]"),
            "facet `title`",
        ),
        (
            base.replace(
                "facets = [\"section\"]",
                "facets = [\"section\"], colour = 1",
            ),
            "colour",
        ),
        (
            base.replace(
                "store = \"search\", fields",
                "store = \"search\", language = \"klingon\", fields",
            ),
            "unknown language",
        ),
    ];
    for (cfg, want) in cases {
        let res = match Router::from_toml_str(&cfg).await {
            Ok(r) => r.repo::<Article>().await.map(|_| ()),
            Err(e) => Err(e),
        };
        let e = res.expect_err(want);
        let msg = e.to_string().replace('"', "\\\"");
        assert!(
            msg.contains(want) || e.to_string().contains(want),
            "want `{want}` in: {e}"
        );
    }
    // Unknown keys carry their line.
    let e = Config::parse(
        &base.replace(
            "facets = [\"section\"]",
            "facets = [\"section\"], colour = 1",
        ),
        "app.toml",
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("app.toml:13:"), "{e}");
}

/// The real tantivy store, with index updates that fail on demand: what
/// a full disk or a lost search server looks like to the router.
#[derive(Debug)]
struct Flaky {
    inner: TantivyStore,
    fail: AtomicBool,
}

#[async_trait]
impl SearchStore for Flaky {
    async fn ensure_index(&self, i: &SearchIndex) -> Result<()> {
        self.inner.ensure_index(i).await
    }
    async fn index(&self, i: &SearchIndex, docs: &[Record]) -> Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(Error::unavailable("search", "", "injected: disk full"));
        }
        self.inner.index(i, docs).await
    }
    async fn remove(&self, i: &SearchIndex, keys: &[Key]) -> Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(Error::unavailable("search", "", "injected: disk full"));
        }
        self.inner.remove(i, keys).await
    }
    async fn clear(&self, i: &SearchIndex) -> Result<()> {
        self.inner.clear(i).await
    }
    async fn flush(&self, i: &SearchIndex) -> Result<()> {
        self.inner.flush(i).await
    }
    async fn search(&self, i: &SearchIndex, r: &SearchRequest) -> Result<SearchResults> {
        self.inner.search(i, r).await
    }
    fn filter_caps(&self) -> FilterCaps {
        self.inner.filter_caps()
    }
}

#[async_trait]
impl Store for Flaky {
    fn name(&self) -> &str {
        "search"
    }
    fn kind(&self) -> &'static str {
        "flaky"
    }
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    fn location(&self) -> String {
        self.inner.location()
    }
    async fn ensure_entity(&self, e: &EntityInfo) -> Result<()> {
        self.inner.ensure_entity(e).await
    }
    async fn get(&self, e: &EntityInfo, k: &Key) -> Result<Option<Record>> {
        self.inner.get(e, k).await
    }
    async fn get_many(&self, e: &EntityInfo, k: &[Key]) -> Result<Vec<Option<Record>>> {
        self.inner.get_many(e, k).await
    }
    async fn write(
        &self,
        e: &EntityInfo,
        ops: Vec<WriteOp>,
        atomic: bool,
    ) -> Result<Vec<WriteOutcome>> {
        self.inner.write(e, ops, atomic).await
    }
    async fn query(&self, e: &EntityInfo, q: &StoreQuery) -> Result<Vec<Record>> {
        self.inner.query(e, q).await
    }
    async fn count(&self, e: &EntityInfo, f: Option<&Filter>) -> Result<u64> {
        self.inner.count(e, f).await
    }
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
    fn as_search(&self) -> Option<&dyn SearchStore> {
        Some(self)
    }
}

#[tokio::test]
async fn a_failed_index_update_is_visible_and_reindex_repairs_it() -> Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let text = config(dir.path());
    // The same routes, with the search store built in code.
    let text = text.replace(
        &format!("[stores.search]\nkind = \"tantivy\"\npath = \"{}/index\"\ncommit_interval = \"100ms\"\n", dir.path().display()),
        "",
    );
    let flaky = Arc::new(Flaky {
        inner: TantivyStore::open("search", TantivyConfig::new(dir.path().join("index")))?,
        fail: AtomicBool::new(false),
    });
    // `search` is added in code: parse with a defined store, then point at it.
    let mut cfg = Config::parse(
        &text.replace("store = \"search\", fields", "store = \"main\", fields"),
        "<string>",
    )?;
    cfg.entities
        .get_mut("article")
        .unwrap()
        .search
        .as_mut()
        .unwrap()
        .store = "search".into();
    let router = Router::builder()
        .config(cfg)
        .store("search", flaky.clone())
        .build()
        .await?;
    let repo = router.repo::<Article>().await?;
    repo.put(&article(1, "first light", "", "a")).await?;
    flaky.fail.store(true, Ordering::SeqCst);
    let err = repo
        .put(&article(2, "second light", "", "a"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotIndexed { keys, .. } if keys == "2"),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("applied to the primary store") && msg.contains("polyrouter reindex article"),
        "{msg}"
    );
    // The record is stored, with its version.
    assert_eq!(repo.get(2).await?.unwrap().version, 1);
    let err = repo.delete(1).await.unwrap_err();
    assert!(matches!(err, Error::NotIndexed { .. }), "{err}");
    assert!(repo.get(1).await?.is_none());
    flaky.fail.store(false, Ordering::SeqCst);
    repo.refresh_search().await?;
    // Stale: 1 still indexed (dropped as missing), 2 not indexed.
    let page = repo.search(SearchQuery::new("light")).await?;
    assert_eq!((page.hits.len(), page.missing), (0, 1));
    assert_eq!(repo.reindex(|_| {}).await?, 1);
    let page = repo.search(SearchQuery::new("light")).await?;
    assert_eq!(page.hits.len(), 1);
    assert_eq!(page.hits[0].item.title, "second light");
    assert_eq!(page.missing, 0);
    Ok(())
}

fn polyrouter(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_polyrouter"))
        .args(args)
        .output()
        .expect("run polyrouter")
}

#[tokio::test]
async fn cli_reindex_rebuilds_a_deleted_index_directory() -> Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.toml");
    std::fs::write(&path, config(dir.path())).unwrap();
    {
        let router = Router::from_file(&path).await?;
        let repo = router.repo::<Article>().await?;
        let all: Vec<Article> = (0..300)
            .map(|i| {
                article(
                    i,
                    &format!("note {i}"),
                    if i < 100 { "alpha" } else { "beta" },
                    "s",
                )
            })
            .collect();
        repo.put_many(&all).await?;
        repo.refresh_search().await?;
    }
    // The router is gone (its index writer released); drop the index.
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let out = polyrouter(&["reindex", "article", "--config", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("reindexed 300 record(s) of `article`"),
        "{stdout}"
    );
    let router = Router::from_file(&path).await?;
    let repo = router.repo::<Article>().await?;
    assert_eq!(repo.search(SearchQuery::new("alpha")).await?.total, 100);
    assert_eq!(
        repo.search(SearchQuery::new("beta").filter(field("section").eq("s")))
            .await?
            .total,
        200
    );
    drop(repo);
    drop(router);
    // Errors name the problem.
    let out = polyrouter(&["reindex", "nope", "--config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("entity `nope` is not configured"));
    let plain = dir.path().join("plain.toml");
    std::fs::write(
        &plain,
        format!("[stores.main]\nkind = \"sqlite\"\nurl = \"sqlite://{}/p.db\"\n[entities.user]\nstore = \"main\"\n", dir.path().display()),
    )
    .unwrap();
    let out = polyrouter(&["reindex", "user", "--config", plain.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no `search`"));
    Ok(())
}
