//! `polyrouter advise`: which store kind suits each entity, and why.
//!
//! Input: a [`Workloads`] file (volume, rates, structure, consistency,
//! access patterns, latency target, TTL, transactions, scale-out per
//! entity). Output: for each entity, every store kind ranked for each role
//! it needs (its records, or its graph, time series or blobs; a search
//! index; a cache), with the reasons and with the capabilities each kind
//! has or lacks — read from the real [`Capabilities`](crate::Capabilities)
//! of [`backends::KINDS`](crate::backends::KINDS) — and a ready TOML
//! snippet for the top choices. The rules are data (`rules.toml`, see
//! [`Rules`]); bench results ([`Measurement`]) move kinds up or down by
//! what was measured on the user's own stores. [`Advisor::review`] checks
//! an existing configuration.
//!
//! ```
//! use polyrouter::advisor::{Advisor, Workloads};
//! let w = Workloads::parse(r#"
//!     platform = "embedded"
//!     [entities.note]
//!     access = ["point", "range"]
//!     processes = 1
//! "#, "workload.toml").unwrap();
//! let advice = Advisor::builtin().advise(&w, &[]);
//! assert_eq!(advice.entities[0].rankings[0].top().unwrap().kind, "sqlite");
//! polyrouter::config::Config::parse(&advice.snippet(), "snippet.toml").unwrap();
//! ```

use std::fmt;

use serde::Serialize;

mod rank;
mod review;
mod rules;
mod snippet;
mod workload;

pub use rank::{Candidate, CapabilityNeed, Measurement, Ranking, Reason};
pub use review::{Finding, Severity};
pub use rules::{
    CacheWhen, Deployment, KindMatch, KindTraits, LatencyClass, Measured, Need, Role, Rule, Rules,
    Scale, SchemaStyle, When,
};
pub use workload::{Access, ConsistencyNeed, Platform, Structure, Volume, Workload, Workloads};

/// Ranks store kinds with a rule set.
///
/// ```
/// let advisor = polyrouter::advisor::Advisor::builtin();
/// assert!(!advisor.rules().rules.is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct Advisor {
    rules: Rules,
}

/// The advice for every entity of a workload file.
#[derive(Debug, Clone, Serialize)]
pub struct Advice {
    /// Per entity, in name order.
    pub entities: Vec<EntityAdvice>,
    /// Store options of each kind for the snippet (from the rules).
    #[serde(skip)]
    options: std::collections::BTreeMap<String, toml::Table>,
}

/// The advice for one entity.
#[derive(Debug, Clone, Serialize)]
pub struct EntityAdvice {
    /// The entity's name.
    pub entity: String,
    /// Its platform.
    pub platform: Platform,
    /// Its workload.
    pub workload: Workload,
    /// One ranking per role: the primary role first, then its search index
    /// and its cache when it needs them.
    pub rankings: Vec<Ranking>,
}

impl EntityAdvice {
    /// The ranking for a role, if the entity needs it.
    ///
    /// ```
    /// use polyrouter::advisor::{Advisor, Role, Workloads};
    /// let w = Workloads::parse("[entities.p]\naccess = [\"point\", \"search\"]\n", "w").unwrap();
    /// let advice = Advisor::builtin().advise(&w, &[]);
    /// assert_eq!(advice.entities[0].ranking(Role::Search).unwrap().top().unwrap().kind, "postgres");
    /// ```
    pub fn ranking(&self, role: Role) -> Option<&Ranking> {
        self.rankings.iter().find(|r| r.role == role)
    }

    /// The top kind for a role.
    ///
    /// ```
    /// use polyrouter::advisor::{Advisor, Role, Workloads};
    /// let w = Workloads::parse("[entities.s]\nttl = \"30m\"\ndurable = false\nconsistency = \"eventual\"\n", "w").unwrap();
    /// assert_eq!(Advisor::builtin().advise(&w, &[]).entities[0].top(Role::Records), Some("redis"));
    /// ```
    pub fn top(&self, role: Role) -> Option<&str> {
        self.ranking(role)?.top().map(|c| c.kind.as_str())
    }
}

impl Advisor {
    /// The advisor with polyrouter's built-in rules.
    ///
    /// ```
    /// let _ = polyrouter::advisor::Advisor::builtin();
    /// ```
    pub fn builtin() -> Advisor {
        Advisor {
            rules: Rules::builtin(),
        }
    }

    /// An advisor with other rules.
    ///
    /// ```
    /// let rules = polyrouter::advisor::Rules::builtin();
    /// let _ = polyrouter::advisor::Advisor::with_rules(rules);
    /// ```
    pub fn with_rules(rules: Rules) -> Advisor {
        Advisor { rules }
    }

    /// The rules in use.
    ///
    /// ```
    /// assert!(polyrouter::advisor::Advisor::builtin().rules().kinds.contains_key("sqlite"));
    /// ```
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Ranks the store kinds for every entity of `workloads`; `measured`:
    /// latencies from `polyrouter bench` on the user's stores (may be empty).
    ///
    /// ```
    /// use polyrouter::advisor::{Advisor, Role, Workloads};
    /// let w = Workloads::parse("[entities.order]\naccess = [\"point\", \"range\"]\ntransactions = true\n", "w").unwrap();
    /// let advice = Advisor::builtin().advise(&w, &[]);
    /// let ranking = advice.entities[0].ranking(Role::Records).unwrap();
    /// let redis = ranking.candidates.iter().find(|c| c.kind == "redis").unwrap();
    /// assert!(!redis.fits && redis.lacks.iter().any(|n| n.capability == "query"));
    /// ```
    pub fn advise(&self, workloads: &Workloads, measured: &[Measurement]) -> Advice {
        let entities = workloads
            .entities
            .iter()
            .map(|(name, w)| self.advise_one(name, w, workloads.platform_of(name), measured))
            .collect();
        let options = self
            .rules
            .kinds
            .iter()
            .map(|(k, t)| (k.clone(), t.options.clone()))
            .collect();
        Advice { entities, options }
    }

    fn advise_one(
        &self,
        entity: &str,
        w: &Workload,
        platform: Platform,
        measured: &[Measurement],
    ) -> EntityAdvice {
        let (role, why) = rank::primary_role(w);
        let primary = rank::rank(&self.rules, role, why, w, platform, measured, None);
        let mut rankings = Vec::new();
        let top_kind = primary.top().map(|c| c.kind.clone());
        if role == Role::Records && w.reads(Access::Search) {
            rankings.push(rank::rank(
                &self.rules,
                Role::Search,
                "full-text search over the entity, kept up to date on every write",
                w,
                platform,
                measured,
                None,
            ));
        }
        if role == Role::Records {
            if let (Some(top), Some(why)) = (&top_kind, self.cache_reason(w, platform)) {
                let fast = self.rules.traits(top).latency == LatencyClass::SubMs;
                if !fast {
                    rankings.push(rank::rank(
                        &self.rules,
                        Role::Cache,
                        &why,
                        w,
                        platform,
                        measured,
                        Some(top),
                    ));
                }
            }
        }
        rankings.insert(0, primary);
        EntityAdvice {
            entity: entity.to_string(),
            platform,
            workload: w.clone(),
            rankings,
        }
    }

    fn cache_reason(&self, w: &Workload, platform: Platform) -> Option<String> {
        self.rules
            .caches
            .iter()
            .find(|c| c.when.holds(w, platform))
            .map(|c| format!("cache-aside: {}", c.reason))
    }
}

impl Advice {
    /// A configuration for the top choices, ready to paste: stores named
    /// after their kinds, a route per entity with its consistency, TTL,
    /// cache and search index; graphs, time series and blob stores where
    /// the workload reads that way. It parses with
    /// [`Config::parse`](crate::config::Config::parse) once its `${VAR}`s
    /// are set (local defaults are given where there are sensible ones).
    ///
    /// ```
    /// use polyrouter::advisor::{Advisor, Workloads};
    /// let w = Workloads::parse("[entities.s]\nttl = \"30m\"\ndurable = false\nconsistency = \"eventual\"\n", "w").unwrap();
    /// let toml = Advisor::builtin().advise(&w, &[]).snippet();
    /// assert!(toml.contains("[entities.s]\nstore = \"redis\""), "{toml}");
    /// ```
    pub fn snippet(&self) -> String {
        snippet::render(self, &self.options)
    }
}

impl fmt::Display for Advice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.entities {
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl fmt::Display for EntityAdvice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let platform = serde_plain(&self.platform);
        writeln!(f, "entity `{}` (platform {platform}):", self.entity)?;
        for r in &self.rankings {
            writeln!(f, "  {} store — {}:", r.role.name(), r.why)?;
            let fitting: Vec<&Candidate> = r.candidates.iter().filter(|c| c.fits).collect();
            if fitting.is_empty() {
                writeln!(f, "    no store kind has every capability this needs")?;
            }
            for (i, c) in fitting.iter().take(3).enumerate() {
                let compiled = if c.compiled {
                    String::new()
                } else {
                    format!(" (enable the cargo feature `{}`)", c.feature)
                };
                writeln!(
                    f,
                    "    {}. {} — score {}{compiled}: {}",
                    i + 1,
                    c.kind,
                    c.score,
                    c.summary
                )?;
                for reason in &c.reasons {
                    writeln!(
                        f,
                        "         {:+} {}: {}",
                        reason.weight, reason.rule, reason.text
                    )?;
                }
                let has: Vec<&str> = c.satisfies.iter().map(|n| n.capability.as_str()).collect();
                writeln!(f, "         has: {}", has.join(", "))?;
                for d in &c.depends {
                    writeln!(f, "         note: {d}")?;
                }
            }
            if fitting.len() > 3 {
                let rest: Vec<String> = fitting[3..]
                    .iter()
                    .map(|c| format!("{} ({})", c.kind, c.score))
                    .collect();
                writeln!(f, "    also fit: {}", rest.join(", "))?;
            }
            let unfit: Vec<String> = r
                .candidates
                .iter()
                .filter(|c| !c.fits)
                .map(|c| {
                    let lacks: Vec<&str> = c.lacks.iter().map(|n| n.capability.as_str()).collect();
                    format!("{} (lacks {})", c.kind, lacks.join(", "))
                })
                .collect();
            if !unfit.is_empty() {
                writeln!(f, "    cannot serve it: {}", unfit.join("; "))?;
            }
        }
        writeln!(f)
    }
}

/// An enum's serde name (`self_hosted`).
fn serde_plain<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}
