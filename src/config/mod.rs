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

mod bus;
mod depth;
mod duration;
mod interpolate;
mod kinds;
mod locate;
mod migrate;
mod resilience;
mod sagas;
mod secret;
mod sync;
mod timeseries;
mod view;

pub use bus::{BusSpec, redact_bus_url};
pub use duration::ConfigDuration;
pub use kinds::KindInfo;
pub(crate) use kinds::{KindEntry, opener};
pub use migrate::MigrationConfig;
pub use resilience::{BreakerConfig, LimitConfig, ResilienceConfig, RetryConfig, TimeoutConfig};
pub use sagas::SagasConfig;
pub use secret::{Redactor, Secret, is_secret_key, redact_url};
pub use sync::{ChangeCaptureConfig, ProjectionConfig, ProjectionKind, SyncConfig};
pub use timeseries::TimeSeriesConfig;
pub use view::{
    JoinConfig, ViewBranch, ViewConfig, ViewDirection, ViewGraph, ViewGraphOp, ViewSearch,
};

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
    /// Declarative aggregate reads by name (`[views.NAME]`).
    pub views: BTreeMap<String, ViewConfig>,
    /// Graphs by name (`[graphs.NAME]`).
    pub graphs: BTreeMap<String, GraphConfig>,
    /// Time series tables by name, from `[timeseries.NAME]`.
    pub timeseries: BTreeMap<String, TimeSeriesConfig>,
    /// Event buses by name, from `[buses.NAME]`.
    pub buses: BTreeMap<String, BusSpec>,
    /// The saga log, from `[sagas]`.
    pub sagas: Option<SagasConfig>,
    /// Sync state and relays, from `[sync]`.
    pub sync: Option<SyncConfig>,
    /// Projections by name, from `[projections.NAME]`.
    pub projections: BTreeMap<String, ProjectionConfig>,
    /// Entity migrations by name, from `[migrations.NAME]`.
    pub migrations: BTreeMap<String, MigrationConfig>,
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
    /// Every option except `kind` and `resilience`, checked by the backend.
    pub options: toml::Table,
    /// `[stores.NAME.resilience]`: the layers the router wraps the store in.
    pub resilience: ResilienceConfig,
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
            resilience: ResilienceConfig::default(),
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
        self.parse_at(&[], toml::Value::Table(self.options.clone()))
    }

    /// Deserializes `value`, found at `keys` under `stores.NAME`.
    fn parse_at<T: DeserializeOwned>(&self, keys: &[&str], value: toml::Value) -> Result<T> {
        parse_options("stores", &self.name, keys, value, &self.source)
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
    /// How long a deleted record's tombstone keeps the key's last version,
    /// so a re-created record continues from it (default `"7d"`; `"0s"`:
    /// no tombstones, versions restart at 1 after a delete). See
    /// [`EntityConfig::tombstone_retention`].
    pub tombstone_retention: Option<ConfigDuration>,
    /// Cache-aside: `{ store = "cache", ttl = "1h" }`.
    pub cache: Option<CacheConfig>,
    /// Read consistency; default `strong`, or `eventual` when the entity
    /// has a `cache` or `read_from` (see [`EntityConfig::read_consistency`]).
    pub consistency: Option<Consistency>,
    /// A secondary read route (a replica or read model) in another store,
    /// holding the same table; read under every level but `strong` when no
    /// fresher copy answers.
    pub read_from: Option<String>,
    /// Blobs this entity owns: deleting a record through its repo deletes
    /// the blobs its fields name, after the record.
    /// `cascade_blobs = [{ store = "images", field = "image_key" }]`.
    #[serde(default)]
    pub cascade_blobs: Vec<CascadeBlobs>,
    /// Full-text search index kept on write:
    /// `{ store = "search", fields = ["name", "description"] }`.
    pub search: Option<SearchConfig>,
    /// Coalesce concurrent point reads of the entity on its primary store
    /// into one `get_many` per round trip (default `false`).
    #[serde(default)]
    pub coalesce_reads: bool,
    /// The most keys one coalesced read sends (default 128).
    pub coalesce_max_batch: Option<usize>,
    /// The entity's table for analytical SQL where no Rust type describes
    /// it (`polyrouter sql`): `sql = { key = "id", columns = { id = "int",
    /// note = "string?" } }`. Ignored once a Rust type is bound.
    pub sql: Option<SqlTableConfig>,
    /// A transactional outbox: every write also records its change event
    /// atomically with it, and the relay publishes it to the bus:
    /// `outbox = { bus = "events" }`.
    pub outbox: Option<OutboxConfig>,
    /// Change capture of the writes any writer commits to the route's
    /// table (PostgreSQL logical decoding), published to a bus as the
    /// outbox would: `change_capture = { bus = "events" }`. Not together
    /// with `outbox` (docs/cdc.md).
    pub change_capture: Option<ChangeCaptureConfig>,
}

/// `outbox = { bus = "events", after_image = true }`: the route's writes
/// record their change events in the primary store's outbox, atomically
/// with the write; the relay moves them to the bus.
///
/// ```
/// let cfg = polyrouter::config::Config::parse(r#"
///     [stores.main]
///     kind = "memory"
///     [buses.events]
///     kind = "memory"
///     [entities.order]
///     store = "main"
///     outbox = { bus = "events", after_image = false }
/// "#, "<string>").unwrap();
/// let o = cfg.entities["order"].outbox.as_ref().unwrap();
/// assert_eq!(o.bus, "events");
/// assert!(!o.spec().after_image);
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// The `[buses.NAME]` the relay publishes the events to.
    pub bus: String,
    /// Put events carry the record's fields (default `true`).
    pub after_image: Option<bool>,
}

impl OutboxConfig {
    /// What the store needs to know: whether events carry the after-image.
    ///
    /// ```
    /// let o = polyrouter::config::OutboxConfig { bus: "events".into(), after_image: None };
    /// assert!(o.spec().after_image);
    /// ```
    pub fn spec(&self) -> crate::store::OutboxSpec {
        crate::store::OutboxSpec {
            after_image: self.after_image.unwrap_or(true),
        }
    }
}

/// `sql = { key = "id", columns = { id = "int", total = "float", note = "string?" } }`:
/// an entity's columns for analytical SQL without its Rust type.
///
/// Each column's kind is one of `bool`, `int`, `float`, `string`,
/// `bytes`, `timestamp`, `uuid`, `json`; a trailing `?` makes it nullable.
/// The key column (`key`, default `id`) must be listed, as `string`, `int`
/// or `uuid`.
///
/// ```
/// let cfg = polyrouter::config::Config::parse(r#"
///     [stores.m]
///     kind = "memory"
///     [entities.order]
///     store = "m"
///     sql = { columns = { id = "string", total = "float", note = "string?" } }
/// "#, "<string>").unwrap();
/// let s = cfg.entities["order"].sql.as_ref().unwrap();
/// assert_eq!(s.key, "id");
/// assert_eq!(s.columns["note"], "string?");
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlTableConfig {
    /// The key column; default `id`.
    #[serde(default = "default_sql_key")]
    pub key: String,
    /// Column name → kind (`int`, `string?`, …).
    pub columns: BTreeMap<String, String>,
}

impl SqlTableConfig {
    /// The entity's schema from these columns, or the path (under `sql`)
    /// and message of what is wrong. Leaked: built once per session of a
    /// command-line run (`polyrouter sql`, `polyrouter sync`), where no
    /// Rust type describes the entity.
    ///
    /// ```
    /// let c = polyrouter::config::SqlTableConfig { key: "id".into(), columns: [("id".to_string(), "int".to_string())].into() };
    /// assert_eq!(c.schema("order").unwrap().key_kind, polyrouter::KeyKind::Int);
    /// ```
    pub fn schema(
        &self,
        entity: &str,
    ) -> std::result::Result<&'static crate::Schema, (String, String)> {
        use crate::{FieldDef, FieldKind, FieldType, KeyKind, Schema};
        let c = self;
        let leak = |x: &str| -> &'static str { Box::leak(x.to_string().into_boxed_str()) };
        let mut fields = Vec::with_capacity(c.columns.len());
        for (name, kind) in &c.columns {
            let (k, nullable) = match kind.strip_suffix('?') {
                Some(k) => (k, true),
                None => (kind.as_str(), false),
            };
            let kind = match k {
                "bool" => FieldKind::Bool,
                "int" => FieldKind::Int,
                "float" => FieldKind::Float,
                "string" => FieldKind::String,
                "bytes" => FieldKind::Bytes,
                "timestamp" => FieldKind::Timestamp,
                "uuid" => FieldKind::Uuid,
                "json" => FieldKind::Json,
                other => {
                    return Err((
                        format!(".columns.{name}"),
                        format!(
                            "unknown column kind `{other}`; use bool, int, float, string, bytes, timestamp, uuid or json (a trailing `?` for nullable)"
                        ),
                    ));
                }
            };
            fields.push(FieldDef {
                name: leak(name),
                ty: FieldType { kind, nullable },
            });
        }
        let Some(key) = fields.iter().find(|f| f.name == c.key) else {
            return Err((
                ".key".into(),
                format!("the key column `{}` is not among `columns`; list it", c.key),
            ));
        };
        let key_kind = match key.ty.kind {
            FieldKind::String => KeyKind::Str,
            FieldKind::Int => KeyKind::Int,
            FieldKind::Uuid => KeyKind::Uuid,
            other => {
                return Err((
                    format!(".columns.{}", c.key),
                    format!("a key is a string, int or uuid, not {}", other.name()),
                ));
            }
        };
        let key = key.name;
        Ok(Box::leak(Box::new(Schema {
            name: leak(entity),
            key,
            key_kind,
            partition_key: None,
            version: None,
            fields: Box::leak(fields.into_boxed_slice()),
        })))
    }
}

fn default_sql_key() -> String {
    "id".into()
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

/// One entry of `cascade_blobs = [{ store = "...", field = "..." }]`: the
/// field holds a blob key (a string, a list of strings, or null) in the
/// blob store `store`.
///
/// ```
/// let cfg = polyrouter::config::Config::parse(r#"
///     [stores.main]
///     kind = "memory"
///     [stores.images]
///     kind = "memory"
///     [entities.product]
///     store = "main"
///     cascade_blobs = [{ store = "images", field = "image_key" }]
/// "#, "<string>").unwrap();
/// assert_eq!(cfg.entities["product"].cascade_blobs[0].field, "image_key");
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CascadeBlobs {
    /// The blob store.
    pub store: String,
    /// The entity field holding the blob key(s).
    pub field: String,
}

impl EntityConfig {
    /// The bus the route's change events go to: its outbox's, else its
    /// change capture's; `None` when it emits none.
    ///
    /// ```
    /// let cfg = polyrouter::config::Config::parse(r#"
    ///     [stores.main]
    ///     kind = "postgres"
    ///     url = "postgres://localhost/app"
    ///     [buses.events]
    ///     kind = "memory"
    ///     [sync]
    ///     store = "main"
    ///     [entities.order]
    ///     store = "main"
    ///     change_capture = { bus = "events" }
    /// "#, "<string>").unwrap();
    /// assert_eq!(cfg.entities["order"].event_bus(), Some("events"));
    /// ```
    pub fn event_bus(&self) -> Option<&str> {
        self.outbox
            .as_ref()
            .map(|o| o.bus.as_str())
            .or(self.change_capture.as_ref().map(|c| c.bus.as_str()))
    }

    /// The outbox a migration's target records the entity's events with
    /// once it is the primary (after cutover): the route's own, or, for a
    /// route fed by change capture, one with after-images (the target's
    /// events go to the capture's bus, where the same projections read).
    ///
    /// ```
    /// let cfg = polyrouter::config::Config::parse(r#"
    ///     [stores.main]
    ///     kind = "postgres"
    ///     url = "postgres://localhost/app"
    ///     [buses.events]
    ///     kind = "memory"
    ///     [sync]
    ///     store = "main"
    ///     [entities.order]
    ///     store = "main"
    ///     change_capture = { bus = "events" }
    /// "#, "<string>").unwrap();
    /// assert!(cfg.entities["order"].migration_outbox().unwrap().after_image);
    /// ```
    pub fn migration_outbox(&self) -> Option<crate::store::OutboxSpec> {
        match (&self.outbox, &self.change_capture) {
            (Some(o), _) => Some(o.spec()),
            (None, Some(_)) => Some(crate::store::OutboxSpec { after_image: true }),
            (None, None) => None,
        }
    }

    /// The tombstone retention of the entity's records: the option, or
    /// [`DEFAULT_TOMBSTONE_RETENTION`](crate::store::DEFAULT_TOMBSTONE_RETENTION)
    /// (7 days). Within it a key's versions never repeat, across deletes
    /// too; after it a purged tombstone lets the key restart at 1.
    ///
    /// ```
    /// let cfg = polyrouter::config::Config::parse(r#"
    ///     [stores.m]
    ///     kind = "memory"
    ///     [entities.user]
    ///     store = "m"
    ///     tombstone_retention = "30d"
    /// "#, "<string>").unwrap();
    /// assert_eq!(cfg.entities["user"].tombstone_retention().as_secs(), 30 * 86_400);
    /// ```
    pub fn tombstone_retention(&self) -> std::time::Duration {
        self.tombstone_retention
            .map_or(crate::store::DEFAULT_TOMBSTONE_RETENTION, |d| d.0)
    }
    /// The entity's default read consistency: the configured one, else
    /// `eventual` when it has a cache or a `read_from` replica (so
    /// configuring a cache is enough to use it), else `strong`.
    ///
    /// ```
    /// use polyrouter::config::{Consistency, EntityConfig};
    /// assert_eq!(EntityConfig::default().read_consistency(), Consistency::Strong);
    /// let with_replica = EntityConfig { read_from: Some("replica".into()), ..Default::default() };
    /// assert_eq!(with_replica.read_consistency(), Consistency::Eventual);
    /// ```
    pub fn read_consistency(&self) -> Consistency {
        self.consistency
            .unwrap_or(if self.cache.is_some() || self.read_from.is_some() {
                Consistency::Eventual
            } else {
                Consistency::Strong
            })
    }
}

/// `cache = { store = "...", ttl = "..." }`: cache-aside in another store.
///
/// ```
/// let c = polyrouter::config::CacheConfig { store: "redis".into(), ..Default::default() };
/// assert_eq!(c.store, "redis");
/// ```
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// The cache store (any store with TTL support).
    pub store: String,
    /// How long an entry is served after it was filled (required).
    pub ttl: Option<ConfigDuration>,
    /// Cache "not found" too, for this long (default: never).
    pub negative_ttl: Option<ConfigDuration>,
    /// Keep entries this long past `ttl` and serve them, flagged stale,
    /// when the primary is unavailable (default: never).
    pub stale_if_error: Option<ConfigDuration>,
    /// A cache call slower than this counts as a cache failure and the
    /// read goes to the primary (default `"100ms"`).
    pub timeout: Option<ConfigDuration>,
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
    #[serde(default)]
    views: BTreeMap<String, ViewConfig>,
    #[serde(default)]
    graphs: BTreeMap<String, GraphConfig>,
    #[serde(default)]
    timeseries: BTreeMap<String, TimeSeriesConfig>,
    #[serde(default)]
    buses: BTreeMap<String, RawStore>,
    #[serde(default)]
    sagas: Option<SagasConfig>,
    #[serde(default)]
    sync: Option<SyncConfig>,
    #[serde(default)]
    projections: BTreeMap<String, ProjectionConfig>,
    #[serde(default)]
    migrations: BTreeMap<String, MigrationConfig>,
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
        let text = interpolate::interpolate(text, env).map_err(|f| Error::Config {
            file: file.into(),
            line: f.line,
            column: f.column,
            path: String::new(),
            message: match f.problem {
                interpolate::Problem::Missing(var) => format!(
                    "environment variable `{var}` is not set; set it or write `${{{var}:-default}}`"
                ),
                interpolate::Problem::Unclosed => "`${` is not closed by `}` on its line of the string; close it, or write `$${` for a literal `${`".into(),
            },
        })?;
        if let Some(at) = depth::too_deep(&text) {
            let (line, column) = locate::line_col(&text, at);
            return Err(Error::Config {
                file: file.into(),
                line,
                column,
                path: String::new(),
                message: format!(
                    "nested more than {} levels deep (table headers, dotted keys, inline tables and arrays together); no polyrouter option nests that deep",
                    depth::MAX_DEPTH
                ),
            });
        }
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
        let mut stores = BTreeMap::new();
        for (name, mut s) in raw.stores {
            let resilience = s.options.remove("resilience");
            let mut spec = StoreSpec {
                name: name.clone(),
                kind: s.kind,
                options: s.options,
                resilience: ResilienceConfig::default(),
                source: source.clone(),
            };
            if let Some(value) = resilience {
                spec.resilience = spec.parse_at(&["resilience"], value)?;
                if let Err((keys, msg)) = spec.resilience.validate() {
                    let mut path = vec!["resilience"];
                    path.extend(keys);
                    return Err(spec.error(&path, msg));
                }
            }
            stores.insert(name, spec);
        }
        let buses = raw
            .buses
            .into_iter()
            .map(|(name, b)| {
                let spec = BusSpec::located(&name, b.kind, b.options, source.clone());
                (name, spec)
            })
            .collect();
        let cfg = Config {
            file: file.into(),
            router: raw.router,
            stores,
            entities: raw.entities,
            views: raw.views,
            graphs: raw.graphs,
            timeseries: raw.timeseries,
            buses,
            sagas: raw.sagas,
            sync: raw.sync,
            projections: raw.projections,
            migrations: raw.migrations,
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
            views: BTreeMap::new(),
            graphs: BTreeMap::new(),
            timeseries: BTreeMap::new(),
            buses: BTreeMap::new(),
            sagas: None,
            sync: None,
            projections: BTreeMap::new(),
            migrations: BTreeMap::new(),
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
        if let Some(s) = &self.sagas {
            if !self.stores.contains_key(&s.store) {
                return Err(err(
                    &["sagas", "store"],
                    format!(
                        "store `{}` is not defined; add a [stores.{}] table (any SQL store, or memory for tests)",
                        s.store, s.store
                    ),
                ));
            }
            if let Some((key, msg)) = s.problem() {
                return Err(err(&["sagas", key], msg));
            }
        }
        if let Some(s) = &self.sync {
            if !self.stores.contains_key(&s.store) {
                return Err(err(
                    &["sync", "store"],
                    format!(
                        "store `{}` is not defined; add a [stores.{}] table (any SQL store, or memory for tests)",
                        s.store, s.store
                    ),
                ));
            }
            if let Some((key, msg)) = s.problem() {
                return Err(err(&["sync", key], msg));
            }
        }
        for (name, p) in &self.projections {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(err(
                    &["projections", name],
                    "a projection name (its consumer group on the bus) may hold only ASCII letters, digits, `_` and `-`".into(),
                ));
            }
            if let Some((key, msg)) = p.problem(self) {
                return Err(err(&["projections", name, key], msg));
            }
        }
        for (name, m) in &self.migrations {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(err(
                    &["migrations", name],
                    "a migration name may hold only ASCII letters, digits, `_` and `-`".into(),
                ));
            }
            if let Some((key, msg)) = m.problem(self) {
                return Err(err(&["migrations", name, key], msg));
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
            for (i, c) in e.cascade_blobs.iter().enumerate() {
                if !self.stores.contains_key(&c.store) {
                    return Err(err(
                        &["entities", name, "cascade_blobs", &i.to_string(), "store"],
                        format!(
                            "store `{}` is not defined; add a [stores.{}] table",
                            c.store, c.store
                        ),
                    ));
                }
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
                if c.ttl.is_none() {
                    return Err(err(
                        &["entities", name, "cache"],
                        "a cache needs `ttl`, e.g. `cache = { store = \"cache\", ttl = \"1h\" }`"
                            .into(),
                    ));
                }
                for (what, d) in [
                    ("ttl", c.ttl),
                    ("negative_ttl", c.negative_ttl),
                    ("stale_if_error", c.stale_if_error),
                    ("timeout", c.timeout),
                ] {
                    if d.is_some_and(|d| d.0.is_zero()) {
                        return Err(err(
                            &["entities", name, "cache", what],
                            "must be greater than zero".into(),
                        ));
                    }
                }
            }
            if let Some(r) = &e.read_from {
                if !self.stores.contains_key(r) {
                    return Err(err(
                        &["entities", name, "read_from"],
                        format!("store `{r}` is not defined; add a [stores.{r}] table"),
                    ));
                }
                if *r == e.store {
                    return Err(err(
                        &["entities", name, "read_from"],
                        "the read_from store must differ from the primary store".into(),
                    ));
                }
            }
            match e.coalesce_max_batch {
                Some(0) => {
                    return Err(err(
                        &["entities", name, "coalesce_max_batch"],
                        "must be greater than zero".into(),
                    ));
                }
                Some(_) if !e.coalesce_reads => {
                    return Err(err(
                        &["entities", name, "coalesce_max_batch"],
                        "has no effect without `coalesce_reads = true`; set both or remove it"
                            .into(),
                    ));
                }
                _ => {}
            }
            if let Some(o) = &e.outbox {
                if !self.buses.contains_key(&o.bus) {
                    return Err(err(
                        &["entities", name, "outbox", "bus"],
                        format!(
                            "bus `{}` is not defined; add a [buses.{}] table",
                            o.bus, o.bus
                        ),
                    ));
                }
            }
            if let Some(c) = &e.change_capture {
                if let Err((key, msg)) = c.validate(name, e, self) {
                    return Err(err(&["entities", name, "change_capture", key], msg));
                }
            }
            if let Some(s) = &e.search {
                if let Err((key, msg)) = s.validate(&self.stores) {
                    return Err(err(&["entities", name, "search", key], msg));
                }
            }
        }
        for (name, v) in &self.views {
            if let Err((keys, msg)) = v.check(&self.entities, &self.graphs) {
                let mut path = vec!["views", name.as_str()];
                path.extend(keys.iter().map(String::as_str));
                return Err(err(&path, msg));
            }
        }
        timeseries::validate(&self.timeseries, &self.stores, &self.entities).map_err(
            |(path, msg)| {
                let path: Vec<&str> = path.iter().map(String::as_str).collect();
                err(&path, msg)
            },
        )?;
        self.validate_graphs(source)
    }

    fn validate_graphs(&self, source: &Source) -> Result<()> {
        for (name, g) in &self.graphs {
            let err = |key: &str, msg: String| {
                let path = vec!["graphs".to_string(), name.clone(), key.to_string()];
                located(&source.file, &source.text, &path, None, msg)
            };
            if !self.stores.contains_key(&g.store) {
                return Err(err(
                    "store",
                    format!(
                        "store `{}` is not defined; add a [stores.{}] table",
                        g.store, g.store
                    ),
                ));
            }
            let prefix = g.prefix(name);
            if !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                let key = if g.table_prefix.is_some() {
                    "table_prefix"
                } else {
                    "store"
                };
                return Err(err(
                    key,
                    format!(
                        "table prefix `{prefix}` may hold only ASCII letters, digits and `_`; set `table_prefix`"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// `[graphs.NAME]`: a graph and the store that holds it.
///
/// ```
/// let cfg = polyrouter::config::Config::parse(r#"
///     [stores.main]
///     kind = "memory"
///     [graphs.social]
///     store = "main"
/// "#, "<string>").unwrap();
/// assert_eq!(cfg.graphs["social"].store, "main");
/// assert_eq!(cfg.graphs["social"].prefix("social"), "social_");
/// ```
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GraphConfig {
    /// The store's name; it must have the `graph` capability.
    pub store: String,
    /// Prefix of the graph's tables (`{prefix}vertices`, `{prefix}edges`);
    /// default: the graph name and `_`.
    pub table_prefix: Option<String>,
}

impl GraphConfig {
    /// The table prefix of the graph called `name`.
    ///
    /// ```
    /// let g = polyrouter::config::GraphConfig { store: "s".into(), table_prefix: Some("g1_".into()) };
    /// assert_eq!(g.prefix("social"), "g1_");
    /// ```
    pub fn prefix(&self, name: &str) -> String {
        self.table_prefix
            .clone()
            .unwrap_or_else(|| format!("{name}_"))
    }
}

/// Deserializes the options of `[{section}.{name}]`; an error names file,
/// line, column and the key path, and hides secret values.
fn parse_options<T: DeserializeOwned>(
    section: &str,
    name: &str,
    keys: &[&str],
    value: toml::Value,
    source: &Source,
) -> Result<T> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let mut path = vec![section.to_string(), name.to_string()];
        path.extend(keys.iter().map(|k| k.to_string()));
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
        located(&source.file, &source.text, &path, None, msg)
    })
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
