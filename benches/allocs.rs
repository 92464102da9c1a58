//! Heap allocations per point operation through `Repo<T>`, counted by a
//! global allocator that wraps the system one: the memory store, and
//! PostgreSQL and MariaDB when built with their features (the URLs of
//! `benches/backends.rs`: `POLYROUTER_BENCH_POSTGRES`,
//! `POLYROUTER_BENCH_MYSQL`, else the machine's servers on loopback).
//!
//! ```text
//! cargo bench --features postgres,mysql --bench allocs
//! ```
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
use std::sync::atomic::{AtomicU64, Ordering};

use bench_user::{BenchUser, KEY, runtime, sample};
use polyrouter::{Repo, Router};

#[path = "support/bench_user.rs"]
mod bench_user;
#[path = "support/servers.rs"]
mod servers;

/// The system allocator, counting.
struct Counting;

static CALLS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to `System` unchanged; the counters are
// atomics and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
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

/// Allocations and bytes per call of `op`, after a warm-up.
async fn per_op<F, Fut>(mut op: F) -> (f64, f64)
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
    (
        (c1 - c0) as f64 / COUNTED as f64,
        (b1 - b0) as f64 / COUNTED as f64,
    )
}

async fn measure(label: &str, store_toml: &str) {
    let toml = format!("[stores.s]\n{store_toml}\n[entities.bench_user]\nstore = \"s\"\n");
    let router = Router::from_toml_str(&toml).await.expect("router");
    let repo: Repo<BenchUser> = router.repo::<BenchUser>().await.expect("repo");
    let one = sample();
    repo.put(&one).await.expect("seed");
    let (pc, pb) = per_op(|| async {
        std::hint::black_box(repo.put(&one).await.expect("put"));
    })
    .await;
    let (gc, gb) = per_op(|| async {
        std::hint::black_box(repo.get(KEY).await.expect("get"));
    })
    .await;
    println!(
        "{label:<10} put: {pc:>7.1} allocations, {pb:>8.0} bytes   get: {gc:>7.1} allocations, {gb:>8.0} bytes"
    );
}

fn main() {
    runtime().block_on(async {
        measure("memory", "kind = \"memory\"").await;
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
