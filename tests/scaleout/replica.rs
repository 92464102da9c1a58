//! A PostgreSQL hot standby as the `read_from` replica: every consistency
//! level against real streaming replication, its lag measured by the
//! standby itself, and a standby that dies.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use polyrouter::config::{ConfigDuration, Consistency};
use polyrouter::router::{EntityCounters, ReadOptions, ReadSource, Session};
use polyrouter::{Entity, Repo, Router};
use serde::{Deserialize, Serialize};

use crate::{Outcome, check};

/// The private primary and its standby (`scripts/services pg-replica`).
pub const PRIMARY_PORT: u16 = 5440;
pub const STANDBY_PORT: u16 = 5441;

#[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[entity(name = "account", key = "id")]
struct Account {
    id: String,
    balance: i64,
    #[entity(version)]
    version: u64,
}

fn account(id: &str, balance: i64) -> Account {
    Account {
        id: id.into(),
        balance,
        version: 0,
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

fn url(port: u16) -> String {
    format!("postgres://postgres@127.0.0.1:{port}/test")
}

/// `psql -c SQL` on a server; its output.
fn psql(port: u16, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", "postgres", "-d", "test", "-tAc", sql])
        .output()
        .map_err(|e| format!("psql: {e}"))?;
    check(out.status.success(), || {
        format!(
            "psql on port {port}: {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A router whose `account` entity lives on the private primary and reads
/// from the replica at `replica_port`, in a schema of its own (dropped on
/// the primary, hence on every standby, when the fixture goes).
struct Fixture {
    router: Router,
    accounts: Repo<Account>,
    schema: String,
}

impl Fixture {
    async fn new(replica_port: u16) -> Result<Fixture, String> {
        let schema = format!(
            "pr_replica_{}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let config = format!(
            r#"
[stores.pg]
kind = "postgres"
url = "{primary}"
schema = "{schema}"

[stores.pg_replica]
kind = "postgres"
url = "{replica}"
schema = "{schema}"
# A replica that is gone should cost a read little before the primary answers.
connect_timeout = "500ms"

[entities.account]
store = "pg"
read_from = "pg_replica"
"#,
            primary = url(PRIMARY_PORT),
            replica = url(replica_port),
        );
        let router = Router::from_toml_str(&config)
            .await
            .map_err(|e| format!("router: {e}"))?;
        let accounts = router
            .repo::<Account>()
            .await
            .map_err(|e| format!("repo: {e}"))?;
        Ok(Fixture {
            router,
            accounts,
            schema,
        })
    }

    fn counters(&self) -> EntityCounters {
        *self.router.metrics().entity("account").unwrap()
    }

    async fn put(&self, repo: &Repo<Account>, id: &str, balance: i64) -> Result<u64, String> {
        repo.put(&account(id, balance))
            .await
            .map_err(|e| format!("put {id}: {e}"))
    }

    /// Reads `id` at `level` until the replica answers with `version`.
    async fn until_replicated(&self, id: &str, version: u64) -> Outcome {
        for _ in 0..400 {
            let r = read(&self.accounts, id, Consistency::Eventual).await?;
            if r.0 == ReadSource::Replica && r.1 == Some(version) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err(format!("the replica never showed {id} v{version}"))
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = psql(
            PRIMARY_PORT,
            &format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.schema),
        );
    }
}

/// Source, version and balance of one read.
async fn read(
    repo: &Repo<Account>,
    id: &str,
    level: Consistency,
) -> Result<(ReadSource, Option<u64>, Option<i64>, Option<Duration>), String> {
    let r = repo
        .get_with(id, ReadOptions::new().consistency(level))
        .await
        .map_err(|e| format!("get {id} at {level:?}: {e}"))?;
    Ok((
        r.meta.source,
        r.meta.version,
        r.value.map(|a| a.balance),
        r.meta.age,
    ))
}

fn bounded(d: Duration) -> Consistency {
    Consistency::BoundedStaleness(ConfigDuration(d))
}

/// `read_your_writes`: a session reads at least what it wrote, right after
/// writing, while the standby is behind. `monotonic`: a reader never sees
/// a version older than one it saw, while another task keeps writing.
pub async fn read_your_writes_and_monotonic_never_go_back() -> Outcome {
    let f = Fixture::new(STANDBY_PORT).await?;
    let session = Session::new();
    let mine = f.accounts.with_session(&session);
    let mut by_replica = 0;
    for i in 0..200 {
        let v = f.put(&mine, "a", i).await?;
        let (source, version, balance, _) = read(&mine, "a", Consistency::ReadYourWrites).await?;
        check(version >= Some(v) && balance == Some(i), || {
            format!(
                "read_your_writes after writing v{v} (balance {i}) read {version:?} {balance:?} from {source:?}"
            )
        })?;
        by_replica += usize::from(source == ReadSource::Replica);
    }
    // Once the standby has the session's write it serves the session.
    let v = f.put(&mine, "b", 1).await?;
    f.until_replicated("b", v).await?;
    let (source, version, _, _) = read(&mine, "b", Consistency::ReadYourWrites).await?;
    check(source == ReadSource::Replica && version == Some(v), || {
        format!("a replicated write is read from {source:?} at {version:?}")
    })?;
    println!(
        "read_your_writes: {by_replica} of 200 reads right after a write came from the standby"
    );

    // Monotonic reads under a concurrent writer.
    f.put(&f.accounts, "m", 0).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (accounts, stop) = (f.accounts.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 1;
            while !stop.load(Ordering::Relaxed) && i <= 2000 {
                accounts
                    .put(&account("m", i))
                    .await
                    .map_err(|e| e.to_string())?;
                i += 1;
                // Paced, so the standby is sometimes caught up.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Ok::<_, String>(i)
        })
    };
    let reader_session = Session::new();
    let reader = f.accounts.with_session(&reader_session);
    let (mut last, mut from_replica, mut from_primary) = (0, 0, 0);
    for _ in 0..400 {
        let (source, version, _, _) = read(&reader, "m", Consistency::Monotonic).await?;
        let version = version.ok_or("m vanished")?;
        check(version >= last, || {
            format!("monotonic read went back from v{last} to v{version} ({source:?})")
        })?;
        last = version;
        match source {
            ReadSource::Replica => from_replica += 1,
            _ => from_primary += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await.map_err(|e| e.to_string())??;
    println!(
        "monotonic: 400 reads during {writes} writes: {from_replica} from the standby, {from_primary} from the primary; counters {:?}",
        f.counters()
    );
    check(from_replica > 0, || {
        "the standby never answered a monotonic read".into()
    })
}

/// `eventual` reads the standby whatever its lag: under a write load, a
/// read right after a write sees the standby's older row. This can fail —
/// if the standby were never behind.
pub async fn eventual_serves_a_stale_row_under_load() -> Outcome {
    let f = Fixture::new(STANDBY_PORT).await?;
    let stop = Arc::new(AtomicBool::new(false));
    // Background load on other keys keeps the WAL stream busy.
    let load = {
        let (accounts, stop) = (f.accounts.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let _ = accounts.put(&account(&format!("load-{}", i % 50), i)).await;
                i += 1;
            }
        })
    };
    let mut stale = None;
    for i in 0..2000 {
        let v = f.put(&f.accounts, "e", i).await?;
        let (source, version, balance, _) = read(&f.accounts, "e", Consistency::Eventual).await?;
        if source == ReadSource::Replica && version.is_some_and(|seen| seen < v) {
            stale = Some((i, v, version, balance));
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = load.await;
    let (i, v, version, balance) = stale.ok_or_else(|| {
        "2000 eventual reads right after a write never saw an older row on the standby".to_string()
    })?;
    println!(
        "eventual: write #{i} made v{v}; the standby answered v{version:?} (balance {balance:?})"
    );
    Ok(())
}

/// `bounded_staleness` reads the standby while the lag the standby
/// measures is within the bound, and the primary once it is not: replay is
/// paused on the standby (`pg_wal_replay_pause()`), so its lag really
/// grows.
pub async fn bounded_staleness_follows_the_measured_lag() -> Outcome {
    let f = Fixture::new(STANDBY_PORT).await?;
    let replica = f.router.store("pg_replica").unwrap().clone();
    let v1 = f.put(&f.accounts, "s", 1).await?;
    f.until_replicated("s", v1).await?;
    let lag = replica
        .replica_lag()
        .await
        .map_err(|e| format!("replica_lag: {e}"))?;
    println!("caught-up standby: measured lag {lag:?}");
    let (source, version, _, age) =
        read(&f.accounts, "s", bounded(Duration::from_secs(30))).await?;
    check(source == ReadSource::Replica && version == Some(v1), || {
        format!("a caught-up standby within 30s: {source:?} {version:?}")
    })?;
    check(age.is_some_and(|a| a <= Duration::from_secs(30)), || {
        format!("staleness of a bounded replica read: {age:?}")
    })?;

    let _paused = ReplayPause::new()?;
    let v2 = f.put(&f.accounts, "s", 2).await?;
    // Wait for the lag the standby reports to pass the bound (not for a
    // fixed time): its replay is paused, so it must.
    let bound = Duration::from_millis(200);
    let mut measured = Duration::ZERO;
    for _ in 0..200 {
        measured = replica
            .replica_lag()
            .await
            .map_err(|e| format!("replica_lag: {e}"))?;
        if measured > bound {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    check(measured > bound, || {
        format!("a paused standby still reports a lag of {measured:?}")
    })?;
    let lagging = f.counters().replica_lagging;
    let (source, version, balance, _) = read(&f.accounts, "s", bounded(bound)).await?;
    check(
        source == ReadSource::Primary && version == Some(v2) && balance == Some(2),
        || {
            format!(
                "bounded {bound:?} with the standby {measured:?} behind: {source:?} {version:?}"
            )
        },
    )?;
    check(f.counters().replica_lagging > lagging, || {
        format!("the fallback was not counted: {:?}", f.counters())
    })?;
    // The same moment, `eventual` shows what the standby has: the old row.
    let (source, version, _, _) = read(&f.accounts, "s", Consistency::Eventual).await?;
    check(source == ReadSource::Replica && version == Some(v1), || {
        format!("eventual on the paused standby: {source:?} {version:?}")
    })?;
    // A bound looser than the lag still takes the standby, saying how
    // stale it may be.
    let (source, version, _, age) =
        read(&f.accounts, "s", bounded(Duration::from_secs(3600))).await?;
    check(
        source == ReadSource::Replica && version == Some(v1) && age.is_some_and(|a| a >= measured),
        || format!("bounded 1h on the paused standby: {source:?} {version:?} age {age:?}"),
    )?;
    drop(_paused);
    f.until_replicated("s", v2).await
}

/// Pauses WAL replay on the shared standby; resumed when dropped, even
/// when the trial fails.
struct ReplayPause;

impl ReplayPause {
    fn new() -> Result<ReplayPause, String> {
        psql(STANDBY_PORT, "SELECT pg_wal_replay_pause()")?;
        Ok(ReplayPause)
    }
}

impl Drop for ReplayPause {
    fn drop(&mut self) {
        if let Err(e) = psql(STANDBY_PORT, "SELECT pg_wal_replay_resume()") {
            eprintln!("could not resume replay on the standby: {e}");
        }
    }
}

/// A standby of its own (`pg_basebackup -R` from the private primary, on
/// a free port), killed with SIGKILL mid-run: every read still answers,
/// from the primary, and each failed replica call is counted.
pub async fn a_dead_replica_leaves_reads_to_the_primary() -> Outcome {
    let mut standby = PrivateStandby::start()?;
    let f = Fixture::new(standby.port).await?;
    for i in 0..20 {
        f.put(&f.accounts, &format!("k{i}"), i).await?;
    }
    let v = f.put(&f.accounts, "k0", 100).await?;
    f.until_replicated("k0", v).await?;
    standby.kill();
    let before = f.counters();
    for i in 0..10 {
        let id = format!("k{i}");
        let want = if i == 0 { 100 } else { i };
        let (source, _, balance, _) = read(&f.accounts, &id, Consistency::Eventual).await?;
        check(
            source == ReadSource::Primary && balance == Some(want),
            || format!("{id} with the replica dead: {source:?} {balance:?}"),
        )?;
    }
    let (source, _, balance, _) = read(&f.accounts, "k0", bounded(Duration::from_secs(5))).await?;
    check(
        source == ReadSource::Primary && balance == Some(100),
        || format!("bounded read with the replica dead: {source:?} {balance:?}"),
    )?;
    let after = f.counters();
    println!("replica down: before {before:?}, after {after:?}");
    check(
        after.replica_errors >= before.replica_errors + 10
            && after.primary_reads >= before.primary_reads + 11,
        || format!("the fallbacks were not counted: before {before:?}, after {after:?}"),
    )
}

/// A hot standby this trial makes and kills by its own process id.
struct PrivateStandby {
    _dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

fn postgres_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries in /usr/lib/postgresql")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("postgres").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("a postgres under /usr/lib/postgresql/*/bin")
}

fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

impl PrivateStandby {
    fn start() -> Result<PrivateStandby, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (uid, gid) = postgres_ids();
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).map_err(|e| e.to_string())?;
        let data = dir.path().join("data");
        let bin = postgres_bin();
        let status = Command::new(bin.join("pg_basebackup"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &PRIMARY_PORT.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-R", "-X", "stream", "--checkpoint=fast", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .uid(uid)
            .gid(gid)
            .status()
            .map_err(|e| format!("pg_basebackup: {e}"))?;
        check(status.success(), || "pg_basebackup failed".into())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let child = Command::new(bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", data.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .uid(uid)
            .gid(gid)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("postgres: {e}"))?;
        let mut s = PrivateStandby {
            _dir: dir,
            port,
            child: Some(child),
        };
        s.wait_ready(&bin)?;
        Ok(s)
    }

    fn wait_ready(&mut self, bin: &Path) -> Outcome {
        for _ in 0..600 {
            let ok = Command::new(bin.join("pg_isready"))
                .args([
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                ])
                .status()
                .is_ok_and(|s| s.success());
            if ok && psql(self.port, "SELECT pg_is_in_recovery()").as_deref() == Ok("t") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "the private standby on port {} never became ready",
            self.port
        ))
    }

    /// SIGKILL to the server's process group (the postmaster and its
    /// children), by the pid this trial started.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{}", c.id())])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateStandby {
    fn drop(&mut self) {
        self.kill();
    }
}
