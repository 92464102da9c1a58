//! Versioned apply of whole batches (as a migration backfill or a
//! projection sends them): every change gets the answer it would get alone,
//! in input order, whatever else the batch holds; concurrent appliers of
//! the same keys end at each key's highest version.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use polyrouter::store::{Applied, EntityInfo, VersionedChange, WriteOp};
use polyrouter::{Capabilities, Entity, Error, Key, Precondition, Record, Store, Value};

use crate::behaviour;
use crate::entities::*;
use crate::harness::{Behaviour, Ctx};

pub fn behaviours() -> Vec<Behaviour> {
    let apply = |c: &Capabilities| (!c.versioned_apply).then_some("versioned apply");
    vec![
        behaviour!(versioned_apply_batch_mixes_every_case, apply),
        behaviour!(versioned_apply_large_batch, apply),
        behaviour!(versioned_apply_concurrent_batches, apply),
        behaviour!(versioned_apply_batch_of_integer_keys, apply),
    ]
}

fn info(ctx: &Ctx, tag: &str) -> EntityInfo {
    EntityInfo {
        store: "s".into(),
        table: format!("note_{tag}_{}", ctx.id),
        ..EntityInfo::new(Note::schema())
    }
}

fn at(id: &str, body: &str, version: u64) -> VersionedChange {
    let mut r = Record::from_entity(&note(id, body)).unwrap();
    r.version = version;
    VersionedChange::put(r)
}

fn gone(id: &str, version: u64) -> VersionedChange {
    VersionedChange::delete(Key::from(id), version)
}

/// The stored `(version, body)` of every key asked for (`None`: absent).
async fn stored(
    s: &dyn Store,
    e: &EntityInfo,
    ids: &[String],
) -> polyrouter::Result<Vec<Option<(u64, String)>>> {
    let keys: Vec<Key> = ids.iter().map(|i| Key::from(i.as_str())).collect();
    Ok(s.get_many(e, &keys)
        .await?
        .into_iter()
        .map(|r| {
            r.map(|r| {
                let body = match r.get("body") {
                    Some(Value::String(b)) => b.clone(),
                    other => panic!("body of {}: {other:?}", r.key),
                };
                (r.version, body)
            })
        })
        .collect())
}

async fn versioned_apply_batch_mixes_every_case(ctx: Ctx) -> polyrouter::Result<()> {
    let router = ctx.router().await?;
    let s = router.store("s").expect("store s").clone();
    let e = info(&ctx, "avb");
    s.ensure_entity(&e).await?;
    let before = vec![at("newer", "n5", 5), at("stale", "s5", 5), gone("tomb", 7)];
    assert!(
        s.apply_versioned(&e, before)
            .await?
            .iter()
            .all(|a| a.applied())
    );
    let ttl = ctx.caps().ttl;
    if ttl {
        let put = WriteOp::Put {
            record: Record::from_entity(&note("exp", "short-lived")).unwrap(),
            precondition: Precondition::None,
            ttl: Some(Duration::from_millis(1)),
        };
        s.write(&e, vec![put], true).await?;
        // Not a timing assert: waits until the row has expired.
        while s.get(&e, &Key::from("exp")).await?.is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut batch = vec![
        at("new", "new1", 1),  // never seen
        at("newer", "n6", 6),  // newer than the stored 5
        at("stale", "s3", 3),  // older than the stored 5
        at("tomb", "t6", 6),   // older than the tombstone at 7
        at("tomb", "t8", 8),   // newer than the tombstone
        gone("unseen", 4),     // a tombstone of a key never seen
        at("unseen", "u3", 3), // older than that tombstone
        at("dup", "d2", 2),    // one key three times in the batch
        at("dup", "d4", 4),
        at("dup", "d3", 3),
        gone("newer", 9),    // deletes what this batch stored
        at("zero", "z0", 0), // version 0 is never newer
    ];
    let mut want = vec![
        Applied::Applied,
        Applied::Applied,
        Applied::Stale { current: 5 },
        Applied::Stale { current: 7 },
        Applied::Applied,
        Applied::Applied,
        Applied::Stale { current: 4 },
        Applied::Applied,
        Applied::Applied,
        Applied::Stale { current: 4 },
        Applied::Applied,
        Applied::Stale { current: 0 },
    ];
    if ttl {
        batch.push(at("exp", "e2", 2)); // an expired row counts as absent
        want.push(Applied::Applied);
    }
    assert_eq!(s.apply_versioned(&e, batch).await?, want);
    let ids: Vec<String> = [
        "new", "newer", "stale", "tomb", "unseen", "dup", "zero", "exp",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let row = |v: u64, b: &str| Some((v, b.to_string()));
    assert_eq!(
        stored(s.as_ref(), &e, &ids).await?,
        vec![
            row(1, "new1"),
            None,
            row(5, "s5"),
            row(8, "t8"),
            None,
            row(4, "d4"),
            None,
            if ttl { row(2, "e2") } else { None },
        ]
    );
    // The tombstones the batch left keep older changes out.
    assert_eq!(
        s.apply_versioned(&e, vec![at("newer", "n8", 8), at("unseen", "u4", 4)])
            .await?,
        vec![Applied::Stale { current: 9 }, Applied::Stale { current: 4 }]
    );
    Ok(())
}

/// A batch larger than one SQL statement takes (PostgreSQL: 5 000 rows per
/// statement), half its keys already stored at a newer version.
async fn versioned_apply_large_batch(ctx: Ctx) -> polyrouter::Result<()> {
    let router = ctx.router().await?;
    let s = router.store("s").expect("store s").clone();
    let e = info(&ctx, "avl");
    s.ensure_entity(&e).await?;
    let sql = matches!(ctx.store.as_str(), "sqlite" | "postgres" | "mysql");
    let n: usize = if sql { 5_500 } else { 600 };
    let ids: Vec<String> = (0..n).map(|i| format!("k{i:05}")).collect();
    let newer: Vec<VersionedChange> = ids
        .iter()
        .step_by(2)
        .map(|id| at(id, "newer", 10))
        .collect();
    s.apply_versioned(&e, newer).await?;
    // Shuffled, so no two neighbours in the batch are neighbours in key order.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|i| (i * 7919) % n);
    let batch: Vec<VersionedChange> = order.iter().map(|i| at(&ids[*i], "batch", 5)).collect();
    let out = s.apply_versioned(&e, batch).await?;
    assert_eq!(out.len(), n);
    for (i, got) in order.iter().zip(&out) {
        let want = if i % 2 == 0 {
            Applied::Stale { current: 10 }
        } else {
            Applied::Applied
        };
        assert_eq!(got, &want, "key {}", ids[*i]);
    }
    for (i, got) in stored(s.as_ref(), &e, &ids).await?.into_iter().enumerate() {
        let want = if i % 2 == 0 {
            (10, "newer")
        } else {
            (5, "batch")
        };
        assert_eq!(got, Some((want.0, want.1.to_string())), "key {}", ids[i]);
    }
    Ok(())
}

/// Two appliers send batches of the same 50 keys: one the odd versions
/// 1..=19, the other the even ones 2..=20, each batch in its own key order.
/// Every version applies at most once per key, and every key ends at 20
/// with version 20's body.
async fn versioned_apply_concurrent_batches(ctx: Ctx) -> polyrouter::Result<()> {
    let router = ctx.router().await?;
    let s: Arc<dyn Store> = router.store("s").expect("store s").clone();
    let e = info(&ctx, "avcb");
    s.ensure_entity(&e).await?;
    let ids: Vec<String> = (0..50).map(|i| format!("c{i:02}")).collect();
    let mut tasks = Vec::new();
    for parity in [1u64, 0] {
        let (s, e, ids) = (s.clone(), e.clone(), ids.clone());
        tasks.push(tokio::spawn(async move {
            let mut applied: Vec<(String, u64)> = Vec::new();
            let mut stale: Vec<(String, u64, u64)> = Vec::new();
            for v in (1..=20u64).filter(|v| v % 2 == parity) {
                let mut order: Vec<usize> = (0..ids.len()).collect();
                order.sort_by_key(|i| (i * (3 + 2 * v as usize)) % 53);
                let batch = order
                    .iter()
                    .map(|i| at(&ids[*i], &format!("v{v}"), v))
                    .collect();
                let out = s.apply_versioned(&e, batch).await?;
                for (i, a) in order.iter().zip(out) {
                    match a {
                        Applied::Stale { current } => stale.push((ids[*i].clone(), v, current)),
                        _ => applied.push((ids[*i].clone(), v)),
                    }
                }
            }
            // A stale change met a newer version (the other applier's).
            for (k, v, current) in stale {
                assert!(current > v, "key {k}: version {v} stale against {current}");
            }
            Ok::<_, Error>(applied)
        }));
    }
    let mut per_key: HashMap<String, Vec<u64>> = HashMap::new();
    for t in tasks {
        for (k, v) in t.await.expect("applier")? {
            per_key.entry(k).or_default().push(v);
        }
    }
    for id in &ids {
        let mut vs = per_key.remove(id).unwrap_or_default();
        vs.sort_unstable();
        let n = vs.len();
        vs.dedup();
        assert_eq!(vs.len(), n, "key {id}: a version applied twice");
        assert_eq!(vs.last(), Some(&20), "key {id}: version 20 applied");
    }
    let want: Vec<_> = ids.iter().map(|_| Some((20, "v20".to_string()))).collect();
    assert_eq!(stored(s.as_ref(), &e, &ids).await?, want);
    Ok(())
}

/// Integer keys: the keys a set statement returns are matched to the
/// batch's (a mismatch would report applied changes as stale).
async fn versioned_apply_batch_of_integer_keys(ctx: Ctx) -> polyrouter::Result<()> {
    let router = ctx.router().await?;
    let s = router.store("s").expect("store s").clone();
    let e = EntityInfo {
        store: "s".into(),
        table: format!("item_avi_{}", ctx.id),
        ..EntityInfo::new(Item::schema())
    };
    s.ensure_entity(&e).await?;
    let at = |id: i64, version: u64| {
        let mut r = Record::from_entity(&Item {
            id,
            name: format!("v{version}"),
            group: 1,
            score: None,
            tag: None,
            active: true,
            version: 0,
        })
        .unwrap();
        r.version = version;
        VersionedChange::put(r)
    };
    assert_eq!(
        s.apply_versioned(&e, vec![at(1, 5), at(2, 3)]).await?,
        vec![Applied::Applied, Applied::Applied]
    );
    assert_eq!(
        s.apply_versioned(&e, vec![at(1, 4), at(2, 6), at(3, 1), at(-7, 2)])
            .await?,
        vec![
            Applied::Stale { current: 5 },
            Applied::Applied,
            Applied::Applied,
            Applied::Applied
        ]
    );
    let got = s
        .get_many(&e, &[Key::Int(1), Key::Int(2), Key::Int(3), Key::Int(-7)])
        .await?;
    let versions: Vec<Option<u64>> = got.iter().map(|r| r.as_ref().map(|r| r.version)).collect();
    assert_eq!(versions, vec![Some(5), Some(6), Some(1), Some(2)]);
    Ok(())
}
