//! [`Breaker`]: a circuit breaker per store.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::call::Call;
use super::layered::{Outcome, Policy};
use crate::config::{BreakerConfig, ConfigDuration};
use crate::{Error, Rejection, Result};

/// Buckets of the sliding window.
const BUCKETS: usize = 10;

/// What a [`Breaker`] does now.
///
/// ```
/// use polyrouter::layers::{Breaker, BreakerState};
/// assert_eq!(Breaker::new().state(), BreakerState::Closed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls pass; failures are counted.
    Closed,
    /// Calls fail at once with [`Error::CircuitOpen`]; probing starts after `retry_in`.
    Open {
        /// Time left until the first probe.
        retry_in: Duration,
    },
    /// A few probe calls pass; their outcome closes or re-opens the circuit.
    HalfOpen,
}

impl BreakerState {
    /// The state as a number, for the `polyrouter_breaker_state` gauge:
    /// 0 closed, 1 open, 2 half-open.
    ///
    /// ```
    /// assert_eq!(polyrouter::layers::BreakerState::HalfOpen.gauge(), 2.0);
    /// ```
    pub fn gauge(&self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::Open { .. } => 1.0,
            BreakerState::HalfOpen => 2.0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: u32, successes: u32 },
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Which window slot this bucket counts (time since start / width).
    slot: u64,
    calls: u32,
    failures: u32,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    buckets: [Bucket; BUCKETS],
}

/// Stops sending calls to a store that keeps failing, so a dead store
/// costs callers nothing but an error, and a struggling one gets room to
/// recover.
///
/// **Closed**: calls pass; the failures among them are counted over a
/// sliding `window` (ten buckets). When at least `minimum_calls` calls in
/// the window ended and at least `failure_rate` of them failed, the circuit
/// **opens** for `open_for`: every call fails at once with
/// [`Error::CircuitOpen`], saying when the store is probed again. Then it is
/// **half-open**: `half_open_probes` calls pass as probes; that many
/// successes close the circuit (with a fresh window), one failure opens it
/// again. Calls beyond the probes fail with `CircuitOpen`.
///
/// A failure is an error that says the store is unhealthy:
/// [`Error::Unavailable`], [`Error::Timeout`] and [`Error::Rejected`] for
/// throttling. Errors the store answered with (not found, conflicts, bad
/// input, deadlock victims, driver errors) count as successes, and calls
/// cancelled by their caller do not count.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::time::Duration;
/// use polyrouter::layers::{testing::Faults, Breaker, BreakerState, Layered};
/// use polyrouter::{backends::memory::MemoryStore, Error, Store};
/// let store = Layered::wrap(Faults::new(MemoryStore::new("m")), Breaker::new().minimum_calls(4));
/// store.inner().set_down(true);
/// for _ in 0..4 {
///     assert!(matches!(store.ping().await, Err(Error::Unavailable { .. })));
/// }
/// assert!(matches!(store.policy().state(), BreakerState::Open { .. }));
/// assert!(matches!(store.ping().await, Err(Error::CircuitOpen { .. })));
/// # });
/// ```
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    /// Bucket width in nanoseconds.
    width: u64,
    started: Instant,
    state: Mutex<State>,
    /// Whether the phase is closed: a copy of `state.phase`, written under
    /// the lock, so admitting a call while closed takes no lock.
    closed: AtomicBool,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker::from_config(BreakerConfig::default())
    }
}

/// Is the call's outcome a failure of the store?
fn is_failure<T>(out: &Result<T>) -> bool {
    matches!(
        out,
        Err(Error::Unavailable { .. }
            | Error::Timeout { .. }
            | Error::Rejected {
                reason: Rejection::Throttled,
                ..
            })
    )
}

impl Breaker {
    /// The default breaker ([`BreakerConfig::default`]).
    ///
    /// ```
    /// assert_eq!(polyrouter::layers::Breaker::new().config().minimum_calls, 20);
    /// ```
    pub fn new() -> Self {
        Breaker::default()
    }

    /// The breaker of `[stores.NAME.resilience.breaker]`, closed.
    ///
    /// ```
    /// let _b = polyrouter::layers::Breaker::from_config(Default::default());
    /// ```
    pub fn from_config(config: BreakerConfig) -> Self {
        Breaker {
            width: (config.window.0 / BUCKETS as u32)
                .max(Duration::from_millis(1))
                .as_nanos()
                .try_into()
                .unwrap_or(u64::MAX),
            config,
            started: Instant::now(),
            closed: AtomicBool::new(true),
            state: Mutex::new(State {
                phase: Phase::Closed,
                buckets: [Bucket::default(); BUCKETS],
            }),
        }
    }

    /// Sets the failure share that opens the circuit (0 < rate ≤ 1).
    ///
    /// ```
    /// let _b = polyrouter::layers::Breaker::new().failure_rate(0.25);
    /// ```
    pub fn failure_rate(mut self, rate: f64) -> Self {
        self.config.failure_rate = rate.clamp(f64::MIN_POSITIVE, 1.0);
        self
    }

    /// Sets the calls the window needs before the rate counts.
    ///
    /// ```
    /// let _b = polyrouter::layers::Breaker::new().minimum_calls(5);
    /// ```
    pub fn minimum_calls(mut self, calls: u32) -> Self {
        self.config.minimum_calls = calls.max(1);
        self
    }

    /// Sets the sliding window.
    ///
    /// ```
    /// let _b = polyrouter::layers::Breaker::new().window(std::time::Duration::from_secs(30));
    /// ```
    pub fn window(self, window: Duration) -> Self {
        let mut config = self.config;
        config.window = ConfigDuration(window);
        Breaker::from_config(config)
    }

    /// Sets how long the circuit stays open before probing.
    ///
    /// ```
    /// let _b = polyrouter::layers::Breaker::new().open_for(std::time::Duration::from_secs(1));
    /// ```
    pub fn open_for(mut self, open: Duration) -> Self {
        self.config.open_for = ConfigDuration(open);
        self
    }

    /// Sets the probe calls of the half-open state.
    ///
    /// ```
    /// let _b = polyrouter::layers::Breaker::new().half_open_probes(1);
    /// ```
    pub fn half_open_probes(mut self, probes: u32) -> Self {
        self.config.half_open_probes = probes.max(1);
        self
    }

    /// The settings.
    ///
    /// ```
    /// assert_eq!(polyrouter::layers::Breaker::new().config().half_open_probes, 3);
    /// ```
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The state now.
    ///
    /// ```
    /// assert_eq!(polyrouter::layers::Breaker::new().state(), polyrouter::layers::BreakerState::Closed);
    /// ```
    pub fn state(&self) -> BreakerState {
        match self.state.lock().phase {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { until } => BreakerState::Open {
                retry_in: until.saturating_duration_since(Instant::now()),
            },
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    fn slot(&self, now: Instant) -> u64 {
        let since = u64::try_from(now.duration_since(self.started).as_nanos()).unwrap_or(u64::MAX);
        since / self.width
    }

    /// Lets a call through, as a normal call or a probe, or refuses it.
    fn admit(&self, call: &Call<'_>) -> Result<Ticket<'_>> {
        // A call that meets the circuit closing or opening under way is
        // let through or not as if it came a moment earlier or later.
        if self.closed.load(Ordering::Acquire) {
            return Ok(Ticket::new(self, false));
        }
        let mut s = self.state.lock();
        match s.phase {
            Phase::Closed => Ok(Ticket::new(self, false)),
            Phase::Open { until } => {
                let now = Instant::now();
                if now < until {
                    return Err(Error::circuit_open(call.store, &call.entity(), until - now));
                }
                s.phase = Phase::HalfOpen {
                    in_flight: 1,
                    successes: 0,
                };
                drop(s);
                self.announce(call.store, BreakerState::HalfOpen);
                Ok(Ticket::new(self, true))
            }
            Phase::HalfOpen {
                ref mut in_flight, ..
            } => {
                if *in_flight < self.config.half_open_probes {
                    *in_flight += 1;
                    Ok(Ticket::new(self, true))
                } else {
                    Err(Error::circuit_open(
                        call.store,
                        &call.entity(),
                        self.config.open_for.0 / 10,
                    ))
                }
            }
        }
    }

    /// Counts a finished call.
    fn record(&self, store: &str, probe: bool, failed: bool) {
        let now = Instant::now();
        let mut s = self.state.lock();
        let announce = if probe {
            match &mut s.phase {
                Phase::HalfOpen {
                    in_flight,
                    successes,
                } => {
                    *in_flight = in_flight.saturating_sub(1);
                    if failed {
                        self.closed.store(false, Ordering::Release);
                        s.phase = Phase::Open {
                            until: now + self.config.open_for.0,
                        };
                        Some(self.state_of(&s.phase, now))
                    } else {
                        *successes += 1;
                        if *successes >= self.config.half_open_probes {
                            s.phase = Phase::Closed;
                            self.closed.store(true, Ordering::Release);
                            s.buckets = [Bucket::default(); BUCKETS];
                            Some(BreakerState::Closed)
                        } else {
                            None
                        }
                    }
                }
                _ => None,
            }
        } else {
            let slot = self.slot(now);
            let b = &mut s.buckets[(slot % BUCKETS as u64) as usize];
            if b.slot != slot {
                *b = Bucket {
                    slot,
                    ..Bucket::default()
                };
            }
            b.calls += 1;
            b.failures += u32::from(failed);
            if failed && matches!(s.phase, Phase::Closed) {
                let oldest = slot.saturating_sub(BUCKETS as u64 - 1);
                let (calls, failures) = s
                    .buckets
                    .iter()
                    .filter(|b| b.slot >= oldest && b.slot <= slot)
                    .fold((0u32, 0u32), |(c, f), b| (c + b.calls, f + b.failures));
                if calls >= self.config.minimum_calls
                    && f64::from(failures) >= self.config.failure_rate * f64::from(calls)
                {
                    s.phase = Phase::Open {
                        until: now + self.config.open_for.0,
                    };
                    self.closed.store(false, Ordering::Release);
                    tracing::warn!(
                        store,
                        calls,
                        failures,
                        open_for_ms = self.config.open_for.0.as_millis() as u64,
                        "circuit breaker opened: calls fail at once until the store is probed again"
                    );
                    Some(self.state_of(&s.phase, now))
                } else {
                    None
                }
            } else {
                None
            }
        };
        drop(s);
        if let Some(state) = announce {
            self.announce(store, state);
        }
    }

    /// A probe call was dropped before it finished: free its slot.
    fn abandon(&self) {
        if let Phase::HalfOpen { in_flight, .. } = &mut self.state.lock().phase {
            *in_flight = in_flight.saturating_sub(1);
        }
    }

    fn state_of(&self, phase: &Phase, now: Instant) -> BreakerState {
        match phase {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { until } => BreakerState::Open {
                retry_in: until.saturating_duration_since(now),
            },
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    fn announce(&self, store: &str, state: BreakerState) {
        let to = match state {
            BreakerState::Closed => "closed",
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen => "half_open",
        };
        tracing::info!(store, to, "circuit breaker state changed");
        metrics::gauge!("polyrouter_breaker_state", "store" => store.to_string())
            .set(state.gauge());
        metrics::counter!("polyrouter_breaker_transitions_total", "store" => store.to_string(), "to" => to)
            .increment(1);
    }
}

/// A call let through; a probe that is dropped unfinished frees its slot.
struct Ticket<'a> {
    breaker: &'a Breaker,
    probe: bool,
    done: bool,
}

impl<'a> Ticket<'a> {
    fn new(breaker: &'a Breaker, probe: bool) -> Self {
        Ticket {
            breaker,
            probe,
            done: false,
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.probe && !self.done {
            self.breaker.abandon();
        }
    }
}

impl Policy for Breaker {
    async fn around<'a, T, F, Fut>(&'a self, call: &'a Call<'a>, run: F) -> Result<T>
    where
        T: Outcome + 'a,
        F: Fn() -> Fut + Send + Sync + 'a,
        Fut: Future<Output = Result<T>> + Send + 'a,
    {
        let mut ticket = self.admit(call)?;
        let out = run().await;
        ticket.done = true;
        self.record(call.store, ticket.probe, is_failure(&out));
        out
    }
}
