//! The relay: moves a route's outbox events to its bus, at least once.
//!
//! One round ([`Relay::pump`]) fetches the oldest events of the outbox,
//! publishes them to the bus in that order, and only then removes them
//! from the outbox. A relay that crashes between publishing and removing
//! publishes the same events again after a restart; the bus stores an id
//! it already holds once (its de-duplication window), and projections
//! apply by version, so a repeat changes nothing. Because the outbox is
//! read by what is *in* it rather than from a cursor, an event whose
//! transaction commits late (PostgreSQL hands out sequence numbers before
//! commit) is simply found by a later round: nothing is skipped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use parking_lot::Mutex;
use serde::Serialize;

use super::{Bus, ChangeEvent};
use crate::store::EntityInfo;
use crate::{Result, Store};

/// What a relay has done, shared with the status reporter and metrics.
#[derive(Debug, Default)]
pub struct RelayStats {
    relayed: AtomicU64,
    failures: AtomicU64,
    backlog: AtomicU64,
    /// Whether this worker held the outbox's lease at its last look.
    leased: AtomicBool,
    /// Commit time (ms since the Unix epoch) of the oldest event still in
    /// the outbox at the last round; 0 when it was empty.
    oldest_pending_ms: AtomicI64,
    last_error: Mutex<Option<String>>,
}

/// A relay's figures at one moment (`polyrouter sync status`).
///
/// ```
/// let s = polyrouter::sync::RelayStatus::default();
/// assert_eq!(s.relayed, 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct RelayStatus {
    /// The store whose outbox it reads.
    pub store: String,
    /// The entity.
    pub entity: String,
    /// The bus it publishes to.
    pub bus: String,
    /// Events moved to the bus by this process.
    pub relayed: u64,
    /// Rounds that failed (bus or store unavailable, …).
    pub failures: u64,
    /// Events waiting in the outbox at the last round.
    pub backlog: u64,
    /// Age in milliseconds of the oldest event waiting in the outbox at
    /// the last round (0: none waiting).
    pub lag_ms: u64,
    /// The last failure, if the last round failed.
    pub last_error: Option<String>,
    /// Whether this worker held the outbox's lease at its last look: only
    /// the holder relays; the other workers count the backlog and wait.
    #[serde(default)]
    pub leased: bool,
}

/// Moves one route's outbox events to its bus.
#[derive(Debug, Clone)]
pub struct Relay {
    store: Arc<dyn Store>,
    entity: EntityInfo,
    bus: Arc<dyn Bus>,
    batch: usize,
    stats: Arc<RelayStats>,
    /// Held for a whole round, so [`Relay::settled_backlog`] never sees an
    /// outbox emptied by a round whose figures are not counted yet.
    round: Arc<tokio::sync::Mutex<()>>,
}

impl Relay {
    /// A relay of `entity`'s outbox in `store` to `bus`, `batch` events a
    /// round.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use std::sync::Arc;
    /// # use polyrouter::{FieldDef, KeyKind, Key, Precondition, Record, Schema, Store};
    /// # use polyrouter::store::{EntityInfo, OutboxSpec, WriteOp};
    /// # static F: [FieldDef; 0] = [];
    /// # static S: Schema = Schema { name: "t", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
    /// use polyrouter::sync::{Bus, MemoryBus, Relay, SubscribeOptions};
    /// let store = Arc::new(polyrouter::backends::memory::MemoryStore::new("main"));
    /// let bus = Arc::new(MemoryBus::new("events"));
    /// let e = EntityInfo { store: "main".into(), outbox: Some(OutboxSpec::default()), ..EntityInfo::new(&S) };
    /// let put = WriteOp::Put { record: Record::new(Key::from("a")), precondition: Precondition::None, ttl: None };
    /// store.write(&e, vec![put], true).await.unwrap();
    /// let mut sub = bus.subscribe("g", &["t".into()], &SubscribeOptions::default()).await.unwrap();
    /// let relay = Relay::new(store.clone(), e.clone(), bus.clone(), 100);
    /// assert_eq!(relay.pump().await.unwrap(), 1);
    /// assert_eq!(store.outbox_len(&e).await.unwrap(), 0);
    /// let got = sub.fetch(10, std::time::Duration::from_millis(10)).await.unwrap();
    /// assert_eq!(got[0].event.key, Key::from("a"));
    /// # });
    /// ```
    pub fn new(store: Arc<dyn Store>, entity: EntityInfo, bus: Arc<dyn Bus>, batch: usize) -> Self {
        Relay {
            store,
            entity,
            bus,
            batch: batch.max(1),
            stats: Arc::default(),
            round: Arc::default(),
        }
    }

    /// The figures this relay keeps.
    pub fn stats(&self) -> Arc<RelayStats> {
        self.stats.clone()
    }

    /// Records whether this worker holds the outbox's lease, and why it
    /// could not take or renew it if the store failed (the sync runtime
    /// calls it before each round; a round that succeeds clears the error).
    pub(crate) fn note_lease(&self, held: bool, error: Option<&str>) {
        self.stats.leased.store(held, Ordering::Relaxed);
        if let Some(e) = error {
            *self.stats.last_error.lock() =
                Some(format!("cannot take or renew the outbox's lease: {e}"));
        }
    }

    /// The most events one round moves.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// One round: up to `batch` of the oldest outbox events published to
    /// the bus, in order, then removed from the outbox. Returns how many
    /// moved; an error leaves every event of the round in the outbox (some
    /// may have reached the bus: the next round publishes them again, and
    /// the bus de-duplicates them by id).
    pub async fn pump(&self) -> Result<usize> {
        let _round = self.round.lock().await;
        let result = self.round().await;
        match &result {
            Ok(_) => *self.stats.last_error.lock() = None,
            Err(e) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                *self.stats.last_error.lock() = Some(e.to_string());
                metrics::counter!("polyrouter_relay_failures_total",
                    "store" => self.entity.store.clone(), "entity" => self.entity.name())
                .increment(1);
            }
        }
        result
    }

    async fn round(&self) -> Result<usize> {
        let entries = self.store.outbox_fetch(&self.entity, self.batch).await?;
        if entries.is_empty() {
            self.stats.backlog.store(0, Ordering::Relaxed);
            self.stats.oldest_pending_ms.store(0, Ordering::Relaxed);
            self.gauges(0, 0);
            return Ok(0);
        }
        let oldest = entries
            .iter()
            .map(|e| e.event.time.timestamp_millis())
            .min()
            .unwrap_or(0);
        self.stats
            .oldest_pending_ms
            .store(oldest, Ordering::Relaxed);
        let events: Vec<ChangeEvent> = entries.iter().map(|e| e.event.clone()).collect();
        self.bus.publish(&events).await?;
        let ids: Vec<String> = entries.into_iter().map(|e| e.id).collect();
        self.store.outbox_remove(&self.entity, &ids).await?;
        let n = ids.len();
        self.stats.relayed.fetch_add(n as u64, Ordering::Relaxed);
        metrics::counter!("polyrouter_relay_events_total",
            "store" => self.entity.store.clone(), "entity" => self.entity.name())
        .increment(n as u64);
        if n < self.batch {
            // The outbox held less than a round: it is empty now, unless
            // writes came in meanwhile (the next round sees them).
            self.stats.backlog.store(0, Ordering::Relaxed);
            self.stats.oldest_pending_ms.store(0, Ordering::Relaxed);
            self.gauges(0, 0);
        } else {
            let left = self.store.outbox_len(&self.entity).await.unwrap_or(0);
            self.stats.backlog.store(left, Ordering::Relaxed);
            self.gauges(left, lag_ms(oldest));
        }
        Ok(n)
    }

    fn gauges(&self, backlog: u64, lag_ms: u64) {
        metrics::gauge!("polyrouter_outbox_backlog",
            "store" => self.entity.store.clone(), "entity" => self.entity.name())
        .set(backlog as f64);
        metrics::gauge!("polyrouter_relay_lag_seconds",
            "store" => self.entity.store.clone(), "entity" => self.entity.name())
        .set(lag_ms as f64 / 1000.0);
    }

    /// Counts the outbox now (a relay that cannot reach its bus still
    /// reports how much waits).
    pub async fn measure_backlog(&self) -> Result<u64> {
        let n = self.store.outbox_len(&self.entity).await?;
        self.stats.backlog.store(n, Ordering::Relaxed);
        metrics::gauge!("polyrouter_outbox_backlog",
            "store" => self.entity.store.clone(), "entity" => self.entity.name())
        .set(n as f64);
        Ok(n)
    }

    /// Counts the outbox between rounds: waits for a round under way to
    /// finish, so a 0 here also means every moved event is in the figures.
    pub async fn settled_backlog(&self) -> Result<u64> {
        let _round = self.round.lock().await;
        self.measure_backlog().await
    }

    /// The relay's figures now.
    pub fn status(&self) -> RelayStatus {
        let s = &self.stats;
        let oldest = s.oldest_pending_ms.load(Ordering::Relaxed);
        RelayStatus {
            store: self.entity.store.clone(),
            entity: self.entity.name().to_string(),
            bus: self.bus.name().to_string(),
            relayed: s.relayed.load(Ordering::Relaxed),
            failures: s.failures.load(Ordering::Relaxed),
            backlog: s.backlog.load(Ordering::Relaxed),
            lag_ms: if oldest == 0 { 0 } else { lag_ms(oldest) },
            last_error: s.last_error.lock().clone(),
            leased: s.leased.load(Ordering::Relaxed),
        }
    }
}

fn lag_ms(oldest_ms: i64) -> u64 {
    (crate::lease::now_ms() - oldest_ms).max(0) as u64
}
