//! [`Timeout`]: a deadline per attempt, by class of operation.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Sleep;

use super::call::{Call, OpClass};
use super::layered::{Outcome, Policy};
use crate::config::{ConfigDuration, TimeoutConfig};
use crate::{Error, Result};

/// Abandons an attempt that takes longer than its class's timeout
/// ([`TimeoutConfig`]) with [`Error::Timeout`], which names the store, the
/// entity, the operation and the timeout. A zero timeout means none. The
/// clock starts when the attempt first waits (for a connection, an
/// answer): an attempt that completes without waiting, as an in-process
/// store's does, sets no timer at all.
///
/// Dropping the attempt's future cancels it on the client side; a write the
/// server had already received may still be applied (the error says so).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::time::Duration;
/// use polyrouter::layers::{testing::Faults, Layered, Timeout};
/// use polyrouter::{backends::memory::MemoryStore, Error, Store};
/// let slow = Faults::new(MemoryStore::new("m"));
/// slow.set_delay(Duration::from_secs(60));
/// let store = Layered::wrap(slow, Timeout::new().read(Duration::from_millis(20)));
/// let e = store.ping().await.unwrap_err();
/// assert!(matches!(e, Error::Timeout { .. }), "{e}");
/// # });
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Timeout {
    config: TimeoutConfig,
}

impl Timeout {
    /// The default timeouts ([`TimeoutConfig::default`]).
    ///
    /// ```
    /// let t = polyrouter::layers::Timeout::new();
    /// assert_eq!(t.limit(polyrouter::layers::OpClass::Read), Some(std::time::Duration::from_secs(5)));
    /// ```
    pub fn new() -> Self {
        Timeout::default()
    }

    /// Timeouts from `[stores.NAME.resilience.timeout]`.
    ///
    /// ```
    /// let t = polyrouter::layers::Timeout::from_config(Default::default());
    /// assert!(t.limit(polyrouter::layers::OpClass::Admin).is_some());
    /// ```
    pub fn from_config(config: TimeoutConfig) -> Self {
        Timeout { config }
    }

    /// Sets the point-read timeout (zero: none).
    ///
    /// ```
    /// let t = polyrouter::layers::Timeout::new().read(std::time::Duration::ZERO);
    /// assert_eq!(t.limit(polyrouter::layers::OpClass::Read), None);
    /// ```
    pub fn read(mut self, limit: Duration) -> Self {
        self.config.read = ConfigDuration(limit);
        self
    }

    /// Sets the write timeout (zero: none).
    ///
    /// ```
    /// let _t = polyrouter::layers::Timeout::new().write(std::time::Duration::from_secs(2));
    /// ```
    pub fn write(mut self, limit: Duration) -> Self {
        self.config.write = ConfigDuration(limit);
        self
    }

    /// Sets the query timeout (zero: none).
    ///
    /// ```
    /// let _t = polyrouter::layers::Timeout::new().query(std::time::Duration::from_secs(10));
    /// ```
    pub fn query(mut self, limit: Duration) -> Self {
        self.config.query = ConfigDuration(limit);
        self
    }

    /// Sets the bulk timeout (zero: none).
    ///
    /// ```
    /// let _t = polyrouter::layers::Timeout::new().bulk(std::time::Duration::from_secs(60));
    /// ```
    pub fn bulk(mut self, limit: Duration) -> Self {
        self.config.bulk = ConfigDuration(limit);
        self
    }

    /// Sets the admin timeout (zero: none).
    ///
    /// ```
    /// let _t = polyrouter::layers::Timeout::new().admin(std::time::Duration::from_secs(600));
    /// ```
    pub fn admin(mut self, limit: Duration) -> Self {
        self.config.admin = ConfigDuration(limit);
        self
    }

    /// The timeout of a class, `None` when off.
    ///
    /// ```
    /// use polyrouter::layers::{OpClass, Timeout};
    /// assert_eq!(Timeout::new().limit(OpClass::Query), Some(std::time::Duration::from_secs(30)));
    /// ```
    pub fn limit(&self, class: OpClass) -> Option<Duration> {
        let c = &self.config;
        let d = match class {
            OpClass::Read => c.read,
            OpClass::Write => c.write,
            OpClass::Query => c.query,
            OpClass::Bulk => c.bulk,
            OpClass::Admin => c.admin,
        };
        Some(d.0).filter(|d| !d.is_zero())
    }
}

impl Policy for Timeout {
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
        let limit = self.limit(call.class);
        async move {
            let Some(limit) = limit else {
                return run().await;
            };
            // The timer starts when the attempt first waits: an attempt
            // that is ready at once (an in-process store) needs none, and
            // an in-process call cannot be interrupted before then anyway.
            let mut attempt = std::pin::pin!(run());
            let mut timer: Option<Pin<Box<Sleep>>> = None;
            std::future::poll_fn(|cx| {
                if let Poll::Ready(out) = attempt.as_mut().poll(cx) {
                    return Poll::Ready(out);
                }
                let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(Error::timeout(
                        call.store,
                        &call.entity(),
                        call.operation.name(),
                        limit,
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await
        }
    }
}
