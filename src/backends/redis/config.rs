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
    /// Whether `url` names a node of a Redis Cluster (default `false`):
    /// the store then discovers the cluster from it (and from
    /// `cluster_urls`), sends each command to the master of its key's slot
    /// and follows `MOVED` / `ASK` redirects and failovers.
    #[serde(default)]
    pub cluster: bool,
    /// More cluster nodes to discover the cluster from, when `url`'s node
    /// is down at start-up (only with `cluster = true`).
    #[serde(default)]
    pub cluster_urls: Vec<String>,
    /// After each write, wait until this many replicas have it (`WAIT`;
    /// default `0`: don't wait). A write not on that many replicas within
    /// `wait_timeout` fails with [`Error::Unavailable`](crate::Error::Unavailable).
    #[serde(default)]
    pub wait_replicas: u32,
    /// How long a write waits for `wait_replicas` (default `"1s"`).
    #[serde(default = "default_wait_timeout")]
    pub wait_timeout: ConfigDuration,
}

fn default_wait_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(1))
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
            cluster: false,
            cluster_urls: Vec::new(),
            wait_replicas: 0,
            wait_timeout: default_wait_timeout(),
        }
    }

    /// Options for a Redis Cluster reached through any of `urls` (at least
    /// one), with the defaults otherwise.
    ///
    /// ```
    /// let c = polyrouter::backends::redis::RedisConfig::cluster(["redis://127.0.0.1:7101", "redis://127.0.0.1:7102"]);
    /// assert!(c.cluster);
    /// assert_eq!(c.url, "redis://127.0.0.1:7101");
    /// assert_eq!(c.cluster_urls, ["redis://127.0.0.1:7102"]);
    /// ```
    pub fn cluster<S: Into<String>>(urls: impl IntoIterator<Item = S>) -> Self {
        let mut urls = urls.into_iter().map(Into::into);
        let mut c = RedisConfig::new(urls.next().unwrap_or_default());
        c.cluster = true;
        c.cluster_urls = urls.collect();
        c
    }

    /// The same options, waiting after each write until `replicas`
    /// replicas have it (at most `timeout`).
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = polyrouter::backends::redis::RedisConfig::new("redis://h").with_wait_replicas(1, Duration::from_secs(2));
    /// assert_eq!(c.wait_replicas, 1);
    /// ```
    pub fn with_wait_replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.wait_replicas = replicas;
        self.wait_timeout = ConfigDuration(timeout);
        self
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
        check_url("url", &self.url)?;
        if !self.cluster && !self.cluster_urls.is_empty() {
            return Err((
                "cluster_urls",
                "is only for a Redis Cluster; add `cluster = true`, or remove it".into(),
            ));
        }
        if self.cluster {
            for url in std::iter::once(&self.url).chain(&self.cluster_urls) {
                let key = if *url == self.url {
                    "url"
                } else {
                    "cluster_urls"
                };
                check_url(key, url)?;
                if !url.starts_with("redis://") {
                    return Err((
                        key,
                        format!(
                            "{:?}: a Redis Cluster is reached over TCP; write `redis://[user:password@]host:port`",
                            redact_url(url)
                        ),
                    ));
                }
                let path = url["redis://".len()..].split_once('/').map(|(_, p)| p);
                if path.is_some_and(|p| !p.is_empty() && p != "0") {
                    return Err((
                        key,
                        format!(
                            "{:?} names a database; a Redis Cluster has only database 0 — remove the `/N`",
                            redact_url(url)
                        ),
                    ));
                }
            }
            if self.key_prefix.contains(['{', '}']) {
                return Err((
                    "key_prefix",
                    "must not hold `{` or `}` on a Redis Cluster: they would choose the hash slot of every key".into(),
                ));
            }
        }
        if self.wait_replicas > 0 && self.wait_timeout.0.is_zero() {
            return Err((
                "wait_timeout",
                "must be greater than zero (a zero `WAIT` timeout waits forever)".into(),
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
            .field("cluster", &self.cluster)
            .field(
                "cluster_urls",
                &self
                    .cluster_urls
                    .iter()
                    .map(|u| redact_url(u))
                    .collect::<Vec<_>>(),
            )
            .field("wait_replicas", &self.wait_replicas)
            .field("wait_timeout", &self.wait_timeout)
            .finish()
    }
}

/// Checks that `url` is a Redis URL this build can use.
fn check_url(key: &'static str, url: &str) -> Result<(), (&'static str, String)> {
    const SCHEMES: [&str; 4] = ["redis://", "redis+unix://", "unix://", "rediss://"];
    if !SCHEMES.iter().any(|s| url.starts_with(s)) {
        return Err((
            key,
            format!(
                "{:?} is not a Redis URL; write `redis://[user:password@]host[:port][/db]` or `redis+unix:///path/to/redis.sock`",
                redact_url(url)
            ),
        ));
    }
    if url.starts_with("rediss://") {
        return Err((
            key,
            "TLS (`rediss://`) is not supported by this build of polyrouter; use `redis://` (or a TLS-terminating proxy)"
                .into(),
        ));
    }
    Ok(())
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
        let dbg = format!(
            "{:?}",
            RedisConfig::cluster(["redis://:s3cret@h:7101", "redis://:s3cret@h:7102"])
        );
        assert!(!dbg.contains("s3cret") && dbg.contains("***"), "{dbg}");
    }

    #[test]
    fn cluster_options() {
        let c: RedisConfig = spec(
            "url = \"redis://127.0.0.1:7101\"\ncluster = true\ncluster_urls = [\"redis://127.0.0.1:7102\"]\nwait_replicas = 1\nwait_timeout = \"2s\"",
        )
        .parse()
        .unwrap();
        assert!(c.cluster && c.validate().is_ok());
        assert_eq!(c.cluster_urls, ["redis://127.0.0.1:7102"]);
        assert_eq!(
            (c.wait_replicas, c.wait_timeout.0),
            (1, Duration::from_secs(2))
        );
        let bad = |c: RedisConfig| c.validate().unwrap_err().0;
        assert_eq!(bad(RedisConfig::cluster(["redis://h:7101/2"])), "url");
        assert_eq!(
            bad(RedisConfig::cluster(["redis://h:7101", "unix:///s"])),
            "cluster_urls"
        );
        assert_eq!(
            bad(RedisConfig::cluster(["redis://h:7101"]).with_key_prefix("a{b}")),
            "key_prefix"
        );
        let mut c = RedisConfig::new("redis://h");
        c.cluster_urls = vec!["redis://h2".into()];
        assert_eq!(bad(c), "cluster_urls");
        assert_eq!(
            bad(RedisConfig::new("redis://h").with_wait_replicas(1, Duration::ZERO)),
            "wait_timeout"
        );
        assert!(
            RedisConfig::cluster(["redis://h:7101/0"])
                .validate()
                .is_ok()
        );
    }
}
