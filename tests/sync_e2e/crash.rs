//! A sync worker process SIGKILLed at random points, 20 times, while
//! writers keep writing; then a final worker settles and the replica must
//! equal the primary row by row.

use std::process::Stdio;
use std::time::Duration;

use polyrouter::Router;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::common::{
    BusKind, Env, Item, Load, Stores, assert_no_dead_letters, assert_replica_equals_primary,
    delete_and_recreate, hot_keys, replica_status,
};

/// Set (to the configuration) in a worker child's environment.
pub const CHILD_ENV: &str = "SYNC_E2E_CHILD";
const KILLS: u64 = 20;
const KEYS: usize = 6;

/// The worker child: `Router::sync()` (relay and replica projection) until
/// SIGKILLed.
pub async fn child(cfg: &str) {
    let router = Router::from_toml_str(cfg).await.expect("child router");
    // The replica projection reads records: the schema comes from the type.
    router.repo::<Item>().await.expect("child repo");
    let _sync = router.sync().await.expect("child sync");
    println!("READY");
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

pub async fn worker_sigkilled_20_times(bus: BusKind) {
    let env = Env::new(bus, None);
    let cfg = env.config(Stores::Servers);
    let router = Router::from_toml_str(&cfg)
        .await
        .expect("router (PostgreSQL, Redis, bus)");
    let items = router.repo::<Item>().await.unwrap();
    let load = Load::start(items.clone(), KEYS, Duration::from_millis(5));
    let mut rng = fastrand::Rng::with_seed(std::process::id() as u64);
    let exe = std::env::current_exe().unwrap();
    for round in 0..KILLS {
        let mut child = tokio::process::Command::new(&exe)
            .env(CHILD_ENV, &cfg)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the worker child");
        // Odd rounds kill anywhere from start-up on (opening stores,
        // creating consumer groups); even rounds once it runs.
        if round % 2 == 0 {
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            let ready = tokio::time::timeout(Duration::from_secs(30), async {
                while let Some(l) = lines.next_line().await.unwrap() {
                    if l == "READY" {
                        return true;
                    }
                }
                false
            })
            .await;
            assert_eq!(ready, Ok(true), "round {round}: the worker child started");
        }
        tokio::time::sleep(Duration::from_millis(rng.u64(20..600))).await;
        child.start_kill().unwrap(); // SIGKILL, by this child's pid
        let status = child.wait().await.unwrap();
        assert!(!status.success(), "round {round}: killed, not exited");
    }
    let writes = load.stop().await;
    delete_and_recreate(&items).await;

    let sync = router.sync_builder().worker("final").start().await.unwrap();
    sync.settle(Duration::from_secs(60))
        .await
        .expect("the final worker settles");
    let (live, absent) = assert_replica_equals_primary(&router, &hot_keys(KEYS)).await;
    assert!(absent >= 1 && live >= 1, "k0 is deleted, k1 re-created");
    let status = sync.status();
    assert_no_dead_letters(&router, &status).await;
    let r = replica_status(&status);
    eprintln!(
        "{}: {KILLS} SIGKILLs, {writes} writes; final worker: relayed {}, applied {}, duplicates {}; {live} live and {absent} deleted keys equal",
        bus.name(),
        status.relays[0].relayed,
        r.applied,
        r.duplicates
    );
    sync.shutdown().await.unwrap();
}
