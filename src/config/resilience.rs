//! `[stores.NAME.resilience]`: timeouts, retries, circuit breaker and
//! limits of one store. The option reference is docs/configuration.md; the
//! behaviour and its reasoning are in docs/resilience.md. The layers that
//! apply these settings are in [`layers`](crate::layers).

use std::time::Duration;

use serde::Deserialize;

use super::ConfigDuration;

/// `[stores.NAME.resilience]`: how the router wraps one store. Every part
/// has a default, so an empty (or absent) table gives the default policy:
/// per-class timeouts, three attempts for idempotent calls under a retry
/// budget, a circuit breaker, no concurrency or rate limit.
///
/// ```
/// let cfg = polyrouter::config::Config::parse(r#"
///     [stores.main]
///     kind = "memory"
///     [stores.main.resilience]
///     retry = { max_attempts = 5 }
///     limit = { max_concurrency = 32 }
/// "#, "<string>").unwrap();
/// let r = &cfg.stores["main"].resilience;
/// assert_eq!(r.retry.max_attempts, 5);
/// assert_eq!(r.limit.max_concurrency, 32);
/// assert_eq!(r.timeout.read.0.as_secs(), 5);
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResilienceConfig {
    /// `false`: the store is used bare, without any layer (default `true`).
    pub enabled: bool,
    /// Per-call timeouts by class of operation.
    pub timeout: TimeoutConfig,
    /// Retries of transient failures.
    pub retry: RetryConfig,
    /// The circuit breaker.
    pub breaker: BreakerConfig,
    /// Concurrency and rate limits.
    pub limit: LimitConfig,
    /// Record the key of single-key calls in their trace span (default
    /// `false`: spans carry no key and never a record value).
    pub trace_keys: bool,
}

impl Default for ResilienceConfig {
    fn default() -> Self {
        ResilienceConfig {
            enabled: true,
            timeout: TimeoutConfig::default(),
            retry: RetryConfig::default(),
            breaker: BreakerConfig::default(),
            limit: LimitConfig::default(),
            trace_keys: false,
        }
    }
}

/// `resilience.timeout`: the longest one attempt of a call may take, by
/// class of operation (see [`OpClass`](crate::layers::OpClass)); `"0s"`
/// turns a class's timeout off.
///
/// ```
/// let t = polyrouter::config::TimeoutConfig::default();
/// assert_eq!((t.read.0.as_secs(), t.write.0.as_secs(), t.query.0.as_secs()), (5, 10, 30));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutConfig {
    /// Point reads: `get`, `get_many`, key-value and blob reads, `ping` (default `"5s"`).
    pub read: ConfigDuration,
    /// Writes of one record or a small batch, graph and key-value writes (default `"10s"`).
    pub write: ConfigDuration,
    /// Query pages, counts, searches, graph traversals, time-series ranges (default `"30s"`).
    pub query: ConfigDuration,
    /// Bulk calls: batches of more than 100 writes, `link_many`, search indexing,
    /// time-series appends and purges, blob uploads and copies (default `"2m"`).
    pub bulk: ConfigDuration,
    /// Preparing storage: `ensure_entity`, `ensure_graph`, `ensure_index`,
    /// `ensure_series`, index `clear` and `flush` (default `"5m"`).
    pub admin: ConfigDuration,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        let s = |secs| ConfigDuration(Duration::from_secs(secs));
        TimeoutConfig {
            read: s(5),
            write: s(10),
            query: s(30),
            bulk: s(120),
            admin: s(300),
        }
    }
}

/// `resilience.retry`: which failures are tried again, how often and how
/// far apart. Only transient errors are retried, and after an error that
/// leaves a write's outcome unknown only idempotent calls are (see
/// docs/resilience.md).
///
/// ```
/// let r = polyrouter::config::RetryConfig::default();
/// assert_eq!(r.max_attempts, 3);
/// assert_eq!(r.base_delay.0.as_millis(), 25);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts in all, the first included; `1` turns retries off (default 3, at most 10).
    pub max_attempts: u32,
    /// The first backoff's upper bound; attempt `n` waits a random time in
    /// `[0, min(max_delay, base_delay × 2ⁿ⁻¹)]` ("full jitter", default `"25ms"`).
    pub base_delay: ConfigDuration,
    /// The cap of one backoff (default `"1s"`).
    pub max_delay: ConfigDuration,
    /// The longest server-requested wait (Cosmos DB's retry-after) that is
    /// honoured; a longer one ends the retries with the error (default `"5s"`).
    pub max_retry_after: ConfigDuration,
    /// Retry budget: every failed attempt takes one token, every success
    /// gives back `budget_ratio` tokens; while fewer than half of
    /// `budget_tokens` are left, nothing is retried (default 100).
    pub budget_tokens: u32,
    /// Tokens a success gives back (default 0.1: about one retry per ten successes).
    pub budget_ratio: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 3,
            base_delay: ConfigDuration(Duration::from_millis(25)),
            max_delay: ConfigDuration(Duration::from_secs(1)),
            max_retry_after: ConfigDuration(Duration::from_secs(5)),
            budget_tokens: 100,
            budget_ratio: 0.1,
        }
    }
}

/// `resilience.breaker`: when to stop sending calls to a failing store.
///
/// ```
/// let b = polyrouter::config::BreakerConfig::default();
/// assert_eq!((b.failure_rate, b.minimum_calls), (0.5, 20));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// `false` turns the breaker off (default `true`).
    pub enabled: bool,
    /// The share of failed calls in the window that opens the circuit (default 0.5).
    pub failure_rate: f64,
    /// Fewer calls than this in the window never open it (default 20).
    pub minimum_calls: u32,
    /// The sliding window the rate is measured over (default `"10s"`).
    pub window: ConfigDuration,
    /// How long the circuit stays open before probing (default `"5s"`).
    pub open_for: ConfigDuration,
    /// Probe calls let through when half-open; that many successes close
    /// the circuit, one failure opens it again (default 3).
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            enabled: true,
            failure_rate: 0.5,
            minimum_calls: 20,
            window: ConfigDuration(Duration::from_secs(10)),
            open_for: ConfigDuration(Duration::from_secs(5)),
            half_open_probes: 3,
        }
    }
}

/// `resilience.limit`: a bulkhead (calls in flight) and a rate limit; both
/// off by default (the drivers' connection pools already bound concurrency).
///
/// ```
/// let l = polyrouter::config::LimitConfig::default();
/// assert_eq!((l.max_concurrency, l.rate), (0, 0.0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitConfig {
    /// Calls in flight at once; `0` is no limit (default 0).
    pub max_concurrency: u32,
    /// Calls that may wait for a free slot; more are refused at once with
    /// [`Error::Rejected`](crate::Error::Rejected) (`limited`). `0` fails
    /// fast whenever every slot is taken (default 1000).
    pub max_queue: u32,
    /// The longest a call waits for a slot or a rate token before it is
    /// refused (default `"1s"`).
    pub queue_timeout: ConfigDuration,
    /// Calls per second; `0` is no rate limit (default 0).
    pub rate: f64,
    /// Calls that may go at once after an idle spell (default: one second's worth of `rate`).
    pub burst: u32,
}

impl Default for LimitConfig {
    fn default() -> Self {
        LimitConfig {
            max_concurrency: 0,
            max_queue: 1000,
            queue_timeout: ConfigDuration(Duration::from_secs(1)),
            rate: 0.0,
            burst: 0,
        }
    }
}

impl ResilienceConfig {
    /// Checks the values; on error, the key under `resilience` and what is wrong.
    ///
    /// ```
    /// let mut r = polyrouter::config::ResilienceConfig::default();
    /// r.retry.max_attempts = 0;
    /// assert_eq!(r.validate().unwrap_err().0, vec!["retry", "max_attempts"]);
    /// ```
    pub fn validate(&self) -> std::result::Result<(), (Vec<&'static str>, String)> {
        let fail = |keys: &[&'static str], msg: &str| Err((keys.to_vec(), msg.to_string()));
        let r = &self.retry;
        if !(1..=10).contains(&r.max_attempts) {
            return fail(
                &["retry", "max_attempts"],
                "must be between 1 (no retries) and 10",
            );
        }
        if r.max_attempts > 1 && r.base_delay.0.is_zero() {
            return fail(
                &["retry", "base_delay"],
                "must be greater than zero when retries are on; set `max_attempts = 1` to turn them off",
            );
        }
        if r.max_delay.0 < r.base_delay.0 {
            return fail(&["retry", "max_delay"], "must be at least `base_delay`");
        }
        if r.budget_tokens == 0 || r.budget_tokens > 1000 {
            return fail(&["retry", "budget_tokens"], "must be between 1 and 1000");
        }
        if !(r.budget_ratio > 0.0 && r.budget_ratio <= 1.0) {
            return fail(
                &["retry", "budget_ratio"],
                "must be greater than 0 and at most 1",
            );
        }
        let b = &self.breaker;
        if !(b.failure_rate > 0.0 && b.failure_rate <= 1.0) {
            return fail(
                &["breaker", "failure_rate"],
                "must be greater than 0 and at most 1 (0.5 opens at half the calls failing)",
            );
        }
        if b.minimum_calls == 0 {
            return fail(&["breaker", "minimum_calls"], "must be at least 1");
        }
        if b.window.0 < Duration::from_millis(10) {
            return fail(&["breaker", "window"], "must be at least 10ms");
        }
        if b.open_for.0.is_zero() {
            return fail(&["breaker", "open_for"], "must be greater than zero");
        }
        if b.half_open_probes == 0 {
            return fail(&["breaker", "half_open_probes"], "must be at least 1");
        }
        let l = &self.limit;
        if !(l.rate >= 0.0 && l.rate.is_finite()) {
            return fail(
                &["limit", "rate"],
                "must be a number of calls per second, 0 for no limit",
            );
        }
        if l.rate > 0.0 && l.rate < 0.001 {
            return fail(
                &["limit", "rate"],
                "must be at least 0.001 calls per second",
            );
        }
        Ok(())
    }
}
