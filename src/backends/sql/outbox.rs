//! The transactional outbox of SQL stores: one table per outbox entity,
//! `<table>__outbox` (`seq`: a key the database numbers in insert order;
//! `event`: the [`ChangeEvent`] as its JSON text). Writes insert their
//! event in their own transaction ([`record_event`]); the relay reads the
//! head of the table by `seq` and deletes exactly what it published, so a
//! write that commits after a later-numbered one simply shows up in a
//! later fetch (no cursor skips it).

use std::sync::Arc;

use async_trait::async_trait;

use super::dialect::{Dialect, number};
use super::param::Param;
use super::table::{Select, TableSql};
use super::write::{Exec, Target};
use crate::store::{EntityInfo, OutboxEntry};
use crate::sync::ChangeEvent;
use crate::{Error, Result};

/// What the outbox table's name adds to the entity's table name.
pub const OUTBOX_SUFFIX: &str = "__outbox";

/// Ids removed per statement (well below every dialect's parameter limit).
const REMOVE_CHUNK: usize = 1000;

/// The statements of one entity's outbox table, in one dialect.
///
/// ```
/// # #[cfg(feature = "sqlite")] {
/// use polyrouter::backends::sql::OutboxSql;
/// let o = OutboxSql::new(&polyrouter::backends::sqlite::SqliteDialect, "note");
/// assert_eq!(o.table, "note__outbox");
/// assert_eq!(o.insert, "INSERT INTO \"note__outbox\" (\"event\") VALUES (?)");
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxSql {
    /// The outbox table's name, unquoted.
    pub table: String,
    /// The quoted (possibly schema-qualified) outbox table.
    pub qtable: String,
    /// `CREATE TABLE IF NOT EXISTS` of the outbox table.
    pub create: String,
    /// `DROP TABLE IF EXISTS` of the outbox table.
    pub drop: String,
    /// Records one event: binds its JSON text.
    pub insert: String,
    /// The oldest events, `seq` then `event`: binds the limit.
    pub fetch: String,
    /// `count(*)` of waiting events; binds nothing.
    pub count: String,
    head_remove: String,
}

impl OutboxSql {
    /// The outbox statements of the entity table `table`.
    pub fn new(d: &dyn Dialect, table: &str) -> Self {
        let name = format!("{table}{OUTBOX_SUFFIX}");
        let q = d.quote_table(&name);
        let seq = d.quote("seq");
        let event = d.quote("event");
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {q} ({seq} {}, {event} {} NOT NULL)",
            d.serial_key(),
            d.column_type(crate::FieldKind::String, false)
        );
        let mut fetch = format!("SELECT {seq}, {event} FROM {q} ORDER BY {seq}");
        d.limit(&mut fetch);
        OutboxSql {
            create,
            drop: format!("DROP TABLE IF EXISTS {q}"),
            insert: number(d, &format!("INSERT INTO {q} ({event}) VALUES (?)")),
            fetch: number(d, &fetch),
            count: format!("SELECT count(*) FROM {q}"),
            head_remove: format!("DELETE FROM {q} WHERE {seq} IN ("),
            table: name,
            qtable: q,
        }
    }

    /// Checks the outbox table's name is usable (called when a route with
    /// an outbox is prepared).
    pub fn check(&self, d: &dyn Dialect) -> std::result::Result<(), String> {
        d.check_ident("table", &self.table)
            .map_err(|m| format!("the outbox table of this entity: {m}"))
    }

    /// The statements deleting the entries `ids` (one per chunk of ids);
    /// ids that are not this table's (not a sequence number) are skipped.
    ///
    /// ```
    /// # #[cfg(feature = "postgres")] {
    /// use polyrouter::backends::sql::OutboxSql;
    /// let d = polyrouter::backends::postgres::PostgresDialect;
    /// let o = OutboxSql::new(&d, "t");
    /// let s = o.remove(&d, &["4".into(), "x".into(), "9".into()]);
    /// assert_eq!(s[0].sql, "DELETE FROM \"t__outbox\" WHERE \"seq\" IN ($1, $2)");
    /// # }
    /// ```
    pub fn remove(&self, d: &dyn Dialect, ids: &[String]) -> Vec<Select<'static>> {
        let seqs: Vec<i64> = ids.iter().filter_map(|i| i.parse().ok()).collect();
        seqs.chunks(REMOVE_CHUNK)
            .map(|c| Select {
                sql: number(
                    d,
                    &format!("{}{})", self.head_remove, vec!["?"; c.len()].join(", ")),
                ),
                params: c.iter().map(|s| Param::Int(*s)).collect(),
            })
            .collect()
    }
}

/// Records `event` (if the route has an outbox) in the outbox table, on
/// the write's own connection and transaction.
pub async fn record_event(
    exec: &mut dyn Exec,
    o: &OutboxSql,
    event: Option<ChangeEvent>,
) -> Result<()> {
    if let Some(event) = event {
        let text = String::from_utf8(event.to_json()).expect("event JSON is UTF-8");
        exec.execute(&o.insert, vec![Param::Text(text.into())])
            .await?;
    }
    Ok(())
}

/// One fetched row of an outbox table as an [`OutboxEntry`]; an event that
/// does not read back is a backend error naming the entry.
pub fn outbox_entry(target: Target<'_>, seq: i64, event: &str) -> Result<OutboxEntry> {
    let event = ChangeEvent::from_json(event.as_bytes()).map_err(|m| {
        Error::backend(
            target.store,
            target.entity,
            super::Message(format!(
                "outbox entry {seq} does not read as a change event ({m}); remove it with outbox_remove"
            )),
        )
    })?;
    Ok(OutboxEntry {
        id: seq.to_string(),
        event,
    })
}

/// The outbox calls of [`Store`](crate::Store) (`outbox_fetch`,
/// `outbox_remove`, `outbox_len`) on a SQL store, written once: the store
/// supplies its tables and a statement runner on a pooled connection.
/// An entity whose route has no outbox has an empty one (no connection is
/// taken).
#[async_trait]
pub(crate) trait SqlOutbox: crate::Store {
    /// A connection from the store's pool.
    type Conn<'a>: Send
    where
        Self: 'a;

    /// The statements of `entity`'s table.
    fn outbox_table(&self, entity: &EntityInfo) -> Result<Arc<TableSql>>;

    /// A connection from the pool.
    async fn outbox_conn<'a>(&'a self, entity: &'a EntityInfo) -> Result<Self::Conn<'a>>;

    /// A statement runner over `conn` for `entity`.
    fn outbox_exec<'c>(
        &'c self,
        conn: &'c mut Self::Conn<'_>,
        entity: &'c EntityInfo,
    ) -> Box<dyn Exec + 'c>;

    /// [`Store::outbox_fetch`](crate::Store::outbox_fetch): [`fetch`].
    async fn sql_outbox_fetch(&self, entity: &EntityInfo, max: usize) -> Result<Vec<OutboxEntry>> {
        if entity.outbox.is_none() {
            return Ok(Vec::new());
        }
        let t = self.outbox_table(entity)?;
        let mut conn = self.outbox_conn(entity).await?;
        let target = Target::new(self.name(), entity);
        fetch(
            &mut *self.outbox_exec(&mut conn, entity),
            target,
            &t.outbox,
            max,
        )
        .await
    }

    /// [`Store::outbox_remove`](crate::Store::outbox_remove): [`remove`].
    async fn sql_outbox_remove(&self, entity: &EntityInfo, ids: &[String]) -> Result<()> {
        if entity.outbox.is_none() || ids.is_empty() {
            return Ok(());
        }
        let t = self.outbox_table(entity)?;
        let mut conn = self.outbox_conn(entity).await?;
        remove(
            &mut *self.outbox_exec(&mut conn, entity),
            &*t.dialect,
            &t.outbox,
            ids,
        )
        .await
    }

    /// [`Store::outbox_len`](crate::Store::outbox_len): [`len`].
    async fn sql_outbox_len(&self, entity: &EntityInfo) -> Result<u64> {
        if entity.outbox.is_none() {
            return Ok(0);
        }
        let t = self.outbox_table(entity)?;
        let mut conn = self.outbox_conn(entity).await?;
        len(&mut *self.outbox_exec(&mut conn, entity), &t.outbox).await
    }
}

/// Implements [`SqlOutbox`] for a sqlx store `$store` whose pool is of
/// database `$db`: through its own `table_sql(entity)`, `conn(entity)`
/// (a pooled connection) and `exec(conn, entity)` (its [`Exec`]).
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
macro_rules! sqlx_outbox {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::backends::sql::outbox::SqlOutbox for $store {
            type Conn<'a> = sqlx::pool::PoolConnection<$db>;

            fn outbox_table(
                &self,
                entity: &$crate::store::EntityInfo,
            ) -> $crate::Result<std::sync::Arc<$crate::backends::sql::TableSql>> {
                self.table_sql(entity)
            }

            async fn outbox_conn<'a>(
                &'a self,
                entity: &'a $crate::store::EntityInfo,
            ) -> $crate::Result<Self::Conn<'a>> {
                self.conn(entity).await
            }

            fn outbox_exec<'c>(
                &'c self,
                conn: &'c mut Self::Conn<'_>,
                entity: &'c $crate::store::EntityInfo,
            ) -> Box<dyn $crate::backends::sql::write::Exec + 'c> {
                Box::new(self.exec(conn, entity))
            }
        }
    };
}
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub(crate) use sqlx_outbox;

/// Up to `max` entries of the outbox, oldest (`seq`) first.
pub async fn fetch(
    exec: &mut dyn Exec,
    target: Target<'_>,
    o: &OutboxSql,
    max: usize,
) -> Result<Vec<OutboxEntry>> {
    if max == 0 {
        return Ok(Vec::new());
    }
    let limit = Param::Int(i64::try_from(max).unwrap_or(i64::MAX));
    let rows = match exec.fetch_int_text(&o.fetch, vec![limit.clone()]).await {
        Ok(rows) => rows,
        Err(e) => {
            created_late(exec, o, e).await?;
            exec.fetch_int_text(&o.fetch, vec![limit]).await?
        }
    };
    rows.into_iter()
        .map(|(seq, event)| outbox_entry(target, seq, &event))
        .collect()
}

/// Deletes the entries `ids` from the outbox; ids no longer there are
/// ignored.
pub async fn remove(
    exec: &mut dyn Exec,
    d: &dyn Dialect,
    o: &OutboxSql,
    ids: &[String],
) -> Result<()> {
    for s in o.remove(d, ids) {
        exec.execute(&s.sql, s.params).await?;
    }
    Ok(())
}

/// How many entries wait in the outbox.
pub async fn len(exec: &mut dyn Exec, o: &OutboxSql) -> Result<u64> {
    let n = match exec.fetch_int(&o.count, Vec::new()).await {
        Ok(n) => n,
        Err(e) => {
            created_late(exec, o, e).await?;
            exec.fetch_int(&o.count, Vec::new()).await?
        }
    };
    Ok(n.unwrap_or(0) as u64)
}

/// After a failed read of the outbox: creates the outbox table if it is
/// missing (a relay in a process that never prepared the entity, e.g.
/// `polyrouter sync` started before the application), so the read can be
/// tried again; the outbox table's shape does not depend on the entity's
/// fields. If creating fails too, the read's own error is returned.
async fn created_late(exec: &mut dyn Exec, o: &OutboxSql, read_error: Error) -> Result<()> {
    match exec.execute(&o.create, Vec::new()).await {
        Ok(_) => Ok(()),
        Err(_) => Err(read_error),
    }
}
