//! Graph behaviours (`GraphStore` through `router.graph(..)`), on every
//! store with the `graph` capability.

use std::collections::BTreeSet;

use polyrouter::router::Graph;
use polyrouter::store::graph::{Edge, EdgeDirection, Properties, Vertex};
use polyrouter::{Capabilities, Error, Result, Router, Value};

use crate::behaviour;
use crate::harness::{Behaviour, Ctx};

fn graph(c: &Capabilities) -> Option<&'static str> {
    (!c.graph).then_some("graph")
}

pub fn behaviours() -> Vec<Behaviour> {
    vec![
        behaviour!(graph_vertices_round_trip, graph),
        behaviour!(graph_link_is_idempotent, graph),
        behaviour!(graph_neighbour_pages_hold_each_vertex_once, graph),
        behaviour!(graph_remove_vertex_removes_its_edges, graph),
        behaviour!(graph_mutual_and_common, graph),
        behaviour!(graph_recommendations_are_ranked, graph),
        behaviour!(graph_shortest_path_within_limit, graph),
        behaviour!(graph_seed_pattern3_social, graph),
        behaviour!(graph_injection_strings_are_data, graph),
        behaviour!(graph_bad_input_is_refused, graph),
    ]
}

/// This trial's graph `g` on store `s`, with its own tables.
async fn open(ctx: &Ctx) -> Result<Graph> {
    let cfg = format!(
        "{}\n[graphs.g]\nstore = \"s\"\ntable_prefix = \"g_{}_\"\n",
        ctx.config(),
        ctx.id
    );
    let router = Router::from_toml_str(&cfg).await?;
    router.graph("g")
}

async fn users(g: &Graph, ids: &[&str]) -> Result<()> {
    for id in ids {
        g.add_vertex(&Vertex::new(*id, "user")).await?;
    }
    Ok(())
}

async fn follows(g: &Graph, pairs: &[(&str, &str)]) -> Result<()> {
    for (a, b) in pairs {
        g.link("follows", a, b).await?;
    }
    Ok(())
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

async fn graph_vertices_round_trip(ctx: Ctx) -> Result<()> {
    let g = open(&ctx).await?;
    let when = chrono::DateTime::parse_from_rfc3339("2024-02-29T12:34:56.123456Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let v = Vertex::new("ada", "user")
        .property("name", "Ada Lovelace")
        .property("age", 36)
        .property("score", 0.25)
        .property("big", i64::MAX)
        .property("admin", true)
        .property("gone", Value::Null);
    // Gremlin servers store strings, numbers and booleans only (others are refused).
    let v = if ctx.store == "gremlin" {
        v
    } else {
        v.property("avatar", Value::Bytes(vec![0, 1, 254, 255]))
            .property("born", when)
            .property("uid", uuid::Uuid::from_u128(42))
            .property("tags", serde_json::json!({"a": [1, "two", null]}))
    };
    g.add_vertex(&v).await?;
    let got = g.vertex("ada").await?.expect("added");
    let mut want = v.clone();
    want.properties.remove("gone");
    assert_eq!(got, want, "every property type round-trips; null is absent");

    let again = g
        .add_vertex(&Vertex::new("ada", "robot"))
        .await
        .unwrap_err();
    assert!(matches!(again, Error::Conflict { .. }), "{again}");
    assert_eq!(g.vertex("ada").await?.unwrap().label, "user", "unchanged");

    let mut up = Properties::new();
    up.insert("age".into(), Value::from(37));
    up.insert("name".into(), Value::Null);
    up.insert("city".into(), Value::from("London"));
    g.update_vertex("ada", &up).await?;
    let got = g.vertex("ada").await?.unwrap();
    assert_eq!(got.properties.get("age"), Some(&Value::from(37)));
    assert_eq!(got.properties.get("name"), None, "null removes");
    assert_eq!(got.properties.get("city"), Some(&Value::from("London")));
    assert_eq!(
        got.properties.get("admin"),
        Some(&Value::from(true)),
        "kept"
    );

    let missing = g.update_vertex("nobody", &up).await.unwrap_err();
    assert!(matches!(missing, Error::NotFound { .. }), "{missing}");
    assert_eq!(g.vertex("nobody").await?, None);
    Ok(())
}

async fn graph_link_is_idempotent(ctx: Ctx) -> Result<()> {
    let g = open(&ctx).await?;
    users(&g, &["a", "b"]).await?;
    assert!(g.link("follows", "a", "b").await?, "new edge");
    assert!(
        !g.link("follows", "a", "b").await?,
        "second link: no new edge"
    );
    assert_eq!(g.degree("a", "follows", EdgeDirection::Out).await?, 1);
    assert_eq!(g.degree("b", "follows", EdgeDirection::In).await?, 1);
    assert_eq!(g.degree("b", "follows", EdgeDirection::Out).await?, 0);
    // Another label is another edge.
    assert!(g.link("blocks", "a", "b").await?);
    assert_eq!(g.degree("a", "follows", EdgeDirection::Out).await?, 1);

    let e = Edge::new("a", "follows", "b").property("since", 2021);
    assert!(!g.link_edge(&e).await?);
    assert_eq!(
        g.edge("follows", "a", "b").await?,
        Some(e),
        "link again replaces properties"
    );

    let bad = g.link("follows", "a", "ghost").await.unwrap_err();
    assert!(matches!(bad, Error::NotFound { .. }), "{bad}");
    assert!(bad.to_string().contains("ghost"), "{bad}");
    let batch = [
        Edge::new("b", "follows", "a"),
        Edge::new("ghost", "follows", "a"),
    ];
    assert!(g.link_many(&batch).await.is_err());
    assert_eq!(
        g.edge("follows", "b", "a").await?,
        None,
        "a batch with a missing vertex writes nothing"
    );
    let batch = [
        Edge::new("b", "follows", "a"),
        Edge::new("a", "follows", "b"),
        Edge::new("b", "follows", "a"),
    ];
    assert_eq!(g.link_many(&batch).await?, 1, "one new edge in the batch");

    assert!(g.unlink("follows", "a", "b").await?);
    assert!(!g.unlink("follows", "a", "b").await?);
    assert_eq!(g.edge("follows", "a", "b").await?, None);
    assert_eq!(g.degree("a", "follows", EdgeDirection::Out).await?, 0);
    assert!(
        g.edge("blocks", "a", "b").await?.is_some(),
        "other label kept"
    );
    Ok(())
}

async fn graph_neighbour_pages_hold_each_vertex_once(ctx: Ctx) -> Result<()> {
    let g = open(&ctx).await?;
    let fans: Vec<String> = (0..25).map(|i| format!("fan{i:02}")).collect();
    users(&g, &["star"]).await?;
    let fan_refs: Vec<&str> = fans.iter().map(String::as_str).collect();
    users(&g, &fan_refs).await?;
    let edges: Vec<Edge> = fans
        .iter()
        .map(|f| Edge::new(f, "follows", "star"))
        .collect();
    assert_eq!(g.link_many(&edges).await?, 25);
    assert_eq!(g.degree("star", "follows", EdgeDirection::In).await?, 25);

    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = g.followers("star", "follows", 10, token.as_deref()).await?;
        pages += 1;
        if pages == 2 {
            // A new follower sorting before the position: not returned twice, not at all.
            users(&g, &["fan00a"]).await?;
            g.link("follows", "fan00a", "star").await?;
        }
        seen.extend(page.ids);
        match page.next {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "each vertex once: {seen:?}");
    assert_eq!(seen, fans, "ascending id order, every follower");

    let all = g.followers("star", "follows", 100, None).await?;
    assert_eq!(all.ids.len(), 26);
    assert_eq!(all.next, None);
    let exact = g.followers("star", "follows", 26, None).await?;
    assert_eq!(exact.ids.len(), 26);
    assert_eq!(exact.next, None, "no empty last page");

    let out = g.following("fan03", "follows", 5, None).await?;
    assert_eq!(out.ids, strings(&["star"]));

    // A token of another listing, or an altered one, is refused.
    let page = g.followers("star", "follows", 5, None).await?;
    let t = page.next.unwrap();
    let other = g
        .followers("fan01", "follows", 5, Some(&t))
        .await
        .unwrap_err();
    assert!(matches!(other, Error::InvalidInput { .. }), "{other}");
    let forged = g
        .followers("star", "follows", 5, Some("bm9wZQ"))
        .await
        .unwrap_err();
    assert!(matches!(forged, Error::InvalidInput { .. }), "{forged}");
    Ok(())
}

async fn graph_remove_vertex_removes_its_edges(ctx: Ctx) -> Result<()> {
    let g = open(&ctx).await?;
    users(&g, &["a", "b", "c"]).await?;
    follows(
        &g,
        &[("a", "b"), ("b", "a"), ("b", "c"), ("c", "b"), ("a", "c")],
    )
    .await?;
    g.link("likes", "b", "b").await?;
    assert!(g.remove_vertex("b").await?);
    assert!(!g.remove_vertex("b").await?);
    assert_eq!(g.vertex("b").await?, None);
    assert_eq!(g.degree("a", "follows", EdgeDirection::Out).await?, 1);
    assert_eq!(g.degree("a", "follows", EdgeDirection::In).await?, 0);
    assert_eq!(g.degree("c", "follows", EdgeDirection::In).await?, 1);
    assert_eq!(g.degree("c", "follows", EdgeDirection::Out).await?, 0);
    assert_eq!(g.degree("b", "follows", EdgeDirection::In).await?, 0);
    assert_eq!(g.degree("b", "likes", EdgeDirection::Out).await?, 0);
    assert_eq!(g.edge("follows", "a", "b").await?, None);
    assert_eq!(g.edge("follows", "b", "c").await?, None);
    // Re-adding the id starts with no edges.
    users(&g, &["b"]).await?;
    assert_eq!(g.degree("b", "follows", EdgeDirection::In).await?, 0);
    assert!(g.link("follows", "a", "b").await?, "a new edge again");
    Ok(())
}

async fn graph_mutual_and_common(ctx: Ctx) -> Result<()> {
    let g = open(&ctx).await?;
    users(&g, &["me", "x", "y", "z", "w"]).await?;
    follows(
        &g,
        &[
            ("me", "x"),
            ("x", "me"),
            ("me", "y"),
            ("z", "me"),
            ("me", "w"),
            ("w", "me"),
            ("x", "y"),
        ],
    )
    .await?;
    g.link("blocks", "y", "me").await?;
    assert_eq!(g.mutual("me", "follows").await?, strings(&["w", "x"]));
    assert_eq!(g.mutual("y", "follows").await?, Vec::<String>::new());
    // Followers of `y` and of `me` in common; whom `me` and `x` both follow.
    assert_eq!(
        g.common("y", "me", "follows", EdgeDirection::In).await?,
        strings(&["x"])
    );
    assert_eq!(
        g.common("me", "x", "follows", EdgeDirection::Out).await?,
        strings(&["y"])
    );
    Ok(())
}

async fn graph_recommendations_are_ranked(ctx: Ctx) -> Result<()> {
    let g = open(&ctx).await?;
    users(&g, &["me", "f1", "f2", "f3", "p", "q", "r", "s"]).await?;
    follows(
        &g,
        &[
            ("me", "f1"),
            ("me", "f2"),
            ("me", "f3"),
            ("f1", "p"),
            ("f2", "p"),
            ("f3", "p"),
            ("f1", "r"),
            ("f2", "r"),
            ("f1", "q"),
            ("f2", "s"),
            // Already followed: never recommended.
            ("f1", "f2"),
            // Self: never recommended.
            ("f3", "me"),
        ],
    )
    .await?;
    let recs = g.recommend("me", "follows", 10).await?;
    let got: Vec<(&str, u64)> = recs.iter().map(|r| (r.id.as_str(), r.shared)).collect();
    assert_eq!(got, vec![("p", 3), ("r", 2), ("q", 1), ("s", 1)]);
    let top = g.recommend("me", "follows", 2).await?;
    assert_eq!(top.len(), 2);
    assert_eq!(top[1].id, "r");
    assert!(g.recommend("s", "follows", 5).await?.is_empty());
    Ok(())
}

async fn graph_shortest_path_within_limit(ctx: Ctx) -> Result<()> {
    let g = open(&ctx).await?;
    users(&g, &["a", "b", "c", "d", "e", "x", "y", "lonely"]).await?;
    follows(
        &g,
        &[
            ("a", "b"),
            ("b", "c"),
            ("c", "d"),
            ("d", "a"), // a cycle
            ("a", "y"),
            ("y", "c"), // a second shortest path a→?→c; `b` < `y`
            ("d", "e"),
        ],
    )
    .await?;
    g.link("blocks", "a", "e").await?; // other label: not followed
    let path = |v: &[&str]| Some(strings(v));
    assert_eq!(
        g.shortest_path("a", "c", "follows", 5).await?,
        path(&["a", "b", "c"])
    );
    assert_eq!(
        g.shortest_path("a", "e", "follows", 4).await?,
        path(&["a", "b", "c", "d", "e"])
    );
    assert_eq!(
        g.shortest_path("a", "e", "follows", 3).await?,
        None,
        "beyond the limit"
    );
    assert_eq!(
        g.shortest_path("e", "a", "follows", 10).await?,
        None,
        "edges are directed"
    );
    assert_eq!(g.shortest_path("a", "a", "follows", 0).await?, path(&["a"]));
    assert_eq!(g.shortest_path("a", "lonely", "follows", 10).await?, None);
    assert_eq!(g.shortest_path("a", "ghost", "follows", 10).await?, None);
    assert_eq!(
        g.shortest_path("a", "e", "blocks", 1).await?,
        path(&["a", "e"])
    );
    g.unlink("follows", "a", "b").await?;
    assert_eq!(
        g.shortest_path("a", "c", "follows", 5).await?,
        path(&["a", "y", "c"])
    );
    Ok(())
}

/// The seed's Pattern 3 (`SocialGraphService`): add users, follow,
/// followers, mutual followers, recommendations.
async fn graph_seed_pattern3_social(ctx: Ctx) -> Result<()> {
    let social = open(&ctx).await?;
    for (id, name, city) in [
        ("alice", "Alice", "Oslo"),
        ("bob", "Bob", "Bergen"),
        ("carol", "Carol", "Oslo"),
        ("dave", "Dave", "Tromsø"),
        ("erin", "Erin", "Oslo"),
    ] {
        let v = Vertex::new(id, "user")
            .property("name", name)
            .property("city", city);
        social.add_vertex(&v).await?;
    }
    // follow_user(follower, followee)
    follows(
        &social,
        &[
            ("alice", "bob"),
            ("carol", "bob"),
            ("dave", "bob"),
            ("alice", "carol"),
            ("dave", "carol"),
            ("bob", "dave"),
            ("carol", "erin"),
            ("bob", "erin"),
        ],
    )
    .await?;
    // get_followers(user, limit)
    let followers = social.followers("bob", "follows", 100, None).await?;
    assert_eq!(followers.ids, strings(&["alice", "carol", "dave"]));
    // get_mutual_followers(u1, u2): who follows both.
    assert_eq!(
        social
            .common("bob", "carol", "follows", EdgeDirection::In)
            .await?,
        strings(&["alice", "dave"])
    );
    // Both directions: bob and dave follow each other.
    assert_eq!(social.mutual("bob", "follows").await?, strings(&["dave"]));
    // recommend_connections(user, limit): friends of friends, not self, not followed.
    let recs = social.recommend("alice", "follows", 10).await?;
    let got: Vec<(&str, u64)> = recs.iter().map(|r| (r.id.as_str(), r.shared)).collect();
    assert_eq!(got, vec![("erin", 2), ("dave", 1)]);
    assert_eq!(
        social.vertex("dave").await?.unwrap().properties["city"],
        Value::from("Tromsø")
    );
    Ok(())
}

const EVIL: &[&str] = &[
    "x'); g.V().drop(); ('",
    "'; DROP TABLE g; --",
    "\"quoted\" 'single'",
    "back\\slash\\",
    "%_%",
    "_",
    "ünïcödé 🎉 \u{202E}rtl",
    " spaced ",
    "a/b?c#d",
    "${VAR}",
];

async fn graph_injection_strings_are_data(ctx: Ctx) -> Result<()> {
    let g = open(&ctx).await?;
    users(&g, &["canary", "hub"]).await?;
    for evil in EVIL {
        let v = Vertex::new(*evil, *evil).property(*evil, *evil);
        g.add_vertex(&v).await?;
        assert_eq!(g.vertex(evil).await?, Some(v), "{evil:?}");
        let e = Edge::new(*evil, *evil, "hub").property("note", *evil);
        assert!(g.link_edge(&e).await?);
        assert_eq!(g.edge(evil, evil, "hub").await?, Some(e));
        g.link("follows", "hub", evil).await?;
        assert_eq!(
            g.degree("hub", evil, EdgeDirection::In).await?,
            1,
            "{evil:?}"
        );
    }
    let mut want: Vec<String> = strings(EVIL);
    want.sort();
    let out = g.following("hub", "follows", 100, None).await?;
    assert_eq!(out.ids, want, "ids come back byte for byte, in byte order");
    // Paging over the evil ids, one at a time.
    let mut paged = Vec::new();
    let mut token = None;
    loop {
        let p = g.following("hub", "follows", 1, token.as_deref()).await?;
        paged.extend(p.ids);
        token = p.next;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(paged, want);
    assert!(g.vertex("canary").await?.is_some(), "nothing dropped");
    assert_eq!(
        g.degree("hub", "follows", EdgeDirection::Out).await?,
        EVIL.len() as u64
    );
    let path = g.shortest_path(EVIL[0], EVIL[1], "follows", 2).await?;
    assert_eq!(
        path, None,
        "evil ids reach each other only through hub's in-edges"
    );
    Ok(())
}

async fn graph_bad_input_is_refused(ctx: Ctx) -> Result<()> {
    let g = open(&ctx).await?;
    users(&g, &["a"]).await?;
    let invalid = |r: Result<()>, what: &str| match r {
        Err(Error::InvalidInput { message, .. }) => assert!(!message.is_empty(), "{what}"),
        other => panic!("{what}: expected InvalidInput, got {other:?}"),
    };
    invalid(g.add_vertex(&Vertex::new("", "user")).await, "empty id");
    invalid(g.add_vertex(&Vertex::new("n\0ul", "user")).await, "NUL id");
    invalid(g.add_vertex(&Vertex::new("b", "")).await, "empty label");
    invalid(
        g.add_vertex(&Vertex::new("b", "user").property("t", "nul\0"))
            .await,
        "NUL text",
    );
    invalid(g.link("", "a", "a").await.map(|_| ()), "empty edge label");
    invalid(
        g.followers("a", "follows", 0, None).await.map(|_| ()),
        "limit 0",
    );
    invalid(g.recommend("a", "follows", 0).await.map(|_| ()), "limit 0");
    assert_eq!(g.vertex("b").await?, None, "nothing written");
    let e = g.add_vertex(&Vertex::new("", "user")).await.unwrap_err();
    assert!(e.to_string().contains("graph `g`"), "names the graph: {e}");
    Ok(())
}
