//! Cache-aside, single-flight, negative caching, stale-if-error, a cache
//! that is down or slow, and every consistency level under injected lag
//! (delayed cache invalidation, a lagging replica) — on the embedded stores
//! and, with `--features postgres,redis`, on PostgreSQL + Redis.

mod support;

use std::sync::Arc;
use std::time::Duration;

use polyrouter::config::{CacheConfig, ConfigDuration, Consistency, EntityConfig};
use polyrouter::layers::testing::{Counting, Faults, Lag, Mirror};
use polyrouter::router::{ReadOptions, ReadSource, Session};
use polyrouter::{Entity, Repo, Router, Store};
use serde::{Deserialize, Serialize};
use support::{Ctx, Env, Role};

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

type Primary = Counting<Faults<Arc<dyn Store>>>;

struct Setup {
    router: Router,
    users: Repo<User>,
    primary: Arc<Primary>,
    cache: Arc<Lag<Faults<Arc<dyn Store>>>>,
    replica: Option<Arc<Lag<Arc<dyn Store>>>>,
    _ctx: Ctx,
}

impl Setup {
    fn primary_gets(&self) -> u64 {
        let c = self.primary.counts();
        c.gets + c.get_manys
    }
    fn cache_faults(&self) -> &Faults<Arc<dyn Store>> {
        self.cache.inner()
    }
    fn counters(&self) -> polyrouter::router::EntityCounters {
        *self.router.metrics().entity("user").unwrap()
    }
}

fn d(ms: u64) -> Option<ConfigDuration> {
    Some(ConfigDuration(Duration::from_millis(ms)))
}

async fn setup(
    env: Env,
    cache: CacheConfig,
    consistency: Option<Consistency>,
    with_replica: bool,
) -> Setup {
    let ctx = Ctx::new(env);
    let raw = ctx.open("main", Role::Data).await;
    let cache_store = Arc::new(Lag::new(Faults::new(ctx.open("cache", Role::Kv).await)));
    let (primary_store, replica): (Arc<dyn Store>, _) = if with_replica {
        let rep = Arc::new(Lag::new(ctx.open("replica", Role::Data).await));
        let mirrored: Arc<dyn Store> = Arc::new(Mirror::new(raw, rep.clone()));
        (mirrored, Some(rep))
    } else {
        (raw, None)
    };
    let primary = Arc::new(Counting::new(Faults::new(primary_store)));
    let mut b = Router::builder()
        .store("main", primary.clone())
        .store("cache", cache_store.clone());
    if let Some(rep) = &replica {
        b = b.store("replica", rep.clone());
    }
    let router = b
        .route_with(
            "user",
            EntityConfig {
                store: "main".into(),
                cache: Some(CacheConfig {
                    store: "cache".into(),
                    ..cache
                }),
                consistency,
                read_from: with_replica.then(|| "replica".into()),
                ..Default::default()
            },
        )
        .build()
        .await
        .unwrap();
    let users = router.repo::<User>().await.unwrap();
    primary.reset();
    Setup {
        router,
        users,
        primary,
        cache: cache_store,
        replica,
        _ctx: ctx,
    }
}

fn hour() -> CacheConfig {
    CacheConfig {
        ttl: d(3_600_000),
        ..Default::default()
    }
}

async fn read_through_fill_and_invalidate(env: Env) {
    let s = setup(env, hour(), None, false).await;
    s.users.put(&user("u1", "Ada")).await.unwrap();
    assert_eq!(s.users.get("u1").await.unwrap().unwrap().name, "Ada");
    assert_eq!(s.primary_gets(), 1, "a miss reads the primary");
    let hit = s.users.get_with("u1", ReadOptions::new()).await.unwrap();
    assert_eq!(hit.meta.source, ReadSource::Cache);
    assert_eq!(hit.value.unwrap().version, 1);
    assert_eq!(s.primary_gets(), 1, "a hit does not");
    // Write: primary first, then the entry is deleted, never overwritten.
    s.users.put(&user("u1", "Grace")).await.unwrap();
    let after = s.users.get_with("u1", ReadOptions::new()).await.unwrap();
    assert_eq!(after.meta.source, ReadSource::Primary);
    assert_eq!(after.value.unwrap().name, "Grace");
    // Batch writes invalidate too: put_many, delete_many, batch.
    s.users.get("u1").await.unwrap();
    s.users
        .put_many(&[user("u1", "Linus"), user("u2", "Ken")])
        .await
        .unwrap();
    assert_eq!(s.users.get("u1").await.unwrap().unwrap().name, "Linus");
    s.users.get("u2").await.unwrap();
    s.users.delete_many(["u1", "u2"]).await.unwrap();
    assert!(s.users.get("u1").await.unwrap().is_none());
    assert!(s.users.get("u2").await.unwrap().is_none());
    s.users.put(&user("u3", "Barbara")).await.unwrap();
    s.users.get("u3").await.unwrap();
    s.users
        .batch()
        .put(&user("u3", "Liskov"))
        .commit()
        .await
        .unwrap();
    assert_eq!(s.users.get("u3").await.unwrap().unwrap().name, "Liskov");
    // get_many: hits from the cache, the rest in one primary call.
    s.users.put(&user("u4", "Edsger")).await.unwrap();
    s.primary.reset();
    let many = s.users.get_many(["u3", "u4", "nope"]).await.unwrap();
    assert_eq!(many.iter().filter(|u| u.is_some()).count(), 2);
    assert_eq!(s.primary.counts().get_manys, 1);
    assert_eq!(s.primary.counts().keys_read, 2, "u3 came from the cache");
    let c = s.counters();
    assert!(
        c.cache_hits >= 2 && c.fills >= 4 && c.invalidations >= 6,
        "{c:?}"
    );
}

/// The stampede tests give the cache room to answer 1000 calls at once on
/// 2 cores: with the default 100 ms timeout, lookups that time out count
/// as cache failures and may start a second flight once the first is over.
fn patient() -> CacheConfig {
    CacheConfig {
        timeout: d(30_000),
        ..hour()
    }
}

async fn stampede_is_one_primary_read(env: Env) {
    let s = setup(env, patient(), None, false).await;
    s.users.put(&user("hot", "x")).await.unwrap();
    s.primary.reset();
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let users = s.users.clone();
            tokio::spawn(async move { users.get("hot").await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().unwrap().name, "x");
    }
    assert_eq!(
        s.primary_gets(),
        1,
        "1000 concurrent misses, one primary read: {:?}",
        s.counters()
    );
}

async fn stampede_on_an_absent_key_with_negative_caching(env: Env) {
    let cfg = CacheConfig {
        negative_ttl: d(60_000),
        ..patient()
    };
    let s = setup(env, cfg, None, false).await;
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let users = s.users.clone();
            tokio::spawn(async move { users.get("ghost").await })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().unwrap().is_none());
    }
    assert_eq!(s.primary_gets(), 1, "{:?}", s.counters());
    assert!(s.counters().negative_hits > 0 || s.counters().coalesced > 0);
    // A write replaces the negative entry's effect at once.
    s.users.put(&user("ghost", "boo")).await.unwrap();
    assert_eq!(s.users.get("ghost").await.unwrap().unwrap().name, "boo");
}

async fn without_negative_caching_absent_keys_are_not_cached(env: Env) {
    let s = setup(env, hour(), None, false).await;
    assert!(s.users.get("none").await.unwrap().is_none());
    assert!(s.users.get("none").await.unwrap().is_none());
    assert_eq!(s.primary_gets(), 2);
}

async fn a_down_or_slow_cache_never_fails_a_read(env: Env) {
    let cfg = CacheConfig {
        timeout: d(20),
        ..hour()
    };
    let s = setup(env, cfg, None, false).await;
    s.users.put(&user("u1", "Ada")).await.unwrap();
    s.cache_faults().set_down(true);
    for _ in 0..3 {
        assert_eq!(s.users.get("u1").await.unwrap().unwrap().name, "Ada");
    }
    assert!(s.counters().cache_errors >= 3, "{:?}", s.counters());
    // A write with the cache down still succeeds; its invalidation failure is counted.
    s.users.put(&user("u1", "Grace")).await.unwrap();
    assert!(s.counters().invalidation_errors >= 1);
    s.cache_faults().set_down(false);
    s.cache_faults().set_delay(Duration::from_millis(200));
    let before = s.counters().cache_errors;
    let r = s.users.get_with("u1", ReadOptions::new()).await.unwrap();
    assert_eq!(r.meta.source, ReadSource::Primary);
    assert_eq!(r.value.unwrap().name, "Grace");
    assert!(s.counters().cache_errors > before);
}

async fn stale_if_error_serves_an_expired_entry_flagged(env: Env) {
    let cfg = CacheConfig {
        ttl: d(50),
        stale_if_error: d(3_600_000),
        ..Default::default()
    };
    let s = setup(env, cfg, None, false).await;
    s.users.put(&user("u1", "Ada")).await.unwrap();
    s.users.get("u1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await; // past the TTL
    s.primary.inner().set_down(true);
    let r = s.users.get_with("u1", ReadOptions::new()).await.unwrap();
    assert!(r.meta.stale, "{:?}", r.meta);
    assert_eq!(r.meta.source, ReadSource::Cache);
    assert_eq!(r.value.unwrap().name, "Ada");
    assert_eq!(s.counters().stale_served, 1);
    // Strong reads never see the cache: the outage shows.
    let strong = s
        .users
        .get_with("u1", ReadOptions::new().consistency(Consistency::Strong))
        .await;
    assert!(strong.unwrap_err().is_transient());
    // A key never cached has nothing to fall back on.
    assert!(s.users.get("u2").await.unwrap_err().is_transient());
    s.primary.inner().set_down(false);
    let fresh = s.users.get_with("u1", ReadOptions::new()).await.unwrap();
    assert!(!fresh.meta.stale);
}

async fn without_stale_if_error_an_outage_is_an_error(env: Env) {
    let cfg = CacheConfig {
        ttl: d(50),
        ..Default::default()
    };
    let s = setup(env, cfg, None, false).await;
    s.users.put(&user("u1", "Ada")).await.unwrap();
    s.users.get("u1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    s.primary.inner().set_down(true);
    assert!(s.users.get("u1").await.unwrap_err().is_transient());
}

/// Writes v2 while the cache's invalidation of v1 is held back.
async fn lagging_cache(env: Env, level: Consistency) -> Setup {
    let s = setup(env, hour(), Some(level), false).await;
    s.users.put(&user("u1", "v1")).await.unwrap();
    s.users
        .get_with("u1", ReadOptions::new().consistency(Consistency::Eventual))
        .await
        .unwrap(); // fills v1
    s.cache.pause();
    s
}

async fn eventual_shows_the_stale_read(env: Env) {
    let s = lagging_cache(env, Consistency::Eventual).await;
    s.users.put(&user("u1", "v2")).await.unwrap();
    let r = s.users.get_with("u1", ReadOptions::new()).await.unwrap();
    assert_eq!(
        r.value.unwrap().name,
        "v1",
        "the lag is real: eventual reads the old copy"
    );
    assert_eq!(r.meta.source, ReadSource::Cache);
    s.cache.resume().await.unwrap();
    assert_eq!(s.users.get("u1").await.unwrap().unwrap().name, "v2");
}

async fn strong_bypasses_a_lagging_cache(env: Env) {
    let s = lagging_cache(env, Consistency::Strong).await;
    s.users.put(&user("u1", "v2")).await.unwrap();
    let r = s.users.get_with("u1", ReadOptions::new()).await.unwrap();
    assert_eq!(r.value.unwrap().name, "v2");
    assert_eq!(r.meta.source, ReadSource::Primary);
    let stale = s
        .users
        .get_with("u1", ReadOptions::new().consistency(Consistency::Eventual))
        .await
        .unwrap();
    assert_eq!(
        stale.value.unwrap().name,
        "v1",
        "per-call override reads the lagging cache"
    );
}

async fn bounded_staleness_refuses_entries_older_than_the_bound(env: Env) {
    let bound = Consistency::BoundedStaleness(ConfigDuration(Duration::from_millis(60)));
    let s = lagging_cache(env, bound).await;
    s.users.put(&user("u1", "v2")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await; // the v1 entry is now too old
    let r = s.users.get_with("u1", ReadOptions::new()).await.unwrap();
    assert_eq!(r.value.unwrap().name, "v2");
    assert_eq!(r.meta.source, ReadSource::Primary);
    let eventual = s
        .users
        .get_with("u1", ReadOptions::new().consistency(Consistency::Eventual))
        .await
        .unwrap();
    assert_eq!(
        eventual.value.unwrap().name,
        "v1",
        "the entry is still there"
    );
    // A wide bound accepts the entry.
    let wide = Consistency::BoundedStaleness(ConfigDuration(Duration::from_secs(3600)));
    let r = s
        .users
        .get_with("u1", ReadOptions::new().consistency(wide))
        .await
        .unwrap();
    assert_eq!(r.meta.source, ReadSource::Cache);
    assert!(r.meta.age.unwrap() >= Duration::from_millis(150));
}

async fn read_your_writes_sees_its_own_write(env: Env) {
    let s = lagging_cache(env, Consistency::ReadYourWrites).await;
    let session = Session::new();
    let mine = s.users.with_session(&session);
    assert_eq!(mine.put(&user("u1", "v2")).await.unwrap(), 2);
    assert_eq!(mine.get("u1").await.unwrap().unwrap().name, "v2");
    // The session survives a round trip through a cookie.
    let again = Session::parse(&session.to_token()).unwrap();
    let r = s
        .users
        .get_with("u1", ReadOptions::new().session(&again))
        .await
        .unwrap();
    assert_eq!(r.value.unwrap().name, "v2");
    assert_eq!(r.meta.source, ReadSource::Primary);
    // Another session has no such guarantee: it reads the lagging copy.
    let other = s.users.with_session(&Session::new());
    assert_eq!(other.get("u1").await.unwrap().unwrap().name, "v1");
    // Its own delete is seen too.
    mine.delete("u1").await.unwrap();
    assert!(mine.get("u1").await.unwrap().is_none());
    assert_eq!(other.get("u1").await.unwrap().unwrap().name, "v1");
}

async fn monotonic_never_goes_back(env: Env) {
    let s = lagging_cache(env, Consistency::Monotonic).await;
    s.users.put(&user("u1", "v2")).await.unwrap();
    let session = Session::new();
    let mine = s.users.with_session(&session);
    // The session sees v2 once (a strong read) ...
    let seen = mine
        .get_with("u1", ReadOptions::new().consistency(Consistency::Strong))
        .await
        .unwrap();
    assert_eq!(seen.value.unwrap().version, 2);
    // ... and is never shown v1 again, though the cache still holds it.
    for _ in 0..3 {
        let r = mine.get_with("u1", ReadOptions::new()).await.unwrap();
        assert_eq!(r.value.unwrap().version, 2);
    }
    let fresh_session = s.users.with_session(&Session::new());
    assert_eq!(fresh_session.get("u1").await.unwrap().unwrap().version, 1);
}

/// A replica behind the primary: writes reach it only after `resume`.
async fn lagging_replica(env: Env, level: Consistency) -> Setup {
    let s = setup(env, hour(), Some(level), true).await;
    s.users.put(&user("u1", "v1")).await.unwrap();
    s.replica.as_ref().unwrap().pause();
    s.users.put(&user("u1", "v2")).await.unwrap();
    s
}

async fn replica_levels_under_lag(env: Env) {
    // eventual: the replica's old copy is served (the lag is visible).
    let s = lagging_replica(env, Consistency::Eventual).await;
    let r = s.users.get_with("u1", ReadOptions::new()).await.unwrap();
    assert_eq!(
        (r.meta.source, r.value.unwrap().name.as_str()),
        (ReadSource::Replica, "v1")
    );
    // strong: the primary.
    let r = s
        .users
        .get_with("u1", ReadOptions::new().consistency(Consistency::Strong))
        .await
        .unwrap();
    assert_eq!(r.value.unwrap().name, "v2");
    // bounded staleness: the replica measures its lag (the `Lag` layer: the
    // time since its oldest held-back write). Within a loose bound it
    // answers, with the most its copy can be behind …
    let loose = Consistency::BoundedStaleness(ConfigDuration(Duration::from_secs(3600)));
    let r = s
        .users
        .get_with("u1", ReadOptions::new().consistency(loose))
        .await
        .unwrap();
    assert_eq!(r.meta.source, ReadSource::Replica);
    assert!(r.meta.age.is_some_and(|a| a <= Duration::from_secs(3600)));
    assert_eq!(r.value.unwrap().name, "v1");
    // … and once it is further behind than the bound, the primary answers.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let lagging = s.counters().replica_lagging;
    let tight = Consistency::BoundedStaleness(ConfigDuration(Duration::from_millis(10)));
    let r = s
        .users
        .get_with("u1", ReadOptions::new().consistency(tight))
        .await
        .unwrap();
    assert_eq!(
        (r.meta.source, r.value.unwrap().name.as_str()),
        (ReadSource::Primary, "v2")
    );
    assert_eq!(s.counters().replica_lagging, lagging + 1);
    // read-your-writes: the writer's session refuses the replica's v1.
    let session = Session::new();
    let mine = s.users.with_session(&session);
    mine.put(&user("u1", "v3")).await.unwrap();
    let r = mine
        .get_with(
            "u1",
            ReadOptions::new().consistency(Consistency::ReadYourWrites),
        )
        .await
        .unwrap();
    assert_eq!(r.value.unwrap().name, "v3");
    // monotonic: once v3 is seen, the replica's v1 is never returned.
    let r = mine
        .get_with("u1", ReadOptions::new().consistency(Consistency::Monotonic))
        .await
        .unwrap();
    assert_eq!(r.value.unwrap().version, 3);
    // A record only the primary has yet is still found (absent on the
    // replica is no proof of absence).
    s.users.put(&user("u7", "new")).await.unwrap();
    assert_eq!(s.users.get("u7").await.unwrap().unwrap().name, "new");
    s.users.put(&user("u8", "newer")).await.unwrap();
    // After the replica catches up it answers again.
    s.replica.as_ref().unwrap().resume().await.unwrap();
    let before = s.counters().replica_reads;
    let r = s.users.get_many(["u8"]).await.unwrap();
    assert_eq!(r[0].as_ref().unwrap().name, "newer");
    assert_eq!(s.counters().replica_reads, before + 1, "{:?}", s.counters());
}

#[tokio::test]
async fn cache_config_is_checked() {
    let e = Router::from_toml_str(
        "[stores.m]\nkind = \"memory\"\n[stores.c]\nkind = \"memory\"\n[entities.user]\nstore = \"m\"\ncache = { store = \"c\" }\n",
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("a cache needs `ttl`"), "{e}");
    let e = Router::from_toml_str(
        "[stores.m]\nkind = \"memory\"\n[entities.user]\nstore = \"m\"\nread_from = \"nope\"\n",
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("entities.user.read_from"), "{e}");
    let r = Router::from_toml_str(
        "[stores.m]\nkind = \"memory\"\n[stores.c]\nkind = \"memory\"\n[entities.user]\nstore = \"m\"\ncache = { store = \"c\", ttl = \"1h\", negative_ttl = \"30s\", stale_if_error = \"5m\", timeout = \"50ms\" }\n",
    )
    .await
    .unwrap();
    assert_eq!(r.route("user").unwrap().consistency, Consistency::Eventual);
    let r = Router::from_toml_str(
        "[stores.m]\nkind = \"memory\"\n[stores.c]\nkind = \"memory\"\n[entities.user]\nstore = \"m\"\ncache = { store = \"c\", ttl = \"1h\" }\nconsistency = { bounded_staleness = \"5s\" }\n",
    )
    .await
    .unwrap();
    assert_eq!(
        r.route("user").unwrap().consistency,
        Consistency::BoundedStaleness(ConfigDuration(Duration::from_secs(5)))
    );
}

macro_rules! per_env {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(super::Env::Memory).await })*
        }
        #[cfg(feature = "sqlite")]
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(super::Env::Sqlite).await })*
        }
        #[cfg(all(feature = "postgres", feature = "redis"))]
        mod servers {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(super::Env::Servers).await })*
        }
    };
}

per_env!(
    read_through_fill_and_invalidate,
    stampede_is_one_primary_read,
    stampede_on_an_absent_key_with_negative_caching,
    without_negative_caching_absent_keys_are_not_cached,
    a_down_or_slow_cache_never_fails_a_read,
    stale_if_error_serves_an_expired_entry_flagged,
    without_stale_if_error_an_outage_is_an_error,
    eventual_shows_the_stale_read,
    strong_bypasses_a_lagging_cache,
    bounded_staleness_refuses_entries_older_than_the_bound,
    read_your_writes_sees_its_own_write,
    monotonic_never_goes_back,
    replica_levels_under_lag,
);
