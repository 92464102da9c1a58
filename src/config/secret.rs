//! Secrets in configuration: never printed.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A secret string (password, key, connection string). `Debug` and
/// `Display` print `***`; read it with [`Secret::expose`].
///
/// ```
/// use polyrouter::config::Secret;
/// let s = Secret::new("hunter2");
/// assert_eq!(format!("{s:?} {s}"), "*** ***");
/// assert_eq!(s.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    ///
    /// ```
    /// let _ = polyrouter::config::Secret::new("k");
    /// ```
    pub fn new(v: impl Into<String>) -> Self {
        Secret(v.into())
    }
    /// The secret value; do not log it.
    ///
    /// ```
    /// assert_eq!(polyrouter::config::Secret::new("k").expose(), "k");
    /// ```
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}
impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// A URL with its password (and any `password=`/`key=`-like query value)
/// replaced by `***`, for logs and errors.
///
/// ```
/// use polyrouter::config::redact_url;
/// assert_eq!(redact_url("postgres://app:s3cret@db:5432/x"), "postgres://app:***@db:5432/x");
/// assert_eq!(redact_url("sqlite://data/app.db"), "sqlite://data/app.db");
/// assert_eq!(redact_url("redis://:pw@h/0?password=pw"), "redis://:***@h/0?password=***");
/// ```
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let auth_start = scheme_end + 3;
        let auth_end = out[auth_start..]
            .find(['/', '?', '#'])
            .map(|i| auth_start + i)
            .unwrap_or(out.len());
        if let Some(at) = out[auth_start..auth_end].rfind('@') {
            let userinfo = &out[auth_start..auth_start + at];
            if let Some(colon) = userinfo.find(':') {
                let from = auth_start + colon + 1;
                out.replace_range(from..auth_start + at, "***");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let redacted: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if is_secret_key(k) => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect();
        out = format!("{head}{}", redacted.join("&"));
    }
    out
}

/// Whether an option name holds a secret (`password`, `key`, `secret`, `token`, ...).
///
/// ```
/// assert!(polyrouter::config::is_secret_key("account_key"));
/// assert!(!polyrouter::config::is_secret_key("kind"));
/// ```
pub fn is_secret_key(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "key",
        "connection_string",
        "credential",
    ]
    .iter()
    .any(|s| n == *s || n.ends_with(&format!("_{s}")) || n.starts_with(&format!("{s}_")))
        && n != "key_prefix"
}
