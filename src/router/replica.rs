//! A `read_from` replica and what the router knows of its lag.
//!
//! Under `bounded_staleness` the router reads the replica only when it can
//! prove the copy is within the bound: the replica's own measurement
//! ([`Store::replica_lag`]) taken at instant `t` bounds its staleness at
//! any later instant `t'` by `lag + (t' - t)` — whatever it showed at `t`
//! it still shows. One measurement therefore serves every read until that
//! sum passes the read's bound; then one caller measures again while the
//! others wait for its answer. A replica that is over the bound, or cannot
//! say, is asked again only after a quarter of the bound, and meanwhile
//! the primary answers.
//!
//! A replica that a `replica` projection fills (rather than the store's own
//! replication) has a **watermark** instead: a commit time before which
//! every write of the entity is applied to it, kept by the projection's
//! watermark task (the outbox was empty at that instant and the
//! projection's group had nothing unacknowledged after it). Its staleness
//! now is at most `now - watermark`.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::metrics::EntityMetrics;
use crate::store::EntityInfo;
use crate::{Error, Store};

/// A secondary read route.
#[derive(Debug)]
pub(crate) struct Replica {
    pub store: Arc<dyn Store>,
    pub info: EntityInfo,
    /// The last lag measurement.
    sample: Mutex<Option<Sample>>,
    /// Held by the one caller measuring.
    measuring: tokio::sync::Mutex<()>,
    /// The projection watermark (ms since the Unix epoch; 0: none).
    watermark: Arc<AtomicI64>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    /// When the measurement was sent (so the bound derived from it errs
    /// on the safe side).
    at: Instant,
    /// The replica's answer; `None` when it could not say.
    lag: Option<Duration>,
}

/// What a sample says about a read under `bound` at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The copy is at most this stale: read the replica.
    Within(Duration),
    /// Over the bound (or unknown) and measured lately: read the primary.
    Over,
    /// Measure again.
    Stale,
}

fn verdict(sample: Option<Sample>, bound: Duration, now: Instant) -> Verdict {
    let Some(s) = sample else {
        return Verdict::Stale;
    };
    let age = now.saturating_duration_since(s.at);
    match s.lag.map(|l| l + age) {
        Some(staleness) if staleness <= bound => Verdict::Within(staleness),
        _ if age < bound / 4 => Verdict::Over,
        _ => Verdict::Stale,
    }
}

impl Replica {
    pub(crate) fn new(store: Arc<dyn Store>, info: EntityInfo, watermark: Arc<AtomicI64>) -> Self {
        Replica {
            store,
            info,
            sample: Mutex::new(None),
            measuring: tokio::sync::Mutex::new(()),
            watermark,
        }
    }

    /// The staleness bound the projection watermark gives now, if a
    /// projection keeps one.
    fn watermark_lag(&self) -> Option<Duration> {
        let w = self.watermark.load(Ordering::Acquire);
        (w > 0).then(|| Duration::from_millis((crate::lease::now_ms() - w).max(0) as u64))
    }

    /// How stale the replica's copy may be now, if that is within
    /// `bound`; `None` when the primary must answer (counted as
    /// `replica_lagging`, and a failed measurement as `replica_errors`).
    pub(crate) async fn within(&self, bound: Duration, m: &EntityMetrics) -> Option<Duration> {
        let decided = |v: Verdict| match v {
            Verdict::Within(s) => Some(Some(s)),
            Verdict::Over => {
                EntityMetrics::add(&m.replica_lagging);
                Some(None)
            }
            Verdict::Stale => None,
        };
        if let Some(answer) = decided(verdict(*self.sample.lock(), bound, Instant::now())) {
            return answer;
        }
        let _one = self.measuring.lock().await;
        // Another caller may have measured while this one waited.
        if let Some(answer) = decided(verdict(*self.sample.lock(), bound, Instant::now())) {
            return answer;
        }
        let at = Instant::now();
        let measured = match self.watermark_lag() {
            Some(lag) => Ok(lag),
            None => self.store.replica_lag().await,
        };
        let lag = match measured {
            Ok(lag) => Some(lag),
            Err(Error::Unsupported { .. }) => None,
            Err(e) => {
                EntityMetrics::add(&m.replica_errors);
                m.warn_cache(self.store.name(), self.info.name(), "replica lag", &e);
                None
            }
        };
        let sample = Sample { at, lag };
        *self.sample.lock() = Some(sample);
        match verdict(Some(sample), bound, Instant::now()) {
            Verdict::Within(s) => Some(s),
            _ => {
                EntityMetrics::add(&m.replica_lagging);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_sample_ages_and_then_is_measured_again() {
        let t0 = Instant::now();
        let s = |lag| Some(Sample { at: t0, lag });
        assert_eq!(verdict(None, 100 * MS, t0), Verdict::Stale);
        // 10 ms behind, read 30 ms later: at most 40 ms stale.
        assert_eq!(
            verdict(s(Some(10 * MS)), 100 * MS, t0 + 30 * MS),
            Verdict::Within(40 * MS)
        );
        // The same sample cannot prove 100 ms once 95 ms have passed.
        assert_eq!(
            verdict(s(Some(10 * MS)), 100 * MS, t0 + 95 * MS),
            Verdict::Stale
        );
        // Too far behind, measured 10 ms ago: the primary, no new measurement
        // before a quarter of the bound.
        assert_eq!(
            verdict(s(Some(500 * MS)), 100 * MS, t0 + 10 * MS),
            Verdict::Over
        );
        assert_eq!(
            verdict(s(Some(500 * MS)), 100 * MS, t0 + 25 * MS),
            Verdict::Stale
        );
        // Unknown lag is never within any bound.
        assert_eq!(verdict(s(None), 100 * MS, t0), Verdict::Over);
    }
}
