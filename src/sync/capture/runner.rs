//! [`Capture`]: moves a [`ChangeSource`]'s changes to a bus, at least once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::{ChangeSource, Retention};
use crate::Result;
use crate::sync::Bus;

/// A capture's figures at one moment (`polyrouter sync status`).
///
/// ```
/// let s = polyrouter::sync::capture::CaptureStatus::default();
/// assert!(!s.retention_warning());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CaptureStatus {
    /// The store whose changes it reads.
    pub store: String,
    /// The entity.
    pub entity: String,
    /// The bus it publishes to.
    pub bus: String,
    /// Where it reads (e.g. the replication slot).
    pub source: String,
    /// Events published by this process.
    pub captured: u64,
    /// Rounds that failed.
    pub failures: u64,
    /// What the server keeps for the source, when last measured.
    pub retention: Option<Retention>,
    /// Retained log beyond which the status warns, in bytes.
    pub warn_retained_bytes: u64,
    /// The last failure, if the last round failed.
    pub last_error: Option<String>,
}

impl CaptureStatus {
    /// Whether the server keeps more log for this capture than its
    /// threshold, or lost some it needed.
    ///
    /// ```
    /// use polyrouter::sync::capture::{CaptureStatus, Retention};
    /// let s = CaptureStatus {
    ///     warn_retained_bytes: 10,
    ///     retention: Some(Retention { retained_bytes: 11, status: "reserved".into(), position: 0 }),
    ///     ..CaptureStatus::default()
    /// };
    /// assert!(s.retention_warning());
    /// ```
    pub fn retention_warning(&self) -> bool {
        self.retention
            .as_ref()
            .is_some_and(|r| r.retained_bytes > self.warn_retained_bytes || r.status == "lost")
    }
}

#[derive(Debug, Default)]
struct Stats {
    captured: AtomicU64,
    failures: AtomicU64,
    retention: Mutex<Option<Retention>>,
    last_error: Mutex<Option<String>>,
}

/// Moves one entity's captured changes to its bus: read from the durable
/// position, publish, then commit the position.
#[derive(Debug, Clone)]
pub struct Capture {
    source: Arc<dyn ChangeSource>,
    bus: Arc<dyn Bus>,
    store: String,
    entity: String,
    batch: usize,
    warn_retained_bytes: u64,
    stats: Arc<Stats>,
    /// Held for a whole round, so [`Capture::pending`] never reads the
    /// slot while a round does.
    round: Arc<tokio::sync::Mutex<()>>,
}

impl Capture {
    /// A capture of `entity` in `store` from `source` to `bus`, about
    /// `batch` messages a round, warning past `warn_retained_bytes` of
    /// retained log.
    pub fn new(
        source: Arc<dyn ChangeSource>,
        bus: Arc<dyn Bus>,
        store: &str,
        entity: &str,
        batch: usize,
        warn_retained_bytes: u64,
    ) -> Self {
        Capture {
            source,
            bus,
            store: store.into(),
            entity: entity.into(),
            batch: batch.max(1),
            warn_retained_bytes,
            stats: Arc::default(),
            round: Arc::default(),
        }
    }

    /// The source it reads.
    pub fn source(&self) -> &Arc<dyn ChangeSource> {
        &self.source
    }

    /// One round: the changes after the durable position published, then
    /// the position moved past them. Returns how many events moved; on an
    /// error the position stays (some events may be on the bus: the next
    /// round publishes them again with the same ids).
    pub async fn pump(&self) -> Result<usize> {
        let _round = self.round.lock().await;
        let result = self.round().await;
        match &result {
            Ok(_) => *self.stats.last_error.lock() = None,
            Err(e) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                *self.stats.last_error.lock() = Some(e.to_string());
                metrics::counter!("polyrouter_capture_failures_total",
                    "store" => self.store.clone(), "entity" => self.entity.clone())
                .increment(1);
            }
        }
        result
    }

    async fn round(&self) -> Result<usize> {
        let batch = self.source.read(self.batch).await?;
        if !batch.events.is_empty() {
            self.bus.publish(&batch.events).await?;
        }
        if let Some(p) = batch.position {
            self.source.commit(p).await?;
        }
        let n = batch.events.len();
        self.stats.captured.fetch_add(n as u64, Ordering::Relaxed);
        metrics::counter!("polyrouter_capture_events_total",
            "store" => self.store.clone(), "entity" => self.entity.clone())
        .increment(n as u64);
        Ok(n)
    }

    /// Events committed but not yet published (read between rounds; a
    /// 0 means the capture has published everything committed so far).
    pub async fn pending(&self) -> Result<usize> {
        let _round = self.round.lock().await;
        Ok(self.source.read(1).await?.events.len())
    }

    /// Measures what the server keeps for the source, and warns (log and
    /// status) when it passes the threshold or the server lost log.
    pub async fn measure_retention(&self) -> Result<Retention> {
        let r = self.source.retention().await?;
        metrics::gauge!("polyrouter_capture_retained_bytes",
            "store" => self.store.clone(), "entity" => self.entity.clone())
        .set(r.retained_bytes as f64);
        *self.stats.retention.lock() = Some(r.clone());
        let status = self.status();
        if status.retention_warning() {
            tracing::warn!(
                store = %self.store, entity = %self.entity, source = %self.source.describe(),
                retained_bytes = r.retained_bytes, wal_status = %r.status,
                "sync: the server keeps more log for a change capture than `warn_retained_mb` (a stopped or slow capture); see docs/cdc.md"
            );
        }
        Ok(r)
    }

    /// The capture's figures now.
    pub fn status(&self) -> CaptureStatus {
        let s = &self.stats;
        CaptureStatus {
            store: self.store.clone(),
            entity: self.entity.clone(),
            bus: self.bus.name().to_string(),
            source: self.source.describe(),
            captured: s.captured.load(Ordering::Relaxed),
            failures: s.failures.load(Ordering::Relaxed),
            retention: s.retention.lock().clone(),
            warn_retained_bytes: self.warn_retained_bytes,
            last_error: s.last_error.lock().clone(),
        }
    }
}
