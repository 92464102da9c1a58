//! Sync: change events, event buses, the transactional outbox and its
//! relay, and projections — what keeps several stores agreeing.
//!
//! - [`ChangeEvent`]: the one envelope every change source emits, as
//!   CloudEvents JSON (see [`event`]).
//! - [`Bus`] / [`Subscription`]: a durable at-least-once bus with consumer
//!   groups and de-duplication by event id; [`MemoryBus`] runs in process,
//!   `nats` (JetStream) and `redis_streams` talk to servers; [`open_bus`]
//!   opens the kind a `[buses.NAME]` table names.
//! - [`capture`]: change capture — the changes any writer commits to a
//!   route's table (PostgreSQL logical decoding), as the same events.
//! - [`Relay`]: moves a route's outbox events (recorded by its store
//!   atomically with each write, see [`crate::store::sync`]) to its bus.
//! - [`Router::sync`](crate::Router::sync) / [`SyncHandle`]: relays and
//!   projections running in this process; `polyrouter sync` runs them as
//!   a worker process.
//!
//! The invariant everything here stands on: a key's version strictly
//! increases over its whole life (deletes leave tombstones), every event
//! carries it, and a consumer applies an event only when it is newer than
//! what it holds — so at-least-once delivery gives effectively-once
//! results. Per key, events are published in version order; across keys no
//! order is promised.

pub mod bus;
pub mod capture;
pub mod event;
mod kinds;
mod memory;
#[cfg(feature = "nats")]
pub mod nats;
pub mod projection;
#[cfg(feature = "redis")]
pub mod redis_streams;
mod relay;
mod runtime;
mod state;

pub use bus::{Bus, Delivery, DeliveryTag, StartAt, SubscribeOptions, Subscription};
pub use event::{ChangeEvent, Operation};
pub use kinds::{BUS_KINDS, BusKindInfo, OpenBusFn, open_bus};
pub use memory::MemoryBus;
pub use relay::{Relay, RelayStats, RelayStatus};
pub use runtime::{SyncBuilder, SyncHandle, capture_retention, outbox_backlog, worker_statuses};
pub use state::{SyncRecord, WorkerStatus};
