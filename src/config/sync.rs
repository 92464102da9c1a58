//! `[sync]` and `[projections.NAME]`: the relays that move outbox events
//! to their buses, and the projections that apply them elsewhere.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigDuration, EntityConfig};

/// `[sync]`: where sync keeps its own state (relay leases, projection
/// status, dead letters) and how relays poll (see docs/sync.md).
///
/// ```
/// let cfg = polyrouter::config::Config::parse(r#"
///     [stores.main]
///     kind = "memory"
///     [sync]
///     store = "main"
///     relay_batch = 100
/// "#, "<string>").unwrap();
/// let s = cfg.sync.unwrap();
/// assert_eq!(s.relay_batch, 100);
/// assert_eq!(s.table, "polyrouter_sync");
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// The record store holding relay leases, projection status and dead
    /// letters (any SQL store; memory for tests).
    pub store: String,
    /// The table of relay leases and projection status (default
    /// `polyrouter_sync`); dead letters go to `{table}_dead_letters`.
    #[serde(default = "default_table")]
    pub table: String,
    /// Events one relay round moves (default 512).
    #[serde(default = "default_relay_batch")]
    pub relay_batch: usize,
    /// How often an idle relay looks at its outbox (default `"10ms"`).
    #[serde(default = "default_relay_interval")]
    pub relay_interval: ConfigDuration,
    /// How long a relay owns its outbox after its last renewal; another
    /// process takes over an expired lease (default `"10s"`).
    #[serde(default = "default_lease")]
    pub lease: ConfigDuration,
    /// How often status figures are written for `polyrouter sync status`
    /// (default `"1s"`).
    #[serde(default = "default_status_interval")]
    pub status_interval: ConfigDuration,
}

impl SyncConfig {
    /// Defaults with sync state in `store`.
    ///
    /// ```
    /// let c = polyrouter::config::SyncConfig::new("main");
    /// assert_eq!(c.relay_batch, 512);
    /// ```
    pub fn new(store: &str) -> Self {
        SyncConfig {
            store: store.into(),
            table: default_table(),
            relay_batch: default_relay_batch(),
            relay_interval: default_relay_interval(),
            lease: default_lease(),
            status_interval: default_status_interval(),
        }
    }

    /// The key and the problem of the first invalid option.
    pub(crate) fn problem(&self) -> Option<(&'static str, String)> {
        if !valid_name(&self.table) {
            return Some((
                "table",
                format!(
                    "table `{}` may hold only ASCII letters, digits and `_`",
                    self.table
                ),
            ));
        }
        if self.relay_batch == 0 {
            return Some(("relay_batch", "must be at least 1".into()));
        }
        if self.relay_interval.0.is_zero() {
            return Some(("relay_interval", "must be more than zero".into()));
        }
        if self.lease.0 < Duration::from_millis(100) {
            return Some(("lease", "must be at least \"100ms\"".into()));
        }
        if self.status_interval.0.is_zero() {
            return Some(("status_interval", "must be more than zero".into()));
        }
        None
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn default_table() -> String {
    "polyrouter_sync".into()
}
fn default_relay_batch() -> usize {
    512
}
fn default_relay_interval() -> ConfigDuration {
    ConfigDuration(Duration::from_millis(10))
}
fn default_lease() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(10))
}
fn default_status_interval() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(1))
}

/// What a projection does with the events it reads.
///
/// ```
/// assert_eq!(polyrouter::config::ProjectionKind::Replica.name(), "replica");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectionKind {
    /// Copies the entity into another store keeping the primary's
    /// versions (fills a `read_from` replica).
    Replica,
    /// Removes changed keys from the entity's cache, in every process.
    Invalidate,
    /// Keeps the entity's search index (its `search` option) current.
    Search,
    /// Runs a Rust handler registered in code under the projection's name.
    Handler,
}

impl ProjectionKind {
    /// The kind's name in TOML.
    ///
    /// ```
    /// assert_eq!(polyrouter::config::ProjectionKind::Handler.name(), "handler");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            ProjectionKind::Replica => "replica",
            ProjectionKind::Invalidate => "invalidate",
            ProjectionKind::Search => "search",
            ProjectionKind::Handler => "handler",
        }
    }
}

/// `[projections.NAME]`: one consumer of change events (see docs/sync.md).
///
/// ```
/// let cfg = polyrouter::config::Config::parse(r#"
///     [stores.main]
///     kind = "memory"
///     [stores.replica]
///     kind = "memory"
///     [buses.events]
///     kind = "memory"
///     [sync]
///     store = "main"
///     [entities.order]
///     store = "main"
///     read_from = "replica"
///     outbox = { bus = "events" }
///     [projections.order_replica]
///     kind = "replica"
///     entities = ["order"]
/// "#, "<string>").unwrap();
/// let p = &cfg.projections["order_replica"];
/// assert_eq!(p.max_attempts, 5);
/// assert_eq!(p.target_store(&cfg.entities["order"]), Some("replica"));
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectionConfig {
    /// What the projection does.
    pub kind: ProjectionKind,
    /// The entities whose events it reads (`replica`, `invalidate` and
    /// `search`: exactly one).
    pub entities: Vec<String>,
    /// The bus it reads (default: the entities' outbox or change capture bus).
    pub bus: Option<String>,
    /// `replica`: the store it fills (default: the entity's `read_from`).
    pub store: Option<String>,
    /// Events fetched at a time (default 256).
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Keys applied concurrently (default 16).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Deliveries of one event before it goes to the dead letters (default 5).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// The first delay before a failed event is delivered again; doubles
    /// on every attempt, up to 30 times it (default `"100ms"`).
    #[serde(default = "default_retry_delay")]
    pub retry_delay: ConfigDuration,
    /// An event neither acknowledged nor failed within this time is
    /// delivered again (default `"30s"`).
    #[serde(default = "default_ack_wait")]
    pub ack_wait: ConfigDuration,
}

fn default_batch() -> usize {
    256
}
fn default_concurrency() -> usize {
    16
}
fn default_max_attempts() -> u32 {
    5
}
fn default_retry_delay() -> ConfigDuration {
    ConfigDuration(Duration::from_millis(100))
}
fn default_ack_wait() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(30))
}

impl ProjectionConfig {
    /// Every option at its default, reading no entity yet.
    pub(crate) fn defaults() -> Self {
        ProjectionConfig {
            kind: ProjectionKind::Replica,
            entities: Vec::new(),
            bus: None,
            store: None,
            batch: default_batch(),
            concurrency: default_concurrency(),
            max_attempts: default_max_attempts(),
            retry_delay: default_retry_delay(),
            ack_wait: default_ack_wait(),
        }
    }

    /// The bus the projection reads: its own `bus`, else the outbox bus of
    /// its first entity.
    pub fn bus_name<'a>(&'a self, entities: &'a BTreeMap<String, EntityConfig>) -> Option<&'a str> {
        self.bus
            .as_deref()
            .or_else(|| entities.get(self.entities.first()?)?.event_bus())
    }

    /// `replica`: the store it fills — its `store`, else the entity's
    /// `read_from`.
    pub fn target_store<'a>(&'a self, entity: &'a EntityConfig) -> Option<&'a str> {
        self.store.as_deref().or(entity.read_from.as_deref())
    }

    /// The key path and the problem of the first invalid option, checked
    /// against the rest of the configuration.
    pub(crate) fn problem(&self, config: &super::Config) -> Option<(&'static str, String)> {
        if self.entities.is_empty() {
            return Some((
                "entities",
                "names no entity; e.g. `entities = [\"order\"]`".into(),
            ));
        }
        if self.kind != ProjectionKind::Handler && self.entities.len() != 1 {
            return Some((
                "entities",
                format!(
                    "a `{}` projection reads exactly one entity; make one projection per entity",
                    self.kind.name()
                ),
            ));
        }
        for e in &self.entities {
            if !config.entities.contains_key(e) {
                return Some((
                    "entities",
                    format!("entity `{e}` has no route; add [entities.{e}]"),
                ));
            }
        }
        match self.bus_name(&config.entities) {
            None => {
                return Some((
                    "bus",
                    format!(
                        "no bus: set `bus`, or give entity `{}` an `outbox = {{ bus = \"...\" }}` or `change_capture = {{ bus = \"...\" }}`",
                        self.entities[0]
                    ),
                ));
            }
            Some(b) if !config.buses.contains_key(b) => {
                return Some((
                    "bus",
                    format!("bus `{b}` is not defined; add a [buses.{b}] table"),
                ));
            }
            Some(_) => {}
        }
        let entity = &config.entities[&self.entities[0]];
        match self.kind {
            ProjectionKind::Replica => match self.target_store(entity) {
                None => {
                    return Some((
                        "store",
                        "a replica projection needs `store`, or the entity's `read_from`".into(),
                    ));
                }
                Some(s) if !config.stores.contains_key(s) => {
                    return Some((
                        "store",
                        format!("store `{s}` is not defined; add a [stores.{s}] table"),
                    ));
                }
                Some(s) if s == entity.store => {
                    return Some((
                        "store",
                        "a replica must be another store than the entity's primary".into(),
                    ));
                }
                Some(_) => {}
            },
            ProjectionKind::Invalidate if entity.cache.is_none() => {
                return Some((
                    "kind",
                    format!(
                        "entity `{}` has no cache to invalidate; add `cache = {{ ... }}` to it",
                        self.entities[0]
                    ),
                ));
            }
            ProjectionKind::Search if entity.search.is_none() => {
                return Some((
                    "kind",
                    format!(
                        "entity `{}` has no search index; add `search = {{ ... }}` to it",
                        self.entities[0]
                    ),
                ));
            }
            _ => {}
        }
        if self.kind != ProjectionKind::Replica && self.store.is_some() {
            return Some(("store", "only a `replica` projection takes `store`".into()));
        }
        for (key, zero) in [
            ("batch", self.batch == 0),
            ("concurrency", self.concurrency == 0),
            ("max_attempts", self.max_attempts == 0),
            ("retry_delay", self.retry_delay.0.is_zero()),
            ("ack_wait", self.ack_wait.0.is_zero()),
        ] {
            if zero {
                return Some((key, "must be more than zero".into()));
            }
        }
        if config.sync.is_none() {
            return Some((
                "kind",
                "projections keep status and dead letters in the `[sync]` store; add `[sync] store = \"...\"`".into(),
            ));
        }
        None
    }
}

/// `change_capture = { bus = "events", slot = "polyrouter_order" }`: the
/// changes any writer commits to the route's table, read from the store's
/// change stream (PostgreSQL logical decoding) and published to `bus` by
/// the sync worker (see docs/cdc.md).
///
/// ```
/// let cfg = polyrouter::config::Config::parse(r#"
///     [stores.main]
///     kind = "postgres"
///     url = "postgres://127.0.0.1/app"
///     [buses.events]
///     kind = "memory"
///     [sync]
///     store = "main"
///     [entities.order]
///     store = "main"
///     change_capture = { bus = "events" }
/// "#, "<string>").unwrap();
/// let c = cfg.entities["order"].change_capture.as_ref().unwrap();
/// assert_eq!(c.slot_name("order"), "polyrouter_order");
/// assert_eq!(c.warn_retained_mb, 1024);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeCaptureConfig {
    /// The `[buses.NAME]` the capture publishes to.
    pub bus: String,
    /// The replication slot, also the publication's name (default
    /// `polyrouter_{entity}`): lower-case letters, digits and `_`, at most
    /// 63 bytes, one per route.
    pub slot: Option<String>,
    /// `polyrouter sync status` and the worker's log warn when the server
    /// keeps more write-ahead log than this for the slot, in MiB (default
    /// 1024).
    #[serde(default = "default_warn_retained_mb")]
    pub warn_retained_mb: u64,
    /// How often an idle capture reads its slot (default `"100ms"`).
    #[serde(default = "default_capture_interval")]
    pub interval: ConfigDuration,
}

fn default_warn_retained_mb() -> u64 {
    1024
}
fn default_capture_interval() -> ConfigDuration {
    ConfigDuration(Duration::from_millis(100))
}

impl ChangeCaptureConfig {
    /// The replication slot of `entity`'s capture.
    ///
    /// ```
    /// let c = polyrouter::config::ChangeCaptureConfig {
    ///     bus: "events".into(), slot: None, warn_retained_mb: 1,
    ///     interval: polyrouter::config::ConfigDuration(std::time::Duration::from_millis(100)),
    /// };
    /// assert_eq!(c.slot_name("Order"), "polyrouter_order");
    /// ```
    pub fn slot_name(&self, entity: &str) -> String {
        self.slot.clone().unwrap_or_else(|| {
            format!("polyrouter_{entity}")
                .to_ascii_lowercase()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect()
        })
    }

    /// The key and the problem of the first invalid option.
    pub(crate) fn validate(
        &self,
        entity: &str,
        route: &EntityConfig,
        config: &super::Config,
    ) -> Result<(), (&'static str, String)> {
        if !config.buses.contains_key(&self.bus) {
            return Err((
                "bus",
                format!(
                    "bus `{}` is not defined; add a [buses.{}] table",
                    self.bus, self.bus
                ),
            ));
        }
        if route.outbox.is_some() {
            return Err((
                "bus",
                "a route takes `outbox` or `change_capture`, not both (change capture already sees the writes polyrouter makes); remove one".into(),
            ));
        }
        let slot = self.slot_name(entity);
        if slot.is_empty()
            || slot.len() > 63
            || !slot
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err((
                "slot",
                format!(
                    "slot `{slot}` must be 1 to 63 lower-case letters, digits or `_` (a PostgreSQL replication slot name)"
                ),
            ));
        }
        for (other, e) in &config.entities {
            if other != entity
                && e.store == route.store
                && e.change_capture
                    .as_ref()
                    .is_some_and(|c| c.slot_name(other) == slot)
            {
                return Err((
                    "slot",
                    format!("slot `{slot}` is also entity `{other}`'s; give each route its own"),
                ));
            }
        }
        if self.interval.0.is_zero() {
            return Err(("interval", "must be more than zero".into()));
        }
        if config.sync.is_none() {
            return Err((
                "bus",
                "change capture runs in the sync worker, which keeps its lease in the `[sync]` store; add `[sync] store = \"...\"`".into(),
            ));
        }
        Ok(())
    }
}
