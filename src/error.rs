//! The one error type every polyrouter call returns.
//!
//! Every variant names the store and the entity involved, and its message says
//! what to do next, in the spirit of sqlx's and tokio's errors.

use std::fmt;

use crate::store::Precondition;

/// A boxed error from a driver or another library.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result<T, polyrouter::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in polyrouter.
///
/// Match on the variant to decide what to do: [`Error::Unavailable`] is
/// transient and safe to retry for idempotent operations; [`Error::Conflict`]
/// means a precondition failed and nothing was written; [`Error::Unsupported`]
/// means the store cannot honour the request, which polyrouter never ignores.
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

    /// True for errors worth retrying: the store was unreachable or dropped
    /// the connection. Retry only idempotent operations.
    ///
    /// ```
    /// assert!(!polyrouter::Error::invalid_input("s", "e", "x").is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
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
            | Error::InvalidInput { store, .. }
            | Error::Backend { store, .. }
            | Error::NotIndexed { store, .. } => Some(store),
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
            | Error::InvalidInput { entity, .. }
            | Error::Backend { entity, .. }
            | Error::NotIndexed { entity, .. } => {
                if entity.is_empty() {
                    *entity = name.to_string();
                }
            }
            Error::Config { .. } => {}
        }
        self
    }
}
