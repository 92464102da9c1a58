//! A bus that is down, and one that comes back: run against a PRIVATE
//! server (nats-server or redis-server) this suite starts on a free port
//! and kills by its own process id — never the machine's shared servers.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use polyrouter::Error;
use polyrouter::sync::{Bus, Delivery, Subscription};

use crate::harness::{Ctx, Outcome, ack_all, check, ev, opts};
use crate::server::{Server, free_port};

async fn open(ctx: &Ctx, url: &str, connect_timeout: Duration) -> Arc<dyn Bus> {
    match ctx.kind.as_str() {
        "nats" => ctx.nats(url, connect_timeout).await,
        _ => ctx.redis(url, connect_timeout),
    }
}

/// Every call on a bus whose server is not there fails with
/// `Error::Unavailable`, naming the bus.
pub async fn a_bus_that_is_down_is_unavailable(ctx: Ctx) -> Outcome {
    let url = match ctx.kind.as_str() {
        "nats" => format!("nats://127.0.0.1:{}", free_port()),
        _ => format!("redis://127.0.0.1:{}", free_port()),
    };
    let bus = open(&ctx, &url, Duration::from_millis(500)).await;
    let unavailable = |what: &str, r: Result<(), Error>| match r {
        Err(Error::Unavailable { store, .. }) if store == "test" => Ok(()),
        other => Err(format!("{what} on a closed port: {other:?}")),
    };
    unavailable("publish", bus.publish(&[ev("order", "o-1", 1)]).await)?;
    unavailable("ping", bus.ping().await)?;
    unavailable(
        "backlog",
        bus.backlog("g", &["order".into()]).await.map(|_| ()),
    )?;
    unavailable(
        "subscribe",
        bus.subscribe("g", &["order".into()], &opts(Duration::from_secs(30), "m1"))
            .await
            .map(|_| ()),
    )
}

/// Retries `f` while the bus is unavailable, up to 30 s.
async fn until_back<T, F, Fut>(what: &str, mut f: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(format!("{what}: {e}")),
        }
    }
}

async fn fetch_until(
    sub: &mut Box<dyn Subscription>,
    want: &HashSet<String>,
) -> Result<Vec<Delivery>, String> {
    let mut got = Vec::new();
    let mut seen = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while !want.is_subset(&seen) {
        if tokio::time::Instant::now() > deadline {
            let missing: Vec<_> = want.difference(&seen).collect();
            return Err(format!("never delivered after the outage: {missing:?}"));
        }
        // While the bus is still coming back, calls fail with Unavailable.
        let batch = match sub.fetch(20, Duration::from_millis(500)).await {
            Ok(b) => b,
            Err(e) if e.is_transient() => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(e) => return Err(format!("fetch: {e}")),
        };
        let tags: Vec<_> = batch.iter().map(|d| d.tag.clone()).collect();
        match sub.ack(&tags).await {
            Ok(()) => {}
            // Not acknowledged: delivered again later, which is allowed.
            Err(e) if e.is_transient() => {}
            Err(e) => return Err(format!("ack: {e}")),
        }
        seen.extend(batch.iter().map(|d| d.event.id.clone()));
        got.extend(batch);
    }
    Ok(got)
}

/// Events published before the server died are delivered after it is
/// back (the server is killed with SIGKILL); publishing during the outage
/// fails with `Unavailable`, and works again afterwards.
pub async fn events_survive_an_outage(ctx: Ctx) -> Outcome {
    let mut server = Server::start(&ctx.kind)?;
    let bus = open(&ctx, &server.url(), Duration::from_secs(1)).await;
    let sent: Vec<_> = (1..=10)
        .map(|v| ev("order", &format!("o-{v}"), v))
        .collect();
    bus.publish(&sent)
        .await
        .map_err(|e| format!("publish: {e}"))?;
    let mut sub = bus
        .subscribe("g", &["order".into()], &opts(Duration::from_secs(2), "m1"))
        .await
        .map_err(|e| format!("subscribe: {e}"))?;
    let first = sub
        .fetch(4, Duration::from_secs(5))
        .await
        .map_err(|e| format!("fetch: {e}"))?;
    check(!first.is_empty(), || {
        "nothing delivered before the outage".into()
    })?;
    ack_all(&mut sub, &first).await?;

    server.kill();
    let attempted = ev("order", "o-x", 1);
    let during = bus.publish(std::slice::from_ref(&attempted)).await;
    check(matches!(during, Err(Error::Unavailable { .. })), || {
        format!("publish while the server is down: {during:?}")
    })?;
    let fetched = sub.fetch(10, Duration::from_millis(200)).await;
    check(matches!(fetched, Err(Error::Unavailable { .. })), || {
        format!(
            "fetch while the server is down: {:?}",
            fetched.map(|d| d.len())
        )
    })?;

    server.spawn()?;
    // Everything not acknowledged before the outage comes (acknowledged
    // events may come again: at least once).
    let acked: HashSet<String> = first.iter().map(|d| d.event.id.clone()).collect();
    let want: HashSet<String> = sent
        .iter()
        .map(|s| s.id.clone())
        .filter(|id| !acked.contains(id))
        .collect();
    let after = fetch_until(&mut sub, &want).await?;
    // A publish that failed with Unavailable may still have reached the
    // bus: not known to be stored is not known to be lost.
    check(
        after
            .iter()
            .all(|d| d.event.id == attempted.id || sent.iter().any(|s| s.id == d.event.id)),
        || "an event that was never published was delivered".into(),
    )?;
    // And the bus takes new events again.
    let late = ev("order", "o-late", 1);
    until_back("publish after the outage", || {
        bus.publish(std::slice::from_ref(&late))
    })
    .await?;
    let want: HashSet<String> = [late.id.clone()].into();
    fetch_until(&mut sub, &want).await?;
    Ok(())
}

/// An ephemeral group whose member stopped fetching (a process that died,
/// without close) is removed by the bus after `ephemeral_idle`.
pub async fn an_abandoned_ephemeral_group_is_removed(ctx: Ctx) -> Outcome {
    let mut ctx = ctx;
    ctx.ephemeral_idle = Duration::from_secs(2);
    let bus = ctx.bus().await;
    let mut keep = bus
        .subscribe(
            "keep",
            &["order".into()],
            &opts(Duration::from_secs(60), "m1"),
        )
        .await
        .map_err(|e| format!("subscribe keep: {e}"))?;
    bus.publish(&[ev("order", "o-1", 1)])
        .await
        .map_err(|e| format!("publish: {e}"))?;
    let eph = polyrouter::sync::SubscribeOptions {
        ephemeral: true,
        ..opts(Duration::from_secs(60), "m2")
    };
    {
        let mut sub = bus
            .subscribe("tmp", &["order".into()], &eph)
            .await
            .map_err(|e| format!("subscribe: {e}"))?;
        let got = sub
            .fetch(1, Duration::from_secs(5))
            .await
            .map_err(|e| format!("fetch: {e}"))?;
        ack_all(&mut sub, &got).await?;
        // Dropped without close: its member is gone.
    }
    let b = bus
        .backlog("tmp", &["order".into()])
        .await
        .map_err(|e| format!("backlog: {e}"))?;
    check(b == Some(0), || {
        format!("backlog right after the member left: {b:?}")
    })?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        // Other members go on fetching (which is when redis-streams looks).
        keep.fetch(1, Duration::from_millis(300))
            .await
            .map_err(|e| format!("fetch keep: {e}"))?;
        let b = bus
            .backlog("tmp", &["order".into()])
            .await
            .map_err(|e| format!("backlog: {e}"))?;
        if b == Some(1) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "the abandoned ephemeral group is still there (backlog {b:?})"
            ));
        }
    }
}
