//! `polyrouter sync` (run relays and projections as a worker process) and
//! `polyrouter sync status` (what every worker last reported, plus the
//! outboxes' backlog and the capture slots' retained log measured now).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use polyrouter::Router;

/// `polyrouter sync` arguments.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SyncArgs {
    #[command(subcommand)]
    command: Option<SyncCommand>,
    /// The TOML configuration file (to run a worker).
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum SyncCommand {
    /// Per relay and projection: lag, backlog, applied, duplicates skipped, dead letters.
    Status {
        /// The TOML configuration file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
}

/// Runs the subcommand.
pub async fn run(args: SyncArgs) -> polyrouter::Result<()> {
    match (args.command, args.config) {
        (Some(SyncCommand::Status { config }), _) => status(&config).await,
        (None, Some(config)) => worker(&config).await,
        (None, None) => Err(polyrouter::Error::invalid_input(
            "sync",
            "",
            "give the configuration: `polyrouter sync --config FILE` (or `polyrouter sync status --config FILE`)",
        )),
    }
}

async fn worker(config: &PathBuf) -> polyrouter::Result<()> {
    let router = Router::from_file(config).await?;
    let sync = router.sync().await?;
    let s = sync.status();
    eprintln!(
        "sync worker {}: {} relay(s), {} change capture(s), {} projection(s); stop with Ctrl-C or SIGTERM",
        sync.worker(),
        s.relays.len(),
        s.captures.len(),
        s.projections.len()
    );
    shutdown_signal().await;
    eprintln!("sync worker {}: stopping", sync.worker());
    sync.shutdown().await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

async fn status(config: &PathBuf) -> polyrouter::Result<()> {
    let router = Router::from_file(config).await?;
    let workers = polyrouter::sync::worker_statuses(&router).await?;
    println!("RELAYS (outbox → bus)");
    println!(
        "{:<24}  {:<12}  {:<12}  {:>10}  {:>10}  {:>10}  {:<28}  LAST ERROR",
        "ENTITY", "STORE", "BUS", "BACKLOG", "LAG MS", "RELAYED", "WORKER (AGE)"
    );
    for route in router.routes() {
        let Some(o) = &route.config.outbox else {
            continue;
        };
        // The backlog counted now; lag and totals from the worker holding the lease.
        let reported = workers.iter().find_map(|(w, age)| {
            w.relays
                .iter()
                .find(|r| r.entity == route.entity && r.store == route.store && r.leased)
                .map(|r| (r.clone(), w.worker.clone(), *age))
        });
        let backlog = polyrouter::sync::outbox_backlog(&router, route).await;
        let backlog = match backlog {
            Ok(n) => n.to_string(),
            Err(e) => format!("? ({e})"),
        };
        match reported {
            Some((r, w, age)) => println!(
                "{:<24}  {:<12}  {:<12}  {:>10}  {:>10}  {:>10}  {:<28}  {}",
                route.entity,
                route.store,
                o.bus,
                backlog,
                r.lag_ms,
                r.relayed,
                format!("{w} ({}s)", age.as_secs()),
                r.last_error.unwrap_or_default()
            ),
            None => println!(
                "{:<24}  {:<12}  {:<12}  {:>10}  {:>10}  {:>10}  {:<28}  ",
                route.entity, route.store, o.bus, backlog, "-", "-", "no worker reports it"
            ),
        }
    }
    captures(&router, &workers).await;
    println!();
    println!("PROJECTIONS (bus → target)");
    println!(
        "{:<24}  {:<10}  {:<12}  {:>10}  {:>10}  {:>10}  {:>10}  {:>12}  WORKERS",
        "PROJECTION", "KIND", "BUS", "BACKLOG", "LAG MS", "APPLIED", "DUPLICATES", "DEAD LETTERS"
    );
    let config = router.config();
    for (name, p) in &config.projections {
        let bus_name = p.bus_name(&config.entities).unwrap_or_default();
        // Invalidation runs one group per process: its backlog is theirs.
        let backlog = match (p.kind, router.bus(bus_name)) {
            (polyrouter::config::ProjectionKind::Invalidate, _) => "per process".to_string(),
            (_, Ok(bus)) => match bus.backlog(name, &p.entities).await {
                Ok(Some(n)) => n.to_string(),
                Ok(None) => "?".into(),
                Err(e) => format!("? ({e})"),
            },
            (_, Err(e)) => format!("? ({e})"),
        };
        let mut applied = 0;
        let mut duplicates = 0;
        let mut dead = 0;
        let mut lag: Option<u64> = None;
        let mut members = Vec::new();
        for (w, age) in &workers {
            for s in w
                .projections
                .iter()
                .filter(|s| s.projection == *name || s.projection.starts_with(&format!("{name}-")))
            {
                applied += s.applied;
                duplicates += s.duplicates;
                dead += s.dead_lettered;
                if let Some(l) = s.lag_ms {
                    lag = Some(lag.map_or(l, |m: u64| m.max(l)));
                }
                members.push(format!("{} ({}s)", w.worker, age.as_secs()));
            }
        }
        println!(
            "{:<24}  {:<10}  {:<12}  {:>10}  {:>10}  {:>10}  {:>10}  {:>12}  {}",
            name,
            p.kind.name(),
            bus_name,
            backlog,
            lag.map_or("-".into(), |l| l.to_string()),
            applied,
            duplicates,
            dead,
            if members.is_empty() {
                "no worker runs it".to_string()
            } else {
                members.join(", ")
            }
        );
    }
    println!("{} worker(s) reporting", workers.len());
    Ok(())
}

/// The CAPTURES section: per `change_capture` route, the log its slot
/// keeps on the server now, with a warning past its threshold.
async fn captures(
    router: &Router,
    workers: &[(polyrouter::sync::WorkerStatus, std::time::Duration)],
) {
    let routes: Vec<_> = router
        .routes()
        .filter(|r| r.config.change_capture.is_some())
        .collect();
    if routes.is_empty() {
        return;
    }
    println!();
    println!("CAPTURES (store change stream → bus)");
    println!(
        "{:<24}  {:<12}  {:<12}  {:<28}  {:>12}  {:<10}  {:>10}  {:<28}  LAST ERROR",
        "ENTITY", "STORE", "BUS", "SLOT", "RETAINED", "WAL STATUS", "CAPTURED", "WORKER (AGE)"
    );
    let mut warnings = Vec::new();
    for route in routes {
        let cc = route.config.change_capture.as_ref().expect("filtered");
        let slot = cc.slot_name(&route.entity);
        let (retained, wal_status) = match polyrouter::sync::capture_retention(router, route).await
        {
            Ok(r) => {
                let limit = cc.warn_retained_mb.saturating_mul(1024 * 1024);
                if r.retained_bytes > limit || r.status == "lost" {
                    warnings.push(format!(
                        "WARNING: slot `{slot}` of entity `{}` keeps {} MiB of write-ahead log (wal_status {}; threshold {} MiB): start its capture (`polyrouter sync`), or drop the slot; the server's `max_slot_wal_keep_size` bounds it (docs/cdc.md)",
                        route.entity,
                        r.retained_bytes / (1024 * 1024),
                        r.status,
                        cc.warn_retained_mb
                    ));
                }
                (format!("{} B", r.retained_bytes), r.status)
            }
            Err(e) => (format!("? ({e})"), "?".into()),
        };
        let reported = workers.iter().find_map(|(w, age)| {
            w.captures
                .iter()
                .find(|c| c.entity == route.entity && c.store == route.store && c.captured > 0)
                .map(|c| (c.clone(), w.worker.clone(), *age))
        });
        let (captured, worker, error) = match reported {
            Some((c, w, age)) => (
                c.captured.to_string(),
                format!("{w} ({}s)", age.as_secs()),
                c.last_error.unwrap_or_default(),
            ),
            None => ("-".into(), "no worker reports it".into(), String::new()),
        };
        println!(
            "{:<24}  {:<12}  {:<12}  {:<28}  {:>12}  {:<10}  {:>10}  {:<28}  {}",
            route.entity, route.store, cc.bus, slot, retained, wal_status, captured, worker, error
        );
    }
    for w in warnings {
        println!("{w}");
    }
}
