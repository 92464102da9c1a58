//! PostgreSQL change capture: logical decoding of the entity's table
//! through a replication slot (output plugin `pgoutput`, protocol 1) and a
//! publication of that table, read with `pg_logical_slot_peek_binary_changes`
//! and advanced with `pg_replication_slot_advance` only after the events
//! are on the bus.
//!
//! Versions: an event's version is the WAL position (LSN) of its row
//! change. A later change of a key is logged after the earlier one
//! committed (row locks and the primary key's unique index make a second
//! writer of a key wait), so versions grow per key whatever the writer
//! does with polyrouter's `_pr_version` column. Ids are
//! `pg:{slot}:{LSN}:{n}`: the same on every re-read.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgPool;

use super::pgoutput::{Cell, Message, Relation, decode};
use super::{CapturedBatch, ChangeSource, Retention, text};
use crate::backends::sql::EXPIRES_COL;
use crate::entity::Schema;
use crate::store::EntityInfo;
use crate::sync::{ChangeEvent, Operation};
use crate::{Error, Key, Record, Result};

/// Maps a driver error to the crate's (the postgres backend's mapping).
pub(crate) type MapErr = fn(&str, &str, sqlx::Error) -> Error;

/// One entity's table read through a logical replication slot.
#[derive(Debug, Clone)]
pub(crate) struct PgChangeSource {
    store: String,
    pool: PgPool,
    entity: EntityInfo,
    slot: String,
    map_err: MapErr,
    /// The last position this process moved the slot to.
    committed: Arc<AtomicU64>,
}

/// Where the entity's columns are in a relation's rows.
struct Layout {
    key: usize,
    fields: Vec<usize>,
    expires: Option<usize>,
}

fn lsn_text(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

impl PgChangeSource {
    pub(crate) fn new(
        store: &str,
        pool: PgPool,
        entity: EntityInfo,
        slot: &str,
        map_err: MapErr,
    ) -> Self {
        PgChangeSource {
            store: store.into(),
            pool,
            entity,
            slot: slot.into(),
            map_err,
            committed: Arc::default(),
        }
    }

    fn err(&self, e: sqlx::Error) -> Error {
        // 55006 object in use: a capture killed a moment ago still holds
        // the slot until its server process notices; retry.
        if let sqlx::Error::Database(d) = &e {
            if d.code().as_deref() == Some("55006") {
                return Error::unavailable(
                    &self.store,
                    self.entity.name(),
                    format!(
                        "replication slot `{}` is in use by another session (a capture that just stopped); retrying",
                        self.slot
                    ),
                );
            }
        }
        (self.map_err)(&self.store, self.entity.name(), e)
    }

    fn bad(&self, message: String) -> Error {
        Error::backend(
            &self.store,
            self.entity.name(),
            format!("change capture from slot `{}`: {message}", self.slot),
        )
    }

    fn schema(&self) -> &'static Schema {
        self.entity.schema
    }

    fn layout(&self, rel: &Relation) -> Result<Layout> {
        let find = |name: &str| rel.columns.iter().position(|c| c.name == name);
        let missing = |name: &str| {
            self.bad(format!(
                "table `{}` has no column `{name}` the entity needs",
                rel.name
            ))
        };
        let schema = self.schema();
        let key = find(schema.key).ok_or_else(|| missing(schema.key))?;
        let fields = schema
            .fields
            .iter()
            .map(|f| find(f.name).ok_or_else(|| missing(f.name)))
            .collect::<Result<_>>()?;
        Ok(Layout {
            key,
            fields,
            expires: find(EXPIRES_COL),
        })
    }

    fn text_at<'c>(
        &self,
        cells: &'c [Cell],
        i: usize,
        old: Option<&'c [Cell]>,
    ) -> Result<Option<&'c str>> {
        match cells.get(i) {
            Some(Cell::Text(s)) => Ok(Some(s)),
            Some(Cell::Null) => Ok(None),
            Some(Cell::Unchanged) => match old.and_then(|o| o.get(i)) {
                Some(Cell::Text(s)) => Ok(Some(s)),
                Some(Cell::Null) => Ok(None),
                _ => Err(self.bad(format!(
                    "an unchanged large (TOASTed) value of column {i} was not sent; table `{}` needs `REPLICA IDENTITY FULL` (the capture sets it when it creates its slot)",
                    self.entity.table
                ))),
            },
            None => Err(self.bad(format!("a row change has no column {i}"))),
        }
    }

    fn key_of(&self, cells: &[Cell], l: &Layout, old: Option<&[Cell]>) -> Result<Key> {
        let s = self
            .text_at(cells, l.key, old)?
            .ok_or_else(|| self.bad("a row change has a NULL key".into()))?;
        text::key(self.schema().key_kind, s).map_err(|m| self.bad(m))
    }

    /// The put (or, for a row polyrouter turned into a tombstone, the
    /// delete) a new row image means.
    fn image(
        &self,
        cells: &[Cell],
        l: &Layout,
        old: Option<&[Cell]>,
        lsn: u64,
    ) -> Result<ChangeEvent> {
        let key = self.key_of(cells, l, old)?;
        if let Some(i) = l.expires {
            if let Some(e) = self.text_at(cells, i, old)? {
                if e.parse::<i64>().is_ok_and(|e| e < 0) {
                    return Ok(ChangeEvent::new(
                        &self.store,
                        self.schema().name,
                        key,
                        Operation::Delete,
                        lsn,
                    ));
                }
            }
        }
        let mut record = Record::new(key);
        for (f, &i) in self.schema().fields.iter().zip(&l.fields) {
            let v = match self.text_at(cells, i, old)? {
                None => crate::Value::Null,
                Some(s) => text::value(f.ty.kind, s)
                    .map_err(|m| self.bad(format!("column `{}`: {m}", f.name)))?,
            };
            record.set(f.name, v);
        }
        record.version = lsn;
        Ok(ChangeEvent::put_of(&self.store, self.schema(), &record))
    }

    /// The events of one row change of our table.
    fn events_of(&self, m: &Message, l: &Layout, lsn: u64) -> Result<Vec<ChangeEvent>> {
        let name = self.schema().name;
        Ok(match m {
            Message::Insert { new, .. } => vec![self.image(new, l, None, lsn)?],
            Message::Update { old, new, .. } => {
                let old = old.as_deref();
                let put = self.image(new, l, old, lsn)?;
                match old.map(|o| self.key_of(o, l, None)).transpose()? {
                    Some(k) if k != put.key => vec![
                        ChangeEvent::new(&self.store, name, k, Operation::Delete, lsn),
                        put,
                    ],
                    _ => vec![put],
                }
            }
            Message::Delete { old, .. } => vec![ChangeEvent::new(
                &self.store,
                name,
                self.key_of(old, l, None)?,
                Operation::Delete,
                lsn,
            )],
            _ => vec![],
        })
    }
}

#[async_trait]
impl ChangeSource for PgChangeSource {
    fn describe(&self) -> String {
        format!("replication slot `{}`", self.slot)
    }

    async fn prepare(&self) -> Result<()> {
        let level: String = sqlx::query_scalar("SHOW wal_level")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        if level != "logical" {
            return Err(Error::unsupported(
                &self.store,
                self.entity.name(),
                format!(
                    "change capture: the server runs `wal_level = {level}`; logical decoding needs `wal_level = logical` (set it in postgresql.conf with `max_replication_slots` and `max_slot_wal_keep_size`, and restart the server — docs/cdc.md)"
                ),
            ));
        }
        let table = quote(&self.entity.table);
        let ident: Option<String> = sqlx::query_scalar(
            "SELECT relreplident::text FROM pg_class WHERE oid = to_regclass($1)",
        )
        .bind(&table)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        if ident.as_deref() != Some("f") {
            sqlx::query(&format!("ALTER TABLE {table} REPLICA IDENTITY FULL"))
                .execute(&self.pool)
                .await
                .map_err(|e| self.err(e))?;
        }
        let published: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)")
                .bind(&self.slot)
                .fetch_one(&self.pool)
                .await
                .map_err(|e| self.err(e))?;
        if !published {
            let create = format!(
                "CREATE PUBLICATION {} FOR TABLE {table} WITH (publish = 'insert, update, delete')",
                quote(&self.slot)
            );
            if let Err(e) = sqlx::query(&create).execute(&self.pool).await {
                if !is_duplicate(&e) {
                    return Err(self.err(e));
                }
            }
        }
        let plugin: Option<Option<String>> = sqlx::query_scalar(
            "SELECT plugin::text FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()",
        )
        .bind(&self.slot)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        match plugin {
            Some(Some(p)) if p == "pgoutput" => Ok(()),
            Some(p) => Err(self.bad(format!(
                "replication slot `{}` exists with output plugin {p:?}, not pgoutput; drop it or choose another `slot`",
                self.slot
            ))),
            None => {
                let created = sqlx::query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')")
                    .bind(&self.slot)
                    .execute(&self.pool)
                    .await;
                match created {
                    Err(e) if !is_duplicate(&e) => Err(self.err(e)),
                    _ => Ok(()),
                }
            }
        }
    }

    async fn read(&self, max: usize) -> Result<CapturedBatch> {
        let max = max.clamp(1, i32::MAX as usize);
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        // The text output the decoder reads (for this transaction only),
        // and the bound: everything committed before it is decoded by this
        // read unless it stops at `max` messages.
        let bound: i64 = sqlx::query_scalar(
            "SELECT (pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::int8 \
             FROM (SELECT set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO, YMD', true), \
             set_config('bytea_output', 'hex', true), set_config('extra_float_digits', '3', true)) AS settings",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        let rows = sqlx::query(
            "SELECT (lsn - '0/0'::pg_lsn)::int8 AS lsn, data FROM pg_logical_slot_peek_binary_changes($1, $2::text::pg_lsn, $3, 'proto_version', '1', 'publication_names', $4)",
        )
        .bind(&self.slot)
        .bind(lsn_text(bound as u64))
        .bind(max as i32)
        .bind(quote(&self.slot))
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;

        let mut batch = CapturedBatch::default();
        let mut layouts: HashMap<u32, Option<Layout>> = HashMap::new();
        let mut time = Utc::now();
        let (mut last_lsn, mut seq) = (0u64, 0u32);
        for row in &rows {
            let lsn: i64 = row.try_get("lsn").map_err(|e| self.err(e))?;
            let lsn = lsn as u64;
            let data: Vec<u8> = row.try_get("data").map_err(|e| self.err(e))?;
            let m = decode(&data).map_err(|m| self.bad(m))?;
            match &m {
                Message::Begin { commit_time_micros } => {
                    time = DateTime::from_timestamp_micros(*commit_time_micros).unwrap_or(time);
                }
                Message::Commit { end_lsn } => batch.position = Some(*end_lsn),
                Message::Relation(r) => {
                    let ours = r.name == self.entity.table;
                    layouts.insert(r.id, if ours { Some(self.layout(r)?) } else { None });
                }
                Message::Insert { rel, .. }
                | Message::Update { rel, .. }
                | Message::Delete { rel, .. } => {
                    let Some(Some(l)) = layouts.get(rel) else {
                        continue;
                    };
                    for mut e in self.events_of(&m, l, lsn)? {
                        if lsn != last_lsn {
                            (last_lsn, seq) = (lsn, 0);
                        }
                        e.id = format!("pg:{}:{}:{seq}", self.slot, lsn_text(lsn));
                        e.time = time;
                        seq += 1;
                        batch.events.push(e);
                    }
                }
                Message::Other(_) => {}
            }
        }
        if rows.len() < max {
            // Decoding went past `bound`: nothing committed before it is
            // left, so the slot may move there even when no transaction
            // touched the table (else it would keep log for nothing).
            batch.position = batch.position.max(Some(bound as u64));
        }
        Ok(batch)
    }

    async fn commit(&self, position: u64) -> Result<()> {
        if self.committed.load(Ordering::Relaxed) >= position {
            return Ok(());
        }
        sqlx::query(
            "SELECT pg_replication_slot_advance($1, $2::text::pg_lsn) FROM pg_replication_slots WHERE slot_name = $1 AND confirmed_flush_lsn < $2::text::pg_lsn",
        )
        .bind(&self.slot)
        .bind(lsn_text(position))
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        self.committed.fetch_max(position, Ordering::Relaxed);
        Ok(())
    }

    async fn retention(&self) -> Result<Retention> {
        let row = sqlx::query(
            "SELECT COALESCE(wal_status, 'unknown') AS status, \
             COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::int8 AS retained, \
             COALESCE(confirmed_flush_lsn - '0/0'::pg_lsn, 0)::int8 AS position \
             FROM pg_replication_slots WHERE slot_name = $1",
        )
        .bind(&self.slot)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?
        .ok_or_else(|| {
            self.bad(format!(
                "replication slot `{}` does not exist (dropped by hand?); the capture creates it again when it starts, and changes made meanwhile were not captured",
                self.slot
            ))
        })?;
        Ok(Retention {
            status: row.try_get("status").map_err(|e| self.err(e))?,
            retained_bytes: row
                .try_get::<i64, _>("retained")
                .map_err(|e| self.err(e))?
                .max(0) as u64,
            position: row.try_get::<i64, _>("position").map_err(|e| self.err(e))? as u64,
        })
    }

    async fn head(&self) -> Result<u64> {
        let lsn: i64 =
            sqlx::query_scalar("SELECT (pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::int8")
                .fetch_one(&self.pool)
                .await
                .map_err(|e| self.err(e))?;
        Ok(lsn as u64)
    }

    async fn published_through(&self, head: u64) -> Result<bool> {
        // A read that reaches the log's end moves the slot at least to the
        // flushed position it began at, even on a quiet table: so the slot
        // passes `head` once the capture has published everything before it.
        Ok(self.retention().await?.position >= head)
    }

    async fn remove(&self) -> Result<()> {
        sqlx::query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1")
            .bind(&self.slot)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        sqlx::query(&format!("DROP PUBLICATION IF EXISTS {}", quote(&self.slot)))
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

/// 42710 duplicate object: another worker created it meanwhile.
fn is_duplicate(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("42710"))
}
