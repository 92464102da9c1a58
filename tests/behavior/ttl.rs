//! Expiry: per call and per entity default.

use std::time::Duration;

use polyrouter::query::{Query, field};
use polyrouter::router::WriteOptions;
use polyrouter::{Capabilities, Precondition, Result};

use crate::behaviour;
use crate::entities::*;
use crate::harness::{Behaviour, Ctx};

pub fn behaviours() -> Vec<Behaviour> {
    vec![behaviour!(records_expire, |c: &Capabilities| (!c.ttl).then_some("ttl"))]
}

async fn records_expire(ctx: Ctx) -> Result<()> {
    let router = ctx.router().await?;
    let notes = router.repo::<Note>().await?;
    let sessions = router.repo::<Session>().await?;
    notes
        .put_with(
            &note("short", "gone soon"),
            WriteOptions::new().ttl(Duration::from_millis(400)),
        )
        .await?;
    notes.put(&note("forever", "stays")).await?;
    sessions
        .put(&Session {
            id: "s1".into(),
            user: "u1".into(),
        })
        .await?; // entity default: 1s
    assert!(notes.get("short").await?.is_some());
    assert!(sessions.get("s1").await?.is_some());
    let caps = ctx.caps();
    if caps.count {
        assert_eq!(notes.count(None).await?, 2);
    }

    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(
        notes.get("short").await?,
        None,
        "expired record is not returned by get"
    );
    assert_eq!(
        sessions.get("s1").await?,
        None,
        "the entity's default TTL applies"
    );
    assert_eq!(
        notes
            .get_many(["short", "forever"])
            .await?
            .iter()
            .filter(|n| n.is_some())
            .count(),
        1
    );
    if caps.query && caps.filters.contains {
        let page = notes
            .query(Query::new().filter(field("body").contains("s")))
            .await?;
        assert_eq!(
            page.items.len(),
            1,
            "expired record is not returned by query"
        );
    }
    if caps.count {
        assert_eq!(notes.count(None).await?, 1, "expired record is not counted");
    }
    // An expired record counts as absent for preconditions, and starts again at version 1.
    assert_eq!(
        notes
            .put_if(&note("short", "again"), Precondition::Absent)
            .await?,
        1
    );
    assert!(
        !sessions.delete("s1").await?,
        "deleting an expired record reports it absent"
    );
    Ok(())
}
