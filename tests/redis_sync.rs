//! The relay end to end from a Redis outbox: writes through an `outbox`
//! route on a redis store reach the bus, per key in version order, exactly
//! the committed ones (the outbox is a stream the write script appends to).
#![cfg(feature = "redis")]

use std::collections::BTreeMap;
use std::time::Duration;

use polyrouter::sync::{Bus, Delivery, SubscribeOptions};
use polyrouter::{Entity, Key, Router};
use serde::{Deserialize, Serialize};

const URL: &str = "redis://127.0.0.1:6379";

#[derive(Entity, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[entity(name = "order", key = "id")]
struct Order {
    id: String,
    total: i64,
}

fn config(prefix: &str) -> String {
    format!(
        r#"
[stores.main]
kind = "memory"

[stores.kv]
kind = "redis"
url = "{URL}"
key_prefix = "{prefix}"

[buses.events]
kind = "memory"

[sync]
store = "main"
relay_batch = 7
relay_interval = "2ms"
status_interval = "20ms"

[entities.order]
store = "kv"
outbox = {{ bus = "events" }}
"#
    )
}

/// Deletes every key under the prefix when dropped, even after a panic.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Ok(mut conn) = redis::Client::open(URL).and_then(|c| c.get_connection()) else {
            return;
        };
        let keys: Vec<Vec<u8>> = match redis::cmd("SCAN")
            .cursor_arg(0)
            .arg("MATCH")
            .arg(format!("{}[:#]*", self.0))
            .arg("COUNT")
            .arg(1000)
            .clone()
            .iter(&mut conn)
        {
            Ok(iter) => iter.filter_map(|k| k.ok()).collect(),
            Err(_) => return,
        };
        for chunk in keys.chunks(500) {
            let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(chunk).query(&mut conn);
        }
    }
}

/// Every delivery until `want` arrived (or 10 s passed), acknowledged.
async fn collect(bus: &dyn Bus, want: usize) -> Vec<Delivery> {
    let mut sub = bus
        .subscribe("check", &["order".into()], &SubscribeOptions::default())
        .await
        .expect("subscribe");
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.len() < want && tokio::time::Instant::now() < deadline {
        let batch = sub
            .fetch(64, Duration::from_millis(50))
            .await
            .expect("fetch");
        let tags: Vec<_> = batch.iter().map(|d| d.tag.clone()).collect();
        if !tags.is_empty() {
            sub.ack(&tags).await.expect("ack");
        }
        got.extend(batch);
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relay_moves_every_committed_redis_write_in_order() {
    let prefix = format!("polyrouter-redis-sync-{}", std::process::id());
    let _guard = Cleanup(prefix.clone());
    let router = Router::from_toml_str(&config(&prefix))
        .await
        .expect("the machine's Redis at 127.0.0.1:6379");
    let bus = router.bus("events").unwrap();
    let reader = {
        let bus = bus.clone();
        tokio::spawn(async move { collect(bus.as_ref(), 100).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let sync = router.sync().await.unwrap();
    // Four concurrent writers over five hot keys, puts and deletes.
    let orders = router.repo::<Order>().await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..4i64 {
        let orders = orders.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..25i64 {
                let id = format!("o-{}", (w + i) % 5);
                if i % 9 == 8 {
                    if orders.delete(id.as_str()).await.unwrap() {
                        acked.push((id, 0));
                    }
                } else {
                    let total = w * 100 + i;
                    let v = orders
                        .put(&Order {
                            id: id.clone(),
                            total,
                        })
                        .await
                        .unwrap();
                    acked.push((id, v));
                }
            }
            acked
        }));
    }
    let mut written: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for t in tasks {
        for (id, v) in t.await.unwrap() {
            written.entry(id).or_default().push(v);
        }
    }
    let events: usize = written.values().map(Vec::len).sum();
    sync.settle(Duration::from_secs(10)).await.unwrap();
    let got = reader.await.unwrap();
    assert_eq!(got.len(), events);
    let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for d in &got {
        let Key::Str(k) = &d.event.key else {
            panic!("string keys only")
        };
        seen.entry(k.clone()).or_default().push(d.event.version);
    }
    for (k, acked) in &written {
        let versions = &seen[k];
        assert_eq!(
            versions,
            &(1..=acked.len() as u64).collect::<Vec<_>>(),
            "key {k}: one event per write, in version order"
        );
        for v in acked.iter().filter(|v| **v > 0) {
            assert!(versions.contains(v), "key {k}: version {v} missing");
        }
    }
    // The last event of each key is what the store holds.
    for (k, versions) in &seen {
        let last = got
            .iter()
            .rfind(|d| d.event.key == Key::from(k.as_str()))
            .unwrap();
        assert_eq!(last.event.version, *versions.last().unwrap());
        let stored = orders.get(k.as_str()).await.unwrap();
        match last.event.data.as_ref() {
            Some(data) => assert_eq!(stored.unwrap().total, data["total"].as_i64().unwrap()),
            None => assert!(stored.is_none(), "key {k}: deleted last"),
        }
    }
    let status = sync.status();
    assert_eq!(status.relays[0].relayed, events as u64);
    assert_eq!(status.relays[0].backlog, 0);
    sync.shutdown().await.unwrap();
}
