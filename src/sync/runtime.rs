//! Running sync inside an application ([`Router::sync`]) or as a worker
//! process (`polyrouter sync`): one relay per outbox route (leased, so one
//! process relays each outbox at a time) and the configured projections,
//! as tokio tasks with a graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::capture::Capture;
use super::projection::{
    HandlerProjection, InvalidateProjection, Projection, ProjectionOptions, ProjectionRunner,
    ProjectionStats, ReplicaProjection, SearchProjection, StoreDeadLetters,
};
use super::relay::Relay;
use super::state::{LeaseKeeper, SyncRecord, WorkerStatus};
use super::{Bus, StartAt};
use crate::config::{ProjectionConfig, ProjectionKind, SyncConfig};
use crate::entity::Schema;
use crate::lease::now_ms;
use crate::router::Route;
use crate::store::EntityInfo;
use crate::{Error, KeyKind, Precondition, Repo, Result, Router};

/// Chooses what a sync worker runs; [`SyncBuilder::start`] starts it.
pub struct SyncBuilder {
    router: Router,
    relays: bool,
    captures: bool,
    projections: bool,
    handlers: std::collections::BTreeMap<String, Arc<dyn Projection>>,
    worker: String,
}

impl std::fmt::Debug for SyncBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncBuilder")
            .field("relays", &self.relays)
            .field("captures", &self.captures)
            .field("projections", &self.projections)
            .field("handlers", &self.handlers.keys().collect::<Vec<_>>())
            .field("worker", &self.worker)
            .finish()
    }
}

/// One running projection: its name, bus, group and entities, and figures.
#[derive(Debug, Clone)]
struct RunningProjection {
    group: String,
    bus: Arc<dyn Bus>,
    entities: Vec<String>,
    stats: Arc<ProjectionStats>,
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
            captures: true,
            projections: true,
            handlers: Default::default(),
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

    /// Whether to run the change captures of the `change_capture` routes
    /// (default `true`).
    pub fn captures(mut self, on: bool) -> Self {
        self.captures = on;
        self
    }

    /// Whether to run the `[projections.NAME]` (default `true`).
    pub fn projections(mut self, on: bool) -> Self {
        self.projections = on;
        self
    }

    /// Registers the Rust handler of `[projections.NAME]` with
    /// `kind = "handler"` (see
    /// [`HandlerProjection`](super::projection::HandlerProjection)).
    pub fn handler(mut self, name: &str, handler: impl Projection) -> Self {
        self.handlers.insert(name.to_string(), Arc::new(handler));
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
        let mut projections = Vec::new();
        // The dead-letter table is made only when some projection (one of
        // `[projections.NAME]` or a migration's dual-write) may need it.
        if self.projections && !(config.projections.is_empty() && config.migrations.is_empty()) {
            let dead_letters = Arc::new(
                StoreDeadLetters::open(
                    router
                        .store(&sc.store)
                        .cloned()
                        .ok_or_else(|| Error::invalid_input(&sc.store, "", "no such store"))?,
                    &format!("{}_dead_letters", sc.table),
                )
                .await?,
            );
            // `[projections.NAME]`, then every migration's dual-write.
            let migrations = config.migrations.iter().flat_map(|(name, mc)| {
                let source = config
                    .entities
                    .get(&mc.entity)
                    .map(|e| e.store.as_str())
                    .unwrap_or_default();
                let [forward, back] = mc.appliers(name, source);
                [
                    (forward.0, forward.1, Some((name.clone(), true))),
                    (back.0, back.1, Some((name.clone(), false))),
                ]
            });
            // A migration's appliers carry its name and direction (forward?).
            type Named = (String, ProjectionConfig, Option<(String, bool)>);
            let all: Vec<Named> = config
                .projections
                .iter()
                .map(|(n, p)| (n.clone(), p.clone(), None))
                .chain(migrations)
                .collect();
            for (name, pc, migration) in &all {
                let mut projection = build_projection(&router, name, pc, &self.handlers).await?;
                if let Some((m, forward)) = migration {
                    projection =
                        crate::migrate::dual_write_projection(&router, m, *forward, projection)
                            .await?;
                }
                let bus = router.bus(pc.bus_name(&config.entities).unwrap_or_default())?;
                let invalidate = pc.kind == ProjectionKind::Invalidate;
                // Cache invalidation runs in every process: a group of its own.
                let group = if invalidate {
                    format!("{name}-{}", self.worker)
                } else {
                    name.clone()
                };
                let options = ProjectionOptions {
                    batch: pc.batch,
                    max_attempts: pc.max_attempts,
                    retry_delay: pc.retry_delay.0,
                    max_retry_delay: pc.retry_delay.0 * 30,
                    ack_wait: pc.ack_wait.0,
                    start: if invalidate {
                        StartAt::New
                    } else {
                        StartAt::Oldest
                    },
                    ephemeral: invalidate,
                    concurrency: pc.concurrency,
                };
                if !invalidate {
                    // Create the durable group now (it starts at the oldest
                    // event), before any relay publishes.
                    let sub = bus
                        .subscribe(
                            &group,
                            &pc.entities,
                            &super::SubscribeOptions {
                                ack_wait: pc.ack_wait.0,
                                consumer: self.worker.clone(),
                                start: StartAt::Oldest,
                                ephemeral: false,
                            },
                        )
                        .await?;
                    sub.close().await?;
                }
                let runner = ProjectionRunner::new(
                    &group,
                    projection,
                    bus.clone(),
                    pc.entities.clone(),
                    options,
                    dead_letters.clone(),
                );
                if let Some(w) = watermark_task(&router, pc, &bus, &group, stopped.clone())? {
                    tasks.push(w);
                }
                projections.push(RunningProjection {
                    group,
                    bus,
                    entities: pc.entities.clone(),
                    stats: runner.stats(),
                });
                let mut stopped = stopped.clone();
                let name = name.clone();
                tasks.push(tokio::spawn(async move {
                    if let Err(e) = runner.run(stopped.clone()).await {
                        tracing::error!(projection = %name, error = %e, "sync: a projection stopped");
                        let _ = stopped.changed().await;
                    }
                }));
            }
        }
        // Relays start once every durable group exists, so a bus that
        // keeps events only for existing groups keeps them for these.
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
            // A migration's target records the entity's events once it is
            // the primary (after cutover): relay them too.
            for (name, mc) in &config.migrations {
                let (Some(route), Some(target)) = (router.route(&mc.entity), router.store(&mc.to))
                else {
                    continue;
                };
                let (Some(spec), Some(bus)) =
                    (route.config.migration_outbox(), route.config.event_bus())
                else {
                    continue;
                };
                if !target.capabilities().outbox {
                    continue;
                }
                let info = EntityInfo {
                    store: mc.to.clone(),
                    outbox: Some(spec),
                    ..route.entity_info(relay_schema(&router, route))
                };
                let relay = Relay::new(target.clone(), info, router.bus(bus)?, sc.relay_batch);
                let lease = LeaseKeeper::new(
                    state.clone(),
                    format!("lease/relay/{}/{}/{name}", mc.to, route.entity),
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
        let mut captures = Vec::new();
        if self.captures {
            let (c, t) =
                super::capture::start_captures(&router, &sc, &state, &self.worker, &stopped)
                    .await?;
            captures = c;
            tasks.extend(t);
        }
        let handle = SyncHandle {
            stop,
            tasks,
            relays: Arc::new(relays),
            captures: Arc::new(captures),
            projections: Arc::new(projections),
            worker: self.worker,
            state,
        };
        let reporter = tokio::spawn(report_status(
            handle.state.clone(),
            handle.worker.clone(),
            handle.relays.clone(),
            handle.captures.clone(),
            handle.projections.clone(),
            sc,
            stopped,
        ));
        let mut handle = handle;
        handle.tasks.push(reporter);
        Ok(handle)
    }
}

/// For a `replica` projection filling its entity's `read_from` store from
/// an outbox: a task keeping the replica's watermark, which
/// `bounded_staleness` reads use (see `router::replica`). Every 20 ms: if
/// the outbox is empty at `t` (every write committed before `t` has been
/// published) and then the group has nothing unacknowledged (every
/// published event is applied), every write committed before `t` is in
/// the replica: the watermark moves to `t`.
fn watermark_task(
    router: &Router,
    pc: &ProjectionConfig,
    bus: &Arc<dyn Bus>,
    group: &str,
    mut stop: watch::Receiver<bool>,
) -> Result<Option<JoinHandle<()>>> {
    if pc.kind != ProjectionKind::Replica {
        return Ok(None);
    }
    let entity = &pc.entities[0];
    let Some(route) = router.routes().find(|r| &r.entity == entity) else {
        return Ok(None);
    };
    let (Some(_), Some(read_from)) = (&route.config.outbox, &route.config.read_from) else {
        return Ok(None);
    };
    if pc.target_store(&route.config) != Some(read_from.as_str()) {
        return Ok(None);
    }
    let Some(store) = router.store(&route.store).cloned() else {
        return Ok(None);
    };
    let info = route.entity_info(relay_schema(router, route));
    let watermark = router.replica_watermark(entity, read_from);
    let (bus, group, entities) = (bus.clone(), group.to_string(), pc.entities.clone());
    Ok(Some(tokio::spawn(async move {
        loop {
            let t = now_ms();
            if matches!(store.outbox_len(&info).await, Ok(0))
                && matches!(bus.backlog(&group, &entities).await, Ok(Some(0)))
            {
                watermark.fetch_max(t, std::sync::atomic::Ordering::AcqRel);
            }
            if stopping(&stop) {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = stop.changed() => {}
            }
        }
    })))
}

/// The schema a projection of `entity` needs to read its events' records.
fn projection_schema(router: &Router, name: &str, entity: &str) -> Result<&'static Schema> {
    router.entity_schema(entity)?.ok_or_else(|| {
        router.config().error(
            &format!("projections.{name}"),
            format!(
                "entity `{entity}` has no Rust type in this process and no `sql = {{ ... }}` columns: call `router.repo::<T>()` for it before `router.sync()`, or declare its columns with `sql` so `polyrouter sync` can read its events"
            ),
        )
    })
}

/// The projection `[projections.NAME]` describes, ready to run.
async fn build_projection(
    router: &Router,
    name: &str,
    pc: &ProjectionConfig,
    handlers: &std::collections::BTreeMap<String, Arc<dyn Projection>>,
) -> Result<Arc<dyn Projection>> {
    let config = router.config();
    if pc.kind == ProjectionKind::Handler {
        return match handlers.get(name) {
            Some(h) => Ok(Arc::new(HandlerProjection::shared(h.clone()))),
            None => Err(config.error(
                &format!("projections.{name}"),
                format!(
                    "a handler projection needs its Rust handler: `router.sync_builder().handler(\"{name}\", MyProjection).start()`"
                ),
            )),
        };
    }
    let entity = &pc.entities[0];
    let route = router
        .routes()
        .find(|r| &r.entity == entity)
        .ok_or_else(|| {
            config.error(
                &format!("projections.{name}.entities"),
                format!("entity `{entity}` has no route"),
            )
        })?;
    let schema = projection_schema(router, name, entity)?;
    let primary = router
        .store(&route.store)
        .cloned()
        .ok_or_else(|| Error::invalid_input(&route.store, entity, "no such store"))?;
    let primary_info = route.entity_info(schema);
    Ok(match pc.kind {
        ProjectionKind::Replica => {
            let target_name = pc.target_store(&route.config).unwrap_or_default();
            let target = router
                .store(target_name)
                .cloned()
                .ok_or_else(|| Error::invalid_input(target_name, entity, "no such store"))?;
            if !target.capabilities().versioned_apply {
                return Err(Error::unsupported(
                    target_name,
                    entity,
                    format!(
                        "versioned apply, which the replica projection `{name}` needs to copy records keeping their versions"
                    ),
                ));
            }
            let target_info = EntityInfo {
                store: target_name.to_string(),
                outbox: None,
                ..primary_info.clone()
            };
            target.ensure_entity(&target_info).await?;
            Arc::new(ReplicaProjection::new(
                target,
                target_info,
                Some((primary, primary_info)),
            ))
        }
        ProjectionKind::Invalidate => {
            let cc = route.config.cache.as_ref().ok_or_else(|| {
                config.error(
                    &format!("projections.{name}.kind"),
                    "the entity has no cache",
                )
            })?;
            let cache = router
                .store(&cc.store)
                .cloned()
                .ok_or_else(|| Error::invalid_input(&cc.store, entity, "no such store"))?;
            let cache_info = crate::router::cache_entity(schema.key_kind, &route.table, &cc.store);
            let r = router.clone();
            let e = entity.clone();
            Arc::new(InvalidateProjection::new(
                cache,
                cache_info,
                Arc::new(move |k: &crate::Key| r.bump_cache_epoch(&e, k)),
            ))
        }
        ProjectionKind::Search => {
            let sr = router.search_route(route, schema).await?.ok_or_else(|| {
                config.error(
                    &format!("projections.{name}.kind"),
                    "the entity has no search index",
                )
            })?;
            Arc::new(SearchProjection::new(
                sr.store.clone(),
                sr.index.clone(),
                primary,
                primary_info,
            )?)
        }
        ProjectionKind::Handler => unreachable!("handled above"),
    })
}

/// The schema a relay uses: the Rust type's when one is bound, else a
/// name-only one (a relay touches only the outbox, never the fields),
/// made once per entity name for the life of the process.
fn relay_schema(router: &Router, route: &Route) -> &'static Schema {
    static NAME_ONLY: std::sync::OnceLock<
        parking_lot::Mutex<std::collections::HashMap<String, &'static Schema>>,
    > = std::sync::OnceLock::new();
    if let Some(s) = router.bound_schema(&route.entity) {
        return s;
    }
    let mut names = NAME_ONLY.get_or_init(Default::default).lock();
    names.entry(route.entity.clone()).or_insert_with(|| {
        Box::leak(Box::new(Schema {
            name: Box::leak(route.entity.clone().into_boxed_str()),
            key: "id",
            key_kind: KeyKind::Str,
            partition_key: None,
            version: None,
            fields: &[],
        }))
    })
}

async fn run_relay(
    relay: Relay,
    mut lease: LeaseKeeper,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = interval;
    loop {
        if stopping(&stop) {
            break;
        }
        let held = lease.hold().await;
        relay.note_lease(held, lease.last_error());
        let pause = if !held {
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
    captures: Arc<Vec<Capture>>,
    projections: Arc<Vec<RunningProjection>>,
    config: SyncConfig,
    mut stop: watch::Receiver<bool>,
) {
    let id = format!("status/{worker}");
    loop {
        let status = WorkerStatus {
            worker: worker.clone(),
            relays: relays.iter().map(Relay::status).collect(),
            captures: captures.iter().map(Capture::status).collect(),
            projections: projections.iter().map(|p| p.stats.snapshot()).collect(),
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
        if stopping(&stop) {
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
    captures: Arc<Vec<Capture>>,
    projections: Arc<Vec<RunningProjection>>,
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
            captures: self.captures.iter().map(Capture::status).collect(),
            projections: self
                .projections
                .iter()
                .map(|p| p.stats.snapshot())
                .collect(),
        }
    }

    /// Waits until every outbox of this worker is empty (checked in the
    /// stores themselves), every change capture has published what was
    /// committed, and every projection of it has applied (or
    /// dead-lettered) every event on its bus, at most `timeout`;
    /// `Error::Unavailable` when not by then. For tests and examples that
    /// need the events through: it needs one moment with everything empty
    /// at once, which a steady stream of writes may never leave (pause
    /// the writers first).
    pub async fn settle(&self, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut waiting = 0;
            for r in self.relays.iter() {
                waiting += r.settled_backlog().await.unwrap_or(1);
            }
            for c in self.captures.iter() {
                // A round holds the capture while it runs: wait for it no
                // longer than the deadline.
                waiting += tokio::time::timeout_at(deadline, c.pending())
                    .await
                    .map_or(1, |p| p.map_or(1, |n| n as u64));
            }
            for p in self.projections.iter() {
                waiting += p
                    .bus
                    .backlog(&p.group, &p.entities)
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or(1);
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

/// What the server keeps for a `change_capture` route's slot now
/// (`polyrouter sync status`).
pub async fn capture_retention(
    router: &Router,
    route: &Route,
) -> Result<super::capture::Retention> {
    let Some(cc) = &route.config.change_capture else {
        return Err(Error::invalid_input(
            &route.store,
            &route.entity,
            "the route has no `change_capture`",
        ));
    };
    let store = router
        .store(&route.store)
        .ok_or_else(|| Error::invalid_input(&route.store, &route.entity, "no such store"))?;
    let info = route.entity_info(relay_schema(router, route));
    store
        .change_source(&info, &cc.slot_name(&route.entity))?
        .retention()
        .await
}

/// Whether a task should stop: asked to, or its handle is gone (the
/// sender dropped, e.g. when `start` failed half-way).
fn stopping(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}
