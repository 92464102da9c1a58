//! Per-entity read-path counters: cache hits and misses, fallbacks when the
//! cache is down or slow, stale entries served, single-flight joins. Each
//! is kept here (for [`Router::metrics`](crate::Router::metrics)) and
//! exported through the `metrics` facade as `polyrouter_read_path_total`
//! with labels `store` (the primary), `entity` and `event` (the counter's
//! name).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often at most a failing cache is logged at `warn`, per entity.
pub const WARN_INTERVAL: Duration = Duration::from_secs(10);

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// A snapshot of one entity's read-path counters
        /// (from [`Router::metrics`](crate::Router::metrics)).
        ///
        /// ```
        /// let c = polyrouter::router::EntityCounters::default();
        /// assert_eq!(c.cache_hits, 0);
        /// ```
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct EntityCounters {
            $($(#[$doc])* pub $name: u64,)*
        }

        #[derive(Debug, Default)]
        pub(crate) struct EntityMetrics {
            $(pub(crate) $name: Tally,)*
            last_warn_ms: AtomicU64,
            suppressed: AtomicU64,
        }

        impl EntityMetrics {
            /// Counters of `entity`, whose primary is `store`, registered
            /// with the `metrics` recorder installed now.
            pub(crate) fn new(store: &str, entity: &str) -> Self {
                EntityMetrics {
                    $($name: Tally::exported(store, entity, stringify!($name)),)*
                    ..EntityMetrics::default()
                }
            }

            pub(crate) fn snapshot(&self) -> EntityCounters {
                EntityCounters { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters! {
    /// Reads answered by a fresh cache entry holding a record.
    cache_hits,
    /// Reads answered by a fresh negative ("not found") cache entry.
    negative_hits,
    /// Cache lookups that found no usable entry (absent, expired, too old
    /// for the bound, or older than the session requires).
    cache_misses,
    /// Cache calls that failed or timed out; the read went on to the primary.
    cache_errors,
    /// Entries written to the cache after a primary read.
    fills,
    /// Fills skipped because a write to the key raced the primary read.
    fills_skipped,
    /// Cache entries deleted after writes.
    invalidations,
    /// Invalidations that failed (the entry lives until its TTL).
    invalidation_errors,
    /// Reads answered by the `read_from` replica.
    replica_reads,
    /// Replica calls that failed (reads, lag measurements); the read went
    /// on to the primary.
    replica_errors,
    /// Reads under `bounded_staleness` the primary answered because the
    /// replica's measured lag was over the bound, or it could not measure
    /// it ([`Store::replica_lag`](crate::Store::replica_lag)).
    replica_lagging,
    /// Reads sent to the primary store.
    primary_reads,
    /// Reads that waited for another caller's primary read of the same key.
    coalesced,
    /// Expired entries served, flagged stale, while the primary was unavailable.
    stale_served,
}

/// One read-path counter: kept here and exported to the `metrics` recorder.
#[derive(Debug)]
pub(crate) struct Tally {
    local: AtomicU64,
    exported: metrics::Counter,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            local: AtomicU64::new(0),
            exported: metrics::Counter::noop(),
        }
    }
}

impl Tally {
    fn exported(store: &str, entity: &str, event: &'static str) -> Self {
        Tally {
            local: AtomicU64::new(0),
            exported: metrics::counter!(
                "polyrouter_read_path_total",
                "store" => store.to_string(),
                "entity" => entity.to_string(),
                "event" => event
            ),
        }
    }

    pub(crate) fn fetch_add(&self, n: u64, order: Ordering) -> u64 {
        self.exported.increment(n);
        self.local.fetch_add(n, order)
    }

    pub(crate) fn load(&self, order: Ordering) -> u64 {
        self.local.load(order)
    }
}

impl EntityMetrics {
    pub(crate) fn add(counter: &Tally) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Logs a cache failure at `warn` at most once per [`WARN_INTERVAL`].
    pub(crate) fn warn_cache(
        &self,
        store: &str,
        entity: &str,
        what: &str,
        error: &dyn std::fmt::Display,
    ) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let last = self.last_warn_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= WARN_INTERVAL.as_millis() as u64
            && self
                .last_warn_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
            tracing::warn!(
                cache = store,
                entity,
                suppressed,
                "cache {what} failed, falling back to the primary: {error} ({suppressed} similar failures not logged since the last warning)"
            );
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Read-path counters of every routed entity, by entity name.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let r = polyrouter::Router::from_toml_str("[stores.m]\nkind = \"memory\"\n[entities.a]\nstore = \"m\"\n").await.unwrap();
/// assert_eq!(r.metrics().entity("a").unwrap().cache_hits, 0);
/// # });
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Counters per entity.
    pub entities: BTreeMap<String, EntityCounters>,
}

impl Metrics {
    /// One entity's counters.
    ///
    /// ```
    /// assert!(polyrouter::router::Metrics::default().entity("x").is_none());
    /// ```
    pub fn entity(&self, name: &str) -> Option<&EntityCounters> {
        self.entities.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_failures_are_logged_once_per_interval() {
        let m = EntityMetrics::default();
        for _ in 0..5 {
            m.warn_cache("cache", "user", "read", &"down");
        }
        // The first call logged; the other four were counted, not logged.
        assert_eq!(m.suppressed.load(Ordering::Relaxed), 4);
        assert!(m.last_warn_ms.load(Ordering::Relaxed) > 0);
        // Once the interval has passed, the next failure logs again and
        // resets the count.
        m.last_warn_ms.store(0, Ordering::Relaxed);
        m.warn_cache("cache", "user", "read", &"down");
        assert_eq!(m.suppressed.load(Ordering::Relaxed), 0);
    }
}
