//! What the change-capture tests share, whatever the store (PostgreSQL
//! logical decoding in `tests/cdc*.rs`, the MariaDB binlog in
//! `tests/cdc_mysql*.rs`): a handler that records every event, names of
//! a run's own, a deterministic generator, the worker-process handshake,
//! and the checks made after a crash run
//! (`#[path = "support/cdc.rs"] mod cdc_support;`).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use parking_lot::Mutex;
use polyrouter::Key;
use polyrouter::store::Applied;
use polyrouter::sync::ChangeEvent;
use polyrouter::sync::projection::Projection;

/// Every event the handler saw, in delivery order.
#[derive(Default, Clone)]
pub struct Seen(pub Arc<Mutex<Vec<ChangeEvent>>>);

#[async_trait::async_trait]
impl Projection for Seen {
    async fn apply(&self, event: &ChangeEvent) -> polyrouter::Result<Applied> {
        self.0.lock().push(event.clone());
        Ok(Applied::Applied)
    }
}

impl Seen {
    /// The events per (string) key, in delivery order.
    pub fn by_key(&self) -> BTreeMap<String, Vec<ChangeEvent>> {
        let mut m: BTreeMap<String, Vec<ChangeEvent>> = BTreeMap::new();
        for e in self.0.lock().iter() {
            let Key::Str(k) = &e.key else {
                panic!("a string key, got {:?}", e.key)
            };
            m.entry(k.clone()).or_default().push(e.clone());
        }
        m
    }
}

/// A name of this run's own, `{prefix}_{tag}_{pid}_{n}` (tables and slots
/// of parallel tests differ; a sweep can tell a dead run's by its pid).
pub fn unique(prefix: &str, tag: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!(
        "{prefix}_{tag}_{}_{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// Whether the process of a `{prefix}_{tag}_{pid}_…` name is gone.
pub fn run_is_dead(name: &str) -> bool {
    let Some(pid) = name.split('_').nth(2).and_then(|p| p.parse::<u32>().ok()) else {
        return false;
    };
    pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The `{prefix}_{tag}_{pid}_{n}` bases of those `names` (tables, slots
/// and what is named after them) whose run is gone, once each.
pub fn dead_runs(names: &[String]) -> Vec<String> {
    let mut bases: Vec<String> = names
        .iter()
        .filter(|name| run_is_dead(name))
        .map(|name| name.split('_').take(4).collect::<Vec<_>>().join("_"))
        .collect();
    bases.sort();
    bases.dedup();
    bases
}

/// The `n` field of an event's data.
pub fn n_of(e: &ChangeEvent) -> Option<i64> {
    e.data
        .as_ref()
        .and_then(|d| d.get("n"))
        .and_then(|v| v.as_i64())
}

/// A small deterministic generator.
pub struct Lcg(pub u64);
impl Lcg {
    pub fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// A worker process, SIGKILLed by its pid when dropped (also when the
/// test panics, so no worker outlives it).
pub struct Worker(pub Child);

impl std::ops::Deref for Worker {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Worker {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// This test binary re-executed as a worker with `env`; returns once it
/// printed `READY` (kill it by its pid).
pub fn spawn_worker(env: &[(&str, &str)]) -> Worker {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("start a worker");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "READY", "the worker started");
    Worker(child)
}

/// Keys whose view row (n, deleted) disagrees with the table's (n).
pub fn differences(
    source: &BTreeMap<String, i64>,
    view: &BTreeMap<String, (Option<i64>, bool)>,
) -> Vec<String> {
    let mut diff = Vec::new();
    for k in source.keys().chain(view.keys()) {
        let want = source.get(k).map(|n| (Some(*n), false));
        let got = view.get(k).copied();
        let same = match (want, got) {
            (Some(w), Some(g)) => w == g,
            (None, None) => true,
            (None, Some((_, deleted))) => deleted,
            (Some(_), None) => false,
        };
        if !same {
            diff.push(format!("{k}: table {want:?}, view {got:?}"));
        }
    }
    diff.sort();
    diff.dedup();
    diff
}

/// Asserts a view's log of applied (key, version), in apply order, only
/// grows per key: no event was applied twice or out of order.
pub fn assert_versions_grow(log: &[(String, i64)]) {
    let mut last: BTreeMap<&str, i64> = BTreeMap::new();
    for (k, v) in log {
        if let Some(prev) = last.insert(k, *v) {
            assert!(prev < *v, "{k}: version {v} applied after {prev}");
        }
    }
}
