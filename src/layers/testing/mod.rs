//! Test doubles: layers that count, break, delay or hold back calls, for
//! tests and chaos drills — not for production.
//!
//! - [`Counting`]: counts the calls that reach the inner store (how tests
//!   prove single-flight and N+1-free joins).
//! - [`Faults`]: makes the inner store fail ("down"), slow, fail the next
//!   few calls, or lose the replies of the next few calls (applied, but the
//!   caller sees an error).
//! - [`Lag`]: holds writes back and applies them later, to inject
//!   replication or cache-invalidation lag.
//! - [`Mirror`]: applies every write of a primary to a second store too (a
//!   replica, as `read_from` reads), through any layer, e.g. [`Lag`].
//!
//! All but `Lag` are a [`Layered`](super::Layered) store with their own
//! [`Policy`](super::Policy), so they see every call of every store trait
//! and forward every extra trait.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::sync::Arc;
//! use polyrouter::{backends::memory::MemoryStore, layers::testing::Counting, Router};
//! let counted = Arc::new(Counting::new(MemoryStore::new("main")));
//! let router = Router::builder().store("main", counted.clone()).build().await.unwrap();
//! assert_eq!(counted.counts().gets, 0);
//! # });
//! ```

mod counting;
mod faults;
mod lag;
mod mirror;

pub use counting::{CountCalls, Counting, Counts};
pub use faults::{FaultSwitch, Faults};
pub use lag::Lag;
pub use mirror::{Mirror, MirrorTo};
