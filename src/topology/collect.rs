//! One function per configuration section: its nodes and outgoing edges.

use super::{NodeKind, Topology, dur};
use crate::config::{Config, Consistency};

/// `[stores.NAME]`: kind, location-free, with the kind's capabilities.
pub(super) fn stores(cfg: &Config, t: &mut Topology) {
    for (name, spec) in &cfg.stores {
        let mut details = vec![format!("kind {}", spec.kind)];
        if let Some(k) = crate::backends::kind(&spec.kind) {
            let names = k.capabilities.names();
            if names.is_empty() {
                details.push("capabilities: none".into());
            }
            // Wrapped, so a drawn node stays narrow.
            let mut line = String::from("capabilities:");
            for (i, n) in names.iter().enumerate() {
                if line.len() + n.len() > 56 {
                    details.push(std::mem::take(&mut line));
                    line.push_str("  ");
                }
                line.push(' ');
                line.push_str(n);
                if i + 1 < names.len() {
                    line.push(',');
                }
            }
            if !names.is_empty() {
                details.push(line);
            }
            for d in k.depends {
                details.push(format!("{}: {}", d.capability, d.how));
            }
        }
        t.node(NodeKind::Store, name, details);
    }
}

/// `[entities.NAME]`: its route, cache, replica, search index and blobs.
pub(super) fn entities(cfg: &Config, t: &mut Topology) {
    for (name, e) in &cfg.entities {
        let mut details = vec![format!("table {}", e.table.as_deref().unwrap_or(name))];
        if let Some(ttl) = &e.ttl {
            details.push(format!("ttl {}", dur(ttl)));
        }
        details.push(format!("reads {}", consistency(&e.read_consistency())));
        t.node(NodeKind::Entity, name, details);
        let me = (NodeKind::Entity, name.as_str());
        t.edge(me, (NodeKind::Store, &e.store), "records");
        if let Some(c) = &e.cache {
            let ttl = c
                .ttl
                .as_ref()
                .map_or("no ttl".to_string(), |d| format!("ttl {}", dur(d)));
            t.edge(me, (NodeKind::Store, &c.store), format!("cache ({ttl})"));
        }
        if let Some(r) = &e.read_from {
            t.edge(me, (NodeKind::Store, r), "replica (read_from)");
        }
        if let Some(s) = &e.search {
            t.edge(
                me,
                (NodeKind::Store, &s.store),
                format!("search index on {}", s.fields.join(", ")),
            );
        }
        for c in &e.cascade_blobs {
            t.edge(
                me,
                (NodeKind::Store, &c.store),
                format!("blobs named by {}", c.field),
            );
        }
    }
}

/// `[graphs.NAME]`.
pub(super) fn graphs(cfg: &Config, t: &mut Topology) {
    for (name, g) in &cfg.graphs {
        t.node(
            NodeKind::Graph,
            name,
            vec![format!("tables {}*", g.prefix(name))],
        );
        t.edge(
            (NodeKind::Graph, name),
            (NodeKind::Store, &g.store),
            "vertices and edges",
        );
    }
}

/// `[timeseries.NAME]`.
pub(super) fn time_series(cfg: &Config, t: &mut Topology) {
    for (name, ts) in &cfg.timeseries {
        let mut details = vec![format!("fields {}", ts.fields.join(", "))];
        if let Some(r) = &ts.retention {
            details.push(format!("retention {}", dur(r)));
        }
        t.node(NodeKind::TimeSeries, name, details);
        t.edge(
            (NodeKind::TimeSeries, name),
            (NodeKind::Store, &ts.store),
            "points",
        );
    }
}

/// `[views.NAME]`: an edge per branch to the entity (or graph) it reads.
pub(super) fn views(cfg: &Config, t: &mut Topology) {
    for (name, v) in &cfg.views {
        let mut details = Vec::new();
        if !v.params.is_empty() {
            details.push(format!("params {}", v.params.join(", ")));
        }
        if let Some(timeout) = &v.timeout {
            details.push(format!("timeout {}", dur(timeout)));
        }
        t.node(NodeKind::View, name, details);
        for (branch, b) in &v.branches {
            let how = if b.get.is_some() {
                "get"
            } else if b.join.is_some() {
                "join"
            } else if b.search.is_some() {
                "search"
            } else if b.graph.is_some() {
                "graph"
            } else {
                "query"
            };
            let required = if b.required { ", required" } else { "" };
            if let Some(g) = &b.graph {
                t.edge(
                    (NodeKind::View, name),
                    (NodeKind::Graph, &g.name),
                    format!("{branch}: graph{required}"),
                );
            }
            t.edge(
                (NodeKind::View, name),
                (NodeKind::Entity, &b.entity),
                format!("{branch}: {how}{required}"),
            );
        }
    }
}

/// `[buses.NAME]`: the event buses, by kind.
pub(super) fn buses(cfg: &Config, t: &mut Topology) {
    for (name, spec) in &cfg.buses {
        t.node(NodeKind::Bus, name, vec![format!("kind {}", spec.kind)]);
    }
}

/// `[sagas]`: the saga log and the store that holds it.
pub(super) fn sagas(cfg: &Config, t: &mut Topology) {
    if let Some(s) = &cfg.sagas {
        t.node(
            NodeKind::Sagas,
            "sagas",
            vec![
                format!("table {}", s.table),
                format!("lease {}", dur(&s.lease)),
            ],
        );
        t.edge(
            (NodeKind::Sagas, "sagas"),
            (NodeKind::Store, &s.store),
            "saga log",
        );
    }
}

fn consistency(c: &Consistency) -> String {
    match c {
        Consistency::Strong => "strong".into(),
        Consistency::BoundedStaleness(d) => format!("bounded_staleness {}", dur(d)),
        Consistency::ReadYourWrites => "read_your_writes".into(),
        Consistency::Monotonic => "monotonic".into(),
        Consistency::Eventual => "eventual".into(),
    }
}
