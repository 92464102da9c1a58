//! Measuring the difference of two paths in one loop, so that drift in
//! machine load cancels out (the router and layers overhead benches).

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::BenchmarkGroup;
use criterion::measurement::WallTime;
use tokio::runtime::Runtime;

/// Runs `iters` of `a` and of `b` in alternating chunks (alternating which
/// goes first) and returns the median over chunk pairs of time(a) − time(b)
/// per operation, times `iters`.
///
/// The median, not the mean: on a small shared machine one preemption
/// (milliseconds) inside a chunk of a few microseconds would otherwise
/// swamp the difference.
#[allow(dead_code)] // not every bench that includes this file reports differences
pub async fn interleaved<A, AF, B, BF>(iters: u64, mut a: A, mut b: B) -> Duration
where
    A: FnMut() -> AF,
    AF: Future<Output = ()>,
    B: FnMut() -> BF,
    BF: Future<Output = ()>,
{
    const CHUNK: u64 = 16;
    let mut diffs = Vec::with_capacity((iters / CHUNK + 1) as usize);
    let mut done = 0;
    let mut a_first = true;
    while done < iters {
        let n = CHUNK.min(iters - done);
        let (mut took_a, mut took_b) = (0f64, 0f64);
        for run_a in [a_first, !a_first] {
            let start = Instant::now();
            if run_a {
                for _ in 0..n {
                    a().await;
                }
                took_a = start.elapsed().as_secs_f64() / n as f64;
            } else {
                for _ in 0..n {
                    b().await;
                }
                took_b = start.elapsed().as_secs_f64() / n as f64;
            }
        }
        diffs.push(took_a - took_b);
        a_first = !a_first;
        done += n;
    }
    diffs.sort_by(f64::total_cmp);
    let median = diffs[diffs.len() / 2];
    // Criterion rejects zero; a negative median is reported as 1 ns in total.
    Duration::from_secs_f64(median.max(0.0) * iters as f64).max(Duration::from_nanos(1))
}

/// Runs `iters` of `a` and of `b` in alternating chunks (alternating which
/// goes first), pushes time(a) / time(b) of every chunk pair to `ratios`,
/// and returns the time spent in `a` (criterion's figure for the group).
/// [`median`] of `ratios` is the figure to report: both paths see the same
/// drift in load, chunk by chunk.
#[allow(dead_code)] // not every bench that includes this file reports ratios
pub async fn interleaved_ratio<A, AF, B, BF>(
    iters: u64,
    ratios: &Mutex<Vec<f64>>,
    mut a: A,
    mut b: B,
) -> Duration
where
    A: FnMut() -> AF,
    AF: Future<Output = ()>,
    B: FnMut() -> BF,
    BF: Future<Output = ()>,
{
    const CHUNK: u64 = 16;
    let mut in_a = Duration::ZERO;
    let (mut done, mut a_first) = (0, true);
    let mut mine = Vec::with_capacity((iters / CHUNK + 1) as usize);
    while done < iters {
        let n = CHUNK.min(iters - done);
        let (mut took_a, mut took_b) = (Duration::ZERO, Duration::ZERO);
        for run_a in [a_first, !a_first] {
            let start = Instant::now();
            for _ in 0..n {
                if run_a { a().await } else { b().await }
            }
            if run_a {
                took_a = start.elapsed();
            } else {
                took_b = start.elapsed();
            }
        }
        in_a += took_a;
        mine.push(took_a.as_secs_f64() / took_b.as_secs_f64().max(1e-12));
        a_first = !a_first;
        done += n;
    }
    ratios.lock().expect("ratios").extend(mine);
    in_a
}

/// The median of the collected ratios, and how many there were.
#[allow(dead_code)] // not every bench that includes this file reports ratios
pub fn median(ratios: &Mutex<Vec<f64>>) -> (f64, usize) {
    let mut v = ratios.lock().expect("ratios").clone();
    if v.is_empty() {
        return (f64::NAN, 0);
    }
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v.len())
}

/// The benchmark `name`: `router` and `raw` in alternating chunks of one
/// loop ([`interleaved_ratio`]), their ratios pushed to `ratios`.
#[allow(dead_code)] // not every bench that includes this file reports ratios
pub fn interleaved_bench<R, RF, Q, QF>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    name: &str,
    ratios: &Mutex<Vec<f64>>,
    router: R,
    raw: Q,
) where
    R: Fn() -> RF,
    RF: Future<Output = ()>,
    Q: Fn() -> QF,
    QF: Future<Output = ()>,
{
    g.bench_function(name, |b| {
        b.to_async(rt)
            .iter_custom(|iters| interleaved_ratio(iters, ratios, &router, &raw))
    });
}
