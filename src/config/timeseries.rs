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
        let table = ts.table.as_deref().unwrap_or(name);
        check_name(table).map_err(|m| {
            let path = match ts.table {
                Some(_) => at(name, "table"),
                None => vec!["timeseries".into(), name.clone()],
            };
            (path, format!("table name: {m}; set `table`"))
        })?;
        if let Some(other) = tables.insert((&ts.store, table), name) {
            return Err((
                vec!["timeseries".into(), name.clone()],
                format!(
                    "duplicate table `{table}` in store `{}`: `{other}` uses it too; set `table`",
                    ts.store
                ),
            ));
        }
        if ts.fields.is_empty() {
            return Err((
                at(name, "fields"),
                "name at least one numeric field, e.g. fields = [\"temperature\"]".into(),
            ));
        }
        for (i, f) in ts.fields.iter().enumerate() {
            check_name(f).map_err(|m| (at(name, "fields"), format!("field {i}: {m}")))?;
            if ts.fields[..i].contains(f) {
                return Err((at(name, "fields"), format!("field `{f}` is listed twice")));
            }
        }
        if ts.retention.is_some_and(|r| r.0.is_zero()) {
            return Err((
                at(name, "retention"),
                "a retention must be greater than zero; leave it out to keep every point".into(),
            ));
        }
        if ts.purge_interval.is_some() && ts.retention.is_none() {
            return Err((
                at(name, "purge_interval"),
                "a purge interval needs a `retention` to purge by".into(),
            ));
        }
    }
    Ok(())
}
