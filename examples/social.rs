//! A small social network with polyrouter: users and posts in SQL, the
//! follow graph in embedded graph tables, posts searchable in a full-text
//! index, users and home feeds cached in a key-value store — no server.
//!
//! ```text
//! cargo run --features tantivy --example social
//! ```
//!
//! `examples/social.toml` puts users, posts and the `social` graph in an
//! embedded SQLite file (`target/social/social.db`, or `$SOCIAL_DIR`),
//! indexes posts in a tantivy index next to it, and caches users (ten
//! minutes, cache-aside) and home feeds (one minute) in the in-process
//! memory store. The example follows the seed architecture's social
//! pattern: users follow each other; it prints followers, mutual follows
//! and friend-of-friend recommendations from the graph, searches posts,
//! and builds a home feed once, then serves it from the cache. Run it as
//! often as you like: every write replaces what the last run wrote.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};
use polyrouter::config::Config;
use polyrouter::prelude::*;
use polyrouter::router::SearchQuery;
use polyrouter::store::graph::{EdgeDirection, Vertex};
use serde::{Deserialize, Serialize};

/// A member: a row of the `user` table, cached for ten minutes.
#[derive(Entity, Serialize, Deserialize, Debug, Clone)]
#[entity(name = "user", key = "id")]
struct User {
    id: String,
    name: String,
    city: String,
    #[entity(version)]
    version: u64,
}

/// A post: a row of the `post` table, indexed for search on write.
#[derive(Entity, Serialize, Deserialize, Debug, Clone)]
#[entity(name = "post", key = "id")]
struct Post {
    id: String,
    author: String,
    city: String,
    body: String,
    created_at: DateTime<Utc>,
}

/// A user's home feed: the newest posts of the people they follow, kept in
/// the key-value store for a minute.
#[derive(Entity, Serialize, Deserialize, Debug, Clone)]
#[entity(name = "feed", key = "user_id")]
struct Feed {
    user_id: String,
    post_ids: Vec<String>,
    built_at: DateTime<Utc>,
}

const USERS: [(&str, &str, &str); 6] = [
    ("alice", "Alice", "Oslo"),
    ("bob", "Bob", "Oslo"),
    ("carol", "Carol", "Bergen"),
    ("dave", "Dave", "Bergen"),
    ("erin", "Erin", "Tromsø"),
    ("frank", "Frank", "Oslo"),
];

/// Who follows whom (follower, followed).
const FOLLOWS: [(&str, &str); 11] = [
    ("alice", "bob"),
    ("bob", "alice"),
    ("alice", "carol"),
    ("carol", "alice"),
    ("bob", "dave"),
    ("carol", "dave"),
    ("carol", "erin"),
    ("dave", "erin"),
    ("erin", "frank"),
    ("frank", "alice"),
    ("bob", "frank"),
];

const POSTS: [(&str, &str); 8] = [
    ("bob", "Rust async runtimes compared: tokio in production"),
    ("carol", "Hiking the fjords near Bergen this weekend"),
    ("dave", "Why our team moved the catalog to a document store"),
    ("erin", "Northern lights over Tromsø, no filter"),
    ("bob", "Benchmarking Redis pipelines from Rust"),
    ("carol", "A fjord cruise and a very patient dog"),
    (
        "frank",
        "Polyglot persistence: one API, many stores, written in Rust",
    ),
    ("dave", "Bergen rain statistics, graphed"),
];

/// The home feed of `user`: from the cache when it is there, else built
/// from the graph (whom they follow) and one query over posts, then cached.
async fn home_feed(router: &Router, user: &str) -> polyrouter::Result<(Vec<Post>, bool)> {
    let feeds = router.repo::<Feed>().await?;
    let posts = router.repo::<Post>().await?;
    if let Some(feed) = feeds.get(user).await? {
        let cached = posts
            .get_many(feed.post_ids.iter().map(String::as_str))
            .await?;
        return Ok((cached.into_iter().flatten().collect(), true));
    }
    let graph = router.graph("social")?;
    let following = graph.following(user, "follows", 1000, None).await?.ids;
    let page = posts
        .query(
            Query::new()
                .filter(field("author").is_in(following))
                .order_by_desc("created_at")
                .limit(5),
        )
        .await?;
    feeds
        .put(&Feed {
            user_id: user.into(),
            post_ids: page.items.iter().map(|p| p.id.clone()).collect(),
            built_at: Utc::now(),
        })
        .await?;
    Ok((page.items, false))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. Configure: the file says where users, posts, feeds and the graph live.
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/social.toml");
    let router = Router::builder()
        .config(Config::from_file(&file)?)
        .entity::<User>() // creates or checks the `user` table now
        .entity::<Post>() // and `post`, and the search index's layout
        .entity::<Feed>()
        .build() // and the `social` graph's vertex and edge tables
        .await?;
    println!("polyrouter social example");
    println!("=========================");
    for name in router.store_names() {
        if let Some(store) = router.store(name) {
            println!("store {name:<5} {:<7} {}", store.kind(), store.location());
        }
    }

    // 2. Members in SQL, and as vertices of the follow graph.
    let users = router.repo::<User>().await?;
    let members: Vec<User> = USERS
        .iter()
        .map(|(id, name, city)| User {
            id: id.to_string(),
            name: name.to_string(),
            city: city.to_string(),
            version: 0,
        })
        .collect();
    users.put_many(&members).await?;
    let graph = router.graph("social")?;
    for u in &members {
        let vertex = Vertex::new(&u.id, "user").property("city", u.city.as_str());
        match graph.add_vertex(&vertex).await {
            // Already there from an earlier run: refresh its properties.
            Err(Error::Conflict { .. }) => graph.update_vertex(&u.id, &vertex.properties).await?,
            other => other?,
        }
    }
    let mut new_edges = 0;
    for (from, to) in FOLLOWS {
        if graph.link("follows", from, to).await? {
            new_edges += 1;
        }
    }
    println!(
        "\n{} users; {} follows ({new_edges} new this run; linking is idempotent)",
        users.count(None).await?,
        FOLLOWS.len()
    );

    // 3. The graph: followers, mutual follows, recommendations, a path.
    let followers = graph.followers("alice", "follows", 10, None).await?.ids;
    let following = graph.degree("alice", "follows", EdgeDirection::Out).await?;
    println!(
        "\nalice follows {following}; her followers: {}",
        followers.join(", ")
    );
    println!(
        "alice's mutual follows: {}",
        graph.mutual("alice", "follows").await?.join(", ")
    );
    println!("who alice might follow (friends of friends, by shared connections):");
    for r in graph.recommend("alice", "follows", 3).await? {
        println!(
            "  {:<6} shared by {} of the people she follows",
            r.id, r.shared
        );
    }
    if let Some(path) = graph.shortest_path("alice", "erin", "follows", 4).await? {
        println!("shortest follow path alice → erin: {}", path.join(" → "));
    }

    // 4. Posts in SQL, indexed for search as they are written.
    let posts = router.repo::<Post>().await?;
    let city: HashMap<&str, &str> = USERS.iter().map(|(id, _, c)| (*id, *c)).collect();
    let start = DateTime::from_timestamp(1_764_000_000, 0).expect("a valid instant");
    let all: Vec<Post> = POSTS
        .iter()
        .enumerate()
        .map(|(i, (author, body))| Post {
            id: format!("p{:02}", i + 1),
            author: author.to_string(),
            city: city[author].to_string(),
            body: body.to_string(),
            created_at: start + TimeDelta::hours(i as i64),
        })
        .collect();
    posts.put_many(&all).await?;
    posts.refresh_search().await?; // searchable now, not after 200 ms

    // 5. Search: ranked hits hydrated from SQLite, with a facet by city.
    let found = posts
        .search(SearchQuery::new("rust").facet("city").limit(10))
        .await?;
    println!("\nsearch \"rust\": {} post(s)", found.total);
    for hit in &found.hits {
        println!(
            "  {:.2}  {} — {}",
            hit.score, hit.item.author, hit.item.body
        );
    }
    for facet in &found.facets {
        let counts: Vec<String> = facet
            .counts
            .iter()
            .map(|(value, n)| format!("{value} {n}"))
            .collect();
        println!("  by {}: {}", facet.field, counts.join(", "));
    }
    let in_bergen = posts
        .search(SearchQuery::new("fjord").filter(field("city").eq("Bergen")))
        .await?;
    println!(
        "search \"fjord\" in Bergen: {}",
        in_bergen
            .hits
            .iter()
            .map(|h| h.item.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );

    // 6. The home feed: built once from the graph and one query, then cached.
    let (feed, cached) = home_feed(&router, "carol").await?;
    println!(
        "\ncarol's home feed ({}):",
        if cached { "from the cache" } else { "built" }
    );
    for p in &feed {
        println!(
            "  {} {:<6} {}",
            p.created_at.format("%H:%M"),
            p.author,
            p.body
        );
    }
    let (again, cached) = home_feed(&router, "carol").await?;
    println!(
        "again: {} post(s), {}",
        again.len(),
        if cached { "from the cache" } else { "built" }
    );

    // 7. Cache-aside on users: the second read is a cache hit.
    users.get("dave").await?;
    let dave = users.require("dave").await?;
    let m = router.metrics();
    let counters = m.entity("user").expect("user is routed");
    println!(
        "\nuser reads: {} cache hit(s), {} miss(es), {} primary read(s); dave lives in {}",
        counters.cache_hits, counters.cache_misses, counters.primary_reads, dave.city
    );
    Ok(())
}
