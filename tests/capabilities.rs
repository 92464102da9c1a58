//! A store that lacks a capability gets `Error::Unsupported`, at start-up
//! for route settings and per call for options — never silently ignored.

use std::sync::Arc;

use async_trait::async_trait;
use polyrouter::backends::memory::MemoryStore;
use polyrouter::config::{ConfigDuration, EntityConfig};
use polyrouter::query::{Filter, Query, field};
use polyrouter::router::WriteOptions;
use polyrouter::store::{EntityInfo, StoreQuery, WriteOp, WriteOutcome};
use polyrouter::{
    Capabilities, Entity, Error, FilterCaps, Key, Precondition, Record, Router, Store,
};
use serde::{Deserialize, Serialize};

/// The memory store with some capabilities switched off.
#[derive(Debug)]
struct Limited {
    inner: MemoryStore,
    caps: Capabilities,
    /// Every write call: (ops, atomic).
    writes: std::sync::Mutex<Vec<(usize, bool)>>,
}

#[async_trait]
impl Store for Limited {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn kind(&self) -> &'static str {
        "limited"
    }
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }
    fn location(&self) -> String {
        "test".into()
    }
    async fn ensure_entity(&self, e: &EntityInfo) -> polyrouter::Result<()> {
        self.inner.ensure_entity(e).await
    }
    async fn get(&self, e: &EntityInfo, k: &Key) -> polyrouter::Result<Option<Record>> {
        self.inner.get(e, k).await
    }
    async fn get_many(&self, e: &EntityInfo, k: &[Key]) -> polyrouter::Result<Vec<Option<Record>>> {
        self.inner.get_many(e, k).await
    }
    async fn write(
        &self,
        e: &EntityInfo,
        ops: Vec<WriteOp>,
        atomic: bool,
    ) -> polyrouter::Result<Vec<WriteOutcome>> {
        assert!(
            ops.iter()
                .all(|op| !matches!(op, WriteOp::Put { ttl: Some(_), .. }) || self.caps.ttl),
            "a TTL reached a store that cannot honour it"
        );
        self.writes.lock().unwrap().push((ops.len(), atomic));
        self.inner.write(e, ops, atomic).await
    }
    async fn write_each(
        &self,
        e: &EntityInfo,
        ops: Vec<WriteOp>,
    ) -> polyrouter::Result<Vec<polyrouter::Result<WriteOutcome>>> {
        // A non-atomic batch: recorded as `(n, false)`.
        self.writes.lock().unwrap().push((ops.len(), false));
        self.inner.write_each(e, ops).await
    }
    async fn query(&self, e: &EntityInfo, q: &StoreQuery) -> polyrouter::Result<Vec<Record>> {
        self.inner.query(e, q).await
    }
    async fn count(&self, e: &EntityInfo, f: Option<&Filter>) -> polyrouter::Result<u64> {
        self.inner.count(e, f).await
    }
    async fn ping(&self) -> polyrouter::Result<()> {
        Ok(())
    }
}

#[derive(Entity, Serialize, Deserialize, Debug, PartialEq)]
#[entity(name = "thing", key = "id")]
struct Thing {
    id: String,
    name: String,
}

fn limited(caps: Capabilities) -> Arc<dyn Store> {
    Arc::new(Limited {
        inner: MemoryStore::new("kv"),
        caps,
        writes: Default::default(),
    })
}

#[derive(Entity, Serialize, Deserialize, Debug, PartialEq)]
#[entity(name = "visit", key = "id", partition_key = "site")]
struct Visit {
    id: String,
    site: String,
}

fn visit(id: &str, site: &str) -> Visit {
    Visit {
        id: id.into(),
        site: site.into(),
    }
}

/// A store atomic only within one partition (Cosmos DB's transactional
/// batch): the router hands it atomic batches and leaves the partition
/// check to it; `put_many` asks for atomicity only where it can be had.
#[tokio::test]
async fn atomic_batches_within_one_partition_reach_the_store() {
    let caps = Capabilities {
        batch_atomic: false,
        batch_atomic_partition: Some(3),
        ..Capabilities::all()
    };
    assert!(caps.names().contains(&"batch-atomic-in-one-partition"));
    assert!(!caps.names().contains(&"batch-atomic"));
    let store = Arc::new(Limited {
        inner: MemoryStore::new("kv"),
        caps,
        writes: Default::default(),
    });
    let router = Router::builder()
        .store("kv", store.clone())
        .route("visit", "kv")
        .route("thing", "kv")
        .build()
        .await
        .unwrap();
    let visits = router.repo::<Visit>().await.unwrap();
    let seen = || std::mem::take(&mut *store.writes.lock().unwrap());
    // An explicit atomic batch goes to the store as one atomic call,
    // whichever partitions it spans: the store decides.
    visits
        .batch()
        .put(&visit("a", "s1"))
        .put(&visit("b", "s1"))
        .commit()
        .await
        .unwrap();
    assert_eq!(seen(), vec![(2, true)]);
    // put_many: atomic in one partition within the limit, else not.
    visits
        .put_many(&[visit("a", "s1"), visit("c", "s1")])
        .await
        .unwrap();
    visits
        .put_many(&[visit("a", "s1"), visit("d", "s2")])
        .await
        .unwrap();
    let four: Vec<Visit> = ["a", "b", "c", "e"].map(|k| visit(k, "s1")).into();
    visits.put_many(&four).await.unwrap();
    // delete_many names keys only: with a partition key field its
    // partitions are unknown to the router, so it is not atomic.
    visits.delete_many(["a", "b"]).await.unwrap();
    assert_eq!(seen(), vec![(2, true), (2, false), (4, false), (2, false)]);
    // Partitioned by the key (no partition key field): one key, one partition.
    let things = router.repo::<Thing>().await.unwrap();
    things.put_many(&[thing("x"), thing("y")]).await.unwrap();
    things.delete_many(["x", "x"]).await.unwrap();
    assert_eq!(seen(), vec![(2, false), (2, true)]);
}

fn thing(id: &str) -> Thing {
    Thing {
        id: id.into(),
        name: "n".into(),
    }
}

#[tokio::test]
async fn a_route_ttl_on_a_store_without_ttl_fails_at_start_up() {
    let e = Router::builder()
        .store(
            "kv",
            limited(Capabilities {
                ttl: false,
                ..Capabilities::all()
            }),
        )
        .route_with(
            "thing",
            EntityConfig {
                store: "kv".into(),
                ttl: Some(ConfigDuration(std::time::Duration::from_secs(60))),
                ..Default::default()
            },
        )
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Unsupported { capability, .. } if capability.starts_with("ttl")),
        "{e}"
    );
    assert!(e.to_string().contains("store `kv`, entity `thing`"), "{e}");
}

#[tokio::test]
async fn per_call_options_the_store_lacks_are_unsupported() {
    let caps = Capabilities {
        ttl: false,
        if_version: false,
        batch_atomic: false,
        filters: FilterCaps {
            prefix: false,
            ..FilterCaps::all()
        },
        ..Capabilities::all()
    };
    let router = Router::builder()
        .store("kv", limited(caps))
        .route("thing", "kv")
        .build()
        .await
        .unwrap();
    let repo = router.repo::<Thing>().await.unwrap();
    let e = repo
        .put_with(
            &thing("a"),
            WriteOptions::new().ttl(std::time::Duration::from_secs(5)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Unsupported { capability, .. } if capability == "ttl"),
        "{e}"
    );
    assert_eq!(repo.get("a").await.unwrap(), None, "nothing written");

    let e = repo
        .put_if(&thing("a"), Precondition::Version(1))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Unsupported { capability, .. } if capability == "precondition if-version(1)"),
        "{e}"
    );

    let e = repo
        .query(Query::new().filter(field("name").prefix("n")))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Unsupported { capability, .. } if capability == "filter prefix"),
        "{e}"
    );
    let e = repo
        .count(field("name").eq("n").and(field("id").prefix("a")))
        .await
        .unwrap_err();
    assert!(matches!(&e, Error::Unsupported { .. }), "{e}");

    let e = repo
        .batch()
        .put(&thing("a"))
        .put(&thing("b"))
        .commit()
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Unsupported { capability, .. } if capability == "atomic batch"),
        "{e}"
    );
    assert_eq!(repo.count(None).await.unwrap(), 0);
    let out = repo
        .batch()
        .put(&thing("a"))
        .put(&thing("b"))
        .non_atomic()
        .commit()
        .await
        .unwrap();
    assert_eq!(out.len(), 2);
}

#[tokio::test]
async fn a_cache_store_without_ttl_is_refused() {
    let cache = polyrouter::config::CacheConfig {
        store: "c".into(),
        ttl: Some(polyrouter::config::ConfigDuration(
            std::time::Duration::from_secs(3600),
        )),
        ..Default::default()
    };
    let e = Router::builder()
        .store("m", limited(Capabilities::all()))
        .store(
            "c",
            limited(Capabilities {
                ttl: false,
                ..Capabilities::all()
            }),
        )
        .route_with(
            "thing",
            polyrouter::config::EntityConfig {
                store: "m".into(),
                cache: Some(cache),
                ..Default::default()
            },
        )
        .build()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    assert!(
        e.to_string().contains("ttl, which a cache store needs"),
        "{e}"
    );
}

#[tokio::test]
async fn an_entity_without_a_route_is_a_config_error() {
    let router = Router::from_toml_str("[stores.m]\nkind = \"memory\"\n")
        .await
        .unwrap();
    let e = router.repo::<Thing>().await.unwrap_err();
    assert!(matches!(e, Error::Config { .. }), "{e}");
    assert!(e.to_string().contains("[entities.thing]"), "{e}");
}

#[tokio::test]
async fn duplicate_store_names_are_rejected() {
    let cfg =
        polyrouter::config::Config::parse("[stores.kv]\nkind = \"memory\"\n", "<string>").unwrap();
    let e = Router::builder()
        .config(cfg)
        .store("kv", limited(Capabilities::all()))
        .build()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("duplicate store name `kv`"), "{e}");
}

#[tokio::test]
async fn key_prefix_on_a_table_store_is_refused() {
    let e = Router::from_toml_str(
        "[stores.m]\nkind = \"memory\"\n[entities.thing]\nstore = \"m\"\nkey_prefix = \"app\"\n",
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, Error::Unsupported { capability, .. } if capability.starts_with("key_prefix")),
        "{e}"
    );
}

#[tokio::test]
async fn two_types_cannot_share_an_entity_name() {
    #[derive(Entity, Serialize, Deserialize)]
    #[entity(name = "thing", key = "id")]
    struct OtherThing {
        id: i64,
    }
    let router =
        Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[entities.thing]\nstore = \"m\"\n")
            .await
            .unwrap();
    router.repo::<Thing>().await.unwrap();
    let e = router.repo::<OtherThing>().await.unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
    router
        .repo::<Thing>()
        .await
        .expect("the first type keeps working");
}
