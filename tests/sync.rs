//! The relay end to end: writes through an `outbox` route reach the bus,
//! per key in version order, exactly the committed ones; one worker relays
//! an outbox at a time; status is reported to the `[sync]` store.

use std::collections::BTreeMap;
use std::time::Duration;

use polyrouter::sync::{Bus, Delivery, SubscribeOptions, Subscription};
use polyrouter::{Entity, Key, Router};
use serde::{Deserialize, Serialize};

#[derive(Entity, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[entity(name = "order", key = "id")]
struct Order {
    id: String,
    total: i64,
}

fn order(id: &str, total: i64) -> Order {
    Order {
        id: id.into(),
        total,
    }
}

fn config(bus: &str) -> String {
    config_on("kind = \"memory\"", bus)
}

/// `order` on store `primary` (its TOML body) with an outbox to `bus`;
/// sync state in a memory store `main`.
fn config_on(primary: &str, bus: &str) -> String {
    let primary = if primary == "kind = \"memory\"" {
        String::new()
    } else {
        format!("[stores.primary]\n{primary}\n")
    };
    let store = if primary.is_empty() {
        "main"
    } else {
        "primary"
    };
    format!(
        r#"
[stores.main]
kind = "memory"

{primary}
[buses.events]
{bus}

[sync]
store = "main"
relay_batch = 7
relay_interval = "2ms"
status_interval = "20ms"

[entities.order]
store = "{store}"
outbox = {{ bus = "events" }}
"#
    )
}

/// The checking consumer group, created before the writes so that it
/// starts at the first event.
async fn subscribe_check(bus: &dyn Bus) -> Box<dyn Subscription> {
    bus.subscribe("check", &["order".into()], &SubscribeOptions::default())
        .await
        .expect("subscribe")
}

/// Every delivery until `want` arrived (or 10 s passed), acknowledged.
async fn drain(mut sub: Box<dyn Subscription>, want: usize) -> Vec<Delivery> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.len() < want && tokio::time::Instant::now() < deadline {
        let batch = sub
            .fetch(64, Duration::from_millis(50))
            .await
            .expect("fetch");
        let tags: Vec<_> = batch.iter().map(|d| d.tag.clone()).collect();
        if !tags.is_empty() {
            sub.ack(&tags).await.expect("ack");
        }
        got.extend(batch);
    }
    got
}

/// How many events `write_load`'s writes recorded: one per acknowledged
/// write (a delete that found the key already gone changed nothing and
/// records none, so the count depends on the interleaving).
fn events(written: &BTreeMap<String, Vec<u64>>) -> usize {
    written.values().map(Vec::len).sum()
}

/// Writes from four concurrent writers over a few hot keys; returns the
/// acknowledged versions per key.
async fn write_load(router: &Router) -> BTreeMap<String, Vec<u64>> {
    let orders = router.repo::<Order>().await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..4i64 {
        let orders = orders.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..25i64 {
                let id = format!("o-{}", (w + i) % 5);
                if i % 9 == 8 {
                    if orders.delete(id.as_str()).await.unwrap() {
                        // A delete's version is not returned; the event carries it.
                        acked.push((id, 0));
                    }
                } else {
                    let v = orders.put(&order(&id, w * 100 + i)).await.unwrap();
                    acked.push((id, v));
                }
            }
            acked
        }));
    }
    let mut by_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for t in tasks {
        for (id, v) in t.await.unwrap() {
            by_key.entry(id).or_default().push(v);
        }
    }
    by_key
}

/// `check_deliveries`, and the last event of each key is what the store holds.
async fn check_against_store(
    got: &[Delivery],
    written: &BTreeMap<String, Vec<u64>>,
    router: &Router,
) {
    check_deliveries(got, written);
    let orders = router.repo::<Order>().await.unwrap();
    for k in written.keys() {
        let last = got
            .iter()
            .rfind(|d| d.event.key == Key::from(k.as_str()))
            .unwrap();
        let stored = orders.get(k.as_str()).await.unwrap();
        match last.event.data.as_ref() {
            Some(data) => assert_eq!(stored.unwrap().total, data["total"].as_i64().unwrap()),
            None => assert!(stored.is_none(), "key {k}: deleted last"),
        }
    }
}

fn check_deliveries(got: &[Delivery], written: &BTreeMap<String, Vec<u64>>) {
    let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for d in got {
        let Key::Str(k) = &d.event.key else {
            panic!("string keys only")
        };
        seen.entry(k.clone()).or_default().push(d.event.version);
    }
    for (k, acked) in written {
        let versions = &seen[k];
        let mut sorted = versions.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(&sorted, versions, "key {k}: in version order, once each");
        // Every acknowledged put's version is among the events; deletes
        // fill the gaps, so a key's events are exactly 1..=last.
        for v in acked.iter().filter(|v| **v > 0) {
            assert!(versions.contains(v), "key {k}: version {v} missing");
        }
        assert_eq!(
            versions,
            &(1..=versions.len() as u64).collect::<Vec<_>>(),
            "key {k}: no version skipped"
        );
        assert_eq!(versions.len(), acked.len(), "key {k}: one event per write");
    }
}

/// Deletes every Redis key under a prefix when dropped, even after a panic.
#[cfg(feature = "redis")]
struct RedisCleanup(String);

#[cfg(feature = "redis")]
impl Drop for RedisCleanup {
    fn drop(&mut self) {
        let Ok(mut conn) =
            redis::Client::open("redis://127.0.0.1:6379").and_then(|c| c.get_connection())
        else {
            return;
        };
        let keys: Vec<Vec<u8>> = match redis::cmd("SCAN")
            .cursor_arg(0)
            .arg("MATCH")
            .arg(format!("{}[:#]*", self.0))
            .arg("COUNT")
            .arg(1000)
            .clone()
            .iter(&mut conn)
        {
            Ok(iter) => iter.filter_map(|k| k.ok()).collect(),
            Err(_) => return,
        };
        for chunk in keys.chunks(500) {
            let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(chunk).query(&mut conn);
        }
    }
}

/// The relay from a Redis outbox (a stream the write script appends to).
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relay_moves_every_committed_write_in_order_redis_store() {
    let prefix = format!("polyrouter-redis-sync-{}", std::process::id());
    let _guard = RedisCleanup(prefix.clone());
    let store =
        format!("kind = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\nkey_prefix = \"{prefix}\"");
    let router = Router::from_toml_str(&config_on(&store, "kind = \"memory\""))
        .await
        .expect("the machine's Redis at 127.0.0.1:6379");
    let bus = router.bus("events").unwrap();
    let check = subscribe_check(bus.as_ref()).await;
    let sync = router.sync().await.unwrap();
    let written = write_load(&router).await;
    sync.settle(Duration::from_secs(10)).await.unwrap();
    let got = drain(check, events(&written)).await;
    check_against_store(&got, &written, &router).await;
    assert_eq!(sync.status().relays[0].relayed, got.len() as u64);
    sync.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relay_moves_every_committed_write_in_order_memory_bus() {
    let router = Router::from_toml_str(&config("kind = \"memory\""))
        .await
        .unwrap();
    let bus = router.bus("events").unwrap();
    // The group exists before the writes, so it starts at the first event.
    let check = subscribe_check(bus.as_ref()).await;
    let sync = router.sync().await.unwrap();
    let written = write_load(&router).await;
    sync.settle(Duration::from_secs(10)).await.unwrap();
    let got = drain(check, events(&written)).await;
    check_against_store(&got, &written, &router).await;
    let status = sync.status();
    assert_eq!(status.relays.len(), 1);
    assert_eq!(status.relays[0].relayed, got.len() as u64);
    assert_eq!(status.relays[0].backlog, 0);
    // The worker's status row is in the [sync] store for `sync status`.
    tokio::time::sleep(Duration::from_millis(60)).await;
    let rows = polyrouter::sync::worker_statuses(&router).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0.relays[0].relayed, got.len() as u64);
    sync.shutdown().await.unwrap();
    assert!(
        polyrouter::sync::worker_statuses(&router)
            .await
            .unwrap()
            .is_empty(),
        "a stopped worker removes its status row"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_worker_relays_an_outbox_at_a_time() {
    let router = Router::from_toml_str(&config("kind = \"memory\""))
        .await
        .unwrap();
    let bus = router.bus("events").unwrap();
    let check = subscribe_check(bus.as_ref()).await;
    let a = router.sync_builder().worker("a").start().await.unwrap();
    let b = router.sync_builder().worker("b").start().await.unwrap();
    let written = write_load(&router).await;
    a.settle(Duration::from_secs(10)).await.unwrap();
    let got = drain(check, events(&written)).await;
    check_deliveries(&got, &written);
    let (ra, rb) = (a.status().relays[0].relayed, b.status().relays[0].relayed);
    assert_eq!(ra + rb, got.len() as u64);
    assert!(ra == 0 || rb == 0, "both relayed: a {ra}, b {rb}");
    // The holder stops gracefully and releases its lease: the other takes over.
    let (holder, other) = if ra > 0 { (a, b) } else { (b, a) };
    assert!(
        holder.status().relays[0].leased,
        "the relaying worker says it holds the lease"
    );
    assert!(
        !other.status().relays[0].leased,
        "the waiting worker says it does not"
    );
    holder.shutdown().await.unwrap();
    let orders = router.repo::<Order>().await.unwrap();
    orders.put(&order("late", 1)).await.unwrap();
    other.settle(Duration::from_secs(10)).await.unwrap();
    assert_eq!(other.status().relays[0].relayed, 1);
    assert!(other.status().relays[0].leased);
    other.shutdown().await.unwrap();
}

/// The `[sync]` store down: once the relay's lease has expired, the worker
/// says it does not hold it and why, and relays nothing; the store back,
/// it takes the lease again and the waiting events move.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_that_cannot_renew_its_lease_says_so_and_resumes() {
    use polyrouter::backends::memory::MemoryStore;
    use polyrouter::layers::testing::Faults;
    use std::sync::Arc;
    // The same routes, with the `[sync]` store made in code behind a
    // fault switch and a short lease.
    let mut cfg =
        polyrouter::config::Config::parse(&config("kind = \"memory\""), "<test>").unwrap();
    let mut sync_cfg = cfg.sync.take().expect("[sync]");
    sync_cfg.store = "state".into();
    sync_cfg.lease = polyrouter::config::ConfigDuration(Duration::from_millis(200));
    cfg.sync = Some(sync_cfg);
    let state = Arc::new(Faults::new(MemoryStore::new("state")));
    let router = Router::builder()
        .config(cfg)
        .store("state", state.clone())
        .build()
        .await
        .unwrap();
    let check = subscribe_check(router.bus("events").unwrap().as_ref()).await;
    let sync = router.sync().await.unwrap();
    let orders = router.repo::<Order>().await.unwrap();
    orders.put(&order("before", 1)).await.unwrap();
    sync.settle(Duration::from_secs(10)).await.unwrap();
    assert!(sync.status().relays[0].leased);

    state.set_down(true);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        let r = sync.status().relays[0].clone();
        if !r.leased {
            break r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still leased: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let error = status.last_error.unwrap_or_default();
    assert!(error.contains("lease"), "{error}");
    // Without the lease nothing is relayed.
    let relayed = sync.status().relays[0].relayed;
    orders.put(&order("during", 2)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sync.status().relays[0].relayed, relayed);

    state.set_down(false);
    sync.settle(Duration::from_secs(10)).await.unwrap();
    let r = sync.status().relays[0].clone();
    assert!(r.leased, "{r:?}");
    assert_eq!(r.relayed, relayed + 1);
    assert_eq!(r.last_error, None);
    let got = drain(check, 2).await;
    let keys: Vec<&Key> = got.iter().map(|d| &d.event.key).collect();
    assert_eq!(keys, [&Key::from("before"), &Key::from("during")]);
    sync.shutdown().await.unwrap();
}

#[tokio::test]
async fn sync_needs_its_store_and_checks_projections() {
    let no_sync = config("kind = \"memory\"").replace("[sync]\nstore = \"main\"\nrelay_batch = 7\nrelay_interval = \"2ms\"\nstatus_interval = \"20ms\"\n", "");
    let router = Router::from_toml_str(&no_sync).await.unwrap();
    let e = router.sync().await.unwrap_err().to_string();
    assert!(e.contains("[sync] store"), "{e}");

    let bad = format!(
        "{}\n[projections.copy]\nkind = \"replica\"\nentities = [\"order\"]\n",
        config("kind = \"memory\"")
    );
    let e = Router::from_toml_str(&bad).await.unwrap_err().to_string();
    assert!(e.contains("projections.copy.store"), "{e}");
    assert!(e.contains("read_from"), "{e}");

    let unknown_bus = config("kind = \"memory\"").replace(
        "outbox = { bus = \"events\" }",
        "outbox = { bus = \"nope\" }",
    );
    let e = Router::from_toml_str(&unknown_bus)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("bus `nope` is not defined"), "{e}");
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relay_moves_every_committed_write_in_order_nats() {
    let url = std::env::var("POLYROUTER_TEST_NATS_URL")
        .unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let stream = format!("PRT_{}_relay", std::process::id());
    let bus_toml = format!(
        "kind = \"nats\"\nurl = \"{url}\"\nstream = \"{stream}\"\nsubject_prefix = \"prt{}relay\"\n",
        std::process::id()
    );
    let router = Router::from_toml_str(&config(&bus_toml)).await.unwrap();
    let bus = router.bus("events").unwrap();
    let sync = router.sync().await.unwrap();
    let written = write_load(&router).await;
    sync.settle(Duration::from_secs(20)).await.unwrap();
    // A new group starts at the oldest event the stream holds.
    let got = drain(subscribe_check(bus.as_ref()).await, events(&written)).await;
    check_deliveries(&got, &written);
    sync.shutdown().await.unwrap();
    let client = async_nats::connect(url).await.unwrap();
    async_nats::jetstream::new(client)
        .delete_stream(&stream)
        .await
        .unwrap();
}

/// `config` plus a replica store filled by a replica projection, a cache
/// with an invalidation projection, and a handler projection.
fn projected_config() -> String {
    config("kind = \"memory\"").replace(
        "[entities.order]\nstore = \"main\"\n",
        "[stores.replica]\nkind = \"memory\"\n\n[stores.cache]\nkind = \"memory\"\n\n[entities.order]\nstore = \"main\"\ncache = { store = \"cache\", ttl = \"1h\" }\n",
    ) + r#"
[projections.order_replica]
kind = "replica"
entities = ["order"]
store = "replica"

[projections.order_cache]
kind = "invalidate"
entities = ["order"]

[projections.order_count]
kind = "handler"
entities = ["order"]
"#
}

/// A handler keeping the last version it saw per key (idempotent by version).
#[derive(Default, Clone)]
struct LastVersion(std::sync::Arc<parking_lot::Mutex<BTreeMap<String, u64>>>);

#[async_trait::async_trait]
impl polyrouter::sync::projection::Projection for LastVersion {
    async fn apply(
        &self,
        event: &polyrouter::sync::ChangeEvent,
    ) -> polyrouter::Result<polyrouter::store::Applied> {
        let Key::Str(k) = &event.key else {
            unreachable!()
        };
        let mut m = self.0.lock();
        let current = m.get(k).copied().unwrap_or(0);
        if event.version <= current {
            return Ok(polyrouter::store::Applied::Stale { current });
        }
        m.insert(k.clone(), event.version);
        Ok(polyrouter::store::Applied::Applied)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn projections_keep_replica_cache_and_handler_true() {
    let router = Router::from_toml_str(&projected_config()).await.unwrap();
    let orders = router.repo::<Order>().await.unwrap();
    // A cached read before the writes: the invalidation must remove it.
    orders.put(&order("o-0", -1)).await.unwrap();
    let _ = orders.get("o-0").await.unwrap();
    let handler = LastVersion::default();
    let sync = router
        .sync_builder()
        .handler("order_count", handler.clone())
        .start()
        .await
        .unwrap();
    let written = write_load(&router).await;
    sync.settle(Duration::from_secs(20)).await.unwrap();

    // Replica equals primary row by row, versions included; deleted keys gone.
    let main = router.store("main").unwrap();
    let replica = router.store("replica").unwrap();
    let info = polyrouter::store::EntityInfo {
        store: "main".into(),
        ..polyrouter::store::EntityInfo::new(Order::schema())
    };
    for k in written.keys().chain(std::iter::once(&"o-0".to_string())) {
        let key = Key::from(k.as_str());
        let p = main.get(&info, &key).await.unwrap();
        let r = replica.get(&info, &key).await.unwrap();
        assert_eq!(p, r, "key {k}");
    }
    // The handler saw the last version of every key.
    for k in written.keys() {
        let key = Key::from(k.as_str());
        let last = main.get(&info, &key).await.unwrap().map(|r| r.version);
        let seen = handler.0.lock().get(k).copied();
        if let Some(v) = last {
            assert_eq!(seen, Some(v), "key {k}");
        }
    }
    // The cache answers what the primary holds.
    for k in written.keys() {
        assert_eq!(
            orders.get(k.as_str()).await.unwrap(),
            {
                let p = main.get(&info, &Key::from(k.as_str())).await.unwrap();
                p.map(|r| r.into_entity::<Order>().unwrap())
            },
            "key {k}"
        );
    }
    // A write the router's own cache-aside does not see (here: straight to
    // the store, as another process's write racing a fill would be): only
    // the invalidation projection removes the stale cache entry.
    assert_eq!(
        orders.get("o-0").await.unwrap().map(|o| o.id),
        Some("o-0".into())
    );
    let cached_before = orders.get("o-0").await.unwrap().unwrap();
    let outboxed = polyrouter::store::EntityInfo {
        outbox: Some(Default::default()),
        ..info.clone()
    };
    let behind_its_back = polyrouter::Record::from_entity(&order("o-0", 4242)).unwrap();
    main.write(
        &outboxed,
        vec![polyrouter::store::WriteOp::Put {
            record: behind_its_back,
            precondition: polyrouter::Precondition::None,
            ttl: None,
        }],
        true,
    )
    .await
    .unwrap();
    sync.settle(Duration::from_secs(20)).await.unwrap();
    let now = orders.get("o-0").await.unwrap().unwrap();
    assert_ne!(now, cached_before);
    assert_eq!(
        now.total, 4242,
        "the cache entry was invalidated by the event"
    );

    let status = sync.status();
    let by_name: BTreeMap<_, _> = status
        .projections
        .iter()
        .map(|p| (p.projection.clone(), p.clone()))
        .collect();
    let replica_status = &by_name["order_replica"];
    // One event per write that changed something (a delete that found the
    // key gone records none), plus the first put and the one behind the
    // router's back.
    assert_eq!(
        replica_status.applied + replica_status.duplicates,
        events(&written) as u64 + 2,
        "{replica_status:?}"
    );
    assert_eq!(replica_status.dead_lettered, 0);
    sync.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bounded_staleness_trusts_a_projected_replica_only_within_its_watermark() {
    use polyrouter::config::{ConfigDuration, Consistency};
    use polyrouter::router::{ReadOptions, ReadSource};
    let cfg = config("kind = \"memory\"").replace(
        "[entities.order]\nstore = \"main\"\n",
        "[stores.replica]\nkind = \"memory\"\n\n[entities.order]\nstore = \"main\"\nread_from = \"replica\"\n",
    ) + "\n[projections.order_replica]\nkind = \"replica\"\nentities = [\"order\"]\n";
    let router = Router::from_toml_str(&cfg).await.unwrap();
    let orders = router.repo::<Order>().await.unwrap();
    let bounded = |ms: u64| ReadOptions {
        consistency: Some(Consistency::BoundedStaleness(ConfigDuration(
            Duration::from_millis(ms),
        ))),
        ..ReadOptions::new()
    };
    let sync = router.sync().await.unwrap();
    orders.put(&order("w", 1)).await.unwrap();
    sync.settle(Duration::from_secs(10)).await.unwrap();
    // The watermark task runs every 20 ms: wait until the replica answers.
    let mut served = None;
    for _ in 0..200 {
        let r = orders.get_with("w", bounded(60_000)).await.unwrap();
        if r.meta.source == ReadSource::Replica {
            served = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let served = served.expect("a caught-up projected replica answers bounded reads");
    assert_eq!(served.value.unwrap().total, 1);

    // Sync stops; a write goes to the primary and its outbox only.
    sync.shutdown().await.unwrap();
    orders.put(&order("w", 2)).await.unwrap();
    // Within a generous bound the replica may answer (its copy is older
    // than the write, and that is what the bound allows) …
    let r = orders.get_with("w", bounded(60_000)).await.unwrap();
    assert_eq!(r.meta.source, ReadSource::Replica);
    assert_eq!(r.value.unwrap().total, 1);
    // … but once the watermark is older than the bound, the primary answers.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = orders.get_with("w", bounded(200)).await.unwrap();
    assert_eq!(r.meta.source, ReadSource::Primary);
    assert_eq!(r.value.unwrap().total, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_started_before_the_entity_was_ever_prepared_waits_for_writes() {
    // `polyrouter sync` may start before the application created its
    // tables: the relay's first rounds meet no outbox table at all.
    let dir = tempfile::tempdir().unwrap();
    let cfg = config("kind = \"memory\"").replace(
        "[stores.main]\nkind = \"memory\"\n",
        &format!(
            "[stores.main]\nkind = \"sqlite\"\nurl = \"sqlite://{}/main.db\"\n",
            dir.path().display()
        ),
    );
    let worker = Router::from_toml_str(&cfg).await.unwrap();
    let sync = worker.sync().await.unwrap();
    sync.settle(Duration::from_secs(10)).await.unwrap();
    assert_eq!(sync.status().relays[0].backlog, 0);
    // The application, another router on the same file, writes.
    let app = Router::from_toml_str(&cfg).await.unwrap();
    let orders = app.repo::<Order>().await.unwrap();
    orders.put(&order("first", 1)).await.unwrap();
    sync.settle(Duration::from_secs(10)).await.unwrap();
    assert_eq!(sync.status().relays[0].relayed, 1);
    assert_eq!(sync.status().relays[0].failures, 0);
    sync.shutdown().await.unwrap();
}
