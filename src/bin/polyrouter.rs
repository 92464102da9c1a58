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
//! - each route: entity → store, table, TTL and read consistency.
//!
//! It exits with status 0 when everything is fine. On any error it prints
//! `error: ...` to stderr — configuration errors name the file, line, column
//! and key path, store errors name the store — and exits with status 1.
//!
//! Built with the `cli` cargo feature (on by default).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use polyrouter::config::{Config, Consistency};

/// Polyglot persistence router: inspect and check a configuration.
#[derive(Debug, Parser)]
#[command(name = "polyrouter", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse a configuration, open and ping every store, check every route.
    Check {
        /// The TOML configuration file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
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
    let router = polyrouter::Router::builder().config(config).build().await?;

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
    }
    println!();
    println!(
        "ok: {} store(s) answered, {} route(s) checked",
        names.len(),
        routes.len()
    );
    Ok(())
}

/// A duration as it would be written in the config: `30m`, `1h`, `1500ms`.
fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_nanos() != 0 || secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    for (unit, n) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs % n == 0 {
            return format!("{}{unit}", secs / n);
        }
    }
    format!("{secs}s")
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
