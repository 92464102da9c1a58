//! The T-SQL of the outbox and of versioned apply, checked without a
//! server (statements and parameters, with scripted lock results), and
//! live cases run only with `POLYROUTER_TEST_SQLSERVER_URL`.

use super::live::{drop_schema, open_fresh};
use super::*;
use crate::backends::sql::apply_versioned;
use crate::store::{Applied, OutboxSpec, VersionedChange};
use crate::sync::{ChangeEvent, Operation};

fn outbox_entity() -> EntityInfo {
    EntityInfo {
        table: "items".into(),
        store: "db".into(),
        outbox: Some(OutboxSpec::default()),
        ..EntityInfo::new(&ITEM)
    }
}

/// The events a run recorded in the outbox, in order.
fn events(t: &TableSql, calls: &[(String, Vec<Param<'_>>)]) -> Vec<ChangeEvent> {
    calls
        .iter()
        .filter(|(sql, _)| *sql == t.outbox.insert)
        .map(|(_, p)| match &p[..] {
            [Param::Text(json)] => ChangeEvent::from_json(json.as_bytes()).unwrap(),
            other => panic!("outbox insert binds {other:?}"),
        })
        .collect()
}

#[test]
fn outbox_statements() {
    let t = table();
    let o = &t.outbox;
    assert_eq!(o.table, "items__outbox");
    let create = tsql::create_outbox(&t);
    assert_eq!(
        create.sql,
        format!(
            "IF OBJECT_ID(@P1, N'U') IS NULL CREATE TABLE [s].[items__outbox] ([seq] BIGINT IDENTITY(1,1) PRIMARY KEY, [event] NVARCHAR(MAX) {COLL} NOT NULL)"
        )
    );
    assert_eq!(create.params, vec![text("[s].[items__outbox]")]);
    assert_eq!(
        o.insert,
        "INSERT INTO [s].[items__outbox] ([event]) VALUES (@P1)"
    );
    assert_eq!(
        o.fetch,
        "SELECT [seq], [event] FROM [s].[items__outbox] ORDER BY [seq] OFFSET 0 ROWS FETCH NEXT @P1 ROWS ONLY"
    );
    assert_eq!(o.count, "SELECT count(*) FROM [s].[items__outbox]");
    assert_eq!(o.drop, "DROP TABLE IF EXISTS [s].[items__outbox]");
    // Removal binds the ids as numbers, skips foreign ids, and stays under
    // the parameter limit.
    let ids: Vec<String> = (1..=2500)
        .map(|i| i.to_string())
        .chain(["x".into()])
        .collect();
    let rm = o.remove(&*t.dialect, &ids);
    assert_eq!(rm.len(), 3);
    assert!(
        rm[0]
            .sql
            .starts_with("DELETE FROM [s].[items__outbox] WHERE [seq] IN (@P1, @P2")
    );
    assert_eq!(rm[0].params.len(), 1000);
    assert_eq!(rm[2].params.len(), 500);
    assert_eq!(rm[2].params[499], Param::Int(2500));
}

#[tokio::test]
async fn writes_record_their_event_in_the_transaction_only_when_applied() {
    let t = table();
    let e = outbox_entity();
    let target = Target::new("db", &e);
    let run = |ops: Vec<WriteOp>, locks: Vec<Option<i64>>| {
        let t = &t;
        async move {
            let enc = write::locked_writes(target, t, &ops, NOW).unwrap();
            let mut r = Recorder {
                locks: locks.into(),
                calls: Vec::new(),
            };
            let out = write::apply_all_locked(&mut r, target, t, &ops, enc, NOW).await;
            (out, r.calls)
        }
    };
    // A put over a live version 4: the event at 5, after the row's write.
    let (out, calls) = run(vec![put("a", Precondition::None)], vec![Some(4)]).await;
    assert_eq!(out.unwrap(), vec![WriteOutcome::Written { version: 5 }]);
    assert_eq!(calls.last().unwrap().0, t.outbox.insert);
    let ev = events(&t, &calls);
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].op, ev[0].version), (Operation::Put, 5));
    assert_eq!(ev[0].key, Key::from("a"));
    assert_eq!(ev[0].data.as_ref().unwrap()["name"], "v");
    // A delete of a live record: a Delete event at the tombstone's version.
    let (out, calls) = run(vec![del("a", Precondition::None)], vec![Some(5)]).await;
    assert_eq!(out.unwrap(), vec![WriteOutcome::Deleted { existed: true }]);
    let ev = events(&t, &calls);
    assert_eq!((ev[0].op, ev[0].version), (Operation::Delete, 6));
    // Deleting an absent key, or a tombstone, records nothing.
    let (_, calls) = run(vec![del("a", Precondition::None)], vec![None]).await;
    assert!(events(&t, &calls).is_empty());
    let (_, calls) = run(vec![del("a", Precondition::None)], vec![Some(-6)]).await;
    assert!(events(&t, &calls).is_empty());
    // A failed precondition records nothing.
    let (out, calls) = run(vec![put("a", Precondition::Version(9))], vec![Some(5)]).await;
    assert!(out.is_err());
    assert!(events(&t, &calls).is_empty());
    // Without an outbox nothing is inserted anywhere.
    let plain = EntityInfo::new(&ITEM);
    let target = Target::new("db", &plain);
    let ops = vec![put("a", Precondition::None)];
    let enc = write::locked_writes(target, &t, &ops, NOW).unwrap();
    let mut r = Recorder {
        locks: vec![None].into(),
        calls: Vec::new(),
    };
    write::apply_all_locked(&mut r, target, &t, &ops, enc, NOW)
        .await
        .unwrap();
    assert!(r.calls.iter().all(|(sql, _)| !sql.contains("__outbox")));
}

fn at(id: &str, version: u64) -> VersionedChange {
    let mut r = rec(id, "v");
    r.version = version;
    VersionedChange::put(r)
}

/// Applies changes with scripted lock results: outcomes and statements.
async fn run_apply(
    t: &TableSql,
    e: &EntityInfo,
    changes: Vec<VersionedChange>,
    locks: Vec<Option<i64>>,
) -> (Vec<Applied>, Vec<(String, Vec<Param<'static>>)>) {
    let mut r = Recorder {
        locks: locks.into(),
        calls: Vec::new(),
    };
    let out = apply_versioned(&mut r, Target::new("db", e), t, &changes, NOW)
        .await
        .unwrap();
    (out, r.calls)
}

#[tokio::test]
async fn versioned_apply_locks_then_writes_only_newer_changes() {
    let t = table();
    let e = outbox_entity();
    let lock = |id: &str| (t.lock.clone(), vec![Param::Int(NOW), text(id)]);
    // Absent: inserted at exactly the change's version, no expiry.
    let (out, calls) = run_apply(&t, &e, vec![at("a", 7)], vec![None]).await;
    assert_eq!(out, vec![Applied::Applied]);
    let mut row = row_of("a");
    row.extend([Param::Int(7), Param::Null(FieldKind::Int)]);
    assert_eq!(calls[0], lock("a"));
    assert_eq!(calls[1], (t.insert.clone(), row));
    let ev = events(&t, &calls);
    assert_eq!((ev[0].op, ev[0].version), (Operation::Put, 7));
    // Stale against a live version, a tombstone, or the same version:
    // nothing written, nothing recorded.
    for (locked, current) in [(Some(9), 9), (Some(-8), 8), (Some(7), 7)] {
        let (out, calls) = run_apply(&t, &e, vec![at("a", 7)], vec![locked]).await;
        assert_eq!(out, vec![Applied::Stale { current }]);
        assert_eq!(calls, vec![lock("a")]);
    }
    // Over a tombstone at 6 or an expired row: the row is overwritten.
    for locked in [Some(-6), Some(0)] {
        let (out, calls) = run_apply(&t, &e, vec![at("a", 7)], vec![locked]).await;
        assert_eq!(out, vec![Applied::Applied]);
        let mut row = row_of("a");
        row.remove(0);
        row.extend([Param::Int(7), Param::Null(FieldKind::Int), text("a")]);
        assert_eq!(calls[1], (t.update.clone(), row));
    }
    // A delete of a live record leaves a tombstone at its version.
    let del = VersionedChange::delete(Key::from("a"), 8);
    let (out, calls) = run_apply(&t, &e, vec![del.clone()], vec![Some(7)]).await;
    assert_eq!(out, vec![Applied::Applied]);
    assert_eq!(
        calls[1],
        (
            t.tombstone.clone(),
            vec![Param::Int(8), Param::Int(-NOW), text("a")]
        )
    );
    let ev = events(&t, &calls);
    assert_eq!((ev[0].op, ev[0].version), (Operation::Delete, 8));
    // A delete of an absent key inserts a tombstone row (placeholders in
    // NOT NULL columns), so older puts stay out.
    let (_, calls) = run_apply(&t, &e, vec![del.clone()], vec![None]).await;
    let (sql, params) = &calls[1];
    assert_eq!(sql, &t.insert);
    assert_eq!(params[0], text("a"));
    assert_eq!(params[1], text(""));
    assert_eq!(
        params[params.len() - 2..],
        [Param::Int(8), Param::Int(-NOW)]
    );
    // Zero retention: the row goes.
    let mut zero = outbox_entity();
    zero.tombstone_retention = Duration::ZERO;
    let mut tz = table();
    tz.tombstone_retention = Duration::ZERO;
    let (out, calls) = run_apply(&tz, &zero, vec![del], vec![Some(7)]).await;
    assert_eq!(out, vec![Applied::Applied]);
    assert_eq!(calls[1], (tz.delete.clone(), vec![text("a")]));
    // Two changes of one key in one call: the second sees the first (the
    // lock reads what the first wrote).
    let (out, _) = run_apply(&t, &e, vec![at("b", 3), at("b", 2)], vec![None, Some(3)]).await;
    assert_eq!(out, vec![Applied::Applied, Applied::Stale { current: 3 }]);
}

#[tokio::test]
async fn live_outbox_and_versioned_apply() {
    let Some((store, schema)) = open_fresh().await else {
        return;
    };
    let e = EntityInfo {
        table: "obx".into(),
        store: "db".into(),
        outbox: Some(OutboxSpec::default()),
        ..EntityInfo::new(&ITEM)
    };
    store.ensure_entity(&e).await.unwrap();
    store.ensure_entity(&e).await.unwrap(); // idempotent
    store
        .write(&e, vec![put("a", Precondition::None)], true)
        .await
        .unwrap();
    store
        .write(
            &e,
            vec![put("b", Precondition::None), put("c", Precondition::None)],
            true,
        )
        .await
        .unwrap();
    store
        .write(&e, vec![del("a", Precondition::None)], true)
        .await
        .unwrap();
    assert!(
        store
            .write(&e, vec![put("a", Precondition::Version(9))], true)
            .await
            .is_err()
    );
    assert_eq!(store.outbox_len(&e).await.unwrap(), 4);
    let got = store.outbox_fetch(&e, 10).await.unwrap();
    let seen: Vec<(String, Operation, u64)> = got
        .iter()
        .map(|o| (o.event.key.to_string(), o.event.op, o.event.version))
        .collect();
    assert_eq!(seen[0], ("a".into(), Operation::Put, 1));
    assert_eq!(seen[3], ("a".into(), Operation::Delete, 2));
    let ids: Vec<String> = got.iter().map(|o| o.id.clone()).collect();
    store.outbox_remove(&e, &ids).await.unwrap();
    assert_eq!(store.outbox_len(&e).await.unwrap(), 0);
    // Versioned apply.
    let out = store
        .apply_versioned(
            &e,
            vec![
                at("k", 5),
                at("k", 3),
                VersionedChange::delete(Key::from("k"), 6),
                at("k", 6),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        out,
        vec![
            Applied::Applied,
            Applied::Stale { current: 5 },
            Applied::Applied,
            Applied::Stale { current: 6 }
        ]
    );
    assert!(store.get(&e, &Key::from("k")).await.unwrap().is_none());
    assert_eq!(store.outbox_len(&e).await.unwrap(), 2);
    store.drop_entity(&e).await.unwrap();
    drop_schema(&store, &schema).await;
}
