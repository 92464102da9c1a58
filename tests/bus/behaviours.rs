//! What every bus promises (see `polyrouter::sync::bus`), one behaviour
//! each.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use polyrouter::sync::{Bus, StartAt, SubscribeOptions};

use crate::harness::{Ctx, Outcome, ack_all, check, ev, expect_nothing, fetch_n, opts, unique_ids};

const LONG: Duration = Duration::from_secs(60);
const WITHIN: Duration = Duration::from_secs(20);

fn e<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> String {
    move |err| format!("{what}: {err}")
}

/// Publish, fetch, acknowledge: each event comes back whole, once.
pub async fn publish_fetch_ack(ctx: Ctx) -> Outcome {
    let bus = ctx.bus().await;
    let sent: Vec<_> = (1..=3).map(|v| ev("order", &format!("o-{v}"), v)).collect();
    bus.publish(&sent).await.map_err(e("publish"))?;
    let mut sub = bus
        .subscribe("g", &["order".into()], &opts(LONG, "m1"))
        .await
        .map_err(e("subscribe"))?;
    let got = fetch_n(&mut sub, 3, 10, WITHIN).await?;
    let events: Vec<_> = got.iter().map(|d| d.event.clone()).collect();
    check(events == sent, || format!("sent {sent:?}\ngot {events:?}"))?;
    check(got.iter().all(|d| d.attempt == 1), || {
        "first deliveries have attempt 1".into()
    })?;
    ack_all(&mut sub, &got).await?;
    expect_nothing(&mut sub, Duration::from_millis(300)).await?;
    let backlog = bus
        .backlog("g", &["order".into()])
        .await
        .map_err(e("backlog"))?;
    check(backlog == Some(0), || {
        format!("backlog after acks: {backlog:?}")
    })
}

/// Events of one entity come in publish order, also when the group reads
/// two entities whose events interleave.
pub async fn per_entity_order(ctx: Ctx) -> Outcome {
    let bus = ctx.bus().await;
    let mut sent = Vec::new();
    for v in 1..=40 {
        sent.push(ev("a", "k", v));
        sent.push(ev("b", &format!("k{}", v % 3), v));
    }
    // In several publishes, so order across calls counts too.
    for chunk in sent.chunks(7) {
        bus.publish(chunk).await.map_err(e("publish"))?;
    }
    let mut sub = bus
        .subscribe("g", &["a".into(), "b".into()], &opts(LONG, "m1"))
        .await
        .map_err(e("subscribe"))?;
    let got = fetch_n(&mut sub, 80, 9, WITHIN).await?;
    ack_all(&mut sub, &got).await?;
    let mut by_entity: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for d in &got {
        by_entity
            .entry(d.event.entity.clone())
            .or_default()
            .push(d.event.version);
    }
    let want: Vec<u64> = (1..=40).collect();
    check(
        by_entity.get("a") == Some(&want) && by_entity.get("b") == Some(&want),
        || format!("per-entity versions in delivery order: {by_entity:?}"),
    )
}

/// An event id published again (alone, in a batch, later) is stored once.
pub async fn duplicate_ids_are_stored_once(ctx: Ctx) -> Outcome {
    let bus = ctx.bus().await;
    let first = ev("order", "o-1", 1);
    let second = ev("order", "o-1", 2);
    bus.publish(std::slice::from_ref(&first))
        .await
        .map_err(e("publish"))?;
    bus.publish(std::slice::from_ref(&first))
        .await
        .map_err(e("republish"))?;
    bus.publish(&[second.clone(), first.clone()])
        .await
        .map_err(e("publish batch"))?;
    let backlog = bus
        .backlog("g", &["order".into()])
        .await
        .map_err(e("backlog"))?;
    check(backlog == Some(2), || {
        format!("backlog of a new group: {backlog:?}, want 2")
    })?;
    let mut sub = bus
        .subscribe("g", &["order".into()], &opts(LONG, "m1"))
        .await
        .map_err(e("subscribe"))?;
    let got = fetch_n(&mut sub, 2, 10, WITHIN).await?;
    ack_all(&mut sub, &got).await?;
    let versions: Vec<u64> = got.iter().map(|d| d.event.version).collect();
    check(versions == [1, 2], || {
        format!("versions delivered: {versions:?}")
    })?;
    expect_nothing(&mut sub, Duration::from_millis(500)).await
}

/// An event not acknowledged within `ack_wait` comes again, attempt + 1.
pub async fn redelivery_after_ack_wait(ctx: Ctx) -> Outcome {
    let bus = ctx.bus().await;
    let sent = ev("order", "o-1", 1);
    bus.publish(std::slice::from_ref(&sent))
        .await
        .map_err(e("publish"))?;
    let mut sub = bus
        .subscribe(
            "g",
            &["order".into()],
            &opts(Duration::from_millis(500), "m1"),
        )
        .await
        .map_err(e("subscribe"))?;
    let first = fetch_n(&mut sub, 1, 1, WITHIN).await?;
    check(first[0].attempt == 1, || {
        format!("first attempt: {}", first[0].attempt)
    })?;
    let again = fetch_n(&mut sub, 1, 1, WITHIN).await?;
    check(
        again[0].event.id == sent.id && again[0].attempt == 2,
        || {
            format!(
                "redelivery: id {} attempt {}",
                again[0].event.id, again[0].attempt
            )
        },
    )?;
    ack_all(&mut sub, &again).await?;
    expect_nothing(&mut sub, Duration::from_millis(1500)).await
}

/// A nack brings the event back, not before its delay; with no delay at once.
pub async fn nack_with_delay(ctx: Ctx) -> Outcome {
    let bus = ctx.bus().await;
    bus.publish(&[ev("order", "o-1", 1)])
        .await
        .map_err(e("publish"))?;
    let mut sub = bus
        .subscribe("g", &["order".into()], &opts(LONG, "m1"))
        .await
        .map_err(e("subscribe"))?;
    let first = fetch_n(&mut sub, 1, 1, WITHIN).await?;
    let delay = Duration::from_millis(1500);
    let nacked = tokio::time::Instant::now();
    sub.nack(&first[0].tag, delay).await.map_err(e("nack"))?;
    let again = fetch_n(&mut sub, 1, 1, WITHIN).await?;
    let after = nacked.elapsed();
    check(after >= delay, || {
        format!("redelivered {after:?} after a nack with delay {delay:?}")
    })?;
    check(again[0].attempt == 2, || {
        format!("attempt after nack: {}", again[0].attempt)
    })?;
    sub.nack(&again[0].tag, Duration::ZERO)
        .await
        .map_err(e("nack now"))?;
    let third = fetch_n(&mut sub, 1, 1, WITHIN).await?;
    check(third[0].attempt == 3, || {
        format!("attempt after second nack: {}", third[0].attempt)
    })?;
    ack_all(&mut sub, &third).await?;
    expect_nothing(&mut sub, Duration::from_millis(500)).await
}

/// Two members of one group share the events: none is delivered to both.
pub async fn members_of_a_group_share_events(ctx: Ctx) -> Outcome {
    let bus = ctx.bus().await;
    let sent: Vec<_> = (1..=40)
        .map(|v| ev("order", &format!("o-{v}"), v))
        .collect();
    bus.publish(&sent).await.map_err(e("publish"))?;
    let other = ctx.bus().await;
    let mut m1 = bus
        .subscribe("g", &["order".into()], &opts(LONG, "m1"))
        .await
        .map_err(e("subscribe m1"))?;
    let mut m2 = other
        .subscribe("g", &["order".into()], &opts(LONG, "m2"))
        .await
        .map_err(e("subscribe m2"))?;
    let (mut got1, mut got2) = (Vec::new(), Vec::new());
    let deadline = tokio::time::Instant::now() + WITHIN;
    while got1.len() + got2.len() < sent.len() {
        if tokio::time::Instant::now() > deadline {
            return Err(format!("only {} of 40 delivered", got1.len() + got2.len()));
        }
        let a = m1
            .fetch(5, Duration::from_millis(200))
            .await
            .map_err(e("fetch m1"))?;
        ack_all(&mut m1, &a).await?;
        got1.extend(a);
        let b = m2
            .fetch(5, Duration::from_millis(200))
            .await
            .map_err(e("fetch m2"))?;
        ack_all(&mut m2, &b).await?;
        got2.extend(b);
    }
    let all: Vec<_> = got1.iter().chain(&got2).cloned().collect();
    let ids = unique_ids(&all)?;
    let want: HashSet<String> = sent.iter().map(|s| s.id.clone()).collect();
    check(ids == want, || {
        "the members together got other events than were sent".into()
    })?;
    check(!got1.is_empty() && !got2.is_empty(), || {
        format!("one member got everything: {} / {}", got1.len(), got2.len())
    })?;
    expect_nothing(&mut m1, Duration::from_millis(300)).await?;
    expect_nothing(&mut m2, Duration::from_millis(300)).await
}

/// A group created after another read and acknowledged some events gets
/// every event the bus still holds: the server buses keep acknowledged
/// events (until their retention limits), the in-process bus only those
/// some group has not acknowledged yet.
pub async fn a_new_group_sees_retained_events(ctx: Ctx) -> Outcome {
    let bus = ctx.bus().await;
    let sent: Vec<_> = (1..=5).map(|v| ev("order", "o-1", v)).collect();
    bus.publish(&sent).await.map_err(e("publish"))?;
    let mut first = bus
        .subscribe("first", &["order".into()], &opts(LONG, "m1"))
        .await
        .map_err(e("subscribe"))?;
    let got = fetch_n(&mut first, 2, 2, WITHIN).await?;
    ack_all(&mut first, &got).await?;
    let mut late = bus
        .subscribe("late", &["order".into()], &opts(LONG, "m1"))
        .await
        .map_err(e("subscribe late"))?;
    let want: Vec<u64> = if ctx.kind == "memory" {
        vec![3, 4, 5]
    } else {
        vec![1, 2, 3, 4, 5]
    };
    let got = fetch_n(&mut late, want.len(), 10, WITHIN).await?;
    let versions: Vec<u64> = got.iter().map(|d| d.event.version).collect();
    check(versions == want, || {
        format!("late group got {versions:?}, want {want:?}")
    })?;
    ack_all(&mut late, &got).await?;
    expect_nothing(&mut late, Duration::from_millis(300)).await
}

/// A new subscription (after a reconnect) resumes after what its group
/// acknowledged.
pub async fn groups_resume_after_reconnect(ctx: Ctx) -> Outcome {
    let sent: Vec<_> = (1..=6).map(|v| ev("order", "o-1", v)).collect();
    {
        let bus = ctx.bus().await;
        bus.publish(&sent).await.map_err(e("publish"))?;
        let mut sub = bus
            .subscribe("g", &["order".into()], &opts(LONG, "m1"))
            .await
            .map_err(e("subscribe"))?;
        let got = fetch_n(&mut sub, 3, 3, WITHIN).await?;
        ack_all(&mut sub, &got).await?;
    }
    let bus = ctx.bus().await;
    let mut sub = bus
        .subscribe("g", &["order".into()], &opts(LONG, "m1"))
        .await
        .map_err(e("subscribe again"))?;
    let got = fetch_n(&mut sub, 3, 10, WITHIN).await?;
    let versions: Vec<u64> = got.iter().map(|d| d.event.version).collect();
    check(versions == [4, 5, 6], || {
        format!("resumed with {versions:?}")
    })?;
    ack_all(&mut sub, &got).await?;
    expect_nothing(&mut sub, Duration::from_millis(300)).await
}

/// The backlog counts events not yet delivered plus delivered and not
/// acknowledged, per group and entity.
pub async fn backlog_counts(ctx: Ctx) -> Outcome {
    let bus = ctx.bus().await;
    let mut sent: Vec<_> = (1..=4).map(|v| ev("a", "k", v)).collect();
    sent.extend((1..=2).map(|v| ev("b", "k", v)));
    bus.publish(&sent).await.map_err(e("publish"))?;
    let backlog = |bus: std::sync::Arc<dyn Bus>, entities: &'static [&'static str]| async move {
        let entities: Vec<String> = entities.iter().map(|s| s.to_string()).collect();
        bus.backlog("g", &entities).await.map_err(e("backlog"))
    };
    let b = backlog(bus.clone(), &["a"]).await?;
    check(b == Some(4), || {
        format!("backlog of a group not yet created: {b:?}")
    })?;
    let mut sub = bus
        .subscribe("g", &["a".into(), "b".into()], &opts(LONG, "m1"))
        .await
        .map_err(e("subscribe"))?;
    let b = backlog(bus.clone(), &["a", "b"]).await?;
    check(b == Some(6), || format!("backlog after subscribing: {b:?}"))?;
    let got = fetch_n(&mut sub, 2, 2, WITHIN).await?;
    let b = backlog(bus.clone(), &["a", "b"]).await?;
    check(b == Some(6), || format!("backlog with 2 pending: {b:?}"))?;
    ack_all(&mut sub, &got).await?;
    let b = backlog(bus.clone(), &["a", "b"]).await?;
    check(b == Some(4), || format!("backlog after 2 acks: {b:?}"))?;
    let rest = fetch_n(&mut sub, 4, 10, WITHIN).await?;
    ack_all(&mut sub, &rest).await?;
    let b = backlog(bus.clone(), &["a", "b"]).await?;
    check(b == Some(0), || format!("backlog after all acks: {b:?}"))
}

/// Publishers at once on the same key, republishing each other's ids:
/// every id stored once, nothing lost.
pub async fn concurrent_publishers(ctx: Ctx) -> Outcome {
    let bus = ctx.bus().await;
    let shared: Vec<_> = (1..=50).map(|v| ev("order", "hot", v)).collect();
    let mut tasks = Vec::new();
    let mut own_ids = Vec::new();
    for p in 0..8u64 {
        let bus = if p % 2 == 0 {
            bus.clone()
        } else {
            ctx.bus().await
        };
        let mut mine: Vec<_> = (1..=10)
            .map(|v| ev("order", "hot", 1000 * (p + 1) + v))
            .collect();
        own_ids.extend(mine.iter().map(|m| m.id.clone()));
        let mut all = shared.clone();
        if p % 3 == 1 {
            all.reverse();
        }
        all.append(&mut mine);
        tasks.push(tokio::spawn(async move {
            for chunk in all.chunks(6) {
                bus.publish(chunk).await?;
            }
            Ok::<(), polyrouter::Error>(())
        }));
    }
    for t in tasks {
        t.await
            .map_err(e("publisher task"))?
            .map_err(e("publish"))?;
    }
    let mut sub = bus
        .subscribe("g", &["order".into()], &opts(LONG, "m1"))
        .await
        .map_err(e("subscribe"))?;
    let got = fetch_n(&mut sub, 130, 50, WITHIN).await?;
    ack_all(&mut sub, &got).await?;
    let ids = unique_ids(&got)?;
    let want: HashSet<String> = shared.iter().map(|s| s.id.clone()).chain(own_ids).collect();
    check(ids == want, || {
        format!(
            "{} distinct events delivered, {} expected",
            ids.len(),
            want.len()
        )
    })?;
    expect_nothing(&mut sub, Duration::from_millis(500)).await
}

/// Names that cannot be a stream, subject or group are refused before any
/// I/O, with the bus named; foreign tags are refused.
pub async fn bad_names_and_tags_are_refused(ctx: Ctx) -> Outcome {
    let bus = ctx.bus().await;
    if ctx.kind != "memory" {
        let err = bus.publish(&[ev("or der.*", "k", 1)]).await;
        check(
            matches!(err, Err(polyrouter::Error::InvalidInput { .. })),
            || format!("publish to entity `or der.*`: {err:?}"),
        )?;
        let err = bus
            .subscribe("g>x", &["order".into()], &opts(LONG, "m1"))
            .await
            .err();
        check(
            matches!(err, Some(polyrouter::Error::InvalidInput { .. })),
            || format!("group `g>x`: {err:?}"),
        )?;
    }
    let none = bus.subscribe("g", &[], &opts(LONG, "m1")).await.err();
    check(
        matches!(none, Some(polyrouter::Error::InvalidInput { .. })),
        || format!("a group of no entity: {none:?}"),
    )?;
    let mut sub = bus
        .subscribe("g", &["order".into()], &opts(LONG, "m1"))
        .await
        .map_err(e("subscribe"))?;
    let err = sub.ack(&[polyrouter::sync::DeliveryTag::new("nope")]).await;
    check(
        matches!(err, Err(polyrouter::Error::InvalidInput { .. })),
        || format!("ack of a foreign tag: {err:?}"),
    )
}

/// A new group told to start at new events skips what was published
/// before; an existing group resumes whatever it is told.
pub async fn a_group_starting_at_new_sees_only_later_events(ctx: Ctx) -> Outcome {
    let bus = ctx.bus().await;
    bus.publish(&[ev("order", "o-1", 1)])
        .await
        .map_err(e("publish"))?;
    let new = SubscribeOptions {
        start: StartAt::New,
        ..opts(LONG, "m1")
    };
    let mut sub = bus
        .subscribe("g", &["order".into()], &new)
        .await
        .map_err(e("subscribe"))?;
    bus.publish(&[ev("order", "o-1", 2)])
        .await
        .map_err(e("publish"))?;
    let got = fetch_n(&mut sub, 1, 10, WITHIN).await?;
    check(got[0].event.version == 2, || {
        format!("first event of a group at new: v{}", got[0].event.version)
    })?;
    expect_nothing(&mut sub, Duration::from_millis(300)).await?;
    drop(sub);
    // Joining again (even asking for the oldest) resumes the group.
    bus.publish(&[ev("order", "o-1", 3)])
        .await
        .map_err(e("publish"))?;
    let mut again = bus
        .subscribe("g", &["order".into()], &opts(LONG, "m1"))
        .await
        .map_err(e("subscribe"))?;
    let got = fetch_n(&mut again, 1, 10, WITHIN).await?;
    let versions: Vec<u64> = got.iter().map(|d| d.event.version).collect();
    check(versions == [3] || versions == [2], || {
        format!("resumed with {versions:?}")
    })?;
    let rest = if versions == [2] {
        fetch_n(&mut again, 1, 10, WITHIN).await?
    } else {
        Vec::new()
    };
    ack_all(&mut again, &got).await?;
    ack_all(&mut again, &rest).await?;
    check(rest.iter().all(|d| d.event.version == 3), || {
        "v1 came after the group started at new".into()
    })?;
    expect_nothing(&mut again, Duration::from_millis(300)).await
}

/// Closing the member of an ephemeral group removes the group: its
/// backlog is then that of a group that does not exist (every event held).
pub async fn closing_an_ephemeral_group_removes_it(ctx: Ctx) -> Outcome {
    let bus = ctx.bus().await;
    // A durable group keeps the events held (the in-process bus drops
    // what every group acknowledged).
    let _keep = bus
        .subscribe("keep", &["order".into()], &opts(LONG, "m1"))
        .await
        .map_err(e("subscribe keep"))?;
    bus.publish(&(1..=3).map(|v| ev("order", "o-1", v)).collect::<Vec<_>>())
        .await
        .map_err(e("publish"))?;
    let eph = SubscribeOptions {
        ephemeral: true,
        ..opts(LONG, "m1")
    };
    let mut sub = bus
        .subscribe("tmp", &["order".into()], &eph)
        .await
        .map_err(e("subscribe"))?;
    let got = fetch_n(&mut sub, 3, 10, WITHIN).await?;
    ack_all(&mut sub, &got).await?;
    let b = bus
        .backlog("tmp", &["order".into()])
        .await
        .map_err(e("backlog"))?;
    check(b == Some(0), || {
        format!("backlog of the ephemeral group after its acks: {b:?}")
    })?;
    sub.close().await.map_err(e("close"))?;
    let b = bus
        .backlog("tmp", &["order".into()])
        .await
        .map_err(e("backlog"))?;
    check(b == Some(3), || {
        format!("backlog of the closed ephemeral group: {b:?}, want 3 (no such group)")
    })?;
    // Closing a durable group's member leaves the group.
    let mut keep = bus
        .subscribe("keep", &["order".into()], &opts(LONG, "m1"))
        .await
        .map_err(e("subscribe keep"))?;
    let got = fetch_n(&mut keep, 3, 10, WITHIN).await?;
    ack_all(&mut keep, &got).await?;
    keep.close().await.map_err(e("close keep"))?;
    let b = bus
        .backlog("keep", &["order".into()])
        .await
        .map_err(e("backlog"))?;
    check(b == Some(0), || {
        format!("backlog of a durable group after close: {b:?}")
    })
}

/// A nack delay longer than `ack_wait` holds: the event does not come
/// back when `ack_wait` passes, and its attempt counts one redelivery.
pub async fn a_nack_delay_longer_than_ack_wait_holds(ctx: Ctx) -> Outcome {
    let bus = ctx.bus().await;
    bus.publish(&[ev("order", "o-1", 1)])
        .await
        .map_err(e("publish"))?;
    let mut sub = bus
        .subscribe(
            "g",
            &["order".into()],
            &opts(Duration::from_millis(300), "m1"),
        )
        .await
        .map_err(e("subscribe"))?;
    let first = fetch_n(&mut sub, 1, 1, WITHIN).await?;
    let delay = Duration::from_millis(2500);
    let nacked = tokio::time::Instant::now();
    sub.nack(&first[0].tag, delay).await.map_err(e("nack"))?;
    let again = fetch_n(&mut sub, 1, 1, WITHIN).await?;
    let after = nacked.elapsed();
    check(after >= delay, || {
        format!("redelivered {after:?} after a nack with delay {delay:?} (ack_wait 300ms)")
    })?;
    check(again[0].attempt == 2, || {
        format!("attempt after the nack: {}", again[0].attempt)
    })?;
    ack_all(&mut sub, &again).await
}
