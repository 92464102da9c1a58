//! `[timeseries.NAME]`: a time series table and its retention.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigDuration, EntityConfig, StoreSpec};
use crate::store::timeseries::check_name;

/// `[timeseries.NAME]`: where a time series lives, its numeric fields and
/// how long points are kept.
///
/// ```toml
/// [timeseries.telemetry]
/// store = "main"                          # a store that supports time series
/// fields = ["temperature", "humidity"]    # numeric columns
/// retention = "30d"                       # optional: drop older points
/// purge_interval = "10m"                  # optional: how often (default 10m)
/// table = "telemetry"                     # optional: default the name
/// ```
///
/// ```
/// let cfg = polyrouter::config::Config::parse(r#"
///     [stores.m]
///     kind = "memory"
///     [timeseries.telemetry]
///     store = "m"
///     fields = ["temperature"]
///     retention = "30d"
/// "#, "<string>").unwrap();
/// let ts = &cfg.timeseries["telemetry"];
/// assert_eq!(ts.retention.unwrap().0.as_secs(), 30 * 86_400);
/// assert_eq!(ts.purge_interval().as_secs(), 600);
/// ```
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TimeSeriesConfig {
    /// The store's name; it must support time series.
    pub store: String,
    /// The numeric fields (columns besides `series` and `ts`).
    pub fields: Vec<String>,
    /// The table name; default: the time series' name.
    pub table: Option<String>,
    /// Points older than this are invisible to reads and purged.
    pub retention: Option<ConfigDuration>,
    /// How often old points are purged in the background (default `"10m"`;
    /// `"0s"` turns the background purge off, reads still hide them).
    pub purge_interval: Option<ConfigDuration>,
}

impl TimeSeriesConfig {
    /// The background purge interval (default 10 minutes).
    ///
    /// ```
    /// let c = polyrouter::config::TimeSeriesConfig::default();
    /// assert_eq!(c.purge_interval().as_secs(), 600);
    /// ```
    pub fn purge_interval(&self) -> Duration {
        self.purge_interval
            .map_or(Duration::from_secs(600), |d| d.0)
    }

    /// Checks the table and field names, the retention and the purge
    /// interval of the time series `name`; on error, the key at fault
    /// (`None`: the table itself) and what is wrong.
    pub(crate) fn check(&self, name: &str) -> Result<(), (Option<&'static str>, String)> {
        let table = self.table.as_deref().unwrap_or(name);
        check_name(table).map_err(|m| {
            let key = self.table.as_ref().map(|_| "table");
            (key, format!("table name: {m}; set `table`"))
        })?;
        if self.fields.is_empty() {
            return Err((
                Some("fields"),
                "name at least one numeric field, e.g. fields = [\"temperature\"]".into(),
            ));
        }
        for (i, f) in self.fields.iter().enumerate() {
            check_name(f).map_err(|m| (Some("fields"), format!("field {i}: {m}")))?;
            if self.fields[..i].contains(f) {
                return Err((Some("fields"), format!("field `{f}` is listed twice")));
            }
        }
        if self.retention.is_some_and(|r| r.0.is_zero()) {
            return Err((
                Some("retention"),
                "a retention must be greater than zero; leave it out to keep every point".into(),
            ));
        }
        if self.purge_interval.is_some() && self.retention.is_none() {
            return Err((
                Some("purge_interval"),
                "a purge interval needs a `retention` to purge by".into(),
            ));
        }
        Ok(())
    }
}

/// Checks every `[timeseries.NAME]`; on error the key path and message.
pub(super) fn validate(
    series: &BTreeMap<String, TimeSeriesConfig>,
    stores: &BTreeMap<String, StoreSpec>,
    entities: &BTreeMap<String, EntityConfig>,
) -> Result<(), (Vec<String>, String)> {
    let at = |name: &str, key: &str| vec!["timeseries".into(), name.to_string(), key.to_string()];
    let mut tables: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    for (name, e) in entities {
        tables.insert((&e.store, e.table.as_deref().unwrap_or(name)), name);
    }
    for (name, ts) in series {
        if !stores.contains_key(&ts.store) {
            return Err((
                at(name, "store"),
                format!(
                    "store `{}` is not defined; add a [stores.{}] table",
                    ts.store, ts.store
                ),
            ));
        }
        ts.check(name).map_err(|(key, m)| {
            let mut path = vec!["timeseries".to_string(), name.clone()];
            path.extend(key.map(str::to_string));
            (path, m)
        })?;
        let table = ts.table.as_deref().unwrap_or(name);
        if let Some(other) = tables.insert((&ts.store, table), name) {
            return Err((
                vec!["timeseries".into(), name.clone()],
                format!(
                    "duplicate table `{table}` in store `{}`: `{other}` uses it too; set `table`",
                    ts.store
                ),
            ));
        }
    }
    Ok(())
}
