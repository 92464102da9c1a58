//! `polyrouter`: the command-line companion of the polyrouter crate.
//!
//! ```text
//! polyrouter check --config examples/polyrouter.toml
//! ```
//!
//! `check` reads the configuration (with `${VAR}` / `${VAR:-default}`
//! interpolation), opens every store, checks every route against its store's
//! capabilities, pings every store, and prints what it found:
//!
//! - each store: name, kind, location (secrets redacted), whether it
//!   answered, and its capabilities;
//! - each event bus (`[buses.NAME]`): name, kind, location (secrets
//!   redacted) and whether it answered;
//! - each route: entity → store, table, TTL and read consistency, plus its
//!   cache, replica (`read_from`) and search index when it has them;
//! - each graph, time series and view: its store (or its branches).
//!
//! It exits with status 0 when everything is fine. On any error it prints
//! `error: ...` to stderr — configuration errors name the file, line, column
//! and key path, store errors name the store — and exits with status 1.
//!
//! ```text
//! polyrouter reindex product --config polyrouter.toml
//! ```
//!
//! `reindex` rebuilds an entity's search index (its `search = { ... }`
//! route) from every record of its primary store, with a progress bar on
//! stderr: it clears the index, streams the records in key order, page by
//! page, and makes the result searchable. The layout comes from the
//! configuration (`fields`, `filters` with their kinds, `key`, `key_kind`),
//! so it needs no Rust types. Stop writers to an embedded index (tantivy)
//! first: one process writes an index directory at a time.
//!
//! ```text
//! polyrouter sql --config polyrouter.toml "SELECT status, count(*) FROM \"order\" GROUP BY status"
//! ```
//!
//! `sql` (cargo feature `analytics`) runs one analytical SQL statement
//! over the entities whose `[entities.NAME]` table declares
//! `sql = { key = "id", columns = { ... } }`, pushing filters, order and
//! limits into each store, and prints the rows: a table, or with
//! `--format csv|json` CSV with a header or one JSON object per line,
//! streamed. `EXPLAIN SELECT ...` shows what went into which store.
//!
//! ```text
//! polyrouter sagas list|show ID|retry ID|abort ID --config polyrouter.toml
//! ```
//!
//! `sagas` reads and acts on the saga log of `[sagas]` (see docs/sagas.md):
//! `list` shows every saga (`--state parked` for those that need
//! attention), `show` one saga's steps, attempts, outputs and errors,
//! `retry` sends a parked saga back to compensation, and `abort`
//! compensates a running saga or marks a parked one aborted.
//!
//! ```text
//! polyrouter sync --config polyrouter.toml
//! polyrouter sync status --config polyrouter.toml
//! ```
//!
//! `sync` runs the relays (one per route with an `outbox`, leased so one
//! process relays each outbox) and the `[projections.NAME]` as a worker
//! process until Ctrl-C or SIGTERM, then stops gracefully; `sync status`
//! prints per relay and projection what the workers last reported (lag,
//! relayed, applied, duplicates skipped, dead letters) and the outboxes'
//! backlog counted now (see docs/sync.md).
//!
//! ```text
//! polyrouter migrate start|status|verify|repair|cutover|rollback|finish NAME --config polyrouter.toml
//! ```
//!
//! `migrate` drives the `[migrations.NAME]` of the configuration (see
//! docs/migration.md): `start` backfills the entity's rows into the target
//! store keeping their versions (resuming from its saved cursor), `status`
//! shows the phase, progress, rate, ETA and differences, `verify` compares
//! both sides and lists mismatching keys (exit status 1 when it finds
//! any), `repair` copies the listed keys again, `cutover` makes the
//! target the primary (fencing writes briefly while the dual-write
//! drains), `rollback` makes the source the primary again, and `finish`
//! keeps the target for good.
//!
//! Built with the `cli` cargo feature (on by default).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use polyrouter::config::{Config, Consistency};

#[path = "polyrouter/advise.rs"]
mod advise;
#[path = "polyrouter/bench.rs"]
mod bench;
#[path = "polyrouter/migrate.rs"]
mod migrate;
#[path = "polyrouter/sagas.rs"]
mod sagas;
#[cfg(feature = "analytics")]
#[path = "polyrouter/sql.rs"]
mod sql;
#[path = "polyrouter/sync.rs"]
mod sync;
#[path = "polyrouter/topology.rs"]
mod topology;

/// Polyglot persistence router: inspect and check a configuration.
#[derive(Debug, Parser)]
#[command(name = "polyrouter", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse a configuration, open and ping every store and bus, check every route.
    Check {
        /// The TOML configuration file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Rebuild an entity's search index from its primary store.
    Reindex {
        /// The entity (its `[entities.NAME]` table must have `search`).
        entity: String,
        /// The TOML configuration file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Rank store kinds for a workload, with reasons; review a configuration.
    Advise(advise::AdviseArgs),
    /// Run the YCSB core workloads (A–F) on the configuration's stores.
    Bench(bench::BenchArgs),
    /// Draw the configuration: entities, stores, caches, graphs, views (text, mermaid, dot).
    Topology(topology::TopologyArgs),
    /// Run analytical SQL over the configured entities (feature `analytics`).
    #[cfg(feature = "analytics")]
    Sql(sql::SqlArgs),
    /// List, show, retry or abort the sagas of the `[sagas]` log.
    Sagas(sagas::SagasArgs),
    /// Move an entity to another store: start (backfill), status, verify, repair, cutover, rollback, finish.
    Migrate(migrate::MigrateArgs),
    /// Run the relays and projections as a worker (`sync --config FILE`), or show their status (`sync status`).
    Sync(sync::SyncArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Check { config } => runtime.block_on(check(config)),
        Command::Reindex { entity, config } => runtime.block_on(reindex(entity, config)),
        Command::Advise(args) => match advise::advise(args) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::FAILURE,
            Err(e) => Err(e),
        },
        Command::Bench(args) => runtime.block_on(bench::run(args)),
        Command::Topology(args) => topology::run(args),
        #[cfg(feature = "analytics")]
        Command::Sql(args) => runtime.block_on(sql::run(args)),
        Command::Sagas(args) => runtime.block_on(sagas::run(args)),
        Command::Sync(args) => runtime.block_on(sync::run(args)),
        Command::Migrate(args) => runtime.block_on(migrate::run(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn check(path: PathBuf) -> polyrouter::Result<()> {
    let config = Config::from_file(&path)?;
    let router = polyrouter::Router::builder()
        .config(config.clone())
        .build()
        .await?;

    println!("config: {}", path.display());
    println!();

    let names = router.store_names();
    println!("stores ({}):", names.len());
    for name in &names {
        let Some(store) = router.store(name) else {
            continue;
        };
        let started = Instant::now();
        store.ping().await?;
        let took = started.elapsed();
        println!(
            "  {name}: kind {}, at {}, ping ok ({})",
            store.kind(),
            store.location(),
            elapsed(took)
        );
        let caps = store.capabilities().to_string();
        println!(
            "    capabilities: {}",
            if caps.is_empty() { "none" } else { &caps }
        );
    }
    println!();

    let buses = router.bus_names();
    if !buses.is_empty() {
        println!("buses ({}):", buses.len());
        for name in &buses {
            let bus = router.bus(name)?;
            let started = Instant::now();
            bus.ping().await?;
            println!(
                "  {name}: kind {}, at {}, ping ok ({})",
                bus.kind(),
                bus.location(),
                elapsed(started.elapsed())
            );
        }
        println!();
    }

    let routes: Vec<_> = router.routes().collect();
    println!("routes ({}):", routes.len());
    for route in &routes {
        let ttl = route.ttl.map_or_else(|| "none".to_string(), duration);
        println!(
            "  {} -> {}: table {}, ttl {}, consistency {}",
            route.entity,
            route.store,
            route.table,
            ttl,
            consistency(&route.config.read_consistency())
        );
        let entity = &route.config;
        if let Some(cache) = &entity.cache {
            let ttl = cache
                .ttl
                .map_or_else(|| "none".to_string(), |d| duration(d.0));
            println!("    cache: {}, ttl {ttl}", cache.store);
        }
        if let Some(replica) = &entity.read_from {
            println!("    read_from: {replica}");
        }
        if let Some(search) = &entity.search {
            println!(
                "    search: {}, fields {}",
                search.store,
                search.fields.join(", ")
            );
        }
    }
    if !config.graphs.is_empty() {
        println!();
        println!("graphs ({}):", config.graphs.len());
        for (name, graph) in &config.graphs {
            println!("  {name} -> {}", graph.store);
        }
    }
    if !config.timeseries.is_empty() {
        println!();
        println!("time series ({}):", config.timeseries.len());
        for (name, ts) in &config.timeseries {
            let retention = ts
                .retention
                .map_or_else(|| "none".to_string(), |d| duration(d.0));
            println!(
                "  {name} -> {}: fields {}, retention {retention}",
                ts.store,
                ts.fields.join(", ")
            );
        }
    }
    if !config.views.is_empty() {
        println!();
        println!("views ({}):", config.views.len());
        for (name, view) in &config.views {
            let branches: Vec<&str> = view.branches.keys().map(String::as_str).collect();
            println!("  {name}: branches {}", branches.join(", "));
        }
    }
    println!();
    println!(
        "ok: {} store(s) and {} bus(es) answered; {} route(s), {} graph(s), {} time series and {} view(s) checked",
        names.len(),
        buses.len(),
        routes.len(),
        config.graphs.len(),
        config.timeseries.len(),
        config.views.len()
    );
    Ok(())
}

async fn reindex(entity: String, path: PathBuf) -> polyrouter::Result<()> {
    let config = Config::from_file(&path)?;
    let router = polyrouter::Router::builder().config(config).build().await?;
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(format!("reindexing {entity}"));
    let started = Instant::now();
    let done = router
        .reindex(&entity, &mut |p| {
            if let Some(total) = p.total {
                bar.set_length(total.max(p.done));
            }
            bar.set_position(p.done);
        })
        .await;
    bar.finish_and_clear();
    let done = done?;
    println!(
        "reindexed {done} record(s) of `{entity}` in {}",
        elapsed(started.elapsed())
    );
    Ok(())
}

/// A duration as it would be written in the config: `30m`, `1h`, `1500ms`.
fn duration(d: Duration) -> String {
    polyrouter::config::ConfigDuration(d).to_config_string()
}

fn elapsed(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{} µs", d.as_micros())
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    }
}

fn consistency(c: &Consistency) -> String {
    match c {
        Consistency::Strong => "strong".into(),
        Consistency::BoundedStaleness(d) => format!("bounded_staleness({})", duration(d.0)),
        Consistency::ReadYourWrites => "read_your_writes".into(),
        Consistency::Monotonic => "monotonic".into(),
        Consistency::Eventual => "eventual".into(),
    }
}
