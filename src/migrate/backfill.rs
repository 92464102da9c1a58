//! Backfill: a keyset scan of the source in key order, each chunk applied
//! to the target at the source's versions, the cursor saved after every
//! chunk (a killed process resumes after the last saved chunk; chunks
//! applied again are stale and change nothing).
//!
//! The read of the next chunk runs while this one is applied (its cursor,
//! the chunk's last key, is known before the write), so a chunk costs the
//! slower of the two round trips, not their sum. A row read ahead is at
//! most one chunk older than it would be otherwise; dual-writes and the
//! version guard keep a newer write either way.

use std::time::Instant;

use super::driver::Driver;
use super::state::{Phase, StoredKey};
use super::{Migration, Pace, Progress};
use crate::query::{Direction, Order, field};
use crate::store::{StoreQuery, VersionedChange};
use crate::{Record, Result, Store};

/// Reads the chunk after `cursor` from `store`, in key order.
pub(crate) async fn chunk(
    store: &dyn Store,
    info: &crate::store::EntityInfo,
    cursor: Option<&StoredKey>,
    limit: usize,
) -> Result<Vec<Record>> {
    let key = info.schema.key;
    let q = StoreQuery {
        filter: cursor.map(|k| field(key).gt(k.key().to_value())),
        order: vec![Order {
            field: key.into(),
            direction: Direction::Asc,
        }],
        limit: Some(limit),
    };
    store
        .query(info, &q)
        .await
        .map_err(|e| e.with_entity(info.name()))
}

pub(crate) async fn run(m: &Migration, d: &mut Driver, progress: Progress<'_>) -> Result<()> {
    if d.state.phase != Phase::Backfill {
        return Ok(());
    }
    let s = &mut d.state.backfill;
    if s.started_ms == 0 {
        s.started_ms = crate::lease::now_ms();
    }
    if s.total.is_none() && m.source.capabilities().count {
        s.total = Some(m.source.count(&m.source_info, None).await?);
    }
    d.save().await?;
    let mut pace = Pace::new(m.config.rate);
    let batch = m.config.batch;
    let mut rows = chunk(
        m.source.as_ref(),
        &m.source_info,
        d.state.backfill.cursor.as_ref(),
        batch,
    )
    .await?;
    while let Some(last) = rows.last().map(|r| StoredKey::from(&r.key)) {
        let t = Instant::now();
        let n = rows.len() as u64;
        let full = rows.len() == batch;
        let changes: Vec<VersionedChange> = rows.into_iter().map(VersionedChange::put).collect();
        let apply = async {
            m.target
                .apply_versioned(&m.target_info, changes)
                .await
                .map_err(|e| e.with_entity(m.entity()))
        };
        // A short chunk was the last one: nothing to read ahead.
        let next = async {
            match full {
                true => chunk(m.source.as_ref(), &m.source_info, Some(&last), batch).await,
                false => Ok(Vec::new()),
            }
        };
        let (applied, next) = tokio::join!(apply, next);
        let applied = applied?;
        let s = &mut d.state.backfill;
        s.skipped += applied.iter().filter(|a| !a.applied()).count() as u64;
        s.rows += n;
        s.cursor = Some(last);
        s.busy_ms += t.elapsed().as_millis() as u64;
        d.save().await?;
        progress(&d.state);
        pace.done(n).await;
        rows = next?;
    }
    d.state.backfill.done = true;
    d.state.phase = Phase::Backfilled;
    d.save().await?;
    progress(&d.state);
    Ok(())
}
