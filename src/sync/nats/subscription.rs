//! One member of a consumer group on a `nats` bus: a durable pull consumer
//! per entity, pulled with explicit acks.
//!
//! A fetch first asks every idle consumer for what it has now (`no_wait`
//! pulls). When nothing is there, it leaves one single-message long pull
//! per consumer open at the server and waits on them together; a long pull
//! still open when the fetch returns stays with the subscription and is
//! read first by the next fetch, so nothing is lost and an entity's events
//! keep their order (no `no_wait` pull is sent to a consumer while its long
//! pull is open: the server would fill the older request first).

use std::time::Duration;

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::consumer::pull::{Batch, Config};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::stream::ConsumerErrorKind;
use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use tokio::time::Instant;

use std::sync::Arc;

use tokio::sync::Notify;

use super::{NatsBus, wait_connected};
use crate::sync::{ChangeEvent, Delivery, DeliveryTag, StartAt, SubscribeOptions, Subscription};
use crate::{Error, Result};

/// The longest a long pull stays open at the server; a fetch that waits
/// longer opens another. Bounds how long a pull lost with a server restart
/// can hold up its consumer.
const LONG_PULL: Duration = Duration::from_secs(5);

/// How long past its expiry a long pull is given before it is dropped as
/// lost (the server's expiry notice never came: a server restarted).
const LOST_PULL_GRACE: Duration = Duration::from_secs(1);

/// Acknowledgements awaited at once.
const ACK_WINDOW: usize = 256;

/// The durable consumer of `group` on `entity`.
pub(super) fn durable_name(group: &str, entity: &str) -> String {
    format!("{group}_{entity}")
}

/// One entity's consumer and its open long pull, if any.
struct Lane {
    consumer: PullConsumer,
    long_pull: Option<(Batch, Instant)>,
}

pub(super) struct NatsSubscription {
    bus: String,
    /// An ephemeral group: its consumers are deleted on close.
    ephemeral: bool,
    stream: async_nats::jetstream::stream::Stream,
    location: String,
    ack_prefix: String,
    client: async_nats::Client,
    connected: Arc<Notify>,
    connect_timeout: Duration,
    request_timeout: Duration,
    lanes: Vec<Lane>,
    /// The lane to start with next, so no entity starves the others.
    next_lane: usize,
}

impl NatsSubscription {
    /// Creates (or joins) the group's durable consumer on every entity.
    pub(super) async fn join(
        bus: &NatsBus,
        group: &str,
        entities: &[String],
        options: &SubscribeOptions,
    ) -> Result<NatsSubscription> {
        let stream = bus
            .js
            .get_stream(&bus.config.stream)
            .await
            .map_err(|e| bus.driver_error("looking up the stream", e))?;
        let mut lanes = Vec::with_capacity(entities.len());
        for entity in entities {
            let durable = durable_name(group, entity);
            let filter = bus.subject(entity)?;
            // An existing group resumes where it is: its start stays.
            let deliver_policy = match stream.consumer_info(&durable).await {
                Ok(info) if info.config.filter_subject != filter => {
                    return Err(Error::invalid_input(
                        &bus.name,
                        entity,
                        format!(
                            "consumer `{durable}` of stream `{}` reads {:?}, not {filter:?}: it belongs to another group and entity; rename the group",
                            bus.config.stream, info.config.filter_subject
                        ),
                    ));
                }
                Ok(info) => info.config.deliver_policy,
                Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => match options.start {
                    StartAt::Oldest => DeliverPolicy::All,
                    StartAt::New => DeliverPolicy::New,
                },
                Err(e) => return Err(bus.driver_error("reading a consumer", e)),
            };
            let config = Config {
                durable_name: Some(durable.clone()),
                description: Some(format!("polyrouter group {group}, entity {entity}")),
                deliver_policy,
                ack_policy: AckPolicy::Explicit,
                ack_wait: options.ack_wait,
                max_deliver: -1,
                filter_subject: filter.clone(),
                inactive_threshold: if options.ephemeral {
                    bus.config.ephemeral_idle.0
                } else {
                    Duration::ZERO
                },
                ..Default::default()
            };
            // Creates the consumer, or updates its ack_wait / idle limit.
            let consumer: PullConsumer = stream
                .create_consumer(config)
                .await
                .map_err(|e| bus.driver_error("creating a durable consumer", e))?;
            lanes.push(Lane {
                consumer,
                long_pull: None,
            });
        }
        Ok(NatsSubscription {
            bus: bus.name.clone(),
            ephemeral: options.ephemeral,
            stream,
            location: bus.location.clone(),
            ack_prefix: format!("$JS.ACK.{}.", bus.config.stream),
            client: bus.client.clone(),
            connected: bus.connected.clone(),
            connect_timeout: bus.config.connect_timeout.0,
            request_timeout: bus.config.request_timeout.0,
            lanes,
            next_lane: 0,
        })
    }

    fn unavailable(&self, what: impl std::fmt::Display) -> Error {
        Error::unavailable(&self.bus, "", format!("{what} at {}", self.location))
    }

    /// Fails with `Unavailable` after `connect_timeout` without a connection.
    async fn connected(&self) -> Result<()> {
        wait_connected(&self.client, &self.connected, self.connect_timeout)
            .await
            .map_err(|e| self.unavailable(e))
    }

    /// A delivery from a stream message; `None` (logged, acknowledged) for
    /// a message that is not a polyrouter event, so it never blocks the
    /// group.
    async fn delivery(&self, m: async_nats::jetstream::Message) -> Result<Option<Delivery>> {
        let info = m
            .info()
            .map_err(|e| self.unavailable(format!("a message without JetStream metadata ({e})")))?;
        let attempt = u32::try_from(info.delivered.max(1)).unwrap_or(u32::MAX);
        let sequence = info.stream_sequence;
        let tag = m
            .reply
            .as_ref()
            .map(|r| DeliveryTag::new(r.as_str()))
            .ok_or_else(|| self.unavailable("a message without an ack subject"))?;
        match ChangeEvent::from_json(&m.payload) {
            Ok(event) => Ok(Some(Delivery {
                event,
                attempt,
                tag,
            })),
            Err(why) => {
                tracing::error!(
                    bus = %self.bus,
                    subject = %m.subject,
                    sequence,
                    "skipping and acknowledging a stream message that is not a polyrouter event: {why}"
                );
                self.send(&[&tag], bytes::Bytes::from_static(b"+ACK"))
                    .await?;
                Ok(None)
            }
        }
    }

    /// What an idle lane has now, up to `max`.
    async fn pull_now(&self, lane: usize, max: usize, out: &mut Vec<Delivery>) -> Result<()> {
        let pull = async {
            let mut batch = self.lanes[lane]
                .consumer
                .fetch()
                .max_messages(max)
                .messages()
                .await
                .map_err(|e| self.unavailable(format!("a pull failed ({e})")))?;
            while let Some(m) = batch.next().await {
                let m = m.map_err(|e| self.unavailable(format!("a pull failed ({e})")))?;
                out.extend(self.delivery(m).await?);
            }
            Ok::<(), Error>(())
        };
        tokio::time::timeout(self.request_timeout, pull)
            .await
            .map_err(|_| self.unavailable("NATS did not answer a pull"))?
    }

    /// Reads a lane's open long pull without waiting: true when the lane is
    /// idle afterwards (no long pull open).
    async fn poll_long_pull(&mut self, lane: usize, out: &mut Vec<Delivery>) -> Result<bool> {
        let Some((batch, expires)) = self.lanes[lane].long_pull.as_mut() else {
            return Ok(true);
        };
        let lost = Instant::now() > *expires + LOST_PULL_GRACE;
        let polled = batch.next().now_or_never();
        if polled.is_none() && !lost {
            return Ok(false);
        }
        self.lanes[lane].long_pull = None;
        match polled {
            Some(Some(Ok(m))) => out.extend(self.delivery(m).await?),
            Some(Some(Err(e))) => return Err(self.unavailable(format!("a pull failed ({e})"))),
            _ => {}
        }
        Ok(true)
    }

    /// Everything ready now, lane by lane, up to `max`.
    async fn take_ready(&mut self, max: usize, out: &mut Vec<Delivery>) -> Result<()> {
        let n = self.lanes.len();
        let start = self.next_lane;
        self.next_lane = (self.next_lane + 1) % n;
        for i in 0..n {
            let lane = (start + i) % n;
            if out.len() >= max {
                break;
            }
            if self.poll_long_pull(lane, out).await? && out.len() < max {
                self.pull_now(lane, max - out.len(), out).await?;
            }
        }
        Ok(())
    }

    /// Opens a long pull on every idle lane and waits until one of them
    /// delivers or `until` passes.
    async fn wait_any(&mut self, until: Instant, out: &mut Vec<Delivery>) -> Result<()> {
        let now = Instant::now();
        let expires = (until - now).min(LONG_PULL).max(Duration::from_millis(10));
        for lane in &mut self.lanes {
            if lane.long_pull.is_none() {
                let batch = lane
                    .consumer
                    .batch()
                    .max_messages(1)
                    .expires(expires)
                    .messages()
                    .await
                    .map_err(|e| {
                        Error::unavailable(
                            &self.bus,
                            "",
                            format!("a pull failed at {} ({e})", self.location),
                        )
                    })?;
                lane.long_pull = Some((batch, now + expires));
            }
        }
        let deadline = self
            .lanes
            .iter()
            .filter_map(|l| l.long_pull.as_ref().map(|(_, e)| *e + LOST_PULL_GRACE))
            .min()
            .unwrap_or(until)
            .min(until);
        let next = futures::future::select_all(self.lanes.iter_mut().map(|l| {
            let (batch, _) = l.long_pull.as_mut().expect("every lane has a long pull");
            batch.next()
        }));
        let Ok((item, lane, _)) = tokio::time::timeout_at(deadline, next).await else {
            return Ok(());
        };
        self.lanes[lane].long_pull = None;
        match item {
            Some(Ok(m)) => out.extend(self.delivery(m).await?),
            Some(Err(e)) => return Err(self.unavailable(format!("a pull failed ({e})"))),
            None => {}
        }
        Ok(())
    }

    fn check_tag(&self, tag: &DeliveryTag) -> Result<()> {
        let t = tag.as_str();
        if !t.starts_with(&self.ack_prefix) || t.contains(char::is_whitespace) {
            return Err(Error::invalid_input(
                &self.bus,
                "",
                format!("{tag:?} is not a delivery of this bus"),
            ));
        }
        Ok(())
    }

    /// Sends one ack-protocol word to each tag as a request, and waits until
    /// JetStream confirmed every one (it answers once the consumer applied
    /// it), at most `ACK_WINDOW` at a time.
    async fn send(&self, tags: &[&DeliveryTag], word: bytes::Bytes) -> Result<()> {
        self.connected().await?;
        for chunk in tags.chunks(ACK_WINDOW) {
            let confirmations = chunk
                .iter()
                .map(|tag| self.client.request(tag.as_str().to_string(), word.clone()));
            let all = futures::future::join_all(confirmations);
            let results = tokio::time::timeout(self.request_timeout, all)
                .await
                .map_err(|_| self.unavailable("NATS did not confirm acknowledgements"))?;
            for r in results {
                r.map_err(|e| {
                    self.unavailable(format!("an acknowledgement was not confirmed ({e})"))
                })?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Subscription for NatsSubscription {
    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let max = max.max(1);
        let until = Instant::now() + wait;
        let mut out = Vec::new();
        loop {
            self.connected().await?;
            self.take_ready(max, &mut out).await?;
            if !out.is_empty() || Instant::now() + Duration::from_millis(10) >= until {
                return Ok(out);
            }
            self.wait_any(until, &mut out).await?;
        }
    }

    async fn ack(&mut self, tags: &[DeliveryTag]) -> Result<()> {
        for t in tags {
            self.check_tag(t)?;
        }
        let tags: Vec<&DeliveryTag> = tags.iter().collect();
        self.send(&tags, bytes::Bytes::from_static(b"+ACK")).await
    }

    async fn nack(&mut self, tag: &DeliveryTag, delay: Duration) -> Result<()> {
        self.check_tag(tag)?;
        let word = if delay.is_zero() {
            bytes::Bytes::from_static(b"-NAK")
        } else {
            format!("-NAK {{\"delay\":{}}}", delay.as_nanos()).into()
        };
        self.send(&[tag], word).await
    }

    async fn close(self: Box<Self>) -> Result<()> {
        if !self.ephemeral {
            return Ok(());
        }
        self.connected().await?;
        for lane in &self.lanes {
            let name = lane.consumer.cached_info().name.clone();
            match self.stream.delete_consumer(&name).await {
                Ok(_) => {}
                // Already removed (idle too long, or another member's close).
                Err(e)
                    if matches!(e.kind(), ConsumerErrorKind::JetStream(ref j)
                        if j.error_code() == ErrorCode::CONSUMER_NOT_FOUND) => {}
                Err(e) => {
                    return Err(
                        self.unavailable(format!("deleting consumer `{name}` failed ({e})"))
                    );
                }
            }
        }
        Ok(())
    }
}
