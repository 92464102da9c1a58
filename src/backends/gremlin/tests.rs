//! Every graph operation's script and bindings: values only ever appear as
//! bindings, never in the script text; the text depends only on the dialect
//! and the number of properties.

use gremlin_client::GValue;

use super::script::{self, Dialect, Script};
use super::{GremlinConfig, GremlinStore};
use crate::store::graph::{EdgeDirection, GraphInfo, Properties};
use crate::{Error, Value};

const EVIL: &str = "x'); g.V().drop(); ('";
const EVIL2: &str = "\"quoted\" ünï 🎉 %_ \\";

fn graph() -> GraphInfo {
    GraphInfo::with_prefix("social", "graph", "ns_")
}

fn tinkerpop() -> Dialect {
    Dialect::default()
}

fn cosmos() -> Dialect {
    Dialect {
        partition_key: Some("pk".into()),
    }
}

fn props(name: &str, value: &str) -> Properties {
    let mut p = Properties::new();
    p.insert(name.into(), Value::from(value));
    p.insert("n".into(), Value::from(7));
    p
}

fn binding<'a>(s: &'a Script, name: &str) -> &'a GValue {
    &s.bindings
        .iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no binding `{name}` in {s:?}"))
        .1
}

fn string(s: &Script, name: &str) -> String {
    match binding(s, name) {
        GValue::String(v) => v.clone(),
        other => panic!("binding `{name}` is {other:?}"),
    }
}

/// The values never appear in the text; the text uses only known fragments.
fn assert_clean(s: &Script, values: &[&str]) {
    for v in values {
        assert!(!s.text.contains(v), "{v:?} leaked into {:?}", s.text);
    }
    assert!(
        !s.text.contains('"'),
        "no string literal but step labels: {}",
        s.text
    );
    let names: Vec<&str> = s.bindings.iter().map(|(k, _)| k.as_str()).collect();
    let unique: std::collections::BTreeSet<&&str> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "each binding once: {names:?}");
    for (k, _) in &s.bindings {
        assert!(
            k.chars().all(|c| c.is_ascii_alphanumeric()),
            "binding names are identifiers: {k}"
        );
    }
}

/// Builds an operation's script for two different sets of values: the
/// texts must be equal (constant), and each must be clean.
fn constant(build: impl Fn(&Dialect, &str, &str) -> Script) {
    for d in [tinkerpop(), cosmos()] {
        let a = build(&d, EVIL, EVIL2);
        let b = build(&d, "plain", "other");
        assert_eq!(a.text, b.text, "the text does not depend on values");
        assert_clean(&a, &[EVIL, EVIL2]);
        assert_clean(&b, &["plain", "other"]);
        if d.partition_key.is_some() {
            assert!(a.text.contains(".has(pk, "), "{}", a.text);
            assert_eq!(string(&a, "pk"), "pk");
        }
    }
}

#[test]
fn add_vertex_binds_id_label_and_properties() {
    let g = graph();
    let s = script::add_vertex(&tinkerpop(), &g, EVIL, EVIL2, &props(EVIL2, EVIL));
    assert_eq!(
        s.text,
        "g.V(vid).fold().coalesce(__.unfold().constant(false), __.addV(lbl).property(T.id, vid).property(k0, v0).property(k1, v1).constant(true))"
    );
    assert_eq!(
        string(&s, "vid"),
        format!("ns_{EVIL}"),
        "the id carries the graph's prefix"
    );
    assert_eq!(string(&s, "lbl"), EVIL2);
    assert_eq!(string(&s, "k0"), EVIL2);
    assert_eq!(string(&s, "v0"), EVIL);
    assert_eq!(binding(&s, "v1"), &GValue::Int64(7));
    let c = script::add_vertex(&cosmos(), &g, EVIL, "user", &Properties::new());
    assert_eq!(
        c.text,
        "g.V(vid).has(pk, vid).fold().coalesce(__.unfold().constant(false), __.addV(lbl).property('id', vid).property(pk, vid).constant(true))"
    );
    constant(|d, a, b| script::add_vertex(d, &g, a, b, &props(b, a)));
}

#[test]
fn update_vertex_sets_and_drops_properties_by_binding() {
    let g = graph();
    let mut p = props(EVIL, EVIL2);
    p.insert(EVIL2.into(), Value::Null);
    let s = script::update_vertex(&tinkerpop(), &g, EVIL, &p);
    assert_eq!(
        s.text,
        "g.V(vid).sideEffect(__.properties(r0).drop()).property(single, k0, v0).property(single, k1, v1).id()"
    );
    assert_eq!(string(&s, "r0"), EVIL2);
    assert_eq!(string(&s, "k1"), EVIL);
    assert_eq!(string(&s, "v1"), EVIL2);
    constant(|d, a, b| {
        let mut p = props(a, b);
        p.insert(b.into(), Value::Null);
        script::update_vertex(d, &g, a, &p)
    });
}

#[test]
fn vertex_reads_and_removal() {
    let g = graph();
    let s = script::get_vertex(&tinkerpop(), &g, EVIL);
    assert_eq!(
        s.text,
        "g.V(vid).project('l', 'p').by(__.label()).by(__.valueMap())"
    );
    assert_eq!(string(&s, "vid"), format!("ns_{EVIL}"));
    constant(|d, a, _| script::get_vertex(d, &g, a));
    let s = script::remove_vertex(&tinkerpop(), &g, EVIL);
    assert_eq!(
        s.text,
        "g.V(vid).fold().sideEffect(__.unfold().drop()).count(local)"
    );
    constant(|d, a, _| script::remove_vertex(d, &g, a));
    constant(|d, a, _| script::count_vertex(d, &g, a));
}

#[test]
fn link_replaces_or_adds_with_bound_ends_label_and_properties() {
    let g = graph();
    let s = script::link(&tinkerpop(), &g, EVIL, EVIL2, "dst", &props(EVIL, EVIL2));
    assert_eq!(
        s.text,
        "g.V(src).as('a').V(dst).coalesce(__.inE(lbl).where(__.outV().as('a')).sideEffect(__.properties().drop()).property(k0, v0).property(k1, v1).constant(false), __.addE(lbl).from('a').property(k0, v0).property(k1, v1).constant(true))"
    );
    assert_eq!(string(&s, "src"), format!("ns_{EVIL}"));
    assert_eq!(string(&s, "dst"), "ns_dst");
    assert_eq!(string(&s, "lbl"), EVIL2);
    let c = script::link(&cosmos(), &g, "a", "follows", "b", &Properties::new());
    assert!(
        c.text
            .starts_with("g.V(src).has(pk, src).as('a').V(dst).has(pk, dst)"),
        "{}",
        c.text
    );
    constant(|d, a, b| script::link(d, &g, a, b, a, &props(b, a)));
}

#[test]
fn unlink_and_get_edge() {
    let g = graph();
    let s = script::unlink(&tinkerpop(), &g, EVIL, EVIL2, EVIL);
    assert_eq!(
        s.text,
        "g.V(src).outE(lbl).where(__.inV().hasId(dst)).fold().sideEffect(__.unfold().drop()).count(local)"
    );
    assert_eq!(string(&s, "lbl"), EVIL2);
    constant(|d, a, b| script::unlink(d, &g, a, b, b));
    let s = script::get_edge(&tinkerpop(), &g, EVIL, EVIL2, EVIL);
    assert_eq!(
        s.text,
        "g.V(src).outE(lbl).where(__.inV().hasId(dst)).limit(1).valueMap()"
    );
    constant(|d, a, b| script::get_edge(d, &g, a, b, b));
}

#[test]
fn neighbours_page_by_bound_position_and_limit() {
    let g = graph();
    let s = script::neighbours(&tinkerpop(), &g, EVIL, EVIL2, EdgeDirection::In, EVIL, 11);
    assert_eq!(
        s.text,
        "g.V(vid).in(lbl).hasId(gt(after)).dedup().order().by(T.id).limit(n).id()"
    );
    assert_eq!(string(&s, "after"), format!("ns_{EVIL}"));
    assert_eq!(binding(&s, "n"), &GValue::Int64(11));
    let out = script::neighbours(&cosmos(), &g, "a", "l", EdgeDirection::Out, "", 3);
    assert_eq!(
        out.text,
        "g.V(vid).has(pk, vid).out(lbl).hasId(gt(after)).dedup().order().by('id').limit(n).id()"
    );
    assert_eq!(
        string(&out, "after"),
        "ns_",
        "the first page starts after the bare prefix"
    );
    for dir in [EdgeDirection::Out, EdgeDirection::In] {
        constant(|d, a, b| script::neighbours(d, &g, a, b, dir, a, 5));
        constant(|d, a, b| script::degree(d, &g, a, b, dir));
        constant(|d, a, b| script::common(d, &g, a, b, b, dir));
    }
}

#[test]
fn degree_mutual_and_common() {
    let g = graph();
    let s = script::degree(&tinkerpop(), &g, EVIL, EVIL2, EdgeDirection::Out);
    assert_eq!(s.text, "g.V(vid).outE(lbl).count()");
    let s = script::degree(&tinkerpop(), &g, EVIL, EVIL2, EdgeDirection::In);
    assert_eq!(s.text, "g.V(vid).inE(lbl).count()");
    let s = script::mutual(&tinkerpop(), &g, EVIL, EVIL2);
    assert_eq!(
        s.text,
        "g.V(vid).out(lbl).where(__.out(lbl).hasId(vid)).dedup().order().by(T.id).id()"
    );
    constant(|d, a, b| script::mutual(d, &g, a, b));
    let s = script::common(&tinkerpop(), &g, EVIL, EVIL2, "follows", EdgeDirection::In);
    assert_eq!(
        s.text,
        "g.V(va).in(lbl).where(__.out(lbl).hasId(vb)).dedup().order().by(T.id).id()"
    );
    assert_eq!(string(&s, "va"), format!("ns_{EVIL}"));
    assert_eq!(string(&s, "vb"), format!("ns_{EVIL2}"));
}

#[test]
fn recommend_and_paths() {
    let g = graph();
    let s = script::recommend(&tinkerpop(), &g, EVIL, EVIL2, 10);
    assert_eq!(
        s.text,
        "g.V(vid).out(lbl).aggregate('f').out(lbl).not(__.hasId(vid)).where(without('f')).groupCount().by(T.id).unfold().order().by(__.select(values), desc).by(__.select(keys), asc).limit(n)"
    );
    assert_eq!(binding(&s, "n"), &GValue::Int64(10));
    constant(|d, a, b| script::recommend(d, &g, a, b, 3));
    let s = script::paths(&tinkerpop(), &g, EVIL, EVIL2, "follows", 4, 100);
    assert_eq!(
        s.text,
        "g.V(vid).repeat(__.out(lbl).simplePath()).until(__.hasId(to).or().loops().is(gte(maxd))).hasId(to).path().by(T.id).limit(n)"
    );
    assert_eq!(string(&s, "to"), format!("ns_{EVIL2}"));
    assert_eq!(binding(&s, "maxd"), &GValue::Int64(4));
    constant(|d, a, b| script::paths(d, &g, a, b, a, 3, 9));
    assert_eq!(script::ping().text, "g.V().limit(1).count()");
}

#[test]
fn property_values_map_to_gremlin_types() {
    assert_eq!(
        script::to_gvalue(&Value::from(1.5)),
        Some(GValue::Double(1.5))
    );
    assert_eq!(
        script::to_gvalue(&Value::from(true)),
        Some(GValue::Bool(true))
    );
    assert_eq!(script::to_gvalue(&Value::Bytes(vec![1])), None);
    assert_eq!(script::from_gvalue(&GValue::Int32(3)), Some(Value::I64(3)));
    assert_eq!(
        script::from_gvalue(&GValue::String(EVIL.into())),
        Some(Value::from(EVIL))
    );
}

#[tokio::test]
async fn an_unreachable_server_fails_at_start_up_with_secrets_redacted() {
    // Nothing listens on port 1: the start-up query must fail, not the first call.
    let mut cfg = GremlinConfig::new("ws://127.0.0.1:1/gremlin");
    cfg.username = Some("/dbs/d/colls/c".into());
    cfg.password = Some(crate::config::Secret::new("s3cret-key"));
    cfg.connect_timeout = crate::config::ConfigDuration(std::time::Duration::from_secs(2));
    let e = GremlinStore::connect("graph", cfg).await.unwrap_err();
    assert!(matches!(e, Error::Unavailable { .. }), "{e}");
    let text = format!("{e} {e:?}");
    assert!(text.contains("store `graph`"), "{text}");
    assert!(text.contains("127.0.0.1:1"), "names the address: {text}");
    assert!(!text.contains("s3cret-key"), "{text}");
}

#[tokio::test]
async fn config_errors_name_the_key() {
    let e = GremlinStore::connect("graph", GremlinConfig::new("http://h"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("stores.graph.url"), "{e}");
}
