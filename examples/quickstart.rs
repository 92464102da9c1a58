//! The polyrouter quick start: two stores, no server.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! `examples/polyrouter.toml` routes users to an embedded SQLite file
//! (`target/quickstart/app.db`, or `$QUICKSTART_DATABASE_URL`) and sessions
//! to the in-process memory store with a 30-minute TTL. The example writes 25
//! users, pages through a filtered, sorted query, shows an optimistic
//! concurrency conflict, and round-trips a session. Run it as often as you
//! like: it replaces its own rows each time.

use std::path::Path;

use chrono::{DateTime, Utc};
use polyrouter::config::Config;
use polyrouter::prelude::*;
use serde::{Deserialize, Serialize};

/// A user, stored as a row of the `users` table in SQLite.
#[derive(Entity, Serialize, Deserialize, Debug, Clone)]
#[entity(name = "user", key = "id")]
struct User {
    id: String,
    email: String,
    name: String,
    country: String,
    created_at: DateTime<Utc>,
    /// Maintained by the store: 1 on insert, +1 on every write.
    #[entity(version)]
    version: u64,
}

/// A login session, kept in memory with the route's 30-minute TTL.
#[derive(Entity, Serialize, Deserialize, Debug, Clone)]
#[entity(name = "session", key = "id")]
struct Session {
    id: String,
    user_id: String,
}

const NAMES: [&str; 25] = [
    "Ada",
    "Linus",
    "Grace",
    "Ken",
    "Barbara",
    "Dennis",
    "Frances",
    "Edsger",
    "Radia",
    "Niklaus",
    "Margaret",
    "Donald",
    "Sophie",
    "Tony",
    "Hedy",
    "John",
    "Katherine",
    "Alan",
    "Joan",
    "Bjarne",
    "Anita",
    "Guido",
    "Mary",
    "Leslie",
    "Shafi",
];
const COUNTRIES: [&str; 3] = ["SE", "NO", "DK"];

fn sample_users() -> Vec<User> {
    // 2024-01-01 09:00 UTC, then one user an hour.
    let start = 1_704_099_600;
    NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| User {
            id: format!("u{:02}", i + 1),
            email: format!("{}@example.com", name.to_lowercase()),
            name: name.to_string(),
            country: COUNTRIES[i % COUNTRIES.len()].to_string(),
            created_at: DateTime::from_timestamp(start + 3_600 * i as i64, 0)
                .expect("a valid timestamp"),
            version: 0,
        })
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. Configure: the file says which store holds which entity.
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/polyrouter.toml");
    let config = Config::from_file(&file)?;
    let router = Router::builder()
        .config(config)
        .entity::<User>() // creates or checks the `users` table now
        .entity::<Session>()
        .build()
        .await?;

    println!("polyrouter quick start");
    println!("======================");
    for name in router.store_names() {
        if let Some(store) = router.store(name) {
            println!("store {name:<5} {:<7} {}", store.kind(), store.location());
        }
    }
    for route in router.routes() {
        let ttl = route
            .ttl
            .map(|t| format!(", ttl {} min", t.as_secs() / 60))
            .unwrap_or_default();
        println!(
            "route {:<8} -> store {}, table {}{ttl}",
            route.entity, route.store, route.table
        );
    }

    // 2. Write: remove rows from an earlier run, then store 25 users in one batch.
    let users = router.repo::<User>().await?;
    let sample = sample_users();
    let removed = users
        .delete_many(sample.iter().map(|u| u.id.as_str()))
        .await?;
    let versions = users.put_many(&sample).await?;
    println!();
    println!(
        "stored {} users (removed {removed} from an earlier run); versions start at {}",
        versions.len(),
        versions.first().copied().unwrap_or_default()
    );

    // 3. Query: Swedish users, oldest first, four per page, following the
    //    continuation token until the last page.
    let swedes = field("country").eq("SE");
    println!(
        "{} of {} users are in SE",
        users.count(swedes.clone()).await?,
        users.count(None).await?
    );
    let mut query = Some(Query::new().filter(swedes).order_by("created_at").limit(4));
    let mut page_no = 0;
    while let Some(q) = query {
        page_no += 1;
        let page = users.query(q).await?;
        let n = page.items.len();
        let rows = if n == 1 { "row" } else { "rows" };
        let more = if page.next.is_some() {
            "more to come"
        } else {
            "last page"
        };
        println!("page {page_no}: {n} {rows}, {more}");
        for u in &page.items {
            println!(
                "  {} {:<9} {:<22} {} {} v{}",
                u.id,
                u.name,
                u.email,
                u.country,
                u.created_at.format("%Y-%m-%d %H:%M"),
                u.version
            );
        }
        query = page.next_query();
    }

    // 4. Optimistic concurrency: two writers read version v; the first
    //    write wins, the second gets a conflict and nothing is written.
    let mut alice = users.require("u01").await?;
    let mut bob = alice.clone();
    let read_version = alice.version;
    alice.name = "Ada Lovelace".into();
    let new_version = users
        .put_if(&alice, Precondition::Version(read_version))
        .await?;
    println!();
    println!("writer A: put_if version {read_version} -> ok, now version {new_version}");
    bob.name = "Ada King".into();
    match users
        .put_if(&bob, Precondition::Version(read_version))
        .await
    {
        Err(e @ Error::Conflict { .. }) => {
            println!("writer B: put_if version {read_version} -> {e}")
        }
        Err(e) => return Err(e.into()),
        Ok(v) => return Err(format!("expected a conflict, but the write made version {v}").into()),
    }
    let current = users.require("u01").await?;
    println!(
        "u01 is still {:?} at version {}",
        current.name, current.version
    );

    // 5. Another store: a session in memory, with the route's default TTL.
    let sessions = router.repo::<Session>().await?;
    let session = Session {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: current.id.clone(),
    };
    let v = sessions.put(&session).await?;
    let back = sessions.require(session.id.as_str()).await?;
    println!();
    println!(
        "session {} for {} stored in `{}` (version {v}), read back for {}",
        back.id,
        session.user_id,
        router.route("session").map_or("?", |r| r.store.as_str()),
        back.user_id
    );
    println!();
    println!("done");
    Ok(())
}
