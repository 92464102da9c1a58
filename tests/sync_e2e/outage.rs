//! The bus (a PRIVATE nats-server / redis-server on a free port with its
//! own data dir) SIGKILLed by its pid while writes go on, then restarted on
//! the same port and dir: every write succeeds meanwhile, the outbox
//! backlog grows and is reported, and afterwards everything arrives.

use std::time::Duration;

use polyrouter::Router;

use crate::common::{
    BusKind, Env, Item, Load, Stores, assert_no_dead_letters, assert_replica_equals_primary,
    delete_and_recreate, hot_keys, replica_status,
};
use crate::server::Server;

const KEYS: usize = 6;

async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn bus_killed_and_restarted(bus: BusKind) {
    let mut server = Server::start(if bus == BusKind::Nats {
        "nats"
    } else {
        "redis"
    })
    .expect("a private bus server (nats-server / redis-server installed?)");
    let env = Env::new(bus, Some(server.url()));
    let router = Router::from_toml_str(&env.config(Stores::Servers))
        .await
        .expect("router (PostgreSQL, Redis, private bus)");
    let items = router.repo::<Item>().await.unwrap();
    let route = router.route("item").unwrap().clone();
    let sync = router.sync().await.unwrap();
    let load = Load::start(items.clone(), KEYS, Duration::from_millis(3));
    until("events reach the replica", async || {
        replica_status(&sync.status()).applied > 0
    })
    .await;

    server.kill();
    // Writes go on (a failed one panics its writer); the outbox grows, as
    // counted in the store and as the relay reports it.
    let mut seen = 0;
    until(
        "the outbox backlog grows while the bus is down",
        async || {
            let backlog = polyrouter::sync::outbox_backlog(&router, &route)
                .await
                .unwrap();
            let relay = &sync.status().relays[0];
            seen = seen.max(backlog);
            backlog >= 100 && relay.backlog > 0 && relay.failures > 0 && relay.last_error.is_some()
        },
    )
    .await;

    server.spawn().expect("restart the private bus server");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let writes = load.stop().await;
    delete_and_recreate(&items).await;
    sync.settle(Duration::from_secs(60))
        .await
        .expect("everything arrives after the restart");
    let (live, absent) = assert_replica_equals_primary(&router, &hot_keys(KEYS)).await;
    assert!(absent >= 1 && live >= 1);
    let status = sync.status();
    assert_no_dead_letters(&router, &status).await;
    assert_eq!(status.relays[0].backlog, 0);
    eprintln!(
        "{}: bus down with {seen}+ events waiting in the outbox ({} relay failures), {writes} writes all succeeded; {live} live and {absent} deleted keys equal",
        bus.name(),
        status.relays[0].failures
    );
    sync.shutdown().await.unwrap();
}
