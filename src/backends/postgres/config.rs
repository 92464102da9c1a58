//! `[stores.NAME]` options of a `postgres` store.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::backends::sql::{SslMode, check_pool_options};
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
    /// Connections the pool keeps open even when idle (default 0).
    #[serde(default)]
    pub min_connections: u32,
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
    /// (default: the URL's `sslmode`, else `prefer`).
    #[serde(default)]
    pub ssl_mode: Option<SslMode>,
    /// A PEM file of CA certificates to trust (for `verify-ca` /
    /// `verify-full`; default: the system roots).
    #[serde(default)]
    pub ssl_root_cert: Option<String>,
}

fn default_ping_after_idle() -> ConfigDuration {
    ConfigDuration(crate::backends::sql::DEFAULT_PING_AFTER_IDLE)
}

fn default_idle_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(300))
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
            min_connections: 0,
            acquire_timeout: None,
            idle_timeout: default_idle_timeout(),
            ping_after_idle: default_ping_after_idle(),
            ssl_mode: None,
            ssl_root_cert: None,
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
        if unknown_query_parameter(&self.url).is_some() {
            // The parameter is not named: in a malformed URL it may be part
            // of the password.
            return Err((
                "url",
                format!(
                    "the URL has a query parameter the PostgreSQL driver does not know (it knows {}); the driver would ignore it and log it with its value, so it is refused",
                    QUERY_PARAMETERS.join(", ")
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

/// The URL query parameters sqlx reads; it logs any other with its value
/// (a misspelt `pasword=` would put the password in the log).
const QUERY_PARAMETERS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
    "options[NAME]",
];

/// The first query parameter of `url` sqlx does not know, if any.
fn unknown_query_parameter(url: &str) -> Option<String> {
    let after_user_info = url.rfind('@').map_or(0, |at| at + 1);
    let (_, query) = url[after_user_info..].split_once('?')?;
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let key = pair.split_once('=').map_or(pair, |(k, _)| k);
            percent_encoding::percent_decode_str(&key.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
        .find(|key| {
            !(QUERY_PARAMETERS.contains(&key.as_str())
                || key.starts_with("options[") && key.ends_with(']'))
        })
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("schema", &self.schema)
            .field("purge_interval", &self.purge_interval)
            .field("min_connections", &self.min_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("ping_after_idle", &self.ping_after_idle)
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_root_cert", &self.ssl_root_cert)
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
        let c: PostgresConfig = spec(
            "url = \"postgres://h/d\"\nmin_connections = 1\nacquire_timeout = \"2s\"\nidle_timeout = \"0s\"\nssl_mode = \"require\"",
        )
        .parse()
        .unwrap();
        assert_eq!(c.min_connections, 1);
        assert_eq!(c.ssl_mode, Some(SslMode::Require));
        assert!(c.validate().is_ok());
        let e = spec("url = \"postgres://h/d\"\nssl_mode = \"sometimes\"")
            .parse::<PostgresConfig>()
            .unwrap_err();
        assert!(e.to_string().contains("ssl_mode"), "{e}");
        for ok in [
            "postgres://h/d?sslmode=disable&application_name=x&options[search_path]=a",
            "postgres://u:p?w@h/d?password=x",
        ] {
            assert!(PostgresConfig::new(ok).validate().is_ok(), "{ok}");
        }
        let (key, msg) = PostgresConfig::new("postgres://h/d?sslmode=require&pasword=s3cret")
            .validate()
            .unwrap_err();
        assert_eq!(key, "url");
        assert!(
            msg.contains("does not know") && !msg.contains("s3cret"),
            "{msg}"
        );
        let mut c = PostgresConfig::new("postgres://h/d");
        c.min_connections = 9;
        assert_eq!(c.validate().unwrap_err().0, "min_connections");
        let mut c = PostgresConfig::new("postgres://h/d");
        c.ssl_root_cert = Some("/nonexistent/ca.pem".into());
        assert_eq!(c.validate().unwrap_err().0, "ssl_root_cert");
        let mut c = PostgresConfig::new("postgres://h/d");
        c.acquire_timeout = Some(ConfigDuration(Duration::ZERO));
        assert_eq!(c.validate().unwrap_err().0, "acquire_timeout");
    }
}
