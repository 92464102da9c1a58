//! A message on the bus's stream that is not a polyrouter event (another
//! program wrote it): skipped, acknowledged and logged, never blocking the
//! group.

use std::time::Duration;

use crate::harness::{Ctx, Outcome, ack_all, check, ev, expect_nothing, fetch_n, opts};

/// Writes `payload` straight onto entity `order`'s stream, past the bus.
async fn write_raw(ctx: &Ctx, payload: &'static [u8]) -> Outcome {
    match ctx.kind.as_str() {
        #[cfg(feature = "nats")]
        "nats" => {
            let client = async_nats::connect(crate::harness::nats_url())
                .await
                .map_err(|e| e.to_string())?;
            let js = async_nats::jetstream::new(client);
            js.publish(format!("prt.{}.order", ctx.id), payload.into())
                .await
                .map_err(|e| e.to_string())?
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        #[cfg(feature = "redis")]
        "redis-streams" => {
            let client =
                redis::Client::open(crate::harness::redis_url()).map_err(|e| e.to_string())?;
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| e.to_string())?;
            redis::cmd("XADD")
                .arg(format!("prt:{}:order", ctx.id))
                .arg("*")
                .arg("e")
                .arg(payload)
                .query_async::<String>(&mut conn)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        other => {
            let _ = payload;
            Err(format!("cannot write raw messages to a {other} bus"))
        }
    }
}

pub async fn foreign_messages_are_skipped(ctx: Ctx) -> Outcome {
    let bus = ctx.bus().await;
    let first = ev("order", "o-1", 1);
    bus.publish(std::slice::from_ref(&first))
        .await
        .map_err(|e| format!("publish: {e}"))?;
    write_raw(&ctx, b"{\"hello\":\"not an event\"}").await?;
    write_raw(&ctx, b"\xff\xfe binary").await?;
    let second = ev("order", "o-1", 2);
    bus.publish(std::slice::from_ref(&second))
        .await
        .map_err(|e| format!("publish: {e}"))?;
    let mut sub = bus
        .subscribe(
            "g",
            &["order".into()],
            &opts(Duration::from_millis(500), "m1"),
        )
        .await
        .map_err(|e| format!("subscribe: {e}"))?;
    let got = fetch_n(&mut sub, 2, 10, Duration::from_secs(20)).await?;
    let versions: Vec<u64> = got.iter().map(|d| d.event.version).collect();
    check(versions == [1, 2], || format!("delivered {versions:?}"))?;
    ack_all(&mut sub, &got).await?;
    // The foreign messages were acknowledged too: nothing comes back.
    expect_nothing(&mut sub, Duration::from_millis(1500)).await?;
    let b = bus
        .backlog("g", &["order".into()])
        .await
        .map_err(|e| format!("backlog: {e}"))?;
    check(b == Some(0), || format!("backlog: {b:?}"))
}
