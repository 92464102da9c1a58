//! [`Limit`]: a bulkhead (calls in flight) and a rate limit per store.

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::call::Call;
use super::layered::{Outcome, Policy};
use crate::config::{ConfigDuration, LimitConfig};
use crate::{Error, Rejection, Result};

/// Bounds what one store is asked at once, so a slow store cannot take
/// every task of the process with it (a bulkhead) and a throttled service
/// is not sent more than it accepts (a rate limit).
///
/// **Concurrency**: at most `max_concurrency` calls run at once. A call
/// that finds every slot taken waits in a queue of at most `max_queue`
/// callers, each for at most `queue_timeout`; a call that finds the queue
/// full, or waits too long, fails at once with [`Error::Rejected`]
/// (`limited`) — it was never sent. **Rate**: at most `rate` calls start
/// per second, with bursts of `burst` (the GCRA of the `governor` crate);
/// a call waits for its turn up to `queue_timeout`, else it is refused the
/// same way.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::time::Duration;
/// use polyrouter::layers::{testing::Faults, Layered, Limit};
/// use polyrouter::{backends::memory::MemoryStore, Error, Rejection, Store};
/// let slow = Faults::new(MemoryStore::new("m"));
/// slow.set_delay(Duration::from_millis(200));
/// let store = Layered::wrap(slow, Limit::new().max_concurrency(1).max_queue(0));
/// let (first, second) = tokio::join!(store.ping(), async {
///     tokio::time::sleep(Duration::from_millis(20)).await;
///     store.ping().await
/// });
/// first.unwrap();
/// assert!(matches!(second, Err(Error::Rejected { reason: Rejection::Limited, .. })));
/// # });
/// ```
#[derive(Debug)]
pub struct Limit {
    config: LimitConfig,
    slots: Option<Semaphore>,
    waiting: AtomicU32,
    rate: Option<DefaultDirectRateLimiter>,
}

impl Default for Limit {
    fn default() -> Self {
        Limit::from_config(LimitConfig::default())
    }
}

impl Limit {
    /// No limits yet ([`LimitConfig::default`]).
    ///
    /// ```
    /// assert!(!polyrouter::layers::Limit::new().is_active());
    /// ```
    pub fn new() -> Self {
        Limit::default()
    }

    /// The limits of `[stores.NAME.resilience.limit]`.
    ///
    /// ```
    /// let l = polyrouter::layers::Limit::from_config(polyrouter::config::LimitConfig { max_concurrency: 8, ..Default::default() });
    /// assert!(l.is_active());
    /// ```
    pub fn from_config(config: LimitConfig) -> Self {
        let slots =
            (config.max_concurrency > 0).then(|| Semaphore::new(config.max_concurrency as usize));
        let rate = (config.rate > 0.0).then(|| {
            let burst = if config.burst > 0 {
                config.burst
            } else {
                config.rate.ceil() as u32
            };
            let period = Duration::from_secs_f64(1.0 / config.rate).max(Duration::from_nanos(1));
            let quota = Quota::with_period(period)
                .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
                .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
            RateLimiter::direct(quota)
        });
        Limit {
            config,
            slots,
            waiting: AtomicU32::new(0),
            rate,
        }
    }

    /// Sets the calls in flight at once (0: no limit).
    ///
    /// ```
    /// assert!(polyrouter::layers::Limit::new().max_concurrency(4).is_active());
    /// ```
    pub fn max_concurrency(mut self, calls: u32) -> Self {
        self.config.max_concurrency = calls;
        Limit::from_config(self.config)
    }

    /// Sets the callers that may wait for a slot (0: fail fast).
    ///
    /// ```
    /// let _l = polyrouter::layers::Limit::new().max_concurrency(4).max_queue(0);
    /// ```
    pub fn max_queue(mut self, callers: u32) -> Self {
        self.config.max_queue = callers;
        self
    }

    /// Sets the longest wait for a slot or a rate token.
    ///
    /// ```
    /// let _l = polyrouter::layers::Limit::new().queue_timeout(std::time::Duration::from_millis(50));
    /// ```
    pub fn queue_timeout(mut self, wait: Duration) -> Self {
        self.config.queue_timeout = ConfigDuration(wait);
        self
    }

    /// Sets a rate limit of `per_second` calls, in bursts of up to `burst`.
    ///
    /// ```
    /// assert!(polyrouter::layers::Limit::new().rate(100.0, 10).is_active());
    /// ```
    pub fn rate(mut self, per_second: f64, burst: u32) -> Self {
        self.config.rate = per_second.max(0.0);
        self.config.burst = burst;
        Limit::from_config(self.config)
    }

    /// Whether any limit is set.
    ///
    /// ```
    /// assert!(!polyrouter::layers::Limit::new().is_active());
    /// ```
    pub fn is_active(&self) -> bool {
        self.slots.is_some() || self.rate.is_some()
    }

    /// Calls waiting for a slot now.
    ///
    /// ```
    /// assert_eq!(polyrouter::layers::Limit::new().waiting(), 0);
    /// ```
    pub fn waiting(&self) -> u32 {
        self.waiting.load(Ordering::Relaxed)
    }

    fn refuse(&self, call: &Call<'_>, why: &str) -> Error {
        metrics::counter!("polyrouter_store_limited_total", "store" => call.store.to_string())
            .increment(1);
        Error::rejected(
            call.store,
            &call.entity(),
            Rejection::Limited,
            format!(
                "{why}; the call was not sent — retry later, or raise `resilience.limit` of store `{}`",
                call.store
            ),
        )
    }
}

impl Policy for Limit {
    async fn around<'a, T, F, Fut>(&'a self, call: &'a Call<'a>, run: F) -> Result<T>
    where
        T: Outcome + 'a,
        F: Fn() -> Fut + Send + Sync + 'a,
        Fut: Future<Output = Result<T>> + Send + 'a,
    {
        let _permit = self.admit(call).await?;
        run().await
    }
}

impl Limit {
    /// A slot (when the bulkhead is on) and a turn (when the rate limit
    /// is): awaited before the call, so its state is not kept in the
    /// call's future while the call runs.
    async fn admit(&self, call: &Call<'_>) -> Result<Option<SemaphorePermit<'_>>> {
        let wait = self.config.queue_timeout.0;
        let permit = match &self.slots {
            None => None,
            Some(slots) => match slots.try_acquire() {
                Ok(p) => Some(p),
                Err(_) => {
                    let queued = self.waiting.fetch_add(1, Ordering::AcqRel);
                    let got = if queued >= self.config.max_queue {
                        None
                    } else {
                        // Boxed: the rare path should not grow every call's future.
                        Box::pin(tokio::time::timeout(wait, slots.acquire()))
                            .await
                            .ok()
                            .and_then(|p| p.ok())
                    };
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    match got {
                        Some(p) => Some(p),
                        None => {
                            return Err(self.refuse(
                                call,
                                &format!(
                                    "all {} call slots are busy and the queue is full or the wait exceeded {wait:?}",
                                    self.config.max_concurrency
                                ),
                            ));
                        }
                    }
                }
            },
        };
        if let Some(rate) = &self.rate {
            if rate.check().is_err()
                && Box::pin(tokio::time::timeout(wait, rate.until_ready()))
                    .await
                    .is_err()
            {
                return Err(self.refuse(
                    call,
                    &format!(
                        "the rate limit of {} calls per second left no turn within {wait:?}",
                        self.config.rate
                    ),
                ));
            }
        }
        Ok(permit)
    }
}
