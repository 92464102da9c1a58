//! Unit tests of the tantivy store: layouts, the writer lock, the commit
//! policy, record operations refused, and the query translation.

use std::time::{Duration, Instant};

use super::*;
use crate::KeyKind;
use crate::config::ConfigDuration;
use crate::entity::{FieldDef, Schema};
use crate::query::field;

static FIELDS: [FieldDef; 5] = [
    FieldDef::required("id", FieldKind::String),
    FieldDef::required("title", FieldKind::String),
    FieldDef::required("n", FieldKind::Int),
    FieldDef::nullable("at", FieldKind::Timestamp),
    FieldDef::nullable("blob", FieldKind::Bytes),
];
static SCHEMA: Schema = Schema {
    name: "t",
    key: "id",
    key_kind: KeyKind::Str,
    partition_key: None,
    version: None,
    fields: &FIELDS,
};

fn layout() -> SearchIndex {
    let mut i = SearchIndex::new(&SCHEMA, &["title"]);
    i.filters = vec!["n".into(), "at".into()];
    i
}

fn rec(id: &str, title: &str, n: i64) -> Record {
    let mut r = Record::new(Key::from(id));
    r.set("id", Value::from(id));
    r.set("title", Value::from(title));
    r.set("n", Value::I64(n));
    r
}

fn store(dir: &Path, commit_docs: usize, every: Duration) -> TantivyStore {
    let mut cfg = TantivyConfig::new(dir);
    cfg.commit_docs = commit_docs;
    cfg.commit_interval = ConfigDuration(every);
    TantivyStore::open("s", cfg).unwrap()
}

async fn found(s: &TantivyStore, text: &str) -> Vec<Key> {
    let r = s
        .search(&layout(), &SearchRequest::new(text, 100))
        .await
        .unwrap();
    r.hits.into_iter().map(|h| h.key).collect()
}

#[tokio::test]
async fn reopening_with_another_layout_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = store(dir.path(), 10, Duration::from_secs(60));
        s.ensure_index(&layout()).await.unwrap();
    }
    let s = store(dir.path(), 10, Duration::from_secs(60));
    let mut other = layout();
    other.filters = vec!["n".into()];
    let e = s.ensure_index(&other).await.unwrap_err();
    assert!(
        matches!(&e, Error::Config { message, .. } if message.contains("polyrouter reindex t")),
        "{e}"
    );
    // The original layout opens fine.
    drop(s);
    let s = store(dir.path(), 10, Duration::from_secs(60));
    s.ensure_index(&layout()).await.unwrap();
}

#[tokio::test]
async fn one_writer_per_index_directory() {
    let dir = tempfile::tempdir().unwrap();
    let a = store(dir.path(), 10, Duration::from_secs(60));
    a.ensure_index(&layout()).await.unwrap();
    let b = store(dir.path(), 10, Duration::from_secs(60));
    let e = b.ensure_index(&layout()).await.unwrap_err();
    assert!(
        e.is_transient() && e.to_string().contains("open for writing elsewhere"),
        "{e}"
    );
}

#[tokio::test]
async fn commit_docs_pending_writes_commit_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // The interval is far away: only the count can commit.
    let s = store(dir.path(), 3, Duration::from_secs(3600));
    s.index(&layout(), &[rec("a", "alpha", 1), rec("b", "alpha", 2)])
        .await
        .unwrap();
    assert!(
        found(&s, "alpha").await.is_empty(),
        "2 of 3: not committed yet"
    );
    s.index(&layout(), &[rec("c", "alpha", 3)]).await.unwrap();
    assert_eq!(found(&s, "alpha").await.len(), 3);
}

#[tokio::test]
async fn the_interval_commits_pending_writes() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 1_000_000, Duration::from_millis(50));
    s.index(&layout(), &[rec("a", "beta", 1)]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while found(&s, "beta").await.is_empty() {
        assert!(Instant::now() < deadline, "never committed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn records_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 10, Duration::from_secs(60));
    let info = EntityInfo::new(&SCHEMA);
    let e = s.get(&info, &Key::from("a")).await.unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    let e = s.ensure_entity(&info).await.unwrap_err();
    assert!(e.to_string().contains("search.store"), "{e}");
    assert!(!s.capabilities().records && !s.capabilities().query);
}

#[tokio::test]
async fn bad_layouts_and_documents_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 1, Duration::from_secs(60));
    let mut bytes = layout();
    bytes.name = "bytes".into();
    bytes.filters = vec!["blob".into()];
    let e = s.ensure_index(&bytes).await.unwrap_err();
    assert!(e.to_string().contains("bytes field"), "{e}");
    let mut escape = layout();
    escape.name = "../escape".into();
    let e = s.ensure_index(&escape).await.unwrap_err();
    assert!(e.to_string().contains("directory name"), "{e}");
    let mut wrong = rec("a", "x", 1);
    wrong.set("n", Value::from("not a number"));
    let e = s.index(&layout(), &[wrong]).await.unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
    let e = s
        .index(
            &layout(),
            &[{
                let mut r = rec("k", "x", 1);
                r.key = Key::Int(1);
                r
            }],
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
}

#[tokio::test]
async fn filters_follow_two_valued_logic() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 1, Duration::from_secs(60));
    let mut no_n = rec("z", "gamma", 0);
    no_n.fields.retain(|(n, _)| n != "n");
    let t = chrono::DateTime::parse_from_rfc3339("2024-05-01T10:00:00.123456Z")
        .unwrap()
        .to_utc();
    let mut with_at = rec("a", "gamma", 1);
    with_at.set("at", Value::Timestamp(t));
    s.index(&layout(), &[with_at, rec("b", "gamma", 2), no_n])
        .await
        .unwrap();
    s.flush(&layout()).await.unwrap();
    let keys = |f: Filter| {
        let mut r = SearchRequest::new("gamma", 10);
        r.filter = Some(f);
        let s = &s;
        async move {
            let mut k: Vec<Key> = s
                .search(&layout(), &r)
                .await
                .unwrap()
                .hits
                .into_iter()
                .map(|h| h.key)
                .collect();
            k.sort();
            k
        }
    };
    assert_eq!(
        keys(field("n").ne(1)).await,
        vec![Key::from("b"), Key::from("z")]
    );
    assert_eq!(keys(field("n").lt(2)).await, vec![Key::from("a")]);
    assert_eq!(
        keys(field("n").lt(2).not()).await,
        vec![Key::from("b"), Key::from("z")]
    );
    assert_eq!(keys(field("n").is_null()).await, vec![Key::from("z")]);
    assert_eq!(
        keys(field("at").eq(Value::Timestamp(t))).await,
        vec![Key::from("a")]
    );
    assert_eq!(
        keys(field("n").is_in(Vec::<i64>::new())).await,
        Vec::<Key>::new()
    );
    let mut r = SearchRequest::new("gamma", 10);
    r.filter = Some(field("title").eq("gamma"));
    let e = s.search(&layout(), &r).await.unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
    r.filter = Some(field("n").contains("1"));
    let e = s.search(&layout(), &r).await.unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
}
