//! Tests of what only this bus has (trimming, the de-duplication window's
//! length), against the machine's Redis at 127.0.0.1:6379. Each test uses
//! its own key prefix and deletes every key under it when it ends (even
//! when it fails).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::*;
use crate::Key;
use crate::config::ConfigDuration;
use crate::sync::{Delivery, Operation};

const URL: &str = "redis://127.0.0.1:6379";

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A bus under its own prefix, its keys deleted when the test ends.
async fn with_bus<F, Fut>(tune: impl FnOnce(&mut RedisStreamsConfig), body: F)
where
    F: FnOnce(RedisStreamsBus, ConnectionManager) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let prefix = format!(
        "prt-unit:{}:{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    );
    let mut config = RedisStreamsConfig::new(URL).with_prefix(prefix.clone());
    tune(&mut config);
    let bus = RedisStreamsBus::open("test", config.clone()).unwrap();
    let cleaner = RedisStreamsBus::open("test", config).unwrap();
    let conn = bus.conn.clone();
    bus.ping()
        .await
        .expect("the machine's Redis at 127.0.0.1:6379 answers");
    let outcome = tokio::spawn(body(bus, conn)).await;
    cleaner.delete_all().await.unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}

fn ev(version: u64) -> ChangeEvent {
    ChangeEvent::new("main", "order", Key::from("o-1"), Operation::Put, version)
}

async fn xlen(conn: &mut ConnectionManager, bus: &RedisStreamsBus) -> u64 {
    redis::cmd("XLEN")
        .arg(bus.stream_key("order").unwrap())
        .query_async(conn)
        .await
        .unwrap()
}

async fn fetch(sub: &mut Box<dyn Subscription>, n: usize) -> Vec<Delivery> {
    let mut got = Vec::new();
    while got.len() < n {
        got.extend(
            sub.fetch(n - got.len(), Duration::from_secs(5))
                .await
                .unwrap(),
        );
    }
    got
}

#[tokio::test]
async fn max_len_trims_only_what_every_group_acknowledged() {
    with_bus(
        |c| c.max_len = Some(5),
        |bus, mut conn| async move {
            let opts = SubscribeOptions {
                ack_wait: Duration::from_secs(60),
                ..SubscribeOptions::default()
            };
            let mut sub = bus.subscribe("g", &["order".into()], &opts).await.unwrap();
            let events: Vec<_> = (1..=12).map(ev).collect();
            bus.publish(&events).await.unwrap();
            assert_eq!(
                xlen(&mut conn, &bus).await,
                12,
                "nothing read: nothing trimmed"
            );

            let got = fetch(&mut sub, 8).await;
            let tags: Vec<_> = got[..6].iter().map(|d| d.tag.clone()).collect();
            sub.ack(&tags).await.unwrap();
            bus.publish(&[ev(13)]).await.unwrap();
            // 2 pending + 4 unread + 1 new are needed: only the 6
            // acknowledged go, though the stream stays above max_len.
            assert_eq!(xlen(&mut conn, &bus).await, 7);

            // Everything kept is still delivered.
            for d in &got[6..] {
                sub.nack(&d.tag, Duration::ZERO).await.unwrap();
            }
            let rest = fetch(&mut sub, 7).await;
            let mut versions: Vec<u64> = rest.iter().map(|d| d.event.version).collect();
            versions.sort();
            assert_eq!(versions, (7..=13).collect::<Vec<_>>());
            let tags: Vec<_> = rest.iter().map(|d| d.tag.clone()).collect();
            sub.ack(&tags).await.unwrap();
            bus.publish(&[ev(14)]).await.unwrap();
            // All acknowledged but the newest: down to max_len.
            assert_eq!(xlen(&mut conn, &bus).await, 5);
        },
    )
    .await;
}

#[tokio::test]
async fn without_groups_max_len_keeps_the_newest() {
    with_bus(
        |c| c.max_len = Some(3),
        |bus, mut conn| async move {
            bus.publish(&(1..=10).map(ev).collect::<Vec<_>>())
                .await
                .unwrap();
            assert_eq!(xlen(&mut conn, &bus).await, 3);
            let mut sub = bus
                .subscribe("late", &["order".into()], &SubscribeOptions::default())
                .await
                .unwrap();
            let got = fetch(&mut sub, 3).await;
            let versions: Vec<u64> = got.iter().map(|d| d.event.version).collect();
            assert_eq!(versions, [8, 9, 10]);
        },
    )
    .await;
}

#[tokio::test]
async fn an_id_is_stored_again_after_the_duplicate_window() {
    with_bus(
        |c| c.duplicate_window = ConfigDuration(Duration::from_millis(300)),
        |bus, mut conn| async move {
            let e = ev(1);
            bus.publish(std::slice::from_ref(&e)).await.unwrap();
            bus.publish(std::slice::from_ref(&e)).await.unwrap();
            assert_eq!(xlen(&mut conn, &bus).await, 1);
            tokio::time::sleep(Duration::from_millis(600)).await;
            bus.publish(std::slice::from_ref(&e)).await.unwrap();
            assert_eq!(xlen(&mut conn, &bus).await, 2);
        },
    )
    .await;
}

#[tokio::test]
async fn large_batches_are_sent_in_chunks_in_order() {
    with_bus(
        |_| {},
        |bus, mut conn| async move {
            let events: Vec<_> = (1..=2500).map(ev).collect();
            bus.publish(&events).await.unwrap();
            assert_eq!(xlen(&mut conn, &bus).await, 2500);
            let mut sub = bus
                .subscribe("g", &["order".into()], &SubscribeOptions::default())
                .await
                .unwrap();
            let got = fetch(&mut sub, 2500).await;
            let versions: Vec<u64> = got.iter().map(|d| d.event.version).collect();
            assert_eq!(versions, (1..=2500).collect::<Vec<_>>());
        },
    )
    .await;
}
