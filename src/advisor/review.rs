//! `polyrouter advise --config FILE`: what an existing configuration gets
//! wrong, alone and against the declared workloads.

use std::fmt;

use serde::Serialize;

use super::rank::{Measurement, primary_role};
use super::rules::{Deployment, Role};
use super::workload::{Access, ConsistencyNeed, Workloads};
use super::{Advisor, rank};
use crate::config::{Config, Consistency, EntityConfig};

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The route cannot do what the workload needs.
    Error,
    /// It works, but not as the workload expects.
    Warning,
    /// Worth knowing.
    Info,
}

/// One thing the review found, located in the configuration file.
///
/// ```
/// use polyrouter::{advisor::{Advisor, Severity}, config::Config};
/// let cfg = Config::parse(r#"
/// [stores.main]
/// kind = "sqlite"
/// [stores.kv]
/// kind = "memory"
/// [entities.user]
/// store = "main"
/// cache = { store = "kv", ttl = "1m" }
/// consistency = "strong"
/// "#, "app.toml").unwrap();
/// let findings = Advisor::builtin().review(&cfg, None, &[]);
/// let f = findings.iter().find(|f| f.path == "entities.user.cache").unwrap();
/// assert_eq!(f.severity, Severity::Warning);
/// assert!(f.to_string().starts_with("warning: app.toml:8:"), "{f}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How much it matters.
    pub severity: Severity,
    /// The dotted key path it is about.
    pub path: String,
    /// `file:line:column` of that key (`:0:0` when not in the file).
    pub location: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        };
        write!(
            f,
            "{sev}: {}: `{}`: {}",
            self.location, self.path, self.message
        )
    }
}

struct Findings<'c> {
    config: &'c Config,
    out: Vec<Finding>,
}

impl Findings<'_> {
    fn add(&mut self, severity: Severity, path: &str, message: impl Into<String>) {
        let location = match self.config.error(path, "") {
            crate::Error::Config {
                file, line, column, ..
            } => format!("{file}:{line}:{column}"),
            _ => self.config.file.clone(),
        };
        self.out.push(Finding {
            severity,
            path: path.to_string(),
            location,
            message: message.into(),
        });
    }
}

impl Advisor {
    /// Reviews a configuration: on its own (strong reads on a cached route,
    /// records in a store that forgets them, per-process caches, kinds not
    /// compiled in, stores nothing uses) and, given `workloads`, against
    /// what each entity needs (capabilities its store lacks, TTLs, search
    /// indexes and consistency it does not have, caches staler than
    /// allowed, kinds that rank far below the advisor's choice).
    /// Errors first, then warnings, then notes.
    ///
    /// ```
    /// use polyrouter::{advisor::{Advisor, Severity, Workloads}, config::Config};
    /// let cfg = Config::parse("[stores.kv]\nkind = \"redis\"\n[entities.order]\nstore = \"kv\"\n", "app.toml").unwrap();
    /// let w = Workloads::parse("[entities.order]\naccess = [\"point\", \"range\"]\n", "w.toml").unwrap();
    /// let findings = Advisor::builtin().review(&cfg, Some(&w), &[]);
    /// assert_eq!(findings[0].severity, Severity::Error);
    /// assert!(findings[0].message.contains("lacks query, range, sort"), "{}", findings[0]);
    /// ```
    pub fn review(
        &self,
        config: &Config,
        workloads: Option<&Workloads>,
        measured: &[Measurement],
    ) -> Vec<Finding> {
        let mut f = Findings {
            config,
            out: Vec::new(),
        };
        self.review_config(config, &mut f);
        if let Some(w) = workloads {
            self.review_workloads(config, w, measured, &mut f);
        }
        let mut out = f.out;
        out.sort_by_key(|f| f.severity);
        out
    }

    fn review_config(&self, config: &Config, f: &mut Findings<'_>) {
        for (name, spec) in &config.stores {
            if let Some(k) = crate::backends::kind(&spec.kind).filter(|k| k.open.is_none()) {
                f.add(
                    Severity::Info,
                    &format!("stores.{name}.kind"),
                    format!(
                        "kind `{}` is not compiled into this build; enable the cargo feature `{}`",
                        k.name, k.feature
                    ),
                );
            }
            let blobs_only =
                crate::backends::kind(&spec.kind).is_some_and(|k| !k.capabilities.records);
            if !blobs_only && !store_used(config, name) {
                f.add(
                    Severity::Info,
                    &format!("stores.{name}"),
                    "no entity, cache, search index, graph or time series uses this store",
                );
            }
        }
        for (name, e) in &config.entities {
            let read = e.read_consistency();
            if e.cache.is_some() && read == Consistency::Strong {
                f.add(
                    Severity::Warning,
                    &format!("entities.{name}.cache"),
                    "reads are `strong`, so they always go to the primary: the cache is invalidated on every write but never read; set `consistency = \"read_your_writes\"` (or looser) or drop the cache",
                );
            }
            if e.read_from.is_some() && read == Consistency::Strong {
                f.add(
                    Severity::Warning,
                    &format!("entities.{name}.read_from"),
                    "reads are `strong`, so the replica is never read; loosen `consistency` or drop `read_from`",
                );
            }
            if let Some(kind) = self.kind_of(config, &e.store) {
                let t = self.rules.traits(kind);
                if t.deployment == Deployment::InProcess && e.ttl.is_none() {
                    f.add(
                        Severity::Warning,
                        &format!("entities.{name}.store"),
                        format!(
                            "store `{}` (kind `{kind}`) keeps records in this process's memory: they vanish on restart; route the entity to a durable store, or set `ttl` if it is disposable",
                            e.store
                        ),
                    );
                } else if !t.durable && e.ttl.is_none() && t.deployment == Deployment::Server {
                    f.add(
                        Severity::Info,
                        &format!("entities.{name}.store"),
                        format!(
                            "store `{}` (kind `{kind}`) keeps records in memory with no `ttl`: they survive a restart only if the server persists (AOF/RDB)",
                            e.store
                        ),
                    );
                }
            }
            if let Some(c) = &e.cache {
                let shared = self
                    .kind_of(config, &c.store)
                    .and_then(crate::backends::kind)
                    .is_some_and(|k| k.capabilities.shared);
                if !shared {
                    f.add(
                        Severity::Info,
                        &format!("entities.{name}.cache.store"),
                        format!(
                            "cache store `{}` is private to each process: a write in one process drops only its own entry, so other processes may serve the old value until the cache `ttl` runs out",
                            c.store
                        ),
                    );
                }
            }
            if let Some(s) = &e.search {
                if self.kind_of(config, &s.store) == Some("tantivy") {
                    f.add(
                        Severity::Info,
                        &format!("entities.{name}.search.store"),
                        "an embedded tantivy index is written by one process at a time; with several writing processes use a `postgres` search store",
                    );
                }
            }
        }
        for (name, ts) in &config.timeseries {
            if ts.retention.is_none() {
                f.add(
                    Severity::Info,
                    &format!("timeseries.{name}"),
                    "no `retention`: the table grows forever; set e.g. `retention = \"30d\"`",
                );
            }
        }
    }

    fn review_workloads(
        &self,
        config: &Config,
        workloads: &Workloads,
        measured: &[Measurement],
        f: &mut Findings<'_>,
    ) {
        for (name, w) in &workloads.entities {
            let platform = workloads.platform_of(name);
            let (role, why) = primary_role(w);
            let ranking = rank::rank(&self.rules, role, why, w, platform, measured, None);
            let best = ranking.top();
            let (path, store) = match role {
                Role::Graph => (
                    format!("graphs.{name}.store"),
                    config.graphs.get(name).map(|g| g.store.clone()),
                ),
                Role::TimeSeries => (
                    format!("timeseries.{name}.store"),
                    config.timeseries.get(name).map(|t| t.store.clone()),
                ),
                _ => (
                    format!("entities.{name}.store"),
                    config.entities.get(name).map(|e| e.store.clone()),
                ),
            };
            let Some(store) = store else {
                let table = path.trim_end_matches(".store");
                let hint = best.map_or(String::new(), |c| {
                    format!("; the advisor suggests a `{}` store", c.kind)
                });
                f.add(
                    Severity::Warning,
                    table,
                    format!("the workload declares `{name}` but the configuration has no [{table}]{hint}"),
                );
                continue;
            };
            let Some(kind) = self.kind_of(config, &store) else {
                continue;
            };
            if let Some(c) = ranking.candidates.iter().find(|c| c.kind == kind) {
                if !c.lacks.is_empty() {
                    let caps: Vec<&str> = c.lacks.iter().map(|n| n.capability.as_str()).collect();
                    let why: Vec<&str> = c.lacks.iter().map(|n| n.reason.as_str()).collect();
                    f.add(
                        Severity::Error,
                        &path,
                        format!(
                            "store `{store}` (kind `{kind}`) lacks {}, which the workload needs ({}){}",
                            caps.join(", "),
                            dedup(why).join("; "),
                            best.map_or(String::new(), |b| format!("; the advisor suggests `{}`", b.kind))
                        ),
                    );
                } else if let Some(b) = best.filter(|b| b.kind != kind && b.score - c.score >= 30) {
                    f.add(
                        Severity::Info,
                        &path,
                        format!(
                            "for this workload the advisor ranks `{}` first (score {}) and `{kind}` at {}; run `polyrouter advise` for the reasons",
                            b.kind, b.score, c.score
                        ),
                    );
                }
            }
            if role == Role::Records {
                if let Some(e) = config.entities.get(name) {
                    self.review_route(name, w, e, config, f);
                }
            }
        }
    }

    fn review_route(
        &self,
        name: &str,
        w: &super::Workload,
        e: &EntityConfig,
        config: &Config,
        f: &mut Findings<'_>,
    ) {
        if let (Some(ttl), None) = (&w.ttl, e.ttl) {
            f.add(
                Severity::Warning,
                &format!("entities.{name}"),
                format!("the workload's records expire after {ttl}, but the route has no `ttl`; add `ttl = \"{ttl}\"`"),
            );
        }
        if w.reads(Access::Search) && e.search.is_none() {
            f.add(
                Severity::Warning,
                &format!("entities.{name}"),
                "the workload searches full text, but the route has no `search` index; add `search = { store = \"...\", fields = [...] }`",
            );
        }
        let read = e.read_consistency();
        if w.consistency == ConsistencyNeed::Strong
            && read != Consistency::Strong
            && (e.cache.is_some() || e.read_from.is_some())
        {
            f.add(
                Severity::Warning,
                &format!("entities.{name}.consistency"),
                "the workload needs strong reads, but this route reads from its cache or replica by default; set `consistency = \"strong\"` or read with `ReadOptions` strong where it matters",
            );
        }
        if let Some(c) = &e.cache {
            if let (Ok(Some(bound)), Some(ttl)) = (w.staleness_duration(), c.ttl) {
                if ttl.0 > bound {
                    f.add(
                        Severity::Warning,
                        &format!("entities.{name}.cache.ttl"),
                        format!(
                            "cache entries live longer than the workload's staleness bound ({}); lower the cache `ttl` or read under `bounded_staleness`",
                            w.staleness.as_deref().unwrap_or_default()
                        ),
                    );
                }
            }
            let shared = self
                .kind_of(config, &c.store)
                .and_then(crate::backends::kind)
                .is_some_and(|k| k.capabilities.shared);
            if !shared && w.processes > 1 {
                f.add(
                    Severity::Warning,
                    &format!("entities.{name}.cache.store"),
                    format!(
                        "{} processes share this entity but cache store `{}` is private to each: writes in one leave stale entries in the others; use a shared cache (redis)",
                        w.processes, c.store
                    ),
                );
            }
        }
    }

    /// The kind of a configured store.
    fn kind_of<'c>(&self, config: &'c Config, store: &str) -> Option<&'c str> {
        config
            .stores
            .get(store)
            .map(|s| s.kind.as_str())
            .filter(|k| self.rules.kinds.contains_key(*k))
    }
}

fn store_used(config: &Config, store: &str) -> bool {
    config.entities.values().any(|e| {
        e.store == store
            || e.cache.as_ref().is_some_and(|c| c.store == store)
            || e.read_from.as_deref() == Some(store)
            || e.search.as_ref().is_some_and(|s| s.store == store)
            || e.cascade_blobs.iter().any(|c| c.store == store)
    }) || config.graphs.values().any(|g| g.store == store)
        || config.timeseries.values().any(|t| t.store == store)
}

fn dedup(mut v: Vec<&str>) -> Vec<&str> {
    let mut seen = std::collections::BTreeSet::new();
    v.retain(|s| seen.insert(*s));
    v
}
