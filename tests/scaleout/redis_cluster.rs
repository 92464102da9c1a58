//! The `redis` store on a PRIVATE six-node Redis Cluster the test starts
//! itself on 127.0.0.1:7111-7116 (never the shared one of `scripts/services
//! redis-cluster`): `ASK` and `MOVED` redirects while a slot migrates, then
//! concurrent writers with `wait_replicas = 1` while one master is killed
//! with SIGKILL; after its replica is promoted, every acknowledged write is
//! read back key by key and the same router writes again. Every node is
//! stopped when the trial ends, also on panic (the cluster's `Drop`).

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use polyrouter::{Entity, Repo, Router};
use serde::{Deserialize, Serialize};

use crate::{Outcome, check};

/// The private cluster's client ports (cluster bus: +10000).
const PORTS: [u16; 6] = [7111, 7112, 7113, 7114, 7115, 7116];
const KEYS: u64 = 200;
const WRITERS: u64 = 8;
/// Acknowledged puts before the kill, and of the killed master's keys
/// after its replica's promotion.
const BEFORE_KILL: u64 = 600;
const AFTER_PROMOTION: u64 = 200;

#[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[entity(name = "blip", key = "id")]
struct Blip {
    id: String,
    writer: u64,
    #[entity(version)]
    version: u64,
}

/// Six `redis-server` children in cluster mode; SIGKILLed when dropped.
struct PrivateCluster {
    _dir: tempfile::TempDir,
    nodes: HashMap<u16, Child>,
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        for child in self.nodes.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone)]
struct Node {
    id: String,
    port: u16,
    /// The id of its master, for a replica.
    master_of: Option<String>,
    master: bool,
    failed: bool,
    slots: Vec<(u16, u16)>,
}

fn url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}")
}

fn admin(port: u16) -> Result<redis::Connection, String> {
    redis::Client::open(url(port))
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
        .map_err(|e| format!("node {port}: {e}"))
}

fn query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> Result<T, String> {
    cmd.query(&mut admin(port)?)
        .map_err(|e| format!("node {port}: {e}"))
}

fn cluster_nodes(port: u16) -> Result<Vec<Node>, String> {
    let text: String = query(port, redis::cmd("CLUSTER").arg("NODES"))?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let addr = f.get(1)?.split('@').next()?;
            let port = addr.rsplit_once(':')?.1.parse().ok()?;
            let flags = f.get(2)?;
            let slots = f
                .iter()
                .skip(8)
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|n| (n, n)),
                })
                .collect();
            Some(Node {
                id: f[0].to_string(),
                port,
                master_of: f.get(3).filter(|m| **m != "-").map(|m| m.to_string()),
                master: flags.split(',').any(|x| x == "master"),
                failed: flags.split(',').any(|x| x == "fail" || x == "fail?"),
                slots,
            })
        })
        .collect())
}

fn cluster_ok(port: u16) -> bool {
    query::<String>(port, redis::cmd("CLUSTER").arg("INFO"))
        .map(|t| t.contains("cluster_state:ok"))
        .unwrap_or(false)
}

fn key_slot(key: &str) -> Result<u16, String> {
    query(PORTS[0], redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
}

/// Polls `cond` every 100 ms for up to `secs` seconds.
async fn wait_until(what: &str, secs: u64, mut cond: impl FnMut() -> bool) -> Outcome {
    for _ in 0..secs * 10 {
        if cond() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("{what}: not after {secs} s"))
}

impl PrivateCluster {
    async fn start() -> Result<PrivateCluster, String> {
        for port in PORTS {
            check(
                std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
                || {
                    format!(
                        "port {port} is in use: the private test cluster needs 7111-7116 (and 17111-17116) free — is an earlier run's redis-server left over?"
                    )
                },
            )?;
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut cluster = PrivateCluster {
            _dir: dir,
            nodes: HashMap::new(),
        };
        for port in PORTS {
            cluster.spawn(port)?;
        }
        for port in PORTS {
            wait_until(&format!("node {port} answers"), 20, || admin(port).is_ok()).await?;
        }
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(PORTS.map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .map_err(|e| format!("redis-cli: {e}"))?;
        check(out.status.success(), || {
            format!(
                "redis-cli --cluster create: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        wait_until("cluster_state:ok on every node", 30, || {
            PORTS.iter().all(|p| cluster_ok(*p))
        })
        .await?;
        // `WAIT` counts only replicas whose link is up (the first sync done).
        wait_until("every master's replica online", 30, || {
            PORTS.iter().all(|p| {
                query::<String>(*p, redis::cmd("INFO").arg("replication")).is_ok_and(|t| {
                    t.contains("role:slave") && t.contains("master_link_status:up")
                        || t.contains("role:master") && t.contains("state=online")
                })
            })
        })
        .await?;
        Ok(cluster)
    }

    /// Starts the node on `port` with its data directory (a node started
    /// again rejoins from its `nodes.conf`).
    fn spawn(&mut self, port: u16) -> Outcome {
        let data = self._dir.path().join(port.to_string());
        std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--enable-debug-command", "local"])
            .arg("--dir")
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("redis-server: {e}"))?;
        self.nodes.insert(port, child);
        Ok(())
    }

    /// SIGKILL to the node on `port`, by the child this test started.
    fn kill(&mut self, port: u16) -> Outcome {
        let child = self.nodes.get_mut(&port).ok_or("no such node")?;
        child.kill().map_err(|e| format!("kill node {port}: {e}"))?;
        let _ = child.wait();
        Ok(())
    }
}

async fn router() -> Result<(Router, Repo<Blip>), String> {
    let seeds: Vec<String> = PORTS[1..]
        .iter()
        .map(|p| format!("\"{}\"", url(*p)))
        .collect();
    let config = format!(
        r#"
[stores.rc]
kind = "redis"
url = "{first}"
cluster = true
cluster_urls = [{seeds}]
key_prefix = "pr-failover"
wait_replicas = 1
wait_timeout = "2s"
connect_timeout = "1s"
response_timeout = "3s"

[entities.blip]
store = "rc"
"#,
        first = url(PORTS[0]),
        seeds = seeds.join(", ")
    );
    let router = Router::from_toml_str(&config)
        .await
        .map_err(|e| format!("router: {e}"))?;
    let repo = router
        .repo::<Blip>()
        .await
        .map_err(|e| format!("repo: {e}"))?;
    Ok((router, repo))
}

fn blip(id: &str, writer: u64) -> Blip {
    Blip {
        id: id.into(),
        writer,
        version: 0,
    }
}

/// The Redis key of a blip record on a cluster: `{prefix}:{table}:{{key}}`.
fn redis_key(id: &str) -> String {
    format!("pr-failover:blip:{{{id}}}")
}

pub async fn redirects_and_failover_lose_no_acknowledged_write() -> Outcome {
    let mut cluster = PrivateCluster::start().await?;
    let (_router, repo) = router().await?;
    redirects(&repo).await?;
    failover(&mut cluster, &repo).await
}

/// A slot migrates from one master to another under the router: while it
/// is migrating, the moved key is answered after an `ASK` redirect; once
/// the slot belongs to the new master, after a `MOVED`.
async fn redirects(repo: &Repo<Blip>) -> Outcome {
    let id = "migrating";
    let v1 = repo.put(&blip(id, 0)).await.map_err(|e| e.to_string())?;
    let slot = key_slot(&redis_key(id))?;
    let nodes = cluster_nodes(PORTS[0])?;
    let masters: Vec<&Node> = nodes.iter().filter(|n| n.master).collect();
    let from = masters
        .iter()
        .find(|n| n.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot)))
        .ok_or("no master owns the slot")?;
    let to = masters
        .iter()
        .find(|n| n.id != from.id)
        .ok_or("a second master")?;
    let setslot = |port: u16, state: &str, id: &str| -> Outcome {
        query::<String>(
            port,
            redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg(state)
                .arg(id),
        )
        .map(|_| ())
    };
    setslot(to.port, "IMPORTING", &from.id)?;
    setslot(from.port, "MIGRATING", &to.id)?;
    let migrated: String = query(
        from.port,
        redis::cmd("MIGRATE")
            .arg("127.0.0.1")
            .arg(to.port)
            .arg(redis_key(id))
            .arg(0)
            .arg(5000),
    )?;
    check(migrated == "OK", || format!("MIGRATE: {migrated}"))?;
    // The router's map still names `from`, which answers ASK.
    let got = repo
        .get(id)
        .await
        .map_err(|e| format!("get after ASK: {e}"))?;
    check(got.as_ref().map(|b| b.version) == Some(v1), || {
        format!("read during the migration (ASK): {got:?}, want version {v1}")
    })?;
    let v2 = repo
        .put(&blip(id, 1))
        .await
        .map_err(|e| format!("put after ASK: {e}"))?;
    check(v2 == v1 + 1, || {
        format!("put during the migration: version {v2}")
    })?;
    for m in &masters {
        setslot(m.port, "NODE", &to.id)?;
    }
    // Now `from` answers MOVED; the router follows and refreshes its map.
    let got = repo
        .get(id)
        .await
        .map_err(|e| format!("get after MOVED: {e}"))?;
    check(got.as_ref().map(|b| b.version) == Some(v2), || {
        format!("read after the migration (MOVED): {got:?}, want version {v2}")
    })?;
    let v3 = repo
        .put(&blip(id, 2))
        .await
        .map_err(|e| format!("put after MOVED: {e}"))?;
    check(v3 == v2 + 1, || {
        format!("put after the migration: version {v3}")
    })?;
    println!(
        "slot {slot} migrated from :{} to :{}: read and write followed ASK, then MOVED",
        from.port, to.port
    );
    Ok(())
}

async fn failover(cluster: &mut PrivateCluster, repo: &Repo<Blip>) -> Outcome {
    // The master to kill, its slots and its replica.
    let nodes = cluster_nodes(PORTS[0])?;
    let victim = nodes
        .iter()
        .find(|n| n.master && n.port != PORTS[0] && !n.slots.is_empty())
        .cloned()
        .ok_or("a master to kill")?;
    let mut victim_keys = Vec::new();
    for k in 0..KEYS {
        let slot = key_slot(&redis_key(&format!("k{k}")))?;
        if victim.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot)) {
            victim_keys.push(k);
        }
    }
    check(!victim_keys.is_empty(), || {
        "no test key on the master to kill".into()
    })?;

    let on_victim: Arc<Vec<bool>> = Arc::new((0..KEYS).map(|k| victim_keys.contains(&k)).collect());
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..KEYS).map(|_| AtomicU64::new(0)).collect());
    let total = Arc::new(AtomicU64::new(0));
    let after_promotion = Arc::new(AtomicU64::new(0));
    let promoted = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let last_error = Arc::new(std::sync::Mutex::new(String::new()));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let last_error = last_error.clone();
        let on_victim = on_victim.clone();
        let (repo, acked, total, after_promotion, promoted, stop, errors) = (
            repo.clone(),
            acked.clone(),
            total.clone(),
            after_promotion.clone(),
            promoted.clone(),
            stop.clone(),
            errors.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Writers overlap: each key is written by several of them.
                let k = (w * 13 + i * 7) % KEYS;
                i += 1;
                match repo.put(&blip(&format!("k{k}"), w)).await {
                    Ok(version) => {
                        acked[k as usize].fetch_max(version, Ordering::SeqCst);
                        total.fetch_add(1, Ordering::SeqCst);
                        if promoted.load(Ordering::SeqCst) && on_victim[k as usize] {
                            after_promotion.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    // Not acknowledged: it may or may not be there; only
                    // acknowledged versions are checked.
                    Err(e) if e.is_transient() => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        *last_error.lock().unwrap() = format!("k{k}: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(e) => return Err(format!("writer {w}: put k{k}: {e}")),
                }
            }
            Ok::<(), String>(())
        }));
    }
    let finish = |writers: Vec<tokio::task::JoinHandle<Result<(), String>>>| async {
        stop.store(true, Ordering::SeqCst);
        for w in writers {
            w.await.map_err(|e| e.to_string())??;
        }
        Ok::<(), String>(())
    };

    // Kill the victim once enough writes are acknowledged (progress, not
    // a sleep), while the writers run.
    let start = tokio::time::Instant::now();
    while total.load(Ordering::SeqCst) < BEFORE_KILL {
        if start.elapsed() > Duration::from_secs(60) {
            finish(writers).await?;
            return Err(format!(
                "only {} writes acknowledged in 60 s",
                total.load(Ordering::SeqCst)
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Its replica stops taking the replication stream (`DEBUG SLEEP`) and
    // the victim drops the link, so the writes of the victim's keys from
    // here on reach only the victim; then the victim dies. Without `WAIT` such writes would be
    // acknowledged and lost with it; with it they are not acknowledged.
    let replica = nodes
        .iter()
        .find(|n| n.master_of.as_deref() == Some(victim.id.as_str()))
        .map(|n| n.port)
        .ok_or("the victim's replica")?;
    let sleeper = std::thread::spawn(move || {
        query::<String>(replica, redis::cmd("DEBUG").arg("SLEEP").arg(2))
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // And the victim drops its link to the sleeping replica: nothing
    // written from now on leaves the victim.
    query::<i64>(
        victim.port,
        redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("replica"),
    )?;
    let paused_from = total.load(Ordering::SeqCst);
    while total.load(Ordering::SeqCst) < paused_from + 100 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cluster.kill(victim.port)?;
    sleeper
        .join()
        .map_err(|_| "the DEBUG SLEEP thread panicked")?
        .map_err(|e| format!("DEBUG SLEEP on the replica: {e}"))?;
    let at_kill: Vec<u64> = acked.iter().map(|a| a.load(Ordering::SeqCst)).collect();
    let killed_at = total.load(Ordering::SeqCst);

    // The victim's replica is promoted: a surviving node lists the slots
    // under a master that is not the victim, and the cluster is ok.
    let survivor = PORTS
        .into_iter()
        .find(|p| *p != victim.port)
        .expect("a survivor");
    let promotion = wait_until("the replica's promotion", 60, || {
        cluster_ok(survivor)
            && cluster_nodes(survivor).is_ok_and(|nodes| {
                nodes
                    .iter()
                    .any(|n| n.master && !n.failed && n.id != victim.id && n.slots == victim.slots)
            })
    })
    .await;
    if let Err(e) = promotion {
        finish(writers).await?;
        return Err(e);
    }
    promoted.store(true, Ordering::SeqCst);
    let promoted_in = start.elapsed();
    let failed_while_alone = errors.load(Ordering::Relaxed);

    // The promoted master has no replica, so `WAIT 1` fails its writes
    // (none is acknowledged unreplicated) until the killed node comes
    // back — as its replica.
    cluster.spawn(victim.port)?;
    let rejoined = wait_until("the killed node rejoining as a replica", 60, || {
        query::<String>(victim.port, redis::cmd("INFO").arg("replication"))
            .is_ok_and(|t| t.contains("role:slave") && t.contains("master_link_status:up"))
    })
    .await;
    if let Err(e) = rejoined {
        finish(writers).await?;
        return Err(e);
    }

    // The same router writes the victim's keys again, by itself.
    let recovered = wait_until("writes after the promotion", 60, || {
        after_promotion.load(Ordering::SeqCst) >= AFTER_PROMOTION
    })
    .await
    .map_err(|e| {
        format!(
            "{e}: {} of {AFTER_PROMOTION} puts acknowledged since, {} failed in all, the last: {}",
            after_promotion.load(Ordering::SeqCst),
            errors.load(Ordering::Relaxed),
            last_error.lock().unwrap()
        )
    });
    finish(writers).await?;
    recovered?;

    // Every acknowledged write is there: key by key, a version at least
    // the highest acknowledged.
    let mut lost = Vec::new();
    for k in 0..KEYS {
        let want = acked[k as usize].load(Ordering::SeqCst);
        if want == 0 {
            continue;
        }
        let got = repo
            .get(format!("k{k}"))
            .await
            .map_err(|e| format!("read back k{k}: {e}"))?;
        let have = got.map(|b| b.version).unwrap_or(0);
        if have < want {
            lost.push(format!("k{k}: version {have}, acknowledged {want}"));
        }
    }
    check(lost.is_empty(), || {
        format!("acknowledged writes lost: {}", lost.join("; "))
    })?;
    let on_victim_before_kill = victim_keys
        .iter()
        .filter(|k| at_kill[**k as usize] > 0)
        .count();
    check(on_victim_before_kill > 0, || {
        "no acknowledged write was on the killed master: the check proves nothing".into()
    })?;
    println!(
        "killed master :{} after {killed_at} acknowledged puts ({on_victim_before_kill} of its {} keys written); replica promoted {:?} after the start of the load; {failed_while_alone} puts failed until then, {} in all; {} puts acknowledged, {AFTER_PROMOTION}+ of them on the killed master's keys after it rejoined as a replica; every acknowledged version read back",
        victim.port,
        victim_keys.len(),
        promoted_in,
        errors.load(Ordering::Relaxed),
        total.load(Ordering::SeqCst),
    );
    Ok(())
}
