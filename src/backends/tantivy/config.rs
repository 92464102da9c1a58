//! `[stores.NAME]` options of a `tantivy` store.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::ConfigDuration;

/// Options of a `tantivy` store, as read from `[stores.NAME]`.
///
/// Unknown keys are errors. Only `path` is required.
///
/// ```
/// use polyrouter::backends::tantivy::TantivyConfig;
/// let c = TantivyConfig::new("data/search");
/// assert_eq!(c.commit_interval.0.as_millis(), 1000);
/// assert_eq!(c.commit_docs, 10_000);
/// assert_eq!(c.writer_memory_mb, 50);
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TantivyConfig {
    /// The directory holding one sub-directory per index (created when missing).
    pub path: PathBuf,
    /// Writes are committed (and become searchable) at least this often
    /// (default `"1s"`).
    #[serde(default = "default_commit_interval")]
    pub commit_interval: ConfigDuration,
    /// A commit also happens as soon as this many writes are pending
    /// (default 10 000).
    #[serde(default = "default_commit_docs")]
    pub commit_docs: usize,
    /// Indexing memory budget per index, in MB (default 50, at least 15).
    #[serde(default = "default_writer_memory_mb")]
    pub writer_memory_mb: usize,
}

fn default_commit_interval() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(1))
}

fn default_commit_docs() -> usize {
    10_000
}

fn default_writer_memory_mb() -> usize {
    50
}

impl TantivyConfig {
    /// Options with the defaults and the given directory.
    ///
    /// ```
    /// let c = polyrouter::backends::tantivy::TantivyConfig::new("/tmp/x");
    /// assert_eq!(c.path, std::path::PathBuf::from("/tmp/x"));
    /// ```
    pub fn new(path: impl Into<PathBuf>) -> Self {
        TantivyConfig {
            path: path.into(),
            commit_interval: default_commit_interval(),
            commit_docs: default_commit_docs(),
            writer_memory_mb: default_writer_memory_mb(),
        }
    }

    /// Checks the options; on error, the option key and what is wrong.
    pub(super) fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.path.as_os_str().is_empty() {
            return Err(("path", "must name a directory".into()));
        }
        if self.commit_interval.0.is_zero() {
            return Err(("commit_interval", "must be greater than zero".into()));
        }
        if self.commit_docs == 0 {
            return Err(("commit_docs", "must be at least 1".into()));
        }
        if self.writer_memory_mb < 15 {
            return Err((
                "writer_memory_mb",
                "tantivy needs at least 15 MB per indexing thread".into(),
            ));
        }
        Ok(())
    }
}
