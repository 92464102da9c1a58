//! The start-up check that no two routes, and no two stores, share
//! storage: every table a route uses is folded the way its store compares
//! names ([`Store::namespace`]), and two stores on one server may not have
//! key prefixes that begin one another.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Route;
use crate::config::Config;
use crate::{KeyKind, Result, Store};

/// One use of a table in a store: who uses it, for the error message.
struct Use {
    /// The config key path to point at.
    path: String,
    /// E.g. "entity `user` (table `User`)".
    who: String,
    /// The name as written.
    table: String,
}

/// Refuses routes and stores that would share storage; a located
/// [`Error::Config`](crate::Error::Config) saying which two clash and why.
pub(super) fn check(
    config: &Config,
    stores: &BTreeMap<String, Arc<dyn Store>>,
    routes: &BTreeMap<String, Route>,
) -> Result<()> {
    check_servers(config, stores)?;
    let mut uses: BTreeMap<&str, Vec<Use>> = BTreeMap::new();
    for (entity, route) in routes {
        let (key, what) = if route.config.key_prefix.as_deref() == Some(route.table.as_str()) {
            (".key_prefix", "key prefix")
        } else if route.config.table.is_some() {
            (".table", "table")
        } else {
            ("", "table")
        };
        uses.entry(&route.store).or_default().push(Use {
            path: format!("entities.{entity}{key}"),
            who: format!("entity `{entity}` ({what} `{}`)", route.table),
            table: route.table.clone(),
        });
        if let Some(cache) = &route.config.cache {
            let table = super::cache::cache_entity(KeyKind::Str, &route.table, &cache.store).table;
            uses.entry(&cache.store).or_default().push(Use {
                path: format!("entities.{entity}.cache"),
                who: format!("the cache of entity `{entity}` (namespace `{table}`)"),
                table,
            });
        }
    }
    for (name, ts) in &config.timeseries {
        let table = ts.table.clone().unwrap_or_else(|| name.clone());
        let key = if ts.table.is_some() { ".table" } else { "" };
        uses.entry(&ts.store).or_default().push(Use {
            path: format!("timeseries.{name}{key}"),
            who: format!("time series `{name}` (table `{table}`)"),
            table,
        });
    }
    for (name, graph) in &config.graphs {
        let prefix = graph.prefix(name);
        for part in ["vertices", "edges"] {
            let table = format!("{prefix}{part}");
            uses.entry(&graph.store).or_default().push(Use {
                path: format!("graphs.{name}"),
                who: format!("graph `{name}` (table `{table}`)"),
                table,
            });
        }
    }
    for (store_name, uses) in uses {
        // Undefined stores are reported by the route checks.
        let Some(store) = stores.get(store_name) else {
            continue;
        };
        let names = store.namespace().tables;
        let mut seen: BTreeMap<String, &Use> = BTreeMap::new();
        for u in &uses {
            let id = names.identity(&u.table).map_err(|m| {
                config.error(&u.path, format!("{}: store `{store_name}`: {m}", u.who))
            })?;
            if let Some(first) = seen.get(&id) {
                let why = if first.table == u.table {
                    String::new()
                } else {
                    format!(" ({})", names.rule)
                };
                return Err(config.error(
                    &u.path,
                    format!(
                        "{} and {} are one table in store `{store_name}` (kind `{}`){why}: one would read and overwrite the other's records; give one of them another name",
                        first.who,
                        u.who,
                        store.kind()
                    ),
                ));
            }
            seen.insert(id, u);
        }
    }
    Ok(())
}

/// Two stores on one server whose key prefixes begin one another.
fn check_servers(config: &Config, stores: &BTreeMap<String, Arc<dyn Store>>) -> Result<()> {
    let spaces: Vec<(&String, crate::store::namespace::Namespace)> =
        stores.iter().map(|(n, s)| (n, s.namespace())).collect();
    for (i, (a, na)) in spaces.iter().enumerate() {
        for (b, nb) in &spaces[i + 1..] {
            if let Some((pa, pb)) = na.overlap(nb) {
                let server = na.server.as_deref().unwrap_or_default();
                return Err(config.error(
                    &format!("stores.{b}"),
                    format!(
                        "stores `{a}` and `{b}` write to the same server ({server}) and their keys can meet: `{a}` writes keys beginning `{pa}` and `{b}` keys beginning `{pb}`; give each store a `key_prefix` that neither equals nor begins another's (e.g. `app1` and `app2`, not `p` and `p:x`)"
                    ),
                ));
            }
        }
    }
    Ok(())
}
