//! `coalesce_reads`: concurrent point reads share `get_many` round trips,
//! each read keeps its own answer, a read never misses a write acknowledged
//! before it started (writers racing on the same keys), and a failing
//! batch fails each of its reads — on memory, on SQLite and, with
//! `--features postgres,redis`, on PostgreSQL and on Redis.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use polyrouter::config::EntityConfig;
use polyrouter::layers::testing::{Counting, Faults};
use polyrouter::{Entity, Error, Precondition, Repo, Router, Store};
use serde::{Deserialize, Serialize};
use support::{Ctx, Env, Role};

#[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[entity(name = "counter", key = "id")]
struct Counter {
    id: String,
    n: i64,
    #[entity(version)]
    version: u64,
}

type Primary = Counting<Faults<Arc<dyn Store>>>;

async fn setup(env: Env, role: Role) -> (Ctx, Repo<Counter>, Arc<Primary>) {
    let ctx = Ctx::new(env);
    let primary = Arc::new(Counting::new(Faults::new(ctx.open("main", role).await)));
    let router = Router::builder()
        .store("main", primary.clone())
        .route_with(
            "counter",
            EntityConfig {
                store: "main".into(),
                coalesce_reads: true,
                coalesce_max_batch: Some(32),
                ..Default::default()
            },
        )
        .build()
        .await
        .unwrap();
    let repo = router.repo::<Counter>().await.unwrap();
    (ctx, repo, primary)
}

const KEYS: usize = 8;

/// Two writers per key bump counters by versioned read-modify-write while
/// 32 readers read them; after each acknowledged write, a read started
/// after it must see that version or a later one.
async fn reads_never_miss_an_acknowledged_write(env: Env, role: Role) {
    let (_ctx, repo, primary) = setup(env, role).await;
    for k in 0..KEYS {
        repo.put(&Counter {
            id: format!("c{k}"),
            n: 0,
            version: 0,
        })
        .await
        .unwrap();
    }
    primary.reset();
    // The highest version acknowledged per key so far.
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..KEYS).map(|_| AtomicU64::new(1)).collect());
    let mut tasks = Vec::new();
    for w in 0..2 * KEYS {
        let (repo, acked) = (repo.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let k = w % KEYS;
            let id = format!("c{k}");
            let mut done = 0;
            while done < 15 {
                let cur = repo.get(id.as_str()).await.unwrap().unwrap();
                let next = Counter {
                    n: cur.n + 1,
                    ..cur.clone()
                };
                match repo.put_if(&next, Precondition::Version(cur.version)).await {
                    Ok(v) => {
                        acked[k].fetch_max(v, Ordering::SeqCst);
                        done += 1;
                    }
                    Err(Error::Conflict { .. }) => {}
                    Err(e) => panic!("{id}: {e}"),
                }
            }
        }));
    }
    for r in 0..32 {
        let (repo, acked) = (repo.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..60 {
                let k = (r + i) % KEYS;
                let floor = acked[k].load(Ordering::SeqCst);
                let got = repo.get(format!("c{k}").as_str()).await.unwrap().unwrap();
                assert!(
                    got.version >= floor,
                    "c{k}: read version {} after version {floor} was acknowledged",
                    got.version
                );
                assert_eq!(got.n as u64, got.version - 1, "c{k}: a torn record");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let counts = primary.counts();
    assert_eq!(counts.gets, 0, "every point read went through get_many");
    let reads = (2 * KEYS * 15 + 32 * 60) as u64;
    assert!(
        counts.get_manys < reads,
        "{reads} reads or more took {} round trips: nothing was coalesced",
        counts.get_manys
    );
    // The final state: every acknowledged increment is there.
    for k in 0..KEYS {
        let got = repo.get(format!("c{k}").as_str()).await.unwrap().unwrap();
        assert_eq!(got.n, 30, "c{k}: two writers × 15 acknowledged increments");
    }
}

/// A batch that fails fails every read in it with the store's error, and
/// the next batch is answered again.
async fn a_failing_batch_fails_each_read(env: Env, role: Role) {
    let (_ctx, repo, primary) = setup(env, role).await;
    repo.put(&Counter {
        id: "a".into(),
        n: 1,
        version: 0,
    })
    .await
    .unwrap();
    primary.inner().set_down(true);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move { repo.get("a").await }));
    }
    for t in tasks {
        match t.await.unwrap() {
            Err(e) => assert!(e.is_transient(), "an outage is transient: {e}"),
            Ok(v) => panic!("read answered {v:?} while the store is down"),
        }
    }
    primary.inner().set_down(false);
    assert_eq!(repo.get("a").await.unwrap().unwrap().n, 1);
}

macro_rules! per_env {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(super::Env::Memory, super::Role::Data).await })*
        }
        #[cfg(feature = "sqlite")]
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(super::Env::Sqlite, super::Role::Data).await })*
        }
        #[cfg(all(feature = "postgres", feature = "redis"))]
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(super::Env::Servers, super::Role::Data).await })*
        }
        #[cfg(all(feature = "postgres", feature = "redis"))]
        mod redis {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(super::Env::Servers, super::Role::Kv).await })*
        }
    };
}

per_env!(
    reads_never_miss_an_acknowledged_write,
    a_failing_batch_fails_each_read,
);

#[tokio::test]
async fn batch_size_is_checked() {
    for (extra, says) in [
        (
            "coalesce_reads = true\ncoalesce_max_batch = 0",
            "greater than zero",
        ),
        ("coalesce_max_batch = 8", "without `coalesce_reads = true`"),
    ] {
        let toml =
            format!("[stores.m]\nkind = \"memory\"\n[entities.counter]\nstore = \"m\"\n{extra}\n");
        let e = Router::from_toml_str(&toml).await.unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("coalesce_max_batch") && text.contains(says),
            "{text}"
        );
    }
}
