//! MySQL / MariaDB change capture: the row-based binary log of the entity's
//! table, read over the replication protocol (`COM_BINLOG_DUMP` with
//! `BINLOG_DUMP_NON_BLOCK`, through `mysql_async`) from a position
//! polyrouter keeps itself: the server keeps no consumer position, so it
//! is a row of the table `polyrouter_capture` (slot, file, pos, position)
//! in the store's database, moved by [`ChangeSource::commit`] only after
//! the events are on the bus.
//!
//! Positions are `u64`s: the binlog file's sequence number in the high 32
//! bits, the offset in the file in the low 32 ([`mysql_rows::encode`]).
//! Versions and ids come from the position of the row change: a rows
//! event starting at offset `p` carries its `n`-th change at version
//! `encode(file, p + n)` (a rows event is longer than its number of
//! changes, so these never reach the next event) and id
//! `mysql:{slot}:{file}:{p}:{n}` — the same on every re-read. The binlog
//! is written in commit order, and a second writer of a key waits for the
//! first one's row lock until it commits, so versions grow per key
//! whatever a plain-SQL writer does with polyrouter's `_pr_version`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use mysql_async::binlog::events::{EventData, TableMapEvent};
use mysql_async::binlog::row::BinlogRow;
use mysql_async::{BinlogStreamRequest, Conn, Opts};
use parking_lot::Mutex;
use sqlx::Row;
use sqlx::mysql::MySqlPool;

use super::mysql_rows::{self as rows, Layout};
use super::{CapturedBatch, ChangeSource, Retention};
use crate::store::EntityInfo;
use crate::sync::{ChangeEvent, Operation};
use crate::{Error, Record, Result};

/// Maps a driver error to the crate's (the mysql backend's mapping).
pub(crate) type MapErr = fn(&str, &str, sqlx::Error) -> Error;

/// The table holding each slot's durable position, in the store's database.
pub(crate) const POSITION_TABLE: &str = "polyrouter_capture";

/// A quiet table's position is written back once the log it skips passes
/// this many bytes (or another file): writing it after every round would
/// itself log a transaction for the next round to skip, for ever.
const QUIET_SKIP: u64 = 1 << 20;

/// How long closing a dump connection may take.
const CLOSE_WITHIN: Duration = Duration::from_secs(2);

/// One entity's table read from the row-based binlog.
pub(crate) struct MySqlChangeSource {
    store: String,
    pool: MySqlPool,
    /// The binlog connection's options (the store's URL, no pool).
    opts: Opts,
    entity: EntityInfo,
    slot: String,
    map_err: MapErr,
    /// The replica server id the dump registers as (from the slot name:
    /// two dumps with one id would end each other).
    server_id: u32,
    /// The durable position as last read or written by this process.
    committed: AtomicU64,
    /// The end of the last transaction with events of the table any read
    /// of this process saw: a commit past the durable position that skips
    /// none of them may stay unwritten (a quiet table).
    events_upto: AtomicU64,
    /// The binlog file name seen last (its base name names the others).
    file_like: Mutex<Option<String>>,
}

/// Without the connection options: mysql_async's `Opts` prints the
/// password in its `Debug`.
impl std::fmt::Debug for MySqlChangeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlChangeSource")
            .field("store", &self.store)
            .field("host", &self.opts.ip_or_hostname())
            .field("port", &self.opts.tcp_port())
            .field("table", &self.entity.table)
            .field("slot", &self.slot)
            .field("server_id", &self.server_id)
            .field("committed", &self.committed)
            .finish_non_exhaustive()
    }
}

/// A transaction being read.
#[derive(Default)]
struct Pending {
    events: Vec<ChangeEvent>,
}

/// The (file, position) of a binlog file list or status row.
struct LogFile {
    name: String,
    size: u64,
}

impl MySqlChangeSource {
    pub(crate) fn new(
        store: &str,
        pool: MySqlPool,
        opts: Opts,
        entity: EntityInfo,
        slot: &str,
        map_err: MapErr,
    ) -> Self {
        // FNV-1a of the slot, in 2^30..2^31: clear of the small ids
        // servers are usually given.
        let hash = slot.bytes().fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        MySqlChangeSource {
            store: store.into(),
            pool,
            opts,
            entity,
            slot: slot.into(),
            map_err,
            server_id: (1 << 30) | (hash & 0x3fff_ffff),
            committed: AtomicU64::new(0),
            events_upto: AtomicU64::new(0),
            file_like: Mutex::new(None),
        }
    }

    fn err(&self, e: sqlx::Error) -> Error {
        (self.map_err)(&self.store, self.entity.name(), e)
    }

    fn bad(&self, message: impl std::fmt::Display) -> Error {
        Error::backend(
            &self.store,
            self.entity.name(),
            format!("change capture of slot `{}`: {message}", self.slot),
        )
    }

    fn unsupported(&self, why: impl std::fmt::Display) -> Error {
        Error::unsupported(
            &self.store,
            self.entity.name(),
            format!("change capture: {why} (docs/cdc.md, MySQL / MariaDB)"),
        )
    }

    /// A binlog connection error: privileges the server refused are
    /// `Unsupported` (a setting to change), a purged file names the loss,
    /// a lost connection is transient.
    fn dump_err(&self, e: mysql_async::Error) -> Error {
        match &e {
            mysql_async::Error::Server(s) if matches!(s.code, 1227 | 1044 | 1045 | 1142) => self
                .unsupported(format!(
                    "the server refused the binlog dump ({}); grant the capture's user `REPLICATION SLAVE` and `REPLICATION CLIENT` (MariaDB 10.5+: `BINLOG MONITOR`)",
                    s.message
                )),
            mysql_async::Error::Server(s) if s.code == 1236 => self.bad(format!(
                "the server cannot send the binlog from the slot's position ({}): the file was purged (`binlog_expire_logs_seconds`, `PURGE BINARY LOGS`) before the capture read it, so the changes in between are lost; delete the slot's row from `{POSITION_TABLE}`, let the worker start again at the end, and backfill",
                s.message
            )),
            mysql_async::Error::Server(s) => {
                self.bad(format!("binlog dump: {} ({})", s.message, s.code))
            }
            _ => Error::unavailable(
                &self.store,
                self.entity.name(),
                format!("binlog connection for change capture: {e}"),
            ),
        }
    }

    async fn variable(&self, name: &str) -> Result<Option<String>> {
        let row = sqlx::query(&format!("SHOW GLOBAL VARIABLES LIKE '{name}'"))
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        row.map(|r| text_col(&r, 1).map_err(|e| self.err(e)))
            .transpose()
    }

    /// The server's current binlog file and position (the end of the log).
    async fn end(&self) -> Result<LogFile> {
        let mut row = sqlx::query("SHOW MASTER STATUS")
            .fetch_optional(&self.pool)
            .await;
        if let Err(sqlx::Error::Database(d)) = &row {
            // MySQL 8.4 renamed it.
            if d.message().contains("syntax") {
                row = sqlx::query("SHOW BINARY LOG STATUS")
                    .fetch_optional(&self.pool)
                    .await;
            }
        }
        let row = row.map_err(|e| self.privilege_or(e))?.ok_or_else(|| {
            self.unsupported("the server writes no binary log (`SHOW MASTER STATUS` is empty); start it with `log_bin` (`--log-bin`)")
        })?;
        Ok(LogFile {
            name: text_col(&row, 0).map_err(|e| self.err(e))?,
            size: u64_col(&row, 1).map_err(|e| self.err(e))?,
        })
    }

    /// The binlog files the server keeps, oldest first.
    async fn files(&self) -> Result<Vec<LogFile>> {
        let rows = sqlx::query("SHOW BINARY LOGS")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.privilege_or(e))?;
        rows.iter()
            .map(|r| {
                Ok(LogFile {
                    name: text_col(r, 0).map_err(|e| self.err(e))?,
                    size: u64_col(r, 1).map_err(|e| self.err(e))?,
                })
            })
            .collect()
    }

    fn privilege_or(&self, e: sqlx::Error) -> Error {
        if let sqlx::Error::Database(d) = &e {
            if d.message().contains("privilege") || d.message().contains("denied") {
                return self.unsupported(format!(
                    "reading the binlog's status was refused ({}); grant the capture's user `REPLICATION CLIENT` (MariaDB 10.5+: `BINLOG MONITOR`) and `REPLICATION SLAVE`",
                    d.message()
                ));
            }
        }
        self.err(e)
    }

    /// The slot's durable position: (file, offset).
    async fn durable(&self) -> Result<(String, u32)> {
        let row = sqlx::query(&format!(
            "SELECT file, pos FROM {POSITION_TABLE} WHERE slot = ?"
        ))
        .bind(&self.slot)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?
        .ok_or_else(|| {
            self.bad(format!(
                "the slot has no row in `{POSITION_TABLE}` (deleted by hand?); the capture creates it again at the log's end when it starts, and changes made meanwhile were not captured"
            ))
        })?;
        let file = text_col(&row, 0).map_err(|e| self.err(e))?;
        let pos = u64_col(&row, 1).map_err(|e| self.err(e))?;
        let seq = rows::file_seq(&file).map_err(|m| self.bad(m))?;
        self.committed
            .fetch_max(rows::encode(seq, pos as u32), Ordering::Relaxed);
        *self.file_like.lock() = Some(file.clone());
        Ok((file, pos as u32))
    }

    /// The table's column names in table order (when the binlog does not
    /// carry them: `binlog_row_metadata` is not `FULL`).
    async fn column_names(&self, database: &str, table: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT CAST(COLUMN_NAME AS CHAR(64)) FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        )
        .bind(database)
        .bind(table)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        rows.iter()
            .map(|r| text_col(r, 0).map_err(|e| self.err(e)))
            .collect()
    }

    async fn database(&self) -> Result<String> {
        let db: Option<String> = sqlx::query_scalar("SELECT CAST(DATABASE() AS CHAR(64))")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        db.ok_or_else(|| {
            self.bad(
                "the store's connection has no default database; name one in the URL or `database`",
            )
        })
    }

    /// Opens a non-blocking dump from `(file, pos)`.
    async fn dump(
        &self,
        file: &str,
        pos: u32,
        server_id: u32,
    ) -> Result<mysql_async::BinlogStream> {
        let conn = Conn::new(self.opts.clone())
            .await
            .map_err(|e| self.dump_err(e))?;
        conn.get_binlog_stream(
            BinlogStreamRequest::new(server_id)
                .with_filename(file.as_bytes())
                .with_pos(u64::from(pos))
                .with_non_blocking(),
        )
        .await
        .map_err(|e| self.dump_err(e))
    }

    /// The layout of a table map naming our table (`None`: another table).
    async fn layout_of(
        &self,
        tme: &TableMapEvent<'_>,
        first: Option<&BinlogRow>,
        database: &str,
    ) -> Result<Option<Layout>> {
        if tme.database_name() != database || tme.table_name() != self.entity.table {
            return Ok(None);
        }
        let count = tme.columns_count() as usize;
        // `binlog_row_metadata = FULL` logs the names; else `@0`, `@1`, …
        let logged: Option<Vec<String>> = first.and_then(|r| {
            let names: Vec<String> = r
                .columns_ref()
                .iter()
                .map(|c| c.name_str().into_owned())
                .collect();
            (names.len() == count && !names.iter().any(|n| n.starts_with('@'))).then_some(names)
        });
        let names = match logged {
            Some(n) => n,
            None => self.column_names(database, &self.entity.table).await?,
        };
        if names.len() != count {
            return Err(self.bad(format!(
                "the binlog logs {count} columns of table `{}` but the table has {} now (its columns changed since); set `binlog_row_metadata = FULL` so the log names them",
                self.entity.table,
                names.len()
            )));
        }
        Layout::of(self.entity.schema, &self.entity.table, &names)
            .map(Some)
            .map_err(|m| self.bad(m))
    }

    /// The put (or, for a row polyrouter turned into a tombstone, the
    /// delete) a row image means.
    fn image(&self, row: &BinlogRow, l: &Layout, version: u64) -> Result<ChangeEvent> {
        let schema = self.entity.schema;
        let cell = |i: usize| rows::plain(row.as_ref(i)).map_err(|m| self.bad(m));
        if row.len() != l.columns {
            return Err(self.bad(format!(
                "a row image of table `{}` has {} of its {} columns; the server must run `binlog_row_image = FULL`",
                self.entity.table,
                row.len(),
                l.columns
            )));
        }
        let key = rows::key(schema.key_kind, schema.key, &cell(l.key)?).map_err(|m| self.bad(m))?;
        if let Some(i) = l.expires {
            if let mysql_async::Value::Int(e) = cell(i)? {
                if e < 0 {
                    return Ok(ChangeEvent::new(
                        &self.store,
                        schema.name,
                        key,
                        Operation::Delete,
                        version,
                    ));
                }
            }
        }
        let mut record = Record::new(key);
        for (f, &i) in schema.fields.iter().zip(&l.fields) {
            let v = rows::value(f.ty.kind, f.name, &cell(i)?).map_err(|m| self.bad(m))?;
            record.set(f.name, v);
        }
        record.version = version;
        Ok(ChangeEvent::put_of(&self.store, schema, &record))
    }

    fn key_of(&self, row: &BinlogRow, l: &Layout) -> Result<crate::Key> {
        let schema = self.entity.schema;
        let v = rows::plain(row.as_ref(l.key)).map_err(|m| self.bad(m))?;
        rows::key(schema.key_kind, schema.key, &v).map_err(|m| self.bad(m))
    }

    /// The events of one row change: (before image, after image).
    fn events_of(
        &self,
        before: Option<&BinlogRow>,
        after: Option<&BinlogRow>,
        l: &Layout,
        version: u64,
    ) -> Result<Vec<ChangeEvent>> {
        let name = self.entity.schema.name;
        Ok(match (before, after) {
            (_, Some(new)) => {
                let put = self.image(new, l, version)?;
                match before.map(|o| self.key_of(o, l)).transpose()? {
                    Some(k) if k != put.key => vec![
                        ChangeEvent::new(&self.store, name, k, Operation::Delete, version),
                        put,
                    ],
                    _ => vec![put],
                }
            }
            (Some(old), None) => vec![ChangeEvent::new(
                &self.store,
                name,
                self.key_of(old, l)?,
                Operation::Delete,
                version,
            )],
            (None, None) => vec![],
        })
    }

    /// Reads the dump until its end, or until about `max` events of the
    /// table ended a transaction: the events of whole transactions and
    /// the position after the last one (or after what it skipped).
    async fn scan(
        &self,
        stream: &mut mysql_async::BinlogStream,
        file: &str,
        database: &str,
        max: usize,
    ) -> Result<CapturedBatch> {
        let mut batch = CapturedBatch::default();
        let mut layouts: HashMap<u64, Option<Layout>> = HashMap::new();
        let mut current = file.to_string();
        let mut seq = rows::file_seq(&current).map_err(|m| self.bad(m))?;
        let mut tx: Option<Pending> = None;
        let mut read_events = 0usize;
        let mut seen_format = false;
        while let Some(event) = stream.next().await {
            let event = event.map_err(|e| self.dump_err(e))?;
            read_events += 1;
            let header = event.header();
            let end = header.log_pos();
            let start = end.saturating_sub(header.event_size());
            let data = match event.read_data() {
                Ok(Some(d)) => d,
                // An event type this reader does not know (MariaDB's own
                // kinds are sent to it as harmless substitutes).
                Ok(None) => continue,
                Err(e) => return Err(self.bad(format!("a binlog event cannot be decoded: {e}"))),
            };
            let mut boundary = false;
            match data {
                EventData::RotateEvent(r) => {
                    // The rotate announcing the requested file comes
                    // before the file's format description, so its name
                    // may still carry the event's checksum: it names the
                    // file asked for.
                    if seen_format {
                        current = r.name().into_owned();
                    }
                    seq = rows::file_seq(&current).map_err(|m| self.bad(m))?;
                    *self.file_like.lock() = Some(current.clone());
                    if tx.is_none() {
                        batch.position = Some(rows::encode(seq, r.position() as u32));
                    }
                    continue;
                }
                EventData::QueryEvent(q) => {
                    let sql = q.query();
                    let sql = sql.trim();
                    if sql.eq_ignore_ascii_case("BEGIN") {
                        tx = Some(Pending::default());
                    } else if sql.eq_ignore_ascii_case("COMMIT") {
                        boundary = true;
                    } else if sql.eq_ignore_ascii_case("ROLLBACK") {
                        // Only non-transactional changes reach the log
                        // with a ROLLBACK; the entity's InnoDB rows did not.
                        tx = None;
                    } else if tx.is_none() {
                        // DDL and other statements outside a transaction.
                        boundary = end != 0;
                    }
                }
                EventData::XidEvent(_) => boundary = true,
                EventData::FormatDescriptionEvent(_) => {
                    seen_format = true;
                    if tx.is_none() && end != 0 {
                        batch.position = Some(rows::encode(seq, end));
                    }
                    continue;
                }
                EventData::TableMapEvent(tme) => {
                    if let std::collections::hash_map::Entry::Vacant(v) =
                        layouts.entry(tme.table_id())
                    {
                        let ours = tme.database_name() == database
                            && tme.table_name() == self.entity.table.as_str();
                        // Resolved at the first rows event (which may
                        // carry the column names).
                        if !ours {
                            v.insert(None);
                        }
                    }
                }
                EventData::RowsEvent(re) => {
                    let id = re.table_id();
                    let Some(tme) = stream.get_tme(id) else {
                        return Err(self.bad("a rows event came without its table map"));
                    };
                    let image_rows = re
                        .rows(tme)
                        .collect::<std::io::Result<Vec<_>>>()
                        .map_err(|e| self.bad(format!("a row image cannot be decoded: {e}")))?;
                    let layout = match layouts.get(&id) {
                        Some(l) => l.clone(),
                        None => {
                            let first = image_rows
                                .first()
                                .and_then(|(b, a)| a.as_ref().or(b.as_ref()));
                            let l = self.layout_of(tme, first, database).await?;
                            layouts.insert(id, l.clone());
                            l
                        }
                    };
                    let Some(layout) = &layout else {
                        continue;
                    };
                    let pending = tx.get_or_insert_with(Pending::default);
                    let mut n = 0u32;
                    for (before, after) in &image_rows {
                        let version = rows::encode(seq, start + n);
                        for mut e in
                            self.events_of(before.as_ref(), after.as_ref(), layout, version)?
                        {
                            e.id = format!("mysql:{}:{current}:{start}:{n}", self.slot);
                            e.version = rows::encode(seq, start + n);
                            n += 1;
                            pending.events.push(e);
                        }
                    }
                }
                _ => {
                    // Format description, GTID, intvar, … : a boundary
                    // only when outside a transaction and in the file.
                    boundary = tx.is_none() && end != 0;
                    if boundary {
                        batch.position = Some(rows::encode(seq, end));
                    }
                    continue;
                }
            }
            if boundary && end != 0 {
                if let Some(done) = tx.take() {
                    if !done.events.is_empty() {
                        self.events_upto
                            .fetch_max(rows::encode(seq, end), Ordering::Relaxed);
                    }
                    let time = DateTime::<Utc>::from_timestamp(i64::from(header.timestamp()), 0)
                        .unwrap_or_else(Utc::now);
                    for mut e in done.events {
                        e.time = time;
                        batch.events.push(e);
                    }
                }
                batch.position = Some(rows::encode(seq, end));
                if batch.events.len() >= max || read_events >= max.saturating_mul(64).max(4096) {
                    break;
                }
            }
        }
        Ok(batch)
    }
}

fn text_col(row: &sqlx::mysql::MySqlRow, i: usize) -> std::result::Result<String, sqlx::Error> {
    // SHOW statements answer in binary or text columns depending on the
    // server: read bytes.
    let b: Vec<u8> = row.try_get(i)?;
    String::from_utf8(b).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn u64_col(row: &sqlx::mysql::MySqlRow, i: usize) -> std::result::Result<u64, sqlx::Error> {
    row.try_get::<u64, _>(i)
        .or_else(|_| row.try_get::<i64, _>(i).map(|v| v.max(0) as u64))
}

#[async_trait]
impl ChangeSource for MySqlChangeSource {
    fn describe(&self) -> String {
        format!("binlog position `{}` in `{POSITION_TABLE}`", self.slot)
    }

    async fn prepare(&self) -> Result<()> {
        let log_bin = self.variable("log_bin").await?;
        if !matches!(log_bin.as_deref(), Some("ON" | "1")) {
            return Err(self.unsupported(format!(
                "the server runs `log_bin = {}`; capture reads the binary log: start the server with `--log-bin` (and `binlog_format = ROW`, `binlog_row_image = FULL`, `server_id`)",
                log_bin.as_deref().unwrap_or("OFF")
            )));
        }
        let format = self.variable("binlog_format").await?.unwrap_or_default();
        if !format.eq_ignore_ascii_case("ROW") {
            return Err(self.unsupported(format!(
                "the server runs `binlog_format = {format}`; capture needs row events: set `binlog_format = ROW` (my.cnf `[mysqld]`, or `SET GLOBAL binlog_format = 'ROW'` for new sessions)"
            )));
        }
        let image = self
            .variable("binlog_row_image")
            .await?
            .unwrap_or_else(|| "FULL".into());
        if !image.eq_ignore_ascii_case("FULL") {
            return Err(self.unsupported(format!(
                "the server runs `binlog_row_image = {image}`; capture needs whole rows: set `binlog_row_image = FULL`"
            )));
        }
        let end = self.end().await?;
        sqlx::query(&format!(
            "CREATE TABLE IF NOT EXISTS {POSITION_TABLE} (slot VARCHAR(190) NOT NULL PRIMARY KEY, \
             file VARCHAR(255) NOT NULL, pos BIGINT UNSIGNED NOT NULL, position BIGINT UNSIGNED NOT NULL, \
             updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)) \
             ENGINE = InnoDB"
        ))
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        let seq = rows::file_seq(&end.name).map_err(|m| self.bad(m))?;
        // A new slot starts at the log's end; an existing one stays.
        sqlx::query(&format!(
            "INSERT IGNORE INTO {POSITION_TABLE} (slot, file, pos, position) VALUES (?, ?, ?, ?)"
        ))
        .bind(&self.slot)
        .bind(&end.name)
        .bind(end.size)
        .bind(rows::encode(seq, end.size as u32))
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        // The dump itself needs `REPLICATION SLAVE`: try one from here, as
        // the probe's replica id (a worker may be reading the slot already,
        // and a second dump under its id would be refused or cut it off).
        let (file, pos) = self.durable().await?;
        let mut stream = self.dump(&file, pos, self.probe_id()).await?;
        if let Some(Err(e)) = stream.next().await {
            return Err(self.dump_err(e));
        }
        let _ = tokio::time::timeout(CLOSE_WITHIN, stream.close()).await;
        Ok(())
    }

    async fn read(&self, max: usize) -> Result<CapturedBatch> {
        self.read_as(max, self.server_id).await
    }

    async fn commit(&self, position: u64) -> Result<()> {
        self.commit_position(position).await
    }

    async fn retention(&self) -> Result<Retention> {
        self.retention_now().await
    }

    async fn head(&self) -> Result<u64> {
        let end = self.end().await?;
        let seq = rows::file_seq(&end.name).map_err(|m| self.bad(m))?;
        Ok(rows::encode(seq, end.size as u32))
    }

    async fn published_through(&self, head: u64) -> Result<bool> {
        if self.durable_position().await? >= head {
            return Ok(true);
        }
        // A quiet table's position is written only now and then: look at
        // what lies after it, under the probe's replica id (a second dump
        // with the capture's id would be refused or cut the capture's off).
        Ok(self.read_as(1, self.probe_id()).await?.events.is_empty())
    }

    async fn remove(&self) -> Result<()> {
        self.remove_position().await
    }
}

impl MySqlChangeSource {
    /// The replica id of the dumps that only look (the privilege check of
    /// `prepare`, `published_through`): not the capture's own.
    fn probe_id(&self) -> u32 {
        self.server_id ^ 1
    }

    /// The durable position, encoded.
    async fn durable_position(&self) -> Result<u64> {
        let (file, pos) = self.durable().await?;
        Ok(rows::encode(
            rows::file_seq(&file).map_err(|m| self.bad(m))?,
            pos,
        ))
    }

    /// [`ChangeSource::read`] through a dump as replica `server_id`.
    async fn read_as(&self, max: usize, server_id: u32) -> Result<CapturedBatch> {
        let max = max.max(1);
        let (file, pos) = self.durable().await?;
        // A purged file: fail loudly, never skip what it held.
        let files = self.files().await?;
        if !files.iter().any(|f| f.name == file) {
            return Err(self.bad(format!(
                "the binlog file `{file}` holding the slot's position was purged (`binlog_expire_logs_seconds` / `expire_logs_days`, or `PURGE BINARY LOGS`) before the capture read it: the changes in between are lost; delete the slot's row from `{POSITION_TABLE}`, let the worker start again at the end, and backfill"
            )));
        }
        let database = self.database().await?;
        let mut stream = self.dump(&file, pos, server_id).await?;

        let scanned = self.scan(&mut stream, &file, &database, max).await;
        let _ = tokio::time::timeout(CLOSE_WITHIN, stream.close()).await;
        let mut batch = scanned?;
        // Only whole transactions: a position never lands inside one; and
        // never behind where the read began (a file's format description,
        // resent first, lies before it).
        let from = rows::encode(rows::file_seq(&file).map_err(|m| self.bad(m))?, pos);
        batch.position = batch.position.filter(|p| *p > from);
        Ok(batch)
    }

    async fn commit_position(&self, position: u64) -> Result<()> {
        let durable = self.committed.load(Ordering::Relaxed);
        if durable >= position {
            return Ok(());
        }
        // Every read starts at the durable position, so the one that
        // returned `position` saw all of the table's events before it.
        let carried = self.events_upto.load(Ordering::Relaxed) > durable;
        let (from_seq, from_off) = rows::decode(durable);
        let (seq, off) = rows::decode(position);
        let quiet = durable != 0
            && !carried
            && seq == from_seq
            && u64::from(off.saturating_sub(from_off)) < QUIET_SKIP;
        if quiet {
            // Nothing of the table in between: re-reading it costs less
            // than logging a position write each round.
            return Ok(());
        }
        let known = self.file_like.lock().clone();
        let like = match known {
            Some(f) => f,
            None => self.durable().await?.0,
        };
        let file = rows::file_name(&like, seq);
        sqlx::query(&format!(
            "UPDATE {POSITION_TABLE} SET file = ?, pos = ?, position = ? WHERE slot = ? AND position < ?"
        ))
        .bind(&file)
        .bind(u64::from(off))
        .bind(position)
        .bind(&self.slot)
        .bind(position)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        self.committed.fetch_max(position, Ordering::Relaxed);
        Ok(())
    }

    async fn retention_now(&self) -> Result<Retention> {
        let (file, pos) = self.durable().await?;
        let position = self.committed.load(Ordering::Relaxed);
        let files = self.files().await?;
        let Some(at) = files.iter().position(|f| f.name == file) else {
            return Ok(Retention {
                retained_bytes: 0,
                status: "lost".into(),
                position,
            });
        };
        let retained = files[at].size.saturating_sub(u64::from(pos))
            + files[at + 1..].iter().map(|f| f.size).sum::<u64>();
        Ok(Retention {
            retained_bytes: retained,
            status: "reserved".into(),
            position,
        })
    }

    async fn remove_position(&self) -> Result<()> {
        let done = sqlx::query(&format!("DELETE FROM {POSITION_TABLE} WHERE slot = ?"))
            .bind(&self.slot)
            .execute(&self.pool)
            .await;
        match done {
            // 1146: no such table — nothing was prepared.
            Err(sqlx::Error::Database(d)) if d.message().contains("doesn't exist") => Ok(()),
            Err(e) => Err(self.err(e)),
            Ok(_) => {
                self.committed.store(0, Ordering::Relaxed);
                Ok(())
            }
        }
    }
}
