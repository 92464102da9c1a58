//! A migration's persisted state: one row per migration in its state
//! store, holding the phase, the cursors and the counters, and the lease
//! of the process driving it (the row's version fences every write).

use serde::{Deserialize, Serialize};

use crate::entity::{FieldDef, FieldKind, Schema};
use uuid::Uuid;

use crate::{Entity, Key, KeyKind};

/// One row of the migrations table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct MigrationRecord {
    /// The migration's name.
    pub id: String,
    /// The process driving a phase now, if any.
    pub owner: Option<String>,
    /// Its lease's expiry (ms since the Unix epoch).
    pub lease_until: i64,
    /// [`MigrationState`] as JSON.
    pub state: serde_json::Value,
    /// Last written (ms since the Unix epoch).
    pub updated_ms: i64,
    /// The row's version: the fencing token of every write.
    pub version: u64,
}

static FIELDS: [FieldDef; 5] = [
    FieldDef::required("id", FieldKind::String),
    FieldDef::nullable("owner", FieldKind::String),
    FieldDef::required("lease_until", FieldKind::Int),
    FieldDef::required("state", FieldKind::Json),
    FieldDef::required("updated_ms", FieldKind::Int),
];

static SCHEMA: Schema = Schema {
    name: "polyrouter_migration",
    key: "id",
    key_kind: KeyKind::Str,
    partition_key: None,
    version: Some("version"),
    fields: &FIELDS,
};

impl Entity for MigrationRecord {
    fn schema() -> &'static Schema {
        &SCHEMA
    }
    fn key(&self) -> Key {
        Key::Str(self.id.clone())
    }
}

/// Where a migration is.
///
/// ```
/// use polyrouter::migrate::Phase;
/// assert_eq!(Phase::Backfill.to_string(), "backfill");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Copying the source's rows into the target (resumable).
    #[default]
    Backfill,
    /// Every row the source held when the scan passed it is in the target.
    Backfilled,
    /// Comparing both sides (resumable).
    Verify,
    /// The last verify found no difference.
    Verified,
    /// The last verify found differences (listed; `repair` copies them).
    Differences,
    /// Cutover under way: writes of the entity are refused everywhere
    /// while the dual-write drains into the target.
    CutoverFence,
    /// The target is the primary; the source is kept current by the
    /// reverse dual-write.
    CutOver,
    /// Rollback under way: writes refused while the reverse dual-write
    /// drains into the source.
    RollbackFence,
    /// The source is the primary again, nothing lost.
    RolledBack,
    /// The target is the primary for good: point the route at it.
    Finished,
}

impl Phase {
    /// Whether routers send the entity's operations to the target.
    ///
    /// ```
    /// use polyrouter::migrate::Phase;
    /// assert!(Phase::CutOver.routes_to_target() && !Phase::CutoverFence.routes_to_target());
    /// ```
    pub fn routes_to_target(self) -> bool {
        matches!(
            self,
            Phase::CutOver | Phase::RollbackFence | Phase::Finished
        )
    }

    /// Whether routers refuse the entity's writes (a switch under way).
    ///
    /// ```
    /// assert!(polyrouter::migrate::Phase::RollbackFence.fenced());
    /// ```
    pub fn fenced(self) -> bool {
        matches!(self, Phase::CutoverFence | Phase::RollbackFence)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Backfill => "backfill",
            Phase::Backfilled => "backfilled",
            Phase::Verify => "verify",
            Phase::Verified => "verified",
            Phase::Differences => "differences",
            Phase::CutoverFence => "cutover_fence",
            Phase::CutOver => "cut_over",
            Phase::RollbackFence => "rollback_fence",
            Phase::RolledBack => "rolled_back",
            Phase::Finished => "finished",
        })
    }
}

/// A key as the state row keeps it (JSON with its kind).
///
/// ```
/// use polyrouter::{Key, migrate::StoredKey};
/// let k = StoredKey::from(&Key::Int(7));
/// assert_eq!(k.key(), Key::Int(7));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoredKey {
    /// A string key.
    Str(String),
    /// An integer key.
    Int(i64),
    /// A UUID key.
    Uuid(Uuid),
}

impl StoredKey {
    /// The key.
    ///
    /// ```
    /// use polyrouter::{Key, migrate::StoredKey};
    /// assert_eq!(StoredKey::Str("a".into()).key(), Key::from("a"));
    /// ```
    pub fn key(&self) -> Key {
        match self {
            StoredKey::Str(s) => Key::Str(s.clone()),
            StoredKey::Int(i) => Key::Int(*i),
            StoredKey::Uuid(u) => Key::Uuid(*u),
        }
    }
}

impl From<&Key> for StoredKey {
    fn from(k: &Key) -> Self {
        match k {
            Key::Str(s) => StoredKey::Str(s.clone()),
            Key::Int(i) => StoredKey::Int(*i),
            Key::Uuid(u) => StoredKey::Uuid(*u),
        }
    }
}

/// Backfill progress: the keyset cursor (the last key copied) and counters.
///
/// ```
/// let b = polyrouter::migrate::BackfillState::default();
/// assert!(b.cursor.is_none() && b.rows == 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackfillState {
    /// The last key copied; the scan resumes after it.
    pub cursor: Option<StoredKey>,
    /// Rows copied so far (read from the source and applied to the target).
    pub rows: u64,
    /// Rows the target already held at the same or a newer version (left as they were).
    pub skipped: u64,
    /// The source's row count when the backfill started, if the store counts.
    pub total: Option<u64>,
    /// When the backfill started (ms since the Unix epoch).
    pub started_ms: i64,
    /// Milliseconds spent copying, over every run (excludes pauses between runs).
    pub busy_ms: u64,
    /// Whether the scan reached the end of the source.
    pub done: bool,
}

/// How a key differs between source and target.
///
/// ```
/// assert_eq!(polyrouter::migrate::Difference::Missing.to_string(), "missing");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Difference {
    /// In the source, not in the target.
    Missing,
    /// In both, with another version or other fields.
    Changed,
    /// In the target, not in the source.
    Extra,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Difference::Missing => "missing",
            Difference::Changed => "changed",
            Difference::Extra => "extra",
        })
    }
}

/// One mismatching key.
///
/// ```
/// use polyrouter::migrate::{Difference, Mismatch, StoredKey};
/// let m = Mismatch { key: StoredKey::Int(1), difference: Difference::Extra };
/// assert_eq!(m.key.key(), polyrouter::Key::Int(1));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mismatch {
    /// The key.
    pub key: StoredKey,
    /// How it differs.
    pub difference: Difference,
}

/// Which side verify is scanning.
///
/// ```
/// assert_eq!(polyrouter::migrate::VerifyPass::default(), polyrouter::migrate::VerifyPass::Source);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyPass {
    /// Source rows, each looked up in the target (missing, changed).
    #[default]
    Source,
    /// Target rows, each looked up in the source (extra).
    Target,
}

/// Verify progress and findings.
///
/// ```
/// let v = polyrouter::migrate::VerifyState::default();
/// assert_eq!(v.differences(), 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VerifyState {
    /// The side being scanned.
    pub pass: VerifyPass,
    /// The last key compared in this pass.
    pub cursor: Option<StoredKey>,
    /// Source rows compared.
    pub source_rows: u64,
    /// Target rows looked up in the source.
    pub target_rows: u64,
    /// Keys in the source, not in the target.
    pub missing: u64,
    /// Keys whose version or fields differ.
    pub changed: u64,
    /// Keys in the target, not in the source.
    pub extra: u64,
    /// The mismatching keys, the first [`MAX_LISTED`](super::MAX_LISTED).
    pub mismatches: Vec<Mismatch>,
    /// When this verify started (ms since the Unix epoch).
    pub started_ms: i64,
    /// Milliseconds spent comparing, over every run.
    pub busy_ms: u64,
    /// Whether both passes finished.
    pub done: bool,
}

impl VerifyState {
    /// Every difference found.
    ///
    /// ```
    /// let mut v = polyrouter::migrate::VerifyState::default();
    /// v.extra = 2;
    /// assert_eq!(v.differences(), 2);
    /// ```
    pub fn differences(&self) -> u64 {
        self.missing + self.changed + self.extra
    }
}

/// Everything the state row holds about a migration.
///
/// ```
/// let s = polyrouter::migrate::MigrationState::default();
/// assert_eq!(s.phase, polyrouter::migrate::Phase::Backfill);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MigrationState {
    /// The phase.
    pub phase: Phase,
    /// The entity.
    pub entity: String,
    /// The source store.
    pub from: String,
    /// The target store.
    pub to: String,
    /// Backfill progress.
    pub backfill: BackfillState,
    /// The last (or running) verify.
    #[serde(default)]
    pub verify: Option<VerifyState>,
    /// The last error that stopped a phase, if any.
    #[serde(default)]
    pub error: Option<String>,
    /// When the migration started (ms since the Unix epoch).
    pub started_ms: i64,
    /// Last written (ms since the Unix epoch).
    pub updated_ms: i64,
}
