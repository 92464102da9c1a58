//! Shadow reads (`shadow_reads` in `[migrations.NAME]`): a sampled share
//! of the entity's point reads is also read from the other side, after the
//! caller has its answer from the primary, and the two are compared on
//! the canonical encoding verify uses. A key found different is read again
//! from both sides ([`SHADOW_RECHECKS`] times, [`SHADOW_RECHECK_DELAY`]
//! apart: longer than verify waits, since a read often follows its write
//! at once) before it counts, so a change still on its way through the
//! dual-write is not a difference. Every router adds its counts to the row `NAME/shadow` of
//! the migrations table once per `poll`; `polyrouter migrate status` shows
//! them.
//!
//! Active from the end of the backfill until the migration finishes (not
//! during a switch): before it, the target lacks rows by design.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::canonical::same;
use super::state::{Difference, MigrationRecord, Mismatch, Phase, StoredKey};
use crate::lease::now_ms;
use crate::store::EntityInfo;
use crate::{Error, Key, Precondition, Record, Repo, Result, Store};

/// At most this many compares run in the background per router; a sampled
/// read beyond them is counted as skipped, never waited for.
pub const SHADOW_IN_FLIGHT: usize = 64;

/// The most recent differing keys kept in the shadow row.
pub const RECENT: usize = 20;

/// How many times a key a shadow read found different is read again from
/// both sides before it counts.
pub const SHADOW_RECHECKS: u32 = 10;

/// The pause between two of those re-reads.
pub const SHADOW_RECHECK_DELAY: std::time::Duration = std::time::Duration::from_millis(500);

/// What shadow reads found, summed over every router (the row
/// `NAME/shadow` of the migrations table).
///
/// ```
/// let s = polyrouter::migrate::ShadowCounts::default();
/// assert_eq!((s.compared, s.differences, s.skipped), (0, 0, 0));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShadowCounts {
    /// Reads compared with the other side (each key of a `get_many` counts).
    pub compared: u64,
    /// Of those, keys that still differed after the re-reads.
    pub differences: u64,
    /// Sampled reads not compared because [`SHADOW_IN_FLIGHT`] compares were
    /// already running in that router.
    pub skipped: u64,
    /// The last differing keys (at most [`RECENT`]), newest last;
    /// `Missing` / `Extra` are relative to the source, as in verify.
    pub recent: Vec<Mismatch>,
    /// When the first count was added (ms since the Unix epoch).
    pub since_ms: i64,
    /// When counts were last added.
    pub updated_ms: i64,
}

impl ShadowCounts {
    fn add(&mut self, other: &ShadowCounts) {
        self.compared += other.compared;
        self.differences += other.differences;
        self.skipped += other.skipped;
        let mut recent: VecDeque<Mismatch> = std::mem::take(&mut self.recent).into();
        for m in &other.recent {
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(m.clone());
        }
        self.recent = recent.into();
    }

    fn is_empty(&self) -> bool {
        self.compared == 0 && self.skipped == 0
    }
}

/// The id of a migration's shadow row.
pub(crate) fn row_id(name: &str) -> String {
    format!("{name}/shadow")
}

/// Whether shadow reads compare in `phase`.
pub(crate) fn active_in(phase: Phase) -> bool {
    matches!(
        phase,
        Phase::Backfilled
            | Phase::Verify
            | Phase::Verified
            | Phase::Differences
            | Phase::CutOver
            | Phase::RolledBack
    )
}

/// One router's shadow reads of one migration.
#[derive(Debug)]
pub(crate) struct Shadow {
    name: String,
    /// The store holding the migrations table.
    store: String,
    rate: f64,
    in_flight: Arc<Semaphore>,
    /// Counts not yet added to the shadow row.
    pending: Arc<Mutex<ShadowCounts>>,
}

/// One read to compare: what the primary answered, and where the other
/// side is.
pub(crate) struct Sample {
    pub keys: Vec<Key>,
    pub served: Vec<Option<Record>>,
    pub primary_is_target: bool,
    pub source: (Arc<dyn Store>, EntityInfo),
    pub target: (Arc<dyn Store>, EntityInfo),
    /// Compare versions too (not when change capture feeds the target).
    pub by_version: bool,
}

impl Shadow {
    pub fn new(name: &str, store: &str, rate: f64) -> Self {
        Shadow {
            name: name.to_string(),
            store: store.to_string(),
            rate,
            in_flight: Arc::new(Semaphore::new(SHADOW_IN_FLIGHT)),
            pending: Arc::new(Mutex::new(ShadowCounts::default())),
        }
    }

    /// Whether this read is in the sample.
    pub fn sampled(&self) -> bool {
        self.rate > 0.0 && (self.rate >= 1.0 || fastrand::f64() < self.rate)
    }

    /// Compares `sample` in the background (the caller already has its
    /// answer), or counts it skipped when too many compares are running.
    pub fn spawn(&self, sample: Sample) {
        let pending = self.pending.clone();
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            pending.lock().expect("shadow counts").skipped += sample.keys.len() as u64;
            return;
        };
        tokio::spawn(async move {
            let _permit = permit;
            let n = sample.keys.len() as u64;
            let found = match compare(sample).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::debug!(error = %e, "migrate: a shadow read failed; not counted");
                    return;
                }
            };
            let mut p = pending.lock().expect("shadow counts");
            p.compared += n;
            p.differences += found.len() as u64;
            for (key, difference) in found {
                tracing::warn!(key = %key, %difference, "migrate: a shadow read found the sides different");
                p.add(&ShadowCounts {
                    recent: vec![Mismatch {
                        key: StoredKey::from(&key),
                        difference,
                    }],
                    ..ShadowCounts::default()
                });
            }
        });
    }

    /// Adds this router's counts to the shadow row (conditional on the
    /// row's version, retried on a conflict); kept for the next flush when
    /// the state store cannot be written.
    pub async fn flush(&self, repo: &Repo<MigrationRecord>) -> Result<()> {
        let delta = std::mem::take(&mut *self.pending.lock().expect("shadow counts"));
        if delta.is_empty() {
            return Ok(());
        }
        let out = add_to_row(repo, &self.store, &self.name, &delta).await;
        if out.is_err() {
            self.pending.lock().expect("shadow counts").add(&delta);
        }
        out
    }
}

async fn add_to_row(
    repo: &Repo<MigrationRecord>,
    store: &str,
    name: &str,
    delta: &ShadowCounts,
) -> Result<()> {
    let id = row_id(name);
    let now = now_ms();
    for _ in 0..8 {
        let (precondition, mut counts) = match repo.get(id.as_str()).await? {
            None => (
                Precondition::Absent,
                ShadowCounts {
                    since_ms: now,
                    ..ShadowCounts::default()
                },
            ),
            Some(r) => (
                Precondition::Version(r.version),
                decode(store, name, r.state)?,
            ),
        };
        counts.add(delta);
        counts.updated_ms = now;
        let rec = MigrationRecord {
            id: id.clone(),
            owner: None,
            lease_until: 0,
            state: serde_json::to_value(&counts).expect("shadow counts serialize"),
            updated_ms: now,
            version: 0,
        };
        match repo.put_if(&rec, precondition).await {
            Ok(_) => return Ok(()),
            Err(Error::Conflict { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::unavailable(
        store,
        "polyrouter_migration",
        format!(
            "migration `{name}`: the shadow row kept changing under this router; its counts are added at the next poll"
        ),
    ))
}

/// The shadow counts in a row's `state`.
pub(crate) fn decode(store: &str, name: &str, v: serde_json::Value) -> Result<ShadowCounts> {
    serde_json::from_value(v).map_err(|e| {
        Error::invalid_input(
            store,
            "polyrouter_migration",
            format!("the shadow row of migration `{name}` cannot be read: {e}"),
        )
    })
}

/// The keys of `sample` that still differ after the re-reads, with how
/// (relative to the source).
async fn compare(sample: Sample) -> Result<Vec<(Key, Difference)>> {
    let Sample {
        mut keys,
        served,
        primary_is_target,
        source,
        target,
        by_version,
    } = sample;
    let schema = source.1.schema;
    let other = if primary_is_target { &source } else { &target };
    let mut theirs = other.0.get_many(&other.1, &keys).await?;
    let mut ours = served;
    let mut round = 0;
    loop {
        let (s, t) = if primary_is_target {
            (&theirs, &ours)
        } else {
            (&ours, &theirs)
        };
        let mut still = Vec::new();
        for ((k, s), t) in keys.iter().zip(s).zip(t) {
            let difference = match (s, t) {
                (None, None) => continue,
                (Some(_), None) => Difference::Missing,
                (None, Some(_)) => Difference::Extra,
                (Some(a), Some(b)) if same(schema, a, b, by_version) => continue,
                (Some(_), Some(_)) => Difference::Changed,
            };
            still.push((k.clone(), difference));
        }
        if still.is_empty() || round == SHADOW_RECHECKS {
            return Ok(still);
        }
        round += 1;
        tokio::time::sleep(SHADOW_RECHECK_DELAY).await;
        keys = still.into_iter().map(|(k, _)| k).collect();
        let primary = if primary_is_target { &target } else { &source };
        ours = primary.0.get_many(&primary.1, &keys).await?;
        theirs = other.0.get_many(&other.1, &keys).await?;
    }
}
