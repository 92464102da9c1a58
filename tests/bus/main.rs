//! The bus behaviour suite: one set of behaviours run against every event
//! bus named in `POLYROUTER_TEST_BUSES` (comma list of `memory`, `nats`,
//! `redis-streams`; default `memory`). A bus named there that cannot be
//! reached fails the run: nothing is skipped silently.
//!
//! `POLYROUTER_TEST_BUSES=memory,nats,redis-streams cargo test --features nats,redis --test bus`
//!
//! `nats` uses the machine's NATS server with JetStream (127.0.0.1:4222, or
//! `POLYROUTER_TEST_NATS_URL`), `redis-streams` the machine's Redis
//! (127.0.0.1:6379, or `POLYROUTER_TEST_REDIS_URL`); each trial has its own
//! stream or key prefix and removes it. The outage behaviours start a
//! private `nats-server` / `redis-server` on a free port instead.

mod behaviours;
mod foreign;
mod harness;
mod outage;
#[path = "../support/server.rs"]
mod server;

use futures::future::BoxFuture;
use harness::{Ctx, Outcome};
use libtest_mimic::{Arguments, Failed, Trial};

struct Behaviour {
    name: &'static str,
    /// About a server (going away, written to directly): not built for the
    /// in-process bus.
    server_only: bool,
    run: fn(Ctx) -> BoxFuture<'static, Outcome>,
}

macro_rules! behaviour {
    ($module:ident :: $name:ident) => {
        Behaviour {
            name: stringify!($name),
            server_only: false,
            run: |ctx| Box::pin($module::$name(ctx)),
        }
    };
    ($module:ident :: $name:ident, server_only) => {
        Behaviour {
            name: stringify!($name),
            server_only: true,
            run: |ctx| Box::pin($module::$name(ctx)),
        }
    };
}

fn behaviours() -> Vec<Behaviour> {
    vec![
        behaviour!(behaviours::publish_fetch_ack),
        behaviour!(behaviours::per_entity_order),
        behaviour!(behaviours::duplicate_ids_are_stored_once),
        behaviour!(behaviours::redelivery_after_ack_wait),
        behaviour!(behaviours::nack_with_delay),
        behaviour!(behaviours::a_nack_delay_longer_than_ack_wait_holds),
        behaviour!(behaviours::members_of_a_group_share_events),
        behaviour!(behaviours::a_new_group_sees_retained_events),
        behaviour!(behaviours::groups_resume_after_reconnect),
        behaviour!(behaviours::backlog_counts),
        behaviour!(behaviours::concurrent_publishers),
        behaviour!(behaviours::bad_names_and_tags_are_refused),
        behaviour!(behaviours::a_group_starting_at_new_sees_only_later_events),
        behaviour!(behaviours::closing_an_ephemeral_group_removes_it),
        behaviour!(outage::an_abandoned_ephemeral_group_is_removed, server_only),
        behaviour!(foreign::foreign_messages_are_skipped, server_only),
        behaviour!(outage::a_bus_that_is_down_is_unavailable, server_only),
        behaviour!(outage::events_survive_an_outage, server_only),
    ]
}

fn main() {
    let args = Arguments::from_args();
    let buses = harness::buses_under_test();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut trials = Vec::new();
    for kind in &buses {
        // Ping the bus once up front: if it is unreachable, every trial fails loudly.
        let probe: Result<(), String> = runtime.block_on(async {
            let ctx = Ctx::new(kind);
            let bus = ctx.bus().await;
            bus.ping()
                .await
                .map_err(|e| format!("bus `{kind}` does not answer: {e}"))?;
            harness::remove_stale(kind)
                .await
                .map_err(|e| format!("removing what crashed runs left on `{kind}`: {e}"))
        });
        // The in-process bus has no server to be down: those behaviours are
        // not built for it.
        for b in behaviours()
            .into_iter()
            .filter(|b| !(b.server_only && kind == "memory"))
        {
            let name = format!("{kind}::{}", b.name);
            let kind = kind.clone();
            let probe = probe.clone();
            let handle = runtime.handle().clone();
            let trial = Trial::test(name, move || {
                probe.map_err(Failed::from)?;
                let ctx = Ctx::new(&kind);
                handle.block_on(async move {
                    let clean = ctx.clone();
                    let outcome = (b.run)(ctx).await;
                    let cleaned = clean.clean_up().await;
                    outcome.map_err(Failed::from)?;
                    cleaned.map_err(|e| Failed::from(format!("clean-up: {e}")))
                })
            });
            trials.push(trial);
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
