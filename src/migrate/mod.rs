//! Live migration of an entity from its route's store to another store
//! (`[migrations.NAME]`, `polyrouter migrate`): the **dual-write** applies
//! every change event of the source route (its outbox, or its change
//! capture where other applications write the table too) to the target, run
//! by the sync workers (`router.sync()`, `polyrouter sync`) as a replica
//! projection in consumer group `migration-NAME`; a **backfill** copies every
//! row by a keyset scan of the source, keeping the source's versions
//! ([`Store::apply_versioned`], so a copied row never overwrites a newer
//! write and a deleted key stays deleted), with a resumable cursor and a
//! throttle; **verify** compares both sides chunk by chunk on a canonical
//! encoding and lists the mismatching keys, which **repair** copies again.
//! The state lives in one row of a store, so any process (and the CLI)
//! sees and drives it; the process driving a phase holds a lease on the
//! row, and every progress write is fenced by the row's version. See
//! docs/migration.md.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)]
//! #[entity(name = "note", key = "id")]
//! struct Note { id: i64, text: String }
//! let router = polyrouter::Router::from_toml_str(r#"
//!     [stores.old]
//!     kind = "memory"
//!     [stores.new]
//!     kind = "memory"
//!     [buses.events]
//!     kind = "memory"
//!     [sync]
//!     store = "old"
//!     [entities.note]
//!     store = "old"
//!     outbox = { bus = "events" }
//!     [migrations.notes]
//!     entity = "note"
//!     to = "new"
//! "#).await.unwrap();
//! let notes = router.repo::<Note>().await.unwrap();
//! for id in 0..10 {
//!     notes.put(&Note { id, text: format!("n{id}") }).await.unwrap();
//! }
//! let sync = router.sync().await.unwrap(); // runs the dual-write
//! let m = router.migration("notes").await.unwrap();
//! let s = m.start(&mut |_| {}).await.unwrap();
//! assert_eq!(s.backfill.rows, 10);
//! sync.settle(std::time::Duration::from_secs(10)).await.unwrap();
//! let v = m.verify(&mut |_| {}).await.unwrap();
//! assert_eq!(v.verify.unwrap().differences(), 0);
//! sync.shutdown().await.unwrap();
//! # });
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

mod applier;
mod backfill;
mod canonical;
mod driver;
mod routing;
mod shadow;
mod state;
mod verify;

pub use canonical::{canonical, canonical_fields};
pub use shadow::{RECENT, SHADOW_IN_FLIGHT, SHADOW_RECHECK_DELAY, SHADOW_RECHECKS, ShadowCounts};
pub use state::{
    BackfillState, Difference, MigrationState, Mismatch, Phase, StoredKey, VerifyPass, VerifyState,
};
pub use verify::{RECHECK_DELAY, RECHECKS, RepairReport};

use crate::config::MigrationConfig;
use crate::store::{EntityInfo, OutboxSpec};
use crate::sync::capture::ChangeSource;
use crate::{Error, Repo, Result, Router, Store};
use driver::Driver;
use state::MigrationRecord;

/// At most this many mismatching keys are listed in the state row (all
/// are counted); `repair` then `verify` again to find the rest.
pub const MAX_LISTED: usize = 10_000;

/// A progress callback: called with the state after every chunk.
pub type Progress<'a> = &'a mut (dyn FnMut(&MigrationState) + Send);

/// One configured migration, ready to drive: see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Migration {
    name: String,
    config: MigrationConfig,
    source: Arc<dyn Store>,
    source_info: EntityInfo,
    target: Arc<dyn Store>,
    target_info: EntityInfo,
    state_store: String,
    repo: Repo<MigrationRecord>,
    owner: String,
    /// The source route's bus, which the dual-write reads.
    bus: Arc<dyn crate::sync::Bus>,
    /// The source's change stream, when change capture (not the outbox)
    /// feeds the dual-write.
    capture: Option<Arc<dyn ChangeSource>>,
    /// The outbox the target records the entity's events with once it is
    /// the primary.
    target_outbox: Option<OutboxSpec>,
}

/// What `status` shows: the persisted state and who drives it now.
///
/// ```
/// let s = polyrouter::migrate::MigrationStatus { state: Default::default(), owner: None, lease_until_ms: 0, shadow: None };
/// assert!(s.owner.is_none());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationStatus {
    /// The persisted state.
    pub state: MigrationState,
    /// The process driving a phase now (its lease not expired), if any.
    pub owner: Option<String>,
    /// Its lease's expiry (ms since the Unix epoch).
    pub lease_until_ms: i64,
    /// What shadow reads found so far (`shadow_reads`), summed over every
    /// router; `None` before the first compare.
    pub shadow: Option<ShadowCounts>,
}

impl Router {
    /// The migration `[migrations.NAME]`, checked: the entity's schema
    /// must be known (its Rust type bound, or `sql = { ... }` columns), the
    /// source must list rows in key order (queries with range filters) and
    /// the target must apply versioned changes and answer queries;
    /// otherwise [`Error::Unsupported`] naming the store and the missing
    /// capability. Both tables are created or checked now.
    pub async fn migration(&self, name: &str) -> Result<Migration> {
        let config = self.config();
        let Some(mc) = config.migrations.get(name) else {
            return Err(config.error(
                &format!("migrations.{name}"),
                format!("migration `{name}` is not configured; add [migrations.{name}]"),
            ));
        };
        let entity = &mc.entity;
        let route = self.route(entity).ok_or_else(|| {
            config.error(
                &format!("migrations.{name}.entity"),
                format!("entity `{entity}` has no route"),
            )
        })?;
        let schema = self.entity_schema(entity)?.ok_or_else(|| {
            config.error(
                &format!("migrations.{name}.entity"),
                format!(
                    "entity `{entity}` has no Rust type in this process and no `sql = {{ ... }}` columns: call `router.repo::<T>()` first, or declare its columns with `sql` so `polyrouter migrate` can read its rows"
                ),
            )
        })?;
        let store = |s: &str| {
            self.store(s)
                .cloned()
                .ok_or_else(|| Error::invalid_input(s, entity, "no such store"))
        };
        let source = store(&route.store)?;
        let target = store(&mc.to)?;
        let sc = source.capabilities();
        if !sc.records || !sc.query || !sc.filters.range {
            return Err(Error::unsupported(
                &route.store,
                entity,
                "listing rows in key order (queries with range filters), which a migration's backfill and verify need from the source",
            ));
        }
        let tc = target.capabilities();
        if !tc.records || !tc.versioned_apply {
            return Err(Error::unsupported(
                &mc.to,
                entity,
                "versioned apply, which a migration's target needs to copy rows keeping their versions (a copied row never overwrites a newer write)",
            ));
        }
        if !tc.query || !tc.filters.range {
            return Err(Error::unsupported(
                &mc.to,
                entity,
                "listing rows in key order (queries with range filters), which verify needs from the target to find extra rows",
            ));
        }
        let source_info = route.entity_info(schema);
        let target_info = EntityInfo {
            store: mc.to.clone(),
            outbox: None,
            ..source_info.clone()
        };
        let located = |e: Error| e.with_entity(entity);
        source.ensure_entity(&source_info).await.map_err(located)?;
        // With the route's outbox (or, fed by change capture, one of its
        // own) where the target has one: it records the entity's events
        // once it is the primary (reverse dual-write).
        let target_outbox = route.config.migration_outbox().filter(|_| tc.outbox);
        target
            .ensure_entity(&EntityInfo {
                outbox: target_outbox,
                ..target_info.clone()
            })
            .await
            .map_err(located)?;
        let bus = match route.config.event_bus() {
            Some(b) => self.bus(b)?,
            None => {
                return Err(config.error(
                    &format!("migrations.{name}.entity"),
                    format!(
                        "entity `{entity}` has no outbox or change capture to dual-write through"
                    ),
                ));
            }
        };
        let capture = match &route.config.change_capture {
            Some(cc) => Some(
                source
                    .change_source(&source_info, &cc.slot_name(entity))
                    .map_err(located)?,
            ),
            None => None,
        };
        let state_store = mc.state_store(config).unwrap_or_default().to_string();
        let repo = self
            .repo_at::<MigrationRecord>(&state_store, &mc.state_table)
            .await?;
        Ok(Migration {
            name: name.to_string(),
            config: mc.clone(),
            source,
            source_info,
            target,
            target_info,
            state_store,
            repo,
            bus,
            capture,
            target_outbox,
            owner: format!(
                "pid-{}-{}",
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
        })
    }
}

impl Migration {
    /// The migration's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its configuration.
    pub fn config(&self) -> &MigrationConfig {
        &self.config
    }

    /// The store holding its state row.
    pub fn state_store(&self) -> &str {
        &self.state_store
    }

    /// The persisted state, `None` before the first `start`.
    pub async fn status(&self) -> Result<Option<MigrationStatus>> {
        let Some(rec) = self.repo.get(self.name.as_str()).await? else {
            return Ok(None);
        };
        let lease = crate::lease::Lease {
            owner: rec.owner.clone(),
            until_ms: rec.lease_until,
        };
        let now = crate::lease::now_ms();
        let shadow = match self.repo.get(shadow::row_id(&self.name)).await? {
            Some(r) => Some(shadow::decode(&self.state_store, &self.name, r.state)?),
            None => None,
        };
        Ok(Some(MigrationStatus {
            state: driver::decode(&self.state_store, &self.name, rec.state)?,
            owner: if lease.is_free(now) { None } else { rec.owner },
            lease_until_ms: rec.lease_until,
            shadow,
        }))
    }

    /// Starts the migration, or resumes it where its cursor is: backfills
    /// every row of the source into the target, then leaves the phase at
    /// [`Phase::Backfilled`]. A migration already past its backfill is
    /// left as it is.
    pub async fn start(&self, progress: Progress<'_>) -> Result<MigrationState> {
        self.ensure_dual_write().await?;
        if let Some(c) = &self.capture {
            // The slot exists before the scan begins: every change the scan
            // may miss is captured.
            c.prepare()
                .await
                .map_err(|e| e.with_entity(self.entity()))?;
        }
        let mut d = self.drive().await?;
        let out = backfill::run(self, &mut d, progress).await;
        Ok(d.finish(out).await?.1)
    }

    /// Compares source and target (resuming an unfinished verify), then
    /// leaves the phase at [`Phase::Verified`] or [`Phase::Differences`]
    /// with the mismatching keys listed.
    pub async fn verify(&self, progress: Progress<'_>) -> Result<MigrationState> {
        let mut d = self.drive().await?;
        let out = verify::run(self, &mut d, progress).await;
        Ok(d.finish(out).await?.1)
    }

    /// Copies the keys the last verify listed again, from the source as it
    /// is now; run `verify` again afterwards.
    pub async fn repair(&self) -> Result<RepairReport> {
        let mut d = self.drive().await?;
        let out = verify::repair(self, &mut d).await;
        Ok(d.finish(out).await?.0)
    }

    /// Makes the target the primary: fences the entity's writes in every
    /// router (phase [`Phase::CutoverFence`]), waits `2 × poll` so every
    /// router has seen the fence (a router that cannot read the state row
    /// refuses writes by then too), waits for the dual-write to drain (the
    /// source's outbox empty — fed by change capture: the capture past the
    /// log's end at the fence — and group `migration-NAME` caught up), then
    /// flips the routers to the target ([`Phase::CutOver`]); from then on
    /// the target records the entity's events and the reverse dual-write
    /// keeps the source current. Needs a finished verify without
    /// differences, a target with an outbox, and the sync workers running.
    pub async fn cutover(&self) -> Result<MigrationState> {
        if !self.target.capabilities().outbox {
            return Err(Error::unsupported(
                &self.target_info.store,
                self.entity(),
                "a transactional outbox, which the reverse dual-write needs after cutover (it keeps the source current for a rollback)",
            ));
        }
        self.ensure_dual_write().await?;
        let mut d = self.drive().await?;
        let out = self.switch(&mut d, true).await;
        Ok(d.finish(out).await?.1)
    }

    /// Makes the source the primary again after a cutover, the same way
    /// (fence, wait, drain the reverse dual-write, flip): no write made on
    /// the target is lost.
    pub async fn rollback(&self) -> Result<MigrationState> {
        let mut d = self.drive().await?;
        let out = self.switch(&mut d, false).await;
        Ok(d.finish(out).await?.1)
    }

    /// Ends a cut-over migration: the target stays the primary for good
    /// ([`Phase::Finished`]). Then point `[entities.NAME] store` at the
    /// target and remove `[migrations.NAME]`.
    pub async fn finish(&self) -> Result<MigrationState> {
        let mut d = self.drive().await?;
        let out = if d.state.phase == Phase::CutOver || d.state.phase == Phase::Finished {
            d.state.phase = Phase::Finished;
            d.save().await
        } else {
            Err(self.wrong_phase(d.state.phase, "finish", "cut_over"))
        };
        Ok(d.finish(out).await?.1)
    }

    fn wrong_phase(&self, phase: Phase, what: &str, needs: &str) -> Error {
        Error::invalid_input(
            &self.state_store,
            self.entity(),
            format!(
                "migration `{}` is in phase `{phase}`; `{what}` needs {needs}",
                self.name
            ),
        )
    }

    async fn switch(&self, d: &mut Driver, to_target: bool) -> Result<()> {
        let phase = d.state.phase;
        let (fence, done) = if to_target {
            let ok = matches!(
                phase,
                Phase::Verified | Phase::RolledBack | Phase::CutoverFence
            );
            if !ok {
                return Err(self.wrong_phase(
                    phase,
                    "cutover",
                    "a verify without differences (`verified`), or `rolled_back`",
                ));
            }
            (Phase::CutoverFence, Phase::CutOver)
        } else {
            if !matches!(phase, Phase::CutOver | Phase::RollbackFence) {
                return Err(self.wrong_phase(phase, "rollback", "`cut_over`"));
            }
            (Phase::RollbackFence, Phase::RolledBack)
        };
        d.state.phase = fence;
        d.save().await?;
        // Every router reads the row within `poll`, or stops writing
        // after `2 × poll`; writes already under way finish meanwhile.
        let settle = self.config.poll.0 * 2 + Duration::from_millis(100);
        let until = Instant::now() + settle;
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50).min(settle)).await;
            d.save().await?;
        }
        // Then every change of the old primary must be in the new one.
        let (store, info, group) = if to_target {
            (
                &self.source,
                self.source_info.clone(),
                MigrationConfig::group(&self.name),
            )
        } else {
            (
                &self.target,
                EntityInfo {
                    outbox: self.target_outbox,
                    ..self.target_info.clone()
                },
                MigrationConfig::back_group(&self.name),
            )
        };
        // Fed by change capture, the source's changes are those its log
        // holds up to its end now (every fenced write has committed).
        let captured = match &self.capture {
            Some(c) if to_target => Some((c, c.head().await?)),
            _ => None,
        };
        let entities = [self.entity().to_string()];
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let (unsent, what) = match captured {
                Some((c, head)) => (
                    u64::from(!c.published_through(head).await?),
                    "the change capture has not yet published the source's log up to the fence",
                ),
                None => (
                    store.outbox_len(&info).await?,
                    "event(s) wait in the outbox",
                ),
            };
            let backlog = self.bus.backlog(&group, &entities).await?;
            match backlog {
                None => {
                    return Err(Error::unsupported(
                        &self.source_info.store,
                        self.entity(),
                        "a bus that reports a group's backlog, which a cutover needs to know the dual-write has drained",
                    ));
                }
                Some(0) if unsent == 0 => break,
                Some(_) => {}
            }
            if Instant::now() > deadline {
                let unsent = if captured.is_some() {
                    what.to_string()
                } else {
                    format!("{unsent} {what}")
                };
                return Err(Error::unavailable(
                    &self.source_info.store,
                    self.entity(),
                    format!(
                        "the dual-write did not drain within 5 minutes ({unsent}; backlog of group `{group}`: {backlog:?}); are the sync workers running? Writes stay fenced: run the command again, or roll back"
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            d.save().await?;
        }
        d.state.phase = done;
        d.save().await
    }

    /// Creates the dual-write's durable consumer group on the source's bus
    /// if no sync worker has yet: from here on every change of the entity
    /// waits on the bus for the sync workers to apply it to the target, so
    /// a write the backfill's scan passed before it is not lost.
    async fn ensure_dual_write(&self) -> Result<()> {
        for group in [
            MigrationConfig::group(&self.name),
            MigrationConfig::back_group(&self.name),
        ] {
            let sub = self
                .bus
                .subscribe(
                    &group,
                    &[self.entity().to_string()],
                    &crate::sync::SubscribeOptions {
                        consumer: self.owner.clone(),
                        start: crate::sync::StartAt::Oldest,
                        ephemeral: false,
                        ..Default::default()
                    },
                )
                .await?;
            sub.close().await?;
        }
        Ok(())
    }

    fn entity(&self) -> &str {
        self.source_info.name()
    }

    /// Whether the two sides' versions compare: not when change capture
    /// feeds the target (it holds log positions, the source its counters).
    fn by_version(&self) -> bool {
        self.capture.is_none()
    }

    /// Takes the migration's lease, creating its state row on first use.
    async fn drive(&self) -> Result<Driver> {
        let init = MigrationState {
            entity: self.entity().to_string(),
            from: self.source_info.store.clone(),
            to: self.target_info.store.clone(),
            started_ms: crate::lease::now_ms(),
            ..MigrationState::default()
        };
        Driver::acquire(
            self.repo.clone(),
            &self.state_store,
            &self.name,
            &self.owner,
            self.config.lease.0,
            init,
        )
        .await
    }
}

/// The store a router binds `route` to: `store` itself, or, when a
/// `[migrations.NAME]` moves the entity, a store that follows the
/// migration's phase (see docs/migration.md, "Cutover").
pub(crate) async fn route_store(
    router: &Router,
    route: &crate::router::Route,
    store: Arc<dyn Store>,
) -> Result<Arc<dyn Store>> {
    let config = router.config();
    let Some((name, mc)) = config
        .migrations
        .iter()
        .find(|(_, m)| m.entity == route.entity)
    else {
        return Ok(store);
    };
    let Some(target) = router.store(&mc.to).cloned() else {
        return Ok(store);
    };
    let state_store = mc.state_store(config).unwrap_or_default().to_string();
    let repo = router
        .repo_at::<MigrationRecord>(&state_store, &mc.state_table)
        .await?;
    let c = routing::RoutingConfig {
        name,
        to: &mc.to,
        poll: mc.poll.0,
        shadow_reads: mc.shadow_reads,
        state_store,
        target_outbox: route
            .config
            .migration_outbox()
            .filter(|_| target.capabilities().outbox),
        captured: route.config.change_capture.is_some(),
    };
    Ok(routing::MigratingStore::open(c, store, target, repo).await)
}

/// The projection a sync worker runs for a migration's dual-write
/// (`forward`: into the target; else the reverse one, into the source):
/// `replica` itself, or, when change capture feeds the migration, narrowed
/// as [`applier`] says.
pub(crate) async fn dual_write_projection(
    router: &Router,
    name: &str,
    forward: bool,
    replica: Arc<dyn crate::sync::projection::Projection>,
) -> Result<Arc<dyn crate::sync::projection::Projection>> {
    let config = router.config();
    let Some(mc) = config.migrations.get(name) else {
        return Ok(replica);
    };
    let Some(route) = config.entities.get(&mc.entity) else {
        return Ok(replica);
    };
    if route.change_capture.is_none() {
        return Ok(replica);
    }
    let gate = if forward {
        let state_store = mc.state_store(config).unwrap_or_default().to_string();
        let repo = router
            .repo_at::<MigrationRecord>(&state_store, &mc.state_table)
            .await?;
        Some(applier::Gate {
            repo,
            name: name.to_string(),
            state_store,
        })
    } else {
        None
    };
    Ok(Arc::new(applier::CapturedApplier {
        inner: replica,
        from: if forward {
            route.store.clone()
        } else {
            mc.to.clone()
        },
        gate,
    }))
}

/// Paces a phase to at most `rate` rows per second (0: no limit).
#[derive(Debug)]
struct Pace {
    rate: u64,
    since: Instant,
    rows: u64,
}

impl Pace {
    fn new(rate: u64) -> Self {
        Pace {
            rate,
            since: Instant::now(),
            rows: 0,
        }
    }

    /// Counts `n` rows done and sleeps until the rate allows more.
    async fn done(&mut self, n: u64) {
        self.rows += n;
        if self.rate == 0 {
            return;
        }
        let due = Duration::from_secs_f64(self.rows as f64 / self.rate as f64);
        let spent = self.since.elapsed();
        if due > spent {
            tokio::time::sleep(due - spent).await;
        }
    }
}
