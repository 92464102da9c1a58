//! The Gremlin scripts of every graph operation, and their bindings.
//!
//! A script is built only from constant fragments and binding names
//! (`vid`, `lbl`, `k0`, `v0`, …): every id, label, property name and value
//! travels as a binding, never in the script text. The only choices are
//! the dialect's (Cosmos DB partition key, `'id'` instead of `T.id`) and
//! how many properties there are.

use gremlin_client::GValue;

use crate::Value;
use crate::store::graph::{EdgeDirection, GraphInfo, Properties};

/// A script and its bindings, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Script {
    pub text: String,
    pub bindings: Vec<(String, GValue)>,
}

/// How scripts are written for one store.
#[derive(Debug, Clone, Default)]
pub(super) struct Dialect {
    /// Cosmos DB's partition-key property, bound as `pk`.
    pub partition_key: Option<String>,
}

/// Builds one script: text fragments and bindings.
struct Builder<'a> {
    d: &'a Dialect,
    g: &'a GraphInfo,
    text: String,
    bindings: Vec<(String, GValue)>,
}

impl<'a> Builder<'a> {
    fn new(d: &'a Dialect, g: &'a GraphInfo) -> Self {
        let mut b = Builder {
            d,
            g,
            text: String::new(),
            bindings: Vec::new(),
        };
        if let Some(pk) = &d.partition_key {
            b.bind("pk", GValue::String(pk.clone()));
        }
        b
    }

    fn push(&mut self, fragment: &str) -> &mut Self {
        self.text.push_str(fragment);
        self
    }

    fn bind(&mut self, name: &str, value: GValue) -> &mut Self {
        self.bindings.push((name.to_string(), value));
        self
    }

    /// Binds a vertex id (with the graph's id prefix) under `name`.
    fn id(&mut self, name: &str, id: &str) -> &mut Self {
        let full = format!("{}{id}", self.g.id_prefix);
        self.bind(name, GValue::String(full))
    }

    /// `g.V(name)`, and the partition-key filter on Cosmos DB.
    fn start(&mut self, name: &str) -> &mut Self {
        self.text.push_str(&format!("g.V({name})"));
        self.pk_filter(name)
    }

    /// `.V(name)` mid-traversal, with the partition-key filter.
    fn mid(&mut self, name: &str) -> &mut Self {
        self.text.push_str(&format!(".V({name})"));
        self.pk_filter(name)
    }

    fn pk_filter(&mut self, name: &str) -> &mut Self {
        if self.d.partition_key.is_some() {
            self.text.push_str(&format!(".has(pk, {name})"));
        }
        self
    }

    /// The id token: `T.id`, or the `'id'` property on Cosmos DB.
    fn id_token(&self) -> &'static str {
        if self.d.partition_key.is_some() {
            "'id'"
        } else {
            "T.id"
        }
    }

    /// `.property(k0, v0)…` for each property, bound as `{prefix}k{i}` / `{prefix}v{i}`.
    fn properties(&mut self, props: &[(String, GValue)], cardinality: &str) -> &mut Self {
        for (i, (k, v)) in props.iter().enumerate() {
            self.text
                .push_str(&format!(".property({cardinality}k{i}, v{i})"));
            self.bind(&format!("k{i}"), GValue::String(k.clone()));
            self.bind(&format!("v{i}"), v.clone());
        }
        self
    }

    /// `.property(k0, v0)…` again, for properties already bound.
    fn property_refs(&mut self, count: usize, cardinality: &str) -> &mut Self {
        for i in 0..count {
            self.text
                .push_str(&format!(".property({cardinality}k{i}, v{i})"));
        }
        self
    }

    fn done(&mut self) -> Script {
        Script {
            text: std::mem::take(&mut self.text),
            bindings: std::mem::take(&mut self.bindings),
        }
    }
}

/// A property value as a Gremlin value; `None` for types Gremlin servers
/// (and Cosmos DB) do not store portably.
pub(super) fn to_gvalue(v: &Value) -> Option<GValue> {
    Some(match v {
        Value::String(s) => GValue::String(s.clone()),
        Value::I64(i) => GValue::Int64(*i),
        Value::F64(f) => GValue::Double(*f),
        Value::Bool(b) => GValue::Bool(*b),
        _ => return None,
    })
}

/// A stored property value back as a [`Value`].
pub(super) fn from_gvalue(v: &GValue) -> Option<Value> {
    Some(match v {
        GValue::String(s) => Value::String(s.clone()),
        GValue::Int64(i) => Value::I64(*i),
        GValue::Int32(i) => Value::I64(*i as i64),
        GValue::Double(f) => Value::F64(*f),
        GValue::Float(f) => Value::F64(*f as f64),
        GValue::Bool(b) => Value::Bool(*b),
        _ => return None,
    })
}

/// Non-null properties as `(name, value)` bindings; the caller checked the types.
fn bound(props: &Properties) -> Vec<(String, GValue)> {
    props
        .iter()
        .filter_map(|(k, v)| to_gvalue(v).map(|g| (k.clone(), g)))
        .collect()
}

/// `g.V().limit(1).count()`: the start-up check (a real round trip).
pub(super) fn ping() -> Script {
    Script {
        text: "g.V().limit(1).count()".into(),
        bindings: Vec::new(),
    }
}

/// Adds a vertex unless the id exists; yields `true` if added, `false` if not.
pub(super) fn add_vertex(
    d: &Dialect,
    g: &GraphInfo,
    id: &str,
    label: &str,
    props: &Properties,
) -> Script {
    let mut b = Builder::new(d, g);
    b.id("vid", id).bind("lbl", GValue::String(label.into()));
    b.start("vid")
        .push(".fold().coalesce(__.unfold().constant(false), __.addV(lbl)");
    let id_token = b.id_token();
    b.push(&format!(".property({id_token}, vid)"));
    if d.partition_key.is_some() {
        b.push(".property(pk, vid)");
    }
    b.properties(&bound(props), "")
        .push(".constant(true))")
        .done()
}

/// Sets and removes properties of a vertex; yields its id, nothing if absent.
pub(super) fn update_vertex(d: &Dialect, g: &GraphInfo, id: &str, props: &Properties) -> Script {
    let mut b = Builder::new(d, g);
    b.id("vid", id).start("vid");
    let removed: Vec<&String> = props
        .iter()
        .filter(|(_, v)| v.is_null())
        .map(|(k, _)| k)
        .collect();
    if !removed.is_empty() {
        let names: Vec<String> = (0..removed.len()).map(|i| format!("r{i}")).collect();
        b.push(&format!(
            ".sideEffect(__.properties({}).drop())",
            names.join(", ")
        ));
        for (i, k) in removed.iter().enumerate() {
            b.bind(&format!("r{i}"), GValue::String((*k).clone()));
        }
    }
    b.properties(&bound(props), "single, ").push(".id()").done()
}

/// A vertex's label and properties: `{l: label, p: valueMap}`.
pub(super) fn get_vertex(d: &Dialect, g: &GraphInfo, id: &str) -> Script {
    let mut b = Builder::new(d, g);
    b.id("vid", id)
        .start("vid")
        .push(".project('l', 'p').by(__.label()).by(__.valueMap())")
        .done()
}

/// Whether the vertex exists: its count.
pub(super) fn count_vertex(d: &Dialect, g: &GraphInfo, id: &str) -> Script {
    let mut b = Builder::new(d, g);
    b.id("vid", id).start("vid").push(".count()").done()
}

/// Drops a vertex (Gremlin drops its edges too); yields how many were dropped.
pub(super) fn remove_vertex(d: &Dialect, g: &GraphInfo, id: &str) -> Script {
    let mut b = Builder::new(d, g);
    b.id("vid", id)
        .start("vid")
        .push(".fold().sideEffect(__.unfold().drop()).count(local)")
        .done()
}

/// Links `src -[lbl]-> dst`, replacing an existing edge's properties;
/// yields `true` if new, `false` if it existed, nothing if a vertex is missing.
pub(super) fn link(
    d: &Dialect,
    g: &GraphInfo,
    src: &str,
    label: &str,
    dst: &str,
    props: &Properties,
) -> Script {
    let props = bound(props);
    let mut b = Builder::new(d, g);
    b.id("src", src)
        .id("dst", dst)
        .bind("lbl", GValue::String(label.into()));
    b.start("src")
        .push(".as('a')")
        .mid("dst")
        .push(".coalesce(__.inE(lbl).where(__.outV().as('a')).sideEffect(__.properties().drop())");
    b.properties(&props, "")
        .push(".constant(false), __.addE(lbl).from('a')");
    b.property_refs(props.len(), "")
        .push(".constant(true))")
        .done()
}

/// Drops `src -[lbl]-> dst`; yields how many edges were dropped.
pub(super) fn unlink(d: &Dialect, g: &GraphInfo, src: &str, label: &str, dst: &str) -> Script {
    let mut b = Builder::new(d, g);
    b.id("src", src)
        .id("dst", dst)
        .bind("lbl", GValue::String(label.into()));
    b.start("src")
        .push(".outE(lbl).where(__.inV().hasId(dst)).fold().sideEffect(__.unfold().drop()).count(local)")
        .done()
}

/// The properties of `src -[lbl]-> dst` (a map), nothing if there is no such edge.
pub(super) fn get_edge(d: &Dialect, g: &GraphInfo, src: &str, label: &str, dst: &str) -> Script {
    let mut b = Builder::new(d, g);
    b.id("src", src)
        .id("dst", dst)
        .bind("lbl", GValue::String(label.into()));
    b.start("src")
        .push(".outE(lbl).where(__.inV().hasId(dst)).limit(1).valueMap()")
        .done()
}

fn step(direction: EdgeDirection) -> &'static str {
    match direction {
        EdgeDirection::Out => "out",
        EdgeDirection::In => "in",
    }
}

/// Up to `n` neighbour ids after `after`, ascending.
pub(super) fn neighbours(
    d: &Dialect,
    g: &GraphInfo,
    id: &str,
    label: &str,
    direction: EdgeDirection,
    after: &str,
    n: i64,
) -> Script {
    let mut b = Builder::new(d, g);
    b.id("vid", id)
        .bind("lbl", GValue::String(label.into()))
        .id("after", after)
        .bind("n", GValue::Int64(n));
    b.start("vid");
    let id_token = b.id_token();
    b.push(&format!(
        ".{}(lbl).hasId(gt(after)).dedup().order().by({id_token}).limit(n).id()",
        step(direction)
    ))
    .done()
}

/// The number of `lbl` edges out of or into a vertex.
pub(super) fn degree(
    d: &Dialect,
    g: &GraphInfo,
    id: &str,
    label: &str,
    direction: EdgeDirection,
) -> Script {
    let mut b = Builder::new(d, g);
    b.id("vid", id).bind("lbl", GValue::String(label.into()));
    b.start("vid")
        .push(&format!(".{}E(lbl).count()", step(direction)))
        .done()
}

/// Vertices linked with `vid` both ways, ascending.
pub(super) fn mutual(d: &Dialect, g: &GraphInfo, id: &str, label: &str) -> Script {
    let mut b = Builder::new(d, g);
    b.id("vid", id).bind("lbl", GValue::String(label.into()));
    b.start("vid");
    let id_token = b.id_token();
    b.push(&format!(
        ".out(lbl).where(__.out(lbl).hasId(vid)).dedup().order().by({id_token}).id()"
    ))
    .done()
}

/// `direction` neighbours of both `va` and `vb`, ascending.
pub(super) fn common(
    d: &Dialect,
    g: &GraphInfo,
    a: &str,
    b_id: &str,
    label: &str,
    direction: EdgeDirection,
) -> Script {
    let mut b = Builder::new(d, g);
    b.id("va", a)
        .id("vb", b_id)
        .bind("lbl", GValue::String(label.into()));
    b.start("va");
    let id_token = b.id_token();
    b.push(&format!(
        ".{}(lbl).where(__.{}(lbl).hasId(vb)).dedup().order().by({id_token}).id()",
        step(direction),
        step(direction.reverse())
    ))
    .done()
}

/// Friends of friends with their shared counts (`{id: count}` entries),
/// most shared first, ties by id.
pub(super) fn recommend(d: &Dialect, g: &GraphInfo, id: &str, label: &str, n: i64) -> Script {
    let mut b = Builder::new(d, g);
    b.id("vid", id)
        .bind("lbl", GValue::String(label.into()))
        .bind("n", GValue::Int64(n));
    b.start("vid");
    let id_token = b.id_token();
    b.push(&format!(
        ".out(lbl).aggregate('f').out(lbl).not(__.hasId(vid)).where(without('f'))\
         .groupCount().by({id_token}).unfold()\
         .order().by(__.select(values), desc).by(__.select(keys), asc).limit(n)"
    ))
    .done()
}

/// Every simple path of `lbl` edges from `vid` to `to` with at most `maxd`
/// edges (ids only), up to `n` paths.
pub(super) fn paths(
    d: &Dialect,
    g: &GraphInfo,
    from: &str,
    to: &str,
    label: &str,
    max_depth: i64,
    n: i64,
) -> Script {
    let mut b = Builder::new(d, g);
    b.id("vid", from)
        .id("to", to)
        .bind("lbl", GValue::String(label.into()))
        .bind("maxd", GValue::Int64(max_depth))
        .bind("n", GValue::Int64(n));
    b.start("vid");
    let id_token = b.id_token();
    b.push(&format!(
        ".repeat(__.out(lbl).simplePath()).until(__.hasId(to).or().loops().is(gte(maxd)))\
         .hasId(to).path().by({id_token}).limit(n)"
    ))
    .done()
}
