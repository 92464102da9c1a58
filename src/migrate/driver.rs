//! The lease on a migration's state row: one process drives a phase at a
//! time, and every progress write is conditional on the row's version, so
//! a process that lost its lease (it stalled past it and another took
//! over) stops at its next write instead of moving the cursor back.

use std::time::Duration;

use super::state::{MigrationRecord, MigrationState};
use crate::lease::{Lease, now_ms};
use crate::{Error, Precondition, Repo, Result};

/// The process driving a migration now, with its state.
#[derive(Debug)]
pub(crate) struct Driver {
    repo: Repo<MigrationRecord>,
    store: String,
    name: String,
    owner: String,
    ttl: Duration,
    version: u64,
    /// The state; [`Driver::save`] writes it.
    pub state: MigrationState,
}

pub(crate) fn decode(store: &str, name: &str, v: serde_json::Value) -> Result<MigrationState> {
    serde_json::from_value(v).map_err(|e| {
        Error::invalid_input(
            store,
            "polyrouter_migration",
            format!("the state row of migration `{name}` cannot be read: {e}"),
        )
    })
}

impl Driver {
    /// Takes the lease; waits (up to twice the lease) for one held by
    /// another process to expire, e.g. a process that was killed.
    pub async fn acquire(
        repo: Repo<MigrationRecord>,
        store: &str,
        name: &str,
        owner: &str,
        ttl: Duration,
        init: MigrationState,
    ) -> Result<Driver> {
        let deadline = std::time::Instant::now() + ttl * 2 + Duration::from_millis(500);
        loop {
            let now = now_ms();
            let current = repo.get(name).await?;
            let (precondition, state) = match current {
                None => (Precondition::Absent, init.clone()),
                Some(r) => {
                    let lease = Lease {
                        owner: r.owner.clone(),
                        until_ms: r.lease_until,
                    };
                    if !lease.is_free(now) && !lease.held_by(owner, now) {
                        if std::time::Instant::now() >= deadline {
                            return Err(Error::unavailable(
                                store,
                                &init.entity,
                                format!(
                                    "migration `{name}` is driven by process {} (its lease runs another {} ms); wait for it to finish, or stop it",
                                    r.owner.as_deref().unwrap_or("?"),
                                    lease.remaining(now).as_millis()
                                ),
                            ));
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                    (
                        Precondition::Version(r.version),
                        decode(store, name, r.state)?,
                    )
                }
            };
            let mut d = Driver {
                repo: repo.clone(),
                store: store.to_string(),
                name: name.to_string(),
                owner: owner.to_string(),
                ttl,
                version: 0,
                state,
            };
            match d.write(precondition, true).await {
                Ok(()) => return Ok(d),
                Err(Error::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    async fn write(&mut self, precondition: Precondition, hold: bool) -> Result<()> {
        let now = now_ms();
        self.state.updated_ms = now;
        let lease = if hold {
            Lease::grant(&self.owner, now, self.ttl)
        } else {
            Lease::released()
        };
        let state = serde_json::to_value(&self.state).map_err(|e| {
            Error::invalid_input(&self.store, "polyrouter_migration", e.to_string())
        })?;
        let rec = MigrationRecord {
            id: self.name.clone(),
            owner: lease.owner,
            lease_until: lease.until_ms,
            state,
            updated_ms: now,
            version: 0,
        };
        self.version = self.repo.put_if(&rec, precondition).await?;
        Ok(())
    }

    /// Writes the state and renews the lease; an error if another process
    /// took the migration over.
    pub async fn save(&mut self) -> Result<()> {
        match self.write(Precondition::Version(self.version), true).await {
            Err(Error::Conflict { .. }) => Err(Error::unavailable(
                &self.store,
                &self.state.entity,
                format!(
                    "migration `{}`: another process took it over (this one stalled past its lease); this process stopped",
                    self.name
                ),
            )),
            other => other,
        }
    }

    /// Ends the phase: records the outcome (an error in `state.error`) and
    /// releases the lease; returns the outcome with the final state.
    pub async fn finish<T>(mut self, out: Result<T>) -> Result<(T, MigrationState)> {
        self.state.error = out.as_ref().err().map(|e| e.to_string());
        let saved = self.write(Precondition::Version(self.version), false).await;
        let value = out?;
        saved?;
        Ok((value, self.state))
    }
}
