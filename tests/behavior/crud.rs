//! Point operations, versions, preconditions, batches.

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use polyrouter::{Capabilities, Error, Precondition, Result};
use uuid::Uuid;

use crate::behaviour;
use crate::entities::*;
use crate::harness::{Behaviour, Ctx, always};

pub fn behaviours() -> Vec<Behaviour> {
    vec![
        behaviour!(round_trip_every_type, always),
        behaviour!(round_trip_extremes, always),
        behaviour!(versions_count_writes, always),
        behaviour!(
            preconditions_conflict_and_write_nothing,
            |c: &Capabilities| {
                (!(c.if_absent && c.if_exists && c.if_version)).then_some("preconditions")
            }
        ),
        behaviour!(batch_is_all_or_nothing, |c: &Capabilities| {
            (!c.any_atomic_batch()).then_some("atomic batches")
        }),
        behaviour!(
            batch_in_one_partition_is_all_or_nothing,
            |c: &Capabilities| { (!c.any_atomic_batch()).then_some("atomic batches") }
        ),
        behaviour!(update_uses_the_version_field, |c: &Capabilities| {
            (!(c.if_absent && c.if_version)).then_some("preconditions")
        }),
        behaviour!(versions_continue_across_delete, |c: &Capabilities| {
            (!(c.if_absent && c.if_exists && c.if_version)).then_some("preconditions")
        }),
        behaviour!(tombstones_are_invisible, always),
        behaviour!(
            concurrent_recreate_never_repeats_a_version,
            |c: &Capabilities| { (!c.if_absent).then_some("if-absent") }
        ),
        behaviour!(non_atomic_batch_reports_each_write, |c: &Capabilities| {
            (!c.if_version).then_some("preconditions")
        }),
        behaviour!(concurrent_non_atomic_batches_on_one_key, always),
        behaviour!(bulk_put_get_delete, always),
        behaviour!(second_router_sees_the_data, |c: &Capabilities| {
            (!c.shared || !c.records).then_some("sharing records between routers")
        }),
        behaviour!(bad_input_is_rejected_and_writes_nothing, always),
    ]
}

fn ts(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

pub fn sample(id: &str) -> Everything {
    Everything {
        id: id.into(),
        flag: true,
        int: -42,
        small: i32::MIN,
        unsigned: u32::MAX,
        float: 3.25,
        text: "héllo wörld ✓ 日本語 🎉".into(),
        bytes: (0..=255u8).collect(),
        at: Utc.with_ymd_and_hms(2024, 2, 29, 23, 59, 58).unwrap()
            + chrono::Duration::microseconds(123_456),
        at_zoned: ts("2021-06-01T08:30:00.5+05:30"),
        uuid: Uuid::new_v4(),
        json: serde_json::json!({"a": [1, 2.5, null, "x"], "b": {"c": true}, "quote": "'\""}),
        nested: Nested {
            label: "outer".into(),
            tags: vec!["a".into(), "".into()],
            depth: Some(Box::new(Nested {
                label: "inner".into(),
                tags: vec![],
                depth: None,
            })),
        },
        maybe_int: Some(7),
        maybe_text: Some(String::new()),
        maybe_at: None,
        maybe_float: None,
        version: 0,
    }
}

async fn round_trip_every_type(ctx: Ctx) -> Result<()> {
    let repo = ctx.repo::<Everything>().await?;
    let mut e = sample("rt");
    let v = repo.put(&e).await?;
    assert_eq!(v, 1);
    let got = repo.get("rt").await?.expect("stored");
    e.version = 1;
    assert_eq!(got, e);
    // The zoned timestamp keeps its instant.
    assert_eq!(
        got.at_zoned.timestamp_micros(),
        e.at_zoned.timestamp_micros()
    );
    // Nulls and empties stay what they were.
    let mut nulls = sample("nulls");
    nulls.maybe_int = None;
    nulls.maybe_text = None;
    nulls.text = String::new();
    nulls.bytes = vec![];
    nulls.json = serde_json::json!([]);
    repo.put(&nulls).await?;
    let got = repo.get("nulls").await?.expect("stored");
    assert_eq!(got.maybe_int, None);
    assert_eq!(got.maybe_text, None);
    assert_eq!(got.text, "");
    assert!(got.bytes.is_empty());
    assert_eq!(got.json, serde_json::json!([]));
    assert_eq!(repo.get("absent").await?, None);
    Ok(())
}

async fn round_trip_extremes(ctx: Ctx) -> Result<()> {
    let repo = ctx.repo::<Everything>().await?;
    type Change = Box<dyn Fn(&mut Everything) + Send + Sync>;
    let cases: Vec<Change> = vec![
        Box::new(|e| {
            e.int = i64::MAX;
            e.small = i32::MAX;
            e.float = f64::MAX;
        }),
        Box::new(|e| {
            e.int = i64::MIN;
            e.float = f64::MIN;
            e.unsigned = 0;
        }),
        Box::new(|e| {
            e.int = 0;
            e.float = f64::MIN_POSITIVE;
            e.maybe_float = Some(-1e-300);
        }),
        Box::new(|e| {
            e.float = f64::INFINITY;
            e.maybe_float = Some(f64::NEG_INFINITY);
        }),
        Box::new(|e| {
            e.text = "x".repeat(1 << 20);
        }),
        Box::new(|e| {
            e.text = "\u{0}nul\u{0}inside\u{0}".into();
            e.maybe_text = Some("\u{10FFFF}\u{FEFF}".into());
        }),
        Box::new(|e| {
            e.at = Utc.with_ymd_and_hms(1900, 1, 1, 0, 0, 0).unwrap();
            e.at_zoned = ts("2199-12-31T23:59:59.999999-08:00");
            e.maybe_at = Some(Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap());
        }),
    ];
    for (i, change) in cases.iter().enumerate() {
        let mut e = sample(&format!("x{i}"));
        change(&mut e);
        let unstorable = (e.text.contains('\0') && !crate::harness::text_holds_nul(&ctx.store))
            || (e.float.is_infinite() && !crate::harness::float_holds_infinity(&ctx.store));
        if unstorable {
            // The store cannot hold this value: refused, nothing written.
            let err = repo.put(&e).await.unwrap_err();
            assert!(matches!(err, Error::InvalidInput { .. }), "case {i}: {err}");
            assert_eq!(repo.get(e.id.clone()).await?, None, "case {i}");
            continue;
        }
        repo.put(&e).await?;
        let got = repo.get(e.id.clone()).await?.expect("stored");
        e.version = 1;
        assert_eq!(got, e, "case {i}");
    }
    Ok(())
}

async fn versions_count_writes(ctx: Ctx) -> Result<()> {
    let repo = ctx.repo::<Item>().await?;
    let mut it = item(1, "a", 1, None, None);
    assert_eq!(repo.put(&it).await?, 1);
    it.name = "b".into();
    assert_eq!(repo.put(&it).await?, 2);
    assert_eq!(repo.put(&it).await?, 3);
    let got = repo.get(1).await?.expect("stored");
    assert_eq!(got.version, 3);
    assert_eq!(got.name, "b");
    assert!(repo.delete(1).await?);
    assert!(!repo.delete(1).await?);
    assert_eq!(
        repo.put(&it).await?,
        5,
        "a re-created record continues after its tombstone (the delete was version 4)"
    );
    Ok(())
}

/// Delete leaves a tombstone holding the key's last version: a re-created
/// record continues from it, so a writer holding a version from before the
/// delete gets `Conflict` (no ABA).
async fn versions_continue_across_delete(ctx: Ctx) -> Result<()> {
    let repo = ctx.repo::<Item>().await?;
    let mut it = item(7, "a", 0, None, None);
    assert_eq!(repo.put(&it).await?, 1);
    let held = repo.get(7).await?.expect("stored");
    assert!(repo.delete(7).await?);
    assert_eq!(repo.get(7).await?, None);
    // Absent to preconditions: if-absent creates, continuing the versions.
    it.name = "again".into();
    assert_eq!(repo.put_if(&it, Precondition::Absent).await?, 3);
    match repo.put_if(&held, Precondition::Version(1)).await {
        Err(Error::Conflict {
            actual: Some(3),
            expected: Precondition::Version(1),
            ..
        }) => {}
        other => {
            panic!("a writer holding version 1 from before the delete must conflict, got {other:?}")
        }
    }
    let got = repo.get(7).await?.expect("re-created");
    assert_eq!((got.name.as_str(), got.version), ("again", 3));
    assert!(repo.delete_if(7, Precondition::Version(3)).await?);
    match repo.delete_if(7, Precondition::Version(4)).await {
        Err(Error::Conflict { actual: None, .. }) => {}
        other => panic!("a tombstone is absent to a version precondition, got {other:?}"),
    }
    match repo.put_if(&it, Precondition::Exists).await {
        Err(Error::Conflict { actual: None, .. }) => {}
        other => panic!("a tombstone is absent to if-exists, got {other:?}"),
    }
    assert_eq!(repo.put(&it).await?, 5);
    // In a batch too: delete then put of one key.
    if ctx.caps().batch_atomic {
        let out = repo.batch().delete(7).put(&it).commit().await?;
        assert_eq!(out[1].version(), Some(7), "{out:?}");
    }
    Ok(())
}

/// Tombstones are never seen: not by get, get_many, query or count.
async fn tombstones_are_invisible(ctx: Ctx) -> Result<()> {
    let repo = ctx.repo::<Item>().await?;
    for i in 1..=6 {
        repo.put(&item(i, "x", 1, None, None)).await?;
    }
    assert_eq!(repo.delete_many([2i64, 4, 6]).await?, 3);
    assert!(
        !repo.delete(4).await?,
        "deleting a tombstone deletes nothing"
    );
    assert_eq!(repo.get(2).await?, None);
    let found: Vec<bool> = repo
        .get_many([1i64, 2, 3, 4, 5, 6])
        .await?
        .iter()
        .map(Option::is_some)
        .collect();
    assert_eq!(found, vec![true, false, true, false, true, false]);
    if ctx.caps().count {
        assert_eq!(repo.count(None).await?, 3);
        assert_eq!(repo.count(Some(polyrouter::field("group").eq(1))).await?, 3);
    }
    if ctx.caps().query {
        let page = repo
            .query(polyrouter::Query::new().order_by("id").limit(100))
            .await?;
        let ids: Vec<i64> = page.items.iter().map(|i| i.id).collect();
        assert_eq!(ids, vec![1, 3, 5]);
        let page = repo
            .query(
                polyrouter::Query::new()
                    .filter(polyrouter::field("name").eq("x"))
                    .order_by("name")
                    .limit(2),
            )
            .await?;
        assert!(page.items.iter().all(|i| i.id % 2 == 1), "{:?}", page.items);
    }
    Ok(())
}

/// Concurrent writers of one key, deleting and re-creating it: every
/// version a put returns is new.
async fn concurrent_recreate_never_repeats_a_version(ctx: Ctx) -> Result<()> {
    let repo = ctx.repo::<Item>().await?;
    let mut tasks = Vec::new();
    for w in 0..4i64 {
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move {
            let mut versions = Vec::new();
            for i in 0..12i64 {
                let it = item(9, &format!("w{w}-{i}"), w, None, None);
                match (w + i) % 3 {
                    0 => {
                        repo.delete(9).await?;
                    }
                    1 => match repo.put_if(&it, Precondition::Absent).await {
                        Ok(v) => versions.push(v),
                        Err(Error::Conflict { .. }) => {}
                        Err(e) => return Err(e),
                    },
                    _ => versions.push(repo.put(&it).await?),
                }
            }
            Ok::<_, Error>(versions)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("writer task")?);
    }
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n, "a version was handed out twice: {all:?}");
    Ok(())
}

async fn preconditions_conflict_and_write_nothing(ctx: Ctx) -> Result<()> {
    let repo = ctx.repo::<Item>().await?;
    let a = item(1, "first", 1, Some(1.0), None);
    assert_eq!(repo.put_if(&a, Precondition::Absent).await?, 1);

    let clash = item(1, "second", 2, None, Some("x"));
    match repo.put_if(&clash, Precondition::Absent).await {
        Err(Error::Conflict {
            actual: Some(1),
            expected: Precondition::Absent,
            ..
        }) => {}
        other => panic!("expected a conflict with version 1, got {other:?}"),
    }
    match repo
        .put_if(&item(2, "ghost", 0, None, None), Precondition::Exists)
        .await
    {
        Err(Error::Conflict { actual: None, .. }) => {}
        other => panic!("expected a conflict with the record absent, got {other:?}"),
    }
    assert_eq!(repo.get(2).await?, None, "a failed if-exists wrote nothing");
    match repo.put_if(&clash, Precondition::Version(7)).await {
        Err(
            e @ Error::Conflict {
                actual: Some(1), ..
            },
        ) => {
            assert!(e.to_string().contains("if-version(7)"), "{e}");
        }
        other => panic!("expected a version conflict, got {other:?}"),
    }
    let still = repo.get(1).await?.expect("still there");
    assert_eq!(
        (still.name.as_str(), still.version),
        ("first", 1),
        "nothing was written"
    );

    assert_eq!(repo.put_if(&clash, Precondition::Version(1)).await?, 2);
    assert_eq!(repo.put_if(&clash, Precondition::Exists).await?, 3);

    match repo.delete_if(1, Precondition::Version(2)).await {
        Err(Error::Conflict {
            actual: Some(3), ..
        }) => {}
        other => panic!("expected a delete conflict, got {other:?}"),
    }
    assert!(
        repo.get(1).await?.is_some(),
        "a failed conditional delete deleted nothing"
    );
    match repo.delete_if(99, Precondition::Exists).await {
        Err(Error::Conflict { actual: None, .. }) => {}
        other => panic!("expected a conflict deleting a missing record, got {other:?}"),
    }
    assert!(repo.delete_if(1, Precondition::Version(3)).await?);
    assert_eq!(repo.get(1).await?, None);
    Ok(())
}

/// `Repo::update` writes only over the version the value carries; a
/// value at version 0 (never stored) only creates.
async fn update_uses_the_version_field(ctx: Ctx) -> Result<()> {
    let repo = ctx.repo::<Item>().await?;
    let mut it = item(21, "new", 0, None, None);
    it.version = repo.update(&it).await?;
    assert_eq!(it.version, 1);
    match repo.update(&item(21, "blind", 0, None, None)).await {
        Err(Error::Conflict {
            actual: Some(1),
            expected: Precondition::Absent,
            ..
        }) => {}
        other => panic!("a version-0 update of an existing key must conflict, got {other:?}"),
    }
    let stale = it.clone();
    it.name = "second".into();
    assert_eq!(repo.update(&it).await?, 2);
    match repo.update(&stale).await {
        Err(Error::Conflict {
            actual: Some(2),
            expected: Precondition::Version(1),
            ..
        }) => {}
        other => panic!("a stale update must conflict, got {other:?}"),
    }
    let got = repo.get(21).await?.expect("stored");
    assert_eq!((got.name.as_str(), got.version), ("second", 2));
    Ok(())
}

/// A non-atomic batch with one conflicting write applies the others and
/// reports exactly that one, with the current version.
async fn non_atomic_batch_reports_each_write(ctx: Ctx) -> Result<()> {
    let repo = ctx.repo::<Item>().await?;
    repo.put(&item(1, "one", 0, None, None)).await?;
    let res = repo
        .batch()
        .put(&item(2, "two", 0, None, None))
        .put_if(&item(1, "clash", 0, None, None), Precondition::Version(9))
        .delete(3)
        .put(&item(4, "four", 0, None, None))
        .non_atomic()
        .commit()
        .await;
    match res {
        Err(Error::Partial {
            outcomes, failed, ..
        }) => {
            assert_eq!(
                outcomes,
                vec![
                    Some(polyrouter::store::WriteOutcome::Written { version: 1 }),
                    None,
                    Some(polyrouter::store::WriteOutcome::Deleted { existed: false }),
                    Some(polyrouter::store::WriteOutcome::Written { version: 1 }),
                ]
            );
            assert_eq!(failed.len(), 1, "{failed:?}");
            assert_eq!(
                (failed[0].index, &failed[0].key),
                (1, &polyrouter::Key::from(1i64))
            );
            assert!(
                matches!(
                    failed[0].error,
                    Error::Conflict {
                        actual: Some(1),
                        expected: Precondition::Version(9),
                        ..
                    }
                ),
                "{}",
                failed[0].error
            );
        }
        other => panic!("expected a partial failure naming write 1, got {other:?}"),
    }
    let got: Vec<Option<(String, u64)>> = repo
        .get_many([1i64, 2, 4])
        .await?
        .into_iter()
        .map(|i| i.map(|i| (i.name, i.version)))
        .collect();
    assert_eq!(
        got,
        vec![
            Some(("one".into(), 1)),
            Some(("two".into(), 1)),
            Some(("four".into(), 1))
        ]
    );
    // Retrying exactly the failed write, with the version it reported.
    assert_eq!(
        repo.put_if(&item(1, "clash", 0, None, None), Precondition::Version(1))
            .await?,
        2
    );
    // All applied: the outcomes, as before.
    let out = repo
        .batch()
        .put(&item(5, "five", 0, None, None))
        .delete(2)
        .non_atomic()
        .commit()
        .await?;
    assert_eq!(out.len(), 2);
    Ok(())
}

/// Non-atomic batches from concurrent writers, all writing one key (puts
/// and deletes): every version a put reports is new, and the record ends
/// at the highest one.
async fn concurrent_non_atomic_batches_on_one_key(ctx: Ctx) -> Result<()> {
    let repo = ctx.repo::<Item>().await?;
    let mut tasks = Vec::new();
    for w in 0..4i64 {
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move {
            let mut versions = Vec::new();
            for i in 0..6i64 {
                let out = repo
                    .batch()
                    .put(&item(8, &format!("w{w}-{i}"), w, None, None))
                    .delete(8)
                    .put(&item(8, &format!("w{w}-{i}b"), w, None, None))
                    .non_atomic()
                    .commit()
                    .await?;
                versions.extend(out.iter().filter_map(|o| o.version()));
            }
            Ok::<_, Error>(versions)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("writer task")?);
    }
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n, "a version was handed out twice: {all:?}");
    let last = repo.get(8).await?.expect("the last write is a put");
    assert_eq!(Some(&last.version), all.last());
    Ok(())
}

/// `Item` has no partition key field: each key is its own partition. A
/// store atomic only within one partition refuses the atomic batches here.
async fn batch_is_all_or_nothing(ctx: Ctx) -> Result<()> {
    let repo = ctx.repo::<Item>().await?;
    repo.put(&item(3, "existing", 0, None, None)).await?;
    let result = repo
        .batch()
        .put(&item(1, "one", 0, None, None))
        .put(&item(2, "two", 0, None, None))
        .delete(3)
        .put_if(&item(3, "clash", 0, None, None), Precondition::Version(5))
        .commit()
        .await;
    let partition_scoped = !ctx.caps().batch_atomic;
    match result {
        Err(Error::Conflict { .. }) if !partition_scoped => {}
        Err(e @ Error::Unsupported { .. }) if partition_scoped => {
            assert!(
                e.to_string()
                    .contains("ops span 3 partitions; atomic batches need one partition key value"),
                "{e}"
            );
        }
        other => panic!(
            "expected the batch to conflict (or, atomic only within a partition, to be unsupported), got {other:?}"
        ),
    }
    assert_eq!(
        repo.get(1).await?,
        None,
        "first write of a failed batch was rolled back"
    );
    assert_eq!(
        repo.get(2).await?,
        None,
        "second write of a failed batch was rolled back"
    );
    let three = repo.get(3).await?.expect("the delete was rolled back");
    assert_eq!((three.name.as_str(), three.version), ("existing", 1));
    if partition_scoped {
        // put_many across partitions is not atomic there, but a bad record
        // is still refused before anything is written.
        let mut bad = item(11, "bad", 0, None, None);
        bad.score = Some(f64::NAN);
        let err = repo.put_many(&[item(10, "ok", 0, None, None), bad]).await;
        assert!(matches!(err, Err(Error::InvalidInput { .. })), "{err:?}");
        assert_eq!(repo.get(10).await?, None);
        let n = ctx.caps().batch_atomic_partition.unwrap_or(0);
        let out = repo
            .batch()
            .put(&item(1, "same key", 0, None, None))
            .put(&item(1, "same key", 0, None, None))
            .commit()
            .await?;
        let versions: Vec<Option<u64>> = out.iter().map(|o| o.version()).collect();
        assert_eq!(
            versions,
            vec![Some(1), Some(2)],
            "two writes of one key are one partition"
        );
        let over: Vec<Item> = (0..=n as i64)
            .map(|i| item(1, "k", i, None, None))
            .collect();
        let mut b = repo.batch();
        for i in &over {
            b = b.put(i);
        }
        match b.commit().await {
            Err(Error::Unsupported { .. }) => {}
            other => panic!("an atomic batch over the store's limit ({n}): {other:?}"),
        }
        return Ok(());
    }

    let out = repo
        .batch()
        .put(&item(1, "one", 0, None, None))
        .put_if(&item(3, "updated", 0, None, None), Precondition::Version(1))
        .delete(2)
        .put_if(&item(4, "four", 0, None, None), Precondition::Absent)
        .commit()
        .await?;
    let versions: Vec<Option<u64>> = out.iter().map(|o| o.version()).collect();
    assert_eq!(versions, vec![Some(1), Some(2), None, Some(1)]);
    let present: Vec<bool> = repo
        .get_many([1i64, 2, 3, 4])
        .await?
        .iter()
        .map(Option::is_some)
        .collect();
    assert_eq!(present, vec![true, false, true, true]);
    if ctx.caps().count {
        assert_eq!(repo.count(None).await?, 3);
    }

    // put_many is atomic too: a bad record in the middle writes nothing.
    let mut bad = item(11, "bad", 0, Some(f64::NAN), None);
    bad.score = Some(f64::NAN);
    let err = repo
        .put_many(&[
            item(10, "ok", 0, None, None),
            bad,
            item(12, "ok", 0, None, None),
        ])
        .await;
    assert!(matches!(err, Err(Error::InvalidInput { .. })), "{err:?}");
    assert_eq!(repo.get(10).await?, None);
    Ok(())
}

/// Atomic batches whose records share one partition key value: all or
/// nothing on every store with atomic batches, Cosmos DB's transactional
/// batch included; spanning two partitions is `Unsupported` where
/// atomicity stops at a partition.
async fn batch_in_one_partition_is_all_or_nothing(ctx: Ctx) -> Result<()> {
    let repo = ctx.repo::<Purchase>().await?;
    repo.put(&purchase("p3", "ada", 30)).await?;
    let result = repo
        .batch()
        .put(&purchase("p1", "ada", 10))
        .put(&purchase("p2", "ada", 20))
        .delete("p3")
        .put_if(&purchase("p3", "ada", 31), Precondition::Version(5))
        .commit()
        .await;
    match result {
        Err(Error::Conflict {
            actual: None,
            expected: Precondition::Version(5),
            ..
        }) => {}
        other => panic!("expected the batch to conflict (p3 deleted earlier in it), got {other:?}"),
    }
    assert_eq!(repo.get("p1").await?, None, "rolled back");
    assert_eq!(repo.get("p2").await?, None, "rolled back");
    let three = repo.get("p3").await?.expect("the delete was rolled back");
    assert_eq!((three.total, three.version), (30, 1));

    let out = repo
        .batch()
        .put(&purchase("p1", "ada", 10))
        .put_if(&purchase("p3", "ada", 33), Precondition::Version(1))
        .delete("p2")
        .put_if(&purchase("p4", "ada", 40), Precondition::Absent)
        .put_if(&purchase("p4", "ada", 41), Precondition::Version(1))
        .commit()
        .await?;
    let versions: Vec<Option<u64>> = out.iter().map(|o| o.version()).collect();
    assert_eq!(versions, vec![Some(1), Some(2), None, Some(1), Some(2)]);
    let got: Vec<Option<(i64, u64)>> = repo
        .get_many(["p1", "p2", "p3", "p4"])
        .await?
        .into_iter()
        .map(|p| p.map(|p| (p.total, p.version)))
        .collect();
    assert_eq!(got, vec![Some((10, 1)), None, Some((33, 2)), Some((41, 2))]);

    // put_many in one partition (atomic where the store can make it so).
    let versions = repo
        .put_many(&[purchase("p5", "ada", 50), purchase("p1", "ada", 11)])
        .await?;
    assert_eq!(versions, vec![1, 2]);

    // Two partitions.
    let mixed = repo
        .batch()
        .put(&purchase("m1", "ada", 1))
        .put(&purchase("m2", "bob", 2))
        .commit()
        .await;
    if ctx.caps().batch_atomic {
        assert_eq!(mixed?.len(), 2);
    } else {
        match mixed {
            Err(e @ Error::Unsupported { .. }) => {
                let text = e.to_string();
                assert!(text.contains("entity `purchase`"), "{text}");
                assert!(
                    text.contains(
                        "ops span 2 partitions; atomic batches need one partition key value"
                    ),
                    "{text}"
                );
            }
            other => panic!(
                "expected an atomic batch over two partitions to be unsupported, got {other:?}"
            ),
        }
        assert_eq!(repo.get("m1").await?, None, "nothing written");
        // Non-atomic, the same batch goes through.
        let out = repo
            .batch()
            .non_atomic()
            .put(&purchase("m1", "ada", 1))
            .put(&purchase("m2", "bob", 2))
            .commit()
            .await?;
        assert_eq!(out.len(), 2);
    }
    assert_eq!(
        repo.get("m2").await?.map(|p| p.customer),
        Some("bob".into())
    );
    Ok(())
}

async fn bulk_put_get_delete(ctx: Ctx) -> Result<()> {
    let repo = ctx.repo::<Item>().await?;
    let items: Vec<Item> = (0..1500)
        .map(|i| item(i, &format!("n{i}"), i % 7, Some(i as f64 / 2.0), None))
        .collect();
    let versions = repo.put_many(&items).await?;
    assert_eq!(versions.len(), 1500);
    assert!(versions.iter().all(|v| *v == 1));
    let counts = ctx.caps().count;
    if counts {
        assert_eq!(repo.count(None).await?, 1500);
    } else {
        assert!(repo.get_many(0..1500i64).await?.iter().all(Option::is_some));
    }
    let keys = [1499i64, 5, -1, 5, 0, 100_000];
    let got = repo.get_many(keys).await?;
    let ids: Vec<Option<i64>> = got.iter().map(|g| g.as_ref().map(|i| i.id)).collect();
    assert_eq!(
        ids,
        vec![Some(1499), Some(5), None, Some(5), Some(0), None],
        "order and duplicates kept"
    );
    let many: Vec<i64> = (0..1200).collect();
    let got = repo.get_many(many.iter().copied()).await?;
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, g)| g.as_ref().map(|x| x.id) == Some(i as i64))
    );
    assert_eq!(repo.delete_many((0..1000).chain([5000, 6000])).await?, 1000);
    if counts {
        assert_eq!(repo.count(None).await?, 500);
    } else {
        let left = repo.get_many(0..1500i64).await?;
        assert!(
            left.iter()
                .enumerate()
                .all(|(i, g)| g.is_some() == (i >= 1000))
        );
    }
    assert_eq!(repo.put_many(&items[1000..1002]).await?, vec![2, 2]);
    Ok(())
}

async fn second_router_sees_the_data(ctx: Ctx) -> Result<()> {
    let one = ctx.repo::<Note>().await?;
    one.put(&note("shared", "from router one")).await?;
    let two = ctx.repo::<Note>().await?;
    assert_eq!(
        two.get("shared").await?.map(|n| n.body),
        Some("from router one".into())
    );
    two.put(&note("back", "from router two")).await?;
    assert_eq!(
        one.get("back").await?.map(|n| n.body),
        Some("from router two".into())
    );
    Ok(())
}

async fn bad_input_is_rejected_and_writes_nothing(ctx: Ctx) -> Result<()> {
    use polyrouter::query::{Query, field};
    let repo = ctx.repo::<Item>().await?;
    repo.put(&item(1, "keep", 1, Some(1.0), None)).await?;
    let nan = item(1, "nan", 1, Some(f64::NAN), None);
    let e = repo.put(&nan).await.unwrap_err();
    assert!(matches!(&e, Error::InvalidInput { .. }), "{e}");
    assert!(
        e.to_string().contains("entity `item`") && e.to_string().contains("score"),
        "{e}"
    );
    assert_eq!(repo.get(1).await?.map(|i| i.name), Some("keep".into()));

    let wrong_key = repo.get("one").await.unwrap_err();
    assert!(
        matches!(wrong_key, Error::InvalidInput { .. }),
        "{wrong_key}"
    );
    let caps = ctx.caps();
    if caps.query {
        let unknown = repo
            .query(Query::new().filter(field("nope").eq(1)))
            .await
            .unwrap_err();
        assert!(
            unknown.to_string().contains("unknown field `nope`"),
            "{unknown}"
        );
        let mismatch = repo
            .query(Query::new().filter(field("group").eq("x")))
            .await
            .unwrap_err();
        assert!(matches!(mismatch, Error::InvalidInput { .. }), "{mismatch}");
        let zero = repo.query(Query::new().limit(0)).await.unwrap_err();
        assert!(matches!(zero, Error::InvalidInput { .. }), "{zero}");
        let huge = repo.query(Query::new().limit(1_000_000)).await.unwrap_err();
        assert!(matches!(huge, Error::InvalidInput { .. }), "{huge}");
    } else {
        let unsupported = repo
            .query(Query::new().filter(field("nope").eq(1)))
            .await
            .unwrap_err();
        assert!(
            matches!(unsupported, Error::Unsupported { .. }),
            "{unsupported}"
        );
    }
    if caps.count {
        let prefix_on_int = repo.count(field("group").prefix("1")).await.unwrap_err();
        assert!(
            matches!(prefix_on_int, Error::InvalidInput { .. }),
            "{prefix_on_int}"
        );
        let lt_null = repo
            .count(field("score").lt(polyrouter::Value::Null))
            .await
            .unwrap_err();
        assert!(matches!(lt_null, Error::InvalidInput { .. }), "{lt_null}");
    } else {
        let unsupported = repo.count(field("group").prefix("1")).await.unwrap_err();
        assert!(
            matches!(unsupported, Error::Unsupported { .. }),
            "{unsupported}"
        );
    }
    let absent_delete = repo.delete_if(1, Precondition::Absent).await.unwrap_err();
    assert!(
        matches!(absent_delete, Error::InvalidInput { .. }),
        "{absent_delete}"
    );
    if caps.count {
        assert_eq!(repo.count(None).await?, 1);
    }
    assert_eq!(
        repo.get_many([1i64, 0, 2])
            .await?
            .iter()
            .filter(|i| i.is_some())
            .count(),
        1
    );
    Ok(())
}
