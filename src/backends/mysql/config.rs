//! `[stores.NAME]` options of a `mysql` store.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::backends::sql::{SslMode, check_pool_options};
use crate::config::{ConfigDuration, redact_url};

/// Options of a `mysql` store (MySQL 8 or MariaDB 10.5+), as read from
/// `[stores.NAME]`.
///
/// Unknown keys are errors. Only `url` is required.
///
/// ```
/// use polyrouter::backends::mysql::MySqlConfig;
/// let c = MySqlConfig::new("mysql://app@db:3306/app");
/// assert_eq!(c.max_connections, 8);
/// assert_eq!(c.connect_timeout.0.as_secs(), 5);
/// assert_eq!(c.database, None);
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MySqlConfig {
    /// `mysql://user:password@host:port/database?…` (also `mariadb://`).
    pub url: String,
    /// The database the tables live in, created when missing (default: the
    /// URL's).
    #[serde(default)]
    pub database: Option<String>,
    /// The most connections the pool opens (default 8).
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Connections the pool keeps open even when idle (default 0).
    #[serde(default)]
    pub min_connections: u32,
    /// How long connecting may take before failing with
    /// [`Error::Unavailable`](crate::Error::Unavailable) (default `"5s"`).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: ConfigDuration,
    /// How long a call waits for a free pooled connection (default:
    /// `connect_timeout`).
    #[serde(default)]
    pub acquire_timeout: Option<ConfigDuration>,
    /// How long an idle connection stays open (default `"5m"`; `"0s"`:
    /// forever).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: ConfigDuration,
    /// A pooled connection idle at least this long is pinged before use
    /// (default `"30s"`; `"0s"`: before every use). docs/configuration.md
    /// has the trade-off.
    #[serde(default = "default_ping_after_idle")]
    pub ping_after_idle: ConfigDuration,
    /// TLS: `disable`, `prefer`, `require`, `verify-ca`, `verify-full`
    /// (default: the URL's `ssl-mode`, else `prefer`).
    #[serde(default)]
    pub ssl_mode: Option<SslMode>,
    /// A PEM file of CA certificates to trust (for `verify-ca` /
    /// `verify-full`).
    #[serde(default)]
    pub ssl_root_cert: Option<String>,
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

fn default_ping_after_idle() -> ConfigDuration {
    ConfigDuration(crate::backends::sql::DEFAULT_PING_AFTER_IDLE)
}

fn default_idle_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(300))
}

fn default_purge_interval() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(60))
}

impl MySqlConfig {
    /// Options with the defaults and the given URL.
    ///
    /// ```
    /// let c = polyrouter::backends::mysql::MySqlConfig::new("mysql://h/db");
    /// assert_eq!(c.url, "mysql://h/db");
    /// ```
    pub fn new(url: impl Into<String>) -> Self {
        MySqlConfig {
            url: url.into(),
            database: None,
            max_connections: default_max_connections(),
            min_connections: 0,
            connect_timeout: default_connect_timeout(),
            acquire_timeout: None,
            idle_timeout: default_idle_timeout(),
            ping_after_idle: default_ping_after_idle(),
            ssl_mode: None,
            ssl_root_cert: None,
            purge_interval: default_purge_interval(),
        }
    }

    /// Checks the options; on error, the option key and what is wrong.
    pub(super) fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(self.url.starts_with("mysql://") || self.url.starts_with("mariadb://")) {
            return Err((
                "url",
                format!(
                    "{:?} is not a MySQL URL; write `mysql://user:password@host:3306/database`",
                    redact_url(&self.url)
                ),
            ));
        }
        check_pool_options(
            self.max_connections,
            self.min_connections,
            self.acquire_timeout.as_ref(),
            Some(&self.idle_timeout),
            self.ssl_mode,
            self.ssl_root_cert.as_deref(),
        )?;
        if self.connect_timeout.0.is_zero() {
            return Err(("connect_timeout", "must be more than 0s".into()));
        }
        if let Some(d) = &self.database {
            if d.is_empty() || d.contains('\0') || d.chars().count() > 64 || d.ends_with(' ') {
                return Err((
                    "database",
                    format!(
                        "{d:?} is not a usable database name (1 to 64 characters, no NUL, no trailing space)"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The URL with a `mariadb://` scheme read as `mysql://`.
    pub(super) fn mysql_url(&self) -> String {
        match self.url.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None => self.url.clone(),
        }
    }
}

impl fmt::Debug for MySqlConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MySqlConfig")
            .field("url", &redact_url(&self.url))
            .field("database", &self.database)
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("ping_after_idle", &self.ping_after_idle)
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_root_cert", &self.ssl_root_cert)
            .field("purge_interval", &self.purge_interval)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreSpec;

    fn spec(toml_text: &str) -> StoreSpec {
        StoreSpec::new("db", "mysql", toml::from_str(toml_text).unwrap())
    }

    #[test]
    fn defaults_overrides_and_validation() {
        let c: MySqlConfig = spec("url = \"mysql://h/d\"").parse().unwrap();
        assert_eq!(c.max_connections, 8);
        assert!(c.validate().is_ok());
        let c: MySqlConfig = spec(
            "url = \"mariadb://h/d\"\nmax_connections = 2\nmin_connections = 1\nacquire_timeout = \"1s\"\nidle_timeout = \"0s\"\nssl_mode = \"disable\"\ndatabase = \"app\"",
        )
        .parse()
        .unwrap();
        assert!(c.validate().is_ok());
        assert_eq!(c.mysql_url(), "mysql://h/d");
        assert_eq!(c.ssl_mode, Some(SslMode::Disable));
        let e = spec("url = \"mysql://h/d\"\npool = 3")
            .parse::<MySqlConfig>()
            .unwrap_err();
        assert!(e.to_string().contains("stores.db.pool"), "{e}");
        let e = MySqlConfig::new("postgres://u:pw@h/db")
            .validate()
            .unwrap_err();
        assert_eq!(e.0, "url");
        assert!(!e.1.contains("pw@"), "{}", e.1);
        let mut c = MySqlConfig::new("mysql://h/d");
        c.min_connections = 20;
        assert_eq!(c.validate().unwrap_err().0, "min_connections");
        let mut c = MySqlConfig::new("mysql://h/d");
        c.database = Some(String::new());
        assert_eq!(c.validate().unwrap_err().0, "database");
        assert!(format!("{:?}", MySqlConfig::new("mysql://u:secret@x/y")).contains("***"));
    }
}
