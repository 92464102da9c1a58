//! Entity migration SQLite → PostgreSQL on the real stores: a 100 000-row
//! backfill while several writers put and delete random (shared) keys and
//! the dual-write runs, after which verify finds no difference and both
//! sides are equal key by key; verify
//! finding exactly the injected mismatches (changed, missing, extra); shadow
//! reads counting exactly the injected differences and not the dual-write's
//! lag; the
//! version guard (a backfilled row never overwrites a newer target row, a
//! tombstone keeps a key deleted); writers through cutover, rollback and
//! finish losing nothing; and the migrating process
//! (this test binary re-executed as a child, running what the CLI runs)
//! SIGKILLed at several points of its backfill and of its verify, resuming
//! from its cursor, every row checked afterwards; and PostgreSQL → Cosmos
//! DB (the emulator, `scripts/emulators/start`) through every phase; the
//! other pairs among SQLite, PostgreSQL and MariaDB, and Cosmos DB → MariaDB,
//! through every phase; Redis refused as either side.
//! PostgreSQL tables live in a schema unique to the test, Cosmos DB
//! containers in a database unique to it, both dropped at the end.
//!
//! ```text
//! cargo test --features postgres,mysql,redis,cosmos --test migrate
//! ```

#[path = "support/scan.rs"]
mod scan;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use polyrouter::migrate::{Difference, Migration, Phase, StoredKey, canonical};
use polyrouter::store::{EntityInfo, VersionedChange, WriteOp};
use polyrouter::{Entity, Key, Precondition, Record, Router, Store, Value};
use serde::{Deserialize, Serialize};

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[entity(name = "item", key = "id")]
struct Item {
    id: i64,
    name: String,
    n: i64,
    score: f64,
    note: Option<String>,
    #[entity(version)]
    version: u64,
}

fn item(id: i64, n: i64) -> Item {
    Item {
        id,
        name: format!("item-{id}-{n}"),
        n,
        score: n as f64 / 3.0,
        note: (n % 3 == 0).then(|| format!("note {n}")),
        version: 0,
    }
}

/// A source and a target store of the kinds named (`sqlite`, `postgres`,
/// `mysql`, `cosmos`), each in a namespace unique to the test (a SQLite
/// file, a PostgreSQL schema, a MariaDB database, a Cosmos DB database),
/// dropped on drop.
struct Env {
    dir: tempfile::TempDir,
    schema: String,
    src: &'static str,
    dst: &'static str,
}

const COSMOS_KEY: &str =
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";
const MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

fn cosmos_endpoint() -> String {
    std::env::var("POLYROUTER_COSMOS_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:8081/".into())
}

impl Env {
    /// SQLite → PostgreSQL.
    fn new(tag: &str) -> Env {
        Env::pair(tag, "sqlite", "postgres")
    }

    /// PostgreSQL → Cosmos DB.
    fn cosmos(tag: &str) -> Env {
        Env::pair(tag, "postgres", "cosmos")
    }

    fn pair(tag: &str, src: &'static str, dst: &'static str) -> Env {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            % 1_000_000_000;
        Env {
            dir: tempfile::tempdir().unwrap(),
            schema: format!("mig_{tag}_{}_{ms}", std::process::id()),
            src,
            dst,
        }
    }

    fn uses(&self, kind: &str) -> bool {
        self.src == kind || self.dst == kind
    }

    fn store(&self, name: &str, kind: &str) -> String {
        let ns = &self.schema;
        let body = match kind {
            "sqlite" => format!(
                "url = \"sqlite://{}/{name}.db\"\n",
                self.dir.path().display()
            ),
            "postgres" => format!("url = \"{PG_URL}\"\nschema = \"{ns}\"\n"),
            "mysql" => format!("url = \"{MYSQL_URL}\"\ndatabase = \"{ns}\"\n"),
            "redis" => format!("url = \"redis://127.0.0.1:6379\"\nkey_prefix = \"{ns}\"\n"),
            "cosmos" => format!(
                "endpoint = \"{}\"\nkey = \"{COSMOS_KEY}\"\ndatabase = \"{ns}\"\ncreate_if_missing = true\n",
                cosmos_endpoint()
            ),
            other => panic!("no such store kind in this test: {other}"),
        };
        format!("[stores.{name}]\nkind = \"{kind}\"\n{body}\n")
    }

    fn stores(&self) -> String {
        self.store("src", self.src) + &self.store("dst", self.dst)
    }

    fn toml(&self, batch: usize, rate: u64) -> String {
        format!(
            r#"{stores}
[buses.events]
kind = "memory"

[sync]
store = "src"
relay_interval = "5ms"

[entities.item]
store = "src"
outbox = {{ bus = "events" }}
sql = {{ key = "id", columns = {{ id = "int", name = "string", n = "int", score = "float", note = "string?" }} }}

[migrations.items]
entity = "item"
to = "dst"
batch = {batch}
rate = {rate}
lease = "2s"
poll = "250ms"
"#,
            stores = self.stores()
        )
    }

    fn config_file(&self, batch: usize, rate: u64) -> std::path::PathBuf {
        let path = self.dir.path().join("polyrouter.toml");
        std::fs::write(&path, self.toml(batch, rate)).unwrap();
        path
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let schema = self.schema.clone();
        let (pg, mysql, cosmos) = (
            self.uses("postgres"),
            self.uses("mysql"),
            self.uses("cosmos"),
        );
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    use sqlx::Connection;
                    if pg {
                        let mut c = sqlx::PgConnection::connect(PG_URL).await.unwrap();
                        sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                            .execute(&mut c)
                            .await
                            .unwrap();
                    }
                    if mysql {
                        let mut c = sqlx::MySqlConnection::connect(MYSQL_URL).await.unwrap();
                        sqlx::query(&format!("DROP DATABASE IF EXISTS `{schema}`"))
                            .execute(&mut c)
                            .await
                            .unwrap();
                    }
                    if cosmos {
                        use polyrouter::backends::cosmos::{CosmosConfig, CosmosStore};
                        let cfg = CosmosConfig::new(cosmos_endpoint(), COSMOS_KEY, &schema);
                        let s = CosmosStore::connect("dst", cfg).await.unwrap();
                        s.delete_database().await.unwrap();
                    }
                })
        })
        .join();
    }
}

fn info(store: &str) -> EntityInfo {
    EntityInfo {
        store: store.into(),
        ..EntityInfo::new(Item::schema())
    }
}

/// Every row of `store`, by key, as its canonical encoding.
async fn all(store: &Arc<dyn Store>, info: &EntityInfo) -> BTreeMap<Key, Vec<u8>> {
    scan::every_row(store, info)
        .await
        .into_iter()
        .map(|r| (r.key.clone(), canonical(Item::schema(), &r)))
        .collect()
}

/// Waits for every outbox to drain and every projection to catch up;
/// panics with the workers' status (relay errors, lags) when they do not
/// within `secs`.
async fn settled(sync: &polyrouter::sync::SyncHandle, secs: u64) {
    if let Err(e) = sync.settle(Duration::from_secs(secs)).await {
        panic!("{e}; sync status: {:#?}", sync.status());
    }
}

/// Rows the source held before the migration (written without events).
async fn seed(router: &Router, rows: i64) {
    router.repo::<Item>().await.unwrap();
    let src = router.store("src").unwrap();
    let plain = info("src");
    for start in (0..rows).step_by(2000) {
        let ops = (start..(start + 2000).min(rows))
            .map(|i| WriteOp::Put {
                record: Record::from_entity(&item(i, 0)).unwrap(),
                precondition: Precondition::None,
                ttl: None,
            })
            .collect();
        src.write(&plain, ops, false).await.unwrap();
    }
}

async fn assert_equal(router: &Router) {
    let src = all(router.store("src").unwrap(), &info("src")).await;
    let dst = all(router.store("dst").unwrap(), &info("dst")).await;
    assert_eq!(src.len(), dst.len(), "row counts differ");
    for (k, v) in &src {
        assert_eq!(dst.get(k), Some(v), "key {k} differs");
    }
}

/// Writers on shared keys: puts (new and existing keys) and deletes.
fn writers(
    router: &Router,
    n: usize,
    keys: i64,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<u64>> {
    (0..n)
        .map(|w| {
            let router = router.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let items = router.repo::<Item>().await.unwrap();
                let mut rng = fastrand::Rng::with_seed(w as u64 + 7);
                let mut done = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let k = rng.i64(0..keys);
                    let out = if rng.u8(0..10) < 3 {
                        items.delete(k).await.map(|_| ())
                    } else {
                        items.put(&item(k, rng.i64(1..1_000_000))).await.map(|_| ())
                    };
                    match out {
                        Ok(()) => done += 1,
                        // Refused up front (this process lost sight of the
                        // migration's state row for a moment): retried later.
                        Err(polyrouter::Error::Unavailable { .. }) => {
                            tokio::time::sleep(Duration::from_millis(10)).await
                        }
                        Err(e) => panic!("writer {w}: {e}"),
                    }
                }
                done
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backfill_100k_under_concurrent_writers_with_dual_write_ends_equal() {
    let env = Env::new("bf");
    let router = Router::from_toml_str(&env.toml(1000, 0)).await.unwrap();
    seed(&router, 100_000).await;
    // The sync worker relays the outbox and runs the dual-write.
    let sync = router.sync().await.unwrap();
    let m: Migration = router.migration("items").await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = writers(&router, 4, 110_000, stop.clone());
    let s = m.start(&mut |_| {}).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let mut writes = 0;
    for t in tasks {
        writes += t.await.unwrap();
    }
    assert!(
        writes > 100,
        "the writers wrote during the backfill ({writes})"
    );
    assert_eq!(s.phase, Phase::Backfilled);
    assert!(
        s.backfill.done && s.backfill.rows >= 90_000,
        "{:?}",
        s.backfill
    );
    settled(&sync, 120).await;
    let st = sync.status();
    assert_eq!(st.projections[0].dead_lettered, 0, "{st:?}");
    // Writes behind the cursor came through the dual-write; writes ahead
    // of it through the scan; deletes stayed deleted: nothing to repair.
    let v = m.verify(&mut |_| {}).await.unwrap();
    let found = v.verify.unwrap();
    assert_eq!(
        found.differences(),
        0,
        "{:?}",
        &found.mismatches[..found.mismatches.len().min(5)]
    );
    assert_eq!(v.phase, Phase::Verified);
    assert_equal(&router).await;
    sync.shutdown().await.unwrap();
}

/// `k` differences of each kind while nothing dual-writes: changed (a
/// source write the target did not get: keys `13 + i × stride`), missing
/// (a source-only key from 5 000), extra (a target-only key from 9 000).
async fn inject_differences(
    router: &Router,
    k: i64,
    stride: i64,
) -> BTreeMap<StoredKey, Difference> {
    let items = router.repo::<Item>().await.unwrap();
    let mut expected = BTreeMap::new();
    for i in 0..k {
        let changed = 13 + i * stride;
        items.put(&item(changed, 99)).await.unwrap();
        expected.insert(StoredKey::Int(changed), Difference::Changed);
        let missing = 5_000 + i;
        items.put(&item(missing, 1)).await.unwrap();
        expected.insert(StoredKey::Int(missing), Difference::Missing);
        let extra = 9_000 + i;
        let mut r = Record::from_entity(&item(extra, 1)).unwrap();
        r.version = 1;
        router
            .store("dst")
            .unwrap()
            .apply_versioned(&info("dst"), vec![VersionedChange::put(r)])
            .await
            .unwrap();
        expected.insert(StoredKey::Int(extra), Difference::Extra);
    }
    expected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_every_injected_mismatch_and_repair_fixes_them() {
    let env = Env::new("vf");
    let router = Router::from_toml_str(&env.toml(100, 0)).await.unwrap();
    seed(&router, 1000).await;
    let m = router.migration("items").await.unwrap();
    m.start(&mut |_| {}).await.unwrap();
    let v = m.verify(&mut |_| {}).await.unwrap();
    assert_eq!(v.phase, Phase::Verified);
    // k of each kind: changed, missing, extra.
    let k = 7;
    let expected = inject_differences(&router, k, 101).await;
    let v = m.verify(&mut |_| {}).await.unwrap();
    assert_eq!(v.phase, Phase::Differences);
    let found = v.verify.unwrap();
    assert_eq!(
        (found.changed, found.missing, found.extra),
        (k as u64, k as u64, k as u64)
    );
    let listed: BTreeMap<StoredKey, Difference> = found
        .mismatches
        .iter()
        .map(|x| (x.key.clone(), x.difference))
        .collect();
    assert_eq!(listed, expected);
    let r = m.repair().await.unwrap();
    assert_eq!(r.repaired, 3 * k as u64);
    assert!(r.unrepairable.is_empty());
    assert_eq!(m.verify(&mut |_| {}).await.unwrap().phase, Phase::Verified);
    assert_equal(&router).await;
}

/// The migration's shadow counts once `done(counts)` holds (the routers
/// add theirs every `poll`), or the counts at the deadline.
async fn shadow_until(
    m: &Migration,
    done: impl Fn(&polyrouter::migrate::ShadowCounts) -> bool,
) -> polyrouter::migrate::ShadowCounts {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let counts = m.status().await.unwrap().and_then(|s| s.shadow);
        if let Some(c) = &counts {
            if done(c) || std::time::Instant::now() > deadline {
                return c.clone();
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no shadow counts within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_reads_count_exactly_the_differences_and_not_the_dual_write_lag() {
    let env = Env::new("sh");
    let toml = env.toml(100, 0) + "shadow_reads = 1.0\n";
    let router = Router::from_toml_str(&toml).await.unwrap();
    seed(&router, 200).await;
    let items = router.repo::<Item>().await.unwrap();
    // Before the backfill ends nothing is compared (the target lacks rows
    // by design).
    for id in 0..50 {
        items.get(id).await.unwrap().unwrap();
    }
    let m = router.migration("items").await.unwrap();
    assert!(m.status().await.unwrap().is_none());
    m.start(&mut |_| {}).await.unwrap();
    // Equal sides: reads compared, none different (read until this
    // router's poll has seen the phase and added its counts).
    let counts = loop {
        for id in 0..200 {
            items.get(id).await.unwrap().unwrap();
        }
        let c = m.status().await.unwrap().unwrap().shadow;
        if c.as_ref().is_some_and(|c| c.compared >= 200) {
            break c.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // (Reads beyond the compares in flight are counted as skipped.)
    assert_eq!(counts.differences, 0, "{counts:?}");
    // Without sync running nothing dual-writes: k of each kind.
    let k = 5;
    let expected = inject_differences(&router, k, 37).await;
    let keys: Vec<i64> = expected
        .keys()
        .map(|k| match k {
            StoredKey::Int(i) => *i,
            other => panic!("{other:?}"),
        })
        .collect();
    // Half through get, half through get_many.
    for id in &keys[..keys.len() / 2] {
        items.get(*id).await.unwrap();
    }
    items
        .get_many(keys[keys.len() / 2..].to_vec())
        .await
        .unwrap();
    let want = 3 * k as u64;
    let counts = shadow_until(&m, |c| c.differences >= want).await;
    assert_eq!(counts.differences, want, "{counts:?}");
    let listed: BTreeMap<StoredKey, Difference> = counts
        .recent
        .iter()
        .map(|x| (x.key.clone(), x.difference))
        .collect();
    assert_eq!(listed, expected);
    // With the dual-write running, a read right after a write may find
    // the target behind: re-read, never counted.
    let sync = router.sync().await.unwrap();
    let before = counts.compared;
    for id in 1000..1040 {
        items.put(&item(id, 7)).await.unwrap();
        items.get(id).await.unwrap().unwrap();
    }
    settled(&sync, 30).await;
    let counts = shadow_until(&m, |c| c.compared >= before + 40).await;
    assert!(counts.compared >= before + 40, "{counts:?}");
    assert_eq!(
        counts.differences, want,
        "lag counted as a difference: {counts:?}"
    );
    sync.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfilled_row_never_overwrites_a_newer_target_row_and_deletes_stay_deleted() {
    let env = Env::new("vg");
    let router = Router::from_toml_str(&env.toml(50, 0)).await.unwrap();
    seed(&router, 200).await;
    let dst = router.store("dst").unwrap().clone();
    let target = info("dst");
    dst.ensure_entity(&target).await.unwrap();
    // A newer write of key 10 and a delete of key 11, already in the
    // target (as dual-writes would put them), at versions above the source's.
    let mut newer = Record::from_entity(&item(10, 42)).unwrap();
    newer.version = 50;
    dst.apply_versioned(
        &target,
        vec![
            VersionedChange::put(newer.clone()),
            VersionedChange::delete(Key::Int(11), 50),
        ],
    )
    .await
    .unwrap();
    let m = router.migration("items").await.unwrap();
    let s = m.start(&mut |_| {}).await.unwrap();
    assert_eq!(s.backfill.rows, 200);
    assert_eq!(s.backfill.skipped, 2);
    let got = dst.get(&target, &Key::Int(10)).await.unwrap().unwrap();
    assert_eq!((got.version, got.get("n")), (50, Some(&Value::I64(42))));
    assert!(dst.get(&target, &Key::Int(11)).await.unwrap().is_none());
    // Verify sees both; repair cannot move the target back in time.
    let v = m.verify(&mut |_| {}).await.unwrap().verify.unwrap();
    assert_eq!((v.changed, v.missing, v.extra), (1, 1, 0));
    assert_eq!(m.repair().await.unwrap().unrepairable.len(), 2);
}

const KILL_TEST: &str =
    "the_migrating_process_killed_during_backfill_and_verify_resumes_from_its_cursor";

/// The child: what `polyrouter migrate CMD items --config FILE` runs
/// (this test binary re-executed, so the child is the code under test and
/// not whichever `polyrouter` binary a shared target directory holds).
async fn child(cmd: &str, config: &str) {
    let router = Router::from_file(config).await.expect("child router");
    let m = router.migration("items").await.expect("migration");
    match cmd {
        "start" => drop(m.start(&mut |_| {}).await.expect("start")),
        "verify" => drop(m.verify(&mut |_| {}).await.expect("verify")),
        other => panic!("unknown child command {other}"),
    }
}

/// Runs the migration's `cmd` in a child process and SIGKILLs it once
/// `reached` says so (polled on the state row); returns whether it was
/// killed.
async fn run_and_kill(
    config: &std::path::Path,
    cmd: &str,
    m: &Migration,
    reached: impl Fn(&polyrouter::migrate::MigrationState) -> bool,
) -> bool {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "--nocapture", "--test-threads=1", KILL_TEST])
        .env("MIGRATE_CHILD", cmd)
        .env("MIGRATE_CHILD_CONFIG", config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            assert!(status.success(), "migrate {cmd} failed: {err}");
            return false;
        }
        if let Some(s) = m.status().await.unwrap() {
            if reached(&s.state) {
                child.kill().unwrap(); // SIGKILL, by this child's pid
                child.wait().unwrap();
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migrating_process_killed_during_backfill_and_verify_resumes_from_its_cursor() {
    if let Ok(cmd) = std::env::var("MIGRATE_CHILD") {
        return child(&cmd, &std::env::var("MIGRATE_CHILD_CONFIG").unwrap()).await;
    }
    let env = Env::new("kill");
    let config = env.config_file(200, 0);
    let router = Router::from_toml_str(&env.toml(200, 0)).await.unwrap();
    let rows = 20_000i64;
    seed(&router, rows).await;
    let m = router.migration("items").await.unwrap();
    let mut kills = 0;
    for at in [1_000u64, 4_000, 9_000, 15_000] {
        if run_and_kill(&config, "start", &m, |s| s.backfill.rows >= at).await {
            kills += 1;
            let s = m.status().await.unwrap().unwrap().state;
            assert_eq!(s.phase, Phase::Backfill);
            assert!(s.backfill.rows >= at && !s.backfill.done);
        }
    }
    assert!(
        kills >= 3,
        "the child was killed during its backfill {kills} time(s)"
    );
    assert!(!run_and_kill(&config, "start", &m, |_| false).await);
    let s = m.status().await.unwrap().unwrap().state;
    assert_eq!(s.phase, Phase::Backfilled);
    // Every row copied exactly once in the counters (the cursor and the
    // counters are saved together), and every row equal.
    assert_eq!(s.backfill.rows, rows as u64);
    assert_equal(&router).await;

    let mut kills = 0;
    for at in [2_000u64, 12_000, 21_000, 33_000] {
        let killed = run_and_kill(&config, "verify", &m, |s| {
            s.verify
                .as_ref()
                .is_some_and(|v| v.source_rows + v.target_rows >= at && !v.done)
        })
        .await;
        if killed {
            kills += 1;
            let s = m.status().await.unwrap().unwrap().state;
            assert_eq!(s.phase, Phase::Verify);
        }
    }
    assert!(
        kills >= 3,
        "the child was killed during its verify {kills} time(s)"
    );
    assert!(!run_and_kill(&config, "verify", &m, |_| false).await);
    let s = m.status().await.unwrap().unwrap().state;
    assert_eq!(s.phase, Phase::Verified);
    let v = s.verify.unwrap();
    assert_eq!((v.source_rows, v.target_rows), (rows as u64, rows as u64));
    assert_eq!(v.differences(), 0);
    assert_equal(&router).await;
}

/// Each key's last acknowledged write (`None`: deleted), and how many
/// writes a fence refused.
type Written = (BTreeMap<i64, Option<i64>>, u64);

/// Tells [`owning_writers`] to wait (`hold`) or to end (`stop`).
#[derive(Default)]
struct WriterControl {
    hold: AtomicBool,
    stop: AtomicBool,
}

/// Writers each owning their keys (`k % n == w`), putting and deleting,
/// retrying a write refused while a switch fences the entity; each
/// returns the state its last acknowledged write left per key.
fn owning_writers(
    router: &Router,
    n: i64,
    keys: i64,
    pause: Duration,
    control: Arc<WriterControl>,
) -> Vec<tokio::task::JoinHandle<Written>> {
    (0..n)
        .map(|w| {
            let router = router.clone();
            let control = control.clone();
            tokio::spawn(async move {
                let items = router.repo::<Item>().await.unwrap();
                let mut rng = fastrand::Rng::with_seed(w as u64 + 100);
                let mut last = BTreeMap::new();
                let mut refused = 0u64;
                let mut i = 0i64;
                while !control.stop.load(Ordering::Relaxed) {
                    if control.hold.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                    i += 1;
                    let k = rng.i64(0..keys / n) * n + w;
                    let delete = rng.u8(0..10) < 3;
                    loop {
                        let out = if delete {
                            items.delete(k).await.map(|_| ())
                        } else {
                            items.put(&item(k, i)).await.map(|_| ())
                        };
                        match out {
                            Ok(()) => break,
                            Err(polyrouter::Error::Unavailable { .. }) => {
                                refused += 1;
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                            Err(e) => panic!("writer {w}: {e}"),
                        }
                    }
                    last.insert(k, (!delete).then_some(i));
                    tokio::time::sleep(pause).await;
                }
                (last, refused)
            })
        })
        .collect()
}

/// Every key's `n` in `store` (absent: `None`).
async fn values(store: &Arc<dyn Store>, info: &EntityInfo) -> BTreeMap<i64, i64> {
    scan::every_row(store, info)
        .await
        .into_iter()
        .map(|r| match (&r.key, r.get("n")) {
            (Key::Int(k), Some(Value::I64(n))) => (*k, *n),
            _ => panic!("row {r:?}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_through_every_phase_are_never_lost_cutover_rollback_finish() {
    through_every_phase(Env::new("cut"), 5_000, Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_to_cosmos_through_every_phase_loses_nothing() {
    // Against the emulator the writers go slower than its dual-write can
    // apply (it answers in tens of milliseconds under load).
    through_every_phase(Env::cosmos("cos"), 1_000, Duration::from_millis(100)).await;
}

/// The other pairs among SQLite, PostgreSQL and MariaDB, and Cosmos DB as
/// a source, through every phase; Redis (no queries: its rows cannot be
/// listed in key order) refused up front as either side.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_other_pair_of_engines_through_every_phase_loses_nothing() {
    for (src, dst) in [
        ("sqlite", "mysql"),
        ("mysql", "sqlite"),
        ("postgres", "mysql"),
        ("mysql", "postgres"),
        ("postgres", "sqlite"),
        ("cosmos", "mysql"),
    ] {
        eprintln!("== {src} -> {dst}");
        // Paced (10 ms between a writer's writes): six pairs of server
        // stores through every phase in a moderate time.
        through_every_phase(Env::pair("pair", src, dst), 300, Duration::from_millis(10)).await;
    }
    for (src, dst, refused) in [("sqlite", "redis", "dst"), ("redis", "sqlite", "src")] {
        let env = Env::pair("redis", src, dst);
        let router = Router::from_toml_str(&env.toml(100, 0)).await.unwrap();
        match router.migration("items").await {
            Err(polyrouter::Error::Unsupported {
                store, capability, ..
            }) => {
                assert_eq!(store, refused, "{src} -> {dst}");
                assert!(capability.contains("key order"), "{capability}");
            }
            other => panic!("{src} -> {dst}: expected Unsupported, got {other:?}"),
        }
    }
}

/// Backfill, verify, cutover, rollback, cutover, finish while writers
/// put and delete; then both stores hold exactly every key's last
/// acknowledged write.
async fn through_every_phase(env: Env, rows: i64, pace: Duration) {
    // The emulator answers a 500-key read slower than the store's timeout.
    let batch = if env.uses("cosmos") { 50 } else { 500 };
    let router = Router::from_toml_str(&env.toml(batch, 0)).await.unwrap();
    seed(&router, rows).await;
    let sync = router.sync().await.unwrap();
    let m = router.migration("items").await.unwrap();
    let control = Arc::new(WriterControl::default());
    let tasks = owning_writers(&router, 4, rows + rows / 5, pace, control.clone());
    let pause = || tokio::time::sleep(Duration::from_millis(700));
    m.start(&mut |_| {}).await.unwrap();
    // The dual-write catches up with the backfill's competition first.
    // `settle` needs a moment with every outbox empty, which writers
    // never leave on a loaded machine (a Cosmos DB source's outbox
    // refills while its count runs): they wait for it, then go on.
    control.hold.store(true, Ordering::Relaxed);
    settled(&sync, 300).await;
    control.hold.store(false, Ordering::Relaxed);
    // Verify under writes: a change still in the dual-write is re-read,
    // not reported.
    let v = m.verify(&mut |_| {}).await.unwrap();
    assert_eq!(v.phase, Phase::Verified, "{:?}", v.verify);
    let cut = m.cutover().await.unwrap();
    assert_eq!(cut.phase, Phase::CutOver);
    pause().await;
    // Reads and writes go to the target now: a write lands there first.
    let items = router.repo::<Item>().await.unwrap();
    let probe = loop {
        match items.put(&item(1_000_003, 7)).await {
            Ok(v) => break v,
            Err(polyrouter::Error::Unavailable { .. }) => pause().await,
            Err(e) => panic!("{e}"),
        }
    };
    let dst = router.store("dst").unwrap().clone();
    let got = dst.get(&info("dst"), &Key::Int(1_000_003)).await.unwrap();
    assert_eq!(got.map(|r| r.version), Some(probe));
    assert!(
        m.verify(&mut |_| {}).await.is_err(),
        "verify refuses after cutover"
    );
    let back = m.rollback().await.unwrap();
    assert_eq!(back.phase, Phase::RolledBack);
    pause().await;
    assert_eq!(m.cutover().await.unwrap().phase, Phase::CutOver);
    pause().await;
    assert_eq!(m.finish().await.unwrap().phase, Phase::Finished);
    pause().await;
    control.stop.store(true, Ordering::Relaxed);
    let mut expected = BTreeMap::new();
    let mut refused = 0;
    for t in tasks {
        let (last, r) = t.await.unwrap();
        expected.extend(last);
        refused += r;
    }
    settled(&sync, 120).await;
    assert_eq!(
        sync.status()
            .projections
            .iter()
            .map(|p| p.dead_lettered)
            .sum::<u64>(),
        0
    );
    // Every acknowledged write is in both stores, whichever was the primary
    // when it was made: the target (primary now) and the source (kept
    // current by the reverse dual-write) hold exactly the same rows.
    let src = router.store("src").unwrap().clone();
    let (in_src, in_dst) = (
        values(&src, &info("src")).await,
        values(&dst, &info("dst")).await,
    );
    for (k, want) in &expected {
        assert_eq!(in_dst.get(k), want.as_ref(), "target, key {k}");
        assert_eq!(in_src.get(k), want.as_ref(), "source, key {k}");
    }
    assert!(
        expected.len() > 100,
        "the writers wrote {} keys",
        expected.len()
    );
    eprintln!("writes refused by the fences and retried: {refused}");
    assert_equal(&router).await;
    sync.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_migration_the_stores_cannot_honour_is_refused_up_front() {
    let base = |outbox: &str, to: &str, extra: &str| {
        format!(
            "[stores.m]\nkind = \"memory\"\n[stores.n]\nkind = \"memory\"\n{extra}[buses.events]\nkind = \"memory\"\n[sync]\nstore = \"m\"\n[entities.item]\nstore = \"m\"\n{outbox}\n[migrations.x]\nentity = \"item\"\nto = \"{to}\"\n"
        )
    };
    // No outbox on the source route: nothing to dual-write through.
    let e = polyrouter::config::Config::parse(&base("", "n", ""), "app.toml").unwrap_err();
    assert!(
        e.to_string().contains("migrations.x.entity") && e.to_string().contains("outbox"),
        "{e}"
    );
    // Events without the record: refused too.
    let e = polyrouter::config::Config::parse(
        &base(
            "outbox = { bus = \"events\", after_image = false }",
            "n",
            "",
        ),
        "app.toml",
    )
    .unwrap_err();
    assert!(e.to_string().contains("after_image"), "{e}");
    // A target that cannot apply versioned changes (a blob store).
    let dir = tempfile::tempdir().unwrap();
    let files = format!(
        "[stores.files]\nkind = \"fs\"\nroot = \"{}\"\n",
        dir.path().display()
    );
    // (Through the CLI's path: the schema from `sql` columns, no Rust type.)
    let sql = "outbox = { bus = \"events\" }\nsql = { columns = { id = \"int\", n = \"int\" } }";
    let router = Router::from_toml_str(&base(sql, "files", &files))
        .await
        .unwrap();
    match router.migration("x").await {
        Err(polyrouter::Error::Unsupported {
            store,
            entity,
            capability,
        }) => {
            assert_eq!((store.as_str(), entity.as_str()), ("files", "item"));
            assert!(capability.contains("versioned apply"), "{capability}");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    // A process binding the entity refuses it too, naming the store.
    let e = router.repo::<Item>().await.unwrap_err();
    assert!(
        matches!(&e, polyrouter::Error::Unsupported { store, .. } if store == "files"),
        "{e}"
    );
    // The one that can.
    let router = Router::from_toml_str(&base("outbox = { bus = \"events\" }", "n", ""))
        .await
        .unwrap();
    router.repo::<Item>().await.unwrap();
    assert!(router.migration("x").await.is_ok());
}
