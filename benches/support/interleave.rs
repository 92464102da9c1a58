//! Measuring the difference of two paths in one loop, so that drift in
//! machine load cancels out (the router and layers overhead benches).

use std::future::Future;
use std::time::{Duration, Instant};

/// Runs `iters` of `a` and of `b` in alternating chunks (alternating which
/// goes first) and returns the median over chunk pairs of time(a) − time(b)
/// per operation, times `iters`.
///
/// The median, not the mean: on a small shared machine one preemption
/// (milliseconds) inside a chunk of a few microseconds would otherwise
/// swamp the difference.
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
