//! [`ProjectionStats`]: what a runner did, as atomics read by
//! `polyrouter sync status` and exported through the `metrics` crate.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use serde::Serialize;

use crate::lease::now_ms;
use crate::sync::ChangeEvent;

/// Live counters of one projection runner (shared with whoever reads
/// them; see [`ProjectionRunner::stats`](super::ProjectionRunner::stats)).
///
/// Exported as `polyrouter_projection_events_total{projection, outcome}`
/// (`outcome` one of `applied`, `duplicate`, `failed`, `dead_letter`) and
/// the gauge `polyrouter_projection_lag_seconds{projection}`: commit to
/// apply of the last applied event, 0 once the runner found nothing left
/// to fetch.
///
/// ```
/// let s = polyrouter::sync::projection::ProjectionStats::new("view");
/// let snap = s.snapshot();
/// assert_eq!((snap.applied, snap.duplicates, snap.dead_lettered), (0, 0, 0));
/// assert_eq!(snap.lag_ms, None);
/// ```
#[derive(Debug)]
pub struct ProjectionStats {
    name: String,
    applied: AtomicU64,
    duplicates: AtomicU64,
    failures: AtomicU64,
    dead_lettered: AtomicU64,
    /// Commit time of the last applied event (ms since the epoch; 0: none).
    last_event_ms: AtomicI64,
    /// When the last event was applied (ms since the epoch; 0: none).
    last_applied_ms: AtomicI64,
    /// Commit-to-apply lag of the last applied event (ms; -1: none yet).
    lag_ms: AtomicI64,
    /// When a fetch last came back empty (ms since the epoch; 0: never).
    caught_up_ms: AtomicI64,
    exported: Exported,
}

#[derive(Debug)]
struct Exported {
    applied: metrics::Counter,
    duplicates: metrics::Counter,
    failures: metrics::Counter,
    dead_lettered: metrics::Counter,
    lag: metrics::Gauge,
}

impl Exported {
    fn new(name: &str) -> Self {
        let c = |outcome: &'static str| {
            metrics::counter!(
                "polyrouter_projection_events_total",
                "projection" => name.to_string(),
                "outcome" => outcome
            )
        };
        Exported {
            applied: c("applied"),
            duplicates: c("duplicate"),
            failures: c("failed"),
            dead_lettered: c("dead_letter"),
            lag: metrics::gauge!("polyrouter_projection_lag_seconds", "projection" => name.to_string()),
        }
    }
}

/// A point-in-time copy of [`ProjectionStats`], for the CLI (JSON).
///
/// ```
/// let s = polyrouter::sync::projection::ProjectionStats::new("view").snapshot();
/// let j = serde_json::to_value(&s).unwrap();
/// assert_eq!(j["projection"], "view");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ProjectionStatus {
    /// The projection's name.
    pub projection: String,
    /// Events applied (they changed the target).
    pub applied: u64,
    /// Events skipped because the target already held their version or a
    /// newer one (redeliveries, replays, superseded events).
    pub duplicates: u64,
    /// Failed attempts (each retried or dead-lettered).
    pub failures: u64,
    /// Events put in the dead letters.
    pub dead_lettered: u64,
    /// Commit time of the last applied event (ms since the Unix epoch).
    pub last_event_ms: Option<i64>,
    /// When the last event was applied (ms since the Unix epoch).
    pub last_applied_ms: Option<i64>,
    /// Commit-to-apply lag of the last applied event, in ms.
    pub lag_ms: Option<u64>,
    /// When the runner last found nothing to fetch (ms since the Unix
    /// epoch): everything committed before then and delivered is applied.
    pub caught_up_ms: Option<i64>,
}

fn set(v: i64) -> Option<i64> {
    (v > 0).then_some(v)
}

impl ProjectionStats {
    /// Zeroed counters of projection `name`.
    ///
    /// ```
    /// assert_eq!(polyrouter::sync::projection::ProjectionStats::new("p").name(), "p");
    /// ```
    pub fn new(name: &str) -> Self {
        ProjectionStats {
            name: name.into(),
            applied: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            last_event_ms: AtomicI64::new(0),
            last_applied_ms: AtomicI64::new(0),
            lag_ms: AtomicI64::new(-1),
            caught_up_ms: AtomicI64::new(0),
            exported: Exported::new(name),
        }
    }

    /// The projection's name.
    ///
    /// ```
    /// assert_eq!(polyrouter::sync::projection::ProjectionStats::new("p").name(), "p");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The counters now.
    ///
    /// ```
    /// assert_eq!(polyrouter::sync::projection::ProjectionStats::new("p").snapshot().failures, 0);
    /// ```
    pub fn snapshot(&self) -> ProjectionStatus {
        let lag = self.lag_ms.load(Ordering::Relaxed);
        ProjectionStatus {
            projection: self.name.clone(),
            applied: self.applied.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            last_event_ms: set(self.last_event_ms.load(Ordering::Relaxed)),
            last_applied_ms: set(self.last_applied_ms.load(Ordering::Relaxed)),
            lag_ms: u64::try_from(lag).ok(),
            caught_up_ms: set(self.caught_up_ms.load(Ordering::Relaxed)),
        }
    }

    pub(super) fn applied(&self, event: &ChangeEvent) {
        self.applied.fetch_add(1, Ordering::Relaxed);
        self.exported.applied.increment(1);
        let now = now_ms();
        let committed = event.time.timestamp_millis();
        let lag = now.saturating_sub(committed).max(0);
        self.last_event_ms.fetch_max(committed, Ordering::Relaxed);
        self.last_applied_ms.store(now, Ordering::Relaxed);
        self.lag_ms.store(lag, Ordering::Relaxed);
        self.exported.lag.set(lag as f64 / 1000.0);
    }

    pub(super) fn duplicate(&self) {
        self.duplicates.fetch_add(1, Ordering::Relaxed);
        self.exported.duplicates.increment(1);
    }

    pub(super) fn failed(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.exported.failures.increment(1);
    }

    pub(super) fn dead_lettered(&self) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
        self.exported.dead_lettered.increment(1);
    }

    pub(super) fn caught_up(&self) {
        self.caught_up_ms.store(now_ms(), Ordering::Relaxed);
        self.exported.lag.set(0.0);
    }
}
