//! The Cosmos DB outbox under SIGKILL: a child process writes (puts,
//! deletes, atomic batches within one partition) on an outbox route and is
//! killed by its pid at a different point each round; afterwards every
//! key's events must be exactly its versions 1..=current, each once, in
//! order, and the live records' after-images must match them: no write
//! without its event, no event without its write.
//!
//! Needs the emulator (`scripts/emulators/start`, or
//! `POLYROUTER_COSMOS_ENDPOINT`); fails loudly without it. Works in its
//! own database `pr_crash_<pid>_<ms>`, deleted at the end.
#![cfg(feature = "cosmos")]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use polyrouter::backends::cosmos::{CosmosConfig, CosmosStore};
use polyrouter::store::{EntityInfo, OutboxSpec, WriteOp};
use polyrouter::sync::Operation;
use polyrouter::{FieldDef, FieldKind, Key, KeyKind, Precondition, Record, Schema, Store, Value};

const KEY: &str =
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";
const CHILD_ENV: &str = "PR_COSMOS_CRASH_DB";
/// Kill rounds; round `r` kills after `r * 3 % 11 + 1` acknowledged writes.
const ROUNDS: usize = 12;
const KEYS: usize = 6;

static FIELDS: [FieldDef; 3] = [
    FieldDef::required("id", FieldKind::String),
    FieldDef::required("grp", FieldKind::String),
    FieldDef::required("n", FieldKind::Int),
];
static ITEM: Schema = Schema {
    name: "crash_item",
    key: "id",
    key_kind: KeyKind::Str,
    partition_key: Some("grp"),
    version: None,
    fields: &FIELDS,
};

fn endpoint() -> String {
    std::env::var("POLYROUTER_COSMOS_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:8081/".into())
}

async fn store(db: &str) -> CosmosStore {
    let cfg = CosmosConfig::new(endpoint(), KEY, db).create_if_missing(true);
    CosmosStore::connect("s", cfg).await.unwrap_or_else(|e| {
        panic!("the Cosmos emulator is not running; start it with `scripts/emulators/start`: {e}")
    })
}

fn entity() -> EntityInfo {
    EntityInfo {
        store: "s".into(),
        outbox: Some(OutboxSpec::default()),
        ..EntityInfo::new(&ITEM)
    }
}

fn item(k: usize, n: i64) -> Record {
    let mut r = Record::new(Key::from(format!("k{k}")));
    r.set("id", Value::from(format!("k{k}")));
    // Keys 0..3 share partition `a` (atomic batches), the others their own.
    let grp = if k < 3 {
        "a".to_string()
    } else {
        format!("g{k}")
    };
    r.set("grp", Value::from(grp));
    r.set("n", Value::I64(n));
    r
}

fn put(r: Record) -> WriteOp {
    WriteOp::Put {
        record: r,
        precondition: Precondition::None,
        ttl: None,
    }
}

/// The child: writes forever, printing `ACK` after each acknowledged write.
async fn child(db: &str) {
    let s = store(db).await;
    let e = entity();
    s.ensure_entity(&e).await.unwrap();
    let mut n = i64::from(std::process::id() % 1000);
    loop {
        n += 1;
        let k = (n as usize) % KEYS;
        let ops = match n % 4 {
            0 => vec![put(item(0, n)), put(item(1, n)), put(item(2, n))],
            1 => vec![WriteOp::Delete {
                key: Key::from(format!("k{k}")),
                precondition: Precondition::None,
            }],
            _ => vec![put(item(k, n))],
        };
        // Conflicts and flakes are fine here: only the state matters.
        if s.write(&e, ops, true).await.is_ok() {
            println!("ACK");
        }
    }
}

#[tokio::test]
async fn crash_child() {
    // Runs only when re-executed by `killed_writers_leave_every_event_with_its_write`.
    if let Ok(db) = std::env::var(CHILD_ENV) {
        child(&db).await;
    }
}

#[tokio::test]
async fn killed_writers_leave_every_event_with_its_write() {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let db = format!("pr_crash_{}_{ms}", std::process::id());
    let s = store(&db).await;
    let e = entity();
    s.ensure_entity(&e).await.unwrap();
    let exe = std::env::current_exe().unwrap();
    for round in 0..ROUNDS {
        let mut c = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &db)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let acks_wanted = round * 3 % 11 + 1;
        let mut lines = BufReader::new(c.stdout.take().unwrap()).lines();
        let mut acks = 0;
        while acks < acks_wanted {
            match lines.next() {
                Some(Ok(l)) if l == "ACK" => acks += 1,
                Some(Ok(_)) => {}
                _ => panic!("round {round}: the child ended before {acks_wanted} writes"),
            }
        }
        // SIGKILL, by its pid, in the middle of whatever it sends next.
        c.kill().unwrap();
        c.wait().unwrap();
    }

    // Every event, oldest first, without removing any.
    let events = s.outbox_fetch(&e, 1000).await.unwrap();
    assert!(events.len() < 1000, "fetch them all");
    let mut by_key: BTreeMap<String, Vec<(u64, Operation, Option<i64>)>> = BTreeMap::new();
    for ev in &events {
        let n = ev
            .event
            .data
            .as_ref()
            .and_then(|d| d.get("n"))
            .and_then(|v| v.as_i64());
        by_key.entry(ev.event.key.to_string()).or_default().push((
            ev.event.version,
            ev.event.op,
            n,
        ));
    }
    let mut checked = 0;
    for k in 0..KEYS {
        let key = Key::from(format!("k{k}"));
        let evs = by_key.remove(&key.to_string()).unwrap_or_default();
        let versions: Vec<u64> = evs.iter().map(|e| e.0).collect();
        let want: Vec<u64> = (1..=versions.len() as u64).collect();
        assert_eq!(versions, want, "{key}: one event per version, in order");
        let live = s.get(&e, &key).await.unwrap();
        match (live, evs.last()) {
            (Some(r), Some(&(v, Operation::Put, n))) => {
                assert_eq!(r.version, v, "{key}: the record is at its last event");
                assert_eq!(
                    r.get("n").and_then(|v| match v {
                        Value::I64(i) => Some(*i),
                        _ => None,
                    }),
                    n,
                    "{key}: after-image"
                );
            }
            (None, None) => {}
            // Deleted: its last event is the delete (its tombstone's version).
            (None, Some(&(_, Operation::Delete, _))) => {}
            (live, last) => panic!("{key}: record {live:?} but last event {last:?}"),
        }
        checked += evs.len();
    }
    assert!(by_key.is_empty(), "events of unknown keys: {by_key:?}");
    assert!(checked > ROUNDS, "the children wrote: {checked} events");
    eprintln!("{ROUNDS} children killed; {checked} events checked");
    s.delete_database().await.unwrap();
}
