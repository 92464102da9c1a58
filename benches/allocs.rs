//! Heap allocations per point operation through `Repo<T>`, counted by a
//! global allocator that wraps the system one: the memory store, and
//! PostgreSQL and MariaDB when built with their features (the URLs of
//! `benches/backends.rs`: `POLYROUTER_BENCH_POSTGRES`,
//! `POLYROUTER_BENCH_MYSQL`, else the machine's servers on loopback).
//!
//! ```text
//! cargo bench --features redis,postgres,mysql --bench allocs
//! ```
//!
//! Redis (`POLYROUTER_BENCH_REDIS`, else `redis://127.0.0.1:6379`) is
//! measured under a key prefix unique to the run, its keys deleted at the
//! end. `put_many` is one batch of 1 000 rows, reported per row.
//!
//! `POLYROUTER_ALLOCS_TRACE=<store>/<op>` (`op`: `put`, `get` or
//! `put_many`) also prints, for one call of that operation after the
//! counted ones, where each allocation was made: the innermost frames of
//! its backtrace that name polyrouter (symbols only: inlined functions are
//! folded into their callers).
//!
//! Each operation runs 200 times to warm up (pools, prepared statements,
//! caches), then 2 000 times counted; the output is allocations (calls to
//! `alloc`, `alloc_zeroed` and `realloc`) and bytes allocated per
//! operation, for the whole process — the driver's pool tasks included, as
//! an application would pay them. A single-threaded runtime keeps other
//! work out. Counts are exact for a given build and input; they differ
//! between builds only when the code does. docs/benchmarks.md keeps the
//! figures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::backtrace::Backtrace;
use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bench_user::{BenchUser, KEY, runtime, sample, user};
use polyrouter::{Repo, Router};

#[path = "support/bench_user.rs"]
mod bench_user;
#[path = "support/servers.rs"]
mod servers;

/// The system allocator, counting.
struct Counting;

static CALLS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Whether this thread records a backtrace per allocation.
    static TRACING: Cell<bool> = const { Cell::new(false) };
    /// Set while a backtrace is taken (it allocates itself).
    static IN_TRACE: Cell<bool> = const { Cell::new(false) };
}

/// The backtraces recorded while [`TRACING`] was on.
static TRACES: Mutex<Vec<(usize, Backtrace)>> = Mutex::new(Vec::new());

/// Counts one allocation of `size` bytes (and records where, when tracing).
fn count(size: usize) {
    CALLS.fetch_add(1, Ordering::Relaxed);
    BYTES.fetch_add(size as u64, Ordering::Relaxed);
    let trace = TRACING.with(Cell::get) && !IN_TRACE.with(Cell::get);
    if trace {
        IN_TRACE.with(|c| c.set(true));
        let bt = Backtrace::force_capture();
        TRACES.lock().expect("traces").push((size, bt));
        IN_TRACE.with(|c| c.set(false));
    }
}

// SAFETY: forwards every call to `System` unchanged; the counters are
// atomics, and the tracing (off unless asked for) guards against its own
// allocations.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const WARM: u64 = 200;
const COUNTED: u64 = 2_000;

/// Allocations and bytes per call of `op`, after a warm-up; when `trace`,
/// one more call with its allocations' origins printed.
async fn per_op<F, Fut>(trace: bool, mut op: F) -> (f64, f64)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..WARM {
        op().await;
    }
    let (c0, b0) = (CALLS.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed));
    for _ in 0..COUNTED {
        op().await;
    }
    let (c1, b1) = (CALLS.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed));
    if trace {
        TRACING.with(|c| c.set(true));
        op().await;
        TRACING.with(|c| c.set(false));
        print_traces();
    }
    (
        (c1 - c0) as f64 / COUNTED as f64,
        (b1 - b0) as f64 / COUNTED as f64,
    )
}

/// Prints each recorded allocation: its size and the innermost frames of
/// its backtrace that are polyrouter's (or the first frames past the
/// allocator when none is).
fn print_traces() {
    let traces = std::mem::take(&mut *TRACES.lock().expect("traces"));
    println!("  {} allocations:", traces.len());
    for (size, bt) in traces {
        let text = bt.to_string();
        let frames: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| l.contains(": ") && !l.starts_with("at "))
            .map(|l| l.split_once(": ").map_or(l, |(_, f)| f))
            .filter(|f| {
                !f.starts_with("std::")
                    && !f.starts_with("alloc::")
                    && !f.starts_with("core::")
                    && !f.starts_with("allocs::")
                    && !f.starts_with("__rust")
            })
            .collect();
        let ours: Vec<&str> = frames
            .iter()
            .copied()
            .filter(|f| f.contains("polyrouter"))
            .take(3)
            .collect();
        let shown = if ours.is_empty() {
            frames.into_iter().take(3).collect::<Vec<_>>()
        } else {
            ours
        };
        println!("  {size:>6} B  {}", shown.join("  <  "));
    }
}

/// Rows in the `put_many` batch.
const BATCH: usize = 1_000;

async fn measure(label: &str, store_toml: &str) {
    let toml = format!("[stores.s]\n{store_toml}\n[entities.bench_user]\nstore = \"s\"\n");
    let router = Router::from_toml_str(&toml).await.expect("router");
    let repo: Repo<BenchUser> = router.repo::<BenchUser>().await.expect("repo");
    let one = sample();
    let rows: Vec<BenchUser> = (0..BATCH as i64)
        .map(|i| user(format!("row-{i:05}"), i))
        .collect();
    repo.put(&one).await.expect("seed");
    let trace = std::env::var("POLYROUTER_ALLOCS_TRACE").unwrap_or_default();
    let traced = |op: &str| trace == format!("{label}/{op}");
    let (pc, pb) = per_op(traced("put"), || async {
        std::hint::black_box(repo.put(&one).await.expect("put"));
    })
    .await;
    let (gc, gb) = per_op(traced("get"), || async {
        std::hint::black_box(repo.get(KEY).await.expect("get"));
    })
    .await;
    let (mc, mb) = per_op(traced("put_many"), || async {
        std::hint::black_box(repo.put_many(&rows).await.expect("put_many"));
    })
    .await;
    let (mc, mb) = (mc / BATCH as f64, mb / BATCH as f64);
    println!(
        "{label:<10} put: {pc:>6.1} allocations, {pb:>7.0} bytes   get: {gc:>6.1}, {gb:>7.0} B   put_many per row: {mc:>6.1}, {mb:>7.0} B"
    );
}

fn main() {
    runtime().block_on(async {
        measure("memory", "kind = \"memory\"").await;
        #[cfg(feature = "redis")]
        {
            let url = std::env::var("POLYROUTER_BENCH_REDIS")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
            let prefix = format!("prallocs-{}", std::process::id());
            measure(
                "redis",
                &format!("kind = \"redis\"\nurl = \"{url}\"\nkey_prefix = \"{prefix}\""),
            )
            .await;
            let client = redis::Client::open(url.as_str()).expect("redis url");
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .expect("redis");
            servers::delete_redis_keys(&mut conn, &format!("{prefix}*"))
                .await
                .expect("SCAN + DEL");
        }
        #[cfg(feature = "postgres")]
        {
            let url = servers::postgres_url();
            let schema = format!("pr_allocs_{}", std::process::id());
            measure(
                "postgres",
                &format!("kind = \"postgres\"\nurl = \"{url}\"\nschema = \"{schema}\""),
            )
            .await;
            let pool = sqlx::PgPool::connect(&url).await.expect("postgres");
            sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
                .execute(&pool)
                .await
                .expect("drop schema");
        }
        #[cfg(feature = "mysql")]
        {
            let url = servers::mysql_url();
            let db = format!("pr_allocs_{}", std::process::id());
            measure(
                "mysql",
                &format!("kind = \"mysql\"\nurl = \"{url}\"\ndatabase = \"{db}\""),
            )
            .await;
            let pool = sqlx::MySqlPool::connect(&url).await.expect("mysql");
            sqlx::query(&format!("DROP DATABASE `{db}`"))
                .execute(&pool)
                .await
                .expect("drop database");
        }
    });
}
