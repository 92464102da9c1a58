//! `polyrouter bench`: the YCSB core workloads on the configuration's stores.

use std::path::PathBuf;

use clap::Args;
use polyrouter::bench::{BenchOptions, Progress, Workload, bench};
use polyrouter::config::Config;

/// `polyrouter bench` arguments.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The TOML configuration whose record stores are measured.
    #[arg(short, long, value_name = "FILE")]
    config: PathBuf,
    /// Measure this entity's route (store, cache, consistency) instead of
    /// every store alone; the records are still the bench's own.
    #[arg(long, value_name = "NAME")]
    entity: Option<String>,
    /// One workload, `a` to `f` (default: all six).
    #[arg(long, value_parser = ["a", "b", "c", "d", "e", "f"])]
    workload: Option<String>,
    /// Records loaded before each workload.
    #[arg(long, default_value_t = 1000)]
    records: u64,
    /// Operations per workload and store.
    #[arg(long, default_value_t = 10_000)]
    ops: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Output: `text` (default) or `json` (for `polyrouter advise --bench`).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    format: String,
}

/// Runs `bench`.
pub async fn run(args: BenchArgs) -> polyrouter::Result<()> {
    let config = Config::from_file(&args.config)?;
    let mut opts = BenchOptions::new(config);
    opts.entity = args.entity;
    if let Some(w) = args.workload.as_deref().and_then(Workload::parse) {
        opts.workloads = vec![w];
    }
    opts.records = args.records;
    opts.operations = args.ops;
    opts.threads = args.threads;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:<32} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = bench(&opts, &|p: Progress<'_>| {
        bar.set_message(format!(
            "{} {} on {}",
            p.phase,
            p.workload.letter().to_uppercase(),
            p.store
        ));
        bar.set_length(p.total);
        bar.set_position(p.done);
    })
    .await;
    bar.finish_and_clear();
    let report = report?;
    if args.format == "json" {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{report}");
    }
    Ok(())
}
