//! `[buses.NAME]`: an event bus's kind and its kind-specific options.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::{Source, is_secret_key, located, parse_options, redact_url};
use crate::{Error, Result};

/// `[buses.NAME]`: an event bus's kind (`memory`, `nats`,
/// `redis-streams`) and its options, checked by the bus kind when opened.
///
/// `Debug` redacts secret options and passwords in URLs.
///
/// ```
/// let cfg = polyrouter::config::Config::parse(r#"
///     [buses.events]
///     kind = "nats"
///     url = "nats://app:s3cret@127.0.0.1:4222"
/// "#, "<string>").unwrap();
/// let bus = &cfg.buses["events"];
/// assert_eq!(bus.kind, "nats");
/// assert!(!format!("{bus:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
pub struct BusSpec {
    /// The bus's name.
    pub name: String,
    /// The bus kind, e.g. `nats`.
    pub kind: String,
    /// Every option except `kind`, checked by the bus kind.
    pub options: toml::Table,
    source: Arc<Source>,
}

impl BusSpec {
    /// A spec built in code (no file).
    ///
    /// ```
    /// let b = polyrouter::config::BusSpec::new("events", "memory", toml::Table::new());
    /// assert_eq!(b.kind, "memory");
    /// ```
    pub fn new(name: &str, kind: &str, options: toml::Table) -> Self {
        let source = Arc::new(Source {
            file: "<code>".into(),
            text: String::new(),
        });
        BusSpec::located(name, kind.into(), options, source)
    }

    pub(super) fn located(
        name: &str,
        kind: String,
        options: toml::Table,
        source: Arc<Source>,
    ) -> Self {
        BusSpec {
            name: name.into(),
            kind,
            options,
            source,
        }
    }

    /// Deserializes the bus kind's options; an error names file, line,
    /// column and the key path under `buses.NAME`.
    ///
    /// ```
    /// #[derive(serde::Deserialize, Debug)]
    /// #[serde(deny_unknown_fields)]
    /// struct Opts { url: String }
    /// let mut t = toml::Table::new();
    /// t.insert("ulr".into(), "x".into());
    /// let spec = polyrouter::config::BusSpec::new("events", "nats", t);
    /// let err = spec.parse::<Opts>().unwrap_err().to_string();
    /// assert!(err.contains("buses.events.ulr"), "{err}");
    /// ```
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        parse_options("buses", &self.name, &self.options, &self.source)
    }

    /// A config error located at `keys` under `buses.NAME` in this spec's
    /// file.
    ///
    /// ```
    /// let b = polyrouter::config::BusSpec::new("events", "nats", toml::Table::new());
    /// let e = b.error(&["stream"], "bad stream name");
    /// assert!(e.to_string().contains("buses.events.stream"), "{e}");
    /// ```
    pub fn error(&self, keys: &[&str], message: impl fmt::Display) -> Error {
        let mut path = vec!["buses".to_string(), self.name.clone()];
        path.extend(keys.iter().map(|k| k.to_string()));
        located(
            &self.source.file,
            &self.source.text,
            &path,
            None,
            message.to_string(),
        )
    }
}

impl fmt::Debug for BusSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opts: BTreeMap<&str, String> = self
            .options
            .iter()
            .map(|(k, v)| {
                let shown = match v {
                    _ if is_secret_key(k) => "***".to_string(),
                    toml::Value::String(s) => redact_bus_url(s),
                    other => other.to_string(),
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("BusSpec")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("options", &opts)
            .finish()
    }
}

/// A bus URL (or a comma-separated list of them) as it may be shown: a
/// password, and a user-info that is a bare token (`nats://TOKEN@host`),
/// replaced by `***`.
///
/// ```
/// use polyrouter::config::redact_bus_url;
/// assert_eq!(redact_bus_url("nats://s3cret@h:4222"), "nats://***@h:4222");
/// assert_eq!(redact_bus_url("nats://a:pw@h1,nats://h2"), "nats://a:***@h1,nats://h2");
/// ```
pub fn redact_bus_url(url: &str) -> String {
    url.split(',')
        .map(|one| {
            let one = one.trim();
            let Some(start) = one.find("://").map(|i| i + 3) else {
                return redact_url(one);
            };
            match one[start..].rfind('@') {
                Some(at) if !one[start..start + at].contains(':') => {
                    format!("{}***{}", &one[..start], &one[start + at..])
                }
                _ => redact_url(one),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}
