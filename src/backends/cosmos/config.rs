//! `[stores.NAME]` options of a `cosmos` store.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{ConfigDuration, Secret, redact_url};

/// Options of a `cosmos` store, as read from `[stores.NAME]`.
///
/// Give either `endpoint` and `key`, or `connection_string`
/// (`AccountEndpoint=…;AccountKey=…;`). The key and the connection string
/// are secrets: `Debug`, [`Store::location`](crate::Store::location) and
/// every error print them as `***`.
///
/// ```
/// use polyrouter::backends::cosmos::CosmosConfig;
/// let c = CosmosConfig::new("https://acct.documents.azure.com:443/", "s3cret", "shop");
/// assert!(!c.create_if_missing);
/// assert!(!format!("{c:?}").contains("s3cret"));
/// let (endpoint, key) = c.credentials().unwrap();
/// assert_eq!((endpoint.as_str(), key), ("https://acct.documents.azure.com:443/", "s3cret"));
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CosmosConfig {
    /// The account endpoint, e.g. `https://ACCOUNT.documents.azure.com:443/`
    /// (`http://127.0.0.1:8081/` for the local emulator).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The account key (primary or secondary, base64). A secret.
    #[serde(default)]
    pub key: Option<Secret>,
    /// `AccountEndpoint=…;AccountKey=…;` instead of `endpoint` + `key`. A secret.
    #[serde(default)]
    pub connection_string: Option<Secret>,
    /// The database every container of this store lives in.
    pub database: String,
    /// Create the database and missing containers at start-up (default
    /// `false`: a missing one is a configuration error naming it).
    #[serde(default)]
    pub create_if_missing: bool,
    /// How long opening a connection may take (default `"5s"`; `"100ms"`
    /// to `"6s"`, the Cosmos DB client's bounds).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: ConfigDuration,
    /// How long one request may take (default `"30s"`, at least `"100ms"`)
    /// before failing with the transient
    /// [`Error::Unavailable`](crate::Error::Unavailable); metadata requests
    /// wait at most 65 s, the client's cap.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: ConfigDuration,
}

fn default_connect_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(5))
}

fn default_request_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(30))
}

impl CosmosConfig {
    /// Options with the defaults, an endpoint, a key and a database.
    ///
    /// ```
    /// let c = polyrouter::backends::cosmos::CosmosConfig::new("http://127.0.0.1:8081/", "k", "db");
    /// assert_eq!(c.database, "db");
    /// ```
    pub fn new(endpoint: impl Into<String>, key: impl Into<String>, database: &str) -> Self {
        CosmosConfig {
            endpoint: Some(endpoint.into()),
            key: Some(Secret::new(key)),
            connection_string: None,
            database: database.into(),
            create_if_missing: false,
            connect_timeout: default_connect_timeout(),
            request_timeout: default_request_timeout(),
        }
    }

    /// Options from a connection string (`AccountEndpoint=…;AccountKey=…;`).
    ///
    /// ```
    /// let c = polyrouter::backends::cosmos::CosmosConfig::from_connection_string(
    ///     "AccountEndpoint=http://127.0.0.1:8081/;AccountKey=a2V5;", "db");
    /// assert_eq!(c.credentials().unwrap().0, "http://127.0.0.1:8081/");
    /// ```
    pub fn from_connection_string(text: impl Into<String>, database: &str) -> Self {
        CosmosConfig {
            endpoint: None,
            key: None,
            connection_string: Some(Secret::new(text)),
            ..CosmosConfig::new("", "", database)
        }
    }

    /// The same options with `create_if_missing` set.
    ///
    /// ```
    /// let c = polyrouter::backends::cosmos::CosmosConfig::new("http://127.0.0.1:8081/", "k", "db")
    ///     .create_if_missing(true);
    /// assert!(c.create_if_missing);
    /// ```
    pub fn create_if_missing(mut self, yes: bool) -> Self {
        self.create_if_missing = yes;
        self
    }

    /// The endpoint and key, from `endpoint` + `key` or the connection
    /// string; on error, the option key and what is wrong (never the secret).
    pub fn credentials(&self) -> Result<(String, &str), (&'static str, String)> {
        match (&self.endpoint, &self.key, &self.connection_string) {
            (Some(e), Some(k), None) => Ok((e.clone(), k.expose())),
            (None, None, Some(cs)) => parse_connection_string(cs.expose()),
            (_, _, Some(_)) => Err((
                "connection_string",
                "give either `connection_string` or `endpoint` + `key`, not both".into(),
            )),
            (None, _, None) => Err((
                "endpoint",
                "missing: give `endpoint` + `key`, or `connection_string`".into(),
            )),
            (Some(_), None, None) => Err((
                "key",
                "missing: the account key (or give `connection_string`)".into(),
            )),
        }
    }

    /// Checks the options; on error, the option key and what is wrong.
    pub(super) fn validate(&self) -> Result<(String, String), (&'static str, String)> {
        let (endpoint, key) = self.credentials()?;
        let from_cs = self.connection_string.is_some();
        let at = if from_cs {
            "connection_string"
        } else {
            "endpoint"
        };
        if endpoint.contains('@') {
            return Err((
                at,
                format!(
                    "the account endpoint holds credentials (`user:password@`, not shown); an endpoint carries none: write e.g. `https://ACCOUNT.documents.azure.com:443/` and give the account key in `{}`",
                    if from_cs { "AccountKey=…" } else { "key" }
                ),
            ));
        }
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            return Err((
                at,
                format!(
                    "the account endpoint {:?} is not an http(s) URL; write e.g. `https://ACCOUNT.documents.azure.com:443/`",
                    redact_url(&endpoint)
                ),
            ));
        }
        if key.is_empty() {
            return Err((
                if from_cs { "connection_string" } else { "key" },
                "the account key is empty".into(),
            ));
        }
        check_database_name(&self.database).map_err(|m| ("database", m))?;
        // The SDK refuses connect timeouts outside 100ms..=6s and request
        // timeouts under 100ms when the client is built.
        let (least, most) = (Duration::from_millis(100), Duration::from_secs(6));
        if !(least..=most).contains(&self.connect_timeout.0) {
            return Err((
                "connect_timeout",
                format!(
                    "{} is outside what the Cosmos DB client allows: \"100ms\" to \"6s\"",
                    self.connect_timeout
                ),
            ));
        }
        if self.request_timeout.0 < least {
            return Err((
                "request_timeout",
                format!(
                    "{} is shorter than the Cosmos DB client allows: at least \"100ms\"",
                    self.request_timeout
                ),
            ));
        }
        Ok((endpoint, key.to_string()))
    }
}

/// Why a name cannot be a Cosmos database or container id, if it cannot.
pub(super) fn check_database_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 255 {
        return Err(format!(
            "{name:?} must be 1 to 255 characters long to be a Cosmos DB resource id"
        ));
    }
    if name.ends_with(' ')
        || name
            .chars()
            .any(|c| matches!(c, '/' | '\\' | '?' | '#') || c.is_control())
    {
        return Err(format!(
            "{name:?} cannot be a Cosmos DB resource id: it may not contain `/`, `\\`, `?`, `#` or control characters, nor end with a space"
        ));
    }
    Ok(())
}

/// An endpoint as it may be shown: secret query values redacted, and
/// nothing of one that holds credentials (it is refused anyway).
pub(super) fn shown_endpoint(endpoint: &str) -> String {
    if endpoint.contains('@') {
        "*** (holds credentials)".into()
    } else {
        redact_url(endpoint)
    }
}

/// `AccountEndpoint=…;AccountKey=…;` → (endpoint, key). Unknown parts are
/// ignored; error messages never include the text (it holds the key).
fn parse_connection_string(text: &str) -> Result<(String, &str), (&'static str, String)> {
    let mut endpoint = None;
    let mut key = None;
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, value)) = part.split_once('=') else {
            return Err((
                "connection_string",
                "is not `AccountEndpoint=…;AccountKey=…;`: a part has no `=`".into(),
            ));
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "accountendpoint" => endpoint = Some(value.trim().to_string()),
            "accountkey" => key = Some(value.trim()),
            _ => {}
        }
    }
    match (endpoint, key) {
        (Some(e), Some(k)) => Ok((e, k)),
        (None, _) => Err((
            "connection_string",
            "has no `AccountEndpoint=…` part".into(),
        )),
        (_, None) => Err(("connection_string", "has no `AccountKey=…` part".into())),
    }
}

impl fmt::Debug for CosmosConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CosmosConfig")
            .field(
                "endpoint",
                &self.credentials().map(|(e, _)| shown_endpoint(&e)).ok(),
            )
            .field("key", &self.key.as_ref().map(|_| "***"))
            .field(
                "connection_string",
                &self.connection_string.as_ref().map(|_| "***"),
            )
            .field("database", &self.database)
            .field("create_if_missing", &self.create_if_missing)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreSpec;

    fn spec(toml_text: &str) -> StoreSpec {
        StoreSpec::new("catalog", "cosmos", toml::from_str(toml_text).unwrap())
    }

    #[test]
    fn endpoint_and_key_or_connection_string() {
        let c: CosmosConfig =
            spec("endpoint = \"http://127.0.0.1:8081/\"\nkey = \"a2V5\"\ndatabase = \"shop\"")
                .parse()
                .unwrap();
        assert_eq!(
            c.validate().unwrap(),
            ("http://127.0.0.1:8081/".into(), "a2V5".into())
        );
        assert_eq!(c.connect_timeout.0, Duration::from_secs(5));
        let c: CosmosConfig = spec(
            "connection_string = \"AccountEndpoint=https://a.documents.azure.com:443/;AccountKey=c2VjcmV0==;\"\ndatabase = \"shop\"\ncreate_if_missing = true",
        )
        .parse()
        .unwrap();
        assert!(c.create_if_missing);
        assert_eq!(
            c.validate().unwrap(),
            (
                "https://a.documents.azure.com:443/".into(),
                "c2VjcmV0==".into()
            )
        );
    }

    #[test]
    fn bad_options_name_the_key_and_hide_the_secret() {
        let e = spec("endpoint = \"http://h/\"\nkey = \"k\"\ndatabase = \"d\"\nregion = 1")
            .parse::<CosmosConfig>()
            .unwrap_err();
        assert!(e.to_string().contains("stores.catalog.region"), "{e}");
        let both = CosmosConfig {
            connection_string: Some(Secret::new("AccountEndpoint=x;AccountKey=hunter2;")),
            ..CosmosConfig::new("http://h/", "hunter2", "d")
        };
        let (key, msg) = both.validate().unwrap_err();
        assert_eq!(key, "connection_string");
        assert!(!msg.contains("hunter2"));
        let (key, msg) = CosmosConfig::from_connection_string("AccountKey=hunter2;", "d")
            .validate()
            .unwrap_err();
        assert_eq!(key, "connection_string");
        assert!(
            msg.contains("AccountEndpoint") && !msg.contains("hunter2"),
            "{msg}"
        );
        for endpoint in [
            "https://u:hunter2@a.documents.azure.com:443/",
            "https://u:hun/ter2@a.documents.azure.com:443/",
            "https://hunter2@a.documents.azure.com/",
            "ftp://u:hunter2@h/",
        ] {
            let (key, msg) = CosmosConfig::new(endpoint, "k", "d")
                .validate()
                .unwrap_err();
            assert_eq!(key, "endpoint", "{endpoint}");
            assert!(
                msg.contains("credentials") && !msg.contains("hunter2"),
                "{msg}"
            );
            let cs = format!("AccountEndpoint={endpoint};AccountKey=k;");
            let (key, msg) = CosmosConfig::from_connection_string(cs, "d")
                .validate()
                .unwrap_err();
            assert_eq!(key, "connection_string", "{endpoint}");
            assert!(!msg.contains("hunter2"), "{msg}");
            let dbg = format!("{:?}", CosmosConfig::new(endpoint, "k", "d"));
            assert!(!dbg.contains("hunter2"), "{dbg}");
        }
        let (key, _) = CosmosConfig::new("ftp://h/", "k", "d")
            .validate()
            .unwrap_err();
        assert_eq!(key, "endpoint");
        let (key, _) = CosmosConfig::new("http://h/", "", "d")
            .validate()
            .unwrap_err();
        assert_eq!(key, "key");
        let mut c = CosmosConfig::new("http://h/", "k", "d");
        c.connect_timeout = ConfigDuration(Duration::from_millis(6001));
        assert_eq!(c.validate().unwrap_err().0, "connect_timeout");
        c.connect_timeout = ConfigDuration(Duration::from_millis(99));
        assert_eq!(c.validate().unwrap_err().0, "connect_timeout");
        c.connect_timeout = ConfigDuration(Duration::from_secs(6));
        c.request_timeout = ConfigDuration(Duration::from_millis(99));
        assert_eq!(c.validate().unwrap_err().0, "request_timeout");
        let (key, _) = CosmosConfig::new("http://h/", "k", "a/b")
            .validate()
            .unwrap_err();
        assert_eq!(key, "database");
        let dbg = format!(
            "{:?}",
            CosmosConfig::from_connection_string(
                "AccountEndpoint=http://h/;AccountKey=hunter2",
                "d"
            )
        );
        assert!(!dbg.contains("hunter2") && dbg.contains("***"), "{dbg}");
    }
}
