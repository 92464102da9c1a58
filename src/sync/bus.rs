//! The [`Bus`] trait: a durable, at-least-once event bus with consumer
//! groups, which every bus kind (`memory`, `nats`, `redis-streams`)
//! implements.
//!
//! Events are published per entity; a consumer group reads the events of
//! the entities it names, each event delivered to one member of the group
//! until it is acknowledged. What a bus promises:
//!
//! - **durable publish**: [`Bus::publish`] returns once the bus holds the
//!   events (the relay deletes them from the outbox only then);
//! - **de-duplication**: an event id published again within the bus's
//!   de-duplication window is stored once (a relay that crashed after
//!   publishing and before recording it publishes again);
//! - **at-least-once delivery**: an event not acknowledged within the
//!   group's `ack_wait` (or negatively acknowledged) is delivered again,
//!   with a higher [`Delivery::attempt`];
//! - **order**: events of one entity are delivered in publish order the
//!   first time; a redelivery may come after later events, so consumers
//!   apply by version (see [`ChangeEvent`]) rather than by arrival.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use super::ChangeEvent;
use crate::Result;

/// Where a consumer group that does not exist yet starts reading.
///
/// ```
/// assert_eq!(polyrouter::sync::StartAt::default(), polyrouter::sync::StartAt::Oldest);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    /// At the oldest event the bus still holds (durable projections).
    #[default]
    Oldest,
    /// At events published from now on (per-process cache invalidation).
    New,
}

/// How a consumer group reads.
///
/// ```
/// let o = polyrouter::sync::SubscribeOptions::default();
/// assert_eq!(o.ack_wait, std::time::Duration::from_secs(30));
/// assert!(!o.ephemeral);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// An event neither acknowledged nor negatively acknowledged within this
    /// time is delivered again (to any member of the group).
    pub ack_wait: Duration,
    /// This member's name within the group (unique per process; buses that
    /// track members, like Redis Streams, use it).
    pub consumer: String,
    /// Where a new group starts; an existing group always resumes.
    pub start: StartAt,
    /// The group lives only as long as its member: removed by
    /// [`Subscription::close`], and by the bus itself some time after its
    /// member stopped fetching (a process that died) — for groups of one
    /// process, like cache invalidation in every process.
    pub ephemeral: bool,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions {
            ack_wait: Duration::from_secs(30),
            consumer: format!("pid-{}", std::process::id()),
            start: StartAt::Oldest,
            ephemeral: false,
        }
    }
}

/// An opaque handle naming one delivery, to acknowledge it.
///
/// ```
/// let t = polyrouter::sync::DeliveryTag::new("42");
/// assert_eq!(t.as_str(), "42");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeliveryTag(String);

impl DeliveryTag {
    /// A tag from the bus's own delivery id (a stream entry id, a reply
    /// subject, a sequence number).
    ///
    /// ```
    /// let _ = polyrouter::sync::DeliveryTag::new("1700000000000-0");
    /// ```
    pub fn new(raw: impl Into<String>) -> Self {
        DeliveryTag(raw.into())
    }

    /// The bus's own delivery id.
    ///
    /// ```
    /// assert_eq!(polyrouter::sync::DeliveryTag::new("x").as_str(), "x");
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One delivered event.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The event.
    pub event: ChangeEvent,
    /// 1 on first delivery, then +1 on every redelivery.
    pub attempt: u32,
    /// What to acknowledge.
    pub tag: DeliveryTag,
}

/// A durable, at-least-once event bus (see the module docs for what it
/// promises).
#[async_trait]
pub trait Bus: Send + Sync + fmt::Debug + 'static {
    /// The bus's name from the configuration.
    fn name(&self) -> &str;
    /// The bus kind, e.g. `nats`.
    fn kind(&self) -> &'static str;
    /// A human-readable location with secrets redacted.
    fn location(&self) -> String;

    /// Stores `events` durably, in order; returns once the bus holds all
    /// of them. An event whose id the bus already holds (within its
    /// de-duplication window) is stored once.
    async fn publish(&self, events: &[ChangeEvent]) -> Result<()>;

    /// Joins (creating it when missing) the durable consumer group `group`
    /// over the events of `entities`. A new group starts at the oldest
    /// event the bus still holds; an existing one resumes after what it
    /// acknowledged.
    async fn subscribe(
        &self,
        group: &str,
        entities: &[String],
        options: &SubscribeOptions,
    ) -> Result<Box<dyn Subscription>>;

    /// Events of `entities` the group has not acknowledged yet (pending
    /// and not yet delivered), when the bus can tell.
    async fn backlog(&self, group: &str, entities: &[String]) -> Result<Option<u64>>;

    /// Checks the bus answers.
    async fn ping(&self) -> Result<()>;
}

/// One member of a consumer group.
#[async_trait]
pub trait Subscription: Send + 'static {
    /// Up to `max` deliveries: due redeliveries first, then new events;
    /// waits at most `wait` when none is ready (then returns empty).
    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>>;

    /// Acknowledges deliveries: the group never gets them again.
    async fn ack(&mut self, tags: &[DeliveryTag]) -> Result<()>;

    /// Asks for a delivery again, not before `delay`.
    async fn nack(&mut self, tag: &DeliveryTag, delay: Duration) -> Result<()>;

    /// Leaves the group; an ephemeral group is removed from the bus.
    async fn close(self: Box<Self>) -> Result<()>;
}
