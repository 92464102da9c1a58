//! The TOML configuration for the top choices of an [`Advice`].

use std::collections::BTreeMap;
use std::fmt::Write;

use super::workload::{ConsistencyNeed, Workload};
use super::{Advice, EntityAdvice, Role};

/// Renders the stores and routes of every entity's top choices.
pub(super) fn render(advice: &Advice, options: &BTreeMap<String, toml::Table>) -> String {
    let mut stores: Vec<String> = Vec::new();
    let mut routes = String::new();
    for e in &advice.entities {
        let mut use_store = |kind: &str| {
            if !stores.iter().any(|s| s == kind) {
                stores.push(kind.to_string());
            }
            kind.to_string()
        };
        let Some(primary) = e.rankings.first() else {
            continue;
        };
        let Some(top) = primary.top() else {
            let _ = writeln!(
                routes,
                "# entity `{}`: no store kind has every capability it needs\n",
                e.entity
            );
            continue;
        };
        let store = use_store(&top.kind);
        let w = &e.workload;
        match primary.role {
            Role::Records => {
                let search = e.top(Role::Search).map(&mut use_store);
                let cache = e.top(Role::Cache).map(&mut use_store);
                entity(&mut routes, e, &store, search.as_deref(), cache.as_deref());
            }
            Role::Graph => {
                let _ = writeln!(routes, "[graphs.{}]\nstore = \"{store}\"\n", key(&e.entity));
            }
            Role::TimeSeries => {
                let fields = list(&w.fields, "value");
                let _ = writeln!(
                    routes,
                    "[timeseries.{}]\nstore = \"{store}\"\nfields = [{fields}]",
                    key(&e.entity)
                );
                if let Some(ttl) = &w.ttl {
                    let _ = writeln!(routes, "retention = \"{ttl}\"");
                }
                routes.push('\n');
            }
            Role::Blob | Role::Search | Role::Cache => {
                let _ = writeln!(
                    routes,
                    "# `{}`: blobs in store `{store}` (`router.blobs(\"{store}\")`); keep each blob's key in a record field\n",
                    e.entity
                );
            }
        }
    }
    let mut out = String::from("# polyrouter.toml suggested by `polyrouter advise`\n\n");
    for kind in &stores {
        let _ = writeln!(out, "[stores.{kind}]\nkind = \"{kind}\"");
        if let Some(opts) = options.get(kind) {
            for (k, v) in opts {
                let _ = writeln!(out, "{k} = {v}");
            }
        }
        out.push('\n');
    }
    out.push_str(&routes);
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

fn entity(
    out: &mut String,
    e: &EntityAdvice,
    store: &str,
    search: Option<&str>,
    cache: Option<&str>,
) {
    let w = &e.workload;
    let _ = writeln!(out, "[entities.{}]\nstore = \"{store}\"", key(&e.entity));
    if let Some(ttl) = &w.ttl {
        let _ = writeln!(out, "ttl = \"{ttl}\"");
    }
    if let Some(consistency) = consistency(w) {
        let _ = writeln!(out, "consistency = {consistency}");
    }
    if let Some(cache) = cache {
        let ttl = w.staleness.as_deref().unwrap_or("1m");
        let _ = writeln!(out, "cache = {{ store = \"{cache}\", ttl = \"{ttl}\" }}");
    }
    if let Some(search) = search {
        let fields = list(&w.fields, "text");
        let _ = writeln!(
            out,
            "search = {{ store = \"{search}\", fields = [{fields}] }}"
        );
    }
    out.push('\n');
}

/// The route's `consistency` value, when it differs from the default.
fn consistency(w: &Workload) -> Option<String> {
    Some(match w.consistency {
        ConsistencyNeed::Strong => return None,
        ConsistencyNeed::Eventual => "\"eventual\"".into(),
        ConsistencyNeed::ReadYourWrites => "\"read_your_writes\"".into(),
        ConsistencyNeed::Monotonic => "\"monotonic\"".into(),
        ConsistencyNeed::BoundedStaleness => format!(
            "{{ bounded_staleness = \"{}\" }}",
            w.staleness.as_deref().unwrap_or("5s")
        ),
    })
}

/// `"a", "b"` from the names, or the placeholder.
fn list(names: &[String], placeholder: &str) -> String {
    if names.is_empty() {
        return format!("\"{placeholder}\"");
    }
    names
        .iter()
        .map(|n| toml::Value::String(n.clone()).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A TOML key: bare when it can be, quoted otherwise.
fn key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        name.to_string()
    } else {
        toml::Value::String(name.to_string()).to_string()
    }
}
