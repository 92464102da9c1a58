//! What the end-to-end tests share: the entity, per-test names on the
//! shared servers (removed at the end, even when the test fails), the
//! configuration, the writers and the replica-equals-primary check.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use polyrouter::store::EntityInfo;
use polyrouter::sync::WorkerStatus;
use polyrouter::sync::projection::{DeadLetters, StoreDeadLetters};
use polyrouter::{Entity, Key, Repo, Router};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

pub const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";
pub const NATS_URL: &str = "nats://127.0.0.1:4222";
/// The route's table, in the primary and the replica.
pub const TABLE: &str = "items";
/// The replica projection's name (its consumer group).
pub const PROJECTION: &str = "item_replica";

#[derive(Entity, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[entity(name = "item", key = "id")]
pub struct Item {
    pub id: String,
    pub n: i64,
    pub w: i64,
}

pub fn item(id: &str, n: i64, w: i64) -> Item {
    Item {
        id: id.into(),
        n,
        w,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusKind {
    Memory,
    Nats,
    RedisStreams,
}

impl BusKind {
    pub fn name(self) -> &'static str {
        match self {
            BusKind::Memory => "memory",
            BusKind::Nats => "nats",
            BusKind::RedisStreams => "redis_streams",
        }
    }
}

/// Where the primary and the replica live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stores {
    /// PostgreSQL primary (own schema), Redis replica (own key prefix).
    Servers,
    /// Both in memory (in-process tests).
    Memory,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// One test's names on the shared servers; dropping it removes them.
pub struct Env {
    pub bus: BusKind,
    /// `{pid}_{millis}_{n}`.
    pub id: String,
    /// A private bus server's URL instead of the shared one.
    pub bus_url: Option<String>,
}

impl Env {
    pub fn new(bus: BusKind, bus_url: Option<String>) -> Env {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            % 1_000_000;
        Env {
            bus,
            id: format!(
                "{}_{ms}_{}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::SeqCst)
            ),
            bus_url,
        }
    }

    pub fn schema(&self) -> String {
        format!("pr_e2e_{}", self.id)
    }

    /// `PRT_{pid}_…`: tests/bus removes what a crashed run left.
    fn stream(&self) -> String {
        format!("PRT_{}", self.id)
    }

    /// `prt:{pid}:…`: tests/bus removes what a crashed run left.
    fn redis_prefix(&self) -> String {
        format!("prt:{}", self.id.replace('_', ":"))
    }

    fn bus_toml(&self) -> String {
        match self.bus {
            BusKind::Memory => "kind = \"memory\"\n".into(),
            BusKind::Nats => format!(
                "kind = \"nats\"\nurl = \"{}\"\nstream = \"{}\"\nsubject_prefix = \"prt{}\"\nconnect_timeout = \"500ms\"\nrequest_timeout = \"2s\"\n",
                self.bus_url.as_deref().unwrap_or(NATS_URL),
                self.stream(),
                self.id.replace('_', "x"),
            ),
            BusKind::RedisStreams => format!(
                "kind = \"redis-streams\"\nurl = \"{}\"\nprefix = \"{}:bus\"\nconnect_timeout = \"500ms\"\nresponse_timeout = \"2s\"\n",
                self.bus_url.as_deref().unwrap_or(REDIS_URL),
                self.redis_prefix(),
            ),
        }
    }

    /// The router configuration: `item` on `main` with an outbox to bus
    /// `events`, and the replica projection into `replica`.
    pub fn config(&self, stores: Stores) -> String {
        let store_toml = match stores {
            Stores::Servers => format!(
                "[stores.main]\nkind = \"postgres\"\nurl = \"{PG_URL}\"\nschema = \"{}\"\nmax_connections = 8\n\n[stores.replica]\nkind = \"redis\"\nurl = \"{REDIS_URL}\"\nkey_prefix = \"{}:replica\"\n",
                self.schema(),
                self.redis_prefix()
            ),
            Stores::Memory => {
                "[stores.main]\nkind = \"memory\"\n\n[stores.replica]\nkind = \"memory\"\n".into()
            }
        };
        format!(
            r#"{store_toml}
[buses.events]
{bus}
[sync]
store = "main"
relay_batch = 128
relay_interval = "5ms"
lease = "300ms"
status_interval = "100ms"

[entities.item]
store = "main"
table = "{TABLE}"
outbox = {{ bus = "events", after_image = true }}

[projections.{PROJECTION}]
kind = "replica"
entities = ["item"]
store = "replica"
ack_wait = "1s"
retry_delay = "20ms"
batch = 128
"#,
            bus = self.bus_toml()
        )
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let (schema, stream, prefix) = (self.schema(), self.stream(), self.redis_prefix());
        let nats = self.bus == BusKind::Nats && self.bus_url.is_none();
        // Its own thread and runtime: Drop may run inside the test's runtime.
        let res = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?
                .block_on(clean_up(schema, nats.then_some(stream), prefix))
        })
        .join();
        if let Ok(Err(e)) = res {
            eprintln!("clean-up of {} failed: {e}", self.id);
        }
    }
}

async fn clean_up(schema: String, stream: Option<String>, prefix: String) -> Result<(), String> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(PG_URL)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .execute(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(stream) = stream {
        let client = async_nats::connect(NATS_URL)
            .await
            .map_err(|e| e.to_string())?;
        let _ = async_nats::jetstream::new(client)
            .delete_stream(&stream)
            .await;
    }
    let client = redis::Client::open(REDIS_URL).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        if !keys.is_empty() {
            redis::cmd("DEL")
                .arg(&keys)
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// Four writers over `keys` hot keys: puts, updates, deletes and
/// re-creates, until stopped. Every write must succeed.
pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<u64>>,
}

impl Load {
    pub fn start(items: Repo<Item>, keys: usize, pause: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..4i64)
            .map(|w| {
                let (items, stop) = (items.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut rng =
                        fastrand::Rng::with_seed(w as u64 * 7919 + std::process::id() as u64);
                    let mut ops = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let k = format!("k{}", rng.usize(..keys));
                        if rng.u8(..10) < 2 {
                            items
                                .delete(k.as_str())
                                .await
                                .unwrap_or_else(|e| panic!("writer {w}: delete {k}: {e}"));
                        } else {
                            items
                                .put(&item(&k, rng.i64(..), w))
                                .await
                                .unwrap_or_else(|e| panic!("writer {w}: put {k}: {e}"));
                        }
                        ops += 1;
                        tokio::time::sleep(pause).await;
                    }
                    ops
                })
            })
            .collect();
        Load { stop, tasks }
    }

    /// Stops the writers; the number of writes (every one succeeded).
    pub async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let mut n = 0;
        for t in self.tasks {
            n += t.await.expect("a writer failed");
        }
        n
    }
}

/// After the load: `k0` deleted, `k1` deleted and re-created, so the check
/// sees both an absent key and a re-created one.
pub async fn delete_and_recreate(items: &Repo<Item>) {
    items.put(&item("k0", 1, 9)).await.unwrap();
    assert!(items.delete("k0").await.unwrap());
    items.put(&item("k1", 1, 9)).await.unwrap();
    assert!(items.delete("k1").await.unwrap());
    items.put(&item("k1", 2, 9)).await.unwrap();
}

fn info(store: &str) -> EntityInfo {
    EntityInfo {
        store: store.into(),
        table: TABLE.into(),
        ..EntityInfo::new(Item::schema())
    }
}

/// Every key: the replica's row equals the primary's (fields and version),
/// a key absent in the primary is absent in the replica. Returns (live,
/// absent) counts.
pub async fn assert_replica_equals_primary(router: &Router, keys: &[String]) -> (usize, usize) {
    let main = router.store("main").unwrap();
    let replica = router.store("replica").unwrap();
    let (pi, ri) = (info("main"), info("replica"));
    let (mut live, mut absent) = (0, 0);
    for k in keys {
        let key = Key::from(k.as_str());
        let p = main.get(&pi, &key).await.unwrap();
        let r = replica.get(&ri, &key).await.unwrap();
        assert_eq!(
            p, r,
            "key {k}: the replica row (fields and version) is the primary's"
        );
        if p.is_some() {
            live += 1;
        } else {
            absent += 1;
        }
    }
    (live, absent)
}

pub fn hot_keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("k{i}")).collect()
}

/// No event went to the dead letters (in the `[sync]` store, from any
/// worker that ran), and this worker dead-lettered none.
pub async fn assert_no_dead_letters(router: &Router, status: &WorkerStatus) {
    for p in &status.projections {
        assert_eq!(p.dead_lettered, 0, "{p:?}");
    }
    let dl = StoreDeadLetters::open(
        router.store("main").unwrap().clone(),
        "polyrouter_sync_dead_letters",
    )
    .await
    .unwrap();
    let letters = dl.list(None).await.unwrap();
    assert!(letters.is_empty(), "dead letters: {letters:?}");
}

/// The replica projection's figures in `status`.
pub fn replica_status(status: &WorkerStatus) -> polyrouter::sync::projection::ProjectionStatus {
    status
        .projections
        .iter()
        .find(|p| p.projection == PROJECTION)
        .cloned()
        .expect("the replica projection runs")
}
