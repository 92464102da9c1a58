//! The change-capture scenarios PostgreSQL (`tests/cdc.rs`) and MariaDB
//! (`tests/cdc_mysql.rs`) both run, written once against
//! [`Engine`]; each test file keeps only what its engine adds. Needs
//! `#[path = "support/cdc.rs"] mod cdc_support;` and
//! `#[path = "support/cdc_sql.rs"] mod cdc_sql;` beside
//! `#[path = "support/cdc_scenarios.rs"] mod cdc_scenarios;`.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use polyrouter::store::EntityInfo;
use polyrouter::sync::capture::{CapturedBatch, ChangeSource};
use polyrouter::sync::{ChangeEvent, Operation, SyncHandle};
use polyrouter::{FieldDef, FieldKind, Key, KeyKind, Router, Schema, Store, Value};

use crate::cdc_sql::{Arg, Engine};
use crate::cdc_support::{Seen, n_of};

static FIELDS: [FieldDef; 3] = [
    FieldDef::required("id", FieldKind::String),
    FieldDef::required("n", FieldKind::Int),
    FieldDef::nullable("note", FieldKind::String),
];
/// The entity as its `sql` columns declare it.
pub static ITEM: Schema = Schema {
    name: "item",
    key: "id",
    key_kind: KeyKind::Str,
    partition_key: None,
    version: None,
    fields: &FIELDS,
};

/// `item` in `table` of `store`.
pub fn item_in(store: &str, table: &str) -> EntityInfo {
    EntityInfo {
        table: table.to_string(),
        store: store.into(),
        ..EntityInfo::new(&ITEM)
    }
}

/// A store `main` of `kind` at `url` whose `item` (in `table`) is captured
/// on an in-memory bus, a handler projection `seen` and a replica
/// projection into the in-memory store `replica`.
pub fn config(kind: &str, url: &str, table: &str) -> String {
    format!(
        r#"
[stores.main]
kind = "{kind}"
url = "{url}"

[stores.replica]
kind = "memory"

[buses.events]
kind = "memory"

[sync]
store = "main"
table = "{table}_sync"
lease = "1s"

[entities.item]
store = "main"
table = "{table}"
change_capture = {{ bus = "events", slot = "{table}", interval = "20ms" }}
sql = {{ key = "id", columns = {{ id = "string", n = "int", note = "string?" }} }}

[projections.seen]
kind = "handler"
entities = ["item"]

[projections.item_replica]
kind = "replica"
entities = ["item"]
store = "replica"
"#
    )
}

/// Starts the router's sync with a [`Seen`] as the `seen` handler.
pub async fn start_seen(router: &Router) -> (SyncHandle, Seen) {
    let seen = Seen::default();
    let sync = router
        .sync_builder()
        .handler("seen", seen.clone())
        .start()
        .await
        .unwrap();
    (sync, seen)
}

/// Plain SQL, never through polyrouter, on the captured `table` (rows
/// written with `_pr_version = version`, never bumped): `a` inserted, a
/// committed transaction inserting `b` and `c` and updating `a`, a
/// rolled-back one (`never`), `b` updated, `c` deleted, `b` renamed `d`.
pub async fn plain_sql_changes<E: Engine>(db: &E, table: &str, version: i64) {
    let t = db.quote(table);
    let (p1, p2, p3) = (db.ph(1), db.ph(2), db.ph(3));
    let ins =
        format!("INSERT INTO {t} (id, n, note, _pr_version) VALUES ({p1}, {p2}, {p3}, {version})");
    let row = |k: &str, n: i64, note: Option<&str>| -> (String, Vec<Arg>) {
        let note = note.map_or(Arg::Null, Arg::from);
        (ins.clone(), vec![k.into(), n.into(), note])
    };
    let (sql, args) = row("a", 1, Some("first"));
    db.execute(&sql, &args).await.unwrap();
    // A multi-row transaction.
    db.transaction(
        &[
            row("b", 2, None),
            row("c", 3, None),
            (format!("UPDATE {t} SET n = n + 100 WHERE id = 'a'"), vec![]),
        ],
        true,
    )
    .await
    .unwrap();
    // A rolled-back transaction: nothing of it may be emitted.
    db.transaction(
        &[
            row("never", 9, Some("rolled back")),
            (format!("UPDATE {t} SET n = -1 WHERE id = 'a'"), vec![]),
        ],
        false,
    )
    .await
    .unwrap();
    for sql in [
        format!("UPDATE {t} SET n = 20, note = 'x' WHERE id = 'b'"),
        format!("DELETE FROM {t} WHERE id = 'c'"),
        // A key changed by UPDATE: the old key is deleted, the new one put.
        format!("UPDATE {t} SET id = 'd' WHERE id = 'b'"),
    ] {
        db.execute(&sql, &[]).await.unwrap();
    }
}

/// Writes through polyrouter's store are captured too: `e` put, then
/// deleted (a tombstone row, an update, captured as a delete).
pub async fn put_and_delete_through_the_store(router: &Router, table: &str) {
    let main = router.store("main").unwrap().clone();
    let main_info = item_in("main", table);
    let mut r = polyrouter::Record::new(Key::from("e"));
    r.set("id", Value::from("e"));
    r.set("n", Value::I64(5));
    r.set("note", Value::Null);
    for op in [
        polyrouter::store::WriteOp::Put {
            record: r,
            precondition: polyrouter::Precondition::None,
            ttl: None,
        },
        polyrouter::store::WriteOp::Delete {
            key: Key::from("e"),
            precondition: polyrouter::Precondition::None,
        },
    ] {
        main.write(&main_info, vec![op], true).await.unwrap();
    }
}

/// (operation, n) of `k`'s events, in delivery order.
pub fn ops(got: &BTreeMap<String, Vec<ChangeEvent>>, k: &str) -> Vec<(Operation, Option<i64>)> {
    got.get(k)
        .map(|v| v.iter().map(|e| (e.op, n_of(e))).collect())
        .unwrap_or_default()
}

/// The events of [`plain_sql_changes`] and
/// [`put_and_delete_through_the_store`] (and three more keys of the
/// engine's own, 9 keys in all), each once with an id of its own under
/// `{id_prefix}:{table}:`, versions growing per key.
pub fn assert_crud_events(got: &BTreeMap<String, Vec<ChangeEvent>>, table: &str, id_prefix: &str) {
    use Operation::{Delete, Put};
    assert_eq!(ops(got, "a"), vec![(Put, Some(1)), (Put, Some(101))]);
    assert_eq!(
        ops(got, "b"),
        vec![(Put, Some(2)), (Put, Some(20)), (Delete, None)]
    );
    assert_eq!(ops(got, "c"), vec![(Put, Some(3)), (Delete, None)]);
    assert_eq!(ops(got, "d"), vec![(Put, Some(20))]);
    assert_eq!(ops(got, "e"), vec![(Put, Some(5)), (Delete, None)]);
    assert!(
        !got.contains_key("never"),
        "a rolled-back insert was emitted"
    );
    assert_eq!(got.len(), 9, "{:?}", got.keys());
    let mut ids = BTreeSet::new();
    for (k, events) in got {
        for w in events.windows(2) {
            assert!(
                w[0].version < w[1].version,
                "{k}: versions must grow: {} then {}",
                w[0].version,
                w[1].version
            );
        }
        for e in events {
            assert_eq!((e.store.as_str(), e.entity.as_str()), ("main", "item"));
            assert!(
                e.id.starts_with(&format!("{id_prefix}:{table}:")),
                "{}",
                e.id
            );
            assert!(ids.insert(e.id.clone()), "id {} twice", e.id);
        }
    }
    // The transaction's changes share its commit time.
    assert_eq!(got["b"][0].time, got["c"][0].time);
    let a_first = &got["a"][0];
    assert_eq!(
        a_first.data.as_ref().unwrap()["note"],
        serde_json::json!("first")
    );
    assert!(
        a_first.data.as_ref().unwrap().get("_pr_version").is_none(),
        "only the entity's fields travel"
    );
}

/// The replica projection holds the table's final state, at the captured
/// versions (`extra`: more (key, n) rows the engine wrote); the capture
/// saw 15 changes and no error.
pub async fn assert_replica_and_status(
    router: &Router,
    sync: &SyncHandle,
    table: &str,
    got: &BTreeMap<String, Vec<ChangeEvent>>,
    extra: &[(&str, i64)],
) {
    let replica = router.store("replica").unwrap().clone();
    let info = item_in("replica", table);
    let get = |k: &str| {
        let (replica, info, k) = (replica.clone(), info.clone(), k.to_string());
        async move { replica.get(&info, &Key::from(k.as_str())).await.unwrap() }
    };
    let a = get("a").await.expect("a in the replica");
    assert_eq!(a.value("n"), &Value::I64(101));
    assert_eq!(a.version, got["a"][1].version);
    assert_eq!(get("d").await.unwrap().value("n"), &Value::I64(20));
    for (k, n) in extra {
        assert_eq!(get(k).await.unwrap().value("n"), &Value::I64(*n), "{k}");
    }
    assert!(get("b").await.is_none() && get("c").await.is_none() && get("e").await.is_none());
    let status = sync.status();
    assert_eq!(status.captures.len(), 1);
    assert_eq!(status.captures[0].captured, 15);
    assert!(status.captures[0].last_error.is_none());
}

/// What `polyrouter sync status` reports of the `item` capture's slot.
pub async fn item_retention(router: &Router) -> polyrouter::sync::capture::Retention {
    polyrouter::sync::capture_retention(
        router,
        router.routes().find(|r| r.entity == "item").unwrap(),
    )
    .await
    .unwrap()
}

/// A prepared (twice: idempotent) change source of `item` in `table` and
/// its first read after three upserts of one key: the same ids and
/// versions when read again, versions growing.
pub async fn source_with_three_events<E: Engine>(
    router: &Router,
    db: &E,
    table: &str,
) -> (Arc<dyn ChangeSource>, CapturedBatch) {
    let store = router.store("main").unwrap().clone();
    let info = item_in("main", table);
    store.ensure_entity(&info).await.unwrap();
    let source = store.change_source(&info, table).unwrap();
    source.prepare().await.unwrap();
    source.prepare().await.unwrap(); // idempotent
    for i in 0..3i64 {
        db.execute(&db.upsert(table), &["k".into(), i.into()])
            .await
            .unwrap();
    }
    let first = source.read(100).await.unwrap();
    let again = source.read(100).await.unwrap();
    assert_eq!(first.events.len(), 3);
    assert_eq!(
        ids(&first),
        ids(&again),
        "a re-read gives the same ids and versions"
    );
    assert!(first.events.windows(2).all(|w| w[0].version < w[1].version));
    (source, first)
}

/// (id, version) of a batch's events.
pub fn ids(b: &CapturedBatch) -> Vec<(String, u64)> {
    b.events.iter().map(|e| (e.id.clone(), e.version)).collect()
}

/// After `first` is committed nothing of it is read again; the retention
/// is at or past it (with `status` when given); after `remove` there is
/// no retention to report.
pub async fn commit_read_and_remove(
    source: &dyn ChangeSource,
    first: &CapturedBatch,
    status: Option<&str>,
) {
    source.commit(first.position.unwrap()).await.unwrap();
    let after = source.read(100).await.unwrap();
    assert!(after.events.is_empty(), "{:?}", ids(&after));
    let r = source.retention().await.unwrap();
    assert!(r.position >= first.position.unwrap());
    if let Some(status) = status {
        assert_eq!(r.status, status);
    }
    source.remove().await.unwrap();
    assert!(source.retention().await.is_err(), "the slot is gone");
}
