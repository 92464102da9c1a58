//! `[stores.NAME]` options of a `gremlin` store.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{ConfigDuration, Secret, redact_url};

/// The GraphSON version requests and responses use.
///
/// ```
/// assert_eq!(polyrouter::backends::gremlin::GraphsonVersion::default(),
///            polyrouter::backends::gremlin::GraphsonVersion::V3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum GraphsonVersion {
    /// GraphSON 2.0 (`serializer = "graphson_v2"`): what Cosmos DB speaks.
    #[serde(rename = "graphson_v2")]
    V2,
    /// GraphSON 3.0 (`serializer = "graphson_v3"`, the default): TinkerPop 3.3+.
    #[default]
    #[serde(rename = "graphson_v3")]
    V3,
}

/// Options of a `gremlin` store, as read from `[stores.NAME]`.
///
/// ```toml
/// [stores.graph]
/// kind = "gremlin"
/// url = "wss://myaccount.gremlin.cosmos.azure.com:443/"
/// username = "/dbs/graphdb/colls/relationships"
/// password = "${COSMOS_KEY}"
/// serializer = "graphson_v2"
/// partition_key = "pk"
/// ```
///
/// ```
/// use polyrouter::backends::gremlin::GremlinConfig;
/// let c = GremlinConfig::new("ws://127.0.0.1:8182/gremlin");
/// assert_eq!(c.pool_size, 4);
/// assert!(c.partition_key.is_none());
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GremlinConfig {
    /// `ws://host:port/gremlin` or `wss://host:port/` (the path is always `/gremlin`).
    pub url: String,
    /// User name (Cosmos DB: `/dbs/DATABASE/colls/GRAPH`).
    #[serde(default)]
    pub username: Option<String>,
    /// Password (Cosmos DB: the account key); never printed.
    #[serde(default)]
    pub password: Option<Secret>,
    /// `graphson_v2` or `graphson_v3` (default).
    #[serde(default)]
    pub serializer: GraphsonVersion,
    /// Cosmos DB: the graph's partition-key property. Every vertex gets it
    /// (its value is the vertex id) and every lookup names it.
    #[serde(default)]
    pub partition_key: Option<String>,
    /// Connections in the pool (default 4).
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
    /// How long getting a connection may take (default `"5s"`).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: ConfigDuration,
    /// Accept server certificates that do not verify (test servers only).
    #[serde(default)]
    pub accept_invalid_certs: bool,
}

fn default_pool_size() -> u32 {
    4
}

fn default_connect_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(5))
}

/// Where to connect, from the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Endpoint {
    pub host: String,
    pub port: u16,
    pub ssl: bool,
}

impl GremlinConfig {
    /// Options with the defaults and the given URL.
    ///
    /// ```
    /// let c = polyrouter::backends::gremlin::GremlinConfig::new("ws://h:8182/gremlin");
    /// assert_eq!(c.url, "ws://h:8182/gremlin");
    /// ```
    pub fn new(url: impl Into<String>) -> Self {
        GremlinConfig {
            url: url.into(),
            username: None,
            password: None,
            serializer: GraphsonVersion::default(),
            partition_key: None,
            pool_size: default_pool_size(),
            connect_timeout: default_connect_timeout(),
            accept_invalid_certs: false,
        }
    }

    /// Checks the options and parses the URL; on error, the option key and
    /// what is wrong.
    pub(super) fn endpoint(&self) -> Result<Endpoint, (&'static str, String)> {
        let bad = || {
            (
                "url",
                format!(
                    "{:?} is not a Gremlin URL; write `ws://host:8182/gremlin` or `wss://host:443/`",
                    redact_url(&self.url)
                ),
            )
        };
        let (ssl, rest) = if let Some(r) = self.url.strip_prefix("wss://") {
            (true, r)
        } else if let Some(r) = self.url.strip_prefix("ws://") {
            (false, r)
        } else {
            return Err(bad());
        };
        if rest.contains('@') {
            return Err((
                "url",
                format!(
                    "{:?} holds credentials; a Gremlin URL carries none: set `username` and `password` instead",
                    redact_url(&self.url)
                ),
            ));
        }
        let authority = rest.split('/').next().unwrap_or_default();
        let path = &rest[authority.len()..];
        if authority.contains('@') || !matches!(path, "" | "/" | "/gremlin" | "/gremlin/") {
            return Err(bad());
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
            None => (authority, if ssl { 443 } else { 8182 }),
        };
        if host.is_empty() {
            return Err(bad());
        }
        if self.pool_size == 0 {
            return Err(("pool_size", "must be at least 1".into()));
        }
        if self.connect_timeout.0.is_zero() {
            return Err(("connect_timeout", "must be more than 0s".into()));
        }
        if self.username.is_some() != self.password.is_some() {
            return Err((
                "password",
                "set both `username` and `password`, or neither".into(),
            ));
        }
        if self.partition_key.as_deref().is_some_and(str::is_empty) {
            return Err(("partition_key", "must not be empty".into()));
        }
        Ok(Endpoint {
            host: host.to_string(),
            port,
            ssl,
        })
    }
}

impl fmt::Debug for GremlinConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GremlinConfig")
            .field("url", &redact_url(&self.url))
            .field("username", &self.username)
            .field("password", &self.password)
            .field("serializer", &self.serializer)
            .field("partition_key", &self.partition_key)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("accept_invalid_certs", &self.accept_invalid_certs)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreSpec;

    fn spec(toml_text: &str) -> StoreSpec {
        StoreSpec::new("graph", "gremlin", toml::from_str(toml_text).unwrap())
    }

    #[test]
    fn urls_options_and_secrets() {
        let c: GremlinConfig = spec("url = \"ws://127.0.0.1:8182/gremlin\"")
            .parse()
            .unwrap();
        assert_eq!(
            c.endpoint().unwrap(),
            Endpoint {
                host: "127.0.0.1".into(),
                port: 8182,
                ssl: false
            }
        );
        let c: GremlinConfig = spec(
            "url = \"wss://acct.gremlin.cosmos.azure.com:443/\"\nusername = \"/dbs/d/colls/c\"\npassword = \"k3y\"\nserializer = \"graphson_v2\"\npartition_key = \"pk\"",
        )
        .parse()
        .unwrap();
        let ep = c.endpoint().unwrap();
        assert!(ep.ssl && ep.port == 443);
        assert_eq!(c.serializer, GraphsonVersion::V2);
        assert!(!format!("{c:?}").contains("k3y"), "{c:?}");
        let e = spec("url = \"ws://h\"\nserialiser = \"x\"")
            .parse::<GremlinConfig>()
            .unwrap_err();
        assert!(e.to_string().contains("stores.graph.serialiser"), "{e}");
        let e = spec("url = \"ws://h\"\nserializer = \"graphson_v1\"")
            .parse::<GremlinConfig>()
            .unwrap_err();
        assert!(e.to_string().contains("stores.graph.serializer"), "{e}");
        for bad in [
            "http://h:8182",
            "ws://:8182",
            "ws://h:port",
            "ws://u:pw@h:1/",
            "ws://u:p/w@h:1/gremlin",
            "wss://u:p#w@h/",
            "ws://h/other",
        ] {
            let e = GremlinConfig::new(bad).endpoint().unwrap_err();
            assert_eq!(e.0, "url", "{bad}");
            assert!(
                !e.1.contains("pw@") && !e.1.contains("p/w") && !e.1.contains("p#w"),
                "{}",
                e.1
            );
        }
        let mut c = GremlinConfig::new("ws://h");
        c.username = Some("u".into());
        assert_eq!(c.endpoint().unwrap_err().0, "password");
    }
}
