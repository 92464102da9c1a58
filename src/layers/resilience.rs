//! [`Resilience`]: the stack the router wraps every configured store in.

use std::future::Future;
use std::sync::Arc;

use super::breaker::Breaker;
use super::call::Call;
use super::layered::{Layered, Outcome, Policy};
use super::limit::Limit;
use super::observe::Observe;
use super::retry::Retry;
use super::timeout::Timeout;
use crate::config::ResilienceConfig;
use crate::{Result, Store};

/// The full stack for one store, outermost first:
///
/// 1. [`Observe`] — one span and one set of metrics per call, whatever
///    happens below (attempts are recorded on it);
/// 2. [`Retry`] — tries again what may be tried again, under the store's
///    budget;
/// 3. [`Breaker`] — fails at once while the store is failing; sees every
///    attempt;
/// 4. [`Limit`] — bulkhead and rate limit, so a refused call is never sent
///    and never counted against the store;
/// 5. [`Timeout`] — per attempt, by class of operation.
///
/// The router builds one per `[stores.NAME]` from its `resilience` table
/// (the defaults when absent) and wraps the opened store in it; a store
/// built in code is wrapped with [`Resilience::layer`].
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use polyrouter::layers::{Limit, Resilience, Retry};
/// use polyrouter::{backends::memory::MemoryStore, Router, Store};
/// let store = Resilience::new()
///     .retry(Retry::new().max_attempts(5))
///     .limit(Limit::new().max_concurrency(64))
///     .layer(MemoryStore::new("main"));
/// let router = Router::builder().store("main", Arc::new(store)).build().await.unwrap();
/// router.store("main").unwrap().ping().await.unwrap();
/// # });
/// ```
#[derive(Debug)]
pub struct Resilience {
    stack: (
        Observe,
        Option<Retry>,
        Option<Breaker>,
        Option<Limit>,
        Option<Timeout>,
    ),
}

impl Default for Resilience {
    fn default() -> Self {
        Resilience::from_config(&ResilienceConfig::default())
    }
}

impl Resilience {
    /// The default stack ([`ResilienceConfig::default`]).
    ///
    /// ```
    /// assert!(polyrouter::layers::Resilience::new().breaker_ref().is_some());
    /// ```
    pub fn new() -> Self {
        Resilience::default()
    }

    /// The stack `[stores.NAME.resilience]` describes.
    ///
    /// ```
    /// let mut cfg = polyrouter::config::ResilienceConfig::default();
    /// cfg.breaker.enabled = false;
    /// cfg.retry.max_attempts = 1;
    /// let r = polyrouter::layers::Resilience::from_config(&cfg);
    /// assert!(r.breaker_ref().is_none() && r.retry_ref().is_none());
    /// ```
    pub fn from_config(config: &ResilienceConfig) -> Self {
        let limit = Limit::from_config(config.limit);
        Resilience {
            stack: (
                Observe::new().trace_keys(config.trace_keys),
                (config.retry.max_attempts > 1).then(|| Retry::from_config(config.retry)),
                config
                    .breaker
                    .enabled
                    .then(|| Breaker::from_config(config.breaker)),
                limit.is_active().then_some(limit),
                Some(Timeout::from_config(config.timeout)),
            ),
        }
    }

    /// Replaces the retry policy.
    ///
    /// ```
    /// let r = polyrouter::layers::Resilience::new().retry(polyrouter::layers::Retry::new().max_attempts(2));
    /// assert_eq!(r.retry_ref().unwrap().config().max_attempts, 2);
    /// ```
    pub fn retry(mut self, retry: Retry) -> Self {
        self.stack.1 = Some(retry);
        self
    }

    /// Sends every call once.
    ///
    /// ```
    /// assert!(polyrouter::layers::Resilience::new().without_retry().retry_ref().is_none());
    /// ```
    pub fn without_retry(mut self) -> Self {
        self.stack.1 = None;
        self
    }

    /// Replaces the circuit breaker.
    ///
    /// ```
    /// let _r = polyrouter::layers::Resilience::new().breaker(polyrouter::layers::Breaker::new().minimum_calls(5));
    /// ```
    pub fn breaker(mut self, breaker: Breaker) -> Self {
        self.stack.2 = Some(breaker);
        self
    }

    /// Turns the circuit breaker off.
    ///
    /// ```
    /// assert!(polyrouter::layers::Resilience::new().without_breaker().breaker_ref().is_none());
    /// ```
    pub fn without_breaker(mut self) -> Self {
        self.stack.2 = None;
        self
    }

    /// Sets the concurrency and rate limits.
    ///
    /// ```
    /// let _r = polyrouter::layers::Resilience::new().limit(polyrouter::layers::Limit::new().max_concurrency(8));
    /// ```
    pub fn limit(mut self, limit: Limit) -> Self {
        self.stack.3 = Some(limit);
        self
    }

    /// Replaces the timeouts.
    ///
    /// ```
    /// let _r = polyrouter::layers::Resilience::new().timeout(polyrouter::layers::Timeout::new().read(std::time::Duration::from_secs(1)));
    /// ```
    pub fn timeout(mut self, timeout: Timeout) -> Self {
        self.stack.4 = Some(timeout);
        self
    }

    /// Replaces the span and metrics layer.
    ///
    /// ```
    /// let _r = polyrouter::layers::Resilience::new().observe(polyrouter::layers::Observe::new().trace_keys(true));
    /// ```
    pub fn observe(mut self, observe: Observe) -> Self {
        self.stack.0 = observe;
        self
    }

    /// The retry layer, if on.
    ///
    /// ```
    /// assert!(polyrouter::layers::Resilience::new().retry_ref().is_some());
    /// ```
    pub fn retry_ref(&self) -> Option<&Retry> {
        self.stack.1.as_ref()
    }

    /// The circuit breaker, if on.
    ///
    /// ```
    /// use polyrouter::layers::{BreakerState, Resilience};
    /// assert_eq!(Resilience::new().breaker_ref().unwrap().state(), BreakerState::Closed);
    /// ```
    pub fn breaker_ref(&self) -> Option<&Breaker> {
        self.stack.2.as_ref()
    }

    /// The limits, if any is set.
    ///
    /// ```
    /// assert!(polyrouter::layers::Resilience::new().limit_ref().is_none());
    /// ```
    pub fn limit_ref(&self) -> Option<&Limit> {
        self.stack.3.as_ref()
    }

    /// Wraps `store`, taking the spans' server address from its location.
    ///
    /// ```
    /// use polyrouter::{backends::memory::MemoryStore, layers::Resilience, Store};
    /// let s = Resilience::new().layer(MemoryStore::new("m"));
    /// assert_eq!(s.name(), "m");
    /// ```
    pub fn layer<S: Store>(mut self, store: S) -> Layered<S, Resilience> {
        let observe = std::mem::take(&mut self.stack.0);
        self.stack.0 = observe.location(&store.location());
        Layered::wrap(store, self)
    }
}

impl Resilience {
    /// What the router does with every store it opens: wraps it in the
    /// stack `config` describes, or returns it bare when `enabled = false`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use polyrouter::{backends::memory::MemoryStore, config::ResilienceConfig, layers::Resilience, Store};
    /// let s = Resilience::configured(&ResilienceConfig::default(), Arc::new(MemoryStore::new("m")));
    /// assert_eq!(s.kind(), "memory");
    /// ```
    pub fn configured(config: &ResilienceConfig, store: Arc<dyn Store>) -> Arc<dyn Store> {
        if config.enabled {
            Arc::new(Resilience::from_config(config).layer(store))
        } else {
            store
        }
    }
}

impl Policy for Resilience {
    fn around<'a, T, F, Fut>(
        &'a self,
        call: &'a Call<'a>,
        run: F,
    ) -> impl Future<Output = Result<T>> + Send + 'a
    where
        T: Outcome + 'a,
        F: Fn() -> Fut + Send + Sync + 'a,
        Fut: Future<Output = Result<T>> + Send + 'a,
    {
        self.stack.around(call, run)
    }
}
