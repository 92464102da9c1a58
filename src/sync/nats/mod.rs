//! `nats`: a [`Bus`] on NATS JetStream through `async-nats`.
//!
//! ```toml
//! [buses.events]
//! kind = "nats"
//! url = "nats://127.0.0.1:4222"
//! stream = "POLYROUTER"          # created when missing
//! subject_prefix = "polyrouter"  # events of `order` on `polyrouter.order`
//! ```
//!
//! One stream holds `{subject_prefix}.>`; an event is published on
//! `{subject_prefix}.{entity}` with its id as `Nats-Msg-Id`, so the stream's
//! duplicate window drops a republished event. A consumer group is one
//! durable pull consumer per entity it reads, named `{group}_{entity}`,
//! filtered on that entity's subject, with explicit acks. What it
//! guarantees and costs is in `docs/sync.md` ("Buses").

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream::context::{ConsumerInfoErrorKind, GetStreamErrorKind, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, ErrorCode, stream};
use async_nats::{ConnectOptions, Event, ServerAddr};
use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{Bus, ChangeEvent, SubscribeOptions, Subscription};
use crate::config::{BusSpec, redact_bus_url};
use crate::{Error, Result};

mod config;
mod subscription;

pub use config::NatsConfig;
use config::is_token;

/// Publish acknowledgements awaited at once: the rest of a batch waits.
const PUBLISH_WINDOW: usize = 512;

pub(crate) fn open(spec: BusSpec) -> BoxFuture<'static, Result<Arc<dyn Bus>>> {
    Box::pin(async move {
        let cfg: NatsConfig = spec.parse()?;
        if let Err((key, msg)) = cfg.validate() {
            return Err(spec.error(&[key], msg));
        }
        let bus = NatsBus::open_checked(&spec.name, cfg).await?;
        Ok(Arc::new(bus) as Arc<dyn Bus>)
    })
}

/// An event bus on a NATS JetStream stream.
///
/// Usually built by the router from `[buses.NAME] kind = "nats"`; it can
/// also be opened directly. Opening does not wait for the server: the
/// client connects (and reconnects) in the background, and a call made
/// while no server answers fails with [`Error::Unavailable`] after
/// `connect_timeout`.
///
/// ```no_run
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use polyrouter::sync::nats::{NatsBus, NatsConfig};
/// use polyrouter::sync::{Bus, ChangeEvent, Operation, SubscribeOptions};
/// use std::time::Duration;
///
/// let bus = NatsBus::open("events", NatsConfig::new("nats://127.0.0.1:4222")).await?;
/// let e = ChangeEvent::new("main", "order", polyrouter::Key::from("o-1"), Operation::Put, 1);
/// bus.publish(&[e]).await?;                     // awaits JetStream's PubAck
/// let mut sub = bus.subscribe("order-view", &["order".into()], &SubscribeOptions::default()).await?;
/// for d in sub.fetch(100, Duration::from_secs(1)).await? {
///     sub.ack(&[d.tag]).await?;
/// }
/// # Ok::<(), polyrouter::Error>(())
/// # }).unwrap();
/// ```
pub struct NatsBus {
    name: String,
    location: String,
    config: NatsConfig,
    client: async_nats::Client,
    js: jetstream::Context,
    /// Woken on every (re)connection.
    connected: Arc<Notify>,
    /// The stream was found or created with this configuration.
    stream_ready: AtomicBool,
    creating: tokio::sync::Mutex<()>,
}

impl fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsBus")
            .field("name", &self.name)
            .field("location", &self.location)
            .field("stream", &self.config.stream)
            .field("subject_prefix", &self.config.subject_prefix)
            .finish_non_exhaustive()
    }
}

/// The server addresses of a validated `url`.
fn server_addrs(url: &str) -> Vec<ServerAddr> {
    url.split(',')
        .filter_map(|one| one.trim().parse().ok())
        .collect()
}

impl NatsBus {
    /// Checks the options and starts connecting; the stream is created (or
    /// brought to the configured limits) on first use.
    ///
    /// ```no_run
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use polyrouter::sync::Bus;
    /// use polyrouter::sync::nats::{NatsBus, NatsConfig};
    /// let bus = NatsBus::open("events", NatsConfig::new("nats://app:pw@127.0.0.1:4222")).await?;
    /// assert_eq!(bus.location(), "nats://app:***@127.0.0.1:4222 stream POLYROUTER");
    /// # Ok::<(), polyrouter::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn open(name: &str, config: NatsConfig) -> Result<NatsBus> {
        if let Err((key, msg)) = config.validate() {
            return Err(Error::config("<code>", &format!("buses.{name}.{key}"), msg));
        }
        Self::open_checked(name, config).await
    }

    async fn open_checked(name: &str, config: NatsConfig) -> Result<NatsBus> {
        let location = format!("{} stream {}", redact_bus_url(&config.url), config.stream);
        let connected = Arc::new(Notify::new());
        let wake = connected.clone();
        let client = ConnectOptions::new()
            .name(format!("polyrouter bus {name}"))
            .connection_timeout(config.connect_timeout.0)
            .request_timeout(Some(config.request_timeout.0))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .event_callback(move |event| {
                let wake = wake.clone();
                async move {
                    if matches!(event, Event::Connected) {
                        wake.notify_waiters();
                    }
                }
            })
            .connect(server_addrs(&config.url))
            .await
            .map_err(|e| {
                Error::unavailable(
                    name,
                    "",
                    format!("cannot start a NATS client for {location}: {e}"),
                )
            })?;
        let js = jetstream::ContextBuilder::new()
            .timeout(config.request_timeout.0)
            .build(client.clone());
        Ok(NatsBus {
            name: name.into(),
            location,
            config,
            client,
            js,
            connected,
            stream_ready: AtomicBool::new(false),
            creating: tokio::sync::Mutex::new(()),
        })
    }

    /// Deletes the stream with every event and consumer group in it (for
    /// tests and teardown); the next call creates it again, empty.
    ///
    /// ```no_run
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use polyrouter::sync::nats::{NatsBus, NatsConfig};
    /// let bus = NatsBus::open("events", NatsConfig::new("nats://127.0.0.1:4222")).await?;
    /// bus.delete_stream().await?;
    /// # Ok::<(), polyrouter::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn delete_stream(&self) -> Result<()> {
        self.wait_connected().await?;
        self.stream_ready.store(false, Ordering::SeqCst);
        match self.js.delete_stream(&self.config.stream).await {
            Ok(_) => Ok(()),
            Err(e) if is_code(&e.kind(), ErrorCode::STREAM_NOT_FOUND) => Ok(()),
            Err(e) => Err(self.driver_error("deleting the stream", e)),
        }
    }

    /// The subject of an entity's events, after checking the name.
    fn subject(&self, entity: &str) -> Result<String> {
        if !is_token(entity) {
            return Err(Error::invalid_input(
                &self.name,
                entity,
                format!(
                    "entity name {entity:?} cannot be a NATS subject token on bus `{}`: use ASCII letters, digits, `_` and `-`",
                    self.name
                ),
            ));
        }
        Ok(format!("{}.{entity}", self.config.subject_prefix))
    }

    fn unavailable(&self, what: impl fmt::Display) -> Error {
        Error::unavailable(&self.name, "", format!("{what} at {}", self.location))
    }

    /// A driver error: a lost connection or a timeout is
    /// [`Error::Unavailable`], anything else [`Error::Backend`].
    fn driver_error(&self, doing: &str, e: impl fmt::Display) -> Error {
        let text = e.to_string();
        let lower = text.to_ascii_lowercase();
        // async-nats's error kinds differ per call; their texts agree.
        let transient = ["timed out", "no responders", "broken pipe"]
            .iter()
            .any(|w| lower.contains(w));
        if transient || self.client.connection_state() != async_nats::connection::State::Connected {
            self.unavailable(format!("NATS did not answer {doing} ({text})"))
        } else {
            Error::backend(
                &self.name,
                "",
                std::io::Error::other(format!("NATS refused {doing} at {}: {text}", self.location)),
            )
        }
    }

    /// Waits up to `connect_timeout` for a connection.
    async fn wait_connected(&self) -> Result<()> {
        wait_connected(&self.client, &self.connected, self.config.connect_timeout.0)
            .await
            .map_err(|e| self.unavailable(e))
    }

    /// Connected, with the stream in place.
    async fn ready(&self) -> Result<()> {
        self.wait_connected().await?;
        if self.stream_ready.load(Ordering::SeqCst) {
            return Ok(());
        }
        let _one = self.creating.lock().await;
        if !self.stream_ready.load(Ordering::SeqCst) {
            self.ensure_stream().await?;
            self.stream_ready.store(true, Ordering::SeqCst);
        }
        Ok(())
    }

    fn stream_config(&self) -> stream::Config {
        let c = &self.config;
        stream::Config {
            name: c.stream.clone(),
            subjects: vec![format!("{}.>", c.subject_prefix)],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            discard: stream::DiscardPolicy::Old,
            num_replicas: c.replicas,
            duplicate_window: c.duplicate_window.0,
            max_age: c.max_age.0,
            max_bytes: c.max_bytes.map_or(-1, |b| b as i64),
            description: Some("polyrouter change events".into()),
            ..Default::default()
        }
    }

    /// Creates the stream, or checks an existing one holds our subjects and
    /// brings its limits to the configured ones.
    async fn ensure_stream(&self) -> Result<()> {
        let want = self.stream_config();
        match self.js.get_stream(&self.config.stream).await {
            Ok(mut existing) => {
                let info = existing
                    .info()
                    .await
                    .map_err(|e| self.driver_error("reading the stream", e))?;
                let have = &info.config;
                if have.subjects != want.subjects {
                    return Err(Error::invalid_input(
                        &self.name,
                        "",
                        format!(
                            "stream `{}` exists with subjects {:?}, not {:?}; give this bus another `stream` or the same `subject_prefix`",
                            self.config.stream, have.subjects, want.subjects
                        ),
                    ));
                }
                let same = have.num_replicas == want.num_replicas
                    && have.duplicate_window == want.duplicate_window
                    && have.max_age == want.max_age
                    && have.max_bytes == want.max_bytes;
                if !same {
                    self.js
                        .update_stream(&want)
                        .await
                        .map_err(|e| self.driver_error("updating the stream's limits", e))?;
                }
                Ok(())
            }
            Err(e) if is_code(&e.kind(), ErrorCode::STREAM_NOT_FOUND) => {
                match self.js.create_stream(want).await {
                    Ok(_) => Ok(()),
                    // Another process created it meanwhile: check it.
                    Err(e) if e.to_string().contains("already in use") => {
                        Box::pin(self.ensure_stream()).await
                    }
                    Err(e) => Err(self.driver_error("creating the stream", e)),
                }
            }
            Err(e) => Err(self.driver_error("looking up the stream", e)),
        }
    }

    /// Serializes every event after checking its entity name and size,
    /// before anything is sent.
    fn encode(&self, events: &[ChangeEvent]) -> Result<Vec<(String, Bytes, String)>> {
        let max = self.client.server_info().max_payload;
        events
            .iter()
            .map(|e| {
                let subject = self.subject(&e.entity)?;
                let payload = Bytes::from(e.to_json());
                // Headers (Nats-Msg-Id) take a little room too.
                if max > 0 && payload.len() + 128 > max {
                    return Err(Error::invalid_input(
                        &self.name,
                        &e.entity,
                        format!(
                            "event {} of key {} is {} bytes; the NATS server takes at most {max} bytes per message (its `max_payload`): raise it on the server, or stop shipping the after-image of this entity",
                            e.id,
                            e.key,
                            payload.len()
                        ),
                    ));
                }
                Ok((subject, payload, e.id.clone()))
            })
            .collect()
    }
}

/// Waits up to `timeout` for `client` to be connected; `connected` is
/// woken on every (re)connection. The error says what happened.
async fn wait_connected(
    client: &async_nats::Client,
    connected: &Notify,
    timeout: Duration,
) -> std::result::Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let woken = connected.notified();
        if client.connection_state() == async_nats::connection::State::Connected {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(format!(
                "no NATS server answered within {timeout:?}; the client keeps reconnecting"
            ));
        }
        // The state may change just after the event: look again soon.
        let nap = (deadline - now).min(Duration::from_millis(50));
        let _ = tokio::time::timeout(nap, woken).await;
    }
}

/// Whether a stream lookup failed with JetStream's error `code`.
fn is_code(kind: &GetStreamErrorKind, code: ErrorCode) -> bool {
    matches!(kind, GetStreamErrorKind::JetStream(e) if e.error_code() == code)
}

#[async_trait]
impl Bus for NatsBus {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "nats"
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    async fn publish(&self, events: &[ChangeEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        for e in events {
            self.subject(&e.entity)?;
        }
        self.ready().await?;
        let messages = self.encode(events)?;
        // Sent one after another on one connection (JetStream stores them in
        // the order it receives them), acknowledgements awaited together.
        let mut acks = VecDeque::new();
        for (subject, payload, id) in messages {
            let publish = PublishMessage::build().payload(payload).message_id(id);
            let ack = self
                .js
                .send_publish(subject, publish)
                .await
                .map_err(|e| self.publish_error(e))?;
            acks.push_back(ack);
            if acks.len() >= PUBLISH_WINDOW {
                let ack = acks.pop_front().expect("window is not empty");
                ack.await.map_err(|e| self.publish_error(e))?;
            }
        }
        let results = futures::future::join_all(acks.into_iter().map(|a| a.into_future())).await;
        for r in results {
            r.map_err(|e| self.publish_error(e))?;
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
        if !is_token(group) {
            return Err(Error::invalid_input(
                &self.name,
                "",
                format!(
                    "consumer group name {group:?} cannot name a JetStream consumer: use ASCII letters, digits, `_` and `-`"
                ),
            ));
        }
        for e in entities {
            self.subject(e)?;
        }
        self.ready().await?;
        let sub = subscription::NatsSubscription::join(self, group, entities, options).await?;
        Ok(Box::new(sub))
    }

    async fn backlog(&self, group: &str, entities: &[String]) -> Result<Option<u64>> {
        for e in entities {
            self.subject(e)?;
        }
        self.ready().await?;
        let stream = self
            .js
            .get_stream(&self.config.stream)
            .await
            .map_err(|e| self.driver_error("looking up the stream", e))?;
        let mut total = 0u64;
        for entity in entities {
            let durable = subscription::durable_name(group, entity);
            match stream.consumer_info(&durable).await {
                Ok(info) => total += info.num_pending + info.num_ack_pending as u64,
                Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => {
                    // No such group yet: it would start at the oldest event held.
                    total += self.held(&stream, entity).await?;
                }
                Err(e) => return Err(self.driver_error("reading a consumer", e)),
            }
        }
        Ok(Some(total))
    }

    async fn ping(&self) -> Result<()> {
        self.wait_connected().await?;
        // JetStream's account info: answered only when JetStream is on.
        let reply = self
            .client
            .request("$JS.API.INFO", Bytes::new())
            .await
            .map_err(|e| {
                if e.kind() == async_nats::RequestErrorKind::NoResponders {
                    Error::unavailable(
                        &self.name,
                        "",
                        format!(
                            "the NATS server at {} has no JetStream; start it with `-js`",
                            self.location
                        ),
                    )
                } else {
                    self.driver_error("a JetStream ping", e)
                }
            })?;
        let info: serde_json::Value = serde_json::from_slice(&reply.payload)
            .map_err(|e| self.driver_error("a JetStream ping", e))?;
        match info.get("error") {
            None => Ok(()),
            Some(err) => Err(Error::backend(
                &self.name,
                "",
                std::io::Error::other(format!(
                    "JetStream at {} refused its account info: {err}",
                    self.location
                )),
            )),
        }
    }
}

impl NatsBus {
    fn publish_error(&self, e: jetstream::context::PublishError) -> Error {
        use PublishErrorKind as K;
        match e.kind() {
            K::StreamNotFound => {
                // Deleted behind our back: create it again on the next call.
                self.stream_ready.store(false, Ordering::SeqCst);
                self.unavailable(format!(
                    "no stream took the event (stream `{}` missing?); it is created again on the next call",
                    self.config.stream
                ))
            }
            K::TimedOut | K::BrokenPipe | K::MaxAckPending => {
                self.unavailable(format!("NATS did not acknowledge a publish ({e})"))
            }
            _ => self.driver_error("a publish", e),
        }
    }

    /// Events the stream holds on one entity's subject.
    async fn held(&self, stream: &jetstream::stream::Stream, entity: &str) -> Result<u64> {
        use futures::TryStreamExt;
        let subject = self.subject(entity)?;
        let mut info = stream
            .info_with_subjects(&subject)
            .await
            .map_err(|e| self.driver_error("reading the stream's subjects", e))?;
        let mut n = 0;
        while let Some((s, count)) = info
            .try_next()
            .await
            .map_err(|e| self.driver_error("reading the stream's subjects", e))?
        {
            if s == subject {
                n += count as u64;
            }
        }
        Ok(n)
    }
}
