//! `[stores.NAME]` options of a `sqlserver` store.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{ConfigDuration, redact_url};

/// How the connection is encrypted (TLS).
///
/// ```
/// use polyrouter::backends::sqlserver::Encrypt;
/// assert_eq!(Encrypt::default(), Encrypt::Required);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encrypt {
    /// Only the login is encrypted (the server may still insist on more).
    Off,
    /// Everything is encrypted when the server supports it.
    On,
    /// Everything is encrypted; a server that cannot is refused. What Azure
    /// SQL needs. The default.
    #[default]
    Required,
}

/// Options of a `sqlserver` store, as read from `[stores.NAME]`.
///
/// Unknown keys are errors. Only `url` is required. The URL's password is
/// a secret: `Debug` and every error show it as `***`.
///
/// ```
/// use polyrouter::backends::sqlserver::{Encrypt, SqlServerConfig};
/// let c = SqlServerConfig::new("sqlserver://app:pw@db.example.net:1433/shop");
/// assert_eq!(c.encrypt, Encrypt::Required);
/// assert_eq!(c.max_connections, 8);
/// assert!(!format!("{c:?}").contains("pw"));
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlServerConfig {
    /// `sqlserver://user:password@host:port/database` (port default 1433;
    /// user and password percent-encoded). SQL Server authentication.
    pub url: String,
    /// The schema the tables live in (created when missing); default: the
    /// login's default schema (usually `dbo`).
    #[serde(default)]
    pub schema: Option<String>,
    /// `off`, `on` or `required` (default `required`).
    #[serde(default)]
    pub encrypt: Encrypt,
    /// Accept any server certificate (development only; default false).
    #[serde(default)]
    pub trust_server_certificate: bool,
    /// A PEM or DER CA certificate file that signs the server's
    /// certificate (instead of the system's roots).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// The most connections the pool opens (default 8).
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Connections kept open when idle (default 0).
    #[serde(default)]
    pub min_connections: u32,
    /// How long opening one connection (TCP, TLS, login) may take (default `"5s"`).
    #[serde(default = "default_timeout")]
    pub connect_timeout: ConfigDuration,
    /// How long waiting for a pooled connection may take before failing
    /// with [`Error::Unavailable`](crate::Error::Unavailable) (default `"5s"`).
    #[serde(default = "default_timeout")]
    pub acquire_timeout: ConfigDuration,
    /// How often expired rows are deleted in the background (default
    /// `"60s"`; `"0s"` turns the purge off — expired rows stay invisible).
    #[serde(default = "default_purge_interval")]
    pub purge_interval: ConfigDuration,
}

fn default_max_connections() -> u32 {
    8
}

fn default_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(5))
}

fn default_purge_interval() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(60))
}

/// The parts of a `sqlserver://` URL, percent-decoded
/// ([`SqlServerConfig::address`]). Its `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Address {
    /// The login.
    pub user: String,
    /// The login's password.
    pub password: String,
    /// The server's host name or address (brackets of an IPv6 address removed).
    pub host: String,
    /// The TCP port (1433 when the URL names none).
    pub port: u16,
    /// The database, when the URL names one.
    pub database: Option<String>,
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Address")
            .field("user", &self.user)
            .field("password", &"***")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .finish()
    }
}

impl Address {
    /// `host:port`, for messages.
    pub fn host_port(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Decodes `%XX` escapes.
fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a `%` is not followed by two hex digits")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent-escapes do not decode to UTF-8".to_string())
}

impl SqlServerConfig {
    /// Options with the defaults and the given URL.
    ///
    /// ```
    /// let c = polyrouter::backends::sqlserver::SqlServerConfig::new("sqlserver://sa:pw@h/db");
    /// assert_eq!(c.connect_timeout.0.as_secs(), 5);
    /// ```
    pub fn new(url: impl Into<String>) -> Self {
        SqlServerConfig {
            url: url.into(),
            schema: None,
            encrypt: Encrypt::default(),
            trust_server_certificate: false,
            ca_file: None,
            max_connections: default_max_connections(),
            min_connections: 0,
            connect_timeout: default_timeout(),
            acquire_timeout: default_timeout(),
            purge_interval: default_purge_interval(),
        }
    }

    /// The URL with its password redacted.
    pub fn location(&self) -> String {
        redact_url(&self.url)
    }

    /// Parses the URL as the store does; on error, what is wrong (password
    /// redacted). For code that connects to the same server by itself.
    ///
    /// ```
    /// use polyrouter::backends::sqlserver::SqlServerConfig;
    /// let a = SqlServerConfig::new("sqlserver://sa:p%40ss@db.local/app").address().unwrap();
    /// assert_eq!((a.password.as_str(), a.port), ("p@ss", 1433));
    /// assert!(!format!("{a:?}").contains("p@ss"));
    /// ```
    pub fn address(&self) -> Result<Address, String> {
        let bad = |why: &str| {
            format!(
                "{:?} is not a usable SQL Server URL ({why}); write `sqlserver://user:password@host:1433/database`",
                self.location()
            )
        };
        let rest = self
            .url
            .strip_prefix("sqlserver://")
            .ok_or_else(|| bad("it must start with `sqlserver://`"))?;
        // The user-info runs to the last `@`, so a password may hold `/`,
        // `?`, `#`, `@` or `:` as written (or percent-encoded).
        let (userinfo, after) = rest
            .rsplit_once('@')
            .ok_or_else(|| bad("no `user:password@`"))?;
        if after.contains(['?', '#']) {
            return Err(bad(
                "options go in the store's TOML keys (`encrypt`, `trust_server_certificate`, …), not in the URL",
            ));
        }
        let (hostport, path) = after.split_once('/').unwrap_or((after, ""));
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        let user = percent_decode(user).map_err(|e| bad(&e))?;
        let password = percent_decode(password).map_err(|e| bad(&format!("password: {e}")))?;
        if user.is_empty() {
            return Err(bad("the user is empty"));
        }
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h,
                p.parse::<u16>()
                    .map_err(|_| bad(&format!("port {p:?} is not a number")))?,
            ),
            _ => (hostport, 1433),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("the host is empty"));
        }
        let database = percent_decode(path).map_err(|e| bad(&e))?;
        Ok(Address {
            user,
            password,
            host: host.to_string(),
            port,
            database: (!database.is_empty()).then_some(database),
        })
    }

    /// Checks the options; on error, the option key and what is wrong.
    pub(super) fn validate(&self) -> Result<Address, (&'static str, String)> {
        let address = self.address().map_err(|m| ("url", m))?;
        if self.max_connections == 0 {
            return Err(("max_connections", "must be at least 1".into()));
        }
        if self.min_connections > self.max_connections {
            return Err((
                "min_connections",
                format!(
                    "{} is more than max_connections ({})",
                    self.min_connections, self.max_connections
                ),
            ));
        }
        if self.connect_timeout.0.is_zero() {
            return Err(("connect_timeout", "must be more than 0s".into()));
        }
        if self.acquire_timeout.0.is_zero() {
            return Err(("acquire_timeout", "must be more than 0s".into()));
        }
        if self.trust_server_certificate && self.ca_file.is_some() {
            return Err((
                "ca_file",
                "set either `ca_file` or `trust_server_certificate = true`, not both".into(),
            ));
        }
        if let Some(s) = &self.schema {
            if s.is_empty() || s.contains('\0') || s.encode_utf16().count() > 128 {
                return Err((
                    "schema",
                    format!("{s:?} is not a usable schema name (1 to 128 characters, no NUL)"),
                ));
            }
        }
        Ok(address)
    }
}

impl fmt::Debug for SqlServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlServerConfig")
            .field("url", &self.location())
            .field("schema", &self.schema)
            .field("encrypt", &self.encrypt)
            .field("trust_server_certificate", &self.trust_server_certificate)
            .field("ca_file", &self.ca_file)
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("purge_interval", &self.purge_interval)
            .finish()
    }
}
