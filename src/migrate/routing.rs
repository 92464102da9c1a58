//! How every router learns where a migrating entity lives: a store in
//! front of the entity's source and target that sends each operation to
//! the side the migration's state row names (the source until cutover, the
//! target after it, the source again after a rollback), polled every
//! `poll`. Writes are refused ([`Error::Unavailable`], retryable) while a
//! cutover or rollback fences the entity, and while this process has not
//! read the state row for `2 × poll` (so a process cut off from the state
//! store never writes the side the others left). With `shadow_reads`, a
//! sample of the point reads is compared with the other side
//! ([`super::shadow`]).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;

use super::driver::decode;
use super::shadow::{self, Sample, Shadow};
use super::state::{MigrationRecord, Phase};
use crate::lease::now_ms;
use crate::query::Filter;
use crate::store::{
    Applied, EntityInfo, OutboxEntry, OutboxSpec, StoreQuery, VersionedChange, WriteOp,
    WriteOutcome,
};
use crate::{Capabilities, Error, Key, Record, Repo, Result, Store};

/// What this process last read from the state row.
#[derive(Debug)]
pub(crate) struct Routing {
    name: String,
    to: String,
    target_side: AtomicBool,
    fenced: AtomicBool,
    /// Whether shadow reads compare in the current phase.
    shadowing: AtomicBool,
    shadow: Option<Shadow>,
    /// Polled at (ms since the Unix epoch); writes need it within `2 × poll`.
    polled_ms: AtomicI64,
    poll: Duration,
}

impl Routing {
    fn apply(&self, phase: Option<Phase>, at: i64) {
        let (target, fenced, shadowing) = match phase {
            None => (false, false, false),
            Some(p) => (p.routes_to_target(), p.fenced(), shadow::active_in(p)),
        };
        self.target_side.store(target, Ordering::Release);
        self.fenced.store(fenced, Ordering::Release);
        self.shadowing.store(shadowing, Ordering::Release);
        self.polled_ms.fetch_max(at, Ordering::AcqRel);
    }

    async fn poll_once(&self, repo: &Repo<MigrationRecord>, store: &str) -> Result<()> {
        let at = now_ms();
        let phase = match repo.get(self.name.as_str()).await? {
            Some(r) => Some(decode(store, &self.name, r.state)?.phase),
            None => None,
        };
        self.apply(phase, at);
        if let Some(s) = &self.shadow {
            if let Err(e) = s.flush(repo).await {
                // Kept for the next poll; routing goes on meanwhile.
                tracing::warn!(migration = %self.name, error = %e, "migrate: cannot add this router's shadow-read counts to the state table; they are kept for the next poll");
            }
        }
        Ok(())
    }
}

/// `[migrations.NAME]` as a router's migrating store sees it.
#[derive(Debug)]
pub(crate) struct RoutingConfig<'a> {
    pub name: &'a str,
    pub to: &'a str,
    pub poll: Duration,
    pub shadow_reads: f64,
    pub state_store: String,
    /// The outbox the target records the entity's events with while it
    /// is the primary, where the route itself has none (change capture).
    pub target_outbox: Option<OutboxSpec>,
    /// Whether change capture feeds the dual-write (versions differ
    /// between the sides: shadow reads compare the fields only).
    pub captured: bool,
}

/// The entity's store while a migration is configured for it.
#[derive(Debug)]
pub(crate) struct MigratingStore {
    source: Arc<dyn Store>,
    target: Arc<dyn Store>,
    routing: Arc<Routing>,
    target_outbox: Option<OutboxSpec>,
    captured: bool,
}

impl MigratingStore {
    /// The store for a route with `[migrations.NAME]`: reads the state row
    /// once now, then every `poll` for as long as the store lives.
    pub async fn open(
        c: RoutingConfig<'_>,
        source: Arc<dyn Store>,
        target: Arc<dyn Store>,
        repo: Repo<MigrationRecord>,
    ) -> Arc<MigratingStore> {
        let (name, poll, state_store) = (c.name, c.poll, c.state_store.clone());
        let routing = Arc::new(Routing {
            name: name.to_string(),
            to: c.to.to_string(),
            target_side: AtomicBool::new(false),
            fenced: AtomicBool::new(false),
            shadowing: AtomicBool::new(false),
            shadow: (c.shadow_reads > 0.0).then(|| Shadow::new(name, &state_store, c.shadow_reads)),
            polled_ms: AtomicI64::new(0),
            poll,
        });
        if let Err(e) = routing.poll_once(&repo, &state_store).await {
            tracing::warn!(migration = %name, error = %e, "migrate: cannot read the state row; writes wait for it");
        }
        let weak: Weak<Routing> = Arc::downgrade(&routing);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(poll).await;
                let Some(r) = weak.upgrade() else { return };
                if let Err(e) = r.poll_once(&repo, &state_store).await {
                    tracing::warn!(migration = %r.name, error = %e, "migrate: cannot read the state row");
                }
            }
        });
        Arc::new(MigratingStore {
            source,
            target,
            routing,
            target_outbox: c.target_outbox,
            captured: c.captured,
        })
    }

    fn on_target(&self) -> bool {
        self.routing.target_side.load(Ordering::Acquire)
    }

    /// The side to use now and the entity as that side sees it.
    fn side(&self, entity: &EntityInfo) -> (&Arc<dyn Store>, EntityInfo) {
        self.side_of(self.on_target(), entity)
    }

    fn side_of(&self, on_target: bool, entity: &EntityInfo) -> (&Arc<dyn Store>, EntityInfo) {
        if on_target {
            (&self.target, self.on_target_side(entity))
        } else {
            (&self.source, entity.clone())
        }
    }

    /// The entity as the target sees it: its store, and the outbox it
    /// records the entity's events with while it is the primary.
    fn on_target_side(&self, entity: &EntityInfo) -> EntityInfo {
        EntityInfo {
            store: self.routing.to.clone(),
            outbox: entity.outbox.or(self.target_outbox),
            ..entity.clone()
        }
    }

    /// Compares this read with the other side in the background when it
    /// is in the shadow sample.
    fn shadow(
        &self,
        entity: &EntityInfo,
        primary_is_target: bool,
        keys: &[Key],
        served: &[Option<Record>],
    ) {
        let Some(shadow) = &self.routing.shadow else {
            return;
        };
        if !self.routing.shadowing.load(Ordering::Acquire) || !shadow.sampled() {
            return;
        }
        shadow.spawn(Sample {
            keys: keys.to_vec(),
            served: served.to_vec(),
            primary_is_target,
            source: (self.source.clone(), entity.clone()),
            target: (self.target.clone(), self.on_target_side(entity)),
            by_version: !self.captured,
        });
    }

    fn may_write(&self, entity: &EntityInfo) -> Result<()> {
        let r = &self.routing;
        if r.fenced.load(Ordering::Acquire) {
            return Err(Error::unavailable(
                &entity.store,
                entity.name(),
                format!(
                    "migration `{}` is switching the entity's primary store; writes resume in a moment (retry)",
                    r.name
                ),
            ));
        }
        let stale = now_ms() - r.polled_ms.load(Ordering::Acquire);
        if stale > 2 * r.poll.as_millis() as i64 {
            return Err(Error::unavailable(
                &entity.store,
                entity.name(),
                format!(
                    "migration `{}`: this process has not read the migration's state row for {stale} ms, so it cannot tell which store is the primary; writes wait for it",
                    r.name
                ),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Store for MigratingStore {
    fn name(&self) -> &str {
        self.source.name()
    }
    fn kind(&self) -> &'static str {
        self.source.kind()
    }
    fn capabilities(&self) -> &Capabilities {
        self.source.capabilities()
    }
    fn location(&self) -> String {
        self.source.location()
    }
    async fn ensure_entity(&self, entity: &EntityInfo) -> Result<()> {
        self.source.ensure_entity(entity).await?;
        let on_target = EntityInfo {
            outbox: self
                .on_target_side(entity)
                .outbox
                .filter(|_| self.target.capabilities().outbox),
            ..self.on_target_side(entity)
        };
        self.target.ensure_entity(&on_target).await
    }
    async fn get(&self, entity: &EntityInfo, key: &Key) -> Result<Option<Record>> {
        // The side read, as the shadow compare must know it (the phase may
        // change while the read is under way).
        let on_target = self.on_target();
        let (s, e) = self.side_of(on_target, entity);
        let found = s.get(&e, key).await?;
        self.shadow(
            entity,
            on_target,
            std::slice::from_ref(key),
            std::slice::from_ref(&found),
        );
        Ok(found)
    }
    async fn get_many(&self, entity: &EntityInfo, keys: &[Key]) -> Result<Vec<Option<Record>>> {
        let on_target = self.on_target();
        let (s, e) = self.side_of(on_target, entity);
        let found = s.get_many(&e, keys).await?;
        self.shadow(entity, on_target, keys, &found);
        Ok(found)
    }
    async fn write(
        &self,
        entity: &EntityInfo,
        ops: Vec<WriteOp>,
        atomic: bool,
    ) -> Result<Vec<WriteOutcome>> {
        self.may_write(entity)?;
        let (s, e) = self.side(entity);
        s.write(&e, ops, atomic).await
    }
    async fn write_each(
        &self,
        entity: &EntityInfo,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<Result<WriteOutcome>>> {
        self.may_write(entity)?;
        let (s, e) = self.side(entity);
        s.write_each(&e, ops).await
    }
    async fn apply_versioned(
        &self,
        entity: &EntityInfo,
        changes: Vec<VersionedChange>,
    ) -> Result<Vec<Applied>> {
        self.may_write(entity)?;
        let (s, e) = self.side(entity);
        s.apply_versioned(&e, changes).await
    }
    async fn outbox_fetch(&self, entity: &EntityInfo, max: usize) -> Result<Vec<OutboxEntry>> {
        self.source.outbox_fetch(entity, max).await
    }
    async fn outbox_remove(&self, entity: &EntityInfo, ids: &[String]) -> Result<()> {
        self.source.outbox_remove(entity, ids).await
    }
    async fn outbox_len(&self, entity: &EntityInfo) -> Result<u64> {
        self.source.outbox_len(entity).await
    }
    async fn query(&self, entity: &EntityInfo, query: &StoreQuery) -> Result<Vec<Record>> {
        let (s, e) = self.side(entity);
        s.query(&e, query).await
    }
    async fn count(&self, entity: &EntityInfo, filter: Option<&Filter>) -> Result<u64> {
        let (s, e) = self.side(entity);
        s.count(&e, filter).await
    }
    async fn ping(&self) -> Result<()> {
        self.source.ping().await?;
        self.target.ping().await
    }
    fn namespace(&self) -> crate::store::namespace::Namespace {
        self.source.namespace()
    }
}
