//! The crash scenario both change-capture crash tests run
//! (`tests/cdc_crash.rs` on PostgreSQL, `tests/cdc_mysql_crash.rs` on
//! MariaDB), written once against [`Engine`]: plain-SQL writers, capture
//! workers SIGKILLed at random moments, a last worker catching up, and the
//! checks after. Each test keeps its view projection, its tables and its
//! bus. Needs `#[path = "support/cdc.rs"] mod cdc_support;` and
//! `#[path = "support/cdc_sql.rs"] mod cdc_sql;` beside it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use crate::cdc_sql::{Arg, Engine};
use crate::cdc_support::{self, Lcg, Worker};

/// How many keys the writers share.
pub const KEYS: u64 = 30;
/// How many workers are SIGKILLed.
pub const KILLS: usize = 12;

/// `{pid}_{millis}`: a run's own suffix for its table names.
pub fn run_id() -> String {
    format!(
        "{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            % 1_000_000_000
    )
}

/// Plain SQL, never through polyrouter: upserts, deletes, and transactions
/// of three upserts (one that fails, e.g. a deadlock between the writers,
/// just loses its transaction).
pub async fn writer<E: Engine>(
    db: E,
    table: String,
    seed: u64,
    counter: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = Lcg(seed);
    let upsert = db.upsert(&table);
    let delete = db.delete(&table);
    while !stop.load(Ordering::Relaxed) {
        let choice = rng.next(10);
        let mut key = || Arg::from(format!("k{:02}", rng.next(KEYS)));
        let next = || Arg::I64(counter.fetch_add(1, Ordering::Relaxed));
        match choice {
            0..=5 => db.execute(&upsert, &[key(), next()]).await.unwrap(),
            6 | 7 => db.execute(&delete, &[key()]).await.unwrap(),
            _ => {
                let statements: Vec<_> = (0..3)
                    .map(|_| (upsert.clone(), vec![key(), next()]))
                    .collect();
                let _ = db.transaction(&statements, true).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Keys whose `{table}_view` row disagrees with the table.
pub async fn differences<E: Engine>(db: &E, table: &str) -> Vec<String> {
    let rows = db
        .pairs(&format!(
            "SELECT {}, n FROM {}",
            db.id_text(),
            db.quote(table)
        ))
        .await;
    let source: BTreeMap<String, i64> = rows.into_iter().collect();
    let rows = db
        .triples(&format!(
            "SELECT id, n, deleted FROM {}",
            db.quote(&format!("{table}_view"))
        ))
        .await;
    let view: BTreeMap<String, (Option<i64>, bool)> =
        rows.into_iter().map(|(k, n, d)| (k, (n, d))).collect();
    cdc_support::differences(&source, &view)
}

/// With `worker` running (it made the table and the slot, at `start`):
/// two writers write while [`KILLS`] workers are SIGKILLed at random
/// moments (`spawn` starts the next); then the last one catches up. The
/// view (`{table}_view`) must equal the table, the applied log
/// (`{table}_log`, in apply order) grow per key, and the slot advance.
pub async fn kill_workers_while_writing<E: Engine>(
    db: &E,
    table: &str,
    seed: u64,
    start: u64,
    mut worker: Worker,
    spawn: impl Fn() -> Worker,
) {
    let counter = Arc::new(AtomicI64::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|i| {
            tokio::spawn(writer(
                db.clone(),
                table.to_string(),
                11 + i,
                counter.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let mut rng = Lcg(seed);
    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(100 + rng.next(500))).await;
        worker.kill().expect("SIGKILL the worker by its pid");
        worker.wait().unwrap();
        worker = spawn();
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let log_table = db.quote(&format!("{table}_log"));
    let applied_before_last = db.count(&format!("SELECT count(*) FROM {log_table}")).await;
    assert!(
        applied_before_last > 0,
        "the killed workers applied nothing"
    );

    // The last worker catches up.
    let mut diff = Vec::new();
    for _ in 0..600 {
        diff = differences(db, table).await;
        if diff.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worker.kill().unwrap();
    worker.wait().unwrap();
    assert!(
        diff.is_empty(),
        "the view differs from the table: {diff:#?}"
    );

    // Per key, the applied versions only grew.
    let log = db
        .pairs(&format!("SELECT id, ver FROM {log_table} ORDER BY seq"))
        .await;
    cdc_support::assert_versions_grow(&log);
    let end = db.position(table).await;
    assert!(end > start, "the slot advanced ({start} → {end})");
    let writes = counter.load(Ordering::Relaxed) - 1;
    println!(
        "{KILLS} capture workers SIGKILLed while plain SQL wrote {writes} upserts over {KEYS} keys; the view equals the table, {} events applied in increasing versions per key",
        log.len()
    );
}

/// `POLYROUTER_TEST_REDIS_URL`, else the machine's Redis.
pub fn redis_url() -> String {
    std::env::var("POLYROUTER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A store `main` of `kind` at `url` whose `item` (in `table`) is captured
/// onto the bus `bus_toml` describes, and the handler projection `view`
/// with quick retries.
pub fn config(kind: &str, url: &str, bus_toml: &str, table: &str) -> String {
    format!(
        r#"
[stores.main]
kind = "{kind}"
url = "{url}"

[buses.events]
{bus_toml}

[sync]
store = "main"
table = "{table}_sync"
lease = "500ms"

[entities.item]
store = "main"
table = "{table}"
change_capture = {{ bus = "events", slot = "{table}", interval = "20ms" }}
sql = {{ key = "id", columns = {{ id = "string", n = "int" }} }}

[projections.view]
kind = "handler"
entities = ["item"]
ack_wait = "1s"
retry_delay = "50ms"
max_attempts = 50
"#
    )
}

/// An event's (string) key and `n`, for the view.
pub fn key_and_n(e: &polyrouter::sync::ChangeEvent) -> (&str, Option<i64>) {
    let polyrouter::Key::Str(key) = &e.key else {
        panic!("string keys only, got {:?}", e.key)
    };
    (key, cdc_support::n_of(e))
}

/// The worker: the real `router.sync()` of `config` with `view` as the
/// handler `view`; prints `READY`, then runs until killed.
pub async fn serve_worker(
    config: &str,
    view: impl polyrouter::sync::projection::Projection + 'static,
) {
    let router = polyrouter::Router::from_toml_str(config)
        .await
        .expect("the worker's router");
    let _sync = router
        .sync_builder()
        .handler("view", view)
        .start()
        .await
        .expect("the worker starts");
    println!("READY");
    std::future::pending::<()>().await;
}

/// Drops the run's tables (the captured one, the view, the log, the sync
/// state and its dead letters).
pub async fn drop_tables<E: Engine>(db: &E, table: &str) {
    for t in ["", "_view", "_log", "_sync", "_sync_dead_letters"] {
        let sql = format!("DROP TABLE IF EXISTS {}", db.quote(&format!("{table}{t}")));
        db.execute(&sql, &[]).await.unwrap();
    }
}
