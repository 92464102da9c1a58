//! Scoring store kinds for a role: needs from capabilities, weights from rules.

use serde::{Deserialize, Serialize};

use super::rules::{Role, Rules};
use super::workload::{Access, Platform, Structure, Workload};
use crate::backends::{KINDS, KindInfo};

/// A latency measured on one of the user's stores (`polyrouter bench`).
///
/// ```
/// let m = polyrouter::advisor::Measurement { store: "main".into(), kind: "sqlite".into(), operation: "read".into(), p99_ms: 0.4 };
/// assert_eq!(m.kind, "sqlite");
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Measurement {
    /// The store's name in the configuration.
    pub store: String,
    /// Its kind.
    pub kind: String,
    /// `read`, `update`, `insert`, `scan` or `read_modify_write`.
    pub operation: String,
    /// The measured 99th-percentile latency.
    pub p99_ms: f64,
}

/// A capability a role needs, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CapabilityNeed {
    /// As [`Capabilities::names`](crate::Capabilities::names) spells it.
    pub capability: String,
    /// Why the workload needs it.
    pub reason: String,
}

/// A rule's contribution to a kind's score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// The rule's id (`measured` for bench results).
    pub rule: String,
    /// Points added (negative: taken away).
    pub weight: i32,
    /// Why.
    pub text: String,
}

/// One kind's place in a ranking.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// The store kind.
    pub kind: String,
    /// One line about the kind.
    pub summary: String,
    /// The sum of the rules' weights.
    pub score: i32,
    /// It has every capability the role needs.
    pub fits: bool,
    /// The needed capabilities it has.
    pub satisfies: Vec<CapabilityNeed>,
    /// The needed capabilities it lacks.
    pub lacks: Vec<CapabilityNeed>,
    /// Needed capabilities that depend on the store's options or server.
    pub depends: Vec<String>,
    /// The rules that scored it, heaviest first.
    pub reasons: Vec<Reason>,
    /// Its cargo feature is compiled into this build.
    pub compiled: bool,
    /// Its cargo feature.
    pub feature: String,
}

/// Every kind ranked for one role.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranking {
    /// What the store is for.
    pub role: Role,
    /// Why this role is needed.
    pub why: String,
    /// Fitting kinds by score, then the others by score.
    pub candidates: Vec<Candidate>,
}

impl Ranking {
    /// The first fitting kind, if any.
    ///
    /// ```
    /// use polyrouter::advisor::{Advisor, Workloads};
    /// let w = Workloads::parse("[entities.n]\naccess = [\"point\"]\n", "w").unwrap();
    /// let advice = Advisor::builtin().advise(&w, &[]);
    /// assert!(advice.entities[0].rankings[0].top().is_some());
    /// ```
    pub fn top(&self) -> Option<&Candidate> {
        self.candidates.first().filter(|c| c.fits)
    }
}

/// The role holding the entity's data, from its access patterns and shape.
pub(crate) fn primary_role(w: &Workload) -> (Role, &'static str) {
    if w.structure == Structure::Unstructured || w.reads(Access::Blob) {
        (Role::Blob, "unstructured data streamed as blobs")
    } else if w.reads(Access::TimeSeries) {
        (Role::TimeSeries, "measurements read by time range")
    } else if w.reads(Access::Graph) {
        (Role::Graph, "connected data read by traversal")
    } else {
        (Role::Records, "the entity's records")
    }
}

/// Ranks every kind for `role` (`exclude`: a kind not to propose, e.g. the
/// primary's kind for its cache).
pub(crate) fn rank(
    rules: &Rules,
    role: Role,
    why: &str,
    w: &Workload,
    platform: Platform,
    measured: &[Measurement],
    exclude: Option<&str>,
) -> Ranking {
    let mut candidates: Vec<(usize, Candidate)> = KINDS
        .iter()
        .enumerate()
        .filter(|(_, k)| Some(k.name) != exclude)
        .map(|(i, k)| (i, candidate(rules, role, w, platform, measured, k)))
        .collect();
    candidates.sort_by(|(ia, a), (ib, b)| {
        b.fits
            .cmp(&a.fits)
            .then(b.score.cmp(&a.score))
            .then(ia.cmp(ib))
    });
    Ranking {
        role,
        why: why.to_string(),
        candidates: candidates.into_iter().map(|(_, c)| c).collect(),
    }
}

fn candidate(
    rules: &Rules,
    role: Role,
    w: &Workload,
    platform: Platform,
    measured: &[Measurement],
    kind: &KindInfo,
) -> Candidate {
    let traits = rules.traits(kind.name);
    let names = kind.capabilities.names();
    let mut satisfies: Vec<CapabilityNeed> = Vec::new();
    let mut lacks: Vec<CapabilityNeed> = Vec::new();
    for need in rules
        .needs
        .iter()
        .filter(|n| n.role.contains(&role) && n.when.holds(w, platform))
    {
        for cap in &need.capabilities {
            if satisfies.iter().chain(&lacks).any(|c| &c.capability == cap) {
                continue;
            }
            let entry = CapabilityNeed {
                capability: cap.clone(),
                reason: need.reason.clone(),
            };
            if names.contains(&cap.as_str()) {
                satisfies.push(entry);
            } else {
                lacks.push(entry);
            }
        }
    }
    let depends = kind
        .depends
        .iter()
        .filter(|d| satisfies.iter().any(|s| s.capability == d.capability))
        .map(|d| format!("{}: {}", d.capability, d.how))
        .collect();
    let mut reasons: Vec<Reason> = rules
        .rules
        .iter()
        .filter(|r| r.role.contains(&role) && r.when.holds(w, platform))
        .filter(|r| r.kind.holds(kind, traits))
        .map(|r| Reason {
            rule: r.id.clone(),
            weight: r.weight,
            text: r.reason.clone(),
        })
        .collect();
    reasons.extend(measured_reasons(rules, role, w, kind, measured));
    reasons.sort_by_key(|r| std::cmp::Reverse(r.weight.abs()));
    Candidate {
        kind: kind.name.to_string(),
        summary: traits.summary.clone(),
        score: reasons.iter().map(|r| r.weight).sum(),
        fits: lacks.is_empty(),
        satisfies,
        lacks,
        depends,
        reasons,
        compiled: kind.open.is_some(),
        feature: kind.feature.to_string(),
    }
}

/// Bench results of this kind against the workload's latency target: the
/// slowest p99 of the operations the role performs, on the best store of
/// the kind.
fn measured_reasons(
    rules: &Rules,
    role: Role,
    w: &Workload,
    kind: &KindInfo,
    measured: &[Measurement],
) -> Option<Reason> {
    let target = w.latency_ms?;
    if !matches!(role, Role::Records | Role::Cache) {
        return None;
    }
    let ops: &[&str] = if w.writes_per_sec > 0.0 {
        &["read", "update", "insert", "read_modify_write"]
    } else {
        &["read"]
    };
    let mut stores: Vec<&str> = measured
        .iter()
        .filter(|m| m.kind == kind.name)
        .map(|m| m.store.as_str())
        .collect();
    stores.sort_unstable();
    stores.dedup();
    // Per store: its slowest relevant operation; then the best store.
    let (store, op, p99) = stores
        .iter()
        .filter_map(|s| {
            measured
                .iter()
                .filter(|m| m.store == *s && ops.contains(&m.operation.as_str()))
                .max_by(|a, b| a.p99_ms.total_cmp(&b.p99_ms))
                .map(|m| (*s, m.operation.as_str(), m.p99_ms))
        })
        .min_by(|a, b| a.2.total_cmp(&b.2))?;
    let meets = p99 <= target;
    Some(Reason {
        rule: "measured".into(),
        weight: if meets {
            rules.measured.meets
        } else {
            rules.measured.misses
        },
        text: format!(
            "measured on store `{store}`: p99 {op} {p99:.3} ms {} the {target} ms target",
            if meets { "within" } else { "over" }
        ),
    })
}
