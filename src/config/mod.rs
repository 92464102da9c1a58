//! Configuration: TOML → a validated [`Config`].
//!
//! ```toml
//! [router]
//! page_size = 100            # default rows per query page
//!
//! [stores.main]
//! kind = "sqlite"
//! url = "${DATABASE_URL:-sqlite://data/app.db}"
//!
//! [stores.kv]
//! kind = "memory"
//!
//! [entities.user]
//! store = "main"
//! table = "users"            # table / collection override (default: entity name)
//!
//! [entities.session]
//! store = "kv"
//! ttl = "30m"
//! ```
//!
//! Every error names the file, line, column and key path; unknown keys are
//! errors; `${VAR}` and `${VAR:-default}` are replaced inside double-quoted
//! strings; secrets never appear in `Debug`, logs or errors.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

mod duration;
mod interpolate;
mod locate;
mod secret;

pub use duration::ConfigDuration;
pub use secret::{Secret, is_secret_key, redact_url};

/// A whole configuration file, validated.
///
/// ```
/// let cfg = polyrouter::config::Config::parse(r#"
///     [stores.main]
///     kind = "memory"
///     [entities.user]
///     store = "main"
/// "#, "<string>").unwrap();
/// assert_eq!(cfg.entities["user"].store, "main");
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from, or `<string>`.
    pub file: String,
    /// Router-wide settings.
    pub router: RouterSettings,
    /// Stores by name.
    pub stores: BTreeMap<String, StoreSpec>,
    /// Entity routes by entity name.
    pub entities: BTreeMap<String, EntityConfig>,
    source: Arc<Source>,
}

/// `[router]`: router-wide settings.
///
/// ```
/// let s = polyrouter::config::RouterSettings::default();
/// assert_eq!(s.page_size, 100);
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouterSettings {
    /// Rows per query page when the query sets no limit.
    pub page_size: u32,
    /// The largest limit a query may ask for.
    pub max_page_size: u32,
}

impl Default for RouterSettings {
    fn default() -> Self {
        RouterSettings {
            page_size: 100,
            max_page_size: 10_000,
        }
    }
}

/// `[stores.NAME]`: a store's kind and its backend-specific options.
///
/// `Debug` redacts secret options and passwords in URLs.
#[derive(Clone)]
pub struct StoreSpec {
    /// The store's name.
    pub name: String,
    /// The backend kind, e.g. `sqlite`.
    pub kind: String,
    /// Every option except `kind`, checked by the backend.
    pub options: toml::Table,
    source: Arc<Source>,
}

struct Source {
    file: String,
    text: String,
}

impl fmt::Debug for Source {
    /// The text may hold interpolated secrets: never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

/// The field named by serde's "unknown field `x`" message.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.find('`').map(|end| &rest[..end])
}

impl StoreSpec {
    /// A spec built in code (no file).
    ///
    /// ```
    /// let s = polyrouter::config::StoreSpec::new("main", "memory", toml::Table::new());
    /// assert_eq!(s.kind, "memory");
    /// ```
    pub fn new(name: &str, kind: &str, options: toml::Table) -> Self {
        StoreSpec {
            name: name.into(),
            kind: kind.into(),
            options,
            source: Arc::new(Source {
                file: "<code>".into(),
                text: String::new(),
            }),
        }
    }

    /// Deserializes the backend's options; an error names file, line,
    /// column and the key path under `stores.NAME`. Backends should use
    /// `#[serde(deny_unknown_fields)]`.
    ///
    /// ```
    /// #[derive(serde::Deserialize, Debug)]
    /// #[serde(deny_unknown_fields)]
    /// struct Opts { path: String }
    /// let mut t = toml::Table::new();
    /// t.insert("paht".into(), "x".into());
    /// let spec = polyrouter::config::StoreSpec::new("s", "k", t);
    /// let err = spec.parse::<Opts>().unwrap_err().to_string();
    /// assert!(err.contains("stores.s.paht"), "{err}");
    /// ```
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        let value = toml::Value::Table(self.options.clone());
        serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
            let mut path = vec!["stores".to_string(), self.name.clone()];
            path.extend(path_segments(e.path()));
            if let Some(field) = unknown_field(e.inner().message()) {
                if path.last().map(String::as_str) != Some(field) {
                    path.push(field.to_string());
                }
            }
            let secret = path.last().map(|k| is_secret_key(k)).unwrap_or(false);
            let msg = if secret {
                "invalid value (hidden: it is a secret)".to_string()
            } else {
                e.inner().message().to_string()
            };
            self.error_at(&path, msg)
        })
    }

    /// A config error located at `path` (a full key path) in this spec's file.
    ///
    /// ```
    /// let s = polyrouter::config::StoreSpec::new("s", "k", toml::Table::new());
    /// let e = s.error(&["url"], "bad url");
    /// assert!(e.to_string().contains("stores.s.url"));
    /// ```
    pub fn error(&self, keys: &[&str], message: impl fmt::Display) -> Error {
        let mut path = vec!["stores".to_string(), self.name.clone()];
        path.extend(keys.iter().map(|k| k.to_string()));
        self.error_at(&path, message.to_string())
    }

    fn error_at(&self, path: &[String], message: String) -> Error {
        located(&self.source.file, &self.source.text, path, None, message)
    }
}

impl fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_struct("StoreSpec");
        m.field("name", &self.name).field("kind", &self.kind);
        let opts: BTreeMap<&str, String> = self
            .options
            .iter()
            .map(|(k, v)| (k.as_str(), redact_option(k, v)))
            .collect();
        m.field("options", &opts).finish()
    }
}

/// An option value as it may be shown: secrets as `***`, URLs redacted.
pub(crate) fn redact_option(key: &str, v: &toml::Value) -> String {
    if is_secret_key(key) {
        return "***".into();
    }
    match v {
        toml::Value::String(s) => redact_url(s),
        other => other.to_string(),
    }
}

/// `[entities.NAME]`: where an entity lives and how it is read.
///
/// ```
/// let cfg = polyrouter::config::Config::parse(r#"
///     [stores.kv]
///     kind = "memory"
///     [entities.session]
///     store = "kv"
///     ttl = "30m"
/// "#, "<string>").unwrap();
/// assert_eq!(cfg.entities["session"].ttl.unwrap().0.as_secs(), 1800);
/// ```
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EntityConfig {
    /// The primary store's name.
    pub store: String,
    /// Table, collection or key namespace; default: the entity name.
    pub table: Option<String>,
    /// Key prefix for key-value stores; default: the entity name.
    pub key_prefix: Option<String>,
    /// Default TTL of every write.
    pub ttl: Option<ConfigDuration>,
    /// Cache-aside: `{ store = "cache", ttl = "1h" }`.
    pub cache: Option<CacheConfig>,
    /// Read consistency; default `strong`.
    #[serde(default)]
    pub consistency: Consistency,
    /// Full-text search index kept on write:
    /// `{ store = "search", fields = ["name", "description"] }`.
    pub search: Option<SearchConfig>,
}

/// `search = { store = "...", fields = [...], filters = { f = "kind" }, facets = [...] }`:
/// a search index the router keeps up to date on every write of the entity.
///
/// `filters` maps each filterable field to its kind (`string`, `int`,
/// `float`, `bool`, `timestamp`, `uuid`) and `key`/`key_kind` name the key,
/// so tools without the Rust types (`polyrouter reindex`) know the index
/// layout; the router checks all of it against the entity's Rust schema.
///
/// ```
/// let cfg = polyrouter::config::Config::parse(r#"
///     [stores.main]
///     kind = "memory"
///     [stores.search]
///     kind = "memory"
///     [entities.product]
///     store = "main"
///     search = { store = "search", fields = ["name"], filters = { category = "string" }, facets = ["category"] }
/// "#, "<string>").unwrap();
/// let s = cfg.entities["product"].search.as_ref().unwrap();
/// assert_eq!(s.fields, vec!["name"]);
/// assert_eq!(s.key, "id");
/// assert_eq!(s.language, "english");
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    /// The search store (a store with the `search` capability).
    pub store: String,
    /// Full-text fields (string fields of the entity), at least one.
    pub fields: Vec<String>,
    /// Filterable fields and their kinds.
    #[serde(default)]
    pub filters: BTreeMap<String, String>,
    /// String fields whose values can be counted; each must be a `string` filter too.
    #[serde(default)]
    pub facets: Vec<String>,
    /// The key field's name (default `id`).
    #[serde(default = "default_search_key")]
    pub key: String,
    /// The key's kind: `string` (default), `int` or `uuid`.
    #[serde(default = "default_search_key_kind")]
    pub key_kind: String,
    /// Index name in the search store; default: the entity's table.
    pub index: Option<String>,
    /// Text-search language for stemming (default `english`; `simple` for none).
    #[serde(default = "default_search_language")]
    pub language: String,
}

fn default_search_key() -> String {
    "id".into()
}

fn default_search_key_kind() -> String {
    "string".into()
}

fn default_search_language() -> String {
    "english".into()
}

/// `cache = { store = "...", ttl = "..." }`.
///
/// ```
/// let c = polyrouter::config::CacheConfig { store: "redis".into(), ttl: None };
/// assert_eq!(c.store, "redis");
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// The cache store.
    pub store: String,
    /// Entry lifetime.
    pub ttl: Option<ConfigDuration>,
}

/// A read-consistency level.
///
/// In TOML: `"strong"`, `"eventual"`, `"read_your_writes"`, `"monotonic"`,
/// or `{ bounded_staleness = "5s" }`.
///
/// ```
/// assert_eq!(polyrouter::config::Consistency::default(), polyrouter::config::Consistency::Strong);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    /// Always the primary.
    #[default]
    Strong,
    /// A copy at most this old.
    BoundedStaleness(ConfigDuration),
    /// A session sees its own writes.
    ReadYourWrites,
    /// A session never sees an older version than it has seen.
    Monotonic,
    /// Any copy.
    Eventual,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    router: RouterSettings,
    #[serde(default)]
    stores: BTreeMap<String, RawStore>,
    #[serde(default)]
    entities: BTreeMap<String, EntityConfig>,
}

#[derive(Deserialize)]
struct RawStore {
    kind: String,
    #[serde(flatten)]
    options: toml::Table,
}

impl Config {
    /// Reads and parses a file.
    ///
    /// ```
    /// let e = polyrouter::config::Config::from_file("does/not/exist.toml").unwrap_err();
    /// assert!(e.to_string().contains("does/not/exist.toml"));
    /// ```
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(&file, "", format!("cannot read the file: {e}")))?;
        Self::parse(&text, &file)
    }

    /// Parses TOML text; `file` names it in errors. Environment variables
    /// are read from the process environment.
    ///
    /// ```
    /// let e = polyrouter::config::Config::parse("[stores.a]\nkind = \"nope\"\n", "app.toml").unwrap_err();
    /// assert!(e.to_string().starts_with("app.toml:2:"), "{e}");
    /// ```
    pub fn parse(text: &str, file: &str) -> Result<Config> {
        Self::parse_with_env(text, file, &|k| std::env::var(k).ok())
    }

    /// Parses TOML text with a custom variable lookup.
    ///
    /// ```
    /// let cfg = polyrouter::config::Config::parse_with_env(
    ///     "[stores.s]\nkind = \"${KIND}\"\n", "<string>", &|_| Some("memory".into())).unwrap();
    /// assert_eq!(cfg.stores["s"].kind, "memory");
    /// ```
    pub fn parse_with_env(
        text: &str,
        file: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config> {
        let text = interpolate::interpolate(text, env).map_err(|m| Error::Config {
            file: file.into(),
            line: m.line,
            column: m.column,
            path: String::new(),
            message: format!(
                "environment variable `{}` is not set; set it or write `${{{}:-default}}`",
                m.var, m.var
            ),
        })?;
        let de = toml::Deserializer::parse(&text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|s| locate::line_col(&text, s.start))
                .unwrap_or((0, 0));
            Error::Config {
                file: file.into(),
                line,
                column,
                path: String::new(),
                message: format!("invalid TOML: {}", e.message().trim()),
            }
        })?;
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let mut path: Vec<String> = path_segments(e.path());
            let message = e.inner().message().trim().to_string();
            let mut span = e.inner().span().map(|s| s.start);
            if let Some(field) = unknown_field(&message) {
                if path.last().map(String::as_str) != Some(field) {
                    path.push(field.to_string());
                }
                span = None;
            }
            located(file, &text, &path, span, message)
        })?;
        let source = Arc::new(Source {
            file: file.into(),
            text,
        });
        let stores = raw
            .stores
            .into_iter()
            .map(|(name, s)| {
                let spec = StoreSpec {
                    name: name.clone(),
                    kind: s.kind,
                    options: s.options,
                    source: source.clone(),
                };
                (name, spec)
            })
            .collect();
        let cfg = Config {
            file: file.into(),
            router: raw.router,
            stores,
            entities: raw.entities,
            source: source.clone(),
        };
        cfg.validate(&source)?;
        Ok(cfg)
    }

    /// An empty configuration for routers built in code.
    ///
    /// ```
    /// assert!(polyrouter::config::Config::empty("<code>").stores.is_empty());
    /// ```
    pub fn empty(file: &str) -> Config {
        Config {
            file: file.into(),
            router: RouterSettings::default(),
            stores: BTreeMap::new(),
            entities: BTreeMap::new(),
            source: Arc::new(Source {
                file: file.into(),
                text: String::new(),
            }),
        }
    }

    /// A [`Error::Config`] at a dotted key path, located in this file.
    ///
    /// ```
    /// let cfg = polyrouter::config::Config::parse("[stores.m]\nkind = \"memory\"\n", "a.toml").unwrap();
    /// assert_eq!(cfg.error("stores.m.kind", "nope").to_string(), "a.toml:2:1: `stores.m.kind`: nope");
    /// ```
    pub fn error(&self, path: &str, message: impl fmt::Display) -> Error {
        let keys: Vec<String> = path.split('.').map(str::to_string).collect();
        located(
            &self.file,
            &self.source.text,
            &keys,
            None,
            message.to_string(),
        )
    }

    fn validate(&self, source: &Source) -> Result<()> {
        let err = |path: &[&str], msg: String| {
            let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
            located(&source.file, &source.text, &path, None, msg)
        };
        if self.router.page_size == 0 || self.router.page_size > self.router.max_page_size {
            return Err(err(
                &["router", "page_size"],
                format!(
                    "must be between 1 and max_page_size ({})",
                    self.router.max_page_size
                ),
            ));
        }
        for (name, spec) in &self.stores {
            if !crate::backends::KINDS.iter().any(|k| k.name == spec.kind) {
                let known: Vec<&str> = crate::backends::KINDS.iter().map(|k| k.name).collect();
                return Err(err(
                    &["stores", name, "kind"],
                    format!(
                        "unknown store kind `{}`; known kinds: {}",
                        spec.kind,
                        known.join(", ")
                    ),
                ));
            }
        }
        let mut tables: BTreeMap<(&str, &str), &str> = BTreeMap::new();
        for (name, e) in &self.entities {
            if !self.stores.contains_key(&e.store) {
                return Err(err(
                    &["entities", name, "store"],
                    format!(
                        "store `{}` is not defined; add a [stores.{}] table",
                        e.store, e.store
                    ),
                ));
            }
            let table = e.table.as_deref().unwrap_or(name);
            if let Some(other) = tables.insert((&e.store, table), name) {
                return Err(err(
                    &["entities", name],
                    format!(
                        "duplicate table `{table}` in store `{}`: entity `{other}` uses it too; set `table` on one of them",
                        e.store
                    ),
                ));
            }
            if e.ttl.is_some_and(|t| t.0.is_zero()) {
                return Err(err(
                    &["entities", name, "ttl"],
                    "a TTL must be greater than zero".into(),
                ));
            }
            if let Some(c) = &e.cache {
                if !self.stores.contains_key(&c.store) {
                    return Err(err(
                        &["entities", name, "cache", "store"],
                        format!(
                            "store `{}` is not defined; add a [stores.{}] table",
                            c.store, c.store
                        ),
                    ));
                }
                if c.store == e.store {
                    return Err(err(
                        &["entities", name, "cache", "store"],
                        "the cache store must differ from the primary store".into(),
                    ));
                }
            }
            if let Some(s) = &e.search {
                if let Err((key, msg)) = s.validate(&self.stores) {
                    return Err(err(&["entities", name, "search", key], msg));
                }
            }
        }
        Ok(())
    }
}

impl SearchConfig {
    /// Checks what can be checked without the Rust types; on error, the
    /// key under `search` and what is wrong.
    fn validate(
        &self,
        stores: &BTreeMap<String, StoreSpec>,
    ) -> std::result::Result<(), (&'static str, String)> {
        if !stores.contains_key(&self.store) {
            return Err((
                "store",
                format!(
                    "store `{}` is not defined; add a [stores.{}] table",
                    self.store, self.store
                ),
            ));
        }
        if self.fields.is_empty() {
            return Err(("fields", "name at least one text field".into()));
        }
        const KINDS: &[&str] = &["string", "int", "float", "bool", "timestamp", "uuid"];
        for (f, k) in &self.filters {
            if !KINDS.contains(&k.as_str()) {
                return Err((
                    "filters",
                    format!(
                        "filter `{f}` has kind `{k}`; use one of {}",
                        KINDS.join(", ")
                    ),
                ));
            }
        }
        for f in &self.facets {
            if self.filters.get(f).map(String::as_str) != Some("string") {
                return Err((
                    "facets",
                    format!(
                        "facet `{f}` must also be a filter of kind `string`: add `{f} = \"string\"` to `filters`"
                    ),
                ));
            }
        }
        if !["string", "int", "uuid"].contains(&self.key_kind.as_str()) {
            return Err(("key_kind", "must be `string`, `int` or `uuid`".into()));
        }
        if !crate::store::search::LANGUAGES.contains(&self.language.as_str()) {
            return Err((
                "language",
                format!(
                    "unknown language `{}`; known: {}",
                    self.language,
                    crate::store::search::LANGUAGES.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

fn path_segments(path: &serde_path_to_error::Path) -> Vec<String> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|s| match s {
            Segment::Map { key } | Segment::Enum { variant: key } => Some(key.clone()),
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Unknown => None,
        })
        .collect()
}

/// A config error at `path`, located in `text` by the span if given, else by the path.
fn located(file: &str, text: &str, path: &[String], span: Option<usize>, message: String) -> Error {
    let keys: Vec<&str> = path.iter().map(String::as_str).collect();
    let offset = span.or_else(|| locate::find_path(text, &keys));
    let (line, column) = offset.map(|o| locate::line_col(text, o)).unwrap_or((0, 0));
    Error::Config {
        file: file.into(),
        line,
        column,
        path: keys.join("."),
        message,
    }
}
