//! A migration whose dual-write is fed by change capture (docs/migration.md,
//! "A source other applications write"): the source route has
//! `change_capture` instead of an outbox, and another application — a raw
//! sqlx pool writing plain SQL — changes the table beside the router's own
//! writers. PostgreSQL (logical decoding) → MariaDB and MariaDB (binlog) →
//! PostgreSQL through backfill, verify, an injected difference and its
//! repair, cutover, rollback, a second cutover and finish: afterwards both
//! stores hold exactly every key's last acknowledged write, the plain-SQL
//! ones included, and the reverse dual-write's own writes to the source,
//! which the capture sees too, never came back over newer target writes;
//! shadow reads of every read-back compare the fields and find nothing.
//!
//! Needs the private servers `scripts/services pg-logical` (127.0.0.1:5442)
//! and `scripts/services mariadb-binlog` (127.0.0.1:3316) for the sources,
//! and the machine's PostgreSQL (5432) and MariaDB (3306) for the targets.
//!
//! `cargo test --all-features --test migrate_capture`
#![cfg(all(feature = "postgres", feature = "mysql"))]

#[path = "support/cdc_sql.rs"]
mod cdc_sql;
#[path = "support/cdc.rs"]
mod cdc_support;
#[path = "support/scan.rs"]
mod scan;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cdc_sql::{Arg, Exec};
use polyrouter::migrate::{Phase, canonical_fields};
use polyrouter::store::{EntityInfo, VersionedChange};
use polyrouter::{Entity, Key, Record, Router, Store, Value};
use serde::{Deserialize, Serialize};
use sqlx::mysql::MySqlPool;
use sqlx::postgres::PgPool;

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

fn logical_url() -> String {
    std::env::var("POLYROUTER_TEST_PG_LOGICAL_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5442/test".into())
}

fn binlog_url() -> String {
    std::env::var("POLYROUTER_TEST_MARIADB_BINLOG_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3316/test".into())
}

#[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[entity(name = "item", key = "id")]
struct Item {
    id: i64,
    n: i64,
    note: Option<String>,
    #[entity(version)]
    version: u64,
}

fn item(id: i64, n: i64) -> Item {
    Item {
        id,
        n,
        note: (n % 3 == 0).then(|| format!("note {n}")),
        version: 0,
    }
}

/// The source's server, written with plain SQL like another application.
#[derive(Clone)]
enum Sql {
    Pg(PgPool),
    My(MySqlPool),
}

impl Sql {
    async fn connect(kind: &str) -> Sql {
        match kind {
            "postgres" => Sql::Pg(PgPool::connect(&logical_url()).await.expect(
                "the pg-logical server (scripts/services pg-logical) answers on 127.0.0.1:5442",
            )),
            _ => Sql::My(MySqlPool::connect(&binlog_url()).await.expect(
                "the mariadb-binlog server (scripts/services mariadb-binlog) answers on 127.0.0.1:3316",
            )),
        }
    }

    /// Runs one statement with `args` bound in order.
    async fn run(&self, sql: &str, args: &[Arg]) {
        match self {
            Sql::Pg(p) => p.execute(sql, args).await,
            Sql::My(p) => p.execute(sql, args).await,
        }
        .unwrap();
    }

    /// Insert or update `(id, n, note)`; polyrouter's version column is
    /// set to 1 and never bumped, its tombstone marker cleared.
    async fn upsert(&self, table: &str, id: i64, n: i64) {
        let sql = match self {
            Sql::Pg(_) => format!(
                "INSERT INTO \"{table}\" (id, n, note, _pr_version) VALUES ($1, $2, $3, 1) \
                 ON CONFLICT (id) DO UPDATE SET n = excluded.n, note = excluded.note, _pr_expires_at = NULL"
            ),
            Sql::My(_) => format!(
                "INSERT INTO `{table}` (id, n, note, _pr_version) VALUES (?, ?, ?, 1) \
                 ON DUPLICATE KEY UPDATE n = VALUES(n), note = VALUES(note), _pr_expires_at = NULL"
            ),
        };
        let note = (n % 3 == 0).then(|| format!("note {n}"));
        self.run(
            &sql,
            &[id.into(), n.into(), note.map_or(Arg::Null, Arg::from)],
        )
        .await;
    }

    async fn delete(&self, table: &str, id: i64) {
        let sql = match self {
            Sql::Pg(_) => format!("DELETE FROM \"{table}\" WHERE id = $1"),
            Sql::My(_) => format!("DELETE FROM `{table}` WHERE id = ?"),
        };
        self.run(&sql, &[id.into()]).await;
    }

    async fn exec(&self, sql: &str) {
        self.run(sql, &[]).await;
    }

    /// Table names (and PostgreSQL slots not in use) of this test's runs.
    async fn names(&self) -> Vec<String> {
        match self {
            Sql::Pg(p) => sqlx::query_scalar(
                "SELECT slot_name::text FROM pg_replication_slots WHERE slot_name LIKE 'migc\\_%' AND NOT active \
                 UNION SELECT tablename::text FROM pg_tables WHERE tablename LIKE 'migc\\_%'",
            )
            .fetch_all(p)
            .await
            .unwrap(),
            Sql::My(p) => sqlx::query_scalar(
                "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'migc\\_%'",
            )
            .fetch_all(p)
            .await
            .unwrap(),
        }
    }

    /// Drops what a run named `base` left in the source's server: its
    /// slot (PostgreSQL) or position row (MariaDB), publication, tables.
    async fn drop_run(&self, base: &str) {
        match self {
            Sql::Pg(_) => {
                self.exec(&format!(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{base}' AND NOT active"
                ))
                .await;
                self.exec(&format!("DROP PUBLICATION IF EXISTS \"{base}\""))
                    .await;
            }
            Sql::My(p) => {
                let _ = sqlx::query("DELETE FROM polyrouter_capture WHERE slot = ?")
                    .bind(base)
                    .execute(p)
                    .await;
            }
        }
        for t in ["", "_sync", "_sync_dead_letters", "_mig"] {
            let q = match self {
                Sql::Pg(_) => format!("DROP TABLE IF EXISTS \"{base}{t}\""),
                Sql::My(_) => format!("DROP TABLE IF EXISTS `{base}{t}`"),
            };
            self.exec(&q).await;
        }
    }
}

/// One run's names: the source table (also the slot and the prefix of the
/// sync and state tables) and the target's schema or database.
struct Env {
    src: &'static str,
    dst: &'static str,
    table: String,
}

impl Env {
    fn new(src: &'static str, dst: &'static str) -> Env {
        Env {
            src,
            dst,
            table: cdc_support::unique("migc", &src[..2]),
        }
    }

    fn toml(&self) -> String {
        let t = &self.table;
        let src_url = match self.src {
            "postgres" => logical_url(),
            _ => binlog_url(),
        };
        let dst = match self.dst {
            "postgres" => format!("url = \"{PG_URL}\"\nschema = \"{t}\""),
            _ => format!("url = \"{MYSQL_URL}\"\ndatabase = \"{t}\""),
        };
        format!(
            r#"
[stores.src]
kind = "{src}"
url = "{src_url}"

[stores.dst]
kind = "{dst_kind}"
{dst}

[buses.events]
kind = "memory"

[sync]
store = "src"
table = "{t}_sync"
lease = "1s"
relay_interval = "5ms"

[entities.item]
store = "src"
table = "{t}"
change_capture = {{ bus = "events", slot = "{t}", interval = "20ms" }}
sql = {{ key = "id", columns = {{ id = "int", n = "int", note = "string?" }} }}

[migrations.items]
entity = "item"
to = "dst"
batch = 200
rate = 0
lease = "2s"
poll = "250ms"
state_table = "{t}_mig"
shadow_reads = 1.0
"#,
            src = self.src,
            dst_kind = self.dst,
        )
    }

    async fn cleanup(&self) {
        Sql::connect(self.src).await.drop_run(&self.table).await;
        match self.dst {
            "postgres" => {
                let p = PgPool::connect(PG_URL).await.unwrap();
                sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.table))
                    .execute(&p)
                    .await
                    .unwrap();
            }
            _ => {
                let p = MySqlPool::connect(MYSQL_URL).await.unwrap();
                sqlx::query(&format!("DROP DATABASE IF EXISTS `{}`", self.table))
                    .execute(&p)
                    .await
                    .unwrap();
            }
        }
    }
}

/// Drops what earlier runs of this test binary left behind when their
/// process is gone (a failed run keeps its slot, which keeps log).
async fn sweep(sql: &Sql) {
    for base in cdc_support::dead_runs(&sql.names().await) {
        sql.drop_run(&base).await;
    }
}

fn info(store: &str, table: &str) -> EntityInfo {
    EntityInfo {
        store: store.into(),
        table: table.into(),
        ..EntityInfo::new(Item::schema())
    }
}

/// Every row of `store` by key: `n`, and the canonical fields (no version).
async fn rows(store: &Arc<dyn Store>, info: &EntityInfo) -> BTreeMap<i64, (i64, Vec<u8>)> {
    let mut out = BTreeMap::new();
    for r in scan::every_row(store, info).await {
        let (Key::Int(k), Some(Value::I64(n))) = (&r.key, r.get("n")) else {
            panic!("row {r:?}")
        };
        out.insert(*k, (*n, canonical_fields(Item::schema(), &r)));
    }
    out
}

async fn settled(sync: &polyrouter::sync::SyncHandle, secs: u64) {
    if let Err(e) = sync.settle(Duration::from_secs(secs)).await {
        panic!("{e}; sync status: {:#?}", sync.status());
    }
}

/// Each key's state after its last acknowledged write (`None`: deleted).
type Last = BTreeMap<i64, Option<i64>>;

/// The router's writers: writer `w` owns the keys `k % 8 == w` (w < 4),
/// puts and deletes them — often twice in a row — retrying a write
/// refused while a switch fences the entity, and reads each key back a
/// moment later: a read that does not return the writer's own last write
/// (an older change copied back over it) is counted.
fn router_writers(
    router: &Router,
    keys: i64,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<(Last, Vec<String>)>> {
    (0..4)
        .map(|w| {
            let router = router.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let items = router.repo::<Item>().await.unwrap();
                let mut rng = fastrand::Rng::with_seed(w as u64 + 11);
                let (mut last, mut regressions) = (Last::new(), Vec::new());
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let k = rng.i64(0..keys / 8) * 8 + w;
                    for _ in 0..rng.usize(1..3) {
                        i += 1;
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
                                    tokio::time::sleep(Duration::from_millis(10)).await
                                }
                                Err(e) => panic!("writer {w}: {e}"),
                            }
                        }
                        last.insert(k, (!delete).then_some(i));
                    }
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    match items.get(k).await {
                        Ok(got) => {
                            let got = got.map(|it| it.n);
                            if got != last[&k] {
                                regressions
                                    .push(format!("key {k}: wrote {:?}, read {got:?}", last[&k]));
                            }
                        }
                        Err(polyrouter::Error::Unavailable { .. }) => {}
                        Err(e) => panic!("writer {w}: {e}"),
                    }
                }
                (last, regressions)
            })
        })
        .collect()
}

/// Another application's writers: plain SQL on the keys `k % 8 >= 4`.
fn sql_writers(
    sql: &Sql,
    table: &str,
    keys: i64,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Last>> {
    (4..6)
        .map(|w| {
            let (sql, table, stop) = (sql.clone(), table.to_string(), stop.clone());
            tokio::spawn(async move {
                let mut rng = fastrand::Rng::with_seed(w as u64 + 23);
                let mut last = Last::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let k = rng.i64(0..keys / 8) * 8 + w + 2 * rng.i64(0..2);
                    if rng.u8(0..10) < 3 {
                        sql.delete(&table, k).await;
                        last.insert(k, None);
                    } else {
                        sql.upsert(&table, k, 1_000_000 + i).await;
                        last.insert(k, Some(1_000_000 + i));
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                last
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_capture_to_mariadb_through_every_phase_loses_nothing() {
    through_every_phase(Env::new("postgres", "mysql")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_binlog_to_postgres_through_every_phase_loses_nothing() {
    through_every_phase(Env::new("mysql", "postgres")).await;
}

async fn through_every_phase(env: Env) {
    const ROWS: i64 = 2_000;
    let sql = Sql::connect(env.src).await;
    sweep(&sql).await;
    let router = Router::from_toml_str(&env.toml()).await.unwrap();
    router.repo::<Item>().await.unwrap();
    // Rows from before the capture existed: only the backfill copies them.
    for k in 0..ROWS {
        sql.upsert(&env.table, k, k).await;
    }
    // A key nobody writes, for an injected difference.
    let lone = ROWS + 1_000;
    sql.upsert(&env.table, lone, 5).await;
    let sync = router.sync().await.unwrap();
    let m = router.migration("items").await.unwrap();
    let (stop_sql, stop_router) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let external = sql_writers(&sql, &env.table, ROWS, stop_sql.clone());
    let ours = router_writers(&router, ROWS, stop_router.clone());
    let pause = || tokio::time::sleep(Duration::from_millis(700));

    m.start(&mut |_| {}).await.unwrap();
    // Verify under writes: a change still in the capture or the dual-write
    // is read again, not reported (the writers never leave the log quiet
    // long enough for `settle`).
    let v = m.verify(&mut |_| {}).await.unwrap();
    assert_eq!(v.phase, Phase::Verified, "{:?}", v.verify);

    // A difference injected into the target: found, and repaired although
    // the target's version is above the source's (versions are log
    // positions there, counters here).
    let dst = router.store("dst").unwrap().clone();
    let src = router.store("src").unwrap().clone();
    let t = dst
        .get(&info("dst", &env.table), &Key::Int(lone))
        .await
        .unwrap()
        .unwrap();
    let mut changed = Record::from_entity(&item(lone, 6)).unwrap();
    changed.version = t.version + 10;
    dst.apply_versioned(
        &info("dst", &env.table),
        vec![VersionedChange::put(changed)],
    )
    .await
    .unwrap();
    let v = m.verify(&mut |_| {}).await.unwrap();
    assert_eq!(v.phase, Phase::Differences, "{:?}", v.verify);
    assert_eq!(v.verify.as_ref().unwrap().changed, 1, "{:?}", v.verify);
    let r = m.repair().await.unwrap();
    assert_eq!(r.repaired, 1, "{r:?}");
    assert!(r.unrepairable.is_empty(), "{r:?}");
    let v = m.verify(&mut |_| {}).await.unwrap();
    assert_eq!(v.phase, Phase::Verified, "{:?}", v.verify);

    // The other application stops (or moves to the target) before the
    // cutover; the router's writers go on through every switch.
    stop_sql.store(true, Ordering::Relaxed);
    let mut expected = Last::new();
    for t in external {
        expected.extend(t.await.unwrap());
    }
    assert_eq!(m.cutover().await.unwrap().phase, Phase::CutOver);
    pause().await;
    assert_eq!(m.rollback().await.unwrap().phase, Phase::RolledBack);
    pause().await;
    assert_eq!(m.cutover().await.unwrap().phase, Phase::CutOver);
    pause().await;
    assert_eq!(m.finish().await.unwrap().phase, Phase::Finished);
    pause().await;
    stop_router.store(true, Ordering::Relaxed);
    let (mut ours_written, mut regressions) = (0, Vec::new());
    for t in ours {
        let (last, r) = t.await.unwrap();
        ours_written += last.len();
        expected.extend(last);
        regressions.extend(r);
    }
    assert!(
        regressions.is_empty(),
        "{} read(s) did not return the writer's own last write: {:?}",
        regressions.len(),
        &regressions[..regressions.len().min(10)]
    );
    settled(&sync, 120).await;
    let dead: u64 = sync
        .status()
        .projections
        .iter()
        .map(|p| p.dead_lettered)
        .sum();
    assert_eq!(dead, 0, "{:#?}", sync.status());

    let (in_src, in_dst) = (
        rows(&src, &info("src", &env.table)).await,
        rows(&dst, &info("dst", &env.table)).await,
    );
    for (k, want) in &expected {
        assert_eq!(in_dst.get(k).map(|r| r.0), *want, "target, key {k}");
        assert_eq!(in_src.get(k).map(|r| r.0), *want, "source, key {k}");
    }
    assert_eq!(in_src.len(), in_dst.len(), "row counts differ");
    for (k, (_, fields)) in &in_src {
        assert_eq!(in_dst.get(k).map(|r| &r.1), Some(fields), "key {k} differs");
    }
    assert_eq!(in_dst.get(&lone).map(|r| r.0), Some(5));
    // Every read-back was also read from the other side and compared on
    // the fields (the versions differ by design): none differed.
    let shadow = m.status().await.unwrap().unwrap().shadow.unwrap();
    assert!(shadow.compared > 100, "{shadow:?}");
    assert_eq!(shadow.differences, 0, "{shadow:?}");
    assert!(
        ours_written > 50,
        "the router's writers wrote {ours_written} keys"
    );
    sync.shutdown().await.unwrap();
    drop(router);
    env.cleanup().await;
}

/// The cutover waits until the capture has published the source's log up
/// to the fence: changes committed before it but not yet captured (the
/// capture stopped here) reach the target before the target becomes the
/// primary — after that the forward dual-write applies nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cutover_waits_for_the_capture_to_pass_the_fence() {
    for (src, dst) in [("postgres", "mysql"), ("mysql", "postgres")] {
        eprintln!("== {src} -> {dst}");
        let env = Env::new(src, dst);
        let sql = Sql::connect(env.src).await;
        sweep(&sql).await;
        let router = Router::from_toml_str(&env.toml()).await.unwrap();
        let items = router.repo::<Item>().await.unwrap();
        for k in 0..50 {
            sql.upsert(&env.table, k, k).await;
        }
        let sync = router.sync().await.unwrap();
        let m = router.migration("items").await.unwrap();
        m.start(&mut |_| {}).await.unwrap();
        settled(&sync, 60).await;
        assert_eq!(m.verify(&mut |_| {}).await.unwrap().phase, Phase::Verified);
        // The capture stops; the dual-write and the relays go on.
        sync.shutdown().await.unwrap();
        let no_capture = router.sync_builder().captures(false).start().await.unwrap();
        for k in 0..50 {
            items.put(&item(k, 100 + k)).await.unwrap();
        }
        let cutover = tokio::spawn({
            let m = m.clone();
            async move { m.cutover().await }
        });
        // Well past the fence's wait (2 × poll + 100 ms): still fenced,
        // waiting for the capture.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let phase = m.status().await.unwrap().unwrap().state.phase;
        assert_eq!(
            phase,
            Phase::CutoverFence,
            "{src}: the cutover waits for the capture"
        );
        assert!(!cutover.is_finished());
        let capture = router
            .sync_builder()
            .relays(false)
            .projections(false)
            .start()
            .await
            .unwrap();
        assert_eq!(cutover.await.unwrap().unwrap().phase, Phase::CutOver);
        let dst = router.store("dst").unwrap().clone();
        let in_dst = rows(&dst, &info("dst", &env.table)).await;
        for k in 0..50 {
            assert_eq!(in_dst.get(&k).map(|r| r.0), Some(100 + k), "{src}: key {k}");
        }
        capture.shutdown().await.unwrap();
        no_capture.shutdown().await.unwrap();
        drop(router);
        env.cleanup().await;
    }
}
