//! `[stores.NAME]` options of an `fs` blob store.

use std::path::PathBuf;

use serde::Deserialize;

/// Options of an `fs` store, as read from `[stores.NAME]`.
///
/// ```
/// let c = polyrouter::backends::fs::FsConfig::new("data/blobs");
/// assert!(c.create_if_missing);
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsConfig {
    /// The directory that holds the blobs (created when missing, unless
    /// `create_if_missing = false`).
    pub root: PathBuf,
    /// Create `root` when it does not exist (default `true`); otherwise a
    /// missing root is a configuration error.
    #[serde(default = "yes")]
    pub create_if_missing: bool,
}

fn yes() -> bool {
    true
}

impl FsConfig {
    /// Options for a root directory, created when missing.
    ///
    /// ```
    /// let c = polyrouter::backends::fs::FsConfig::new("/tmp/x");
    /// assert_eq!(c.root, std::path::PathBuf::from("/tmp/x"));
    /// ```
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FsConfig {
            root: root.into(),
            create_if_missing: true,
        }
    }
}
