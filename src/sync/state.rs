//! Sync's own records in the `[sync]` store: relay leases (one relay per
//! outbox across processes) and status rows (`polyrouter sync status`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::entity::{FieldDef, FieldKind, Schema};
use crate::lease::{Lease, now_ms};
use crate::{Entity, Error, Key, KeyKind, Precondition, Repo, Result};

/// One row of the sync table: a relay lease (`lease/relay/{store}/{entity}`),
/// a capture lease (`lease/capture/{store}/{slot}`)
/// or a worker's status (`status/{worker}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncRecord {
    /// `lease/…` or `status/…`.
    pub id: String,
    /// The lease owner or the reporting worker.
    pub owner: Option<String>,
    /// Lease expiry (ms since the Unix epoch); 0 for status rows.
    pub lease_until: i64,
    /// A status row's figures ([`WorkerStatus`] as JSON).
    pub status: Option<serde_json::Value>,
    /// Last written (ms since the Unix epoch).
    pub updated_ms: i64,
    /// The record's version: the lease's fencing token.
    pub version: u64,
}

static FIELDS: [FieldDef; 5] = [
    FieldDef::required("id", FieldKind::String),
    FieldDef::nullable("owner", FieldKind::String),
    FieldDef::required("lease_until", FieldKind::Int),
    FieldDef::nullable("status", FieldKind::Json),
    FieldDef::required("updated_ms", FieldKind::Int),
];

static SCHEMA: Schema = Schema {
    name: "polyrouter_sync",
    key: "id",
    key_kind: KeyKind::Str,
    partition_key: None,
    version: Some("version"),
    fields: &FIELDS,
};

impl Entity for SyncRecord {
    fn schema() -> &'static Schema {
        &SCHEMA
    }
    fn key(&self) -> Key {
        Key::Str(self.id.clone())
    }
}

/// What one sync worker (a process running relays and projections)
/// reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// The worker's id.
    pub worker: String,
    /// Its relays (only those whose lease it holds move events).
    pub relays: Vec<super::RelayStatus>,
    /// Its change captures (only those whose lease it holds read).
    #[serde(default)]
    pub captures: Vec<super::capture::CaptureStatus>,
    /// Its projections.
    pub projections: Vec<super::projection::ProjectionStatus>,
}

/// A relay's lease on one outbox, renewed while it runs.
#[derive(Debug)]
pub(crate) struct LeaseKeeper {
    repo: Repo<SyncRecord>,
    id: String,
    owner: String,
    ttl: Duration,
    /// Our record's version and our lease's expiry, while we hold it.
    held: Option<(u64, i64)>,
    /// Why the last renewal failed, until one succeeds.
    error: Option<String>,
}

impl LeaseKeeper {
    pub fn new(repo: Repo<SyncRecord>, id: String, owner: String, ttl: Duration) -> Self {
        LeaseKeeper {
            repo,
            id,
            owner,
            ttl,
            held: None,
            error: None,
        }
    }

    /// Why the last attempt to take or renew the lease failed (the store
    /// answered with an error), until an attempt gets an answer again.
    pub fn last_error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Whether this worker holds the lease now, taking or renewing it when
    /// a third of it has passed. A store error counts as not held once the
    /// lease we had has expired.
    pub async fn hold(&mut self) -> bool {
        let now = now_ms();
        let ttl_ms = self.ttl.as_millis() as i64;
        if let Some((_, until)) = self.held {
            if until - now > ttl_ms * 2 / 3 {
                return true;
            }
        }
        match self.renew(now).await {
            Ok(held) => {
                self.error = None;
                held
            }
            Err(e) => {
                tracing::warn!(lease = %self.id, error = %e, "sync: cannot renew a relay lease");
                self.error = Some(e.to_string());
                let still = self.held.is_some_and(|(_, until)| until > now_ms());
                if !still {
                    self.held = None;
                }
                still
            }
        }
    }

    async fn renew(&mut self, now: i64) -> Result<bool> {
        let current = self.repo.get(self.id.as_str()).await?;
        let precondition = match &current {
            None => Precondition::Absent,
            Some(r) => {
                let lease = Lease {
                    owner: r.owner.clone(),
                    until_ms: r.lease_until,
                };
                if !lease.is_free(now) && !lease.held_by(&self.owner, now) {
                    self.held = None;
                    return Ok(false);
                }
                Precondition::Version(r.version)
            }
        };
        let lease = Lease::grant(&self.owner, now, self.ttl);
        let rec = SyncRecord {
            id: self.id.clone(),
            owner: lease.owner.clone(),
            lease_until: lease.until_ms,
            status: None,
            updated_ms: now,
            version: 0,
        };
        match self.repo.put_if(&rec, precondition).await {
            Ok(v) => {
                self.held = Some((v, lease.until_ms));
                Ok(true)
            }
            Err(Error::Conflict { .. }) => {
                self.held = None;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Gives the lease up (graceful shutdown), so another worker need not
    /// wait for it to expire.
    pub async fn release(&mut self) {
        if let Some((version, _)) = self.held.take() {
            let rec = SyncRecord {
                id: self.id.clone(),
                owner: None,
                lease_until: 0,
                status: None,
                updated_ms: now_ms(),
                version: 0,
            };
            let _ = self.repo.put_if(&rec, Precondition::Version(version)).await;
        }
    }
}
