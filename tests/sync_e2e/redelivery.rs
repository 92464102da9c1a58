//! Delete then re-create through the replica, then every event published
//! again straight to the real bus — with fresh ids (so the bus cannot drop
//! them), newest first, and with their own ids: the replica does not move,
//! and every injected event is counted as a duplicate.

use std::time::Duration;

use polyrouter::Router;
use polyrouter::sync::{ChangeEvent, SubscribeOptions};

use crate::common::{
    BusKind, Env, Item, Load, Stores, assert_no_dead_letters, assert_replica_equals_primary,
    hot_keys, item, replica_status,
};

pub async fn recreate_duplicates_and_reorder(bus: BusKind) {
    let env = Env::new(bus, None);
    let router = Router::from_toml_str(&env.config(Stores::Memory))
        .await
        .expect("router (memory stores, the bus)");
    let items = router.repo::<Item>().await.unwrap();
    let events_bus = router.bus("events").unwrap();
    // A group of our own that sees every event (it exists before any).
    let mut capture = events_bus
        .subscribe("capture", &["item".into()], &SubscribeOptions::default())
        .await
        .unwrap();
    let sync = router.sync().await.unwrap();

    // Delete then re-create, with the replica following.
    items.put(&item("a", 1, 0)).await.unwrap();
    items.put(&item("a", 2, 0)).await.unwrap();
    assert!(items.delete("a").await.unwrap());
    let a = items.put(&item("a", 3, 0)).await.unwrap();
    assert_eq!(a, 4, "a re-created key continues after its tombstone");
    items.put(&item("b", 1, 0)).await.unwrap();
    assert!(items.delete("b").await.unwrap());
    let load = Load::start(items.clone(), 4, Duration::from_millis(1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    load.stop().await;
    sync.settle(Duration::from_secs(30)).await.unwrap();
    let mut keys = hot_keys(4);
    keys.extend(["a".to_string(), "b".to_string()]);
    assert_replica_equals_primary(&router, &keys).await;
    let replica = router.store("replica").unwrap();
    let info = polyrouter::store::EntityInfo {
        store: "replica".into(),
        table: crate::common::TABLE.into(),
        ..polyrouter::store::EntityInfo::new(<Item as polyrouter::Entity>::schema())
    };
    let ra = replica.get(&info, &"a".into()).await.unwrap().unwrap();
    assert_eq!(ra.version, 4);
    assert!(replica.get(&info, &"b".into()).await.unwrap().is_none());

    // Every event the relay published, as the bus delivers it.
    let relayed = sync.status().relays[0].relayed as usize;
    let mut events: Vec<ChangeEvent> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while events.len() < relayed {
        assert!(
            tokio::time::Instant::now() < deadline,
            "captured {} of {relayed}",
            events.len()
        );
        let batch = capture
            .fetch(256, Duration::from_millis(200))
            .await
            .unwrap();
        let tags: Vec<_> = batch.iter().map(|d| d.tag.clone()).collect();
        if !tags.is_empty() {
            capture.ack(&tags).await.unwrap();
        }
        events.extend(batch.into_iter().map(|d| d.event));
    }
    let before = replica_status(&sync.status());

    // Injected: fresh ids newest first, fresh ids shuffled, own ids.
    let fresh = |e: &ChangeEvent| {
        let mut c = e.clone();
        c.id = uuid::Uuid::new_v4().to_string();
        c
    };
    let mut injected: Vec<ChangeEvent> = events.iter().rev().map(fresh).collect();
    let mut shuffled: Vec<ChangeEvent> = events.iter().map(fresh).collect();
    fastrand::Rng::with_seed(7).shuffle(&mut shuffled);
    injected.extend(shuffled);
    for chunk in injected.chunks(200) {
        events_bus.publish(chunk).await.unwrap();
    }
    // The same ids again: the bus keeps an id once (its duplicate window).
    for chunk in events.chunks(200) {
        events_bus.publish(chunk).await.unwrap();
    }
    sync.settle(Duration::from_secs(30)).await.unwrap();
    let after = replica_status(&sync.status());
    assert_eq!(
        after.applied, before.applied,
        "no injected event was applied"
    );
    assert_eq!(
        after.duplicates - before.duplicates,
        injected.len() as u64,
        "every injected event counted as a duplicate, the re-published ids not delivered"
    );
    assert_replica_equals_primary(&router, &keys).await;
    assert_eq!(
        replica
            .get(&info, &"a".into())
            .await
            .unwrap()
            .unwrap()
            .version,
        4
    );
    let status = sync.status();
    assert_no_dead_letters(&router, &status).await;
    eprintln!(
        "{}: {} events, {} injected again: all counted as duplicates",
        bus.name(),
        events.len(),
        injected.len()
    );
    capture.close().await.ok();
    sync.shutdown().await.unwrap();
}
