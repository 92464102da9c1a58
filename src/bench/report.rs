//! What `polyrouter bench` measured, as text or JSON (`--format json`), and
//! read back by `polyrouter advise --bench`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::advisor::Measurement;

/// A whole bench run: every workload on every store.
///
/// ```
/// let r = polyrouter::bench::BenchReport { config: "app.toml".into(), records: 10, operations: 10, threads: 1, runs: vec![] };
/// let json = serde_json::to_string(&r).unwrap();
/// assert_eq!(polyrouter::bench::BenchReport::from_json(&json).unwrap(), r);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// The configuration file whose stores were measured.
    pub config: String,
    /// Records loaded per store before each workload.
    pub records: u64,
    /// Operations per workload and store.
    pub operations: u64,
    /// Concurrent clients.
    pub threads: usize,
    /// One run per (workload, store), in workload order then store order.
    pub runs: Vec<Run>,
}

/// One workload on one store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// `a` … `f`.
    pub workload: String,
    /// The store's name in the configuration.
    pub store: String,
    /// Its kind.
    pub kind: String,
    /// Why the store was not measured (the capability it lacks), if it was not.
    pub refused: Option<String>,
    /// Operations per second over the whole run.
    pub throughput: f64,
    /// Wall time of the run, in milliseconds.
    pub elapsed_ms: f64,
    /// Latency per operation type.
    pub operations: Vec<OpStats>,
}

/// Latencies of one operation type, in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpStats {
    /// `read`, `update`, `insert`, `scan` or `read_modify_write`.
    pub operation: String,
    /// Operations done.
    pub count: u64,
    /// Operations that failed (counted, not timed).
    pub errors: u64,
    /// Median.
    pub p50_us: u64,
    /// 95th percentile.
    pub p95_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Slowest.
    pub max_us: u64,
}

impl BenchReport {
    /// Reads a report written with `--format json`.
    ///
    /// ```
    /// assert!(polyrouter::bench::BenchReport::from_json("{}").is_err());
    /// ```
    pub fn from_json(text: &str) -> crate::Result<BenchReport> {
        serde_json::from_str(text).map_err(|e| {
            crate::Error::config(
                "<bench report>",
                "",
                format!("not a `polyrouter bench --format json` report: {e}"),
            )
        })
    }

    /// The measured p99 latencies, for [`Advisor::advise`](crate::advisor::Advisor::advise).
    ///
    /// ```
    /// use polyrouter::bench::{BenchReport, OpStats, Run};
    /// let op = OpStats { operation: "read".into(), count: 9, errors: 0, p50_us: 100, p95_us: 200, p99_us: 1500, max_us: 2000 };
    /// let run = Run { workload: "c".into(), store: "main".into(), kind: "sqlite".into(), refused: None, throughput: 1.0, elapsed_ms: 1.0, operations: vec![op] };
    /// let r = BenchReport { config: "x".into(), records: 1, operations: 9, threads: 1, runs: vec![run] };
    /// assert_eq!(r.measurements()[0].p99_ms, 1.5);
    /// ```
    pub fn measurements(&self) -> Vec<Measurement> {
        self.runs
            .iter()
            .filter(|r| r.refused.is_none())
            .flat_map(|r| {
                r.operations
                    .iter()
                    .filter(|o| o.count > 0)
                    .map(|o| Measurement {
                        store: r.store.clone(),
                        kind: r.kind.clone(),
                        operation: o.operation.clone(),
                        p99_ms: o.p99_us as f64 / 1000.0,
                    })
            })
            .collect()
    }
}

/// Microseconds as a short human figure.
fn us(v: u64) -> String {
    if v < 1000 {
        format!("{v}µs")
    } else if v < 1_000_000 {
        format!("{:.2}ms", v as f64 / 1000.0)
    } else {
        format!("{:.2}s", v as f64 / 1e6)
    }
}

impl fmt::Display for BenchReport {
    /// Side by side: one column per store, one block per workload.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "polyrouter bench: {} — {} records, {} operations per workload, {} thread(s)",
            self.config, self.records, self.operations, self.threads
        )?;
        let mut workloads: Vec<&str> = self.runs.iter().map(|r| r.workload.as_str()).collect();
        workloads.dedup();
        for w in workloads {
            let runs: Vec<&Run> = self.runs.iter().filter(|r| r.workload == w).collect();
            let desc = super::Workload::parse(w).map_or("", |w| w.description());
            writeln!(f)?;
            writeln!(f, "workload {}: {desc}", w.to_uppercase())?;
            // Rows of (label, one cell per store), then aligned columns.
            let mut rows: Vec<(String, Vec<String>)> = Vec::new();
            rows.push((
                String::new(),
                runs.iter()
                    .map(|r| format!("{} ({})", r.store, r.kind))
                    .collect(),
            ));
            rows.push((
                "throughput".into(),
                runs.iter()
                    .map(|r| match &r.refused {
                        Some(_) => "refused".to_string(),
                        None => format!("{:.0} ops/s", r.throughput),
                    })
                    .collect(),
            ));
            let mut ops: Vec<&str> = Vec::new();
            for r in &runs {
                for o in &r.operations {
                    if !ops.contains(&o.operation.as_str()) {
                        ops.push(&o.operation);
                    }
                }
            }
            for op in ops {
                let cells = runs
                    .iter()
                    .map(|r| {
                        r.operations.iter().find(|o| o.operation == op).map_or_else(
                            || "-".to_string(),
                            |o| {
                                let errors = if o.errors > 0 {
                                    format!(" ({} err)", o.errors)
                                } else {
                                    String::new()
                                };
                                format!(
                                    "{}/{}/{}/{}{errors}",
                                    us(o.p50_us),
                                    us(o.p95_us),
                                    us(o.p99_us),
                                    us(o.max_us)
                                )
                            },
                        )
                    })
                    .collect();
                rows.push((format!("{op} p50/p95/p99/max"), cells));
            }
            let label = rows
                .iter()
                .map(|(l, _)| l.chars().count())
                .max()
                .unwrap_or(0);
            let widths: Vec<usize> = (0..runs.len())
                .map(|i| {
                    rows.iter()
                        .map(|(_, c)| c[i].chars().count())
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            for (l, cells) in &rows {
                let mut line = format!("  {l:<label$}");
                for (c, width) in cells.iter().zip(&widths) {
                    line.push_str(&format!("  {c:>width$}"));
                }
                writeln!(f, "{}", line.trim_end())?;
            }
            for r in runs.iter().filter(|r| r.refused.is_some()) {
                writeln!(
                    f,
                    "  refused on {}: {}",
                    r.store,
                    r.refused.as_deref().unwrap_or_default()
                )?;
            }
        }
        Ok(())
    }
}
