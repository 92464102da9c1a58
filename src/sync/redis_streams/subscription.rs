//! One member of a consumer group on a `redis-streams` bus.
//!
//! A fetch serves, in this order: deliveries due again (nacked ones whose
//! delay is over, then ones left unacknowledged past `ack_wait`, claimed
//! by `claim.lua`), entries an earlier blocking read brought beyond what
//! was asked, and new entries (`XREADGROUP ... >`). It blocks on its own
//! connection, so a waiting member never holds up the bus's other calls.

use std::collections::VecDeque;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::streams::StreamReadReply;
use redis::{RedisError, Script, Value};
use tokio::time::Instant;

use super::{REAP_LUA, RedisStreamsBus, alive_key, connection, map_err, reap};
use crate::sync::{ChangeEvent, Delivery, DeliveryTag, SubscribeOptions, Subscription};
use crate::{Error, Result};

const CLAIM_LUA: &str = include_str!("claim.lua");

/// Records a nack: the entry is due again `ARGV[2]` ms from now (server time).
const NACK_LUA: &str = "local t = redis.call('TIME') \
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) \
    return redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])";

/// The longest one blocking read waits: deliveries that fall due meanwhile
/// (another member's nack, an expired `ack_wait`) are seen at least this
/// often.
const MAX_BLOCK: Duration = Duration::from_secs(1);

pub(super) struct RedisSubscription {
    bus: String,
    location: String,
    prefix: String,
    group: String,
    /// An ephemeral group: kept alive by fetches, removed on close.
    ephemeral: bool,
    ephemeral_idle: Duration,
    /// When this member last looked for dead ephemeral groups.
    reaped: Instant,
    reap_script: Script,
    consumer: String,
    entities: Vec<String>,
    streams: Vec<String>,
    /// Per stream: nacked entry ids by due time.
    delayed: Vec<String>,
    /// Per stream: where `XAUTOCLAIM` goes on.
    cursors: Vec<String>,
    ack_wait: Duration,
    conn: ConnectionManager,
    claim_script: Script,
    nack_script: Script,
    /// Read by a blocking read beyond what the fetch asked for.
    buffer: VecDeque<Delivery>,
    /// The earliest nack delay this member set that is not over yet.
    next_due: Option<Instant>,
}

impl RedisSubscription {
    pub(super) fn new(
        bus: &RedisStreamsBus,
        group: &str,
        entities: &[String],
        streams: Vec<String>,
        options: &SubscribeOptions,
    ) -> std::result::Result<RedisSubscription, RedisError> {
        Ok(RedisSubscription {
            bus: bus.name.clone(),
            location: bus.location.clone(),
            prefix: bus.config.prefix.clone(),
            group: group.into(),
            ephemeral: options.ephemeral,
            ephemeral_idle: bus.config.ephemeral_idle.0,
            reaped: Instant::now(),
            reap_script: Script::new(REAP_LUA),
            consumer: options.consumer.clone(),
            entities: entities.to_vec(),
            delayed: streams
                .iter()
                .map(|s| format!("{s}:delayed:{group}"))
                .collect(),
            cursors: vec!["0-0".to_string(); streams.len()],
            streams,
            ack_wait: options.ack_wait,
            conn: connection(&bus.client, &bus.config, MAX_BLOCK)?,
            claim_script: Script::new(CLAIM_LUA),
            nack_script: Script::new(NACK_LUA),
            buffer: VecDeque::new(),
            next_due: None,
        })
    }

    fn err(&self, e: RedisError) -> Error {
        map_err(&self.bus, &self.location, e)
    }

    /// Keeps an ephemeral group alive, and now and then removes the
    /// ephemeral groups whose members stopped fetching.
    async fn housekeeping(&mut self) -> Result<()> {
        let mut conn = self.conn.clone();
        if self.ephemeral {
            let idle_ms = self.ephemeral_idle.as_millis().max(1) as u64;
            redis::cmd("SET")
                .arg(alive_key(&self.prefix, &self.group))
                .arg(1)
                .arg("PX")
                .arg(idle_ms)
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| self.err(e))?;
        }
        if self.reaped.elapsed() >= self.ephemeral_idle / 2 {
            self.reaped = Instant::now();
            reap(&self.reap_script, &mut conn, &self.prefix, None)
                .await
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// A delivery from a stream entry; `None` (logged, acknowledged) for an
    /// entry that is not a polyrouter event, so it never blocks the group.
    async fn delivery(
        &self,
        lane: usize,
        id: &str,
        payload: &[u8],
        attempt: u64,
    ) -> Result<Option<Delivery>> {
        match ChangeEvent::from_json(payload) {
            Ok(event) => Ok(Some(Delivery {
                event,
                attempt: u32::try_from(attempt.max(1)).unwrap_or(u32::MAX),
                tag: DeliveryTag::new(format!("{}/{id}", self.entities[lane])),
            })),
            Err(why) => {
                tracing::error!(
                    bus = %self.bus,
                    stream = %self.streams[lane],
                    entry = %id,
                    "skipping and acknowledging a stream entry that is not a polyrouter event: {why}"
                );
                let mut conn = self.conn.clone();
                redis::cmd("XACK")
                    .arg(&self.streams[lane])
                    .arg(&self.group)
                    .arg(id)
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(|e| self.err(e))?;
                Ok(None)
            }
        }
    }

    /// Deliveries due again, stream by stream, up to `max`.
    async fn claim_due(&mut self, max: usize, out: &mut Vec<Delivery>) -> Result<()> {
        if self.next_due.is_some_and(|d| d <= Instant::now()) {
            self.next_due = None;
        }
        let ack_wait_ms = self.ack_wait.as_millis().max(1) as u64;
        for lane in 0..self.streams.len() {
            if out.len() >= max {
                break;
            }
            let mut conn = self.conn.clone();
            let (cursor, claimed): (String, Vec<(String, Vec<u8>, u64)>) = self
                .claim_script
                .key(&self.streams[lane])
                .key(&self.delayed[lane])
                .arg(&self.group)
                .arg(&self.consumer)
                .arg(ack_wait_ms)
                .arg(max - out.len())
                .arg(&self.cursors[lane])
                .invoke_async(&mut conn)
                .await
                .map_err(|e| self.err(e))?;
            self.cursors[lane] = cursor;
            for (id, payload, count) in claimed {
                if let Some(d) = self.delivery(lane, &id, &payload, count).await? {
                    out.push(d);
                }
            }
        }
        Ok(())
    }

    /// New entries: without `block`, stream by stream exactly up to `max`;
    /// with it, one read over every stream (its surplus kept for later).
    async fn read_new(
        &mut self,
        max: usize,
        block: Option<Duration>,
        out: &mut Vec<Delivery>,
    ) -> Result<()> {
        let lanes: Vec<Vec<usize>> = match block {
            None => (0..self.streams.len()).map(|l| vec![l]).collect(),
            Some(_) => vec![(0..self.streams.len()).collect()],
        };
        for lane_set in lanes {
            if out.len() >= max {
                break;
            }
            let mut cmd = redis::cmd("XREADGROUP");
            cmd.arg("GROUP")
                .arg(&self.group)
                .arg(&self.consumer)
                .arg("COUNT")
                .arg(max - out.len());
            if let Some(b) = block {
                cmd.arg("BLOCK").arg(b.as_millis().max(1) as u64);
            }
            cmd.arg("STREAMS");
            for &l in &lane_set {
                cmd.arg(&self.streams[l]);
            }
            for _ in &lane_set {
                cmd.arg(">");
            }
            let mut conn = self.conn.clone();
            let reply: Option<StreamReadReply> =
                cmd.query_async(&mut conn).await.map_err(|e| self.err(e))?;
            for key in reply.map(|r| r.keys).unwrap_or_default() {
                let Some(lane) = self.streams.iter().position(|s| *s == key.key) else {
                    continue;
                };
                for entry in key.ids {
                    let payload = match entry.map.get("e") {
                        Some(Value::BulkString(b)) => b.clone(),
                        _ => Vec::new(),
                    };
                    if let Some(d) = self.delivery(lane, &entry.id, &payload, 1).await? {
                        if out.len() < max {
                            out.push(d);
                        } else {
                            self.buffer.push_back(d);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The stream and entry id a tag names, when it is one of ours.
    fn parse_tag<'t>(&self, tag: &'t DeliveryTag) -> Result<(usize, &'t str)> {
        let parsed = tag.as_str().split_once('/').and_then(|(entity, id)| {
            let lane = self.entities.iter().position(|e| e == entity)?;
            let (ms, seq) = id.split_once('-')?;
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            (digits(ms) && digits(seq)).then_some((lane, id))
        });
        parsed.ok_or_else(|| {
            Error::invalid_input(
                &self.bus,
                "",
                format!("{tag:?} is not a delivery of this subscription"),
            )
        })
    }
}

#[async_trait]
impl Subscription for RedisSubscription {
    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let max = max.max(1);
        let until = Instant::now() + wait;
        let mut out = Vec::new();
        self.housekeeping().await?;
        loop {
            self.claim_due(max, &mut out).await?;
            while out.len() < max {
                let Some(d) = self.buffer.pop_front() else {
                    break;
                };
                out.push(d);
            }
            if out.len() < max {
                self.read_new(max, None, &mut out).await?;
            }
            let now = Instant::now();
            if !out.is_empty() || now >= until {
                return Ok(out);
            }
            let mut block = (until - now).min(MAX_BLOCK).min(self.ack_wait);
            if let Some(due) = self.next_due {
                block = block.min(due.saturating_duration_since(now));
            }
            if !block.is_zero() {
                self.read_new(max, Some(block), &mut out).await?;
            }
            if !out.is_empty() {
                return Ok(out);
            }
        }
    }

    async fn ack(&mut self, tags: &[DeliveryTag]) -> Result<()> {
        if tags.is_empty() {
            return Ok(());
        }
        let mut by_lane: Vec<Vec<&str>> = vec![Vec::new(); self.streams.len()];
        for t in tags {
            let (lane, id) = self.parse_tag(t)?;
            by_lane[lane].push(id);
        }
        let mut pipe = redis::pipe();
        for (lane, ids) in by_lane.iter().enumerate() {
            if ids.is_empty() {
                continue;
            }
            pipe.cmd("XACK")
                .arg(&self.streams[lane])
                .arg(&self.group)
                .arg(ids)
                .ignore();
            pipe.cmd("ZREM").arg(&self.delayed[lane]).arg(ids).ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.err(e))
    }

    async fn nack(&mut self, tag: &DeliveryTag, delay: Duration) -> Result<()> {
        let (lane, id) = self.parse_tag(tag)?;
        let mut conn = self.conn.clone();
        self.nack_script
            .key(&self.delayed[lane])
            .arg(id)
            .arg(delay.as_millis() as u64)
            .invoke_async::<()>(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        let due = Instant::now() + delay;
        self.next_due = Some(self.next_due.map_or(due, |d| d.min(due)));
        Ok(())
    }

    async fn close(self: Box<Self>) -> Result<()> {
        if !self.ephemeral {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        reap(
            &self.reap_script,
            &mut conn,
            &self.prefix,
            Some(&self.group),
        )
        .await
        .map(|_| ())
        .map_err(|e| self.err(e))
    }
}
