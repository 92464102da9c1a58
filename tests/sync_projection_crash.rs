//! A projection worker killed with SIGKILL 20 times at random moments while
//! events keep arriving, then a last worker catches up: the view (SQLite,
//! written by a handler that is idempotent by version) equals the last
//! event of every key, and nothing was dead-lettered.
//!
//! The bus is the machine's Redis (Redis Streams, durable groups, a key
//! prefix of this run's own, removed afterwards); the workers are this test
//! binary re-executed with `PROJ_CHILD` set, killed by their pid.
//!
//! `cargo test --features redis --test sync_projection_crash`

#[path = "support/crash_main.rs"]
mod crash_main;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use polyrouter::backends::sqlite::{SqliteConfig, SqliteStore};
use polyrouter::store::{Applied, EntityInfo, WriteOp};
use polyrouter::sync::projection::{
    HandlerProjection, Projection, ProjectionOptions, ProjectionRunner, StoreDeadLetters,
};
use polyrouter::sync::redis_streams::{RedisStreamsBus, RedisStreamsConfig};
use polyrouter::sync::{Bus, ChangeEvent, Operation};
use polyrouter::{
    Error, FieldDef, FieldKind, Key, KeyKind, Precondition, Record, Schema, Store, Value,
};

const GROUP: &str = "view";
const KEYS: usize = 40;
const EVENTS: usize = 3000;
const KILLS: usize = 20;

static SOURCE_FIELDS: [FieldDef; 2] = [
    FieldDef::required("id", FieldKind::String),
    FieldDef::required("n", FieldKind::Int),
];
static ITEM: Schema = Schema {
    name: "item",
    key: "id",
    key_kind: KeyKind::Str,
    partition_key: None,
    version: None,
    fields: &SOURCE_FIELDS,
};

static VIEW_FIELDS: [FieldDef; 4] = [
    FieldDef::required("id", FieldKind::String),
    FieldDef::nullable("n", FieldKind::Int),
    FieldDef::required("src_version", FieldKind::Int),
    FieldDef::required("deleted", FieldKind::Bool),
];
static VIEW: Schema = Schema {
    name: "item_view",
    key: "id",
    key_kind: KeyKind::Str,
    partition_key: None,
    version: None,
    fields: &VIEW_FIELDS,
};

fn redis_url() -> String {
    std::env::var("POLYROUTER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn bus(prefix: &str) -> RedisStreamsBus {
    RedisStreamsBus::open(
        "events",
        RedisStreamsConfig::new(redis_url()).with_prefix(prefix),
    )
    .expect("open the Redis Streams bus")
}

async fn view_store(db: &str) -> (Arc<SqliteStore>, EntityInfo) {
    let store = SqliteStore::connect("view", SqliteConfig::new(format!("sqlite://{db}")))
        .await
        .expect("open the SQLite view");
    let info = EntityInfo {
        store: "view".into(),
        ..EntityInfo::new(&VIEW)
    };
    store.ensure_entity(&info).await.unwrap();
    (Arc::new(store), info)
}

/// The view handler: one row per key holding the source version it shows,
/// written with an if-version (or if-absent) precondition only when the
/// event is newer — the pattern docs/sync.md asks of handlers.
struct View {
    store: Arc<SqliteStore>,
    info: EntityInfo,
}

#[async_trait::async_trait]
impl Projection for View {
    async fn apply(&self, event: &ChangeEvent) -> polyrouter::Result<Applied> {
        loop {
            let current = self.store.get(&self.info, &event.key).await?;
            let shown = current
                .as_ref()
                .map_or(0, |r| match r.value("src_version") {
                    Value::I64(v) => *v as u64,
                    _ => 0,
                });
            if shown >= event.version {
                return Ok(Applied::Stale { current: shown });
            }
            let mut row = Record::new(event.key.clone());
            row.set("id", event.key.to_value());
            let n = match event
                .record(&ITEM)
                .map_err(|m| Error::invalid_input(&event.store, &event.entity, m))?
            {
                Some(r) => r.value("n").clone(),
                None => Value::Null,
            };
            row.set("n", n);
            row.set("src_version", Value::I64(event.version as i64));
            row.set("deleted", Value::Bool(event.op == Operation::Delete));
            let precondition = match &current {
                Some(r) => Precondition::Version(r.version),
                None => Precondition::Absent,
            };
            let op = WriteOp::Put {
                record: row,
                precondition,
                ttl: None,
            };
            match self.store.write(&self.info, vec![op], true).await {
                Ok(_) => return Ok(Applied::Applied),
                Err(Error::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// The worker: runs the projection until killed.
async fn child(prefix: String, db: String) {
    let (store, info) = view_store(&db).await;
    let dead = StoreDeadLetters::open(store.clone(), "dead_letters")
        .await
        .unwrap();
    let options = ProjectionOptions {
        batch: 50,
        ack_wait: Duration::from_secs(1),
        retry_delay: Duration::from_millis(50),
        max_attempts: 50,
        concurrency: 8,
        ..ProjectionOptions::default()
    };
    let runner = ProjectionRunner::new(
        GROUP,
        Arc::new(HandlerProjection::new(View { store, info })),
        Arc::new(bus(&prefix)),
        vec!["item".into()],
        options,
        Arc::new(dead),
    );
    let (_stop, rx) = tokio::sync::watch::channel(false);
    println!("READY");
    runner.run(rx).await.expect("the runner runs");
}

fn spawn(prefix: &str, db: &str) -> Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("PROJ_CHILD", "1")
        .env("PROJ_PREFIX", prefix)
        .env("PROJ_DB", db)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start a worker");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "READY", "the worker started");
    child
}

/// A small deterministic generator (no rand dependency needed).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// The events: per key increasing versions, puts (n = the version × 10)
/// and some deletes, keys interleaved.
fn events(seed: u64) -> Vec<ChangeEvent> {
    let mut rng = Lcg(seed);
    let mut versions = [0u64; KEYS];
    (0..EVENTS)
        .map(|_| {
            let k = rng.next(KEYS as u64) as usize;
            versions[k] += 1;
            let v = versions[k];
            let key = format!("k{k:03}");
            if rng.next(7) == 0 {
                ChangeEvent::new(
                    "main",
                    "item",
                    Key::from(key.as_str()),
                    Operation::Delete,
                    v,
                )
            } else {
                let mut r = Record::new(Key::from(key.as_str()));
                r.set("id", Value::from(key.as_str()));
                r.set("n", Value::I64(v as i64 * 10));
                r.version = v;
                ChangeEvent::put_of("main", &ITEM, &r)
            }
        })
        .collect()
}

async fn parent() {
    let run = format!(
        "{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let prefix = format!("prjcrash:{run}");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("view.db").display().to_string();
    let bus = Arc::new(bus(&prefix));
    bus.ping().await.expect("Redis at 127.0.0.1:6379 answers");
    let all = events(run.len() as u64 + std::process::id() as u64);
    let mut last: std::collections::HashMap<Key, ChangeEvent> = Default::default();
    for e in &all {
        last.insert(e.key.clone(), e.clone());
    }

    // The relay's part: publish in small chunks while workers get killed.
    let publisher = {
        let bus = bus.clone();
        let all = all.clone();
        tokio::spawn(async move {
            for chunk in all.chunks(25) {
                bus.publish(chunk).await.expect("publish");
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        })
    };
    let mut rng = Lcg(7);
    for _ in 0..KILLS {
        let mut c = spawn(&prefix, &db);
        tokio::time::sleep(Duration::from_millis(50 + rng.next(400))).await;
        c.kill().expect("SIGKILL the worker by its pid");
        c.wait().unwrap();
    }
    publisher.await.unwrap();
    {
        // The killed workers did work (the kills interrupted a live worker).
        let (store, info) = view_store(&db).await;
        let rows = store.count(&info, None).await.unwrap();
        assert!(rows > 0, "the killed workers applied nothing");
        println!("after {KILLS} kills the view has {rows} of {KEYS} keys");
    }

    // A last worker catches up; the group's backlog says when.
    let mut c = spawn(&prefix, &db);
    let entities = vec!["item".to_string()];
    let mut caught_up = false;
    for _ in 0..3000 {
        if bus.backlog(GROUP, &entities).await.unwrap() == Some(0) {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.kill().unwrap();
    c.wait().unwrap();
    assert!(caught_up, "the last worker never caught up");

    let (store, info) = view_store(&db).await;
    for (key, e) in &last {
        let row = store
            .get(&info, key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no view row for {key}"));
        assert_eq!(
            row.value("src_version"),
            &Value::I64(e.version as i64),
            "{key}"
        );
        assert_eq!(
            row.value("deleted"),
            &Value::Bool(e.op == Operation::Delete),
            "{key}"
        );
        let n = match e.op {
            Operation::Put => Value::I64(e.version as i64 * 10),
            Operation::Delete => Value::Null,
        };
        assert_eq!(row.value("n"), &n, "{key}");
    }
    let dead = StoreDeadLetters::open(store.clone(), "dead_letters")
        .await
        .unwrap();
    use polyrouter::sync::projection::DeadLetters;
    assert!(
        dead.list(None).await.unwrap().is_empty(),
        "nothing dead-lettered"
    );
    bus.delete_all().await.unwrap();
    println!(
        "{KILLS} workers killed with SIGKILL while {EVENTS} events over {KEYS} keys arrived; the view equals every key's last event"
    );
}

fn main() -> ExitCode {
    crash_main::crash_main(
        "PROJ_CHILD",
        || {
            let var = |name| std::env::var(name).unwrap();
            child(var("PROJ_PREFIX"), var("PROJ_DB"))
        },
        &["projection_worker_killed_20_times"],
        |_| parent(),
    )
}
