//! The one error type every polyrouter call returns.
//!
//! Every variant names the store and the entity involved, and its message says
//! what to do next, in the spirit of sqlx's and tokio's errors.

use std::fmt;
use std::time::Duration;

use crate::Key;
use crate::store::{Precondition, WriteOutcome};

/// A boxed error from a driver or another library.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result<T, polyrouter::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in polyrouter.
///
/// Match on the variant to decide what to do: [`Error::Unavailable`] and
/// [`Error::Timeout`] are transient and a write's outcome is unknown (retry
/// only idempotent operations); [`Error::Rejected`] and
/// [`Error::CircuitOpen`] are transient and nothing was applied (any call
/// may be retried later); [`Error::Conflict`] means a precondition failed
/// and nothing was written; [`Error::Unsupported`] means the store cannot
/// honour the request, which polyrouter never ignores. docs/resilience.md
/// has the classification of every backend's driver errors.
///
/// ```
/// use polyrouter::Error;
/// let e = Error::invalid_input("main", "user", "key is empty");
/// assert!(e.to_string().contains("store `main`"));
/// assert!(!e.is_transient());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The record does not exist.
    #[error("{}: no record with key {key}", at(store, entity))]
    NotFound {
        /// Store name.
        store: String,
        /// Entity name.
        entity: String,
        /// The key that was looked up, rendered for humans.
        key: String,
    },
    /// A precondition failed; nothing was written.
    #[error(
        "{}: precondition {expected} failed for key {key}: the current version is {}; nothing was written — re-read the record and retry",
        at(store, entity),
        current_version(actual, etag)
    )]
    Conflict {
        /// Store name.
        store: String,
        /// Entity name.
        entity: String,
        /// The key written.
        key: String,
        /// The precondition that failed.
        expected: Precondition,
        /// The actual version of the record, `None` when it does not exist.
        actual: Option<u64>,
        /// For blobs: the current etag, `None` when the blob does not exist
        /// (blobs have etags, not versions).
        etag: Option<Box<str>>,
    },
    /// The store cannot do what was asked; polyrouter never silently ignores it.
    #[error(
        "{}: {capability} is not supported by this store — route the entity to a store that supports it, or drop the option",
        at(store, entity)
    )]
    Unsupported {
        /// Store name.
        store: String,
        /// Entity name (empty for store-level checks).
        entity: String,
        /// What was asked for, e.g. `ttl` or `filter prefix`.
        capability: String,
    },
    /// The store could not be reached or dropped the connection; transient.
    #[error("{}: store unavailable: {message}", at(store, entity))]
    Unavailable {
        /// Store name.
        store: String,
        /// Entity name (empty for store-level errors).
        entity: String,
        /// What happened, with secrets redacted.
        message: String,
        /// The driver error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// A call took longer than its store's timeout for that class of
    /// operation (`[stores.NAME.resilience.timeout]`) and was abandoned.
    /// Transient; like [`Error::Unavailable`], a write may or may not have
    /// been applied.
    #[error(
        "{}: `{operation}` timed out after {after:?}; the store is slow or unreachable, and a write may or may not have been applied — re-read before repeating it, or raise the store's `resilience.timeout`",
        at(store, entity)
    )]
    Timeout {
        /// Store name.
        store: String,
        /// Entity name (empty for store-level calls).
        entity: String,
        /// The operation, e.g. `get` or `kv.increment`.
        operation: String,
        /// The timeout that elapsed.
        after: Duration,
    },
    /// The store's circuit breaker is open: too many of its recent calls
    /// failed, so this call was not sent. Transient: nothing was applied.
    #[error(
        "{}: the circuit breaker is open after too many failed calls, so the call was not sent; the store is probed again in {retry_in:?}",
        at(store, entity)
    )]
    CircuitOpen {
        /// Store name.
        store: String,
        /// Entity name (empty for store-level calls).
        entity: String,
        /// How long until the breaker lets a probe call through.
        retry_in: Duration,
    },
    /// The store (or this process's limit on it) refused the call without
    /// applying any of it: throttled, busy, or rolled back to break a
    /// deadlock. Transient: any call may be retried, after `retry_after`
    /// when the store said.
    #[error("{}: {reason}: {message}", at(store, entity))]
    Rejected {
        /// Store name.
        store: String,
        /// Entity name (empty for store-level errors).
        entity: String,
        /// Why the call was refused.
        reason: Rejection,
        /// What happened and what to do, with secrets redacted.
        message: String,
        /// How long the store asked to wait before trying again.
        retry_after: Option<Duration>,
        /// The driver error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// The request itself is wrong: bad key, unknown field, forged token, oversize value.
    #[error("{}: invalid input: {message}", at(store, entity))]
    InvalidInput {
        /// Store name.
        store: String,
        /// Entity name.
        entity: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The configuration is wrong; names the file, line, column and key path.
    #[error("{file}:{line}:{column}: {}{message}", if path.is_empty() { String::new() } else { format!("`{path}`: ") })]
    Config {
        /// The file (or `<string>` for [`Router::from_toml_str`](crate::Router::from_toml_str)).
        file: String,
        /// 1-based line, 0 when not tied to a place in the file.
        line: usize,
        /// 1-based column, 0 when not tied to a place in the file.
        column: usize,
        /// Dotted key path, e.g. `stores.main.kind`.
        path: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// Any other error from the store's driver.
    #[error("{}: {source}", at(store, entity))]
    Backend {
        /// Store name.
        store: String,
        /// Entity name.
        entity: String,
        /// The driver error (secrets redacted by the backend).
        #[source]
        source: BoxError,
    },
    /// The write reached the entity's primary store, but its search index
    /// was not updated: searches may miss the new values (or still find
    /// deleted records) until the write is repeated or the index rebuilt.
    #[error(
        "{}: the write of {keys} was applied to the primary store but search store `{search_store}` was not updated: {source} — repeat the write, or rebuild the index with `polyrouter reindex {entity}`",
        at(store, entity)
    )]
    NotIndexed {
        /// The primary store's name.
        store: String,
        /// Entity name.
        entity: String,
        /// The search store's name.
        search_store: String,
        /// The keys written but not indexed, rendered for humans.
        keys: String,
        /// Why indexing failed.
        #[source]
        source: Box<Error>,
    },
    /// Some writes of a non-atomic batch (`Batch::non_atomic`, or
    /// `put_many` / `delete_many` on a store that cannot make the batch
    /// atomic) failed and the others were applied: `outcomes` has one slot
    /// per write in batch order (`None` where it failed), `failed` says
    /// which failed and why ([`Error::Conflict`] with the current version,
    /// …), so exactly those can be retried.
    #[error(
        "{}: {} of {} writes of a non-atomic batch failed and the others were applied (first: write {} of key {}: {}) — retry only the failed ones",
        at(store, entity),
        failed.len(),
        outcomes.len(),
        failed.first().map_or(0, |f| f.index),
        failed.first().map_or(String::new(), |f| f.key.to_string()),
        failed.first().map_or(String::new(), |f| f.error.to_string())
    )]
    Partial {
        /// Store name.
        store: String,
        /// Entity name.
        entity: String,
        /// One slot per write of the batch, in order: its outcome when it
        /// was applied, `None` when it failed.
        outcomes: Vec<Option<WriteOutcome>>,
        /// The writes that failed, in batch order.
        failed: Vec<FailedWrite>,
    },
}

/// One write of a non-atomic batch that failed ([`Error::Partial`]).
///
/// ```
/// use polyrouter::{Error, FailedWrite, Key, Precondition};
/// let f = FailedWrite {
///     index: 1,
///     key: Key::from("a"),
///     error: Error::conflict("db", "user", &Key::from("a"), Precondition::Version(2), Some(3)),
/// };
/// assert!(matches!(f.error, Error::Conflict { actual: Some(3), .. }));
/// ```
#[derive(Debug)]
pub struct FailedWrite {
    /// Its position in the batch.
    pub index: usize,
    /// The key it wrote.
    pub key: Key,
    /// Why it failed; nothing of this write was applied when this is an
    /// [`Error::Conflict`], [`Error::InvalidInput`] or
    /// [`nothing_applied`](Error::nothing_applied).
    pub error: Error,
}

/// Why a store refused a call ([`Error::Rejected`]); in every case nothing
/// of the call was applied.
///
/// ```
/// assert_eq!(polyrouter::Rejection::Throttled.to_string(), "throttled");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rejection {
    /// The store is over a request-rate or resource limit, busy, or not
    /// ready yet (Cosmos DB 429, Redis `BUSY`/`LOADING`/`TRYAGAIN`, too
    /// many connections, SQL Server 40501/40613).
    Throttled,
    /// The store rolled the call back to break a deadlock or a
    /// serialization conflict with another transaction (PostgreSQL
    /// 40001/40P01, MariaDB 1213/1205, SQL Server 1205, Cosmos DB 449).
    Aborted,
    /// This process's own concurrency or rate limit on the store
    /// (`resilience.limit`) refused the call before sending it.
    Limited,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rejection::Throttled => "throttled",
            Rejection::Aborted => "aborted",
            Rejection::Limited => "limited",
        })
    }
}

fn current_version(actual: &Option<u64>, etag: &Option<Box<str>>) -> String {
    match (actual, etag) {
        (Some(v), _) => v.to_string(),
        (None, Some(e)) => format!("etag {e}"),
        (None, None) => "absent".into(),
    }
}

fn at(store: &str, entity: &str) -> String {
    if entity.is_empty() {
        format!("store `{store}`")
    } else {
        format!("store `{store}`, entity `{entity}`")
    }
}

impl Error {
    /// A [`Error::InvalidInput`].
    ///
    /// ```
    /// let e = polyrouter::Error::invalid_input("s", "e", "bad");
    /// assert!(matches!(e, polyrouter::Error::InvalidInput { .. }));
    /// ```
    pub fn invalid_input(store: &str, entity: &str, message: impl fmt::Display) -> Self {
        Error::InvalidInput {
            store: store.into(),
            entity: entity.into(),
            message: message.to_string(),
        }
    }

    /// A [`Error::Unsupported`].
    ///
    /// ```
    /// let e = polyrouter::Error::unsupported("cache", "user", "filter prefix");
    /// assert!(e.to_string().contains("filter prefix is not supported"));
    /// ```
    pub fn unsupported(store: &str, entity: &str, capability: impl fmt::Display) -> Self {
        Error::Unsupported {
            store: store.into(),
            entity: entity.into(),
            capability: capability.to_string(),
        }
    }

    /// A [`Error::Unavailable`] with no source.
    ///
    /// ```
    /// assert!(polyrouter::Error::unavailable("db", "", "connection refused").is_transient());
    /// ```
    pub fn unavailable(store: &str, entity: &str, message: impl fmt::Display) -> Self {
        Error::Unavailable {
            store: store.into(),
            entity: entity.into(),
            message: message.to_string(),
            source: None,
        }
    }

    /// A [`Error::Timeout`]: `operation` did not finish within `after`.
    ///
    /// ```
    /// let e = polyrouter::Error::timeout("db", "user", "get", std::time::Duration::from_millis(250));
    /// assert!(e.to_string().contains("`get` timed out after 250ms"), "{e}");
    /// ```
    pub fn timeout(store: &str, entity: &str, operation: &str, after: Duration) -> Self {
        Error::Timeout {
            store: store.into(),
            entity: entity.into(),
            operation: operation.into(),
            after,
        }
    }

    /// A [`Error::CircuitOpen`]: the breaker probes again in `retry_in`.
    ///
    /// ```
    /// let e = polyrouter::Error::circuit_open("db", "", std::time::Duration::from_secs(3));
    /// assert!(e.to_string().contains("probed again in 3s"), "{e}");
    /// ```
    pub fn circuit_open(store: &str, entity: &str, retry_in: Duration) -> Self {
        Error::CircuitOpen {
            store: store.into(),
            entity: entity.into(),
            retry_in,
        }
    }

    /// A [`Error::Rejected`] without a driver error or a wait.
    ///
    /// ```
    /// use polyrouter::{Error, Rejection};
    /// let e = Error::rejected("db", "user", Rejection::Aborted, "deadlock detected (40P01); retry");
    /// assert!(e.to_string().contains("aborted: deadlock"), "{e}");
    /// ```
    pub fn rejected(
        store: &str,
        entity: &str,
        reason: Rejection,
        message: impl fmt::Display,
    ) -> Self {
        Error::Rejected {
            store: store.into(),
            entity: entity.into(),
            reason,
            message: message.to_string(),
            retry_after: None,
            source: None,
        }
    }

    /// A [`Error::Conflict`]: `expected` failed for `key`, whose current
    /// version is `actual` (`None`: absent).
    ///
    /// ```
    /// use polyrouter::{Error, Key, Precondition};
    /// let e = Error::conflict("db", "user", &Key::from("u1"), Precondition::Version(2), Some(3));
    /// assert!(e.to_string().contains("the current version is 3"));
    /// ```
    pub fn conflict(
        store: &str,
        entity: &str,
        key: &crate::Key,
        expected: Precondition,
        actual: Option<u64>,
    ) -> Self {
        Error::Conflict {
            store: store.into(),
            entity: entity.into(),
            key: key.to_string(),
            expected,
            actual,
            etag: None,
        }
    }

    /// A [`Error::Backend`] wrapping a driver error.
    ///
    /// ```
    /// let io = std::io::Error::other("disk full");
    /// let e = polyrouter::Error::backend("main", "user", io);
    /// assert!(e.to_string().contains("disk full"));
    /// ```
    pub fn backend(store: &str, entity: &str, source: impl Into<BoxError>) -> Self {
        Error::Backend {
            store: store.into(),
            entity: entity.into(),
            source: source.into(),
        }
    }

    /// A [`Error::Config`] not tied to a place in a file.
    ///
    /// ```
    /// let e = polyrouter::Error::config("app.toml", "stores.main", "missing `kind`");
    /// assert_eq!(e.to_string(), "app.toml:0:0: `stores.main`: missing `kind`");
    /// ```
    pub fn config(file: &str, path: &str, message: impl fmt::Display) -> Self {
        Error::Config {
            file: file.into(),
            line: 0,
            column: 0,
            path: path.into(),
            message: message.to_string(),
        }
    }

    /// True for errors worth retrying later: the store was unreachable,
    /// dropped the connection, timed out, refused the call
    /// ([`Error::Rejected`]) or its circuit is open. After
    /// [`Error::Unavailable`] and [`Error::Timeout`] a write may have been
    /// applied: retry only idempotent calls
    /// ([`nothing_applied`](Error::nothing_applied) says when any call may
    /// be retried). The read path treats every transient error of the
    /// primary as "unavailable" (e.g. for `stale_if_error`).
    ///
    /// ```
    /// assert!(!polyrouter::Error::invalid_input("s", "e", "x").is_transient());
    /// assert!(polyrouter::Error::timeout("s", "e", "get", std::time::Duration::from_secs(1)).is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Unavailable { .. }
                | Error::Timeout { .. }
                | Error::CircuitOpen { .. }
                | Error::Rejected { .. }
        )
    }

    /// True when the error proves the store applied none of the call, so
    /// even a non-idempotent call (a blind increment) may be sent again:
    /// [`Error::Rejected`] and [`Error::CircuitOpen`]. False for
    /// [`Error::Unavailable`] and [`Error::Timeout`], whose write may or
    /// may not have been applied, and for every non-transient error.
    ///
    /// ```
    /// use polyrouter::{Error, Rejection};
    /// assert!(Error::rejected("db", "user", Rejection::Aborted, "deadlock").nothing_applied());
    /// assert!(!Error::unavailable("db", "user", "connection reset").nothing_applied());
    /// ```
    pub fn nothing_applied(&self) -> bool {
        matches!(self, Error::Rejected { .. } | Error::CircuitOpen { .. })
    }

    /// How long the store asked the caller to wait before trying again
    /// (Cosmos DB's `x-ms-retry-after-ms`), or how long an open circuit
    /// stays open.
    ///
    /// ```
    /// use std::time::Duration;
    /// use polyrouter::{Error, Rejection};
    /// let e = Error::rejected("docs", "", Rejection::Throttled, "429")
    ///     .with_retry_after(Duration::from_millis(40));
    /// assert_eq!(e.retry_after(), Some(Duration::from_millis(40)));
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Rejected { retry_after, .. } => *retry_after,
            Error::CircuitOpen { retry_in, .. } => Some(*retry_in),
            _ => None,
        }
    }

    /// Sets the wait a [`Error::Rejected`] asks for; other errors are
    /// returned unchanged.
    ///
    /// ```
    /// let e = polyrouter::Error::unavailable("s", "", "x").with_retry_after(std::time::Duration::from_secs(1));
    /// assert_eq!(e.retry_after(), None);
    /// ```
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        if let Error::Rejected { retry_after, .. } = &mut self {
            *retry_after = Some(wait);
        }
        self
    }

    /// A short, stable name of the variant, for metrics labels and logs:
    /// `not_found`, `conflict`, `unsupported`, `unavailable`, `timeout`,
    /// `circuit_open`, `rejected`, `invalid_input`, `config`, `backend`,
    /// `not_indexed`, `partial`.
    ///
    /// ```
    /// assert_eq!(polyrouter::Error::unavailable("s", "", "x").kind_name(), "unavailable");
    /// ```
    pub fn kind_name(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "not_found",
            Error::Conflict { .. } => "conflict",
            Error::Unsupported { .. } => "unsupported",
            Error::Unavailable { .. } => "unavailable",
            Error::Timeout { .. } => "timeout",
            Error::CircuitOpen { .. } => "circuit_open",
            Error::Rejected { .. } => "rejected",
            Error::InvalidInput { .. } => "invalid_input",
            Error::Config { .. } => "config",
            Error::Backend { .. } => "backend",
            Error::NotIndexed { .. } => "not_indexed",
            Error::Partial { .. } => "partial",
        }
    }

    /// A copy of this error for callers that shared one store call (e.g.
    /// the waiters of a single-flight read): the same variant and fields;
    /// a driver error in `source` is kept as its message.
    ///
    /// ```
    /// use polyrouter::Error;
    /// let e = Error::timeout("db", "user", "get", std::time::Duration::from_secs(2));
    /// assert!(matches!(e.clone_lossy(), Error::Timeout { .. }));
    /// assert_eq!(e.clone_lossy().to_string(), e.to_string());
    /// ```
    pub fn clone_lossy(&self) -> Error {
        let text =
            |s: &Option<BoxError>| -> Option<BoxError> { s.as_ref().map(|e| e.to_string().into()) };
        match self {
            Error::NotFound { store, entity, key } => Error::NotFound {
                store: store.clone(),
                entity: entity.clone(),
                key: key.clone(),
            },
            Error::Conflict {
                store,
                entity,
                key,
                expected,
                actual,
                etag,
            } => Error::Conflict {
                store: store.clone(),
                entity: entity.clone(),
                key: key.clone(),
                expected: *expected,
                actual: *actual,
                etag: etag.clone(),
            },
            Error::Unsupported {
                store,
                entity,
                capability,
            } => Error::unsupported(store, entity, capability),
            Error::Unavailable {
                store,
                entity,
                message,
                source,
            } => Error::Unavailable {
                store: store.clone(),
                entity: entity.clone(),
                message: message.clone(),
                source: text(source),
            },
            Error::Timeout {
                store,
                entity,
                operation,
                after,
            } => Error::timeout(store, entity, operation, *after),
            Error::CircuitOpen {
                store,
                entity,
                retry_in,
            } => Error::circuit_open(store, entity, *retry_in),
            Error::Rejected {
                store,
                entity,
                reason,
                message,
                retry_after,
                source,
            } => Error::Rejected {
                store: store.clone(),
                entity: entity.clone(),
                reason: *reason,
                message: message.clone(),
                retry_after: *retry_after,
                source: text(source),
            },
            Error::InvalidInput {
                store,
                entity,
                message,
            } => Error::invalid_input(store, entity, message),
            Error::Config {
                file,
                line,
                column,
                path,
                message,
            } => Error::Config {
                file: file.clone(),
                line: *line,
                column: *column,
                path: path.clone(),
                message: message.clone(),
            },
            Error::Backend {
                store,
                entity,
                source,
            } => Error::backend(store, entity, source.to_string()),
            Error::NotIndexed {
                store,
                entity,
                search_store,
                keys,
                source,
            } => Error::NotIndexed {
                store: store.clone(),
                entity: entity.clone(),
                search_store: search_store.clone(),
                keys: keys.clone(),
                source: Box::new(source.clone_lossy()),
            },
            Error::Partial {
                store,
                entity,
                outcomes,
                failed,
            } => Error::Partial {
                store: store.clone(),
                entity: entity.clone(),
                outcomes: outcomes.clone(),
                failed: failed
                    .iter()
                    .map(|f| FailedWrite {
                        index: f.index,
                        key: f.key.clone(),
                        error: f.error.clone_lossy(),
                    })
                    .collect(),
            },
        }
    }

    /// The store this error names, if any.
    ///
    /// ```
    /// assert_eq!(polyrouter::Error::unavailable("db", "", "down").store(), Some("db"));
    /// ```
    pub fn store(&self) -> Option<&str> {
        match self {
            Error::NotFound { store, .. }
            | Error::Conflict { store, .. }
            | Error::Unsupported { store, .. }
            | Error::Unavailable { store, .. }
            | Error::Timeout { store, .. }
            | Error::CircuitOpen { store, .. }
            | Error::Rejected { store, .. }
            | Error::InvalidInput { store, .. }
            | Error::Backend { store, .. }
            | Error::NotIndexed { store, .. }
            | Error::Partial { store, .. } => Some(store),
            Error::Config { .. } => None,
        }
    }

    /// Sets the entity name on errors raised below the entity level.
    ///
    /// ```
    /// let e = polyrouter::Error::unavailable("db", "", "down").with_entity("user");
    /// assert!(e.to_string().contains("entity `user`"));
    /// ```
    pub fn with_entity(mut self, name: &str) -> Self {
        match &mut self {
            Error::NotFound { entity, .. }
            | Error::Conflict { entity, .. }
            | Error::Unsupported { entity, .. }
            | Error::Unavailable { entity, .. }
            | Error::Timeout { entity, .. }
            | Error::CircuitOpen { entity, .. }
            | Error::Rejected { entity, .. }
            | Error::InvalidInput { entity, .. }
            | Error::Backend { entity, .. }
            | Error::NotIndexed { entity, .. }
            | Error::Partial { entity, .. } => {
                if entity.is_empty() {
                    *entity = name.to_string();
                }
            }
            Error::Config { .. } => {}
        }
        self
    }
}
