//! `[stores.NAME]` options of a `redis` store.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{ConfigDuration, redact_url};

/// Options of a `redis` store, as read from `[stores.NAME]`.
///
/// Unknown keys are errors. Only `url` is required. The URL's password is
/// a secret: `Debug`, [`Store::location`](crate::Store::location) and every
/// error print it as `***`.
///
/// ```
/// use polyrouter::backends::redis::RedisConfig;
/// let c = RedisConfig::new("redis://:hunter2@127.0.0.1:6379/0");
/// assert_eq!(c.key_prefix, "polyrouter");
/// assert_eq!(c.connect_timeout.0.as_secs(), 5);
/// assert_eq!(c.response_timeout.0.as_secs(), 10);
/// assert!(!format!("{c:?}").contains("hunter2"));
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user[:password]@]host[:port][/db]`, or
    /// `redis+unix:///path/to/redis.sock[?db=N]` / `unix:///path`.
    pub url: String,
    /// The first part of every key this store writes (default
    /// `"polyrouter"`): records are `{key_prefix}:{table}:{key}`. Give each
    /// application (or test run) sharing a Redis its own prefix.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// How long opening a connection may take (default `"5s"`), at
    /// start-up and on every reconnect.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: ConfigDuration,
    /// How long a command may wait for its reply (default `"10s"`) before
    /// failing with the transient [`Error::Unavailable`](crate::Error::Unavailable).
    #[serde(default = "default_response_timeout")]
    pub response_timeout: ConfigDuration,
}

fn default_key_prefix() -> String {
    "polyrouter".into()
}

fn default_connect_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(5))
}

fn default_response_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(10))
}

impl RedisConfig {
    /// Options with the defaults and the given URL.
    ///
    /// ```
    /// let c = polyrouter::backends::redis::RedisConfig::new("redis://127.0.0.1:6379");
    /// assert_eq!(c.url, "redis://127.0.0.1:6379");
    /// ```
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            key_prefix: default_key_prefix(),
            connect_timeout: default_connect_timeout(),
            response_timeout: default_response_timeout(),
        }
    }

    /// The same options with another key prefix.
    ///
    /// ```
    /// let c = polyrouter::backends::redis::RedisConfig::new("redis://h").with_key_prefix("app1");
    /// assert_eq!(c.key_prefix, "app1");
    /// ```
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Checks the options; on error, the option key and what is wrong.
    pub(super) fn validate(&self) -> Result<(), (&'static str, String)> {
        const SCHEMES: [&str; 4] = ["redis://", "redis+unix://", "unix://", "rediss://"];
        if !SCHEMES.iter().any(|s| self.url.starts_with(s)) {
            return Err((
                "url",
                format!(
                    "{:?} is not a Redis URL; write `redis://[user:password@]host[:port][/db]` or `redis+unix:///path/to/redis.sock`",
                    redact_url(&self.url)
                ),
            ));
        }
        if self.url.starts_with("rediss://") {
            return Err((
                "url",
                "TLS (`rediss://`) is not supported by this build of polyrouter; use `redis://` (or a TLS-terminating proxy)"
                    .into(),
            ));
        }
        if self.key_prefix.is_empty() {
            return Err((
                "key_prefix",
                "must not be empty; it namespaces every key this store writes".into(),
            ));
        }
        if self.connect_timeout.0.is_zero() {
            return Err(("connect_timeout", "must be greater than zero".into()));
        }
        if self.response_timeout.0.is_zero() {
            return Err(("response_timeout", "must be greater than zero".into()));
        }
        Ok(())
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreSpec;

    fn spec(toml_text: &str) -> StoreSpec {
        StoreSpec::new("cache", "redis", toml::from_str(toml_text).unwrap())
    }

    #[test]
    fn defaults_and_overrides() {
        let c: RedisConfig = spec("url = \"redis://127.0.0.1:6379\"").parse().unwrap();
        assert_eq!(c.key_prefix, "polyrouter");
        assert_eq!(c.connect_timeout.0, Duration::from_secs(5));
        assert_eq!(c.response_timeout.0, Duration::from_secs(10));
        assert!(c.validate().is_ok());
        let c: RedisConfig = spec(
            "url = \"redis://h/2\"\nkey_prefix = \"app\"\nconnect_timeout = \"250ms\"\nresponse_timeout = \"1s\"",
        )
        .parse()
        .unwrap();
        assert_eq!(c.key_prefix, "app");
        assert_eq!(c.connect_timeout.0, Duration::from_millis(250));
        assert_eq!(c.response_timeout.0, Duration::from_secs(1));
    }

    #[test]
    fn unknown_and_missing_keys_are_located_errors() {
        let e = spec("url = \"redis://h\"\npool = 3")
            .parse::<RedisConfig>()
            .unwrap_err();
        assert!(e.to_string().contains("stores.cache.pool"), "{e}");
        let e = spec("key_prefix = \"x\"")
            .parse::<RedisConfig>()
            .unwrap_err();
        assert!(e.to_string().contains("url"), "{e}");
        let e = spec("url = \"redis://h\"\nresponse_timeout = \"soon\"")
            .parse::<RedisConfig>()
            .unwrap_err();
        assert!(
            e.to_string().contains("stores.cache.response_timeout"),
            "{e}"
        );
    }

    #[test]
    fn validation_never_prints_the_password() {
        let (key, msg) = RedisConfig::new("postgres://u:s3cret@h/db")
            .validate()
            .unwrap_err();
        assert_eq!(key, "url");
        assert!(!msg.contains("s3cret"), "{msg}");
        assert_eq!(
            RedisConfig::new("rediss://h").validate().unwrap_err().0,
            "url"
        );
        assert_eq!(
            RedisConfig::new("redis://h")
                .with_key_prefix("")
                .validate()
                .unwrap_err()
                .0,
            "key_prefix"
        );
        let mut c = RedisConfig::new("redis://h");
        c.response_timeout = ConfigDuration(Duration::ZERO);
        assert_eq!(c.validate().unwrap_err().0, "response_timeout");
        let dbg = format!("{:?}", RedisConfig::new("redis://app:s3cret@h:6379/1"));
        assert!(!dbg.contains("s3cret") && dbg.contains("***"), "{dbg}");
    }
}
