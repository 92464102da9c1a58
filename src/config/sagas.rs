//! `[sagas]`: where the saga log lives and how workers share it.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigDuration;

/// `[sagas]`: the durable saga log and its workers (see docs/sagas.md).
///
/// ```toml
/// [sagas]
/// store = "main"                 # a record store: any SQL store, or memory for tests
/// table = "polyrouter_sagas"     # optional
/// lease = "30s"                  # optional: how long a worker owns a saga between writes
/// poll_interval = "1s"           # optional: how often idle workers look for work
/// concurrency = 16               # optional: sagas one worker runs at a time
/// compensation_attempts = 10     # optional: then the saga is parked
/// compensation_backoff = "100ms" # optional: first backoff between compensation attempts
/// compensation_max_backoff = "10s"
/// ```
///
/// ```
/// let cfg = polyrouter::config::Config::parse(r#"
///     [stores.main]
///     kind = "memory"
///     [sagas]
///     store = "main"
///     lease = "10s"
/// "#, "<string>").unwrap();
/// let s = cfg.sagas.unwrap();
/// assert_eq!(s.lease.0.as_secs(), 10);
/// assert_eq!(s.table, "polyrouter_sagas");
/// assert_eq!(s.compensation_attempts, 10);
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SagasConfig {
    /// The store holding the log (a record store with conditional writes).
    pub store: String,
    /// The log's table (default `polyrouter_sagas`).
    #[serde(default = "default_table")]
    pub table: String,
    /// How long a worker owns a running saga after its last write to the
    /// log; another worker takes over an expired lease (default `"30s"`).
    #[serde(default = "default_lease")]
    pub lease: ConfigDuration,
    /// How often an idle worker looks for sagas to resume (default `"1s"`).
    #[serde(default = "default_poll")]
    pub poll_interval: ConfigDuration,
    /// Sagas one worker runs at a time (default 16).
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Attempts of one compensation before the saga is parked as needing
    /// attention (default 10); one cut short by a crash counts too.
    #[serde(default = "default_compensation_attempts")]
    pub compensation_attempts: u32,
    /// The first backoff between compensation attempts (default `"100ms"`).
    #[serde(default = "default_compensation_backoff")]
    pub compensation_backoff: ConfigDuration,
    /// The longest backoff between compensation attempts (default `"10s"`).
    #[serde(default = "default_compensation_max_backoff")]
    pub compensation_max_backoff: ConfigDuration,
}

impl SagasConfig {
    /// Defaults with the log in `store`.
    ///
    /// ```
    /// let c = polyrouter::config::SagasConfig::new("main");
    /// assert_eq!(c.lease.0.as_secs(), 30);
    /// ```
    pub fn new(store: &str) -> Self {
        SagasConfig {
            store: store.into(),
            table: default_table(),
            lease: default_lease(),
            poll_interval: default_poll(),
            concurrency: default_concurrency(),
            compensation_attempts: default_compensation_attempts(),
            compensation_backoff: default_compensation_backoff(),
            compensation_max_backoff: default_compensation_max_backoff(),
        }
    }

    /// The key and the problem of the first invalid option.
    pub(crate) fn problem(&self) -> Option<(&'static str, String)> {
        if self.table.is_empty()
            || !self
                .table
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Some((
                "table",
                format!(
                    "table `{}` may hold only ASCII letters, digits and `_`",
                    self.table
                ),
            ));
        }
        if self.lease.0 < Duration::from_millis(100) {
            return Some(("lease", "must be at least \"100ms\"".into()));
        }
        if self.poll_interval.0.is_zero() {
            return Some(("poll_interval", "must be more than zero".into()));
        }
        if self.concurrency == 0 {
            return Some(("concurrency", "must be at least 1".into()));
        }
        if self.compensation_attempts == 0 {
            return Some(("compensation_attempts", "must be at least 1".into()));
        }
        if self.compensation_max_backoff.0 < self.compensation_backoff.0 {
            return Some((
                "compensation_max_backoff",
                "must not be shorter than `compensation_backoff`".into(),
            ));
        }
        None
    }
}

fn default_table() -> String {
    "polyrouter_sagas".into()
}
fn default_lease() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(30))
}
fn default_poll() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(1))
}
fn default_concurrency() -> u32 {
    16
}
fn default_compensation_attempts() -> u32 {
    10
}
fn default_compensation_backoff() -> ConfigDuration {
    ConfigDuration(Duration::from_millis(100))
}
fn default_compensation_max_backoff() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(10))
}
