//! [`Retry`]: tries transient failures again, only where that is safe,
//! with exponential backoff and full jitter, under a per-store budget.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use super::call::{Call, Idempotency};
use super::layered::{Outcome, Policy};
use crate::config::{ConfigDuration, RetryConfig};
use crate::{Error, Result};

/// Whether a call that failed with `error` may be sent again — the one
/// rule every retry in polyrouter follows (the layer, and the sync and
/// saga code that reuse it):
///
/// - never a non-transient error (not found, conflict, bad input, a
///   driver error the store answered with), and never an open circuit
///   (failing fast is the point of the breaker);
/// - after [`Error::Rejected`] (the store refused it and applied nothing),
///   any call but a one-shot streamed upload;
/// - after [`Error::Unavailable`] or [`Error::Timeout`] (a write may or may
///   not have been applied), only [`Idempotency::Idempotent`] calls.
///
/// ```
/// use polyrouter::layers::{retryable, Idempotency};
/// use polyrouter::{Error, Rejection};
/// let reset = Error::unavailable("db", "user", "connection reset");
/// assert!(retryable(&reset, Idempotency::Idempotent));
/// assert!(!retryable(&reset, Idempotency::NotIdempotent));
/// let deadlock = Error::rejected("db", "user", Rejection::Aborted, "deadlock");
/// assert!(retryable(&deadlock, Idempotency::NotIdempotent));
/// assert!(!retryable(&Error::invalid_input("db", "user", "bad key"), Idempotency::Idempotent));
/// ```
pub fn retryable(error: &Error, idempotency: Idempotency) -> bool {
    match (error, idempotency) {
        (_, Idempotency::OneShot) | (Error::CircuitOpen { .. }, _) => false,
        (Error::Rejected { .. }, _) => true,
        (e, Idempotency::Idempotent) => e.is_transient(),
        (_, Idempotency::NotIdempotent) => false,
    }
}

/// A store's retry budget, shared by all its calls, so that retries cannot
/// multiply an outage (gRPC's retry throttling): it starts full with
/// `tokens`; every failed attempt with a transient error takes one token,
/// every success gives `ratio` back (up to `tokens`); while at most half
/// the tokens are left, nothing is retried.
///
/// ```
/// let b = polyrouter::layers::RetryBudget::new(10, 0.5);
/// assert!(b.allows_retry());
/// for _ in 0..5 { b.failed(); }
/// assert!(!b.allows_retry(), "half the tokens are gone");
/// b.succeeded();
/// b.succeeded();
/// assert!(b.allows_retry());
/// ```
#[derive(Debug)]
pub struct RetryBudget {
    /// Tokens × 1000.
    milli: AtomicI64,
    max: i64,
    ratio: i64,
}

impl RetryBudget {
    /// A full budget of `tokens`, earning `ratio` per success.
    ///
    /// ```
    /// assert!(polyrouter::layers::RetryBudget::new(100, 0.1).allows_retry());
    /// ```
    pub fn new(tokens: u32, ratio: f64) -> Self {
        let max = i64::from(tokens.max(1)) * 1000;
        RetryBudget {
            milli: AtomicI64::new(max),
            max,
            ratio: ((ratio * 1000.0).round() as i64).max(1),
        }
    }

    /// Records a success.
    ///
    /// ```
    /// polyrouter::layers::RetryBudget::new(1, 1.0).succeeded();
    /// ```
    pub fn succeeded(&self) {
        if self.milli.load(Ordering::Relaxed) < self.max {
            let _ = self
                .milli
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                    Some((t + self.ratio).min(self.max))
                });
        }
    }

    /// Records a failed attempt.
    ///
    /// ```
    /// polyrouter::layers::RetryBudget::new(1, 1.0).failed();
    /// ```
    pub fn failed(&self) {
        let _ = self
            .milli
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some((t - 1000).max(0))
            });
    }

    /// Whether a retry may be sent now.
    ///
    /// ```
    /// assert!(polyrouter::layers::RetryBudget::new(4, 0.1).allows_retry());
    /// ```
    pub fn allows_retry(&self) -> bool {
        self.milli.load(Ordering::Relaxed) > self.max / 2
    }

    /// The tokens left.
    ///
    /// ```
    /// assert_eq!(polyrouter::layers::RetryBudget::new(4, 0.1).tokens(), 4.0);
    /// ```
    pub fn tokens(&self) -> f64 {
        self.milli.load(Ordering::Relaxed) as f64 / 1000.0
    }
}

/// Tries a failed call again when [`retryable`] says it may: at most
/// `max_attempts` attempts, waiting a random time in
/// `[0, min(max_delay, base_delay × 2ⁿ⁻¹)]` before attempt `n + 1`
/// ("full jitter"), or at least the wait the store asked for
/// ([`Error::retry_after`]) — unless that is longer than
/// `max_retry_after`, which ends the retries. A [`RetryBudget`] shared by
/// the store's calls stops retries while many attempts fail. Each retry is
/// counted in `polyrouter_store_retries_total` and the call's span gets the
/// number of attempts.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::time::Duration;
/// use polyrouter::layers::{testing::Faults, Layered, Retry};
/// use polyrouter::{backends::memory::MemoryStore, Store};
/// let flaky = Faults::new(MemoryStore::new("m"));
/// flaky.fail_next(2); // the next two calls fail with `Unavailable`
/// let store = Layered::wrap(flaky, Retry::new().max_attempts(3).base_delay(Duration::from_millis(1)));
/// store.ping().await.unwrap(); // a read: retried twice, then answered
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct Retry {
    config: RetryConfig,
    budget: Arc<RetryBudget>,
}

impl Default for Retry {
    fn default() -> Self {
        Retry::from_config(RetryConfig::default())
    }
}

impl Retry {
    /// The default policy ([`RetryConfig::default`]).
    ///
    /// ```
    /// assert_eq!(polyrouter::layers::Retry::new().config().max_attempts, 3);
    /// ```
    pub fn new() -> Self {
        Retry::default()
    }

    /// The policy of `[stores.NAME.resilience.retry]`, with a fresh budget.
    ///
    /// ```
    /// let r = polyrouter::layers::Retry::from_config(Default::default());
    /// assert!(r.budget().allows_retry());
    /// ```
    pub fn from_config(config: RetryConfig) -> Self {
        Retry {
            budget: Arc::new(RetryBudget::new(config.budget_tokens, config.budget_ratio)),
            config,
        }
    }

    /// Sets the attempts in all (1: no retries).
    ///
    /// ```
    /// assert_eq!(polyrouter::layers::Retry::new().max_attempts(5).config().max_attempts, 5);
    /// ```
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.config.max_attempts = attempts.max(1);
        self
    }

    /// Sets the first backoff's upper bound.
    ///
    /// ```
    /// let _r = polyrouter::layers::Retry::new().base_delay(std::time::Duration::from_millis(10));
    /// ```
    pub fn base_delay(mut self, delay: Duration) -> Self {
        self.config.base_delay = ConfigDuration(delay);
        self
    }

    /// Sets the cap of one backoff.
    ///
    /// ```
    /// let _r = polyrouter::layers::Retry::new().max_delay(std::time::Duration::from_millis(500));
    /// ```
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.config.max_delay = ConfigDuration(delay);
        self
    }

    /// Sets the longest server-requested wait that is honoured.
    ///
    /// ```
    /// let _r = polyrouter::layers::Retry::new().max_retry_after(std::time::Duration::from_secs(1));
    /// ```
    pub fn max_retry_after(mut self, wait: Duration) -> Self {
        self.config.max_retry_after = ConfigDuration(wait);
        self
    }

    /// Uses a fresh budget of `tokens`, earning `ratio` per success.
    ///
    /// ```
    /// let r = polyrouter::layers::Retry::new().with_budget(10, 0.2);
    /// assert_eq!(r.budget().tokens(), 10.0);
    /// ```
    pub fn with_budget(mut self, tokens: u32, ratio: f64) -> Self {
        self.config.budget_tokens = tokens;
        self.config.budget_ratio = ratio;
        self.budget = Arc::new(RetryBudget::new(tokens, ratio));
        self
    }

    /// The settings.
    ///
    /// ```
    /// assert_eq!(polyrouter::layers::Retry::new().config().budget_tokens, 100);
    /// ```
    pub fn config(&self) -> &RetryConfig {
        &self.config
    }

    /// The shared budget.
    ///
    /// ```
    /// assert!(polyrouter::layers::Retry::new().budget().allows_retry());
    /// ```
    pub fn budget(&self) -> &RetryBudget {
        &self.budget
    }

    /// The random wait before attempt `attempt + 1`: uniform in
    /// `[0, min(max_delay, base_delay × 2^(attempt − 1))]`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let r = polyrouter::layers::Retry::new().base_delay(Duration::from_millis(10)).max_delay(Duration::from_millis(30));
    /// for _ in 0..100 {
    ///     assert!(r.backoff(1) <= Duration::from_millis(10));
    ///     assert!(r.backoff(9) <= Duration::from_millis(30));
    /// }
    /// ```
    pub fn backoff(&self, attempt: u32) -> Duration {
        let base = self.config.base_delay.0;
        let ceiling = base
            .checked_mul(1u32 << attempt.saturating_sub(1).min(20))
            .unwrap_or(Duration::MAX)
            .min(self.config.max_delay.0);
        ceiling.mul_f64(fastrand::f64())
    }
}

/// Adds "after N attempts" to the message of an error that has one.
fn after_attempts(mut error: Error, attempts: u32) -> Error {
    if attempts > 1 {
        if let Error::Unavailable { message, .. } | Error::Rejected { message, .. } = &mut error {
            message.push_str(&format!(" (after {attempts} attempts)"));
        }
    }
    error
}

impl Policy for Retry {
    async fn around<'a, T, F, Fut>(&'a self, call: &'a Call<'a>, run: F) -> Result<T>
    where
        T: Outcome + 'a,
        F: Fn() -> Fut + Send + Sync + 'a,
        Fut: Future<Output = Result<T>> + Send + 'a,
    {
        let mut attempt = 1u32;
        loop {
            let error = match run().await {
                Ok(v) => {
                    self.budget.succeeded();
                    return Ok(v);
                }
                Err(e) => e,
            };
            if !error.is_transient() {
                return Err(error);
            }
            self.budget.failed();
            if attempt >= self.config.max_attempts || !retryable(&error, call.idempotency) {
                return Err(after_attempts(error, attempt));
            }
            if !self.budget.allows_retry() {
                metrics::counter!("polyrouter_store_retries_denied_total", "store" => call.store.to_string())
                    .increment(1);
                return Err(after_attempts(error, attempt));
            }
            let mut wait = self.backoff(attempt);
            if let Some(asked) = error.retry_after() {
                if asked > self.config.max_retry_after.0 {
                    return Err(after_attempts(error, attempt));
                }
                wait = wait.max(asked);
            }
            metrics::counter!(
                "polyrouter_store_retries_total",
                "store" => call.store.to_string(),
                "operation" => call.operation.name(),
                "error" => error.kind_name()
            )
            .increment(1);
            tracing::debug!(
                store = call.store,
                operation = call.operation.name(),
                attempt,
                wait_ms = wait.as_millis() as u64,
                error = %error,
                "retrying a store call"
            );
            // Not kept across the wait: every call's future would grow by it.
            drop(error);
            tokio::time::sleep(wait).await;
            attempt += 1;
            tracing::Span::current().record("polyrouter.attempts", attempt);
        }
    }
}
