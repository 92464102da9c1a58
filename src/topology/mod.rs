//! `polyrouter topology`: a configuration as a graph — entities, stores,
//! caches, replicas, search indexes, graphs, time series and views — drawn
//! as text, Mermaid or Graphviz DOT.
//!
//! The graph is built from the [`Config`] alone (no store is opened); each
//! store shows its kind and the capabilities of that kind
//! ([`backends::KINDS`](crate::backends::KINDS)). Every kind of node is
//! one entry of [`NODE_KINDS`]: its section name, its shapes and the
//! function that collects its nodes and edges from the configuration, so a
//! new configuration section (buses, projections, migrations) is one entry
//! there and one `collect` function.
//!
//! ```
//! use polyrouter::{config::Config, topology::{Format, Topology}};
//! let cfg = Config::parse("[stores.m]\nkind = \"memory\"\n[entities.user]\nstore = \"m\"\n", "app.toml").unwrap();
//! let t = Topology::from_config(&cfg);
//! assert!(t.render(Format::Mermaid).contains("entity_user -->|\"records\"| store_m"));
//! assert!(t.render(Format::Dot).starts_with("digraph polyrouter {"));
//! ```

use std::fmt::Write;

use crate::config::{Config, ConfigDuration};

mod collect;

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Indented text.
    Text,
    /// A Mermaid `flowchart`.
    Mermaid,
    /// Graphviz DOT.
    Dot,
}

impl Format {
    /// `text`, `mermaid` or `dot`.
    ///
    /// ```
    /// assert_eq!(polyrouter::topology::Format::parse("dot"), Some(polyrouter::topology::Format::Dot));
    /// ```
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "text" => Format::Text,
            "mermaid" => Format::Mermaid,
            "dot" => Format::Dot,
            _ => return None,
        })
    }
}

/// What a node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeKind {
    /// `[entities.NAME]`.
    Entity,
    /// `[graphs.NAME]`.
    Graph,
    /// `[timeseries.NAME]`.
    TimeSeries,
    /// `[views.NAME]`.
    View,
    /// `[buses.NAME]`.
    Bus,
    /// `[sagas]`: the saga log.
    Sagas,
    /// `[stores.NAME]`.
    Store,
}

/// How one kind of node is found and drawn.
#[derive(Debug, Clone, Copy)]
pub struct NodeKindInfo {
    /// The kind.
    pub kind: NodeKind,
    /// The configuration section, e.g. `entities`; also the id prefix and
    /// the text heading.
    pub section: &'static str,
    /// Mermaid shape delimiters around the label.
    pub mermaid: (&'static str, &'static str),
    /// Graphviz `shape`.
    pub dot_shape: &'static str,
    /// Adds this kind's nodes (and their outgoing edges) from a configuration.
    pub collect: fn(&Config, &mut Topology),
}

/// Every kind of node, in drawing order (stores last: everything points at them).
pub const NODE_KINDS: &[NodeKindInfo] = &[
    NodeKindInfo {
        kind: NodeKind::View,
        section: "views",
        mermaid: ("[/", "/]"),
        dot_shape: "parallelogram",
        collect: collect::views,
    },
    NodeKindInfo {
        kind: NodeKind::Entity,
        section: "entities",
        mermaid: ("(", ")"),
        dot_shape: "box",
        collect: collect::entities,
    },
    NodeKindInfo {
        kind: NodeKind::Graph,
        section: "graphs",
        mermaid: ("{{", "}}"),
        dot_shape: "hexagon",
        collect: collect::graphs,
    },
    NodeKindInfo {
        kind: NodeKind::TimeSeries,
        section: "timeseries",
        mermaid: ("[[", "]]"),
        dot_shape: "component",
        collect: collect::time_series,
    },
    NodeKindInfo {
        kind: NodeKind::Bus,
        section: "buses",
        mermaid: (">", "]"),
        dot_shape: "cds",
        collect: collect::buses,
    },
    NodeKindInfo {
        kind: NodeKind::Sagas,
        section: "sagas",
        mermaid: ("[\\", "/]"),
        dot_shape: "folder",
        collect: collect::sagas,
    },
    NodeKindInfo {
        kind: NodeKind::Store,
        section: "stores",
        mermaid: ("[(", ")]"),
        dot_shape: "cylinder",
        collect: collect::stores,
    },
];

fn info(kind: NodeKind) -> &'static NodeKindInfo {
    NODE_KINDS
        .iter()
        .find(|k| k.kind == kind)
        .expect("every NodeKind has an entry in NODE_KINDS")
}

/// A node: a name and the lines that describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// What it is.
    pub kind: NodeKind,
    /// Its name in the configuration.
    pub name: String,
    /// Details, one per line (kind, table, TTL, capabilities…).
    pub details: Vec<String>,
}

impl Node {
    /// A unique id safe in Mermaid and DOT: the section and the name, with
    /// every other character than ASCII letters and digits as `_xx` hex.
    ///
    /// ```
    /// use polyrouter::topology::{Node, NodeKind};
    /// let n = Node { kind: NodeKind::Entity, name: "order-line".into(), details: vec![] };
    /// assert_eq!(n.id(), "entity_order_2dline");
    /// ```
    pub fn id(&self) -> String {
        node_id(self.kind, &self.name)
    }
}

fn node_id(kind: NodeKind, name: &str) -> String {
    let prefix = match kind {
        NodeKind::Entity => "entity",
        NodeKind::Graph => "graph",
        NodeKind::TimeSeries => "timeseries",
        NodeKind::View => "view",
        NodeKind::Bus => "bus",
        NodeKind::Sagas => "sagas",
        NodeKind::Store => "store",
    };
    let mut id = format!("{prefix}_");
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            id.push(c);
        } else if c == '_' {
            id.push_str("__");
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(id, "_{b:02x}");
            }
        }
    }
    id
}

/// An edge: from a node to a node, with what the link is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// Source (kind, name).
    pub from: (NodeKind, String),
    /// Target (kind, name).
    pub to: (NodeKind, String),
    /// What the link is: `records`, `cache (ttl 1h)`, `search`, …
    pub label: String,
}

/// A configuration's nodes and edges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    /// The configuration file.
    pub file: String,
    /// Nodes, grouped by kind in [`NODE_KINDS`] order, by name within.
    pub nodes: Vec<Node>,
    /// Edges, in the order their sources were collected.
    pub edges: Vec<Edge>,
}

impl Topology {
    /// The topology of a configuration.
    ///
    /// ```
    /// let cfg = polyrouter::config::Config::parse("[stores.m]\nkind = \"memory\"\n", "a.toml").unwrap();
    /// assert_eq!(polyrouter::topology::Topology::from_config(&cfg).nodes.len(), 1);
    /// ```
    pub fn from_config(config: &Config) -> Topology {
        let mut t = Topology {
            file: config.file.clone(),
            ..Default::default()
        };
        for k in NODE_KINDS {
            (k.collect)(config, &mut t);
        }
        t
    }

    /// Adds a node.
    pub fn node(&mut self, kind: NodeKind, name: &str, details: Vec<String>) {
        self.nodes.push(Node {
            kind,
            name: name.to_string(),
            details,
        });
    }

    /// Adds an edge.
    pub fn edge(&mut self, from: (NodeKind, &str), to: (NodeKind, &str), label: impl Into<String>) {
        self.edges.push(Edge {
            from: (from.0, from.1.to_string()),
            to: (to.0, to.1.to_string()),
            label: label.into(),
        });
    }

    /// Draws it.
    ///
    /// ```
    /// use polyrouter::topology::{Format, Topology};
    /// let cfg = polyrouter::config::Config::parse("[stores.m]\nkind = \"memory\"\n", "a.toml").unwrap();
    /// assert!(Topology::from_config(&cfg).render(Format::Text).contains("m (kind memory)"));
    /// ```
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => self.text(),
            Format::Mermaid => self.mermaid(),
            Format::Dot => self.dot(),
        }
    }

    fn text(&self) -> String {
        let mut out = format!("topology of {}\n", self.file);
        for k in NODE_KINDS {
            let nodes: Vec<&Node> = self.nodes.iter().filter(|n| n.kind == k.kind).collect();
            if nodes.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\n{} ({}):", k.section, nodes.len());
            for n in nodes {
                let head = match n.details.first() {
                    Some(first) if k.kind == NodeKind::Store => format!("{} ({first})", n.name),
                    _ => n.name.clone(),
                };
                let _ = writeln!(out, "  {head}");
                let rest = if k.kind == NodeKind::Store {
                    &n.details[1.min(n.details.len())..]
                } else {
                    &n.details[..]
                };
                for d in rest {
                    let _ = writeln!(out, "      {d}");
                }
                for e in self
                    .edges
                    .iter()
                    .filter(|e| e.from == (n.kind, n.name.clone()))
                {
                    let _ = writeln!(out, "    -> {} `{}`: {}", singular(e.to.0), e.to.1, e.label);
                }
            }
        }
        out
    }

    fn mermaid(&self) -> String {
        let mut out = format!("%% polyrouter topology of {}\nflowchart LR\n", self.file);
        for n in &self.nodes {
            let (open, close) = info(n.kind).mermaid;
            let mut label = format!("<b>{}</b>", mermaid_escape(&n.name));
            for d in &n.details {
                let _ = write!(label, "<br/>{}", mermaid_escape(d));
            }
            let _ = writeln!(out, "    {}{open}\"{label}\"{close}", n.id());
        }
        for e in &self.edges {
            let _ = writeln!(
                out,
                "    {} -->|\"{}\"| {}",
                node_id(e.from.0, &e.from.1),
                mermaid_escape(&e.label),
                node_id(e.to.0, &e.to.1)
            );
        }
        out
    }

    fn dot(&self) -> String {
        let mut out = String::from("digraph polyrouter {\n");
        let _ = writeln!(out, "    label=\"{}\";", dot_escape(&self.file));
        out.push_str("    rankdir=LR;\n    node [fontname=\"Helvetica\", fontsize=10];\n    edge [fontname=\"Helvetica\", fontsize=9];\n");
        for n in &self.nodes {
            let mut label = dot_escape(&n.name);
            for d in &n.details {
                let _ = write!(label, "\\n{}", dot_escape(d));
            }
            let _ = writeln!(
                out,
                "    {} [shape={}, label=\"{label}\"];",
                n.id(),
                info(n.kind).dot_shape
            );
        }
        for e in &self.edges {
            let _ = writeln!(
                out,
                "    {} -> {} [label=\"{}\"];",
                node_id(e.from.0, &e.from.1),
                node_id(e.to.0, &e.to.1),
                dot_escape(&e.label)
            );
        }
        out.push_str("}\n");
        out
    }
}

fn singular(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::Entity => "entity",
        NodeKind::Graph => "graph",
        NodeKind::TimeSeries => "time series",
        NodeKind::View => "view",
        NodeKind::Bus => "bus",
        NodeKind::Sagas => "saga log",
        NodeKind::Store => "store",
    }
}

/// Mermaid label text: quotes and markup characters as entities.
fn mermaid_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '|' => out.push_str("#124;"),
            '#' => out.push_str("#35;"),
            c => out.push(c),
        }
    }
    out
}

/// DOT string contents: `"` and `\` escaped, newlines as `\n`.
fn dot_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A duration as the configuration writes it.
fn dur(d: &ConfigDuration) -> String {
    d.to_config_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_kind_has_one_entry() {
        for k in [
            NodeKind::Entity,
            NodeKind::Graph,
            NodeKind::TimeSeries,
            NodeKind::View,
            NodeKind::Bus,
            NodeKind::Sagas,
            NodeKind::Store,
        ] {
            assert_eq!(
                NODE_KINDS.iter().filter(|i| i.kind == k).count(),
                1,
                "{k:?}"
            );
        }
    }

    #[test]
    fn buses_and_the_saga_log_are_drawn() {
        let cfg = crate::config::Config::parse(
            "[stores.db]\nkind = \"memory\"\n[buses.events]\nkind = \"memory\"\n[sagas]\nstore = \"db\"\n",
            "t.toml",
        )
        .unwrap();
        let t = Topology::from_config(&cfg);
        let text = t.render(Format::Text);
        assert!(
            text.contains("buses (1):") && text.contains("events"),
            "{text}"
        );
        assert!(text.contains("kind memory"), "{text}");
        assert!(text.contains("saga log"), "{text}");
        let dot = t.render(Format::Dot);
        assert!(dot.contains("bus_events") && dot.contains("cds"), "{dot}");
        assert!(dot.contains("sagas_sagas -> store_db"), "{dot}");
        let mermaid = t.render(Format::Mermaid);
        assert!(mermaid.contains("bus_events>"), "{mermaid}");
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(dot_escape("a\"b\\c"), "a\\\"b\\\\c");
        assert_eq!(mermaid_escape("x|\"y\""), "x#124;#quot;y#quot;");
        assert_ne!(
            node_id(NodeKind::Entity, "a-b"),
            node_id(NodeKind::Entity, "a_b")
        );
        assert_ne!(
            node_id(NodeKind::Entity, "a_2db"),
            node_id(NodeKind::Entity, "a-b")
        );
    }
}
