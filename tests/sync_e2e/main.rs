//! Sync end to end through `Router::sync`: a primary with an `outbox` route,
//! the relay, a real bus and a `replica` projection, checked row by row
//! against the primary after crashes, outages and injected duplicates.
//!
//! `cargo test --features postgres,redis,nats --test sync_e2e`
//!
//! - `crash::*`: a worker child process (this binary, re-run with
//!   `SYNC_E2E_CHILD` set) SIGKILLed by its pid 20 times while writers run;
//!   PostgreSQL primary (own schema), Redis replica (own key prefix), on
//!   NATS (shared server, stream `PRT_{pid}_…`) and redis-streams (shared
//!   Redis, prefix `prt:{pid}:…`).
//! - `outage::*`: a PRIVATE nats-server / redis-server on a free port and
//!   its own data dir, SIGKILLed and restarted while writes go on.
//! - `memory::*`: the in-process runtime dropped mid-load, a new one started.
//! - `redelivery::*`: delete then re-create, and every event published
//!   again (fresh ids, reversed) straight to the real bus.
//! - `late_commit::*`: on PostgreSQL, a write that took its outbox sequence
//!   number first and commits last is relayed, not skipped.
//!
//! Every server named here must answer: a missing one fails the run.

mod common;
mod crash;
mod late_commit;
mod memory;
mod outage;
mod redelivery;
#[path = "../support/server.rs"]
mod server;

use std::future::Future;

use libtest_mimic::{Arguments, Failed, Trial};

fn trial<F, Fut>(name: &str, f: F) -> Trial
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    Trial::test(name, move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .map_err(|e| Failed::from(e.to_string()))?;
        rt.block_on(f());
        Ok(())
    })
}

fn main() {
    // A crash test's worker child: runs sync until SIGKILLed.
    if let Ok(cfg) = std::env::var(crash::CHILD_ENV) {
        tokio::runtime::Runtime::new()
            .expect("tokio runtime")
            .block_on(crash::child(&cfg));
        return;
    }
    let args = Arguments::from_args();
    let mut trials = Vec::new();
    for bus in [common::BusKind::Nats, common::BusKind::RedisStreams] {
        let n = bus.name();
        trials.push(trial(
            &format!("crash::worker_sigkilled_20_times_{n}"),
            move || crash::worker_sigkilled_20_times(bus),
        ));
        trials.push(trial(
            &format!("outage::bus_killed_and_restarted_{n}"),
            move || outage::bus_killed_and_restarted(bus),
        ));
    }
    for bus in [
        common::BusKind::Memory,
        common::BusKind::Nats,
        common::BusKind::RedisStreams,
    ] {
        let n = bus.name();
        trials.push(trial(
            &format!("redelivery::recreate_duplicates_and_reorder_{n}"),
            move || redelivery::recreate_duplicates_and_reorder(bus),
        ));
    }
    trials.push(trial(
        "late_commit::late_commit_is_relayed",
        late_commit::late_commit_is_relayed,
    ));
    trials.push(trial(
        "memory::runtime_dropped_mid_load",
        memory::runtime_dropped_mid_load,
    ));
    libtest_mimic::run(&args, trials).exit();
}
