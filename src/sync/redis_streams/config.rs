//! `[buses.NAME]` options of a `redis-streams` bus.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{ConfigDuration, redact_bus_url};

/// Options of a `redis-streams` bus, as read from `[buses.NAME]`.
///
/// Unknown keys are errors; only `url` is required. The URL's password is
/// a secret: `Debug`, [`Bus::location`](crate::sync::Bus::location) and
/// every error print it as `***`.
///
/// ```
/// use polyrouter::sync::redis_streams::RedisStreamsConfig;
/// let c = RedisStreamsConfig::new("redis://:s3cret@127.0.0.1:6379");
/// assert_eq!(c.prefix, "polyrouter:events");
/// assert_eq!(c.duplicate_window.0.as_secs(), 120);
/// assert_eq!(c.max_len, None);
/// assert!(!format!("{c:?}").contains("s3cret"));
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisStreamsConfig {
    /// `redis://[user[:password]@]host[:port][/db]`.
    pub url: String,
    /// Events of entity `E` go to the stream `{prefix}:E` (default
    /// `"polyrouter:events"`); every key the bus writes starts with it.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// How long an event id is remembered to drop a republished event
    /// (default `"2m"`).
    #[serde(default = "default_duplicate_window")]
    pub duplicate_window: ConfigDuration,
    /// When set, a stream longer than this is trimmed of its oldest entries
    /// that every consumer group has read and acknowledged; entries a group
    /// still needs are kept, so a stream can stay longer. Unset (default):
    /// never trimmed.
    pub max_len: Option<u64>,
    /// How long opening a connection may take (default `"5s"`).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: ConfigDuration,
    /// How long a command may wait for its reply (default `"10s"`).
    #[serde(default = "default_response_timeout")]
    pub response_timeout: ConfigDuration,
    /// An ephemeral group whose member has not fetched for this long is
    /// removed by the next member of any group that subscribes or fetches
    /// (default `"5m"`).
    #[serde(default = "default_ephemeral_idle")]
    pub ephemeral_idle: ConfigDuration,
}

fn default_prefix() -> String {
    "polyrouter:events".into()
}

fn default_duplicate_window() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(120))
}

fn default_connect_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(5))
}

fn default_response_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(10))
}

fn default_ephemeral_idle() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(300))
}

/// An entity or group name: ASCII letters, digits, `_` and `-`.
pub(crate) fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl RedisStreamsConfig {
    /// Options with the defaults and the given URL.
    ///
    /// ```
    /// let c = polyrouter::sync::redis_streams::RedisStreamsConfig::new("redis://127.0.0.1:6379");
    /// assert_eq!(c.url, "redis://127.0.0.1:6379");
    /// ```
    pub fn new(url: impl Into<String>) -> Self {
        RedisStreamsConfig {
            url: url.into(),
            prefix: default_prefix(),
            duplicate_window: default_duplicate_window(),
            max_len: None,
            connect_timeout: default_connect_timeout(),
            response_timeout: default_response_timeout(),
            ephemeral_idle: default_ephemeral_idle(),
        }
    }

    /// The same options with another key prefix.
    ///
    /// ```
    /// let c = polyrouter::sync::redis_streams::RedisStreamsConfig::new("redis://h").with_prefix("app:ev");
    /// assert_eq!(c.prefix, "app:ev");
    /// ```
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Checks the options; on error, the option key and what is wrong.
    pub(super) fn validate(&self) -> Result<(), (&'static str, String)> {
        if !self.url.starts_with("redis://") && !self.url.starts_with("redis+unix://") {
            return Err((
                "url",
                format!(
                    "{:?} is not a Redis URL; write `redis://[user:password@]host[:port][/db]`",
                    redact_bus_url(&self.url)
                ),
            ));
        }
        let prefix_ok = !self.prefix.is_empty()
            && self.prefix.len() <= 200
            && self
                .prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-:.".contains(c));
        if !prefix_ok {
            return Err((
                "prefix",
                format!(
                    "{:?} is not a key prefix: use ASCII letters, digits, `_`, `-`, `:` and `.`",
                    self.prefix
                ),
            ));
        }
        for (key, d) in [
            ("duplicate_window", self.duplicate_window),
            ("connect_timeout", self.connect_timeout),
            ("response_timeout", self.response_timeout),
            ("ephemeral_idle", self.ephemeral_idle),
        ] {
            if d.0.is_zero() {
                return Err((key, "must be greater than zero".into()));
            }
        }
        if self.max_len == Some(0) {
            return Err((
                "max_len",
                "must be at least 1; leave it out to never trim".into(),
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for RedisStreamsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStreamsConfig")
            .field("url", &redact_bus_url(&self.url))
            .field("prefix", &self.prefix)
            .field("duplicate_window", &self.duplicate_window)
            .field("max_len", &self.max_len)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("ephemeral_idle", &self.ephemeral_idle)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BusSpec;

    fn spec(toml_text: &str) -> BusSpec {
        BusSpec::new(
            "events",
            "redis-streams",
            toml::from_str(toml_text).unwrap(),
        )
    }

    #[test]
    fn defaults_overrides_and_located_errors() {
        let c: RedisStreamsConfig =
            spec("url = \"redis://h/1\"\nprefix = \"app:ev\"\nmax_len = 10000\n")
                .parse()
                .unwrap();
        assert!(c.validate().is_ok());
        assert_eq!((c.prefix.as_str(), c.max_len), ("app:ev", Some(10_000)));
        let e = spec("url = \"redis://h\"\nmaxlen = 3")
            .parse::<RedisStreamsConfig>()
            .unwrap_err();
        assert!(e.to_string().contains("buses.events.maxlen"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key_and_never_the_secret() {
        let (key, msg) = RedisStreamsConfig::new("nats://u:s3cret@h")
            .validate()
            .unwrap_err();
        assert_eq!(key, "url");
        assert!(!msg.contains("s3cret"), "{msg}");
        for bad in ["", "a b", "ev*", "x[1]"] {
            let c = RedisStreamsConfig::new("redis://h").with_prefix(bad);
            assert_eq!(c.validate().unwrap_err().0, "prefix", "{bad:?}");
        }
        let mut c = RedisStreamsConfig::new("redis://h");
        c.max_len = Some(0);
        assert_eq!(c.validate().unwrap_err().0, "max_len");
    }
}
