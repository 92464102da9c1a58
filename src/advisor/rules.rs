//! The advisor's rules, as data: `rules.toml` beside this file.
//!
//! - `[kinds.KIND]`: what a kind is beyond its capabilities (deployment,
//!   durability, how it scales, its latency class, its schema, whether
//!   Azure runs it as a managed service). Capabilities are never written
//!   here: they come from [`backends::KINDS`](crate::backends::KINDS).
//! - `[[need]]`: capabilities a role must have when the workload matches.
//!   A kind that lacks one cannot serve the role.
//! - `[[rule]]`: a weight added to every kind matching `kind` when the
//!   workload matches `when`, with the reason shown to the user.
//! - `[measured]`: the weights of a measured latency (`polyrouter bench`)
//!   that meets or misses the workload's target.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::workload::{Access, ConsistencyNeed, Platform, Structure, Volume, Workload};
use crate::backends::{KINDS, KindInfo};

/// The rules shipped with polyrouter.
pub const BUILTIN: &str = include_str!("rules.toml");

/// What an entity needs a store for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The entity's records (its primary store).
    Records,
    /// A `[graphs.NAME]` graph.
    Graph,
    /// A `[timeseries.NAME]` table.
    TimeSeries,
    /// A blob store.
    Blob,
    /// The entity's search index (`search = { store }`).
    Search,
    /// The entity's cache (`cache = { store }`).
    Cache,
}

impl Role {
    /// Its name in rules and output.
    ///
    /// ```
    /// assert_eq!(polyrouter::advisor::Role::TimeSeries.name(), "time_series");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Role::Records => "records",
            Role::Graph => "graph",
            Role::TimeSeries => "time_series",
            Role::Blob => "blob",
            Role::Search => "search",
            Role::Cache => "cache",
        }
    }
}

/// Where a kind runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Deployment {
    /// In the application's memory.
    InProcess,
    /// A library over local files.
    Embedded,
    /// A server the team runs (or a managed flavour of it).
    Server,
    /// A managed cloud service.
    Managed,
}

/// How a kind grows past one machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// One process.
    SingleProcess,
    /// One machine.
    SingleNode,
    /// One writer, read replicas.
    Replicas,
    /// Data partitioned over many machines.
    Partitioned,
}

/// A kind's typical read latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencyClass {
    /// Well under a millisecond.
    SubMs,
    /// About a millisecond.
    Ms,
    /// Several milliseconds.
    Ms10,
}

/// How a kind holds records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaStyle {
    /// A typed column per field.
    Typed,
    /// Documents: fields as JSON.
    Flexible,
    /// No records.
    None,
}

/// What a kind is beyond its capabilities.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KindTraits {
    /// Where it runs.
    pub deployment: Deployment,
    /// Data survives a restart.
    pub durable: bool,
    /// How it scales.
    pub scale: Scale,
    /// Typical read latency.
    pub latency: LatencyClass,
    /// How it holds records.
    pub schema: SchemaStyle,
    /// Azure runs it as a managed service (Azure SQL, Cosmos DB, …).
    pub azure: bool,
    /// One line a user reads in the ranking.
    pub summary: String,
    /// The store options of the TOML snippet for this kind.
    pub options: toml::Table,
}

/// Conditions on the workload; every field set must hold.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct When {
    /// The volume is one of these.
    pub volume: Option<Vec<Volume>>,
    /// The structure is one of these.
    pub structure: Option<Vec<Structure>>,
    /// The consistency need is one of these.
    pub consistency: Option<Vec<ConsistencyNeed>>,
    /// The workload reads in at least one of these ways.
    pub access: Option<Vec<Access>>,
    /// The workload reads in none of these ways.
    pub no_access: Option<Vec<Access>>,
    /// The platform is one of these.
    pub platform: Option<Vec<Platform>>,
    /// Multi-record transactions are (not) needed.
    pub transactions: Option<bool>,
    /// Scale-out is (not) needed.
    pub scale_out: Option<bool>,
    /// Records do (not) expire.
    pub ttl: Option<bool>,
    /// Data must (not) survive restarts.
    pub durable: Option<bool>,
    /// More than one process shares the data (or exactly one).
    pub shared: Option<bool>,
    /// The latency target is at most this many milliseconds.
    pub latency_ms_at_most: Option<f64>,
    /// Reads per second at least.
    pub reads_at_least: Option<f64>,
    /// Writes per second at least.
    pub writes_at_least: Option<f64>,
    /// Reads per write at least.
    pub read_write_ratio_at_least: Option<f64>,
}

/// Conditions on a kind; every field set must hold.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KindMatch {
    /// Has every one of these capabilities (names as `Capabilities::names`).
    pub capabilities: Option<Vec<String>>,
    /// Lacks at least one of these capabilities.
    pub lacks: Option<Vec<String>>,
    /// Deploys one of these ways.
    pub deployment: Option<Vec<Deployment>>,
    /// Scales one of these ways.
    pub scale: Option<Vec<Scale>>,
    /// Has one of these latency classes.
    pub latency: Option<Vec<LatencyClass>>,
    /// Holds records one of these ways.
    pub schema: Option<Vec<SchemaStyle>>,
    /// Is (not) durable.
    pub durable: Option<bool>,
    /// Is (not) an Azure managed service.
    pub azure: Option<bool>,
}

/// Capabilities a role needs when the workload matches.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Need {
    /// The roles it applies to.
    pub role: Vec<Role>,
    /// When the workload is like this (default: always).
    #[serde(default)]
    pub when: When,
    /// The capabilities needed.
    pub capabilities: Vec<String>,
    /// Why, for the user.
    pub reason: String,
}

/// A weighted preference.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// A short unique name.
    pub id: String,
    /// The roles it applies to.
    pub role: Vec<Role>,
    /// When the workload is like this (default: always).
    #[serde(default)]
    pub when: When,
    /// The kinds it scores.
    #[serde(default)]
    pub kind: KindMatch,
    /// Added to the score of every matching kind (negative: a penalty).
    pub weight: i32,
    /// Why, for the user.
    pub reason: String,
}

/// Weights of measured latencies (from `polyrouter bench`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Measured {
    /// A measured p99 within the latency target.
    pub meets: i32,
    /// A measured p99 over the latency target.
    pub misses: i32,
}

/// A whole rule set.
///
/// ```
/// let rules = polyrouter::advisor::Rules::builtin();
/// assert!(rules.rules.len() >= 10);
/// assert!(rules.kinds.contains_key("postgres"));
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Traits of every store kind.
    pub kinds: BTreeMap<String, KindTraits>,
    /// Hard needs.
    #[serde(rename = "need")]
    pub needs: Vec<Need>,
    /// Weighted preferences.
    #[serde(rename = "rule")]
    pub rules: Vec<Rule>,
    /// Weights of measured latencies.
    pub measured: Measured,
    /// When to suggest a cache (any of them).
    #[serde(rename = "cache")]
    pub caches: Vec<CacheWhen>,
}

/// A workload on which a cache in front of the primary pays off.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CacheWhen {
    /// When the workload is like this.
    pub when: When,
    /// Why, for the user.
    pub reason: String,
}

impl Rules {
    /// The rules shipped with polyrouter (`src/advisor/rules.toml`).
    ///
    /// ```
    /// let _ = polyrouter::advisor::Rules::builtin();
    /// ```
    pub fn builtin() -> Rules {
        // Checked by a unit test; a broken built-in file is a bug.
        Rules::parse(BUILTIN).expect("the built-in advisor rules are valid")
    }

    /// Parses and checks a rule set: every kind of `backends::KINDS` has
    /// traits, every capability named exists, rule ids are unique.
    ///
    /// ```
    /// let e = polyrouter::advisor::Rules::parse("kinds = {}\nneed = []\nrule = []\ncache = []\nmeasured = { meets = 1, misses = -1 }\n").unwrap_err();
    /// assert!(e.contains("memory"), "{e}");
    /// ```
    pub fn parse(text: &str) -> Result<Rules, String> {
        let rules: Rules = toml::from_str(text).map_err(|e| e.to_string())?;
        for k in KINDS {
            if !rules.kinds.contains_key(k.name) {
                return Err(format!(
                    "no `[kinds.{}]` traits for store kind `{}`",
                    k.name, k.name
                ));
            }
        }
        for name in rules.kinds.keys() {
            if crate::backends::kind(name).is_none() {
                return Err(format!("`[kinds.{name}]`: no such store kind"));
            }
        }
        let known = capability_names();
        let check = |names: &[String], at: &str| -> Result<(), String> {
            for n in names {
                if !known.contains(&n.as_str()) {
                    return Err(format!(
                        "{at}: unknown capability `{n}`; known: {}",
                        known.join(", ")
                    ));
                }
            }
            Ok(())
        };
        for (i, n) in rules.needs.iter().enumerate() {
            check(&n.capabilities, &format!("need #{}", i + 1))?;
        }
        let mut ids = std::collections::BTreeSet::new();
        for r in &rules.rules {
            if !ids.insert(r.id.as_str()) {
                return Err(format!("rule `{}` is defined twice", r.id));
            }
            check(r.kind.capabilities.as_deref().unwrap_or(&[]), &r.id)?;
            check(r.kind.lacks.as_deref().unwrap_or(&[]), &r.id)?;
        }
        Ok(rules)
    }

    /// The traits of a kind (every kind has them: checked by [`Rules::parse`]).
    pub(crate) fn traits(&self, kind: &str) -> &KindTraits {
        &self.kinds[kind]
    }
}

/// Every capability name [`Capabilities::names`](crate::Capabilities::names) can return.
pub(crate) fn capability_names() -> Vec<&'static str> {
    let mut all = crate::Capabilities::all();
    all.graph = true;
    all.search = true;
    all.time_series = true;
    all.blob = true;
    all.change_feed = true;
    all.shared = true;
    all.key_prefix = true;
    let mut names = all.names();
    names.push("batch-atomic-in-one-partition");
    names
}

impl When {
    /// Whether the workload matches.
    pub(crate) fn holds(&self, w: &Workload, platform: Platform) -> bool {
        fn within<T: PartialEq>(set: &Option<Vec<T>>, v: &T) -> bool {
            set.as_ref().is_none_or(|s| s.contains(v))
        }
        fn flag(want: Option<bool>, v: bool) -> bool {
            want.is_none_or(|want| want == v)
        }
        let ratio = if w.writes_per_sec > 0.0 {
            w.reads_per_sec / w.writes_per_sec
        } else {
            f64::INFINITY
        };
        within(&self.volume, &w.volume)
            && within(&self.structure, &w.structure)
            && within(&self.consistency, &w.consistency)
            && within(&self.platform, &platform)
            && self
                .access
                .as_ref()
                .is_none_or(|a| a.iter().any(|a| w.reads(*a)))
            && self
                .no_access
                .as_ref()
                .is_none_or(|a| !a.iter().any(|a| w.reads(*a)))
            && flag(self.transactions, w.transactions)
            && flag(self.scale_out, w.scale_out)
            && flag(self.ttl, w.ttl.is_some())
            && flag(self.durable, w.durable)
            && flag(self.shared, w.processes > 1)
            && self
                .latency_ms_at_most
                .is_none_or(|max| w.latency_ms.is_some_and(|l| l <= max))
            && self.reads_at_least.is_none_or(|n| w.reads_per_sec >= n)
            && self.writes_at_least.is_none_or(|n| w.writes_per_sec >= n)
            && self.read_write_ratio_at_least.is_none_or(|n| ratio >= n)
    }
}

impl KindMatch {
    /// Whether the kind matches.
    pub(crate) fn holds(&self, kind: &KindInfo, t: &KindTraits) -> bool {
        fn within<T: PartialEq>(set: &Option<Vec<T>>, v: &T) -> bool {
            set.as_ref().is_none_or(|s| s.contains(v))
        }
        let names = kind.capabilities.names();
        let has = |n: &String| names.contains(&n.as_str());
        self.capabilities.as_ref().is_none_or(|c| c.iter().all(has))
            && self
                .lacks
                .as_ref()
                .is_none_or(|c| c.iter().any(|n| !has(n)))
            && within(&self.deployment, &t.deployment)
            && within(&self.scale, &t.scale)
            && within(&self.latency, &t.latency)
            && within(&self.schema, &t.schema)
            && self.durable.is_none_or(|d| d == t.durable)
            && self.azure.is_none_or(|a| a == t.azure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_rules_parse_and_cover_every_kind() {
        let rules = Rules::parse(BUILTIN).unwrap();
        assert_eq!(rules.kinds.len(), KINDS.len());
    }

    #[test]
    fn an_unknown_capability_in_a_rule_is_refused() {
        let text = BUILTIN.replace(
            "capabilities = [\"transactions\"]",
            "capabilities = [\"transactionz\"]",
        );
        assert_ne!(text, BUILTIN);
        let e = Rules::parse(&text).unwrap_err();
        assert!(e.contains("unknown capability `transactionz`"), "{e}");
    }
}
