//! The layers on the in-process store: forwarding of every extra trait,
//! what is retried and what never is, the retry budget, a server's
//! retry-after, timeouts, the circuit breaker, the bulkhead and the rate
//! limit, stale reads while the primary's circuit is open, spans and
//! metrics, and `[stores.NAME.resilience]`. Time-based tests run on
//! tokio's paused clock, so they assert what happened, never how long it
//! took. The same layers on real servers, through a fault proxy: tests/faults/.

use std::sync::Arc;
use std::time::Duration;

use polyrouter::backends::memory::MemoryStore;
use polyrouter::config::{CacheConfig, ConfigDuration, Consistency, EntityConfig};
use polyrouter::layers::testing::{Counting, Faults, Mirror};
use polyrouter::layers::{
    Breaker, BreakerState, Layered, Limit, Resilience, Retry, Timeout, testing::Lag,
};
use polyrouter::router::{ReadOptions, ReadSource};
use polyrouter::store::blob::PutOptions;
use polyrouter::store::graph::{GraphInfo, Vertex};
use polyrouter::store::timeseries::SeriesInfo;
use polyrouter::store::{EntityInfo, WriteOp};
use polyrouter::{Entity, Error, Key, Precondition, Record, Rejection, Router, Store};
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[entity(name = "user", key = "id")]
struct User {
    id: String,
    name: String,
    #[entity(version)]
    version: u64,
}

fn user(id: &str, name: &str) -> User {
    User {
        id: id.into(),
        name: name.into(),
        version: 0,
    }
}

fn info() -> EntityInfo {
    let mut e = EntityInfo::new(User::schema());
    e.store = "m".into();
    e
}

fn put(key: &str, precondition: Precondition) -> WriteOp {
    let mut r = Record::new(Key::from(key));
    r.set("name", "x".into());
    WriteOp::Put {
        record: r,
        precondition,
        ttl: None,
    }
}

/// A memory store behind faults, counted below the layer under test.
type Flaky = Counting<Faults<MemoryStore>>;

fn flaky() -> Flaky {
    Counting::new(Faults::new(MemoryStore::new("m")))
}

fn fast_retry() -> Retry {
    Retry::new()
        .max_attempts(3)
        .base_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(5))
}

#[tokio::test]
async fn a_layered_store_offers_and_sees_every_extra_trait() {
    let store = Counting::new(MemoryStore::new("m"));
    let e = info();
    store.ensure_entity(&e).await.unwrap();
    let kv = store.as_kv().expect("kv forwarded");
    kv.increment(&e, &Key::from("n"), 2, None).await.unwrap();
    let g = store.as_graph().expect("graph forwarded");
    let gi = GraphInfo::new("social", "m");
    g.ensure_graph(&gi).await.unwrap();
    g.add_vertex(&gi, &Vertex::new("ada", "user"))
        .await
        .unwrap();
    let b = store.as_blob().expect("blobs forwarded");
    b.put_bytes("a.txt", b"hi".to_vec(), PutOptions::new())
        .await
        .unwrap();
    assert_eq!(b.get_bytes("a.txt").await.unwrap().unwrap(), b"hi");
    let ts = store.as_time_series().expect("time series forwarded");
    let series = SeriesInfo::new("power", ["watts"]);
    ts.ensure_series(&series).await.unwrap();
    assert!(
        store.as_search().is_none(),
        "the memory store has no search"
    );
    // ensure_entity, increment, ensure_graph, add_vertex, put_bytes,
    // get_bytes, ensure_series: each went through the policy.
    assert_eq!(store.counts().calls, 7);
}

#[tokio::test]
async fn mirror_keeps_the_primarys_graphs_and_blobs_reachable() {
    let replica: Arc<dyn Store> = Arc::new(MemoryStore::new("replica"));
    let primary = Arc::new(Mirror::new(MemoryStore::new("main"), replica.clone()));
    let router = Router::builder()
        .store("main", primary.clone())
        .store("replica", replica.clone())
        .graph(
            "social",
            polyrouter::config::GraphConfig {
                store: "main".into(),
                table_prefix: None,
            },
        )
        .route("user", "main")
        .build()
        .await
        .expect("a graph route on a mirrored store");
    let social = router.graph("social").unwrap();
    social
        .add_vertex(&Vertex::new("ada", "user"))
        .await
        .unwrap();
    assert!(router.blobs("main").is_ok(), "blobs behind the mirror");
    let users = router.repo::<User>().await.unwrap();
    users.put(&user("u1", "Ada")).await.unwrap();
    let mut on_replica = info();
    on_replica.store = "replica".into();
    let copy = replica.get(&on_replica, &Key::from("u1")).await.unwrap();
    assert_eq!(copy.unwrap().version, 1, "the write was mirrored");
}

#[tokio::test]
async fn reads_are_retried_after_transient_errors() {
    let store = Layered::wrap(flaky(), fast_retry());
    let e = info();
    store.ensure_entity(&e).await.unwrap();
    store.inner().reset();
    store.inner().inner().fail_next(2);
    assert_eq!(store.get(&e, &Key::from("a")).await.unwrap(), None);
    assert_eq!(
        store.inner().counts().gets,
        3,
        "two failures, then the answer"
    );
    // More failures than attempts: the error comes back, saying how many.
    store.inner().inner().fail_next(5);
    let err = store.get(&e, &Key::from("a")).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("after 3 attempts"), "{err}");
}

#[tokio::test]
async fn a_blind_put_whose_reply_was_lost_is_not_sent_again() {
    let store = Layered::wrap(flaky(), fast_retry());
    let e = info();
    store.ensure_entity(&e).await.unwrap();
    store.inner().reset();
    store.inner().inner().lose_next(1);
    let err = store
        .write(&e, vec![put("a", Precondition::None)], true)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert_eq!(store.inner().counts().writes, 1, "never retried");
    let now = store.get(&e, &Key::from("a")).await.unwrap().unwrap();
    assert_eq!(now.version, 1, "applied exactly once");
}

#[tokio::test]
async fn a_conditional_put_is_retried_but_never_applied_twice() {
    let store = Layered::wrap(flaky(), fast_retry());
    let e = info();
    store.ensure_entity(&e).await.unwrap();
    store
        .write(&e, vec![put("a", Precondition::Absent)], true)
        .await
        .unwrap();
    store.inner().reset();
    // Applied, then the reply is lost: the retry meets the new version.
    store.inner().inner().lose_next(1);
    let err = store
        .write(&e, vec![put("a", Precondition::Version(1))], true)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                actual: Some(2),
                ..
            }
        ),
        "the retry's precondition failed: {err}"
    );
    assert_eq!(store.inner().counts().writes, 2, "sent twice");
    let now = store.get(&e, &Key::from("a")).await.unwrap().unwrap();
    assert_eq!(now.version, 2, "applied once");
}

#[tokio::test]
async fn a_non_atomic_batch_is_not_retried_after_an_unknown_outcome() {
    let store = Layered::wrap(flaky(), fast_retry());
    let e = info();
    store.ensure_entity(&e).await.unwrap();
    store.inner().reset();
    store.inner().inner().fail_next(1);
    let ops = vec![
        put("a", Precondition::Absent),
        put("b", Precondition::Absent),
    ];
    assert!(store.write(&e, ops, false).await.is_err());
    assert_eq!(store.inner().counts().writes, 1, "sent once, never again");
}

#[tokio::test]
async fn an_increment_is_retried_only_when_the_store_refused_it() {
    let store = Layered::wrap(flaky(), fast_retry());
    let e = info();
    let kv = store.as_kv().unwrap();
    let k = Key::from("hits");
    store.inner().inner().lose_next(1);
    assert!(kv.increment(&e, &k, 1, None).await.is_err());
    assert_eq!(
        kv.get_bytes(&e, &k).await.unwrap().unwrap(),
        b"1",
        "applied once, never re-sent"
    );
    store.inner().inner().reject_next(2, None);
    assert_eq!(
        kv.increment(&e, &k, 1, None).await.unwrap(),
        2,
        "refused twice, then applied once"
    );
}

#[tokio::test(start_paused = true)]
async fn a_servers_retry_after_is_honoured_up_to_a_limit() {
    let store = Layered::wrap(
        flaky(),
        fast_retry().max_retry_after(Duration::from_secs(1)),
    );
    let e = info();
    store.ensure_entity(&e).await.unwrap();
    store.inner().reset();
    store
        .inner()
        .inner()
        .reject_next(1, Some(Duration::from_millis(300)));
    let started = tokio::time::Instant::now();
    store.get(&e, &Key::from("a")).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "waited what the store asked for (paused clock)"
    );
    // Asked to wait longer than allowed: no retry, the error says how long.
    store.inner().reset();
    store
        .inner()
        .inner()
        .reject_next(1, Some(Duration::from_secs(30)));
    let err = store.get(&e, &Key::from("a")).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
    assert_eq!(store.inner().counts().gets, 1);
}

#[tokio::test]
async fn the_retry_budget_stops_retries_from_multiplying_an_outage() {
    let store = Layered::wrap(flaky(), fast_retry().with_budget(10, 0.1));
    let e = info();
    store.ensure_entity(&e).await.unwrap();
    store.inner().reset();
    store.inner().inner().set_down(true);
    for _ in 0..50 {
        assert!(store.get(&e, &Key::from("a")).await.is_err());
    }
    let attempts = store.inner().counts().gets;
    // Without a budget: 150 attempts. With 10 tokens, retries stop once
    // half are spent.
    assert!(attempts <= 50 + 6, "{attempts} attempts for 50 calls");
    assert!(!store.policy().budget().allows_retry());
    // Recovery refills it.
    store.inner().inner().set_down(false);
    for _ in 0..100 {
        store.get(&e, &Key::from("a")).await.unwrap();
    }
    assert!(
        store.policy().budget().allows_retry(),
        "successes refill the budget"
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_call_times_out_with_a_typed_error() {
    let slow = Faults::new(MemoryStore::new("m"));
    slow.set_delay(Duration::from_secs(60));
    let store = Layered::wrap(slow, Timeout::new().read(Duration::from_millis(250)));
    let e = info();
    store.ensure_entity(&e).await.unwrap();
    let err = store.get(&e, &Key::from("a")).await.unwrap_err();
    match &err {
        Error::Timeout {
            store,
            entity,
            operation,
            after,
        } => {
            assert_eq!(
                (store.as_str(), entity.as_str(), operation.as_str()),
                ("m", "user", "get")
            );
            assert_eq!(*after, Duration::from_millis(250));
        }
        other => panic!("not a timeout: {other:?}"),
    }
    assert!(err.is_transient() && !err.nothing_applied());
}

#[tokio::test(start_paused = true)]
async fn the_breaker_opens_fails_fast_probes_and_closes() {
    let breaker = Breaker::new()
        .minimum_calls(5)
        .failure_rate(0.5)
        .open_for(Duration::from_secs(2))
        .half_open_probes(2);
    let store = Layered::wrap(flaky(), breaker);
    let e = info();
    store.ensure_entity(&e).await.unwrap();
    store.inner().reset();
    store.inner().inner().set_down(true);
    // With ensure_entity's success, the fourth failure makes 4 of 5.
    for _ in 0..4 {
        let err = store.get(&e, &Key::from("a")).await.unwrap_err();
        assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    }
    assert!(matches!(store.policy().state(), BreakerState::Open { .. }));
    let err = store.get(&e, &Key::from("a")).await.unwrap_err();
    let Error::CircuitOpen { retry_in, .. } = &err else {
        panic!("not an open circuit: {err:?}");
    };
    assert!(*retry_in <= Duration::from_secs(2));
    assert!(err.is_transient() && err.nothing_applied());
    assert_eq!(
        store.inner().counts().gets,
        4,
        "the open circuit sent nothing"
    );
    // The store recovers; after the open period two probes close it.
    store.inner().inner().set_down(false);
    tokio::time::advance(Duration::from_secs(2)).await;
    store.get(&e, &Key::from("a")).await.unwrap();
    assert_eq!(store.policy().state(), BreakerState::HalfOpen);
    store.get(&e, &Key::from("a")).await.unwrap();
    assert_eq!(store.policy().state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_opens_the_circuit_again() {
    let store = Layered::wrap(
        flaky(),
        Breaker::new()
            .minimum_calls(2)
            .open_for(Duration::from_secs(1))
            .half_open_probes(1),
    );
    let e = info();
    store.inner().inner().set_down(true);
    for _ in 0..2 {
        let _ = store.get(&e, &Key::from("a")).await;
    }
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(matches!(
        store.get(&e, &Key::from("a")).await,
        Err(Error::Unavailable { .. })
    ));
    assert!(matches!(store.policy().state(), BreakerState::Open { .. }));
}

#[tokio::test]
async fn answers_that_are_errors_do_not_open_the_circuit() {
    let store = Layered::wrap(MemoryStore::new("m"), Breaker::new().minimum_calls(3));
    let e = info();
    store.ensure_entity(&e).await.unwrap();
    for _ in 0..10 {
        // A bad key is the caller's error: the store answered.
        let err = store
            .write(&e, vec![put("a", Precondition::Version(9))], true)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{err}");
    }
    assert_eq!(store.policy().state(), BreakerState::Closed);
}

#[tokio::test]
async fn the_bulkhead_queues_then_refuses_without_sending() {
    let slow = flaky();
    slow.inner().set_delay(Duration::from_millis(100));
    let store = Arc::new(Layered::wrap(
        slow,
        Limit::new()
            .max_concurrency(2)
            .max_queue(1)
            .queue_timeout(Duration::from_secs(5)),
    ));
    let e = info();
    store.ensure_entity(&e).await.unwrap();
    store.inner().reset();
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let (s, e) = (store.clone(), e.clone());
            tokio::spawn(async move { s.get(&e, &Key::from("a")).await })
        })
        .collect();
    let mut limited = 0;
    for c in calls {
        match c.await.unwrap() {
            Ok(_) => {}
            Err(Error::Rejected {
                reason: Rejection::Limited,
                ..
            }) => limited += 1,
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(limited, 1, "two ran, one waited, one was refused");
    assert_eq!(
        store.inner().counts().gets,
        3,
        "the refused call was never sent"
    );
}

#[tokio::test(start_paused = true)]
async fn the_rate_limit_spaces_calls_and_refuses_what_cannot_wait() {
    let store = Layered::wrap(
        MemoryStore::new("m"),
        Limit::new()
            .rate(10.0, 1)
            .queue_timeout(Duration::from_millis(50)),
    );
    store.ping().await.unwrap();
    // The next turn is 100 ms away, longer than the wait allowed.
    let err = store.ping().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Rejected {
                reason: Rejection::Limited,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn stale_entries_are_served_while_the_primarys_circuit_is_open() {
    let primary = Arc::new(
        Resilience::new()
            .without_retry()
            .breaker(
                Breaker::new()
                    .minimum_calls(2)
                    .open_for(Duration::from_secs(60)),
            )
            .layer(Counting::new(Faults::new(MemoryStore::new("main")))),
    );
    let router = Router::builder()
        .store("main", primary.clone())
        .store("cache", Arc::new(MemoryStore::new("cache")))
        .route_with(
            "user",
            EntityConfig {
                store: "main".into(),
                cache: Some(CacheConfig {
                    store: "cache".into(),
                    ttl: Some(ConfigDuration(Duration::from_secs(1))),
                    stale_if_error: Some(ConfigDuration(Duration::from_secs(3600))),
                    ..Default::default()
                }),
                consistency: Some(Consistency::Eventual),
                ..Default::default()
            },
        )
        .build()
        .await
        .unwrap();
    let users = router.repo::<User>().await.unwrap();
    users.put(&user("u1", "Ada")).await.unwrap();
    users.get("u1").await.unwrap(); // fills the cache
    // Entries age by the wall clock: let this one expire.
    std::thread::sleep(Duration::from_millis(1100));
    let faults = primary.inner().inner();
    faults.set_down(true);
    for _ in 0..4 {
        let _ = users.get("u2").await; // failures open the circuit
    }
    assert!(matches!(
        primary.policy().breaker_ref().unwrap().state(),
        BreakerState::Open { .. }
    ));
    let sent = primary.inner().counts().gets;
    let read = users
        .get_with("u1", ReadOptions::new())
        .await
        .expect("served stale while the circuit is open");
    assert_eq!(read.value.unwrap().name, "Ada");
    assert!(
        read.meta.stale && read.meta.source == ReadSource::Cache,
        "{:?}",
        read.meta
    );
    assert_eq!(
        primary.inner().counts().gets,
        sent,
        "the primary was not asked"
    );
}

#[tokio::test]
async fn lag_still_forwards_the_extra_traits() {
    let lag = Lag::new(MemoryStore::new("m"));
    assert!(lag.as_kv().is_some() && lag.as_graph().is_some() && lag.as_blob().is_some());
}

#[tokio::test]
async fn resilience_is_read_from_toml_with_located_errors() {
    let router = Router::from_toml_str(
        r#"
        [stores.main]
        kind = "memory"
        [stores.main.resilience]
        timeout = { read = "2s", bulk = "0s" }
        retry = { max_attempts = 4, base_delay = "10ms" }
        breaker = { minimum_calls = 10, open_for = "1s" }
        limit = { max_concurrency = 16, rate = 500.0 }

        [stores.bare]
        kind = "memory"
        resilience = { enabled = false }
        "#,
    )
    .await
    .unwrap();
    assert_eq!(
        router.config().stores["main"].resilience.retry.max_attempts,
        4
    );
    assert!(format!("{:?}", router.store("main").unwrap()).contains("Layered"));
    assert!(!format!("{:?}", router.store("bare").unwrap()).contains("Layered"));
    router.store("main").unwrap().ping().await.unwrap();

    let err = Router::from_toml_str(
        "[stores.main]\nkind = \"memory\"\n[stores.main.resilience]\nretry = { max_atempts = 4 }\n",
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("stores.main.resilience.retry.max_atempts"),
        "{text}"
    );
    assert!(text.starts_with("<string>:4:"), "{text}");

    let err = Router::from_toml_str(
        "[stores.main]\nkind = \"memory\"\n[stores.main.resilience.breaker]\nfailure_rate = 1.5\n",
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("stores.main.resilience.breaker.failure_rate") && text.contains("at most 1"),
        "{text}"
    );
}

#[tokio::test]
async fn spans_carry_the_semantic_convention_fields_and_never_values() {
    use std::io::Write;
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let store = Resilience::new().layer(MemoryStore::new("m"));
    let e = info();
    store.ensure_entity(&e).await.unwrap();
    let mut r = Record::new(Key::from("u1"));
    r.set("name", "secret-value".into());
    store
        .write(
            &e,
            vec![WriteOp::Put {
                record: r,
                precondition: Precondition::None,
                ttl: None,
            }],
            true,
        )
        .await
        .unwrap();
    store.get(&e, &Key::from("u1")).await.unwrap();
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    for field in [
        "db.system.name=\"memory\"",
        "db.operation.name=\"get\"",
        "db.collection.name=\"user\"",
        "polyrouter.store=\"m\"",
        "polyrouter.outcome=\"ok\"",
        "db.response.returned_rows=1",
        "polyrouter.attempts=1",
    ] {
        assert!(out.contains(field), "{field} missing in:\n{out}");
    }
    assert!(
        !out.contains("secret-value"),
        "a record value leaked:\n{out}"
    );
    assert!(!out.contains("u1"), "a key without trace_keys:\n{out}");
}

#[test]
fn metrics_count_calls_errors_and_latency_per_store_and_entity() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            let faults = Faults::new(MemoryStore::new("m"));
            let store = Resilience::new().without_retry().layer(faults);
            let e = info();
            store.ensure_entity(&e).await.unwrap();
            store.get(&e, &Key::from("a")).await.unwrap();
            store.inner().set_down(true);
            assert!(store.get(&e, &Key::from("a")).await.is_err());
        })
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let find = |name: &str, labels: &[(&str, &str)]| {
        snapshot
            .iter()
            .find(|(k, _, _, _)| {
                k.key().name() == name
                    && labels
                        .iter()
                        .all(|(l, v)| k.key().labels().any(|x| x.key() == *l && x.value() == *v))
            })
            .map(|(_, _, _, v)| format!("{v:?}"))
    };
    let get = [("store", "m"), ("entity", "user"), ("operation", "get")];
    let ok = find(
        "polyrouter_store_calls_total",
        &[get[0], get[1], get[2], ("outcome", "ok")],
    );
    assert_eq!(
        ok.as_deref(),
        Some(format!("{:?}", DebugValue::Counter(1)).as_str())
    );
    let failed = find(
        "polyrouter_store_errors_total",
        &[get[0], get[1], get[2], ("kind", "unavailable")],
    );
    assert_eq!(
        failed.as_deref(),
        Some(format!("{:?}", DebugValue::Counter(1)).as_str())
    );
    let latency = snapshot.iter().find_map(|(k, _, _, v)| match v {
        DebugValue::Histogram(samples)
            if k.key().name() == "polyrouter_store_call_duration_seconds"
                && k.key()
                    .labels()
                    .any(|l| l.key() == "operation" && l.value() == "get") =>
        {
            Some(samples.len())
        }
        _ => None,
    });
    assert_eq!(latency, Some(2), "both gets timed");
}
