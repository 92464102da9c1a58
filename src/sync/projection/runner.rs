//! [`ProjectionRunner`]: one member of a projection's consumer group,
//! applying what it fetches.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;

use super::dead_letter::DeadLetters;
use super::stats::ProjectionStats;
use super::{Projection, is_permanent};
use crate::store::Applied;
use crate::sync::{
    Bus, ChangeEvent, Delivery, DeliveryTag, StartAt, SubscribeOptions, Subscription,
};
use crate::{Error, Key, Result};

/// How long one fetch waits for events before the runner looks again.
const POLL_WAIT: Duration = Duration::from_millis(500);

/// How a projection runner reads and retries.
///
/// ```
/// let o = polyrouter::sync::projection::ProjectionOptions::default();
/// assert_eq!((o.batch, o.max_attempts, o.concurrency), (100, 5, 16));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionOptions {
    /// Deliveries fetched (and applied) at a time.
    pub batch: usize,
    /// Attempts of one event before it is dead-lettered.
    pub max_attempts: u32,
    /// The first retry's delay; it doubles at every attempt, up to
    /// `max_retry_delay`.
    pub retry_delay: Duration,
    /// The longest retry delay.
    pub max_retry_delay: Duration,
    /// An event not acknowledged within this time is delivered again (to
    /// any member of the group): longer than the slowest apply.
    pub ack_wait: Duration,
    /// Where a new group starts.
    pub start: StartAt,
    /// A group for this process only, removed when the runner stops (cache
    /// invalidation in every process).
    pub ephemeral: bool,
    /// Keys applied at the same time.
    pub concurrency: usize,
}

impl Default for ProjectionOptions {
    fn default() -> Self {
        ProjectionOptions {
            batch: 100,
            max_attempts: 5,
            retry_delay: Duration::from_secs(1),
            max_retry_delay: Duration::from_secs(60),
            ack_wait: Duration::from_secs(30),
            start: StartAt::Oldest,
            ephemeral: false,
            concurrency: 16,
        }
    }
}

impl ProjectionOptions {
    /// The delay before attempt `attempt + 1` of an event that failed at
    /// `attempt`: `retry_delay × 2^(attempt − 1)`, at most `max_retry_delay`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let o = polyrouter::sync::projection::ProjectionOptions { retry_delay: Duration::from_millis(100), max_retry_delay: Duration::from_millis(500), ..Default::default() };
    /// assert_eq!(o.backoff(1), Duration::from_millis(100));
    /// assert_eq!(o.backoff(3), Duration::from_millis(400));
    /// assert_eq!(o.backoff(30), Duration::from_millis(500));
    /// ```
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        self.retry_delay
            .saturating_mul(factor)
            .min(self.max_retry_delay)
    }

    fn check(&self, name: &str) -> Result<()> {
        let bad = |what: &str| {
            Err(Error::invalid_input(
                "",
                "",
                format!("projection `{name}`: {what}"),
            ))
        };
        if self.batch == 0 {
            return bad("`batch` must be at least 1");
        }
        if self.concurrency == 0 {
            return bad("`concurrency` must be at least 1");
        }
        if self.max_attempts == 0 {
            return bad("`max_attempts` must be at least 1");
        }
        if self.ack_wait.is_zero() {
            return bad("`ack_wait` must be longer than zero");
        }
        Ok(())
    }
}

/// Distinguishes the runners of one process within their groups.
static MEMBER: AtomicU64 = AtomicU64::new(0);

/// One member of projection `name`'s consumer group: fetches events of its
/// entities, applies them through its [`Projection`], acknowledges them.
///
/// Each round: fetch up to `batch` deliveries (waiting a little when there
/// are none) → group them by key → apply each key's events one after the
/// other in version order, different keys concurrently (at most
/// `concurrency`) → acknowledge what was applied, found stale, or
/// dead-lettered. An event that fails is asked for again
/// ([`Subscription::nack`]) after [`ProjectionOptions::backoff`], and the
/// later events of its key in the batch with it; once it failed
/// `max_attempts` times — at once for a permanent error
/// ([`Error::InvalidInput`], [`Error::Unsupported`], [`Error::Config`]) —
/// it goes to the dead letters with its error and is acknowledged. A bus
/// that fails a fetch or an acknowledgement is waited for (the events come
/// again: at-least-once); a dead-letter store that fails leaves the event
/// to be retried.
///
/// On shutdown (the watch turns `true`, or its sender is dropped) the
/// runner finishes the batch in flight, acknowledges it and closes its
/// subscription.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::sync::Arc;
/// use polyrouter::{backends::memory::MemoryStore, Key, Store};
/// use polyrouter::store::EntityInfo;
/// use polyrouter::sync::{Bus, ChangeEvent, MemoryBus, Operation};
/// use polyrouter::sync::projection::*;
/// # use polyrouter::{FieldDef, KeyKind, Schema};
/// # static F: [FieldDef; 0] = [];
/// # static S: Schema = Schema { name: "order", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
/// let bus = Arc::new(MemoryBus::new("events"));
/// let replica = Arc::new(MemoryStore::new("replica"));
/// let info = EntityInfo::new(&S);
/// let dead = Arc::new(StoreDeadLetters::open(replica.clone(), "dead_letters").await?);
/// let runner = ProjectionRunner::new(
///     "order_replica",
///     Arc::new(ReplicaProjection::new(replica.clone(), info.clone(), None)),
///     bus.clone(),
///     vec!["order".into()],
///     ProjectionOptions::default(),
///     dead,
/// );
/// let stats = runner.stats();
/// let (stop, shutdown) = tokio::sync::watch::channel(false);
/// let task = tokio::spawn(runner.run(shutdown));
/// let e = ChangeEvent::new("main", "order", Key::from("o1"), Operation::Delete, 2);
/// bus.publish(&[e]).await?;
/// while stats.snapshot().applied < 1 {
///     tokio::time::sleep(std::time::Duration::from_millis(5)).await;
/// }
/// stop.send(true).unwrap();
/// task.await.unwrap()?;
/// # Ok::<(), polyrouter::Error>(())
/// # }).unwrap();
/// ```
pub struct ProjectionRunner {
    name: String,
    projection: Arc<dyn Projection>,
    bus: Arc<dyn Bus>,
    entities: Vec<String>,
    options: ProjectionOptions,
    dead_letters: Arc<dyn DeadLetters>,
    stats: Arc<ProjectionStats>,
}

impl std::fmt::Debug for ProjectionRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionRunner")
            .field("name", &self.name)
            .field("bus", &self.bus.name())
            .field("entities", &self.entities)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// What to do with one delivery once its key was processed.
enum Verdict {
    Ack(DeliveryTag),
    Nack(DeliveryTag, Duration),
}

impl ProjectionRunner {
    /// A runner of projection `name` (its consumer group) over the events
    /// of `entities` on `bus`.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use std::sync::Arc;
    /// # use polyrouter::sync::{MemoryBus, projection::*};
    /// # use polyrouter::{FieldDef, KeyKind, Schema, store::EntityInfo};
    /// # static F: [FieldDef; 0] = [];
    /// # static S: Schema = Schema { name: "order", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
    /// let m = Arc::new(polyrouter::backends::memory::MemoryStore::new("m"));
    /// let r = ProjectionRunner::new("p", Arc::new(ReplicaProjection::new(m.clone(), EntityInfo::new(&S), None)),
    ///     Arc::new(MemoryBus::new("b")), vec!["order".into()], ProjectionOptions::default(),
    ///     Arc::new(StoreDeadLetters::open(m, "dl").await.unwrap()));
    /// assert_eq!(r.name(), "p");
    /// # });
    /// ```
    pub fn new(
        name: &str,
        projection: Arc<dyn Projection>,
        bus: Arc<dyn Bus>,
        entities: Vec<String>,
        options: ProjectionOptions,
        dead_letters: Arc<dyn DeadLetters>,
    ) -> Self {
        ProjectionRunner {
            name: name.into(),
            projection,
            bus,
            entities,
            options,
            dead_letters,
            stats: Arc::new(ProjectionStats::new(name)),
        }
    }

    /// The projection's name (its consumer group).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use std::sync::Arc;
    /// # use polyrouter::sync::{MemoryBus, projection::*};
    /// # use polyrouter::{FieldDef, KeyKind, Schema, store::EntityInfo};
    /// # static F: [FieldDef; 0] = [];
    /// # static S: Schema = Schema { name: "order", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
    /// # let m = Arc::new(polyrouter::backends::memory::MemoryStore::new("m"));
    /// # let r = ProjectionRunner::new("p", Arc::new(ReplicaProjection::new(m.clone(), EntityInfo::new(&S), None)),
    /// #     Arc::new(MemoryBus::new("b")), vec!["order".into()], ProjectionOptions::default(),
    /// #     Arc::new(StoreDeadLetters::open(m, "dl").await.unwrap()));
    /// assert_eq!(r.name(), "p");
    /// # });
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The runner's live counters (keep a clone before [`run`](Self::run)).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use std::sync::Arc;
    /// # use polyrouter::sync::{MemoryBus, projection::*};
    /// # use polyrouter::{FieldDef, KeyKind, Schema, store::EntityInfo};
    /// # static F: [FieldDef; 0] = [];
    /// # static S: Schema = Schema { name: "order", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
    /// # let m = Arc::new(polyrouter::backends::memory::MemoryStore::new("m"));
    /// # let r = ProjectionRunner::new("p", Arc::new(ReplicaProjection::new(m.clone(), EntityInfo::new(&S), None)),
    /// #     Arc::new(MemoryBus::new("b")), vec!["order".into()], ProjectionOptions::default(),
    /// #     Arc::new(StoreDeadLetters::open(m, "dl").await.unwrap()));
    /// let stats = r.stats();
    /// assert_eq!(stats.snapshot().applied, 0);
    /// # });
    /// ```
    pub fn stats(&self) -> Arc<ProjectionStats> {
        self.stats.clone()
    }

    /// Runs until `shutdown` turns `true` (or its sender is dropped). An
    /// error only for what retrying cannot fix: invalid options, a
    /// subscription or fetch the bus refuses for good (e.g. a group name it
    /// cannot take); a bus that is down is waited for.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use std::sync::Arc;
    /// # use polyrouter::sync::{MemoryBus, projection::*};
    /// # use polyrouter::{FieldDef, KeyKind, Schema, store::EntityInfo};
    /// # static F: [FieldDef; 0] = [];
    /// # static S: Schema = Schema { name: "order", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
    /// # let m = Arc::new(polyrouter::backends::memory::MemoryStore::new("m"));
    /// # let r = ProjectionRunner::new("p", Arc::new(ReplicaProjection::new(m.clone(), EntityInfo::new(&S), None)),
    /// #     Arc::new(MemoryBus::new("b")), vec!["order".into()], ProjectionOptions::default(),
    /// #     Arc::new(StoreDeadLetters::open(m, "dl").await.unwrap()));
    /// let (stop, shutdown) = tokio::sync::watch::channel(false);
    /// let task = tokio::spawn(r.run(shutdown));
    /// stop.send(true).unwrap(); // finishes the batch in flight, then returns
    /// task.await.unwrap().unwrap();
    /// # });
    /// ```
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        self.options.check(&self.name)?;
        let sub_options = SubscribeOptions {
            ack_wait: self.options.ack_wait,
            consumer: format!(
                "{}-{}-{}",
                std::process::id(),
                MEMBER.fetch_add(1, Ordering::Relaxed),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            start: self.options.start,
            ephemeral: self.options.ephemeral,
        };
        let mut sub = loop {
            match self
                .bus
                .subscribe(&self.name, &self.entities, &sub_options)
                .await
            {
                Ok(s) => break s,
                Err(e) if e.is_transient() => {
                    self.warn("subscribe", &e);
                    if self.pause(&mut shutdown).await {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
        };
        while !stopping(&shutdown) {
            let fetched = tokio::select! {
                r = sub.fetch(self.options.batch, POLL_WAIT) => r,
                _ = shutdown.changed() => break,
            };
            let deliveries = match fetched {
                Ok(d) => d,
                Err(e) if is_permanent(&e) => {
                    let _ = sub.close().await;
                    return Err(e);
                }
                Err(e) => {
                    self.warn("fetch", &e);
                    if self.pause(&mut shutdown).await {
                        break;
                    }
                    continue;
                }
            };
            if deliveries.is_empty() {
                self.stats.caught_up();
                continue;
            }
            let verdicts = self.process(deliveries).await;
            self.settle(&mut sub, verdicts).await;
        }
        sub.close().await
    }

    /// Waits the retry delay, or until shutdown; true when shutting down.
    async fn pause(&self, shutdown: &mut watch::Receiver<bool>) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(self.options.retry_delay) => stopping(shutdown),
            _ = shutdown.changed() => true,
        }
    }

    fn warn(&self, what: &str, e: &Error) {
        tracing::warn!(projection = %self.name, bus = %self.bus.name(), "projection {what} failed, retrying: {e}");
    }

    /// Applies a batch: keys concurrently, each key's events in version
    /// order.
    async fn process(&self, deliveries: Vec<Delivery>) -> Vec<Verdict> {
        if deliveries.len() > 1 {
            if let Some(done) = self.apply_together(&deliveries).await {
                return done;
            }
        }
        let mut groups: Vec<((String, Key), Vec<Delivery>)> = Vec::new();
        let mut at: std::collections::HashMap<(String, Key), usize> =
            std::collections::HashMap::new();
        for d in deliveries {
            let id = (d.event.entity.clone(), d.event.key.clone());
            match at.get(&id) {
                Some(&i) => groups[i].1.push(d),
                None => {
                    at.insert(id.clone(), groups.len());
                    groups.push((id, vec![d]));
                }
            }
        }
        futures::stream::iter(groups)
            .map(|(_, mut ds)| async move {
                ds.sort_by_key(|d| d.event.version);
                self.apply_key(ds).await
            })
            .buffer_unordered(self.options.concurrency)
            .flat_map(futures::stream::iter)
            .collect()
            .await
    }

    /// The whole batch in one [`Projection::apply_all`] call (each key's
    /// events in version order), all acknowledged when it succeeds; `None`
    /// when the projection applies one by one or the call failed (then
    /// every event goes the per-key way, with its own retries and dead
    /// letter).
    async fn apply_together(&self, deliveries: &[Delivery]) -> Option<Vec<Verdict>> {
        let mut order: Vec<&Delivery> = deliveries.iter().collect();
        order.sort_by(|a, b| {
            (&a.event.entity, &a.event.key, a.event.version).cmp(&(
                &b.event.entity,
                &b.event.key,
                b.event.version,
            ))
        });
        let events: Vec<&ChangeEvent> = order.iter().map(|d| &d.event).collect();
        match self.projection.apply_all(&events).await? {
            Ok(outcomes) => Some(
                order
                    .iter()
                    .zip(outcomes)
                    .map(|(d, applied)| {
                        match applied {
                            Applied::Applied => self.stats.applied(&d.event),
                            Applied::Stale { .. } => self.stats.duplicate(),
                        }
                        Verdict::Ack(d.tag.clone())
                    })
                    .collect(),
            ),
            Err(e) => {
                tracing::debug!(projection = %self.name, error = %e, "projection: applying a batch at once failed; applying its events one by one");
                None
            }
        }
    }

    /// One key's deliveries, in version order.
    async fn apply_key(&self, deliveries: Vec<Delivery>) -> Vec<Verdict> {
        let mut out = Vec::with_capacity(deliveries.len());
        let mut held: Option<Duration> = None;
        for d in deliveries {
            if let Some(delay) = held {
                out.push(Verdict::Nack(d.tag, delay));
                continue;
            }
            match self.projection.apply(&d.event).await {
                Ok(Applied::Applied) => {
                    self.stats.applied(&d.event);
                    out.push(Verdict::Ack(d.tag));
                }
                Ok(Applied::Stale { .. }) => {
                    self.stats.duplicate();
                    out.push(Verdict::Ack(d.tag));
                }
                Err(e) => {
                    self.stats.failed();
                    let attempt = d.attempt.max(1);
                    if is_permanent(&e) || attempt >= self.options.max_attempts {
                        match self
                            .dead_letters
                            .put(&self.name, &d.event, &e.to_string(), attempt)
                            .await
                        {
                            Ok(()) => {
                                self.stats.dead_lettered();
                                tracing::warn!(projection = %self.name, event = %d.event.id, "event dead-lettered after {attempt} attempt(s): {e}");
                                out.push(Verdict::Ack(d.tag));
                                continue;
                            }
                            Err(dl) => {
                                tracing::warn!(projection = %self.name, event = %d.event.id, "could not dead-letter the event, retrying it: {dl}");
                            }
                        }
                    }
                    let delay = self.options.backoff(attempt);
                    held = Some(delay);
                    out.push(Verdict::Nack(d.tag, delay));
                }
            }
        }
        out
    }

    /// Acknowledges and negatively acknowledges; a bus error is logged (the
    /// deliveries come again after `ack_wait`).
    async fn settle(&self, sub: &mut Box<dyn Subscription>, verdicts: Vec<Verdict>) {
        let mut acks = Vec::new();
        let mut nacks = Vec::new();
        for v in verdicts {
            match v {
                Verdict::Ack(t) => acks.push(t),
                Verdict::Nack(t, d) => nacks.push((t, d)),
            }
        }
        if !acks.is_empty() {
            if let Err(e) = sub.ack(&acks).await {
                self.warn("acknowledgement", &e);
            }
        }
        for (t, d) in nacks {
            if let Err(e) = sub.nack(&t, d).await {
                self.warn("negative acknowledgement", &e);
            }
        }
    }
}

fn stopping(shutdown: &watch::Receiver<bool>) -> bool {
    *shutdown.borrow() || shutdown.has_changed().is_err()
}
