//! The behaviour suite: one set of behaviours run against every store named
//! in `POLYROUTER_TEST_STORES` (comma list; default `memory,sqlite`), each
//! gated on the store's capabilities. A store named there that cannot be
//! reached fails the run: nothing is skipped silently.
//!
//! `POLYROUTER_TEST_STORES=memory,sqlite cargo test --test behavior`
//!
//! Blob stores: `fs` (a temp directory) and `azblob` (Azurite on
//! 127.0.0.1:10000, or `POLYROUTER_TEST_AZBLOB_URL` /
//! `POLYROUTER_TEST_AZBLOB_CONNECTION_STRING`; needs `--features azblob`).

mod blob;
mod crud;
mod entities;
mod graph;
mod harness;
mod inject;
mod limits;
mod query;
mod search;
mod sync;
mod timeseries;
mod tooling;
mod ttl;
mod versioned;

use harness::{Behaviour, Ctx};
use libtest_mimic::{Arguments, Failed, Trial};

fn behaviours() -> Vec<Behaviour> {
    let mut all = Vec::new();
    all.extend(crud::behaviours());
    all.extend(query::behaviours());
    all.extend(ttl::behaviours());
    all.extend(inject::behaviours());
    all.extend(limits::behaviours());
    all.extend(graph::behaviours());
    all.extend(timeseries::behaviours());
    all.extend(blob::behaviours());
    all.extend(search::behaviours());
    all.extend(tooling::behaviours());
    all.extend(sync::behaviours());
    all.extend(versioned::behaviours());
    all
}

fn main() {
    let args = Arguments::from_args();
    let stores = harness::stores_under_test();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut trials = Vec::new();
    for store in &stores {
        // Open the store once up front: if it is unreachable, every trial fails loudly.
        let probe = runtime.block_on(harness::probe(store));
        for b in behaviours() {
            let gate = probe.as_ref().ok().and_then(|caps| (b.needs)(caps));
            // A gremlin store holds graphs only.
            let gate = gate.or_else(|| {
                (store == "gremlin" && !b.name.starts_with("graph_")).then_some("entities")
            });
            let name = match gate {
                Some(need) => format!("{store}::{} (store lacks {need})", b.name),
                None => format!("{store}::{}", b.name),
            };
            let store = store.clone();
            let probe = probe.clone();
            let handle = runtime.handle().clone();
            let trial = Trial::test(name, move || {
                probe.map_err(Failed::from)?;
                let ctx = Ctx::new(&store);
                handle
                    .block_on((b.run)(ctx))
                    .map_err(|e| Failed::from(e.to_string()))
            });
            trials.push(trial.with_ignored_flag(gate.is_some()));
        }
    }
    let conclusion = libtest_mimic::run(&args, trials);
    // Each run cleans up its own schema / key prefix in the server stores.
    if let Err(e) = runtime.block_on(harness::clean_up(&stores)) {
        eprintln!("behaviour suite: clean-up failed: {e}");
        std::process::exit(1);
    }
    conclusion.exit();
}
