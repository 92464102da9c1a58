//! # polyrouter
//!
//! Polyglot persistence for Rust: declare entity types once, say in a TOML
//! file which store holds each of them, and read and write them through one
//! typed, async API. The router sends every call to the entity's store and
//! checks, at start-up and per call, that the store can honour what is asked
//! (TTL, preconditions, filters, atomic batches) — it never degrades silently.
//!
//! ```
//! use polyrouter::{query::field, Entity, Precondition, Query, Router};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
//! #[entity(name = "user", key = "id")]
//! struct User {
//!     id: String,
//!     country: String,
//!     #[entity(version)]
//!     version: u64,
//! }
//!
//! # tokio_test_block(async {
//! let router = Router::from_toml_str(r#"
//!     [stores.main]
//!     kind = "memory"
//!
//!     [entities.user]
//!     store = "main"
//! "#).await?;
//! let users = router.repo::<User>().await?;
//! let v1 = users.put(&User { id: "u1".into(), country: "SE".into(), version: 0 }).await?;
//! assert_eq!(v1, 1);
//! let stale = users.put_if(&User { id: "u1".into(), country: "NO".into(), version: 0 }, Precondition::Version(7)).await;
//! assert!(matches!(stale, Err(polyrouter::Error::Conflict { actual: Some(1), .. })));
//! let page = users.query(Query::new().filter(field("country").eq("SE")).limit(10)).await?;
//! assert_eq!(page.items[0].version, 1);
//! # Ok::<(), polyrouter::Error>(())
//! # });
//! # fn tokio_test_block<F: std::future::Future<Output = Result<(), polyrouter::Error>>>(f: F) {
//! #     tokio::runtime::Runtime::new().unwrap().block_on(f).unwrap()
//! # }
//! ```
//!
//! The README has a short configuration example; every option is in
//! `docs/configuration.md`, the architecture in `docs/architecture.md`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod advisor;
pub mod aggregate;
#[cfg(feature = "analytics")]
pub mod analytics;
pub mod backends;
pub mod bench;
mod capability;
pub mod config;
pub mod entity;
mod error;
mod key;
pub mod layers;
pub mod lease;
pub mod migrate;
pub mod query;
pub mod record;
pub mod router;
pub mod saga;
pub mod store;
pub mod sync;
mod token;
pub mod topology;
mod value;

pub use capability::{Capabilities, FilterCaps};
pub use entity::{Entity, FieldDef, FieldKind, FieldType, Schema};
pub use error::{BoxError, Error, FailedWrite, Rejection, Result};
pub use key::{Key, KeyKind};
pub use query::{Filter, Query, field};
pub use record::Record;
pub use router::{Page, Repo, Router, RouterBuilder};
pub use store::{Precondition, Store};
pub use value::Value;

/// `#[derive(Entity)]`: see [`Entity`](trait@Entity).
pub use polyrouter_derive::Entity;

/// The common imports: `use polyrouter::prelude::*;`.
///
/// ```
/// use polyrouter::prelude::*;
/// let q = Query::new().filter(field("a").eq(1));
/// assert!(q.filter.is_some());
/// let _read = ReadOptions::new().consistency(Consistency::Strong);
/// let _write = WriteOptions::new().precondition(Precondition::Absent);
/// let _session = Session::new();
/// ```
pub mod prelude {
    pub use crate::config::Consistency;
    pub use crate::query::{Filter, Query, field};
    pub use crate::router::{ReadOptions, Session, WriteOptions};
    pub use crate::{Entity, Error, Key, Page, Precondition, Repo, Result, Router, Value};
}

/// The README's Rust example, compiled as a doc test so it cannot drift
/// from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// docs/configuration.md's Rust example ("Building the same thing in
/// code"), compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../docs/configuration.md")]
pub struct ConfigurationDoctests;
