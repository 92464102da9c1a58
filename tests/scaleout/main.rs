//! Scale-out on real engines on this machine's loopback addresses: a
//! PostgreSQL hot standby as a `read_from` replica (`scripts/services
//! pg-replica`: a private primary on 5440, a standby made with
//! `pg_basebackup -R` on 5441) and a three-node JetStream cluster
//! (`scripts/services nats-cluster`: 4231-4233). The Redis Cluster trial
//! starts a private six-node cluster of its own (7111-7116).
//!
//! The suite starts both with the script (idempotent: whatever answers
//! already is shared) and, unless a caller records what it starts in
//! `POLYROUTER_STARTED` (`scripts/test`, `.ci/run`), stops on exit what it
//! started. Trials run one at a time: one pauses the shared standby's
//! replay, one kills a cluster node. Every trial checks outcomes, never
//! durations; a missing server fails the run.
//!
//! ```text
//! cargo test --all-features --test scaleout
//! ```

mod cluster;
mod redis_cluster;
mod replica;

use std::path::PathBuf;
use std::process::Command;

use futures::future::BoxFuture;
use libtest_mimic::{Arguments, Failed, Trial};

/// A trial's result: `Err` with what went wrong.
pub type Outcome = Result<(), String>;

/// Fails unless `cond` holds.
pub fn check(cond: bool, what: impl FnOnce() -> String) -> Outcome {
    if cond { Ok(()) } else { Err(what()) }
}

/// `scripts/services` of this checkout.
pub fn services_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/services")
}

/// Runs `scripts/services ARGS`, recording what it starts in `record`.
pub fn services(args: &[&str], record: &str) -> Outcome {
    let out = Command::new(services_script())
        .args(args)
        .env("POLYROUTER_STARTED", record)
        .output()
        .map_err(|e| format!("cannot run scripts/services: {e}"))?;
    check(out.status.success(), || {
        format!(
            "scripts/services {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The file this run records started services in (`POLYROUTER_STARTED`,
/// set by `main` when the caller did not).
pub fn record() -> String {
    std::env::var("POLYROUTER_STARTED").expect("set by main")
}

type Run = fn() -> BoxFuture<'static, Outcome>;

fn trials() -> Vec<(&'static str, Run)> {
    vec![
        (
            "replica::read_your_writes_and_monotonic_never_go_back",
            || Box::pin(replica::read_your_writes_and_monotonic_never_go_back()),
        ),
        ("replica::eventual_serves_a_stale_row_under_load", || {
            Box::pin(replica::eventual_serves_a_stale_row_under_load())
        }),
        (
            "replica::bounded_staleness_follows_the_measured_lag",
            || Box::pin(replica::bounded_staleness_follows_the_measured_lag()),
        ),
        (
            "replica::a_dead_replica_leaves_reads_to_the_primary",
            || Box::pin(replica::a_dead_replica_leaves_reads_to_the_primary()),
        ),
        (
            "cluster::no_acknowledged_event_is_lost_when_a_node_dies",
            || Box::pin(cluster::no_acknowledged_event_is_lost_when_a_node_dies()),
        ),
        (
            "redis_cluster::redirects_and_failover_lose_no_acknowledged_write",
            || Box::pin(redis_cluster::redirects_and_failover_lose_no_acknowledged_write()),
        ),
    ]
}

fn main() {
    let mut args = Arguments::from_args();
    // One pauses the shared standby's replay, one kills a cluster node.
    args.test_threads = Some(1);
    let own = std::env::var_os("POLYROUTER_STARTED").is_none();
    let record = match own {
        true => {
            let f = tempfile::NamedTempFile::new().expect("a temp file");
            let (_, path) = f.keep().expect("keep the record file");
            path.display().to_string()
        }
        false => std::env::var("POLYROUTER_STARTED").unwrap_or_default(),
    };
    // SAFETY: set before any thread is started.
    unsafe { std::env::set_var("POLYROUTER_STARTED", &record) };
    let up = if args.list {
        Ok(())
    } else {
        services(&["pg-replica", "nats-cluster"], &record)
    };
    let trials = trials()
        .into_iter()
        .map(|(name, run)| {
            let up = up.clone();
            Trial::test(name, move || {
                up.map_err(|e| Failed::from(format!("the scale-out services: {e}")))?;
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(4)
                    .enable_all()
                    .build()
                    .map_err(|e| Failed::from(e.to_string()))?;
                rt.block_on(run()).map_err(Failed::from)
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    if own {
        let _ = Command::new(services_script())
            .args(["--stop-started", &record])
            .status();
    }
    conclusion.exit();
}
