//! The outbox under SIGKILL: a child process (this test binary,
//! re-executed with `OUTBOX_CRASH_CHILD` set) writes notes through an
//! outbox route — puts, deletes, two-row batches — and is killed with
//! SIGKILL by its pid at many points; then every row is checked against
//! the outbox: each key's events have versions 1, 2, 3, … without a gap or
//! a duplicate, the row is the last event's (same version and body; a
//! delete leaves no row visible), and every write the child acknowledged
//! has its event. Real stores: SQLite (a file under a temp dir) and the
//! machine's PostgreSQL (a table unique to the run, dropped at the end).
//!
//! ```text
//! cargo test --features postgres --test outbox_crash
//! ```

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use polyrouter::store::{EntityInfo, OutboxSpec};
use polyrouter::sync::Operation;
use polyrouter::{Entity, Key, Router};
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[entity(name = "note", key = "id")]
struct Note {
    id: String,
    body: String,
    #[entity(version)]
    version: u64,
}

fn note(id: &str, body: String) -> Note {
    Note {
        id: id.into(),
        body,
        version: 0,
    }
}

const KEYS: usize = 5;
const ROUNDS: u64 = 12;

fn config(store: &str, table: &str) -> String {
    format!(
        "{store}\n[buses.events]\nkind = \"memory\"\n\n[entities.note]\nstore = \"s\"\ntable = \"{table}\"\noutbox = {{ bus = \"events\", after_image = true }}\n"
    )
}

/// The child: writes until killed, printing `ACK key version` after each
/// acknowledged write.
async fn child(cfg: &str) {
    let router = Router::from_toml_str(cfg).await.expect("child router");
    let notes = router.repo::<Note>().await.expect("repo");
    let round: usize = std::env::var("OUTBOX_CRASH_ROUND")
        .unwrap()
        .parse()
        .unwrap();
    for i in 0usize.. {
        let k = format!("k{}", (i * 3 + round) % KEYS);
        let body = format!("r{round}-{i}");
        match i % 6 {
            4 => {
                // The delete's version is not returned: acknowledged as 0.
                if notes.delete(k.as_str()).await.expect("delete") {
                    println!("ACK {k} 0");
                }
            }
            5 => {
                let k2 = format!("k{}", (i * 3 + round + 1) % KEYS);
                let vs = notes
                    .put_many(&[note(&k, body.clone()), note(&k2, body)])
                    .await
                    .expect("put_many");
                println!("ACK {k} {}", vs[0]);
                println!("ACK {k2} {}", vs[1]);
            }
            _ => {
                let v = notes.put(&note(&k, body)).await.expect("put");
                println!("ACK {k} {v}");
            }
        }
    }
}

/// Runs `ROUNDS` children, each killed after a different number of
/// acknowledged writes, then checks every row against the outbox.
async fn crash_and_check(test: &str, store_toml: String, table: String) {
    let cfg = config(&store_toml, &table);
    let mut acked: Vec<(String, u64)> = Vec::new();
    for round in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "--nocapture", "--test-threads=1"])
            .arg(test)
            .env("OUTBOX_CRASH_CHILD", &cfg)
            .env("OUTBOX_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        // Kill after a different number of acknowledgements each round (so
        // the kill lands at different points of the write cycle).
        let kill_after = 5 + round * 7;
        let mut seen = 0;
        for line in out.lines() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix("ACK ") {
                let (k, v) = rest.split_once(' ').unwrap();
                acked.push((k.to_string(), v.parse().unwrap()));
                seen += 1;
                if seen == kill_after {
                    child.kill().unwrap(); // SIGKILL, by this child's pid
                    break;
                }
            }
        }
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "round {round}: the child must be killed, not exit"
        );
    }
    // Check, in a fresh process state.
    let router = Router::from_toml_str(&cfg).await.unwrap();
    let notes = router.repo::<Note>().await.unwrap();
    let s = router.store("s").unwrap().clone();
    let e = EntityInfo {
        store: "s".into(),
        table: table.clone(),
        outbox: Some(OutboxSpec::default()),
        ..EntityInfo::new(Note::schema())
    };
    let events = s.outbox_fetch(&e, 1_000_000).await.unwrap();
    assert_eq!(events.len() as u64, s.outbox_len(&e).await.unwrap());
    let mut per_key: BTreeMap<String, Vec<(Operation, u64, Option<String>)>> = BTreeMap::new();
    for ev in &events {
        let Key::Str(k) = &ev.event.key else {
            panic!("a string key")
        };
        let body = ev
            .event
            .data
            .as_ref()
            .map(|d| d["body"].as_str().unwrap().to_string());
        per_key
            .entry(k.clone())
            .or_default()
            .push((ev.event.op, ev.event.version, body));
    }
    for i in 0..KEYS {
        let k = format!("k{i}");
        let evs = per_key.get(&k).cloned().unwrap_or_default();
        let versions: Vec<u64> = evs.iter().map(|e| e.1).collect();
        assert_eq!(
            versions,
            (1..=evs.len() as u64).collect::<Vec<_>>(),
            "key {k}: one event per committed write, versions without gap or repeat"
        );
        let row = notes.get(k.as_str()).await.unwrap();
        match (evs.last(), row) {
            (None, None) => {}
            (Some((Operation::Put, v, body)), Some(r)) => {
                assert_eq!(r.version, *v, "key {k}: the row is the last event's");
                assert_eq!(Some(&r.body), body.as_ref(), "key {k}");
            }
            (Some((Operation::Delete, _, _)), None) => {}
            (last, row) => panic!("key {k}: last event {last:?} but row {row:?}"),
        }
    }
    for (k, v) in &acked {
        let evs = &per_key[k];
        if *v > 0 {
            assert!(
                evs.iter().any(|e| e.1 == *v && e.0 == Operation::Put),
                "acknowledged put {k} v{v} has its event"
            );
        } else {
            assert!(
                evs.iter().any(|e| e.0 == Operation::Delete),
                "acknowledged delete of {k}"
            );
        }
    }
    eprintln!(
        "{ROUNDS} SIGKILLs, {} acknowledged writes, {} events, every row matches its last event",
        acked.len(),
        events.len()
    );
    s.drop_entity(&e).await.unwrap();
}

fn child_mode() -> bool {
    if let Ok(cfg) = std::env::var("OUTBOX_CRASH_CHILD") {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(child(&cfg));
        return true;
    }
    false
}

#[test]
fn sqlite_outbox_rows_and_events_survive_sigkill_together() {
    if child_mode() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = format!(
        "[stores.s]\nkind = \"sqlite\"\nurl = \"sqlite://{}/crash.db\"\n",
        dir.path().display()
    );
    run(
        "sqlite_outbox_rows_and_events_survive_sigkill_together",
        store,
        "notes".into(),
    );
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_outbox_rows_and_events_survive_sigkill_together() {
    if child_mode() {
        return;
    }
    let store =
        "[stores.s]\nkind = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/test\"\n"
            .to_string();
    let table = format!("pr_outbox_crash_{}", std::process::id());
    run(
        "postgres_outbox_rows_and_events_survive_sigkill_together",
        store,
        table,
    );
}

/// Runs the crash rounds; the children re-run exactly the test `test`.
fn run(test: &str, store: String, table: String) {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(crash_and_check(test, store, table));
}
