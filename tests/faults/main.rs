//! The fault suite: the resilience layers between the router and real
//! servers — the machine's PostgreSQL, MariaDB and Redis, Azurite and the
//! Cosmos DB emulator — through a loopback TCP fault proxy (`proxy.rs`), and
//! real SIGKILL restarts of private PostgreSQL and Redis servers the tests
//! start themselves (`servers.rs`).
//!
//! Every test checks outcomes, never durations: after recovery every
//! acknowledged write is read back row by row, no write that a
//! precondition guarded was applied twice, no non-idempotent call was sent
//! twice, the breaker opens and closes, timeouts surface as
//! `Error::Timeout`. The brownout test prints goodput with and without
//! retries (docs/benchmarks.md keeps the figures). A missing server fails
//! the test.
//!
//! ```text
//! cargo test --all-features --test faults -- --test-threads 2
//! ```

mod proxy;
mod servers;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use polyrouter::config::{ResilienceConfig, StoreSpec};
use polyrouter::layers::testing::Counting;
use polyrouter::layers::{BreakerState, Layered, Resilience};
use polyrouter::store::blob::{BlobCondition, PutOptions};
use polyrouter::{Entity, Error, Key, Precondition, Repo, Router, Store};
use proxy::{FaultProxy, Mode};
use serde::{Deserialize, Serialize};
use servers::{PrivateCosmosProxy, PrivatePostgres, PrivateRedis, loopback};

#[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[entity(name = "ledger", key = "id")]
struct Entry {
    id: String,
    amount: i64,
    #[entity(version)]
    version: u64,
}

fn entry(id: &str, amount: i64) -> Entry {
    Entry {
        id: id.into(),
        amount,
        version: 0,
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A name unique to this run and call.
fn unique(tag: &str) -> String {
    format!(
        "pr_fault_{tag}_{}_{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    )
}

const COSMOS_KEY: &str =
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";
/// The emulator's own port, behind `scripts/emulators/cosmos-proxy.js` on 8081.
const COSMOS_INTERNAL_PORT: u16 = 18081;
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A server of the machine, reached directly or through a proxy port.
#[derive(Debug, Clone, Copy)]
enum Server {
    Postgres,
    Mysql,
    Redis,
    Cosmos,
}

impl Server {
    fn port(self) -> u16 {
        match self {
            Server::Postgres => 5432,
            Server::Mysql => 3306,
            Server::Redis => 6379,
            Server::Cosmos => 8081,
        }
    }

    /// The store options for `port`, in the namespace `ns`.
    fn options(self, port: u16, ns: &str) -> toml::Table {
        let text = match self {
            Server::Postgres => format!(
                "url = \"postgres://postgres@127.0.0.1:{port}/test\"\nschema = \"{ns}\"\nmax_connections = 8\nconnect_timeout = \"2s\"\n"
            ),
            Server::Mysql => format!(
                "url = \"mysql://root@127.0.0.1:{port}/test\"\ndatabase = \"{ns}\"\nmax_connections = 8\nconnect_timeout = \"2s\"\n"
            ),
            Server::Redis => format!(
                "url = \"redis://127.0.0.1:{port}\"\nkey_prefix = \"{ns}\"\nconnect_timeout = \"2s\"\n"
            ),
            Server::Cosmos => format!(
                "endpoint = \"http://127.0.0.1:{port}/\"\nkey = \"{COSMOS_KEY}\"\ndatabase = \"{ns}\"\ncreate_if_missing = true\n"
            ),
        };
        text.parse().unwrap()
    }

    fn kind(self) -> &'static str {
        match self {
            Server::Postgres => "postgres",
            Server::Mysql => "mysql",
            Server::Redis => "redis",
            Server::Cosmos => "cosmos",
        }
    }
}

/// Opens a store of `kind` with `options`, counted below the layers.
async fn open(kind: &str, options: toml::Table) -> Arc<dyn Store> {
    polyrouter::backends::open(StoreSpec::new("db", kind, options))
        .await
        .unwrap_or_else(|e| panic!("the {kind} server must answer: {e}"))
}

type Wrapped = Layered<Counting<Arc<dyn Store>>, Resilience>;

/// The store wrapped as the router wraps it, with test-sized timeouts, and
/// a counter of the attempts that reach the driver.
fn wrap(store: Arc<dyn Store>, config: &ResilienceConfig) -> Arc<Wrapped> {
    Arc::new(Resilience::from_config(config).layer(Counting::new(store)))
}

fn quick() -> ResilienceConfig {
    let mut c = ResilienceConfig::default();
    c.timeout.read.0 = Duration::from_secs(2);
    c.timeout.write.0 = Duration::from_secs(3);
    c.timeout.query.0 = Duration::from_secs(3);
    c.timeout.admin.0 = Duration::from_secs(60);
    c.retry.max_attempts = 4;
    c.retry.base_delay.0 = Duration::from_millis(10);
    c.retry.max_delay.0 = Duration::from_millis(100);
    // The brownout fails many attempts on purpose: keep retrying.
    c.retry.budget_tokens = 1000;
    c.retry.budget_ratio = 1.0;
    c.breaker.enabled = false;
    c
}

async fn repo(store: Arc<dyn Store>) -> (Router, Repo<Entry>) {
    let router = Router::builder()
        .store("db", store)
        .route("ledger", "db")
        .build()
        .await
        .unwrap();
    let entries = router.repo::<Entry>().await.unwrap();
    (router, entries)
}

/// What each write returned.
#[derive(Debug, Default)]
struct Outcomes {
    ok: Vec<String>,
    conflict: Vec<String>,
    unknown: Vec<String>,
}

/// How long a [`write_load`] runs, and how far it got.
#[derive(Clone, Default)]
struct Load {
    /// Set to end the load after each writer's current step.
    stop: Arc<AtomicBool>,
    /// Steps (an insert and an increment) finished, whatever their outcome.
    steps: Arc<AtomicU64>,
}

impl Load {
    /// Waits until `more` further steps have finished; panics after a minute
    /// without them (the writers never recovered).
    async fn advance(&self, more: u64) {
        let target = self.steps.load(Ordering::SeqCst) + more;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while self.steps.load(Ordering::SeqCst) < target {
            assert!(
                std::time::Instant::now() < deadline,
                "writers made no progress for a minute"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// `writers` tasks insert up to `per_writer` new keys each
/// (`put_if(Absent)`), and increment one shared counter by read-modify-write
/// under a version precondition, until `load.stop` is set.
async fn write_load(
    entries: &Repo<Entry>,
    writers: usize,
    per_writer: usize,
    load: &Load,
) -> (Outcomes, u64) {
    let acked_increments = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let entries = entries.clone();
        let acked = acked_increments.clone();
        let load = load.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Outcomes::default();
            for i in 0..per_writer {
                if load.stop.load(Ordering::SeqCst) {
                    break;
                }
                let id = format!("w{w}-{i}");
                match entries
                    .put_if(&entry(&id, i as i64), Precondition::Absent)
                    .await
                {
                    Ok(_) => out.ok.push(id),
                    Err(Error::Conflict { .. }) => out.conflict.push(id),
                    Err(e) if e.is_transient() => out.unknown.push(id),
                    Err(e) => panic!("{id}: {e}"),
                }
                // One increment of the shared counter, by its version.
                if let Ok(Some(c)) = entries.get("counter").await {
                    let next = Entry {
                        amount: c.amount + 1,
                        ..c.clone()
                    };
                    if entries
                        .put_if(&next, Precondition::Version(c.version))
                        .await
                        .is_ok()
                    {
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                }
                load.steps.fetch_add(1, Ordering::SeqCst);
            }
            out
        }));
    }
    let mut all = Outcomes::default();
    for t in tasks {
        let o = t.await.unwrap();
        all.ok.extend(o.ok);
        all.conflict.extend(o.conflict);
        all.unknown.extend(o.unknown);
    }
    (all, acked_increments.load(Ordering::SeqCst))
}

/// Reads every key back through a clean connection: every acknowledged
/// insert is there at version 1, a conflicting one too (its first attempt
/// applied), none at version 2 (no insert applied twice); the counter moved
/// by at least the acknowledged increments and at most its version.
async fn verify(clean: &Repo<Entry>, out: &Outcomes, acked: u64) {
    for id in out.ok.iter().chain(&out.conflict) {
        let got = clean.get(id.as_str()).await.unwrap();
        let got = got.unwrap_or_else(|| panic!("acknowledged write {id} lost"));
        assert_eq!(got.version, 1, "{id} applied more than once");
    }
    for id in &out.unknown {
        if let Some(got) = clean.get(id.as_str()).await.unwrap() {
            assert_eq!(got.version, 1, "{id} applied more than once");
        }
    }
    let counter = clean.get("counter").await.unwrap().unwrap();
    assert!(
        counter.amount as u64 >= acked,
        "acknowledged increments lost: {} < {acked}",
        counter.amount
    );
    assert_eq!(
        counter.amount as u64 + 1,
        counter.version,
        "every applied increment bumped the version once"
    );
}

/// 30 % of answers reset mid-response while writers run; then every
/// acknowledged write is read back without the proxy.
async fn brownout_keeps_acknowledged_writes(server: Server) {
    let (proxy, port, _cosmos) = match server {
        // The emulator behind the fault proxy, a private correcting proxy in front.
        Server::Cosmos => {
            let proxy = FaultProxy::start(loopback(COSMOS_INTERNAL_PORT)).await;
            let front = PrivateCosmosProxy::start(proxy.addr().port());
            let port = front.port;
            (proxy, port, Some(front))
        }
        _ => {
            let proxy = FaultProxy::start(loopback(server.port())).await;
            let port = proxy.addr().port();
            (proxy, port, None)
        }
    };
    let ns = unique(server.kind());
    let through = wrap(
        open(server.kind(), server.options(port, &ns)).await,
        &quick(),
    );
    let (_r, entries) = repo(through.clone()).await;
    entries.put(&entry("counter", 0)).await.unwrap();
    proxy.set(Mode::Resets(0.3));
    let (out, acked) = write_load(&entries, 4, 25, &Load::default()).await;
    proxy.set(Mode::Pass);
    println!(
        "{server:?}, 30% of answers reset: {} ok, {} conflict after a retry, {} unknown; {acked} increments acknowledged; {} resets",
        out.ok.len(),
        out.conflict.len(),
        out.unknown.len(),
        proxy.resets()
    );
    assert!(proxy.bytes_back() > 0, "the traffic went through the proxy");
    assert!(proxy.resets() > 0, "the proxy reset connections");
    assert!(!out.ok.is_empty(), "some writes got through");
    let clean = open(server.kind(), server.options(server.port(), &ns)).await;
    let (_c, clean_entries) = repo(clean.clone()).await;
    verify(&clean_entries, &out, acked).await;
    cleanup(server, &ns, clean).await;
}

async fn cleanup(server: Server, ns: &str, store: Arc<dyn Store>) {
    match server {
        Server::Postgres => {
            let pool = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/test")
                .await
                .unwrap();
            sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS {ns} CASCADE"))
                .execute(&pool)
                .await
                .unwrap();
        }
        Server::Mysql => {
            let pool = sqlx::MySqlPool::connect("mysql://root@127.0.0.1:3306/test")
                .await
                .unwrap();
            sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {ns}"))
                .execute(&pool)
                .await
                .unwrap();
        }
        Server::Redis => {
            let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
            let mut con = client.get_multiplexed_async_connection().await.unwrap();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{ns}:*"))
                .query_async(&mut con)
                .await
                .unwrap();
            if !keys.is_empty() {
                let _: () = redis::cmd("DEL")
                    .arg(keys)
                    .query_async(&mut con)
                    .await
                    .unwrap();
            }
        }
        Server::Cosmos => {
            let cfg = polyrouter::backends::cosmos::CosmosConfig::new(
                "http://127.0.0.1:8081/",
                COSMOS_KEY,
                ns,
            );
            let s = polyrouter::backends::cosmos::CosmosStore::connect("db", cfg)
                .await
                .unwrap();
            s.delete_database().await.unwrap();
        }
    }
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_brownout_loses_no_acknowledged_write() {
    brownout_keeps_acknowledged_writes(Server::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_brownout_loses_no_acknowledged_write() {
    brownout_keeps_acknowledged_writes(Server::Mysql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_brownout_loses_no_acknowledged_write() {
    brownout_keeps_acknowledged_writes(Server::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cosmos_brownout_loses_no_acknowledged_write() {
    brownout_keeps_acknowledged_writes(Server::Cosmos).await;
}

/// Blind increments under a brownout: a lost reply is never re-sent, so
/// the attempts that reached the driver equal the calls, and the counter
/// holds every acknowledged increment and at most the unknown ones more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_increments_are_never_sent_twice() {
    let proxy = FaultProxy::start(loopback(6379)).await;
    let ns = unique("incr");
    let store = wrap(
        open("redis", Server::Redis.options(proxy.addr().port(), &ns)).await,
        &quick(),
    );
    let e = {
        let mut e = polyrouter::store::EntityInfo::new(Entry::schema());
        e.store = "db".into();
        e
    };
    let kv = store.as_kv().unwrap();
    let k = Key::from("hits");
    kv.increment(&e, &k, 0, None).await.unwrap();
    store.inner().reset();
    proxy.set(Mode::Resets(0.3));
    let (mut ok, mut unknown, mut refused) = (0u64, 0u64, 0u64);
    for _ in 0..200 {
        match kv.increment(&e, &k, 1, None).await {
            Ok(_) => ok += 1,
            Err(Error::Rejected { .. }) => refused += 1,
            Err(e) if e.is_transient() => unknown += 1,
            Err(e) => panic!("{e}"),
        }
    }
    proxy.set(Mode::Pass);
    let attempts = store.inner().counts().calls;
    assert_eq!(
        attempts, 200,
        "an increment with an unknown outcome was re-sent"
    );
    assert!(unknown > 0 && ok > 0, "ok {ok}, unknown {unknown}");
    let clean = open("redis", Server::Redis.options(6379, &ns)).await;
    let raw = clean
        .as_kv()
        .unwrap()
        .get_bytes(&e, &k)
        .await
        .unwrap()
        .unwrap();
    let value: u64 = String::from_utf8(raw).unwrap().parse().unwrap();
    println!("redis increments: {ok} ok, {unknown} unknown, {refused} refused; counter {value}");
    assert!(
        value >= ok && value <= ok + unknown,
        "{value} outside [{ok}, {}]",
        ok + unknown
    );
    cleanup(Server::Redis, &ns, clean).await;
}

/// A blackholed PostgreSQL: calls time out (`Error::Timeout`), the breaker
/// opens within its window and then fails calls at once without sending
/// them; after recovery it probes and closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackhole_times_out_opens_the_breaker_and_recovery_closes_it() {
    let proxy = FaultProxy::start(loopback(5432)).await;
    let ns = unique("blackhole");
    let mut cfg = quick();
    cfg.timeout.read.0 = Duration::from_millis(300);
    cfg.retry.max_attempts = 1;
    cfg.breaker.enabled = true;
    cfg.breaker.minimum_calls = 5;
    cfg.breaker.failure_rate = 0.5;
    cfg.breaker.open_for.0 = Duration::from_millis(500);
    cfg.breaker.half_open_probes = 2;
    let store = wrap(
        open(
            "postgres",
            Server::Postgres.options(proxy.addr().port(), &ns),
        )
        .await,
        &cfg,
    );
    let (_r, entries) = repo(store.clone()).await;
    entries.put(&entry("a", 1)).await.unwrap();
    let breaker = || store.policy().breaker_ref().unwrap().state();
    proxy.set(Mode::Blackhole);
    let mut timeouts = 0;
    let mut calls = 0;
    while !matches!(breaker(), BreakerState::Open { .. }) {
        calls += 1;
        assert!(calls <= 20, "the breaker did not open");
        match entries.get("a").await {
            Err(Error::Timeout { operation, .. }) => {
                assert_eq!(operation, "get");
                timeouts += 1;
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
    }
    // Every call timed out, and the circuit opened within `minimum_calls`
    // (the window also holds the successes before the blackhole).
    assert!(
        timeouts == calls && calls <= 5,
        "{timeouts} timeouts in {calls} calls"
    );
    let sent = store.inner().counts().gets;
    let err = entries.get("a").await.unwrap_err();
    assert!(matches!(err, Error::CircuitOpen { .. }), "{err}");
    assert_eq!(
        store.inner().counts().gets,
        sent,
        "an open circuit sends nothing"
    );
    proxy.set(Mode::Pass);
    // Blackholed connections stay stuck in the pool until their calls time
    // out; probe until two succeed in a row.
    let mut closed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = entries.get("a").await;
        if breaker() == BreakerState::Closed {
            closed = true;
            break;
        }
    }
    assert!(closed, "the breaker closed after recovery: {:?}", breaker());
    assert_eq!(entries.get("a").await.unwrap().unwrap().amount, 1);
    let clean = open("postgres", Server::Postgres.options(5432, &ns)).await;
    cleanup(Server::Postgres, &ns, clean).await;
}

/// Latency beyond the timeout (Redis) and a slow drip (Azurite): the call
/// ends with `Error::Timeout` naming the operation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_and_slow_drip_end_in_timeouts() {
    let proxy = FaultProxy::start(loopback(6379)).await;
    let ns = unique("latency");
    let mut cfg = quick();
    cfg.timeout.read.0 = Duration::from_millis(200);
    cfg.retry.max_attempts = 1;
    let store = wrap(
        open("redis", Server::Redis.options(proxy.addr().port(), &ns)).await,
        &cfg,
    );
    let (_r, entries) = repo(store.clone()).await;
    entries.put(&entry("a", 1)).await.unwrap();
    proxy.set(Mode::Latency(Duration::from_secs(2)));
    let err = entries.get("a").await.unwrap_err();
    assert!(
        matches!(&err, Error::Timeout { operation, after, .. } if operation == "get" && *after == Duration::from_millis(200)),
        "{err:?}"
    );
    proxy.set(Mode::Pass);

    let blob_proxy = FaultProxy::start(loopback(10000)).await;
    let container = unique("drip").replace('_', "-");
    let options: toml::Table = format!(
        "container = \"{container}\"\ncreate_if_missing = true\naccount = \"devstoreaccount1\"\nkey = \"{AZURITE_KEY}\"\nendpoint = \"http://127.0.0.1:{}/devstoreaccount1\"\n",
        blob_proxy.addr().port()
    )
    .parse()
    .unwrap();
    let mut cfg = quick();
    cfg.timeout.bulk.0 = Duration::from_millis(500);
    cfg.retry.max_attempts = 1;
    let blobs = wrap(open("azblob", options).await, &cfg);
    let b = blobs.as_blob().unwrap();
    b.put_bytes("big.bin", vec![7u8; 256 * 1024], PutOptions::new())
        .await
        .unwrap();
    blob_proxy.set(Mode::Drip(512, Duration::from_millis(20)));
    let err = b.get_bytes("big.bin").await.unwrap_err();
    assert!(
        matches!(&err, Error::Timeout { operation, .. } if operation == "blob.get_bytes"),
        "{err:?}"
    );
    blob_proxy.set(Mode::Pass);
    let clean: toml::Table = format!(
        "container = \"{container}\"\naccount = \"devstoreaccount1\"\nkey = \"{AZURITE_KEY}\"\nendpoint = \"http://127.0.0.1:10000/devstoreaccount1\"\n"
    )
    .parse()
    .unwrap();
    let cfg = polyrouter::backends::azblob::AzBlobConfig::dev(
        &container,
        "http://127.0.0.1:10000/devstoreaccount1",
    );
    let s = polyrouter::backends::azblob::AzBlobStore::open("b", cfg)
        .await
        .unwrap();
    assert_eq!(
        polyrouter::store::blob::BlobStore::get_bytes(&s, "big.bin")
            .await
            .unwrap()
            .unwrap()
            .len(),
        256 * 1024
    );
    s.delete_container().await.unwrap();
    drop(clean);
    let clean = open("redis", Server::Redis.options(6379, &ns)).await;
    cleanup(Server::Redis, &ns, clean).await;
}

/// Conditional blob uploads under a brownout on Azurite: acknowledged
/// uploads are all there, none was applied twice (an `IfAbsent` retry
/// whose first attempt landed answers `Conflict`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azurite_brownout_loses_no_acknowledged_upload() {
    let proxy = FaultProxy::start(loopback(10000)).await;
    let container = unique("blobs").replace('_', "-");
    let options = |port: u16| -> toml::Table {
        format!(
            "container = \"{container}\"\ncreate_if_missing = true\naccount = \"devstoreaccount1\"\nkey = \"{AZURITE_KEY}\"\nendpoint = \"http://127.0.0.1:{port}/devstoreaccount1\"\n"
        )
        .parse()
        .unwrap()
    };
    let store = wrap(open("azblob", options(proxy.addr().port())).await, &quick());
    let b = store.as_blob().unwrap();
    proxy.set(Mode::Resets(0.3));
    let mut ok = Vec::new();
    let mut seen = BTreeMap::new();
    for i in 0..60 {
        let key = format!("k{i}");
        let r = b
            .put_bytes(
                &key,
                format!("v{i}").into_bytes(),
                PutOptions::new().condition(BlobCondition::IfAbsent),
            )
            .await;
        match r {
            Ok(_) => ok.push(key),
            Err(e) => {
                seen.insert(key, e.kind_name());
            }
        }
    }
    proxy.set(Mode::Pass);
    println!(
        "Azurite, 30% of answers reset: {} ok, others {seen:?}, {} resets",
        ok.len(),
        proxy.resets()
    );
    assert!(proxy.resets() > 0 && !ok.is_empty());
    let clean = open("azblob", options(10000)).await;
    let cb = clean.as_blob().unwrap();
    for key in &ok {
        let i: usize = key[1..].parse().unwrap();
        let got = cb.get_bytes(key).await.unwrap();
        assert_eq!(
            got.as_deref(),
            Some(format!("v{i}").as_bytes()),
            "{key} lost"
        );
    }
    let cfg = polyrouter::backends::azblob::AzBlobConfig::dev(
        &container,
        "http://127.0.0.1:10000/devstoreaccount1",
    );
    polyrouter::backends::azblob::AzBlobStore::open("b", cfg)
        .await
        .unwrap()
        .delete_container()
        .await
        .unwrap();
}

/// Goodput under a brownout, with the default retries and without, in two
/// shapes: 30 % of connections reset mid-response (each once), and the
/// harsher 30 % of answers reset. Printed for docs/benchmarks.md, not
/// asserted as a rate; what is asserted is that the retrying client did
/// retry whenever the proxy reset something under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brownout_goodput_with_and_without_retries() {
    let ns = unique("goodput");
    let setup = open("postgres", Server::Postgres.options(5432, &ns)).await;
    let (_s, seed) = repo(setup.clone()).await;
    for i in 0..50 {
        seed.put(&entry(&format!("k{i}"), i)).await.unwrap();
    }
    for (shape, mode) in [
        ("30% of connections reset mid-response", Mode::Brownout(0.3)),
        ("30% of answers reset", Mode::Resets(0.3)),
    ] {
        for retries in [true, false] {
            let proxy = FaultProxy::start(loopback(5432)).await;
            let mut cfg = quick();
            cfg.retry.max_attempts = if retries { 3 } else { 1 };
            cfg.retry.budget_tokens = 100;
            cfg.retry.budget_ratio = 0.1;
            let store = wrap(
                open(
                    "postgres",
                    Server::Postgres.options(proxy.addr().port(), &ns),
                )
                .await,
                &cfg,
            );
            let (_r, entries) = repo(store.clone()).await;
            store.inner().reset();
            proxy.set(mode);
            let started = std::time::Instant::now();
            let mut answered = 0u64;
            let calls = 400u64;
            for i in 0..calls {
                if entries.get(format!("k{}", i % 50)).await.is_ok() {
                    answered += 1;
                }
            }
            let secs = started.elapsed().as_secs_f64();
            let attempts = store.inner().counts().gets;
            println!(
                "goodput, PostgreSQL, {shape}, retries {}: {answered}/{calls} calls answered ({:.1}%), {attempts} attempts, {} resets, {:.0} answered calls/s",
                if retries {
                    "on (3 attempts, budget 100/0.1)"
                } else {
                    "off"
                },
                100.0 * answered as f64 / calls as f64,
                proxy.resets(),
                answered as f64 / secs
            );
            if retries && proxy.resets() > 0 {
                assert!(attempts > calls, "resets but no retry");
            }
            if !retries {
                assert_eq!(attempts, calls, "retries off sends each call once");
            }
        }
    }
    cleanup(Server::Postgres, &ns, setup).await;
}

/// Runs writers against a private server of `kind` (`options`), calls
/// `restart` (SIGKILL, then start again) `rounds` times while they run —
/// each kill once the writers have made `steps` further steps, so every kill
/// lands mid-load however fast the machine — then, once they have made
/// progress after the last restart, stops them and reads every key back:
/// every acknowledged write is there after recovery, none applied twice.
async fn restarts_keep_acknowledged_writes(
    kind: &str,
    options: toml::Table,
    steps: u64,
    rounds: usize,
    mut restart: impl FnMut(),
) {
    let store = wrap(open(kind, options.clone()).await, &quick());
    let (_r, entries) = repo(store).await;
    entries.put(&entry("counter", 0)).await.unwrap();
    let progress = Load::default();
    let load = {
        let entries = entries.clone();
        let progress = progress.clone();
        tokio::spawn(async move { write_load(&entries, 4, usize::MAX, &progress).await })
    };
    for _ in 0..rounds {
        progress.advance(steps).await;
        assert!(!load.is_finished(), "the kill must land while writers run");
        tokio::task::block_in_place(&mut restart);
    }
    progress.advance(steps).await;
    progress.stop.store(true, Ordering::SeqCst);
    let (out, acked) = load.await.unwrap();
    println!(
        "private {kind}, {rounds} SIGKILL restarts: {} ok, {} conflict, {} unknown",
        out.ok.len(),
        out.conflict.len(),
        out.unknown.len()
    );
    let clean = open(kind, options).await;
    let (_c, clean_entries) = repo(clean).await;
    verify(&clean_entries, &out, acked).await;
}

/// Private Redis (append-only file, fsync always), SIGKILLed and restarted
/// three times while writers run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarts_lose_no_acknowledged_write() {
    let mut redis = PrivateRedis::start();
    let options = format!("url = \"{}\"\nconnect_timeout = \"1s\"\n", redis.url());
    let restart = || redis.restart();
    restarts_keep_acknowledged_writes("redis", options.parse().unwrap(), 100, 3, restart).await;
}

/// Private PostgreSQL, its postmaster SIGKILLed and restarted twice while
/// writers run (crash recovery each time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarts_lose_no_acknowledged_write() {
    let mut pg = tokio::task::block_in_place(PrivatePostgres::start);
    let options = format!(
        "url = \"{}\"\nmax_connections = 8\nconnect_timeout = \"1s\"\n",
        pg.url()
    );
    let restart = || pg.restart();
    restarts_keep_acknowledged_writes("postgres", options.parse().unwrap(), 100, 2, restart).await;
}

#[test]
fn the_proxy_only_forwards_to_loopback() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = std::panic::catch_unwind(|| {
        rt.block_on(FaultProxy::start("10.0.0.1:5432".parse().unwrap()))
    });
    assert!(r.is_err());
}

#[tokio::test]
async fn the_proxy_passes_traffic_unchanged_when_asked_to() {
    let proxy = FaultProxy::start(loopback(6379)).await;
    let client = redis::Client::open(format!("redis://{}", proxy.addr())).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    for i in 0..100 {
        let v: String = redis::cmd("ECHO")
            .arg(format!("hello {i}"))
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(v, format!("hello {i}"));
    }
    assert!(proxy.bytes_back() > 0);
}
