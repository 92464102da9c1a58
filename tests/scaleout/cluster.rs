//! The `nats` bus on a three-node JetStream cluster with a stream of three
//! replicas: the node leading the stream is killed with SIGKILL while a
//! publisher and a consumer run; every acknowledged publish is consumed,
//! and both carry on.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use polyrouter::config::ConfigDuration;
use polyrouter::sync::nats::{NatsBus, NatsConfig};
use polyrouter::sync::{Bus, ChangeEvent, Operation, SubscribeOptions};
use polyrouter::{Error, Key};
use tokio::sync::Mutex;

use crate::{Outcome, check};

/// The cluster of `scripts/services nats-cluster`.
const URLS: &str = "nats://127.0.0.1:4231,nats://127.0.0.1:4232,nats://127.0.0.1:4233";
const EVENTS: u64 = 300;

fn scaleout_dir() -> String {
    std::env::var("POLYROUTER_SCALEOUT_DIR").unwrap_or_else(|_| "/tmp/polyrouter-scaleout".into())
}

/// The cluster node leading `stream`'s RAFT group, e.g. `n2`.
async fn stream_leader(stream: &str) -> Result<String, String> {
    // Any node answers; the first is up when this is asked.
    let client = async_nats::connect("nats://127.0.0.1:4231")
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let js = async_nats::jetstream::new(client);
    for _ in 0..100 {
        let info = js
            .get_stream(stream)
            .await
            .map_err(|e| format!("stream {stream}: {e}"))?
            .get_info()
            .await
            .map_err(|e| format!("stream info: {e}"))?;
        if let Some(leader) = info.cluster.and_then(|c| c.leader) {
            return Ok(leader);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("stream {stream} has no leader"))
}

/// SIGKILL to a node the script started, by the pid it recorded.
fn kill_node(node: &str) -> Outcome {
    let pidfile = format!("{}/nats-{node}.pid", scaleout_dir());
    let pid = std::fs::read_to_string(&pidfile).map_err(|e| format!("{pidfile}: {e}"))?;
    let status = std::process::Command::new("kill")
        .args(["-s", "KILL", pid.trim()])
        .status()
        .map_err(|e| e.to_string())?;
    check(status.success(), || format!("kill {node} (pid {pid})"))
}

fn event(i: u64) -> ChangeEvent {
    ChangeEvent::new(
        "main",
        "order",
        Key::from(format!("o-{i}")),
        Operation::Put,
        1,
    )
}

pub async fn no_acknowledged_event_is_lost_when_a_node_dies() -> Outcome {
    let stream = format!("PR_CLUSTER_{}", std::process::id());
    let mut c = NatsConfig::new(URLS);
    c.stream = stream.clone();
    c.subject_prefix = format!("prc.{}", std::process::id());
    c.replicas = 3;
    c.max_age = ConfigDuration(Duration::from_secs(3600));
    c.request_timeout = ConfigDuration(Duration::from_secs(3));
    c.connect_timeout = ConfigDuration(Duration::from_secs(3));
    let bus = Arc::new(
        NatsBus::open("cluster", c)
            .await
            .map_err(|e| format!("open: {e}"))?,
    );
    let outcome = run(&bus, &stream).await;
    let _ = bus.delete_stream().await;
    outcome
}

async fn run(bus: &Arc<NatsBus>, stream: &str) -> Outcome {
    let opts = SubscribeOptions {
        ack_wait: Duration::from_secs(2),
        consumer: "m1".into(),
        ..SubscribeOptions::default()
    };
    let mut sub = bus
        .subscribe("g", &["order".into()], &opts)
        .await
        .map_err(|e| format!("subscribe: {e}"))?;
    let leader = stream_leader(stream).await?;

    // Publisher: one event at a time; a failed publish is sent again with
    // the same id (the stream drops a duplicate), and only a publish the
    // cluster acknowledged counts as sent.
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let progress = Arc::new(AtomicU64::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let publisher = {
        let (bus, acked, progress, retries) = (
            bus.clone(),
            acked.clone(),
            progress.clone(),
            retries.clone(),
        );
        tokio::spawn(async move {
            for i in 0..EVENTS {
                let e = event(i);
                let mut tries = 0;
                loop {
                    match bus.publish(std::slice::from_ref(&e)).await {
                        Ok(()) => break,
                        Err(err) if err.is_transient() && tries < 300 => {
                            tries += 1;
                            retries.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(err) => return Err(format!("publish o-{i}: {err}")),
                    }
                }
                acked.lock().await.insert(e.id.clone());
                progress.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok(())
        })
    };

    // Kill the stream's leader once a third of the events are acknowledged
    // (observed progress, not a sleep), while the consumer runs.
    let mut killed = false;
    let mut consumed = HashSet::new();
    let mut fetch_errors = 0u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        if !killed && progress.load(Ordering::Relaxed) >= EVENTS / 3 {
            kill_node(&leader)?;
            killed = true;
        }
        if publisher.is_finished() {
            let want = acked.lock().await.clone();
            if want.is_subset(&consumed) {
                break;
            }
        }
        check(tokio::time::Instant::now() < deadline, || {
            format!(
                "after 120 s: {} consumed of {} acknowledged",
                consumed.len(),
                progress.load(Ordering::Relaxed)
            )
        })?;
        let batch = match sub.fetch(50, Duration::from_millis(500)).await {
            Ok(b) => b,
            Err(e) if e.is_transient() || matches!(e, Error::Timeout { .. }) => {
                fetch_errors += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(e) => return Err(format!("fetch: {e}")),
        };
        let tags: Vec<_> = batch.iter().map(|d| d.tag.clone()).collect();
        // An acknowledgement lost to the failover: delivered again, which
        // at-least-once allows.
        let _ = sub.ack(&tags).await;
        consumed.extend(batch.into_iter().map(|d| d.event.id));
    }
    publisher.await.map_err(|e| e.to_string())??;
    check(killed, || "the leader was never killed".into())?;
    println!(
        "killed stream leader {leader} after {} of {EVENTS} acknowledged publishes; {} publish retries, {fetch_errors} fetch errors; {} distinct events consumed",
        EVENTS / 3,
        retries.load(Ordering::Relaxed),
        consumed.len()
    );
    // Bring the node back for the next run (the script starts what is down).
    crate::services(&["nats-cluster"], &crate::record())
}
