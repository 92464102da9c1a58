//! `[migrations.NAME]`: moving an entity from its route's store to another
//! store while the application keeps serving (see docs/migration.md).

use std::time::Duration;

use serde::Deserialize;

use super::ConfigDuration;

/// `[migrations.NAME]`: copy `entity` from its route's store into `to`,
/// keeping versions — every change as it happens (dual-write: the sync
/// workers apply the route's change events to `to`) and every existing row
/// (backfill) — then compare both sides (verify).
///
/// ```
/// let cfg = polyrouter::config::Config::parse(r#"
///     [stores.old]
///     kind = "memory"
///     [stores.new]
///     kind = "memory"
///     [buses.events]
///     kind = "memory"
///     [sync]
///     store = "old"
///     [entities.order]
///     store = "old"
///     outbox = { bus = "events" }
///     [migrations.orders_to_new]
///     entity = "order"
///     to = "new"
/// "#, "<string>").unwrap();
/// let m = &cfg.migrations["orders_to_new"];
/// assert_eq!(m.batch, 1000);
/// assert_eq!(m.rate, 20_000);
/// assert_eq!(m.shadow_reads, 0.0);
/// assert_eq!(m.state_store(&cfg), Some("old"));
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationConfig {
    /// The entity to move; its `[entities.NAME]` route names the source store.
    pub entity: String,
    /// The target store.
    pub to: String,
    /// The store keeping the migration's state row (default: the `[sync]` store).
    #[serde(default)]
    pub state: Option<String>,
    /// The state table in that store (default `polyrouter_migrations`).
    #[serde(default = "default_state_table")]
    pub state_table: String,
    /// Rows read and written per chunk (default 1000).
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// The most rows per second backfill and verify move; 0: no limit
    /// (default 20 000).
    #[serde(default = "default_rate")]
    pub rate: u64,
    /// How long the process driving a phase owns the migration after its
    /// last progress write (default `"10s"`).
    #[serde(default = "default_lease")]
    pub lease: ConfigDuration,
    /// How often every router reads the migration's state row to learn
    /// which store is the primary (default `"1s"`); a router that has not
    /// read it for twice this refuses the entity's writes.
    #[serde(default = "default_poll")]
    pub poll: ConfigDuration,
    /// The share of the entity's point reads also read from the other
    /// side and compared, from the end of the backfill until finish
    /// (0.0 to 1.0; default 0: off). See docs/migration.md, "Shadow reads".
    #[serde(default)]
    pub shadow_reads: f64,
}

impl MigrationConfig {
    /// The store holding the state row: `state`, else the `[sync]` store.
    pub fn state_store<'a>(&'a self, config: &'a super::Config) -> Option<&'a str> {
        self.state
            .as_deref()
            .or(config.sync.as_ref().map(|s| s.store.as_str()))
    }

    /// The key and the problem of the first invalid option.
    /// The consumer group of the migration's dual-write on the source
    /// route's bus: `migration-NAME`.
    ///
    /// ```
    /// assert_eq!(polyrouter::config::MigrationConfig::group("m1"), "migration-m1");
    /// ```
    pub fn group(name: &str) -> String {
        format!("migration-{name}")
    }

    /// The consumer group of the reverse dual-write (target → source,
    /// after cutover): `migration-NAME-back`.
    ///
    /// ```
    /// assert_eq!(polyrouter::config::MigrationConfig::back_group("m1"), "migration-m1-back");
    /// ```
    pub fn back_group(name: &str) -> String {
        format!("migration-{name}-back")
    }

    /// The projections that dual-write, as `(group, projection)`: a
    /// `replica` of the entity's events into `to`, and one into the source
    /// store (`source`). Each applies every event of the entity; the one
    /// into the store the event came from finds it there already.
    pub(crate) fn appliers(
        &self,
        name: &str,
        source: &str,
    ) -> [(String, super::ProjectionConfig); 2] {
        let into = |store: &str| super::ProjectionConfig {
            kind: super::ProjectionKind::Replica,
            entities: vec![self.entity.clone()],
            bus: None,
            store: Some(store.to_string()),
            ..super::ProjectionConfig::defaults()
        };
        [
            (Self::group(name), into(&self.to)),
            (Self::back_group(name), into(source)),
        ]
    }

    pub(crate) fn problem(&self, config: &super::Config) -> Option<(&'static str, String)> {
        let Some(route) = config.entities.get(&self.entity) else {
            return Some((
                "entity",
                format!(
                    "entity `{}` has no route; add [entities.{}]",
                    self.entity, self.entity
                ),
            ));
        };
        if !config.stores.contains_key(&self.to) {
            return Some((
                "to",
                format!(
                    "store `{}` is not defined; add a [stores.{}] table",
                    self.to, self.to
                ),
            ));
        }
        if self.to == route.store {
            return Some((
                "to",
                format!("the entity already lives in store `{}`", self.to),
            ));
        }
        if route.outbox.as_ref().is_some_and(|o| !o.spec().after_image) {
            return Some((
                "entity",
                format!(
                    "a migration applies change events in both directions from the events alone: set `after_image = true` on [entities.{}].outbox",
                    self.entity
                ),
            ));
        }
        if route.outbox.is_none() && route.change_capture.is_none() {
            return Some((
                "entity",
                format!(
                    "a migration dual-writes through the source route's change events: give [entities.{}] an `outbox = {{ bus = \"...\" }}` (writes made through polyrouter) or a `change_capture = {{ bus = \"...\" }}` (every writer's, where other applications write the table too) and run sync (`router.sync()` or `polyrouter sync`)",
                    self.entity
                ),
            ));
        }
        if config.sync.is_none() {
            return Some((
                "entity",
                "a migration's dual-write runs in the sync workers: add `[sync] store = \"...\"`"
                    .into(),
            ));
        }
        match self.state_store(config) {
            None => {
                return Some((
                    "state",
                    "no store for the migration's state: set `state = \"...\"` or add `[sync] store = \"...\"`".into(),
                ));
            }
            Some(s) if !config.stores.contains_key(s) => {
                return Some((
                    "state",
                    format!("store `{s}` is not defined; add a [stores.{s}] table"),
                ));
            }
            Some(_) => {}
        }
        if !valid_name(&self.state_table) {
            return Some((
                "state_table",
                format!(
                    "table `{}` may hold only ASCII letters, digits and `_`",
                    self.state_table
                ),
            ));
        }
        if self.batch == 0 || self.batch > 10_000 {
            return Some(("batch", "must be between 1 and 10000".into()));
        }
        if self.lease.0 < Duration::from_millis(100) {
            return Some(("lease", "must be at least \"100ms\"".into()));
        }
        if self.poll.0 < Duration::from_millis(10) {
            return Some(("poll", "must be at least \"10ms\"".into()));
        }
        if !(0.0..=1.0).contains(&self.shadow_reads) {
            return Some((
                "shadow_reads",
                "must be a share between 0.0 (off) and 1.0 (every read)".into(),
            ));
        }
        None
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn default_state_table() -> String {
    "polyrouter_migrations".into()
}
fn default_batch() -> usize {
    1000
}
fn default_rate() -> u64 {
    20_000
}
fn default_lease() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(10))
}
fn default_poll() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(1))
}
