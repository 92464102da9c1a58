//! `[stores.NAME]` options of a `sqlite` store.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{ConfigDuration, redact_url};

/// Options of a `sqlite` store, as read from `[stores.NAME]`.
///
/// Unknown keys are errors. Only `url` is required.
///
/// ```
/// use polyrouter::backends::sqlite::SqliteConfig;
/// let c = SqliteConfig::new("sqlite://data/app.db");
/// assert_eq!(c.max_connections, 4);
/// assert_eq!(c.busy_timeout.0.as_secs(), 5);
/// assert_eq!(c.purge_interval.0.as_secs(), 60);
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteConfig {
    /// `sqlite://path/to/file.db`, `sqlite:relative.db` or `sqlite::memory:`.
    /// The file and its parent directories are created when missing.
    pub url: String,
    /// The most connections the pool opens (default 4).
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// How long a statement waits for another connection's lock before
    /// failing with [`Error::Unavailable`](crate::Error::Unavailable) (default `"5s"`).
    #[serde(default = "default_busy_timeout")]
    pub busy_timeout: ConfigDuration,
    /// How often expired rows are deleted in the background (default
    /// `"60s"`; `"0s"` turns the purge off — expired rows stay invisible).
    #[serde(default = "default_purge_interval")]
    pub purge_interval: ConfigDuration,
}

fn default_max_connections() -> u32 {
    4
}

/// The longest `busy_timeout`: SQLite takes it as 32-bit milliseconds
/// (24 days fit, 25 do not).
pub(super) const MAX_BUSY_TIMEOUT: Duration = Duration::from_secs(24 * 86_400);

fn default_busy_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(5))
}

fn default_purge_interval() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(60))
}

impl SqliteConfig {
    /// Options with the defaults and the given URL.
    ///
    /// ```
    /// let c = polyrouter::backends::sqlite::SqliteConfig::new("sqlite::memory:");
    /// assert_eq!(c.url, "sqlite::memory:");
    /// ```
    pub fn new(url: impl Into<String>) -> Self {
        SqliteConfig {
            url: url.into(),
            max_connections: default_max_connections(),
            busy_timeout: default_busy_timeout(),
            purge_interval: default_purge_interval(),
        }
    }

    /// Whether the URL names an in-memory database.
    pub(super) fn in_memory(&self) -> bool {
        let rest = strip_scheme(&self.url).unwrap_or("");
        let (path, params) = rest.split_once('?').unwrap_or((rest, ""));
        path == ":memory:" || params.split('&').any(|p| p == "mode=memory")
    }

    /// Checks the options; on error, the option key and what is wrong.
    pub(super) fn validate(&self) -> Result<(), (&'static str, String)> {
        if strip_scheme(&self.url).is_none() {
            return Err((
                "url",
                format!(
                    "{:?} is not a SQLite URL; write `sqlite://path/to/file.db`, `sqlite:relative.db` or `sqlite::memory:`",
                    redact_url(&self.url)
                ),
            ));
        }
        if self.max_connections == 0 {
            return Err(("max_connections", "must be at least 1".into()));
        }
        if self.busy_timeout.0 > MAX_BUSY_TIMEOUT {
            return Err((
                "busy_timeout",
                format!(
                    "{} is longer than SQLite can wait: at most \"24d\" (it counts in 32-bit milliseconds)",
                    self.busy_timeout
                ),
            ));
        }
        Ok(())
    }
}

/// The part after `sqlite://` or `sqlite:`, if the URL has that scheme.
fn strip_scheme(url: &str) -> Option<&str> {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
}

impl fmt::Debug for SqliteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteConfig")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("busy_timeout", &self.busy_timeout)
            .field("purge_interval", &self.purge_interval)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreSpec;

    fn spec(toml_text: &str) -> StoreSpec {
        StoreSpec::new("db", "sqlite", toml::from_str(toml_text).unwrap())
    }

    #[test]
    fn defaults_and_overrides() {
        let c: SqliteConfig = spec("url = \"sqlite:a.db\"").parse().unwrap();
        assert_eq!(c.max_connections, 4);
        assert_eq!(c.busy_timeout.0, Duration::from_secs(5));
        assert_eq!(c.purge_interval.0, Duration::from_secs(60));
        let c: SqliteConfig = spec(
            "url = \"sqlite::memory:\"\nmax_connections = 2\nbusy_timeout = \"250ms\"\npurge_interval = \"1s\"",
        )
        .parse()
        .unwrap();
        assert_eq!(c.max_connections, 2);
        assert_eq!(c.busy_timeout.0, Duration::from_millis(250));
        assert!(c.in_memory());
        assert!(c.validate().is_ok());
    }

    #[test]
    fn unknown_and_missing_keys_are_located_errors() {
        let e = spec("url = \"sqlite:a.db\"\npool = 3")
            .parse::<SqliteConfig>()
            .unwrap_err();
        assert!(e.to_string().contains("stores.db.pool"), "{e}");
        let e = spec("max_connections = 3")
            .parse::<SqliteConfig>()
            .unwrap_err();
        assert!(e.to_string().contains("url"), "{e}");
        let e = spec("url = \"sqlite:a.db\"\nbusy_timeout = \"soon\"")
            .parse::<SqliteConfig>()
            .unwrap_err();
        assert!(e.to_string().contains("stores.db.busy_timeout"), "{e}");
    }

    #[test]
    fn validation() {
        assert_eq!(
            SqliteConfig::new("postgres://u:pw@h/db")
                .validate()
                .unwrap_err()
                .0,
            "url"
        );
        let msg = SqliteConfig::new("postgres://u:pw@h/db")
            .validate()
            .unwrap_err()
            .1;
        assert!(!msg.contains("pw@"), "{msg}");
        let mut c = SqliteConfig::new("sqlite://x/y.db");
        assert!(!c.in_memory());
        c.max_connections = 0;
        assert_eq!(c.validate().unwrap_err().0, "max_connections");
        let mut c = SqliteConfig::new("sqlite::memory:");
        c.busy_timeout = ConfigDuration(MAX_BUSY_TIMEOUT);
        assert!(c.validate().is_ok());
        c.busy_timeout = ConfigDuration(MAX_BUSY_TIMEOUT + Duration::from_millis(1));
        assert_eq!(c.validate().unwrap_err().0, "busy_timeout");
        assert!(SqliteConfig::new("sqlite://?mode=memory").in_memory());
        assert!(format!("{:?}", SqliteConfig::new("sqlite://u:secret@x/y.db")).contains("***"));
    }
}
