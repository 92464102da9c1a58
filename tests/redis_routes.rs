//! Routing to Redis through the router: key layout and the entity's `key_prefix`.
#![cfg(feature = "redis")]

use polyrouter::{Entity, Router};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize, Debug, PartialEq)]
#[entity(name = "session", key = "id")]
struct Session {
    id: String,
    user: String,
}

#[tokio::test]
async fn the_entity_key_prefix_is_the_namespace() {
    let prefix = format!("polyrouter-routes-{}", std::process::id());
    let router = Router::from_toml_str(&format!(
        "[stores.kv]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\nkey_prefix = \"{prefix}\"\n\n[entities.session]\nstore = \"kv\"\nkey_prefix = \"sess\"\nttl = \"30m\"\n"
    ))
    .await
    .expect("redis at 127.0.0.1:6379 (start it with scripts/services redis)");
    let sessions = router.repo::<Session>().await.unwrap();
    sessions
        .put(&Session {
            id: "s1".into(),
            user: "u1".into(),
        })
        .await
        .unwrap();

    let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{prefix}:sess:s1");
    let exists: bool = con.exists(&key).await.unwrap();
    assert!(exists, "record stored under {key}");
    let ttl_ms: i64 = con.pttl(&key).await.unwrap();
    assert!(
        ttl_ms > 29 * 60 * 1000 && ttl_ms <= 30 * 60 * 1000,
        "30-minute TTL, got {ttl_ms} ms"
    );
    assert_eq!(
        sessions.get("s1").await.unwrap().map(|s| s.user),
        Some("u1".into())
    );
    let _: () = con.del(&key).await.unwrap();
}
