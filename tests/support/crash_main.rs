//! The `main` of a `harness = false` crash test whose workers are the test
//! binary itself re-executed (`#[path = "support/crash_main.rs"] mod
//! crash_main;`).
#![allow(dead_code)]

use std::future::Future;
use std::process::ExitCode;

/// A worker when `worker_var` is set (`worker` runs until killed); else,
/// for `cargo test`'s `--list`, the names of `tests`; else each of
/// `tests` run in turn by `test(name)`, reported as `cargo test` does.
pub fn crash_main<W, T>(
    worker_var: &str,
    worker: impl FnOnce() -> W,
    tests: &[&'static str],
    test: impl Fn(&'static str) -> T,
) -> ExitCode
where
    W: Future<Output = ()>,
    T: Future<Output = ()>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if std::env::var(worker_var).is_ok() {
        rt.block_on(worker());
        return ExitCode::SUCCESS;
    }
    // `cargo test` passes harness flags (`--list`, filters): a listing
    // gets the test names.
    if std::env::args().any(|a| a == "--list") {
        for name in tests {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    for name in tests {
        rt.block_on(test(name));
        println!("test {name} ... ok");
    }
    ExitCode::SUCCESS
}
