//! Running sync inside an application ([`Router::sync`]) or as a worker
//! process (`polyrouter sync`): one relay per outbox route (leased, so one
//! process relays each outbox at a time) and the configured projections,
//! as tokio tasks with a graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::relay::Relay;
use super::state::{LeaseKeeper, SyncRecord, WorkerStatus};
use crate::config::SyncConfig;
use crate::entity::Schema;
use crate::lease::now_ms;
use crate::router::Route;
use crate::{Error, KeyKind, Precondition, Repo, Result, Router};

/// Chooses what a sync worker runs; [`SyncBuilder::start`] starts it.
#[derive(Debug)]
pub struct SyncBuilder {
    router: Router,
    relays: bool,
    worker: String,
}

impl Router {
    /// Starts sync in this process: a relay for every route with an
    /// `outbox` and every `[projections.NAME]`, until
    /// [`SyncHandle::shutdown`]. Needs `[sync]` (where leases, status and
    /// dead letters live).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let router = polyrouter::Router::from_toml_str(r#"
    ///     [stores.main]
    ///     kind = "memory"
    ///     [buses.events]
    ///     kind = "memory"
    ///     [sync]
    ///     store = "main"
    ///     [entities.order]
    ///     store = "main"
    ///     outbox = { bus = "events" }
    /// "#).await.unwrap();
    /// let sync = router.sync().await.unwrap();
    /// assert_eq!(sync.status().relays.len(), 1);
    /// sync.shutdown().await.unwrap();
    /// # });
    /// ```
    pub async fn sync(&self) -> Result<SyncHandle> {
        self.sync_builder().start().await
    }

    /// A [`SyncBuilder`] to choose what this process runs.
    pub fn sync_builder(&self) -> SyncBuilder {
        SyncBuilder {
            router: self.clone(),
            relays: true,
            worker: format!(
                "pid-{}-{}",
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
        }
    }
}

impl SyncBuilder {
    /// Whether to run the relays of the outbox routes (default `true`).
    pub fn relays(mut self, on: bool) -> Self {
        self.relays = on;
        self
    }

    /// This worker's id in leases and status (default: pid and a random suffix).
    pub fn worker(mut self, id: impl Into<String>) -> Self {
        self.worker = id.into();
        self
    }

    /// Starts the chosen relays and projections.
    pub async fn start(self) -> Result<SyncHandle> {
        let router = self.router;
        let config = router.config();
        let Some(sc) = config.sync.clone() else {
            return Err(config.error(
                "sync",
                "sync needs `[sync] store = \"...\"`: the store keeping relay leases, projection status and dead letters",
            ));
        };
        let state = router.repo_at::<SyncRecord>(&sc.store, &sc.table).await?;
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut relays = Vec::new();
        if self.relays {
            for route in router.routes() {
                let Some(o) = &route.config.outbox else {
                    continue;
                };
                let store = router.store(&route.store).cloned().ok_or_else(|| {
                    Error::invalid_input(&route.store, &route.entity, "no such store")
                })?;
                let bus = router.bus(&o.bus)?;
                let info = route.entity_info(relay_schema(&router, route));
                let relay = Relay::new(store, info, bus, sc.relay_batch);
                let lease = LeaseKeeper::new(
                    state.clone(),
                    format!("lease/relay/{}/{}", route.store, route.entity),
                    self.worker.clone(),
                    sc.lease.0,
                );
                tasks.push(tokio::spawn(run_relay(
                    relay.clone(),
                    lease,
                    sc.relay_interval.0,
                    stopped.clone(),
                )));
                relays.push(relay);
            }
        }
        let handle = SyncHandle {
            stop,
            tasks,
            relays: Arc::new(relays),
            worker: self.worker,
            state,
        };
        let reporter = tokio::spawn(report_status(
            handle.state.clone(),
            handle.worker.clone(),
            handle.relays.clone(),
            sc,
            stopped,
        ));
        let mut handle = handle;
        handle.tasks.push(reporter);
        Ok(handle)
    }
}

/// The schema a relay uses: the Rust type's when one is bound, else a
/// name-only one (a relay touches only the outbox, never the fields).
fn relay_schema(router: &Router, route: &Route) -> &'static Schema {
    if let Some(s) = router.bound_schema(&route.entity) {
        return s;
    }
    Box::leak(Box::new(Schema {
        name: Box::leak(route.entity.clone().into_boxed_str()),
        key: "id",
        key_kind: KeyKind::Str,
        partition_key: None,
        version: None,
        fields: &[],
    }))
}

async fn run_relay(
    relay: Relay,
    mut lease: LeaseKeeper,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = interval;
    loop {
        if *stop.borrow() {
            break;
        }
        let pause = if !lease.hold().await {
            // Another worker relays this outbox; look again later.
            let _ = relay.measure_backlog().await;
            interval.max(Duration::from_millis(500))
        } else {
            match relay.pump().await {
                Ok(n) if n >= relay.batch() => {
                    backoff = interval;
                    Duration::ZERO
                }
                Ok(_) => {
                    backoff = interval;
                    interval
                }
                Err(e) => {
                    tracing::warn!(error = %e, "sync: relay round failed; the events stay in the outbox");
                    let _ = relay.measure_backlog().await;
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

async fn report_status(
    state: Repo<SyncRecord>,
    worker: String,
    relays: Arc<Vec<Relay>>,
    config: SyncConfig,
    mut stop: watch::Receiver<bool>,
) {
    let id = format!("status/{worker}");
    loop {
        let status = WorkerStatus {
            worker: worker.clone(),
            relays: relays.iter().map(Relay::status).collect(),
        };
        let rec = SyncRecord {
            id: id.clone(),
            owner: Some(worker.clone()),
            lease_until: 0,
            status: serde_json::to_value(&status).ok(),
            updated_ms: now_ms(),
            version: 0,
        };
        if let Err(e) = state.put_if(&rec, Precondition::None).await {
            tracing::warn!(error = %e, "sync: cannot write the status row");
        }
        if *stop.borrow() {
            let _ = state.delete(id.as_str()).await;
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(config.status_interval.0) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Sync running in this process; stops on [`SyncHandle::shutdown`] (or
/// when dropped, without waiting).
#[derive(Debug)]
pub struct SyncHandle {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    relays: Arc<Vec<Relay>>,
    worker: String,
    state: Repo<SyncRecord>,
}

impl SyncHandle {
    /// This worker's id.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// The figures of every relay and projection of this worker now.
    pub fn status(&self) -> WorkerStatus {
        WorkerStatus {
            worker: self.worker.clone(),
            relays: self.relays.iter().map(Relay::status).collect(),
        }
    }

    /// Waits until every outbox of this worker is empty (checked in the
    /// stores themselves), at most `timeout`; `Error::Unavailable` when it
    /// is not by then. For tests and examples that need the events out.
    pub async fn settle(&self, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut waiting = 0;
            for r in self.relays.iter() {
                waiting += r.measure_backlog().await.unwrap_or(1);
            }
            if waiting == 0 {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::unavailable(
                    "sync",
                    "",
                    format!("{waiting} event(s) still in the outboxes after {timeout:?}"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops every relay and projection after its current round, releases
    /// the relay leases, and removes this worker's status row.
    pub async fn shutdown(mut self) -> Result<()> {
        let _ = self.stop.send(true);
        for t in std::mem::take(&mut self.tasks) {
            if let Err(e) = t.await {
                return Err(Error::backend(
                    "sync",
                    "",
                    format!("a sync task failed: {e}"),
                ));
            }
        }
        Ok(())
    }
}

impl Drop for SyncHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Every worker's last status row in the `[sync]` store, newest first,
/// with the age of each (for `polyrouter sync status`).
pub async fn worker_statuses(router: &Router) -> Result<Vec<(WorkerStatus, Duration)>> {
    let config = router.config();
    let Some(sc) = &config.sync else {
        return Err(config.error("sync", "no `[sync]` table: nothing to report"));
    };
    let state = router.repo_at::<SyncRecord>(&sc.store, &sc.table).await?;
    let rows = state
        .query(crate::Query::new().filter(crate::field("id").prefix("status/")))
        .await?;
    let now = now_ms();
    let mut out: Vec<(WorkerStatus, Duration)> = rows
        .items
        .into_iter()
        .filter_map(|r| {
            let s: WorkerStatus = serde_json::from_value(r.status?).ok()?;
            Some((s, Duration::from_millis((now - r.updated_ms).max(0) as u64)))
        })
        .collect();
    out.sort_by_key(|(_, age)| *age);
    Ok(out)
}

/// The events waiting in a route's outbox now (`polyrouter sync status`).
pub async fn outbox_backlog(router: &Router, route: &Route) -> Result<u64> {
    let store = router
        .store(&route.store)
        .ok_or_else(|| Error::invalid_input(&route.store, &route.entity, "no such store"))?;
    store
        .outbox_len(&route.entity_info(relay_schema(router, route)))
        .await
}
