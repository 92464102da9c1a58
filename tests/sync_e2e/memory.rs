//! The in-process runtime (memory bus) dropped mid-load without shutdown,
//! three times; a new one on the same router brings the replica level.

use std::time::Duration;

use polyrouter::Router;

use crate::common::{
    BusKind, Env, Item, Load, Stores, assert_no_dead_letters, assert_replica_equals_primary,
    delete_and_recreate, hot_keys,
};

const KEYS: usize = 6;

pub async fn runtime_dropped_mid_load() {
    let env = Env::new(BusKind::Memory, None);
    let router = Router::from_toml_str(&env.config(Stores::Memory))
        .await
        .unwrap();
    let items = router.repo::<Item>().await.unwrap();
    let load = Load::start(items.clone(), KEYS, Duration::from_millis(1));
    let mut rng = fastrand::Rng::with_seed(std::process::id() as u64);
    let mut moved = 0;
    for _ in 0..3 {
        // Sync on a runtime of its own, so dropping that runtime stops its
        // tasks wherever they are (mid-publish, mid-apply, holding a lease).
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let r = router.clone();
        let sync = rt
            .spawn(async move { r.sync().await })
            .await
            .unwrap()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(rng.u64(50..400))).await;
        let st = sync.status();
        moved += st.relays[0].relayed + st.projections[0].applied;
        // No shutdown and no stop signal: the handle is leaked, the tasks dropped.
        std::mem::forget(sync);
        rt.shutdown_background();
    }
    assert!(moved > 0, "the dropped runtimes relayed and applied events");
    let writes = load.stop().await;
    delete_and_recreate(&items).await;
    let sync = router.sync_builder().worker("final").start().await.unwrap();
    sync.settle(Duration::from_secs(30))
        .await
        .expect("the new runtime settles");
    let (live, absent) = assert_replica_equals_primary(&router, &hot_keys(KEYS)).await;
    assert!(absent >= 1 && live >= 1);
    let status = sync.status();
    assert_no_dead_letters(&router, &status).await;
    eprintln!(
        "memory: 3 runtimes dropped, {writes} writes; {live} live and {absent} deleted keys equal"
    );
    sync.shutdown().await.unwrap();
}
