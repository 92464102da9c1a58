//! Bus selection, per-trial isolation (own stream / key prefix / groups,
//! removed afterwards) and small helpers.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use polyrouter::Key;
use polyrouter::sync::{
    Bus, ChangeEvent, Delivery, MemoryBus, Operation, SubscribeOptions, Subscription,
};

/// The result of a behaviour: `Err` carries what went wrong.
pub type Outcome = Result<(), String>;

/// Bus kinds this suite knows.
pub const KNOWN: &[&str] = &["memory", "nats", "redis-streams"];

/// The buses named in `POLYROUTER_TEST_BUSES` (default `memory`).
pub fn buses_under_test() -> Vec<String> {
    let list = std::env::var("POLYROUTER_TEST_BUSES").unwrap_or_else(|_| "memory".into());
    let buses: Vec<String> = list
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    for b in &buses {
        if !KNOWN.contains(&b.as_str()) {
            panic!(
                "POLYROUTER_TEST_BUSES names `{b}`, which the bus suite does not know; known: {}",
                KNOWN.join(", ")
            );
        }
        let feature = match b.as_str() {
            "nats" => cfg!(feature = "nats").then_some(()).ok_or("nats"),
            "redis-streams" => cfg!(feature = "redis").then_some(()).ok_or("redis"),
            _ => Ok(()),
        };
        if let Err(f) = feature {
            panic!("POLYROUTER_TEST_BUSES names `{b}`: build the tests with `--features {f}`");
        }
    }
    buses
}

/// The machine's NATS server (JetStream), or `POLYROUTER_TEST_NATS_URL`.
pub fn nats_url() -> String {
    std::env::var("POLYROUTER_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// The machine's Redis, or `POLYROUTER_TEST_REDIS_URL`.
pub fn redis_url() -> String {
    std::env::var("POLYROUTER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// One trial's bus kind and its own names on the server.
#[derive(Clone)]
pub struct Ctx {
    pub kind: String,
    /// `{pid}_{n}`: unique per trial of this run.
    pub id: String,
    /// `ephemeral_idle` of the server buses this context opens.
    pub ephemeral_idle: Duration,
    memory: MemoryBus,
}

impl Ctx {
    pub fn new(kind: &str) -> Ctx {
        let id = format!(
            "{}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        Ctx {
            kind: kind.into(),
            id,
            ephemeral_idle: Duration::from_secs(300),
            memory: MemoryBus::new("test"),
        }
    }

    /// A handle on this trial's bus: for server kinds a new client each
    /// call (a new connection), for memory the same in-process bus.
    pub async fn bus(&self) -> Arc<dyn Bus> {
        match self.kind.as_str() {
            "memory" => Arc::new(self.memory.clone()),
            "nats" => self.nats(&nats_url(), Duration::from_secs(5)).await,
            "redis-streams" => self.redis(&redis_url(), Duration::from_secs(5)),
            other => panic!("unknown bus kind {other}"),
        }
    }

    /// This trial's NATS bus at `url`.
    #[cfg(feature = "nats")]
    pub async fn nats(&self, url: &str, connect_timeout: Duration) -> Arc<dyn Bus> {
        use polyrouter::config::ConfigDuration;
        use polyrouter::sync::nats::{NatsBus, NatsConfig};
        let mut c = NatsConfig::new(url);
        c.stream = format!("PRT_{}", self.id);
        c.subject_prefix = format!("prt.{}", self.id);
        c.max_age = ConfigDuration(Duration::from_secs(3600));
        c.connect_timeout = ConfigDuration(connect_timeout);
        c.request_timeout = ConfigDuration(Duration::from_secs(5));
        c.ephemeral_idle = ConfigDuration(self.ephemeral_idle);
        Arc::new(NatsBus::open("test", c).await.expect("open the nats bus"))
    }

    #[cfg(not(feature = "nats"))]
    pub async fn nats(&self, _: &str, _: Duration) -> Arc<dyn Bus> {
        unreachable!("checked by buses_under_test")
    }

    /// This trial's Redis Streams bus at `url`.
    #[cfg(feature = "redis")]
    pub fn redis(&self, url: &str, connect_timeout: Duration) -> Arc<dyn Bus> {
        use polyrouter::config::ConfigDuration;
        use polyrouter::sync::redis_streams::{RedisStreamsBus, RedisStreamsConfig};
        let mut c = RedisStreamsConfig::new(url).with_prefix(format!("prt:{}", self.id));
        c.connect_timeout = ConfigDuration(connect_timeout);
        c.response_timeout = ConfigDuration(Duration::from_secs(5));
        c.ephemeral_idle = ConfigDuration(self.ephemeral_idle);
        Arc::new(RedisStreamsBus::open("test", c).expect("open the redis-streams bus"))
    }

    #[cfg(not(feature = "redis"))]
    pub fn redis(&self, _: &str, _: Duration) -> Arc<dyn Bus> {
        unreachable!("checked by buses_under_test")
    }

    /// Removes everything this trial put on the machine's server.
    pub async fn clean_up(&self) -> Outcome {
        match self.kind.as_str() {
            #[cfg(feature = "nats")]
            "nats" => {
                use polyrouter::sync::nats::{NatsBus, NatsConfig};
                let mut c = NatsConfig::new(nats_url());
                c.stream = format!("PRT_{}", self.id);
                c.subject_prefix = format!("prt.{}", self.id);
                let bus = NatsBus::open("test", c).await.map_err(|e| e.to_string())?;
                bus.delete_stream().await.map_err(|e| e.to_string())
            }
            #[cfg(feature = "redis")]
            "redis-streams" => {
                use polyrouter::sync::redis_streams::{RedisStreamsBus, RedisStreamsConfig};
                let c =
                    RedisStreamsConfig::new(redis_url()).with_prefix(format!("prt:{}", self.id));
                let bus = RedisStreamsBus::open("test", c).map_err(|e| e.to_string())?;
                bus.delete_all().await.map_err(|e| e.to_string())
            }
            _ => Ok(()),
        }
    }
}

/// A put event of `entity`/`key` at `version`.
pub fn ev(entity: &str, key: &str, version: u64) -> ChangeEvent {
    ChangeEvent::new("main", entity, Key::from(key), Operation::Put, version)
}

/// Subscribe options with this `ack_wait` and member name.
pub fn opts(ack_wait: Duration, consumer: &str) -> SubscribeOptions {
    SubscribeOptions {
        ack_wait,
        consumer: consumer.into(),
        ..SubscribeOptions::default()
    }
}

/// Fetches until `n` deliveries came (each fetch at most `max`), or fails
/// after `within`.
pub async fn fetch_n(
    sub: &mut Box<dyn Subscription>,
    n: usize,
    max: usize,
    within: Duration,
) -> Result<Vec<Delivery>, String> {
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < n {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Err(format!(
                "got {} of {n} deliveries within {within:?}",
                got.len()
            ));
        }
        let batch = sub
            .fetch(max.min(n - got.len()), left.min(Duration::from_secs(2)))
            .await
            .map_err(|e| format!("fetch: {e}"))?;
        got.extend(batch);
    }
    Ok(got)
}

/// Acknowledges every delivery.
pub async fn ack_all(sub: &mut Box<dyn Subscription>, ds: &[Delivery]) -> Outcome {
    let tags: Vec<_> = ds.iter().map(|d| d.tag.clone()).collect();
    sub.ack(&tags).await.map_err(|e| format!("ack: {e}"))
}

/// Fails when a fetch within `wait` still delivers something.
pub async fn expect_nothing(sub: &mut Box<dyn Subscription>, wait: Duration) -> Outcome {
    let got = sub
        .fetch(10, wait)
        .await
        .map_err(|e| format!("fetch: {e}"))?;
    if got.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "expected no delivery, got {:?}",
            got.iter()
                .map(|d| (&d.event.key, d.event.version, d.attempt))
                .collect::<Vec<_>>()
        ))
    }
}

/// Fails unless `cond` holds.
pub fn check(cond: bool, what: impl FnOnce() -> String) -> Outcome {
    if cond { Ok(()) } else { Err(what()) }
}

/// The event ids of deliveries, refusing duplicates.
pub fn unique_ids(ds: &[Delivery]) -> Result<HashSet<String>, String> {
    let mut ids = HashSet::new();
    for d in ds {
        if !ids.insert(d.event.id.clone()) {
            return Err(format!(
                "event {} (version {}) delivered twice",
                d.event.id, d.event.version
            ));
        }
    }
    Ok(ids)
}

/// Whether process `pid` (text) has ended; false where that cannot be told.
#[cfg(any(feature = "nats", feature = "redis"))]
fn ended(pid: &str) -> bool {
    std::path::Path::new("/proc/self").exists()
        && !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && !std::path::Path::new("/proc").join(pid).exists()
}

/// Removes what runs that crashed left on the machine's server: streams
/// `PRT_{pid}_*` or keys `prt:{pid}:*` of processes that no longer run.
pub async fn remove_stale(kind: &str) -> Outcome {
    match kind {
        #[cfg(feature = "nats")]
        "nats" => {
            use futures::TryStreamExt;
            let client = async_nats::connect(nats_url())
                .await
                .map_err(|e| e.to_string())?;
            let js = async_nats::jetstream::new(client);
            let names: Vec<String> = js
                .stream_names()
                .try_collect()
                .await
                .map_err(|e| e.to_string())?;
            for name in names {
                let Some(rest) = name.strip_prefix("PRT_") else {
                    continue;
                };
                if ended(rest.split('_').next().unwrap_or_default()) {
                    js.delete_stream(&name).await.map_err(|e| e.to_string())?;
                }
            }
            Ok(())
        }
        #[cfg(feature = "redis")]
        "redis-streams" => {
            let client = redis::Client::open(redis_url()).map_err(|e| e.to_string())?;
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| e.to_string())?;
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg("prt:*")
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                let stale: Vec<&String> = keys
                    .iter()
                    .filter(|k| ended(k.split(':').nth(1).unwrap_or_default()))
                    .collect();
                if !stale.is_empty() {
                    redis::cmd("UNLINK")
                        .arg(&stale)
                        .query_async::<()>(&mut conn)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                if next == 0 {
                    return Ok(());
                }
                cursor = next;
            }
        }
        _ => Ok(()),
    }
}
