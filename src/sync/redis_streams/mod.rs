//! `redis-streams`: a [`Bus`] on Redis Streams through the `redis` crate.
//!
//! ```toml
//! [buses.events]
//! kind = "redis-streams"
//! url = "redis://127.0.0.1:6379"
//! prefix = "polyrouter:events"   # events of `order` in the stream polyrouter:events:order
//! ```
//!
//! One stream per entity; publishing runs one Lua script per batch that
//! appends each event unless its id was seen within the de-duplication
//! window. A consumer group is a Redis consumer group on each stream it
//! reads (created at `0` with `MKSTREAM`); stuck deliveries are reclaimed
//! with `XAUTOCLAIM`. What it guarantees and costs is in `docs/sync.md`
//! ("Buses").

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script};

use super::{Bus, ChangeEvent, StartAt, SubscribeOptions, Subscription};
use crate::config::{BusSpec, redact_bus_url};
use crate::{Error, Result};

mod config;
mod subscription;
#[cfg(test)]
mod tests;

pub use config::RedisStreamsConfig;
use config::is_name;

const PUBLISH_LUA: &str = include_str!("publish.lua");
const BACKLOG_LUA: &str = include_str!("backlog.lua");
pub(crate) const REAP_LUA: &str = include_str!("reap.lua");

/// Events per publish script call: bounds how long Redis is busy with one.
const CHUNK_EVENTS: usize = 1000;

/// Payload bytes per publish script call (a larger single event is sent
/// alone).
const CHUNK_BYTES: usize = 8 * 1024 * 1024;

/// The largest event Redis takes as one argument (its default
/// `proto-max-bulk-len`).
const MAX_EVENT_BYTES: usize = 512 * 1024 * 1024;

pub(crate) fn open(spec: BusSpec) -> BoxFuture<'static, Result<Arc<dyn Bus>>> {
    Box::pin(async move {
        let cfg: RedisStreamsConfig = spec.parse()?;
        let located = |key: &str, msg: String| spec.error(&[key], msg);
        let bus = RedisStreamsBus::open_inner(&spec.name, cfg, &located)?;
        Ok(Arc::new(bus) as Arc<dyn Bus>)
    })
}

/// An event bus on Redis Streams.
///
/// Usually built by the router from `[buses.NAME] kind = "redis-streams"`;
/// it can also be opened directly. Opening does not wait for the server:
/// the connection is made on first use and remade after a loss, and a
/// call made while Redis does not answer fails with
/// [`Error::Unavailable`].
///
/// ```no_run
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use polyrouter::sync::redis_streams::{RedisStreamsBus, RedisStreamsConfig};
/// use polyrouter::sync::{Bus, ChangeEvent, Operation, SubscribeOptions};
/// use std::time::Duration;
///
/// let bus = RedisStreamsBus::open("events", RedisStreamsConfig::new("redis://127.0.0.1:6379"))?;
/// let e = ChangeEvent::new("main", "order", polyrouter::Key::from("o-1"), Operation::Put, 1);
/// bus.publish(&[e]).await?;                     // XADD polyrouter:events:order, once per id
/// let mut sub = bus.subscribe("order-view", &["order".into()], &SubscribeOptions::default()).await?;
/// for d in sub.fetch(100, Duration::from_secs(1)).await? {
///     sub.ack(&[d.tag]).await?;                // XACK
/// }
/// # Ok::<(), polyrouter::Error>(())
/// # }).unwrap();
/// ```
pub struct RedisStreamsBus {
    name: String,
    location: String,
    config: RedisStreamsConfig,
    client: redis::Client,
    conn: ConnectionManager,
    publish_script: Script,
    backlog_script: Script,
    reap_script: Script,
}

impl fmt::Debug for RedisStreamsBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStreamsBus")
            .field("name", &self.name)
            .field("location", &self.location)
            .field("prefix", &self.config.prefix)
            .finish_non_exhaustive()
    }
}

/// Maps a driver error: lost connection, timeout, server loading → the
/// transient [`Error::Unavailable`]; anything else → [`Error::Backend`].
/// Redis' messages never hold the values sent, and the driver's never the
/// password.
pub(crate) fn map_err(bus: &str, location: &str, e: RedisError) -> Error {
    if crate::backends::redis::is_transient(&e) {
        let what = if e.is_timeout() {
            "timed out waiting for Redis"
        } else {
            "lost the connection to Redis"
        };
        Error::Unavailable {
            store: bus.into(),
            entity: String::new(),
            message: format!(
                "{what} at {location}: {e}; the connection is re-established on the next call"
            ),
            source: Some(Box::new(e)),
        }
    } else {
        Error::backend(bus, "", e)
    }
}

/// A lazily connecting, reconnecting connection.
pub(crate) fn connection(
    client: &redis::Client,
    config: &RedisStreamsConfig,
    extra_response_time: Duration,
) -> std::result::Result<ConnectionManager, RedisError> {
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.connect_timeout.0))
        .set_response_timeout(Some(config.response_timeout.0 + extra_response_time))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(1));
    ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
}

impl RedisStreamsBus {
    /// Checks the options; connects on first use.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use polyrouter::sync::Bus;
    /// use polyrouter::sync::redis_streams::{RedisStreamsBus, RedisStreamsConfig};
    /// let bus = RedisStreamsBus::open("events", RedisStreamsConfig::new("redis://:pw@127.0.0.1:6379"))?;
    /// assert_eq!(bus.location(), "redis://:***@127.0.0.1:6379 prefix polyrouter:events");
    /// # Ok::<(), polyrouter::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn open(name: &str, config: RedisStreamsConfig) -> Result<RedisStreamsBus> {
        let located =
            |key: &str, msg: String| Error::config("<code>", &format!("buses.{name}.{key}"), msg);
        Self::open_inner(name, config, &located)
    }

    fn open_inner(
        name: &str,
        config: RedisStreamsConfig,
        config_error: &dyn Fn(&str, String) -> Error,
    ) -> Result<RedisStreamsBus> {
        if let Err((key, msg)) = config.validate() {
            return Err(config_error(key, msg));
        }
        let location = format!("{} prefix {}", redact_bus_url(&config.url), config.prefix);
        // The driver's parse errors may quote the URL: never shown.
        let client = redis::Client::open(config.url.as_str()).map_err(|_| {
            config_error(
                "url",
                format!(
                    "{:?} is not a valid Redis URL; write `redis://[user:password@]host[:port][/db]`",
                    redact_bus_url(&config.url)
                ),
            )
        })?;
        let conn = connection(&client, &config, Duration::ZERO)
            .map_err(|e| map_err(name, &location, e))?;
        Ok(RedisStreamsBus {
            name: name.into(),
            location,
            config,
            client,
            conn,
            publish_script: Script::new(PUBLISH_LUA),
            backlog_script: Script::new(BACKLOG_LUA),
            reap_script: Script::new(REAP_LUA),
        })
    }

    /// Deletes every key of this bus (its streams with their consumer
    /// groups, de-duplication and delay keys): for tests and teardown.
    ///
    /// ```no_run
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use polyrouter::sync::redis_streams::{RedisStreamsBus, RedisStreamsConfig};
    /// let bus = RedisStreamsBus::open("events", RedisStreamsConfig::new("redis://127.0.0.1:6379").with_prefix("test:ev"))?;
    /// bus.delete_all().await?;
    /// # Ok::<(), polyrouter::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn delete_all(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        let pattern = format!("{}:*", self.config.prefix);
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(|e| self.err(e))?;
            if !keys.is_empty() {
                redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(|e| self.err(e))?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    fn err(&self, e: RedisError) -> Error {
        map_err(&self.name, &self.location, e)
    }

    /// The stream of an entity's events, after checking the name.
    fn stream_key(&self, entity: &str) -> Result<String> {
        stream_key(&self.name, &self.config.prefix, entity)
    }
}

/// The hash of ephemeral groups and the entities they read. Entity names
/// hold no `:`, so no stream key `{prefix}:{entity}` can be this.
pub(crate) fn registry_key(prefix: &str) -> String {
    format!("{prefix}::ephemeral")
}

/// An ephemeral group's liveness key, refreshed by its member's fetches.
pub(crate) fn alive_key(prefix: &str, group: &str) -> String {
    format!("{prefix}::alive:{group}")
}

/// Removes the ephemeral groups whose member stopped fetching, and
/// `now` (a member's close) when given.
pub(crate) async fn reap(
    script: &Script,
    conn: &mut ConnectionManager,
    prefix: &str,
    now: Option<&str>,
) -> std::result::Result<u64, RedisError> {
    script
        .key(registry_key(prefix))
        .arg(prefix)
        .arg(now.unwrap_or(""))
        .invoke_async(conn)
        .await
}

/// `{prefix}:{entity}`, after checking the entity name.
pub(crate) fn stream_key(bus: &str, prefix: &str, entity: &str) -> Result<String> {
    if !is_name(entity) {
        return Err(Error::invalid_input(
            bus,
            entity,
            format!(
                "entity name {entity:?} cannot name a stream on bus `{bus}`: use ASCII letters, digits, `_` and `-`"
            ),
        ));
    }
    Ok(format!("{prefix}:{entity}"))
}

#[async_trait]
impl Bus for RedisStreamsBus {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "redis-streams"
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    async fn publish(&self, events: &[ChangeEvent]) -> Result<()> {
        // Everything checked and encoded before anything is sent.
        let mut encoded = Vec::with_capacity(events.len());
        for e in events {
            let stream = self.stream_key(&e.entity)?;
            let payload = e.to_json();
            if payload.len() > MAX_EVENT_BYTES {
                return Err(Error::invalid_input(
                    &self.name,
                    &e.entity,
                    format!(
                        "event {} of key {} is {} bytes; Redis takes at most {MAX_EVENT_BYTES}",
                        e.id,
                        e.key,
                        payload.len()
                    ),
                ));
            }
            let dedup = format!("{stream}:dedup:{}", e.id);
            encoded.push((stream, dedup, payload));
        }
        let window_ms = self.config.duplicate_window.0.as_millis().max(1);
        let max_len = self.config.max_len.unwrap_or(0);
        let mut conn = self.conn.clone();
        let mut rest = &encoded[..];
        while !rest.is_empty() {
            // One script call per chunk, in order: the streams get the
            // events in the order given.
            let mut bytes = 0;
            let mut n = 0;
            while n < rest.len()
                && n < CHUNK_EVENTS
                && (n == 0 || bytes + rest[n].2.len() <= CHUNK_BYTES)
            {
                bytes += rest[n].2.len();
                n += 1;
            }
            let (chunk, tail) = rest.split_at(n);
            let mut call = self.publish_script.prepare_invoke();
            for (stream, dedup, _) in chunk {
                call.key(stream).key(dedup);
            }
            call.arg(window_ms as u64).arg(max_len);
            for (_, _, payload) in chunk {
                call.arg(payload.as_slice());
            }
            call.invoke_async::<u64>(&mut conn)
                .await
                .map_err(|e| self.err(e))?;
            rest = tail;
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        group: &str,
        entities: &[String],
        options: &SubscribeOptions,
    ) -> Result<Box<dyn Subscription>> {
        if entities.is_empty() {
            return Err(Error::invalid_input(
                &self.name,
                "",
                format!("consumer group `{group}` names no entity to read"),
            ));
        }
        for (what, name) in [("consumer group", group), ("consumer", &options.consumer)] {
            if !is_name(name) {
                return Err(Error::invalid_input(
                    &self.name,
                    "",
                    format!(
                        "{what} name {name:?} is not usable: use ASCII letters, digits, `_` and `-`"
                    ),
                ));
            }
        }
        let streams = entities
            .iter()
            .map(|e| self.stream_key(e))
            .collect::<Result<Vec<_>>>()?;
        let mut conn = self.conn.clone();
        // Ephemeral groups whose member died go first.
        reap(&self.reap_script, &mut conn, &self.config.prefix, None)
            .await
            .map_err(|e| self.err(e))?;
        let start = match options.start {
            StartAt::Oldest => "0",
            StartAt::New => "$",
        };
        for stream in &streams {
            let created: std::result::Result<(), RedisError> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(stream)
                .arg(group)
                .arg(start)
                .arg("MKSTREAM")
                .query_async(&mut conn)
                .await;
            match created {
                Ok(()) => {}
                // An existing group resumes where it is.
                Err(e) if e.code() == Some("BUSYGROUP") => {}
                Err(e) => return Err(self.err(e)),
            }
        }
        if options.ephemeral {
            let idle_ms = self.config.ephemeral_idle.0.as_millis().max(1) as u64;
            redis::pipe()
                .hset(registry_key(&self.config.prefix), group, entities.join(","))
                .ignore()
                .set_options(
                    alive_key(&self.config.prefix, group),
                    1,
                    redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(idle_ms)),
                )
                .ignore()
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| self.err(e))?;
        }
        let sub = subscription::RedisSubscription::new(self, group, entities, streams, options)
            .map_err(|e| self.err(e))?;
        Ok(Box::new(sub))
    }

    async fn backlog(&self, group: &str, entities: &[String]) -> Result<Option<u64>> {
        let mut conn = self.conn.clone();
        let mut total = 0;
        for entity in entities {
            let stream = self.stream_key(entity)?;
            let n: u64 = self
                .backlog_script
                .key(&stream)
                .arg(group)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| self.err(e))?;
            total += n;
        }
        Ok(Some(total))
    }

    async fn ping(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| self.err(e))
    }
}
