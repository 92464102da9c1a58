//! Where a store keeps what it holds, so the router can refuse, at
//! start-up, two routes (or two stores) that would share storage.
//!
//! A store describes itself with a [`Namespace`] ([`Store::namespace`]):
//! how its database compares table names ([`TableNames`]), and — when
//! several stores may write to one server, as key-value stores with a key
//! prefix do — the server and the key prefixes it writes under. The
//! router folds every table a route uses (an entity's table or key
//! namespace, its cache namespace, time series and graph tables) the way
//! the store does and refuses two that fold to one name; and it refuses
//! two stores on one server when a key prefix of one begins a key prefix
//! of the other.
//!
//! ```
//! use polyrouter::store::namespace::{NameCase, TableNames};
//! let sqlite = TableNames { case: NameCase::AsciiInsensitive, max_bytes: None, rule: "SQLite ignores ASCII case in table names" };
//! assert_eq!(sqlite.identity("Probe_Case").unwrap(), sqlite.identity("PROBE_case").unwrap());
//! let pg = TableNames { case: NameCase::Exact, max_bytes: Some(63), rule: "PostgreSQL keeps 63 bytes of a name" };
//! assert!(pg.identity(&"x".repeat(64)).unwrap_err().contains("63 bytes"));
//! ```
//!
//! [`Store::namespace`]: crate::Store::namespace

/// How a database compares the letters of two names.
///
/// ```
/// use polyrouter::store::namespace::NameCase;
/// assert_eq!(NameCase::Insensitive.fold("Ärger"), "ärger");
/// assert_eq!(NameCase::AsciiInsensitive.fold("Ärger"), "Ärger");
/// assert_eq!(NameCase::Exact.fold("AB"), "AB");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameCase {
    /// `a` and `A` are two names.
    Exact,
    /// ASCII letters compare without case, other letters exactly (SQLite).
    AsciiInsensitive,
    /// Every letter compares without case (MySQL and MariaDB table names
    /// on case-insensitive file systems, SQL Server's usual collations).
    Insensitive,
}

impl NameCase {
    /// The name in the form two names are compared in.
    ///
    /// ```
    /// assert_eq!(polyrouter::store::namespace::NameCase::AsciiInsensitive.fold("AbC"), "abc");
    /// ```
    pub fn fold(self, name: &str) -> String {
        match self {
            NameCase::Exact => name.to_string(),
            NameCase::AsciiInsensitive => name.to_ascii_lowercase(),
            NameCase::Insensitive => name.to_lowercase(),
        }
    }
}

/// How a store compares and limits the names of its tables (or
/// collections, or key namespaces).
///
/// ```
/// use polyrouter::store::namespace::TableNames;
/// assert_eq!(TableNames::EXACT.identity("Users").unwrap(), "Users");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableNames {
    /// How letters compare.
    pub case: NameCase,
    /// The longest name the database keeps whole, in UTF-8 bytes
    /// (PostgreSQL: 63); a longer one is refused rather than truncated.
    pub max_bytes: Option<usize>,
    /// The rule in words, for error messages, e.g. "SQLite compares table
    /// names ignoring ASCII case".
    pub rule: &'static str,
}

impl TableNames {
    /// Names compare byte for byte and have no length limit.
    ///
    /// ```
    /// assert_eq!(polyrouter::store::namespace::TableNames::EXACT.max_bytes, None);
    /// ```
    pub const EXACT: TableNames = TableNames {
        case: NameCase::Exact,
        max_bytes: None,
        rule: "this store compares table names byte for byte",
    };

    /// The name as the store compares it; an error saying why the store
    /// cannot keep the name whole.
    ///
    /// ```
    /// use polyrouter::store::namespace::{NameCase, TableNames};
    /// let t = TableNames { case: NameCase::Insensitive, max_bytes: Some(4), rule: "" };
    /// assert_eq!(t.identity("AbC").unwrap(), "abc");
    /// assert!(t.identity("abcde").is_err());
    /// ```
    pub fn identity(&self, table: &str) -> Result<String, String> {
        if let Some(max) = self.max_bytes {
            if table.len() > max {
                return Err(format!(
                    "table name `{table}` is {} bytes long; {} (at most {max} bytes) and would cut it short, so two long names could become one; choose a shorter name",
                    table.len(),
                    self.rule
                ));
            }
        }
        Ok(self.case.fold(table))
    }
}

/// Where a store keeps its tables: how it compares their names and, for
/// a store that shares a server with other stores, the server and the key
/// prefixes it writes under.
///
/// ```
/// use polyrouter::store::namespace::{Namespace, TableNames};
/// let own = Namespace::own(TableNames::EXACT);
/// assert!(own.server.is_none());
/// let a = Namespace::shared("redis 127.0.0.1:6379/0", vec!["p:".into()], TableNames::EXACT);
/// let b = Namespace::shared("redis 127.0.0.1:6379/0", vec!["p:probe:".into()], TableNames::EXACT);
/// assert_eq!(a.overlap(&b), Some(("p:", "p:probe:")));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// The server (and database) the store writes to, when other stores
    /// can write there too, e.g. `redis 127.0.0.1:6379/0`; `None`: nothing
    /// but this store writes where it does.
    pub server: Option<String>,
    /// Every key the store writes on `server` begins with one of these.
    pub key_prefixes: Vec<String>,
    /// How the store compares table names.
    pub tables: TableNames,
}

impl Namespace {
    /// A store whose data no other store reaches.
    ///
    /// ```
    /// let n = polyrouter::store::namespace::Namespace::own(polyrouter::store::namespace::TableNames::EXACT);
    /// assert!(n.key_prefixes.is_empty());
    /// ```
    pub fn own(tables: TableNames) -> Namespace {
        Namespace {
            server: None,
            key_prefixes: Vec::new(),
            tables,
        }
    }

    /// A store writing keys under `key_prefixes` on a server other stores
    /// may share.
    ///
    /// ```
    /// use polyrouter::store::namespace::{Namespace, TableNames};
    /// let n = Namespace::shared("redis h:6379/0", vec!["app:".into()], TableNames::EXACT);
    /// assert_eq!(n.server.as_deref(), Some("redis h:6379/0"));
    /// ```
    pub fn shared(
        server: impl Into<String>,
        key_prefixes: Vec<String>,
        tables: TableNames,
    ) -> Namespace {
        Namespace {
            server: Some(server.into()),
            key_prefixes,
            tables,
        }
    }

    /// Two key prefixes, one of this store and one of `other`, where one
    /// begins the other on the same server — so a key of one store can be
    /// a key of the other; `None` when the stores cannot meet.
    ///
    /// ```
    /// use polyrouter::store::namespace::{Namespace, TableNames};
    /// let a = Namespace::shared("s", vec!["a:".into()], TableNames::EXACT);
    /// let b = Namespace::shared("s", vec!["ab:".into()], TableNames::EXACT);
    /// assert_eq!(a.overlap(&b), None);
    /// ```
    pub fn overlap<'a>(&'a self, other: &'a Namespace) -> Option<(&'a str, &'a str)> {
        if self.server.is_none() || self.server != other.server {
            return None;
        }
        self.key_prefixes.iter().find_map(|a| {
            other
                .key_prefixes
                .iter()
                .find(|b| a.starts_with(b.as_str()) || b.starts_with(a.as_str()))
                .map(|b| (a.as_str(), b.as_str()))
        })
    }
}
