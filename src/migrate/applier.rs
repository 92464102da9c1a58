//! The dual-write of a migration fed by change capture. The capture sees
//! every write committed to the source — the reverse dual-write's too —
//! so its two replica projections are narrowed:
//!
//! - the forward one (into the target) applies only the source's events,
//!   and none while the target is the primary (phases `cut_over`,
//!   `rollback_fence`, `finished`): the source's changes then are the
//!   reverse dual-write's own copies of target writes, at log positions
//!   above the target's later versions, which would overwrite them. The
//!   phase is read from the state row for every delivery, never cached: a
//!   copy is made only after a target write, which comes after the switch
//!   was written.
//! - the reverse one (into the source) applies only the target's events:
//!   a captured event applied to the source is written again, captured
//!   again at a new position, and would circle for ever.

use std::sync::Arc;

use async_trait::async_trait;

use super::driver::decode;
use super::state::MigrationRecord;
use crate::store::Applied;
use crate::sync::ChangeEvent;
use crate::sync::projection::Projection;
use crate::{Repo, Result};

/// Reads whether the target is the primary now.
pub(crate) struct Gate {
    pub repo: Repo<MigrationRecord>,
    pub name: String,
    pub state_store: String,
}

impl Gate {
    async fn target_is_primary(&self) -> Result<bool> {
        Ok(match self.repo.get(self.name.as_str()).await? {
            Some(r) => decode(&self.state_store, &self.name, r.state)?
                .phase
                .routes_to_target(),
            None => false,
        })
    }
}

/// A replica projection of a capture-fed migration: applies the events of
/// `from` only, and with a [`Gate`], only while the source is the primary.
pub(crate) struct CapturedApplier {
    pub inner: Arc<dyn Projection>,
    pub from: String,
    pub gate: Option<Gate>,
}

impl CapturedApplier {
    /// Whether this delivery is applied at all now.
    async fn open(&self) -> Result<bool> {
        match &self.gate {
            Some(g) => Ok(!g.target_is_primary().await?),
            None => Ok(true),
        }
    }

    fn skipped(event: &ChangeEvent) -> Applied {
        Applied::Stale {
            current: event.version,
        }
    }
}

#[async_trait]
impl Projection for CapturedApplier {
    async fn apply(&self, event: &ChangeEvent) -> Result<Applied> {
        if event.store != self.from || !self.open().await? {
            return Ok(Self::skipped(event));
        }
        self.inner.apply(event).await
    }

    async fn apply_all(&self, events: &[&ChangeEvent]) -> Option<Result<Vec<Applied>>> {
        let open = match self.open().await {
            Ok(open) => open,
            Err(e) => return Some(Err(e)),
        };
        let kept: Vec<&ChangeEvent> = events
            .iter()
            .copied()
            .filter(|e| open && e.store == self.from)
            .collect();
        let mut applied = if kept.is_empty() {
            Vec::new().into_iter()
        } else {
            match self.inner.apply_all(&kept).await? {
                Ok(a) => a.into_iter(),
                Err(e) => return Some(Err(e)),
            }
        };
        Some(Ok(events
            .iter()
            .map(|e| {
                if open && e.store == self.from {
                    applied.next().unwrap_or(Self::skipped(e))
                } else {
                    Self::skipped(e)
                }
            })
            .collect()))
    }
}
