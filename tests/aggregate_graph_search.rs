//! Graph and search branches of the aggregator and of `[views.NAME]`:
//! followers read as user records with one `get_many`, friends-of-friends
//! ranked and hydrated, degrees, mutual connections, search-then-hydrate
//! with rank kept and gone records dropped and counted, a failing graph
//! store named in a partial result, and start-up errors for bad views.
//!
//! Graph branches run on memory and SQLite (and PostgreSQL with
//! `--features postgres,redis`); search branches need a search store:
//! tantivy (`--features tantivy`) next to memory and SQLite, PostgreSQL
//! full text on the servers.

mod support;

use std::sync::Arc;

use polyrouter::aggregate::{GraphRead, Recommended, Scored};
use polyrouter::config::{
    Config, EntityConfig, GraphConfig, ViewBranch, ViewConfig, ViewGraph, ViewGraphOp,
};
use polyrouter::layers::testing::{Counting, Faults};
use polyrouter::store::graph::{EdgeDirection, Vertex};
use polyrouter::{Entity, Error, Router, Store};
use serde::{Deserialize, Serialize};
use serde_json::json;
use support::{Ctx, Env, Role};

#[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[entity(name = "user", key = "id")]
struct User {
    id: String,
    name: String,
}

/// Users with a record; `gus` and `hal` are vertices without one.
const USERS: [(&str, &str); 6] = [
    ("ada", "Ada"),
    ("bob", "Bob"),
    ("cy", "Cy"),
    ("dee", "Dee"),
    ("eve", "Eve"),
    ("fay", "Fay"),
];

/// `follows` edges. Followers of bob: ada, cy, dee, gus. Bob follows ada
/// and cy, who both follow him back (mutual). Friends of friends of bob:
/// eve (via ada and cy), then dee, fay and hal (one each, by id).
const FOLLOWS: [(&str, &str); 11] = [
    ("ada", "bob"),
    ("cy", "bob"),
    ("dee", "bob"),
    ("gus", "bob"),
    ("bob", "ada"),
    ("bob", "cy"),
    ("ada", "dee"),
    ("ada", "eve"),
    ("cy", "eve"),
    ("cy", "fay"),
    ("cy", "hal"),
];

fn names(users: &[User]) -> Vec<&str> {
    users.iter().map(|u| u.id.as_str()).collect()
}

async fn fill_users_and_graph(router: &Router, graph: &str) {
    let users = router.repo::<User>().await.unwrap();
    let all: Vec<User> = USERS
        .iter()
        .map(|(id, name)| User {
            id: (*id).into(),
            name: (*name).into(),
        })
        .collect();
    users.put_many(&all).await.unwrap();
    let social = router.graph(graph).unwrap();
    let mut vertices: Vec<&str> = FOLLOWS.iter().flat_map(|(a, b)| [*a, *b]).collect();
    vertices.sort();
    vertices.dedup();
    for id in vertices {
        social.add_vertex(&Vertex::new(id, "user")).await.unwrap();
    }
    for (a, b) in FOLLOWS {
        assert!(social.link("follows", a, b).await.unwrap());
    }
}

// ---------------------------------------------------------------------
// Graph branches in code, with a counted user store and a breakable
// graph store.

type People = Counting<Faults<Arc<dyn Store>>>;

struct Social {
    router: Router,
    people: Arc<People>,
    graph: Arc<Faults<Arc<dyn Store>>>,
    _ctx: Ctx,
}

fn profile_view() -> ViewConfig {
    let mut v = ViewConfig {
        params: vec!["user_id".into()],
        ..Default::default()
    };
    v.branches.insert(
        "me".into(),
        ViewBranch {
            entity: "user".into(),
            get: Some("$user_id".into()),
            required: true,
            ..Default::default()
        },
    );
    v.branches.insert(
        "followers".into(),
        ViewBranch {
            entity: "user".into(),
            graph: Some(ViewGraph {
                name: "social".into(),
                op: ViewGraphOp::In,
                vertex: "$user_id".into(),
                label: "follows".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    v.branches.insert(
        "fans".into(),
        ViewBranch {
            graph: Some(ViewGraph {
                name: "social".into(),
                op: ViewGraphOp::Degree,
                direction: Some(polyrouter::config::ViewDirection::In),
                vertex: "$user_id".into(),
                label: "follows".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    v
}

/// Users in a counted, breakable store `people`; the graph `social` in its
/// own breakable store `graphdb`.
async fn social(env: Env) -> Social {
    let ctx = Ctx::new(env);
    let people = Arc::new(Counting::new(Faults::new(
        ctx.open("people", Role::Data).await,
    )));
    let graph = Arc::new(Faults::new(ctx.open("graphdb", Role::Data).await));
    let router = Router::builder()
        .store("people", people.clone())
        .store("graphdb", graph.clone())
        .route_with(
            "user",
            EntityConfig {
                store: "people".into(),
                ..Default::default()
            },
        )
        .graph(
            "social",
            GraphConfig {
                store: "graphdb".into(),
                table_prefix: None,
            },
        )
        .view("profile", profile_view())
        .entity::<User>()
        .build()
        .await
        .unwrap();
    fill_users_and_graph(&router, "social").await;
    people.reset();
    Social {
        router,
        people,
        graph,
        _ctx: ctx,
    }
}

async fn graph_branches_read_records_without_n_plus_1(env: Env) {
    let s = social(env).await;
    let out = s
        .router
        .aggregate()
        .get::<User>("me", "bob")
        .graph_records::<User>(
            "followers",
            "social",
            GraphRead::followers("bob", "follows"),
        )
        .graph_records::<User>(
            "suggested",
            "social",
            GraphRead::recommend("bob", "follows").limit(10),
        )
        .graph("friends", "social", GraphRead::mutual("bob", "follows"))
        .graph(
            "following",
            "social",
            GraphRead::following("bob", "follows").limit(1),
        )
        .graph(
            "ideas",
            "social",
            GraphRead::recommend("bob", "follows").limit(2),
        )
        .graph(
            "fans",
            "social",
            GraphRead::degree("bob", "follows", EdgeDirection::In),
        )
        .graph(
            "follows_n",
            "social",
            GraphRead::degree("bob", "follows", EdgeDirection::Out),
        )
        .run()
        .await
        .unwrap();
    assert_eq!(out.failures().count(), 0, "{:?}", out.to_json());
    assert_eq!(out.value::<User>("me").unwrap().name, "Bob");
    // Followers in id order; gus has no user record: dropped and counted.
    let followers: Vec<User> = out.value("followers").unwrap();
    assert_eq!(names(&followers), ["ada", "cy", "dee"]);
    assert_eq!(out.branch("followers").unwrap().dropped, 1);
    // Recommendations ranked by shared connections, ties by id; hal dropped.
    let suggested: Vec<Scored<User>> = out.value("suggested").unwrap();
    let got: Vec<(&str, f64)> = suggested
        .iter()
        .map(|s| (s.item.id.as_str(), s.score))
        .collect();
    assert_eq!(got, [("eve", 2.0), ("dee", 1.0), ("fay", 1.0)]);
    assert_eq!(out.branch("suggested").unwrap().dropped, 1);
    // Ids only, without records.
    assert_eq!(out.value::<Vec<String>>("friends").unwrap(), ["ada", "cy"]);
    assert_eq!(out.value::<Vec<String>>("following").unwrap(), ["ada"]);
    assert_eq!(
        out.value::<Vec<Recommended>>("ideas").unwrap(),
        [
            Recommended {
                id: "eve".into(),
                shared: 2
            },
            Recommended {
                id: "dee".into(),
                shared: 1
            }
        ]
    );
    assert_eq!(out.value::<u64>("fans").unwrap(), 4);
    assert_eq!(out.value::<u64>("follows_n").unwrap(), 2);
    // One get for `me`, one get_many per hydrated graph branch: no N+1.
    let c = s.people.counts();
    assert_eq!((c.gets, c.get_manys, c.queries), (1, 2, 0), "{c:?}");
    assert_eq!(c.keys_read, 4 + 4, "every vertex id read once");
}

async fn a_failing_graph_store_leaves_a_partial_result_naming_it(env: Env) {
    let s = social(env).await;
    s.graph.set_down(true);
    let out = s
        .router
        .aggregate()
        .get::<User>("me", "bob")
        .graph_records::<User>(
            "followers",
            "social",
            GraphRead::followers("bob", "follows"),
        )
        .graph(
            "fans",
            "social",
            GraphRead::degree("bob", "follows", EdgeDirection::In),
        )
        .run()
        .await
        .unwrap();
    assert_eq!(out.value::<User>("me").unwrap().name, "Bob");
    let failed: Vec<(&str, &str, bool)> = out
        .failures()
        .map(|(n, f)| (n, f.store.as_str(), f.timed_out))
        .collect();
    assert_eq!(
        failed,
        [("followers", "graphdb", true), ("fans", "graphdb", true)]
    );
    let e = out.value::<Vec<User>>("followers").unwrap_err();
    assert!(e.to_string().contains("store `graphdb`"), "{e}");
    // The same through the view: data for `me`, errors naming the store.
    let j = s
        .router
        .view("profile", json!({"user_id": "bob"}))
        .await
        .unwrap()
        .to_json();
    assert_eq!(j["data"]["me"]["name"], "Bob");
    assert_eq!(j["errors"]["followers"]["store"], "graphdb");
    assert_eq!(j["errors"]["fans"]["store"], "graphdb");
    assert_eq!(j["errors"]["followers"]["entity"], "user");
    // A required graph branch fails the call, naming the store and branch.
    let e = s
        .router
        .aggregate()
        .graph("fans", "social", GraphRead::mutual("bob", "follows"))
        .required()
        .run()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("store `graphdb`"), "{e}");
    assert!(e.to_string().contains("branch `fans`"), "{e}");
    // The graph answers again, the user store is down: the hydration step
    // fails and its failure names the user store, not the graph's.
    s.graph.set_down(false);
    s.people.inner().set_down(true);
    let out = s
        .router
        .aggregate()
        .graph_records::<User>(
            "followers",
            "social",
            GraphRead::followers("bob", "follows"),
        )
        .graph(
            "fans",
            "social",
            GraphRead::degree("bob", "follows", EdgeDirection::In),
        )
        .run()
        .await
        .unwrap();
    assert_eq!(out.value::<u64>("fans").unwrap(), 4);
    let (name, f) = out.failures().next().unwrap();
    assert_eq!((name, f.store.as_str()), ("followers", "people"));
}

async fn the_profile_view_reads_the_graph(env: Env) {
    let s = social(env).await;
    let j = s
        .router
        .view("profile", json!({"user_id": "bob"}))
        .await
        .unwrap()
        .to_json();
    assert!(j["errors"].as_object().unwrap().is_empty(), "{j}");
    assert_eq!(j["data"]["fans"], 4);
    let ids: Vec<&str> = j["data"]["followers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["ada", "cy", "dee"]);
    assert_eq!(s.people.counts().get_manys, 1);
    // A vertex without edges: empty lists and a zero degree, not errors.
    let j = s
        .router
        .view("profile", json!({"user_id": "fay"}))
        .await
        .unwrap()
        .to_json();
    assert_eq!(j["data"]["followers"], json!([{"id": "cy", "name": "Cy"}]));
    assert_eq!(j["data"]["fans"], 1);
    let j = s
        .router
        .view("profile", json!({"user_id": "zed"}))
        .await
        .unwrap()
        .to_json();
    assert_eq!(j["data"]["followers"], json!([]));
    assert_eq!(j["data"]["fans"], 0);
    assert!(j["data"]["me"].is_null());
}

#[tokio::test]
async fn malformed_graph_and_search_calls_are_refused_before_running() {
    let s = social(Env::Memory).await;
    let e = s
        .router
        .aggregate()
        .graph("x", "nope", GraphRead::mutual("bob", "follows"))
        .run()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("graph `nope`"), "{e}");
    let e = s
        .router
        .aggregate()
        .graph_records::<User>(
            "x",
            "social",
            GraphRead::degree("bob", "follows", EdgeDirection::In),
        )
        .run()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
    assert!(e.to_string().contains("degree"), "{e}");
    // `user` has no search index.
    let e = s
        .router
        .aggregate()
        .search::<User>("x", polyrouter::router::SearchQuery::new("ada"))
        .run()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    assert!(e.to_string().contains("has no search index"), "{e}");
    assert_eq!(s.people.counts().gets + s.people.counts().get_manys, 0);
}

// ---------------------------------------------------------------------
// Start-up errors.

#[test]
fn graph_and_search_view_config_errors_are_located() {
    let base = r#"[stores.m]
kind = "memory"
[entities.user]
store = "m"
[entities.post]
store = "m"
search = { store = "m", fields = ["title"], key_kind = "int", filters = { topic = "string" } }
[graphs.social]
store = "m"
[views.v]
params = ["id"]
"#;
    for (extra, path, want) in [
        (
            "[views.v.branches.a]\ngraph = { name = \"nope\", op = \"in\", vertex = \"$id\", label = \"follows\" }\n",
            "views.v.branches.a.graph.name",
            "graph `nope` is not configured",
        ),
        (
            "[views.v.branches.a]\ngraph = { name = \"social\", op = \"sideways\", vertex = \"$id\", label = \"follows\" }\n",
            "views.v.branches.a.graph.op",
            "unknown variant `sideways`",
        ),
        (
            "[views.v.branches.a]\nentity = \"user\"\nsearch = { text = \"$id\" }\n",
            "views.v.branches.a.search",
            "entity `user` has no search index",
        ),
        (
            "[views.v.branches.a]\nentity = \"post\"\nsearch = { text = \"$q\" }\n",
            "views.v.branches.a.search.text",
            "parameter `q` is not declared",
        ),
        (
            "[views.v.branches.a]\nentity = \"post\"\nsearch = { text = \"x\", filter = { author = \"$id\" } }\n",
            "views.v.branches.a.search.filter.author",
            "not a filter field of the search index",
        ),
        (
            "[views.v.branches.a]\ngraph = { name = \"social\", op = \"in\", vertex = \"$who\", label = \"follows\" }\n",
            "views.v.branches.a.graph.vertex",
            "parameter `who` is not declared",
        ),
        (
            "[views.v.branches.a]\nentity = \"user\"\ngraph = { name = \"social\", op = \"degree\", vertex = \"$id\", label = \"follows\" }\n",
            "views.v.branches.a.entity",
            "cannot be read as records",
        ),
        (
            "[views.v.branches.a]\ngraph = { name = \"social\", op = \"in\", direction = \"in\", vertex = \"$id\", label = \"follows\" }\n",
            "views.v.branches.a.graph.direction",
            "only `op = \"degree\"` takes a direction",
        ),
        (
            "[views.v.branches.a]\ngraph = { name = \"social\", op = \"in\", vertex = \"$id\", label = \"follows\", limit = 0 }\n",
            "views.v.branches.a.graph.limit",
            "at least 1",
        ),
        (
            "[views.v.branches.a]\nentity = \"post\"\nsearch = { text = \"x\" }\nlimit = 3\n",
            "views.v.branches.a",
            "one of",
        ),
        (
            "[views.v.branches.a]\nget = \"$id\"\n",
            "views.v.branches.a",
            "needs `entity`",
        ),
        (
            "[views.v.branches.a]\ngraph = { name = \"social\", op = \"in\", vertex = \"$id\" }\n",
            "views.v.branches.a.graph",
            "label",
        ),
    ] {
        let text = format!("{base}{extra}");
        let e = Config::parse(&text, "app.toml").unwrap_err();
        let Error::Config {
            file,
            line,
            column,
            path: got,
            message,
        } = &e
        else {
            panic!("{extra}: not a config error: {e}");
        };
        assert_eq!(file, "app.toml");
        assert_eq!(got, path, "{extra}: {e}");
        assert!(message.contains(want), "{extra}: {e}");
        // Located on the branch's lines (after the base text).
        assert!(*line > base.lines().count(), "{extra}: {e}");
        assert!(*column > 0, "{extra}: {e}");
        assert!(
            e.to_string()
                .starts_with(&format!("app.toml:{line}:{column}: `{path}`: ")),
            "{e}"
        );
    }
}

#[tokio::test]
async fn a_view_added_in_code_over_an_unknown_graph_fails_the_build() {
    let mut v = ViewConfig::default();
    v.branches.insert(
        "a".into(),
        ViewBranch {
            graph: Some(ViewGraph {
                name: "nope".into(),
                vertex: "ada".into(),
                label: "follows".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    let e = Router::builder()
        .store(
            "m",
            Arc::new(polyrouter::backends::memory::MemoryStore::new("m")),
        )
        .view("v", v)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Config { .. }), "{e}");
    assert!(
        e.to_string().contains("views.v.branches.a.graph.name"),
        "{e}"
    );
}

// ---------------------------------------------------------------------
// Search branches (and the whole dashboard view from TOML).

#[cfg(any(feature = "tantivy", feature = "postgres"))]
mod search {
    use super::*;
    use polyrouter::Key;
    use polyrouter::router::SearchQuery;
    use polyrouter::store::{EntityInfo, WriteOp};

    #[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
    #[entity(name = "post", key = "id")]
    struct Post {
        id: i64,
        author: String,
        title: String,
        body: String,
        topic: String,
    }

    /// A `[stores.search]` table for `env`: tantivy next to the embedded
    /// stores, PostgreSQL full text on the servers.
    fn search_store_toml(ctx: &Ctx, dir: &std::path::Path) -> String {
        match ctx.env {
            Env::Servers => ctx.store_toml("search", Role::Data),
            _ => format!(
                "[stores.search]\nkind = \"tantivy\"\npath = \"{}/index\"\ncommit_interval = \"50ms\"\n",
                dir.display()
            ),
        }
    }

    const VIEWS: &str = r#"
[entities.user]
store = "main"

[entities.post]
store = "main"
search = { store = "search", fields = ["title", "body"], key_kind = "int", filters = { topic = "string" } }

[graphs.social]
store = "main"

[views.home]
params = ["user_id", "q", "topic"]
timeout = "10s"

[views.home.branches.me]
entity = "user"
get = "$user_id"
required = true

[views.home.branches.followers]
entity = "user"
graph = { name = "social", op = "in", vertex = "$user_id", label = "follows", limit = 10 }

[views.home.branches.friends]
graph = { name = "social", op = "mutual", vertex = "$user_id", label = "follows" }

[views.home.branches.suggested]
entity = "user"
graph = { name = "social", op = "recommend", vertex = "$user_id", label = "follows", limit = 10 }

[views.home.branches.fans]
graph = { name = "social", op = "degree", direction = "in", vertex = "$user_id", label = "follows" }

[views.home.branches.posts]
entity = "post"
search = { text = "$q", filter = { topic = "$topic" }, limit = 10 }

[views.home.branches.authors]
entity = "user"
join = { from = "posts", field = "author" }
"#;

    fn post(id: i64, author: &str, title: &str, body: &str, topic: &str) -> Post {
        Post {
            id,
            author: author.into(),
            title: title.into(),
            body: body.into(),
            topic: topic.into(),
        }
    }

    struct Home {
        router: Router,
        _ctx: Ctx,
        _dir: tempfile::TempDir,
    }

    async fn home(env: Env) -> Home {
        let ctx = Ctx::new(env);
        let dir = tempfile::tempdir().unwrap();
        let toml = format!(
            "{}{}{VIEWS}",
            ctx.store_toml("main", Role::Data),
            search_store_toml(&ctx, dir.path())
        );
        let router = Router::builder()
            .config(Config::parse(&toml, "home.toml").unwrap())
            .entity::<User>()
            .entity::<Post>()
            .build()
            .await
            .unwrap();
        fill_users_and_graph(&router, "social").await;
        let posts = router.repo::<Post>().await.unwrap();
        posts
            .put_many(&[
                post(
                    1,
                    "ada",
                    "Rust ownership",
                    "rust borrowing and rust lifetimes in rust",
                    "tech",
                ),
                post(2, "cy", "Async Rust", "tokio and futures", "tech"),
                post(3, "dee", "Garden tools", "rust on old tools", "home"),
                post(4, "eve", "Rust macros", "macro rules", "tech"),
                post(5, "gus", "Python", "snakes", "tech"),
            ])
            .await
            .unwrap();
        posts.refresh_search().await.unwrap();
        // Post 4 leaves the primary store behind the router's back: the
        // index still has it, so hydration must drop and count it.
        let main = router.store("main").unwrap();
        let info = EntityInfo {
            table: "post".into(),
            store: "main".into(),
            ..EntityInfo::new(Post::schema())
        };
        main.write(
            &info,
            vec![WriteOp::Delete {
                key: Key::Int(4),
                precondition: Default::default(),
            }],
            true,
        )
        .await
        .unwrap();
        Home {
            router,
            _ctx: ctx,
            _dir: dir,
        }
    }

    /// The ranked ids the index itself gives, for comparison.
    async fn index_order(router: &Router, q: SearchQuery) -> Vec<i64> {
        let page = router
            .repo::<Post>()
            .await
            .unwrap()
            .search_keys(q)
            .await
            .unwrap();
        page.hits
            .iter()
            .map(|h| match h.key {
                Key::Int(i) => i,
                ref k => panic!("{k:?}"),
            })
            .collect()
    }

    pub(super) async fn the_home_view_federates_graph_search_and_records(env: Env) {
        let h = home(env).await;
        let q = SearchQuery::new("rust").filter(polyrouter::field("topic").eq("tech"));
        let ranked = index_order(&h.router, q).await;
        let mut sorted = ranked.clone();
        sorted.sort();
        assert_eq!(sorted, [1, 2, 4], "the index still holds post 4");
        let out = h
            .router
            .view(
                "home",
                json!({"user_id": "bob", "q": "rust", "topic": "tech"}),
            )
            .await
            .unwrap();
        let j = out.to_json();
        assert!(j["errors"].as_object().unwrap().is_empty(), "{j}");
        assert_eq!(j["data"]["me"]["name"], "Bob");
        let ids = |v: &serde_json::Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|u| u["id"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(ids(&j["data"]["followers"]), ["ada", "cy", "dee"]);
        assert_eq!(out.branch("followers").unwrap().dropped, 1, "gus");
        assert_eq!(j["data"]["friends"], json!(["ada", "cy"]));
        assert_eq!(j["data"]["fans"], 4);
        let suggested: Vec<Scored<User>> = out.value("suggested").unwrap();
        let got: Vec<(&str, f64)> = suggested
            .iter()
            .map(|s| (s.item.id.as_str(), s.score))
            .collect();
        assert_eq!(got, [("eve", 2.0), ("dee", 1.0), ("fay", 1.0)]);
        assert_eq!(out.branch("suggested").unwrap().dropped, 1, "hal");
        // Search: the index's rank order, post 4 dropped and counted,
        // post 3 filtered out by topic, post 5 not matching.
        let posts: Vec<Scored<Post>> = out.value("posts").unwrap();
        let want: Vec<i64> = ranked.into_iter().filter(|id| *id != 4).collect();
        assert_eq!(
            posts.iter().map(|p| p.item.id).collect::<Vec<_>>(),
            want,
            "rank kept"
        );
        assert!(posts.windows(2).all(|w| w[0].score >= w[1].score));
        assert!(posts.iter().all(|p| p.score > 0.0));
        assert_eq!(out.branch("posts").unwrap().dropped, 1);
        // A join reads the hydrated hits' authors in rank order.
        let authors: Vec<User> = out.value("authors").unwrap();
        let want_authors: Vec<&str> = posts.iter().map(|p| p.item.author.as_str()).collect();
        assert_eq!(names(&authors), want_authors);
        // Another topic, another text: parameters substitute.
        let out = h
            .router
            .view(
                "home",
                json!({"user_id": "ada", "q": "tools", "topic": "home"}),
            )
            .await
            .unwrap();
        let posts: Vec<Scored<Post>> = out.value("posts").unwrap();
        assert_eq!(posts.len(), 1);
        assert_eq!(posts[0].item.title, "Garden tools");
        assert_eq!(out.branch("posts").unwrap().dropped, 0);
        assert_eq!(out.value::<u64>("fans").unwrap(), 1);
        // Search text that is not a string is refused before anything runs.
        let e = h
            .router
            .view("home", json!({"user_id": "ada", "q": 7, "topic": "home"}))
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("search text must be a string"),
            "{e}"
        );
    }

    pub(super) async fn search_branches_in_code(env: Env) {
        let h = home(env).await;
        let q = SearchQuery::new("rust").limit(10);
        let ranked = index_order(&h.router, q.clone()).await;
        let out = h
            .router
            .aggregate()
            .search::<Post>("posts", q)
            .graph_records::<User>(
                "followers",
                "social",
                GraphRead::followers("bob", "follows"),
            )
            .run()
            .await
            .unwrap();
        let posts: Vec<Scored<Post>> = out.value("posts").unwrap();
        let want: Vec<i64> = ranked.iter().copied().filter(|id| *id != 4).collect();
        assert_eq!(posts.iter().map(|p| p.item.id).collect::<Vec<_>>(), want);
        assert_eq!(want.len(), 3, "posts 1, 2, 3 match `rust`");
        assert_eq!(out.branch("posts").unwrap().dropped, 1);
        assert_eq!(
            names(&out.value::<Vec<User>>("followers").unwrap()),
            ["ada", "cy", "dee"]
        );
        // A filter on a field the index cannot filter is the branch's
        // failure, naming the search store.
        let out = h
            .router
            .aggregate()
            .search::<Post>(
                "posts",
                SearchQuery::new("rust").filter(polyrouter::field("author").eq("ada")),
            )
            .run()
            .await
            .unwrap();
        let (_, f) = out.failures().next().unwrap();
        assert_eq!(f.store, "search");
        assert!(f.message.contains("not a filter field"), "{}", f.message);
    }
}

macro_rules! per_env {
    ($cfg:meta; $($path:path => $name:ident),* $(,)?) => {
        mod memory {
            $(#[$cfg] #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { $path(super::Env::Memory).await })*
        }
        #[cfg(feature = "sqlite")]
        mod sqlite {
            $(#[$cfg] #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { $path(super::Env::Sqlite).await })*
        }
        #[cfg(all(feature = "postgres", feature = "redis"))]
        mod servers {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { $path(super::Env::Servers).await })*
        }
    };
}

mod graph {
    use super::*;
    per_env!(
        cfg(all());
        super::super::graph_branches_read_records_without_n_plus_1 => graph_branches_read_records_without_n_plus_1,
        super::super::a_failing_graph_store_leaves_a_partial_result_naming_it => a_failing_graph_store_leaves_a_partial_result_naming_it,
        super::super::the_profile_view_reads_the_graph => the_profile_view_reads_the_graph,
    );
}

#[cfg(any(feature = "tantivy", feature = "postgres"))]
mod with_search {
    use super::*;
    per_env!(
        cfg(feature = "tantivy");
        super::super::search::the_home_view_federates_graph_search_and_records => the_home_view_federates_graph_search_and_records,
        super::super::search::search_branches_in_code => search_branches_in_code,
    );
}
