//! `polyrouter advise`: rank store kinds for a workload; review a configuration.

use std::path::PathBuf;

use clap::Args;
use polyrouter::advisor::{
    Access, Advisor, ConsistencyNeed, Platform, Severity, Structure, Volume, Workload, Workloads,
};
use polyrouter::bench::BenchReport;
use polyrouter::config::Config;

/// `polyrouter advise` arguments.
#[derive(Debug, Args)]
pub struct AdviseArgs {
    /// A workload file (`[entities.NAME]` tables; see docs/advisor.md).
    workload: Option<PathBuf>,
    /// Review this configuration (alone, or against the workload).
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A `polyrouter bench --format json` report: rank by measured latencies.
    #[arg(long, value_name = "FILE.json")]
    bench: Option<PathBuf>,
    /// Output: `text` (default) or `json`.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    format: String,
    /// Describe one entity with the flags below (added to the file's).
    #[arg(long, value_name = "NAME")]
    entity: Option<String>,
    /// any, embedded, self_hosted, azure (applies to the whole workload).
    #[arg(long, value_enum)]
    platform: Option<PlatformArg>,
    /// small (< 1 GB), medium (< 100 GB), large (< 10 TB), huge.
    #[arg(long, value_enum)]
    volume: Option<VolumeArg>,
    /// Reads per second at peak.
    #[arg(long)]
    reads: Option<f64>,
    /// Writes per second at peak.
    #[arg(long)]
    writes: Option<f64>,
    /// structured, semi_structured, unstructured.
    #[arg(long, value_enum)]
    structure: Option<StructureArg>,
    /// strong, bounded_staleness, read_your_writes, monotonic, eventual.
    #[arg(long, value_enum)]
    consistency: Option<ConsistencyArg>,
    /// How stale a read may be, e.g. `5s`.
    #[arg(long)]
    staleness: Option<String>,
    /// Access patterns, comma-separated: point, range, search, graph, time_series, analytics, blob.
    #[arg(long, value_enum, value_delimiter = ',')]
    access: Vec<AccessArg>,
    /// p99 read latency target in milliseconds.
    #[arg(long)]
    latency_ms: Option<f64>,
    /// Records expire after this long, e.g. `30m`.
    #[arg(long)]
    ttl: Option<String>,
    /// Writes spanning several records must commit together.
    #[arg(long)]
    transactions: bool,
    /// The data must be partitioned over many machines.
    #[arg(long)]
    scale_out: bool,
    /// The data need not survive a restart.
    #[arg(long)]
    ephemeral: bool,
    /// Application processes sharing the data (default 2).
    #[arg(long)]
    processes: Option<u32>,
    /// Text fields to search, or time-series measurements (for the snippet).
    #[arg(long, value_delimiter = ',')]
    fields: Vec<String>,
}

macro_rules! arg_enum {
    ($name:ident => $target:ident { $($v:ident = $t:ident),* $(,)? }) => {
        #[derive(Debug, Clone, Copy, clap::ValueEnum)]
        #[value(rename_all = "snake_case")]
        enum $name { $($v),* }
        impl From<$name> for $target {
            fn from(v: $name) -> $target {
                match v { $($name::$v => $target::$t),* }
            }
        }
    };
}

arg_enum!(PlatformArg => Platform { Any = Any, Embedded = Embedded, SelfHosted = SelfHosted, Azure = Azure });
arg_enum!(VolumeArg => Volume { Small = Small, Medium = Medium, Large = Large, Huge = Huge });
arg_enum!(StructureArg => Structure { Structured = Structured, SemiStructured = SemiStructured, Unstructured = Unstructured });
arg_enum!(ConsistencyArg => ConsistencyNeed { Strong = Strong, BoundedStaleness = BoundedStaleness, ReadYourWrites = ReadYourWrites, Monotonic = Monotonic, Eventual = Eventual });
arg_enum!(AccessArg => Access { Point = Point, Range = Range, Search = Search, Graph = Graph, TimeSeries = TimeSeries, Analytics = Analytics, Blob = Blob });

/// Runs `advise`; `Ok(false)` when the review found an error.
pub fn advise(args: AdviseArgs) -> polyrouter::Result<bool> {
    let mut workloads = match &args.workload {
        Some(path) => Workloads::from_file(path)?,
        None => Workloads::default(),
    };
    if let Some(p) = args.platform {
        workloads.platform = p.into();
    }
    if let Some(name) = &args.entity {
        let w = flags_workload(&args);
        // Checked the way a file is.
        let text = format!(
            "[entities.{}]\n{}",
            toml::Value::String(name.clone()),
            toml::to_string(&w).map_err(|e| polyrouter::Error::config("<flags>", "", e))?
        );
        let one = Workloads::parse(&text, "<flags>")?;
        workloads.entities.extend(one.entities);
    }
    let config = match &args.config {
        Some(path) => Some(Config::from_file(path)?),
        None => None,
    };
    if workloads.entities.is_empty() && config.is_none() {
        return Err(polyrouter::Error::config(
            "<arguments>",
            "",
            "nothing to advise on: give a workload file, `--entity NAME` with flags, or `--config FILE` to review",
        ));
    }
    let measured = match &args.bench {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                polyrouter::Error::config(
                    &path.display().to_string(),
                    "",
                    format!("cannot read the bench report: {e}"),
                )
            })?;
            BenchReport::from_json(&text)?.measurements()
        }
        None => Vec::new(),
    };
    let advisor = Advisor::builtin();
    let advice = advisor.advise(&workloads, &measured);
    let findings = config
        .as_ref()
        .map(|c| {
            let w = (!workloads.entities.is_empty()).then_some(&workloads);
            advisor.review(c, w, &measured)
        })
        .unwrap_or_default();
    let ok = !findings.iter().any(|f| f.severity == Severity::Error);
    if args.format == "json" {
        let out = serde_json::json!({
            "advice": advice.entities,
            "snippet": (!advice.entities.is_empty()).then(|| advice.snippet()),
            "findings": findings,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(ok);
    }
    if !advice.entities.is_empty() {
        print!("{advice}");
        println!("suggested configuration:");
        println!();
        print!("{}", advice.snippet());
    }
    if let Some(c) = &config {
        if !advice.entities.is_empty() {
            println!();
        }
        println!("review of {} ({} finding(s)):", c.file, findings.len());
        for f in &findings {
            println!("  {f}");
        }
    }
    Ok(ok)
}

fn flags_workload(a: &AdviseArgs) -> Workload {
    let d = Workload::default();
    Workload {
        volume: a.volume.map_or(d.volume, Into::into),
        reads_per_sec: a.reads.unwrap_or(d.reads_per_sec),
        writes_per_sec: a.writes.unwrap_or(d.writes_per_sec),
        structure: a.structure.map_or(d.structure, Into::into),
        consistency: a.consistency.map_or(d.consistency, Into::into),
        staleness: a.staleness.clone(),
        access: if a.access.is_empty() {
            d.access
        } else {
            a.access.iter().map(|&x| x.into()).collect()
        },
        latency_ms: a.latency_ms,
        ttl: a.ttl.clone(),
        transactions: a.transactions,
        scale_out: a.scale_out,
        durable: !a.ephemeral,
        processes: a.processes.unwrap_or(d.processes),
        platform: None,
        fields: a.fields.clone(),
    }
}
