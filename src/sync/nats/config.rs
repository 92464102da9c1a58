//! `[buses.NAME]` options of a `nats` bus.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{ConfigDuration, redact_bus_url};

/// Options of a `nats` bus (JetStream), as read from `[buses.NAME]`.
///
/// Unknown keys are errors; only `url` is required. The URL's password or
/// token is a secret: `Debug`, [`Bus::location`](crate::sync::Bus::location)
/// and every error print it as `***`.
///
/// ```
/// use polyrouter::sync::nats::NatsConfig;
/// let c = NatsConfig::new("nats://app:s3cret@127.0.0.1:4222");
/// assert_eq!(c.stream, "POLYROUTER");
/// assert_eq!(c.subject_prefix, "polyrouter");
/// assert_eq!(c.replicas, 1);
/// assert_eq!(c.duplicate_window.0.as_secs(), 120);
/// assert_eq!(c.max_age.0.as_secs(), 7 * 86_400);
/// assert!(!format!("{c:?}").contains("s3cret"));
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// `nats://[user:password@]host[:port]` (or `nats://TOKEN@host`); several
    /// servers of one cluster separated by commas.
    pub url: String,
    /// The JetStream stream holding the events (default `"POLYROUTER"`);
    /// created when missing.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Events of entity `E` are published on subject `{subject_prefix}.E`
    /// (default `"polyrouter"`); the stream holds `{subject_prefix}.>`.
    #[serde(default = "default_subject_prefix")]
    pub subject_prefix: String,
    /// Copies of the stream in a JetStream cluster (default 1; 3 on a
    /// three-node cluster).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// How long an event id is remembered to drop a republished event
    /// (default `"2m"`).
    #[serde(default = "default_duplicate_window")]
    pub duplicate_window: ConfigDuration,
    /// Events older than this are removed, read or not (default `"7d"`).
    #[serde(default = "default_max_age")]
    pub max_age: ConfigDuration,
    /// When set, the oldest events are removed once the stream holds more
    /// bytes than this, read or not.
    pub max_bytes: Option<u64>,
    /// How long a call waits for the connection (at start and after a
    /// loss) before failing with `Error::Unavailable` (default `"5s"`).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: ConfigDuration,
    /// How long a JetStream request (publish acknowledgement, stream and
    /// consumer calls) may take (default `"10s"`).
    #[serde(default = "default_request_timeout")]
    pub request_timeout: ConfigDuration,
    /// An ephemeral group whose member has not fetched for this long is
    /// removed by the server (default `"5m"`).
    #[serde(default = "default_ephemeral_idle")]
    pub ephemeral_idle: ConfigDuration,
}

fn default_stream() -> String {
    "POLYROUTER".into()
}

fn default_subject_prefix() -> String {
    "polyrouter".into()
}

fn default_replicas() -> usize {
    1
}

fn default_duplicate_window() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(120))
}

fn default_max_age() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(7 * 86_400))
}

fn default_connect_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(5))
}

fn default_request_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(10))
}

fn default_ephemeral_idle() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(300))
}

/// A name usable as a NATS subject token and a JetStream stream or
/// consumer name: ASCII letters, digits, `_` and `-`.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl NatsConfig {
    /// Options with the defaults and the given URL.
    ///
    /// ```
    /// let c = polyrouter::sync::nats::NatsConfig::new("nats://127.0.0.1:4222");
    /// assert_eq!(c.url, "nats://127.0.0.1:4222");
    /// ```
    pub fn new(url: impl Into<String>) -> Self {
        NatsConfig {
            url: url.into(),
            stream: default_stream(),
            subject_prefix: default_subject_prefix(),
            replicas: default_replicas(),
            duplicate_window: default_duplicate_window(),
            max_age: default_max_age(),
            max_bytes: None,
            connect_timeout: default_connect_timeout(),
            request_timeout: default_request_timeout(),
            ephemeral_idle: default_ephemeral_idle(),
        }
    }

    /// Checks the options; on error, the option key and what is wrong.
    pub(super) fn validate(&self) -> Result<(), (&'static str, String)> {
        for one in self.url.split(',') {
            let one = one.trim();
            let scheme_ok = ["nats://", "tls://"].iter().any(|s| one.starts_with(s));
            if !scheme_ok || one.parse::<async_nats::ServerAddr>().is_err() {
                return Err((
                    "url",
                    format!(
                        "{:?} is not a NATS URL; write `nats://[user:password@]host[:port]`, several separated by commas",
                        redact_bus_url(one)
                    ),
                ));
            }
        }
        if !is_token(&self.stream) {
            return Err((
                "stream",
                format!(
                    "{:?} is not a stream name: use ASCII letters, digits, `_` and `-`",
                    self.stream
                ),
            ));
        }
        if !self.subject_prefix.split('.').all(is_token) {
            return Err((
                "subject_prefix",
                format!(
                    "{:?} is not a subject prefix: dot-separated tokens of ASCII letters, digits, `_` and `-` (no wildcards)",
                    self.subject_prefix
                ),
            ));
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(("replicas", "must be between 1 and 5".into()));
        }
        for (key, d) in [
            ("duplicate_window", self.duplicate_window),
            ("max_age", self.max_age),
            ("connect_timeout", self.connect_timeout),
            ("request_timeout", self.request_timeout),
            ("ephemeral_idle", self.ephemeral_idle),
        ] {
            if d.0.is_zero() {
                return Err((key, "must be greater than zero".into()));
            }
        }
        if self.duplicate_window.0 > self.max_age.0 {
            return Err((
                "duplicate_window",
                "must not be longer than `max_age` (JetStream refuses it)".into(),
            ));
        }
        if self.max_bytes == Some(0) || self.max_bytes.is_some_and(|b| b > i64::MAX as u64) {
            return Err((
                "max_bytes",
                "must be a positive number of bytes; leave it out for no byte limit".into(),
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsConfig")
            .field("url", &redact_bus_url(&self.url))
            .field("stream", &self.stream)
            .field("subject_prefix", &self.subject_prefix)
            .field("replicas", &self.replicas)
            .field("duplicate_window", &self.duplicate_window)
            .field("max_age", &self.max_age)
            .field("max_bytes", &self.max_bytes)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("ephemeral_idle", &self.ephemeral_idle)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BusSpec;

    fn spec(toml_text: &str) -> BusSpec {
        BusSpec::new("events", "nats", toml::from_str(toml_text).unwrap())
    }

    #[test]
    fn defaults_overrides_and_located_errors() {
        let c: NatsConfig = spec(
            "url = \"nats://h:4222,nats://h:4223\"\nstream = \"S1\"\nsubject_prefix = \"app.events\"\nreplicas = 3\nmax_bytes = 1000000\n",
        )
        .parse()
        .unwrap();
        assert!(c.validate().is_ok(), "{:?}", c.validate());
        assert_eq!((c.replicas, c.max_bytes), (3, Some(1_000_000)));
        let e = spec("url = \"nats://h\"\nstreem = \"x\"")
            .parse::<NatsConfig>()
            .unwrap_err();
        assert!(e.to_string().contains("buses.events.streem"), "{e}");
        let e = spec("stream = \"x\"").parse::<NatsConfig>().unwrap_err();
        assert!(e.to_string().contains("url"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key_and_never_the_secret() {
        let bad = |f: fn(&mut NatsConfig)| {
            let mut c = NatsConfig::new("nats://127.0.0.1:4222");
            f(&mut c);
            c.validate().unwrap_err().0
        };
        assert_eq!(bad(|c| c.stream = "a.b".into()), "stream");
        assert_eq!(bad(|c| c.subject_prefix = "a.*".into()), "subject_prefix");
        assert_eq!(bad(|c| c.subject_prefix = "a..b".into()), "subject_prefix");
        assert_eq!(bad(|c| c.replicas = 0), "replicas");
        assert_eq!(
            bad(|c| c.duplicate_window = ConfigDuration(Duration::from_secs(30 * 86_400))),
            "duplicate_window"
        );
        assert_eq!(bad(|c| c.max_bytes = Some(0)), "max_bytes");
        let (key, msg) = NatsConfig::new("http://u:s3cret@h").validate().unwrap_err();
        assert_eq!(key, "url");
        assert!(!msg.contains("s3cret"), "{msg}");
        let (_, msg) = NatsConfig::new("nats://tok3n@h:99999")
            .validate()
            .unwrap_err();
        assert!(!msg.contains("tok3n"), "{msg}");
    }
}
