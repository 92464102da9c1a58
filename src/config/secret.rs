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

/// A URL with its password (and any `password=`/`key=`/`sig=`-like query
/// value) replaced by `***`, for logs and errors.
///
/// The user-info is read the way a person writes it, not the way a strict
/// URL parser does: it runs from after `scheme://` to the **last** `@`, so a
/// password holding `/`, `?`, `#`, `@`, `:` or spaces is hidden whole even
/// when the URL is invalid. When the text before that `@` is not a plain
/// `user:password`, all of it is hidden. A URL without `@` whose "port" is
/// not a number (`postgres://app:pa/ss`) has everything after that `:`
/// hidden, since that is where a password went.
///
/// ```
/// use polyrouter::config::redact_url;
/// assert_eq!(redact_url("postgres://app:s3cret@db:5432/x"), "postgres://app:***@db:5432/x");
/// assert_eq!(redact_url("postgres://app:pa/ss@db/x"), "postgres://app:***@db/x");
/// assert_eq!(redact_url("sqlite://data/app.db"), "sqlite://data/app.db");
/// assert_eq!(redact_url("redis://:pw@h/0?password=pw"), "redis://:***@h/0?password=***");
/// assert_eq!(redact_url("postgres://app:pa/ss"), "postgres://app:***");
/// ```
pub fn redact_url(url: &str) -> String {
    let parts = UrlParts::of(url);
    let mut out = String::with_capacity(url.len());
    out.push_str(parts.scheme);
    match parts.user_info {
        UserInfo::None => {}
        UserInfo::User(user) => {
            out.push_str(user);
            out.push('@');
        }
        UserInfo::UserPassword(user, _) => {
            out.push_str(user);
            out.push_str(":***@");
        }
        UserInfo::Opaque(_) => out.push_str("***@"),
    }
    match parts.bad_port {
        Some(at) => {
            out.push_str(&parts.rest[..at]);
            out.push_str("***");
        }
        None => out.push_str(&redact_query(parts.rest)),
    }
    out
}

/// A URL split for redaction: `scheme://`, the user-info up to the last
/// `@`, and the rest (host, port, path, query).
struct UrlParts<'a> {
    scheme: &'a str,
    user_info: UserInfo<'a>,
    rest: &'a str,
    /// Where a non-numeric port starts in `rest` (no user-info only).
    bad_port: Option<usize>,
}

enum UserInfo<'a> {
    None,
    User(&'a str),
    UserPassword(&'a str, &'a str),
    /// Not a clean `user:password`: hidden whole.
    Opaque(&'a str),
}

impl<'a> UrlParts<'a> {
    fn of(url: &'a str) -> Self {
        let start = url.find("://").map(|i| i + 3);
        let scheme = &url[..start.unwrap_or(0)];
        let after = &url[scheme.len()..];
        let Some(at) = after.rfind('@') else {
            let bad_port = start.and_then(|_| bad_port(after));
            return UrlParts {
                scheme,
                user_info: UserInfo::None,
                rest: after,
                bad_port,
            };
        };
        let info = &after[..at];
        let user_info = match info.split_once(':') {
            Some((user, password)) if !user.contains(['/', '?', '#']) => {
                UserInfo::UserPassword(user, password)
            }
            None if start.is_some() && !info.contains(['/', '?', '#']) => UserInfo::User(info),
            _ => UserInfo::Opaque(info),
        };
        UrlParts {
            scheme,
            user_info,
            rest: &after[at + 1..],
            bad_port: None,
        }
    }
}

/// In `host[:port][/path…]`, where a port that is not a number starts.
fn bad_port(rest: &str) -> Option<usize> {
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let from = authority.rfind(']').map_or(0, |i| i + 1);
    let colon = from + authority[from..].find(':')?;
    let port = &authority[colon + 1..];
    (!port.is_empty() && !port.bytes().all(|b| b.is_ascii_digit())).then_some(colon + 1)
}

/// The query's secret-named values as `***`.
fn redact_query(rest: &str) -> String {
    let Some(q) = rest.find('?') else {
        return rest.to_string();
    };
    let (head, query) = rest.split_at(q + 1);
    let redacted: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if is_secret_key(k) => format!("{k}=***"),
            _ => kv.to_string(),
        })
        .collect();
    format!("{head}{}", redacted.join("&"))
}

/// The secrets of one store, cut out of any text a driver produces (error
/// messages, sources) before polyrouter shows it: every occurrence of each
/// secret, as written and percent-decoded, becomes `***`.
///
/// `Debug` shows only how many secrets it holds.
///
/// ```
/// use polyrouter::config::Redactor;
/// let r = Redactor::new()
///     .with_url("postgres://app:p%40ss/w@db/x?sslpassword=k3y")
///     .with_secret("hunter2");
/// assert_eq!(
///     r.redact("auth failed for p@ss/w, p%40ss/w, k3y and hunter2"),
///     "auth failed for ***, ***, *** and ***"
/// );
/// assert!(!format!("{r:?}").contains("hunter2"));
/// ```
#[derive(Clone, Default)]
pub struct Redactor {
    /// Longest first, so a secret containing another is cut whole.
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor that knows no secret yet.
    ///
    /// ```
    /// assert_eq!(polyrouter::config::Redactor::new().redact("x"), "x");
    /// ```
    pub fn new() -> Self {
        Redactor::default()
    }

    /// Adds a secret (and its percent-decoded form); empty ones are ignored.
    ///
    /// ```
    /// let r = polyrouter::config::Redactor::new().with_secret("k3y");
    /// assert_eq!(r.redact("key k3y"), "key ***");
    /// ```
    pub fn with_secret(mut self, secret: &str) -> Self {
        let decoded = percent_encoding::percent_decode_str(secret)
            .decode_utf8_lossy()
            .into_owned();
        for s in [secret.to_string(), decoded] {
            if !s.is_empty() && !self.secrets.contains(&s) {
                self.secrets.push(s);
            }
        }
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        self
    }

    /// Adds the secrets of a URL: its password (everything [`redact_url`]
    /// hides in the user-info) and its secret-named query values.
    ///
    /// ```
    /// let r = polyrouter::config::Redactor::new().with_url("redis://:pw@h/0");
    /// assert_eq!(r.redact("WRONGPASS pw"), "WRONGPASS ***");
    /// ```
    pub fn with_url(mut self, url: &str) -> Self {
        let parts = UrlParts::of(url);
        match parts.user_info {
            UserInfo::UserPassword(_, secret) | UserInfo::Opaque(secret) => {
                self = self.with_secret(secret);
            }
            UserInfo::None | UserInfo::User(_) => {}
        }
        if let Some(at) = parts.bad_port {
            self = self.with_secret(&parts.rest[at..]);
        }
        if let Some((_, query)) = parts.rest.split_once('?') {
            for kv in query.split('&') {
                if let Some((k, v)) = kv.split_once('=') {
                    if is_secret_key(k) {
                        self = self.with_secret(v);
                    }
                }
            }
        }
        self
    }

    /// `text` with every known secret replaced by `***`.
    ///
    /// ```
    /// let r = polyrouter::config::Redactor::new().with_secret("s3cret");
    /// assert_eq!(r.redact("no s3cret here"), "no *** here");
    /// ```
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .finish()
    }
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
        // URL query parameters: PostgreSQL's TLS key password, SAS tokens
        // and connection strings.
        "sslpassword",
        "sig",
        "signature",
        "accountkey",
        "sharedaccesssignature",
    ]
    .iter()
    .any(|s| n == *s || n.ends_with(&format!("_{s}")) || n.starts_with(&format!("{s}_")))
        && n != "key_prefix"
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Passwords holding every character that means something in a URL.
    const PASSWORDS: &[&str] = &[
        "pa/ss",
        "pa#ss",
        "pa?ss",
        "pa@ss",
        "pa:ss",
        "pa%ss",
        "pa ss",
        "päss☃",
        "p/#?@:%&= x",
        "s3@cr",
        "s3/cr",
        "?x@y",
        "a@b/c?d#e",
        "pa%2Fss",
    ];

    #[test]
    fn no_password_shape_survives_redaction() {
        for pw in PASSWORDS {
            for url in [
                format!("postgres://app:{pw}@127.0.0.1:5432/db"),
                format!("mysql://app:{pw}@h/db?ssl-mode=disabled"),
                format!("redis://:{pw}@h:6379/0"),
                format!("redis://default:{pw}@h"),
                format!("sqlserver://sa:{pw}@h:1433/app"),
                format!("ws://u:{pw}@h:8182/gremlin"),
                format!("postgres://app:{pw}"),
                format!("postgres://h/db?password={pw}"),
                format!("postgres:app:{pw}@h/db"),
            ] {
                let shown = redact_url(&url);
                assert!(!shown.contains(pw), "{url} -> {shown}");
                // Without a host, `app:pa@ss` reads as host `ss`: only the
                // URL forms with a host can be told apart.
                if url.contains("://") && !(pw.contains('@') && url.ends_with(pw)) {
                    let r = Redactor::new().with_url(&url);
                    assert_eq!(r.redact(&format!("x{pw}x")), "x***x", "{url}");
                }
            }
        }
    }

    #[test]
    fn what_is_not_secret_stays_readable() {
        for (url, shown) in [
            ("postgres://app@h:5432/db", "postgres://app@h:5432/db"),
            (
                "postgres://h/db?sslmode=require",
                "postgres://h/db?sslmode=require",
            ),
            ("redis://[::1]:6379/0", "redis://[::1]:6379/0"),
            ("redis+unix:///tmp/r.sock", "redis+unix:///tmp/r.sock"),
            ("sqlite::memory:", "sqlite::memory:"),
            (
                "https://a.blob.core.windows.net/c?sv=1&sig=abc",
                "https://a.blob.core.windows.net/c?sv=1&sig=***",
            ),
            ("postgres://u:pw@h/db?x=a@b", "postgres://u:***@b"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
        assert_eq!(Redactor::new().redact("plain"), "plain");
    }
}
