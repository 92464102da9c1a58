//! What every SQL store keeps beside its pool: the statement cache per
//! table, the background purge, the clock.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use parking_lot::RwLock;

use super::dialect::Dialect;
use super::table::{PURGE_CHUNK, TableSql};
use super::write::Exec;
use crate::store::EntityInfo;
use crate::{Error, Result};

/// Now, in unix microseconds: the clock expiry is measured against.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// A driver-independent error message, as an error source.
#[derive(Debug)]
pub struct Message(pub String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Message {}

/// A configuration error about an entity; the router fills in the file.
pub fn entity_config_error(entity: &EntityInfo, message: String) -> Error {
    Error::Config {
        file: String::new(),
        line: 0,
        column: 0,
        path: format!("entities.{}", entity.name()),
        message,
    }
}

/// A table's statements, and whether `ensure_entity` prepared it (only
/// those are purged).
struct Entry {
    sql: Arc<TableSql>,
    ensured: bool,
}

/// Refuses a statement binding more parameters than the database takes
/// (an `in` list binds one per value), as invalid input naming the limit —
/// before it is sent, so it is never a driver error a caller might retry.
pub fn check_params(
    store: &str,
    entity: &EntityInfo,
    t: &TableSql,
    s: &super::Select,
) -> Result<()> {
    let max = t.dialect.max_params();
    if s.params.len() > max {
        return Err(Error::invalid_input(
            store,
            entity.name(),
            format!(
                "the query binds {} values, more than the {max} {} takes in one statement (each value of an `in` list is one); split the `in` list over several queries",
                s.params.len(),
                t.dialect.name()
            ),
        ));
    }
    Ok(())
}

/// The statements of every table a store has seen, built once per table.
pub struct Tables {
    dialect: Arc<dyn Dialect>,
    map: RwLock<HashMap<String, Entry>>,
}

impl fmt::Debug for Tables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tables")
            .field("dialect", &self.dialect)
            .finish_non_exhaustive()
    }
}

impl Tables {
    /// An empty cache for one dialect.
    pub fn new(dialect: Arc<dyn Dialect>) -> Self {
        Tables {
            dialect,
            map: RwLock::new(HashMap::new()),
        }
    }

    /// The dialect the statements are written in.
    pub fn dialect(&self) -> &dyn Dialect {
        &*self.dialect
    }

    /// The statements of the entity's table; an unusable name is a config
    /// error naming the store.
    pub fn get(&self, store: &str, entity: &EntityInfo) -> Result<Arc<TableSql>> {
        if let Some(e) = self.map.read().get(&entity.table) {
            if std::ptr::eq(e.sql.schema, entity.schema) {
                return Ok(e.sql.clone());
            }
        }
        let mut t = TableSql::new(self.dialect.clone(), entity.schema, &entity.table)
            .map_err(|m| entity_config_error(entity, format!("store `{store}`: {m}")))?;
        t.tombstone_retention = entity.tombstone_retention;
        let t = Arc::new(t);
        let mut map = self.map.write();
        let ensured = map.get(&entity.table).is_some_and(|e| e.ensured);
        map.insert(
            entity.table.clone(),
            Entry {
                sql: t.clone(),
                ensured,
            },
        );
        Ok(t)
    }

    /// Records that `ensure_entity` prepared the table (it is purged).
    pub fn mark_ensured(&self, entity: &EntityInfo, t: Arc<TableSql>) {
        self.map.write().insert(
            entity.table.clone(),
            Entry {
                sql: t,
                ensured: true,
            },
        );
    }

    /// Forgets a dropped table: it is no longer purged.
    pub fn forget(&self, entity: &EntityInfo) {
        self.map.write().remove(&entity.table);
    }

    /// The tables `ensure_entity` prepared.
    pub fn ensured(&self) -> Vec<Arc<TableSql>> {
        self.map
            .read()
            .values()
            .filter(|e| e.ensured)
            .map(|e| e.sql.clone())
            .collect()
    }
}

/// Deletes expired rows and tombstones past their retention of `tables`, [`PURGE_CHUNK`] at a time (each
/// statement holds its locks only briefly); how many were deleted.
pub async fn purge(exec: &mut dyn Exec, tables: &[Arc<TableSql>]) -> Result<u64> {
    let mut total = 0;
    for t in tables {
        loop {
            let n = exec.execute(&t.purge, t.purge_params(now_micros())).await?;
            total += n;
            if n < PURGE_CHUNK {
                break;
            }
        }
    }
    Ok(total)
}

/// Runs `purge` every `every` while `inner` lives; dropping the store ends
/// the task. Failures are logged.
pub fn spawn_purge<T, F>(inner: Weak<T>, every: Duration, purge: F) -> tokio::task::AbortHandle
where
    T: Send + Sync + 'static,
    F: Fn(Arc<T>) -> BoxFuture<'static, Result<u64>> + Send + 'static,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate
        loop {
            tick.tick().await;
            // Hold the store only while purging.
            let Some(inner) = inner.upgrade() else { break };
            if let Err(e) = purge(inner).await {
                tracing::warn!(error = %e, "purging expired rows failed");
            }
        }
    })
    .abort_handle()
}
