//! Projections end to end: events from a real outbox (the memory store's),
//! published to a bus (memory always; NATS JetStream and Redis Streams
//! with `--features nats,redis`, on the machine's servers, each test with
//! its own stream / key prefix, removed afterwards), applied by
//! `ProjectionRunner`s.
//!
//! `cargo test --features nats,redis,tantivy --test sync_projection`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use polyrouter::backends::memory::MemoryStore;
use polyrouter::store::{Applied, EntityInfo, OutboxSpec, WriteOp};
use polyrouter::sync::projection::{
    DeadLetters, HandlerProjection, InvalidateProjection, Projection, ProjectionOptions,
    ProjectionRunner, ProjectionStats, ReplicaProjection, StoreDeadLetters,
};
use polyrouter::sync::{Bus, ChangeEvent, MemoryBus, Operation};
use polyrouter::{
    Error, FieldDef, FieldKind, Key, KeyKind, Precondition, Record, Schema, Store, Value,
};
use tokio::sync::watch;

static FIELDS: [FieldDef; 2] = [
    FieldDef::required("id", FieldKind::String),
    FieldDef::required("n", FieldKind::Int),
];
static ITEM: Schema = Schema {
    name: "item",
    key: "id",
    key_kind: KeyKind::Str,
    partition_key: None,
    version: None,
    fields: &FIELDS,
};

static SEQ: AtomicU64 = AtomicU64::new(0);

/// `{pid}_{n}`: unique per test of this run.
fn unique() -> String {
    format!(
        "{}_{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    )
}

/// The buses one test runs on, each with its own names, and how to clean
/// them up.
struct TestBus {
    bus: Arc<dyn Bus>,
    id: String,
    kind: &'static str,
}

impl TestBus {
    fn memory() -> TestBus {
        TestBus {
            bus: Arc::new(MemoryBus::new("events")),
            id: unique(),
            kind: "memory",
        }
    }

    #[cfg(feature = "nats")]
    async fn nats() -> TestBus {
        use polyrouter::config::ConfigDuration;
        use polyrouter::sync::nats::{NatsBus, NatsConfig};
        let id = unique();
        let url = std::env::var("POLYROUTER_TEST_NATS_URL")
            .unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
        let mut c = NatsConfig::new(url);
        c.stream = format!("PRJ_{id}");
        c.subject_prefix = format!("prj.{id}");
        c.max_age = ConfigDuration(Duration::from_secs(3600));
        let bus = NatsBus::open("events", c)
            .await
            .expect("open the NATS bus (is nats-server -js running on 127.0.0.1:4222?)");
        bus.ping()
            .await
            .expect("NATS JetStream at 127.0.0.1:4222 answers");
        TestBus {
            bus: Arc::new(bus),
            id,
            kind: "nats",
        }
    }

    #[cfg(feature = "redis")]
    async fn redis() -> TestBus {
        use polyrouter::sync::redis_streams::{RedisStreamsBus, RedisStreamsConfig};
        let id = unique();
        let url = std::env::var("POLYROUTER_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let c = RedisStreamsConfig::new(url).with_prefix(format!("prj:{id}"));
        let bus = RedisStreamsBus::open("events", c).expect("open the Redis Streams bus");
        bus.ping().await.expect("Redis at 127.0.0.1:6379 answers");
        TestBus {
            bus: Arc::new(bus),
            id,
            kind: "redis-streams",
        }
    }

    async fn clean_up(self) {
        let _ = &self.id;
        match self.kind {
            #[cfg(feature = "nats")]
            "nats" => {
                use polyrouter::sync::nats::{NatsBus, NatsConfig};
                let url = std::env::var("POLYROUTER_TEST_NATS_URL")
                    .unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
                let mut c = NatsConfig::new(url);
                c.stream = format!("PRJ_{}", self.id);
                c.subject_prefix = format!("prj.{}", self.id);
                let bus = NatsBus::open("events", c).await.unwrap();
                bus.delete_stream().await.unwrap();
            }
            #[cfg(feature = "redis")]
            "redis-streams" => {
                use polyrouter::sync::redis_streams::{RedisStreamsBus, RedisStreamsConfig};
                let url = std::env::var("POLYROUTER_TEST_REDIS_URL")
                    .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
                let c = RedisStreamsConfig::new(url).with_prefix(format!("prj:{}", self.id));
                RedisStreamsBus::open("events", c)
                    .unwrap()
                    .delete_all()
                    .await
                    .unwrap();
            }
            _ => {}
        }
    }
}

/// The primary: a memory store whose `item` route has an outbox.
struct Primary {
    store: Arc<MemoryStore>,
    info: EntityInfo,
}

impl Primary {
    fn new() -> Primary {
        Primary {
            store: Arc::new(MemoryStore::new("main")),
            info: EntityInfo {
                store: "main".into(),
                outbox: Some(OutboxSpec::default()),
                ..EntityInfo::new(&ITEM)
            },
        }
    }

    async fn put(&self, key: &str, n: i64) {
        let op = WriteOp::Put {
            record: item(key, n),
            precondition: Precondition::None,
            ttl: None,
        };
        self.store.write(&self.info, vec![op], true).await.unwrap();
    }

    async fn delete(&self, key: &str) {
        let op = WriteOp::Delete {
            key: Key::from(key),
            precondition: Precondition::None,
        };
        self.store.write(&self.info, vec![op], true).await.unwrap();
    }

    /// Every event its outbox holds, removed from it (what a relay does).
    async fn drain(&self) -> Vec<ChangeEvent> {
        let mut out = Vec::new();
        loop {
            let got = self.store.outbox_fetch(&self.info, 1000).await.unwrap();
            if got.is_empty() {
                return out;
            }
            let ids: Vec<String> = got.iter().map(|e| e.id.clone()).collect();
            self.store.outbox_remove(&self.info, &ids).await.unwrap();
            out.extend(got.into_iter().map(|e| e.event));
        }
    }

    /// A history over `keys`: puts, updates, deletes and re-creates.
    async fn history(&self, keys: usize) -> Vec<ChangeEvent> {
        for k in 0..keys {
            let key = format!("k{k:03}");
            self.put(&key, 1).await;
            self.put(&key, 2).await;
            if k % 3 == 0 {
                self.delete(&key).await;
            }
            if k % 6 == 0 {
                self.put(&key, 3).await; // re-created after its delete
            }
        }
        self.drain().await
    }
}

fn item(key: &str, n: i64) -> Record {
    let mut r = Record::new(Key::from(key));
    r.set("id", Value::from(key));
    r.set("n", Value::I64(n));
    r
}

fn replica_info() -> EntityInfo {
    EntityInfo {
        store: "replica".into(),
        ..EntityInfo::new(&ITEM)
    }
}

/// Same key, version and data under a fresh id: what a relay that lost
/// track publishes again after the bus's de-duplication window.
fn copy(e: &ChangeEvent) -> ChangeEvent {
    let mut c = e.clone();
    c.id = uuid::Uuid::new_v4().to_string();
    c
}

/// A deterministic shuffle (no rand dependency needed).
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let j = (seed >> 33) as usize % (i + 1);
        v.swap(i, j);
    }
}

fn options() -> ProjectionOptions {
    ProjectionOptions {
        batch: 25,
        max_attempts: 3,
        retry_delay: Duration::from_millis(20),
        max_retry_delay: Duration::from_millis(100),
        ack_wait: Duration::from_secs(5),
        concurrency: 8,
        ..ProjectionOptions::default()
    }
}

/// A running runner and how to stop it.
struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<polyrouter::Result<()>>,
    stats: Arc<ProjectionStats>,
}

impl Running {
    fn start(
        name: &str,
        projection: Arc<dyn Projection>,
        bus: Arc<dyn Bus>,
        options: ProjectionOptions,
        dead: Arc<dyn DeadLetters>,
    ) -> Running {
        let runner =
            ProjectionRunner::new(name, projection, bus, vec!["item".into()], options, dead);
        let stats = runner.stats();
        let (stop, rx) = watch::channel(false);
        Running {
            stop,
            task: tokio::spawn(runner.run(rx)),
            stats,
        }
    }

    async fn stop(self) -> Arc<ProjectionStats> {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the runner stops on shutdown")
            .unwrap()
            .expect("the runner ends without error");
        self.stats
    }
}

/// Waits until `done` holds, failing after a generous bound (not a
/// timing assertion: it only keeps a broken run from hanging).
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..6000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("gave up waiting for {what}");
}

/// Every key of the primary (tombstones aside) equals the replica's, field
/// by field and version, and the replica holds nothing else.
async fn assert_same(primary: &Primary, replica: &MemoryStore, keys: usize) {
    let info = replica_info();
    for k in 0..keys {
        let key = Key::from(format!("k{k:03}").as_str());
        let want = primary.store.get(&primary.info, &key).await.unwrap();
        let got = replica.get(&info, &key).await.unwrap();
        assert_eq!(got, want, "key {key}");
    }
    let q = polyrouter::store::StoreQuery::default();
    let all_p = primary.store.query(&primary.info, &q).await.unwrap();
    let all_r = replica.query(&info, &q).await.unwrap();
    assert_eq!(all_r, all_p);
}

async fn dead_letters() -> Arc<StoreDeadLetters> {
    Arc::new(
        StoreDeadLetters::open(Arc::new(MemoryStore::new("dl")), "dead_letters")
            .await
            .unwrap(),
    )
}

// ---------------------------------------------------------------- scenarios

/// Puts, updates, deletes and re-creates reach the replica record by
/// record; then the same events again under new ids and shuffled: nothing
/// changes and every one is counted as a duplicate.
async fn replica_follows_the_primary(tb: TestBus) {
    let primary = Primary::new();
    let replica = Arc::new(MemoryStore::new("replica"));
    let events = primary.history(30).await;
    tb.bus.publish(&events).await.unwrap();
    let p = Arc::new(ReplicaProjection::new(
        replica.clone(),
        replica_info(),
        None,
    ));
    let name = format!("replica_{}", tb.id);
    let dead = dead_letters().await;
    let run = Running::start(&name, p.clone(), tb.bus.clone(), options(), dead.clone());
    let stats = run.stats.clone();
    let n = events.len() as u64;
    until("every event applied", || stats.snapshot().applied == n).await;
    assert_same(&primary, &replica, 30).await;

    let mut again: Vec<ChangeEvent> = events.iter().map(copy).collect();
    shuffle(&mut again, 7);
    tb.bus.publish(&again).await.unwrap();
    until("every copy seen", || stats.snapshot().duplicates == n).await;
    let stats = run.stop().await.snapshot();
    assert_eq!(
        (stats.applied, stats.duplicates, stats.dead_lettered),
        (n, n, 0)
    );
    assert!(stats.lag_ms.is_some() && stats.last_event_ms.is_some());
    assert_same(&primary, &replica, 30).await;
    assert!(dead.list(None).await.unwrap().is_empty());
    tb.clean_up().await;
}

/// Shuffled originals mixed with duplicates: the replica still ends equal
/// to the primary; every delivery is either applied or a duplicate.
async fn shuffled_and_duplicated_delivery(tb: TestBus) {
    let primary = Primary::new();
    let replica = Arc::new(MemoryStore::new("replica"));
    let events = primary.history(30).await;
    let mut mixed: Vec<ChangeEvent> = events.iter().chain(events.iter()).map(copy).collect();
    shuffle(&mut mixed, 42);
    tb.bus.publish(&mixed).await.unwrap();
    let p = Arc::new(ReplicaProjection::new(
        replica.clone(),
        replica_info(),
        None,
    ));
    let name = format!("shuffled_{}", tb.id);
    let run = Running::start(&name, p, tb.bus.clone(), options(), dead_letters().await);
    let stats = run.stats.clone();
    let total = mixed.len() as u64;
    until("every delivery settled", || {
        let s = stats.snapshot();
        s.applied + s.duplicates == total
    })
    .await;
    let s = run.stop().await.snapshot();
    assert!(s.duplicates >= events.len() as u64, "{s:?}");
    assert_eq!(s.dead_lettered, 0);
    assert_same(&primary, &replica, 30).await;
    tb.clean_up().await;
}

/// Fails every event of key `k000` for good or for a while, as asked.
struct Flaky {
    inner: ReplicaProjection,
    transient_key: Key,
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl Projection for Flaky {
    async fn apply(&self, event: &ChangeEvent) -> polyrouter::Result<Applied> {
        if event.key == self.transient_key {
            self.calls.fetch_add(1, Ordering::SeqCst);
            return Err(Error::unavailable("view", "item", "the view store is down"));
        }
        self.inner.apply(event).await
    }
}

/// A poison event (data that does not fit the schema) is dead-lettered at
/// once; an event that keeps failing transiently after `max_attempts`;
/// every other key keeps flowing; both dead letters can be listed, and a
/// retry through a working projection applies and removes one.
async fn poison_events_are_dead_lettered(tb: TestBus) {
    let primary = Primary::new();
    let replica = Arc::new(MemoryStore::new("replica"));
    let mut events = primary.history(12).await;
    // k001's first event no longer fits: `n` is text.
    let poison = events
        .iter_mut()
        .find(|e| e.key == Key::from("k001") && e.version == 1)
        .unwrap();
    poison
        .data
        .as_mut()
        .unwrap()
        .insert("n".into(), serde_json::json!("not a number"));
    let poison = poison.clone();
    tb.bus.publish(&events).await.unwrap();
    let flaky = Arc::new(Flaky {
        inner: ReplicaProjection::new(replica.clone(), replica_info(), None),
        transient_key: Key::from("k002"),
        calls: AtomicUsize::new(0),
    });
    let name = format!("poison_{}", tb.id);
    let dead = dead_letters().await;
    let handler = Arc::new(HandlerProjection::shared(flaky.clone()));
    let run = Running::start(&name, handler, tb.bus.clone(), options(), dead.clone());
    let stats = run.stats.clone();
    let k002 = events.iter().filter(|e| e.key == Key::from("k002")).count() as u64;
    let others = events.len() as u64 - 1 - k002;
    until(
        "the other keys applied and both failures dead-lettered",
        || {
            let s = stats.snapshot();
            s.applied == others && s.dead_lettered == 1 + k002
        },
    )
    .await;
    let s = run.stop().await.snapshot();
    // k002's first event fails 3 times; its later ones are held back behind
    // it (their deliveries count as attempts) and fail at least once each.
    assert!(
        s.failures >= 1 + 3 + (k002 - 1) && s.failures <= 1 + 3 * k002,
        "{s:?}"
    );
    let listed = dead.list(Some(&name)).await.unwrap();
    assert_eq!(listed.len() as u64, 1 + k002);
    let p = listed.iter().find(|d| d.event.id == poison.id).unwrap();
    assert_eq!(p.attempts, 1);
    assert!(p.error.contains("field `n`"), "{}", p.error);
    for d in listed.iter().filter(|d| d.event.key == Key::from("k002")) {
        assert_eq!(d.attempts, 3);
        assert!(d.error.contains("the view store is down"), "{}", d.error);
    }
    assert!(dead.list(Some("another")).await.unwrap().is_empty());
    // k002 is missing from the replica; a retry through a working
    // projection applies its last event and removes the dead letter.
    let good = ReplicaProjection::new(replica.clone(), replica_info(), None);
    let last = listed
        .iter()
        .filter(|d| d.event.key == Key::from("k002"))
        .max_by_key(|d| d.event.version)
        .unwrap();
    assert_eq!(dead.retry(&last.id, &good).await.unwrap(), Applied::Applied);
    assert_eq!(dead.list(Some(&name)).await.unwrap().len() as u64, k002);
    let info = replica_info();
    let want = primary
        .store
        .get(&primary.info, &Key::from("k002"))
        .await
        .unwrap();
    assert_eq!(replica.get(&info, &Key::from("k002")).await.unwrap(), want);
    tb.clean_up().await;
}

/// Two members of one group on the same keys, events delivered twice and
/// shuffled, applying concurrently into one replica (concurrent writers of
/// the same key through `apply_versioned`): the replica ends equal.
async fn two_members_of_one_group(tb: TestBus) {
    let primary = Primary::new();
    let replica = Arc::new(MemoryStore::new("replica"));
    for round in 0..5i64 {
        for k in 0..8i64 {
            let key = format!("k{k:03}");
            if (round + k) % 4 == 3 {
                primary.delete(&key).await;
            } else {
                primary.put(&key, round * 10 + k).await;
            }
        }
    }
    let events = primary.drain().await;
    let mut mixed: Vec<ChangeEvent> = events.iter().chain(events.iter()).map(copy).collect();
    shuffle(&mut mixed, 3);
    let name = format!("pair_{}", tb.id);
    let p: Arc<dyn Projection> = Arc::new(ReplicaProjection::new(
        replica.clone(),
        replica_info(),
        None,
    ));
    let dead = dead_letters().await;
    let opts = ProjectionOptions {
        batch: 4,
        ..options()
    };
    // Both members join before anything is published.
    let a = Running::start(&name, p.clone(), tb.bus.clone(), opts.clone(), dead.clone());
    let b = Running::start(&name, p.clone(), tb.bus.clone(), opts, dead.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    for chunk in mixed.chunks(10) {
        tb.bus.publish(chunk).await.unwrap();
    }
    let total = mixed.len() as u64;
    let (sa, sb) = (a.stats.clone(), b.stats.clone());
    until("every delivery settled", || {
        let (x, y) = (sa.snapshot(), sb.snapshot());
        x.applied + x.duplicates + y.applied + y.duplicates >= total
    })
    .await;
    let (x, y) = (a.stop().await.snapshot(), b.stop().await.snapshot());
    assert_eq!(x.dead_lettered + y.dead_lettered, 0);
    assert_same(&primary, &replica, 8).await;
    tb.clean_up().await;
}

// ---------------------------------------------------------------- per bus

macro_rules! on_buses {
    ($($scenario:ident),*) => {
        mod memory_bus {
            use super::*;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $scenario() { super::$scenario(TestBus::memory()).await })*
        }
        #[cfg(feature = "nats")]
        mod nats_bus {
            use super::*;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $scenario() { super::$scenario(TestBus::nats().await).await })*
        }
        #[cfg(feature = "redis")]
        mod redis_streams_bus {
            use super::*;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $scenario() { super::$scenario(TestBus::redis().await).await })*
        }
    };
}

on_buses!(
    replica_follows_the_primary,
    shuffled_and_duplicated_delivery,
    poison_events_are_dead_lettered,
    two_members_of_one_group
);

// ---------------------------------------------------------------- kinds

static CACHE_FIELDS: [FieldDef; 4] = [
    FieldDef::required("key", FieldKind::String),
    FieldDef::nullable("rec", FieldKind::String),
    FieldDef::required("ver", FieldKind::Int),
    FieldDef::required("filled_us", FieldKind::Int),
];
/// The router's cache entry layout (`polyrouter_cache`, string keys).
static CACHE: Schema = Schema {
    name: "polyrouter_cache",
    key: "key",
    key_kind: KeyKind::Str,
    partition_key: None,
    version: None,
    fields: &CACHE_FIELDS,
};

fn entry(key: &str, ver: i64) -> WriteOp {
    let mut r = Record::new(Key::from(key));
    r.set("key", Value::from(key));
    r.set("rec", Value::from("[]"));
    r.set("ver", Value::I64(ver));
    r.set("filled_us", Value::I64(1));
    WriteOp::Put {
        record: r,
        precondition: Precondition::None,
        ttl: None,
    }
}

#[tokio::test]
async fn invalidation_removes_older_entries_and_calls_the_hook() {
    let cache = Arc::new(MemoryStore::new("cache"));
    let info = EntityInfo {
        table: "item__cache".into(),
        tombstone_retention: Duration::ZERO,
        ..EntityInfo::new(&CACHE)
    };
    cache
        .write(&info, vec![entry("a", 1), entry("b", 5)], true)
        .await
        .unwrap();
    let hooked = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let h = hooked.clone();
    let p = InvalidateProjection::new(
        cache.clone(),
        info.clone(),
        Arc::new(move |k: &Key| h.lock().push(k.clone())),
    );
    let put = |k: &str, v| ChangeEvent::new("main", "item", Key::from(k), Operation::Put, v);
    // a's entry holds version 1: the change to 2 removes it
    assert_eq!(p.apply(&put("a", 2)).await.unwrap(), Applied::Applied);
    assert_eq!(cache.get(&info, &Key::from("a")).await.unwrap(), None);
    // b's entry was filled at 5, after the change to 4: it stays
    assert_eq!(
        p.apply(&put("b", 4)).await.unwrap(),
        Applied::Stale { current: 5 }
    );
    assert!(cache.get(&info, &Key::from("b")).await.unwrap().is_some());
    // a delete at 6 removes it; an absent entry is fine
    let del = ChangeEvent::new("main", "item", Key::from("b"), Operation::Delete, 6);
    assert_eq!(p.apply(&del).await.unwrap(), Applied::Applied);
    assert_eq!(cache.get(&info, &Key::from("b")).await.unwrap(), None);
    assert_eq!(p.apply(&put("c", 1)).await.unwrap(), Applied::Applied);
    assert_eq!(
        *hooked.lock(),
        vec![
            Key::from("a"),
            Key::from("b"),
            Key::from("b"),
            Key::from("c")
        ]
    );
}

#[tokio::test]
async fn invalidation_runs_from_the_bus_in_an_ephemeral_group() {
    let cache = Arc::new(MemoryStore::new("cache"));
    let info = EntityInfo {
        table: "item__cache".into(),
        tombstone_retention: Duration::ZERO,
        ..EntityInfo::new(&CACHE)
    };
    let keys: Vec<String> = (0..20).map(|k| format!("k{k:03}")).collect();
    let ops = keys.iter().map(|k| entry(k, 1)).collect();
    cache.write(&info, ops, true).await.unwrap();
    let bus = Arc::new(MemoryBus::new("events"));
    let p = Arc::new(InvalidateProjection::new(
        cache.clone(),
        info.clone(),
        Arc::new(|_: &Key| {}),
    ));
    let opts = ProjectionOptions {
        ephemeral: true,
        start: polyrouter::sync::StartAt::New,
        ..options()
    };
    let run = Running::start("cache_pid", p, bus.clone(), opts, dead_letters().await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let events: Vec<ChangeEvent> = keys
        .iter()
        .map(|k| ChangeEvent::new("main", "item", Key::from(k.as_str()), Operation::Put, 2))
        .collect();
    bus.publish(&events).await.unwrap();
    let stats = run.stats.clone();
    until("every entry invalidated", || stats.snapshot().applied == 20).await;
    run.stop().await;
    for k in &keys {
        assert_eq!(
            cache.get(&info, &Key::from(k.as_str())).await.unwrap(),
            None
        );
    }
    assert_eq!(
        bus.backlog("cache_pid", &["item".into()]).await.unwrap(),
        Some(0)
    );
}

#[tokio::test]
async fn options_that_cannot_work_are_refused_before_any_io() {
    let m = Arc::new(MemoryStore::new("m"));
    let p = Arc::new(ReplicaProjection::new(m.clone(), replica_info(), None));
    let runner = ProjectionRunner::new(
        "p",
        p,
        Arc::new(MemoryBus::new("b")),
        vec!["item".into()],
        ProjectionOptions {
            batch: 0,
            ..ProjectionOptions::default()
        },
        dead_letters().await,
    );
    let (_stop, rx) = watch::channel(false);
    let e = runner.run(rx).await.unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
    assert!(e.to_string().contains("`batch`"), "{e}");
}

#[tokio::test]
async fn a_put_without_after_image_is_applied_from_the_source() {
    let primary = Primary::new();
    let replica = Arc::new(MemoryStore::new("replica"));
    primary.put("a", 1).await;
    primary.put("a", 2).await;
    primary.put("b", 1).await;
    primary.delete("b").await;
    let mut events = primary.drain().await;
    for e in &mut events {
        e.data = None;
    }
    // Without a source, such an event is a permanent error.
    let alone = ReplicaProjection::new(replica.clone(), replica_info(), None);
    let e = alone.apply(&events[0]).await.unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
    let p = ReplicaProjection::new(
        replica.clone(),
        replica_info(),
        Some((primary.store.clone(), primary.info.clone())),
    );
    let mut outcomes = Vec::new();
    for e in &events {
        outcomes.push(p.apply(e).await.unwrap());
    }
    // a@1 reads a@2 from the primary; a@2 is then a duplicate; b@1 is gone
    // from the primary (skipped); b's delete leaves a tombstone.
    assert_eq!(
        outcomes,
        vec![
            Applied::Applied,
            Applied::Stale { current: 2 },
            Applied::Stale { current: 1 },
            Applied::Applied
        ]
    );
    assert_same(&primary, &replica, 0).await;
    let info = replica_info();
    assert_eq!(
        replica
            .get(&info, &Key::from("a"))
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
}

#[tokio::test]
async fn an_event_of_another_entity_or_key_kind_is_permanent() {
    let replica = Arc::new(MemoryStore::new("replica"));
    let p = ReplicaProjection::new(replica, replica_info(), None);
    let other = ChangeEvent::new("main", "order", Key::from("a"), Operation::Delete, 1);
    let e = p.apply(&other).await.unwrap_err();
    assert!(e.to_string().contains("entity `order`"), "{e}");
    let int_key = ChangeEvent::new("main", "item", Key::Int(3), Operation::Delete, 1);
    let e = p.apply(&int_key).await.unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
}

#[tokio::test]
async fn a_panicking_handler_is_dead_lettered_not_fatal() {
    struct Panics;
    #[async_trait::async_trait]
    impl Projection for Panics {
        async fn apply(&self, e: &ChangeEvent) -> polyrouter::Result<Applied> {
            if e.key == Key::from("bad") {
                panic!("handler bug");
            }
            Ok(Applied::Applied)
        }
    }
    let bus = Arc::new(MemoryBus::new("events"));
    let dead = dead_letters().await;
    let run = Running::start(
        "panics",
        Arc::new(HandlerProjection::new(Panics)),
        bus.clone(),
        options(),
        dead.clone(),
    );
    let ev = |k: &str| ChangeEvent::new("main", "item", Key::from(k), Operation::Put, 1);
    bus.publish(&[ev("bad"), ev("good")]).await.unwrap();
    let stats = run.stats.clone();
    until("both settled", || {
        let s = stats.snapshot();
        s.applied == 1 && s.dead_lettered == 1
    })
    .await;
    run.stop().await;
    let listed = dead.list(Some("panics")).await.unwrap();
    assert!(
        listed[0].error.contains("handler bug"),
        "{}",
        listed[0].error
    );
}

#[cfg(feature = "tantivy")]
mod search {
    use super::*;
    use polyrouter::backends::tantivy::{TantivyConfig, TantivyStore};
    use polyrouter::store::search::{SearchIndex, SearchRequest};
    use polyrouter::sync::projection::SearchProjection;

    static DOC_FIELDS: [FieldDef; 3] = [
        FieldDef::required("id", FieldKind::String),
        FieldDef::required("title", FieldKind::String),
        FieldDef::required("n", FieldKind::Int),
    ];
    static DOC: Schema = Schema {
        name: "doc",
        key: "id",
        key_kind: KeyKind::Str,
        partition_key: None,
        version: None,
        fields: &DOC_FIELDS,
    };

    fn doc(key: &str, title: &str) -> WriteOp {
        let mut r = Record::new(Key::from(key));
        r.set("id", Value::from(key));
        r.set("title", Value::from(title));
        r.set("n", Value::I64(1));
        WriteOp::Put {
            record: r,
            precondition: Precondition::None,
            ttl: None,
        }
    }

    async fn hits(s: &TantivyStore, index: &SearchIndex, text: &str) -> Vec<Key> {
        let search = s.as_search().unwrap();
        search.flush(index).await.unwrap();
        let r = search
            .search(index, &SearchRequest::new(text, 10))
            .await
            .unwrap();
        r.hits.into_iter().map(|h| h.key).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn search_documents_follow_the_primary_and_stale_events_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let search =
            Arc::new(TantivyStore::open("search", TantivyConfig::new(dir.path())).unwrap());
        let mut index = SearchIndex::new(&DOC, &["title"]);
        index.store = "search".into();
        search
            .as_search()
            .unwrap()
            .ensure_index(&index)
            .await
            .unwrap();
        let primary = Arc::new(MemoryStore::new("main"));
        let info = EntityInfo {
            store: "main".into(),
            outbox: Some(OutboxSpec::default()),
            ..EntityInfo::new(&DOC)
        };
        let p = SearchProjection::new(search.clone(), index.clone(), primary.clone(), info.clone())
            .unwrap();
        let write = |op| {
            let (primary, info) = (primary.clone(), info.clone());
            async move {
                primary.write(&info, vec![op], true).await.unwrap();
                let got = primary.outbox_fetch(&info, 10).await.unwrap();
                let ids: Vec<String> = got.iter().map(|e| e.id.clone()).collect();
                primary.outbox_remove(&info, &ids).await.unwrap();
                got.into_iter().map(|e| e.event).collect::<Vec<_>>()
            }
        };
        let v1 = write(doc("a", "red shoes")).await.remove(0);
        assert_eq!(p.apply(&v1).await.unwrap(), Applied::Applied);
        assert_eq!(hits(&search, &index, "red").await, vec![Key::from("a")]);
        let v2 = write(doc("a", "blue boots")).await.remove(0);
        // the old event after the new write: skipped, the newer one indexes
        assert_eq!(p.apply(&v1).await.unwrap(), Applied::Stale { current: 2 });
        assert_eq!(p.apply(&v2).await.unwrap(), Applied::Applied);
        assert!(hits(&search, &index, "red").await.is_empty());
        assert_eq!(hits(&search, &index, "blue").await, vec![Key::from("a")]);
        // a put event whose record is gone since: skipped; the delete removes
        let del = write(WriteOp::Delete {
            key: Key::from("a"),
            precondition: Precondition::None,
        })
        .await
        .remove(0);
        assert_eq!(p.apply(&v2).await.unwrap(), Applied::Stale { current: 2 });
        assert_eq!(hits(&search, &index, "blue").await, vec![Key::from("a")]);
        assert_eq!(p.apply(&del).await.unwrap(), Applied::Applied);
        assert!(hits(&search, &index, "blue").await.is_empty());
        // concurrent appliers of the same key's events end on the primary's
        let mut evs = Vec::new();
        for i in 0..10 {
            evs.extend(write(doc("b", &format!("title{i}"))).await);
        }
        let tasks: Vec<_> = evs
            .into_iter()
            .map(|e| {
                let p = p.clone();
                tokio::spawn(async move { p.apply(&e).await.unwrap() })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(hits(&search, &index, "title9").await, vec![Key::from("b")]);
        assert!(hits(&search, &index, "title3").await.is_empty());
    }
}

/// The bus goes away mid-run (a PRIVATE redis-server this test started on
/// a free port, killed by its pid) and comes back on the same data: the
/// runner waits for it, and the replica ends equal to the primary.
#[cfg(feature = "redis")]
mod outage {
    use super::*;
    use polyrouter::config::ConfigDuration;
    use polyrouter::sync::redis_streams::{RedisStreamsBus, RedisStreamsConfig};
    use std::process::{Child, Command, Stdio};

    struct PrivateRedis {
        port: u16,
        dir: tempfile::TempDir,
        child: Option<Child>,
    }

    impl PrivateRedis {
        fn start() -> PrivateRedis {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let mut s = PrivateRedis {
                port,
                dir: tempfile::tempdir().unwrap(),
                child: None,
            };
            s.spawn();
            s
        }

        fn spawn(&mut self) {
            let child = Command::new("redis-server")
                .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                ])
                .arg("--dir")
                .arg(self.dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start a private redis-server (is it installed?)");
            self.child = Some(child);
            for _ in 0..200 {
                if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            panic!("the private redis-server did not listen on {}", self.port);
        }

        /// SIGKILL, by the pid this test started.
        fn kill(&mut self) {
            if let Some(mut c) = self.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    impl Drop for PrivateRedis {
        fn drop(&mut self) {
            self.kill();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_bus_outage_loses_nothing() {
        let mut server = PrivateRedis::start();
        let mut c = RedisStreamsConfig::new(format!("redis://127.0.0.1:{}", server.port))
            .with_prefix("prj");
        c.connect_timeout = ConfigDuration(Duration::from_millis(500));
        c.response_timeout = ConfigDuration(Duration::from_secs(1));
        let bus: Arc<dyn Bus> = Arc::new(RedisStreamsBus::open("events", c).unwrap());
        let primary = Primary::new();
        let replica = Arc::new(MemoryStore::new("replica"));
        let first = primary.history(20).await;
        bus.publish(&first).await.unwrap();
        let p = Arc::new(ReplicaProjection::new(
            replica.clone(),
            replica_info(),
            None,
        ));
        let run = Running::start("outage", p, bus.clone(), options(), dead_letters().await);
        let stats = run.stats.clone();
        let n1 = first.len() as u64;
        until("the first events applied", || {
            stats.snapshot().applied == n1
        })
        .await;

        server.kill();
        // Writes go on while the bus is down (a relay keeps them in its outbox).
        for k in 0..20 {
            primary.put(&format!("k{k:03}"), 100 + k).await;
        }
        primary.delete("k005").await;
        let second = primary.drain().await;
        assert!(
            bus.publish(&second).await.is_err(),
            "publishing to a killed server fails"
        );
        tokio::time::sleep(Duration::from_millis(300)).await; // the runner meets the outage
        server.spawn();
        let mut published = false;
        for _ in 0..200 {
            if bus.publish(&second).await.is_ok() {
                published = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(published, "publishing works again once the server is back");
        let total = n1 + second.len() as u64;
        until("every event applied after the outage", || {
            stats.snapshot().applied == total
        })
        .await;
        let s = run.stop().await.snapshot();
        assert_eq!(s.dead_lettered, 0);
        assert_same(&primary, &replica, 20).await;
    }
}
