//! What an entity's data and traffic look like: the advisor's input.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::ConfigDuration;
use crate::{Error, Result};

/// How much data an entity holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Volume {
    /// Fits in memory: under 1 GB.
    Small,
    /// Under 100 GB.
    #[default]
    Medium,
    /// Under 10 TB.
    Large,
    /// More than that.
    Huge,
}

/// The shape of the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Structure {
    /// Fixed fields of known types: rows.
    #[default]
    Structured,
    /// Documents whose fields vary or nest.
    SemiStructured,
    /// Files, media, large opaque bytes: blobs.
    Unstructured,
}

/// How fresh reads must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsistencyNeed {
    /// Every read sees the latest write.
    #[default]
    Strong,
    /// Reads at most `staleness` old.
    BoundedStaleness,
    /// A session sees its own writes.
    ReadYourWrites,
    /// A session never goes back in time.
    Monotonic,
    /// Any copy will do.
    Eventual,
}

/// How the data is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// By key.
    Point,
    /// Filters, ranges and ordered pages.
    Range,
    /// Full-text search with ranking.
    Search,
    /// Neighbours, paths, recommendations.
    Graph,
    /// Time ranges and downsampling of measurements.
    TimeSeries,
    /// Aggregates over many rows (counts, reports).
    Analytics,
    /// Streaming large objects.
    Blob,
}

/// Where the application runs, which decides which stores are at hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// No preference.
    #[default]
    Any,
    /// Inside the application: no server to run.
    Embedded,
    /// Servers the team runs.
    SelfHosted,
    /// Azure managed services.
    Azure,
}

/// One entity's workload.
///
/// ```
/// let w: polyrouter::advisor::Workload = toml::from_str(r#"
///     access = ["point", "range"]
///     consistency = "strong"
///     transactions = true
/// "#).unwrap();
/// assert!(w.transactions && w.durable);
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Workload {
    /// How much data.
    pub volume: Volume,
    /// Reads per second at peak.
    pub reads_per_sec: f64,
    /// Writes per second at peak.
    pub writes_per_sec: f64,
    /// The shape of the data.
    pub structure: Structure,
    /// How fresh reads must be.
    pub consistency: ConsistencyNeed,
    /// The staleness a read may have (`"5s"`): the bound of
    /// `bounded_staleness` and the longest cache TTL.
    pub staleness: Option<String>,
    /// How the data is read; default `["point"]`.
    pub access: Vec<Access>,
    /// The p99 latency target of a read, in milliseconds.
    pub latency_ms: Option<f64>,
    /// Records expire this long after their write (`"30m"`).
    pub ttl: Option<String>,
    /// Writes span several records or entities and must commit together.
    pub transactions: bool,
    /// The data must spread over many machines (partitioning).
    pub scale_out: bool,
    /// The data must survive a restart (default `true`).
    pub durable: bool,
    /// Application processes that share the data (default 2: more than one
    /// needs a store every process sees).
    pub processes: u32,
    /// Overrides the file's `platform`.
    pub platform: Option<Platform>,
    /// Field names for the snippet: the text fields of a search index, or
    /// the measurements of a time series.
    pub fields: Vec<String>,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            volume: Volume::Medium,
            reads_per_sec: 100.0,
            writes_per_sec: 10.0,
            structure: Structure::Structured,
            consistency: ConsistencyNeed::Strong,
            staleness: None,
            access: vec![Access::Point],
            latency_ms: None,
            ttl: None,
            transactions: false,
            scale_out: false,
            durable: true,
            processes: 2,
            platform: None,
            fields: Vec::new(),
        }
    }
}

impl Workload {
    /// Whether it reads this way.
    ///
    /// ```
    /// use polyrouter::advisor::{Access, Workload};
    /// assert!(Workload::default().reads(Access::Point));
    /// ```
    pub fn reads(&self, a: Access) -> bool {
        self.access.contains(&a)
    }

    /// `ttl` as a duration, if set.
    ///
    /// ```
    /// let w = polyrouter::advisor::Workload { ttl: Some("30m".into()), ..Default::default() };
    /// assert_eq!(w.ttl_duration().unwrap().unwrap().as_secs(), 1800);
    /// ```
    pub fn ttl_duration(&self) -> std::result::Result<Option<std::time::Duration>, String> {
        parse_duration(self.ttl.as_deref())
    }

    /// `staleness` as a duration, if set.
    ///
    /// ```
    /// let w = polyrouter::advisor::Workload { staleness: Some("5s".into()), ..Default::default() };
    /// assert_eq!(w.staleness_duration().unwrap().unwrap().as_secs(), 5);
    /// ```
    pub fn staleness_duration(&self) -> std::result::Result<Option<std::time::Duration>, String> {
        parse_duration(self.staleness.as_deref())
    }

    /// Checks values serde cannot: durations, rates, the staleness bound.
    fn check(&self) -> std::result::Result<(), (&'static str, String)> {
        self.ttl_duration().map_err(|m| ("ttl", m))?;
        self.staleness_duration().map_err(|m| ("staleness", m))?;
        for (key, v) in [
            ("reads_per_sec", self.reads_per_sec),
            ("writes_per_sec", self.writes_per_sec),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err((key, format!("must be a number ≥ 0, not {v}")));
            }
        }
        if self.latency_ms.is_some_and(|l| !l.is_finite() || l <= 0.0) {
            return Err(("latency_ms", "must be a number of milliseconds > 0".into()));
        }
        if self.consistency == ConsistencyNeed::BoundedStaleness && self.staleness.is_none() {
            return Err((
                "staleness",
                "`bounded_staleness` needs the bound: add e.g. `staleness = \"5s\"`".into(),
            ));
        }
        if self.access.is_empty() {
            return Err((
                "access",
                "name at least one access pattern: point, range, search, graph, time_series, analytics, blob".into(),
            ));
        }
        if self.processes == 0 {
            return Err(("processes", "must be at least 1".into()));
        }
        Ok(())
    }
}

fn parse_duration(s: Option<&str>) -> std::result::Result<Option<std::time::Duration>, String> {
    match s {
        None => Ok(None),
        Some(s) => {
            let d: ConfigDuration = s.parse()?;
            if d.0.is_zero() {
                return Err("must be greater than zero".into());
            }
            Ok(Some(d.0))
        }
    }
}

/// A workload file: a platform and one [`Workload`] per entity.
///
/// ```toml
/// platform = "azure"
///
/// [entities.order]
/// access = ["point", "range"]
/// transactions = true
///
/// [entities.session]
/// ttl = "30m"
/// consistency = "eventual"
/// durable = false
/// ```
///
/// ```
/// let w = polyrouter::advisor::Workloads::parse(
///     "platform = \"embedded\"\n[entities.note]\naccess = [\"point\", \"range\"]\n", "w.toml").unwrap();
/// assert_eq!(w.platform_of("note"), polyrouter::advisor::Platform::Embedded);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Workloads {
    /// Where the application runs (default `any`).
    #[serde(default)]
    pub platform: Platform,
    /// Workloads by entity name.
    #[serde(default)]
    pub entities: BTreeMap<String, Workload>,
}

impl Workloads {
    /// Reads and parses a workload file.
    ///
    /// ```
    /// assert!(polyrouter::advisor::Workloads::from_file("/nonexistent.toml").is_err());
    /// ```
    pub fn from_file(path: impl AsRef<Path>) -> Result<Workloads> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(&file, "", format!("cannot read the workload file: {e}")))?;
        Self::parse(&text, &file)
    }

    /// Parses workload TOML; errors name the file, line, column and key.
    ///
    /// ```
    /// let e = polyrouter::advisor::Workloads::parse("[entities.a]\nacess = []\n", "w.toml").unwrap_err();
    /// assert!(e.to_string().starts_with("w.toml:2:1"), "{e}");
    /// ```
    pub fn parse(text: &str, file: &str) -> Result<Workloads> {
        let w: Workloads = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            Error::Config {
                file: file.into(),
                line,
                column,
                path: String::new(),
                message: e.message().trim().to_string(),
            }
        })?;
        for (name, wl) in &w.entities {
            if let Err((key, message)) = wl.check() {
                let path = format!("entities.{name}.{key}");
                let at = find_line(text, name, key);
                return Err(Error::Config {
                    file: file.into(),
                    line: at,
                    column: usize::from(at > 0),
                    path,
                    message,
                });
            }
        }
        Ok(w)
    }

    /// The platform of an entity: its own, else the file's.
    ///
    /// ```
    /// let w = polyrouter::advisor::Workloads::default();
    /// assert_eq!(w.platform_of("x"), polyrouter::advisor::Platform::Any);
    /// ```
    pub fn platform_of(&self, entity: &str) -> Platform {
        self.entities
            .get(entity)
            .and_then(|w| w.platform)
            .unwrap_or(self.platform)
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// The line of `key` inside `[entities.NAME]`, or of the table, or 0.
fn find_line(text: &str, entity: &str, key: &str) -> usize {
    let header = format!("[entities.{entity}]");
    let mut in_table = false;
    let mut table_line = 0;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            in_table = t == header;
            if in_table {
                table_line = i + 1;
            }
            continue;
        }
        if in_table && t.split('=').next().map(str::trim) == Some(key) {
            return i + 1;
        }
    }
    table_line
}
