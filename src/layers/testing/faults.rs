//! [`Faults`]: a store that can be made to fail or slow down on demand.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::layers::{Call, Layered, OpClass, Outcome, Policy};
use crate::{Error, Rejection, Result};

/// The [`Policy`] of [`Faults`]: the switches.
///
/// ```
/// let f = polyrouter::layers::testing::FaultSwitch::default();
/// f.set_down(true);
/// ```
#[derive(Debug, Default)]
pub struct FaultSwitch {
    down: AtomicBool,
    delay_us: AtomicU64,
    fail_next: AtomicU32,
    lose_next: AtomicU32,
    reject_next: AtomicU32,
    reject_wait_us: AtomicU64,
}

impl FaultSwitch {
    /// Makes every call fail (`true`) or pass through again (`false`).
    ///
    /// ```
    /// polyrouter::layers::testing::FaultSwitch::default().set_down(false);
    /// ```
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Makes every call wait `delay` before it runs (zero: no delay).
    ///
    /// ```
    /// polyrouter::layers::testing::FaultSwitch::default().set_delay(std::time::Duration::ZERO);
    /// ```
    pub fn set_delay(&self, delay: Duration) {
        self.delay_us
            .store(delay.as_micros() as u64, Ordering::SeqCst);
    }

    /// Makes the next `calls` calls fail with [`Error::Unavailable`]
    /// before they reach the store (nothing is applied).
    ///
    /// ```
    /// polyrouter::layers::testing::FaultSwitch::default().fail_next(2);
    /// ```
    pub fn fail_next(&self, calls: u32) {
        self.fail_next.store(calls, Ordering::SeqCst);
    }

    /// Lets the next `calls` calls reach the store and then fails them
    /// with [`Error::Unavailable`], as a connection lost after the server
    /// applied a write but before its reply arrived.
    ///
    /// ```
    /// polyrouter::layers::testing::FaultSwitch::default().lose_next(1);
    /// ```
    pub fn lose_next(&self, calls: u32) {
        self.lose_next.store(calls, Ordering::SeqCst);
    }

    /// Makes the next `calls` calls fail with [`Error::Rejected`]
    /// (`throttled`, asking to wait `retry_after`) before they reach the
    /// store, as a throttling server does.
    ///
    /// ```
    /// polyrouter::layers::testing::FaultSwitch::default().reject_next(1, None);
    /// ```
    pub fn reject_next(&self, calls: u32, retry_after: Option<Duration>) {
        self.reject_wait_us.store(
            retry_after.map_or(u64::MAX, |d| d.as_micros() as u64),
            Ordering::SeqCst,
        );
        self.reject_next.store(calls, Ordering::SeqCst);
    }

    fn take(counter: &AtomicU32) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

impl Policy for FaultSwitch {
    async fn around<'a, T, F, Fut>(&'a self, call: &'a Call<'a>, run: F) -> Result<T>
    where
        T: Outcome + 'a,
        F: Fn() -> Fut + Send + Sync + 'a,
        Fut: Future<Output = Result<T>> + Send + 'a,
    {
        // Preparing storage is never faulted: tests break a store after start-up.
        if call.class == OpClass::Admin {
            return run().await;
        }
        let us = self.delay_us.load(Ordering::SeqCst);
        if us > 0 {
            tokio::time::sleep(Duration::from_micros(us)).await;
        }
        let entity = call.entity();
        if self.down.load(Ordering::SeqCst) || Self::take(&self.fail_next) {
            return Err(Error::unavailable(
                call.store,
                &entity,
                "the store is down (fault injected by layers::testing::Faults)",
            ));
        }
        if Self::take(&self.reject_next) {
            let error = Error::rejected(
                call.store,
                &entity,
                Rejection::Throttled,
                "the store is throttling (fault injected by layers::testing::Faults)",
            );
            return Err(match self.reject_wait_us.load(Ordering::SeqCst) {
                u64::MAX => error,
                us => error.with_retry_after(Duration::from_micros(us)),
            });
        }
        let out = run().await;
        if Self::take(&self.lose_next) {
            return Err(Error::unavailable(
                call.store,
                &entity,
                "the connection was lost before the reply arrived (fault injected by layers::testing::Faults)",
            ));
        }
        out
    }
}

/// Wraps a store; [`set_down`](FaultSwitch::set_down) makes every call
/// fail with the transient [`Error::Unavailable`],
/// [`set_delay`](FaultSwitch::set_delay) makes every call wait first —
/// calls of every store trait (records, key-value, graph, blob, search,
/// time series; preparing storage excepted). For tests and chaos drills.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use polyrouter::{backends::memory::MemoryStore, layers::testing::Faults, Store};
/// let store = Faults::new(MemoryStore::new("m"));
/// store.set_down(true);
/// assert!(store.ping().await.unwrap_err().is_transient());
/// store.set_down(false);
/// store.ping().await.unwrap();
/// # });
/// ```
pub type Faults<S> = Layered<S, FaultSwitch>;

impl<S> Layered<S, FaultSwitch> {
    /// Wraps `inner`, healthy and without delay.
    ///
    /// ```
    /// let _f = polyrouter::layers::testing::Faults::new(polyrouter::backends::memory::MemoryStore::new("m"));
    /// ```
    pub fn new(inner: S) -> Self {
        Layered::wrap(inner, FaultSwitch::default())
    }

    /// See [`FaultSwitch::set_down`].
    ///
    /// ```
    /// polyrouter::layers::testing::Faults::new(polyrouter::backends::memory::MemoryStore::new("m")).set_down(true);
    /// ```
    pub fn set_down(&self, down: bool) {
        self.policy().set_down(down)
    }

    /// See [`FaultSwitch::set_delay`].
    ///
    /// ```
    /// let f = polyrouter::layers::testing::Faults::new(polyrouter::backends::memory::MemoryStore::new("m"));
    /// f.set_delay(std::time::Duration::from_millis(5));
    /// ```
    pub fn set_delay(&self, delay: Duration) {
        self.policy().set_delay(delay)
    }

    /// See [`FaultSwitch::fail_next`].
    ///
    /// ```
    /// polyrouter::layers::testing::Faults::new(polyrouter::backends::memory::MemoryStore::new("m")).fail_next(1);
    /// ```
    pub fn fail_next(&self, calls: u32) {
        self.policy().fail_next(calls)
    }

    /// See [`FaultSwitch::reject_next`].
    ///
    /// ```
    /// polyrouter::layers::testing::Faults::new(polyrouter::backends::memory::MemoryStore::new("m")).reject_next(1, None);
    /// ```
    pub fn reject_next(&self, calls: u32, retry_after: Option<Duration>) {
        self.policy().reject_next(calls, retry_after)
    }

    /// See [`FaultSwitch::lose_next`].
    ///
    /// ```
    /// polyrouter::layers::testing::Faults::new(polyrouter::backends::memory::MemoryStore::new("m")).lose_next(1);
    /// ```
    pub fn lose_next(&self, calls: u32) {
        self.policy().lose_next(calls)
    }
}
