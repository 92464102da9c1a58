//! `[stores.NAME]` options of a `postgres` store.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{ConfigDuration, redact_url};

/// Options of a `postgres` store, as read from `[stores.NAME]`.
///
/// Unknown keys are errors. Only `url` is required.
///
/// ```
/// use polyrouter::backends::postgres::PostgresConfig;
/// let c = PostgresConfig::new("postgres://app@db:5432/app");
/// assert_eq!(c.max_connections, 8);
/// assert_eq!(c.connect_timeout.0.as_secs(), 5);
/// assert_eq!(c.purge_interval.0.as_secs(), 60);
/// assert_eq!(c.schema, None);
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/database?…` (also `postgresql://`).
    pub url: String,
    /// The most connections the pool opens (default 8).
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// How long connecting, or waiting for a free pooled connection, may
    /// take before failing with [`Error::Unavailable`](crate::Error::Unavailable) (default `"5s"`).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: ConfigDuration,
    /// The schema the tables live in (created when missing); default: the
    /// server's `search_path` (usually `public`).
    #[serde(default)]
    pub schema: Option<String>,
    /// How often expired rows are deleted in the background (default
    /// `"60s"`; `"0s"` turns the purge off — expired rows stay invisible).
    #[serde(default = "default_purge_interval")]
    pub purge_interval: ConfigDuration,
}

fn default_max_connections() -> u32 {
    8
}

fn default_connect_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(5))
}

fn default_purge_interval() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(60))
}

impl PostgresConfig {
    /// Options with the defaults and the given URL.
    ///
    /// ```
    /// let c = polyrouter::backends::postgres::PostgresConfig::new("postgres://h/db");
    /// assert_eq!(c.url, "postgres://h/db");
    /// ```
    pub fn new(url: impl Into<String>) -> Self {
        PostgresConfig {
            url: url.into(),
            max_connections: default_max_connections(),
            connect_timeout: default_connect_timeout(),
            schema: None,
            purge_interval: default_purge_interval(),
        }
    }

    /// Checks the options; on error, the option key and what is wrong.
    pub(super) fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")) {
            return Err((
                "url",
                format!(
                    "{:?} is not a PostgreSQL URL; write `postgres://user:password@host:5432/database`",
                    redact_url(&self.url)
                ),
            ));
        }
        if self.max_connections == 0 {
            return Err(("max_connections", "must be at least 1".into()));
        }
        if self.connect_timeout.0.is_zero() {
            return Err(("connect_timeout", "must be more than 0s".into()));
        }
        if let Some(s) = &self.schema {
            if s.is_empty() || s.contains('\0') || s.len() > 63 {
                return Err((
                    "schema",
                    format!("{s:?} is not a usable schema name (1 to 63 bytes, no NUL)"),
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("schema", &self.schema)
            .field("purge_interval", &self.purge_interval)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreSpec;

    fn spec(toml_text: &str) -> StoreSpec {
        StoreSpec::new("db", "postgres", toml::from_str(toml_text).unwrap())
    }

    #[test]
    fn defaults_overrides_and_validation() {
        let c: PostgresConfig = spec("url = \"postgres://h/d\"").parse().unwrap();
        assert_eq!(c.max_connections, 8);
        assert!(c.validate().is_ok());
        let c: PostgresConfig = spec(
            "url = \"postgres://h/d\"\nmax_connections = 2\nconnect_timeout = \"250ms\"\nschema = \"app\"\npurge_interval = \"1s\"",
        )
        .parse()
        .unwrap();
        assert_eq!(c.max_connections, 2);
        assert_eq!(c.connect_timeout.0, Duration::from_millis(250));
        assert_eq!(c.schema.as_deref(), Some("app"));
        let e = spec("url = \"postgres://h/d\"\npool = 3")
            .parse::<PostgresConfig>()
            .unwrap_err();
        assert!(e.to_string().contains("stores.db.pool"), "{e}");
        let e = PostgresConfig::new("mysql://u:pw@h/db")
            .validate()
            .unwrap_err();
        assert_eq!(e.0, "url");
        assert!(!e.1.contains("pw@"), "{}", e.1);
        assert!(format!("{:?}", PostgresConfig::new("postgres://u:secret@x/y")).contains("***"));
    }
}
