//! Starting the captures of a sync worker: one per `change_capture`
//! route, leased (`lease/capture/{store}/{slot}`) so one process reads a
//! slot at a time.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Capture;
use crate::config::SyncConfig;
use crate::sync::state::{LeaseKeeper, SyncRecord};
use crate::{Error, Repo, Result, Router};

/// How often a capture measures what the server keeps for its slot.
const RETENTION_EVERY: Duration = Duration::from_secs(1);

/// Prepares (slot, publication) and starts the capture of every route
/// with `change_capture`.
pub(crate) async fn start_captures(
    router: &Router,
    sc: &SyncConfig,
    state: &Repo<SyncRecord>,
    worker: &str,
    stopped: &watch::Receiver<bool>,
) -> Result<(Vec<Capture>, Vec<JoinHandle<()>>)> {
    let config = router.config();
    let (mut captures, mut tasks) = (Vec::new(), Vec::new());
    for route in router.routes() {
        let Some(cc) = &route.config.change_capture else {
            continue;
        };
        let schema = router.entity_schema(&route.entity)?.ok_or_else(|| {
            config.error(
                &format!("entities.{}.change_capture", route.entity),
                format!(
                    "entity `{}` has no Rust type in this process and no `sql = {{ ... }}` columns: call `router.repo::<T>()` for it before `router.sync()`, or declare its columns with `sql`, so captured rows can be typed",
                    route.entity
                ),
            )
        })?;
        let store = router
            .store(&route.store)
            .cloned()
            .ok_or_else(|| Error::invalid_input(&route.store, &route.entity, "no such store"))?;
        let info = route.entity_info(schema);
        let slot = cc.slot_name(&route.entity);
        let source = store.change_source(&info, &slot)?;
        store.ensure_entity(&info).await?;
        source.prepare().await?;
        let capture = Capture::new(
            source,
            router.bus(&cc.bus)?,
            &route.store,
            &route.entity,
            sc.relay_batch,
            cc.warn_retained_mb.saturating_mul(1024 * 1024),
        );
        let lease = LeaseKeeper::new(
            state.clone(),
            format!("lease/capture/{}/{slot}", route.store),
            worker.to_string(),
            sc.lease.0,
        );
        tasks.push(tokio::spawn(run_capture(
            capture.clone(),
            lease,
            cc.interval.0,
            stopped.clone(),
        )));
        captures.push(capture);
    }
    Ok((captures, tasks))
}

async fn run_capture(
    capture: Capture,
    mut lease: LeaseKeeper,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = interval;
    let mut measured: Option<Instant> = None;
    loop {
        if *stop.borrow() || stop.has_changed().is_err() {
            break;
        }
        if measured.is_none_or(|t| t.elapsed() >= RETENTION_EVERY) {
            if let Err(e) = capture.measure_retention().await {
                tracing::warn!(error = %e, "sync: cannot measure a change capture's retained log");
            }
            measured = Some(Instant::now());
        }
        let pause = if !lease.hold().await {
            // Another worker reads this slot.
            interval.max(Duration::from_millis(500))
        } else {
            match capture.pump().await {
                Ok(n) if n > 0 => {
                    backoff = interval;
                    Duration::ZERO
                }
                Ok(_) => {
                    backoff = interval;
                    interval
                }
                Err(e) => {
                    tracing::warn!(error = %e, "sync: change capture round failed; the slot stays where it was");
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    backoff
                }
            }
        };
        if !pause.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
    }
    lease.release().await;
}
