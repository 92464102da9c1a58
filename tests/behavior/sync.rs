//! What the sync layer needs from a store: the transactional outbox (every
//! write of an `outbox` route records its event atomically with it) and
//! versioned apply (changes stored at their source's version, only when
//! newer).

use std::collections::BTreeMap;
use std::sync::Arc;

use polyrouter::store::{Applied, EntityInfo, VersionedChange};
use polyrouter::sync::Operation;
use polyrouter::{Capabilities, Entity, Error, Key, Precondition, Router, Store};

use crate::behaviour;
use crate::entities::*;
use crate::harness::{Behaviour, Ctx};

pub fn behaviours() -> Vec<Behaviour> {
    let outbox = |c: &Capabilities| (!c.outbox).then_some("an outbox");
    let apply = |c: &Capabilities| (!c.versioned_apply).then_some("versioned apply");
    vec![
        behaviour!(outbox_records_every_committed_write, outbox),
        behaviour!(outbox_keeps_nothing_of_a_refused_write, outbox),
        behaviour!(outbox_concurrent_writers_on_one_key, outbox),
        behaviour!(outbox_without_after_image, outbox),
        behaviour!(versioned_apply_only_moves_forward, apply),
        behaviour!(versioned_apply_delete_blocks_older_puts, apply),
        behaviour!(versioned_apply_concurrent_on_one_key, apply),
        behaviour!(versioned_apply_round_trips_every_type, apply),
    ]
}

/// The trial's store plus a memory bus, with `note` and `everything` on
/// outbox routes (`after_image` as given).
async fn outbox_router(ctx: &Ctx, after_image: bool) -> polyrouter::Result<Router> {
    let mut cfg = ctx.blob_store_config();
    cfg.push_str("[buses.events]\nkind = \"memory\"\n\n");
    for entity in ["note", "everything"] {
        cfg.push_str(&format!(
            "[entities.{entity}]\nstore = \"s\"\ntable = \"{entity}_ob_{}\"\noutbox = {{ bus = \"events\", after_image = {after_image} }}\n\n",
            ctx.id
        ));
    }
    Router::from_toml_str(&cfg).await
}

fn store(router: &Router) -> Arc<dyn Store> {
    router.store("s").expect("store s").clone()
}

fn info<T: Entity>(ctx: &Ctx, tag: &str, outbox: bool) -> EntityInfo {
    EntityInfo {
        store: "s".into(),
        table: format!("{}_{tag}_{}", T::schema().name, ctx.id),
        outbox: outbox.then(Default::default),
        ..EntityInfo::new(T::schema())
    }
}

/// Everything in the outbox, removed as it is read (as a relay would).
async fn drain(
    store: &dyn Store,
    e: &EntityInfo,
) -> polyrouter::Result<Vec<polyrouter::sync::ChangeEvent>> {
    let mut out = Vec::new();
    loop {
        let batch = store.outbox_fetch(e, 64).await?;
        if batch.is_empty() {
            return Ok(out);
        }
        let ids: Vec<String> = batch.iter().map(|b| b.id.clone()).collect();
        store.outbox_remove(e, &ids).await?;
        out.extend(batch.into_iter().map(|b| b.event));
    }
}

fn note(id: &str, body: &str) -> Note {
    Note {
        id: id.into(),
        body: body.into(),
    }
}

async fn outbox_records_every_committed_write(ctx: Ctx) -> polyrouter::Result<()> {
    let router = outbox_router(&ctx, true).await?;
    let notes = router.repo::<Note>().await?;
    let s = store(&router);
    let e = info::<Note>(&ctx, "ob", true);
    assert_eq!(s.outbox_len(&e).await?, 0);

    notes.put(&note("a", "one")).await?;
    notes.put(&note("a", "two")).await?;
    notes.put_many(&[note("b", "x"), note("c", "y")]).await?;
    assert!(notes.delete("a").await?);
    assert!(!notes.delete("zz").await?, "deleting an absent key");
    notes.put(&note("a", "three")).await?;
    assert_eq!(s.outbox_len(&e).await?, 6);

    // Fetching does not consume: a relay that crashed reads them again.
    let first = s.outbox_fetch(&e, 100).await?;
    assert_eq!(first.len(), 6);
    assert_eq!(s.outbox_fetch(&e, 2).await?.len(), 2);
    let events = drain(s.as_ref(), &e).await?;
    assert_eq!(s.outbox_len(&e).await?, 0);
    assert_eq!(events.len(), 6);

    let mut by_key: BTreeMap<String, Vec<(Operation, u64, Option<String>)>> = BTreeMap::new();
    for ev in &events {
        assert_eq!(ev.store, "s");
        assert_eq!(ev.entity, "note");
        let body = ev
            .data
            .as_ref()
            .and_then(|d| d.get("body"))
            .and_then(|b| b.as_str())
            .map(String::from);
        by_key
            .entry(match &ev.key {
                Key::Str(s) => s.clone(),
                other => other.to_string(),
            })
            .or_default()
            .push((ev.op, ev.version, body));
    }
    assert_eq!(
        by_key["a"],
        vec![
            (Operation::Put, 1, Some("one".into())),
            (Operation::Put, 2, Some("two".into())),
            (Operation::Delete, 3, None),
            (Operation::Put, 4, Some("three".into())),
        ],
        "key a: every write in version order, the delete at its tombstone's version"
    );
    assert_eq!(by_key["b"], vec![(Operation::Put, 1, Some("x".into()))]);
    assert_eq!(by_key["c"], vec![(Operation::Put, 1, Some("y".into()))]);
    // The after-image reads back as the record the store holds.
    let a = events.iter().rfind(|ev| ev.key == Key::from("a")).unwrap();
    let rec = a.record(Note::schema()).unwrap().unwrap();
    assert_eq!(rec.version, 4);
    // Unique ids.
    let ids: std::collections::HashSet<_> = events.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), events.len());
    // Removing ids that are gone is not an error.
    s.outbox_remove(&e, &["no-such-entry".into()]).await?;
    Ok(())
}

async fn outbox_keeps_nothing_of_a_refused_write(ctx: Ctx) -> polyrouter::Result<()> {
    let router = outbox_router(&ctx, true).await?;
    let notes = router.repo::<Note>().await?;
    let s = store(&router);
    let e = info::<Note>(&ctx, "ob", true);
    notes.put(&note("k", "v1")).await?;
    drain(s.as_ref(), &e).await?;

    let err = notes
        .put_if(&note("k", "stale"), Precondition::Version(7))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    let err = notes
        .put_if(&note("k", "dup"), Precondition::Absent)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    // An atomic batch with one failing precondition leaves no event at all.
    let caps = ctx.caps();
    if caps.any_atomic_batch() {
        let res = notes
            .batch()
            .put_if(&note("new", "n"), Precondition::Absent)
            .put_if(&note("k", "x"), Precondition::Version(99))
            .commit()
            .await;
        assert!(res.is_err(), "the batch must fail");
    }
    assert_eq!(s.outbox_len(&e).await?, 0, "refused writes record no event");
    assert_eq!(notes.get("k").await?.unwrap().body, "v1");
    Ok(())
}

async fn outbox_concurrent_writers_on_one_key(ctx: Ctx) -> polyrouter::Result<()> {
    let router = outbox_router(&ctx, true).await?;
    let notes = router.repo::<Note>().await?;
    let s = store(&router);
    let e = info::<Note>(&ctx, "ob", true);
    const WRITERS: usize = 6;
    const EACH: usize = 15;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let notes = notes.clone();
        tasks.push(tokio::spawn(async move {
            let mut versions = Vec::new();
            for i in 0..EACH {
                // Versioned read-modify-write, retried on conflict, and on
                // a store that gave up after losing its own retries to the
                // other writers (Cosmos DB: `Unavailable`, "retry"; such a
                // write wrote nothing) — a bounded number of times.
                let mut gave_up = 0;
                loop {
                    let current = notes.get("hot").await?;
                    let p = current
                        .as_ref()
                        .map_or(Precondition::Absent, |_| Precondition::Exists);
                    match notes.put_if(&note("hot", &format!("{w}-{i}")), p).await {
                        Ok(v) => {
                            versions.push(v);
                            break;
                        }
                        Err(Error::Conflict { .. }) => continue,
                        Err(Error::Unavailable { .. }) if gave_up < 5 => gave_up += 1,
                        Err(other) => return Err(other),
                    }
                }
            }
            Ok::<_, Error>(versions)
        }));
    }
    let mut acknowledged = Vec::new();
    for t in tasks {
        acknowledged.extend(t.await.expect("writer task")?);
    }
    acknowledged.sort_unstable();
    let events = drain(s.as_ref(), &e).await?;
    let versions: Vec<u64> = events.iter().map(|ev| ev.version).collect();
    let mut sorted = versions.clone();
    sorted.sort_unstable();
    assert_eq!(
        versions, sorted,
        "events of one key come out in version order"
    );
    assert_eq!(
        sorted, acknowledged,
        "exactly one event per acknowledged write, at its version"
    );
    assert_eq!(sorted, (1..=(WRITERS * EACH) as u64).collect::<Vec<_>>());
    let last = events.last().unwrap();
    let body = last.data.as_ref().unwrap()["body"].as_str().unwrap();
    assert_eq!(notes.get("hot").await?.unwrap().body, body);
    Ok(())
}

async fn outbox_without_after_image(ctx: Ctx) -> polyrouter::Result<()> {
    let router = outbox_router(&ctx, false).await?;
    let notes = router.repo::<Note>().await?;
    let s = store(&router);
    let e = info::<Note>(&ctx, "ob", true);
    notes.put(&note("a", "secret body")).await?;
    let events = drain(s.as_ref(), &e).await?;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].op, Operation::Put);
    assert_eq!(events[0].version, 1);
    assert!(events[0].data.is_none(), "no after-image on this route");
    Ok(())
}

fn at(n: &Note, version: u64) -> VersionedChange {
    let mut r = polyrouter::Record::from_entity(n).unwrap();
    r.version = version;
    VersionedChange::put(r)
}

async fn versioned_apply_only_moves_forward(ctx: Ctx) -> polyrouter::Result<()> {
    let router = ctx.router().await?;
    let s = store(&router);
    let e = info::<Note>(&ctx, "av", false);
    s.ensure_entity(&e).await?;
    let out = s
        .apply_versioned(
            &e,
            vec![
                at(&note("a", "v5"), 5),
                at(&note("a", "v3"), 3),
                at(&note("a", "v5 again"), 5),
                at(&note("b", "v1"), 1),
            ],
        )
        .await?;
    assert_eq!(
        out,
        vec![
            Applied::Applied,
            Applied::Stale { current: 5 },
            Applied::Stale { current: 5 },
            Applied::Applied
        ]
    );
    let a = s.get(&e, &Key::from("a")).await?.expect("a");
    assert_eq!(a.version, 5, "stored at the source's version");
    assert_eq!(a.get("body"), Some(&polyrouter::Value::from("v5")));
    // A newer one applies; the record a normal write then makes continues from it.
    assert_eq!(
        s.apply_versioned(&e, vec![at(&note("a", "v9"), 9)]).await?,
        vec![Applied::Applied]
    );
    let a = s.get(&e, &Key::from("a")).await?.expect("a");
    assert_eq!(
        (a.version, a.get("body").cloned()),
        (9, Some(polyrouter::Value::from("v9")))
    );
    Ok(())
}

async fn versioned_apply_delete_blocks_older_puts(ctx: Ctx) -> polyrouter::Result<()> {
    let router = ctx.router().await?;
    let s = store(&router);
    let e = info::<Note>(&ctx, "avd", false);
    s.ensure_entity(&e).await?;
    // A delete arriving before the put it follows (reordered delivery).
    let out = s
        .apply_versioned(
            &e,
            vec![
                VersionedChange::delete(Key::from("k"), 4),
                at(&note("k", "old"), 3),
            ],
        )
        .await?;
    assert_eq!(out, vec![Applied::Applied, Applied::Stale { current: 4 }]);
    assert!(s.get(&e, &Key::from("k")).await?.is_none());
    assert_eq!(s.count(&e, None).await.unwrap_or(0), 0);
    // Re-created at a newer version: visible again.
    s.apply_versioned(&e, vec![at(&note("k", "new"), 5)])
        .await?;
    let k = s.get(&e, &Key::from("k")).await?.expect("k re-created");
    assert_eq!(k.version, 5);
    // Deleting a live record; a redelivered delete is stale.
    assert_eq!(
        s.apply_versioned(&e, vec![VersionedChange::delete(Key::from("k"), 6)])
            .await?,
        vec![Applied::Applied]
    );
    assert_eq!(
        s.apply_versioned(&e, vec![VersionedChange::delete(Key::from("k"), 6)])
            .await?,
        vec![Applied::Stale { current: 6 }]
    );
    assert!(s.get(&e, &Key::from("k")).await?.is_none());
    // A normal write after a replicated delete continues from the tombstone.
    if ctx.caps().if_absent {
        let out = s
            .write(
                &e,
                vec![polyrouter::store::WriteOp::Put {
                    record: polyrouter::Record::from_entity(&note("k", "w")).unwrap(),
                    precondition: Precondition::Absent,
                    ttl: None,
                }],
                true,
            )
            .await?;
        assert_eq!(out[0].version(), Some(7));
    }
    Ok(())
}

async fn versioned_apply_concurrent_on_one_key(ctx: Ctx) -> polyrouter::Result<()> {
    let router = ctx.router().await?;
    let s = store(&router);
    let e = info::<Note>(&ctx, "avc", false);
    s.ensure_entity(&e).await?;
    // Four appliers deliver versions 1..=40 of one key, each in its own
    // shuffled order, with duplicates: each version applies at most once
    // and the key ends at the newest.
    let mut tasks = Vec::new();
    for w in 0..4u64 {
        let s = s.clone();
        let e = e.clone();
        tasks.push(tokio::spawn(async move {
            let mut applied = Vec::new();
            let mut order: Vec<u64> = (1..=40).collect();
            // A cheap deterministic shuffle per applier.
            order.sort_by_key(|v| (v * (7 + 2 * w)) % 41);
            for v in order {
                let out = s
                    .apply_versioned(&e, vec![at(&note("hot", &format!("v{v}")), v)])
                    .await?;
                if out[0].applied() {
                    applied.push(v);
                }
            }
            Ok::<_, Error>(applied)
        }));
    }
    let mut applied = Vec::new();
    for t in tasks {
        applied.extend(t.await.expect("applier")?);
    }
    let unique: std::collections::HashSet<_> = applied.iter().collect();
    assert_eq!(
        unique.len(),
        applied.len(),
        "a version applied twice: {applied:?}"
    );
    assert!(applied.contains(&40));
    let hot = s.get(&e, &Key::from("hot")).await?.expect("hot");
    assert_eq!(hot.version, 40);
    assert_eq!(hot.get("body"), Some(&polyrouter::Value::from("v40")));
    Ok(())
}

async fn versioned_apply_round_trips_every_type(ctx: Ctx) -> polyrouter::Result<()> {
    let router = ctx.router().await?;
    let s = store(&router);
    let e = info::<Everything>(&ctx, "avt", false);
    s.ensure_entity(&e).await?;
    let everything = crate::crud::sample("all");
    // Through the event envelope, as a projection gets it.
    let mut record = polyrouter::Record::from_entity(&everything)?;
    record.version = 12;
    let event = polyrouter::sync::ChangeEvent::put_of("main", Everything::schema(), &record);
    let event = polyrouter::sync::ChangeEvent::from_json(&event.to_json()).expect("round trip");
    let change = VersionedChange::from_event(&e, &event)?;
    assert_eq!(
        s.apply_versioned(&e, vec![change]).await?,
        vec![Applied::Applied]
    );
    let back = s.get(&e, &Key::from("all")).await?.expect("stored");
    assert_eq!(back.version, 12);
    let typed: Everything = back.into_entity()?;
    assert_eq!(
        typed,
        Everything {
            version: 12,
            ..everything
        }
    );
    Ok(())
}
