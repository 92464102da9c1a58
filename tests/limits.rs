//! Limits checked at start-up: TTLs from the configuration.

use polyrouter::{Error, Router};

#[tokio::test]
async fn a_configured_ttl_longer_than_the_longest_is_a_located_error() {
    for (entity, key) in [
        ("ttl = \"25000d\"\n", "entities.session.ttl"),
        (
            "cache = { store = \"c\", ttl = \"25000d\" }\n",
            "entities.session.cache.ttl",
        ),
    ] {
        let text = format!(
            "[stores.m]\nkind = \"memory\"\n[stores.c]\nkind = \"memory\"\n[entities.session]\nstore = \"m\"\n{entity}"
        );
        let e = Router::from_toml_str(&text).await.unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::Config { .. }), "{msg}");
        assert!(
            msg.contains(&format!("`{key}`")) && msg.contains("longer than the longest"),
            "{msg}"
        );
        assert!(!msg.starts_with("<string>:0:"), "located: {msg}");
    }
    // 24 000 days (about 66 years) is kept.
    Router::from_toml_str(
        "[stores.m]\nkind = \"memory\"\n[entities.session]\nstore = \"m\"\nttl = \"24000d\"\n",
    )
    .await
    .unwrap();
}
