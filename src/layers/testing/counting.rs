//! [`Counting`]: counts the calls reaching a store.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Result;
use crate::layers::{Call, Layered, Operation, Outcome, Policy};

/// A snapshot of the calls a [`Counting`] store has seen.
///
/// ```
/// let c = polyrouter::layers::testing::Counts::default();
/// assert_eq!(c.reads(), 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// `get` calls.
    pub gets: u64,
    /// `get_many` calls.
    pub get_manys: u64,
    /// Keys asked for by `get_many` calls, in total.
    pub keys_read: u64,
    /// `write` calls (each batch counts once).
    pub writes: u64,
    /// `query` calls.
    pub queries: u64,
    /// Rows the `query` calls returned, in total: what a scan pulled.
    pub rows_queried: u64,
    /// `count` calls.
    pub counts: u64,
    /// Time series reads of points: `ts.range` and `ts.scan` calls.
    pub series_reads: u64,
    /// Points those calls returned, in total: what a time series scan pulled.
    pub points_read: u64,
    /// Calls of any operation, every extra trait included.
    pub calls: u64,
}

impl Counts {
    /// Every record read call: `get` + `get_many` + `query` + `count`.
    ///
    /// ```
    /// let c = polyrouter::layers::testing::Counts { gets: 2, queries: 1, ..Default::default() };
    /// assert_eq!(c.reads(), 3);
    /// ```
    pub fn reads(&self) -> u64 {
        self.gets + self.get_manys + self.queries + self.counts
    }
}

/// The [`Policy`] of [`Counting`]: counts calls by operation.
///
/// ```
/// let p = polyrouter::layers::testing::CountCalls::default();
/// assert_eq!(p.counts().calls, 0);
/// ```
#[derive(Debug, Default)]
pub struct CountCalls {
    gets: AtomicU64,
    get_manys: AtomicU64,
    keys_read: AtomicU64,
    writes: AtomicU64,
    queries: AtomicU64,
    rows_queried: AtomicU64,
    counts: AtomicU64,
    series_reads: AtomicU64,
    points_read: AtomicU64,
    calls: AtomicU64,
}

impl CountCalls {
    /// The calls counted so far.
    ///
    /// ```
    /// assert_eq!(polyrouter::layers::testing::CountCalls::default().counts().writes, 0);
    /// ```
    pub fn counts(&self) -> Counts {
        let l = |a: &AtomicU64| a.load(Ordering::SeqCst);
        Counts {
            gets: l(&self.gets),
            get_manys: l(&self.get_manys),
            keys_read: l(&self.keys_read),
            writes: l(&self.writes),
            queries: l(&self.queries),
            rows_queried: l(&self.rows_queried),
            counts: l(&self.counts),
            series_reads: l(&self.series_reads),
            points_read: l(&self.points_read),
            calls: l(&self.calls),
        }
    }

    /// Sets every counter back to zero.
    ///
    /// ```
    /// polyrouter::layers::testing::CountCalls::default().reset();
    /// ```
    pub fn reset(&self) {
        for a in [
            &self.gets,
            &self.get_manys,
            &self.keys_read,
            &self.writes,
            &self.queries,
            &self.rows_queried,
            &self.counts,
            &self.series_reads,
            &self.points_read,
            &self.calls,
        ] {
            a.store(0, Ordering::SeqCst);
        }
    }
}

impl Policy for CountCalls {
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
        let add = |a: &AtomicU64, n: u64| {
            a.fetch_add(n, Ordering::SeqCst);
        };
        add(&self.calls, 1);
        match call.operation {
            Operation::Get => add(&self.gets, 1),
            Operation::GetMany => {
                add(&self.get_manys, 1);
                add(&self.keys_read, call.items as u64);
            }
            Operation::Write => add(&self.writes, 1),
            Operation::Query => add(&self.queries, 1),
            Operation::Count => add(&self.counts, 1),
            Operation::SeriesRange | Operation::SeriesScan => add(&self.series_reads, 1),
            _ => {}
        }
        let rows_to = match call.operation {
            Operation::Query => Some(&self.rows_queried),
            Operation::SeriesRange | Operation::SeriesScan => Some(&self.points_read),
            _ => None,
        };
        async move {
            let out = run().await;
            if let (Some(counter), Ok(rows)) = (rows_to, &out) {
                counter.fetch_add(rows.rows().unwrap_or(0), Ordering::SeqCst);
            }
            out
        }
    }
}

/// Wraps a store and counts the calls that reach it.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use polyrouter::{backends::memory::MemoryStore, layers::testing::Counting, Store};
/// let store = Counting::new(MemoryStore::new("m"));
/// store.ping().await.unwrap();
/// assert_eq!(store.counts().reads(), 0);
/// assert_eq!(store.counts().calls, 1);
/// store.reset();
/// # });
/// ```
pub type Counting<S> = Layered<S, CountCalls>;

impl<S> Layered<S, CountCalls> {
    /// Wraps `inner`.
    ///
    /// ```
    /// let _c = polyrouter::layers::testing::Counting::new(polyrouter::backends::memory::MemoryStore::new("m"));
    /// ```
    pub fn new(inner: S) -> Self {
        Layered::wrap(inner, CountCalls::default())
    }

    /// The calls counted so far.
    ///
    /// ```
    /// let c = polyrouter::layers::testing::Counting::new(polyrouter::backends::memory::MemoryStore::new("m"));
    /// assert_eq!(c.counts().writes, 0);
    /// ```
    pub fn counts(&self) -> Counts {
        self.policy().counts()
    }

    /// Sets every counter back to zero.
    ///
    /// ```
    /// let c = polyrouter::layers::testing::Counting::new(polyrouter::backends::memory::MemoryStore::new("m"));
    /// c.reset();
    /// ```
    pub fn reset(&self) {
        self.policy().reset()
    }
}
